/* api_ownership_test.c - a provider may only report on replicas it holds;
 * a requester may only read and cancel its own jobs (docs/api.md: 403
 * `forbidden`), and every refused request leaves the state unchanged.
 *
 * Starts the real exchange (build/cumulus, relative to the repository root,
 * where tests/run.sh runs; CUMULUS_BIN overrides) on 127.0.0.1:0 in a
 * temporary directory, as api_auth_test.c does, and talks to it with four
 * identities: requesters A and B, providers P and Q.
 *
 * The tests run in order and share the story kept in E: A's job, the
 * replica P holds. */
#include "exchange_fixture.h"

#include <errno.h>
#include <jansson.h>

#include "crypto/ident.h"
#include "trust/challenge.h"
#include "crypto/merkle.h"

#include "base/banned.h"

struct env {
    struct exfix x; /* dir, url, pid */
    struct cu_identity ida, idb, idp, idq;
    struct cu_http_client *a, *b, *p, *q; /* signed with ida, idb, idp, idq */
    char job[64];                         /* A's job */
    char job_b[64];                       /* B's own job */
    int64_t r0, r1;                       /* replicas leased to P (tasks 0, 1) */
    char empty_hex[CU_HASH_HEX_LEN + 1];  /* hash of the empty blob */
    char root_hex[CU_HASH_HEX_LEN + 1];   /* Merkle root of zero files */
};

static struct env *E;

/* A long lease: a slow machine must not see P's lease expire. */
static const char *const exchange_args[] = {"--lease", "10m", "--devnet", NULL};

static int group_teardown(void **state);

/* On any failure everything started so far is stopped and removed here:
 * cmocka does not run the group teardown after a failed setup. */
static int group_setup(void **state)
{
    struct cu_hash h;

    E = calloc(1, sizeof *E);
    if (!E)
        return -1;
    if (exfix_init(&E->x, "/tmp/cu_own_XXXXXX") != 0)
        goto out_fail;
    if (cu_identity_generate(&E->ida) || cu_identity_generate(&E->idb) ||
        cu_identity_generate(&E->idp) || cu_identity_generate(&E->idq))
        goto out_fail;
    if (exfix_start(&E->x, "data", exchange_args, 60, false) != 0)
        goto out_fail;
    E->a = cu_http_client_new(E->x.url, &E->ida);
    E->b = cu_http_client_new(E->x.url, &E->idb);
    E->p = cu_http_client_new(E->x.url, &E->idp);
    E->q = cu_http_client_new(E->x.url, &E->idq);
    if (!E->a || !E->b || !E->p || !E->q)
        goto out_fail;
    /* Jobs lock their cost in escrow: fund both requesters. */
    for (int i = 0; i < 2; i++) {
        struct cu_http_result r;
        int rc;
        cu_http_result_init(&r);
        rc = cu_http_request(i ? E->b : E->a, "POST", "/v1/faucet", "{\"amount\":1000000000}",
                             21, EXFIX_TIMEOUT_MS, &r);
        if (rc != 0 || r.status != 200) {
            cu_http_result_release(&r);
            goto out_fail;
        }
        cu_http_result_release(&r);
    }
    cu_hash_mem("", 0, &h);
    cu_hash_to_hex(&h, E->empty_hex);
    if (cu_merkle_root(NULL, 0, &h) != 0)
        goto out_fail;
    cu_hash_to_hex(&h, E->root_hex);
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
    cu_http_client_free(E->a);
    cu_http_client_free(E->b);
    cu_http_client_free(E->p);
    cu_http_client_free(E->q);
    exfix_cleanup(&E->x);
    cu_identity_wipe(&E->ida);
    cu_identity_wipe(&E->idb);
    cu_identity_wipe(&E->idp);
    cu_identity_wipe(&E->idq);
    free(E);
    E = NULL;
    return 0;
}

/* ---- helpers ------------------------------------------------------------------- */

/* GET /v1/jobs/{id} as A (200), as canonical text (caller frees) and
 * optionally as JSON (*j, caller decrefs). */
static char *job_snapshot(const char *id, json_t **j)
{
    struct cu_http_result r;
    char path[128];
    char *s;

    cu_http_result_init(&r);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", id), 0);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, "A reads its job");
    assert_non_null(r.json);
    s = json_dumps(r.json, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(s);
    if (j)
        *j = json_incref(r.json);
    cu_http_result_release(&r);
    return s;
}

static void expect_same(const char *before, const char *after, const char *what)
{
    if (strcmp(before, after) != 0)
        fail_msg("%s changed the job:\nbefore: %s\nafter:  %s", what, before, after);
}

/* tasks[idx] of a job JSON. */
static json_t *task_of(json_t *job, size_t idx)
{
    json_t *t = json_array_get(json_object_get(job, "tasks"), idx);
    assert_non_null(t);
    return t;
}

static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s)
        fail_msg("no string '%s' in the answer", key);
    return s;
}

/* Asserts the task at idx has exactly one replica, rid, held by P in a
 * held state (leased or running). */
static void expect_held_by_p(json_t *job, size_t idx, int64_t rid)
{
    json_t *t = task_of(job, idx);
    json_t *reps = json_object_get(t, "replicas");
    json_t *rep;
    const char *st;

    assert_int_equal(json_array_size(reps), 1);
    rep = json_array_get(reps, 0);
    assert_int_equal(json_integer_value(json_object_get(rep, "id")), rid);
    assert_string_equal(str_of(rep, "provider"), E->idp.id);
    st = str_of(rep, "state");
    if (strcmp(st, "leased") != 0 && strcmp(st, "running") != 0)
        fail_msg("replica %lld is %s, not leased/running", (long long)rid, st);
    assert_string_equal(str_of(t, "state"), "running");
    assert_true(json_is_null(json_object_get(rep, "reported_ms")));
}

static const char *spec_fmt =
    "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],"
    "\"image\":\"host\",\"inputs\":[],\"name\":\"%s\",\"outputs\":[\"*.txt\"],"
    "\"price\":{\"max_per_cu\":100},\"replication\":1,\"resources\":{\"cores\":%d,"
    "\"gpus\":0,\"memory\":67108864,\"output\":1048576,\"time_ms\":10000},"
    "\"tasks\":{\"count\":%d}}}";

/* Submits a job; its id into id. */
static void submit(struct cu_http_client *c, const char *name, int cores, int tasks, char *id,
                   size_t idsz)
{
    struct cu_http_result r;
    char ref[33], body[1024];

    cu_random_hex(ref, 16);
    assert_int_equal(cu_snprintf(body, sizeof body, spec_fmt, ref, name, cores, tasks), 0);
    cu_http_result_init(&r);
    call(c, "POST", "/v1/jobs", body, &r);
    expect_status(&r, 201, NULL, "submit");
    assert_non_null(r.json);
    assert_int_equal(json_integer_value(json_object_get(r.json, "tasks")), tasks);
    assert_int_equal(cu_snprintf(id, idsz, "%s", str_of(r.json, "id")), 0);
    cu_http_result_release(&r);
}

/* Number of jobs c lists, and whether id is among them. */
static size_t list_jobs(struct cu_http_client *c, const char *id, bool *has)
{
    struct cu_http_result r;
    json_t *jobs, *v;
    size_t i, n;

    cu_http_result_init(&r);
    call(c, "GET", "/v1/jobs", NULL, &r);
    expect_status(&r, 200, NULL, "GET /v1/jobs");
    jobs = json_object_get(r.json, "jobs");
    assert_true(json_is_array(jobs));
    n = json_array_size(jobs);
    *has = false;
    json_array_foreach(jobs, i, v)
    {
        if (strcmp(str_of(v, "id"), id) == 0)
            *has = true;
        if (strcmp(str_of(v, "owner"), c == E->a ? E->ida.id : E->idb.id) != 0)
            fail_msg("a listed job belongs to someone else: %s", cu_buf_str(&r.body));
    }
    cu_http_result_release(&r);
    return n;
}

static void hello(struct cu_http_client *c)
{
    struct cu_http_result r;
    cu_http_result_init(&r);
    call(c, "POST", "/v1/providers/hello",
         "{\"slots\":2,\"cores\":2,\"memory\":1073741824,\"gpus\":0,\"version\":\"0.1.0\"}", &r);
    expect_status(&r, 200, NULL, "hello");
    cu_http_result_release(&r);
}

/* P claims (free: 1 core, so B's 2-core job never fits); the replica id,
 * checked to belong to A's job and task idx. */
/* Heartbeat challenges: the secret and open nonce of each leased replica
 * (docs/api.md "Trust"); heartbeats answer the nonce. */
#define HB_MAX 8
static struct {
    int64_t rid;
    unsigned char secret[CU_CHAL_KEY_LEN], nonce[CU_CHAL_NONCE_LEN];
} hb_tab[HB_MAX];

static void hb_remember(int64_t rid, const json_t *hb, bool nonce_only)
{
    for (int i = 0; i < HB_MAX; i++) {
        if (hb_tab[i].rid != rid && hb_tab[i].rid != 0)
            continue;
        hb_tab[i].rid = rid;
        if (!nonce_only)
            assert_int_equal(cu_hex_decode(json_string_value(json_object_get(hb, "secret")),
                                           hb_tab[i].secret, CU_CHAL_KEY_LEN),
                             0);
        assert_int_equal(cu_hex_decode(json_string_value(json_object_get(hb, "nonce")),
                                       hb_tab[i].nonce, CU_CHAL_NONCE_LEN),
                         0);
        return;
    }
    fail_msg("too many replicas to remember");
}

/* A heartbeat body answering rid's open nonce (a wrong one when bad). */
static char *hb_body(int64_t rid, bool bad)
{
    unsigned char ans[CU_CHAL_ANSWER_LEN];
    char hex[2 * CU_CHAL_ANSWER_LEN + 1], *s;
    json_t *j;

    for (int i = 0; i < HB_MAX; i++) {
        if (hb_tab[i].rid != rid)
            continue;
        cu_chal_heartbeat_answer(hb_tab[i].secret, rid, hb_tab[i].nonce, ans);
        if (bad)
            ans[0] ^= 1;
        cu_hex_encode(ans, sizeof ans, hex);
        j = json_pack("{s:s,s:s}", "state", "running", "answer", hex);
        s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        return s;
    }
    return strdup("{\"state\":\"running\"}");
}

static int64_t claim_p(int64_t idx)
{
    struct cu_http_result r;
    json_t *lease;
    int64_t rid;

    cu_http_result_init(&r);
    call(E->p, "POST", "/v1/claims",
         "{\"wait_ms\":2000,\"free\":{\"cores\":1,\"memory\":1073741824,\"gpus\":0}}", &r);
    expect_status(&r, 200, NULL, "P claims");
    lease = json_object_get(r.json, "lease");
    assert_non_null(lease);
    assert_string_equal(str_of(lease, "job"), E->job);
    assert_int_equal(json_integer_value(json_object_get(lease, "task")), idx);
    rid = json_integer_value(json_object_get(lease, "replica"));
    assert_true(rid > 0);
    hb_remember(rid, json_object_get(lease, "heartbeat"), false);
    cu_http_result_release(&r);
    return rid;
}

/* A report body: status ok, no outputs, empty logs, the given root. */
static char *report_body(const char *root)
{
    json_t *j = json_pack("{s:s,s:i,s:n,s:i,s:i,s:[],s:s,s:{s:s,s:i},s:{s:s,s:i}}", "status", "ok",
                          "exit_code", 0, "reason", "cpu_ms", 1, "wall_ms", 2, "outputs",
                          "merkle_root", root, "stdout", "hash", E->empty_hex, "size", 0, "stderr",
                          "hash", E->empty_hex, "size", 0);
    char *s;
    assert_non_null(j);
    s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    return s;
}

static void replica_path(char *out, size_t n, int64_t rid, const char *what)
{
    assert_int_equal(cu_snprintf(out, n, "/v1/replicas/%lld/%s", (long long)rid, what), 0);
}

/* ---- the story -------------------------------------------------------------------- */

static void test_requester_owns_its_jobs(void **state)
{
    (void)state;
    struct cu_http_result r;
    char path[256], *before, *after;
    bool has;

    submit(E->a, "own-a", 1, 2, E->job, sizeof E->job);
    submit(E->b, "own-b", 2, 1, E->job_b, sizeof E->job_b);
    before = job_snapshot(E->job, NULL);
    cu_http_result_init(&r);

    /* B cannot read, cancel or list A's job, nor read its logs. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", E->job), 0);
    call(E->b, "GET", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "B reads A's job");
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s/cancel", E->job), 0);
    call(E->b, "POST", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "B cancels A's job");
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s/tasks/0/logs", E->job), 0);
    call(E->b, "GET", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "B reads A's logs");
    assert_int_equal(list_jobs(E->b, E->job, &has), 1);
    assert_false(has);
    assert_int_equal(list_jobs(E->b, E->job_b, &has), 1);
    assert_true(has);
    /* ...and the other way round. */
    assert_int_equal(list_jobs(E->a, E->job_b, &has), 1);
    assert_false(has);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", E->job_b), 0);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "A reads B's job");
    /* A job nobody has is 404, not 403. */
    call(E->b, "GET", "/v1/jobs/j-000000000000000000000000", NULL, &r);
    expect_status(&r, 404, "not_found", "B reads a job that does not exist");

    after = job_snapshot(E->job, NULL);
    expect_same(before, after, "B's refused requests");
    assert_non_null(strstr(after, "\"state\":\"running\""));
    /* A's own logs: no replica has reported yet. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s/tasks/0/logs", E->job), 0);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 404, "not_found", "A reads logs before any report");
    cu_http_result_release(&r);
    free(before);
    free(after);
}

static void test_provider_only_touches_its_replica(void **state)
{
    (void)state;
    struct cu_http_result r;
    char path[128], *before, *after, *body;
    json_t *job;

    hello(E->p);
    hello(E->q);
    E->r0 = claim_p(0);
    before = job_snapshot(E->job, &job);
    expect_held_by_p(job, 0, E->r0);
    json_decref(job);

    cu_http_result_init(&r);
    replica_path(path, sizeof path, E->r0, "heartbeat");
    call(E->q, "POST", path, "{\"state\":\"running\"}", &r);
    expect_status(&r, 403, "forbidden", "Q heartbeats P's replica");
    replica_path(path, sizeof path, E->r0, "report");
    body = report_body(E->root_hex);
    call(E->q, "POST", path, body, &r);
    expect_status(&r, 403, "forbidden", "Q reports P's replica");
    /* Requesters are not providers either. */
    call(E->a, "POST", path, body, &r);
    expect_status(&r, 403, "forbidden", "A reports P's replica");

    after = job_snapshot(E->job, &job);
    expect_same(before, after, "Q's refused requests");
    expect_held_by_p(job, 0, E->r0);
    json_decref(job);

    /* Unknown replicas. */
    replica_path(path, sizeof path, 999999999, "heartbeat");
    call(E->q, "POST", path, "{\"state\":\"running\"}", &r);
    expect_status(&r, 404, "not_found", "heartbeat of an unknown replica");
    replica_path(path, sizeof path, 999999999, "report");
    call(E->p, "POST", path, body, &r);
    expect_status(&r, 404, "not_found", "report of an unknown replica");
    call(E->p, "POST", "/v1/replicas/nope/report", body, &r);
    expect_status(&r, 404, "not_found", "report of a non-numeric replica");

    /* P's own heartbeat works and keeps the replica P's. */
    replica_path(path, sizeof path, E->r0, "heartbeat");
    {
        char *hb = hb_body(E->r0, false);
        call(E->p, "POST", path, hb, &r);
        free(hb);
    }
    expect_status(&r, 200, NULL, "P heartbeats its replica");
    hb_remember(E->r0, r.json, true);
    assert_false(json_is_true(json_object_get(r.json, "cancel")));
    free(after);
    after = job_snapshot(E->job, &job);
    expect_held_by_p(job, 0, E->r0);
    json_decref(job);

    cu_http_result_release(&r);
    free(body);
    free(before);
    free(after);
}

static void test_holder_reports(void **state)
{
    (void)state;
    struct cu_http_result r;
    char path[256], *before, *after, *body;
    json_t *job, *t, *rep;

    cu_http_result_init(&r);
    /* The empty log blob first. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/blobs/%s", E->empty_hex), 0);
    call(E->p, "PUT", path, NULL, &r);
    if (r.status != 201 && r.status != 200)
        fail_msg("P uploads the empty blob: %ld %s", r.status, cu_buf_str(&r.body));

    replica_path(path, sizeof path, E->r0, "report");
    body = report_body(E->root_hex);
    call(E->p, "POST", path, body, &r);
    expect_status(&r, 200, NULL, "P reports its replica");
    assert_int_equal(json_integer_value(json_object_get(r.json, "replica")), E->r0);
    assert_string_equal(str_of(r.json, "state"), "accepted");
    assert_string_equal(str_of(r.json, "task_state"), "done");

    before = job_snapshot(E->job, &job);
    t = task_of(job, 0);
    assert_string_equal(str_of(t, "state"), "done");
    rep = json_array_get(json_object_get(t, "replicas"), 0);
    assert_string_equal(str_of(rep, "state"), "accepted");
    assert_string_equal(str_of(rep, "provider"), E->idp.id);
    assert_string_equal(str_of(rep, "merkle_root"), E->root_hex);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "result"), "replica")),
                     E->r0);
    assert_string_equal(str_of(task_of(job, 1), "state"), "queued");
    assert_string_equal(str_of(job, "state"), "running");
    json_decref(job);

    /* Again: idempotent, nothing changes. */
    call(E->p, "POST", path, body, &r);
    expect_status(&r, 200, NULL, "P reports again");
    assert_string_equal(str_of(r.json, "state"), "accepted");
    assert_string_equal(str_of(r.json, "task_state"), "done");
    /* Q still may not, even now that it is reported. */
    call(E->q, "POST", path, body, &r);
    expect_status(&r, 403, "forbidden", "Q reports P's reported replica");
    after = job_snapshot(E->job, NULL);
    expect_same(before, after, "the repeated report and Q's");
    free(after);

    /* Logs: A reads them, B may not. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s/tasks/0/logs", E->job), 0);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, "A reads its logs");
    assert_int_equal(json_integer_value(json_object_get(r.json, "replica")), E->r0);
    assert_string_equal(str_of(r.json, "status"), "ok");
    assert_string_equal(str_of(r.json, "stdout"), "");
    call(E->b, "GET", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "B reads A's logs after the report");

    after = job_snapshot(E->job, NULL);
    expect_same(before, after, "reading logs");
    cu_http_result_release(&r);
    free(body);
    free(before);
    free(after);
}

static void test_wrong_merkle_root_refused(void **state)
{
    (void)state;
    struct cu_http_result r;
    char path[128], *before, *after, *body, wrong[CU_HASH_HEX_LEN + 1];
    json_t *job;

    E->r1 = claim_p(1);
    before = job_snapshot(E->job, &job);
    expect_held_by_p(job, 1, E->r1);
    json_decref(job);

    memcpy(wrong, E->root_hex, sizeof wrong);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    body = report_body(wrong);
    cu_http_result_init(&r);
    replica_path(path, sizeof path, E->r1, "report");
    call(E->p, "POST", path, body, &r);
    expect_status(&r, 400, "invalid", "report with a wrong merkle_root");
    assert_non_null(strstr(r.err_msg, "merkle_root"));

    after = job_snapshot(E->job, &job);
    expect_same(before, after, "the refused report");
    expect_held_by_p(job, 1, E->r1);
    json_decref(job);
    cu_http_result_release(&r);
    free(body);
    free(before);
    free(after);
}

static void test_only_owner_cancels(void **state)
{
    (void)state;
    struct cu_http_result r;
    char path[128], *before, *after;
    json_t *job;

    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s/cancel", E->job), 0);
    before = job_snapshot(E->job, NULL);
    cu_http_result_init(&r);
    call(E->b, "POST", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "B cancels A's job");
    call(E->p, "POST", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "P cancels A's job");
    after = job_snapshot(E->job, NULL);
    expect_same(before, after, "the refused cancels");
    free(after);

    call(E->a, "POST", path, NULL, &r);
    expect_status(&r, 200, NULL, "A cancels its job");
    assert_string_equal(str_of(r.json, "id"), E->job);
    assert_string_equal(str_of(r.json, "state"), "cancelled");

    after = job_snapshot(E->job, &job);
    assert_string_equal(str_of(job, "state"), "cancelled");
    assert_string_equal(str_of(job, "reason"), "cancelled by owner");
    assert_string_equal(str_of(task_of(job, 0), "state"), "done");
    assert_string_equal(str_of(task_of(job, 1), "state"), "cancelled");
    json_decref(job);

    /* After the cancel B still can do nothing, and a second cancel is 409. */
    call(E->b, "POST", path, NULL, &r);
    expect_status(&r, 403, "forbidden", "B cancels A's cancelled job");
    call(E->a, "POST", path, NULL, &r);
    expect_status(&r, 409, "job_finished", "A cancels twice");
    free(before);
    before = after;
    after = job_snapshot(E->job, NULL);
    expect_same(before, after, "the refused cancels after the cancel");

    /* B's own job was never touched. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", E->job_b), 0);
    call(E->b, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, "B reads its job");
    assert_string_equal(str_of(r.json, "state"), "running");
    cu_http_result_release(&r);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requester_owns_its_jobs),
        cmocka_unit_test(test_provider_only_touches_its_replica),
        cmocka_unit_test(test_holder_reports),
        cmocka_unit_test(test_wrong_merkle_root_refused),
        cmocka_unit_test(test_only_owner_cancels),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
