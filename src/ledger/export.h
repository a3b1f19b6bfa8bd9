/* export.h - the portable ledger export: JSON Lines (pure: strings in and
 * out, no files).
 *
 * One block per line, in height order, each line the canonical JSON
 *   {"header":{...block.h header...},"txs":[{...tx...,"id":HEX}, ...]}
 * followed by "\n". Each transaction carries its id, so an altered
 * transaction is named by its index; the line must be byte-for-byte
 * canonical (compact, sorted keys), so no byte can change unnoticed. */
#ifndef CU_LEDGER_EXPORT_H
#define CU_LEDGER_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "ledger/block.h"

/* Longest line accepted. */
#define CU_EXPORT_LINE_MAX (256u << 20)
/* "no transaction" in *bad_tx. */
#define CU_NO_TX (-1)

/* Appends b's line (with the "\n") to out. 0, -CU_ENOMEM, -CU_ETOOBIG. */
int cu_export_block(const struct cu_block *b, struct cu_buf *out);
/* The same with the transactions' ids already computed (ids[ntx], each
 * cu_tx_id of its transaction; NULL: computed here). */
int cu_export_block_ids(const struct cu_block *b, const struct cu_hash *ids, struct cu_buf *out);
/* The same from the transactions' export forms already written, joined
 * by commas (txs, n bytes: cu_tx_id_export of each, in order; the caller's
 * word). */
int cu_export_block_txs(const struct cu_block *b, const char *txs, size_t n, struct cu_buf *out);
/* Appends every block's line. */
int cu_export_chain(const struct cu_block *blocks, size_t n, struct cu_buf *out);

/* Parses one line (n bytes, without its "\n") into b (initialised here;
 * cu_block_release it even on failure). Checks structure and canonical
 * form, not hashes or signatures. On failure *bad_tx is the index of the
 * transaction at fault or CU_NO_TX, and e says what is wrong. */
int cu_export_parse_block(const char *line, size_t n, struct cu_block *b, int64_t *bad_tx,
                          struct cu_err *e);

/* Steps through text line by line: *pos starts at 0; returns true with the
 * line in (*line, *len) (without "\n"), false at the end. A final line
 * without "\n" is still a line; an empty text has none. */
bool cu_export_next_line(const char *text, size_t n, size_t *pos, const char **line,
                         size_t *len);

#endif
