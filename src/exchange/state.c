/* state.c - the exchange's SQLite state: jobs, tasks, replicas, leases,
 * reports, quorum decisions, nonces (see state.h).
 *
 * One mutex (st->mu) guards the one connection; every state change is one
 * BEGIN IMMEDIATE ... COMMIT. Helpers whose comment says "mu held" expect
 * the caller to hold the lock; those that say "in a transaction" expect an
 * open transaction too. */
#include "exchange/explain.h"
#include "exchange/settle.h"
#include "exchange/sql.h"
#include "exchange/trust.h"
#include "exchange/state.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "market/lease.h"
#include "market/price.h"
#include "trust/quorum.h"

#include "base/banned.h"

#define MAX_LIST_JOBS 1000
#define MAX_TASK_REPLICAS 96 /* replicas looked at per task decision */

/* ---- failures ------------------------------------------------------------ */

int ex_fail_set(struct ex_fail *f, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    int err;

    switch (status) {
    case 400:
        err = -CU_EINVAL;
        break;
    case 403:
        err = -CU_EPERM;
        break;
    case 404:
        err = -CU_ENOTFOUND;
        break;
    case 409:
        err = -CU_ECONFLICT;
        break;
    case 503:
        err = -CU_EAGAIN;
        break;
    default:
        err = -CU_EDB;
        break;
    }
    if (f) {
        f->status = status;
        f->code = code;
        va_start(ap, fmt);
        vsnprintf(f->msg, sizeof f->msg, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Lines logged while mu is held are written after it is let go (one
 * write for all of them): a report of 16 replicas logged 32 lines, each a
 * system call every other request waited for. */
static void lock(struct ex_state *st)
{
    int rc = pthread_mutex_lock(&st->mu);
    assert(rc == 0);
    (void)rc;
    cu_log_hold();
}

static void unlock(struct ex_state *st)
{
    pthread_mutex_unlock(&st->mu);
    cu_log_release();
}

/* Wakes every claim waiting for work (new replicas queued, or a waiter
 * that was deferred to has gone). Those in the waiters table each claim
 * and commit as soon as they get mu, right after this change's own
 * commit: announced to the group commit (cu_db_expect), the next sync
 * waits for their leases and covers them too, where they would each have
 * waited for this sync to end and then for one more (a new job's first
 * lease: one fdatasync on its way instead of two). mu held. */
static void wake_claimers(struct ex_state *st)
{
    unsigned n = 0;

    for (size_t i = 0; i < EX_MAX_WAITERS; i++) {
        struct ex_waiter *w = &st->waiters[i];
        if (w->active && !w->expected) {
            w->expected = true;
            n++;
        }
    }
    cu_db_expect(&st->db, n, EX_CLAIM_EXPECT_US);
    pthread_cond_broadcast(&st->work);
}

/* A claim announced by wake_claimers has committed, or found nothing to
 * commit. mu held. */
static void claimer_done(struct ex_state *st, struct ex_waiter *me)
{
    if (me->expected) {
        me->expected = false;
        cu_db_expect_done(&st->db);
    }
}

/* The report lane. Under load every provider's report of finished work
 * and its claim for more wait for mu; a batch of reports holds it about
 * twice as long as the claim that follows. With one queue for both, a claim
 * waited behind every report queued before it (dispatch's batched round:
 * claim p99 ~60 ms with 16 providers, while the providers' slots sat
 * empty). Reports pass through a lane of their own first, so at most one
 * of them competes for mu at a time, and the one at the lane's head lets
 * the claims waiting for mu go first (for at most REPORT_YIELD_MS, so
 * reports cannot starve): a claim waits for the holder and the other
 * claims. Reports are bookkeeping a provider does not wait on (its
 * reporter runs beside its slots); a claim is a slot standing idle.
 * Throughput is unchanged: the same work is done in another order. */
#define REPORT_YIELD_MS 5

static int lanes_init(struct ex_state *st)
{
    pthread_condattr_t ca;
    int rc;

    if (pthread_mutex_init(&st->reports.lane, NULL) != 0)
        return -CU_ENOMEM;
    if (pthread_mutex_init(&st->reports.gate, NULL) != 0)
        goto out_lane;
    if (pthread_condattr_init(&ca) != 0)
        goto out_gate;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&st->reports.gate_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc == 0)
        return 0;
out_gate:
    pthread_mutex_destroy(&st->reports.gate);
out_lane:
    pthread_mutex_destroy(&st->reports.lane);
    return -CU_ENOMEM;
}

static void lanes_destroy(struct ex_state *st)
{
    pthread_cond_destroy(&st->reports.gate_cv);
    pthread_mutex_destroy(&st->reports.gate);
    pthread_mutex_destroy(&st->reports.lane);
}

static void lock_report(struct ex_state *st)
{
    struct timespec until;
    int rc = pthread_mutex_lock(&st->reports.lane);

    assert(rc == 0);
    (void)rc;
    /* claims_waiting is an atomic: a claim counts itself without a lock;
     * only a report that has to wait takes the gate, and says so
     * (yielding), so that the claim ending the wait knows to wake it. */
    if (__atomic_load_n(&st->reports.claims_waiting, __ATOMIC_SEQ_CST) > 0) {
        pthread_mutex_lock(&st->reports.gate);
        __atomic_store_n(&st->reports.yielding, true, __ATOMIC_SEQ_CST);
        cu_mono_deadline(&until, REPORT_YIELD_MS);
        while (__atomic_load_n(&st->reports.claims_waiting, __ATOMIC_SEQ_CST) > 0 &&
               pthread_cond_timedwait(&st->reports.gate_cv, &st->reports.gate, &until) !=
                   ETIMEDOUT)
            ;
        __atomic_store_n(&st->reports.yielding, false, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&st->reports.gate);
    }
    lock(st);
}

static void unlock_report(struct ex_state *st)
{
    unlock(st);
    pthread_mutex_unlock(&st->reports.lane);
}

/* mu for a claim: counted while it waits, so that the report lane's head
 * lets it go first. The last claim to stop waiting wakes a yielding
 * report: the report sets yielding before it looks at the count, the
 * claim looks at yielding after it lowered the count, so one of them
 * sees the other. */
static void lock_claim(struct ex_state *st)
{
    __atomic_add_fetch(&st->reports.claims_waiting, 1, __ATOMIC_SEQ_CST);
    lock(st);
    if (__atomic_sub_fetch(&st->reports.claims_waiting, 1, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&st->reports.yielding, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&st->reports.gate);
        pthread_cond_signal(&st->reports.gate_cv);
        pthread_mutex_unlock(&st->reports.gate);
    }
}

static const char *short_id(const char *id)
{
    static const char none[] = "-";
    return id ? id : none;
}

/* ---- replica transitions (in a transaction) -------------------------------- */

/* The writes of the claim and report paths are UPDATE OR FAIL: a statement
 * that fires triggers and may abort keeps a statement journal, a copy of
 * every page it touches, so that an abort undoes it alone (a lease's
 * UPDATE took a quarter less time without it). Nothing here goes on after
 * a failed write: the whole transaction is rolled back (ex_txn_rollback),
 * so undoing one statement's part first bought nothing. Those writes
 * cannot violate a constraint but through a bug. */

static int64_t clamp_i64(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* Moves replica id from `from` to `to`; the state machine must allow it (a
 * bug otherwise). 0 or -CU_EDB; -CU_ECONFLICT if the row was not in `from`. */
static int replica_move(struct ex_state *st, int64_t id, enum cu_replica_state from,
                        enum cu_replica_state to)
{
    int rc;

    assert(cu_replica_can_transition(from, to));
    rc = ex_sql_run(st, "UPDATE OR FAIL replicas SET state = ?1 WHERE id = ?2 AND state = ?3", "tit",
             cu_replica_state_name(to), id, cu_replica_state_name(from));
    if (rc)
        return rc;
    if (sqlite3_changes(st->db.h) != 1) {
        cu_error("replica %lld was not %s (moving to %s)", (long long)id,
                 cu_replica_state_name(from), cu_replica_state_name(to));
        return -CU_ECONFLICT;
    }
    return 0;
}

/* Every replica of a task in state `from` goes to `to`. */
static int replicas_move_all(struct ex_state *st, const char *job, int64_t idx,
                             enum cu_replica_state from, enum cu_replica_state to)
{
    assert(cu_replica_can_transition(from, to));
    return ex_sql_run(st,
               "UPDATE replicas SET state = ?1 WHERE job_id = ?2 AND task_idx = ?3 AND state = ?4",
               "ttit", cu_replica_state_name(to), job, idx, cu_replica_state_name(from));
}

/* Queues n fresh replicas of a task. */
static int replicas_queue(struct ex_state *st, const char *job, int64_t idx, unsigned n,
                          int64_t now)
{
    for (unsigned i = 0; i < n; i++) {
        int rc = ex_sql_run(
            st,
            "INSERT INTO replicas (job_id, task_idx, state, created_ms) VALUES (?1, ?2, ?3, ?4)",
            "titi", job, idx, cu_replica_state_name(CU_REPLICA_QUEUED), now);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- task and job states (in a transaction) ------------------------------- */

static bool task_state_finished(const char *s)
{
    return strcmp(s, "done") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0;
}

/* An unfinished task is running while a replica is held or reported, else
 * queued (tasks.held counts those: schema.c, 14; a statement that
 * finishes a task sets its held to 0: 25). */
static int task_refresh(struct ex_state *st, const char *job, int64_t idx)
{
    return ex_sql_run(st,
               "UPDATE OR FAIL tasks SET state = CASE WHEN held > 0 THEN 'running' ELSE 'queued' END "
               "WHERE job_id = ?1 AND idx = ?2 AND (state = 'queued' OR state = 'running')",
               "ti", job, idx);
}

/* Ends a running job once none of its tasks is left: done when all are
 * done, else failed. */
static int job_refresh(struct ex_state *st, const char *job, int64_t now)
{
    sqlite3_stmt *s;
    int64_t total = 0, open = 0, done = 0, failed = 0;
    int rc;

    /* Asked after every report: the counts the triggers keep (schema.c,
     * 15), one row whatever the job's size. */
    s = ex_sql_cached(st, "SELECT queued, running, done, failed, cancelled FROM job_counts "
                          "WHERE job_id = ?1", "t", job);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        open = sqlite3_column_int64(s, 0) + sqlite3_column_int64(s, 1);
        done = sqlite3_column_int64(s, 2);
        failed = sqlite3_column_int64(s, 3);
        total = open + done + failed + sqlite3_column_int64(s, 4);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    if (open > 0 || total == 0)
        return 0;
    if (done == total) {
        rc = ex_sql_run(
            st,
            "UPDATE jobs SET state = 'done', finished_ms = ?2 WHERE id = ?1 AND state = 'running'",
            "ti", job, now);
        if (!rc && sqlite3_changes(st->db.h)) {
            cu_info("job %s done (%lld tasks)", job, (long long)total);
            rc = ex_settle_job_end(st, job, now);
        }
    } else {
        char reason[96];
        snprintf(reason, sizeof reason, "%lld of %lld tasks failed", (long long)failed,
                 (long long)total);
        rc = ex_sql_run(st,
                 "UPDATE jobs SET state = 'failed', reason = ?3, finished_ms = ?2 "
                 "WHERE id = ?1 AND state = 'running'",
                 "tit", job, now, reason);
        if (!rc && sqlite3_changes(st->db.h)) {
            cu_info("job %s failed: %s", job, reason);
            rc = ex_settle_job_end(st, job, now);
        }
    }
    return rc;
}

/* Fails a task with reason: queued replicas cancelled, reported ones
 * rejected; then the job may end. */
static int task_fail(struct ex_state *st, const char *job, int64_t idx, const char *reason,
                     int64_t now)
{
    int rc = ex_sql_run(st,
                 "UPDATE tasks SET state = 'failed', reason = ?3, finished_ms = ?4, held = 0 "
                 "WHERE job_id = ?1 AND idx = ?2",
                 "titi", job, idx, reason, now);
    if (!rc)
        rc = replicas_move_all(st, job, idx, CU_REPLICA_QUEUED, CU_REPLICA_CANCELLED);
    if (!rc)
        rc = replicas_move_all(st, job, idx, CU_REPLICA_REPORTED, CU_REPLICA_REJECTED);
    if (!rc)
        cu_info("task %s/%lld failed: %s", job, (long long)idx, reason);
    if (!rc)
        rc = job_refresh(st, job, now);
    return rc;
}

/* A task's state, its job's, and the task's replication policy. */
struct task_head {
    char task_state[16], job_state[16];
    int64_t replication, quorum, max_replicas;
};

struct vote_row {
    char provider[CU_ID_LEN + 1];
    char owner[CU_ID_LEN + 1];
    int64_t id;
    enum cu_replica_state state;
    char status[16];
    char reason[256];
    bool has_exit;
    int64_t exit_code;
    int64_t cpu_ms;
    uint64_t ask, cu_milli, wall_ms; /* what paying it needs */
    bool unpaid;
};

/* The reason a failed replica gives the task. */
static void failure_reason(const struct vote_row *r, char *out, size_t n)
{
    if (r->reason[0])
        snprintf(out, n, "%s", r->reason);
    else if (strcmp(r->status, "failed") == 0 && r->has_exit)
        snprintf(out, n, "exit code %lld", (long long)r->exit_code);
    else if (strcmp(r->status, "timeout") == 0)
        snprintf(out, n, "time limit exceeded");
    else if (strcmp(r->status, "output_limit") == 0)
        snprintf(out, n, "output limit exceeded");
    else
        snprintf(out, n, "task %s", r->status);
}

/* Decides an unfinished task of a running job from its replicas (the
 * quorum module) and applies the decision: accept/reject/cancel replicas,
 * queue replacements (*queued set), set the task's and the job's state. */
/* Reads the task's and its job's states and the task's replication
 * policy into *h. 1 when found, 0 when not, negative on a failure. */
static int task_head_read(struct ex_state *st, const char *job, int64_t idx, struct task_head *h)
{
    sqlite3_stmt *s;
    int rc;

    memset(h, 0, sizeof *h);
    s = ex_sql_cached(st,
              "SELECT t.state, j.state, COALESCE(t.policy_min, j.replication), "
              "COALESCE(t.policy_quorum, j.quorum), COALESCE(t.policy_max, j.max_replicas) "
              "FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.job_id = ?1 AND t.idx = ?2",
              "ti", job, idx);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        ex_col_copy(s, 0, h->task_state, sizeof h->task_state);
        ex_col_copy(s, 1, h->job_state, sizeof h->job_state);
        h->replication = sqlite3_column_int64(s, 2);
        h->quorum = sqlite3_column_int64(s, 3);
        h->max_replicas = sqlite3_column_int64(s, 4);
    }
    ex_sql_done(st, s);
    return rc;
}

/* The vote row of a replica whose report is not written yet, as it will
 * read once written (report_write's UPDATE: the same fields, the same
 * clamps). *root: its vote root (a validator's, when set, else the
 * report's Merkle root). */
static void vote_row_pending(struct vote_row *r, const struct ex_report_row *p, const char **root)
{
    const struct ex_report *rep = p->r;

    r->state = CU_REPLICA_REPORTED;
    (void)cu_snprintf(r->status, sizeof r->status, "%s", ex_status_name(rep->status));
    (void)cu_snprintf(r->reason, sizeof r->reason, "%s", rep->reason ? rep->reason : "");
    r->has_exit = rep->has_exit;
    r->exit_code = rep->has_exit ? rep->exit_code : 0;
    r->cpu_ms = clamp_i64(rep->cpu_ms);
    r->cu_milli = (uint64_t)clamp_i64(p->cu_milli);
    r->wall_ms = (uint64_t)clamp_i64(rep->wall_ms);
    if (!*root)
        *root = rep->merkle_root;
}

/* Decides an unfinished task of a running job from its replicas (the
 * quorum module) and applies the decision: accept/reject/cancel replicas,
 * queue replacements (*queued set), set the task's and the job's state.
 * head: the task's states and policy as read in this transaction (a
 * report reads them with its replica), or NULL to read them here.
 * pend: a report of one of the task's replicas not written yet (NULL:
 * none): the decision counts it as written; it is written with its
 * acceptance when the quorum accepts and pays it now, else before any
 * other write of the decision. */
static int task_decide(struct ex_state *st, const char *job, int64_t idx, int64_t now,
                       const struct task_head *head, struct ex_report_row *pend,
                       bool *queued)
{
    struct vote_row rows[MAX_TASK_REPLICAS];
    struct cu_vote votes[MAX_TASK_REPLICAS];
    enum cu_vote_outcome out[MAX_TASK_REPLICAS];
    struct ex_accept acc[MAX_TASK_REPLICAS];
    struct cu_quorum_decision d;
    sqlite3_stmt *s;
    int64_t replication, quorum, max_replicas;
    struct cu_replication policy;
    struct task_head own;
    size_t n = 0, nacc = 0, pi = SIZE_MAX; /* pi: pend's row */
    bool rejected = false;
    int rc;

    if (!head) {
        rc = task_head_read(st, job, idx, &own);
        if (rc <= 0)
            return rc;
        head = &own;
    }
    if (task_state_finished(head->task_state) || strcmp(head->job_state, "running") != 0)
        /* report_write holds a report back only from a running task
         * (the same head); should one come, it is written as a report
         * of an ended task is, never dropped. */
        return pend ? ex_report_row_write(st, pend, CU_REPLICA_CANCELLED, NULL) : 0;
    replication = head->replication;
    quorum = head->quorum;
    max_replicas = head->max_replicas;

    s = ex_sql_cached(st,
              "SELECT r.id, r.state, r.status, COALESCE(r.vote_root, r.merkle_root), r.reason, "
              "r.exit_code, r.cpu_ms, r.provider, p.owner, r.validating, "
              "COALESCE(r.price_per_cu, 1), COALESCE(r.cu_milli, 0), COALESCE(r.wall_ms, 0), "
              "r.paid IS NULL "
              "FROM replicas r LEFT JOIN providers p ON p.id = r.provider "
              "WHERE r.job_id = ?1 AND r.task_idx = ?2 ORDER BY r.id",
              "ti", job, idx);
    if (!s)
        return -CU_EDB;
    while ((rc = ex_sql_step(st, s)) == 1 && n < MAX_TASK_REPLICAS) {
        struct vote_row *r = &rows[n];
        struct cu_vote *v = &votes[n];
        const char *root = ex_col_text(s, 3);
        memset(r, 0, sizeof *r);
        memset(v, 0, sizeof *v);
        r->id = sqlite3_column_int64(s, 0);
        if (cu_replica_state_parse(ex_col_text(s, 1), &r->state) != 0) {
            cu_error("replica %lld has unknown state '%s'", (long long)r->id, ex_col_text(s, 1));
            continue;
        }
        ex_col_copy(s, 2, r->status, sizeof r->status);
        ex_col_copy(s, 4, r->reason, sizeof r->reason);
        r->has_exit = !ex_col_null(s, 5);
        r->exit_code = sqlite3_column_int64(s, 5);
        r->cpu_ms = sqlite3_column_int64(s, 6);
        ex_col_copy(s, 7, r->provider, sizeof r->provider);
        ex_col_copy(s, 8, r->owner, sizeof r->owner);
        r->ask = (uint64_t)sqlite3_column_int64(s, 10);
        r->cu_milli = (uint64_t)sqlite3_column_int64(s, 11);
        r->wall_ms = (uint64_t)sqlite3_column_int64(s, 12);
        r->unpaid = sqlite3_column_int64(s, 13) != 0;
        if (pend && r->id == pend->id) {
            vote_row_pending(r, pend, &root);
            pi = n;
        }
        v->provider = r->provider[0] ? r->provider : NULL;
        v->owner = r->owner[0] ? r->owner : NULL;
        switch (r->state) {
        case CU_REPLICA_QUEUED:
        case CU_REPLICA_LEASED:
        case CU_REPLICA_RUNNING:
            v->kind = CU_VOTE_PENDING;
            break;
        case CU_REPLICA_REPORTED:
        case CU_REPLICA_ACCEPTED:
        case CU_REPLICA_REJECTED:
            if (sqlite3_column_int64(s, 9) != 0)
                v->kind = CU_VOTE_PENDING; /* its validator comparison is still to run */
            else if (strcmp(r->status, "ok") == 0 && root &&
                     cu_hash_from_hex(root, &v->root) == 0)
                v->kind = CU_VOTE_RESULT;
            else
                v->kind = CU_VOTE_FAILED;
            break;
        default:
            v->kind = CU_VOTE_NONE;
            break;
        }
        n++;
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;

    if (quorum > 0) {
        policy = (struct cu_replication){.min = (unsigned)replication,
                                         .quorum = (unsigned)quorum,
                                         .max = (unsigned)max_replicas,
                                         /* A lone failure is outvoted, so a
                                          * cheater cannot sink a task. */
                                         .fail_fast = false};
    } else {
        policy = cu_replication_legacy((unsigned)replication);
    }
    rc = cu_quorum_decide_policy(votes, n, &policy, out, &d);
    if (rc) {
        cu_error("task %s/%lld: quorum refused its input (replication %lld)", job, (long long)idx,
                 (long long)replication);
        return -CU_EDB;
    }
    /* The held-back report is written now unless settlement accepts and
     * pays it below, in the same write (rows[pi] reads as written). */
    if (pend && !(pi != SIZE_MAX && d.verdict == CU_QUORUM_DONE &&
                  out[pi] == CU_OUTCOME_ACCEPT && rows[pi].unpaid)) {
        rc = ex_report_row_write(st, pend, CU_REPLICA_REPORTED, NULL);
        if (rc)
            return rc;
        pend = NULL;
        pi = SIZE_MAX;
    }

    switch (d.verdict) {
    case CU_QUORUM_WAIT:
        return task_refresh(st, job, idx);
    case CU_QUORUM_NEED_MORE:
        rc = replicas_queue(st, job, idx, d.more, now);
        if (rc)
            return rc;
        *queued = true;
        if (d.distinct > 1)
            cu_info("task %s/%lld: %zu distinct results; issuing %u more replica(s)", job,
                    (long long)idx, d.distinct, d.more);
        return task_refresh(st, job, idx);
    case CU_QUORUM_DONE:
    case CU_QUORUM_FAILED:
        break;
    }

    /* Settle every replica as the quorum says. */
    int64_t result = 0, best_cpu = INT64_MAX;
    /* Some replica of the task may be past the rows read: settlement then
     * looks for losers itself. */
    rejected = n == MAX_TASK_REPLICAS;
    for (size_t i = 0; i < n; i++) {
        enum cu_replica_state to;
        switch (out[i]) {
        case CU_OUTCOME_ACCEPT:
            to = CU_REPLICA_ACCEPTED;
            /* Among agreeing results the lowest claim stands (DESIGN.md §6). */
            if (rows[i].cpu_ms < best_cpu || result == 0) {
                best_cpu = rows[i].cpu_ms;
                result = rows[i].id;
            }
            /* An agreed quorum: settlement moves and pays an unpaid
             * replica in one write of its row (ex_settle_accept). */
            if (d.verdict == CU_QUORUM_DONE && rows[i].unpaid) {
                acc[nacc++] = (struct ex_accept){.id = rows[i].id,
                                                 .from = i == pi ? pend->from : rows[i].state,
                                                 .provider = rows[i].provider,
                                                 .ask = rows[i].ask,
                                                 .cu_milli = rows[i].cu_milli,
                                                 .wall_ms = rows[i].wall_ms,
                                                 .report = i == pi ? pend : NULL};
                continue;
            }
            break;
        case CU_OUTCOME_REJECT:
            to = CU_REPLICA_REJECTED;
            break;
        case CU_OUTCOME_DUPLICATE:
            /* Agrees, but its owner already counted: neither paid nor
             * slashed. */
            to = CU_REPLICA_REJECTED;
            rc = ex_sql_run(st, "UPDATE replicas SET reason = 'duplicate owner' WHERE id = ?1",
                            "i", rows[i].id);
            if (rc)
                return rc;
            break;
        case CU_OUTCOME_DROP:
            /* Held replicas learn at their next heartbeat that the task is over. */
            if (rows[i].state != CU_REPLICA_QUEUED)
                continue;
            to = CU_REPLICA_CANCELLED;
            break;
        default:
            continue;
        }
        if (to == CU_REPLICA_REJECTED)
            rejected = true;
        if (rows[i].state == to)
            continue;
        rc = replica_move(st, rows[i].id, rows[i].state, to);
        if (rc)
            return rc;
    }
    if (d.verdict == CU_QUORUM_DONE) {
        rc = ex_sql_run(st,
                 "UPDATE OR FAIL tasks SET state = 'done', result_replica = ?3, finished_ms = ?4, "
                 "reason = NULL, held = 0 WHERE job_id = ?1 AND idx = ?2",
                 "tiii", job, idx, result, now);
        if (rc)
            return rc;
        cu_info("task %s/%lld done (replica %lld)", job, (long long)idx, (long long)result);
        /* rows holds every replica of the task unless it was full: a
         * rejected one among them, or a full read, may hold a loser. */
        for (size_t i = 0; i < n; i++)
            if (rows[i].state == CU_REPLICA_REJECTED)
                rejected = true;
        rc = ex_settle_accept(st, job, idx, acc, nacc, rejected, now);
        if (rc)
            return rc;
        if (pi != SIZE_MAX)
            pend->accepted = true;
        return job_refresh(st, job, now);
    }
    char reason[320];
    if (d.failed_vote != SIZE_MAX)
        failure_reason(&rows[d.failed_vote], reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "no quorum: %zu distinct results from %zu replicas",
                 d.distinct, d.results);
    rc = ex_settle_task(st, job, idx, false, now);
    if (rc)
        return rc;
    return task_fail(st, job, idx, reason, now);
}

int ex_task_decide(struct ex_state *st, const char *job, int64_t idx, int64_t now, bool *queued)
{
    return task_decide(st, job, idx, now, NULL, NULL, queued);
}

/* A replica was lost (provider error, lease expiry, abandoned run): count
 * it against the task and queue a replacement unless the task has had too
 * many. In a transaction; the replica is already expired. */
static int task_replica_lost(struct ex_state *st, const char *job, int64_t idx, const char *why,
                             int64_t now, bool *queued)
{
    sqlite3_stmt *s;
    int64_t errors = 0;
    char tstate[16] = "", jstate[16] = "";
    int rc;

    s = ex_sql_cached(st,
              "SELECT t.errors, t.state, j.state FROM tasks t JOIN jobs j ON j.id = t.job_id "
              "WHERE t.job_id = ?1 AND t.idx = ?2",
              "ti", job, idx);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        errors = sqlite3_column_int64(s, 0);
        ex_col_copy(s, 1, tstate, sizeof tstate);
        ex_col_copy(s, 2, jstate, sizeof jstate);
    }
    ex_sql_done(st, s);
    if (rc <= 0)
        return rc;
    if (task_state_finished(tstate) || strcmp(jstate, "running") != 0)
        return 0;
    errors++;
    rc = ex_sql_run(st, "UPDATE tasks SET errors = ?3 WHERE job_id = ?1 AND idx = ?2", "tii", job, idx,
             errors);
    if (rc)
        return rc;
    if (errors >= EX_MAX_PROVIDER_ERRORS) {
        char reason[400];
        snprintf(reason, sizeof reason, "gave up after %d provider errors: %s",
                 EX_MAX_PROVIDER_ERRORS, why);
        return task_fail(st, job, idx, reason, now);
    }
    return task_decide(st, job, idx, now, NULL, NULL, queued);
}

/* ---- open / close ------------------------------------------------------------ */

static bool legacy_nonces_left(struct ex_state *st);

static void nonce_db_close(struct ex_state *st)
{
    sqlite3_finalize(st->nonce_q);
    sqlite3_finalize(st->nonce_legacy_q);
    sqlite3_close(st->nonce_db); /* NULL is a no-op */
    st->nonce_q = st->nonce_legacy_q = NULL;
    st->nonce_db = NULL;
}

int ex_state_open(struct ex_state *st, const char *data_dir, uint64_t lease_ms, bool devnet,
                  struct cu_err *e)
{
    char path[CU_PATH_MAX];
    const struct cu_migration *m;
    pthread_condattr_t ca;
    size_t nm;
    int rc;

    memset(st, 0, sizeof *st);
    st->lease_ms = lease_ms;
    st->devnet = devnet;
    rc = cu_mkdir_p(data_dir, 0700);
    if (rc)
        return cu_err_set(e, rc, "cannot create data directory %s", data_dir);
    rc = cu_path_join(path, sizeof path, data_dir, "blobs");
    if (rc)
        return cu_err_set(e, rc, "data directory path too long");
    rc = cu_blobstore_open(&st->blobs, path, e);
    if (rc)
        return rc;
    rc = cu_path_join(path, sizeof path, data_dir, "state.db");
    if (rc)
        return cu_err_set(e, rc, "data directory path too long");
    m = ex_schema(&nm);
    rc = cu_db_open(&st->db, path, m, nm, e);
    if (rc)
        return rc;
    rc = cu_db_group_start(&st->db, e); /* answers wait for ex_barrier */
    if (rc)
        goto out_close_db;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        rc = cu_err_set(e, -CU_ENOMEM, "cannot create a mutex");
        goto out_close_db;
    }
    if (lanes_init(st) != 0) {
        pthread_mutex_destroy(&st->mu);
        rc = cu_err_set(e, -CU_ENOMEM, "cannot create a mutex");
        goto out_close_db;
    }
    if (pthread_mutex_init(&st->nonce_mu, NULL) != 0) {
        lanes_destroy(st);
        pthread_mutex_destroy(&st->mu);
        rc = cu_err_set(e, -CU_ENOMEM, "cannot create a mutex");
        goto out_close_db;
    }
    /* The replay check's own reader (see "nonces"); the migrations above
     * made its table. */
    if (sqlite3_open_v2(path, &st->nonce_db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = cu_err_set(e, -CU_EDB, "cannot open %s for reading: %s", path,
                        st->nonce_db ? sqlite3_errmsg(st->nonce_db) : "out of memory");
        goto out_destroy_mutex;
    }
    sqlite3_busy_timeout(st->nonce_db, 5000);
    /* The metrics' reader (see "metrics"). */
    if (pthread_mutex_init(&st->metrics_mu, NULL) != 0) {
        rc = cu_err_set(e, -CU_ENOMEM, "cannot create a mutex");
        goto out_destroy_mutex;
    }
    if (sqlite3_open_v2(path, &st->metrics_db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = cu_err_set(e, -CU_EDB, "cannot open %s for reading: %s", path,
                        st->metrics_db ? sqlite3_errmsg(st->metrics_db) : "out of memory");
        goto out_close_metrics;
    }
    sqlite3_busy_timeout(st->metrics_db, 5000);
    /* Long-polls wait against the monotonic clock: a wall-clock step must
     * not end them early or keep them forever. */
    if (pthread_condattr_init(&ca) != 0) {
        rc = cu_err_set(e, -CU_ENOMEM, "cannot create a condition variable");
        goto out_close_metrics;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&st->work, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        rc = cu_err_set(e, -CU_ENOMEM, "cannot create a condition variable");
        goto out_close_metrics;
    }
    if (ex_replay_init(&st->reads, 0) != 0) {
        rc = cu_err_set(e, -CU_ENOMEM, "cannot allocate the read replay window");
        goto out_destroy_cond;
    }
    rc = ex_ledger_open(st, data_dir, e);
    if (rc)
        goto out_release_reads;
    st->legacy_nonces = legacy_nonces_left(st);
    return 0;

out_release_reads:
    ex_replay_release(&st->reads);
out_destroy_cond:
    pthread_cond_destroy(&st->work);
out_close_metrics:
    sqlite3_close(st->metrics_db); /* NULL is a no-op */
    st->metrics_db = NULL;
    pthread_mutex_destroy(&st->metrics_mu);
out_destroy_mutex:
    nonce_db_close(st);
    pthread_mutex_destroy(&st->nonce_mu);
    lanes_destroy(st);
    pthread_mutex_destroy(&st->mu);
out_close_db:
    cu_db_close(&st->db);
    return rc;
}

void ex_state_close(struct ex_state *st)
{
    ex_ledger_close(st);
    ex_replay_release(&st->reads);
    pthread_cond_destroy(&st->work);
    sqlite3_close(st->metrics_db);
    st->metrics_db = NULL;
    pthread_mutex_destroy(&st->metrics_mu);
    nonce_db_close(st);
    pthread_mutex_destroy(&st->nonce_mu);
    lanes_destroy(st);
    pthread_mutex_destroy(&st->mu);
    cu_db_close(&st->db);
}

void ex_state_stop(struct ex_state *st)
{
    lock(st);
    st->stopping = true;
    pthread_cond_broadcast(&st->work);
    unlock(st);
}

/* ---- nonces and the reaper ----------------------------------------------------- */

static int ex_nonces_flush_all(struct ex_state *st);

/* The replay check runs outside mu. It used to take mu for its two
 * lookups, so every signed request queued for mu twice, once behind
 * whatever held it for the check and once for its own work: under load
 * that doubled a claim's wait. Now the pending queue has its own mutex and
 * the table is read through a read-only connection of its own (WAL: it
 * sees every committed nonce, while mu's connection writes). No nonce
 * slips between the two: one leaves the queue only after the COMMIT that
 * put it in the table (ex_nonces_committed), so a lookup that no longer
 * finds it queued finds it in the table. */

/* The number of this thread's last nonce, and on which state. */
static __thread struct {
    struct ex_state *st;
    uint64_t no;
    bool owed;
} my_nonce;

/* 1 when (ts, key, nonce) is in the table, 0 when not, -CU_EDB. *sp is
 * prepared on first use and kept (freed by ex_state_close); signed_ms < 0
 * binds no timestamp. nonce_mu held. */
static int nonce_in_table(struct ex_state *st, sqlite3_stmt **sp, const char *sql,
                          int64_t signed_ms, const char *key, const char *nonce)
{
    sqlite3_stmt *s;
    int rc, i = 1;

    if (!*sp && sqlite3_prepare_v3(st->nonce_db, sql, -1, SQLITE_PREPARE_PERSISTENT, sp, NULL) !=
                    SQLITE_OK)
        return -CU_EDB;
    s = *sp;
    if (signed_ms >= 0 && sqlite3_bind_int64(s, i++, signed_ms) != SQLITE_OK)
        rc = -CU_EDB;
    else if (sqlite3_bind_text(s, i++, key, -1, SQLITE_STATIC) != SQLITE_OK ||
             sqlite3_bind_text(s, i, nonce, -1, SQLITE_STATIC) != SQLITE_OK)
        rc = -CU_EDB;
    else {
        rc = sqlite3_step(s);
        rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -CU_EDB;
    }
    sqlite3_reset(s); /* ends the read transaction */
    sqlite3_clear_bindings(s);
    return rc;
}

int ex_nonce_use(struct ex_state *st, const char *key, const char *nonce, int64_t signed_ms,
                 struct cu_err *e)
{
    struct ex_nonces *q = &st->nonces;
    int rc = 0, flushes = 0;

again:
    pthread_mutex_lock(&st->nonce_mu);
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->p[i].nonce, nonce) == 0 && strcmp(q->p[i].key, key) == 0) {
            pthread_mutex_unlock(&st->nonce_mu);
            return cu_err_set(e, -CU_EAUTH, "replayed: nonce already used");
        }
    }
    /* A replay carries the signed timestamp it was signed with: one seek. */
    rc = nonce_in_table(st, &st->nonce_q,
                        "SELECT 1 FROM nonces_signed WHERE ts_ms = ?1 AND key = ?2 AND nonce = ?3",
                        signed_ms, key, nonce);
    if (rc == 0 && __atomic_load_n(&st->legacy_nonces, __ATOMIC_RELAXED)) /* before migration 18 */
        rc = nonce_in_table(st, &st->nonce_legacy_q,
                            "SELECT 1 FROM nonces WHERE key = ?1 AND nonce = ?2", -1, key, nonce);
    if (rc == 1) {
        pthread_mutex_unlock(&st->nonce_mu);
        return cu_err_set(e, -CU_EAUTH, "replayed: nonce already used");
    }
    /* A full queue is written now (rare: it empties at every commit).
     * nonce_mu is let go meanwhile, so the same nonce (a replay racing its
     * original) may have queued or been committed by then: look again
     * from the start. */
    if (rc == 0 && q->n == EX_NONCES_PENDING && flushes++ < 2) {
        pthread_mutex_unlock(&st->nonce_mu);
        rc = ex_nonces_flush_all(st);
        if (rc == 0)
            goto again;
        pthread_mutex_lock(&st->nonce_mu);
    }
    if (rc == 0 && q->n == EX_NONCES_PENDING)
        rc = -CU_EAGAIN; /* others filled it meanwhile: the client retries */
    if (rc == 0) {
        (void)cu_snprintf(q->p[q->n].key, sizeof q->p[q->n].key, "%s", key);
        (void)cu_snprintf(q->p[q->n].nonce, sizeof q->p[q->n].nonce, "%s", nonce);
        q->p[q->n].ts_ms = signed_ms;
        my_nonce.st = st;
        my_nonce.no = q->base + q->n;
        my_nonce.owed = true;
        q->n++;
    }
    pthread_mutex_unlock(&st->nonce_mu);
    if (rc == -CU_EAGAIN)
        return cu_err_set(e, rc, "too many requests at once; try again");
    if (rc)
        return cu_err_set(e, -CU_EDB, "database error while recording the nonce");
    return 0;
}

int ex_nonces_stage(struct ex_state *st)
{
    struct ex_nonces *q = &st->nonces;
    size_t n;

    /* The first n stay where they are until ex_nonces_committed (under mu,
     * as here): nonce_use only appends behind them. */
    pthread_mutex_lock(&st->nonce_mu);
    n = q->n;
    pthread_mutex_unlock(&st->nonce_mu);
    for (size_t i = 0; i < n; i++) {
        /* OR IGNORE: a nonce is checked against the table before it
         * queues, so a conflict cannot happen; it must not fail a commit. */
        if (ex_sql_run(st,
                       "INSERT OR IGNORE INTO nonces_signed (ts_ms, key, nonce) VALUES (?1, ?2, ?3)",
                       "itt", q->p[i].ts_ms, q->p[i].key, q->p[i].nonce) != 0)
            return -CU_EDB;
    }
    return (int)n;
}

void ex_nonces_committed(struct ex_state *st, size_t n)
{
    struct ex_nonces *q = &st->nonces;

    if (n == 0)
        return;
    pthread_mutex_lock(&st->nonce_mu);
    assert(n <= q->n);
    memmove(&q->p[0], &q->p[n], (q->n - n) * sizeof q->p[0]);
    q->n -= n;
    /* Called by the committing thread right after its COMMIT: the commit's
     * number is its own to owe. Those whose nonces it carried owe it too. */
    __atomic_store_n(&q->seq, cu_db_owed(&st->db), __ATOMIC_RELEASE);
    __atomic_store_n(&q->base, q->base + n, __ATOMIC_RELEASE); /* read without nonce_mu */
    pthread_mutex_unlock(&st->nonce_mu);
}

/* Commits every pending nonce in a transaction of its own. Takes mu. */
static int ex_nonces_flush_all(struct ex_state *st)
{
    size_t n;
    int rc;

    lock(st);
    pthread_mutex_lock(&st->nonce_mu);
    n = st->nonces.n;
    pthread_mutex_unlock(&st->nonce_mu);
    if (n == 0) {
        unlock(st);
        return 0;
    }
    rc = ex_txn_begin(st, NULL);
    if (!rc)
        rc = ex_txn_commit(st, cu_now_ms(), NULL); /* stages the nonces */
    unlock(st);
    return rc;
}

int ex_nonces_flush(struct ex_state *st)
{
    bool owed;

    if (!my_nonce.owed || my_nonce.st != st)
        return 0;
    my_nonce.owed = false;
    /* Without a lock: most nonces were carried by a commit already, maybe
     * another thread's; then this answer waits for that commit's sync too
     * (the newest carrying commit's: its number is at least as high, and
     * the group commit syncs every commit up to the newest anyway). */
    owed = my_nonce.no >= __atomic_load_n(&st->nonces.base, __ATOMIC_ACQUIRE);
    if (owed)
        return ex_nonces_flush_all(st);
    cu_db_owe(&st->db, __atomic_load_n(&st->nonces.seq, __ATOMIC_ACQUIRE));
    return 0;
}

/* Whether the pre-18 nonces table still has rows. mu held (or not yet
 * shared). On a database error: true, the safe answer. */
static bool legacy_nonces_left(struct ex_state *st)
{
    sqlite3_stmt *s = ex_sql_cached(st, "SELECT 1 FROM nonces LIMIT 1", "");
    int rc = s ? ex_sql_step(st, s) : -CU_EDB;

    ex_sql_done(st, s);
    return rc != 0;
}

int ex_reap(struct ex_state *st, int64_t now_ms)
{
    struct lost {
        int64_t id, idx;
        char job[32];
        char provider[CU_HASH_HEX_LEN + 1];
        enum cu_replica_state state;
    } lost[64];
    size_t n = 0;
    sqlite3_stmt *s;
    bool queued = false, prune;
    int rc;

    lock(st);
    /* At most a batch per round: a later round takes the rest. */
    s = ex_sql_cached(st,
              "SELECT id, job_id, task_idx, provider, state FROM replicas "
              "WHERE state IN ('leased','running') AND lease_expires_ms < ?1 "
              "ORDER BY lease_expires_ms LIMIT 64",
              "i", now_ms);
    if (!s) {
        rc = -CU_EDB;
        goto out_unlock;
    }
    while ((rc = ex_sql_step(st, s)) == 1 && n < sizeof lost / sizeof lost[0]) {
        struct lost *l = &lost[n];
        l->id = sqlite3_column_int64(s, 0);
        ex_col_copy(s, 1, l->job, sizeof l->job);
        l->idx = sqlite3_column_int64(s, 2);
        ex_col_copy(s, 3, l->provider, sizeof l->provider);
        if (cu_replica_state_parse(ex_col_text(s, 4), &l->state) == 0)
            n++;
    }
    ex_sql_done(st, s);
    if (rc < 0)
        goto out_unlock;

    prune = now_ms - st->pruned_ms >= EX_PRUNE_EVERY_MS;
    if (n == 0 && !prune) {
        rc = 0;
        goto out_unlock;
    }
    rc = ex_txn_begin(st, NULL);
    if (rc)
        goto out_unlock;
    for (size_t i = 0; i < n && !rc; i++) {
        struct lost *l = &lost[i];
        rc = replica_move(st, l->id, l->state, CU_REPLICA_EXPIRED);
        if (!rc)
            rc = ex_settle_lost(st, l->id, true, now_ms);
        if (!rc)
            rc = ex_sql_run(st, "UPDATE replicas SET reason = 'lease expired' WHERE id = ?1", "i", l->id);
        if (!rc)
            rc = task_replica_lost(st, l->job, l->idx, "lease expired", now_ms, &queued);
        if (!rc)
            rc = task_refresh(st, l->job, l->idx);
    }
    /* A request signed before now - EX_NONCE_TTL_MS is refused as stale
     * (CU_REQSIGN_MAX_SKEW_S is less): its nonce is no longer needed. */
    if (!rc && prune)
        rc = ex_sql_run(st, "DELETE FROM nonces_signed WHERE ts_ms < ?1", "i",
                        now_ms - EX_NONCE_TTL_MS);
    if (!rc && prune && st->legacy_nonces)
        rc = ex_sql_run(st, "DELETE FROM nonces WHERE ts_ms < ?1", "i", now_ms - EX_NONCE_TTL_MS);
    if (!rc)
        rc = ex_txn_commit(st, now_ms, NULL);
    if (rc) {
        ex_txn_rollback(st);
        queued = false;
        goto out_unlock;
    }
    if (prune)
        st->pruned_ms = now_ms;
    if (prune && st->legacy_nonces)
        __atomic_store_n(&st->legacy_nonces, legacy_nonces_left(st), __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++)
        cu_info("lease of replica %lld expired (task %s/%lld, provider %.8s)",
                (long long)lost[i].id, lost[i].job, (long long)lost[i].idx,
                short_id(lost[i].provider));
    if (queued)
        wake_claimers(st);
    rc = (int)n;
out_unlock:
    unlock(st);
    return rc;
}

/* ---- jobs ------------------------------------------------------------------------ */

int ex_job_submit(struct ex_state *st, const struct ex_submit *sub, bool *existed,
                  struct ex_fail *f)
{
    const struct cu_spec *sp = sub->spec;
    sqlite3_stmt *task = NULL, *rep = NULL;
    struct ex_terms terms;
    int rc;

    *existed = false;
    rc = ex_settle_terms(st, sp, &terms, f);
    if (rc)
        return rc;
    lock(st);
    {
        sqlite3_stmt *s = ex_sql_cached(st, "SELECT 1 FROM jobs WHERE id = ?1", "t", sub->id);
        if (!s) {
            rc = ex_fail_db(st, f, "looking up the job");
            goto out_unlock;
        }
        rc = ex_sql_step(st, s);
        ex_sql_done(st, s);
        if (rc < 0) {
            rc = ex_fail_db(st, f, "looking up the job");
            goto out_unlock;
        }
        if (rc == 1) {
            *existed = true;
            rc = 0;
            goto out_unlock;
        }
    }
    if (ex_txn_begin(st, NULL)) {
        rc = ex_fail_db(st, f, "starting a transaction");
        goto out_unlock;
    }
    rc = ex_sql_run(
        st,
        "INSERT INTO jobs (id, owner, name, state, spec_json, submit_body, submit_sig_json, "
        "task_count, replication, cores, memory, gpus, output_limit, created_ms) "
        "VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        "ttttbtiiiiiii", sub->id, sub->owner, sp->name, sub->spec_json, sub->body, sub->body_len,
        sub->sig_json, (int64_t)sp->task_count, (int64_t)sp->replication, (int64_t)sp->res.cores,
        (int64_t)(sp->res.memory > INT64_MAX ? INT64_MAX : sp->res.memory), (int64_t)sp->res.gpus,
        (int64_t)(sp->res.output > INT64_MAX ? INT64_MAX : sp->res.output), sub->now_ms);
    if (rc) {
        rc = ex_fail_db(st, f, "storing the job");
        goto out_rollback;
    }
    {
        json_t *specj = json_loads(sub->spec_json, 0, NULL);
        json_t *ch = json_object_get(specj, "challenge");
        char *ch_s = ch ? json_dumps(ch, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        uint32_t pmin, pq, pmax;
        char img[CU_HASH_HEX_LEN + 1] = "";
        uint64_t input_bytes = cu_spec_image_is_oci(sp) ? sp->image_oci.size : 0;
        for (size_t i = 0; i < sp->ninputs; i++)
            if (cu_add_u64(input_bytes, sp->inputs[i].size, &input_bytes) != 0)
                input_bytes = UINT64_MAX;
        json_decref(specj);
        if (cu_spec_image_is_oci(sp))
            cu_hash_to_hex(&sp->image_oci.hash, img);
        cu_spec_policy(sp, &pmin, &pq, &pmax);
        rc = ex_sql_run(st,
                        "UPDATE jobs SET bid = ?2, max_cu = ?3, fee_bps = ?4, escrow_fee = ?5, "
                        "replica_max = ?6, locked = ?7, quorum = ?8, max_replicas = ?9, "
                        "min_reputation = ?10, challenge = ?11, adaptive = ?12, "
                        "image_hash = ?13, input_bytes = ?14 WHERE id = ?1",
                        "tiiiiiiiiititi", sub->id, (int64_t)terms.bid, (int64_t)terms.max_cu,
                        (int64_t)terms.fee_bps, (int64_t)terms.escrow_fee,
                        (int64_t)terms.replica_max, (int64_t)terms.job_max, (int64_t)pq,
                        (int64_t)pmax, (int64_t)sp->min_reputation, ch_s,
                        (int64_t)(sp->adaptive ? 1 : 0), cu_spec_image_is_oci(sp) ? img : NULL,
                        (int64_t)(input_bytes > INT64_MAX ? INT64_MAX : input_bytes));
        free(ch_s);
    }
    if (rc) {
        rc = ex_fail_db(st, f, "storing the job");
        goto out_rollback;
    }
    /* The escrow lock commits with the job: no job runs unfunded. */
    rc = ex_settle_lock(st, sub->id, sub->owner, &terms, sub->auth, f);
    if (rc)
        goto out_rollback;
    task = ex_sql_cached(st, "INSERT INTO tasks (job_id, idx, state, arg) VALUES (?1, ?2, 'queued', ?3)",
                 "t", sub->id);
    rep = ex_sql_cached(
        st,
        "INSERT INTO replicas (job_id, task_idx, state, created_ms) VALUES (?1, ?2, 'queued', ?3)",
        "t", sub->id);
    if (!task || !rep) {
        rc = ex_fail_db(st, f, "storing the tasks");
        goto out_rollback;
    }
    sqlite3_bind_int64(rep, 3, sub->now_ms);
    for (uint32_t i = 0; i < sp->task_count; i++) {
        sqlite3_bind_int64(task, 2, i);
        if (sp->task_args)
            sqlite3_bind_text(task, 3, sp->task_args[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(task, 3);
        if (ex_sql_step(st, task) < 0) {
            rc = ex_fail_db(st, f, "storing the tasks");
            goto out_rollback;
        }
        sqlite3_reset(task);
        sqlite3_bind_int64(rep, 2, i);
        /* Adaptive jobs start with one replica per task; the plan made
         * when it is leased says whether more follow. */
        for (uint32_t r = 0; r < (sp->adaptive ? 1u : sp->replication); r++) {
            if (ex_sql_step(st, rep) < 0) {
                rc = ex_fail_db(st, f, "storing the replicas");
                goto out_rollback;
            }
            sqlite3_reset(rep);
        }
    }
    ex_sql_done(st, task);
    ex_sql_done(st, rep);
    task = rep = NULL;
    rc = ex_txn_commit(st, sub->now_ms, f);
    if (rc)
        goto out_rollback;
    wake_claimers(st);
    unlock(st);
    cu_info("job %s submitted by %.8s: '%s', %u tasks x %u replicas, %llu locked in escrow",
            sub->id, sub->owner, sp->name, sp->task_count, sp->replication,
            (unsigned long long)terms.job_max);
    return 0;

out_rollback:
    ex_sql_done(st, task);
    ex_sql_done(st, rep);
    ex_txn_rollback(st);
out_unlock:
    unlock(st);
    return rc;
}

/* The job's summary from a row of SUMMARY_COLS over SUMMARY_FROM: its
 * task counts and accepted CU are kept by triggers (schema.c, 15), so a
 * poll reads one row, whatever the job's size. mu held. */
#define SUMMARY_COLS                                                                               \
    "jobs.id, jobs.name, jobs.owner, jobs.state, jobs.created_ms, jobs.finished_ms, "          \
    "jobs.reason, jobs.task_count, c.queued, c.running, c.done, c.failed, c.cancelled, "        \
    "c.cu_milli"
#define SUMMARY_NCOLS 14
#define SUMMARY_FROM "jobs LEFT JOIN job_counts c ON c.job_id = jobs.id"

static json_t *job_summary(sqlite3_stmt *row)
{
    static const char *const states[] = {"queued", "running", "done", "failed", "cancelled"};
    json_t *j, *counts;

    j = json_object();
    counts = json_object();
    if (!j || !counts)
        goto out_free;
    json_object_set_new(j, "id", ex_col_jtext(row, 0));
    json_object_set_new(j, "name", ex_col_jtext(row, 1));
    json_object_set_new(j, "owner", ex_col_jtext(row, 2));
    json_object_set_new(j, "state", ex_col_jtext(row, 3));
    json_object_set_new(j, "created_ms", ex_col_jint(row, 4));
    json_object_set_new(j, "finished_ms", ex_col_jint(row, 5));
    json_object_set_new(j, "reason", ex_col_jtext(row, 6));
    json_object_set_new(counts, "total", ex_col_jint(row, 7));
    for (int i = 0; i < (int)(sizeof states / sizeof states[0]); i++)
        json_object_set_new(counts, states[i], json_integer(sqlite3_column_int64(row, 8 + i)));
    json_object_set_new(j, "counts", counts);
    json_object_set_new(j, "cu_milli", json_integer(sqlite3_column_int64(row, 13)));
    return j;
out_free:
    json_decref(counts);
    json_decref(j);
    return NULL;
}

json_t *ex_job_list(struct ex_state *st, const char *owner, struct ex_fail *f)
{
    json_t *out = json_object(), *arr = json_array();
    sqlite3_stmt *s;
    int rc;

    if (!out || !arr) {
        ex_fail_set(f, 500, "internal", "out of memory");
        goto out_free;
    }
    lock(st);
    s = ex_sql_cached(st,
              "SELECT " SUMMARY_COLS " FROM " SUMMARY_FROM " WHERE jobs.owner = ?1 "
              "ORDER BY jobs.created_ms DESC, jobs.id DESC LIMIT ?2",
              "ti", owner, (int64_t)MAX_LIST_JOBS);
    if (!s) {
        ex_fail_db(st, f, "listing jobs");
        unlock(st);
        goto out_free;
    }
    while ((rc = ex_sql_step(st, s)) == 1) {
        json_t *j = job_summary(s);
        if (!j) {
            rc = -CU_EDB;
            break;
        }
        json_array_append_new(arr, j);
    }
    ex_sql_done(st, s);
    if (rc < 0) {
        ex_fail_db(st, f, "listing jobs");
        unlock(st);
        goto out_free;
    }
    unlock(st);
    json_object_set_new(out, "jobs", arr);
    return out;
out_free:
    json_decref(arr);
    json_decref(out);
    return NULL;
}

/* Looks up job id for `who`: 0 with the row's owner checked, or 404/403.
 * *row is the stepped statement over SUMMARY_COLS plus spec_json (caller
 * finalizes). mu held. */
static int job_row(struct ex_state *st, const char *id, const char *who, sqlite3_stmt **row,
                   struct ex_fail *f)
{
    sqlite3_stmt *s;
    int rc;

    *row = NULL;
    s = ex_sql_cached(st, "SELECT " SUMMARY_COLS ", jobs.spec_json FROM " SUMMARY_FROM " WHERE jobs.id = ?1", "t", id);
    if (!s)
        return ex_fail_db(st, f, "reading the job");
    rc = ex_sql_step(st, s);
    if (rc < 0) {
        ex_sql_done(st, s);
        return ex_fail_db(st, f, "reading the job");
    }
    if (rc == 0) {
        ex_sql_done(st, s);
        return ex_fail_set(f, 404, "not_found", "job '%s' not found", id);
    }
    if (!ex_col_text(s, 2) || strcmp(ex_col_text(s, 2), who) != 0) {
        ex_sql_done(st, s);
        return ex_fail_set(f, 403, "forbidden", "job '%s' belongs to another key", id);
    }
    *row = s;
    return 0;
}

/* A replica as docs/api.md shows it, from the columns of REPLICA_COLS. */
#define REPLICA_COLS                                                                               \
    "id, provider, state, exit_code, status, reason, cpu_ms, wall_ms, merkle_root, leased_ms, "    \
    "reported_ms, task_idx, outputs_json, price_per_cu, cu_milli, commit_hash IS NOT NULL, "    \
    "slashed, paid, (SELECT p.owner FROM providers p WHERE p.id = replicas.provider)"

static json_t *replica_json(sqlite3_stmt *s)
{
    json_t *r = json_object();

    if (!r)
        return NULL;
    json_object_set_new(r, "id", ex_col_jint(s, 0));
    json_object_set_new(r, "provider", ex_col_jtext(s, 1));
    json_object_set_new(r, "state", ex_col_jtext(s, 2));
    json_object_set_new(r, "exit_code", ex_col_jint(s, 3));
    json_object_set_new(r, "status", ex_col_jtext(s, 4));
    json_object_set_new(r, "reason", ex_col_jtext(s, 5));
    json_object_set_new(r, "cpu_ms", ex_col_jint(s, 6));
    json_object_set_new(r, "wall_ms", ex_col_jint(s, 7));
    json_object_set_new(r, "merkle_root", ex_col_jtext(s, 8));
    json_object_set_new(r, "leased_ms", ex_col_jint(s, 9));
    json_object_set_new(r, "reported_ms", ex_col_jint(s, 10));
    json_object_set_new(r, "price_per_cu", ex_col_jint(s, 13));
    json_object_set_new(r, "cu_milli", ex_col_jint(s, 14));
    json_object_set_new(r, "committed", json_boolean(sqlite3_column_int64(s, 15) != 0));
    json_object_set_new(r, "slashed", json_integer(sqlite3_column_int64(s, 16)));
    json_object_set_new(r, "paid", ex_col_jint(s, 17));
    json_object_set_new(r, "provider_owner", ex_col_jtext(s, 18));
    {
        const char *st_s = ex_col_text(s, 2), *status = ex_col_text(s, 4);
        const char *reason = ex_col_text(s, 5);
        json_t *agreed = json_null();
        if (st_s && strcmp(st_s, "accepted") == 0)
            agreed = json_true();
        else if (st_s && status && strcmp(status, "ok") == 0 &&
                 (strcmp(st_s, "rejected") == 0 ||
                  (reason && strcmp(reason, "report does not match its commitment") == 0)) &&
                 !(reason && strcmp(reason, "duplicate owner") == 0))
            agreed = json_false();
        json_object_set_new(r, "agreed", agreed);
        if (json_is_false(agreed) && ex_col_text(s, 12))
            json_object_set_new(r, "_outputs", json_loads(ex_col_text(s, 12), 0, NULL));
    }
    return r;
}

/* Names in a's outputs that b lacks or holds with another hash. */
static json_t *differing_files(const json_t *a, const json_t *b)
{
    json_t *out = json_array(), *x, *y;
    size_t i, k;

    json_array_foreach(a, i, x) {
        const char *name = json_string_value(json_object_get(x, "name"));
        const char *hash = json_string_value(json_object_get(x, "hash"));
        bool same = false;
        json_array_foreach(b, k, y) {
            const char *n2 = json_string_value(json_object_get(y, "name"));
            const char *h2 = json_string_value(json_object_get(y, "hash"));
            if (name && n2 && hash && h2 && strcmp(name, n2) == 0)
                same = strcmp(hash, h2) == 0;
        }
        if (!same && name)
            json_array_append_new(out, json_string(name));
    }
    json_array_foreach(b, k, y) { /* files only the winner has */
        const char *n2 = json_string_value(json_object_get(y, "name"));
        bool found = false;
        json_array_foreach(a, i, x) {
            const char *name = json_string_value(json_object_get(x, "name"));
            if (name && n2 && strcmp(name, n2) == 0)
                found = true;
        }
        if (!found && n2)
            json_array_append_new(out, json_string(n2));
    }
    return out;
}

/* A task's "disagreement": for each replica whose result lost, the files
 * that differ from the winning result. Drops the replicas' "_outputs". */
static void task_disagreement(json_t *t)
{
    json_t *reps = json_object_get(t, "replicas"), *r, *list = NULL;
    json_t *win = json_object_get(json_object_get(t, "result"), "outputs");
    size_t i;

    json_array_foreach(reps, i, r) {
        json_t *mine = json_object_get(r, "_outputs");
        if (mine && json_is_array(win)) {
            if (!list)
                list = json_array();
            json_array_append_new(list, json_pack("{s:O,s:o}", "replica", json_object_get(r, "id"),
                                                  "files", differing_files(mine, win)));
        }
        json_object_del(r, "_outputs");
    }
    if (list)
        json_object_set_new(t, "disagreement", list);
}

/* The result object of a done task from its accepted replica's row. */
static json_t *result_json(sqlite3_stmt *s)
{
    json_t *r = json_object(), *outputs = NULL;
    const char *oj = ex_col_text(s, 12);

    if (!r)
        return NULL;
    if (oj)
        outputs = json_loads(oj, 0, NULL);
    json_object_set_new(r, "replica", ex_col_jint(s, 0));
    json_object_set_new(r, "merkle_root", ex_col_jtext(s, 8));
    json_object_set_new(r, "exit_code", ex_col_jint(s, 3));
    json_object_set_new(r, "cpu_ms", ex_col_jint(s, 6));
    json_object_set_new(r, "wall_ms", ex_col_jint(s, 7));
    json_object_set_new(r, "outputs", outputs ? outputs : json_array());
    return r;
}

json_t *ex_job_get(struct ex_state *st, const char *id, const char *who, struct ex_fail *f)
{
    sqlite3_stmt *row = NULL, *ts = NULL, *rs = NULL;
    json_t *j = NULL, *tasks = NULL, *spec;
    json_t **by_idx = NULL;
    int64_t ntasks;
    int rc;

    lock(st);
    if (job_row(st, id, who, &row, f))
        goto out_unlock;
    j = job_summary(row);
    tasks = json_array();
    if (!j || !tasks)
        goto out_db;
    spec = ex_col_text(row, SUMMARY_NCOLS) ? json_loads(ex_col_text(row, SUMMARY_NCOLS), 0, NULL) : NULL;
    json_object_set_new(j, "spec", spec ? spec : json_null());
    {
        json_t *bill = ex_settle_bill(st, id), *waiting = ex_job_waiting(st, id, cu_now_ms());
        json_object_set_new(j, "bill", bill ? bill : json_null());
        json_object_set_new(j, "waiting", waiting ? waiting : json_null());
    }
    ntasks = sqlite3_column_int64(row, 7);
    by_idx = calloc(ntasks > 0 ? (size_t)ntasks : 1, sizeof *by_idx);
    if (!by_idx)
        goto out_db;

    ts = ex_sql_cached(st,
               "SELECT idx, state, arg, attempts, reason, result_replica FROM tasks "
               "WHERE job_id = ?1 ORDER BY idx",
               "t", id);
    if (!ts)
        goto out_db;
    while ((rc = ex_sql_step(st, ts)) == 1) {
        int64_t idx = sqlite3_column_int64(ts, 0);
        json_t *t = json_object();
        if (!t)
            goto out_db;
        json_object_set_new(t, "index", json_integer(idx));
        json_object_set_new(t, "state", ex_col_jtext(ts, 1));
        json_object_set_new(t, "arg", ex_col_jtext(ts, 2));
        json_object_set_new(t, "attempts", ex_col_jint(ts, 3));
        json_object_set_new(t, "reason", ex_col_jtext(ts, 4));
        json_object_set_new(t, "result", json_null());
        json_object_set_new(t, "result_replica", ex_col_jint(ts, 5)); /* removed below */
        json_object_set_new(t, "replicas", json_array());
        json_array_append_new(tasks, t);
        if (idx >= 0 && idx < ntasks)
            by_idx[idx] = t;
    }
    if (rc < 0)
        goto out_db;

    rs = ex_sql_cached(st, "SELECT " REPLICA_COLS " FROM replicas WHERE job_id = ?1 ORDER BY task_idx, id",
               "t", id);
    if (!rs)
        goto out_db;
    while ((rc = ex_sql_step(st, rs)) == 1) {
        int64_t idx = sqlite3_column_int64(rs, 11);
        json_t *t = idx >= 0 && idx < ntasks ? by_idx[idx] : NULL;
        if (!t)
            continue;
        json_array_append_new(json_object_get(t, "replicas"), replica_json(rs));
        json_t *res = json_object_get(t, "result_replica");
        if (json_is_integer(res) && json_integer_value(res) == sqlite3_column_int64(rs, 0))
            json_object_set_new(t, "result", result_json(rs));
    }
    if (rc < 0)
        goto out_db;
    for (int64_t i = 0; i < ntasks; i++) {
        if (by_idx[i]) {
            json_object_del(by_idx[i], "result_replica");
            task_disagreement(by_idx[i]);
        }
    }
    json_object_set_new(j, "tasks", tasks);
    tasks = NULL;
    goto out_finalize;

out_db:
    ex_fail_db(st, f, "reading the job");
    json_decref(j);
    j = NULL;
out_finalize:
    json_decref(tasks);
    free(by_idx);
    ex_sql_done(st, rs);
    ex_sql_done(st, ts);
    ex_sql_done(st, row);
out_unlock:
    unlock(st);
    return j;
}

int ex_job_cancel(struct ex_state *st, const char *id, const char *who, int64_t now_ms,
                  struct ex_fail *f)
{
    sqlite3_stmt *row = NULL;
    char state[16];
    int rc;

    lock(st);
    rc = job_row(st, id, who, &row, f);
    if (rc)
        goto out_unlock;
    ex_col_copy(row, 3, state, sizeof state);
    ex_sql_done(st, row);
    if (strcmp(state, "running") != 0) {
        rc = ex_fail_set(f, 409, "job_finished", "job '%s' is already %s", id, state);
        goto out_unlock;
    }
    if (ex_txn_begin(st, NULL)) {
        rc = ex_fail_db(st, f, "starting a transaction");
        goto out_unlock;
    }
    assert(cu_replica_can_transition(CU_REPLICA_QUEUED, CU_REPLICA_CANCELLED) &&
           cu_replica_can_transition(CU_REPLICA_REPORTED, CU_REPLICA_CANCELLED));
    rc = ex_sql_run(st,
             "UPDATE jobs SET state = 'cancelled', reason = 'cancelled by owner', finished_ms = ?2 "
             "WHERE id = ?1",
             "ti", id, now_ms);
    if (!rc)
        rc = ex_sql_run(st,
                 "UPDATE tasks SET state = 'cancelled', finished_ms = ?2, held = 0 "
                 "WHERE job_id = ?1 AND state IN ('queued','running')",
                 "ti", id, now_ms);
    /* Held replicas are told at their next heartbeat and report `killed`. */
    if (!rc)
        rc = ex_sql_run(st,
                 "UPDATE replicas SET state = 'cancelled' "
                 "WHERE job_id = ?1 AND state IN ('queued','reported')",
                 "t", id);
    /* The refund commits with the cancellation. */
    if (!rc)
        rc = ex_settle_job_end(st, id, now_ms);
    if (!rc)
        rc = ex_txn_commit(st, now_ms, NULL);
    if (rc) {
        rc = ex_fail_db(st, f, "cancelling the job");
        ex_txn_rollback(st);
        goto out_unlock;
    }
    cu_info("job %s cancelled by its owner", id);
out_unlock:
    unlock(st);
    return rc;
}

int ex_logs_find(struct ex_state *st, const char *job, int64_t task, const char *who,
                 struct ex_logs_ref *out, struct ex_fail *f)
{
    sqlite3_stmt *row = NULL, *s = NULL;
    int64_t ntasks;
    int rc;

    memset(out, 0, sizeof *out);
    lock(st);
    rc = job_row(st, job, who, &row, f);
    if (rc)
        goto out_unlock;
    ntasks = sqlite3_column_int64(row, 7);
    ex_sql_done(st, row);
    if (task < 0 || task >= ntasks) {
        rc = ex_fail_set(f, 404, "not_found", "job '%s' has no task %lld", job, (long long)task);
        goto out_unlock;
    }
    s = ex_sql_cached(st,
              "SELECT id, status, exit_code, reason, stdout_hash, stderr_hash FROM replicas "
              "WHERE job_id = ?1 AND task_idx = ?2 AND reported_ms IS NOT NULL "
              "ORDER BY reported_ms DESC, id DESC LIMIT 1",
              "ti", job, task);
    if (!s) {
        rc = ex_fail_db(st, f, "reading the logs");
        goto out_unlock;
    }
    rc = ex_sql_step(st, s);
    if (rc < 0) {
        rc = ex_fail_db(st, f, "reading the logs");
    } else if (rc == 0) {
        rc =
            ex_fail_set(f, 404, "not_found", "no replica of task %lld of job '%s' has reported yet",
                        (long long)task, job);
    } else {
        out->replica = sqlite3_column_int64(s, 0);
        ex_col_copy(s, 1, out->status, sizeof out->status);
        out->has_exit = !ex_col_null(s, 2);
        out->exit_code = sqlite3_column_int64(s, 2);
        out->has_reason = !ex_col_null(s, 3);
        ex_col_copy(s, 3, out->reason, sizeof out->reason);
        ex_col_copy(s, 4, out->stdout_hash, sizeof out->stdout_hash);
        ex_col_copy(s, 5, out->stderr_hash, sizeof out->stderr_hash);
        rc = 0;
    }
    ex_sql_done(st, s);
out_unlock:
    unlock(st);
    return rc;
}

/* ---- providers --------------------------------------------------------------------- */

int ex_provider_hello(struct ex_state *st, const char *provider, const struct ex_hello *h,
                      int64_t now_ms, struct ex_fail *f)
{
    int rc;

    lock(st);
    rc = ex_sql_run(
        st,
        "INSERT INTO providers (id, first_seen_ms, last_seen_ms, slots, cores, memory, gpus, "
        "version, price_per_cu, cu_factor_milli, owner, allow_images, disk) "
        "VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
        "ON CONFLICT(id) DO UPDATE SET last_seen_ms = ?2, slots = ?3, cores = ?4, "
        "memory = ?5, gpus = ?6, version = ?7, price_per_cu = ?8, cu_factor_milli = ?9, "
        "owner = ?10, allow_images = ?11, disk = ?12",
        "tiiiiitiitti", provider, now_ms, (int64_t)h->slots, (int64_t)h->cores,
        (int64_t)(h->memory > INT64_MAX ? INT64_MAX : h->memory), (int64_t)h->gpus, h->version,
        clamp_i64(h->price_per_cu), clamp_i64(h->cu_factor_milli),
        h->owner ? h->owner : provider, h->allow_images, clamp_i64(h->disk));
    if (rc)
        rc = ex_fail_db(st, f, "registering the provider");
    unlock(st);
    if (!rc)
        cu_info("provider %.8s hello: %llu slots, %llu cores, %llu MiB, %llu GPUs, version %s",
                provider, (unsigned long long)h->slots, (unsigned long long)h->cores,
                (unsigned long long)(h->memory >> 20), (unsigned long long)h->gpus,
                h->version ? h->version : "?");
    return rc;
}

/* Marks the provider seen (registering it if it never said hello), to
 * the second: "online" means seen within a minute or more, and leaving
 * the row alone when it was marked this second spares every claim and
 * heartbeat of a busy provider a page in the commit. mu held. */
#define SEEN_GRAIN_MS 1000
static int provider_seen(struct ex_state *st, const char *provider, int64_t now)
{
    return ex_sql_run(st,
               "INSERT INTO providers (id, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?2) "
               "ON CONFLICT(id) DO UPDATE SET last_seen_ms = ?2 WHERE last_seen_ms <= ?2 - ?3",
               "tii", provider, now, (int64_t)SEEN_GRAIN_MS);
}

/* One attempt to lease a queued replica to provider. 0 with *lease set or
 * NULL (nothing fits); negative on a database failure. mu held. */
/* Adaptive replication (docs/trust.md): when the first replica of a task
 * of an adaptive job is leased, plan the task from the provider's record:
 * solo (no more replicas), audited solo, or the job's normal policy (the
 * missing replicas are queued now). In the lease's transaction. mu held. */
static int adaptive_plan(struct ex_state *st, const char *job, int64_t idx, const char *provider,
                         int64_t now)
{
    struct cu_adaptive_plan plan;
    struct cu_replication normal;
    sqlite3_stmt *s;
    int64_t adaptive = 0, min = 0, quorum = 0, max = 0;
    bool planned = true;
    int rc;

    s = ex_sql_cached(st,
                     "SELECT j.adaptive, j.replication, j.quorum, j.max_replicas, t.plan IS NOT NULL "
                     "FROM jobs j JOIN tasks t ON t.job_id = j.id WHERE j.id = ?1 AND t.idx = ?2",
                     "ti", job, idx);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        adaptive = sqlite3_column_int64(s, 0);
        min = sqlite3_column_int64(s, 1);
        quorum = sqlite3_column_int64(s, 2);
        max = sqlite3_column_int64(s, 3);
        planned = sqlite3_column_int64(s, 4) != 0;
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    if (!adaptive || planned)
        return 0;
    normal = (struct cu_replication){.min = (unsigned)min, .quorum = (unsigned)quorum,
                                     .max = (unsigned)max, .fail_fast = false};
    rc = ex_trust_adaptive(st, provider, now, &normal, &plan);
    if (rc) {
        cu_error("adaptive plan of %s/%lld refused", job, (long long)idx);
        return -CU_EDB;
    }
    rc = ex_sql_run(st,
                    "UPDATE tasks SET plan = ?3, policy_min = ?4, policy_quorum = ?5, "
                    "policy_max = ?6 WHERE job_id = ?1 AND idx = ?2",
                    "titiii", job, idx,
                    plan.solo ? (plan.audit ? "audit" : "solo") : "normal",
                    (int64_t)plan.policy.min, (int64_t)plan.policy.quorum,
                    (int64_t)plan.policy.max);
    if (!rc && plan.policy.min > 1)
        rc = replicas_queue(st, job, idx, plan.policy.min - 1, now);
    if (!rc && plan.policy.min > 1)
        wake_claimers(st);
    cu_debug("task %s/%lld: %s (solo chance %u ppm)", job, (long long)idx,
             plan.solo ? (plan.audit ? "solo, audited" : "solo") : "replicated", plan.solo_ppm);
    return rc;
}

/* Whether another provider now waiting for work should get a replica of
 * this job before `me` does: cheaper asks first, then (at equal asks) the
 * one waiting longest (reputation joins the order with the trust issue).
 * Only while the replica is fresh (EX_CHEAPER_FIRST_MS), so a waiter that
 * cannot take it after all delays it by at most that long. mu held. */
static bool cheaper_waiting(struct ex_state *st, const struct ex_waiter *me,
                            int64_t cores, int64_t memory, int64_t gpus, int64_t bid)
{
    for (size_t i = 0; i < EX_MAX_WAITERS; i++) {
        const struct ex_waiter *w = &st->waiters[i];
        if (!w->active || w == me || strcmp(w->provider, me->provider) == 0)
            continue;
        if ((int64_t)w->fr.cores < cores || (int64_t)w->fr.memory < memory ||
            (int64_t)w->fr.gpus < gpus || (bid > 0 && (int64_t)w->ask > bid))
            continue;
        /* Cheaper asks first, then the better reputation, then the one
         * waiting longest. */
        if (w->ask < me->ask || (w->ask == me->ask && w->score > me->score) ||
            (w->ask == me->ask && w->score == me->score && w->since_ms < me->since_ms))
            return true;
    }
    return false;
}

/* A replica picked for a lease, with what its lease answer needs. */
struct claim_pick {
    int64_t rid, idx, task_count, cores, memory, gpus, bid;
    uint64_t replica_max, escrow_fee;
    bool adaptive;  /* the job plans each task at its first lease */
    bool challenge; /* the job demands a proof of capability */
    char job[32];
    json_t *spec, *arg; /* owned */
};

static void claim_pick_release(struct claim_pick *p)
{
    json_decref(p->spec);
    json_decref(p->arg);
    memset(p, 0, sizeof *p);
}

/* Looks for the replica to lease next to me, whose free resources are fr:
 * oldest job first, within a job the lowest task. 0 with p->rid set, or
 * p->rid == 0 when nothing fits (*retry_ms > 0 when a replica was left to
 * a cheaper waiter and is worth another look that soon), or *challenge
 * set (owned) when the first fitting job demands a proof of capability
 * first. in_txn: a batch's transaction is open (its earlier leases are
 * visible to these reads); then a job demanding a challenge ends the
 * batch instead (p->rid == 0, *stop set), so the gate's own transaction
 * never nests. score: the provider's reputation now. prev: the batch's
 * last pick, whose parsed spec is reused when the job is the same. Negative with f set on a database
 * failure. mu held. */
static int claim_find(struct ex_state *st, const struct ex_waiter *me, const struct ex_free *fr,
                      uint32_t score, bool in_txn, const struct claim_pick *prev,
                      struct claim_pick *p,
                      json_t **challenge, bool *stop, int64_t *retry_ms, struct ex_fail *f)
{
    const char *provider = me->provider;
    sqlite3_stmt *jobs, *s = NULL;
    int64_t now = cu_now_ms();
    int rc;

    memset(p, 0, sizeof *p);
    *challenge = NULL;
    *stop = false;
    /* The state lists match cu_replica_state_live (asserted at start). */
    jobs = ex_sql_cached(
        st,
        "SELECT id, task_count, spec_json, replica_max, escrow_fee, cores, memory, gpus, bid, "
        "challenge, adaptive FROM jobs WHERE state = 'running' AND cores <= ?1 AND memory <= ?2 AND "
        "gpus <= ?3 "
        /* Only jobs whose bid covers the provider's ask (bid 0: a job
         * stored before escrow existed, which pays nothing), and whose
         * reputation floor the provider's score reaches. */
        "AND (bid = 0 OR bid >= ?4) AND min_reputation <= ?5 "
        /* A provider with --allow-image runs only those OCI images. */
        /* The task's inputs (and image) must fit the disk a slot of the
         * provider offers (disk / slots; 0 = not said); what the task
         * writes is held to that share while it runs. */
        "AND input_bytes <= COALESCE((SELECT CASE WHEN disk > 0 AND slots > 0 THEN disk / slots "
        "ELSE NULL END FROM providers WHERE id = ?6), input_bytes) "
        "AND (image_hash IS NULL OR "
        "(SELECT allow_images FROM providers WHERE id = ?6) IS NULL OR "
        "EXISTS (SELECT 1 FROM json_each((SELECT allow_images FROM providers WHERE id = ?6)) "
        "WHERE value = image_hash)) "
        "ORDER BY created_ms, id",
        "iiiiit", clamp_i64(fr->cores), clamp_i64(fr->memory), clamp_i64(fr->gpus),
        clamp_i64(me->ask), (int64_t)score, provider);
    s = ex_sql_cached(st,
              "SELECT r.id, r.task_idx, t.arg, r.created_ms FROM replicas r JOIN tasks t "
              "ON t.job_id = r.job_id AND t.idx = r.task_idx "
              "WHERE r.job_id = ?1 AND r.state = 'queued' AND NOT EXISTS (SELECT 1 FROM replicas o "
              "WHERE o.job_id = r.job_id AND o.task_idx = r.task_idx AND o.provider IS NOT NULL "
              /* Never two replicas of a task on one provider or one owner
               * (the owner through a key seek per replica of the task: an
               * IN list of the owner's providers scanned the providers
               * table on every claim, 10,000 rows in bench/scale)... */
              "AND (((o.state = 'leased' OR o.state = 'running' OR o.state = 'reported' OR "
              "o.state = 'accepted') AND (o.provider = ?2 OR EXISTS (SELECT 1 FROM providers p "
              "WHERE p.id = o.provider AND p.owner = (SELECT q.owner FROM providers q "
              "WHERE q.id = ?2)))) "
              /* ...nor again to a provider that failed a challenge or broke
               * its commitment on this task. */
              "OR (o.provider = ?2 AND (o.reason = 'heartbeat challenge failed' OR "
              "o.reason = 'report does not match its commitment')))) "
              "ORDER BY r.task_idx, r.id LIMIT 1",
              "tt", "", provider);
    if (!jobs || !s) {
        rc = ex_fail_db(st, f, "looking for work");
        goto out_finalize;
    }
    /* Later in a batch, the job of the last lease first: every job before
     * it in the order was passed over by this batch's searches and none
     * can have become fit since (the free resources only shrink, the
     * escrow's payable count only grows, a lease queues replicas only of
     * its own job, and the waiters do not change while mu is held). A
     * job with a challenge, a replica a cheaper waiter should have or one
     * the escrow does not cover go the full way. (A fresh replica used to
     * go the full way even with no cheaper waiter: every lease of a batch
     * ran the jobs query again for EX_CHEAPER_FIRST_MS after a job's
     * submission, which is when its first claims come.) */
    if (prev && prev->rid && !prev->challenge && prev->cores <= clamp_i64(fr->cores) &&
        prev->memory <= clamp_i64(fr->memory) && prev->gpus <= clamp_i64(fr->gpus)) {
        bool ok = false;
        sqlite3_bind_text(s, 1, prev->job, -1, SQLITE_TRANSIENT);
        rc = ex_sql_step(st, s);
        if (rc == 1 && (now - sqlite3_column_int64(s, 3) >= EX_CHEAPER_FIRST_MS ||
                        !cheaper_waiting(st, me, prev->cores, prev->memory, prev->gpus, prev->bid)))
            rc = ex_settle_can_lease(st, prev->job, sqlite3_column_int64(s, 1), prev->replica_max,
                                     prev->escrow_fee, &ok);
        if (rc < 0) {
            rc = ex_fail_db(st, f, "looking for work");
            goto out_finalize;
        }
        if (ok) {
            *p = *prev;
            p->spec = json_incref(prev->spec);
            p->rid = sqlite3_column_int64(s, 0);
            p->idx = sqlite3_column_int64(s, 1);
            p->arg = ex_col_jtext(s, 2);
            rc = 0;
            goto out_finalize;
        }
        sqlite3_reset(s);
    }
    while ((rc = ex_sql_step(st, jobs)) == 1) {
        const char *jid = ex_col_text(jobs, 0);
        bool ok = true;
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, jid, -1, SQLITE_TRANSIENT);
        rc = ex_sql_step(st, s);
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        int64_t age = now - sqlite3_column_int64(s, 3);
        if (age < EX_CHEAPER_FIRST_MS &&
            cheaper_waiting(st, me, sqlite3_column_int64(jobs, 5), sqlite3_column_int64(jobs, 6),
                            sqlite3_column_int64(jobs, 7), sqlite3_column_int64(jobs, 8))) {
            int64_t left = EX_CHEAPER_FIRST_MS - age;
            st->deferred = true;
            if (*retry_ms == 0 || left < *retry_ms)
                *retry_ms = left;
            continue;
        }
        /* Never run on credit: the escrow must cover this replica too
         * (and, in a batch, the batch's earlier leases: they are in the
         * open transaction's counts). */
        rc = ex_settle_can_lease(st, jid, sqlite3_column_int64(s, 1),
                                 (uint64_t)sqlite3_column_int64(jobs, 3),
                                 (uint64_t)sqlite3_column_int64(jobs, 4), &ok);
        if (rc < 0)
            break;
        if (!ok)
            continue;
        /* A proof of capability first, where the job demands one. */
        {
            json_t *ch = NULL;
            bool skip = false;
            const char *chj = ex_col_text(jobs, 9);
            if (chj && in_txn) {
                *stop = true; /* the batch ends here; the next claim meets the gate */
                rc = 0;
                goto out_finalize;
            }
            if (chj) {
                rc = ex_txn_begin(st, NULL);
                if (!rc)
                    rc = ex_trust_gate(st, provider, jid, chj, now, &ch, &skip);
                if (!rc)
                    rc = ex_txn_commit(st, now, NULL);
                else
                    ex_txn_rollback(st);
                if (rc < 0)
                    break;
            }
            if (skip)
                continue;
            if (ch) {
                *challenge = ch;
                rc = 0;
                goto out_finalize;
            }
        }
        ex_col_copy(jobs, 0, p->job, sizeof p->job);
        p->task_count = sqlite3_column_int64(jobs, 1);
        p->cores = sqlite3_column_int64(jobs, 5);
        p->memory = sqlite3_column_int64(jobs, 6);
        p->gpus = sqlite3_column_int64(jobs, 7);
        p->bid = sqlite3_column_int64(jobs, 8);
        p->replica_max = (uint64_t)sqlite3_column_int64(jobs, 3);
        p->escrow_fee = (uint64_t)sqlite3_column_int64(jobs, 4);
        p->adaptive = sqlite3_column_int64(jobs, 10) != 0;
        p->challenge = ex_col_text(jobs, 9) != NULL;
        /* A batch parses a job's spec once, not once per lease. */
        if (prev && prev->spec && strcmp(prev->job, p->job) == 0)
            p->spec = json_incref(prev->spec);
        else
            p->spec = ex_col_text(jobs, 2) ? json_loads(ex_col_text(jobs, 2), 0, NULL) : NULL;
        p->rid = sqlite3_column_int64(s, 0);
        p->idx = sqlite3_column_int64(s, 1);
        p->arg = ex_col_jtext(s, 2);
        rc = 0;
        break;
    }
    if (rc < 0)
        rc = ex_fail_db(st, f, "looking for work");
out_finalize:
    ex_sql_done(st, s);
    ex_sql_done(st, jobs);
    return rc;
}

/* Leases the picked replica to provider in the open transaction and
 * builds its lease object (*lease, owned; p->spec and p->arg are given to
 * it). 0, or -CU_EDB / -CU_ENOMEM; the caller rolls back. mu held. */
/* A lease granted under mu; its answer is written after mu is let go
 * (lease_json): the JSON, the lease's secret and the log line cost ~15 %
 * of a batched claim's hold of mu, which every other request waits for. */
struct lease_out {
    int64_t rid, idx, task_count, expires;
    char job[32];
    json_t *arg, *spec; /* owned references */
    char hb_nonce[2 * CU_CHAL_NONCE_LEN + 1];
};

static void lease_out_release(struct lease_out *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(l[i].arg);
        json_decref(l[i].spec);
    }
    memset(l, 0, n * sizeof *l);
}

/* Leases p's replica to provider in the open transaction and fills *out
 * (its references are new ones: p keeps its own). 0 or negative. */
static int claim_lease(struct ex_state *st, const char *provider, struct claim_pick *p,
                       int64_t now, struct lease_out *out)
{
    int64_t expires;
    int rc;

    memset(out, 0, sizeof *out);
    if (cu_lease_expiry(now, st->lease_ms, &expires))
        return -CU_EINVAL;
    /* The move, the lease's terms and its first heartbeat nonce in one
     * write of the row (three UPDATEs of it were 12 % of a batch). */
    assert(cu_replica_can_transition(CU_REPLICA_QUEUED, CU_REPLICA_LEASED));
    ex_trust_nonce_make(out->hb_nonce);
    rc = ex_sql_run(st,
             "UPDATE OR FAIL replicas SET state = 'leased', provider = ?2, leased_ms = ?3, "
             "lease_expires_ms = ?4, hb_nonce = ?5, "
             "price_per_cu = COALESCE((SELECT price_per_cu FROM providers WHERE id = ?2), 1) "
             "WHERE id = ?1 AND state = 'queued'",
             "itiit", p->rid, provider, now, expires, out->hb_nonce);
    if (!rc && sqlite3_changes(st->db.h) != 1) {
        cu_error("replica %lld was not queued (leasing it)", (long long)p->rid);
        rc = -CU_ECONFLICT;
    }
    /* The task's attempt, its move to running and the job's counts follow
     * in the same statement, through the triggers (schema.c, 20). */
    /* Only an adaptive job plans its tasks (a read per lease otherwise). */
    if (!rc && p->adaptive)
        rc = adaptive_plan(st, p->job, p->idx, provider, now);
    if (rc)
        return rc;
    out->rid = p->rid;
    out->idx = p->idx;
    out->task_count = p->task_count;
    out->expires = expires;
    (void)cu_snprintf(out->job, sizeof out->job, "%s", p->job);
    out->arg = json_incref(p->arg);
    out->spec = json_incref(p->spec);
    return 0;
}

/* The lease's answer (docs/api.md "Claims"), or NULL when out of memory.
 * Without mu: the secret derives from the exchange's key alone. */
static json_t *lease_json(const struct ex_state *st, const struct lease_out *l)
{
    unsigned char secret[CU_CHAL_KEY_LEN];
    char sec_hex[2 * CU_CHAL_KEY_LEN + 1];
    json_t *j;

    ex_trust_lease_secret(st, l->rid, secret);
    cu_hex_encode(secret, sizeof secret, sec_hex);
    sodium_memzero(secret, sizeof secret);
    j = json_pack("{s:I,s:s,s:I,s:I,s:O,s:O,s:I,s:I,s:I,s:{s:s,s:s}}", "replica",
                  (json_int_t)l->rid, "job", l->job, "task", (json_int_t)l->idx, "task_count",
                  (json_int_t)l->task_count, "arg", l->arg ? l->arg : json_null(), "spec",
                  l->spec ? l->spec : json_null(), "lease_ms", (json_int_t)st->lease_ms,
                  "lease_expires_ms", (json_int_t)l->expires, "heartbeat_ms",
                  (json_int_t)cu_lease_heartbeat_ms(st->lease_ms), "heartbeat", "secret", sec_hex,
                  "nonce", l->hb_nonce);
    sodium_memzero(sec_hex, sizeof sec_hex);
    return j;
}

/* One log line for a claim's leases (the replicas and their tasks). */
static void log_leases(const char *provider, const struct lease_out *l, size_t n)
{
    char line[1536];
    size_t used = 0;

    line[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof line - 64; i++) {
        int k = snprintf(line + used, sizeof line - used, "%s%lld (task %s/%lld)", i ? ", " : "",
                         (long long)l[i].rid, l[i].job, (long long)l[i].idx);
        if (k < 0 || (size_t)k >= sizeof line - used)
            break;
        used += (size_t)k;
    }
    cu_info("leased to provider %.8s: %s%s", provider, n == 1 ? "replica " : "replicas ", line);
}

/* One attempt to lease up to max queued replicas to me (max >= 1), all in
 * one transaction: each lease is searched with the batch's earlier leases
 * visible (never two replicas of a task on one provider or owner, the
 * escrow covering every one of them) and the replicas together fit the
 * free resources (each alone with fr.sequential). 0 with *leases set (a
 * non-empty array, owned) or
 * *challenge set (owned), or neither (nothing fits; *retry_ms > 0 when a
 * replica was left to a cheaper waiter and is worth another look that
 * soon); negative with f set on a database failure. mu held. */
static int claim_once(struct ex_state *st, const struct ex_waiter *me, unsigned max,
                      bool score_fresh, struct lease_out *outs, size_t *nout, json_t **challenge,
                      int64_t *retry_ms, struct ex_fail *f)
{
    struct claim_pick p = {0}, prev = {0};
    struct ex_free left = me->fr;
    /* Only a job's reputation floor needs the exact score (trust.h); else
     * the waiter's own, when it was just read under this hold of mu. */
    bool floor = ex_trust_floor_running(st);
    uint32_t score = !floor && score_fresh ? me->score : ex_trust_score(st, me->provider, floor);
    int64_t now;
    bool stop = false;
    int rc = 0;

    *nout = 0;
    *challenge = NULL;
    *retry_ms = 0;
    for (unsigned n = 0; n < max && !stop; n++) {
        rc = claim_find(st, me, &left, score, st->in_txn, &prev, &p, challenge, &stop, retry_ms,
                        f);
        if (rc || *challenge || p.rid == 0)
            break;
        now = cu_now_ms();
        if (!st->in_txn) {
            if (ex_txn_begin(st, NULL)) {
                rc = ex_fail_db(st, f, "starting a transaction");
                break;
            }
            rc = provider_seen(st, me->provider, now);
            if (rc) {
                rc = ex_fail_db(st, f, "leasing a replica");
                break;
            }
        }
        rc = claim_lease(st, me->provider, &p, now, &outs[*nout]);
        if (!rc)
            (*nout)++;
        if (rc) {
            rc = rc == -CU_EDB ? ex_fail_db(st, f, "leasing a replica")
                               : ex_fail_set(f, 500, "internal", "cannot build the lease");
            break;
        }
        /* What is left for the next replica of the batch; all of free
         * again when the provider runs them one after another. */
        if (!left.sequential) {
            left.cores -= (uint64_t)p.cores <= left.cores ? (uint64_t)p.cores : left.cores;
            left.memory -= (uint64_t)p.memory <= left.memory ? (uint64_t)p.memory : left.memory;
            left.gpus -= (uint64_t)p.gpus <= left.gpus ? (uint64_t)p.gpus : left.gpus;
        }
        claim_pick_release(&prev);
        prev = p;
        memset(&p, 0, sizeof p);
    }
    claim_pick_release(&p);
    claim_pick_release(&prev);
    if (st->in_txn && !rc) {
        if (ex_txn_commit(st, cu_now_ms(), NULL))
            rc = ex_fail_db(st, f, "leasing a replica");
    } else if (st->in_txn) {
        ex_txn_rollback(st);
    }
    if (rc) {
        lease_out_release(outs, *nout);
        *nout = 0;
        json_decref(*challenge);
        *challenge = NULL;
        return rc;
    }
    /* Only a batch's first search hands out a challenge: nothing was
     * leased then. */
    assert(!*challenge || *nout == 0);
    return 0;
}

/* The provider's ask from its hello (EX_DEFAULT_PRICE_PER_CU when it
 * never said one). mu held. */
static uint64_t provider_ask(struct ex_state *st, const char *provider)
{
    sqlite3_stmt *s = ex_sql_cached(st, "SELECT price_per_cu FROM providers WHERE id = ?1", "t",
                                   provider);
    uint64_t ask = EX_DEFAULT_PRICE_PER_CU;

    if (s && ex_sql_step(st, s) == 1 && sqlite3_column_int64(s, 0) > 0)
        ask = (uint64_t)sqlite3_column_int64(s, 0);
    ex_sql_done(st, s);
    return ask;
}

/* How many leases a claim asking for max takes now (max >= 1). A batch
 * holds mu for its every lease, and the claims of other slots and
 * providers queued for mu meanwhile (the count lock_claim keeps) wait for
 * all of it while their own slots stand idle. So when the queue is deep,
 * each claim takes EX_CLAIM_QUEUE_LEASES / (queued + 1) leases, at least
 * EX_CLAIM_SHARE_MIN (a claim's own cost, its signature check and its
 * commit, must stay spread over several leases), never more than max:
 * whole batches of 16 with one other claim queued, 8 with three, 4 with
 * seven or more. dispatch's 16 providers start by claiming 16 leases each
 * at once, and the last of them used to wait for 15 whole batches (claim
 * p99 20-30 ms on a busy host); in steady work no more than one claim is
 * queued for nine claims in ten, and batches stay whole there (cut
 * smaller, the same leases cost the exchange more claims and reports). A
 * provider that got fewer than it asked for claims again (docs/api.md
 * "Batched claims"). mu held. */
static unsigned claim_share(struct ex_state *st, unsigned max)
{
    unsigned queued = __atomic_load_n(&st->reports.claims_waiting, __ATOMIC_SEQ_CST);
    unsigned share = EX_CLAIM_QUEUE_LEASES / (queued + 1);

    if (share < EX_CLAIM_SHARE_MIN)
        share = EX_CLAIM_SHARE_MIN;
    return share < max ? share : max;
}

int ex_claim_batch(struct ex_state *st, const char *provider, const struct ex_free *fr,
                   int64_t wait_ms, unsigned max, json_t **answer, struct ex_fail *f)
{
    struct timespec deadline, now_ts, until;
    struct ex_waiter solo, *me = &solo;
    struct lease_out outs[EX_MAX_CLAIM_BATCH];
    size_t nout = 0;
    json_t *leases = NULL, *challenge = NULL;
    int64_t retry_ms = 0;
    bool seen = false; /* last_seen recorded by this claim */
    bool fresh = true;  /* me->score is the inexact score now */
    int rc;

    *answer = NULL;
    if (max > EX_MAX_CLAIM_BATCH)
        return ex_fail_set(f, 400, "invalid", "\"max\" must be at most %d", EX_MAX_CLAIM_BATCH);
    cu_mono_deadline(&deadline, wait_ms);
    lock_claim(st);
    /* Waiters are visible to each other so cheaper asks are served first;
     * past EX_MAX_WAITERS a claimer simply takes its turn unseen. */
    for (size_t i = 0; i < EX_MAX_WAITERS; i++) {
        if (!st->waiters[i].active) {
            me = &st->waiters[i];
            break;
        }
    }
    memset(me, 0, sizeof *me);
    (void)cu_snprintf(me->provider, sizeof me->provider, "%s", provider);
    me->fr = *fr;
    me->ask = provider_ask(st, provider);
    me->score = ex_trust_score(st, provider, false); /* orders waiters only */
    me->since_ms = cu_now_ms();
    me->active = me != &solo;
    for (;;) {
        if (st->stopping) {
            rc = ex_fail_set(f, 503, "unavailable", "the exchange is shutting down");
            break;
        }
        /* me->score was read just before the first try, under this same
         * hold of mu; after a wait it may be stale. */
        rc = claim_once(st, me, claim_share(st, max ? max : 1), fresh, outs, &nout, &challenge,
                        &retry_ms, f);
        claimer_done(st, me);
        fresh = false;
        if (rc || nout || challenge)
            break;
        /* A lease records that the provider was seen in its own
         * transaction; a claim about to wait records it now. */
        if (!seen && provider_seen(st, provider, cu_now_ms()) != 0)
            cu_warn("provider %.8s: cannot record last_seen", provider);
        seen = true;
        until = deadline;
        if (retry_ms > 0) {
            clock_gettime(CLOCK_MONOTONIC, &now_ts);
            cu_timespec_add_ms(&now_ts, retry_ms);
            if (now_ts.tv_sec < until.tv_sec ||
                (now_ts.tv_sec == until.tv_sec && now_ts.tv_nsec < until.tv_nsec))
                until = now_ts;
        }
        cu_log_release(); /* not held through a long-poll */
        rc = pthread_cond_timedwait(&st->work, &st->mu, &until);
        cu_log_hold();
        if (rc == ETIMEDOUT) {
            clock_gettime(CLOCK_MONOTONIC, &now_ts);
            if (now_ts.tv_sec > deadline.tv_sec ||
                (now_ts.tv_sec == deadline.tv_sec && now_ts.tv_nsec >= deadline.tv_nsec)) {
                rc = 0; /* answer 204 */
                break;
            }
        }
        rc = 0;
    }
    claimer_done(st, me); /* stopping: woken, but no claim */
    me->active = false;
    /* Whoever deferred to this waiter looks again. */
    if (!nout && st->deferred) {
        st->deferred = false;
        wake_claimers(st);
    }
    unlock(st);
    if (rc)
        return rc;
    /* The leases are committed: their answers are written without mu.
     * Should memory run out here, the provider hears 500 and the leases
     * run out unrenewed (the reaper queues them again). */
    if (nout) {
        log_leases(provider, outs, nout);
        leases = json_array();
        for (size_t i = 0; leases && i < nout; i++) {
            if (json_array_append_new(leases, lease_json(st, &outs[i])) != 0) {
                json_decref(leases);
                leases = NULL;
            }
        }
        lease_out_release(outs, nout);
        if (!leases)
            return ex_fail_set(f, 500, "internal", "out of memory");
    }
    if (challenge)
        *answer = json_pack("{s:o}", "challenge", challenge);
    else if (leases && max == 0)
        *answer = json_pack("{s:O}", "lease", json_array_get(leases, 0));
    else if (leases)
        *answer = json_pack("{s:O}", "leases", leases);
    json_decref(leases);
    if ((challenge || leases) && !*answer)
        return ex_fail_set(f, 500, "internal", "out of memory");
    return 0;
}

int ex_claim(struct ex_state *st, const char *provider, const struct ex_free *fr, int64_t wait_ms,
             json_t **lease, struct ex_fail *f)
{
    return ex_claim_batch(st, provider, fr, wait_ms, 0, lease, f);
}

/* The refusals of the holder-only routes once the replica's row was read
 * (step_rc: 1 found, 0 not, negative a database error): 500, 404, or 403
 * when provider does not hold it. 0 to go on. mu held. */
static int holder_check(struct ex_state *st, int step_rc, const char *holder,
                        const char *provider, int64_t replica, struct ex_fail *f)
{
    if (step_rc < 0)
        return ex_fail_db(st, f, "reading the replica");
    if (step_rc == 0)
        return ex_fail_set(f, 404, "not_found", "replica %lld not found", (long long)replica);
    if (strcmp(holder, provider) != 0)
        return ex_fail_set(f, 403, "forbidden", "replica %lld is not leased to you",
                           (long long)replica);
    return 0;
}

/* Whether a committed replica may reveal: no other replica of its task is
 * still held without a commit. mu held. */
static bool may_reveal(struct ex_state *st, int64_t replica, const char *job, int64_t idx)
{
    sqlite3_stmt *s = ex_sql_cached(st,
                                   "SELECT COUNT(*) FROM replicas WHERE job_id = ?1 AND "
                                   "task_idx = ?2 AND id != ?3 AND state IN ('leased','running') "
                                   "AND commit_hash IS NULL",
                                   "tii", job, idx, replica);
    bool ok = false;

    if (s && ex_sql_step(st, s) == 1)
        ok = sqlite3_column_int64(s, 0) == 0;
    ex_sql_done(st, s);
    return ok;
}

/* may_reveal, remembered: once a replica is told it may reveal, it may
 * (another replica of the task may be leased after the answer left). mu
 * held. */
static bool grant_reveal(struct ex_state *st, int64_t replica, const char *job, int64_t idx)
{
    sqlite3_stmt *s = ex_sql_cached(st, "SELECT revealed FROM replicas WHERE id = ?1", "i",
                                    replica);
    bool ok = s && ex_sql_step(st, s) == 1 && sqlite3_column_int64(s, 0) != 0;

    ex_sql_done(st, s);
    if (!ok && may_reveal(st, replica, job, idx)) {
        ok = true;
        if (ex_sql_run(st, "UPDATE replicas SET revealed = 1 WHERE id = ?1", "i", replica) != 0)
            cu_warn("replica %lld: cannot remember its reveal", (long long)replica);
    }
    return ok;
}

/* Ends a held lease whose heartbeat challenge failed: the replica expires
 * with a challenge_failed record and the task gets a replacement. */
static int lease_challenge_failed(struct ex_state *st, int64_t replica,
                                  enum cu_replica_state state, const char *job, int64_t idx,
                                  int64_t now)
{
    bool queued = false;
    int rc = ex_txn_begin(st, NULL);

    if (!rc)
        rc = replica_move(st, replica, state, CU_REPLICA_EXPIRED);
    if (!rc)
        rc = ex_sql_run(st,
                        "UPDATE replicas SET reason = 'heartbeat challenge failed' WHERE id = ?1",
                        "i", replica);
    if (!rc)
        rc = ex_settle_lost_as(st, replica, CU_TASK_CHALLENGE_FAILED, now);
    if (!rc)
        rc = task_replica_lost(st, job, idx, "heartbeat challenge failed", now, &queued);
    if (!rc)
        rc = task_refresh(st, job, idx);
    if (!rc)
        rc = ex_txn_commit(st, now, NULL);
    if (rc)
        ex_txn_rollback(st);
    else if (queued)
        wake_claimers(st);
    return rc;
}

int ex_heartbeat(struct ex_state *st, int64_t replica, const char *provider, const char *answer,
                 int64_t now_ms, json_t **out, struct ex_fail *f)
{
    char nonce[2 * CU_CHAL_NONCE_LEN + 1] = "";
    bool committed = false;
    sqlite3_stmt *s;
    enum cu_replica_state state = CU_REPLICA_NSTATES;
    char holder[CU_HASH_HEX_LEN + 1] = "", jstate[16] = "", tstate[16] = "", job[32] = "";
    int64_t expires = 0, next, idx = 0;
    const char *cancel_reason = NULL;
    int rc;

    *out = NULL;
    lock(st);
    s = ex_sql_cached(
        st,
        "SELECT r.state, r.provider, r.lease_expires_ms, j.state, t.state, r.job_id, r.task_idx, "
        "r.commit_hash IS NOT NULL FROM replicas r JOIN jobs j ON j.id = r.job_id "
        "JOIN tasks t ON t.job_id = r.job_id AND t.idx = r.task_idx WHERE r.id = ?1",
        "i", replica);
    if (!s) {
        rc = ex_fail_db(st, f, "reading the replica");
        goto out_unlock;
    }
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        (void)cu_replica_state_parse(ex_col_text(s, 0), &state);
        ex_col_copy(s, 1, holder, sizeof holder);
        expires = sqlite3_column_int64(s, 2);
        ex_col_copy(s, 3, jstate, sizeof jstate);
        ex_col_copy(s, 4, tstate, sizeof tstate);
        ex_col_copy(s, 5, job, sizeof job);
        idx = sqlite3_column_int64(s, 6);
        committed = sqlite3_column_int64(s, 7) != 0;
    }
    ex_sql_done(st, s);
    rc = holder_check(st, rc, holder, provider, replica, f);
    if (rc)
        goto out_unlock;
    if (!cu_replica_state_held(state)) {
        rc = ex_fail_set(f, 409, "lease_lost", "replica %lld is %s", (long long)replica,
                         cu_replica_state_name(state));
        goto out_unlock;
    }
    if (cu_lease_renew(expires, now_ms, st->lease_ms, &next) != 0) {
        rc = ex_fail_set(f, 409, "lease_lost", "the lease of replica %lld expired",
                         (long long)replica);
        goto out_unlock;
    }
    /* The renewal must answer the nonce of the last one (CuToken §6.9). */
    rc = ex_trust_check_answer(st, replica, answer);
    if (rc == -CU_EAUTH) {
        cu_warn("replica %lld: heartbeat challenge failed by %.8s; the lease ends",
                (long long)replica, provider);
        if (lease_challenge_failed(st, replica, state, job, idx, now_ms) != 0)
            cu_error("replica %lld: cannot end the lease", (long long)replica);
        rc = ex_fail_set(f, 409, "challenge_failed",
                         "replica %lld: the heartbeat %s the lease's challenge; the lease ended",
                         (long long)replica, answer ? "answered wrongly" : "did not answer");
        goto out_unlock;
    }
    if (rc) {
        rc = ex_fail_db(st, f, "checking the heartbeat answer");
        goto out_unlock;
    }
    if (ex_txn_begin(st, NULL)) {
        rc = ex_fail_db(st, f, "starting a transaction");
        goto out_unlock;
    }
    rc = ex_trust_new_nonce(st, replica, nonce);
    if (!rc && state == CU_REPLICA_LEASED)
        rc = replica_move(st, replica, CU_REPLICA_LEASED, CU_REPLICA_RUNNING);
    if (!rc)
        rc =
            ex_sql_run(st, "UPDATE replicas SET lease_expires_ms = ?2 WHERE id = ?1", "ii", replica, next);
    if (!rc && state == CU_REPLICA_LEASED)
        rc = task_refresh(st, job, idx);
    if (!rc)
        rc = provider_seen(st, provider, now_ms);
    if (!rc)
        rc = ex_txn_commit(st, now_ms, NULL);
    if (rc) {
        rc = ex_fail_db(st, f, "renewing the lease");
        ex_txn_rollback(st);
        goto out_unlock;
    }
    if (strcmp(jstate, "cancelled") == 0)
        cancel_reason = "job cancelled";
    else if (strcmp(tstate, "done") == 0)
        cancel_reason = "task already done";
    else if (task_state_finished(tstate))
        cancel_reason = "task already finished";
    *out = json_pack("{s:I,s:b,s:s,s:b}", "lease_expires_ms", (json_int_t)next, "cancel",
                     cancel_reason != NULL, "nonce", nonce, "reveal",
                     committed && grant_reveal(st, replica, job, idx));
    if (*out && cancel_reason)
        json_object_set_new(*out, "reason", json_string(cancel_reason));
    if (!*out)
        rc = ex_fail_set(f, 500, "internal", "out of memory");
    cu_debug("replica %lld heartbeat from %.8s%s%s", (long long)replica, provider,
             cancel_reason ? ": cancel, " : "", cancel_reason ? cancel_reason : "");
out_unlock:
    unlock(st);
    return rc;
}

/* ---- reports ------------------------------------------------------------------------ */

static const char *const status_names[] = {
    [EX_ST_OK] = "ok",           [EX_ST_FAILED] = "failed",
    [EX_ST_TIMEOUT] = "timeout", [EX_ST_OUTPUT_LIMIT] = "output_limit",
    [EX_ST_KILLED] = "killed",   [EX_ST_ERROR] = "error",
};

const char *ex_status_name(enum ex_status s)
{
    return (unsigned)s < sizeof status_names / sizeof status_names[0] ? status_names[s] : "?";
}

int ex_status_parse(const char *s, enum ex_status *out)
{
    for (size_t i = 0; s && i < sizeof status_names / sizeof status_names[0]; i++) {
        if (strcmp(status_names[i], s) == 0) {
            *out = (enum ex_status)i;
            return 0;
        }
    }
    return -CU_EINVAL;
}

struct replica_info {
    enum cu_replica_state state;
    char provider[CU_HASH_HEX_LEN + 1];
    char job[32];
    int64_t idx;
    int64_t expires;
    bool reported;
    uint64_t output_limit;
    char jstate[16];
    char tstate[16];
    uint64_t cu_factor_milli;                  /* the holder's; 0: never said */
    char commit_hash[CU_HASH_HEX_LEN + 1];     /* "" when not committed */
    int64_t replication, quorum;               /* the job's */
    bool validator;                            /* the job ships a validator command */
    struct task_head head;                     /* for the task's decision */
};

/* Reads what a report needs to know about a replica. 0, or 404. mu held. */
static int replica_info(struct ex_state *st, int64_t id, struct replica_info *ri, struct ex_fail *f)
{
    sqlite3_stmt *s;
    int rc;

    memset(ri, 0, sizeof *ri);
    ri->state = CU_REPLICA_NSTATES;
    s = ex_sql_cached(
        st,
        "SELECT r.state, r.provider, r.job_id, r.task_idx, r.lease_expires_ms, r.reported_ms, "
        "j.output_limit, j.state, t.state, p.cu_factor_milli, r.commit_hash, j.replication, "
        "j.quorum, c.validator, COALESCE(t.policy_min, j.replication), "
        "COALESCE(t.policy_quorum, j.quorum), COALESCE(t.policy_max, j.max_replicas) "
        "FROM replicas r JOIN jobs j ON j.id = r.job_id "
        "JOIN tasks t ON t.job_id = r.job_id AND t.idx = r.task_idx "
        "LEFT JOIN providers p ON p.id = r.provider "
        "LEFT JOIN job_counts c ON c.job_id = r.job_id WHERE r.id = ?1",
        "i", id);
    if (!s)
        return ex_fail_db(st, f, "reading the replica");
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        (void)cu_replica_state_parse(ex_col_text(s, 0), &ri->state);
        ex_col_copy(s, 1, ri->provider, sizeof ri->provider);
        ex_col_copy(s, 2, ri->job, sizeof ri->job);
        ri->idx = sqlite3_column_int64(s, 3);
        ri->expires = sqlite3_column_int64(s, 4);
        ri->reported = !ex_col_null(s, 5);
        ri->output_limit = (uint64_t)sqlite3_column_int64(s, 6);
        ex_col_copy(s, 7, ri->jstate, sizeof ri->jstate);
        ex_col_copy(s, 8, ri->tstate, sizeof ri->tstate);
        ri->cu_factor_milli =
            sqlite3_column_int64(s, 9) > 0 ? (uint64_t)sqlite3_column_int64(s, 9) : 0;
        ex_col_copy(s, 10, ri->commit_hash, sizeof ri->commit_hash);
        ri->replication = sqlite3_column_int64(s, 11);
        ri->quorum = sqlite3_column_int64(s, 12);
        ri->validator = sqlite3_column_int64(s, 13) != 0;
        memcpy(ri->head.task_state, ri->tstate, sizeof ri->head.task_state);
        memcpy(ri->head.job_state, ri->jstate, sizeof ri->head.job_state);
        ri->head.replication = sqlite3_column_int64(s, 14);
        ri->head.quorum = sqlite3_column_int64(s, 15);
        ri->head.max_replicas = sqlite3_column_int64(s, 16);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return ex_fail_db(st, f, "reading the replica");
    if (rc == 0)
        return ex_fail_set(f, 404, "not_found", "replica %lld not found", (long long)id);
    return 0;
}

/* What the checks before a report's blobs need (report_gate with
 * !full): the holder, the lease and the job's output limit; the report
 * itself reads replica_info again in its transaction, so the first read
 * skips the task, provider and count rows. 0, or 404. mu held. */
static int replica_gate_info(struct ex_state *st, int64_t id, struct replica_info *ri,
                             struct ex_fail *f)
{
    sqlite3_stmt *s;
    int rc;

    memset(ri, 0, sizeof *ri);
    ri->state = CU_REPLICA_NSTATES;
    s = ex_sql_cached(st,
                      "SELECT r.state, r.provider, r.lease_expires_ms, r.reported_ms, "
                      "j.output_limit FROM replicas r JOIN jobs j ON j.id = r.job_id "
                      "WHERE r.id = ?1",
                      "i", id);
    if (!s)
        return ex_fail_db(st, f, "reading the replica");
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        (void)cu_replica_state_parse(ex_col_text(s, 0), &ri->state);
        ex_col_copy(s, 1, ri->provider, sizeof ri->provider);
        ri->expires = sqlite3_column_int64(s, 2);
        ri->reported = !ex_col_null(s, 3);
        ri->output_limit = (uint64_t)sqlite3_column_int64(s, 4);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return ex_fail_db(st, f, "reading the replica");
    if (rc == 0)
        return ex_fail_set(f, 404, "not_found", "replica %lld not found", (long long)id);
    return 0;
}

/* A report's answer {"replica","state","task_state"}; NULL when out of
 * memory. */
static json_t *report_answer_of(int64_t id, const char *state, const char *task_state)
{
    return json_pack("{s:I,s:s,s:s}", "replica", (json_int_t)id, "state", state, "task_state",
                     task_state);
}

/* The answer as stored now. NULL when the replica is not there or on a
 * failure. mu held. */
static json_t *report_answer(struct ex_state *st, int64_t id)
{
    sqlite3_stmt *s = ex_sql_cached(st,
                                    "SELECT r.state, t.state FROM replicas r JOIN tasks t "
                                    "ON t.job_id = r.job_id AND t.idx = r.task_idx WHERE r.id = ?1",
                                    "i", id);
    json_t *j = NULL;

    if (s && ex_sql_step(st, s) == 1 && ex_col_text(s, 0) && ex_col_text(s, 1))
        j = report_answer_of(id, ex_col_text(s, 0), ex_col_text(s, 1));
    ex_sql_done(st, s);
    return j;
}

/* The common refusals of a report; 1 when already reported (idempotent
 * answer in *out), 0 when it may go on, negative with f set. full: *ri
 * gets all of replica_info (the report's own transaction), else what the
 * checks before its blobs need (replica_gate_info). mu held. */
static int report_gate(struct ex_state *st, int64_t id, const char *provider, int64_t now,
                       bool full, struct replica_info *ri, json_t **out, struct ex_fail *f)
{
    int rc = full ? replica_info(st, id, ri, f) : replica_gate_info(st, id, ri, f);

    if (rc)
        return rc;
    if (strcmp(ri->provider, provider) != 0)
        return ex_fail_set(f, 403, "forbidden", "replica %lld is not leased to you", (long long)id);
    if (ri->reported) {
        *out = report_answer(st, id);
        return *out ? 1 : ex_fail_set(f, 500, "internal", "out of memory");
    }
    if (!cu_replica_state_held(ri->state))
        return ex_fail_set(f, 409, "lease_lost", "replica %lld is %s", (long long)id,
                           cu_replica_state_name(ri->state));
    if (cu_lease_expired(ri->expires, now))
        return ex_fail_set(f, 409, "lease_lost", "the lease of replica %lld expired",
                           (long long)id);
    return 0;
}

int ex_report_check(struct ex_state *st, int64_t replica, const char *provider, int64_t now_ms,
                    uint64_t *output_limit, bool *done, json_t **out, struct ex_fail *f)
{
    struct replica_info ri;
    int rc;

    *done = false;
    *out = NULL;
    lock_report(st);
    rc = report_gate(st, replica, provider, now_ms, false, &ri, out, f);
    unlock_report(st);
    if (rc < 0)
        return rc;
    *done = rc == 1;
    *output_limit = ri.output_limit;
    return 0;
}

void ex_report_check_many(struct ex_state *st, const char *provider, size_t n,
                          const int64_t *replicas, int64_t now_ms, uint64_t *output_limits,
                          bool *done, json_t **outs, struct ex_fail *fails, int *rcs)
{
    struct replica_info ri;

    lock_report(st);
    for (size_t i = 0; i < n; i++) {
        int rc;
        done[i] = false;
        outs[i] = NULL;
        rc = report_gate(st, replicas[i], provider, now_ms, false, &ri, &outs[i], &fails[i]);
        rcs[i] = rc < 0 ? rc : 0;
        done[i] = rc == 1;
        output_limits[i] = ri.output_limit;
    }
    unlock_report(st);
}

/* CU of a report: cu_milli = cpu_ms x the holder's cu_factor_milli / 1000,
 * rounded up (cu_price_cu_milli; docs/api.md "Money";
 * EX_DEFAULT_CU_FACTOR_MILLI when it never said one). 0, or negative with
 * f set (400 when it overflows). */
static int provider_cu_milli(const struct replica_info *ri, uint64_t cpu_ms, uint64_t *out,
                             struct ex_fail *f)
{
    uint64_t factor = ri->cu_factor_milli ? ri->cu_factor_milli : EX_DEFAULT_CU_FACTOR_MILLI;

    if (cu_price_cu_milli(cpu_ms, factor, out) != 0)
        return ex_fail_set(f, 400, "invalid", "field 'cpu_ms': %llu ms overflows the CU count",
                           (unsigned long long)cpu_ms);
    return 0;
}

/* Commit, then reveal (docs/api.md "Trust"): an ok result of a job with
 * more than one replica must have been committed, may be revealed only
 * once no other held replica of its task is uncommitted, and must match
 * its commitment; a mismatch is a wrong result (the replica expires with a
 * wrong_result record and a slash, and the task gets a replacement). 0 to
 * go on; negative with f set. In an open transaction (a batch) the
 * rejection's writes join it, and *broken says a failure left it half
 * done (roll it back). mu held. */
static int commit_gate(struct ex_state *st, int64_t replica, const char *provider,
                       const struct replica_info *ri, const char *root, int64_t now,
                       bool *broken, struct ex_fail *f)
{
    const char *have = ri->commit_hash;
    char want[CU_HASH_HEX_LEN + 1];
    bool queued = false, own;
    int rc;

    *broken = false;
    if (!have[0]) {
        if (ri->replication > 1 || ri->quorum > 1)
            return ex_fail_set(f, 409, "commit_required",
                               "replica %lld: commit the result (POST /v1/replicas/%lld/commit) "
                               "before reporting it",
                               (long long)replica, (long long)replica);
        return 0;
    }
    if (!grant_reveal(st, replica, ri->job, ri->idx))
        return ex_fail_set(f, 409, "reveal_not_yet",
                           "replica %lld: other replicas of the task have not committed yet; "
                           "keep heartbeating until a heartbeat says reveal",
                           (long long)replica);
    ex_commit_hash(provider, root, want);
    if (strcmp(want, have) == 0)
        return 0;
    /* The revealed result is not the one committed. */
    cu_warn("replica %lld: the report of %.8s does not match its commitment", (long long)replica,
            provider);
    /* In a batch's transaction the rejection joins it; else its own. */
    own = !st->in_txn;
    rc = own ? ex_txn_begin(st, f) : 0;
    if (!rc)
        rc = replica_move(st, replica, ri->state, CU_REPLICA_EXPIRED);
    if (!rc)
        rc = ex_sql_run(st,
                        "UPDATE replicas SET reason = 'report does not match its commitment', "
                        "status = 'ok', merkle_root = ?2, reported_ms = ?3 WHERE id = ?1",
                        "iti", replica, root, now);
    if (!rc)
        rc = ex_settle_mismatch(st, replica, now);
    if (!rc)
        rc = task_replica_lost(st, ri->job, ri->idx, "report does not match its commitment", now,
                               &queued);
    if (!rc)
        rc = task_refresh(st, ri->job, ri->idx);
    if (!own) {
        if (rc) {
            *broken = true; /* the batch's transaction holds half of it */
            return ex_fail_db(st, f, "rejecting the report");
        }
    } else if (!rc) {
        rc = ex_txn_commit(st, now, f);
    } else {
        ex_txn_rollback(st);
    }
    if (rc)
        return f->code ? rc : ex_fail_db(st, f, "rejecting the report");
    if (queued)
        wake_claimers(st);
    return ex_fail_set(f, 409, "commit_mismatch",
                       "replica %lld: the reported result does not match its commitment; it "
                       "counts as a wrong result",
                       (long long)replica);
}

int ex_report_row_write(struct ex_state *st, const struct ex_report_row *row,
                        enum cu_replica_state to, const struct ex_report_pay *pay)
{
    const struct ex_report *r = row->r;
    sqlite3_stmt *s;
    int rc;

    /* An accepting write takes the report's step too (from -> reported
     * -> accepted in one write). */
    assert(cu_replica_can_transition(row->from, to) ||
           (cu_replica_can_transition(row->from, CU_REPLICA_REPORTED) &&
            cu_replica_can_transition(CU_REPLICA_REPORTED, to)));
    /* OR FAIL: no statement journal (see "replica transitions"); a
     * failure rolls the whole transaction back. */
    if (pay)
        s = ex_sql_cached(st,
                          "UPDATE OR FAIL replicas SET status = ?2, exit_code = ?3, reason = ?4, "
                          "cpu_ms = ?5, wall_ms = ?6, merkle_root = ?7, outputs_json = ?8, "
                          "stdout_hash = ?9, stderr_hash = ?10, report_body = ?11, "
                          "reported_ms = ?12, cu_milli = ?13, report_batch = ?14, state = ?15, "
                          "paid = ?17, fee = ?18, recorded = 1 "
                          "WHERE id = ?1 AND state = ?16",
                          "it", row->id, ex_status_name(r->status));
    else
        s = ex_sql_cached(st,
                          "UPDATE OR FAIL replicas SET status = ?2, exit_code = ?3, reason = ?4, "
                          "cpu_ms = ?5, wall_ms = ?6, merkle_root = ?7, outputs_json = ?8, "
                          "stdout_hash = ?9, stderr_hash = ?10, report_body = ?11, "
                          "reported_ms = ?12, cu_milli = ?13, report_batch = ?14, state = ?15 "
                          "WHERE id = ?1 AND state = ?16",
                          "it", row->id, ex_status_name(r->status));
    if (!s)
        return -CU_EDB;
    if (r->has_exit)
        sqlite3_bind_int64(s, 3, r->exit_code);
    if (r->reason)
        sqlite3_bind_text(s, 4, r->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, clamp_i64(r->cpu_ms));
    sqlite3_bind_int64(s, 6, clamp_i64(r->wall_ms));
    if (r->merkle_root)
        sqlite3_bind_text(s, 7, r->merkle_root, -1, SQLITE_STATIC);
    if (r->outputs_json)
        sqlite3_bind_text(s, 8, r->outputs_json, -1, SQLITE_STATIC);
    if (r->stdout_hash)
        sqlite3_bind_text(s, 9, r->stdout_hash, -1, SQLITE_STATIC);
    if (r->stderr_hash)
        sqlite3_bind_text(s, 10, r->stderr_hash, -1, SQLITE_STATIC);
    if (r->body && row->batch_id == 0)
        sqlite3_bind_blob64(s, 11, r->body, r->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 12, row->now_ms);
    sqlite3_bind_int64(s, 13, pay ? pay->cu_milli : clamp_i64(row->cu_milli));
    if (row->batch_id > 0)
        sqlite3_bind_int64(s, 14, row->batch_id);
    sqlite3_bind_text(s, 15, cu_replica_state_name(to), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 16, cu_replica_state_name(row->from), -1, SQLITE_STATIC);
    if (pay) {
        sqlite3_bind_int64(s, 17, pay->paid);
        sqlite3_bind_int64(s, 18, pay->fee);
    }
    rc = ex_sql_step(st, s) < 0 ? -CU_EDB : 0;
    if (!rc && sqlite3_changes(st->db.h) != 1) {
        cu_error("replica %lld was not %s (writing its report, to %s)", (long long)row->id,
                 cu_replica_state_name(row->from), cu_replica_state_name(to));
        rc = -CU_ECONFLICT;
    }
    ex_sql_done(st, s);
    return rc;
}

/* The writes of one report that passed its gates, in the open
 * transaction: the report's fields (the verbatim body, or the id of the
 * batch whose signed body holds it), the replica's new state, the task's
 * decision. *queued is set when replicas were queued. 0 or -CU_EDB (roll
 * back). mu held. */
static int report_write(struct ex_state *st, int64_t replica, const char *provider,
                        const struct replica_info *ri, const struct ex_report *r,
                        int64_t batch_id, uint64_t cu_milli, int64_t now_ms, bool *queued,
                        bool *accepted)
{
    enum ex_status status = r->status;
    enum cu_replica_state to;
    bool ended = task_state_finished(ri->tstate) || strcmp(ri->jstate, "running") != 0;
    struct ex_report_row row = {.id = replica,
                                .from = ri->state,
                                .r = r,
                                .batch_id = batch_id,
                                .cu_milli = cu_milli,
                                .now_ms = now_ms};
    int rc;

    *accepted = false;
    /* Where the report takes the replica: the task ended elsewhere
     * (cancel, quorum, failure) and this run no longer counts; the
     * provider could not run it (not the task's fault); or reported. */
    if (ended)
        to = CU_REPLICA_CANCELLED;
    else if (status == EX_ST_KILLED || status == EX_ST_ERROR)
        to = CU_REPLICA_EXPIRED;
    else
        to = CU_REPLICA_REPORTED;
    cu_info("replica %lld reported %s by %.8s (task %s/%lld)", (long long)replica,
            ex_status_name(status), provider, ri->job, (long long)ri->idx);
    /* The task's decision writes the report (task_decide: with its
     * acceptance when it accepts it now). The task's and the job's states
     * are those replica_info read in this transaction under mu; nothing
     * has changed them since. */
    if (to == CU_REPLICA_REPORTED && !(status == EX_ST_OK && ri->validator)) {
        rc = task_decide(st, ri->job, ri->idx, now_ms, &ri->head, &row, queued);
        *accepted = row.accepted;
        return rc;
    }

    /* The report's fields and the move in one write of the row. */
    rc = ex_report_row_write(st, &row, to, NULL);
    if (rc || ended)
        return rc;
    if (to == CU_REPLICA_EXPIRED) {
        rc = ex_settle_lost(st, replica, false, now_ms);
        if (!rc)
            rc = task_replica_lost(st, ri->job, ri->idx,
                                   r->reason && r->reason[0] ? r->reason : ex_status_name(status),
                                   now_ms, queued);
        if (!rc)
            rc = task_refresh(st, ri->job, ri->idx);
        return rc;
    }
    /* Decided after the validator compared it (validate.c). */
    return ex_sql_run(st, "UPDATE replicas SET validating = 1 WHERE id = ?1", "i", replica);
}

/* The gates of one report (holder, lease, idempotence, CU, commitment):
 * 0 to write it (*ri and *cu_milli set), 1 when already reported (*out
 * set: the idempotent answer), negative with f set when refused; *broken
 * when a failure left the open (batch) transaction half done. mu held. */
static int report_gates(struct ex_state *st, int64_t replica, const char *provider,
                        const struct ex_report *r, int64_t now_ms, struct replica_info *ri,
                        uint64_t *cu_milli, json_t **out, bool *broken, struct ex_fail *f)
{
    int rc;

    *broken = false;
    rc = report_gate(st, replica, provider, now_ms, true, ri, out, f);
    if (rc)
        return rc;
    rc = provider_cu_milli(ri, r->cpu_ms, cu_milli, f);
    if (rc)
        return rc;
    if (r->status == EX_ST_OK && r->merkle_root)
        rc = commit_gate(st, replica, provider, ri, r->merkle_root, now_ms, broken, f);
    return rc;
}

int ex_report_apply(struct ex_state *st, int64_t replica, const char *provider,
                    const struct ex_report *r, int64_t now_ms, json_t **out, struct ex_fail *f)
{
    struct replica_info ri;
    bool queued = false, broken, accepted;
    uint64_t cu_milli = 0;
    int rc;

    *out = NULL;
    lock_report(st);
    rc = report_gates(st, replica, provider, r, now_ms, &ri, &cu_milli, out, &broken, f);
    if (rc) {
        rc = rc > 0 ? 0 : rc;
        goto out_unlock;
    }
    if (ex_txn_begin(st, NULL)) {
        rc = ex_fail_db(st, f, "starting a transaction");
        goto out_unlock;
    }
    rc = report_write(st, replica, provider, &ri, r, 0, cu_milli, now_ms, &queued, &accepted);
    if (rc)
        goto out_rollback;
    *out = accepted ? report_answer_of(replica, cu_replica_state_name(CU_REPLICA_ACCEPTED), "done")
                    : report_answer(st, replica);
    if (ex_txn_commit(st, now_ms, NULL)) {
        json_decref(*out);
        *out = NULL;
        rc = -CU_EDB;
        goto out_rollback;
    }
    if (queued)
        wake_claimers(st);
    if (!*out)
        rc = ex_fail_set(f, 500, "internal", "out of memory");
    goto out_unlock;

out_rollback:
    rc = ex_fail_db(st, f, "applying the report");
    ex_txn_rollback(st);
out_unlock:
    unlock_report(st);
    return rc;
}

int ex_report_apply_batch(struct ex_state *st, const char *provider, size_t n,
                          const int64_t *replicas, const struct ex_report *const *reports,
                          const char *body, size_t body_len, int64_t now_ms, json_t **outs,
                          struct ex_fail *fails, struct ex_fail *f)
{
    struct replica_info ri;
    bool queued = false, broken = false, accepted;
    int64_t batch_id = 0;
    uint64_t cu_milli;
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        if (reports[i])
            outs[i] = NULL;
    lock_report(st);
    if (ex_txn_begin(st, NULL)) {
        rc = ex_fail_db(st, f, "starting a transaction");
        goto out_unlock;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const struct ex_report *r = reports[i];
        if (!r)
            continue; /* refused before (fails[i] set by the caller) */
        fails[i].code = NULL;
        cu_milli = 0;
        rc = report_gates(st, replicas[i], provider, r, now_ms, &ri, &cu_milli, &outs[i],
                          &broken, &fails[i]);
        if (broken)
            break;
        if (rc) {
            /* This one is refused or was already reported; the batch goes on. */
            rc = 0;
            continue;
        }
        if (batch_id == 0) {
            /* The signed body, once: every report of the batch is in it. */
            rc = ex_sql_run(st,
                            "INSERT INTO report_batches (provider, body, time_ms) "
                            "VALUES (?1, ?2, ?3)",
                            "tbi", provider, (const void *)body, body_len, now_ms);
            if (rc)
                break;
            batch_id = sqlite3_last_insert_rowid(st->db.h);
        }
        rc = report_write(st, replicas[i], provider, &ri, r, batch_id, cu_milli, now_ms, &queued,
                          &accepted);
        if (!rc) {
            outs[i] = accepted ? report_answer_of(replicas[i],
                                                  cu_replica_state_name(CU_REPLICA_ACCEPTED), "done")
                               : report_answer(st, replicas[i]);
            if (!outs[i])
                rc = -CU_ENOMEM;
        }
    }
    if (rc || broken || ex_txn_commit(st, now_ms, NULL)) {
        ex_txn_rollback(st);
        for (size_t i = 0; i < n; i++) {
            if (!reports[i])
                continue;
            json_decref(outs[i]);
            outs[i] = NULL;
        }
        rc = ex_fail_db(st, f, "applying the reports");
        goto out_unlock;
    }
    if (queued)
        wake_claimers(st);
out_unlock:
    unlock_report(st);
    return rc;
}

/* ---- metrics --------------------------------------------------------------------------- */

/* The metrics read the state through a connection of their own, without
 * mu: counting a million replicas by state took 0.2-0.35 s (bench/scale),
 * all of it holding mu while every claim and report waited. A WAL reader
 * sees the last commit and blocks no writer; its snapshot may be ahead of
 * the last fsync, which a gauge may be. */

/* One count per state of sql (one "?1" for the state) on db. */
static int metric_states(sqlite3 *db, struct cu_buf *out, const char *name, const char *help,
                         const char *sql, const char *const *states)
{
    sqlite3_stmt *s = NULL;
    int rc = 0;

    if (cu_buf_appendf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name))
        return -CU_ETOOBIG;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        cu_error("metrics: cannot prepare [%s]: %s", sql, sqlite3_errmsg(db));
        sqlite3_finalize(s);
        return -CU_EDB;
    }
    /* Every known state appears, zero or not, so graphs do not break. */
    for (size_t i = 0; !rc && states[i]; i++) {
        int64_t c = 0;
        sqlite3_reset(s);
        sqlite3_bind_text(s, 1, states[i], -1, SQLITE_STATIC);
        switch (sqlite3_step(s)) {
        case SQLITE_ROW:
            c = sqlite3_column_int64(s, 0);
            break;
        case SQLITE_DONE:
            break;
        default:
            cu_error("metrics: %s", sqlite3_errmsg(db));
            rc = -CU_EDB;
            continue;
        }
        if (cu_buf_appendf(out, "%s{state=\"%s\"} %lld\n", name, states[i], (long long)c))
            rc = -CU_ETOOBIG;
    }
    sqlite3_finalize(s);
    return rc;
}

int ex_metrics(struct ex_state *st, int64_t now_ms, struct cu_buf *out)
{
    static const char *const job_states[] = {"running", "done", "failed", "cancelled", NULL};
    static const char *const task_states[] = {"queued", "running",   "done",
                                              "failed", "cancelled", NULL};
    const char *replica_states[CU_REPLICA_NSTATES + 1];
    struct cu_db_stats dbs;
    sqlite3_stmt *s = NULL;
    sqlite3 *db = st->metrics_db;
    int64_t online = 0;
    int rc;

    for (int i = 0; i < CU_REPLICA_NSTATES; i++)
        replica_states[i] = cu_replica_state_name((enum cu_replica_state)i);
    replica_states[CU_REPLICA_NSTATES] = NULL;

    pthread_mutex_lock(&st->metrics_mu);
    /* One snapshot for every count. */
    rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : -CU_EDB;
    if (rc)
        cu_error("metrics: %s", sqlite3_errmsg(db));
    if (!rc)
        rc = metric_states(db, out, "cumulus_jobs", "Jobs by state.",
                           "SELECT COUNT(*) FROM jobs WHERE state = ?1", job_states);
    if (!rc)
        rc = metric_states(db, out, "cumulus_tasks", "Tasks by state.",
                           /* The kept counts (schema.c, 15): one row per
                            * job, not a scan of every task. */
                           "SELECT COALESCE(SUM(CASE ?1 WHEN 'queued' THEN queued "
                           "WHEN 'running' THEN running WHEN 'done' THEN done "
                           "WHEN 'failed' THEN failed WHEN 'cancelled' THEN cancelled "
                           "ELSE 0 END), 0) FROM job_counts",
                           task_states);
    if (!rc)
        rc = metric_states(db, out, "cumulus_replicas", "Replicas by state.",
                           "SELECT COUNT(*) FROM replicas WHERE state = ?1", replica_states);
    if (!rc) {
        /* Online: seen within a long-poll plus two leases. */
        int64_t window = EX_MAX_WAIT_MS + 2 * clamp_i64(st->lease_ms);
        if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM providers WHERE last_seen_ms >= ?1", -1,
                               &s, NULL) != SQLITE_OK)
            rc = -CU_EDB;
        else {
            sqlite3_bind_int64(s, 1, now_ms - window);
            if (sqlite3_step(s) == SQLITE_ROW)
                online = sqlite3_column_int64(s, 0);
            else
                rc = -CU_EDB;
        }
        if (rc)
            cu_error("metrics: %s", sqlite3_errmsg(db));
        sqlite3_finalize(s);
    }
    /* (metric_states logged its own failures.) */
    (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->metrics_mu);
    if (rc)
        return rc;
    cu_db_stats(&st->db, &dbs);
    if (cu_buf_appendf(out,
                       "# HELP cumulus_db_commits_total State database commits.\n"
                       "# TYPE cumulus_db_commits_total counter\ncumulus_db_commits_total %llu\n"
                       "# HELP cumulus_db_syncs_total fdatasync calls that made commits durable.\n"
                       "# TYPE cumulus_db_syncs_total counter\ncumulus_db_syncs_total %llu\n"
                       "# HELP cumulus_db_checkpoints_total WAL checkpoints, by who ran them.\n"
                       "# TYPE cumulus_db_checkpoints_total counter\n"
                       "cumulus_db_checkpoints_total{by=\"thread\"} %llu\n"
                       "cumulus_db_checkpoints_total{by=\"commit\"} %llu\n"
                       "# HELP cumulus_db_wal_restarts_total Times the WAL started again at its beginning.\n"
                       "# TYPE cumulus_db_wal_restarts_total counter\n"
                       "cumulus_db_wal_restarts_total %llu\n"
                       "# HELP cumulus_db_wal_frames Pages in the WAL after the last commit.\n"
                       "# TYPE cumulus_db_wal_frames gauge\ncumulus_db_wal_frames %llu\n"
                       "# HELP cumulus_db_expect_timeouts_total Syncs that stopped waiting for "
                       "the leases of woken claims.\n"
                       "# TYPE cumulus_db_expect_timeouts_total counter\n"
                       "cumulus_db_expect_timeouts_total %llu\n",
                       (unsigned long long)dbs.commits, (unsigned long long)dbs.syncs,
                       (unsigned long long)dbs.checkpoints, (unsigned long long)dbs.catchups,
                       (unsigned long long)dbs.restarts, (unsigned long long)dbs.wal_frames,
                       (unsigned long long)dbs.expect_timeouts))
        return -CU_ETOOBIG;
    if (cu_buf_appendf(out,
                       "# HELP cumulus_providers_online Providers seen recently.\n"
                       "# TYPE cumulus_providers_online gauge\ncumulus_providers_online %lld\n"
                       "# HELP cumulus_http_requests_total HTTP requests served.\n"
                       "# TYPE cumulus_http_requests_total counter\n"
                       "cumulus_http_requests_total %llu\n",
                       (long long)online,
                       (unsigned long long)__atomic_load_n(&st->requests, __ATOMIC_RELAXED)))
        return -CU_ETOOBIG;
    return 0;
}

/* ---- trust (issue 4) ------------------------------------------------------------------- */

bool ex_holds_lease(struct ex_state *st, const char *provider)
{
    sqlite3_stmt *s = ex_sql_cached(st,
                                   "SELECT 1 FROM replicas WHERE provider = ?1 AND "
                                   "state IN ('leased','running') LIMIT 1",
                                   "t", provider);
    bool held = s && ex_sql_step(st, s) == 1;

    ex_sql_done(st, s);
    return held;
}

void ex_commit_hash(const char *provider, const char *merkle_root, char out[CU_HASH_HEX_LEN + 1])
{
    struct cu_buf b = CU_BUF_INIT(256);
    struct cu_hash h;

    if (cu_buf_appendf(&b, "cumulus-commit-v1\n%s\n%s", provider, merkle_root) != 0) {
        out[0] = '\0';
        cu_buf_release(&b);
        return;
    }
    cu_hash_mem(b.data, b.len, &h);
    cu_hash_to_hex(&h, out);
    cu_buf_release(&b);
}

int ex_commit(struct ex_state *st, int64_t replica, const char *provider, const char *commit,
              int64_t now_ms, json_t **out, struct ex_fail *f)
{
    sqlite3_stmt *s;
    char holder[CU_ID_LEN + 1] = "", state[16] = "", job[32] = "", have[CU_HASH_HEX_LEN + 1] = "";
    int64_t idx = 0;
    int rc;

    *out = NULL;
    lock(st);
    s = ex_sql_cached(st,
                     "SELECT provider, state, job_id, task_idx, commit_hash FROM replicas "
                     "WHERE id = ?1",
                     "i", replica);
    if (!s) {
        rc = ex_fail_db(st, f, "reading the replica");
        goto out_unlock;
    }
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        ex_col_copy(s, 0, holder, sizeof holder);
        ex_col_copy(s, 1, state, sizeof state);
        ex_col_copy(s, 2, job, sizeof job);
        idx = sqlite3_column_int64(s, 3);
        ex_col_copy(s, 4, have, sizeof have);
    }
    ex_sql_done(st, s);
    rc = holder_check(st, rc, holder, provider, replica, f);
    if (rc)
        goto out_unlock;
    if (strcmp(state, "leased") != 0 && strcmp(state, "running") != 0) {
        rc = ex_fail_set(f, 409, "lease_lost", "replica %lld is %s", (long long)replica, state);
        goto out_unlock;
    }
    if (have[0] && strcmp(have, commit) != 0) {
        rc = ex_fail_set(f, 409, "already_committed",
                         "replica %lld is already committed to another result",
                         (long long)replica);
        goto out_unlock;
    }
    if (!have[0]) {
        rc = ex_sql_run(st, "UPDATE replicas SET commit_hash = ?2 WHERE id = ?1", "it", replica,
                        commit);
        if (rc) {
            rc = ex_fail_db(st, f, "storing the commitment");
            goto out_unlock;
        }
        cu_debug("replica %lld committed by %.8s", (long long)replica, provider);
    }
    (void)now_ms;
    *out = json_pack("{s:b}", "reveal", grant_reveal(st, replica, job, idx));
    rc = *out ? 0 : ex_fail_set(f, 500, "internal", "out of memory");
out_unlock:
    unlock(st);
    return rc;
}

json_t *ex_challenge_answer(struct ex_state *st, const char *id, const char *provider,
                            const json_t *answer, int64_t now_ms, struct ex_fail *f)
{
    struct ex_challenge c;
    char why[256] = "";
    bool passed;
    int rc;

    lock(st);
    rc = ex_challenge_lookup(st, id, provider, &c, f);
    unlock(st);
    if (rc)
        return NULL;
    if (strcmp(c.state, "open") != 0)
        return json_pack("{s:b,s:s}", "passed", strcmp(c.state, "passed") == 0, "reason",
                         "already answered");
    /* Checking may cost an argon2id hash: not under the lock. */
    passed = ex_challenge_verdict(&c, answer, now_ms, why, sizeof why) == 0;
    lock(st);
    rc = ex_txn_begin(st, f);
    if (!rc)
        rc = ex_challenge_settle(st, id, provider, c.job, passed, now_ms);
    if (!rc)
        rc = ex_txn_commit(st, now_ms, f);
    else
        ex_txn_rollback(st);
    if (!rc && passed)
        wake_claimers(st); /* it may claim the job now */
    unlock(st);
    if (rc) {
        if (!f->code)
            ex_fail_db(st, f, "settling the challenge");
        return NULL;
    }
    cu_info("challenge %s %s by %.8s%s%s", id, passed ? "passed" : "FAILED", provider,
            passed ? "" : ": ", why);
    return passed ? json_pack("{s:b}", "passed", 1)
                  : json_pack("{s:b,s:s}", "passed", 0, "reason", why);
}
