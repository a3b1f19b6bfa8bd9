/* net_test.c - the HTTP server and client against each other on loopback:
 * routing (captures, 404, 405), the gate (unsigned, tampered body,
 * replay, 413), streamed upload and download, concurrency, transport
 * errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
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
#include "crypto/ident.h"
#include "crypto/reqsign.h"
#include "net/http_client.h"
#include "net/http_server.h"

#include "base/banned.h"

/* ---- the test app --------------------------------------------------------- */

#define MAX_NONCES 256
/* Over 4 MiB and not a multiple of the page: h_blob asks for an uncached
 * (O_DIRECT, bounce buffer) response, which reads it in three pieces, the
 * last one short. */
#define BLOB_SIZE ((9u << 20) + 1237u)

struct app {
    pthread_mutex_t mu;
    char nonces[MAX_NONCES][CU_NONCE_HEX_LEN + 1];
    size_t nnonces;
    int aborts;       /* stream_abort calls */
    int stream_done;  /* stream handler calls */
};

struct upload {
    struct cu_hasher h;
    uint64_t n;
};

static struct app the_app = {.mu = PTHREAD_MUTEX_INITIALIZER};
static struct cu_http_server *srv;
static struct cu_identity ident;
static char base_url[64];
static char blob_path[CU_PATH_MAX];
static char blob_hex[CU_HASH_HEX_LEN + 1];

static int auth(void *appp, const struct cu_http_req *req, struct cu_err *e)
{
    struct app *a = appp;
    int rc = cu_http_verify_sig(req, cu_now_ms() / 1000, e);

    if (rc)
        return rc;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->nnonces; i++) {
        if (strcmp(a->nonces[i], req->sig.nonce) == 0) {
            pthread_mutex_unlock(&a->mu);
            return cu_err_set(e, -CU_EAUTH, "replayed: nonce %s was seen before", req->sig.nonce);
        }
    }
    if (a->nnonces < MAX_NONCES)
        memcpy(a->nonces[a->nnonces++], req->sig.nonce, sizeof a->nonces[0]);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static int h_ping(struct cu_http_req *req, struct cu_http_resp *resp)
{
    (void)req;
    cu_http_json(resp, 200, json_pack("{s:b}", "pong", 1));
    return 0;
}

static int h_echo(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct cu_err e = {0};
    json_t *j = cu_json_parse(req->body, req->body_len, &e);

    if (!j) {
        cu_http_error(resp, 400, "invalid", "%s", e.msg);
        return 0;
    }
    cu_http_json(resp, 200, json_pack("{s:o,s:s}", "got", j, "signer", req->signer));
    return 0;
}

static int h_item(struct cu_http_req *req, struct cu_http_resp *resp)
{
    const char *q = cu_http_query(req, "q");

    cu_http_json(resp, 200,
                 json_pack("{s:s,s:s,s:i,s:s?}", "id", req->params[0], "name", req->params[1],
                           "n", (int)req->nparams, "q", q));
    return 0;
}

static int h_item_literal(struct cu_http_req *req, struct cu_http_resp *resp)
{
    cu_http_json(resp, 200, json_pack("{s:b,s:i}", "literal", 1, "n", (int)req->nparams));
    return 0;
}

static int h_nothing(struct cu_http_req *req, struct cu_http_resp *resp)
{
    (void)req;
    resp->status = 204;
    return 0;
}

static int h_fail(struct cu_http_req *req, struct cu_http_resp *resp)
{
    (void)req;
    (void)resp;
    return -CU_EIO;
}

static int h_slow(struct cu_http_req *req, struct cu_http_resp *resp)
{
    (void)req;
    cu_sleep_ms(300);
    cu_http_json(resp, 200, json_pack("{s:b}", "slow", 1));
    return 0;
}

static int up_open(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct upload *u = calloc(1, sizeof *u);

    if (!u) {
        cu_http_error(resp, 500, "internal", "out of memory");
        return -CU_ENOMEM;
    }
    cu_hasher_init(&u->h);
    req->stream_ctx = u;
    return 0;
}

static int up_write(struct cu_http_req *req, const char *data, size_t n, struct cu_http_resp *resp)
{
    struct upload *u = req->stream_ctx;

    (void)resp;
    cu_hasher_update(&u->h, data, n);
    u->n += n;
    return 0;
}

static void up_abort(struct cu_http_req *req)
{
    struct app *a = req->app;

    free(req->stream_ctx);
    req->stream_ctx = NULL;
    pthread_mutex_lock(&a->mu);
    a->aborts++;
    pthread_mutex_unlock(&a->mu);
}

static int h_upload(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct upload *u = req->stream_ctx;
    struct app *a = req->app;
    struct cu_hash h;
    char hex[CU_HASH_HEX_LEN + 1];

    cu_hasher_final(&u->h, &h);
    cu_hash_to_hex(&h, hex);
    if (strcmp(hex, req->params[0]) != 0 || strcmp(hex, req->sig.body_hash) != 0)
        cu_http_error(resp, 400, "hash_mismatch", "content hashes to %s", hex);
    else
        cu_http_json(resp, 201, json_pack("{s:s,s:I}", "hash", hex, "size", (json_int_t)u->n));
    free(u);
    req->stream_ctx = NULL;
    pthread_mutex_lock(&a->mu);
    a->stream_done++;
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static int h_blob(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct stat st;
    int fd;

    if (strcmp(req->params[0], blob_hex) != 0) {
        cu_http_error(resp, 404, "not_found", "blob '%s' not found", req->params[0]);
        return 0;
    }
    fd = open(blob_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0)
        return -CU_EIO;
    resp->fd = fd;
    resp->fd_size = (uint64_t)st.st_size;
    resp->fd_uncached = true;
    resp->content_type = "application/octet-stream";
    return 0;
}

/* Designated, so the table builds without -Wno-missing-field-initializers. */
#define ROUTE(m, pat, h, f, lim) \
    {.methods = (m), .pattern = (pat), .handler = (h), .flags = (f), .body_limit = (lim)}

static const struct cu_route routes[] = {
    ROUTE(CU_HTTP_GET, "/v1/ping", h_ping, 0, 0),
    ROUTE(CU_HTTP_POST, "/v1/echo", h_echo, CU_ROUTE_SIGNED | CU_ROUTE_WRITES, 1024),
    ROUTE(CU_HTTP_GET, "/v1/items/{id}/sub/{name}", h_item, CU_ROUTE_SIGNED, 0),
    ROUTE(CU_HTTP_GET, "/v1/items/special/sub/{name}", h_item_literal, CU_ROUTE_SIGNED, 0),
    ROUTE(CU_HTTP_POST, "/v1/nothing", h_nothing, CU_ROUTE_SIGNED, 0),
    ROUTE(CU_HTTP_GET, "/v1/fail", h_fail, 0, 0),
    ROUTE(CU_HTTP_GET, "/v1/slow", h_slow, 0, 0),
    {.methods = CU_HTTP_PUT, .pattern = "/v1/blobs/{hash}", .handler = h_upload,
     .flags = CU_ROUTE_SIGNED | CU_ROUTE_STREAM, .body_limit = 16u << 20,
     .stream_open = up_open, .stream_write = up_write, .stream_abort = up_abort},
    ROUTE(CU_HTTP_GET | CU_HTTP_HEAD, "/v1/blobs/{hash}", h_blob, CU_ROUTE_SIGNED, 0),
};

static int group_setup(void **state)
{
    struct cu_http_server_opts o = {.listen = "127.0.0.1:0", .routes = routes,
                                    .nroutes = sizeof routes / sizeof routes[0],
                                    .app = &the_app, .auth = auth};
    struct cu_err e = {0};
    unsigned char *data;
    struct cu_hash h;
    int fd;

    (void)state;
    cu_log_set_level(getenv("NET_TEST_DEBUG") ? CU_LOG_DEBUG : CU_LOG_WARN);
    assert_int_equal(cu_crypto_init(), 0);
    assert_int_equal(cu_identity_generate(&ident), 0);
    if (cu_http_server_start(&srv, &o, &e) != 0)
        fail_msg("server start: %s", e.msg);
    assert_true(cu_http_server_port(srv) > 0);
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%u", cu_http_server_port(srv));

    snprintf(blob_path, sizeof blob_path, "/tmp/cu_net_test_%d.bin", (int)getpid());
    data = malloc(BLOB_SIZE);
    assert_non_null(data);
    cu_random_bytes(data, BLOB_SIZE);
    fd = open(blob_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, BLOB_SIZE), (ssize_t)BLOB_SIZE);
    close(fd);
    cu_hash_mem(data, BLOB_SIZE, &h);
    cu_hash_to_hex(&h, blob_hex);
    free(data);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cu_http_server_stop(srv);
    unlink(blob_path);
    curl_global_cleanup();
    return 0;
}

static struct cu_http_client *client(bool signed_)
{
    struct cu_http_client *c = cu_http_client_new(base_url, signed_ ? &ident : NULL);
    assert_non_null(c);
    return c;
}

/* ---- a raw curl request with hand-made signature headers ------------------- */

static long raw_request(const char *method, const char *path, const struct cu_sig_headers *sh,
                        const char *body, struct cu_buf *out)
{
    CURL *cu = curl_easy_init();
    struct curl_slist *hl = NULL;
    char url[256], line[256];
    long status = 0;

    assert_non_null(cu);
    snprintf(url, sizeof url, "%s%s", base_url, path);
    snprintf(line, sizeof line, "%s: %s", CU_HDR_KEY, sh->key);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "%s: %s", CU_HDR_TS, sh->ts);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "%s: %s", CU_HDR_NONCE, sh->nonce);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "%s: %s", CU_HDR_BODY_HASH, sh->body_hash);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "%s: %s", CU_HDR_SIG, sh->sig);
    hl = curl_slist_append(hl, line);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, NULL); /* default: fwrite */
    {
        FILE *f = tmpfile();
        assert_non_null(f);
        curl_easy_setopt(cu, CURLOPT_WRITEDATA, f);
        assert_int_equal(curl_easy_perform(cu), CURLE_OK);
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
        rewind(f);
        char chunk[512];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            assert_int_equal(cu_buf_append(out, chunk, n), 0);
        fclose(f);
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(cu);
    return status;
}

static void assert_error_code(const struct cu_buf *body, const char *code)
{
    json_t *j = cu_json_parse(body->data, body->len, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        code);
    json_decref(j);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_get_post_json(void **state)
{
    struct cu_http_client *c = client(true);
    struct cu_http_result r;
    json_t *body;

    (void)state;
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "GET", "/v1/ping", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    assert_true(json_is_true(json_object_get(r.json, "pong")));

    body = json_pack("{s:s,s:I}", "hello", "world", "big", (json_int_t)9007199254740993LL);
    assert_int_equal(cu_http_request_json(c, "POST", "/v1/echo", body, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(json_equal(json_object_get(r.json, "got"), body));
    assert_string_equal(json_string_value(json_object_get(r.json, "signer")), ident.id);
    json_decref(body);

    /* Keep-alive: many requests on one handle. */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(cu_http_request(c, "GET", "/v1/ping", NULL, 0, 0, &r), 0);
        assert_int_equal(r.status, 200);
    }

    /* 204: no body, nothing parsed. */
    assert_int_equal(cu_http_request(c, "POST", "/v1/nothing", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 204);
    assert_null(r.json);
    assert_int_equal(r.body.len, 0);

    /* A handler's negative return becomes a 500. */
    assert_int_equal(cu_http_request(c, "GET", "/v1/fail", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.err_code, "internal");

    /* Bad JSON in a signed, hashed body: the handler's 400. */
    assert_int_equal(cu_http_request(c, "POST", "/v1/echo", "{nope", 5, 0, &r), 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.err_code, "invalid");

    cu_http_result_release(&r);
    cu_http_client_free(c);
}

static void test_captures(void **state)
{
    struct cu_http_client *c = client(true);
    struct cu_http_result r;

    (void)state;
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "GET", "/v1/items/abc/sub/x-1?q=hello%20there", NULL, 0,
                                     0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "id")), "abc");
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "x-1");
    assert_int_equal(json_integer_value(json_object_get(r.json, "n")), 2);
    assert_string_equal(json_string_value(json_object_get(r.json, "q")), "hello there");

    /* A literal segment beats a capture. */
    assert_int_equal(cu_http_request(c, "GET", "/v1/items/special/sub/y", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "literal")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "n")), 1);

    /* An empty capture does not match. */
    assert_int_equal(cu_http_request(c, "GET", "/v1/items//sub/y", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 404);
    cu_http_result_release(&r);
    cu_http_client_free(c);
}

static void test_404_405(void **state)
{
    struct cu_http_client *c = client(true);
    struct cu_http_result r;
    char desc[256];

    (void)state;
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "GET", "/v1/nope", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.err_code, "not_found");
    assert_non_null(strstr(cu_http_result_describe(&r, desc, sizeof desc), "HTTP 404 not_found"));

    assert_int_equal(cu_http_request(c, "DELETE", "/v1/ping", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.err_code, "method_not_allowed");
    assert_non_null(strstr(r.err_msg, "GET"));

    cu_http_result_release(&r);
    cu_http_client_free(c);
}

/* The Allow header is only visible to a raw client. */
static size_t hdr_cb(char *p, size_t size, size_t n, void *ctx)
{
    if (strncasecmp(p, "Allow:", 6) == 0)
        snprintf(ctx, 64, "%.*s", (int)(size * n), p);
    return size * n;
}

static void test_405_allow_header(void **state)
{
    CURL *cu = curl_easy_init();
    char url[256], allow[64] = "";
    long status = 0;

    (void)state;
    snprintf(url, sizeof url, "%s/v1/blobs/%s", base_url, blob_hex);
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, hdr_cb);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, allow);
    curl_easy_setopt(cu, CURLOPT_NOBODY, 0L);
    {
        FILE *devnull = fopen("/dev/null", "w");
        curl_easy_setopt(cu, CURLOPT_WRITEDATA, devnull);
        assert_int_equal(curl_easy_perform(cu), CURLE_OK);
        fclose(devnull);
    }
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 405);
    assert_non_null(strstr(allow, "GET, HEAD, PUT"));
    curl_easy_cleanup(cu);
}

static void test_413(void **state)
{
    struct cu_http_client *c = client(true);
    struct cu_http_result r;
    char *big = malloc(4096);

    (void)state;
    memset(big, ' ', 4096);
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "POST", "/v1/echo", big, 4096, 0, &r), 0);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.err_code, "too_large");

    /* A route with no body allowed. */
    assert_int_equal(cu_http_request(c, "POST", "/v1/nothing", "{}", 2, 0, &r), 0);
    assert_int_equal(r.status, 413);

    /* A big streamed upload refused on its Content-Length, before the body. */
    {
        struct cu_hash h;
        assert_int_equal(cu_hash_from_hex(blob_hex, &h), 0);
        assert_int_equal(cu_http_upload_file(c, "POST", "/v1/echo", blob_path, &h, 0, &r), 0);
        assert_int_equal(r.status, 413);
        assert_string_equal(r.err_code, "too_large");
    }

    /* The client still works after the server cut the upload short. */
    assert_int_equal(cu_http_request(c, "GET", "/v1/ping", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    free(big);
    cu_http_result_release(&r);
    cu_http_client_free(c);
}

static void test_unsigned(void **state)
{
    struct cu_http_client *c = client(false);
    struct cu_http_result r;

    (void)state;
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "POST", "/v1/echo", "{}", 2, 0, &r), 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.err_code, "unsigned");
    /* A big unsigned upload is refused before its body is read. */
    {
        struct cu_hash h;
        char path[128];
        assert_int_equal(cu_hash_from_hex(blob_hex, &h), 0);
        snprintf(path, sizeof path, "/v1/blobs/%s", blob_hex);
        assert_int_equal(cu_http_upload_file(c, "PUT", path, blob_path, &h, 0, &r), 0);
        assert_int_equal(r.status, 401);
        assert_string_equal(r.err_code, "unsigned");
    }
    /* Unsigned routes need nothing. */
    assert_int_equal(cu_http_request(c, "GET", "/v1/ping", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    cu_http_result_release(&r);
    cu_http_client_free(c);
}

static void test_tampered_and_replayed(void **state)
{
    struct cu_sig_headers sh;
    struct cu_buf out = CU_BUF_INIT(1 << 16);
    struct cu_hash h;
    const char *signed_body = "{\"amount\":1}";

    (void)state;
    cu_hash_mem(signed_body, strlen(signed_body), &h);
    cu_reqsign_make(&ident, "POST", "/v1/echo", &h, cu_now_ms() / 1000, &sh);

    /* Valid signature over another body's hash. */
    assert_int_equal(raw_request("POST", "/v1/echo", &sh, "{\"amount\":1000}", &out), 401);
    assert_error_code(&out, "bad_signature");
    assert_non_null(strstr(out.data, "body does not match its signed hash"));

    /* A fresh nonce, sent twice. */
    cu_reqsign_make(&ident, "POST", "/v1/echo", &h, cu_now_ms() / 1000, &sh);
    cu_buf_reset(&out);
    assert_int_equal(raw_request("POST", "/v1/echo", &sh, signed_body, &out), 200);
    cu_buf_reset(&out);
    assert_int_equal(raw_request("POST", "/v1/echo", &sh, signed_body, &out), 401);
    assert_error_code(&out, "replayed");

    /* Signed for another path. */
    cu_reqsign_make(&ident, "POST", "/v1/other", &h, cu_now_ms() / 1000, &sh);
    cu_buf_reset(&out);
    assert_int_equal(raw_request("POST", "/v1/echo", &sh, signed_body, &out), 401);
    assert_error_code(&out, "bad_signature");

    /* Stale. */
    cu_reqsign_make(&ident, "POST", "/v1/echo", &h, cu_now_ms() / 1000 - 3600, &sh);
    cu_buf_reset(&out);
    assert_int_equal(raw_request("POST", "/v1/echo", &sh, signed_body, &out), 401);
    assert_error_code(&out, "stale");

    /* A header longer than its field. */
    cu_reqsign_make(&ident, "POST", "/v1/echo", &h, cu_now_ms() / 1000, &sh);
    snprintf(sh.ts, sizeof sh.ts, "%s", "12345678901234567890123");
    cu_buf_reset(&out);
    {
        struct cu_sig_headers bad = sh;
        memset(bad.nonce, 'a', sizeof bad.nonce - 1);
        assert_int_equal(raw_request("POST", "/v1/echo", &bad, signed_body, &out), 401);
    }
    cu_buf_release(&out);
}

static int sink_to_hasher(void *ctx, const char *data, size_t n)
{
    cu_hasher_update(ctx, data, n);
    return 0;
}

static int sink_abort(void *ctx, const char *data, size_t n)
{
    (void)ctx;
    (void)data;
    (void)n;
    return -CU_EIO;
}

static void test_upload_download(void **state)
{
    struct cu_http_client *c = client(true);
    struct cu_http_result r;
    struct cu_hash h, got;
    struct cu_hasher hs;
    char path[128], hex[CU_HASH_HEX_LEN + 1];
    int done0;

    (void)state;
    cu_http_result_init(&r);
    assert_int_equal(cu_hash_from_hex(blob_hex, &h), 0);
    snprintf(path, sizeof path, "/v1/blobs/%s", blob_hex);
    pthread_mutex_lock(&the_app.mu);
    done0 = the_app.stream_done;
    pthread_mutex_unlock(&the_app.mu);
    assert_int_equal(cu_http_upload_file(c, "PUT", path, blob_path, &h, 0, &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "hash")), blob_hex);
    assert_int_equal(json_integer_value(json_object_get(r.json, "size")), BLOB_SIZE);
    assert_int_equal(the_app.stream_done, done0 + 1);

    /* Wrong hash claimed: the stream route finds the mismatch. */
    {
        struct cu_hash wrong = h;
        char wpath[128], whex[CU_HASH_HEX_LEN + 1];
        wrong.b[0] ^= 1;
        cu_hash_to_hex(&wrong, whex);
        snprintf(wpath, sizeof wpath, "/v1/blobs/%s", whex);
        assert_int_equal(cu_http_upload_file(c, "PUT", wpath, blob_path, &wrong, 0, &r), 0);
        assert_int_equal(r.status, 400);
        assert_string_equal(r.err_code, "hash_mismatch");
    }

    /* Download streamed to a sink. */
    cu_hasher_init(&hs);
    assert_int_equal(cu_http_download(c, path, sink_to_hasher, &hs, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    cu_hasher_final(&hs, &got);
    cu_hash_to_hex(&got, hex);
    assert_string_equal(hex, blob_hex);

    /* Non-2xx: buffered, sink untouched. */
    assert_int_equal(cu_http_download(c, "/v1/blobs/00", sink_abort, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.err_code, "not_found");

    /* A sink that refuses. */
    assert_int_equal(cu_http_download(c, path, sink_abort, NULL, 0, &r), -CU_EIO);

    /* HEAD: status only. */
    assert_int_equal(cu_http_request(c, "HEAD", path, NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);

    /* Still usable after all that. */
    assert_int_equal(cu_http_request(c, "GET", "/v1/ping", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);

    /* Missing file. */
    assert_int_equal(cu_http_upload_file(c, "PUT", path, "/nonexistent/x", &h, 0, &r),
                     -CU_ENOTFOUND);
    cu_http_result_release(&r);
    cu_http_client_free(c);
}

/* A client that sends half its declared body and hangs up: stream_abort. */
static void test_stream_abort(void **state)
{
    struct cu_sig_headers sh;
    struct cu_hash h;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    char req[2048], path[128];
    int fd, aborts0;

    (void)state;
    snprintf(path, sizeof path, "/v1/blobs/%s", blob_hex);
    assert_int_equal(cu_hash_from_hex(blob_hex, &h), 0);
    cu_reqsign_make(&ident, "PUT", path, &h, cu_now_ms() / 1000, &sh);
    snprintf(req, sizeof req,
             "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n%s: %s\r\n%s: %s\r\n"
             "%s: %s\r\n%s: %s\r\n%s: %s\r\n\r\n0123456789",
             path, CU_HDR_KEY, sh.key, CU_HDR_TS, sh.ts, CU_HDR_NONCE, sh.nonce,
             CU_HDR_BODY_HASH, sh.body_hash, CU_HDR_SIG, sh.sig);
    pthread_mutex_lock(&the_app.mu);
    aborts0 = the_app.aborts;
    pthread_mutex_unlock(&the_app.mu);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    sin.sin_port = htons(cu_http_server_port(srv));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    cu_sleep_ms(100);
    close(fd);
    for (int i = 0; i < 100; i++) {
        int n;
        pthread_mutex_lock(&the_app.mu);
        n = the_app.aborts;
        pthread_mutex_unlock(&the_app.mu);
        if (n > aborts0)
            return;
        cu_sleep_ms(20);
    }
    fail_msg("stream_abort was not called");
}

struct slow_arg {
    int64_t ms;
    long status;
};

static void *slow_thread(void *p)
{
    struct slow_arg *a = p;
    struct cu_http_client *c = cu_http_client_new(base_url, NULL);
    struct cu_http_result r;
    int64_t t0 = cu_mono_ms();

    cu_http_result_init(&r);
    if (c && cu_http_request(c, "GET", "/v1/slow", NULL, 0, 0, &r) == 0)
        a->status = r.status;
    a->ms = cu_mono_ms() - t0;
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

static void test_concurrent(void **state)
{
    struct cu_http_client *c = client(false);
    struct cu_http_result r;
    struct slow_arg a = {0};
    pthread_t t;
    int64_t t0, fast_ms;

    (void)state;
    cu_http_result_init(&r);
    assert_int_equal(pthread_create(&t, NULL, slow_thread, &a), 0);
    cu_sleep_ms(50); /* let the slow request reach its handler */
    t0 = cu_mono_ms();
    assert_int_equal(cu_http_request(c, "GET", "/v1/ping", NULL, 0, 0, &r), 0);
    fast_ms = cu_mono_ms() - t0;
    assert_int_equal(r.status, 200);
    pthread_join(t, NULL);
    assert_int_equal(a.status, 200);
    assert_true(a.ms >= 300);
    assert_true(fast_ms < 200);
    cu_http_result_release(&r);
    cu_http_client_free(c);
}

static void test_closed_port(void **state)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof sin;
    struct cu_http_client *c;
    struct cu_http_result r;
    char url[64], desc[600];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    (void)state;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd); /* bound once, now nobody listens there */
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", ntohs(sin.sin_port));
    c = cu_http_client_new(url, &ident);
    assert_non_null(c);
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "GET", "/v1/ping", NULL, 0, 2000, &r), -CU_ENET);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err_msg, "cannot connect to http://127.0.0.1:"));
    assert_non_null(strstr(r.err_msg, "Connection refused"));
    assert_non_null(strstr(cu_http_result_describe(&r, desc, sizeof desc), "Connection refused"));
    cu_http_result_release(&r);
    cu_http_client_free(c);

    assert_null(cu_http_client_new("ftp://x", NULL));
    assert_null(cu_http_client_new("http://", NULL));
}

static void test_start_refusals(void **state)
{
    static const struct cu_route dup[] = {
        ROUTE(CU_HTTP_GET, "/v1/a/{x}", h_ping, 0, 0),
        ROUTE(CU_HTTP_GET | CU_HTTP_POST, "/v1/a/{y}", h_ping, 0, 0),
    };
    static const struct cu_route ok_pair[] = {
        ROUTE(CU_HTTP_GET, "/v1/a/{x}", h_ping, 0, 0),
        ROUTE(CU_HTTP_POST, "/v1/a/{y}", h_ping, 0, 0),
    };
    static const struct cu_route bad_pat[] = {
        ROUTE(CU_HTTP_GET, "v1/a", h_ping, 0, 0),
    };
    static const struct cu_route too_many[] = {
        ROUTE(CU_HTTP_GET, "/{a}/{b}/{c}/{d}/{e}", h_ping, 0, 0),
    };
    struct cu_http_server_opts o = {.listen = "127.0.0.1:0", .routes = dup, .nroutes = 2};
    struct cu_http_server *s = NULL;
    struct cu_err e = {0};

    (void)state;
    assert_int_equal(cu_http_server_start(&s, &o, &e), -CU_EEXISTS);
    assert_null(s);
    assert_non_null(strstr(e.msg, "duplicate route"));

    o.routes = bad_pat;
    o.nroutes = 1;
    assert_int_equal(cu_http_server_start(&s, &o, &e), -CU_EINVAL);
    o.routes = too_many;
    assert_int_equal(cu_http_server_start(&s, &o, &e), -CU_EINVAL);

    o.routes = ok_pair;
    o.nroutes = 2;
    o.listen = "nonsense";
    assert_int_equal(cu_http_server_start(&s, &o, &e), -CU_EINVAL);
    o.listen = "127.0.0.1:99999";
    assert_int_equal(cu_http_server_start(&s, &o, &e), -CU_EINVAL);

    /* Other listen forms; [::1] only where the host has IPv6. */
    o.listen = ":0";
    assert_int_equal(cu_http_server_start(&s, &o, &e), 0);
    assert_true(cu_http_server_port(s) > 0);
    cu_http_server_stop(s);
    o.listen = "[::1]:0";
    if (cu_http_server_start(&s, &o, &e) == 0) {
        char url[64];
        struct cu_http_client *c;
        struct cu_http_result r;
        snprintf(url, sizeof url, "http://[::1]:%u", cu_http_server_port(s));
        c = cu_http_client_new(url, NULL);
        cu_http_result_init(&r);
        assert_int_equal(cu_http_request(c, "POST", "/v1/a/1", NULL, 0, 0, &r), 0);
        assert_int_equal(r.status, 200);
        cu_http_result_release(&r);
        cu_http_client_free(c);
        cu_http_server_stop(s);
    }
}

/* Signed routes with no auth callback fail closed. */
static void test_no_auth_fails_closed(void **state)
{
    struct cu_http_server_opts o = {.listen = "127.0.0.1:0", .routes = routes,
                                    .nroutes = sizeof routes / sizeof routes[0], .app = &the_app};
    struct cu_http_server *s = NULL;
    struct cu_http_client *c;
    struct cu_http_result r;
    struct cu_err e = {0};
    char url[64];

    (void)state;
    assert_int_equal(cu_http_server_start(&s, &o, &e), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", cu_http_server_port(s));
    c = cu_http_client_new(url, &ident);
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "POST", "/v1/echo", "{}", 2, 0, &r), 0);
    assert_int_equal(r.status, 500);
    cu_http_result_release(&r);
    cu_http_client_free(c);
    cu_http_server_stop(s);
}

/* Static files: index, content type, no escape from the directory. */
static void test_static(void **state)
{
    char dir[128], file[256];
    struct cu_http_server_opts o = {.listen = "127.0.0.1:0", .routes = routes, .nroutes = 1};
    struct cu_http_server *s = NULL;
    struct cu_http_client *c;
    struct cu_http_result r;
    struct cu_err e = {0};
    char url[64];

    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cu_net_static_%d", (int)getpid());
    assert_int_equal(cu_mkdir_p(dir, 0700), 0);
    snprintf(file, sizeof file, "%s/index.html", dir);
    assert_int_equal(cu_write_file_atomic(file, "<h1>hi</h1>", 11, 0600), 0);
    o.static_dir = dir;
    assert_int_equal(cu_http_server_start(&s, &o, &e), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", cu_http_server_port(s));
    c = cu_http_client_new(url, NULL);
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(c, "GET", "/", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "<h1>hi</h1>");
    assert_int_equal(cu_http_request(c, "GET", "/index.html", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(cu_http_request(c, "GET", "/../etc/passwd", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(cu_http_request(c, "GET", "/%2e%2e/etc/passwd", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(cu_http_request(c, "GET", "/v1/index.html", NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 404);
    cu_http_result_release(&r);
    cu_http_client_free(c);
    cu_http_server_stop(s);
    cu_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_post_json),
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_404_405),
        cmocka_unit_test(test_405_allow_header),
        cmocka_unit_test(test_413),
        cmocka_unit_test(test_unsigned),
        cmocka_unit_test(test_tampered_and_replayed),
        cmocka_unit_test(test_upload_download),
        cmocka_unit_test(test_stream_abort),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_start_refusals),
        cmocka_unit_test(test_no_auth_fails_closed),
        cmocka_unit_test(test_static),
    };
    return cmocka_run_group_tests_name("net", tests, group_setup, group_teardown);
}
