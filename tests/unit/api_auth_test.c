/* api_auth_test.c - the exchange refuses unsigned, tampered, stale and
 * replayed requests with 401 and changes nothing (docs/api.md).
 *
 * Starts the real exchange (build/cumulus, relative to the repository root,
 * where tests/run.sh runs; CUMULUS_BIN overrides) on 127.0.0.1:0 in a
 * temporary directory, then talks to it with cu_http_client for the normal
 * cases and with raw libcurl where a request must be crafted header by
 * header. */
#include "exchange_fixture.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>

#include "crypto/ident.h"
#include "crypto/reqsign.h"

#include "base/banned.h"

struct env {
    struct exfix x; /* dir, url, pid */
    struct cu_identity id;
    struct cu_http_client *client;   /* signed with id */
    struct cu_http_client *unsigned_client;
};

static struct env *E;

static const char job_body_a[] =
    "{\"client_ref\":\"0123456789abcdef0123456789abcdef\",\"spec\":{\"command\":[\"true\"],"
    "\"image\":\"host\",\"inputs\":[],\"name\":\"auth-a\",\"outputs\":[\"*.txt\"],"
    "\"price\":{\"max_per_cu\":100},\"replication\":1,\"resources\":{\"cores\":1,"
    "\"gpus\":0,\"memory\":67108864,\"output\":1048576,\"time_ms\":10000},"
    "\"tasks\":{\"count\":1}}}";
static const char job_body_b[] =
    "{\"client_ref\":\"0123456789abcdef0123456789abcdef\",\"spec\":{\"command\":[\"true\"],"
    "\"image\":\"host\",\"inputs\":[],\"name\":\"auth-b\",\"outputs\":[\"*.txt\"],"
    "\"price\":{\"max_per_cu\":100},\"replication\":1,\"resources\":{\"cores\":1,"
    "\"gpus\":0,\"memory\":67108864,\"output\":1048576,\"time_ms\":10000},"
    "\"tasks\":{\"count\":9}}}";

/* A short lease (5 s) and 30 s to start. */
static const char *const exchange_args[] = {"--lease", "5s", NULL};

static int group_teardown(void **state);

/* On any failure everything started so far is stopped and removed here:
 * cmocka does not run the group teardown after a failed setup. */
static int group_setup(void **state)
{
    E = calloc(1, sizeof *E);
    if (!E)
        return -1;
    if (exfix_init(&E->x, "/tmp/cu_auth_XXXXXX") != 0)
        goto out_fail;
    if (exfix_start(&E->x, "data", exchange_args, 30, false) != 0 ||
        cu_identity_generate(&E->id) != 0)
        goto out_fail;
    E->client = cu_http_client_new(E->x.url, &E->id);
    E->unsigned_client = cu_http_client_new(E->x.url, NULL);
    if (!E->client || !E->unsigned_client)
        goto out_fail;
    return 0;
out_fail:
    group_teardown(state);
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!E)
        return 0;
    cu_http_client_free(E->client);
    cu_http_client_free(E->unsigned_client);
    exfix_cleanup(&E->x);
    cu_identity_wipe(&E->id);
    free(E);
    E = NULL;
    return 0;
}

/* A raw request with exactly the given signature headers (h may be NULL
 * for none). Fills *status and the response body into out. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct cu_buf *b = ctx;
    return cu_buf_append(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

static void raw_request(const char *method, const char *path, const struct cu_sig_headers *h,
                        const char *body, long *status, struct cu_buf *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char url[512], line[256];

    assert_non_null(c);
    cu_buf_reset(out);
    assert_int_equal(cu_snprintf(url, sizeof url, "%s%s", E->x.url, path), 0);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (h) {
        cu_snprintf(line, sizeof line, "%s: %s", CU_HDR_KEY, h->key);
        hdrs = curl_slist_append(hdrs, line);
        cu_snprintf(line, sizeof line, "%s: %s", CU_HDR_TS, h->ts);
        hdrs = curl_slist_append(hdrs, line);
        cu_snprintf(line, sizeof line, "%s: %s", CU_HDR_NONCE, h->nonce);
        hdrs = curl_slist_append(hdrs, line);
        cu_snprintf(line, sizeof line, "%s: %s", CU_HDR_BODY_HASH, h->body_hash);
        hdrs = curl_slist_append(hdrs, line);
        cu_snprintf(line, sizeof line, "%s: %s", CU_HDR_SIG, h->sig);
        hdrs = curl_slist_append(hdrs, line);
    }
    assert_non_null(hdrs);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
}

static void sign(const char *method, const char *path, const char *body, int64_t now_s,
                 struct cu_sig_headers *h)
{
    struct cu_hash bh;
    cu_hash_mem(body ? body : "", body ? strlen(body) : 0, &bh);
    cu_reqsign_make(&E->id, method, path, &bh, now_s, h);
}

static int64_t now_s(void)
{
    return cu_now_ms() / 1000;
}

static void expect_401(long status, const struct cu_buf *body, const char *reason)
{
    if (status != 401 || !strstr(cu_buf_str(body), reason))
        fail_msg("expected 401 with '%s', got %ld: %s", reason, status, cu_buf_str(body));
    if (!strstr(cu_buf_str(body), "\"error\""))
        fail_msg("401 body is not an error object: %s", cu_buf_str(body));
}

/* GET /v1/jobs signed by E->id: the number of jobs listed. */
static size_t count_jobs(void)
{
    struct cu_http_result r;
    size_t n;
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(E->client, "GET", "/v1/jobs", NULL, 0, 0, &r), 0);
    if (r.status != 200)
        fail_msg("signed GET /v1/jobs: %ld %s", r.status, cu_buf_str(&r.body));
    assert_non_null(r.json);
    assert_true(json_is_array(json_object_get(r.json, "jobs")));
    n = json_array_size(json_object_get(r.json, "jobs"));
    cu_http_result_release(&r);
    return n;
}

static void test_signed_get_works(void **state)
{
    (void)state;
    assert_int_equal(count_jobs(), 0);
}

static void test_health_unsigned(void **state)
{
    (void)state;
    struct cu_http_result r;
    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(E->unsigned_client, "GET", "/v1/health", NULL, 0, 0, &r),
                     0);
    assert_int_equal(r.status, 200);
    cu_http_result_release(&r);
}

static void test_unsigned_post_refused(void **state)
{
    (void)state;
    struct cu_http_result r;
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    long status = 0;

    cu_http_result_init(&r);
    assert_int_equal(cu_http_request(E->unsigned_client, "POST", "/v1/jobs", job_body_a,
                                     strlen(job_body_a), 0, &r),
                     0);
    expect_401(r.status, &r.body, "unsigned");
    cu_http_result_release(&r);

    /* Same by hand, and an unsigned GET. */
    raw_request("POST", "/v1/jobs", NULL, job_body_a, &status, &b);
    expect_401(status, &b, "unsigned");
    raw_request("GET", "/v1/jobs", NULL, NULL, &status, &b);
    expect_401(status, &b, "unsigned");
    cu_buf_release(&b);
}

static void test_tampered_body_refused(void **state)
{
    (void)state;
    struct cu_sig_headers h;
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    long status = 0;

    /* Signed over body A, sent with body B. */
    sign("POST", "/v1/jobs", job_body_a, now_s(), &h);
    raw_request("POST", "/v1/jobs", &h, job_body_b, &status, &b);
    expect_401(status, &b, "bad_signature");

    /* A signature over another path. */
    sign("POST", "/v1/jobs/x", job_body_a, now_s(), &h);
    raw_request("POST", "/v1/jobs", &h, job_body_a, &status, &b);
    expect_401(status, &b, "bad_signature");

    /* A flipped signature byte. */
    sign("POST", "/v1/jobs", job_body_a, now_s(), &h);
    h.sig[0] = h.sig[0] == '0' ? '1' : '0';
    raw_request("POST", "/v1/jobs", &h, job_body_a, &status, &b);
    assert_int_equal(status, 401);

    /* A malformed key. */
    sign("POST", "/v1/jobs", job_body_a, now_s(), &h);
    memcpy(h.key, "zz", 2);
    raw_request("POST", "/v1/jobs", &h, job_body_a, &status, &b);
    assert_int_equal(status, 401);
    cu_buf_release(&b);
}

static void test_stale_refused(void **state)
{
    (void)state;
    struct cu_sig_headers h;
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    long status = 0;

    sign("POST", "/v1/jobs", job_body_a, now_s() - 1000, &h);
    raw_request("POST", "/v1/jobs", &h, job_body_a, &status, &b);
    expect_401(status, &b, "stale");
    sign("POST", "/v1/jobs", job_body_a, now_s() + 1000, &h);
    raw_request("POST", "/v1/jobs", &h, job_body_a, &status, &b);
    expect_401(status, &b, "stale");
    cu_buf_release(&b);
}

static void test_replay_refused(void **state)
{
    (void)state;
    struct cu_sig_headers h;
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    long status = 0;

    sign("GET", "/v1/jobs", NULL, now_s(), &h);
    raw_request("GET", "/v1/jobs", &h, NULL, &status, &b);
    if (status != 200)
        fail_msg("first signed GET: %ld %s", status, cu_buf_str(&b));
    raw_request("GET", "/v1/jobs", &h, NULL, &status, &b);
    expect_401(status, &b, "replayed");
    cu_buf_release(&b);
}

static void test_nothing_changed(void **state)
{
    (void)state;
    /* After every refused submission, still no job. */
    assert_int_equal(count_jobs(), 0);
}

/* A write's nonce is in the database before its answer leaves, whatever
 * the answer (group commit flushes it in the barrier): a kill -9 right
 * after the answer and a restart still refuse the replay. (A read's nonce
 * lives in memory only, exchange/replay.h: replaying a read after a
 * restart fetches what the original fetched, and moves nothing.) */
static void test_replay_refused_after_kill9(void **state)
{
    (void)state;
    struct cu_sig_headers h;
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    long status = 0, first;

    sign("POST", "/v1/jobs", job_body_a, now_s(), &h);
    raw_request("POST", "/v1/jobs", &h, job_body_a, &status, &b);
    first = status;
    if (status == 401)
        fail_msg("first signed POST refused: %ld %s", status, cu_buf_str(&b));
    exfix_stop(&E->x, SIGKILL);
    assert_int_equal(exfix_start(&E->x, "data", exchange_args, 30, false), 0);
    cu_http_client_free(E->client);
    cu_http_client_free(E->unsigned_client);
    E->client = cu_http_client_new(E->x.url, &E->id);
    E->unsigned_client = cu_http_client_new(E->x.url, NULL);
    assert_non_null(E->client);
    assert_non_null(E->unsigned_client);
    raw_request("POST", "/v1/jobs", &h, job_body_a, &status, &b);
    if (status != 401)
        fail_msg("replayed POST after kill -9 (first answer %ld): %ld %s", first, status,
                 cu_buf_str(&b));
    expect_401(status, &b, "replayed");
    cu_buf_release(&b);
}

/* Reads: refused as replays while the exchange runs, however many other
 * reads came between (the window grows; it forgets nothing live). */
static void test_read_replay_window(void **state)
{
    (void)state;
    struct cu_sig_headers h, first;
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    long status = 0;

    sign("GET", "/v1/wallet", NULL, now_s(), &first);
    raw_request("GET", "/v1/wallet", &first, NULL, &status, &b);
    if (status != 200)
        fail_msg("first signed GET: %ld %s", status, cu_buf_str(&b));
    for (int i = 0; i < 300; i++) {
        sign("GET", "/v1/wallet", NULL, now_s(), &h);
        raw_request("GET", "/v1/wallet", &h, NULL, &status, &b);
        if (status != 200)
            fail_msg("signed GET %d: %ld %s", i, status, cu_buf_str(&b));
        raw_request("GET", "/v1/wallet", &h, NULL, &status, &b);
        expect_401(status, &b, "replayed");
    }
    raw_request("GET", "/v1/wallet", &first, NULL, &status, &b);
    expect_401(status, &b, "replayed");
    cu_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_get_works),
        cmocka_unit_test(test_health_unsigned),
        cmocka_unit_test(test_unsigned_post_refused),
        cmocka_unit_test(test_tampered_body_refused),
        cmocka_unit_test(test_stale_refused),
        cmocka_unit_test(test_replay_refused),
        cmocka_unit_test(test_nothing_changed),
        cmocka_unit_test(test_read_replay_window),
        cmocka_unit_test(test_replay_refused_after_kill9),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
