/* trust_exchange_test.c - the exchange's side of trust (docs/api.md
 * "Trust"), driven over real signed HTTP against a real exchange:
 * capability challenges before a lease (a wrong answer shuts the provider
 * out of the job), heartbeat challenges (a wrong answer ends the lease),
 * commit-then-reveal (no reveal before the other replica commits; a report
 * that does not match its commitment is a wrong result), slashing of a
 * quorum loser, staking, reputation records, distinct owners. */
#include "exchange_fixture.h"

#include <inttypes.h>
#include <jansson.h>

#include "crypto/ident.h"
#include "crypto/merkle.h"
#include "exchange/state.h"
#include "trust/challenge.h"

#include "base/banned.h"

struct env {
    struct exfix x;
    struct cu_identity ida, idp, idq, idr;
    struct cu_http_client *a, *p, *q, *r;
    char root_hex[CU_HASH_HEX_LEN + 1], empty_hex[CU_HASH_HEX_LEN + 1];
};
static struct env *E;

static const char *const exchange_args[] = {"--lease", "10m", "--devnet", "--slash-bps", "5000",
                                            NULL};

static int group_teardown(void **state)
{
    (void)state;
    if (!E)
        return 0;
    cu_http_client_free(E->a);
    cu_http_client_free(E->p);
    cu_http_client_free(E->q);
    cu_http_client_free(E->r);
    exfix_cleanup(&E->x);
    free(E);
    E = NULL;
    return 0;
}

static int group_setup(void **state)
{
    struct cu_hash h;

    E = calloc(1, sizeof *E);
    if (!E || exfix_init(&E->x, "/tmp/cu_trust_XXXXXX") != 0)
        goto out_fail;
    if (cu_identity_generate(&E->ida) || cu_identity_generate(&E->idp) ||
        cu_identity_generate(&E->idq) || cu_identity_generate(&E->idr))
        goto out_fail;
    if (exfix_start(&E->x, "data", exchange_args, 60, false) != 0)
        goto out_fail;
    E->a = cu_http_client_new(E->x.url, &E->ida);
    E->p = cu_http_client_new(E->x.url, &E->idp);
    E->q = cu_http_client_new(E->x.url, &E->idq);
    E->r = cu_http_client_new(E->x.url, &E->idr);
    if (!E->a || !E->p || !E->q || !E->r)
        goto out_fail;
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

static void fund(struct cu_http_client *c, uint64_t amount)
{
    char body[64];
    assert_int_equal(cu_snprintf(body, sizeof body, "{\"amount\":%" PRIu64 "}", amount), 0);
    exfix_post(c, "/v1/faucet", body, 200, NULL, "faucet", NULL, NULL);
}

static void hello(struct cu_http_client *c, const char *owner)
{
    char body[256];
    if (owner)
        assert_int_equal(cu_snprintf(body, sizeof body,
                                     "{\"slots\":1,\"cores\":4,\"memory\":4294967296,\"gpus\":0,"
                                     "\"price_per_cu\":1,\"owner\":\"%s\"}",
                                     owner),
                         0);
    else
        assert_int_equal(cu_snprintf(body, sizeof body,
                                     "{\"slots\":1,\"cores\":4,\"memory\":4294967296,\"gpus\":0,"
                                     "\"price_per_cu\":1}"),
                         0);
    exfix_post(c, "/v1/providers/hello", body, 200, NULL, "hello", NULL, NULL);
}

/* Submits a job with the extra top-level spec fields; returns its id. */
static void submit(const char *name, int tasks, const char *extra, char *id, size_t idsz)
{
    char body[1024], ref[33];
    json_t *out = NULL;

    cu_random_hex(ref, 16);
    assert_int_equal(cu_snprintf(body, sizeof body,
                                 "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],"
                                 "\"image\":\"host\",\"inputs\":[],\"name\":\"%s\","
                                 "\"outputs\":[\"*\"],\"price\":{\"max_per_cu\":10},"
                                 "\"resources\":{\"cores\":1,\"gpus\":0,\"memory\":67108864,"
                                 "\"output\":1048576,\"time_ms\":10000},"
                                 "\"tasks\":{\"count\":%d}%s}}",
                                 ref, name, tasks, extra),
                     0);
    exfix_post(E->a, "/v1/jobs", body, 201, NULL, "submit", &out, NULL);
    assert_int_equal(cu_snprintf(id, idsz, "%s", exfix_str(out, "id")), 0);
    json_decref(out);
}

/* One claim without waiting: the answer's JSON (lease or challenge), or
 * NULL for 204. */
static json_t *claim(struct cu_http_client *c)
{
    struct cu_http_result r;
    json_t *j = NULL;

    cu_http_result_init(&r);
    call(c, "POST", "/v1/claims",
         "{\"wait_ms\":0,\"free\":{\"cores\":4,\"memory\":4294967296,\"gpus\":0}}", &r);
    if (r.status == 200)
        j = json_incref(r.json);
    else if (r.status != 204)
        fail_msg("claim: %ld %s", r.status, cu_buf_str(&r.body));
    cu_http_result_release(&r);
    return j;
}

static char *report_body(const char *root)
{
    json_t *j = json_pack("{s:s,s:i,s:n,s:i,s:i,s:[],s:s,s:{s:s,s:i},s:{s:s,s:i}}", "status", "ok",
                          "exit_code", 0, "reason", "cpu_ms", 10, "wall_ms", 20, "outputs",
                          "merkle_root", root, "stdout", "hash", E->empty_hex, "size", 0, "stderr",
                          "hash", E->empty_hex, "size", 0);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    return s;
}

/* The heartbeat answer to the lease's current nonce (wrong when bad). */
static char *hb_body(const json_t *lease, int64_t rid, const char *nonce_hex, bool bad)
{
    const json_t *hb = json_object_get(lease, "heartbeat");
    unsigned char secret[CU_CHAL_KEY_LEN], nonce[CU_CHAL_NONCE_LEN], ans[CU_CHAL_ANSWER_LEN];
    char hex[2 * CU_CHAL_ANSWER_LEN + 1], *s;
    json_t *j;

    assert_int_equal(cu_hex_decode(exfix_str(hb, "secret"), secret, sizeof secret), 0);
    assert_int_equal(
        cu_hex_decode(nonce_hex ? nonce_hex : exfix_str(hb, "nonce"), nonce, sizeof nonce), 0);
    cu_chal_heartbeat_answer(secret, rid, nonce, ans);
    if (bad)
        ans[3] ^= 0x10;
    cu_hex_encode(ans, sizeof ans, hex);
    j = json_pack("{s:s,s:s}", "state", "running", "answer", hex);
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static json_t *reputation(const char *id)
{
    struct cu_http_result r;
    char path[128];
    json_t *j;

    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/reputation/%s", id), 0);
    cu_http_result_init(&r);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, "reputation");
    j = json_incref(r.json);
    cu_http_result_release(&r);
    return j;
}

static void test_capability_challenge(void **state)
{
    char job[40], path[96], body[128];
    json_t *ans, *ch, *lease, *rep;
    struct cu_factor_answer fa;
    const char *n_s;

    (void)state;
    fund(E->a, 100000000);
    hello(E->p, NULL);
    hello(E->q, NULL);
    submit("chal", 1, ",\"challenge\":{\"kind\":\"factor\",\"bits\":32}", job, sizeof job);

    /* Q answers wrongly: it is shut out of the job and marked. */
    ans = claim(E->q);
    assert_non_null(ans);
    ch = json_object_get(ans, "challenge");
    assert_non_null(ch);
    assert_string_equal(exfix_str(ch, "kind"), "factor");
    assert_string_equal(exfix_str(ch, "job"), job);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/challenges/%s", exfix_str(ch, "id")), 0);
    json_decref(ans);
    exfix_post(E->q, path, "{\"p\":\"3\",\"q\":\"5\"}", 200, NULL, "wrong answer", &ans, NULL);
    assert_false(json_is_true(json_object_get(ans, "passed")));
    json_decref(ans);
    assert_null(claim(E->q)); /* never this job again */
    rep = reputation(E->idq.id);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(rep, "counts"),
                                                        "challenge_failed")),
                     1);
    json_decref(rep);

    /* P factors it and then gets the lease, with a heartbeat challenge. */
    ans = claim(E->p);
    ch = json_object_get(ans, "challenge");
    assert_non_null(ch);
    n_s = exfix_str(ch, "n");
    assert_int_equal(cu_chal_factor_solve(strtoull(n_s, NULL, 10), 100000000, &fa, NULL), 0);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/challenges/%s", exfix_str(ch, "id")), 0);
    assert_int_equal(
        cu_snprintf(body, sizeof body, "{\"p\":\"%" PRIu64 "\",\"q\":\"%" PRIu64 "\"}", fa.p, fa.q),
        0);
    json_decref(ans);
    exfix_post(E->p, path, body, 200, NULL, "right answer", &ans, NULL);
    assert_true(json_is_true(json_object_get(ans, "passed")));
    json_decref(ans);
    ans = claim(E->p);
    lease = json_object_get(ans, "lease");
    assert_non_null(lease);
    assert_non_null(json_object_get(lease, "heartbeat"));
    json_decref(ans);
}

static void test_heartbeat_challenge(void **state)
{
    char job[40], path[96], *hb;
    json_t *ans, *lease, *out;
    int64_t rid;

    (void)state;
    hello(E->r, NULL);
    submit("hb", 1, "", job, sizeof job);
    ans = claim(E->r);
    lease = json_object_get(ans, "lease");
    assert_non_null(lease);
    rid = json_integer_value(json_object_get(lease, "replica"));
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/heartbeat", rid), 0);

    /* Right answers renew, each with a fresh nonce. */
    hb = hb_body(lease, rid, NULL, false);
    exfix_post(E->r, path, hb, 200, NULL, "answered heartbeat", &out, NULL);
    free(hb);
    assert_string_not_equal(exfix_str(out, "nonce"),
                            exfix_str(json_object_get(lease, "heartbeat"), "nonce"));
    /* The old nonce no longer works; the new one does, once. */
    hb = hb_body(lease, rid, exfix_str(out, "nonce"), false);
    json_decref(out);
    exfix_post(E->r, path, hb, 200, NULL, "second heartbeat", &out, NULL);
    free(hb);
    /* A missing answer ends the lease. */
    exfix_post(E->r, path, "{\"state\":\"running\"}", 409, "challenge_failed",
               "unanswered heartbeat", NULL, NULL);
    exfix_post(E->r, path, "{\"state\":\"running\"}", 409, "lease_lost", "after the end", NULL,
               NULL);
    json_decref(out);
    json_decref(ans);
    /* The task was requeued for someone else. */
    ans = claim(E->p);
    assert_non_null(json_object_get(ans, "lease"));
    json_decref(ans);
}

static void test_commit_reveal_and_slash(void **state)
{
    char job[40], pc[CU_HASH_HEX_LEN + 1], qc[CU_HASH_HEX_LEN + 1], path[96], body[160], *rep;
    char bad_root[CU_HASH_HEX_LEN + 1];
    struct cu_http_result r;
    json_t *ap, *aq, *lp, *lq, *out, *jj;
    int64_t rp, rq;

    (void)state;
    /* A fresh pair of providers with their own owners; Q stakes. */
    fund(E->q, 100000);
    exfix_post(E->q, "/v1/stake", "{\"amount\":1000}", 200, NULL, "stake", &out, NULL);
    assert_int_equal(json_integer_value(json_object_get(out, "stake")), 1000);
    json_decref(out);
    submit("quorum", 1, ",\"quorum\":2,\"max_replicas\":3,\"replication\":2", job, sizeof job);
    ap = claim(E->p);
    aq = claim(E->q);
    lp = json_object_get(ap, "lease");
    lq = json_object_get(aq, "lease");
    assert_non_null(lp);
    assert_non_null(lq);
    assert_string_equal(exfix_str(lp, "job"), job);
    assert_string_equal(exfix_str(lq, "job"), job);
    rp = json_integer_value(json_object_get(lp, "replica"));
    rq = json_integer_value(json_object_get(lq, "replica"));
    /* A busy staker cannot withdraw. */
    exfix_post(E->q, "/v1/unstake", "{\"amount\":1}", 409, "busy", "unstake while leased", NULL,
               NULL);

    /* The (empty) logs exist as a blob, as a provider uploads them. */
    {
        struct cu_http_result r0;
        char bpath[128];
        assert_int_equal(cu_snprintf(bpath, sizeof bpath, "/v1/blobs/%s", E->empty_hex), 0);
        cu_http_result_init(&r0);
        call(E->p, "PUT", bpath, NULL, &r0);
        if (r0.status != 200 && r0.status != 201 && r0.status != 204)
            fail_msg("upload of the empty blob: %ld", r0.status);
        cu_http_result_release(&r0);
    }
    /* An ok report needs a commitment first. */
    rep = report_body(E->root_hex);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/report", rp), 0);
    exfix_post(E->p, path, rep, 409, "commit_required", "report before commit", NULL, NULL);

    ex_commit_hash(E->idp.id, E->root_hex, pc);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/commit", rp), 0);
    assert_int_equal(cu_snprintf(body, sizeof body, "{\"commit\":\"%s\"}", pc), 0);
    exfix_post(E->p, path, body, 200, NULL, "P commits", &out, NULL);
    assert_false(json_is_true(json_object_get(out, "reveal"))); /* Q has not committed */
    json_decref(out);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/report", rp), 0);
    exfix_post(E->p, path, rep, 409, "reveal_not_yet", "report before reveal", NULL, NULL);

    /* Q commits to a different (wrong) result; then both may reveal. */
    memset(bad_root, 'a', CU_HASH_HEX_LEN);
    bad_root[CU_HASH_HEX_LEN] = '\0';
    ex_commit_hash(E->idq.id, bad_root, qc);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/commit", rq), 0);
    assert_int_equal(cu_snprintf(body, sizeof body, "{\"commit\":\"%s\"}", qc), 0);
    exfix_post(E->q, path, body, 200, NULL, "Q commits", &out, NULL);
    assert_true(json_is_true(json_object_get(out, "reveal")));
    json_decref(out);

    /* P reveals its committed result; Q reveals one that is not its
     * commitment: a wrong result, slashed. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/report", rp), 0);
    exfix_post(E->p, path, rep, 200, NULL, "P reports", NULL, NULL);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%" PRId64 "/report", rq), 0);
    exfix_post(E->q, path, rep, 409, "commit_mismatch", "Q reveals another result", NULL, NULL);
    free(rep);

    jj = reputation(E->idq.id);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(jj, "counts"),
                                                        "wrong_result")),
                     1);
    assert_int_equal(json_integer_value(json_object_get(jj, "stake")), 500); /* 50% slashed */
    json_decref(jj);

    /* The job's owner sees it; the task waits for a replacement replica. */
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", job), 0);
    cu_http_result_init(&r);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, "job");
    assert_string_equal(exfix_str(r.json, "state"), "running");
    cu_http_result_release(&r);
    json_decref(ap);
    json_decref(aq);
}

static void test_same_owner_never_twice(void **state)
{
    char job[40];
    struct cu_identity ids;
    struct cu_http_client *s;
    json_t *a1, *a2;

    (void)state;
    /* S declares R's owner: R and S never hold replicas of one task. */
    assert_int_equal(cu_identity_generate(&ids), 0);
    s = cu_http_client_new(E->x.url, &ids);
    assert_non_null(s);
    hello(E->r, NULL);
    hello(s, E->idr.id);
    submit("owners", 1, ",\"replication\":2", job, sizeof job);
    /* R takes leftovers of earlier tests until it holds this job's task. */
    for (int i = 0;; i++) {
        a1 = claim(E->r);
        assert_non_null(a1);
        assert_true(i < 8);
        if (strcmp(exfix_str(json_object_get(a1, "lease"), "job"), job) == 0)
            break;
        json_decref(a1);
    }
    /* S may get other work (earlier tests left some), never this task. */
    for (int i = 0; i < 4 && (a2 = claim(s)) != NULL; i++) {
        json_t *l = json_object_get(a2, "lease"), *c = json_object_get(a2, "challenge");
        assert_string_not_equal(exfix_str(l ? l : c, "job"), job);
        json_decref(a2);
    }
    json_decref(a1);
    cu_http_client_free(s);
}

/* Batched claims and reports (docs/api.md): "max" answers {"leases"}
 * with one replica per task at most, fitting the free cores; a request
 * without it keeps the {"lease"} answer; POST /v1/reports answers each
 * report on its own. Runs first and finishes its job, so later tests see
 * no leftovers. */
static void test_batches(void **state)
{
    char job[40], body[1024], hex[CU_HASH_HEX_LEN + 1];
    struct cu_identity idt;
    struct cu_http_client *t;
    struct cu_http_result r;
    json_t *ans = NULL, *list, *res;
    int64_t rid[3];
    int seen[3] = {0, 0, 0};

    (void)state;
    assert_int_equal(cu_identity_generate(&idt), 0);
    t = cu_http_client_new(E->x.url, &idt);
    assert_non_null(t);
    fund(E->a, 1000000000);
    hello(t, NULL);
    submit("batches", 3, ",\"replication\":1", job, sizeof job);
    exfix_post(t, "/v1/claims",
               "{\"max\":0,\"wait_ms\":0,\"free\":{\"cores\":4,\"memory\":4294967296}}", 400,
               "invalid", "max 0", NULL, NULL);
    exfix_post(t, "/v1/claims",
               "{\"max\":65,\"wait_ms\":0,\"free\":{\"cores\":4,\"memory\":4294967296}}", 400,
               "invalid", "max 65", NULL, NULL);
    /* Two free cores: two of the three tasks (one core each). */
    exfix_post(t, "/v1/claims",
               "{\"max\":8,\"wait_ms\":0,\"free\":{\"cores\":2,\"memory\":4294967296}}", 200, NULL,
               "batched claim", &ans, NULL);
    list = json_object_get(ans, "leases");
    assert_null(json_object_get(ans, "lease"));
    assert_int_equal(json_array_size(list), 2);
    for (size_t k = 0; k < 2; k++) {
        const json_t *l = json_array_get(list, k);
        assert_string_equal(exfix_str(l, "job"), job);
        rid[k] = json_integer_value(json_object_get(l, "replica"));
        seen[json_integer_value(json_object_get(l, "task"))]++;
        assert_non_null(json_object_get(json_object_get(l, "heartbeat"), "secret"));
    }
    json_decref(ans);
    /* Without max: the single answer, the last task. */
    ans = claim(t);
    assert_non_null(ans);
    assert_null(json_object_get(ans, "leases"));
    assert_string_equal(exfix_str(json_object_get(ans, "lease"), "job"), job);
    rid[2] = json_integer_value(json_object_get(json_object_get(ans, "lease"), "replica"));
    seen[json_integer_value(json_object_get(json_object_get(ans, "lease"), "task"))]++;
    json_decref(ans);
    assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    assert_null(claim(t));

    /* A replica reported twice in one batch is refused whole. */
    assert_int_equal(
        cu_snprintf(body, sizeof body,
                    "{\"reports\":[{\"replica\":%lld,\"status\":\"failed\",\"exit_code\":1},"
                    "{\"replica\":%lld,\"status\":\"failed\",\"exit_code\":1}]}",
                    (long long)rid[0], (long long)rid[0]),
        0);
    exfix_post(t, "/v1/reports", body, 400, "invalid", "duplicate replica", NULL, NULL);
    exfix_post(t, "/v1/reports", "{\"reports\":[]}", 400, "invalid", "empty batch", NULL, NULL);
    /* The batch: two good reports, one with a log blob never uploaded,
     * and a replica of another provider's; each is answered alone. */
    cu_random_hex(hex, CU_HASH_HEX_LEN / 2);
    assert_int_equal(cu_snprintf(hex + CU_HASH_HEX_LEN / 2, CU_HASH_HEX_LEN / 2 + 1, "%s",
                                 E->root_hex + CU_HASH_HEX_LEN / 2),
                     0);
    assert_int_equal(
        cu_snprintf(body, sizeof body,
                    "{\"reports\":["
                    "{\"replica\":%lld,\"status\":\"ok\",\"exit_code\":0,\"cpu_ms\":5,"
                    "\"outputs\":[],\"merkle_root\":\"%s\"},"
                    "{\"replica\":%lld,\"status\":\"ok\",\"exit_code\":0,\"cpu_ms\":5,"
                    "\"outputs\":[],\"merkle_root\":\"%s\",\"stdout\":{\"hash\":\"%s\","
                    "\"size\":3}},"
                    "{\"replica\":%lld,\"status\":\"ok\",\"exit_code\":0,\"cpu_ms\":5,"
                    "\"outputs\":[],\"merkle_root\":\"%s\"},"
                    "{\"replica\":%lld,\"status\":\"ok\",\"exit_code\":0,"
                    "\"outputs\":[],\"merkle_root\":\"%s\"}]}",
                    (long long)rid[0], E->root_hex, (long long)rid[1], E->root_hex, hex,
                    (long long)rid[2], E->root_hex, (long long)999999, E->root_hex),
        0);
    cu_http_result_init(&r);
    call(t, "POST", "/v1/reports", body, &r);
    expect_status(&r, 200, NULL, "batched report");
    res = json_object_get(r.json, "results");
    assert_int_equal(json_array_size(res), 4);
    assert_string_equal(exfix_str(json_array_get(res, 0), "state"), "accepted");
    assert_string_equal(exfix_str(json_object_get(json_array_get(res, 1), "error"), "code"),
                        "missing_blobs");
    assert_string_equal(exfix_str(json_array_get(res, 2), "state"), "accepted");
    assert_string_equal(exfix_str(json_array_get(res, 2), "task_state"), "done");
    assert_string_equal(exfix_str(json_object_get(json_array_get(res, 3), "error"), "code"),
                        "not_found");
    cu_http_result_release(&r);
    /* The one left, alone; then the first again (idempotent). */
    assert_int_equal(cu_snprintf(body, sizeof body,
                                 "{\"reports\":[{\"replica\":%lld,\"status\":\"ok\","
                                 "\"exit_code\":0,\"cpu_ms\":5,\"outputs\":[],"
                                 "\"merkle_root\":\"%s\"},{\"replica\":%lld,\"status\":\"ok\","
                                 "\"exit_code\":0,\"cpu_ms\":5,\"outputs\":[],"
                                 "\"merkle_root\":\"%s\"}]}",
                                 (long long)rid[1], E->root_hex, (long long)rid[0], E->root_hex),
                     0);
    cu_http_result_init(&r);
    call(t, "POST", "/v1/reports", body, &r);
    expect_status(&r, 200, NULL, "batched report");
    res = json_object_get(r.json, "results");
    assert_string_equal(exfix_str(json_array_get(res, 0), "task_state"), "done");
    assert_string_equal(exfix_str(json_array_get(res, 1), "state"), "accepted");
    cu_http_result_release(&r);
    cu_identity_wipe(&idt);
    cu_http_client_free(t);
}

/* Claiming ahead (docs/api.md): with "sequential" each lease alone fits
 * free, so a one-core claim gets all three one-core tasks (without it:
 * one); a "sequential" that is not a boolean is refused. Finishes its
 * job. */
static void test_batches_sequential(void **state)
{
    char job[40], body[1024];
    struct cu_identity idt;
    struct cu_http_client *t;
    struct cu_http_result r;
    json_t *ans = NULL, *list, *res;
    int64_t rid[3];
    int seen[3] = {0, 0, 0};

    (void)state;
    assert_int_equal(cu_identity_generate(&idt), 0);
    t = cu_http_client_new(E->x.url, &idt);
    assert_non_null(t);
    fund(E->a, 1000000000);
    hello(t, NULL);
    submit("sequential", 3, ",\"replication\":1", job, sizeof job);
    exfix_post(t, "/v1/claims",
               "{\"max\":4,\"sequential\":1,\"wait_ms\":0,\"free\":{\"cores\":1,"
               "\"memory\":4294967296}}",
               400, "invalid", "sequential not a boolean", NULL, NULL);
    exfix_post(t, "/v1/claims",
               "{\"max\":4,\"sequential\":true,\"wait_ms\":0,\"free\":{\"cores\":1,"
               "\"memory\":4294967296}}",
               200, NULL, "sequential claim", &ans, NULL);
    list = json_object_get(ans, "leases");
    assert_int_equal(json_array_size(list), 3);
    for (size_t k = 0; k < 3; k++) {
        const json_t *l = json_array_get(list, k);
        assert_string_equal(exfix_str(l, "job"), job);
        rid[k] = json_integer_value(json_object_get(l, "replica"));
        seen[json_integer_value(json_object_get(l, "task"))]++;
    }
    json_decref(ans);
    assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    assert_null(claim(t));
    assert_int_equal(
        cu_snprintf(body, sizeof body,
                    "{\"reports\":["
                    "{\"replica\":%lld,\"status\":\"ok\",\"exit_code\":0,\"cpu_ms\":5,"
                    "\"outputs\":[],\"merkle_root\":\"%s\"},"
                    "{\"replica\":%lld,\"status\":\"ok\",\"exit_code\":0,\"cpu_ms\":5,"
                    "\"outputs\":[],\"merkle_root\":\"%s\"},"
                    "{\"replica\":%lld,\"status\":\"ok\",\"exit_code\":0,\"cpu_ms\":5,"
                    "\"outputs\":[],\"merkle_root\":\"%s\"}]}",
                    (long long)rid[0], E->root_hex, (long long)rid[1], E->root_hex,
                    (long long)rid[2], E->root_hex),
        0);
    cu_http_result_init(&r);
    call(t, "POST", "/v1/reports", body, &r);
    expect_status(&r, 200, NULL, "batched report");
    res = json_object_get(r.json, "results");
    assert_int_equal(json_array_size(res), 3);
    for (size_t k = 0; k < 3; k++)
        assert_string_equal(exfix_str(json_array_get(res, k), "state"), "accepted");
    cu_http_result_release(&r);
    cu_identity_wipe(&idt);
    cu_http_client_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_batches_sequential),
        cmocka_unit_test(test_capability_challenge),
        cmocka_unit_test(test_heartbeat_challenge),
        cmocka_unit_test(test_commit_reveal_and_slash),
        cmocka_unit_test(test_same_owner_never_twice),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return rc;
}
