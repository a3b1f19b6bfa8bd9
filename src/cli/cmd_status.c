/* cmd_status.c - `cumulus status`: list own jobs, or one job in detail. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "crypto/ident.h"

#include "base/banned.h"

#define SHORT_ID 12

static const char usage_text[] =
    "usage: cumulus status [JOB] [--json] [--exchange URL] [--key FILE]\n"
    "\n"
    "Without JOB: a table of your jobs (newest first). With JOB: its summary, a\n"
    "table of its tasks and one of its replicas (whether each agreed with the\n"
    "accepted result and what was slashed from its provider), then the replicas\n"
    "whose results disagreed, with the differing files.\n"
    "\n"
    "  --json          print the exchange's JSON answer instead (indented)\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE      identity (else CUMULUS_KEY, else\n"
    "                  $CUMULUS_HOME/identity.key)\n";

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : dflt;
}

static bool get_int(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static int64_t int_or(const json_t *obj, const char *key, int64_t dflt)
{
    int64_t v;
    return get_int(obj, key, &v) ? v : dflt;
}

/* "1.2s" for a millisecond field, "-" when absent. */
static const char *fmt_ms(const json_t *obj, const char *key, char *out, size_t n)
{
    int64_t v;
    if (!get_int(obj, key, &v) || v < 0)
        return "-";
    cu_fmt_duration((uint64_t)v, out, n);
    return out;
}

static const char *fmt_int(const json_t *obj, const char *key, char *out, size_t n)
{
    int64_t v;
    if (!get_int(obj, key, &v))
        return "-";
    snprintf(out, n, "%lld", (long long)v);
    return out;
}

/* "1.234" for a cu_milli field (integer arithmetic), "-" when absent. */
static const char *fmt_cu(const json_t *obj, const char *key, char *out, size_t n)
{
    int64_t v;
    if (!get_int(obj, key, &v) || v < 0)
        return "-";
    cu_api_fmt_cu(v, out, n);
    return out;
}

static void fmt_age(const json_t *job, char *out, size_t n)
{
    int64_t created = int_or(job, "created_ms", 0), now = cu_now_ms();
    if (created <= 0) {
        snprintf(out, n, "-");
        return;
    }
    cu_fmt_duration(now > created ? (uint64_t)(now - created) : 0, out, n);
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

static void list_jobs(const json_t *answer)
{
    const json_t *jobs = json_object_get(answer, "jobs"), *j;
    size_t i;

    if (!json_array_size(jobs)) {
        fprintf(stderr, "no jobs yet (submit one with 'cumulus submit JOB.yaml')\n");
        return;
    }
    printf("%-28s %-20s %-10s %11s  %s\n", "ID", "NAME", "STATE", "DONE/TOTAL", "AGE");
    json_array_foreach(jobs, i, j) {
        const json_t *c = json_object_get(j, "counts");
        char frac[48], age[32];
        snprintf(frac, sizeof frac, "%lld/%lld", (long long)int_or(c, "done", 0),
                 (long long)int_or(c, "total", 0));
        fmt_age(j, age, sizeof age);
        printf("%-28s %-20.20s %-10s %11s  %s\n", str_or(j, "id", "?"), str_or(j, "name", "-"),
               str_or(j, "state", "?"), frac, age);
    }
}

/* The replica whose id is `id` in a task's replica list, or NULL. */
static const json_t *find_replica(const json_t *task, int64_t id)
{
    const json_t *reps = json_object_get(task, "replicas"), *r;
    size_t i;

    json_array_foreach(reps, i, r) {
        if (int_or(r, "id", -1) == id)
            return r;
    }
    return NULL;
}

/* "yes"/"no" for a replica's "agreed", "-" while undecided (null or absent). */
static const char *agreed(const json_t *r)
{
    const json_t *v = json_object_get(r, "agreed");
    return json_is_true(v) ? "yes" : json_is_false(v) ? "no" : "-";
}

/* A replica's "slashed" amount, "-" when nothing was taken. */
static const char *slashed(const json_t *r, char *out, size_t n)
{
    int64_t v;
    if (!get_int(r, "slashed", &v) || v <= 0)
        return "-";
    snprintf(out, n, "%lld", (long long)v);
    return out;
}

/* What trust did to the job (docs/api.md "Trust"): the tasks whose results
 * disagreed, with the files each losing replica got wrong, and the
 * providers whose stake was slashed. Nothing when all agreed. */
static void print_trust(const json_t *tasks)
{
    const json_t *t, *d, *r, *f;
    size_t i, di, ri, fi;
    bool header = false;

    json_array_foreach(tasks, i, t) {
        json_array_foreach(json_object_get(t, "disagreement"), di, d) {
            int64_t rid = int_or(d, "replica", -1);
            const json_t *rep = find_replica(t, rid);
            if (!header)
                printf("\ndisagreements (files that differ from the accepted result):\n");
            header = true;
            printf("  task %lld, replica %lld (provider %.*s):", (long long)int_or(t, "index", -1),
                   (long long)rid, SHORT_ID, rep ? str_or(rep, "provider", "?") : "?");
            if (!json_array_size(json_object_get(d, "files")))
                printf(" (no file names given)");
            json_array_foreach(json_object_get(d, "files"), fi, f) {
                printf("%s %s", fi ? "," : "", json_string_value(f) ? json_string_value(f) : "?");
            }
            printf("\n");
        }
    }
    header = false;
    json_array_foreach(tasks, i, t) {
        json_array_foreach(json_object_get(t, "replicas"), ri, r) {
            int64_t amount;
            if (!get_int(r, "slashed", &amount) || amount <= 0)
                continue;
            if (!header)
                printf("\nslashed (stake forfeited for results against the quorum):\n");
            header = true;
            printf("  provider %s: %lld (task %lld, replica %lld)\n", str_or(r, "provider", "?"),
                   (long long)amount, (long long)int_or(t, "index", -1),
                   (long long)int_or(r, "id", -1));
        }
    }
}

static void print_job(const json_t *job)
{
    const json_t *c = json_object_get(job, "counts"), *tasks = json_object_get(job, "tasks");
    const json_t *t, *r;
    const char *reason = str_or(job, "reason", NULL);
    char age[32], took[32];
    size_t i, ri, nrep = 0;

    fmt_age(job, age, sizeof age);
    printf("job %s '%s': %s\n", str_or(job, "id", "?"), str_or(job, "name", "-"),
           str_or(job, "state", "?"));
    printf("  tasks: %lld total, %lld done, %lld running, %lld queued, %lld failed, "
           "%lld cancelled\n",
           (long long)int_or(c, "total", 0), (long long)int_or(c, "done", 0),
           (long long)int_or(c, "running", 0), (long long)int_or(c, "queued", 0),
           (long long)int_or(c, "failed", 0), (long long)int_or(c, "cancelled", 0));
    printf("  submitted %s ago", age);
    if (int_or(job, "finished_ms", 0) > 0 && int_or(job, "created_ms", 0) > 0) {
        cu_fmt_duration((uint64_t)(int_or(job, "finished_ms", 0) - int_or(job, "created_ms", 0)),
                        took, sizeof took);
        printf(", finished after %s", took);
    }
    printf("\n");
    if (reason)
        printf("  reason: %s\n", reason);
    if (json_is_integer(json_object_get(job, "cu_milli"))) {
        char cu[32];
        printf("  CU used: %s\n", fmt_cu(job, "cu_milli", cu, sizeof cu));
    }
    if (cu_cli_waiting(job, NULL))
        printf("  waiting: %s\n", cu_cli_waiting(job, NULL));
    cu_cli_print_bill(stdout, job);

    printf("\n%-6s %-10s %-8s %-12s %5s %8s %8s  %s\n", "TASK", "STATE", "ATTEMPTS", "PROVIDER",
           "EXIT", "CPU", "WALL", "REASON");
    json_array_foreach(tasks, i, t) {
        const json_t *res = json_object_get(t, "result"), *src = res, *rep = NULL;
        const json_t *reps = json_object_get(t, "replicas");
        char b1[32], b2[32], b3[32];
        const char *prov = "-";

        nrep += json_array_size(reps);
        if (json_is_object(res))
            rep = find_replica(t, int_or(res, "replica", -1));
        if (!rep && json_array_size(reps))
            rep = json_array_get(reps, json_array_size(reps) - 1);
        if (!json_is_object(src))
            src = rep;
        if (rep && json_string_value(json_object_get(rep, "provider")))
            prov = json_string_value(json_object_get(rep, "provider"));
        printf("%-6lld %-10s %-8lld %-12.*s %5s %8s %8s  %s\n", (long long)int_or(t, "index", -1),
               str_or(t, "state", "?"), (long long)int_or(t, "attempts", 0), SHORT_ID, prov,
               fmt_int(src, "exit_code", b1, sizeof b1), fmt_ms(src, "cpu_ms", b2, sizeof b2),
               fmt_ms(src, "wall_ms", b3, sizeof b3), str_or(t, "reason", "-"));
    }
    if (!nrep)
        return;
    printf("\n%-6s %-8s %-12s %-9s %-12s %5s %8s %8s %10s %-6s %8s  %s\n", "TASK", "REPLICA",
           "PROVIDER", "STATE", "STATUS", "EXIT", "CPU", "WALL", "CU", "AGREED", "SLASHED",
           "REASON");
    json_array_foreach(tasks, i, t) {
        json_array_foreach(json_object_get(t, "replicas"), ri, r) {
            char b1[32], b2[32], b3[32], b4[32], b5[32];
            printf("%-6lld %-8lld %-12.*s %-9s %-12s %5s %8s %8s %10s %-6s %8s  %s\n",
                   (long long)int_or(t, "index", -1), (long long)int_or(r, "id", -1), SHORT_ID,
                   str_or(r, "provider", "-"), str_or(r, "state", "?"), str_or(r, "status", "-"),
                   fmt_int(r, "exit_code", b1, sizeof b1), fmt_ms(r, "cpu_ms", b2, sizeof b2),
                   fmt_ms(r, "wall_ms", b3, sizeof b3), fmt_cu(r, "cu_milli", b4, sizeof b4),
                   agreed(r), slashed(r, b5, sizeof b5), str_or(r, "reason", "-"));
        }
    }
    print_trust(tasks);
}

int cmd_status(int argc, char **argv)
{
    const char *job = NULL;
    struct cu_cli_req_opts o = {.cmd = "status", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_KEY | CU_CLI_OPT_JSON};
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    json_t *j = NULL;
    int r, rc;

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
            cu_cli_errorf("status", "one job at a time ('%s' and '%s')", job, a);
            return CU_EXIT_USAGE;
        } else {
            job = a;
        }
    }
    if (job && cu_cli_check_job(o.cmd, job) != 0)
        return CU_EXIT_USAGE;
    cu_cli_log_init("status", "status");
    if (cu_cli_connect("status", o.exchange, o.key, &id, &api) != 0)
        return CU_EXIT_FAIL;
    rc = job ? cu_api_job(&api, job, &j, &e) : cu_api_jobs(&api, &j, &e);
    if (rc) {
        cu_cli_errorf("status", "%s", e.msg);
        rc = CU_EXIT_FAIL;
        goto out_close;
    }
    if (o.json)
        print_json(j);
    else if (job)
        print_job(j);
    else
        list_jobs(j);
    rc = CU_EXIT_OK;
out_close:
    json_decref(j);
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return rc;
}
