/* cmd_cancel.c - `cumulus cancel`: cancel a job. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "client/api.h"
#include "crypto/ident.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus cancel JOB [--exchange URL] [--key FILE]\n"
    "\n"
    "Cancels a job and prints its new state. Queued replicas are dropped;\n"
    "running ones stop at their next heartbeat; unspent escrow is refunded.\n"
    "\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE      identity (else CUMULUS_KEY, else\n"
    "                  $CUMULUS_HOME/identity.key)\n";

int cmd_cancel(int argc, char **argv)
{
    const char *job = NULL, *state;
    struct cu_cli_req_opts o = {.cmd = "cancel", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_KEY};
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    json_t *j = NULL;
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
        } else if (job) {
            cu_cli_errorf("cancel", "one job at a time ('%s' and '%s')", job, a);
            return CU_EXIT_USAGE;
        } else {
            job = a;
        }
    }
    if (!job) {
        cu_cli_errorf("cancel", "which job? usage: cumulus cancel JOB");
        return CU_EXIT_USAGE;
    }
    if (cu_cli_check_job(o.cmd, job) != 0)
        return CU_EXIT_USAGE;
    cu_cli_log_init("cancel", "cancel");
    if (cu_cli_connect("cancel", o.exchange, o.key, &id, &api) != 0)
        return CU_EXIT_FAIL;
    if (cu_api_cancel(&api, job, &j, &e) != 0) {
        cu_cli_errorf("cancel", "%s", e.msg);
        goto out_close;
    }
    state = json_string_value(json_object_get(j, "state"));
    printf("%s %s\n", job, state ? state : "cancelled");
    rc = CU_EXIT_OK;
out_close:
    json_decref(j);
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return rc;
}
