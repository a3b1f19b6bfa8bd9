/* export.c - JSON Lines form of the ledger (format in export.h). */
#include "ledger/export.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"

#include "base/banned.h"

/* The line is written directly: {"header":H,"txs":[T,...]} with H the
 * header as cu_json_dump writes it and each T cu_tx_export_form's bytes,
 * which are what jansson writes for cu_tx_to_json(tx, true); so the line
 * equals the dump of that object ("header" sorts before "txs") without
 * building it. */
int cu_export_block(const struct cu_block *b, struct cu_buf *out)
{
    return cu_export_block_ids(b, NULL, out);
}

/* Appends {"header":H,"txs":[ for b. */
static int line_open(const struct cu_block *b, struct cu_buf *out)
{
    json_t *h = cu_block_header_to_json(&b->h, true);
    int rc;

    if (!h)
        return -CU_ENOMEM;
    rc = cu_buf_appends(out, "{\"header\":");
    if (rc == 0)
        rc = cu_json_dump(h, out);
    json_decref(h);
    if (rc == 0)
        rc = cu_buf_appends(out, ",\"txs\":[");
    return rc;
}

/* Ends the line begun at mark (rc 0), or leaves out as it was before it
 * (rc < 0). Returns the outcome. */
static int line_close(struct cu_buf *out, size_t mark, int rc)
{
    if (rc == 0)
        rc = cu_buf_appends(out, "]}\n");
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

int cu_export_block_txs(const struct cu_block *b, const char *txs, size_t n, struct cu_buf *out)
{
    size_t mark = out->len;
    int rc = line_open(b, out);

    if (rc == 0)
        rc = cu_buf_append(out, txs, n);
    return line_close(out, mark, rc);
}

int cu_export_block_ids(const struct cu_block *b, const struct cu_hash *ids, struct cu_buf *out)
{
    size_t mark = out->len;
    int rc = line_open(b, out);

    for (size_t i = 0; i < b->ntx && rc == 0; i++) {
        if (i)
            rc = cu_buf_append(out, ",", 1);
        if (rc == 0)
            rc = cu_tx_export_form_id(&b->txs[i], ids ? &ids[i] : NULL, out);
    }
    return line_close(out, mark, rc);
}

int cu_export_chain(const struct cu_block *blocks, size_t n, struct cu_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        int rc = cu_export_block(&blocks[i], out);
        if (rc)
            return rc;
    }
    return 0;
}

int cu_export_parse_block(const char *line, size_t n, struct cu_block *b, int64_t *bad_tx,
                          struct cu_err *e)
{
    static const char *const keys[] = {"header", "txs", NULL};
    struct cu_buf canon = CU_BUF_INIT(CU_EXPORT_LINE_MAX);
    json_t *j, *txs;
    size_t i;
    int rc;

    cu_block_init(b);
    *bad_tx = CU_NO_TX;
    if (n > CU_EXPORT_LINE_MAX)
        return cu_err_set(e, -CU_ETOOBIG, "line longer than %u bytes", CU_EXPORT_LINE_MAX);
    j = cu_json_parse(line, n, e);
    if (!j)
        return -CU_EINVAL;
    if ((rc = cu_json_only_keys(j, "block", keys, e)))
        goto out_free_json;
    if (!json_object_get(j, "header")) {
        rc = cu_err_set(e, -CU_EINVAL, "missing field 'header'");
        goto out_free_json;
    }
    if ((rc = cu_block_header_from_json(json_object_get(j, "header"), &b->h, e)))
        goto out_free_json;
    txs = json_object_get(j, "txs");
    if (!json_is_array(txs)) {
        rc = cu_err_set(e, -CU_EINVAL, "field 'txs' must be an array");
        goto out_free_json;
    }
    if (json_array_size(txs) > CU_BLOCK_MAX_TXS) {
        rc = cu_err_set(e, -CU_ETOOBIG, "more than %d transactions", CU_BLOCK_MAX_TXS);
        goto out_free_json;
    }
    for (i = 0; i < json_array_size(txs); i++) {
        struct cu_tx tx;
        rc = cu_tx_from_json(json_array_get(txs, i), &tx, e);
        if (rc == 0 && !tx.has_id)
            rc = cu_err_set(e, -CU_EINVAL, "missing field 'id'");
        if (rc == 0 && (rc = cu_block_add_tx(b, &tx)))
            cu_err_set(e, rc, "%s", cu_strerror(rc));
        cu_tx_release(&tx);
        if (rc) {
            *bad_tx = (int64_t)i;
            goto out_free_json;
        }
    }
    /* Canonical bytes: jansson re-dumps a parsed value canonically, so any
     * difference is formatting (spaces, key order, escapes, number forms). */
    rc = cu_json_dump(j, &canon);
    if (rc == -CU_ENOMEM)
        cu_err_set(e, rc, "out of memory");
    else if (rc || canon.len != n || memcmp(canon.data, line, n) != 0)
        rc = cu_err_set(e, -CU_EINVAL, "line is not in canonical form (compact JSON, sorted keys)");
    cu_buf_release(&canon);
out_free_json:
    json_decref(j);
    return rc;
}

bool cu_export_next_line(const char *text, size_t n, size_t *pos, const char **line,
                         size_t *len)
{
    const char *nl;
    if (*pos >= n)
        return false;
    *line = text + *pos;
    nl = memchr(*line, '\n', n - *pos);
    *len = nl ? (size_t)(nl - *line) : n - *pos;
    *pos += *len + (nl ? 1 : 0);
    return true;
}
