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

#endif
