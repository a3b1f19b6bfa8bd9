/* block.h - ledger blocks (pure).
 *
 * A block is a header and its transactions, in order. Header (canonical
 * JSON, keys sorted):
 *   {"devnet":B,"height":N,"prev":HEX,"producer":ID,"sig":HEX,
 *    "time_ms":T,"tx_count":N,"tx_root":HEX,"version":1}
 *   prev      block hash of the block at height-1; 32 zero bytes at height 0
 *   tx_root   Merkle root of the tx ids, in block order (cu_tx_root)
 *   devnet    whether the chain allows faucet mints; fixed by block 0
 *   producer  the exchange's id; fixed by block 0
 *   sig       producer's ed25519 signature over
 *             "cumulus-block-v1\n" || canonical header without "sig"
 * Block hash = BLAKE2b-256 of the canonical header with "sig", so each link
 * also covers the previous producer signature.
 *
 * Merkle root over tx ids (ordered, unlike crypto/merkle.h's sorted file
 * tree, so that moving a transaction changes the root):
 *   leaf = H(0x00 || id), node = H(0x01 || left || right), an odd node is
 *   promoted unchanged, zero transactions give H(0x02). H is BLAKE2b-256. */
#ifndef CU_LEDGER_BLOCK_H
#define CU_LEDGER_BLOCK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "ledger/tx.h"

#define CU_BLOCK_VERSION 1
/* Most transactions one block may hold. */
#define CU_BLOCK_MAX_TXS 100000

struct cu_block_header {
    uint64_t height;
    struct cu_hash prev;
    int64_t time_ms;
    struct cu_hash tx_root;
    uint64_t tx_count;
    bool devnet;
    char producer[CU_ID_LEN + 1];
    unsigned char sig[CU_SIG_LEN];
};

/* A block owns its transactions. */
struct cu_block {
    struct cu_block_header h;
    struct cu_tx *txs;
    size_t ntx;
    size_t cap;
};

void cu_block_init(struct cu_block *b);
/* Releases every transaction and the array. */
void cu_block_release(struct cu_block *b);
/* Moves *tx into the block (tx is left re-initialised, owning nothing).
 * 0, -CU_ETOOBIG past CU_BLOCK_MAX_TXS, -CU_ENOMEM (tx untouched). */
int cu_block_add_tx(struct cu_block *b, struct cu_tx *tx);

/* Root over n ids (construction above). */
void cu_tx_root(const struct cu_hash *ids, size_t n, struct cu_hash *root);
/* Computes the id of every transaction (into ids[ntx], caller-allocated,
 * may be NULL) and their root. 0 or -CU_ENOMEM. */
int cu_block_compute_root(const struct cu_block *b, struct cu_hash *ids, struct cu_hash *root);

/* Fills the header and signs it: height, prev (NULL = 32 zero bytes, the
 * genesis block), time_ms, devnet, producer = signer, tx_count and tx_root
 * from the transactions. 0 or -CU_ENOMEM. */
int cu_block_seal(struct cu_block *b, uint64_t height, const struct cu_hash *prev,
                  int64_t time_ms, bool devnet, const struct cu_identity *producer);
/* The same with the transactions' ids already computed (ids[ntx], each
 * cu_tx_id of its transaction; NULL: computed here): the exchange hashes
 * each transaction once per block instead of three times. */
int cu_block_seal_ids(struct cu_block *b, const struct cu_hash *ids, uint64_t height,
                      const struct cu_hash *prev, int64_t time_ms, bool devnet,
                      const struct cu_identity *producer);

/* Header JSON (new reference, NULL when out of memory); with_sig false
 * gives the signed form. */
json_t *cu_block_header_to_json(const struct cu_block_header *h, bool with_sig);
/* Strict decode of a header object. -CU_EINVAL with e naming the field. */
int cu_block_header_from_json(const json_t *j, struct cu_block_header *h, struct cu_err *e);
/* Block hash (with sig). 0 or -CU_ENOMEM. */
int cu_block_hash(const struct cu_block_header *h, struct cu_hash *out);
/* Checks the producer signature. 0 or -CU_EAUTH with e set. */
int cu_block_verify_sig(const struct cu_block_header *h, struct cu_err *e);

#endif
