/* api.h - the requester's typed view of the exchange's HTTP API
 * (docs/api.md), on net/http_client.
 *
 * Every call returns 0 or a negative CU_E* code and fills e with a sentence
 * ready for the user:
 *   from the exchange:  "<its message> (HTTP 409 missing_blobs)"
 *   transport:          "cannot reach exchange at URL: Connection refused"
 * Transport failures (and 502/503/504 from a proxy) are -CU_ENET, so a
 * caller can retry exactly those. HTTP statuses map to codes: 400 -CU_EINVAL,
 * 401 -CU_EAUTH, 403 -CU_EPERM, 404 -CU_ENOTFOUND, 409 -CU_ECONFLICT,
 * 413 -CU_ETOOBIG, anything else -CU_EPROTO. JSON answers are returned as
 * new references the caller json_decref()s. Every call blocks. One api is
 * used by one thread. */
#ifndef CU_CLIENT_API_H
#define CU_CLIENT_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "ledger/tx.h"
#include "market/spec.h"
#include "net/http_client.h"

#define CU_API_URL_MAX 1024
#define CU_API_JOB_ID_MAX 64

struct cu_api {
    struct cu_http_client *http;
    char url[CU_API_URL_MAX];
    const struct cu_identity *id; /* borrowed */
    struct cu_http_result res;    /* the last answer (reused) */
    long status;                  /* HTTP status of the last answer, 0 if none */
    char code[64];                /* its error code ("missing_blobs"), "" if none */
};

/* Opens a client for url, signing with id (borrowed; must outlive api;
 * NULL for unsigned calls only). Does not connect. */
int cu_api_open(struct cu_api *api, const char *url, const struct cu_identity *id,
                struct cu_err *e);
/* Frees what api holds; safe on a zeroed or already closed api. */
void cu_api_close(struct cu_api *api);

/* True if s can be a job id in a path ("j-" + hex, or any [A-Za-z0-9_-]
 * of at most CU_API_JOB_ID_MAX chars); callers check before building paths. */
bool cu_api_job_id_valid(const char *s);

/* GET /v1/health (unsigned). */
int cu_api_health(struct cu_api *api, json_t **out, struct cu_err *e);

/* HEAD /v1/blobs/H: *exists true/false (404 is not an error). */
int cu_api_blob_exists(struct cu_api *api, const struct cu_hash *h, bool *exists,
                       struct cu_err *e);
/* PUT /v1/blobs/H streaming the file at path (whose hash is h). */
int cu_api_upload_file(struct cu_api *api, const char *path, const struct cu_hash *h,
                       struct cu_err *e);

/* Called once per input after it is on the exchange. */
typedef void (*cu_api_upload_progress)(void *ctx, const struct cu_spec_input *in, bool uploaded);
/* Makes every input of spec (with its client-side path) present on the
 * exchange: HEAD, then PUT when missing. progress may be NULL. */
int cu_api_upload_inputs(struct cu_api *api, const struct cu_spec *spec,
                         cu_api_upload_progress progress, void *ctx, struct cu_err *e);

/* POST /v1/jobs {"spec":..., "client_ref": random 32 hex}. id_out gets the
 * job id (CU_API_JOB_ID_MAX + 1 bytes); answer (may be NULL) the whole
 * answer {"id","tasks","replicas"}. A transport failure is retried twice
 * (the exchange answers a repeated body with the same job). */
int cu_api_submit(struct cu_api *api, const struct cu_spec *spec, char *id_out, size_t idn,
                  json_t **answer, struct cu_err *e);

/* GET /v1/jobs/{id}: SUMMARY + spec + tasks. */
int cu_api_job(struct cu_api *api, const char *job, json_t **out, struct cu_err *e);
/* GET /v1/jobs/{id}?wait_ms=N&after=VERSION: the job (with its "version")
 * as soon as its version differs from after, or once wait_ms passed (the
 * same version then). after NULL or "" or wait_ms 0: at once. wait_ms is at most
 * CU_API_JOB_WAIT_MAX_MS; an exchange that predates the long-poll answers
 * at once with no "version". Blocks up to wait_ms plus the usual timeout. */
#define CU_API_JOB_WAIT_MAX_MS 20000
#define CU_API_JOB_VERSION_MAX 64
int cu_api_job_wait(struct cu_api *api, const char *job, const char *after, uint32_t wait_ms,
                    json_t **out, struct cu_err *e);
/* cu_api_job_wait asking also for ?inline=inline_max (0: none; at most
 * CU_API_JOB_INLINE_MAX): outputs of the task results whose sizes add up
 * to at most inline_max bytes carry their content as "data" (base64), for
 * cu_api_output_save. An exchange that predates it sends no "data". */
#define CU_API_JOB_INLINE_MAX 65536
int cu_api_job_follow(struct cu_api *api, const char *job, const char *after, uint32_t wait_ms,
                      uint32_t inline_max, json_t **out, struct cu_err *e);
/* GET /v1/jobs: {"jobs":[SUMMARY...]}. */
int cu_api_jobs(struct cu_api *api, json_t **out, struct cu_err *e);
/* POST /v1/jobs/{id}/cancel: {"id","state"}. */
int cu_api_cancel(struct cu_api *api, const char *job, json_t **out, struct cu_err *e);
/* GET /v1/jobs/{id}/tasks/{task}/logs. -CU_ENOTFOUND when nothing has
 * reported yet. */
int cu_api_logs(struct cu_api *api, const char *job, uint32_t task, json_t **out,
                struct cu_err *e);

/* GET /v1/blobs/{hash} into dest, verified: written to a temp file beside
 * dest, at most size bytes, renamed over dest (mode 0644) only if the
 * content hashes to h; -CU_ECORRUPT otherwise (nothing left behind). */
int cu_api_download_blob(struct cu_api *api, const struct cu_hash *h, uint64_t size,
                         const char *dest, struct cu_err *e);
/* One output {"hash","size"[,"data"]} of a job answer (borrowed) into
 * dest, verified as cu_api_download_blob does (same temp file, same syncs):
 * from its inline "data" when there is some, else downloaded. -CU_EPROTO
 * for an output without a valid hash and size; -CU_ECORRUPT when the
 * content does not hash to it (nothing left behind). */
int cu_api_output_save(struct cu_api *api, const json_t *output, const char *dest,
                       struct cu_err *e);

/* ---- money (docs/api.md "Money") ---------------------------------------------- */

/* GET /v1/wallet: {"id","balance","stake","escrow","earned","nonce"}. */
int cu_api_wallet(struct cu_api *api, json_t **out, struct cu_err *e);
/* GET /v1/wallet/history?limit=N (1..1000): {"entries":[...]} newest first. */
int cu_api_wallet_history(struct cu_api *api, unsigned limit, json_t **out, struct cu_err *e);
/* POST /v1/faucet {"amount":N}: {"tx","height","balance"}. -CU_EPERM with
 * api->code "not_devnet" on an exchange that is not a devnet. */
int cu_api_faucet(struct cu_api *api, uint64_t amount, json_t **out, struct cu_err *e);
/* POST /v1/transfers {"tx":TX} for a signed transfer: {"tx","height"}.
 * -CU_ECONFLICT (api->code "insufficient_funds") when the balance is short. */
int cu_api_transfer(struct cu_api *api, const struct cu_tx *tx, json_t **out, struct cu_err *e);
/* ---- trust (docs/api.md "Trust (issue 4)") ------------------------------------ */

/* POST /v1/stake {"amount":N}: moves N (1..CU_AMOUNT_MAX) from the caller's
 * balance into its stake; {"tx","height","stake"}. -CU_ECONFLICT
 * (api->code "insufficient_funds") when the balance is short. */
int cu_api_stake(struct cu_api *api, uint64_t amount, json_t **out, struct cu_err *e);
/* POST /v1/unstake {"amount":N}: the reverse; -CU_ECONFLICT (api->code
 * "busy") while the caller holds a lease. */
int cu_api_unstake(struct cu_api *api, uint64_t amount, json_t **out, struct cu_err *e);
/* GET /v1/reputation/{id} (unsigned; id is 64 lowercase hex, checked):
 * {"id","score_milli","records","counts":{...},"stake","recent":[...]}. */
int cu_api_reputation(struct cu_api *api, const char *id, json_t **out, struct cu_err *e);
/* GET /v1/ledger/head (unsigned): {"height","hash","producer","blocks",...}. */
int cu_api_ledger_head(struct cu_api *api, json_t **out, struct cu_err *e);
/* GET /v1/market (unsigned): fees, indicative price, trades, bids, asks. */
int cu_api_market(struct cu_api *api, json_t **out, struct cu_err *e);
/* GET /v1/ledger?from=FROM&limit=LIMIT (unsigned), the JSON Lines body
 * streamed to sink as it arrives (chunks need not end on a line). */
int cu_api_ledger_page(struct cu_api *api, uint64_t from, uint64_t limit, cu_http_sink sink,
                       void *ctx, struct cu_err *e);

/* "12.345" for a cu_milli figure (integers only: no floating point near
 * money); "-" for a negative one. out always terminated. */
void cu_api_fmt_cu(int64_t cu_milli, char *out, size_t n);

/* Line splitter for JSON Lines arriving in arbitrary chunks (pure): calls
 * fn(ctx, line, len) for each complete line, without its "\n". A line
 * longer than max_line fails with -CU_ETOOBIG. fn's nonzero return stops
 * the stream and is returned from every later call. */
typedef int (*cu_lines_fn)(void *ctx, const char *line, size_t n);
struct cu_lines {
    struct cu_buf part; /* the unfinished line */
    cu_lines_fn fn;
    void *ctx;
    uint64_t count;     /* lines delivered */
    int failed;
};
void cu_lines_init(struct cu_lines *l, size_t max_line, cu_lines_fn fn, void *ctx);
void cu_lines_release(struct cu_lines *l);
/* Feeds n bytes; lines_ctx is the struct cu_lines (so this is a
 * cu_http_sink). 0 or the first error. */
int cu_lines_feed(void *lines_ctx, const char *data, size_t n);
/* Delivers a last line without "\n", if any. 0 or the first error. */
int cu_lines_finish(struct cu_lines *l);

#endif
