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

/* GET /v1/jobs/{id}?wait_ms=N&after=VERSION: the longest wait, and the
 * length of a job's "version" (hex digits). */
#define EX_JOB_WAIT_MAX_MS 20000
#define EX_JOB_VERSION_LEN 16
/* GET /v1/jobs/{id}?inline=N: at most this many output bytes inline. */
#define EX_JOB_INLINE_MAX 65536
#define EX_JOB_INLINE_FILES 256 /* and at most this many outputs (empty ones too) */

/* Wakes every job long-poll to compare its job's version again: call
 * after anything that may have changed a job outside a route handler
 * (routes.c calls it after claims, heartbeats, reports, commits and
 * cancels; exchange.c after the reaper expired leases). Never blocks. */
void ex_jobs_changed(void);
/* Ends every job long-poll now (each answers its job as it is): the
 * exchange is stopping and its server waits for its handlers. */
void ex_jobs_watch_stop(void);

#endif
