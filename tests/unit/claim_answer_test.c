/* claim_answer_test.c - the answer of POST /v1/claims over real signed
 * HTTP against a real exchange. The exchange writes it as text with each
 * job's spec dumped once per answer (routes.c, claim_respond): a batch
 * answer must still carry, in every lease, the full spec of that lease's
 * job (equal to GET /v1/jobs/{id}'s), exactly once, with every other
 * field of a lease; a single claim's {"lease"} likewise; and the body is
 * one valid JSON document with no duplicate keys. */
#include "exchange_fixture.h"

#include <jansson.h>

#include "crypto/ident.h"

#include "base/banned.h"

static struct exfix_pair *E;

static const char *const exchange_args[] = {"--lease", "10m", "--devnet", NULL};

/* Every field of a lease but "spec" (docs/api.md, POST /v1/claims). */
static const char *const lease_keys[] = {"replica",   "job",          "task",
                                         "task_count", "arg",         "lease_ms",
                                         "lease_expires_ms", "heartbeat_ms", "heartbeat",
                                         NULL};

static int group_teardown(void **state)
{
    (void)state;
    exfix_pair_free(E);
    E = NULL;
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    E = exfix_pair_new(
        "/tmp/cu_claimans_XXXXXX", exchange_args,
        "{\"slots\":8,\"cores\":8,\"memory\":4294967296,\"gpus\":0,\"price_per_cu\":1}");
    return E ? 0 : -1;
}

/* Submits a job of count tasks named name; its id
 * into job and its spec as the exchange answers it into *spec. */
static void submit(const char *name, unsigned count, char *job, size_t n, json_t **spec)
{
    char body[1024], ref[33], path[128];
    struct cu_http_result r;
    json_t *out = NULL;

    cu_random_hex(ref, 16);
    assert_int_equal(cu_snprintf(body, sizeof body,
                                 "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],"
                                 "\"image\":\"host\",\"inputs\":[],\"name\":\"%s\","
                                 "\"outputs\":[\"*\"],\"price\":{\"max_per_cu\":10},"
                                 "\"resources\":{\"cores\":1,\"gpus\":0,\"memory\":67108864,"
                                 "\"output\":1048576,\"time_ms\":10000},"
                                 "\"tasks\":{\"count\":%u}}}",
                                 ref, name, count),
                     0);
    exfix_post(E->a, "/v1/jobs", body, 201, NULL, NULL, &out, NULL);
    assert_int_equal(cu_snprintf(job, n, "%s", exfix_str(out, "id")), 0);
    json_decref(out);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", job), 0);
    cu_http_result_init(&r);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, path);
    *spec = json_incref(json_object_get(r.json, "spec"));
    assert_non_null(*spec);
    assert_true(json_is_object(*spec));
    cu_http_result_release(&r);
}

/* Number of times needle occurs in the n bytes at p. */
static size_t count_of(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle), c = 0;

    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            c++;
    return c;
}

/* raw parses as one JSON object with no duplicate key anywhere. */
static json_t *strict_parse(const struct cu_buf *raw)
{
    json_error_t je;
    json_t *j = json_loadb(raw->data, raw->len, JSON_REJECT_DUPLICATES, &je);

    if (!j)
        fail_msg("claim answer is not strict JSON (%s): %.*s", je.text, (int)raw->len, raw->data);
    return j;
}

/* lease is a complete lease of job (its spec equal to spec). */
static void expect_lease(const json_t *lease, const char *job, const json_t *spec)
{
    assert_true(json_is_object(lease));
    for (size_t k = 0; lease_keys[k]; k++)
        if (!json_object_get(lease, lease_keys[k]))
            fail_msg("lease without '%s'", lease_keys[k]);
    assert_string_equal(exfix_str(lease, "job"), job);
    if (!json_equal(json_object_get(lease, "spec"), spec)) {
        char *a = json_dumps(json_object_get(lease, "spec"), JSON_COMPACT | JSON_SORT_KEYS);
        char *b = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("lease of %s: spec %s, the job's %s", job, a ? a : "?", b ? b : "?");
    }
    assert_non_null(json_object_get(json_object_get(lease, "heartbeat"), "secret"));
}

/* A batch over two jobs: every lease carries its own job's spec once. */
static void test_batch_answer_has_every_spec(void **state)
{
    char ja[64], jb[64];
    json_t *sa = NULL, *sb = NULL, *ans, *leases;
    struct cu_buf raw = CU_BUF_INIT(1u << 20);
    size_t na = 0, nb = 0;

    (void)state;
    submit("claim-a", 3, ja, sizeof ja, &sa);
    submit("claim-b", 2, jb, sizeof jb, &sb);
    assert_false(json_equal(sa, sb));
    exfix_post(E->p, "/v1/claims",
               "{\"max\":8,\"wait_ms\":0,\"free\":{\"cores\":8,\"memory\":4294967296,\"gpus\":0}}",
               200, NULL, NULL, NULL, &raw);
    ans = strict_parse(&raw);
    leases = json_object_get(ans, "leases");
    assert_true(json_is_array(leases));
    assert_int_equal(json_array_size(leases), 5);
    for (size_t i = 0; i < json_array_size(leases); i++) {
        json_t *l = json_array_get(leases, i);
        bool is_a = strcmp(exfix_str(l, "job"), ja) == 0;
        expect_lease(l, is_a ? ja : jb, is_a ? sa : sb);
        if (is_a)
            na++;
        else
            nb++;
    }
    assert_int_equal(na, 3);
    assert_int_equal(nb, 2);
    /* One "spec" per lease, no more (the spec has no key of that name). */
    assert_int_equal(count_of(raw.data, raw.len, "\"spec\":"), 5);
    json_decref(ans);
    json_decref(sa);
    json_decref(sb);
    cu_buf_release(&raw);
}

/* A claim without "max" answers the one {"lease"} it always did. */
static void test_single_answer(void **state)
{
    char jc[64];
    json_t *sc = NULL, *ans;
    struct cu_buf raw = CU_BUF_INIT(1u << 20);

    (void)state;
    submit("claim-c", 1, jc, sizeof jc, &sc);
    exfix_post(E->p, "/v1/claims",
               "{\"wait_ms\":0,\"free\":{\"cores\":8,\"memory\":4294967296,\"gpus\":0}}", 200, NULL,
               NULL, NULL, &raw);
    ans = strict_parse(&raw);
    assert_null(json_object_get(ans, "leases"));
    expect_lease(json_object_get(ans, "lease"), jc, sc);
    assert_int_equal(json_object_size(ans), 1);
    json_decref(ans);
    json_decref(sc);
    cu_buf_release(&raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_answer_has_every_spec),
        cmocka_unit_test(test_single_answer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
