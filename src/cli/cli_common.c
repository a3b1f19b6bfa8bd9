#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/commands.h"
#include "client/api.h"
#include "client/config.h"
#include "crypto/ident.h"
#include "base/banned.h"

int cu_cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

void cu_cli_errorf(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cumulus %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *cu_cli_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cu_cli_errorf(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

int cu_cli_req_opt(struct cu_cli_req_opts *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];

    if ((o->accept & CU_CLI_OPT_JSON) && strcmp(a, "--json") == 0) {
        o->json = 1;
        return 1;
    }
    if ((o->accept & CU_CLI_OPT_EXCHANGE) && strcmp(a, "--exchange") == 0)
        return (o->exchange = cu_cli_value(o->cmd, argc, argv, i)) ? 1 : -1;
    if ((o->accept & CU_CLI_OPT_KEY) && strcmp(a, "--key") == 0)
        return (o->key = cu_cli_value(o->cmd, argc, argv, i)) ? 1 : -1;
    return 0;
}

int cu_cli_unknown_option(const char *cmd, const char *arg)
{
    if (arg[0] != '-' || !arg[1])
        return 0;
    cu_cli_errorf(cmd, "unknown option '%s' (see 'cumulus %s --help')", arg, cmd);
    return 1;
}

int cu_cli_check_job(const char *cmd, const char *job)
{
    if (cu_api_job_id_valid(job))
        return 0;
    cu_cli_errorf(cmd, "'%s' is not a job id (like j-0123456789abcdef01234567)", job);
    return -1;
}

void cu_cli_log_init(const char *cmd, const char *role)
{
    const char *env = getenv("CUMULUS_LOG");
    enum cu_log_level lvl;

    cu_log_set_role(role);
    if (!env || !*env)
        return;
    if (cu_log_parse_level(env, &lvl) == 0)
        cu_log_set_level(lvl);
    else
        cu_cli_errorf(cmd, "CUMULUS_LOG='%s' is not a level (debug, info, warn, error, off); "
                           "ignored", env);
}

int cu_cli_log_level(const char *cmd, const char *level)
{
    enum cu_log_level lvl;

    if (cu_log_parse_level(level, &lvl) != 0) {
        cu_cli_errorf(cmd, "--log: '%s' is not a level (debug, info, warn, error, off)", level);
        return -1;
    }
    cu_log_set_level(lvl);
    return 0;
}

int cu_cli_connect(const char *cmd, const char *exchange, const char *key,
                   struct cu_identity *id, struct cu_api *api)
{
    char url[CU_API_URL_MAX];
    struct cu_err e = {0};

    memset(api, 0, sizeof *api);
    if (cu_config_exchange_url(exchange, url, sizeof url, &e) != 0 ||
        cu_config_load_identity(key, id, NULL, &e) != 0) {
        cu_cli_errorf(cmd, "%s", e.msg);
        cu_identity_wipe(id);
        return CU_EXIT_FAIL;
    }
    if (cu_api_open(api, url, id, &e) != 0) {
        cu_cli_errorf(cmd, "%s", e.msg);
        cu_api_close(api);
        cu_identity_wipe(id);
        return CU_EXIT_FAIL;
    }
    return 0;
}
