/* verify.c - the chain verifier (order of checks in verify.h). */
#include "ledger/verify.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#include "base/banned.h"

#define ULL(x) ((unsigned long long)(x))

void cu_verifier_init(struct cu_verifier *v, const char *producer)
{
    memset(v, 0, sizeof *v);
    cu_ledger_state_init(&v->st, false);
    if (producer) {
        (void)cu_snprintf(v->producer, sizeof v->producer, "%s", producer);
        v->pinned = true;
    }
    v->res.bad_block = -1;
    v->res.bad_tx = CU_NO_TX;
}

void cu_verifier_release(struct cu_verifier *v)
{
    cu_ledger_state_release(&v->st);
}

int cu_verifier_copy(struct cu_verifier *dst, const struct cu_verifier *src)
{
    *dst = *src;
    return cu_ledger_state_copy(&dst->st, &src->st);
}

const struct cu_ledger_state *cu_verifier_state(const struct cu_verifier *v)
{
    return &v->st;
}

static void copy_res(const struct cu_verifier *v, struct cu_verify_result *res)
{
    if (res)
        *res = v->res;
}

/* Records the first failure: "block H[ tx I]: " + detail. */
static int fail(struct cu_verifier *v, int code, int64_t tx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct cu_verifier *v, int code, int64_t tx, const char *fmt, ...)
{
    char detail[CU_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    v->failed = code < 0 ? code : -CU_EINVAL;
    v->res.bad_block = (int64_t)v->res.blocks;
    v->res.bad_tx = tx;
    if (tx == CU_NO_TX)
        cu_err_set(&v->res.err, v->failed, "block %llu: %s", ULL(v->res.blocks), detail);
    else
        cu_err_set(&v->res.err, v->failed, "block %llu tx %lld: %s", ULL(v->res.blocks),
                   (long long)tx, detail);
    return v->failed;
}

static int check_header(struct cu_verifier *v, const struct cu_block_header *h)
{
    uint64_t k = v->res.blocks;
    struct cu_err e = {0};
    char hex[CU_HASH_HEX_LEN + 1];
    int rc;

    if (h->height != k)
        return fail(v, -CU_EINVAL, CU_NO_TX,
                    "height %llu where %llu was expected (a block is missing, repeated or out "
                    "of order)",
                    ULL(h->height), ULL(k));
    if (k == 0 && !v->pinned)
        memcpy(v->producer, h->producer, sizeof v->producer);
    if (strcmp(h->producer, v->producer) != 0)
        return fail(v, -CU_EAUTH, CU_NO_TX, "produced by %.16s…, but the chain's producer is %.16s…",
                    h->producer, v->producer);
    if (k == 0)
        v->devnet = v->st.devnet = h->devnet;
    else if (h->devnet != v->devnet)
        return fail(v, -CU_EINVAL, CU_NO_TX, "devnet flag differs from block 0's");
    if ((rc = cu_block_verify_sig(h, &e)))
        return fail(v, rc, CU_NO_TX, "%s", e.msg);
    if (!cu_hash_eq(&h->prev, &v->prev)) {
        cu_hash_to_hex(&h->prev, hex);
        return fail(v, -CU_ECORRUPT, CU_NO_TX,
                    k == 0 ? "prev is %.16s…, not zero (block 0 has no predecessor)"
                           : "prev %.16s… is not the hash of block %llu",
                    hex, ULL(k ? k - 1 : 0));
    }
    if (h->time_ms < v->prev_time_ms)
        return fail(v, -CU_EINVAL, CU_NO_TX, "time %lld ms is before the previous block's %lld ms",
                    (long long)h->time_ms, (long long)v->prev_time_ms);
    return 0;
}

int cu_verifier_feed_block(struct cu_verifier *v, const struct cu_block *b,
                           struct cu_verify_result *res)
{
    const struct cu_block_header *h = &b->h;
    struct cu_hash *ids = NULL, root;
    struct cu_err e = {0};
    int rc;

    if (v->failed)
        goto out_copy_res;
    if ((rc = check_header(v, h)))
        goto out_copy_res;
    ids = malloc((b->ntx ? b->ntx : 1) * sizeof *ids);
    if (!ids) {
        fail(v, -CU_ENOMEM, CU_NO_TX, "out of memory");
        goto out_copy_res;
    }
    for (size_t i = 0; i < b->ntx; i++) {
        const struct cu_tx *tx = &b->txs[i];
        uint64_t want = v->st.tx_count + i;
        if ((rc = cu_tx_check(tx, &e))) {
            fail(v, rc, (int64_t)i, "%s", e.msg);
            goto out_free_ids;
        }
        if ((rc = cu_tx_id(tx, &ids[i]))) {
            fail(v, rc, (int64_t)i, "cannot hash: %s", cu_strerror(rc));
            goto out_free_ids;
        }
        if (tx->has_id && !cu_hash_eq(&tx->stored_id, &ids[i])) {
            fail(v, -CU_ECORRUPT, (int64_t)i, "id does not match the transaction's contents "
                                              "(the transaction was altered)");
            goto out_free_ids;
        }
        if (tx->seq != want) {
            fail(v, -CU_EINVAL, (int64_t)i,
                 "sequence number %llu where %llu was expected (a transaction is missing, "
                 "repeated or out of order)",
                 ULL(tx->seq), ULL(want));
            goto out_free_ids;
        }
    }
    if (h->tx_count != b->ntx) {
        fail(v, -CU_ECORRUPT, CU_NO_TX,
             "header says %llu transactions, the block holds %zu (a transaction was added or "
             "removed)",
             ULL(h->tx_count), b->ntx);
        goto out_free_ids;
    }
    cu_tx_root(ids, b->ntx, &root);
    if (!cu_hash_eq(&root, &h->tx_root)) {
        fail(v, -CU_ECORRUPT, CU_NO_TX,
             "Merkle root of the transactions does not match the header (transactions altered, "
             "added, removed or reordered)");
        goto out_free_ids;
    }
    v->st.height = h->height;
    for (size_t i = 0; i < b->ntx; i++) {
        if ((rc = cu_ledger_apply(&v->st, &b->txs[i], &e))) {
            fail(v, rc, (int64_t)i, "%s", e.msg);
            goto out_free_ids;
        }
    }
    if ((rc = cu_ledger_check_invariant(&v->st, &e))) {
        fail(v, rc, CU_NO_TX, "%s", e.msg);
        goto out_free_ids;
    }
    if ((rc = cu_block_hash(h, &v->prev))) {
        fail(v, rc, CU_NO_TX, "cannot hash the header: %s", cu_strerror(rc));
        goto out_free_ids;
    }
    v->res.tip = v->prev;
    v->prev_time_ms = h->time_ms;
    v->res.blocks++;
    v->res.txs += b->ntx;
out_free_ids:
    free(ids);
out_copy_res:
    copy_res(v, res);
    return v->failed;
}

int cu_verifier_feed_line(struct cu_verifier *v, const char *line, size_t n,
                          struct cu_verify_result *res)
{
    struct cu_block b;
    struct cu_err e = {0};
    int64_t bad_tx;
    int rc;

    if (v->failed) {
        copy_res(v, res);
        return v->failed;
    }
    rc = cu_export_parse_block(line, n, &b, &bad_tx, &e);
    if (rc) {
        fail(v, rc, bad_tx, "%s", e.msg);
        copy_res(v, res);
    } else {
        rc = cu_verifier_feed_block(v, &b, res);
    }
    cu_block_release(&b);
    return rc;
}

int cu_verifier_finish(struct cu_verifier *v, struct cu_verify_result *res)
{
    if (!v->failed && v->res.blocks == 0) {
        v->failed = -CU_EINVAL;
        cu_err_set(&v->res.err, v->failed, "the ledger is empty (no genesis block)");
    }
    copy_res(v, res);
    return v->failed;
}

int cu_verify_chain(const struct cu_block *blocks, size_t n, const char *producer,
                    struct cu_verify_result *res)
{
    struct cu_verifier v;
    int rc = 0;

    cu_verifier_init(&v, producer);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cu_verifier_feed_block(&v, &blocks[i], NULL);
    rc = cu_verifier_finish(&v, res);
    cu_verifier_release(&v);
    return rc;
}

int cu_verify_export(const char *text, size_t n, const char *producer,
                     struct cu_verify_result *res)
{
    struct cu_verifier v;
    const char *line;
    size_t pos = 0, len;
    int rc = 0;

    cu_verifier_init(&v, producer);
    while (rc == 0 && cu_export_next_line(text, n, &pos, &line, &len))
        rc = cu_verifier_feed_line(&v, line, len, NULL);
    rc = cu_verifier_finish(&v, res);
    cu_verifier_release(&v);
    return rc;
}
