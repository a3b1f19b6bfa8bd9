/* money_exchange_test.c - the exchange's ledger and money routes
 * (docs/api.md "Money"): the devnet faucet (and its refusal elsewhere),
 * wallets, signed transfers, refused transfers that change nothing, the
 * ledger export verifying, restarts (clean and kill -9 during faucet
 * requests) keeping balances and a verifying ledger, and
 * cu_exchange_ledger_dump equal to GET /v1/ledger.
 *
 * Starts the real exchange (build/cumulus, relative to the repository root,
 * where tests/run.sh runs; CUMULUS_BIN overrides) on 127.0.0.1:0 in a
 * temporary directory, as api_ownership_test.c does. The tests run in
 * order and share E. */
#include "exchange_fixture.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>

#include "crypto/ident.h"
#include "crypto/merkle.h"
#include "exchange/exchange.h"
#include "ledger/tx.h"
#include "ledger/verify.h"

#include "base/banned.h"

struct env {
    struct exfix x; /* dir, data, url, pid */
    struct cu_identity ida, idb, idp;
    struct cu_http_client *a, *b, *p, *anon;
};

static struct env *E;

/* ---- the exchange process ----------------------------------------------------- */

static void free_clients(struct env *e)
{
    cu_http_client_free(e->a);
    cu_http_client_free(e->b);
    cu_http_client_free(e->anon);
    cu_http_client_free(e->p);
    e->a = e->b = e->p = e->anon = NULL;
}

static const char *const devnet_args[] = {"--devnet", NULL};

/* Starts the exchange on data dir `data` (under E's dir) and makes the
 * clients; 0 when it listens, -1 when it did not start (quiet: expected,
 * no log printed). */
static int start_exchange(struct env *e, const char *data, bool devnet, bool quiet)
{
    if (exfix_start(&e->x, data, devnet ? devnet_args : NULL, 60, quiet) != 0)
        return -1;
    free_clients(e);
    e->a = cu_http_client_new(e->x.url, &e->ida);
    e->b = cu_http_client_new(e->x.url, &e->idb);
    e->p = cu_http_client_new(e->x.url, &e->idp);
    e->anon = cu_http_client_new(e->x.url, NULL);
    return e->a && e->b && e->p && e->anon ? 0 : -1;
}

static int group_teardown(void **state);

static int group_setup(void **state)
{
    E = calloc(1, sizeof *E);
    if (!E)
        return -1;
    if (exfix_init(&E->x, "/tmp/cu_money_XXXXXX") != 0)
        goto out_fail;
    if (cu_identity_generate(&E->ida) || cu_identity_generate(&E->idb) ||
        cu_identity_generate(&E->idp))
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
    free_clients(E);
    exfix_cleanup(&E->x);
    cu_identity_wipe(&E->ida);
    cu_identity_wipe(&E->idb);
    cu_identity_wipe(&E->idp);
    free(E);
    E = NULL;
    return 0;
}

/* ---- helpers ------------------------------------------------------------------- */

static int64_t int_of(const json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("no integer '%s' in the answer", key);
    return (int64_t)json_integer_value(v);
}

/* GET /v1/wallet as c: balance and nonce. */
static void wallet(struct cu_http_client *c, int64_t *balance, int64_t *nonce)
{
    struct cu_http_result r;

    cu_http_result_init(&r);
    call(c, "GET", "/v1/wallet", NULL, &r);
    expect_status(&r, 200, NULL, "wallet");
    assert_non_null(r.json);
    *balance = int_of(r.json, "balance");
    if (nonce)
        *nonce = int_of(r.json, "nonce");
    assert_int_equal(int_of(r.json, "escrow"), 0);
    assert_int_equal(int_of(r.json, "stake"), 0);
    cu_http_result_release(&r);
}

static void faucet(struct cu_http_client *c, uint64_t amount, long status, const char *code)
{
    struct cu_http_result r;
    char body[64];

    cu_http_result_init(&r);
    assert_int_equal(
        cu_snprintf(body, sizeof body, "{\"amount\":%llu}", (unsigned long long)amount), 0);
    call(c, "POST", "/v1/faucet", body, &r);
    expect_status(&r, status, code, "faucet");
    cu_http_result_release(&r);
}

/* The body {"tx":TRANSFER} signed by from. Caller frees. */
static char *transfer_body_as(const struct cu_identity *from, const char *claim_from,
                              const char *to, uint64_t amount, uint64_t nonce)
{
    struct cu_tx tx;
    json_t *j;
    char *s;

    cu_tx_init(&tx, CU_TX_TRANSFER);
    tx.time_ms = cu_now_ms();
    assert_int_equal(cu_snprintf(tx.to, sizeof tx.to, "%s", to), 0);
    tx.amount = amount;
    tx.nonce = nonce;
    assert_int_equal(cu_tx_sign(&tx, from), 0);
    if (claim_from)
        assert_int_equal(cu_snprintf(tx.from, sizeof tx.from, "%s", claim_from), 0);
    j = json_pack("{s:o}", "tx", cu_tx_to_json(&tx, false));
    assert_non_null(j);
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(s);
    json_decref(j);
    cu_tx_release(&tx);
    return s;
}

static char *transfer_body(const struct cu_identity *from, const char *to, uint64_t amount,
                           uint64_t nonce)
{
    return transfer_body_as(from, NULL, to, amount, nonce);
}

/* GET /v1/ledger (all of it), verified against the head; returns the text
 * (caller frees) and the verified state's result. */
static char *ledger_verified(struct cu_verify_result *res)
{
    struct cu_http_result r, h;
    char tip[CU_HASH_HEX_LEN + 1];
    const char *producer;
    char *text;
    int rc;

    cu_http_result_init(&r);
    cu_http_result_init(&h);
    call(E->anon, "GET", "/v1/ledger/head", NULL, &h);
    expect_status(&h, 200, NULL, "ledger head");
    producer = json_string_value(json_object_get(h.json, "producer"));
    assert_non_null(producer);
    call(E->anon, "GET", "/v1/ledger?from=0&limit=10000", NULL, &r);
    expect_status(&r, 200, NULL, "ledger");
    rc = cu_verify_export(r.body.data ? r.body.data : "", r.body.len, producer, res);
    if (rc)
        fail_msg("the ledger does not verify: %s", res->err.msg);
    assert_int_equal((int64_t)res->blocks, int_of(h.json, "blocks"));
    assert_int_equal((int64_t)res->txs, int_of(h.json, "transactions"));
    cu_hash_to_hex(&res->tip, tip);
    assert_string_equal(tip, json_string_value(json_object_get(h.json, "hash")));
    text = strndup(r.body.data ? r.body.data : "", r.body.len);
    assert_non_null(text);
    cu_http_result_release(&r);
    cu_http_result_release(&h);
    return text;
}

static int buf_sink(void *ctx, const char *data, size_t n)
{
    return cu_buf_append(ctx, data, n);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_faucet_only_on_devnet(void **state)
{
    struct cu_verify_result res;
    char *text;
    int64_t bal;

    (void)state;
    assert_int_equal(start_exchange(E, "prod", false, false), 0);
    faucet(E->a, 1000, 403, "not_devnet");
    wallet(E->a, &bal, NULL);
    assert_int_equal(bal, 0);
    text = ledger_verified(&res);
    assert_int_equal(res.blocks, 1); /* genesis only */
    assert_int_equal(res.txs, 0);
    free(text);
    exfix_stop(&E->x, SIGTERM);
    /* The chain's devnet flag is fixed by block 0. */
    assert_int_not_equal(start_exchange(E, "prod", true, true), 0);
}

static void test_faucet_and_wallet(void **state)
{
    struct cu_http_result r;
    int64_t bal, nonce;

    (void)state;
    assert_int_equal(start_exchange(E, "dev", true, false), 0);
    wallet(E->a, &bal, &nonce);
    assert_int_equal(bal, 0);
    assert_int_equal(nonce, 0);
    cu_http_result_init(&r);
    call(E->a, "POST", "/v1/faucet", "{\"amount\":1000}", &r);
    expect_status(&r, 200, NULL, "faucet");
    assert_int_equal(int_of(r.json, "balance"), 1000);
    assert_int_equal(int_of(r.json, "height"), 1);
    call(E->a, "POST", "/v1/faucet", "{\"amount\":0}", &r);
    expect_status(&r, 400, "invalid", "faucet of 0");
    call(E->a, "POST", "/v1/faucet", "{\"amount\":1000000000000001}", &r);
    expect_status(&r, 400, "invalid", "faucet over 10^15");
    cu_http_result_release(&r);
    wallet(E->a, &bal, &nonce);
    assert_int_equal(bal, 1000);
}

static void test_transfer(void **state)
{
    struct cu_http_result r;
    char *body;
    int64_t bal, nonce;

    (void)state;
    cu_http_result_init(&r);
    body = transfer_body(&E->ida, E->idb.id, 300, 0);
    call(E->a, "POST", "/v1/transfers", body, &r);
    expect_status(&r, 200, NULL, "transfer");
    assert_int_equal(int_of(r.json, "height"), 2);
    wallet(E->a, &bal, &nonce);
    assert_int_equal(bal, 700);
    assert_int_equal(nonce, 1);
    wallet(E->b, &bal, NULL);
    assert_int_equal(bal, 300);

    /* The same signed transfer again: its nonce is spent. */
    call(E->a, "POST", "/v1/transfers", body, &r);
    expect_status(&r, 400, "invalid", "replayed transfer");
    free(body);
    /* More than the balance. */
    body = transfer_body(&E->ida, E->idb.id, 701, 1);
    call(E->a, "POST", "/v1/transfers", body, &r);
    expect_status(&r, 409, "insufficient_funds", "transfer over the balance");
    /* Someone else's transfer, sent by B. */
    call(E->b, "POST", "/v1/transfers", body, &r);
    expect_status(&r, 403, NULL, "B sends A's transfer");
    free(body);
    /* A bad signature: B's transfer claiming to be from A. */
    body = transfer_body(&E->idb, E->ida.id, 1, 0);
    call(E->a, "POST", "/v1/transfers", body, &r);
    expect_status(&r, 403, NULL, "A sends B's transfer");
    free(body);
    body = transfer_body_as(&E->idb, E->ida.id, E->idb.id, 1, 1);
    call(E->a, "POST", "/v1/transfers", body, &r);
    expect_status(&r, 400, "invalid", "a transfer from A signed by B");
    free(body);
    wallet(E->a, &bal, &nonce);
    assert_int_equal(bal, 700);
    assert_int_equal(nonce, 1);
    wallet(E->b, &bal, &nonce);
    assert_int_equal(bal, 300);
    assert_int_equal(nonce, 0);

    /* History, newest first. */
    call(E->a, "GET", "/v1/wallet/history?limit=10", NULL, &r);
    expect_status(&r, 200, NULL, "history");
    json_t *ent = json_object_get(r.json, "entries");
    assert_int_equal(json_array_size(ent), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ent, 0), "type")),
                        "transfer");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ent, 0), "to")),
                        E->idb.id);
    assert_int_equal(int_of(json_array_get(ent, 0), "amount"), 300);
    assert_true(json_is_null(json_object_get(json_array_get(ent, 0), "job")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(ent, 1), "type")),
                        "faucet_mint");
    cu_http_result_release(&r);
}

static void test_ledger_export_and_dump(void **state)
{
    struct cu_verify_result res;
    struct cu_buf dump = CU_BUF_INIT(64 << 20);
    struct cu_err e = {0};
    char *text;

    (void)state;
    text = ledger_verified(&res);
    assert_int_equal(res.blocks, 3);
    assert_int_equal(res.txs, 2);
    /* The dump reads the live database read-only. */
    if (cu_exchange_ledger_dump(E->x.data, buf_sink, &dump, &e) != 0)
        fail_msg("dump: %s", e.msg);
    assert_int_equal(dump.len, strlen(text));
    assert_memory_equal(dump.data, text, dump.len);
    cu_buf_release(&dump);
    free(text);
    assert_int_equal(cu_exchange_ledger_dump("/nonexistent-cu", buf_sink, &dump, &e),
                     -CU_ENOTFOUND);
}

static void test_restart_keeps_balances(void **state)
{
    struct cu_verify_result res;
    char *text;
    int64_t bal, nonce;

    (void)state;
    exfix_stop(&E->x, SIGTERM);
    assert_int_equal(start_exchange(E, "dev", true, false), 0);
    wallet(E->a, &bal, &nonce);
    assert_int_equal(bal, 700);
    assert_int_equal(nonce, 1);
    wallet(E->b, &bal, NULL);
    assert_int_equal(bal, 300);
    text = ledger_verified(&res);
    assert_int_equal(res.blocks, 3);
    free(text);
    faucet(E->b, 5, 200, NULL);
    wallet(E->b, &bal, NULL);
    assert_int_equal(bal, 305);
}

static void test_kill9_during_faucet(void **state)
{
    struct cu_verify_result res;
    char *text;
    int64_t bal;
    pid_t child;
    int st;

    (void)state;
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct cu_http_client *c = cu_http_client_new(E->x.url, &E->ida);
        struct cu_http_result r;
        cu_http_result_init(&r);
        for (int i = 0; i < 100000 && c; i++)
            (void)cu_http_request(c, "POST", "/v1/faucet", "{\"amount\":1}", 12, 5000, &r);
        _exit(0);
    }
    cu_sleep_ms(700);
    exfix_stop(&E->x, SIGKILL);
    kill(child, SIGKILL);
    waitpid(child, &st, 0);
    assert_int_equal(start_exchange(E, "dev", true, false), 0);
    text = ledger_verified(&res);
    free(text);
    assert_true(res.blocks > 3);
    /* Every committed mint of 1 is in A's balance: 700 + blocks after the
     * four before the loop (genesis, faucet, transfer, B's faucet). */
    wallet(E->a, &bal, NULL);
    assert_int_equal(bal, 700 + (int64_t)res.blocks - 4);
}

/* ---- provider ask and CU ----------------------------------------------------------- */

static void hello_ask(const char *extra, long status)
{
    struct cu_http_result r;
    char body[256];

    assert_int_equal(cu_snprintf(body, sizeof body,
                                 "{\"slots\":2,\"cores\":2,\"memory\":1073741824,\"gpus\":0%s}",
                                 extra),
                     0);
    cu_http_result_init(&r);
    call(E->p, "POST", "/v1/providers/hello", body, &r);
    expect_status(&r, status, NULL, "hello");
    cu_http_result_release(&r);
}

/* P claims once: the replica id, or 0 when nothing was leased. */
static int64_t claim(void)
{
    struct cu_http_result r;
    int64_t rid = 0;

    cu_http_result_init(&r);
    call(E->p, "POST", "/v1/claims",
         "{\"wait_ms\":300,\"free\":{\"cores\":2,\"memory\":1073741824,\"gpus\":0}}", &r);
    if (r.status == 200)
        rid = json_integer_value(json_object_get(json_object_get(r.json, "lease"), "replica"));
    else
        expect_status(&r, 204, NULL, "claim");
    cu_http_result_release(&r);
    return rid;
}

static void test_ask_and_cu(void **state)
{
    struct cu_http_result r;
    struct cu_hash h;
    char empty[CU_HASH_HEX_LEN + 1], root[CU_HASH_HEX_LEN + 1], path[256], ref[33], job[64];
    char body[1024], *rep_body;
    json_t *j, *t, *rep;
    int64_t rid;

    (void)state;
    cu_http_result_init(&r);
    hello_ask(",\"cu_factor_milli\":5", 400);      /* below the sane range */
    hello_ask(",\"cu_factor_milli\":100001", 400); /* above it */
    hello_ask(",\"price_per_cu\":-1", 400);
    hello_ask(",\"price_per_cu\":5,\"cu_factor_milli\":2000", 200);

    cu_random_hex(ref, 16);
    assert_int_equal(
        cu_snprintf(body, sizeof body,
                    "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],"
                    "\"image\":\"host\",\"inputs\":[],\"name\":\"cu\",\"outputs\":[\"*.txt\"],"
                    "\"price\":{\"max_per_cu\":3},\"replication\":1,\"resources\":{\"cores\":1,"
                    "\"gpus\":0,\"memory\":67108864,\"output\":1048576,\"time_ms\":10000},"
                    "\"tasks\":{\"count\":1}}}",
                    ref),
        0);
    call(E->a, "POST", "/v1/jobs", body, &r);
    expect_status(&r, 201, NULL, "submit");
    assert_int_equal(
        cu_snprintf(job, sizeof job, "%s", json_string_value(json_object_get(r.json, "id"))), 0);
    /* An ask of 5 is over the bid of 3: nothing is leased. */
    assert_int_equal(claim(), 0);
    hello_ask(",\"price_per_cu\":2,\"cu_factor_milli\":2000", 200);
    rid = claim();
    assert_true(rid > 0);

    cu_hash_mem("", 0, &h);
    cu_hash_to_hex(&h, empty);
    assert_int_equal(cu_merkle_root(NULL, 0, &h), 0);
    cu_hash_to_hex(&h, root);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/blobs/%s", empty), 0);
    call(E->p, "PUT", path, NULL, &r);
    if (r.status != 201 && r.status != 200)
        fail_msg("P uploads the empty blob: %ld %s", r.status, cu_buf_str(&r.body));
    j = json_pack("{s:s,s:i,s:n,s:i,s:i,s:[],s:s,s:{s:s,s:i},s:{s:s,s:i}}", "status", "ok",
                  "exit_code", 0, "reason", "cpu_ms", 1500, "wall_ms", 2000, "outputs",
                  "merkle_root", root, "stdout", "hash", empty, "size", 0, "stderr", "hash", empty,
                  "size", 0);
    assert_non_null(j);
    rep_body = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    assert_non_null(rep_body);
    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/replicas/%lld/report", (long long)rid), 0);
    call(E->p, "POST", path, rep_body, &r);
    free(rep_body);
    expect_status(&r, 200, NULL, "report");

    assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", job), 0);
    call(E->a, "GET", path, NULL, &r);
    expect_status(&r, 200, NULL, "job");
    /* 1500 ms x 2000 / 1000 = 3000 milli-CU, at the ask of 2 when leased. */
    assert_int_equal(int_of(r.json, "cu_milli"), 3000);
    t = json_array_get(json_object_get(r.json, "tasks"), 0);
    rep = json_array_get(json_object_get(t, "replicas"), 0);
    assert_int_equal(int_of(rep, "price_per_cu"), 2);
    assert_int_equal(int_of(rep, "cu_milli"), 3000);
    cu_http_result_release(&r);
}

/* A stored block altered behind the exchange's back: it refuses to start,
 * saying so. */
static void test_tampered_ledger_refused(void **state)
{
    char path[CU_PATH_MAX], logp[CU_PATH_MAX];
    struct cu_buf log = CU_BUF_INIT(1 << 20);
    sqlite3 *h = NULL;

    (void)state;
    exfix_stop(&E->x, SIGTERM);
    assert_int_equal(cu_path_join(path, sizeof path, E->x.data, "state.db"), 0);
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "UPDATE ledger_blocks SET line = replace(line, "
                                  "'\"amount\":1000,', '\"amount\":9000,') WHERE height = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_changes(h), 1);
    sqlite3_close(h);
    assert_int_not_equal(start_exchange(E, "dev", true, true), 0);
    assert_int_equal(cu_path_join(logp, sizeof logp, E->x.dir, "exchange.log"), 0);
    assert_int_equal(cu_read_file(logp, &log), 0);
    if (!strstr(cu_buf_str(&log), "does not verify"))
        fail_msg("no 'does not verify' in the log: %s", cu_buf_str(&log));
    cu_buf_release(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faucet_only_on_devnet),
        cmocka_unit_test(test_faucet_and_wallet),
        cmocka_unit_test(test_transfer),
        cmocka_unit_test(test_ledger_export_and_dump),
        cmocka_unit_test(test_restart_keeps_balances),
        cmocka_unit_test(test_kill9_during_faucet),
        cmocka_unit_test(test_ask_and_cu),
        cmocka_unit_test(test_tampered_ledger_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
