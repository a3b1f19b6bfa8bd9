/* block.c - block headers, the ordered Merkle root over tx ids, sealing
 * and signature checks (formats in block.h). */
#include "ledger/block.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"

#include "base/banned.h"

#define BLOCK_SIGN_PREFIX "cumulus-block-v1\n"
#define HEADER_MAX 4096

void cu_block_init(struct cu_block *b)
{
    memset(b, 0, sizeof *b);
}

void cu_block_release(struct cu_block *b)
{
    for (size_t i = 0; i < b->ntx; i++)
        cu_tx_release(&b->txs[i]);
    free(b->txs);
    memset(b, 0, sizeof *b);
}

int cu_block_add_tx(struct cu_block *b, struct cu_tx *tx)
{
    if (b->ntx >= CU_BLOCK_MAX_TXS)
        return -CU_ETOOBIG;
    if (b->ntx == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct cu_tx *t = realloc(b->txs, cap * sizeof *t);
        if (!t)
            return -CU_ENOMEM;
        b->txs = t;
        b->cap = cap;
    }
    b->txs[b->ntx++] = *tx;
    cu_tx_init(tx, tx->type); /* the block owns authorization now */
    return 0;
}

void cu_tx_root(const struct cu_hash *ids, size_t n, struct cu_hash *root)
{
    static const unsigned char tag_leaf = 0x00, tag_node = 0x01, tag_empty = 0x02;
    struct cu_hasher h;
    struct cu_hash level[64]; /* level[k]: pending left node at depth k */
    bool have[64] = {false};

    if (n == 0) {
        cu_hash_mem(&tag_empty, 1, root);
        return;
    }
    /* Streaming construction equal to "pair up level by level, promote an
     * odd last node": a binary counter of complete subtrees, folded from
     * the right at the end. Uses O(log n) memory. */
    for (size_t i = 0; i < n; i++) {
        struct cu_hash cur;
        size_t k = 0;
        cu_hasher_init(&h);
        cu_hasher_update(&h, &tag_leaf, 1);
        cu_hasher_update(&h, ids[i].b, CU_HASH_LEN);
        cu_hasher_final(&h, &cur);
        while (have[k]) {
            cu_hasher_init(&h);
            cu_hasher_update(&h, &tag_node, 1);
            cu_hasher_update(&h, level[k].b, CU_HASH_LEN);
            cu_hasher_update(&h, cur.b, CU_HASH_LEN);
            cu_hasher_final(&h, &cur);
            have[k++] = false;
        }
        level[k] = cur;
        have[k] = true;
    }
    /* Fold the incomplete subtrees, smallest first: a lone smaller subtree
     * is what "promote the odd node" carries up until it meets a partner. */
    {
        bool any = false;
        struct cu_hash acc;
        for (size_t k = 0; k < 64; k++) {
            if (!have[k])
                continue;
            if (!any) {
                acc = level[k];
                any = true;
                continue;
            }
            cu_hasher_init(&h);
            cu_hasher_update(&h, &tag_node, 1);
            cu_hasher_update(&h, level[k].b, CU_HASH_LEN);
            cu_hasher_update(&h, acc.b, CU_HASH_LEN);
            cu_hasher_final(&h, &acc);
        }
        *root = acc;
    }
}

int cu_block_compute_root(const struct cu_block *b, struct cu_hash *ids, struct cu_hash *root)
{
    struct cu_hash *v = ids;
    int rc = 0;

    if (!v) {
        v = calloc(b->ntx ? b->ntx : 1, sizeof *v);
        if (!v)
            return -CU_ENOMEM;
    }
    for (size_t i = 0; i < b->ntx && rc == 0; i++)
        rc = cu_tx_id(&b->txs[i], &v[i]);
    if (rc == 0)
        cu_tx_root(v, b->ntx, root);
    if (v != ids)
        free(v);
    return rc;
}

static bool put(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0;
}

static json_t *hash_json(const struct cu_hash *hsh)
{
    char hex[CU_HASH_HEX_LEN + 1];
    cu_hash_to_hex(hsh, hex);
    return json_string(hex);
}

json_t *cu_block_header_to_json(const struct cu_block_header *h, bool with_sig)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (!put(o, "version", json_integer(CU_BLOCK_VERSION)) ||
        !put(o, "height", json_integer((json_int_t)h->height)) ||
        !put(o, "prev", hash_json(&h->prev)) || !put(o, "time_ms", json_integer(h->time_ms)) ||
        !put(o, "tx_root", hash_json(&h->tx_root)) ||
        !put(o, "tx_count", json_integer((json_int_t)h->tx_count)) ||
        !put(o, "devnet", json_boolean(h->devnet)) ||
        !put(o, "producer", json_string(h->producer)))
        goto out_free_obj;
    if (with_sig) {
        char hex[2 * CU_SIG_LEN + 1];
        cu_hex_encode(h->sig, CU_SIG_LEN, hex);
        if (!put(o, "sig", json_string(hex)))
            goto out_free_obj;
    }
    return o;
out_free_obj:
    json_decref(o);
    return NULL;
}

/* One name per value: hex fields are lowercase only. */
static bool lower_hex(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    }
    return true;
}

static int get_hash(const json_t *j, const char *key, struct cu_hash *out, struct cu_err *e)
{
    const char *s = NULL;
    if (cu_json_get_str(j, "header", key, true, &s, e))
        return -CU_EINVAL;
    if (cu_hash_from_hex(s, out))
        return cu_err_set(e, -CU_EINVAL, "field 'header.%s' must be %d lowercase hex chars", key,
                          CU_HASH_HEX_LEN);
    return 0;
}

int cu_block_header_from_json(const json_t *j, struct cu_block_header *h, struct cu_err *e)
{
    static const char *const keys[] = {"version",  "height", "prev",     "time_ms", "tx_root",
                                       "tx_count", "devnet", "producer", "sig",     NULL};
    const char *producer = NULL, *sig = NULL;
    uint64_t version = 0;

    memset(h, 0, sizeof *h);
    if (cu_json_only_keys(j, "header", keys, e) ||
        cu_json_get_u64(j, "header", "version", true, &version, e) ||
        cu_json_get_u64(j, "header", "height", true, &h->height, e) ||
        get_hash(j, "prev", &h->prev, e) || cu_json_get_i64(j, "header", "time_ms", true, &h->time_ms, e) ||
        get_hash(j, "tx_root", &h->tx_root, e) ||
        cu_json_get_u64(j, "header", "tx_count", true, &h->tx_count, e) ||
        cu_json_get_bool(j, "header", "devnet", true, &h->devnet, e) ||
        cu_json_get_str(j, "header", "producer", true, &producer, e) ||
        cu_json_get_str(j, "header", "sig", true, &sig, e))
        return -CU_EINVAL;
    if (version != CU_BLOCK_VERSION)
        return cu_err_set(e, -CU_EINVAL, "field 'header.version': %llu is not a version we know",
                          (unsigned long long)version);
    if (h->time_ms < 0)
        return cu_err_set(e, -CU_EINVAL, "field 'header.time_ms' must not be negative");
    if (!cu_ledger_id_ok(producer))
        return cu_err_set(e, -CU_EINVAL, "field 'header.producer' must be an account id");
    memcpy(h->producer, producer, CU_ID_LEN + 1);
    if (strnlen(sig, 2 * CU_SIG_LEN + 1) != 2 * CU_SIG_LEN || !lower_hex(sig) ||
        cu_hex_decode(sig, h->sig, CU_SIG_LEN))
        return cu_err_set(e, -CU_EINVAL, "field 'header.sig' must be %d lowercase hex chars",
                          2 * CU_SIG_LEN);
    return 0;
}

static int header_dump(const struct cu_block_header *h, bool with_sig, struct cu_buf *out)
{
    json_t *j = cu_block_header_to_json(h, with_sig);
    int rc;
    if (!j)
        return -CU_ENOMEM;
    rc = cu_json_dump(j, out);
    json_decref(j);
    return rc;
}

int cu_block_hash(const struct cu_block_header *h, struct cu_hash *out)
{
    struct cu_buf b = CU_BUF_INIT(HEADER_MAX);
    int rc = header_dump(h, true, &b);
    if (rc == 0)
        cu_hash_mem(b.data, b.len, out);
    cu_buf_release(&b);
    return rc;
}

static int signing_bytes(const struct cu_block_header *h, struct cu_buf *b)
{
    int rc = cu_buf_appends(b, BLOCK_SIGN_PREFIX);
    return rc ? rc : header_dump(h, false, b);
}

int cu_block_seal(struct cu_block *b, uint64_t height, const struct cu_hash *prev,
                  int64_t time_ms, bool devnet, const struct cu_identity *producer)
{
    return cu_block_seal_ids(b, NULL, height, prev, time_ms, devnet, producer);
}

int cu_block_seal_ids(struct cu_block *b, const struct cu_hash *ids, uint64_t height,
                      const struct cu_hash *prev, int64_t time_ms, bool devnet,
                      const struct cu_identity *producer)
{
    struct cu_buf buf = CU_BUF_INIT(HEADER_MAX);
    int rc;

    b->h.height = height;
    if (prev)
        b->h.prev = *prev;
    else
        memset(&b->h.prev, 0, sizeof b->h.prev);
    b->h.time_ms = time_ms;
    b->h.devnet = devnet;
    b->h.tx_count = b->ntx;
    memcpy(b->h.producer, producer->id, sizeof b->h.producer);
    if (ids)
        cu_tx_root(ids, b->ntx, &b->h.tx_root);
    else if ((rc = cu_block_compute_root(b, NULL, &b->h.tx_root)))
        return rc;
    if ((rc = signing_bytes(&b->h, &buf)) == 0)
        cu_sign(producer, buf.data, buf.len, b->h.sig);
    cu_buf_release(&buf);
    return rc;
}

int cu_block_verify_sig(const struct cu_block_header *h, struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(HEADER_MAX);
    unsigned char pk[CU_PK_LEN];
    bool ok;
    int rc;

    /* Hex decode only (see cu_tx_verify_sig): the verify refuses bad keys. */
    if (!cu_ledger_id_ok(h->producer) || cu_hex_decode(h->producer, pk, CU_PK_LEN))
        return cu_err_set(e, -CU_EAUTH, "producer %.16s… is not a public key", h->producer);
    if ((rc = signing_bytes(h, &b))) {
        cu_buf_release(&b);
        return cu_err_set(e, rc, "cannot form the signed header: %s", cu_strerror(rc));
    }
    ok = cu_verify(pk, b.data, b.len, h->sig);
    cu_buf_release(&b);
    if (!ok)
        return cu_err_set(e, -CU_EAUTH, "producer signature does not verify (header altered?)");
    return 0;
}
