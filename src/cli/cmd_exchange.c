/* cmd_exchange.c - `cumulus exchange`: run the exchange daemon. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "exchange/exchange.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus exchange [--listen ADDR:PORT] [--data DIR] [--lease DURATION]\n"
    "                        [--devnet] [--fee-bps N] [--escrow-fee N] [--slash-bps N]\n"
    "                        [--web DIR]\n"
    "                        [--log LEVEL]\n"
    "\n"
    "Runs an exchange until SIGINT/SIGTERM: the HTTP API of docs/api.md, job and\n"
    "replica state in DIR/state.db, blobs in DIR/blobs. Once listening it writes\n"
    "its URL to DIR/exchange.url (port 0 picks a free port).\n"
    "\n"
    "  --listen ADDR:PORT  address to listen on (default 127.0.0.1:7070)\n"
    "  --data DIR          state directory (default ./exchange-data)\n"
    "  --lease DURATION    replica lease, e.g. 30s, 2m (default 30s); providers\n"
    "                      heartbeat every third of it\n"
    "  --devnet            allow the devnet faucet\n"
    "  --fee-bps N         exchange fee, in basis points of each provider payment\n"
    "                      (default 200 = 2%; 0..10000)\n"
    "  --escrow-fee N      flat fee per job, in base units, for holding its escrow\n"
    "                      (default 10)\n"
    "  --slash-bps N       share of a provider's stake slashed when its result loses\n"
    "                      a quorum, in basis points (default 5000 = 50%)\n"
    "  --web DIR           serve the dashboard's static files from DIR\n"
    "  --log LEVEL         debug, info, warn, error or off (default info, or\n"
    "                      CUMULUS_LOG)\n";

int cmd_exchange(int argc, char **argv)
{
    struct cu_exchange_opts o = {.listen = "127.0.0.1:7070",
                                 .data_dir = "./exchange-data",
                                 .lease_ms = CU_EXCHANGE_DEFAULT_LEASE_MS,
                                 .fee_bps = CU_EXCHANGE_DEFAULT_FEE_BPS,
                                 .escrow_fee = CU_EXCHANGE_DEFAULT_ESCROW_FEE,
                                 .slash_bps = CU_EXCHANGE_DEFAULT_SLASH_BPS};
    const char *log = NULL, *v;
    struct cu_err e = {0};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if (strcmp(a, "--devnet") == 0) {
            o.devnet = true;
            continue;
        } else if (strcmp(a, "--listen") != 0 && strcmp(a, "--data") != 0 &&
                   strcmp(a, "--lease") != 0 && strcmp(a, "--web") != 0 &&
                   strcmp(a, "--fee-bps") != 0 && strcmp(a, "--escrow-fee") != 0 &&
                   strcmp(a, "--slash-bps") != 0 &&
                   strcmp(a, "--log") != 0) {
            cu_cli_errorf("exchange", "unknown argument '%s' (see 'cumulus exchange --help')", a);
            return CU_EXIT_USAGE;
        }
        if (!(v = cu_cli_value("exchange", argc, argv, &i)))
            return CU_EXIT_USAGE;
        if (strcmp(a, "--listen") == 0) {
            if (!strchr(v, ':')) {
                cu_cli_errorf("exchange", "--listen: '%s' is not ADDR:PORT (e.g. 127.0.0.1:7070)",
                              v);
                return CU_EXIT_USAGE;
            }
            o.listen = v;
        } else if (strcmp(a, "--data") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--lease") == 0) {
            if (cu_parse_duration_ms(v, &o.lease_ms) != 0 || o.lease_ms < 1000) {
                cu_cli_errorf("exchange", "--lease: '%s' is not a duration of at least 1s "
                                          "(e.g. 30s, 2m)", v);
                return CU_EXIT_USAGE;
            }
        } else if (strcmp(a, "--fee-bps") == 0) {
            int64_t n;
            if (cu_parse_i64(v, 0, 10000, &n) != 0) {
                cu_cli_errorf("exchange", "--fee-bps: '%s' is not a whole number 0..10000", v);
                return CU_EXIT_USAGE;
            }
            o.fee_bps = (uint32_t)n;
        } else if (strcmp(a, "--slash-bps") == 0) {
            int64_t n;
            if (cu_parse_i64(v, 0, 10000, &n) != 0) {
                cu_cli_errorf("exchange", "--slash-bps: '%s' is not a whole number 0..10000", v);
                return CU_EXIT_USAGE;
            }
            o.slash_bps = (uint32_t)n;
        } else if (strcmp(a, "--escrow-fee") == 0) {
            int64_t n;
            if (cu_parse_i64(v, 0, 1000000000000LL, &n) != 0) {
                cu_cli_errorf("exchange",
                              "--escrow-fee: '%s' is not a whole number of base units "
                              "0..10^12", v);
                return CU_EXIT_USAGE;
            }
            o.escrow_fee = (uint64_t)n;
        } else if (strcmp(a, "--web") == 0) {
            o.web_dir = v;
        } else {
            log = v;
        }
    }
    cu_cli_log_init("exchange", "exchange");
    if (log && cu_cli_log_level("exchange", log) != 0)
        return CU_EXIT_USAGE;
    if (cu_exchange_run(&o, &e) != 0) {
        cu_cli_errorf("exchange", "%s", e.msg[0] ? e.msg : "could not start");
        return CU_EXIT_FAIL;
    }
    return CU_EXIT_OK;
}
