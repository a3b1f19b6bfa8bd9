/* ahead.c - claiming ahead: a slot whose tasks are short asks the exchange
 * for several leases at once ({"max":N,"sequential":true}, docs/api.md
 * "Claiming ahead"), runs the first and queues the rest here, where any
 * slot takes them before it claims again. One claim then serves several
 * tasks: fewer round trips for the provider and fewer claim transactions
 * for the exchange.
 *
 * A queued lease is not heartbeated (its keeper starts with the task in
 * cu_lease_run), so it must start well within its lease: leases are only
 * claimed ahead while the recent leases took at most AHEAD_TASK_MS each
 * (and never with the idle monitor, whose pauses have no bound), the
 * leases held in all (running and queued) are what the slots run in about
 * AHEAD_HOLD_MS (at least 2 x slots, at most cu_ahead_held_max), and one
 * that waited longer than two heartbeat intervals anyway (its lease lives
 * three) is handed back with an "error" report instead of being run.
 * Each queued lease has its 'running' row in the provider's state, like a
 * running one: after kill -9, recover() reports it abandoned and the
 * exchange requeues it at once; without the row it would expire. At
 * shutdown the slots hand queued leases back the same way. */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "provider/agent.h"

#include "base/banned.h"

#define AHEAD_TASK_MS 250   /* claim ahead only while leases take at most this */
#define AHEAD_BATCH_MAX 32  /* leases per claim, at most */
/* Work held ahead: as many leases as the slots run in about this long.
 * Holding only 2 x slots, trivial tasks (a few ms each) cost the exchange
 * a claim transaction and a report request every two or three tasks
 * (docs/performance.md "Sixth session"); a tenth of a second of work is
 * nothing another provider would have started sooner. */
#define AHEAD_HOLD_MS 100
#define AHEAD_HELD_MAX 64   /* leases held in all, at most (unless 2 x slots is more) */

struct queued {
    json_t *lease;
    int64_t since_ms; /* monotonic: when the claim was answered */
};

struct cu_ahead {
    pthread_mutex_t mu;
    unsigned nslots;
    unsigned cap;      /* queue entries (never all used: see cu_ahead_want) */
    unsigned head, n;
    unsigned reserved; /* queue places promised to claims on their way */
    struct queued *q;
    atomic_uint running;   /* slots inside cu_lease_run */
    atomic_llong avg_ms;   /* moving average of a lease's time; -1: none yet */
};

int cu_ahead_new(unsigned nslots, struct cu_ahead **out)
{
    struct cu_ahead *h = calloc(1, sizeof *h);

    *out = NULL;
    if (!h)
        return -CU_ENOMEM;
    h->nslots = nslots ? nslots : 1;
    h->cap = cu_ahead_held_max(h->nslots);
    h->q = calloc(h->cap, sizeof *h->q);
    if (!h->q) {
        free(h);
        return -CU_ENOMEM;
    }
    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->running, 0);
    atomic_init(&h->avg_ms, -1);
    *out = h;
    return 0;
}

void cu_ahead_free(struct cu_ahead *h)
{
    if (!h)
        return;
    for (unsigned i = 0; i < h->n; i++)
        json_decref(h->q[(h->head + i) % h->cap].lease);
    pthread_mutex_destroy(&h->mu);
    free(h->q);
    free(h);
}

unsigned cu_ahead_held_max(unsigned nslots)
{
    if (nslots == 0)
        nslots = 1;
    return 2 * nslots > AHEAD_HELD_MAX ? 2 * nslots : AHEAD_HELD_MAX;
}

/* Leases to hold in all (running and queued) while a lease takes avg_ms
 * (>= 0): what the slots run in AHEAD_HOLD_MS, at least 2 x slots, at
 * most h->cap, and never more than one slot alone runs in half a
 * heartbeat interval (a queued lease is not heartbeated). 1 or less: no
 * claiming ahead. */
static unsigned long long held_limit(const struct cu_ahead *h, long long avg_ms,
                                     int64_t heartbeat_ms)
{
    /* A lease under 1 ms counts as 1 ms: the bounds stay finite. */
    unsigned long long per = avg_ms > 0 ? (unsigned long long)avg_ms : 1;
    unsigned long long hb = heartbeat_ms > 0 ? (unsigned long long)heartbeat_ms / 2 : 0;
    unsigned long long by_time = (unsigned long long)AHEAD_HOLD_MS * h->nslots / per;
    unsigned long long lim = by_time < 2ULL * h->nslots ? 2ULL * h->nslots : by_time;

    if (lim > h->cap)
        lim = h->cap;
    if (lim > hb / per)
        lim = hb / per;
    return lim;
}

unsigned cu_ahead_want(struct cu_ahead *h, const struct cu_agent *a)
{
    long long avg = atomic_load(&h->avg_ms);
    unsigned long long lim;
    unsigned want, held;

    /* Queued leases wait for one slot or another. Claim ahead only while
     * leases are short and the queue drains well within one heartbeat
     * interval, even when one slot alone runs it. */
    if (a->idle || avg < 0 || avg > AHEAD_TASK_MS || cu_agent_stopping())
        return 1;
    lim = held_limit(h, avg, a->heartbeat_ms);
    if (lim <= 1)
        return 1;
    pthread_mutex_lock(&h->mu);
    /* After the answer the caller runs one lease and queues the rest:
     * held in all, with what other claims may bring, stays <= lim. */
    held = atomic_load(&h->running) + h->n + h->reserved;
    want = held + 1 < lim ? (unsigned)(lim - held) : 1;
    if (want > AHEAD_BATCH_MAX)
        want = AHEAD_BATCH_MAX;
    h->reserved += want - 1;
    pthread_mutex_unlock(&h->mu);
    return want;
}

void cu_ahead_claimed(struct cu_ahead *h, unsigned want)
{
    pthread_mutex_lock(&h->mu);
    assert(h->reserved >= want - 1);
    h->reserved -= want - 1;
    pthread_mutex_unlock(&h->mu);
}

/* replica, job and task of a lease, for its state row; false when the
 * lease is malformed (cu_lease_run reports that when it is run). */
static bool lease_ids(const json_t *lease, int64_t *replica, const char **job, uint32_t *task)
{
    json_t *r = json_object_get(lease, "replica"), *t = json_object_get(lease, "task");
    *job = json_string_value(json_object_get(lease, "job"));
    if (!json_is_integer(r) || !json_is_integer(t) || !*job || json_integer_value(r) <= 0 ||
        json_integer_value(t) < 0 || json_integer_value(t) > UINT32_MAX)
        return false;
    *replica = json_integer_value(r);
    *task = (uint32_t)json_integer_value(t);
    return true;
}

void cu_ahead_record(struct cu_agent *a, const json_t *leases)
{
    struct cu_pstate_lease l[AHEAD_BATCH_MAX];
    const json_t *v;
    size_t i, n = 0;

    json_array_foreach (leases, i, v) {
        if (n < AHEAD_BATCH_MAX && lease_ids(v, &l[n].replica, &l[n].job, &l[n].task))
            n++;
    }
    if (n > 0)
        (void)cu_pstate_running_batch(&a->state, a->exchange, l, n);
}

int cu_ahead_push(struct cu_ahead *h, json_t *lease)
{
    int rc = 0;

    pthread_mutex_lock(&h->mu);
    if (h->n < h->cap) {
        h->q[(h->head + h->n) % h->cap] = (struct queued){json_incref(lease), cu_mono_ms()};
        h->n++;
    } else {
        rc = -CU_EAGAIN; /* cannot happen while claims ask what cu_ahead_want says */
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

unsigned cu_ahead_queued(struct cu_ahead *h)
{
    unsigned n;

    pthread_mutex_lock(&h->mu);
    n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

json_t *cu_ahead_pop(struct cu_ahead *h, int64_t *age_ms)
{
    json_t *lease = NULL;

    pthread_mutex_lock(&h->mu);
    if (h->n > 0) {
        struct queued *e = &h->q[h->head];
        lease = e->lease;
        *age_ms = cu_mono_ms() - e->since_ms;
        e->lease = NULL;
        h->head = (h->head + 1) % h->cap;
        h->n--;
    }
    pthread_mutex_unlock(&h->mu);
    return lease;
}

void cu_ahead_running(struct cu_ahead *h, bool on)
{
    if (on)
        atomic_fetch_add(&h->running, 1);
    else
        atomic_fetch_sub(&h->running, 1);
}

void cu_ahead_note(struct cu_ahead *h, int64_t ms)
{
    long long avg = atomic_load(&h->avg_ms);

    if (ms < 0)
        ms = 0;
    /* The last few leases weigh most: a job of long tasks stops claiming
     * ahead after its first lease (a long one pulls the average up at
     * once), a job of short ones starts after a few. */
    if (avg < 0 || ms > avg)
        avg = ms;
    else
        avg = (3 * avg + ms) / 4;
    atomic_store(&h->avg_ms, avg);
}

void cu_ahead_hand_back(struct cu_slot *s, const json_t *lease, const char *reason,
                        bool shutting_down)
{
    struct cu_agent *a = s->a;
    int64_t replica;
    const char *job;
    uint32_t task;
    char *body;
    enum cu_delivery d;

    if (!lease_ids(lease, &replica, &job, &task))
        return; /* no replica to name: its lease expires */
    body = cu_error_report(reason);
    if (!body)
        return; /* the row stays: recover() reports it at the next start */
    cu_info("handing back replica %lld (job %s, task %u) unstarted: %s", (long long)replica,
            job, task, reason);
    d = cu_report_deliver(s->http, &a->cache, replica, body,
                          shutting_down ? CU_SHUTDOWN_REPORT_MS : 30000, shutting_down);
    if (d != CU_UNSENT)
        cu_pstate_forget(&a->state, a->exchange, replica);
    free(body);
}
