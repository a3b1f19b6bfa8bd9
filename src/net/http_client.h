/* http_client.h - a JSON-over-HTTP client on libcurl, signing every request
 * with an identity (see crypto/reqsign.h). One client holds one curl easy
 * handle (keep-alive); it is not shared between threads. */
#ifndef CU_NET_HTTP_CLIENT_H
#define CU_NET_HTTP_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/hash.h"
#include "crypto/ident.h"

#define CU_HTTP_MAX_RESPONSE (64u << 20) /* largest buffered response body */

struct cu_http_client;

/* base_url like "http://127.0.0.1:8080" (no trailing slash needed). id may
 * be NULL for unsigned requests; it is borrowed and must outlive the
 * client. NULL when out of memory or the URL is not http(s)://host[:port]. */
struct cu_http_client *cu_http_client_new(const char *base_url, const struct cu_identity *id);
void cu_http_client_free(struct cu_http_client *c);

struct cu_http_result {
    long status;           /* HTTP status; 0 if no response */
    struct cu_buf body;    /* raw response body */
    json_t *json;          /* parsed when the response is JSON, else NULL */
    char err_code[64];     /* from {"error":{"code"}} or a transport reason */
    char err_msg[512];     /* from {"error":{"message"}} or curl's message */
};

/* Every request function takes an initialised r and resets it first, so
 * one result may be reused across requests; release it once at the end. */
void cu_http_result_init(struct cu_http_result *r);
void cu_http_result_release(struct cu_http_result *r);

/* One request. path includes any query ("/v1/jobs?x=1"). body may be NULL.
 * timeout_ms 0 means 30 s. Returns 0 when a response arrived (any status:
 * check r->status), or -CU_ENET when none did (connection refused, reset,
 * timeout), with r->err_msg saying why. */
int cu_http_request(struct cu_http_client *c, const char *method, const char *path,
                    const void *body, size_t n, long timeout_ms, struct cu_http_result *r);
/* Convenience: body is the canonical dump of j (not stolen). */
int cu_http_request_json(struct cu_http_client *c, const char *method, const char *path,
                         const json_t *j, long timeout_ms, struct cu_http_result *r);

/* Uploads a file as the body (streamed, not buffered); body_hash is the
 * file's hash (signed in place of hashing the body again). */
int cu_http_upload_file(struct cu_http_client *c, const char *method, const char *path,
                        const char *file, const struct cu_hash *body_hash, long timeout_ms,
                        struct cu_http_result *r);

/* GET streamed to a sink: sink(ctx, data, n) returns 0 or negative to
 * abort. On a non-2xx status the body is buffered into r instead and the
 * sink is not called. */
typedef int (*cu_http_sink)(void *ctx, const char *data, size_t n);
int cu_http_download(struct cu_http_client *c, const char *path, cu_http_sink sink, void *ctx,
                     long timeout_ms, struct cu_http_result *r);

/* Formats "HTTP 404 not_found: job 'x' not found" or the transport error. */
const char *cu_http_result_describe(const struct cu_http_result *r, char *out, size_t n);

#endif
