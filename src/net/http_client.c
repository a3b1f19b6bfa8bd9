/* http_client.c - signed JSON-over-HTTP requests on one libcurl easy
 * handle per client.
 *
 * Each request resets the handle (curl_easy_reset keeps live connections,
 * so keep-alive survives) and sets every option afresh, so one request's
 * options (NOBODY, UPLOAD, a read callback) never leak into the next. */
#include "net/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "crypto/reqsign.h"

#include "base/banned.h"

#define DEFAULT_TIMEOUT_MS 30000L
#define MAX_CONNECT_TIMEOUT_MS 10000L
#define MAX_BASE_URL 1024
/* Streamed transfers move blobs of up to a GiB: curl's defaults (16 KiB
 * receive buffer, 64 KiB upload buffer) cost one write callback, one hash
 * update and one write(2) per 16 KiB. Buffered JSON requests keep the
 * defaults (the buffer is allocated per handle). */
#define STREAM_RECV_BUFFER (1L << 20)
#define STREAM_SEND_BUFFER (2L << 20) /* curl's maximum upload buffer */

struct cu_http_client {
    CURL *curl;
    char base[MAX_BASE_URL]; /* no trailing slash */
    const struct cu_identity *id;
    char errbuf[CURL_ERROR_SIZE];
};

/* One transfer's state, shared with the curl callbacks. */
struct xfer {
    CURL *curl;
    struct cu_http_result *r;
    cu_http_sink sink;   /* download: used for 2xx responses */
    void *sink_ctx;
    int sink_state;      /* 0 undecided, 1 to the sink, 2 buffered */
    int sink_rc;         /* negative when the sink aborted */
    bool too_big;
    int upload_fd;       /* upload_file: the file, else -1 */
    bool upload_failed;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct cu_http_client *cu_http_client_new(const char *base_url, const struct cu_identity *id)
{
    struct cu_http_client *c;
    const char *host;
    size_t n;

    if (!base_url)
        return NULL;
    if (strncmp(base_url, "http://", 7) == 0)
        host = base_url + 7;
    else if (strncmp(base_url, "https://", 8) == 0)
        host = base_url + 8;
    else
        return NULL;
    if (!*host || *host == '/' || *host == ':')
        return NULL;
    n = strlen(base_url);
    while (n && base_url[n - 1] == '/')
        n--;
    if (n >= MAX_BASE_URL)
        return NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK || cu_crypto_init() != 0)
        return NULL;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        return NULL;
    }
    memcpy(c->base, base_url, n);
    c->base[n] = '\0';
    c->id = id;
    return c;
}

void cu_http_client_free(struct cu_http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

void cu_http_result_init(struct cu_http_result *r)
{
    memset(r, 0, sizeof *r);
    cu_buf_init(&r->body, CU_HTTP_MAX_RESPONSE);
}

void cu_http_result_release(struct cu_http_result *r)
{
    cu_buf_release(&r->body);
    json_decref(r->json);
    r->json = NULL;
}

static void result_reset(struct cu_http_result *r)
{
    cu_http_result_release(r);
    cu_http_result_init(r);
}

const char *cu_http_result_describe(const struct cu_http_result *r, char *out, size_t n)
{
    if (r->status == 0)
        snprintf(out, n, "%s", r->err_msg[0] ? r->err_msg : "no response");
    else if (r->err_code[0])
        snprintf(out, n, "HTTP %ld %s: %s", r->status, r->err_code, r->err_msg);
    else
        snprintf(out, n, "HTTP %ld", r->status);
    return out;
}

/* ---- curl callbacks ----------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct xfer *x = ctx;
    size_t n = size * nmemb;

    if (x->sink && x->sink_state == 0) {
        long status = 0;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
        x->sink_state = status >= 200 && status < 300 ? 1 : 2;
    }
    if (x->sink_state == 1) {
        int rc = x->sink(x->sink_ctx, data, n);
        if (rc < 0) {
            x->sink_rc = rc;
            return 0; /* makes curl stop with CURLE_WRITE_ERROR */
        }
        return n;
    }
    if (cu_buf_append(&x->r->body, data, n) != 0) {
        x->too_big = true;
        return 0;
    }
    return n;
}

static size_t on_read(char *dst, size_t size, size_t nitems, void *ctx)
{
    struct xfer *x = ctx;
    ssize_t got;

    for (;;) {
        got = read(x->upload_fd, dst, size * nitems);
        if (got >= 0)
            return (size_t)got;
        if (errno != EINTR)
            break;
    }
    x->upload_failed = true;
    return CURL_READFUNC_ABORT;
}

/* curl rewinds the upload when it must resend it (a kept-alive connection
 * the server had closed). */
static int on_seek(void *ctx, curl_off_t off, int origin)
{
    struct xfer *x = ctx;

    if (lseek(x->upload_fd, (off_t)off, origin) < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    return CURL_SEEKFUNC_OK;
}

/* ---- the request -------------------------------------------------------- */

struct req_body {
    const void *mem;          /* buffered body, or NULL */
    size_t n;
    int fd;                   /* streamed file, or -1 */
    uint64_t fd_size;
    const struct cu_hash *hash; /* signed hash (computed for mem when NULL) */
    const char *content_type;
};

static void err_set(struct cu_http_result *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(struct cu_http_result *r, const char *code, const char *fmt, ...)
{
    va_list ap;

    snprintf(r->err_code, sizeof r->err_code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(r->err_msg, sizeof r->err_msg, fmt, ap);
    va_end(ap);
}

/* Adds "Name: value" to the list; false when out of memory. */
static bool add_header(struct curl_slist **h, const char *name, const char *value)
{
    char line[512];
    struct curl_slist *n;

    if (cu_snprintf(line, sizeof line, "%s: %s", name, value) != 0)
        return false;
    n = curl_slist_append(*h, line);
    if (!n)
        return false;
    *h = n;
    return true;
}

/* After a response: parse JSON and pick up {"error":{...}}. */
static void parse_response(struct xfer *x)
{
    struct cu_http_result *r = x->r;
    char *ctype = NULL;
    json_t *err;

    curl_easy_getinfo(x->curl, CURLINFO_CONTENT_TYPE, &ctype);
    if (r->body.len && ctype && strncasecmp(ctype, "application/json", 16) == 0)
        r->json = cu_json_parse(r->body.data, r->body.len, NULL);
    if (r->status < 400)
        return;
    err = r->json ? json_object_get(r->json, "error") : NULL;
    if (json_is_object(err)) {
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        snprintf(r->err_code, sizeof r->err_code, "%s", code ? code : "error");
        snprintf(r->err_msg, sizeof r->err_msg, "%s", msg ? msg : "");
    } else {
        /* Not our error form (a proxy, a plain-text answer): keep its start. */
        snprintf(r->err_code, sizeof r->err_code, "http_%ld", r->status);
        snprintf(r->err_msg, sizeof r->err_msg, "%.200s", r->body.len ? r->body.data : "");
    }
}

/* Maps a curl failure to -CU_ENET (or the sink's code, or -CU_ETOOBIG) with
 * r->err_msg saying why. */
static int transport_error(struct cu_http_client *c, struct xfer *x, CURLcode cc,
                           const char *method, const char *url, long timeout_ms)
{
    struct cu_http_result *r = x->r;
    long oserr = 0;
    char ebuf[128];
    const char *why;

    if (x->sink_rc < 0) {
        err_set(r, "aborted", "download of %s stopped: %s", url, cu_strerror(x->sink_rc));
        return x->sink_rc;
    }
    if (x->too_big) {
        err_set(r, "too_large", "response from %s is over %u bytes", url, CU_HTTP_MAX_RESPONSE);
        return -CU_ETOOBIG;
    }
    if (x->upload_failed) {
        err_set(r, "io_error", "reading the upload for %s failed", url);
        return -CU_EIO;
    }
    r->status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
    why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
    if (oserr)
        why = strerror_r((int)oserr, ebuf, sizeof ebuf);
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        err_set(r, "network_error", "cannot connect to %s: %s", c->base, why);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        err_set(r, "timeout", "%s %s: no answer within %ld ms", method, url, timeout_ms);
        break;
    default:
        err_set(r, "network_error", "%s %s failed: %s", method, url, why);
        break;
    }
    return -CU_ENET;
}

/* The one request path behind every public call. sink non-NULL: a
 * download. */
static int perform(struct cu_http_client *c, const char *method, const char *path,
                   const struct req_body *b, cu_http_sink sink, void *sink_ctx, long timeout_ms,
                   struct cu_http_result *r)
{
    struct xfer x = {.curl = c->curl, .r = r, .sink = sink, .sink_ctx = sink_ctx,
                     .upload_fd = b->fd};
    struct curl_slist *hdrs = NULL;
    char url[MAX_BASE_URL + 4096];
    struct cu_hash h;
    CURLcode cc;
    bool has_body = b->mem || b->fd >= 0;
    bool is_head = strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;
    int rc = 0;

    result_reset(r);
    if (!path || path[0] != '/') {
        err_set(r, "invalid", "request path '%s' must start with '/'", path ? path : "");
        return -CU_EINVAL;
    }
    if (cu_snprintf(url, sizeof url, "%s%s", c->base, path) != 0) {
        err_set(r, "invalid", "request path is too long");
        return -CU_EINVAL;
    }
    if (timeout_ms <= 0)
        timeout_ms = DEFAULT_TIMEOUT_MS;

    if (c->id) {
        struct cu_sig_headers sh;
        const struct cu_hash *bh = b->hash;
        if (!bh) {
            cu_hash_mem(b->mem ? b->mem : "", b->mem ? b->n : 0, &h);
            bh = &h;
        }
        cu_reqsign_make(c->id, method, path, bh, (int64_t)(cu_now_ms() / 1000), &sh);
        if (!add_header(&hdrs, CU_HDR_KEY, sh.key) || !add_header(&hdrs, CU_HDR_TS, sh.ts) ||
            !add_header(&hdrs, CU_HDR_NONCE, sh.nonce) ||
            !add_header(&hdrs, CU_HDR_BODY_HASH, sh.body_hash) ||
            !add_header(&hdrs, CU_HDR_SIG, sh.sig))
            goto out_nomem;
    }
    if (has_body && !add_header(&hdrs, "Content-Type", b->content_type))
        goto out_nomem;

    curl_easy_reset(c->curl);
    c->errbuf[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < MAX_CONNECT_TIMEOUT_MS ? timeout_ms : MAX_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);

    if (sink)
        curl_easy_setopt(c->curl, CURLOPT_BUFFERSIZE, STREAM_RECV_BUFFER);
    if (is_head) {
        curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
    } else if (b->fd >= 0) {
        if (b->fd_size > STREAM_SEND_BUFFER / 4) /* small files: the default */
            curl_easy_setopt(c->curl, CURLOPT_UPLOAD_BUFFERSIZE, STREAM_SEND_BUFFER);
        curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c->curl, CURLOPT_READDATA, &x);
        curl_easy_setopt(c->curl, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, &x);
        if (is_post) {
            curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->fd_size);
        } else {
            curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)b->fd_size);
            if (strcmp(method, "PUT") != 0)
                curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
        }
    } else if (b->mem || is_post || strcmp(method, "PUT") == 0) {
        /* POSTFIELDS sends exactly n bytes (none for an empty POST/PUT). */
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, b->mem ? (const char *)b->mem : "");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(b->mem ? b->n : 0));
        if (!is_post)
            curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    }

    cc = curl_easy_perform(c->curl);
    if (cc != CURLE_OK) {
        rc = transport_error(c, &x, cc, method, url, timeout_ms);
        if (rc == -CU_ETOOBIG || x.sink_rc < 0)
            curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
        goto out_free_headers;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
    parse_response(&x);

out_free_headers:
    /* The handle keeps pointers to hdrs and x: drop them before they die. */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c->curl, CURLOPT_READDATA, NULL);
    curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, NULL);
    curl_slist_free_all(hdrs);
    return rc;

out_nomem:
    curl_slist_free_all(hdrs);
    err_set(r, "out_of_memory", "out of memory building the request");
    return -CU_ENOMEM;
}

int cu_http_request(struct cu_http_client *c, const char *method, const char *path,
                    const void *body, size_t n, long timeout_ms, struct cu_http_result *r)
{
    struct req_body b = {.mem = body, .n = n, .fd = -1, .content_type = "application/json"};

    return perform(c, method, path, &b, NULL, NULL, timeout_ms, r);
}

int cu_http_request_json(struct cu_http_client *c, const char *method, const char *path,
                         const json_t *j, long timeout_ms, struct cu_http_result *r)
{
    struct cu_buf b = CU_BUF_INIT(CU_HTTP_MAX_RESPONSE);
    int rc;

    if (cu_json_dump(j, &b) != 0) {
        result_reset(r);
        cu_buf_release(&b);
        err_set(r, "too_large", "request body for %s %s is too large", method, path);
        return -CU_ETOOBIG;
    }
    rc = cu_http_request(c, method, path, b.data ? b.data : "", b.len, timeout_ms, r);
    cu_buf_release(&b);
    return rc;
}

int cu_http_upload_file(struct cu_http_client *c, const char *method, const char *path,
                        const char *file, const struct cu_hash *body_hash, long timeout_ms,
                        struct cu_http_result *r)
{
    struct req_body b = {.fd = -1, .hash = body_hash, .content_type = "application/octet-stream"};
    struct stat st;
    int rc;

    b.fd = open(file, O_RDONLY | O_CLOEXEC);
    if (b.fd < 0) {
        int err = errno;
        char ebuf[128];
        result_reset(r);
        err_set(r, err == ENOENT ? "not_found" : "io_error", "cannot open '%s' for upload: %s",
                file, strerror_r(err, ebuf, sizeof ebuf));
        return err == ENOENT ? -CU_ENOTFOUND : -CU_EIO;
    }
    if (fstat(b.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        result_reset(r);
        err_set(r, "io_error", "'%s' is not a regular file", file);
        rc = -CU_EIO;
        goto out_close_file;
    }
    b.fd_size = (uint64_t)st.st_size;
    rc = perform(c, method, path, &b, NULL, NULL, timeout_ms, r);
out_close_file:
    close(b.fd);
    return rc;
}

int cu_http_download(struct cu_http_client *c, const char *path, cu_http_sink sink, void *ctx,
                     long timeout_ms, struct cu_http_result *r)
{
    struct req_body b = {.fd = -1};

    return perform(c, "GET", path, &b, sink, ctx, timeout_ms, r);
}
