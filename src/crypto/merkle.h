/* merkle.h - Merkle root over a result's output files.
 *
 * Leaves are sorted by name (bytewise); leaf = H(0x00 || name || 0x00 ||
 * file hash), node = H(0x01 || left || right), an odd node is promoted
 * unchanged; the root of zero files is H(0x02). H is BLAKE2b-256. Two
 * results agree exactly when their roots are equal. */
#ifndef CU_CRYPTO_MERKLE_H
#define CU_CRYPTO_MERKLE_H

#include <stddef.h>

#include "crypto/hash.h"

struct cu_merkle_leaf {
    const char *name;
    struct cu_hash hash;
};

/* Leaves may be in any order (the function sorts a copy); names must be
 * distinct. 0 or -CU_ENOMEM / -CU_EINVAL (duplicate name). */
int cu_merkle_root(const struct cu_merkle_leaf *leaves, size_t n, struct cu_hash *root);

#endif
