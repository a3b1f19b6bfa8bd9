/* merkle.c - Merkle root over named file hashes (construction in merkle.h). */
#include "crypto/merkle.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

#include "base/banned.h"

static int leaf_cmp(const void *a, const void *b)
{
    const struct cu_merkle_leaf *x = a, *y = b;
    return strcmp(x->name, y->name); /* bytewise: strcmp compares as unsigned char */
}

/* Computes the root into *root. Allocates one sorted copy of the leaves
 * (names are borrowed, not copied) and one level array; frees both. */
int cu_merkle_root(const struct cu_merkle_leaf *leaves, size_t n, struct cu_hash *root)
{
    static const unsigned char tag_leaf = 0x00, tag_node = 0x01, tag_empty = 0x02;
    struct cu_merkle_leaf *sorted;
    struct cu_hash *level;
    struct cu_hasher h;
    int rc = 0;

    if (n == 0) {
        cu_hash_mem(&tag_empty, 1, root);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!leaves[i].name)
            return -CU_EINVAL;
    }
    if (n > SIZE_MAX / sizeof *sorted)
        return -CU_ENOMEM;
    sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return -CU_ENOMEM;
    level = malloc(n * sizeof *level);
    if (!level) {
        rc = -CU_ENOMEM;
        goto out_free_sorted;
    }
    memcpy(sorted, leaves, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, leaf_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            rc = -CU_EINVAL;
            goto out_free_level;
        }
        cu_hasher_init(&h);
        cu_hasher_update(&h, &tag_leaf, 1);
        cu_hasher_update(&h, sorted[i].name, strlen(sorted[i].name));
        cu_hasher_update(&h, &tag_leaf, 1);
        cu_hasher_update(&h, sorted[i].hash.b, CU_HASH_LEN);
        cu_hasher_final(&h, &level[i]);
    }
    /* Pair up in place; an odd last node moves up unchanged. */
    for (size_t width = n; width > 1; width = (width + 1) / 2) {
        for (size_t i = 0; i < width / 2; i++) {
            cu_hasher_init(&h);
            cu_hasher_update(&h, &tag_node, 1);
            cu_hasher_update(&h, level[2 * i].b, CU_HASH_LEN);
            cu_hasher_update(&h, level[2 * i + 1].b, CU_HASH_LEN);
            cu_hasher_final(&h, &level[i]);
        }
        if (width % 2)
            level[width / 2] = level[width - 1];
    }
    *root = level[0];
out_free_level:
    free(level);
out_free_sorted:
    free(sorted);
    return rc;
}
