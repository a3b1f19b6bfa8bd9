/* cmd_market.c - `cumulus market`: the exchange's indicative price, fees,
 * recent trades, open bids and asks (GET /v1/market, unsigned). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "client/config.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus market [--json] [--exchange URL]\n"
    "\n"
    "Shows the exchange's market: the indicative price per CU (the median ask\n"
    "of the last 100 paid replicas), its fees, recent trades, the open bids of\n"
    "jobs with queued work and the asks of online providers. Needs no key.\n"
    "\n"
    "  --json          print the exchange's JSON answer instead\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n";

static long long jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static void print_market(const json_t *m)
{
    const json_t *fees = json_object_get(m, "fees"), *v;
    char cu[32], when[32], mem[32];
    long long bps = jint(fees, "exchange_fee_bps");
    int64_t now = cu_now_ms();
    size_t i;

    if (jint(m, "trades_in_price"))
        printf("indicative price: %lld per CU (median of the last %lld trades)\n",
               jint(m, "indicative_price_per_cu"), jint(m, "trades_in_price"));
    else
        printf("indicative price: none yet (no trades)\n");
    printf("fees: exchange %lld.%02lld%% of each payment, escrow %lld per job\n", bps / 100,
           bps % 100, jint(fees, "escrow_fee"));

    printf("\nrecent trades (%zu):\n", json_array_size(json_object_get(m, "recent_trades")));
    if (json_array_size(json_object_get(m, "recent_trades")))
        printf("  %-10s %12s %12s %12s\n", "AGO", "PRICE/CU", "CU", "PAID");
    json_array_foreach(json_object_get(m, "recent_trades"), i, v) {
        int64_t t = jint(v, "time_ms");
        cu_fmt_duration((uint64_t)(now > t ? now - t : 0), when, sizeof when);
        cu_api_fmt_cu(jint(v, "cu_milli"), cu, sizeof cu);
        printf("  %-10s %12lld %12s %12lld\n", when, jint(v, "price_per_cu"), cu,
               jint(v, "amount"));
    }

    printf("\nopen bids (%zu):\n", json_array_size(json_object_get(m, "bids")));
    if (json_array_size(json_object_get(m, "bids")))
        printf("  %12s %6s %10s %5s %8s\n", "BID/CU", "CORES", "MEMORY", "GPUS", "QUEUED");
    json_array_foreach(json_object_get(m, "bids"), i, v) {
        cu_fmt_size((uint64_t)jint(v, "memory"), mem, sizeof mem);
        printf("  %12lld %6lld %10s %5lld %8lld\n", jint(v, "max_per_cu"), jint(v, "cores"), mem,
               jint(v, "gpus"), jint(v, "queued_replicas"));
    }

    printf("\nasks of online providers (%zu):\n", json_array_size(json_object_get(m, "asks")));
    if (json_array_size(json_object_get(m, "asks")))
        printf("  %-16s %12s %6s %6s %10s %5s %8s\n", "PROVIDER", "ASK/CU", "SLOTS", "CORES",
               "MEMORY", "GPUS", "SPEED");
    json_array_foreach(json_object_get(m, "asks"), i, v) {
        const char *who = json_string_value(json_object_get(v, "provider"));
        long long f = jint(v, "cu_factor_milli");
        cu_fmt_size((uint64_t)jint(v, "memory"), mem, sizeof mem);
        printf("  %-16.16s %12lld %6lld %6lld %10s %5lld %4lld.%03lld\n", who ? who : "?",
               jint(v, "price_per_cu"), jint(v, "slots"), jint(v, "cores"), mem, jint(v, "gpus"),
               f / 1000, f % 1000);
    }
}

int cmd_market(int argc, char **argv)
{
    struct cu_cli_req_opts o = {.cmd = "market", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_JSON};
    char url[CU_API_URL_MAX];
    struct cu_api api;
    struct cu_err e = {0};
    json_t *m = NULL;
    int r, rc = CU_EXIT_FAIL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if ((r = cu_cli_req_opt(&o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CU_EXIT_USAGE;
        } else if (cu_cli_unknown_option(o.cmd, a)) {
            return CU_EXIT_USAGE;
        } else {
            cu_cli_errorf("market", "unexpected argument '%s' (see 'cumulus market --help')", a);
            return CU_EXIT_USAGE;
        }
    }
    cu_cli_log_init("market", "market");
    memset(&api, 0, sizeof api);
    if (cu_config_exchange_url(o.exchange, url, sizeof url, &e) != 0 ||
        cu_api_open(&api, url, NULL, &e) != 0 || cu_api_market(&api, &m, &e) != 0) {
        cu_cli_errorf("market", "%s", e.msg);
        goto out;
    }
    if (o.json) {
        char *s = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        print_market(m);
    }
    rc = CU_EXIT_OK;
out:
    json_decref(m);
    cu_api_close(&api);
    return rc;
}
