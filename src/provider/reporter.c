/* reporter.c - delivers finished reports off the slots' path (issue 6).
 *
 * A slot that finished a replica hands the report here and claims its next
 * lease at once. One thread stores what is queued in the pstate, all of it
 * in one transaction (durable: a kill -9 from then on resends it at the
 * next start, provider.c recover(); one before it finds the replica
 * 'running', reported abandoned and run again: nothing is paid twice, the
 * provider loses the pay of those few milliseconds' tasks, as of the tasks
 * a crash interrupts), then sends it: one report as POST /v1/replicas/{id}/report,
 * several as one POST /v1/reports (docs/api.md "Batched reports"), and
 * forgets each row once the exchange answered it, as the synchronous path
 * does. While leases claimed ahead wait (short tasks), a report may wait up
 * to CU_REPORT_LINGER_MS for others to share its request. The queue is
 * bounded so that a report leaves within a round trip or two of that (its
 * lease is no longer heartbeaten). */
#include "provider/agent.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "base/log.h"

#include "base/banned.h"

#define BATCH_MAX 64 /* the exchange's limit per POST /v1/reports */
#define REPORT_TIMEOUT_MS 30000
#define IDLE_FLUSH_MS 50 /* no report for this long: answered rows deleted now */

struct queued {
    int64_t replica;
    char *body;       /* owned */
    int64_t since_ms; /* monotonic: when it was queued */
    bool stored;      /* its 'finished' row is written (reporter thread only) */
};

struct cu_reporter {
    struct cu_agent *a;
    struct cu_http_client *http;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* a report queued, or closing (CLOCK_MONOTONIC) */
    pthread_cond_t room;  /* pending dropped below cap, or closed */
    struct queued *q;     /* ring of cap entries */
    struct cu_pstate_report *store; /* cap entries: the rows store_queued writes */
    size_t cap, head, nq; /* queued: q[head], ... (nq of them) */
    size_t pending;       /* queued + being sent; at most cap */
    bool closing;         /* drain what is queued, then exit; submit refuses */
    bool flush;           /* the slots went idle: write what the state holds back */
    bool lingering;       /* the thread waits out a linger: a submit wakes it only
                           * when that could end the linger early */
    bool joined;          /* the thread was joined (by cu_reporter_stop) */
    bool exited;          /* the thread is returning (signals room) */
};

/* Forgets the row of a report the exchange answered (delivered or dropped
 * for good), with the next write (pstate.h: a crash before it only sends
 * the report again); an unsent one stays for recovery. */
static void settle(struct cu_reporter *r, const struct queued *it, enum cu_delivery d)
{
    if (d != CU_UNSENT)
        cu_pstate_forget_later(&r->a->state, r->a->exchange, it->replica);
}

/* Delivers one report on its own (retrying until answered, or one try
 * while stopping). */
static void send_one(struct cu_reporter *r, const struct queued *it)
{
    bool stopping = cu_agent_stopping();
    enum cu_delivery d =
        cu_report_deliver(r->http, &r->a->cache, it->replica, it->body,
                          stopping ? CU_SHUTDOWN_REPORT_MS : REPORT_TIMEOUT_MS, stopping);

    settle(r, it, d);
}

/* {"reports":[{"replica":R, ...its report...}, ...]} as text (malloc'd),
 * spliced from the stored bodies as they are, instead of parsing each one
 * again and dumping the whole batch. NULL when out of
 * memory or a stored body is not a non-empty object (then each is sent on
 * its own and the exchange judges it). A body never has a "replica" key
 * of its own (cu_report_to_json). */
static char *batch_text(const struct queued *items, size_t n)
{
    static const char head[] = "{\"reports\":[", tail[] = "]}";
    char *text, *p;
    size_t len = sizeof head - 1 + sizeof tail;

    for (size_t i = 0; i < n; i++) {
        const char *b = items[i].body, *rest;
        if (b[0] != '{')
            return NULL;
        for (rest = b + 1; *rest == ' ' || *rest == '\n' || *rest == '\t' || *rest == '\r';)
            rest++;
        if (*rest == '}' || *rest == '\0')
            return NULL;
        len += sizeof ",{\"replica\":," + 20 + strlen(b); /* 20: the digits of any int64 */
    }
    text = malloc(len);
    if (!text)
        return NULL;
    p = text;
    memcpy(p, head, sizeof head - 1);
    p += sizeof head - 1;
    for (size_t i = 0; i < n; i++) {
        size_t blen = strlen(items[i].body), k;
        char lead[48];
        (void)cu_snprintf(lead, sizeof lead, "%s{\"replica\":%lld,", i ? "," : "",
                          (long long)items[i].replica);
        k = strlen(lead);
        memcpy(p, lead, k);
        p += k;
        memcpy(p, items[i].body + 1, blen - 1); /* the body's members and its '}' */
        p += blen - 1;
    }
    memcpy(p, tail, sizeof tail); /* with the NUL */
    return text;
}

/* Reads the answer for one report of a batch (results[i], checked to name
 * it) and settles it. Returns false when it must be sent again on its own:
 * a 409 missing_blobs whose blobs were uploaded now, or an answer that
 * does not name the replica. */
static bool batch_settle(struct cu_reporter *r, const struct queued *it, const json_t *res)
{
    json_int_t id = json_integer_value(json_object_get(res, "replica"));
    const json_t *err = json_object_get(res, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));

    if (!json_is_object(res) || id != (json_int_t)it->replica)
        return false;
    if (!err) {
        const char *state = json_string_value(json_object_get(res, "state"));
        const char *tstate = json_string_value(json_object_get(res, "task_state"));
        cu_info("reported replica %lld: replica %s, task %s", (long long)it->replica,
                state ? state : "?", tstate ? tstate : "?");
        settle(r, it, CU_DELIVERED);
        return true;
    }
    if (code && strcmp(code, "missing_blobs") == 0 &&
        cu_report_upload_missing(r->http, &r->a->cache, it->replica,
                                 json_object_get(err, "missing")) == 0)
        return false;
    if (code && (strcmp(code, "internal") == 0 || strcmp(code, "unavailable") == 0))
        return false; /* the exchange's own trouble: send it again */
    /* Every other refusal is final, as for a single report's 4xx. */
    if (code && (strcmp(code, "lease_lost") == 0 || strcmp(code, "conflict") == 0 ||
                 strcmp(code, "missing_blobs") == 0 || strcmp(code, "job_finished") == 0))
        cu_warn("report of replica %lld dropped: %s (%s)", (long long)it->replica,
                msg ? msg : "?", code);
    else
        cu_error("report of replica %lld refused: %s (%s)", (long long)it->replica,
                 msg ? msg : "?", code ? code : "?");
    settle(r, it, CU_DROPPED);
    return true;
}

/* Delivers n (>= 2) reports in one POST /v1/reports. Transport errors and
 * 5xx are retried with backoff (one try while stopping: the rest stay in
 * the pstate); a refusal of the whole request (an exchange without the
 * route, a 400) sends each on its own, so each gets its own verdict. */
static void send_batch(struct cu_reporter *r, const struct queued *items, size_t n)
{
    struct cu_http_result res;
    char *body = batch_text(items, n);
    json_t *results;
    char desc[700], last[64] = "";
    int64_t backoff = 500;
    bool whole = false; /* fall back to one request per report */
    int rc;

    cu_http_result_init(&res);
    if (!body) {
        whole = true;
        goto out_fallback;
    }
    for (;;) {
        bool stopping = cu_agent_stopping();
        rc = cu_http_request(r->http, "POST", "/v1/reports", body, strlen(body),
                             stopping ? CU_SHUTDOWN_REPORT_MS : REPORT_TIMEOUT_MS, &res);
        if (rc == 0 && res.status == 200)
            break;
        cu_http_result_describe(&res, desc, sizeof desc);
        if (rc == 0 && res.status >= 400 && res.status < 500) {
            cu_warn("batched report of %zu replicas refused: %s; sending them one by one", n,
                    desc);
            whole = true;
            goto out_fallback;
        }
        if (strcmp(last, res.err_code) != 0) {
            cu_warn("batched report of %zu replicas not delivered yet: %s (retrying)", n, desc);
            (void)cu_snprintf(last, sizeof last, "%s", res.err_code);
        }
        if (stopping)
            goto out_release; /* unsent: recover() sends them at the next start */
        cu_agent_nap(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    cu_debug("sent %zu reports in one request", n);
    results = json_object_get(res.json, "results");
    for (size_t i = 0; i < n; i++)
        if (!batch_settle(r, &items[i], json_array_get(results, i)))
            send_one(r, &items[i]);
out_fallback:
    if (whole)
        for (size_t i = 0; i < n; i++)
            send_one(r, &items[i]);
out_release:
    cu_http_result_release(&res);
    free(body);
}

int64_t cu_reporter_linger_ms(size_t nq, int64_t oldest_ms, unsigned ahead_queued, bool closing)
{
    /* Trivial tasks end every few ms: sent as they come, most requests
     * carried one or two reports, and each request costs the exchange a
     * signature check, a transaction, a ledger block and an fsync
     * (docs/performance.md "Sixth session"). The leases themselves are
     * in no danger (they live seconds), and the last reports of a run
     * leave at once: nothing is queued ahead then. */
    if (closing || nq == 0 || nq >= CU_REPORT_LINGER_BATCH || ahead_queued == 0 ||
        oldest_ms >= CU_REPORT_LINGER_MS)
        return 0;
    return CU_REPORT_LINGER_MS - (oldest_ms < 0 ? 0 : oldest_ms);
}

/* Waits on r->work (CLOCK_MONOTONIC) up to ms; false once they passed.
 * r->mu held. */
static bool work_wait(struct cu_reporter *r, int64_t ms)
{
    struct timespec until;

    cu_mono_deadline(&until, ms);
    return pthread_cond_timedwait(&r->work, &r->mu, &until) != ETIMEDOUT;
}

/* Writes the 'finished' rows of every queued report not stored yet, in
 * one transaction: before any of them is sent, so that a report the
 * exchange may have applied is always sent again after a crash (the
 * exchange answers a repeat as already reported). All of the queue, not
 * only the batch about to leave: a stop that cannot wait for the rest
 * leaves them stored for recover(). r->mu held; released while writing
 * (only this thread removes entries or reads `stored`, and submit only
 * appends behind them). */
static void store_queued(struct cu_reporter *r)
{
    size_t n = 0;

    for (size_t i = 0; i < r->nq; i++) {
        struct queued *it = &r->q[(r->head + i) % r->cap];
        if (it->stored)
            continue;
        it->stored = true; /* a failed write is logged; sending goes on */
        r->store[n++] = (struct cu_pstate_report){.replica = it->replica, .body = it->body};
    }
    if (n == 0)
        return;
    pthread_mutex_unlock(&r->mu);
    (void)cu_pstate_finished_batch(&r->a->state, r->a->exchange, r->store, n);
    pthread_mutex_lock(&r->mu);
}

static void *reporter_main(void *arg)
{
    struct cu_reporter *r = arg;
    struct queued items[BATCH_MAX];
    bool unflushed = false; /* rows forgotten since the last idle flush */

    pthread_mutex_lock(&r->mu);
    for (;;) {
        size_t n = 0;

        while (r->nq == 0 && !r->closing) {
            if (r->flush) {
                unflushed = true; /* a finished task's history row, at least */
                r->flush = false;
            }
            if (!unflushed) {
                pthread_cond_wait(&r->work, &r->mu);
                continue;
            }
            /* The rows of answered reports are deleted with the next
             * write (a task's); when no slot runs a lease, or none wrote
             * for a while, now (off any task's path), so an idle
             * provider's state holds only what is unanswered. */
            if (atomic_load(&r->a->leases_running) > 0 && work_wait(r, IDLE_FLUSH_MS))
                continue; /* woken: a report, closing, or the slots went idle */
            if (r->nq > 0 || r->closing)
                break;
            pthread_mutex_unlock(&r->mu);
            (void)cu_pstate_flush(&r->a->state);
            pthread_mutex_lock(&r->mu);
            unflushed = false;
        }
        if (r->nq > 0) {
            int64_t linger = cu_reporter_linger_ms(
                r->nq, cu_mono_ms() - r->q[r->head].since_ms,
                r->a->ahead ? cu_ahead_queued(r->a->ahead) : 0, r->closing);
            if (linger > 0) {
                r->lingering = true;
                (void)work_wait(r, linger); /* the deadline, or a submit that ends it */
                r->lingering = false;
                continue;
            }
        }
        if (r->nq == 0) {
            r->exited = true; /* closing and drained */
            pthread_cond_broadcast(&r->room);
            break;
        }
        store_queued(r);
        /* Only what is stored: a report submitted while store_queued
         * wrote waits for the next round's write. */
        while (r->nq > 0 && n < BATCH_MAX && r->q[r->head].stored) {
            items[n++] = r->q[r->head];
            r->head = (r->head + 1) % r->cap;
            r->nq--;
        }
        pthread_mutex_unlock(&r->mu);
        if (n == 1)
            send_one(r, &items[0]);
        else
            send_batch(r, items, n);
        for (size_t i = 0; i < n; i++)
            free(items[i].body);
        pthread_mutex_lock(&r->mu);
        unflushed = true;
        r->pending -= n;
        pthread_cond_broadcast(&r->room);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int cu_reporter_start(struct cu_agent *a, unsigned cap, struct cu_reporter **out,
                      struct cu_err *e)
{
    struct cu_reporter *r;
    pthread_condattr_t ca;

    *out = NULL;
    if (cap == 0)
        cap = 1;
    r = calloc(1, sizeof *r);
    if (!r)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    r->a = a;
    r->cap = cap;
    r->q = calloc(cap, sizeof *r->q);
    r->store = calloc(cap, sizeof *r->store);
    r->http = cu_http_client_new(a->exchange, &a->id);
    if (!r->q || !r->store || !r->http)
        goto out_free;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->work, &ca);
    pthread_cond_init(&r->room, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&r->th, NULL, reporter_main, r) != 0) {
        pthread_cond_destroy(&r->room);
        pthread_cond_destroy(&r->work);
        pthread_mutex_destroy(&r->mu);
        goto out_free;
    }
    *out = r;
    return 0;
out_free:
    cu_http_client_free(r->http);
    free(r->store);
    free(r->q);
    free(r);
    return cu_err_set(e, -CU_ENOMEM, "cannot start the reporter thread");
}

void cu_reporter_idle(struct cu_reporter *r)
{
    pthread_mutex_lock(&r->mu);
    r->flush = true;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
}

int cu_reporter_submit(struct cu_reporter *r, int64_t replica, char *body)
{
    pthread_mutex_lock(&r->mu);
    while (r->pending >= r->cap && !r->closing)
        pthread_cond_wait(&r->room, &r->mu);
    if (r->closing) {
        pthread_mutex_unlock(&r->mu);
        return -CU_ECANCELLED;
    }
    r->q[(r->head + r->nq) % r->cap] =
        (struct queued){.replica = replica, .body = body, .since_ms = cu_mono_ms()};
    r->nq++;
    r->pending++;
    /* A lingering reporter would only compute the same linger again: it
     * is woken when the batch is full or no lease waits ahead any more
     * (cu_reporter_linger_ms), saving a wake-up per report of a batch. */
    if (!r->lingering || r->nq >= CU_REPORT_LINGER_BATCH || !r->a->ahead ||
        cu_ahead_queued(r->a->ahead) == 0)
        pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

bool cu_reporter_stop(struct cu_reporter *r, int64_t wait_ms)
{
    struct timespec until;
    bool exited;

    if (!r || r->joined)
        return true;
    cu_mono_deadline(&until, wait_ms);
    pthread_mutex_lock(&r->mu);
    r->closing = true;
    pthread_cond_broadcast(&r->work);
    pthread_cond_broadcast(&r->room);
    while (!r->exited && pthread_cond_timedwait(&r->room, &r->mu, &until) != ETIMEDOUT)
        ;
    exited = r->exited;
    pthread_mutex_unlock(&r->mu);
    if (!exited)
        return false; /* a report still in flight: its row stays for recover() */
    pthread_join(r->th, NULL);
    r->joined = true;
    assert(r->nq == 0);
    return true;
}

void cu_reporter_free(struct cu_reporter *r)
{
    if (!r)
        return;
    if (!r->joined)
        return; /* still sending: left to the process's exit */
    pthread_cond_destroy(&r->room);
    pthread_cond_destroy(&r->work);
    pthread_mutex_destroy(&r->mu);
    cu_http_client_free(r->http);
    free(r->store);
    free(r->q);
    free(r);
}
