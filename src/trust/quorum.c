/* quorum.c - task decisions from replica results. */
#include "trust/quorum.h"

#include <string.h>

#include "base/err.h"

#include "base/banned.h"

#define MAX_REPLICATION 1000u

/* Number of RESULT votes with the same root as votes[i]. O(n^2): n is at
 * most a few dozen replicas per task. */
static size_t agreeing(const struct cu_vote *votes, size_t n, size_t i)
{
    size_t c = 0;

    for (size_t j = 0; j < n; j++)
        if (votes[j].kind == CU_VOTE_RESULT && cu_hash_eq(&votes[j].root, &votes[i].root))
            c++;
    return c;
}

/* True when no RESULT vote before i has votes[i]'s root. */
static bool first_of_root(const struct cu_vote *votes, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (votes[j].kind == CU_VOTE_RESULT && cu_hash_eq(&votes[j].root, &votes[i].root))
            return false;
    return true;
}

/* Final verdicts settle every vote: results in the quorum accepted, other
 * results and failures rejected, pending replicas dropped. */
static void settle(const struct cu_vote *votes, size_t n, const struct cu_hash *root,
                   enum cu_vote_outcome *outcomes)
{
    if (!outcomes)
        return;
    for (size_t i = 0; i < n; i++) {
        switch (votes[i].kind) {
        case CU_VOTE_RESULT:
            outcomes[i] =
                root && cu_hash_eq(&votes[i].root, root) ? CU_OUTCOME_ACCEPT : CU_OUTCOME_REJECT;
            break;
        case CU_VOTE_FAILED:
            outcomes[i] = CU_OUTCOME_REJECT;
            break;
        case CU_VOTE_PENDING:
            outcomes[i] = CU_OUTCOME_DROP;
            break;
        case CU_VOTE_NONE:
            outcomes[i] = CU_OUTCOME_KEEP;
            break;
        }
    }
}

int cu_quorum_decide(const struct cu_vote *votes, size_t n, unsigned k,
                     enum cu_vote_outcome *outcomes, struct cu_quorum_decision *d)
{
    size_t best = 0, best_i = SIZE_MAX, need, room, cap;

    if (k == 0 || k > MAX_REPLICATION)
        return -CU_EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned)votes[i].kind > CU_VOTE_FAILED)
            return -CU_EINVAL;

    memset(d, 0, sizeof *d);
    d->failed_vote = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (outcomes)
            outcomes[i] = CU_OUTCOME_KEEP;
        switch (votes[i].kind) {
        case CU_VOTE_PENDING:
            d->pending++;
            break;
        case CU_VOTE_FAILED:
            if (d->failed_vote == SIZE_MAX)
                d->failed_vote = i;
            break;
        case CU_VOTE_RESULT: {
            size_t c = agreeing(votes, n, i);
            d->results++;
            if (first_of_root(votes, i))
                d->distinct++;
            /* Ties go to the root reported first. */
            if (c > best) {
                best = c;
                best_i = i;
            }
            break;
        }
        case CU_VOTE_NONE:
            break;
        }
    }

    if (best >= k) {
        d->verdict = CU_QUORUM_DONE;
        d->root = votes[best_i].root;
        settle(votes, n, &d->root, outcomes);
        return 0;
    }
    if (d->failed_vote != SIZE_MAX) {
        d->verdict = CU_QUORUM_FAILED;
        settle(votes, n, NULL, outcomes);
        return 0;
    }
    need = k - best; /* agreeing results still missing, at best */
    if (d->pending >= need) {
        d->verdict = CU_QUORUM_WAIT;
        return 0;
    }
    cap = CU_QUORUM_CAP(k);
    room = d->results + d->pending < cap ? cap - d->results - d->pending : 0;
    if (room == 0) {
        if (d->pending > 0) {
            d->verdict = CU_QUORUM_WAIT;
            return 0;
        }
        d->verdict = CU_QUORUM_FAILED;
        settle(votes, n, NULL, outcomes);
        return 0;
    }
    need -= d->pending;
    d->verdict = CU_QUORUM_NEED_MORE;
    d->more = (unsigned)(need < room ? need : room);
    return 0;
}
