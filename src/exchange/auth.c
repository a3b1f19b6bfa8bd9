/* auth.c - request authentication for the exchange: signature, freshness,
 * nonce replay (docs/api.md, crypto/reqsign.h). */
#include "exchange/routes.h"

#include "base/util.h"
#include "exchange/state.h"

#include "base/banned.h"

int ex_auth(void *app, const struct cu_http_req *req, struct cu_err *e)
{
    struct ex_state *st = app;
    int64_t now = cu_now_ms(), signed_s;
    int rc;

    __atomic_add_fetch(&st->requests, 1, __ATOMIC_RELAXED);
    rc = cu_http_verify_sig(req, now / 1000, e);
    if (rc)
        return rc;
    /* Only a request whose signature verifies may spend its nonce: a forger
     * cannot burn someone else's nonces. A read (GET, HEAD: no route
     * changes state on those) is checked against the in-memory window,
     * with no write and no fsync; see replay.h for why that is enough.
     * When the window is full it takes the durable path like a write. */
    if (req->method & (CU_HTTP_GET | CU_HTTP_HEAD)) {
        rc = ex_replay_use(&st->reads, req->sig.key, req->sig.nonce, now);
        if (rc == -CU_EAUTH)
            return cu_err_set(e, rc, "replayed: nonce already used");
        if (rc == 0)
            return 0;
    }
    /* The timestamp verified above: a replay carries the same one. */
    if (cu_parse_i64(req->sig.ts, 0, INT64_MAX / 1000, &signed_s) != 0)
        return cu_err_set(e, -CU_EAUTH, "malformed: timestamp");
    return ex_nonce_use(st, req->sig.key, req->sig.nonce, signed_s * 1000, e);
}

int ex_barrier(void *app)
{
    struct ex_state *st = app;
    int rc;

    /* The request's nonce first (unless a commit already carried it), so
     * the replay check holds across a restart once anyone hears back. */
    rc = ex_nonces_flush(st);
    if (rc)
        return rc;
    return cu_db_barrier(&st->db);
}
