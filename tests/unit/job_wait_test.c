/* job_wait_test.c - the job long-poll (docs/api.md, GET /v1/jobs/{id}
 * ?wait_ms=N&after=VERSION) over real signed HTTP against a real exchange:
 * every job answer carries a "version"; a wait on the current version
 * answers when a claim leases the job's replica (not before), and with the
 * same version once wait_ms passed; a stale version answers at once; bad
 * values are refused with a clear 400; cu_api_job_wait does the same from
 * the client library; a new job and its lease to a provider long-polling
 * for work share one fdatasync; and SIGTERM ends a wait in progress at
 * once. */
#include "exchange_fixture.h"

#include <jansson.h>
#include <pthread.h>

#include "client/api.h"
#include "crypto/ident.h"

#include "base/banned.h"

static struct exfix_pair *E;

static const char *const exchange_args[] = {"--lease", "10m", "--devnet", NULL};

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
        "/tmp/cu_jobwait_XXXXXX", exchange_args,
        "{\"slots\":1,\"cores\":4,\"memory\":4294967296,\"gpus\":0,\"price_per_cu\":1}");
    return E ? 0 : -1;
}

/* Submits a 1-task job; its id into job. */
static void submit(char *job, size_t n)
{
    char body[1024], ref[33];
    json_t *out = NULL;

    cu_random_hex(ref, 16);
    assert_int_equal(cu_snprintf(body, sizeof body,
                                 "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],"
                                 "\"image\":\"host\",\"inputs\":[],\"name\":\"jobwait\","
                                 "\"outputs\":[\"*\"],\"price\":{\"max_per_cu\":10},"
                                 "\"resources\":{\"cores\":1,\"gpus\":0,\"memory\":67108864,"
                                 "\"output\":1048576,\"time_ms\":10000},"
                                 "\"tasks\":{\"count\":1}}}",
                                 ref),
                     0);
    exfix_post(E->a, "/v1/jobs", body, 201, NULL, NULL, &out, NULL);
    assert_int_equal(cu_snprintf(job, n, "%s", exfix_str(out, "id")), 0);
    json_decref(out);
}

/* GET path with client c: the status, the JSON (new reference) into *out
 * when out is not NULL, and the time it took (ms). */
static long get(struct cu_http_client *c, const char *path, json_t **out, int64_t *took_ms,
                struct cu_http_result *keep)
{
    struct cu_http_result r;
    int64_t t0 = cu_mono_ms();
    long status;

    cu_http_result_init(&r);
    call(c, "GET", path, NULL, &r);
    if (took_ms)
        *took_ms = cu_mono_ms() - t0;
    status = r.status;
    if (out)
        *out = json_incref(r.json);
    if (keep) {
        *keep = r;
        return status;
    }
    cu_http_result_release(&r);
    return status;
}

/* The job's current version (checked to be 16 lowercase hex digits). */
static void version_of(const char *job, char v[17])
{
    char path[128];
    json_t *j = NULL;

    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", job), 0);
    assert_int_equal(get(E->a, path, &j, NULL, NULL), 200);
    assert_int_equal(strlen(exfix_str(j, "version")), 16);
    assert_int_equal(strspn(exfix_str(j, "version"), "0123456789abcdef"), 16);
    assert_int_equal(cu_snprintf(v, 17, "%s", exfix_str(j, "version")), 0);
    json_decref(j);
}

static void claim(void)
{
    json_t *ans = NULL;

    exfix_post(E->p, "/v1/claims",
               "{\"wait_ms\":0,\"free\":{\"cores\":4,\"memory\":4294967296,"
               "\"gpus\":0}}",
               200, NULL, NULL, &ans, NULL);
    assert_true(json_integer_value(json_object_get(json_object_get(ans, "lease"), "replica")) > 0);
    json_decref(ans);
}

/* Cancels job (its replica must not be leased by a later test's claim). */
static void cancel(const char *job)
{
    char path[128];

    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job), 0);
    exfix_post(E->a, path, "{}", 200, NULL, NULL, NULL, NULL);
}

static void expect_refused(const char *job, const char *query, const char *msg)
{
    struct cu_http_result r;
    char path[256];

    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s?%s", job, query), 0);
    get(E->a, path, NULL, NULL, &r);
    expect_status(&r, 400, "invalid", query);
    if (!strstr(r.err_msg, msg))
        fail_msg("%s: message '%s' does not say '%s'", query, r.err_msg, msg);
    cu_http_result_release(&r);
}

static void test_bad_values_refused(void **state)
{
    char job[64], v[17], q[128];

    (void)state;
    submit(job, sizeof job);
    version_of(job, v);
    expect_refused(job, "wait_ms=abc&after=0123456789abcdef", "'wait_ms'");
    expect_refused(job, "wait_ms=-5&after=0123456789abcdef", "'wait_ms'");
    expect_refused(job, "wait_ms=20001&after=0123456789abcdef", "0..20000");
    expect_refused(job, "wait_ms=100&after=xyz", "'after'");
    expect_refused(job, "wait_ms=100&after=0123456789ABCDEF", "'after'");
    expect_refused(job, "wait_ms=100&after=0123456789abcdef0", "'after'");
    expect_refused(job, "wait_ms=100", "needs 'after'");
    /* wait_ms=0 with a good version: a plain read. */
    assert_int_equal(cu_snprintf(q, sizeof q, "/v1/jobs/%s?wait_ms=0&after=%s", job, v), 0);
    assert_int_equal(get(E->a, q, NULL, NULL, NULL), 200);
    /* Another requester's job is refused at once, as without a wait. */
    assert_int_equal(cu_snprintf(q, sizeof q, "/v1/jobs/%s?wait_ms=5000&after=%s", job, v), 0);
    {
        int64_t took;
        assert_int_equal(get(E->p, q, NULL, &took, NULL), 403);
        assert_true(took < 4000);
    }
    cancel(job);
}

static void test_timeout_same_version(void **state)
{
    char job[64], v[17], path[256];
    json_t *j = NULL;
    int64_t took;

    (void)state;
    submit(job, sizeof job);
    version_of(job, v);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s?wait_ms=400&after=%s", job, v),
                     0);
    assert_int_equal(get(E->a, path, &j, &took, NULL), 200);
    assert_string_equal(exfix_str(j, "version"), v);
    assert_string_equal(exfix_str(j, "id"), job);
    if (took < 350 || took > 5000)
        fail_msg("a wait of 400 ms with nothing happening answered after %lld ms", (long long)took);
    json_decref(j);
    /* A stale version answers at once. */
    assert_int_equal(
        cu_snprintf(path, sizeof path, "/v1/jobs/%s?wait_ms=10000&after=0000000000000000", job),
        0);
    assert_int_equal(get(E->a, path, &j, &took, NULL), 200);
    assert_string_equal(exfix_str(j, "version"), v);
    if (took > 2000)
        fail_msg("a stale version waited %lld ms", (long long)took);
    json_decref(j);
    cancel(job);
}

struct waiter {
    char path[256];
    json_t *j;
    int64_t took;
    long status;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    struct cu_http_client *c = cu_http_client_new(E->x.url, &E->ida);
    struct cu_http_result r;
    int64_t t0 = cu_mono_ms();

    cu_http_result_init(&r);
    if (c && cu_http_request(c, "GET", w->path, NULL, 0, EXFIX_TIMEOUT_MS, &r) == 0) {
        w->status = r.status;
        w->j = json_incref(r.json);
    }
    w->took = cu_mono_ms() - t0;
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

static void test_answers_on_change(void **state)
{
    char job[64], v[17];
    struct waiter w = {0};
    pthread_t th;
    const json_t *rep;

    (void)state;
    submit(job, sizeof job);
    version_of(job, v);
    assert_int_equal(
        cu_snprintf(w.path, sizeof w.path, "/v1/jobs/%s?wait_ms=15000&after=%s", job, v), 0);
    assert_int_equal(pthread_create(&th, NULL, wait_main, &w), 0);
    cu_sleep_ms(300);
    claim(); /* the job's replica is leased: a change */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(w.status, 200);
    if (w.took < 250 || w.took > 5000)
        fail_msg("the wait answered after %lld ms (the change came at ~300 ms)",
                 (long long)w.took);
    assert_string_not_equal(exfix_str(w.j, "version"), v);
    rep = json_array_get(
        json_object_get(json_array_get(json_object_get(w.j, "tasks"), 0), "replicas"), 0);
    assert_string_equal(exfix_str(rep, "state"), "leased");
    json_decref(w.j);
}

static void test_client_library(void **state)
{
    struct cu_api api;
    struct cu_err e = {0};
    char job[64], v[17];
    json_t *j = NULL;
    int64_t t0;

    (void)state;
    submit(job, sizeof job);
    version_of(job, v);
    assert_int_equal(cu_api_open(&api, E->x.url, &E->ida, &e), 0);
    t0 = cu_mono_ms();
    assert_int_equal(cu_api_job_wait(&api, job, v, 300, &j, &e), 0);
    assert_true(cu_mono_ms() - t0 >= 250);
    assert_string_equal(exfix_str(j, "version"), v);
    json_decref(j);
    assert_int_equal(cu_api_job_wait(&api, job, NULL, 300, &j, &e), 0); /* at once */
    json_decref(j);
    assert_int_equal(cu_api_job_wait(&api, job, v, CU_API_JOB_WAIT_MAX_MS + 1, &j, &e),
                     -CU_EINVAL);
    assert_null(j);
    assert_int_equal(cu_api_job_wait(&api, job, "12/../x", 300, &j, &e), -CU_EPROTO);
    cu_api_close(&api);
    cancel(job);
}

/* The value of a counter line "NAME VALUE" in GET /metrics. */
static uint64_t metric(const char *name)
{
    struct cu_http_result r;
    char key[96];
    const char *p;
    uint64_t v = 0;

    cu_http_result_init(&r);
    call(E->a, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(cu_snprintf(key, sizeof key, "\n%s ", name), 0);
    p = r.body.data ? strstr(r.body.data, key) : NULL;
    if (!p)
        fail_msg("/metrics has no line %s", name);
    v = strtoull(p + strlen(key), NULL, 10);
    cu_http_result_release(&r);
    return v;
}

struct claimer {
    json_t *ans;
    long status;
};

static void *claim_main(void *arg)
{
    struct claimer *c = arg;
    struct cu_http_client *h = cu_http_client_new(E->x.url, &E->idp);
    static const char body[] = "{\"wait_ms\":15000,\"free\":{\"cores\":4,"
                               "\"memory\":4294967296,\"gpus\":0}}";
    struct cu_http_result r;

    cu_http_result_init(&r);
    if (h && cu_http_request(h, "POST", "/v1/claims", body, sizeof body - 1, EXFIX_TIMEOUT_MS,
                             &r) == 0) {
        c->status = r.status;
        c->ans = json_incref(r.json);
    }
    cu_http_result_release(&r);
    cu_http_client_free(h);
    return NULL;
}

/* A job submitted while a provider long-polls for work: the claim commits
 * its lease while the job's barrier leader waits for it (cu_db_expect), and
 * one fdatasync makes both durable. Only a leader that gave up waiting (a
 * claim slower than EX_CLAIM_EXPECT_US, say on a loaded machine) may
 * leave the lease a sync of its own. */
static void test_job_and_lease_share_sync(void **state)
{
    struct claimer c = {0};
    pthread_t th;
    char job[64];
    uint64_t syncs, timeouts;
    const json_t *lease;

    (void)state;
    assert_int_equal(pthread_create(&th, NULL, claim_main, &c), 0);
    cu_sleep_ms(500); /* the claim waits for work */
    syncs = metric("cumulus_db_syncs_total");
    timeouts = metric("cumulus_db_expect_timeouts_total");
    submit(job, sizeof job);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(c.status, 200);
    lease = json_object_get(c.ans, "lease");
    assert_string_equal(exfix_str(lease, "job"), job);
    syncs = metric("cumulus_db_syncs_total") - syncs;
    timeouts = metric("cumulus_db_expect_timeouts_total") - timeouts;
    if (timeouts == 0 && syncs != 1)
        fail_msg("a new job and its lease took %llu fdatasync calls, not one",
                 (unsigned long long)syncs);
    assert_true(syncs >= 1 && syncs <= 2);
    json_decref(c.ans);
    cancel(job);
}

/* Last: stops the exchange. */
static void test_stop_ends_wait(void **state)
{
    char job[64], v[17];
    struct waiter w = {0};
    pthread_t th;

    (void)state;
    submit(job, sizeof job);
    version_of(job, v);
    assert_int_equal(
        cu_snprintf(w.path, sizeof w.path, "/v1/jobs/%s?wait_ms=20000&after=%s", job, v), 0);
    assert_int_equal(pthread_create(&th, NULL, wait_main, &w), 0);
    cu_sleep_ms(300);
    exfix_stop(&E->x, SIGTERM);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (w.took > 8000)
        fail_msg("a wait outlived the exchange's stop by %lld ms", (long long)w.took);
    json_decref(w.j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_values_refused),
        cmocka_unit_test(test_timeout_same_version),
        cmocka_unit_test(test_answers_on_change),
        cmocka_unit_test(test_client_library),
        cmocka_unit_test(test_job_and_lease_share_sync),
        cmocka_unit_test(test_stop_ends_wait),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
