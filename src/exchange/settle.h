/* settle.h - escrow and settlement (settle.c). Internal to src/exchange/.
 *
 * Every function expects mu held and, except ex_settle_terms and
 * ex_settle_bill, an open transaction (ex_txn_begin): the ledger
 * transactions they add commit with the caller's state change. Returns 0
 * or a negative CU_E* (a refused settlement transaction is logged: it
 * means a broken invariant, and the caller rolls back). */
#ifndef CU_EXCHANGE_SETTLE_H
#define CU_EXCHANGE_SETTLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "exchange/state.h"
#include "market/lease.h"
#include "market/spec.h"

/* A job's money terms, fixed at submission. */
struct ex_terms {
    uint64_t bid;         /* price.max_per_cu */
    uint64_t max_cu;      /* CU cap per replica */
    uint32_t fee_bps;     /* exchange fee then in force */
    uint64_t escrow_fee;  /* flat, charged at settlement */
    uint64_t replica_max; /* most one replica costs: pay + fee */
    uint64_t job_max;     /* what submission locks */
};

/* The terms of spec under the exchange's current fees. 400 with f set for
 * a bid of 0 or a cost that overflows. */
int ex_settle_terms(const struct ex_state *st, const struct cu_spec *sp, struct ex_terms *t,
                    struct ex_fail *f);
/* Locks t->job_max from owner's balance into job's escrow, keeping auth
 * (cu_tx_auth_make of the signed submission) in the transaction. 409
 * insufficient_funds (naming the cost and the balance), or as
 * ex_ledger_add. */
int ex_settle_lock(struct ex_state *st, const char *job, const char *owner,
                   const struct ex_terms *t, const char *auth, struct ex_fail *f);
/* After a task's quorum decision: pays every accepted, unpaid replica of
 * the task and writes its task_record; when a quorum agreed (agreed), the
 * replicas whose results lost get a wrong_result record and a slash. */
int ex_settle_task(struct ex_state *st, const char *job, int64_t idx, bool agreed, int64_t now);
/* A report that passed its gates, its write held back until the task's
 * decision: a replica the quorum accepts and pays at once gets its
 * report, its move and its pay in one write of its row
 * (ex_settle_accept), where writing the report first and then accepting
 * rewrote the row, and every index its state is in, twice. The pointers
 * are borrowed. */
struct ex_report_row {
    int64_t id;
    enum cu_replica_state from; /* its state in the database */
    const struct ex_report *r;
    int64_t batch_id;           /* > 0: the body is that report batch's */
    uint64_t cu_milli;          /* what the provider's claim comes to */
    int64_t now_ms;
    /* Set by the decision when it accepted the replica and its task is
     * done (the report's answer needs no read of them then). */
    bool accepted;
};
/* The pay of an accepted replica, written with its report. */
struct ex_report_pay {
    int64_t paid, fee, cu_milli;
};
/* (state.c) Writes row's report and moves the replica from row->from to
 * `to`; pay: also its pay (paid, fee, the CU paid; recorded = 1: its
 * record follows in this transaction). mu held, in a transaction. 0,
 * -CU_EDB, or -CU_ECONFLICT when the replica was not in row->from. */
int ex_report_row_write(struct ex_state *st, const struct ex_report_row *row,
                        enum cu_replica_state to, const struct ex_report_pay *pay);

/* A replica a quorum accepts, as the decision read it (unpaid). */
struct ex_accept {
    int64_t id;
    enum cu_replica_state from; /* its state now (reported, accepted already, or
                                 * leased/running with `report` set) */
    const char *provider;       /* borrowed */
    uint64_t ask, cu_milli, wall_ms;
    /* Non-NULL: the replica's report is not written yet (its row is
     * still `from`); the accepting write writes it too. Borrowed. */
    const struct ex_report_row *report;
};
/* ex_settle_task(agreed) for a quorum that agreed, given the accepted
 * replicas of the task (acc, n, in id order: every unpaid one): each is
 * moved to accepted and paid in one write of its row. rejected: whether
 * any replica of the task is rejected now (false skips looking for the
 * losers). -CU_ECONFLICT when a replica was no longer in its `from`. */
int ex_settle_accept(struct ex_state *st, const char *job, int64_t idx, const struct ex_accept *acc,
                     size_t n, bool rejected, int64_t now);
/* A task_record for a lost replica: timeout when its lease expired, else
 * abandoned (handed back, provider error). Once per replica. */
int ex_settle_lost(struct ex_state *st, int64_t replica, bool expired, int64_t now);
/* The same with the record's status given (e.g. challenge_failed). */
int ex_settle_lost_as(struct ex_state *st, int64_t replica, enum cu_task_status status,
                      int64_t now);
/* A failed capability challenge: a challenge_failed task_record (no
 * replica) and the reputation record. */
int ex_settle_challenge_failed(struct ex_state *st, const char *job, const char *provider,
                               const char *challenge, int64_t now);
/* A replica whose revealed result did not match its commitment: a
 * wrong_result record and a slash. */
int ex_settle_mismatch(struct ex_state *st, int64_t replica, int64_t now);
/* At the end of a job (done, failed, cancelled): the escrow fee, then the
 * refund of the rest to the owner. Once per job. */
int ex_settle_job_end(struct ex_state *st, const char *job, int64_t now);
/* Whether the job's escrow covers one more replica of task idx beside
 * those already out (leased, running, reported; at most the quorum of
 * each task can be paid) and the escrow fee. idx < 0: any task. */
int ex_settle_can_lease(struct ex_state *st, const char *job, int64_t idx, uint64_t replica_max,
                        uint64_t escrow_fee, bool *ok);
/* The job's bill so far: {"locked","paid_total","paid":[{provider,
 * replicas, amount, cu_milli}],"exchange_fee","escrow_fee","fees",
 * "refunded","still_locked"}, json null for a job without escrow, NULL
 * when out of memory. */
json_t *ex_settle_bill(struct ex_state *st, const char *job);

#endif
