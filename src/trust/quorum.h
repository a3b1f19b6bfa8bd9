/* quorum.h - deciding a task from its replicas' results (pure).
 *
 * Replication and quorum as in BOINC and iExec (DESIGN.md §7, issue 4). A
 * task has a replication policy {min, quorum, max}:
 *   min     replicas issued at the start (quorum <= min <= max);
 *   quorum  results that must agree for the task to be accepted;
 *   max     most replicas that may produce a result (results, reported
 *           failures and pending replicas; expired/lost ones do not count,
 *           the exchange bounds those with its own error count).
 * Results agree when their output Merkle roots are equal. Agreeing results
 * count once per owner: a vote carries its provider and owner, and a group
 * of agreeing votes supports a root with the number of distinct owners in
 * it (a vote without an owner is owned by its provider; one without either
 * counts alone). So the quorum is always reached on distinct providers and
 * distinct owners, even if the scheduler ever placed two replicas on one.
 *
 * The verdict:
 *   DONE       the best-supported root has >= quorum owners: its counted
 *              votes are accepted (winners), every other result and every
 *              reported failure is rejected (losers), further agreeing
 *              votes of an owner already counted are DUPLICATE, pending
 *              replicas are dropped;
 *   WAIT       enough replicas are pending to reach the quorum;
 *   NEED_MORE  issue `more` replicas (to reach min, or the quorum at best);
 *   FAILED     see fail_reason: TASK (a reported task failure, see below)
 *              or NO_QUORUM (max results in without a quorum, or the
 *              quorum can no longer be reached within max: fails early).
 * Ties between equally supported roots go to the one reported first.
 *
 * Reported task failures (non-zero exit, time or output limit):
 *   fail_fast  one failure fails the task at once (unless a quorum of
 *              results is already in). That is the legacy rule of
 *              cu_quorum_decide.
 *   otherwise  failures are one more "result": quorum failures from
 *              distinct owners fail the task (TASK; those votes are
 *              ACCEPTed as the agreed outcome, the results REJECTed); a
 *              lone failure is outvoted like a wrong root. So a cheater
 *              cannot sink a task by reporting a failure.
 *
 * The caller describes each replica as a vote; the decision says what to do
 * with the task and with each vote. No I/O, no clock. */
#ifndef CU_TRUST_QUORUM_H
#define CU_TRUST_QUORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/hash.h"

enum cu_vote_kind {
    CU_VOTE_NONE,    /* ended without a result (expired, cancelled, provider error) */
    CU_VOTE_PENDING, /* queued, leased or running: a result may still come */
    CU_VOTE_RESULT,  /* a successful run with an output root (reported, accepted or rejected) */
    CU_VOTE_FAILED,  /* a reported task failure: non-zero exit, timeout, output limit */
};

struct cu_vote {
    enum cu_vote_kind kind;
    struct cu_hash root;  /* CU_VOTE_RESULT only */
    const char *provider; /* provider id; NULL: unknown (counts as distinct) */
    const char *owner;    /* owner id; NULL: the provider is its own owner */
};

enum cu_quorum_verdict {
    CU_QUORUM_WAIT,      /* enough replicas are out; wait for their results */
    CU_QUORUM_DONE,      /* quorum results agree on `root` */
    CU_QUORUM_NEED_MORE, /* issue `more` new replicas */
    CU_QUORUM_FAILED,    /* the task fails (see fail_reason, failed_vote, distinct) */
};

enum cu_quorum_failure {
    CU_QFAIL_NONE,      /* verdict is not FAILED */
    CU_QFAIL_TASK,      /* a reported task failure (failed_vote names the first) */
    CU_QFAIL_NO_QUORUM, /* results disagree and max leaves no way to a quorum */
};

/* What becomes of each vote. Winners are ACCEPT, losers REJECT. */
enum cu_vote_outcome {
    CU_OUTCOME_KEEP,      /* unchanged */
    CU_OUTCOME_ACCEPT,    /* counted in the quorum: pay it */
    CU_OUTCOME_REJECT,    /* a result or failure against the verdict: no pay, slash */
    CU_OUTCOME_DROP,      /* a pending replica no longer needed (cancel it) */
    CU_OUTCOME_DUPLICATE, /* agrees, but its owner is already counted: no pay, no slash */
};

/* A task's replication policy; see the head of this file. */
struct cu_replication {
    unsigned min, quorum, max;
    bool fail_fast; /* one reported task failure fails the task */
};

/* Largest accepted quorum, and max (the legacy policy of k = 1000 has max
 * 2001). */
#define CU_QUORUM_MAX_QUORUM 1000u
#define CU_QUORUM_MAX_REPLICAS 2001u

struct cu_quorum_decision {
    enum cu_quorum_verdict verdict;
    enum cu_quorum_failure fail_reason;
    unsigned more;       /* NEED_MORE: how many replicas to issue (>= 1) */
    size_t results;      /* votes of kind RESULT */
    size_t failures;     /* votes of kind FAILED */
    size_t pending;      /* votes of kind PENDING */
    size_t distinct;     /* distinct roots among the results */
    size_t support;      /* owners behind the best-supported outcome */
    size_t failed_vote;  /* FAILED by a task failure: that vote's index; else SIZE_MAX */
    struct cu_hash root; /* DONE: the agreed root */
};

/* Most results gathered for one task before it fails for disagreement,
 * under the legacy single-number replication k. */
#define CU_QUORUM_CAP(k) (2u * (k) + 1u)

/* Checks a policy: 1 <= quorum <= min <= max, quorum <=
 * CU_QUORUM_MAX_QUORUM, max <= CU_QUORUM_MAX_REPLICAS.
 * Returns 0 or -CU_EINVAL. */
int cu_replication_check(const struct cu_replication *r);

/* The legacy policy of one number k: {k, k, 2k+1, fail_fast}. */
struct cu_replication cu_replication_legacy(unsigned k);

/* Decides a task from its n votes (any order) under policy r. outcomes (n
 * entries, may be NULL) receives what to do with each vote; it is all KEEP
 * unless the verdict is DONE or FAILED. Strings in votes are only read.
 * Returns 0, or -CU_EINVAL when the policy fails cu_replication_check or a
 * vote kind is unknown (nothing decided). */
int cu_quorum_decide_policy(const struct cu_vote *votes, size_t n, const struct cu_replication *r,
                            enum cu_vote_outcome *outcomes, struct cu_quorum_decision *d);

/* The legacy entry point: cu_quorum_decide_policy with
 * cu_replication_legacy(k). Returns -CU_EINVAL when k is 0 or above 1000. */
int cu_quorum_decide(const struct cu_vote *votes, size_t n, unsigned k,
                     enum cu_vote_outcome *outcomes, struct cu_quorum_decision *d);

#endif
