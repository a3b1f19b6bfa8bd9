/* report_inline_test.c - reports that carry their small blobs inline
 * (docs/api.md "blobs"), over real signed HTTP against a real exchange:
 * the empty blob exists without an upload; an inline blob that does not
 * hash to its key, is not base64, is not named by the report, has another
 * size than the report says, or goes past the inline limit is refused with
 * a clear error and stores nothing; a good one is stored before the
 * answer, so it and the logs survive kill -9 of the exchange right after
 * it answered. */
#include "exchange_fixture.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>

#include "client/api.h"
#include "crypto/ident.h"
#include "crypto/merkle.h"
#include "store/blob.h"

#include "base/banned.h"

struct env {
    struct exfix x;
    struct cu_identity ida, idp;
    struct cu_http_client *a, *p;
    char empty_hex[CU_HASH_HEX_LEN + 1];
};
static struct env *E;

static const char *const exchange_args[] = {"--lease", "10m", "--devnet", NULL};

/* Like post, and the error message must contain msg. */
static void post_refused(const char *path, const char *body, long status, const char *code,
                         const char *msg, const char *what)
{
    struct cu_http_result r;

    cu_http_result_init(&r);
    call(E->p, "POST", path, body, &r);
    expect_status(&r, status, code, what);
    if (!strstr(r.err_msg, msg))
        fail_msg("%s: message '%s' does not say '%s'", what, r.err_msg, msg);
    cu_http_result_release(&r);
}

static int group_teardown(void **state)
{
    (void)state;
    if (!E)
        return 0;
    cu_http_client_free(E->a);
    cu_http_client_free(E->p);
    exfix_cleanup(&E->x);
    free(E);
    E = NULL;
    return 0;
}

static int clients_open(void)
{
    cu_http_client_free(E->a);
    cu_http_client_free(E->p);
    E->a = cu_http_client_new(E->x.url, &E->ida);
    E->p = cu_http_client_new(E->x.url, &E->idp);
    return E->a && E->p ? 0 : -1;
}

static int group_setup(void **state)
{
    struct cu_hash h;

    E = calloc(1, sizeof *E);
    if (!E || exfix_init(&E->x, "/tmp/cu_inline_XXXXXX") != 0)
        goto out_fail;
    if (cu_identity_generate(&E->ida) || cu_identity_generate(&E->idp))
        goto out_fail;
    if (exfix_start(&E->x, "data", exchange_args, 60, false) != 0 || clients_open() != 0)
        goto out_fail;
    cu_hash_mem("", 0, &h);
    cu_hash_to_hex(&h, E->empty_hex);
    return 0;
out_fail:
    group_teardown(state);
    return -1;
}

/* GET of a blob: the status, and the bytes into *body (NULL: not kept). */
static long get_blob(const char *hex, struct cu_buf *body)
{
    struct cu_http_result r;
    char path[128];
    long status;

    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/blobs/%s", hex), 0);
    cu_http_result_init(&r);
    call(E->a, "GET", path, NULL, &r);
    status = r.status;
    if (body)
        assert_int_equal(cu_buf_append(body, r.body.data ? (const char *)r.body.data : "",
                                       r.body.len),
                         0);
    cu_http_result_release(&r);
    return status;
}

/* A funded requester's 1-task job leased by the provider: the replica id
 * and the job id. */
static int64_t lease_one(char *job, size_t jobsz)
{
    char body[1024], ref[33];
    json_t *out = NULL, *ans = NULL;
    struct cu_http_result r;
    int64_t rid;

    exfix_post(E->a, "/v1/faucet", "{\"amount\":100000000}", 200, NULL, "faucet", NULL, NULL);
    exfix_post(E->p, "/v1/providers/hello",
               "{\"slots\":1,\"cores\":4,\"memory\":4294967296,\"gpus\":0,\"price_per_cu\":1}", 200,
               NULL, "hello", NULL, NULL);
    cu_random_hex(ref, 16);
    assert_int_equal(cu_snprintf(body, sizeof body,
                                 "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],"
                                 "\"image\":\"host\",\"inputs\":[],\"name\":\"inline\","
                                 "\"outputs\":[\"*\"],\"price\":{\"max_per_cu\":10},"
                                 "\"resources\":{\"cores\":1,\"gpus\":0,\"memory\":67108864,"
                                 "\"output\":1048576,\"time_ms\":10000},"
                                 "\"tasks\":{\"count\":1}}}",
                                 ref),
                     0);
    exfix_post(E->a, "/v1/jobs", body, 201, NULL, "submit", &out, NULL);
    assert_int_equal(cu_snprintf(job, jobsz, "%s", exfix_str(out, "id")), 0);
    json_decref(out);
    cu_http_result_init(&r);
    call(E->p, "POST", "/v1/claims",
         "{\"wait_ms\":0,\"free\":{\"cores\":4,\"memory\":4294967296,\"gpus\":0}}", &r);
    expect_status(&r, 200, NULL, "claim");
    ans = json_incref(r.json);
    cu_http_result_release(&r);
    rid = json_integer_value(json_object_get(json_object_get(ans, "lease"), "replica"));
    json_decref(ans);
    assert_true(rid > 0);
    return rid;
}

static char *b64(const void *p, size_t n)
{
    size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(len);

    assert_non_null(s);
    sodium_bin2base64(s, len, p, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

/* An ok report with one output "r.txt" of (hash of content, size), stdout
 * (hash of out_text), an empty stderr, and blobs (taken; may be NULL). */
static char *report(const char *content, size_t size, const char *out_text, json_t *blobs)
{
    struct cu_merkle_leaf leaf = {.name = "r.txt"};
    struct cu_hash root, oh;
    char hex[CU_HASH_HEX_LEN + 1], root_hex[CU_HASH_HEX_LEN + 1], out_hex[CU_HASH_HEX_LEN + 1];
    json_t *j;
    char *s;

    cu_hash_mem(content, strlen(content), &leaf.hash);
    cu_hash_to_hex(&leaf.hash, hex);
    assert_int_equal(cu_merkle_root(&leaf, 1, &root), 0);
    cu_hash_to_hex(&root, root_hex);
    cu_hash_mem(out_text, strlen(out_text), &oh);
    cu_hash_to_hex(&oh, out_hex);
    j = json_pack("{s:s,s:i,s:n,s:i,s:i,s:[{s:s,s:s,s:I}],s:s,s:{s:s,s:I},s:{s:s,s:i}}",
                  "status", "ok", "exit_code", 0, "reason", "cpu_ms", 1, "wall_ms", 2, "outputs",
                  "name", "r.txt", "hash", hex, "size", (json_int_t)size, "merkle_root", root_hex,
                  "stdout", "hash", out_hex, "size", (json_int_t)strlen(out_text), "stderr",
                  "hash", E->empty_hex, "size", 0);
    assert_non_null(j);
    if (blobs)
        assert_int_equal(json_object_set_new(j, "blobs", blobs), 0);
    s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    return s;
}

/* {hash_hex(key_content): base64(data)} */
static json_t *blobs1(const char *key_content, const void *data, size_t n)
{
    struct cu_hash h;
    char hex[CU_HASH_HEX_LEN + 1], *enc = b64(data, n);
    json_t *j;

    cu_hash_mem(key_content, strlen(key_content), &h);
    cu_hash_to_hex(&h, hex);
    j = json_pack("{s:s}", hex, enc);
    free(enc);
    assert_non_null(j);
    return j;
}

static void hex_of(const char *content, char hex[CU_HASH_HEX_LEN + 1])
{
    struct cu_hash h;

    cu_hash_mem(content, strlen(content), &h);
    cu_hash_to_hex(&h, hex);
}

static void test_empty_blob_always_there(void **state)
{
    struct cu_buf b = CU_BUF_INIT(16);

    (void)state;
    /* Nobody uploaded it: the exchange's store has it from the start. */
    assert_int_equal(get_blob(E->empty_hex, &b), 200);
    assert_int_equal(b.len, 0);
    cu_buf_release(&b);
}

static void test_bad_inline_refused(void **state)
{
    char job[40], path[96], hex[CU_HASH_HEX_LEN + 1], *rep;
    unsigned char *big;
    json_t *blobs;
    int64_t rid;

    (void)state;
    rid = lease_one(job, sizeof job);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/report", rid), 0);

    /* Content that does not hash to its key. */
    rep = report("ok\n", 3, "", blobs1("ok\n", "no\n", 3));
    post_refused(path, rep, 400, "hash_mismatch", "does not hash to its key", "wrong content");
    free(rep);
    hex_of("ok\n", hex);
    assert_int_equal(get_blob(hex, NULL), 404); /* nothing stored */

    /* Not base64. */
    blobs = json_object();
    json_object_set_new(blobs, hex, json_string("!!not base64!!"));
    rep = report("ok\n", 3, "", blobs);
    post_refused(path, rep, 400, "invalid", "is not base64", "bad base64");
    free(rep);

    /* A blob the report does not name. */
    rep = report("ok\n", 3, "", blobs1("other\n", "other\n", 6));
    post_refused(path, rep, 400, "invalid", "not an output, stdout or stderr", "unnamed blob");
    free(rep);
    hex_of("other\n", hex);
    assert_int_equal(get_blob(hex, NULL), 404);

    /* Another size than the report says. */
    rep = report("ok\n", 4, "", blobs1("ok\n", "ok\n", 3));
    post_refused(path, rep, 400, "invalid", "3 bytes, but the report says 4", "size");
    free(rep);

    /* Past the inline limit: upload with PUT instead. */
    big = calloc(1, CU_REPORT_INLINE_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', CU_REPORT_INLINE_MAX + 1);
    rep = report((const char *)big, CU_REPORT_INLINE_MAX + 1, "",
                 blobs1((const char *)big, big, CU_REPORT_INLINE_MAX + 1));
    free(big);
    post_refused(path, rep, 413, "too_large", "inline", "too large");
    free(rep);

    /* Not inline and not uploaded: still the missing_blobs answer. */
    rep = report("ok\n", 3, "", NULL);
    exfix_post(E->p, path, rep, 409, "missing_blobs", "missing output", NULL, NULL);
    free(rep);
}

static void test_inline_report_survives_kill9(void **state)
{
    char job[40], path[160], hex[CU_HASH_HEX_LEN + 1], *rep;
    struct cu_buf b = CU_BUF_INIT(64);
    struct cu_http_result r;
    json_t *blobs, *out = NULL;
    int64_t rid;

    (void)state;
    rid = lease_one(job, sizeof job);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/report", rid), 0);
    /* The output and stdout inline, stderr empty: no PUT at all. */
    blobs = blobs1("ok\n", "ok\n", 3);
    {
        json_t *o = blobs1("hello from the task\n", "hello from the task\n", 20);
        assert_int_equal(json_object_update(blobs, o), 0);
        json_decref(o);
    }
    rep = report("ok\n", 3, "hello from the task\n", blobs);
    exfix_post(E->p, path, rep, 200, NULL, "inline report", &out, NULL);
    assert_string_equal(exfix_str(out, "task_state"), "done");
    json_decref(out);

    /* kill -9 right after the answer; what it answered must be there. */
    exfix_stop(&E->x, SIGKILL);
    assert_int_equal(exfix_start(&E->x, "data", exchange_args, 60, false), 0);
    assert_int_equal(clients_open(), 0);
    hex_of("ok\n", hex);
    assert_int_equal(get_blob(hex, &b), 200);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "ok\n", 3);
    cu_buf_release(&b);
    /* The same report again: idempotent. */
    exfix_post(E->p, path, rep, 200, NULL, "report again", NULL, NULL);
    free(rep);

    /* `cumulus logs` reads this: stdout from the inline blob, stderr the
     * empty blob nobody uploaded. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s/tasks/0/logs", job), 0);
    cu_http_result_init(&r);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, "logs");
    assert_string_equal(exfix_str(r.json, "stdout"), "hello from the task\n");
    assert_string_equal(exfix_str(r.json, "stderr"), "");
    cu_http_result_release(&r);
}

/* POST /v1/reports takes inline blobs too: a good one is stored and its
 * report applied; a bad one is refused on its own, the other applied. */
static void test_batch_inline(void **state)
{
    char job1[40], job2[40], body[4096], hex[CU_HASH_HEX_LEN + 1], *good, *bad;
    struct cu_buf b = CU_BUF_INIT(64);
    json_t *out = NULL, *res;
    int64_t r1, r2;

    (void)state;
    r1 = lease_one(job1, sizeof job1);
    r2 = lease_one(job2, sizeof job2);
    good = report("batch ok\n", 9, "", blobs1("batch ok\n", "batch ok\n", 9));
    bad = report("batch no\n", 9, "", blobs1("batch no\n", "batch xx\n", 9));
    assert_int_equal(cu_snprintf(body, sizeof body,
                                 "{\"reports\":[{\"replica\":%" PRId64 ",%s,{\"replica\":%" PRId64
                                 ",%s]}",
                                 r1, good + 1, r2, bad + 1),
                     0);
    free(good);
    free(bad);
    exfix_post(E->p, "/v1/reports", body, 200, NULL, "batched inline reports", &out, NULL);
    res = json_object_get(out, "results");
    assert_int_equal(json_array_size(res), 2);
    assert_null(json_object_get(json_array_get(res, 0), "error"));
    assert_string_equal(exfix_str(json_object_get(json_array_get(res, 1), "error"), "code"),
                        "hash_mismatch");
    json_decref(out);
    hex_of("batch ok\n", hex);
    assert_int_equal(get_blob(hex, &b), 200);
    assert_int_equal(b.len, 9);
    cu_buf_release(&b);
    hex_of("batch no\n", hex);
    assert_int_equal(get_blob(hex, NULL), 404);
}

/* The file at path holds exactly the n bytes at want. */
static void expect_file(const char *path, const char *want, size_t n)
{
    char buf[64];
    FILE *f = fopen(path, "rb");
    size_t got;

    assert_non_null(f);
    got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(got, n);
    assert_memory_equal(buf, want, n);
}

/* GET /v1/jobs/{id}?inline=N: a done task's outputs carry their content
 * while their sizes fit in N; none without it or when N is too small; N
 * past the limit is refused. cu_api_output_save writes the inline data
 * (verified against the hash: tampered data leaves nothing behind) and
 * downloads what has none. */
static void test_job_answer_inline(void **state)
{
    char job[40], path[160], dest[CU_PATH_MAX], *rep, *enc = b64("ok\n", 3);
    struct cu_http_result r;
    struct cu_api api;
    struct cu_err e = {0};
    json_t *out = NULL, *j = NULL, *o, *copy;
    const json_t *outs;
    int64_t rid;

    (void)state;
    rid = lease_one(job, sizeof job);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/report", rid), 0);
    rep = report("ok\n", 3, "", blobs1("ok\n", "ok\n", 3));
    exfix_post(E->p, path, rep, 200, NULL, "inline report", &out, NULL);
    free(rep);
    assert_string_equal(exfix_str(out, "task_state"), "done");
    json_decref(out);

    static const struct {
        const char *query;
        bool inlined;
    } cases[] = {{"", false},
                 {"?inline=65536", true},
                 {"?inline=3", true},
                 {"?inline=2", false},
                 {"?inline=0", false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s%s", job, cases[i].query), 0);
        cu_http_result_init(&r);
        call(E->a, "GET", path, NULL, &r);
        expect_status(&r, 200, NULL, path);
        outs = json_object_get(
            json_object_get(json_array_get(json_object_get(r.json, "tasks"), 0), "result"),
            "outputs");
        assert_int_equal(json_array_size(outs), 1);
        if (cases[i].inlined)
            assert_string_equal(exfix_str(json_array_get(outs, 0), "data"), enc);
        else if (json_object_get(json_array_get(outs, 0), "data"))
            fail_msg("%s: an output inline that should not be", path);
        cu_http_result_release(&r);
    }
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s?inline=65537", job), 0);
    cu_http_result_init(&r);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 400, "invalid", path);
    cu_http_result_release(&r);

    assert_int_equal(cu_api_open(&api, E->x.url, &E->ida, &e), 0);
    assert_int_equal(cu_api_job_follow(&api, job, NULL, 0, CU_API_JOB_INLINE_MAX, &j, &e), 0);
    o = json_array_get(json_object_get(json_object_get(json_array_get(json_object_get(j, "tasks"),
                                                                      0),
                                                       "result"),
                                       "outputs"),
                       0);
    assert_string_equal(exfix_str(o, "data"), enc);
    assert_int_equal(cu_snprintf(dest, sizeof dest, "%s/saved.txt", E->x.dir), 0);
    assert_int_equal(cu_api_output_save(&api, o, dest, &e), 0);
    expect_file(dest, "ok\n", 3);
    unlink(dest);
    /* Tampered inline data: refused, nothing written. */
    copy = json_deep_copy(o);
    assert_int_equal(json_object_set_new(copy, "data", json_string("bm8K")), 0); /* "no\n" */
    assert_int_equal(cu_api_output_save(&api, copy, dest, &e), -CU_ECORRUPT);
    assert_int_equal(access(dest, F_OK), -1);
    assert_int_equal(json_object_set_new(copy, "data", json_string("not base64!")), 0);
    assert_int_equal(cu_api_output_save(&api, copy, dest, &e), -CU_ECORRUPT);
    assert_int_equal(access(dest, F_OK), -1);
    /* No data: downloaded. */
    assert_int_equal(json_object_del(copy, "data"), 0);
    assert_int_equal(cu_api_output_save(&api, copy, dest, &e), 0);
    expect_file(dest, "ok\n", 3);
    unlink(dest);
    /* No valid hash: a clear refusal. */
    assert_int_equal(json_object_set_new(copy, "hash", json_string("xyz")), 0);
    assert_int_equal(cu_api_output_save(&api, copy, dest, &e), -CU_EPROTO);
    json_decref(copy);
    json_decref(j);
    cu_api_close(&api);
    free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_blob_always_there),
        cmocka_unit_test(test_bad_inline_refused),
        cmocka_unit_test(test_batch_inline),
        cmocka_unit_test(test_job_answer_inline),
        cmocka_unit_test(test_inline_report_survives_kill9),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
