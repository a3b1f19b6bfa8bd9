/* http_server.c - the route table, the gate and responses over
 * libmicrohttpd (thread per connection).
 *
 * Life of one request (all calls for it run on its connection's thread):
 *   uri_log      MHD has parsed the request line: allocate struct conn and
 *                keep the raw target (what the client signed).
 *   on_request   first call: route lookup (404/405/static), gate (auth,
 *                Content-Length against the limit), stream_open. An error
 *                here is answered at once, before any body is read.
 *                middle calls: body chunks, buffered (bounded) or streamed.
 *                last call: body hash check, handler, response.
 *   respond      every answer: the app's durability barrier first (what
 *                the request committed is on disk before anyone hears of
 *                it), then the response is queued.
 *   on_completed always: stream_abort if a stream was opened and its
 *                handler never ran, then free struct conn.
 *
 * MHD only accepts a queued response on the first call or the last one, so
 * an error found while the body arrives (too large, stream_write failed) is
 * remembered, the rest of the body is discarded, and the answer goes out on
 * the last call. */
#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/hash.h"

#include "base/banned.h"

#define MAX_TARGET 8192          /* longest request target we keep */
#define MAX_JSON_RESPONSE (256u << 20)
#define CONN_TIMEOUT_S 300       /* idle keep-alive connections */
/* Per-connection memory pool. MHD reads a body into what the headers
 * leave of it, so its default (32 KiB) hands stream routes ~16 KiB chunks.
 * Not larger: MHD zeroes the whole pool between two requests on a
 * keep-alive connection, so 1 MiB cost +35 us per small request (24 -> 65
 * us for GET /v1/ping, measured) for no gain visible in bench/blob; 64 KiB
 * costs nothing measurable. Blob writers stage into 4 MiB buffers anyway. */
#define CONN_MEMORY_LIMIT (64u << 10)

struct cu_http_server {
    struct MHD_Daemon *d;
    struct cu_route *routes; /* copy of the table; patterns borrowed */
    size_t nroutes;
    void *app;
    cu_http_auth_fn auth;
    cu_http_barrier_fn barrier;
    char *static_dir;
    uint64_t default_body_limit;
    uint16_t port;
};

/* Per-request state; freed in on_completed. */
struct conn {
    struct cu_http_server *s;
    char *target;             /* raw request target */
    char *pathbuf;            /* copy of the path, split at '/' for captures */
    const struct cu_route *route;
    struct cu_http_req req;
    struct cu_http_resp resp;
    struct cu_buf body;
    uint64_t limit;
    uint64_t received;
    int64_t t0;
    char method[16];
    bool started;             /* the access handler has run once */
    bool failed;              /* resp holds an error; discard the body */
    bool stream_live;         /* stream_open succeeded, handler/abort pending */
};

/* ---- small helpers ---------------------------------------------------- */

static const struct {
    const char *name;
    enum cu_http_method m;
} methods[] = {
    {"GET", CU_HTTP_GET},       {"HEAD", CU_HTTP_HEAD},     {"POST", CU_HTTP_POST},
    {"PUT", CU_HTTP_PUT},       {"DELETE", CU_HTTP_DELETE},
};

const char *cu_http_method_name(enum cu_http_method m)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].m == m)
            return methods[i].name;
    return "?";
}

static unsigned method_parse(const char *s)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(methods[i].name, s) == 0)
            return methods[i].m;
    return 0;
}

const char *cu_http_query(const struct cu_http_req *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *cu_http_header(const struct cu_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int cu_http_verify_sig(const struct cu_http_req *req, int64_t now_s, struct cu_err *e)
{
    return cu_reqsign_check(cu_http_method_name(req->method), req->target ? req->target : req->path,
                            &req->sig, now_s, CU_REQSIGN_MAX_SKEW_S, e);
}

/* Frees what resp owns and forgets its body; keeps status and allow. */
static void resp_drop_body(struct cu_http_resp *resp)
{
    json_decref(resp->json);
    resp->json = NULL;
    free(resp->raw);
    resp->raw = NULL;
    resp->raw_len = 0;
    /* Descriptors 0..2 are never a handler's file, while a resp that a
     * caller zeroed by hand (say in a unit test) has fd 0: never close it. */
    if (resp->fd > 2)
        close(resp->fd);
    resp->fd = -1;
    resp->fd_size = 0;
    resp->fd_uncached = false;
    resp->content_type = NULL;
}

void cu_http_json(struct cu_http_resp *resp, int status, json_t *j)
{
    resp_drop_body(resp);
    resp->status = status;
    resp->json = j;
}

static void error_v(struct cu_http_resp *resp, int status, const char *code, const char *fmt,
                    va_list ap)
{
    char msg[CU_ERR_MSG_MAX];

    vsnprintf(msg, sizeof msg, fmt, ap);
    cu_http_json(resp, status,
                 json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void cu_http_error(struct cu_http_resp *resp, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    error_v(resp, status, code, fmt, ap);
    va_end(ap);
}

void cu_http_error_from(struct cu_http_resp *resp, int err, const char *msg)
{
    int status;

    switch (err < 0 ? -err : err) {
    case CU_ENOTFOUND: status = 404; break;
    case CU_EINVAL: status = 400; break;
    case CU_EPERM: status = 403; break;
    case CU_EAUTH: status = 401; break;
    case CU_ETOOBIG: status = 413; break;
    case CU_ECONFLICT:
    case CU_EEXISTS: status = 409; break;
    default: status = 500; break;
    }
    cu_http_error(resp, status, status == 500 ? "internal" : cu_errcode(err), "%s",
                  msg && msg[0] ? msg : cu_strerror(err));
}

/* ---- routes ----------------------------------------------------------- */

/* Next segment of a pattern or path starting at *p (after a '/'): its start
 * and length; advances *p. Returns false at the end. */
static bool next_seg(const char **p, const char **seg, size_t *len)
{
    const char *s = *p;

    if (*s != '/')
        return false;
    s++;
    *seg = s;
    while (*s && *s != '/')
        s++;
    *len = (size_t)(s - *seg);
    *p = s;
    return true;
}

static bool seg_is_capture(const char *seg, size_t len)
{
    return len >= 2 && seg[0] == '{' && seg[len - 1] == '}';
}

/* Checks a pattern: starts with '/', captures are whole segments, at most
 * CU_HTTP_MAX_PARAMS of them. */
static bool pattern_valid(const char *pat)
{
    const char *p = pat, *seg;
    size_t len, ncap = 0;

    if (!pat || pat[0] != '/')
        return false;
    while (next_seg(&p, &seg, &len)) {
        bool cap = seg_is_capture(seg, len);
        if (cap)
            ncap++;
        else if (memchr(seg, '{', len) || memchr(seg, '}', len))
            return false;
    }
    return ncap <= CU_HTTP_MAX_PARAMS;
}

/* Same shape: equal literals and captures in the same places. */
static bool pattern_equiv(const char *a, const char *b)
{
    const char *sa, *sb;
    size_t la, lb;

    for (;;) {
        bool ha = next_seg(&a, &sa, &la), hb = next_seg(&b, &sb, &lb);
        if (!ha || !hb)
            return ha == hb;
        bool ca = seg_is_capture(sa, la), cb = seg_is_capture(sb, lb);
        if (ca != cb || (!ca && (la != lb || memcmp(sa, sb, la) != 0)))
            return false;
    }
}

/* Matches path against pat; on success fills req captures (pointing into
 * buf, a scratch copy of path the caller provides) and returns the number
 * of captures, else -1. */
static int pattern_match(const char *pat, const char *path, char *buf, struct cu_http_req *req)
{
    const char *pp = pat, *sp = path, *pseg, *seg;
    size_t plen, len;
    int ncap = 0;

    for (;;) {
        bool hp = next_seg(&pp, &pseg, &plen), hs = next_seg(&sp, &seg, &len);
        if (!hp || !hs)
            return hp == hs && *sp == '\0' ? ncap : -1;
        if (seg_is_capture(pseg, plen)) {
            if (len == 0)
                return -1;
            if (req) {
                char *dst = buf + (seg - path);
                dst[len] = '\0';
                req->params[ncap] = dst;
            }
            ncap++;
        } else if (plen != len || memcmp(pseg, seg, len) != 0) {
            return -1;
        }
    }
}

/* Finds the route for method+path. Returns it (captures filled), or NULL
 * with *allow = the methods that the path accepts (0: 404). Among matching
 * routes the one with the fewest captures wins, so literal segments beat
 * captures ("/v1/jobs/active" over "/v1/jobs/{id}"). */
static const struct cu_route *route_find(const struct cu_http_server *s, unsigned method,
                                         const char *path, char *buf, struct cu_http_req *req,
                                         unsigned *allow)
{
    const struct cu_route *best = NULL;
    int best_caps = 0;

    *allow = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct cu_route *r = &s->routes[i];
        int n = pattern_match(r->pattern, path, buf, NULL);
        if (n < 0)
            continue;
        *allow |= r->methods;
        if ((r->methods & method) && (!best || n < best_caps)) {
            best = r;
            best_caps = n;
        }
    }
    if (best) {
        memcpy(buf, path, strlen(path) + 1);
        req->nparams = (size_t)pattern_match(best->pattern, path, buf, req);
    }
    return best;
}

static void allow_format(unsigned allow, char *out, size_t n)
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (!(allow & methods[i].m))
            continue;
        int w = snprintf(out + off, n - off, "%s%s", off ? ", " : "", methods[i].name);
        if (w < 0 || (size_t)w >= n - off)
            break;
        off += (size_t)w;
    }
}

/* ---- responses -------------------------------------------------------- */

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".ppm", "image/x-portable-pixmap"},
};

static const char *content_type_for(const char *path)
{
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < sizeof content_types / sizeof content_types[0]; i++)
        if (strcmp(dot, content_types[i].ext) == 0)
            return content_types[i].type;
    return "application/octet-stream";
}

/* ---- uncached file responses -------------------------------------------- */

/* A large file read once (a blob for a provider) is read with O_DIRECT in
 * UNCACHED_CHUNK pieces into one aligned buffer and copied from there into
 * MHD's send buffer. sendfile would first fill the page cache with it:
 * fresh memory that, on this VM, costs about 2 s of CPU per GiB on first
 * touch, and that evicts what the exchange really reuses. */
#define UNCACHED_CHUNK (4u << 20)
#define UNCACHED_ALIGN 4096u
#define UNCACHED_MIN (4u << 20)   /* smaller files keep sendfile */
#define UNCACHED_BLOCK (256u << 10) /* MHD's read size per callback */

struct uncached {
    int fd;
    unsigned char *buf;   /* UNCACHED_CHUNK bytes, UNCACHED_ALIGN aligned */
    uint64_t buf_pos;     /* file offset of buf[0] */
    size_t buf_len;       /* valid bytes in buf */
    uint64_t size;
};

/* MHD content reader: copies [pos, pos+max) from the file, refilling the
 * buffer with an aligned O_DIRECT read when pos leaves it. */
static ssize_t uncached_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct uncached *u = cls;
    size_t n;

    if (pos >= u->size)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (pos < u->buf_pos || pos >= u->buf_pos + u->buf_len) {
        uint64_t at = pos & ~(uint64_t)(UNCACHED_ALIGN - 1);
        ssize_t k;
        int fl;
        do
            k = pread(u->fd, u->buf, UNCACHED_CHUNK, (off_t)at);
        while (k < 0 && (errno == EINTR ||
                         /* O_DIRECT taken but refused for the I/O: read
                          * through the page cache instead. */
                         (errno == EINVAL && (fl = fcntl(u->fd, F_GETFL)) >= 0 &&
                          (fl & O_DIRECT) && fcntl(u->fd, F_SETFL, fl & ~O_DIRECT) == 0)));
        /* Short of pos: the file shrank under us (blobs never change). */
        if (k <= 0 || at + (uint64_t)k <= pos) {
            cu_error("http: reading a file response at %llu failed: %s",
                     (unsigned long long)pos, k < 0 ? strerror(errno) : "unexpected end");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        u->buf_pos = at;
        u->buf_len = (size_t)k;
    }
    n = (size_t)(u->buf_pos + u->buf_len - pos);
    if (n > max)
        n = max;
    memcpy(out, u->buf + (pos - u->buf_pos), n);
    return (ssize_t)n;
}

static void uncached_free(void *cls)
{
    struct uncached *u = cls;

    close(u->fd);
    free(u->buf);
    free(u);
}

/* A response for resp->fd read with O_DIRECT, taking the fd; NULL (fd
 * untouched) when the file is small, O_DIRECT is refused or memory is
 * short: the caller then sends it with sendfile. */
static struct MHD_Response *uncached_response(struct cu_http_resp *resp)
{
    struct MHD_Response *r;
    struct uncached *u;
    int fl;

    if (resp->fd_size < UNCACHED_MIN)
        return NULL;
    fl = fcntl(resp->fd, F_GETFL);
    if (fl < 0 || fcntl(resp->fd, F_SETFL, fl | O_DIRECT) != 0)
        return NULL;
    u = calloc(1, sizeof *u);
    if (!u || posix_memalign((void **)&u->buf, UNCACHED_ALIGN, UNCACHED_CHUNK) != 0)
        goto out_undo;
    u->fd = resp->fd;
    u->size = resp->fd_size;
    r = MHD_create_response_from_callback(resp->fd_size, UNCACHED_BLOCK, uncached_read, u,
                                          uncached_free);
    if (!r)
        goto out_undo;
    resp->fd = -1;
    return r;
out_undo:
    if (u)
        free(u->buf);
    free(u);
    (void)fcntl(resp->fd, F_SETFL, fl);
    return NULL;
}

/* Builds the MHD response from c->resp (taking what it owns) and queues
 * it; logs the request. */
static enum MHD_Result respond(struct conn *c, struct MHD_Connection *mc)
{
    struct cu_http_resp *resp = &c->resp;
    struct MHD_Response *r = NULL;
    const char *ctype = NULL;
    enum MHD_Result ret;

    if (resp->status == 0)
        resp->status = 200;
    /* The one place every answer passes: nothing leaves before the changes
     * it reports are durable (group commit, see store/db.h). */
    if (c->s->barrier && c->s->barrier(c->s->app) != 0 && resp->status < 400) {
        resp_drop_body(resp);
        cu_http_error(resp, 500, "internal", "the change could not be made durable");
    }
    if (resp->json) {
        struct cu_buf b = CU_BUF_INIT(MAX_JSON_RESPONSE);
        char *p;
        if (cu_json_dump_unsorted(resp->json, &b) == 0 && cu_buf_append(&b, "\n", 1) == 0 &&
            (p = cu_buf_detach(&b)) != NULL) {
            size_t n = strlen(p);
            r = MHD_create_response_from_buffer(n, p, MHD_RESPMEM_MUST_FREE);
            if (!r)
                free(p);
            ctype = "application/json";
        }
        cu_buf_release(&b);
    } else if (resp->raw) {
        r = MHD_create_response_from_buffer(resp->raw_len, resp->raw, MHD_RESPMEM_MUST_FREE);
        if (r)
            resp->raw = NULL;
        ctype = resp->content_type ? resp->content_type : "application/octet-stream";
    } else if (resp->fd >= 0) {
        if (resp->fd_uncached && c->req.method != CU_HTTP_HEAD)
            r = uncached_response(resp);
        if (!r)
            r = MHD_create_response_from_fd64(resp->fd_size, resp->fd);
        if (r)
            resp->fd = -1; /* MHD closes it */
        ctype = resp->content_type ? resp->content_type : "application/octet-stream";
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (resp->content_type)
            ctype = resp->content_type;
    }
    if (!r) {
        cu_error("http: cannot build the %d response for %s %s", resp->status, c->method,
                 c->req.path ? c->req.path : "?");
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (resp->allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
    ret = MHD_queue_response(mc, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    cu_debug("http: %s %s %d %lldms", c->method, c->req.path ? c->req.path : "?", resp->status,
             (long long)(cu_mono_ms() - c->t0));
    return ret;
}

/* GET of a file under static_dir. Fills resp (404 when absent). */
static void serve_static(const struct cu_http_server *s, const char *path,
                         struct cu_http_resp *resp)
{
    char full[CU_PATH_MAX];
    struct stat st;
    const char *rel = path[1] ? path + 1 : "index.html";
    int fd;

    /* No "..", no hidden files, no backslashes: only plain names. */
    if (strstr(path, "/.") || strchr(path, '\\') ||
        cu_path_join(full, sizeof full, s->static_dir, rel) != 0)
        goto out_not_found;
    fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        goto out_not_found;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        goto out_not_found;
    }
    resp_drop_body(resp);
    resp->status = 200;
    resp->fd = fd;
    resp->fd_size = (uint64_t)st.st_size;
    resp->content_type = content_type_for(full);
    return;
out_not_found:
    cu_http_error(resp, 404, "not_found", "no such path: %s", path);
}

/* ---- the gate ----------------------------------------------------------- */

static const char *const auth_reasons[] = {"unsigned", "malformed", "stale", "bad_signature",
                                           "replayed"};

/* Copies header name into dst (n bytes with the NUL): 0, or -1 if too long. */
static int sig_header(struct MHD_Connection *mc, const char *name, char *dst, size_t n)
{
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
    size_t len = v ? strlen(v) : 0;

    if (len >= n)
        return -1;
    memcpy(dst, v ? v : "", len);
    dst[len] = '\0';
    return 0;
}

/* Runs the auth callback for a signed route. Returns 0, or fills resp
 * (401 with the reason as code, or 500) and returns -1. */
static int gate_auth(struct conn *c, struct MHD_Connection *mc)
{
    struct cu_sig_headers *h = &c->req.sig;
    struct cu_err e = {0};
    char code[32];
    int rc;

    if (sig_header(mc, CU_HDR_KEY, h->key, sizeof h->key) ||
        sig_header(mc, CU_HDR_TS, h->ts, sizeof h->ts) ||
        sig_header(mc, CU_HDR_NONCE, h->nonce, sizeof h->nonce) ||
        sig_header(mc, CU_HDR_BODY_HASH, h->body_hash, sizeof h->body_hash) ||
        sig_header(mc, CU_HDR_SIG, h->sig, sizeof h->sig)) {
        cu_http_error(&c->resp, 401, "malformed", "malformed: a signature header is too long");
        return -1;
    }
    if (!c->s->auth) {
        cu_error("http: signed route %s has no auth callback; refusing", c->route->pattern);
        cu_http_error(&c->resp, 500, "internal", "server has no request authenticator");
        return -1;
    }
    rc = c->s->auth(c->s->app, &c->req, &e);
    if (rc == 0) {
        c->req.signer = h->key;
        return 0;
    }
    /* The reason is the message's prefix before ':'. */
    snprintf(code, sizeof code, "%s", "unauthorized");
    for (size_t i = 0; i < sizeof auth_reasons / sizeof auth_reasons[0]; i++) {
        size_t n = strlen(auth_reasons[i]);
        if (strncmp(e.msg, auth_reasons[i], n) == 0 && (e.msg[n] == ':' || e.msg[n] == '\0')) {
            snprintf(code, sizeof code, "%s", auth_reasons[i]);
            rc = -CU_EAUTH;
            break;
        }
    }
    if (rc == -CU_EAUTH)
        cu_http_error(&c->resp, 401, code, "%s", cu_err_msg(&e, rc));
    else
        cu_http_error_from(&c->resp, rc, cu_err_msg(&e, rc));
    return -1;
}

/* Refuses up front a Content-Length over the limit. 0 or -1 (resp set). */
static int gate_length(struct conn *c, struct MHD_Connection *mc)
{
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t n;

    if (!cl)
        return 0;
    if (cu_parse_i64(cl, 0, INT64_MAX, &n) != 0) {
        cu_http_error(&c->resp, 400, "invalid", "bad Content-Length '%.32s'", cl);
        return -1;
    }
    if ((uint64_t)n > c->limit) {
        if (c->limit == 0)
            cu_http_error(&c->resp, 413, "too_large", "%s %s takes no body", c->method,
                          c->route->pattern);
        else
            cu_http_error(&c->resp, 413, "too_large", "body of %lld bytes is over the limit of %llu",
                          (long long)n, (unsigned long long)c->limit);
        return -1;
    }
    return 0;
}

static void fail_500_unless_set(struct conn *c, const char *what)
{
    if (c->resp.status == 0 || c->resp.status < 400)
        cu_http_error(&c->resp, 500, "internal", "%s failed", what);
}

static void stream_abort(struct conn *c)
{
    if (c->stream_live) {
        c->stream_live = false;
        if (c->route->stream_abort)
            c->route->stream_abort(&c->req);
    }
}

/* The first call: route, gate, open. Returns MHD_YES to read the body, or
 * the result of answering now. */
static enum MHD_Result first_call(struct conn *c, struct MHD_Connection *mc, const char *url,
                                  const char *method)
{
    struct cu_http_server *s = c->s;
    unsigned m = method_parse(method), allow;
    size_t ulen = strlen(url);

    snprintf(c->method, sizeof c->method, "%s", method);
    c->req.method = (enum cu_http_method)m;
    c->req.app = s->app;
    c->req.conn = mc;
    c->pathbuf = malloc(ulen + 1);
    if (!c->pathbuf)
        return MHD_NO;
    memcpy(c->pathbuf, url, ulen + 1);
    c->req.path = url;
    if (!c->target) {
        c->target = strdup(url);
        if (!c->target)
            return MHD_NO;
    }
    c->req.target = c->target;

    c->route = route_find(s, m, url, c->pathbuf, &c->req, &allow);
    if (!c->route) {
        if (allow) {
            allow_format(allow, c->resp.allow, sizeof c->resp.allow);
            cu_http_error(&c->resp, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)",
                          method, url, c->resp.allow);
        } else if (s->static_dir && (m == CU_HTTP_GET || m == CU_HTTP_HEAD) &&
                   strncmp(url, "/v1/", 4) != 0) {
            serve_static(s, url, &c->resp);
        } else {
            cu_http_error(&c->resp, 404, "not_found", "no route for %s", url);
        }
        return respond(c, mc);
    }
    c->limit = c->route->body_limit ? c->route->body_limit : s->default_body_limit;
    if ((c->route->flags & CU_ROUTE_SIGNED) && gate_auth(c, mc) != 0)
        return respond(c, mc);
    if (gate_length(c, mc) != 0)
        return respond(c, mc);
    if (c->route->flags & CU_ROUTE_STREAM) {
        if (c->route->stream_open(&c->req, &c->resp) < 0) {
            fail_500_unless_set(c, "opening the upload");
            return respond(c, mc);
        }
        c->stream_live = true;
    } else {
        cu_buf_init(&c->body, c->limit);
    }
    return MHD_YES;
}

/* A chunk of the body. Errors are remembered; the rest is discarded. */
static void body_chunk(struct conn *c, const char *data, size_t n)
{
    int rc;

    if (c->failed)
        return;
    c->received += n;
    if (c->received > c->limit || c->received < n) {
        cu_http_error(&c->resp, 413, "too_large", "body is over the limit of %llu bytes",
                      (unsigned long long)c->limit);
        goto out_fail;
    }
    if (c->route->flags & CU_ROUTE_STREAM) {
        if (c->route->stream_write(&c->req, data, n, &c->resp) < 0) {
            fail_500_unless_set(c, "storing the upload");
            goto out_fail;
        }
        return;
    }
    rc = cu_buf_append(&c->body, data, n);
    if (rc == -CU_ETOOBIG) {
        cu_http_error(&c->resp, 413, "too_large", "body is over the limit of %llu bytes",
                      (unsigned long long)c->limit);
        goto out_fail;
    } else if (rc) {
        cu_http_error(&c->resp, 500, "internal", "out of memory reading the body");
        goto out_fail;
    }
    return;
out_fail:
    c->failed = true;
    cu_buf_release(&c->body);
    stream_abort(c);
}

/* The last call: checks, handler, answer. */
static enum MHD_Result last_call(struct conn *c, struct MHD_Connection *mc)
{
    const struct cu_route *r = c->route;
    int rc;

    if (c->failed)
        return respond(c, mc);
    if (!(r->flags & CU_ROUTE_STREAM)) {
        c->req.body = c->body.data ? c->body.data : "";
        c->req.body_len = c->body.len;
        if (r->flags & CU_ROUTE_SIGNED) {
            struct cu_hash h;
            char hex[CU_HASH_HEX_LEN + 1];
            cu_hash_mem(c->req.body, c->req.body_len, &h);
            cu_hash_to_hex(&h, hex);
            if (strcmp(hex, c->req.sig.body_hash) != 0) {
                cu_http_error(&c->resp, 401, "bad_signature",
                              "bad_signature: body does not match its signed hash");
                return respond(c, mc);
            }
        }
    }
    c->stream_live = false; /* the handler now owns the stream's outcome */
    rc = r->handler(&c->req, &c->resp);
    if (rc < 0 && c->resp.status == 0)
        cu_http_error(&c->resp, 500, "internal", "%s", cu_strerror(rc));
    return respond(c, mc);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct conn *c = *con_cls;

    (void)version;
    if (!c) {
        /* uri_log could not allocate; try once more here. */
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        c->s = cls;
        c->resp.fd = -1;
        *con_cls = c;
    }
    if (!c->started) {
        c->started = true;
        c->t0 = cu_mono_ms();
        return first_call(c, mc, url, method);
    }
    if (*upload_data_size) {
        body_chunk(c, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return last_call(c, mc);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    struct conn *c = calloc(1, sizeof *c);

    (void)mc;
    if (!c)
        return NULL;
    c->s = cls;
    c->resp.fd = -1;
    c->target = strndup(uri, MAX_TARGET);
    return c;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn *c = *con_cls;

    (void)cls;
    (void)mc;
    if (!c)
        return;
    if (c->stream_live && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        cu_debug("http: %s %s ended early (%d); aborting the upload", c->method,
                 c->req.path ? c->req.path : "?", (int)toe);
    stream_abort(c);
    resp_drop_body(&c->resp);
    cu_buf_release(&c->body);
    free(c->pathbuf);
    free(c->target);
    free(c);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* Mostly peers that hang up mid-request: routine for a public server,
     * so info, not warn. Start failures are reported through cu_err. */
    cu_info("http: %s", line);
}

/* ---- start / stop ------------------------------------------------------- */

/* Parses "host:port", ":port" or "[v6]:port" into a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, bool *v6,
                        struct cu_err *e)
{
    char host[256];
    const char *colon, *port_s;
    int64_t port;
    struct addrinfo hints, *ai = NULL;
    int rc;

    if (!listen || !*listen)
        return cu_err_set(e, -CU_EINVAL, "listen address is empty");
    if (listen[0] == '[') {
        const char *close_br = strchr(listen, ']');
        if (!close_br || close_br[1] != ':')
            return cu_err_set(e, -CU_EINVAL, "listen address '%s': expected [v6-address]:port",
                              listen);
        if ((size_t)(close_br - listen - 1) >= sizeof host)
            return cu_err_set(e, -CU_EINVAL, "listen address '%s': host too long", listen);
        memcpy(host, listen + 1, (size_t)(close_br - listen - 1));
        host[close_br - listen - 1] = '\0';
        port_s = close_br + 2;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return cu_err_set(e, -CU_EINVAL, "listen address '%s': expected host:port", listen);
        if ((size_t)(colon - listen) >= sizeof host)
            return cu_err_set(e, -CU_EINVAL, "listen address '%s': host too long", listen);
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port_s = colon + 1;
    }
    if (cu_parse_i64(port_s, 0, 65535, &port) != 0)
        return cu_err_set(e, -CU_EINVAL, "listen address '%s': bad port '%s'", listen, port_s);

    memset(ss, 0, sizeof *ss);
    if (!host[0]) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_port = htons((uint16_t)port);
        *v6 = false;
        return 0;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai)
        return cu_err_set(e, -CU_EINVAL, "listen address '%s': cannot resolve '%s': %s", listen,
                          host, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *v6 = ai->ai_family == AF_INET6;
    if (*v6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    freeaddrinfo(ai);
    return 0;
}

/* Validates the table: patterns well formed, handlers present, no two
 * routes of the same shape sharing a method. */
static int routes_check(const struct cu_route *routes, size_t n, struct cu_err *e)
{
    for (size_t i = 0; i < n; i++) {
        const struct cu_route *r = &routes[i];
        if (!pattern_valid(r->pattern))
            return cu_err_set(e, -CU_EINVAL, "route %zu: bad pattern '%s'", i,
                              r->pattern ? r->pattern : "(null)");
        if (!r->handler || !r->methods)
            return cu_err_set(e, -CU_EINVAL, "route '%s': no handler or no methods", r->pattern);
        if ((r->flags & CU_ROUTE_STREAM) && (!r->stream_open || !r->stream_write))
            return cu_err_set(e, -CU_EINVAL, "stream route '%s': stream_open/stream_write missing",
                              r->pattern);
        for (size_t j = 0; j < i; j++) {
            if ((routes[j].methods & r->methods) && pattern_equiv(routes[j].pattern, r->pattern))
                return cu_err_set(e, -CU_EEXISTS, "duplicate route: '%s' and '%s' share a method",
                                  routes[j].pattern, r->pattern);
        }
    }
    return 0;
}

int cu_http_server_start(struct cu_http_server **out, const struct cu_http_server_opts *opts,
                         struct cu_err *e)
{
    struct cu_http_server *s;
    struct sockaddr_storage ss;
    bool v6 = false;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;
    int rc;

    *out = NULL;
    rc = routes_check(opts->routes, opts->nroutes, e);
    if (rc)
        return rc;
    rc = parse_listen(opts->listen, &ss, &v6, e);
    if (rc)
        return rc;
    if (v6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        flags |= IN6_IS_ADDR_UNSPECIFIED(a) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    }
    if (cu_crypto_init() != 0)
        return cu_err_set(e, -CU_ECRYPTO, "libsodium failed to initialise");

    s = calloc(1, sizeof *s);
    if (!s)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    if (opts->nroutes) {
        s->routes = calloc(opts->nroutes, sizeof *s->routes);
        if (!s->routes) {
            rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
            goto out_free_server;
        }
        memcpy(s->routes, opts->routes, opts->nroutes * sizeof *s->routes);
    }
    s->nroutes = opts->nroutes;
    s->app = opts->app;
    s->auth = opts->auth;
    s->barrier = opts->barrier;
    s->default_body_limit = opts->default_body_limit;
    if (opts->static_dir) {
        s->static_dir = strdup(opts->static_dir);
        if (!s->static_dir) {
            rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
            goto out_free_server;
        }
    }

    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, so it sees everything */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(opts->max_conns ? opts->max_conns : 1024),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
        MHD_OPTION_END);
    if (!s->d) {
        char ebuf[128];
        rc = cu_err_set(e, -CU_EIO, "cannot listen on %s: %s", opts->listen,
                        errno ? strerror_r(errno, ebuf, sizeof ebuf)
                              : "libmicrohttpd refused to start");
        goto out_free_server;
    }
    info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return 0;

out_free_server:
    free(s->static_dir);
    free(s->routes);
    free(s);
    return rc;
}

uint16_t cu_http_server_port(const struct cu_http_server *s)
{
    return s->port;
}

void cu_http_server_stop(struct cu_http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s->static_dir);
    free(s->routes);
    free(s);
}
