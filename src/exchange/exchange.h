/* exchange.h - the exchange daemon (collective layer). */
#ifndef CU_EXCHANGE_EXCHANGE_H
#define CU_EXCHANGE_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "net/http_client.h" /* cu_http_sink */

struct cu_exchange_opts {
    const char *listen;    /* "127.0.0.1:7070"; port 0 picks a free one */
    const char *data_dir;  /* state.db, blobs/, exchange.url, identity.key */
    uint64_t lease_ms;     /* lease length; heartbeats every lease_ms/3 */
    bool devnet;           /* faucet allowed (money issue) */
    uint32_t fee_bps;      /* exchange fee on provider pay, basis points */
    uint64_t escrow_fee;   /* flat fee per job for holding its escrow */
    uint32_t slash_bps;    /* share of a quorum loser's stake slashed */
    const char *web_dir;   /* static dashboard files; NULL = none */
};

#define CU_EXCHANGE_DEFAULT_LEASE_MS 30000
#define CU_EXCHANGE_DEFAULT_FEE_BPS 200
#define CU_EXCHANGE_DEFAULT_ESCROW_FEE 10
#define CU_EXCHANGE_DEFAULT_SLASH_BPS 5000

/* Runs the exchange until SIGINT/SIGTERM. Once listening it logs the URL
 * and writes it to DATA/exchange.url (atomically), so scripts using port 0
 * can find it. Returns 0 after a clean stop, negative with e set if it
 * could not start. */
int cu_exchange_run(const struct cu_exchange_opts *opts, struct cu_err *e);


/* Writes the ledger stored in the exchange data directory DATA_DIR as the
 * JSON Lines export (src/ledger/export.h), one block per call of sink,
 * oldest first, reading the database read-only (works while the exchange
 * runs). For `cumulus ledger verify DATA_DIR` and `ledger export`.
 * 0, or negative with e set (-CU_ENOTFOUND: no exchange database there). */

int cu_exchange_ledger_dump(const char *data_dir, cu_http_sink sink, void *ctx,
                            struct cu_err *e);

#endif
