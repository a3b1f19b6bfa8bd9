/* cmd_wait.c - `cumulus wait`: follow a job until it ends (the job
 * long-poll, docs/api.md; polling against an older exchange), with a
 * progress bar on stderr. */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "crypto/hash.h"
#include "crypto/ident.h"

#include "base/banned.h"

#define WAIT_POLL_MIN_MS 300
#define WAIT_POLL_JITTER_MS 200     /* polls every 300-500 ms (an exchange without long-poll) */
#define WAIT_LONGPOLL_MS 1000       /* each long-poll: the bar's clock moves once a second */
#define WAIT_GAP_MS 100             /* at most 10 job reads a second on a busy job */
#define WAIT_OUTAGE_MS 60000        /* how long an unreachable exchange is borne */
#define WAIT_LINE_EVERY_MS 1000     /* without a tty: at most one line a second */
#define WAIT_BAR_WIDTH 30
#define WAIT_WHY_AFTER_MS 2000      /* say why nothing runs once it lasts this long */
#define WAIT_MAX_FAILED_SHOWN 20

static const char usage_text[] =
    "usage: cumulus wait JOB [--timeout DURATION] [--json] [--exchange URL] [--key FILE]\n"
    "\n"
    "Shows a progress bar on stderr until the job ends. Exits 0 only when every\n"
    "task is done; a failed job lists its failed tasks with their reasons and\n"
    "exits 1, as does a cancelled job. Rides out exchange outages of up to 60 s.\n"
    "\n"
    "  --timeout DURATION  give up (exit 1) after this long, e.g. 10m\n"
    "  --json              print the job's final JSON on stdout\n"
    "  --exchange URL      the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE          identity (else CUMULUS_KEY, else\n"
    "                      $CUMULUS_HOME/identity.key)\n";

struct counts {
    int64_t total, queued, running, done, failed, cancelled;
};

static int64_t get_int(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void read_counts(const json_t *job, struct counts *c)
{
    const json_t *o = json_object_get(job, "counts");

    c->total = get_int(o, "total");
    c->queued = get_int(o, "queued");
    c->running = get_int(o, "running");
    c->done = get_int(o, "done");
    c->failed = get_int(o, "failed");
    c->cancelled = get_int(o, "cancelled");
}

static const char *job_state(const json_t *job)
{
    const char *s = json_string_value(json_object_get(job, "state"));
    return s ? s : "unknown";
}

static bool state_final(const char *s)
{
    return strcmp(s, "done") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0;
}

/* Milliseconds the job has run: from created_ms to finished_ms (or now);
 * local elapsed time when the exchange gives no usable times. */
static uint64_t job_elapsed(const json_t *job, int64_t local_start)
{
    int64_t created = get_int(job, "created_ms"), fin = get_int(job, "finished_ms");
    int64_t end = fin > 0 ? fin : cu_now_ms();

    if (created > 0 && end >= created)
        return (uint64_t)(end - created);
    return (uint64_t)(cu_mono_ms() - local_start);
}

static void format_bar(const struct counts *c, uint64_t elapsed, char *out, size_t n)
{
    char bar[WAIT_BAR_WIDTH + 1], took[32], cancelled[48] = "";
    int64_t fill = c->total > 0 ? c->done * WAIT_BAR_WIDTH / c->total : 0;

    for (int i = 0; i < WAIT_BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WAIT_BAR_WIDTH] = '\0';
    cu_fmt_duration(elapsed, took, sizeof took);
    /* The common line stays short: cancelled tasks appear only when some are. */
    if (c->cancelled)
        snprintf(cancelled, sizeof cancelled, "  cancelled %lld", (long long)c->cancelled);
    snprintf(out, n, "[%s] %lld/%lld tasks  running %lld  failed %lld%s  %s", bar,
             (long long)c->done, (long long)c->total, (long long)c->running,
             (long long)c->failed, cancelled, took);
}

/* Progress output state: redrawn in place on a tty, else a line per change. */
struct progress {
    bool tty;
    bool drawn;            /* tty: a bar is on the current line */
    int64_t last_line_ms;  /* no tty: when the last line was printed */
    char last[256];        /* no tty: the counts last printed */
};

static void progress_clear(struct progress *p)
{
    if (p->tty && p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = false;
    }
}

static void progress_show(struct progress *p, const struct counts *c, uint64_t elapsed,
                          bool force)
{
    char line[256], key[128];

    format_bar(c, elapsed, line, sizeof line);
    if (p->tty) {
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        p->drawn = true;
        return;
    }
    snprintf(key, sizeof key, "%lld %lld %lld %lld %lld", (long long)c->total, (long long)c->done,
             (long long)c->running, (long long)c->failed, (long long)c->cancelled);
    if (strcmp(key, p->last) == 0)
        return;
    if (!force && cu_mono_ms() - p->last_line_ms < WAIT_LINE_EVERY_MS)
        return;
    fprintf(stderr, "%s\n", line);
    p->last_line_ms = cu_mono_ms();
    snprintf(p->last, sizeof p->last, "%s", key);
}

static void print_failed_tasks(const json_t *job)
{
    const json_t *tasks = json_object_get(job, "tasks"), *t;
    size_t i, shown = 0, more = 0;

    json_array_foreach(tasks, i, t) {
        const char *st = json_string_value(json_object_get(t, "state"));
        const char *reason = json_string_value(json_object_get(t, "reason"));
        const json_t *res = json_object_get(t, "result");
        if (!st || strcmp(st, "failed") != 0)
            continue;
        if (shown >= WAIT_MAX_FAILED_SHOWN) {
            more++;
            continue;
        }
        shown++;
        if (reason)
            fprintf(stderr, "  task %lld: %s\n", (long long)get_int(t, "index"), reason);
        else if (json_is_integer(json_object_get(res, "exit_code")))
            fprintf(stderr, "  task %lld: exit code %lld\n", (long long)get_int(t, "index"),
                    (long long)get_int(res, "exit_code"));
        else
            fprintf(stderr, "  task %lld: failed\n", (long long)get_int(t, "index"));
    }
    if (more)
        fprintf(stderr, "  ... and %zu more (see 'cumulus status %s')\n", more,
                json_string_value(json_object_get(job, "id")));
    if (shown || more)
        fprintf(stderr, "  (see their output with 'cumulus logs JOB TASK')\n");
}

static void print_json(const json_t *job)
{
    char *s = json_dumps(job, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

/* "; CU used: 1.234" when the job's JSON carries cu_milli (the money
 * issue), else "" (older exchanges). */
static const char *cu_used(const json_t *j, char *out, size_t n)
{
    const json_t *v = json_object_get(j, "cu_milli");
    char num[32];

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return "";
    cu_api_fmt_cu((int64_t)json_integer_value(v), num, sizeof num);
    cu_snprintf(out, n, "; CU used: %s", num);
    return out;
}

int cu_cli_wait_job(const char *cmd, struct cu_api *api, const char *job, uint64_t timeout_ms,
                    int json)
{
    struct progress p = {.tty = isatty(STDERR_FILENO) == 1, .last_line_ms = -100000};
    int64_t start = cu_mono_ms(), outage_since = 0;
    json_t *j = NULL;
    struct counts c = {0};
    struct cu_err e = {0};
    char took[32], cu[48], last_why[32] = "", version[CU_API_JOB_VERSION_MAX + 1] = "";
    const char *state;
    int rc;

    for (;;) {
        int64_t now = cu_mono_ms(), asked;
        uint32_t wait_ms = WAIT_LONGPOLL_MS;
        unsigned char rnd;

        if (timeout_ms && (uint64_t)(now - start) >= timeout_ms) {
            progress_clear(&p);
            cu_fmt_duration(timeout_ms, took, sizeof took);
            if (j)
                cu_cli_errorf(cmd, "timed out after %s; job %s is still %s (%lld/%lld tasks "
                                   "done)", took, job, job_state(j), (long long)c.done,
                              (long long)c.total);
            else
                cu_cli_errorf(cmd, "timed out after %s before the exchange answered", took);
            if (json && j)
                print_json(j);
            json_decref(j);
            return CU_EXIT_FAIL;
        }
        json_t *nj = NULL;
        if (timeout_ms && timeout_ms - (uint64_t)(now - start) < wait_ms)
            wait_ms = (uint32_t)(timeout_ms - (uint64_t)(now - start));
        /* The job long-poll: answered when the job changes (or after
         * wait_ms), so the end is seen at once instead of at the next poll. */
        asked = now;
        rc = cu_api_job_wait(api, job, version, wait_ms, &nj, &e);
        if (rc == -CU_ENET) {
            if (!outage_since) {
                outage_since = now;
                progress_clear(&p);
                cu_cli_errorf(cmd, "exchange unreachable, retrying (%s)", e.msg);
            } else if (now - outage_since >= WAIT_OUTAGE_MS) {
                progress_clear(&p);
                cu_cli_errorf(cmd, "giving up after %d s: %s", WAIT_OUTAGE_MS / 1000, e.msg);
                json_decref(j);
                return CU_EXIT_FAIL;
            }
            cu_sleep_ms(500);
            continue;
        }
        if (rc) {
            progress_clear(&p);
            cu_cli_errorf(cmd, "%s", e.msg);
            json_decref(j);
            return CU_EXIT_FAIL;
        }
        if (outage_since) {
            progress_clear(&p);
            cu_cli_errorf(cmd, "exchange reachable again");
            outage_since = 0;
        }
        json_decref(j);
        j = nj;
        {
            const char *v = json_string_value(json_object_get(j, "version"));
            if (!v || cu_snprintf(version, sizeof version, "%s", v) != 0 ||
                strspn(version, "0123456789abcdef") != strlen(version))
                version[0] = '\0'; /* an exchange without the long-poll: poll */
        }
        read_counts(j, &c);
        state = job_state(j);
        {
            const char *code = NULL, *why = cu_cli_waiting(j, &code);
            /* Say why nothing runs, once per reason (busy providers are
             * the normal case and need no words). */
            if (why && code && strcmp(code, "providers_busy") != 0 &&
                strcmp(code, last_why) != 0 && c.running == 0 &&
                now - start >= WAIT_WHY_AFTER_MS) {
                progress_clear(&p);
                fprintf(stderr, "waiting: %s\n", why);
                cu_snprintf(last_why, sizeof last_why, "%s", code);
            }
        }
        progress_show(&p, &c, job_elapsed(j, start), state_final(state));
        if (state_final(state))
            break;
        if (version[0]) {
            /* A busy job changes all the time: each answer is the whole
             * job, so ask at most every WAIT_GAP_MS (a change meanwhile
             * answers the next ask at once). */
            int64_t gap = asked + WAIT_GAP_MS - cu_mono_ms();
            if (gap > 0)
                cu_sleep_ms(gap);
            continue;
        }
        cu_random_bytes(&rnd, 1);
        cu_sleep_ms(WAIT_POLL_MIN_MS + rnd % WAIT_POLL_JITTER_MS);
    }

    if (p.tty) {
        fputc('\n', stderr);
        p.drawn = false;
    }
    cu_fmt_duration(job_elapsed(j, start), took, sizeof took);
    if (strcmp(state, "done") == 0) {
        fprintf(stderr, "job %s done: %lld/%lld tasks in %s%s\n", job, (long long)c.done,
                (long long)c.total, took, cu_used(j, cu, sizeof cu));
        rc = CU_EXIT_OK;
    } else if (strcmp(state, "failed") == 0) {
        const char *reason = json_string_value(json_object_get(j, "reason"));
        fprintf(stderr, "job %s failed: %lld/%lld tasks done, %lld failed in %s%s%s%s\n", job,
                (long long)c.done, (long long)c.total, (long long)c.failed, took,
                reason ? ": " : "", reason ? reason : "", cu_used(j, cu, sizeof cu));
        print_failed_tasks(j);
        rc = CU_EXIT_FAIL;
    } else {
        const char *reason = json_string_value(json_object_get(j, "reason"));
        fprintf(stderr, "job %s cancelled: %lld/%lld tasks done in %s%s%s%s\n", job,
                (long long)c.done, (long long)c.total, took, reason ? ": " : "",
                reason ? reason : "", cu_used(j, cu, sizeof cu));
        rc = CU_EXIT_FAIL;
    }
    cu_cli_print_bill(stderr, j);
    if (json)
        print_json(j);
    json_decref(j);
    return rc;
}

int cmd_wait(int argc, char **argv)
{
    const char *job = NULL, *v;
    uint64_t timeout_ms = 0;
    struct cu_cli_req_opts o = {.cmd = "wait", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_KEY | CU_CLI_OPT_JSON};
    struct cu_identity id;
    struct cu_api api;
    int r, rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if (strcmp(a, "--timeout") == 0) {
            if (!(v = cu_cli_value("wait", argc, argv, &i)))
                return CU_EXIT_USAGE;
            if (cu_parse_duration_ms(v, &timeout_ms) != 0 || timeout_ms == 0) {
                cu_cli_errorf("wait", "--timeout: '%s' is not a duration (e.g. 90s, 10m, 1h)", v);
                return CU_EXIT_USAGE;
            }
        } else if ((r = cu_cli_req_opt(&o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CU_EXIT_USAGE;
        } else if (cu_cli_unknown_option(o.cmd, a)) {
            return CU_EXIT_USAGE;
        } else if (job) {
            cu_cli_errorf("wait", "one job at a time ('%s' and '%s')", job, a);
            return CU_EXIT_USAGE;
        } else {
            job = a;
        }
    }
    if (!job) {
        cu_cli_errorf("wait", "which job? usage: cumulus wait JOB");
        return CU_EXIT_USAGE;
    }
    if (cu_cli_check_job(o.cmd, job) != 0)
        return CU_EXIT_USAGE;
    cu_cli_log_init("wait", "wait");
    if (cu_cli_connect("wait", o.exchange, o.key, &id, &api) != 0)
        return CU_EXIT_FAIL;
    rc = cu_cli_wait_job("wait", &api, job, timeout_ms, o.json);
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return rc;
}
