/* reqsign.c - signing and checking HTTP requests (see reqsign.h). */
#include "crypto/reqsign.h"

#include <stddef.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"

#include "base/banned.h"

#define SIGN_PREFIX "cumulus-request-v1"
/* Longest method + path we sign; longer requests are refused upstream. */
#define SIGN_MAX_BYTES (1u << 20)

/* Appends the signing string to b. -CU_ETOOBIG / -CU_ENOMEM. */
static int signing_string(struct cu_buf *b, const char *method, const char *path, const char *ts,
                          const char *nonce, const char *body_hash)
{
    return cu_buf_appendf(b, "%s\n%s\n%s\n%s\n%s\n%s", SIGN_PREFIX, method, path, ts, nonce,
                          body_hash);
}

/* On the (unexpected) failure to build the signing string the signature is
 * left empty, so the server answers "unsigned" rather than accepting. */
void cu_reqsign_make(const struct cu_identity *id, const char *method, const char *path,
                     const struct cu_hash *body_hash, int64_t now_s, struct cu_sig_headers *out)
{
    struct cu_buf b = CU_BUF_INIT(SIGN_MAX_BYTES);
    unsigned char sig[CU_SIG_LEN];

    memset(out, 0, sizeof *out);
    memcpy(out->key, id->id, CU_ID_LEN);
    out->key[CU_ID_LEN] = '\0';
    (void)cu_snprintf(out->ts, sizeof out->ts, "%lld", (long long)now_s);
    cu_random_hex(out->nonce, CU_NONCE_HEX_LEN / 2);
    cu_hash_to_hex(body_hash, out->body_hash);
    if (signing_string(&b, method, path, out->ts, out->nonce, out->body_hash) == 0) {
        cu_sign(id, b.data, b.len, sig);
        cu_hex_encode(sig, CU_SIG_LEN, out->sig);
    }
    cu_buf_release(&b);
}

static bool lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[len] == '\0';
}

/* Checks the headers in a fixed order: presence, format, freshness, then the
 * signature (the only expensive step). Pure: reads no clock. */
int cu_reqsign_check(const char *method, const char *path, const struct cu_sig_headers *h,
                     int64_t now_s, int64_t max_skew_s, struct cu_err *e)
{
    static const struct {
        const char *name;
        size_t off;
    } hdrs[] = {
        {CU_HDR_KEY, offsetof(struct cu_sig_headers, key)},
        {CU_HDR_TS, offsetof(struct cu_sig_headers, ts)},
        {CU_HDR_NONCE, offsetof(struct cu_sig_headers, nonce)},
        {CU_HDR_BODY_HASH, offsetof(struct cu_sig_headers, body_hash)},
        {CU_HDR_SIG, offsetof(struct cu_sig_headers, sig)},
    };
    struct cu_buf b = CU_BUF_INIT(SIGN_MAX_BYTES);
    unsigned char pk[CU_PK_LEN], sig[CU_SIG_LEN];
    int64_t ts, diff;
    int rc;

    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        if (((const char *)h + hdrs[i].off)[0] == '\0')
            return cu_err_set(e, -CU_EAUTH, "unsigned: missing header %s", hdrs[i].name);
    }
    if (!method || !path || !method[0] || strchr(method, '\n') || strchr(path, '\n'))
        return cu_err_set(e, -CU_EAUTH, "malformed: request method or path cannot be signed");
    if (cu_id_to_pk(h->key, pk))
        return cu_err_set(e, -CU_EAUTH, "malformed: %s must be a signer id (64 hex chars)",
                          CU_HDR_KEY);
    if (cu_parse_i64(h->ts, 0, INT64_MAX, &ts))
        return cu_err_set(e, -CU_EAUTH, "malformed: %s must be unix seconds", CU_HDR_TS);
    if (!lower_hex(h->nonce, CU_NONCE_HEX_LEN))
        return cu_err_set(e, -CU_EAUTH, "malformed: %s must be %d lowercase hex chars",
                          CU_HDR_NONCE, CU_NONCE_HEX_LEN);
    if (!cu_hash_hex_valid(h->body_hash))
        return cu_err_set(e, -CU_EAUTH, "malformed: %s must be %d lowercase hex chars",
                          CU_HDR_BODY_HASH, CU_HASH_HEX_LEN);
    if (!lower_hex(h->sig, 2 * CU_SIG_LEN) || cu_hex_decode(h->sig, sig, CU_SIG_LEN))
        return cu_err_set(e, -CU_EAUTH, "malformed: %s must be %d lowercase hex chars",
                          CU_HDR_SIG, 2 * CU_SIG_LEN);
    if (__builtin_sub_overflow(now_s, ts, &diff) || diff > max_skew_s || diff < -max_skew_s)
        return cu_err_set(e, -CU_EAUTH,
                          "stale: timestamp %lld is more than %lld s from the server's clock %lld",
                          (long long)ts, (long long)max_skew_s, (long long)now_s);
    rc = signing_string(&b, method, path, h->ts, h->nonce, h->body_hash);
    if (rc) {
        cu_buf_release(&b);
        return cu_err_set(e, -CU_EAUTH, "malformed: request path too long to sign");
    }
    rc = cu_verify(pk, b.data, b.len, sig) ? 0 : -CU_EAUTH;
    cu_buf_release(&b);
    if (rc)
        return cu_err_set(e, rc, "bad_signature: signature does not verify for key %s", h->key);
    return 0;
}
