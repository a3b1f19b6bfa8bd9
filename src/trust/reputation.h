/* reputation.h - a provider's reputation score from its records (pure).
 *
 * RepChain (CuToken) as DESIGN.md §7 and issue 4 ask: every finished
 * replica leaves a record {outcome, time}; the score in [0, 1] is computed
 * from them, as an integer in thousandths (milli) so that the exchange's
 * comparisons (min_reputation) are exact and deterministic.
 *
 * The formula (docs/trust.md explains the choice):
 *   each record weighs w(age) = 2^-floor(age/H) * (1 - (age mod H) / 2H),
 *     a piecewise-linear exponential decay with half-life H, computed in
 *     integers (ppm); age = now - time, clamped to >= 0;
 *   G = sum of w over accepted records (good evidence);
 *   B = sum of w * penalty(outcome) over the others (bad evidence), with
 *     penalties wrong_result 16, challenge_failed 8, abandoned 2,
 *     lease_expired 1 (defaults; a wrong result weighs 16 timeouts);
 *   score = floor(1000 * G / (G + B + P)), P = prior (default 10 records).
 * This is the posterior mean of the success rate under a pessimistic
 * Beta(0, P) prior: a fresh id has no evidence and scores 0, and needs
 * 4P = 40 recent clean results to reach 0.8. Re-registering therefore
 * only resets a cheater to the bottom; the decay makes the score follow
 * recent behaviour (and makes an old reputation worth less than a fresh
 * one earned honestly).
 *
 * No I/O, no clock: now is an argument. */
#ifndef CU_TRUST_REPUTATION_H
#define CU_TRUST_REPUTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(name, record name in the ledger, default penalty). The first is the
 * only good one. Ledger statuses today (src/ledger/tx.h) map as: success ->
 * accepted, timeout -> lease_expired; challenge_failed must be added there
 * (and lease_expired is the clearer name for timeout). */
#define CU_REP_OUTCOMES(X)                                                                         \
    X(ACCEPTED, "accepted", 0)                                                                     \
    X(WRONG_RESULT, "wrong_result", 16)                                                            \
    X(LEASE_EXPIRED, "lease_expired", 1)                                                           \
    X(ABANDONED, "abandoned", 2)                                                                   \
    X(CHALLENGE_FAILED, "challenge_failed", 8)

enum cu_rep_outcome {
#define CU_X_REPENUM(e, name, pen) CU_REP_##e,
    CU_REP_OUTCOMES(CU_X_REPENUM)
#undef CU_X_REPENUM
        CU_REP_NOUTCOMES
};

/* One reputation record: a finished replica, or a failed challenge. */
struct cu_rep_record {
    enum cu_rep_outcome outcome;
    int64_t time_ms; /* when it happened (the ledger record's time) */
};

struct cu_rep_params {
    int64_t half_life_ms;               /* H > 0 */
    uint32_t prior;                     /* P >= 1, in records */
    uint32_t penalty[CU_REP_NOUTCOMES]; /* per bad outcome, 0..1000; [ACCEPTED] unused */
};

/* Defaults: H = 30 days, P = 10, the table's penalties. */
void cu_rep_params_default(struct cu_rep_params *p);
/* 0, or -CU_EINVAL when H <= 0, P == 0 or a penalty is above 1000. */
int cu_rep_params_check(const struct cu_rep_params *p);

/* Name of an outcome ("accepted"), NULL for a value outside the table. */
const char *cu_rep_outcome_name(enum cu_rep_outcome o);
/* Parses a record name; also accepts the ledger's current status names
 * "success" (accepted) and "timeout" (lease_expired). 0 or -CU_EINVAL. */
int cu_rep_outcome_parse(const char *name, enum cu_rep_outcome *out);

/* Records folded into sums: feed records one by one (any order) with the
 * same now, then read the score. */
struct cu_rep_tally {
    uint64_t good_ppm; /* G in millionths of a record */
    uint64_t bad_ppm;  /* B in millionths of a record */
    uint64_t count[CU_REP_NOUTCOMES];
    int64_t last_bad_ms;   /* time of the latest wrong_result/challenge_failed; INT64_MIN if none */
    uint64_t clean_streak; /* accepted records after last_bad_ms (any age): set by
                              cu_rep_score only, which sees all records */
};

void cu_rep_tally_init(struct cu_rep_tally *t);
/* Decay weight in ppm (0..1000000) of a record age_ms old (negative ages
 * count as 0). */
uint32_t cu_rep_decay_ppm(int64_t age_ms, int64_t half_life_ms);
/* Adds one record seen at now_ms. Returns 0, or -CU_EINVAL for an unknown
 * outcome or bad params (t unchanged). Saturates instead of overflowing
 * (2^64 ppm is 1.8e13 records). */
int cu_rep_tally_add(struct cu_rep_tally *t, const struct cu_rep_params *p,
                     const struct cu_rep_record *r, int64_t now_ms);
/* The score in thousandths, 0..1000. */
uint32_t cu_rep_score_milli(const struct cu_rep_tally *t, const struct cu_rep_params *p);

/* All at once: tally the n records at now_ms and return the score in
 * *score_milli; t (may be NULL) receives the tally. 0 or -CU_EINVAL. */
int cu_rep_score(const struct cu_rep_record *records, size_t n, const struct cu_rep_params *p,
                 int64_t now_ms, uint32_t *score_milli, struct cu_rep_tally *t);

/* Parses a job's min_reputation ("0.8", "0.85", "1", "0") into
 * thousandths; at most three decimals. 0 or -CU_EINVAL. */
int cu_rep_min_parse(const char *s, uint32_t *milli);

/* True when a provider with score_milli may lease under min_milli. */
bool cu_rep_eligible(uint32_t score_milli, uint32_t min_milli);

#endif
