/* cmd_logs.c - `cumulus logs`: print tasks' stdout and stderr. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "crypto/ident.h"
#include "market/spec.h"

#include "base/banned.h"

static const char usage_text[] =
    "usage: cumulus logs JOB [TASK] [--exchange URL] [--key FILE]\n"
    "\n"
    "Prints the stdout and then the stderr of task TASK's latest reported replica\n"
    "(each capped at 1 MiB by the exchange), or of every task that has reported.\n"
    "\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE      identity (else CUMULUS_KEY, else\n"
    "                  $CUMULUS_HOME/identity.key)\n";

static void print_stream(const json_t *logs, const char *which, const char *about)
{
    const json_t *s = json_object_get(logs, which);
    size_t n = json_string_length(s);
    const char *p = json_string_value(s);

    printf("== task %lld %s (%s) ==\n", (long long)json_integer_value(json_object_get(logs, "task")),
           which, about);
    if (p && n) {
        fwrite(p, 1, n, stdout);
        if (p[n - 1] != '\n')
            putchar('\n');
    }
}

static void print_logs(const json_t *logs)
{
    const json_t *ex = json_object_get(logs, "exit_code");
    const char *status = json_string_value(json_object_get(logs, "status"));
    const char *reason = json_string_value(json_object_get(logs, "reason"));
    char about[512];
    size_t len;

    cu_snprintf(about, sizeof about, "replica %lld",
                (long long)json_integer_value(json_object_get(logs, "replica")));
    len = strlen(about);
    if (json_is_integer(ex))
        snprintf(about + len, sizeof about - len, ", exit %lld", (long long)json_integer_value(ex));
    len = strlen(about);
    if (status && strcmp(status, "ok") != 0 && strcmp(status, "failed") != 0)
        snprintf(about + len, sizeof about - len, ", %s", status);
    len = strlen(about);
    if (reason)
        snprintf(about + len, sizeof about - len, ": %s", reason);
    print_stream(logs, "stdout", about);
    print_stream(logs, "stderr", about);
}

/* True when some replica of the task has reported (so logs exist). */
static bool task_reported(const json_t *task)
{
    const json_t *r;
    size_t i;

    if (json_is_object(json_object_get(task, "result")))
        return true;
    json_array_foreach(json_object_get(task, "replicas"), i, r) {
        const char *st = json_string_value(json_object_get(r, "state"));
        if (st && (strcmp(st, "reported") == 0 || strcmp(st, "accepted") == 0 ||
                   strcmp(st, "rejected") == 0))
            return true;
    }
    return false;
}

int cmd_logs(int argc, char **argv)
{
    const char *job = NULL, *task_arg = NULL;
    struct cu_cli_req_opts o = {.cmd = "logs", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_KEY};
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    json_t *j = NULL, *logs = NULL, *t;
    int64_t task = -1;
    unsigned shown = 0;
    size_t i;
    int r, rc = CU_EXIT_FAIL;

    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if ((r = cu_cli_req_opt(&o, argc, argv, &k)) != 0) {
            if (r < 0)
                return CU_EXIT_USAGE;
        } else if (cu_cli_unknown_option(o.cmd, a)) {
            return CU_EXIT_USAGE;
        } else if (!job) {
            job = a;
        } else if (!task_arg) {
            task_arg = a;
        } else {
            cu_cli_errorf("logs", "unexpected argument '%s'; usage: cumulus logs JOB [TASK]", a);
            return CU_EXIT_USAGE;
        }
    }
    if (!job) {
        cu_cli_errorf("logs", "which job? usage: cumulus logs JOB [TASK]");
        return CU_EXIT_USAGE;
    }
    if (cu_cli_check_job(o.cmd, job) != 0)
        return CU_EXIT_USAGE;
    if (task_arg && cu_parse_i64(task_arg, 0, CU_SPEC_MAX_TASKS - 1, &task) != 0) {
        cu_cli_errorf("logs", "TASK: '%s' is not a task index (0 to %d)", task_arg,
                      CU_SPEC_MAX_TASKS - 1);
        return CU_EXIT_USAGE;
    }
    cu_cli_log_init("logs", "logs");
    if (cu_cli_connect("logs", o.exchange, o.key, &id, &api) != 0)
        return CU_EXIT_FAIL;

    if (task >= 0) {
        if (cu_api_logs(&api, job, (uint32_t)task, &logs, &e) != 0) {
            cu_cli_errorf("logs", "%s", e.msg);
            goto out_close;
        }
        print_logs(logs);
        rc = CU_EXIT_OK;
        goto out_close;
    }
    if (cu_api_job(&api, job, &j, &e) != 0) {
        cu_cli_errorf("logs", "%s", e.msg);
        goto out_close;
    }
    json_array_foreach(json_object_get(j, "tasks"), i, t) {
        json_int_t idx = json_integer_value(json_object_get(t, "index"));
        if (!task_reported(t) || idx < 0 || idx > UINT32_MAX)
            continue;
        json_decref(logs);
        logs = NULL;
        int lrc = cu_api_logs(&api, job, (uint32_t)idx, &logs, &e);
        if (lrc == -CU_ENOTFOUND)
            continue;
        if (lrc) {
            cu_cli_errorf("logs", "task %lld: %s", (long long)idx, e.msg);
            goto out_close;
        }
        if (shown++)
            putchar('\n');
        print_logs(logs);
    }
    if (!shown)
        fprintf(stderr, "no task of %s has reported yet\n", job);
    rc = CU_EXIT_OK;
out_close:
    json_decref(logs);
    json_decref(j);
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return rc;
}
