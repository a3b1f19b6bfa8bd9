/* http_server.h - a small HTTP/JSON server on libmicrohttpd.
 *
 * Routes are one table (nng/Redis style): {method, pattern, handler, flags,
 * body limit}. Patterns are literal segments and "{name}" captures, e.g.
 * "/v1/jobs/{id}/cancel". cu_http_server_start refuses duplicate routes. A
 * path that matches no pattern gets 404; one that matches with another
 * method gets 405 with an Allow header. One gate enforces the flags:
 * CU_ROUTE_SIGNED runs the app's auth callback before the handler and
 * answers 401 on failure; bodies over the limit get 413. Before any answer
 * leaves, the app's barrier callback (if set) makes what the request
 * changed durable; a 2xx whose barrier fails becomes a 500.
 *
 * Threading: one thread per connection (MHD_USE_THREAD_PER_CONNECTION), so
 * a handler may block, e.g. a long-poll waits on a condition variable until
 * work arrives or its deadline passes. Handlers run concurrently; the app
 * locks its own state.
 *
 * Errors are JSON: {"error":{"code":"...","message":"..."}}. */
#ifndef CU_NET_HTTP_SERVER_H
#define CU_NET_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/reqsign.h"

enum cu_http_method {
    CU_HTTP_GET = 1,
    CU_HTTP_HEAD = 2,
    CU_HTTP_POST = 4,
    CU_HTTP_PUT = 8,
    CU_HTTP_DELETE = 16,
};

enum cu_route_flags {
    CU_ROUTE_SIGNED = 1 << 0, /* request must carry a valid signature */
    CU_ROUTE_STREAM = 1 << 1, /* body is fed to stream_* callbacks, not buffered */
    CU_ROUTE_WRITES = 1 << 2, /* changes state (documentation; logged) */
};

#define CU_HTTP_MAX_PARAMS 4

struct cu_http_req {
    enum cu_http_method method;
    const char *path;                        /* without query string */
    const char *params[CU_HTTP_MAX_PARAMS];  /* "{name}" captures, in order */
    size_t nparams;
    const char *body;                        /* buffered routes: NUL-terminated */
    size_t body_len;
    const char *signer;                      /* verified key id, or NULL */
    struct cu_sig_headers sig;               /* raw signature headers ("" if absent) */
    void *app;                               /* opts.app */
    void *stream_ctx;                        /* stream routes: set by stream_open */
    void *conn;                              /* struct MHD_Connection * */
    const char *target;                      /* raw request target as sent: path
                                              * with query, not unescaped; what
                                              * the client signed */
};

/* "GET", "POST", ... ("?" for anything else). */
const char *cu_http_method_name(enum cu_http_method m);

/* For auth callbacks: cu_reqsign_check of req->sig against the request's
 * method and raw target (req->target) at now_s with the standard skew.
 * Returns 0 or -CU_EAUTH with e->msg prefixed by the stable reason. Nonce
 * replay is left to the caller. */
int cu_http_verify_sig(const struct cu_http_req *req, int64_t now_s, struct cu_err *e);

/* Query parameter value or NULL. */
const char *cu_http_query(const struct cu_http_req *req, const char *key);
/* Request header value or NULL. */
const char *cu_http_header(const struct cu_http_req *req, const char *name);

struct cu_http_resp {
    int status;             /* default 200 */
    json_t *json;           /* owned: sent as application/json */
    char *raw;              /* owned (free()): sent as content_type */
    size_t raw_len;
    int fd;                 /* >= 0: file sent from its start, fd_size bytes; owned */
    uint64_t fd_size;
    bool fd_uncached;       /* fd is large and read once: read it with O_DIRECT
                             * through a reused buffer instead of sendfile from
                             * the page cache (falls back to sendfile where
                             * O_DIRECT is refused) */
    const char *content_type;
    char allow[64];         /* internal */
};

/* Helpers for handlers. cu_http_json takes ownership of j. */
void cu_http_json(struct cu_http_resp *resp, int status, json_t *j);
void cu_http_error(struct cu_http_resp *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a negative CU_E* and message to an error response with a fitting
 * status (NOTFOUND 404, INVAL 400, PERM 403, AUTH 401, TOOBIG 413,
 * CONFLICT/EXISTS 409, else 500). */
void cu_http_error_from(struct cu_http_resp *resp, int err, const char *msg);

/* Handler: fill resp; the return value is ignored except that a negative
 * value with no status set gives a 500. */
typedef int (*cu_http_handler)(struct cu_http_req *req, struct cu_http_resp *resp);

struct cu_route {
    unsigned methods;      /* enum cu_http_method bits */
    const char *pattern;
    cu_http_handler handler;
    unsigned flags;
    uint64_t body_limit;   /* bytes; 0 means no body allowed */
    /* CU_ROUTE_STREAM only: called after the gate (signer set). open returns
     * 0 or fills resp with an error and returns negative; write gets each
     * chunk (negative aborts with resp as set, or 500); the handler runs
     * after the last chunk; abort runs if the client went away or an error
     * occurred after open succeeded and before the handler. */
    int (*stream_open)(struct cu_http_req *req, struct cu_http_resp *resp);
    int (*stream_write)(struct cu_http_req *req, const char *data, size_t n,
                        struct cu_http_resp *resp);
    void (*stream_abort)(struct cu_http_req *req);
};

/* Auth callback for CU_ROUTE_SIGNED routes: verify req->sig (signature,
 * freshness, nonce replay). Return 0, or negative with e->msg starting with a
 * stable reason ("unsigned", "stale", "bad_signature", "replayed",
 * "malformed") that becomes the error code of the 401. The body hash of
 * buffered routes is checked by the server after this returns 0. */
typedef int (*cu_http_auth_fn)(void *app, const struct cu_http_req *req, struct cu_err *e);

/* Durability barrier: called on the request's thread before any response
 * is queued (every route, every status), without locks of the server's.
 * It returns once what the request changed is durable: 0, or negative when
 * that cannot be promised, which turns a 2xx/3xx answer into a 500 (the
 * client must not believe a change that may be lost). May block. */
typedef int (*cu_http_barrier_fn)(void *app);

struct cu_http_server_opts {
    const char *listen;            /* "127.0.0.1:8080", ":0" or "[::1]:0" */
    const struct cu_route *routes;
    size_t nroutes;
    void *app;
    cu_http_auth_fn auth;
    cu_http_barrier_fn barrier;    /* may be NULL */
    const char *static_dir;        /* GET of unmatched paths outside /v1/ served from here; may be NULL */
    unsigned max_conns;            /* 0: 1024 */
    uint64_t default_body_limit;   /* unused if 0; else the limit of routes whose
                                    * body_limit is 0 */
};

struct cu_http_server;

int cu_http_server_start(struct cu_http_server **out, const struct cu_http_server_opts *opts,
                         struct cu_err *e);
/* The port actually bound (useful with ":0"). */
uint16_t cu_http_server_port(const struct cu_http_server *s);
/* Stops accepting, waits for handlers to return, frees. Handlers blocked
 * in long-polls must be woken by the app first. */
void cu_http_server_stop(struct cu_http_server *s);

#endif
