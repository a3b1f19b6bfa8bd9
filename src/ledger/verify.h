/* verify.h - replaying and checking a whole chain (pure).
 *
 * For each block, in order, the verifier checks:
 *   1. its height is the next one (nothing missing, repeated or reordered);
 *   2. producer and devnet flag equal block 0's (and the expected producer,
 *      when the caller pins one);
 *   3. the producer signature over the header;
 *   4. prev is the hash of the previous header (zeros for block 0), and
 *      time does not go backwards;
 *   5. every transaction: its stored id (export form) matches its contents,
 *      its seq is the next one;
 *   6. tx_count and the Merkle root of the tx ids match the header;
 *   7. replays every transaction into the state (cu_ledger_apply: rules,
 *      transfer signatures, escrow authorizations);
 *   8. the invariant sum(balances)+sum(escrow)+sum(stakes) == minted.
 * The first failure stops it and is reported with the block height (its
 * position in the chain) and the transaction index, as a sentence:
 *   "block 12 tx 3: escrow release of 900 exceeds the locked escrow 300 of
 *    job j-…".
 * Dropping blocks from the end cannot be seen from the chain alone: compare
 * the tip hash and height in the result with a copy you trust. */
#ifndef CU_LEDGER_VERIFY_H
#define CU_LEDGER_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/hash.h"
#include "ledger/block.h"
#include "ledger/export.h"
#include "ledger/state.h"

struct cu_verify_result {
    uint64_t blocks;     /* blocks verified */
    uint64_t txs;        /* transactions replayed */
    struct cu_hash tip;  /* hash of the last good block */
    int64_t bad_block;   /* -1, or the height (position) of the first bad block */
    int64_t bad_tx;      /* CU_NO_TX, or the index of the bad tx in that block */
    struct cu_err err;   /* the sentence, "block N tx M: ..." */
};

/* Streaming verifier: init, feed blocks in order, finish, release. Holds
 * the replayed state, not the blocks. After a failure every later call
 * returns that same failure. */
struct cu_verifier {
    struct cu_ledger_state st;
    char producer[CU_ID_LEN + 1]; /* "" until block 0 (or pinned) */
    bool pinned;
    bool devnet;
    struct cu_hash prev;
    int64_t prev_time_ms;
    int failed; /* 0 or the error code */
    struct cu_verify_result res;
};

/* producer: the exchange id the chain must be produced by, or NULL to take
 * block 0's. */
void cu_verifier_init(struct cu_verifier *v, const char *producer);
void cu_verifier_release(struct cu_verifier *v);
/* Deep copy of src into dst (uninitialised): a checkpoint to verify
 * several candidate continuations from. 0 or -CU_ENOMEM. */
int cu_verifier_copy(struct cu_verifier *dst, const struct cu_verifier *src);
/* Feeds the next block. 0, or a negative code with v->res (and *res when
 * res is non-NULL) naming the first bad block and transaction. */
int cu_verifier_feed_block(struct cu_verifier *v, const struct cu_block *b,
                           struct cu_verify_result *res);
/* Feeds the next block as one export line (without "\n"). */
int cu_verifier_feed_line(struct cu_verifier *v, const char *line, size_t n,
                          struct cu_verify_result *res);
/* Ends the stream: an empty chain is an error (-CU_EINVAL). Copies the
 * result into res. */
int cu_verifier_finish(struct cu_verifier *v, struct cu_verify_result *res);
/* The state replayed so far (valid until release). */
const struct cu_ledger_state *cu_verifier_state(const struct cu_verifier *v);

/* Whole chains: an array of blocks, or a JSON Lines export held in memory. */
int cu_verify_chain(const struct cu_block *blocks, size_t n, const char *producer,
                    struct cu_verify_result *res);
int cu_verify_export(const char *text, size_t n, const char *producer,
                     struct cu_verify_result *res);

#endif
