/* cmd_provider.c - `cumulus provider status`: a provider's own view of its
 * machine: the tasks running now (with their cgroup's CPU and memory), the
 * last ones finished, and what it has earned on the exchange. Reads the
 * provider's data directory (state.db read-only, provider.json, cgroup);
 * works whether the provider runs or not. */
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "crypto/ident.h"
#include "fabric/cgroup.h"
#include "provider/agent.h"
#include "provider/pstate.h"

#include "base/banned.h"

#define RECENT 10

static const char usage_text[] =
    "usage: cumulus provider status [--data DIR] [--exchange URL] [--json]\n"
    "\n"
    "Shows a provider's tasks and earnings, from its data directory (the\n"
    "provider may be running or not): running tasks with their elapsed time\n"
    "and, where tasks run in cgroups, CPU and memory use; the last finished\n"
    "tasks with their outcome; and the provider's wallet on the exchange\n"
    "(GET /v1/wallet signed with the provider's key).\n"
    "\n"
    "  --data DIR      the provider's data directory (default ./provider-data)\n"
    "  --exchange URL  where to ask for the wallet (default: the exchange the\n"
    "                  provider last registered with)\n"
    "  --json          one JSON object: provider, running, recent, wallet\n"
    "                  (null with wallet_error when the exchange cannot be asked)\n";

/* Fills info from DATA/provider.json (NULL when absent). */
static json_t *read_info(const char *data)
{
    char path[CU_PATH_MAX];
    struct cu_buf b;
    json_t *j = NULL;

    if (cu_path_join(path, sizeof path, data, "provider.json") != 0)
        return NULL;
    cu_buf_init(&b, 64u << 10);
    if (cu_read_file(path, &b) == 0)
        j = json_loads(cu_buf_str(&b), 0, NULL);
    cu_buf_release(&b);
    return json_is_object(j) ? j : (json_decref(j), NULL);
}

/* Asks the exchange for the provider's wallet; NULL with why set. */
static json_t *fetch_wallet(const char *data, const char *url, char *why, size_t n)
{
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    const char *pass = getenv("CUMULUS_PASSPHRASE");
    json_t *w = NULL;

    memset(&api, 0, sizeof api);
    if (!url) {
        (void)cu_snprintf(why, n, "no exchange known (give --exchange)");
        return NULL;
    }
    if (cu_path_join(path, sizeof path, data, "identity.key") != 0 ||
        cu_identity_load(&id, path, pass && *pass ? pass : NULL, &e) != 0) {
        (void)cu_snprintf(why, n, "cannot load the provider's key: %s",
                          e.msg[0] ? e.msg : path);
        return NULL;
    }
    if (cu_api_open(&api, url, &id, &e) != 0 || cu_api_wallet(&api, &w, &e) != 0) {
        (void)cu_snprintf(why, n, "the exchange %s cannot be reached: %s", url, e.msg);
        w = NULL;
    }
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return w;
}

static void fmt_dur(uint64_t ms, char *out, size_t n)
{
    if (ms < 60000)
        (void)cu_snprintf(out, n, "%llu.%llus", (unsigned long long)(ms / 1000),
                          (unsigned long long)(ms % 1000 / 100));
    else
        (void)cu_snprintf(out, n, "%llum%02llus", (unsigned long long)(ms / 60000),
                          (unsigned long long)(ms % 60000 / 1000));
}

int cmd_provider(int argc, char **argv)
{
    const char *data = "./provider-data", *exchange = NULL, *v;
    struct cu_pstate_done *run = NULL, *done = NULL;
    size_t nrun = 0, ndone = 0;
    struct cu_cgroup cg;
    struct cu_err e = {0};
    char path[CU_PATH_MAX], tasks_dir[CU_PATH_MAX], why[700] = "", a[32], b[32], c[32];
    bool json = false, alive = false, have_cg;
    json_t *info, *wallet, *out, *jrun, *jdone;
    int64_t now = cu_now_ms(), pid;

    if (argc < 2 || cu_cli_is_help(argv[1])) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? CU_EXIT_USAGE : CU_EXIT_OK;
    }
    if (strcmp(argv[1], "status") != 0) {
        cu_cli_errorf("provider", "unknown subcommand '%s' (see 'cumulus provider --help')",
                      argv[1]);
        return CU_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (cu_cli_is_help(argv[i])) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--data") == 0 || strcmp(argv[i], "--exchange") == 0) {
            if (!(v = cu_cli_value("provider", argc, argv, &i)))
                return CU_EXIT_USAGE;
            if (argv[i - 1][2] == 'd')
                data = v;
            else
                exchange = v;
        } else {
            cu_cli_errorf("provider", "unknown argument '%s' (see 'cumulus provider --help')",
                          argv[i]);
            return CU_EXIT_USAGE;
        }
    }
    if (cu_path_join(path, sizeof path, data, "state.db") != 0 ||
        cu_pstate_view(path, RECENT, &run, &nrun, &done, &ndone, &e) != 0) {
        cu_cli_errorf("provider", "--data %s: no provider state there (%s)", data,
                      e.msg[0] ? e.msg : "path too long");
        return CU_EXIT_FAIL;
    }
    info = read_info(data);
    pid = info ? json_integer_value(json_object_get(info, "pid")) : 0;
    alive = pid > 0 && kill((pid_t)pid, 0) == 0;
    if (!exchange && info)
        exchange = json_string_value(json_object_get(info, "exchange"));
    if (cu_path_join(tasks_dir, sizeof tasks_dir, data, "tasks") != 0)
        tasks_dir[0] = '\0';
    have_cg = alive && cu_path_join(path, sizeof path, data, "cgroup") == 0 &&
              cu_cgroup_load(&cg, path) == 0;
    wallet = fetch_wallet(data, exchange, why, sizeof why);

    out = json_object();
    jrun = json_array();
    jdone = json_array();
    for (size_t i = 0; i < nrun; i++) {
        struct cu_pstate_done *r = &run[i];
        struct cu_cgroup_stats st = {0};
        struct cu_cgroup tg;
        char name[64];
        bool usage = false;
        if (have_cg) {
            /* A warm sandbox's group runs the task under its own name (the
             * slot's file says which); a sandbox of its own is task-ID. */
            if (tasks_dir[0] == '\0' ||
                cu_slot_task_cgroup(tasks_dir, r->id, name, sizeof name) != 0)
                (void)cu_snprintf(name, sizeof name, "task-%lld", (long long)r->id);
            usage = cu_cgroup_child(&cg, name, &tg) == 0;
            if (usage)
                cu_cgroup_read_stats(&tg, &st);
        }
        json_array_append_new(
            jrun, json_pack("{s:I,s:s,s:I,s:I,s:o,s:o}", "replica", (json_int_t)r->id, "job",
                            r->job, "task", (json_int_t)r->task, "elapsed_ms",
                            (json_int_t)(now - r->finished_ms), "cpu_ms",
                            usage ? json_integer((json_int_t)(st.cpu_usec / 1000)) : json_null(),
                            "memory", usage ? json_integer((json_int_t)st.memory_current)
                                            : json_null()));
    }
    for (size_t i = 0; i < ndone; i++) {
        struct cu_pstate_done *r = &done[i];
        json_array_append_new(
            jdone, json_pack("{s:I,s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:I}", "replica",
                             (json_int_t)r->id, "job", r->job, "task", (json_int_t)r->task,
                             "status", r->status, "reason", r->reason, "cpu_ms",
                             (json_int_t)r->cpu_ms, "wall_ms", (json_int_t)r->wall_ms,
                             "memory_peak", (json_int_t)r->memory_peak, "finished_ms",
                             (json_int_t)r->finished_ms));
    }

    if (json) {
        json_object_set_new(out, "provider", info ? json_incref(info) : json_null());
        json_object_set_new(out, "running_now", json_boolean(alive));
        json_object_set_new(out, "running", json_incref(jrun));
        json_object_set_new(out, "recent", json_incref(jdone));
        json_object_set_new(out, "wallet", wallet ? json_incref(wallet) : json_null());
        if (!wallet)
            json_object_set_new(out, "wallet_error", json_string(why));
        {
            char *s = cu_json_dumps(out);
            if (s)
                printf("%s\n", s);
            free(s);
        }
    } else {
        const char *id = info ? json_string_value(json_object_get(info, "id")) : NULL;
        printf("provider %s: %s", id ? id : "(never registered)",
               alive ? "running" : "not running");
        if (alive)
            printf(" (pid %lld, cgroup %s)", (long long)pid,
                   json_string_value(json_object_get(info, "cgroup")));
        printf("\nexchange %s\n\n", exchange ? exchange : "(unknown)");
        printf("running tasks: %zu\n", nrun);
        if (nrun)
            printf("  %-8s %-28s %5s %9s %9s %10s\n", "REPLICA", "JOB", "TASK", "ELAPSED", "CPU",
                   "MEMORY");
        for (size_t i = 0; i < nrun; i++) {
            json_t *r = json_array_get(jrun, i);
            json_t *cpu = json_object_get(r, "cpu_ms"), *mem = json_object_get(r, "memory");
            fmt_dur((uint64_t)(now - run[i].finished_ms), a, sizeof a);
            if (json_is_integer(cpu))
                fmt_dur((uint64_t)json_integer_value(cpu), b, sizeof b);
            else
                (void)cu_snprintf(b, sizeof b, "-");
            if (json_is_integer(mem))
                cu_fmt_size((uint64_t)json_integer_value(mem), c, sizeof c);
            else
                (void)cu_snprintf(c, sizeof c, "-");
            printf("  %-8lld %-28s %5u %9s %9s %10s\n", (long long)run[i].id, run[i].job,
                   run[i].task, a, b, c);
        }
        printf("\nrecent tasks: %zu\n", ndone);
        if (ndone)
            printf("  %-8s %-28s %5s %-12s %9s %9s %10s  %s\n", "REPLICA", "JOB", "TASK",
                   "STATUS", "WALL", "CPU", "PEAK MEM", "REASON");
        for (size_t i = 0; i < ndone; i++) {
            fmt_dur(done[i].wall_ms, a, sizeof a);
            fmt_dur(done[i].cpu_ms, b, sizeof b);
            if (done[i].memory_peak)
                cu_fmt_size(done[i].memory_peak, c, sizeof c);
            else
                (void)cu_snprintf(c, sizeof c, "-");
            printf("  %-8lld %-28s %5u %-12s %9s %9s %10s  %s\n", (long long)done[i].id,
                   done[i].job, done[i].task, done[i].status, a, b, c,
                   done[i].reason[0] ? done[i].reason : "-");
        }
        if (wallet)
            printf("\nearnings: earned %lld, balance %lld, stake %lld (from %s)\n",
                   (long long)json_integer_value(json_object_get(wallet, "earned")),
                   (long long)json_integer_value(json_object_get(wallet, "balance")),
                   (long long)json_integer_value(json_object_get(wallet, "stake")), exchange);
        else
            printf("\nearnings: unknown: %s\n", why);
    }
    json_decref(out);
    json_decref(jrun);
    json_decref(jdone);
    json_decref(wallet);
    json_decref(info);
    free(run);
    free(done);
    return CU_EXIT_OK;
}
