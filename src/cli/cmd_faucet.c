/* cmd_faucet.c - `cumulus faucet`: mint test tokens on a devnet exchange. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "crypto/ident.h"

#include "base/banned.h"

/* The exchange's own limit (docs/api.md): 1 ... 10^15. */
#define FAUCET_MAX 1000000000000000LL

static const char usage_text[] =
    "usage: cumulus faucet AMOUNT [--exchange URL] [--key FILE]\n"
    "\n"
    "Mints AMOUNT base units (1 .. 10^15) into your account. Only an exchange\n"
    "started with --devnet has a faucet.\n"
    "\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE      identity (else CUMULUS_KEY, else\n"
    "                  $CUMULUS_HOME/identity.key)\n";

int cmd_faucet(int argc, char **argv)
{
    const char *amount_s = NULL;
    struct cu_cli_req_opts o = {.cmd = "faucet", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_KEY};
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    json_t *j = NULL;
    int64_t amount;
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
        } else if (amount_s) {
            cu_cli_errorf("faucet", "one AMOUNT only ('%s' and '%s')", amount_s, a);
            return CU_EXIT_USAGE;
        } else {
            amount_s = a;
        }
    }
    if (!amount_s) {
        cu_cli_errorf("faucet", "how much? usage: cumulus faucet AMOUNT");
        return CU_EXIT_USAGE;
    }
    if (cu_parse_i64(amount_s, 1, FAUCET_MAX, &amount) != 0) {
        cu_cli_errorf("faucet", "AMOUNT '%s' is not a whole number between 1 and %lld",
                      amount_s, (long long)FAUCET_MAX);
        return CU_EXIT_USAGE;
    }
    cu_cli_log_init("faucet", "faucet");
    if (cu_cli_connect("faucet", o.exchange, o.key, &id, &api) != 0)
        return CU_EXIT_FAIL;
    if (cu_api_faucet(&api, (uint64_t)amount, &j, &e) != 0) {
        if (api.status == 403 && strcmp(api.code, "not_devnet") == 0)
            cu_cli_errorf("faucet", "this exchange is not a devnet (start it with --devnet); "
                                    "the faucet is off");
        else
            cu_cli_errorf("faucet", "%s", e.msg);
        goto out_close;
    }
    printf("minted %lld to %s\n", (long long)amount, id.id);
    printf("tx %s (block %lld)\n",
           json_string_value(json_object_get(j, "tx")) ? json_string_value(json_object_get(j, "tx"))
                                                        : "?",
           (long long)json_integer_value(json_object_get(j, "height")));
    if (json_is_integer(json_object_get(j, "balance")))
        printf("balance %lld\n", (long long)json_integer_value(json_object_get(j, "balance")));
    rc = CU_EXIT_OK;
out_close:
    json_decref(j);
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return rc;
}
