/* routes.h - the exchange's HTTP surface (internal to src/exchange/):
 * the one route table of docs/api.md and the request authenticator. */
#ifndef CU_EXCHANGE_ROUTES_H
#define CU_EXCHANGE_ROUTES_H

#include <stddef.h>

#include "base/err.h"
#include "net/http_server.h"

/* The route table (static storage); *n gets its length. Handlers expect
 * req->app to be a struct ex_state. */
const struct cu_route *ex_routes(size_t *n);

/* cu_http_auth_fn for signed routes (app is the struct ex_state): checks
 * the signature and its freshness, then records the nonce, refusing a
 * replay ("replayed: ..."). A refused request changes nothing else. */
int ex_auth(void *app, const struct cu_http_req *req, struct cu_err *e);

/* cu_http_barrier_fn (app is the struct ex_state): commits the request's
 * nonce if no commit carried it yet (ex_nonces_flush), then waits until
 * every commit this request's thread made is on disk (group commit,
 * store/db.h),
 * so no answer reports a change a crash could take back. Called without
 * st->mu; blocks for about one fdatasync shared with concurrent requests. */
int ex_barrier(void *app);

#endif
