/* challenge.h - proofs of capability and heartbeat challenges (pure).
 *
 * CuToken §6.8 and §6.9, DESIGN.md §7, issue 4. Three kinds; every one is
 * deterministic given its arguments (randomness and secrets come from the
 * caller; no clock, no I/O):
 *
 * factor   the exchange draws a semiprime n = p*q of exactly `bits` bits
 *          (8..64; p != q, each of about bits/2 bits) from seed bytes; the
 *          provider answers {p, q}; the check is one multiplication. The
 *          solver (Pollard-Brent rho) is bounded by a step count, so a
 *          caller bounds its time. At 64 bits rho solves it in
 *          milliseconds: a liveness/CPU proof, not a strong capability proof
 *          (docs/trust.md gives the measured costs).
 * memory   an argon2id puzzle (libsodium crypto_pwhash) of `mib` MiB and
 *          `ops` passes over a fresh 16-byte nonce; the provider returns
 *          the 32-byte hash. Checking costs one hash (the same memory and
 *          time), unless the exchange computed the answer beforehand (when
 *          idle) and checks with a comparison: cu_chal_memory_check takes
 *          an expected answer for that.
 * heartbeat each lease renewal answers a fresh nonce with BLAKE2b keyed by
 *          the lease secret, bound to the replica; the exchange derives the
 *          lease secret from its own master key, so it stores nothing per
 *          lease. Proves the renewal is fresh and from the lease holder,
 *          not that the task makes progress.
 *
 * Answers are compared in constant time. A wrong answer is -CU_EAUTH; a
 * malformed challenge -CU_EINVAL. */
#ifndef CU_TRUST_CHALLENGE_H
#define CU_TRUST_CHALLENGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- factor ------------------------------------------------------------ */

#define CU_CHAL_FACTOR_MIN_BITS 8u
#define CU_CHAL_FACTOR_MAX_BITS 64u
#define CU_CHAL_SEED_MIN 16u /* seed bytes: at least, and */
#define CU_CHAL_SEED_MAX 64u /* at most */

struct cu_factor_chal {
    unsigned bits;
    uint64_t n;
};

struct cu_factor_answer {
    uint64_t p, q; /* any order */
};

/* True when n is prime (deterministic Miller-Rabin, exact for all 64-bit
 * n). */
bool cu_chal_is_prime(uint64_t n);

/* Draws a challenge of `bits` bits from seed (CU_CHAL_SEED_MIN..MAX bytes,
 * expanded with BLAKE2b; the same seed gives the same n). secret (may be
 * NULL) receives the factors, p < q. Returns 0, or -CU_EINVAL for bits or
 * seed_len out of range. */
int cu_chal_factor_make(const void *seed, size_t seed_len, unsigned bits, struct cu_factor_chal *c,
                        struct cu_factor_answer *secret);

/* Checks an answer: 0 when {p, q} multiply to n with neither 1 (for a
 * semiprime: the factors); -CU_EAUTH otherwise; -CU_EINVAL when the
 * challenge itself is malformed (n without exactly `bits` bits). */
int cu_chal_factor_check(const struct cu_factor_chal *c, const struct cu_factor_answer *a);

/* Factors n (>= 4, composite) into a != 1, b != 1 with a <= b, a * b = n,
 * in at most max_steps modular multiplications (trial division counts one
 * step per divisor); *steps (may be NULL) gets the steps spent. Returns 0,
 * -CU_ETIMEOUT when the bound is reached, -CU_EINVAL when n < 4 or prime.
 * CPU only; the caller bounds wall time through max_steps. */
int cu_chal_factor_solve(uint64_t n, uint64_t max_steps, struct cu_factor_answer *a,
                         uint64_t *steps);

/* ---- memory ------------------------------------------------------------ */

#define CU_CHAL_NONCE_LEN 16u  /* crypto_pwhash_SALTBYTES */
#define CU_CHAL_ANSWER_LEN 32u /* memory and heartbeat answers */
#define CU_CHAL_MEMORY_MAX_MIB 4096u
#define CU_CHAL_MEMORY_MAX_OPS 16u

struct cu_memory_chal {
    unsigned mib; /* 1..CU_CHAL_MEMORY_MAX_MIB */
    unsigned ops; /* argon2id passes, 1..CU_CHAL_MEMORY_MAX_OPS */
    unsigned char nonce[CU_CHAL_NONCE_LEN];
};

/* Fills c with a nonce copied from rnd (CU_CHAL_NONCE_LEN random bytes).
 * 0, or -CU_EINVAL for mib or ops out of range. */
int cu_chal_memory_make(const unsigned char rnd[CU_CHAL_NONCE_LEN], unsigned mib, unsigned ops,
                        struct cu_memory_chal *c);

/* Computes the answer: argon2id over a fixed password with the nonce as
 * salt, mib MiB and ops passes. Allocates mib MiB for its duration and
 * takes as long as that hash (about 1 s per GiB-pass here, see trust.md).
 * 0, -CU_EINVAL for a malformed challenge, -CU_ENOMEM when the memory is
 * not there. */
int cu_chal_memory_solve(const struct cu_memory_chal *c, unsigned char out[CU_CHAL_ANSWER_LEN]);

/* Checks an answer. expected: the answer computed beforehand (a
 * comparison, no hash), or NULL to compute it now (one solve's cost).
 * 0, -CU_EAUTH for a wrong answer, or cu_chal_memory_solve's errors. */
int cu_chal_memory_check(const struct cu_memory_chal *c,
                         const unsigned char answer[CU_CHAL_ANSWER_LEN],
                         const unsigned char *expected);

/* ---- heartbeat --------------------------------------------------------- */

#define CU_CHAL_KEY_LEN 32u

/* The secret of lease number lease_seq of a replica, derived from the
 * exchange's master key (BLAKE2b keyed): given to the provider with the
 * lease, recomputed by the exchange at each renewal. */
void cu_chal_lease_secret(const unsigned char master[CU_CHAL_KEY_LEN], int64_t replica,
                          uint64_t lease_seq, unsigned char out[CU_CHAL_KEY_LEN]);

/* The provider's answer to a renewal nonce: BLAKE2b-256 keyed by the lease
 * secret over a domain tag, the replica id and the nonce. */
void cu_chal_heartbeat_answer(const unsigned char secret[CU_CHAL_KEY_LEN], int64_t replica,
                              const unsigned char nonce[CU_CHAL_NONCE_LEN],
                              unsigned char out[CU_CHAL_ANSWER_LEN]);

/* 0 when answer is the answer to nonce for this replica and secret;
 * -CU_EAUTH otherwise. */
int cu_chal_heartbeat_check(const unsigned char secret[CU_CHAL_KEY_LEN], int64_t replica,
                            const unsigned char nonce[CU_CHAL_NONCE_LEN],
                            const unsigned char answer[CU_CHAL_ANSWER_LEN]);

#endif
