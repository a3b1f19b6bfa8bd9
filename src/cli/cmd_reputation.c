/* cmd_reputation.c - `cumulus reputation [ID]`: a provider's score, the
 * counts of its records, its stake and its recent records (GET
 * /v1/reputation/{id}, unsigned; docs/api.md "Trust", docs/trust.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "client/config.h"
#include "crypto/ident.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus reputation [ID] [--json] [--exchange URL] [--key FILE]\n"
    "\n"
    "Shows a provider's reputation on the exchange: its score (0 to 1, from its\n"
    "records by the formula in docs/trust.md; a new id starts low), how many\n"
    "replicas it finished in each way (success, wrong_result, timeout,\n"
    "abandoned, challenge_failed), its stake and its most recent records.\n"
    "\n"
    "  ID              the provider's id (64 hex); default: your own (the key's)\n"
    "  --json          print the exchange's JSON answer instead\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE      whose id to show when ID is not given (a provider's is\n"
    "                  DATA/identity.key)\n";

static long long jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The first of keys that o has as a string, or "?". */
static const char *first_str(const json_t *o, const char *const *keys)
{
    for (; *keys; keys++)
        if (json_is_string(json_object_get(o, *keys)))
            return json_string_value(json_object_get(o, *keys));
    return "?";
}

static void print_reputation(const json_t *r)
{
    static const char *const outcome_keys[] = {"outcome", "kind", "record", "result", NULL};
    const json_t *counts = json_object_get(r, "counts"), *v;
    long long score = jint(r, "score_milli");
    int64_t now = cu_now_ms();
    const char *k;
    size_t i;

    printf("provider %s\n", jstr(r, "id"));
    printf("score:   %lld.%03lld\n", score / 1000, score % 1000);
    printf("stake:   %lld\n", jint(r, "stake"));
    printf("records: %lld", jint(r, "records"));
    if (json_object_size(counts)) {
        const char *sep = " (";
        json_object_foreach((json_t *)counts, k, v) {
            printf("%s%s %lld", sep, k, json_is_integer(v) ? (long long)json_integer_value(v) : 0);
            sep = ", ";
        }
        printf(")");
    }
    printf("\n");
    if (!json_array_size(json_object_get(r, "recent")))
        return;
    printf("\nrecent records:\n  %-10s %-18s %-20s %6s %8s\n", "AGO", "OUTCOME", "JOB", "TASK",
           "SLASHED");
    json_array_foreach(json_object_get(r, "recent"), i, v) {
        char when[32] = "-";
        int64_t t = jint(v, "time_ms");
        if (t > 0)
            cu_fmt_duration((uint64_t)(now > t ? now - t : 0), when, sizeof when);
        printf("  %-10s %-18s %-20.20s %6lld %8lld\n", when, first_str(v, outcome_keys),
               jstr(v, "job"), jint(v, "task"), jint(v, "slashed"));
    }
}

int cmd_reputation(int argc, char **argv)
{
    struct cu_cli_req_opts o = {.cmd = "reputation",
                                .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_JSON |
                                          CU_CLI_OPT_KEY};
    char url[CU_API_URL_MAX], who[65] = "";
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    const char *target = NULL;
    bool have_id = false;
    json_t *r = NULL;
    int n, rc = CU_EXIT_FAIL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if ((n = cu_cli_req_opt(&o, argc, argv, &i)) != 0) {
            if (n < 0)
                return CU_EXIT_USAGE;
        } else if (cu_cli_unknown_option(o.cmd, a)) {
            return CU_EXIT_USAGE;
        } else if (!target) {
            target = a;
        } else {
            cu_cli_errorf(o.cmd, "unexpected argument '%s' (see 'cumulus reputation --help')", a);
            return CU_EXIT_USAGE;
        }
    }
    if (target && (strlen(target) != 64 || strspn(target, "0123456789abcdef") != 64)) {
        cu_cli_errorf(o.cmd, "'%s' is not a provider id (64 lowercase hex)", target);
        return CU_EXIT_USAGE;
    }
    cu_cli_log_init(o.cmd, "reputation");
    memset(&api, 0, sizeof api);
    memset(&id, 0, sizeof id);
    if (target) {
        (void)cu_snprintf(who, sizeof who, "%s", target);
        if (cu_config_exchange_url(o.exchange, url, sizeof url, &e) != 0 ||
            cu_api_open(&api, url, NULL, &e) != 0) {
            cu_cli_errorf(o.cmd, "%s", e.msg);
            goto out;
        }
    } else {
        if (cu_cli_connect(o.cmd, o.exchange, o.key, &id, &api) != 0)
            return CU_EXIT_FAIL;
        have_id = true;
        (void)cu_snprintf(who, sizeof who, "%s", id.id);
    }
    if (cu_api_reputation(&api, who, &r, &e) != 0) {
        cu_cli_errorf(o.cmd, "%s", e.msg);
        goto out;
    }
    if (o.json) {
        char *s = json_dumps(r, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        print_reputation(r);
    }
    rc = CU_EXIT_OK;
out:
    json_decref(r);
    cu_api_close(&api);
    if (have_id)
        cu_identity_wipe(&id);
    return rc;
}
