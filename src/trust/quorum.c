/* quorum.c - task decisions from replica results (see quorum.h). */
#include "trust/quorum.h"

#include <string.h>

#include "base/err.h"

#include "base/banned.h"

/* True when votes a and b share a provider or an owner (a vote without an
 * owner is owned by its provider; one without either shares nothing). */
static bool same_owner(const struct cu_vote *a, const struct cu_vote *b)
{
    const char *oa = a->owner ? a->owner : a->provider;
    const char *ob = b->owner ? b->owner : b->provider;

    if (a->provider && b->provider && strcmp(a->provider, b->provider) == 0)
        return true;
    return oa && ob && strcmp(oa, ob) == 0;
}

/* True when the vote takes part in the vote count: a result, or (without
 * fail_fast) a reported failure. */
static bool votes_on_outcome(const struct cu_vote *v, const struct cu_replication *r)
{
    return v->kind == CU_VOTE_RESULT || (v->kind == CU_VOTE_FAILED && !r->fail_fast);
}

/* True when two counting votes stand for the same outcome: equal roots, or
 * both failures. */
static bool same_outcome(const struct cu_vote *a, const struct cu_vote *b)
{
    if (a->kind != b->kind)
        return false;
    return a->kind == CU_VOTE_FAILED || cu_hash_eq(&a->root, &b->root);
}

/* True when votes[i] is counted: no earlier vote for the same outcome has
 * the same owner. O(n): with the callers' loops O(n^2) per decision; n is a
 * few dozen replicas per task at most. */
static bool counted(const struct cu_vote *votes, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (votes[j].kind == votes[i].kind && same_outcome(&votes[j], &votes[i]) &&
            same_owner(&votes[j], &votes[i]))
            return false;
    return true;
}

/* True when no counting vote before i stands for votes[i]'s outcome. */
static bool first_of_outcome(const struct cu_vote *votes, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (votes[j].kind == votes[i].kind && same_outcome(&votes[j], &votes[i]))
            return false;
    return true;
}

/* Owners supporting votes[i]'s outcome. */
static size_t support_of(const struct cu_vote *votes, size_t n, size_t i)
{
    size_t c = 0;

    for (size_t j = 0; j < n; j++)
        if (votes[j].kind == votes[i].kind && same_outcome(&votes[j], &votes[i]) &&
            counted(votes, j))
            c++;
    return c;
}

/* Final verdicts settle every vote: the winning outcome's counted votes
 * accepted, its uncounted ones duplicates, other results and failures
 * rejected, pending replicas dropped. win is the index of a vote of the
 * winning outcome, or SIZE_MAX for none. */
static void settle(const struct cu_vote *votes, size_t n, size_t win,
                   enum cu_vote_outcome *outcomes)
{
    if (!outcomes)
        return;
    for (size_t i = 0; i < n; i++) {
        switch (votes[i].kind) {
        case CU_VOTE_RESULT:
        case CU_VOTE_FAILED:
            if (win != SIZE_MAX && same_outcome(&votes[i], &votes[win]))
                outcomes[i] = counted(votes, i) ? CU_OUTCOME_ACCEPT : CU_OUTCOME_DUPLICATE;
            else
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

int cu_replication_check(const struct cu_replication *r)
{
    if (r->quorum < 1 || r->quorum > CU_QUORUM_MAX_QUORUM || r->min < r->quorum ||
        r->max < r->min || r->max > CU_QUORUM_MAX_REPLICAS)
        return -CU_EINVAL;
    return 0;
}

struct cu_replication cu_replication_legacy(unsigned k)
{
    struct cu_replication r = {.min = k, .quorum = k, .max = CU_QUORUM_CAP(k), .fail_fast = true};
    return r;
}

int cu_quorum_decide_policy(const struct cu_vote *votes, size_t n, const struct cu_replication *r,
                            enum cu_vote_outcome *outcomes, struct cu_quorum_decision *d)
{
    size_t best = 0, best_i = SIZE_MAX, need, inflight, room, more;

    if (cu_replication_check(r) != 0)
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
            d->failures++;
            if (d->failed_vote == SIZE_MAX)
                d->failed_vote = i;
            break;
        case CU_VOTE_RESULT:
            d->results++;
            break;
        case CU_VOTE_NONE:
            break;
        }
        if (!votes_on_outcome(&votes[i], r) || !first_of_outcome(votes, i))
            continue;
        if (votes[i].kind == CU_VOTE_RESULT)
            d->distinct++;
        /* Ties go to the outcome reported first. */
        size_t c = support_of(votes, n, i);
        if (c > best) {
            best = c;
            best_i = i;
        }
    }
    d->support = best;

    if (best >= r->quorum) {
        settle(votes, n, best_i, outcomes);
        if (votes[best_i].kind == CU_VOTE_RESULT) {
            d->verdict = CU_QUORUM_DONE;
            d->root = votes[best_i].root;
            d->failed_vote = SIZE_MAX;
        } else {
            d->verdict = CU_QUORUM_FAILED;
            d->fail_reason = CU_QFAIL_TASK;
        }
        return 0;
    }
    if (r->fail_fast && d->failed_vote != SIZE_MAX) {
        d->verdict = CU_QUORUM_FAILED;
        d->fail_reason = CU_QFAIL_TASK;
        settle(votes, n, SIZE_MAX, outcomes);
        return 0;
    }
    /* No verdict yet: a failure is only one vote among others. */
    d->failed_vote = SIZE_MAX;
    need = r->quorum - best; /* agreeing owners still missing, at best */
    inflight = d->results + d->failures + d->pending;
    room = inflight < r->max ? r->max - inflight : 0;
    if (best + d->pending + room < r->quorum) {
        d->verdict = CU_QUORUM_FAILED;
        d->fail_reason = CU_QFAIL_NO_QUORUM;
        settle(votes, n, SIZE_MAX, outcomes);
        return 0;
    }
    more = need > d->pending ? need - d->pending : 0;
    if (inflight < r->min && r->min - inflight > more)
        more = r->min - inflight;
    if (more > room)
        more = room;
    if (more == 0) {
        d->verdict = CU_QUORUM_WAIT;
        return 0;
    }
    d->verdict = CU_QUORUM_NEED_MORE;
    d->more = (unsigned)more;
    return 0;
}

int cu_quorum_decide(const struct cu_vote *votes, size_t n, unsigned k,
                     enum cu_vote_outcome *outcomes, struct cu_quorum_decision *d)
{
    struct cu_replication r;

    if (k == 0 || k > CU_QUORUM_MAX_QUORUM)
        return -CU_EINVAL;
    r = cu_replication_legacy(k);
    return cu_quorum_decide_policy(votes, n, &r, outcomes, d);
}
