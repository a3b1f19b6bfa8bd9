/* reqsign.h - signed HTTP requests (RFC 9421 is the model, simplified).
 *
 * Headers sent by the client:
 *   X-Cumulus-Key:        signer id (64 hex)
 *   X-Cumulus-Timestamp:  unix seconds (decimal)
 *   X-Cumulus-Nonce:      32 hex chars (16 random bytes), never reused
 *   X-Cumulus-Body-Hash:  BLAKE2b-256 of the request body, hex (hash of the
 *                         empty string for no body)
 *   X-Cumulus-Signature:  ed25519 signature, hex (128 chars), over the
 *                         signing string below
 *
 * Signing string (bytes, '\n' separated, no trailing newline):
 *   "cumulus-request-v1" \n METHOD \n PATH-WITH-QUERY \n TIMESTAMP \n NONCE \n BODY-HASH
 *
 * The server checks the signature against the Body-Hash header first (so a
 * streamed upload can be authorised before its body arrives), then checks
 * that the body it received hashes to that value. Nonce replay is checked by
 * the caller (the exchange keeps seen nonces in SQLite). */
#ifndef CU_CRYPTO_REQSIGN_H
#define CU_CRYPTO_REQSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/hash.h"
#include "crypto/ident.h"

#define CU_HDR_KEY "X-Cumulus-Key"
#define CU_HDR_TS "X-Cumulus-Timestamp"
#define CU_HDR_NONCE "X-Cumulus-Nonce"
#define CU_HDR_BODY_HASH "X-Cumulus-Body-Hash"
#define CU_HDR_SIG "X-Cumulus-Signature"

#define CU_NONCE_HEX_LEN 32
#define CU_REQSIGN_MAX_SKEW_S 300

struct cu_sig_headers {
    char key[CU_ID_LEN + 1];
    char ts[24];
    char nonce[CU_NONCE_HEX_LEN + 1];
    char body_hash[CU_HASH_HEX_LEN + 1];
    char sig[2 * CU_SIG_LEN + 1];
};

/* Fills out for a request; body_hash is the BLAKE2b-256 of the body (callers
 * that stream a file pass the file's hash). now_s is the current unix time. */
void cu_reqsign_make(const struct cu_identity *id, const char *method, const char *path,
                     const struct cu_hash *body_hash, int64_t now_s, struct cu_sig_headers *out);

/* Checks headers h (fields may be empty strings when the header was absent).
 * Returns 0, or -CU_EAUTH with e->msg starting with one of the stable reasons:
 *   "unsigned: ..."       a header is missing
 *   "malformed: ..."      a header is not in its format
 *   "stale: ..."          |now_s - ts| > max_skew_s
 *   "bad_signature: ..."  the signature does not verify for the key
 * Does not check the body against h->body_hash, nor nonce replay. */
int cu_reqsign_check(const char *method, const char *path, const struct cu_sig_headers *h,
                     int64_t now_s, int64_t max_skew_s, struct cu_err *e);

#endif
