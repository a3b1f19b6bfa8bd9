/* quorum.h - deciding a task from its replicas' results (pure).
 *
 * Replication and quorum as in BOINC and iExec (DESIGN.md §7): a task runs
 * on `replication` (k) providers; results agree when their output Merkle
 * roots are equal. k agreeing results make the task done: those replicas
 * are accepted, results with another root rejected. While results disagree
 * more replicas are issued, until k agree or 2k+1 results are in without a
 * quorum (then the task fails). A reported task failure (non-zero exit,
 * timeout, output limit) fails the task. With k = 1 the first result is
 * accepted.
 *
 * The caller describes each replica as a vote; the decision says what to do
 * with the task and with each vote. No I/O, no clock. */
#ifndef CU_TRUST_QUORUM_H
#define CU_TRUST_QUORUM_H

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
    struct cu_hash root; /* CU_VOTE_RESULT only */
};

enum cu_quorum_verdict {
    CU_QUORUM_WAIT,      /* enough replicas are out; wait for their results */
    CU_QUORUM_DONE,      /* k results agree on `root` */
    CU_QUORUM_NEED_MORE, /* issue `more` new replicas */
    CU_QUORUM_FAILED,    /* the task fails (see failed_vote / distinct) */
};

/* What becomes of each vote. */
enum cu_vote_outcome {
    CU_OUTCOME_KEEP,   /* unchanged */
    CU_OUTCOME_ACCEPT, /* a result in the quorum */
    CU_OUTCOME_REJECT, /* a result or failure that does not count */
    CU_OUTCOME_DROP,   /* a pending replica no longer needed (cancel it) */
};

struct cu_quorum_decision {
    enum cu_quorum_verdict verdict;
    unsigned more;       /* NEED_MORE: how many replicas to issue (>= 1) */
    size_t results;      /* votes of kind RESULT */
    size_t pending;      /* votes of kind PENDING */
    size_t distinct;     /* distinct roots among the results */
    size_t failed_vote;  /* FAILED by a task failure: that vote's index; else SIZE_MAX */
    struct cu_hash root; /* DONE: the agreed root */
};

/* Most results gathered for one task before it fails for disagreement. */
#define CU_QUORUM_CAP(k) (2u * (k) + 1u)

/* Decides a task from its n votes (any order) with replication k (>= 1).
 * outcomes (n entries, may be NULL) receives what to do with each vote; it
 * is all KEEP unless the verdict is DONE or FAILED. Returns 0, or
 * -CU_EINVAL when k is 0 or above 1000 or a vote kind is unknown (nothing
 * decided). */
int cu_quorum_decide(const struct cu_vote *votes, size_t n, unsigned k,
                     enum cu_vote_outcome *outcomes, struct cu_quorum_decision *d);

#endif
