/* adaptive.h - adaptive replication: solo replicas for trusted providers,
 * with random audits (pure).
 *
 * Issue 4, `replication: adaptive` (BOINC's adaptive replication). When a
 * provider claims the first replica of a task, the exchange asks for a
 * plan with the provider's record and one random 64-bit number:
 *   solo_ppm = 0                                   if caught, or clean < trust_after
 *            = solo_max * min(1, (clean - trust_after) / ramp)   otherwise
 * where clean = accepted results since its last wrong result or failed
 * challenge, and caught = it has ever had one. One draw decides solo
 * (probability solo_ppm), a second draw audits a solo replica (probability
 * audit_ppm): an audited solo replica gets a second replica on another
 * provider and is decided by a quorum like any other. A provider caught
 * once (a wrong result in any quorum or audit) never runs solo again
 * under that id; a fresh id starts with clean = 0.
 *
 * docs/trust.md gives the probability that a wrong result is accepted
 * and the replica cost: per solo replica a wrong result escapes with
 * probability 1 - audit; a cheater escapes on average (1 - a) / a times
 * before it is caught and must earn trust_after clean results again.
 *
 * No I/O, no clock, no randomness of its own. */
#ifndef CU_TRUST_ADAPTIVE_H
#define CU_TRUST_ADAPTIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "trust/quorum.h"

#define CU_PPM 1000000u

struct cu_adaptive_params {
    uint32_t trust_after;  /* clean results before any solo chance (default 20) */
    uint32_t ramp;         /* further clean results to reach solo_max (default 80; >= 1) */
    uint32_t solo_max_ppm; /* highest solo probability (default 900000) */
    uint32_t audit_ppm;    /* audit probability of a solo replica (default 100000) */
};

/* What the exchange knows of a provider (from its reputation tally:
 * clean = clean_streak, caught = count[wrong_result] + count[challenge_failed] > 0). */
struct cu_adaptive_record {
    uint64_t clean;
    bool caught;
};

struct cu_adaptive_plan {
    uint32_t solo_ppm;            /* the provider's solo probability */
    bool solo;                    /* the replica runs alone... */
    bool audit;                   /* ...but is audited (solo only) */
    struct cu_replication policy; /* the task's policy from now on */
};

void cu_adaptive_params_default(struct cu_adaptive_params *p);
/* 0, or -CU_EINVAL when ramp is 0 or a ppm is above CU_PPM. */
int cu_adaptive_params_check(const struct cu_adaptive_params *p);

/* The solo probability of a provider, in ppm (0 for bad params). */
uint32_t cu_adaptive_solo_ppm(const struct cu_adaptive_params *p,
                              const struct cu_adaptive_record *r);

/* Plans a task whose first replica goes to a provider with record r.
 * normal: the job's replication policy otherwise (its max also bounds an
 * audit's disagreement). rnd: 64 uniform random bits (the low 32 decide
 * solo, the high 32 the audit). Policy: solo unaudited {1, 1, 1}; solo
 * audited {2, 2, max(2, normal->max)}; not solo *normal. Returns 0, or
 * -CU_EINVAL for bad params or policy. */
int cu_adaptive_plan(const struct cu_adaptive_params *p, const struct cu_adaptive_record *r,
                     const struct cu_replication *normal, uint64_t rnd,
                     struct cu_adaptive_plan *out);

/* True when a 32-bit uniform draw falls below ppm: floor(draw * 10^6 /
 * 2^32) < ppm, so ppm 0 never and ppm CU_PPM always. */
bool cu_ppm_draw(uint32_t draw, uint32_t ppm);

#endif
