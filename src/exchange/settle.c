/* settle.c - escrow and settlement: the exchange's money rules (issue 3).
 *
 * Every function here runs with mu held inside the caller's transaction
 * (ex_txn_begin), so the ledger transactions it adds are sealed into one
 * block that commits together with the state change that caused them: a
 * kill -9 leaves both or neither, and a replica's `paid` column (set in the
 * same commit as its escrow_release) makes paying twice impossible.
 *
 *   submit      escrow_lock of the job's maximum cost (price.h), carrying
 *               the requester's signed request verbatim as authorization
 *   acceptance  per accepted replica: escrow_release of its pay (the lowest
 *               CU claim among the agreeing replicas, at the provider's
 *               ask, capped at max_cu), the exchange fee, a task_record
 *   loss        a task_record of the lost replica (wrong_result, timeout,
 *               abandoned), no money
 *   end         (done, failed, cancelled) the escrow fee, then a refund of
 *               everything still locked to the owner
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "exchange/settle.h"
#include "exchange/sql.h"
#include "exchange/trust.h"
#include "market/price.h"

#include "base/banned.h"

/* Logs a refused ledger transaction: inside settlement it is a bug or a
 * broken invariant, never the client's doing. */
static int settle_fail(const char *what, const char *job, const struct ex_fail *f, int rc)
{
    cu_error("settlement of job %s: %s: %s", job, what, f->msg);
    return rc < 0 ? rc : -CU_EDB;
}

int ex_settle_terms(const struct ex_state *st, const struct cu_spec *sp, struct ex_terms *t,
                    struct ex_fail *f)
{
    memset(t, 0, sizeof *t);
    t->bid = sp->max_per_cu;
    t->max_cu = cu_spec_max_cu(sp);
    t->fee_bps = st->fee_bps;
    t->escrow_fee = st->escrow_fee;
    if (t->bid == 0)
        return ex_fail_set(f, 400, "invalid",
                           "spec: price.max_per_cu: a job must bid at least 1 base unit per CU");
    if (t->max_cu == 0)
        return ex_fail_set(f, 400, "invalid", "spec: price.max_cu: must be at least 1");
    if (cu_price_replica_max(t->bid, t->max_cu, t->fee_bps, &t->replica_max) != 0 ||
        cu_price_job_max(t->bid, t->max_cu, sp->task_count, sp->replication, t->fee_bps,
                         t->escrow_fee, &t->job_max) != 0)
        return ex_fail_set(f, 400, "invalid",
                           "spec: price: bid %llu x max_cu %llu x %u tasks x %u replicas "
                           "overflows the largest amount",
                           (unsigned long long)t->bid, (unsigned long long)t->max_cu,
                           sp->task_count, sp->replication);
    return 0;
}

int ex_settle_lock(struct ex_state *st, const char *job, const char *owner,
                   const struct ex_terms *t, const char *auth, struct ex_fail *f)
{
    const struct cu_ledger_state *view = ex_ledger_view(st);
    uint64_t bal = cu_ledger_balance(view, owner);
    struct cu_tx tx;

    if (bal < t->job_max)
        return ex_fail_set(f, 409, "insufficient_funds",
                           "the job may cost up to %llu (escrow locked at submission) but the "
                           "balance of %.12s... is %llu",
                           (unsigned long long)t->job_max, owner, (unsigned long long)bal);
    cu_tx_init(&tx, CU_TX_ESCROW_LOCK);
    tx.time_ms = cu_now_ms();
    (void)cu_snprintf(tx.from, sizeof tx.from, "%s", owner);
    (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
    tx.amount = t->job_max;
    if (cu_tx_set_authorization(&tx, auth, strlen(auth)) != 0) {
        cu_tx_release(&tx);
        return ex_fail_set(f, 413, "too_large", "the signed job request is too large to keep "
                                                "as the escrow authorization");
    }
    return ex_ledger_add(st, &tx, NULL, f);
}

/* Adds a task_record for replica rid; mark: set its recorded flag too
 * (false when the caller's own write of the row sets it). */
static int add_record(struct ex_state *st, const char *job, const char *owner,
                      const char *provider, int64_t idx, int64_t rid, enum cu_task_status status,
                      uint64_t incentive, uint64_t paid_seq, uint64_t wall_ms, bool gpu,
                      bool mark, int64_t now)
{
    const struct cu_ledger_state *view = ex_ledger_view(st);
    struct ex_fail f = {0};
    struct cu_tx tx;
    int rc;

    cu_tx_init(&tx, CU_TX_TASK_RECORD);
    tx.time_ms = now;
    (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
    (void)cu_snprintf(tx.replica, sizeof tx.replica, "%lld", (long long)rid);
    (void)cu_snprintf(tx.rec.id, sizeof tx.rec.id, "r%lld", (long long)rid);
    tx.rec.time_ms = now;
    (void)cu_snprintf(tx.rec.client, sizeof tx.rec.client, "%s", owner);
    (void)cu_snprintf(tx.rec.seller, sizeof tx.rec.seller, "%s", provider);
    tx.rec.task = (uint64_t)idx;
    /* Unpaid records point at themselves: the next seq is theirs. */
    tx.rec.tx_number = incentive ? paid_seq : view->tx_count;
    tx.rec.incentive = incentive;
    tx.rec.status = status;
    tx.rec.duration_ms = wall_ms;
    (void)cu_snprintf(tx.rec.task_type, sizeof tx.rec.task_type, "%s", gpu ? "gpu" : "cpu");
    rc = ex_ledger_add(st, &tx, NULL, &f);
    if (rc)
        return settle_fail("task record", job, &f, rc);
    rc = ex_trust_record(st, provider, ex_trust_outcome(status), job, rid, now);
    if (rc || !mark)
        return rc;
    return ex_sql_run(st, "UPDATE replicas SET recorded = 1 WHERE id = ?1", "i", rid);
}

struct job_terms {
    char owner[CU_ID_LEN + 1];
    uint64_t max_cu, fee_bps, escrow_fee, replica_max, locked;
    bool gpu, settled;
};

static int job_terms(struct ex_state *st, const char *job, struct job_terms *jt)
{
    sqlite3_stmt *s;
    int rc;

    memset(jt, 0, sizeof *jt);
    s = ex_sql_cached(st,
                     "SELECT owner, max_cu, fee_bps, escrow_fee, replica_max, locked, gpus, "
                     "settled FROM jobs WHERE id = ?1",
                     "t", job);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        ex_col_copy(s, 0, jt->owner, sizeof jt->owner);
        jt->max_cu = (uint64_t)sqlite3_column_int64(s, 1);
        jt->fee_bps = (uint64_t)sqlite3_column_int64(s, 2);
        jt->escrow_fee = (uint64_t)sqlite3_column_int64(s, 3);
        jt->replica_max = (uint64_t)sqlite3_column_int64(s, 4);
        jt->locked = (uint64_t)sqlite3_column_int64(s, 5);
        jt->gpu = sqlite3_column_int64(s, 6) > 0;
        jt->settled = sqlite3_column_int64(s, 7) != 0;
    }
    ex_sql_done(st, s);
    if (rc == 0) {
        cu_error("settlement: job %s is not stored", job);
        return -CU_EDB;
    }
    return rc < 0 ? rc : 0;
}

/* A replica lost the quorum: slash_bps of its provider's stake goes to
 * the requester whose job it tried to cheat (DESIGN.md §7). */
static int slash(struct ex_state *st, const char *job, const char *owner, const char *provider,
                 int64_t rid, int64_t now)
{
    uint64_t stake = cu_ledger_stake(ex_ledger_view(st), provider), amount;
    struct ex_fail f = {0};
    struct cu_tx tx;
    int rc;

    if (cu_price_fee(stake, st->slash_bps, &amount) != 0 || amount == 0)
        return 0;
    cu_tx_init(&tx, CU_TX_SLASH);
    tx.time_ms = now;
    (void)cu_snprintf(tx.from, sizeof tx.from, "%s", provider);
    (void)cu_snprintf(tx.to, sizeof tx.to, "%s", owner);
    (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
    (void)cu_snprintf(tx.replica, sizeof tx.replica, "%lld", (long long)rid);
    (void)cu_snprintf(tx.memo, sizeof tx.memo, "result lost the quorum");
    tx.amount = amount;
    rc = ex_ledger_add(st, &tx, NULL, &f);
    if (rc)
        return settle_fail("slash", job, &f, rc);
    cu_info("provider %.8s slashed %llu for replica %lld (wrong result)", provider,
            (unsigned long long)amount, (long long)rid);
    return ex_sql_run(st, "UPDATE replicas SET slashed = ?2 WHERE id = ?1", "ii", rid,
                      (int64_t)amount);
}

struct acc_row {
    int64_t id;
    char provider[CU_ID_LEN + 1];
    uint64_t ask, cu_milli, wall_ms;
};

#define SETTLE_MAX_ACCEPTED 64

/* Pays the accepted replicas acc[0..n) of a task (in id order; every
 * unpaid one): among agreeing replicas the lowest claim, each at its own
 * ask, the exchange fee, a task_record. move: the replicas are not
 * accepted yet (acc[i].from says what they are): the same write of the
 * row moves them. */
static int pay_accepted(struct ex_state *st, const char *job, int64_t idx,
                        const struct job_terms *jt, const struct ex_accept *acc, size_t n,
                        bool move, int64_t now)
{
    uint64_t lowest = UINT64_MAX;
    int rc;

    for (size_t i = 0; i < n; i++)
        if (acc[i].cu_milli < lowest)
            lowest = acc[i].cu_milli;
    for (size_t i = 0; i < n; i++) {
        const struct ex_accept *a = &acc[i];
        struct ex_fail f = {0};
        uint64_t pay, fee, seq = 0;
        struct cu_tx tx;

        /* Among agreeing replicas the lowest claim is paid (DESIGN.md §6),
         * each at its own ask. */
        if (cu_price_pay(lowest, jt->max_cu, a->ask, &pay) != 0 ||
            cu_price_fee(pay, (uint32_t)jt->fee_bps, &fee) != 0) {
            cu_error("settlement of job %s: pay of replica %lld overflows", job, (long long)a->id);
            return -CU_EDB;
        }
        if (pay + fee > jt->replica_max) {
            /* Cannot happen while ask <= bid; never pay past the cap. */
            cu_error("settlement of job %s: replica %lld would cost %llu > cap %llu", job,
                     (long long)a->id, (unsigned long long)(pay + fee),
                     (unsigned long long)jt->replica_max);
            return -CU_EDB;
        }
        if (pay) {
            cu_tx_init(&tx, CU_TX_ESCROW_RELEASE);
            tx.time_ms = now;
            (void)cu_snprintf(tx.to, sizeof tx.to, "%s", a->provider);
            (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
            (void)cu_snprintf(tx.replica, sizeof tx.replica, "%lld", (long long)a->id);
            tx.amount = pay;
            rc = ex_ledger_add(st, &tx, &seq, &f);
            if (rc)
                return settle_fail("release", job, &f, rc);
        }
        if (fee) {
            cu_tx_init(&tx, CU_TX_FEE);
            tx.time_ms = now;
            (void)cu_snprintf(tx.to, sizeof tx.to, "%s", st->ident.id);
            (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
            (void)cu_snprintf(tx.replica, sizeof tx.replica, "%lld", (long long)a->id);
            (void)cu_snprintf(tx.memo, sizeof tx.memo, "exchange fee");
            tx.amount = fee;
            rc = ex_ledger_add(st, &tx, NULL, &f);
            if (rc)
                return settle_fail("exchange fee", job, &f, rc);
        }
        /* The pay, the record flag (the record follows in this
         * transaction) and, when moving, the state: one write of the row.
         * OR FAIL: no statement journal (state.c, "replica transitions");
         * a failure rolls the whole transaction back. */
        if (move && a->report) {
            struct ex_report_pay rp = {.paid = (int64_t)pay, .fee = (int64_t)fee,
                                       .cu_milli = (int64_t)lowest};
            rc = ex_report_row_write(st, a->report, CU_REPLICA_ACCEPTED, &rp);
        } else if (move) {
            rc = ex_sql_run(st,
                            "UPDATE OR FAIL replicas SET state = 'accepted', paid = ?2, fee = ?3, "
                            "cu_milli = ?4, recorded = 1 WHERE id = ?1 AND state = ?5",
                            "iiiit", a->id, (int64_t)pay, (int64_t)fee, (int64_t)lowest,
                            cu_replica_state_name(a->from));
            if (!rc && sqlite3_changes(st->db.h) != 1) {
                cu_error("replica %lld was not %s (accepting it)", (long long)a->id,
                         cu_replica_state_name(a->from));
                rc = -CU_ECONFLICT;
            }
        } else {
            rc = ex_sql_run(st,
                            "UPDATE OR FAIL replicas SET paid = ?2, fee = ?3, cu_milli = ?4, recorded = 1 "
                            "WHERE id = ?1",
                            "iiii", a->id, (int64_t)pay, (int64_t)fee, (int64_t)lowest);
        }
        if (!rc)
            rc = add_record(st, job, jt->owner, a->provider, idx, a->id, CU_TASK_SUCCESS, pay, seq,
                            a->wall_ms, jt->gpu, false, now);
        if (rc)
            return rc;
        cu_debug("replica %lld paid %llu (+ fee %llu) to %.8s", (long long)a->id,
                 (unsigned long long)pay, (unsigned long long)fee, a->provider);
    }
    return 0;
}

/* Replicas whose result lost the quorum: a wrong_result record and a
 * slash. Only when a quorum agreed on another result: a task that
 * failed (its own failure, or no quorum) proves no result wrong. */
static int settle_losers(struct ex_state *st, const char *job, int64_t idx,
                         const struct job_terms *jt, int64_t now)
{
    struct acc_row acc[SETTLE_MAX_ACCEPTED];
    size_t n = 0;
    sqlite3_stmt *s;
    int rc;

    s = ex_sql_cached(st,
                     "SELECT id, provider, COALESCE(wall_ms, 0) FROM replicas WHERE job_id = ?1 "
                     "AND task_idx = ?2 AND state = 'rejected' AND status = 'ok' AND recorded = 0 "
                     "AND provider IS NOT NULL AND COALESCE(reason, '') != 'duplicate owner'",
                     "ti", job, idx);
    if (!s)
        return -CU_EDB;
    while ((rc = ex_sql_step(st, s)) == 1 && n < SETTLE_MAX_ACCEPTED) {
        struct acc_row *a = &acc[n++];
        a->id = sqlite3_column_int64(s, 0);
        ex_col_copy(s, 1, a->provider, sizeof a->provider);
        a->wall_ms = (uint64_t)sqlite3_column_int64(s, 2);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = add_record(st, job, jt->owner, acc[i].provider, idx, acc[i].id, CU_TASK_WRONG_RESULT,
                        0, 0, acc[i].wall_ms, jt->gpu, true, now);
        if (!rc)
            rc = slash(st, job, jt->owner, acc[i].provider, acc[i].id, now);
        if (rc)
            return rc;
    }
    return 0;
}

int ex_settle_task(struct ex_state *st, const char *job, int64_t idx, bool agreed, int64_t now)
{
    struct acc_row rows[SETTLE_MAX_ACCEPTED];
    struct ex_accept acc[SETTLE_MAX_ACCEPTED];
    struct job_terms jt;
    size_t n = 0;
    sqlite3_stmt *s;
    int rc;

    rc = job_terms(st, job, &jt);
    if (rc)
        return rc;
    /* Jobs stored before escrow existed (bid 0) settle nothing. */
    if (jt.replica_max == 0)
        return 0;
    s = ex_sql_cached(st,
                     "SELECT id, provider, COALESCE(price_per_cu, 1), COALESCE(cu_milli, 0), "
                     "COALESCE(wall_ms, 0) FROM replicas WHERE job_id = ?1 AND task_idx = ?2 "
                     "AND state = 'accepted' AND paid IS NULL ORDER BY id",
                     "ti", job, idx);
    if (!s)
        return -CU_EDB;
    while ((rc = ex_sql_step(st, s)) == 1 && n < SETTLE_MAX_ACCEPTED) {
        struct acc_row *r = &rows[n];
        struct ex_accept *a = &acc[n++];
        r->id = sqlite3_column_int64(s, 0);
        ex_col_copy(s, 1, r->provider, sizeof r->provider);
        *a = (struct ex_accept){.id = r->id,
                                .from = CU_REPLICA_ACCEPTED,
                                .provider = r->provider,
                                .ask = (uint64_t)sqlite3_column_int64(s, 2),
                                .cu_milli = (uint64_t)sqlite3_column_int64(s, 3),
                                .wall_ms = (uint64_t)sqlite3_column_int64(s, 4)};
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    rc = pay_accepted(st, job, idx, &jt, acc, n, false, now);
    if (rc || !agreed)
        return rc;
    return settle_losers(st, job, idx, &jt, now);
}

int ex_settle_accept(struct ex_state *st, const char *job, int64_t idx, const struct ex_accept *acc,
                     size_t n, bool rejected, int64_t now)
{
    struct job_terms jt;
    int rc;

    if (n > SETTLE_MAX_ACCEPTED) {
        cu_error("settlement of job %s: %zu accepted replicas of task %lld", job, n,
                 (long long)idx);
        return -CU_EDB;
    }
    rc = job_terms(st, job, &jt);
    if (rc)
        return rc;
    if (jt.replica_max == 0) {
        /* Jobs stored before escrow existed (bid 0) settle nothing: the
         * replicas are only accepted. */
        for (size_t i = 0; i < n && !rc; i++) {
            if (acc[i].from == CU_REPLICA_ACCEPTED)
                continue;
            if (acc[i].report) {
                rc = ex_report_row_write(st, acc[i].report, CU_REPLICA_ACCEPTED, NULL);
                continue;
            }
            rc = ex_sql_run(st, "UPDATE replicas SET state = 'accepted' WHERE id = ?1 AND state = ?2",
                            "it", acc[i].id, cu_replica_state_name(acc[i].from));
            if (!rc && sqlite3_changes(st->db.h) != 1)
                rc = -CU_ECONFLICT;
        }
        return rc;
    }
    rc = pay_accepted(st, job, idx, &jt, acc, n, true, now);
    if (rc || !rejected)
        return rc;
    return settle_losers(st, job, idx, &jt, now);
}

int ex_settle_lost(struct ex_state *st, int64_t rid, bool expired, int64_t now)
{
    return ex_settle_lost_as(st, rid, expired ? CU_TASK_TIMEOUT : CU_TASK_ABANDONED, now);
}

/* Records one replica that has no record yet: status, no pay; a slash too
 * when slashed. 0 also when there is nothing to record. */
static int record_unpaid(struct ex_state *st, int64_t rid, enum cu_task_status status,
                         bool slashed, int64_t now)
{
    struct job_terms jt;
    char job[32] = "", provider[CU_ID_LEN + 1] = "";
    int64_t idx = 0, wall = 0;
    sqlite3_stmt *s;
    int rc;

    s = ex_sql_cached(st,
                     "SELECT job_id, task_idx, provider, COALESCE(wall_ms, 0) FROM replicas "
                     "WHERE id = ?1 AND recorded = 0 AND provider IS NOT NULL",
                     "i", rid);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        ex_col_copy(s, 0, job, sizeof job);
        idx = sqlite3_column_int64(s, 1);
        ex_col_copy(s, 2, provider, sizeof provider);
        wall = sqlite3_column_int64(s, 3);
    }
    ex_sql_done(st, s);
    if (rc <= 0)
        return rc;
    rc = job_terms(st, job, &jt);
    if (!rc)
        rc = add_record(st, job, jt.owner, provider, idx, rid, status, 0, 0, (uint64_t)wall,
                        jt.gpu, true, now);
    if (!rc && slashed)
        rc = slash(st, job, jt.owner, provider, rid, now);
    return rc;
}

int ex_settle_lost_as(struct ex_state *st, int64_t rid, enum cu_task_status status, int64_t now)
{
    return record_unpaid(st, rid, status, false, now);
}

int ex_settle_challenge_failed(struct ex_state *st, const char *job, const char *provider,
                               const char *challenge, int64_t now)
{
    const struct cu_ledger_state *view = ex_ledger_view(st);
    struct job_terms jt;
    struct ex_fail f = {0};
    struct cu_tx tx;
    int rc;

    rc = job_terms(st, job, &jt);
    if (rc)
        return rc;
    /* A record with no replica: the provider never got one. */
    cu_tx_init(&tx, CU_TX_TASK_RECORD);
    tx.time_ms = now;
    (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
    (void)cu_snprintf(tx.rec.id, sizeof tx.rec.id, "%s", challenge);
    tx.rec.time_ms = now;
    (void)cu_snprintf(tx.rec.client, sizeof tx.rec.client, "%s", jt.owner);
    (void)cu_snprintf(tx.rec.seller, sizeof tx.rec.seller, "%s", provider);
    tx.rec.tx_number = view->tx_count;
    tx.rec.status = CU_TASK_CHALLENGE_FAILED;
    (void)cu_snprintf(tx.rec.task_type, sizeof tx.rec.task_type, "challenge");
    rc = ex_ledger_add(st, &tx, NULL, &f);
    if (rc)
        return settle_fail("challenge record", job, &f, rc);
    return ex_trust_record(st, provider, CU_REP_CHALLENGE_FAILED, job, 0, now);
}

int ex_settle_mismatch(struct ex_state *st, int64_t rid, int64_t now)
{
    return record_unpaid(st, rid, CU_TASK_WRONG_RESULT, true, now);
}

int ex_settle_job_end(struct ex_state *st, const char *job, int64_t now)
{
    struct job_terms jt;
    struct ex_fail f = {0};
    uint64_t left, efee;
    struct cu_tx tx;
    int rc;

    rc = job_terms(st, job, &jt);
    if (rc)
        return rc;
    if (jt.settled || jt.replica_max == 0)
        return 0;
    left = cu_ledger_locked(ex_ledger_view(st), job);
    efee = jt.escrow_fee < left ? jt.escrow_fee : left;
    if (efee) {
        cu_tx_init(&tx, CU_TX_FEE);
        tx.time_ms = now;
        (void)cu_snprintf(tx.to, sizeof tx.to, "%s", st->ident.id);
        (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
        (void)cu_snprintf(tx.memo, sizeof tx.memo, "escrow fee");
        tx.amount = efee;
        rc = ex_ledger_add(st, &tx, NULL, &f);
        if (rc)
            return settle_fail("escrow fee", job, &f, rc);
        left -= efee;
    }
    if (left) {
        cu_tx_init(&tx, CU_TX_REFUND);
        tx.time_ms = now;
        (void)cu_snprintf(tx.to, sizeof tx.to, "%s", jt.owner);
        (void)cu_snprintf(tx.job, sizeof tx.job, "%s", job);
        tx.amount = left;
        rc = ex_ledger_add(st, &tx, NULL, &f);
        if (rc)
            return settle_fail("refund", job, &f, rc);
    }
    rc = ex_sql_run(st, "UPDATE jobs SET settled = 1 WHERE id = ?1", "t", job);
    if (!rc)
        cu_info("job %s settled: escrow fee %llu, refund %llu", job, (unsigned long long)efee,
                (unsigned long long)left);
    return rc;
}

int ex_settle_can_lease(struct ex_state *st, const char *job, int64_t idx, uint64_t replica_max,
                        uint64_t escrow_fee, bool *ok)
{
    sqlite3_stmt *s;
    uint64_t need = 0, payable = 0, locked;
    int64_t quorum = 1, held_here = 0;
    int rc;

    *ok = true;
    if (replica_max == 0)
        return 0;
    /* At most `quorum` replicas of a task are ever paid, so the replicas out
     * (leased, running, reported) of a task count up to that many: a
     * replacement for a wrong result needs no more escrow than the quorum.
     * job_counts.payable is that sum and tasks.held the task's count, both
     * kept by triggers in every state change's transaction (schema.c, 14,
     * 17 and 20; job_counts.quorum is the job's); a finished task counts 0
     * (25): nothing of it is paid any more. */
    s = ex_sql_cached(st,
                     "SELECT c.quorum, c.payable, COALESCE(t.held, 0) FROM job_counts c "
                     "LEFT JOIN tasks t ON t.job_id = c.job_id AND t.idx = ?2 "
                     "WHERE c.job_id = ?1",
                     "ti", job, idx);
    if (!s)
        return -CU_EDB;
    if ((rc = ex_sql_step(st, s)) == 1) {
        quorum = sqlite3_column_int64(s, 0);
        payable = (uint64_t)sqlite3_column_int64(s, 1);
        held_here = sqlite3_column_int64(s, 2);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    if (held_here < quorum)
        payable++;
    locked = cu_ledger_locked(ex_ledger_view(st), job);
    if (cu_mul_u64(payable, replica_max, &need) != 0 ||
        cu_add_u64(need, escrow_fee, &need) != 0 || need > locked)
        *ok = false;
    return 0;
}

json_t *ex_settle_bill(struct ex_state *st, const char *job)
{
    const struct cu_ledger_escrow *x = cu_ledger_escrow(ex_ledger_view(st), job);
    json_t *bill, *paid;
    sqlite3_stmt *s;
    uint64_t exfee = 0, efee = 0;
    int rc;

    if (!x)
        return json_null();
    paid = json_array();
    s = ex_sql_cached(st,
                     "SELECT provider, COUNT(*), SUM(paid), SUM(fee), SUM(cu_milli) FROM replicas "
                     "WHERE job_id = ?1 AND paid IS NOT NULL GROUP BY provider ORDER BY provider",
                     "t", job);
    if (!s || !paid) {
        ex_sql_done(st, s);
        json_decref(paid);
        return NULL;
    }
    while ((rc = ex_sql_step(st, s)) == 1) {
        exfee += (uint64_t)sqlite3_column_int64(s, 3);
        json_array_append_new(paid, json_pack("{s:s,s:I,s:I,s:I}", "provider", ex_col_text(s, 0),
                                              "replicas", (json_int_t)sqlite3_column_int64(s, 1),
                                              "amount", (json_int_t)sqlite3_column_int64(s, 2),
                                              "cu_milli",
                                              (json_int_t)sqlite3_column_int64(s, 4)));
    }
    ex_sql_done(st, s);
    efee = x->fees >= exfee ? x->fees - exfee : 0;
    bill = json_pack("{s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I}", "locked", (json_int_t)x->total_locked,
                     "paid_total", (json_int_t)x->released, "paid", paid, "exchange_fee",
                     (json_int_t)exfee, "escrow_fee", (json_int_t)efee, "refunded",
                     (json_int_t)x->refunded, "still_locked", (json_int_t)x->locked, "fees",
                     (json_int_t)x->fees);
    return bill;
}
