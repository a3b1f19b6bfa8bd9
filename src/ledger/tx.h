/* tx.h - ledger transactions (pure: no I/O, no clock).
 *
 * Every token movement is one transaction. Its canonical form is the
 * compact, key-sorted JSON object written by cu_tx_to_json (integers only:
 * amounts are base units, at most CU_AMOUNT_MAX so they fit jansson's
 * int64). Fields, by type (see CU_TX_TYPES for the exact table):
 *
 *   type     the type name ("transfer", ...)
 *   seq      ledger-wide sequence number: the n-th transaction ever is n
 *   time_ms  unix milliseconds when the producer (or signer) made it
 *   from/to  account ids (64 lowercase hex of an ed25519 public key)
 *   amount   base units, > 0
 *   nonce    transfers: the signer's account nonce (replay protection)
 *   job, replica, memo   names and a free note
 *   authorization        escrow_lock: the requester's signed job request,
 *                        verbatim (see cu_tx_auth_make)
 *   record   task_record: the CuToken CIRecord fields (struct cu_task_rec)
 *   sig      transfers: ed25519 signature of `from` (hex) over
 *            "cumulus-tx-v1\n" || canonical JSON without sig, seq and id
 *            (seq is the producer's placement, assigned after signing)
 *   id       export form only: the tx id, hex
 *
 * Tx id = BLAKE2b-256 of the canonical JSON without the `id` field.
 * Unsigned types are authorised by the block producer (the exchange), whose
 * signature over the block covers them. */
#ifndef CU_LEDGER_TX_H
#define CU_LEDGER_TX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "crypto/reqsign.h"

/* Largest amount, balance or total: jansson integers are int64. */
#define CU_AMOUNT_MAX ((uint64_t)INT64_MAX)
/* job, replica, record id, task type: 1..64 of [A-Za-z0-9._:-]. */
#define CU_LEDGER_NAME_MAX 64
#define CU_LEDGER_MEMO_MAX 256
/* Longest authorization string (the signed job request with headers). */
#define CU_TX_AUTH_MAX (20u << 20) /* an 8 MiB job body, JSON-escaped */

/* Field bits for the type table. */
#define CU_TXF_FROM (1u << 0)
#define CU_TXF_TO (1u << 1)
#define CU_TXF_AMOUNT (1u << 2)
#define CU_TXF_NONCE (1u << 3)
#define CU_TXF_JOB (1u << 4)
#define CU_TXF_REPLICA (1u << 5)
#define CU_TXF_AUTH (1u << 6)
#define CU_TXF_RECORD (1u << 7)
#define CU_TXF_SIG (1u << 8)

/* X(ENUM, "name", required fields, optional fields). memo is optional for
 * every type; fields in neither set must be absent.
 *   genesis_mint    mint to `to`; only in block 0
 *   faucet_mint     mint to `to`; only on a devnet
 *   transfer        from -> to, signed by from
 *   escrow_lock     from's balance -> escrow of job (from owns the job)
 *   escrow_release  escrow of job -> provider `to` (pay for a replica)
 *   fee             escrow of job -> exchange `to`
 *   refund          escrow of job -> its owner `to`
 *   stake           from's balance -> from's stake
 *   unstake         from's stake -> from's balance
 *   slash           from's stake -> `to` (e.g. the harmed requester)
 *   task_record     no money: a reputation record of one replica */
#define CU_TX_TYPES(X)                                                                     \
    X(GENESIS_MINT, "genesis_mint", CU_TXF_TO | CU_TXF_AMOUNT, 0)                          \
    X(FAUCET_MINT, "faucet_mint", CU_TXF_TO | CU_TXF_AMOUNT, 0)                            \
    X(TRANSFER, "transfer", CU_TXF_FROM | CU_TXF_TO | CU_TXF_AMOUNT | CU_TXF_NONCE | CU_TXF_SIG, \
      0)                                                                                   \
    X(ESCROW_LOCK, "escrow_lock", CU_TXF_FROM | CU_TXF_AMOUNT | CU_TXF_JOB | CU_TXF_AUTH, 0) \
    X(ESCROW_RELEASE, "escrow_release", CU_TXF_TO | CU_TXF_AMOUNT | CU_TXF_JOB, CU_TXF_REPLICA) \
    X(FEE, "fee", CU_TXF_TO | CU_TXF_AMOUNT | CU_TXF_JOB, CU_TXF_REPLICA)                    \
    X(REFUND, "refund", CU_TXF_TO | CU_TXF_AMOUNT | CU_TXF_JOB, 0)                          \
    X(STAKE, "stake", CU_TXF_FROM | CU_TXF_AMOUNT, 0)                                      \
    X(UNSTAKE, "unstake", CU_TXF_FROM | CU_TXF_AMOUNT, 0)                                  \
    X(SLASH, "slash", CU_TXF_FROM | CU_TXF_TO | CU_TXF_AMOUNT, CU_TXF_JOB | CU_TXF_REPLICA) \
    X(TASK_RECORD, "task_record", CU_TXF_JOB | CU_TXF_RECORD, CU_TXF_REPLICA)

enum cu_tx_type {
#define CU_X_TXENUM(e, name, req, opt) CU_TX_##e,
    CU_TX_TYPES(CU_X_TXENUM)
#undef CU_X_TXENUM
        CU_TX_NTYPES
};

/* Outcome of a replica in a task record (DESIGN.md §7). */
#define CU_TASK_STATUSES(X)                                                                \
    X(SUCCESS, "success")                                                                  \
    X(WRONG_RESULT, "wrong_result")                                                        \
    X(TIMEOUT, "timeout")                                                                  \
    X(ABANDONED, "abandoned")                                                              \
    X(CHALLENGE_FAILED, "challenge_failed")

enum cu_task_status {
#define CU_X_TSENUM(e, name) CU_TASK_##e,
    CU_TASK_STATUSES(CU_X_TSENUM)
#undef CU_X_TSENUM
        CU_TASK_NSTATUSES
};

/* CuToken's CIRecord: id, time, client, seller, task, tx number,
 * incentive, status, duration, task type. JSON keys: id, time_ms, client,
 * seller, task, tx_number, incentive, status, duration_ms, task_type. */
struct cu_task_rec {
    char id[CU_LEDGER_NAME_MAX + 1];
    int64_t time_ms;
    char client[CU_ID_LEN + 1]; /* requester */
    char seller[CU_ID_LEN + 1]; /* provider */
    uint64_t task;              /* task index within the job */
    uint64_t tx_number;         /* seq of the tx that paid it; <= the record's own seq */
    uint64_t incentive;         /* base units paid */
    enum cu_task_status status;
    uint64_t duration_ms;
    char task_type[CU_LEDGER_NAME_MAX + 1];
};

/* One transaction. Strings are "" when absent; authorization is owned
 * (malloc'd, NULL when absent). Zero-initialise or use cu_tx_init. */
struct cu_tx {
    enum cu_tx_type type;
    uint64_t seq;
    int64_t time_ms;
    char from[CU_ID_LEN + 1];
    char to[CU_ID_LEN + 1];
    uint64_t amount;
    uint64_t nonce;
    char job[CU_LEDGER_NAME_MAX + 1];
    char replica[CU_LEDGER_NAME_MAX + 1];
    char memo[CU_LEDGER_MEMO_MAX + 1];
    char *authorization;
    struct cu_task_rec rec;
    bool has_sig;
    unsigned char sig[CU_SIG_LEN];
    bool has_id; /* the export form carried an id: stored_id */
    struct cu_hash stored_id;
};

const char *cu_tx_type_name(enum cu_tx_type t);
int cu_tx_type_parse(const char *name, enum cu_tx_type *out);
/* Required / optional field bits of a type (0 outside the table). */
unsigned cu_tx_type_required(enum cu_tx_type t);
unsigned cu_tx_type_optional(enum cu_tx_type t);
const char *cu_task_status_name(enum cu_task_status s);
int cu_task_status_parse(const char *name, enum cu_task_status *out);

void cu_tx_init(struct cu_tx *tx, enum cu_tx_type type);
/* Frees authorization; tx may be reused after cu_tx_init. */
void cu_tx_release(struct cu_tx *tx);
/* Deep copy into dst (uninitialised); 0 or -CU_ENOMEM. */
int cu_tx_copy(struct cu_tx *dst, const struct cu_tx *src);
/* Replaces tx->authorization with a copy of s (n bytes). 0 / -CU_ENOMEM /
 * -CU_ETOOBIG. */
int cu_tx_set_authorization(struct cu_tx *tx, const char *s, size_t n);

/* Structural check: the type's fields present and well-formed, the others
 * absent; amounts in range. Does not check signatures or state. 0 or
 * -CU_EINVAL with e naming the field. */
int cu_tx_check(const struct cu_tx *tx, struct cu_err *e);

/* Canonical JSON object of tx (new reference; NULL when out of memory).
 * with_id adds "id" (the export form). */
json_t *cu_tx_to_json(const struct cu_tx *tx, bool with_id);
/* Decodes one transaction from its JSON object into tx (initialised here;
 * cu_tx_release it even on failure). Strict: unknown or misplaced fields
 * are refused. "id" is optional and lands in stored_id. -CU_EINVAL with e
 * naming the field. */
int cu_tx_from_json(const json_t *j, struct cu_tx *tx, struct cu_err *e);

/* Canonical bytes hashed for the id (without "id") into out (appended). */
int cu_tx_canonical(const struct cu_tx *tx, struct cu_buf *out);
/* The export form (canonical JSON with "id", as cu_tx_to_json(tx, true)
 * dumps it), appended to out. 0, -CU_ENOMEM, -CU_ETOOBIG. */
int cu_tx_export_form(const struct cu_tx *tx, struct cu_buf *out);
/* The same with the id already computed (id = cu_tx_id(tx), the caller's
 * word; NULL: computed here): a producer sealing a block has them. */
int cu_tx_export_form_id(const struct cu_tx *tx, const struct cu_hash *id, struct cu_buf *out);
/* Both at once: sets *id (as cu_tx_id) and appends the export form (as
 * cu_tx_export_form) to out, writing the canonical form only once. On
 * failure out is left as it was. 0, -CU_ENOMEM, -CU_ETOOBIG. */
int cu_tx_id_export(const struct cu_tx *tx, struct cu_hash *id, struct cu_buf *out);
/* Tx id: BLAKE2b-256 of the canonical bytes. 0 or -CU_ENOMEM. */
int cu_tx_id(const struct cu_tx *tx, struct cu_hash *out);
/* Bytes a transfer's signer signs (appended to out). */
int cu_tx_signing_bytes(const struct cu_tx *tx, struct cu_buf *out);
/* Signs tx as `signer` (sets from = signer's id, sig). */
int cu_tx_sign(struct cu_tx *tx, const struct cu_identity *signer);
/* Checks tx->sig against tx->from. 0, or -CU_EAUTH with e set. */
int cu_tx_verify_sig(const struct cu_tx *tx, struct cu_err *e);

/* The escrow_lock authorization: the requester's signed HTTP request kept
 * verbatim, as the canonical JSON string
 *   {"body":BODY,"body_hash":..,"key":..,"method":..,"nonce":..,"path":..,
 *    "sig":..,"ts":..}
 * (header values as in crypto/reqsign.h). cu_tx_auth_make builds it
 * (malloc'd into *out). cu_tx_auth_check parses it, checks the body against
 * body_hash, the request signature (not its freshness: that was the
 * exchange's job when it accepted it) and that the signer is `signer`.
 * 0, or -CU_EAUTH / -CU_EINVAL with e set. */
int cu_tx_auth_make(const char *method, const char *path, const char *body, size_t n,
                    const struct cu_sig_headers *h, char **out);
int cu_tx_auth_check(const char *auth, const char *signer, struct cu_err *e);

/* Account-id syntax: 64 lowercase hex chars. */
bool cu_ledger_id_ok(const char *id);
/* Name syntax: 1..CU_LEDGER_NAME_MAX of [A-Za-z0-9._:-]. */
bool cu_ledger_name_ok(const char *s);

#endif
