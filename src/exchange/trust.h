/* trust.h - the exchange's trust state (trust.c). Internal to
 * src/exchange/. mu held unless a function says otherwise. */
#ifndef CU_EXCHANGE_TRUST_H
#define CU_EXCHANGE_TRUST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "exchange/state.h"
#include "ledger/tx.h"
#include "trust/adaptive.h"
#include "trust/challenge.h"
#include "trust/reputation.h"

#define EX_CHALLENGE_TTL_MS 30000 /* a capability challenge must be answered this fast */
#define EX_MEMORY_OPS 1           /* argon2id passes of memory challenges */
#define EX_SCORE_LAG_RECORDS 256  /* accepted records an inexact score may miss */
#define EX_SCORE_LAG_MS 1000      /* ...over at most this span of record times */

/* The reputation outcome of a ledger task_record status. */
enum cu_rep_outcome ex_trust_outcome(enum cu_task_status s);
/* In a transaction: stores one reputation record and marks the
 * provider's cached score stale as of now. */
int ex_trust_record(struct ex_state *st, const char *provider, enum cu_rep_outcome outcome,
                    const char *job, int64_t replica, int64_t now);
/* The cached score (thousandths); 0 for unknown providers. A stale one
 * is recomputed as of its newest record's time and stored (in the open
 * transaction, else on its own), so it reads as if ex_trust_record had
 * recomputed it. With exact false, a score that misses only accepted
 * records, fewer than EX_SCORE_LAG_RECORDS of them within
 * EX_SCORE_LAG_MS of the time it was computed at, is returned as it is:
 * good enough to order waiting providers, not to test a job's
 * min_reputation (pass exact true for that). mu held, no statement of the
 * caller stepping. */
uint32_t ex_trust_score(struct ex_state *st, const char *provider, bool exact);
/* Whether a running job demands a minimum reputation (true also when it
 * cannot tell): then a claim needs the exact score. mu held. */
bool ex_trust_floor_running(struct ex_state *st);
/* GET /v1/reputation/{id}. Takes mu. NULL with f set. */
json_t *ex_reputation(struct ex_state *st, const char *id, int64_t now, struct ex_fail *f);

/* Adaptive replication: plans a task whose first replica goes to
 * provider (its clean streak and whether it was ever caught, a fresh
 * random draw). */
int ex_trust_adaptive(struct ex_state *st, const char *provider, int64_t now,
                      const struct cu_replication *normal, struct cu_adaptive_plan *plan);

/* Before leasing a job that demands a challenge (challenge_json: the
 * spec's "challenge", NULL for none): 0 with neither set when the provider
 * passed it; *skip when it failed it (never lease it this job); else
 * *challenge = the open (or a newly issued, stored) challenge to send
 * instead of a lease. In a transaction when it may insert. */
int ex_trust_gate(struct ex_state *st, const char *provider, const char *job,
                  const char *challenge_json, int64_t now, json_t **challenge, bool *skip);

struct ex_challenge {
    char job[32], kind[16], state[16];
    char public_json[512];
    char secret[48];
    int64_t expires_ms;
};
/* Reads challenge id issued to provider: 404 / 403 with f set. */
int ex_challenge_lookup(struct ex_state *st, const char *id, const char *provider,
                        struct ex_challenge *c, struct ex_fail *f);
/* Checks an answer ({"p","q"} or {"answer"}); no state, no mu needed (a
 * memory challenge costs one argon2id hash here). 0 passed, -CU_EAUTH
 * failed with why set. */
int ex_challenge_verdict(const struct ex_challenge *c, const json_t *answer, int64_t now,
                         char *why, size_t whyn);
/* In a transaction: marks the challenge passed or failed (a failure
 * writes a challenge_failed record). */
int ex_challenge_settle(struct ex_state *st, const char *id, const char *provider,
                        const char *job, bool passed, int64_t now);

/* Heartbeat challenges: the lease secret of a replica (derived from the
 * exchange's key), a fresh nonce stored as the one to answer next (hex
 * into out), and the check of an answer to the stored nonce (0, or
 * -CU_EAUTH when missing or wrong). */
void ex_trust_lease_secret(const struct ex_state *st, int64_t replica,
                           unsigned char out[CU_CHAL_KEY_LEN]);
int ex_trust_new_nonce(struct ex_state *st, int64_t replica, char out[2 * CU_CHAL_NONCE_LEN + 1]);
/* A fresh heartbeat nonce (hex) for the caller to store with the lease. */
void ex_trust_nonce_make(char out[2 * CU_CHAL_NONCE_LEN + 1]);
int ex_trust_check_answer(struct ex_state *st, int64_t replica, const char *answer_hex);

#endif
