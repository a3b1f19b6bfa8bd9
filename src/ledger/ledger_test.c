/* ledger_test.c - transactions, state rules, blocks, export and the
 * verifier: unit tests, a model-checked random property test (seeded, no
 * clock) and tamper tests over every byte of an export. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "crypto/reqsign.h"
#include "ledger/block.h"
#include "ledger/export.h"
#include "ledger/state.h"
#include "ledger/tx.h"
#include "ledger/verify.h"

#include "base/banned.h"

/* ---- helpers ---- */

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

#define NKEYS 6
static struct cu_identity keys[NKEYS]; /* keys[0] is the producer */
static char *auths[NKEYS];             /* a signed job request per key */

static void make_key(struct cu_identity *id, unsigned i)
{
    unsigned char seed[32] = {0};
    seed[0] = (unsigned char)(i + 1);
    assert_int_equal(crypto_sign_seed_keypair(id->pk, id->sk, seed), 0);
    cu_hex_encode(id->pk, CU_PK_LEN, id->id);
}

static char *make_auth(const struct cu_identity *id, const char *body)
{
    struct cu_sig_headers h;
    struct cu_hash bh;
    char *out = NULL;
    cu_hash_mem(body, strlen(body), &bh);
    cu_reqsign_make(id, "POST", "/v1/jobs", &bh, 1700000000, &h);
    assert_int_equal(cu_tx_auth_make("POST", "/v1/jobs", body, strlen(body), &h, &out), 0);
    return out;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(cu_crypto_init(), 0);
    for (unsigned i = 0; i < NKEYS; i++) {
        make_key(&keys[i], i);
        auths[i] = make_auth(&keys[i], "{\"image\":\"host\",\"tasks\":4}");
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < NKEYS; i++)
        free(auths[i]);
    return 0;
}

static const char *ID(unsigned i)
{
    return keys[i].id;
}

static void set_str(char *dst, size_t cap, const char *s)
{
    assert_int_equal(cu_snprintf(dst, cap, "%s", s), 0);
}

/* Builds a tx of a type with the fields the table asks for. */
static void mk(struct cu_tx *tx, enum cu_tx_type t, int from, int to, uint64_t amount,
               const char *job)
{
    cu_tx_init(tx, t);
    tx->time_ms = 1700000000000LL;
    if (from >= 0)
        set_str(tx->from, sizeof tx->from, ID((unsigned)from));
    if (to >= 0)
        set_str(tx->to, sizeof tx->to, ID((unsigned)to));
    tx->amount = amount;
    if (job)
        set_str(tx->job, sizeof tx->job, job);
    if (t == CU_TX_ESCROW_LOCK)
        assert_int_equal(cu_tx_set_authorization(tx, auths[from], strlen(auths[from])), 0);
}

static void mk_record(struct cu_tx *tx, const char *job, uint64_t tx_number)
{
    cu_tx_init(tx, CU_TX_TASK_RECORD);
    tx->time_ms = 1700000000500LL;
    set_str(tx->job, sizeof tx->job, job);
    set_str(tx->replica, sizeof tx->replica, "r-1");
    set_str(tx->rec.id, sizeof tx->rec.id, "rec-1");
    tx->rec.time_ms = 1700000000400LL;
    set_str(tx->rec.client, sizeof tx->rec.client, ID(1));
    set_str(tx->rec.seller, sizeof tx->rec.seller, ID(2));
    tx->rec.task = 3;
    tx->rec.tx_number = tx_number;
    tx->rec.incentive = 40;
    tx->rec.status = CU_TASK_SUCCESS;
    tx->rec.duration_ms = 1234;
    set_str(tx->rec.task_type, sizeof tx->rec.task_type, "cpu");
}

/* Applies tx at the state's next seq; returns the code. */
static int apply(struct cu_ledger_state *st, struct cu_tx *tx, struct cu_err *e)
{
    tx->seq = st->tx_count;
    if (tx->type == CU_TX_TRANSFER)
        tx->nonce = cu_ledger_nonce(st, tx->from);
    if (tx->type == CU_TX_TRANSFER) {
        unsigned i;
        for (i = 0; i < NKEYS && strcmp(ID(i), tx->from) != 0; i++)
            ;
        assert_true(i < NKEYS);
        assert_int_equal(cu_tx_sign(tx, &keys[i]), 0);
    }
    return cu_ledger_apply(st, tx, e);
}

/* A chain being produced: applies txs, collects them, seals blocks. */
struct chain {
    struct cu_ledger_state st;
    struct cu_block *blocks;
    size_t n;
    struct cu_block cur;
    int64_t time_ms;
};

static void chain_init(struct chain *c, bool devnet)
{
    memset(c, 0, sizeof *c);
    cu_ledger_state_init(&c->st, devnet);
    cu_block_init(&c->cur);
    c->time_ms = 1700000000000LL;
}

static void chain_release(struct chain *c)
{
    for (size_t i = 0; i < c->n; i++)
        cu_block_release(&c->blocks[i]);
    free(c->blocks);
    cu_block_release(&c->cur);
    cu_ledger_state_release(&c->st);
}

/* Applies tx (must succeed) and appends it to the open block. */
static void chain_add(struct chain *c, struct cu_tx *tx)
{
    struct cu_err e = {0};
    c->st.height = c->n;
    int rc = apply(&c->st, tx, &e);
    if (rc)
        fail_msg("apply %s: %s", cu_tx_type_name(tx->type), e.msg);
    assert_int_equal(cu_block_add_tx(&c->cur, tx), 0);
    cu_tx_release(tx);
}

static void chain_seal(struct chain *c)
{
    struct cu_hash prev;
    struct cu_block *nb = realloc(c->blocks, (c->n + 1) * sizeof *nb);
    assert_non_null(nb);
    c->blocks = nb;
    if (c->n)
        assert_int_equal(cu_block_hash(&c->blocks[c->n - 1].h, &prev), 0);
    c->time_ms += 1000;
    assert_int_equal(cu_block_seal(&c->cur, c->n, c->n ? &prev : NULL, c->time_ms,
                                   c->st.devnet, &keys[0]),
                     0);
    c->blocks[c->n++] = c->cur;
    cu_block_init(&c->cur);
    c->st.height = c->n;
}

/* A small chain holding every transaction type. */
static void build_sample(struct chain *c)
{
    struct cu_tx tx;
    chain_init(c, true);
    mk(&tx, CU_TX_GENESIS_MINT, -1, 1, 1000000, NULL);
    chain_add(c, &tx);
    mk(&tx, CU_TX_GENESIS_MINT, -1, 2, 5000, NULL);
    chain_add(c, &tx);
    chain_seal(c); /* block 0 */
    mk(&tx, CU_TX_FAUCET_MINT, -1, 3, 700, NULL);
    chain_add(c, &tx);
    mk(&tx, CU_TX_TRANSFER, 1, 3, 250, NULL);
    set_str(tx.memo, sizeof tx.memo, "rent \"for\" Tuesday");
    chain_add(c, &tx);
    mk(&tx, CU_TX_STAKE, 2, -1, 1000, NULL);
    chain_add(c, &tx);
    chain_seal(c); /* block 1 */
    mk(&tx, CU_TX_ESCROW_LOCK, 1, -1, 900, "j-0123456789abcdef01234567");
    chain_add(c, &tx);
    mk(&tx, CU_TX_ESCROW_RELEASE, -1, 2, 300, "j-0123456789abcdef01234567");
    set_str(tx.replica, sizeof tx.replica, "r-7");
    chain_add(c, &tx);
    mk(&tx, CU_TX_FEE, -1, 4, 30, "j-0123456789abcdef01234567");
    chain_add(c, &tx);
    mk_record(&tx, "j-0123456789abcdef01234567", 6);
    chain_add(c, &tx);
    chain_seal(c); /* block 2 */
    chain_seal(c); /* block 3: empty */
    mk(&tx, CU_TX_REFUND, -1, 1, 570, "j-0123456789abcdef01234567");
    chain_add(c, &tx);
    mk(&tx, CU_TX_SLASH, 2, 1, 100, NULL);
    chain_add(c, &tx);
    mk(&tx, CU_TX_UNSTAKE, 2, -1, 400, NULL);
    chain_add(c, &tx);
    chain_seal(c); /* block 4 */
}

static void export_text(const struct cu_block *b, size_t n, struct cu_buf *out)
{
    cu_buf_init(out, 64u << 20);
    assert_int_equal(cu_export_chain(b, n, out), 0);
}

/* ---- tests ---- */

static void test_type_table(void **state)
{
    (void)state;
    for (int t = 0; t < CU_TX_NTYPES; t++) {
        enum cu_tx_type back;
        assert_int_equal(cu_tx_type_parse(cu_tx_type_name((enum cu_tx_type)t), &back), 0);
        assert_int_equal(back, t);
        assert_true(cu_tx_type_required((enum cu_tx_type)t) != 0);
    }
    enum cu_tx_type t;
    assert_int_equal(cu_tx_type_parse("burn", &t), -CU_EINVAL);
    assert_string_equal(cu_tx_type_name(CU_TX_NTYPES), "?");
    for (int s = 0; s < CU_TASK_NSTATUSES; s++) {
        enum cu_task_status back;
        assert_int_equal(cu_task_status_parse(cu_task_status_name((enum cu_task_status)s), &back),
                         0);
        assert_int_equal(back, s);
    }
}

static void test_tx_json_roundtrip(void **state)
{
    struct chain c;
    (void)state;
    build_sample(&c);
    for (size_t b = 0; b < c.n; b++) {
        for (size_t i = 0; i < c.blocks[b].ntx; i++) {
            const struct cu_tx *tx = &c.blocks[b].txs[i];
            struct cu_buf a = CU_BUF_INIT(1 << 20), a2 = CU_BUF_INIT(1 << 20);
            struct cu_hash id1, id2;
            struct cu_err e = {0};
            struct cu_tx back;
            json_t *j = cu_tx_to_json(tx, true);
            assert_non_null(j);
            assert_int_equal(cu_tx_from_json(j, &back, &e), 0);
            assert_true(back.has_id);
            assert_int_equal(cu_tx_id(tx, &id1), 0);
            assert_int_equal(cu_tx_id(&back, &id2), 0);
            assert_true(cu_hash_eq(&id1, &id2));
            assert_true(cu_hash_eq(&id1, &back.stored_id));
            assert_int_equal(cu_tx_canonical(tx, &a), 0);
            assert_int_equal(cu_tx_canonical(&back, &a2), 0);
            assert_string_equal(a.data, a2.data);
            /* Canonical: what jansson's sorted compact dump of it gives. */
            {
                json_t *p = json_loads(a.data, 0, NULL);
                char *d = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
                assert_string_equal(d, a.data);
                assert_null(strstr(a.data, "\": "));
                free(d);
                json_decref(p);
            }
            json_decref(j);
            cu_tx_release(&back);
            cu_buf_release(&a);
            cu_buf_release(&a2);
        }
    }
    chain_release(&c);
}

static void expect_from_json_fails(const char *text, const char *needle)
{
    struct cu_err e = {0};
    struct cu_tx tx;
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_true(cu_tx_from_json(j, &tx, &e) < 0);
    if (!strstr(e.msg, needle))
        fail_msg("'%s': message '%s' lacks '%s'", text, e.msg, needle);
    cu_tx_release(&tx);
    json_decref(j);
}

static void test_tx_strict(void **state)
{
    char buf[512];
    (void)state;
    expect_from_json_fails("[]", "object");
    expect_from_json_fails("{\"type\":\"burn\",\"seq\":0,\"time_ms\":0}", "unknown transaction");
    (void)cu_snprintf(buf, sizeof buf, "{\"type\":\"faucet_mint\",\"seq\":0,\"time_ms\":0,"
                                       "\"to\":\"%s\",\"amount\":1.5}", ID(1));
    expect_from_json_fails(buf, "amount");
    (void)cu_snprintf(buf, sizeof buf, "{\"type\":\"faucet_mint\",\"seq\":0,\"time_ms\":0,"
                                       "\"to\":\"%s\",\"amount\":-5}", ID(1));
    expect_from_json_fails(buf, "negative");
    (void)cu_snprintf(buf, sizeof buf, "{\"type\":\"faucet_mint\",\"seq\":0,\"time_ms\":0,"
                                       "\"to\":\"%s\",\"amount\":0}", ID(1));
    expect_from_json_fails(buf, "amount' must be > 0");
    (void)cu_snprintf(buf, sizeof buf, "{\"type\":\"faucet_mint\",\"seq\":0,\"time_ms\":0,"
                                       "\"to\":\"%s\",\"amount\":5,\"from\":\"%s\"}", ID(1), ID(2));
    expect_from_json_fails(buf, "unknown field 'from' in a faucet_mint");
    expect_from_json_fails("{\"type\":\"faucet_mint\",\"seq\":0,\"time_ms\":0,"
                           "\"to\":\"ABC\",\"amount\":5}", "account id");
    (void)cu_snprintf(buf, sizeof buf, "{\"type\":\"refund\",\"seq\":0,\"time_ms\":0,"
                                       "\"to\":\"%s\",\"amount\":5,\"job\":\"a/b\"}", ID(1));
    expect_from_json_fails(buf, "job");
    (void)cu_snprintf(buf, sizeof buf, "{\"type\":\"transfer\",\"seq\":0,\"time_ms\":0,"
                                       "\"to\":\"%s\",\"from\":\"%s\",\"amount\":5,\"nonce\":0}",
                      ID(1), ID(2));
    expect_from_json_fails(buf, "sig");

    /* Struct-level checks the JSON cannot express. */
    struct cu_tx tx;
    struct cu_err e = {0};
    mk(&tx, CU_TX_FAUCET_MINT, -1, 1, CU_AMOUNT_MAX + 1, NULL);
    assert_int_equal(cu_tx_check(&tx, &e), -CU_EOVERFLOW);
    mk(&tx, CU_TX_STAKE, 1, 2, 5, NULL);
    assert_int_equal(cu_tx_check(&tx, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "'to' does not belong in a stake"));
    mk_record(&tx, "j-1", 5);
    tx.seq = 4;
    assert_int_equal(cu_tx_check(&tx, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "record.tx_number"));
    mk(&tx, CU_TX_FAUCET_MINT, -1, 1, 5, NULL);
    set_str(tx.memo, sizeof tx.memo, "\xff\xfe");
    assert_int_equal(cu_tx_check(&tx, &e), -CU_EINVAL);
}

static void test_transfer_signature(void **state)
{
    struct cu_ledger_state st;
    struct cu_err e = {0};
    struct cu_tx tx, copy;
    (void)state;
    cu_ledger_state_init(&st, true);
    mk(&tx, CU_TX_FAUCET_MINT, -1, 1, 100, NULL);
    assert_int_equal(apply(&st, &tx, &e), 0);

    mk(&tx, CU_TX_TRANSFER, 1, 2, 40, NULL);
    tx.seq = st.tx_count;
    assert_int_equal(cu_tx_sign(&tx, &keys[1]), 0);
    assert_int_equal(cu_tx_verify_sig(&tx, &e), 0);
    /* The seq is the producer's placement, outside the signature. */
    tx.seq = 99;
    assert_int_equal(cu_tx_verify_sig(&tx, &e), 0);
    tx.seq = st.tx_count;
    assert_int_equal(cu_tx_copy(&copy, &tx), 0);
    copy.amount = 41;
    assert_int_equal(cu_tx_verify_sig(&copy, &e), -CU_EAUTH);
    assert_int_equal(cu_ledger_apply(&st, &copy, &e), -CU_EAUTH);
    assert_non_null(strstr(e.msg, "does not verify"));
    /* Signed by someone else than from. */
    copy.amount = 40;
    assert_int_equal(cu_tx_sign(&copy, &keys[2]), 0);
    set_str(copy.from, sizeof copy.from, ID(1));
    assert_int_equal(cu_ledger_apply(&st, &copy, &e), -CU_EAUTH);
    assert_int_equal(cu_ledger_apply(&st, &tx, &e), 0);
    assert_int_equal(cu_ledger_balance(&st, ID(1)), 60);
    assert_int_equal(cu_ledger_balance(&st, ID(2)), 40);
    assert_int_equal(cu_ledger_nonce(&st, ID(1)), 1);
    /* Replaying the same signed transfer: nonce already used. */
    tx.seq = st.tx_count;
    assert_int_equal(cu_ledger_apply(&st, &tx, &e), -CU_ECONFLICT);
    assert_non_null(strstr(e.msg, "nonce"));
    cu_tx_release(&copy);
    cu_ledger_state_release(&st);
}

static void test_escrow_authorization(void **state)
{
    struct cu_ledger_state st;
    struct cu_err e = {0};
    struct cu_tx tx;
    char *bad;
    (void)state;
    cu_ledger_state_init(&st, true);
    mk(&tx, CU_TX_FAUCET_MINT, -1, 1, 100, NULL);
    assert_int_equal(apply(&st, &tx, &e), 0);
    assert_int_equal(cu_tx_auth_check(auths[1], ID(1), &e), 0);
    /* Someone else's signed request cannot spend 1's tokens. */
    assert_int_equal(cu_tx_auth_check(auths[2], ID(1), &e), -CU_EAUTH);
    mk(&tx, CU_TX_ESCROW_LOCK, 1, -1, 50, "j-1");
    assert_int_equal(cu_tx_set_authorization(&tx, auths[2], strlen(auths[2])), 0);
    assert_int_equal(apply(&st, &tx, &e), -CU_EAUTH);
    assert_non_null(strstr(e.msg, "not by"));
    /* A body changed after signing. */
    bad = strdup(auths[1]);
    assert_non_null(bad);
    char *p = strstr(bad, "tasks");
    assert_non_null(p);
    p[0] = 'T';
    assert_int_equal(cu_tx_auth_check(bad, ID(1), &e), -CU_EAUTH);
    assert_non_null(strstr(e.msg, "body_hash"));
    free(bad);
    cu_tx_release(&tx);
    assert_int_equal(cu_ledger_balance(&st, ID(1)), 100);
    cu_ledger_state_release(&st);
}

/* Applies tx expecting rc; on failure the state's hash must not change. */
static void expect_apply(struct cu_ledger_state *st, struct cu_tx *tx, int want,
                         const char *needle)
{
    struct cu_hash before, after;
    struct cu_err e = {0};
    int rc;
    assert_int_equal(cu_ledger_state_hash(st, &before), 0);
    rc = apply(st, tx, &e);
    if (rc != want)
        fail_msg("%s: got %d want %d (%s)", cu_tx_type_name(tx->type), rc, want, e.msg);
    if (needle && !strstr(e.msg, needle))
        fail_msg("%s: message '%s' lacks '%s'", cu_tx_type_name(tx->type), e.msg, needle);
    if (rc) {
        assert_int_equal(cu_ledger_state_hash(st, &after), 0);
        assert_true(cu_hash_eq(&before, &after));
    }
    assert_int_equal(cu_ledger_check_invariant(st, &e), 0);
    cu_tx_release(tx);
}

static void test_apply_rules(void **state)
{
    struct cu_ledger_state st;
    struct cu_tx tx;
    struct cu_err e = {0};
    (void)state;

    cu_ledger_state_init(&st, false);
    mk(&tx, CU_TX_GENESIS_MINT, -1, 1, 1000, NULL);
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_FAUCET_MINT, -1, 1, 10, NULL);
    expect_apply(&st, &tx, -CU_EPERM, "not a devnet");
    mk(&tx, CU_TX_GENESIS_MINT, -1, 1, CU_AMOUNT_MAX, NULL);
    expect_apply(&st, &tx, -CU_EOVERFLOW, "supply");
    st.height = 1;
    mk(&tx, CU_TX_GENESIS_MINT, -1, 1, 1, NULL);
    expect_apply(&st, &tx, -CU_EPERM, "only block 0");
    /* Wrong seq. */
    mk(&tx, CU_TX_STAKE, 1, -1, 1, NULL);
    tx.seq = st.tx_count + 1;
    assert_int_equal(cu_ledger_apply(&st, &tx, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "sequence number"));

    mk(&tx, CU_TX_TRANSFER, 1, 2, 1001, NULL);
    expect_apply(&st, &tx, -CU_ECONFLICT, "exceeds the balance");
    mk(&tx, CU_TX_TRANSFER, 1, 1, 1, NULL);
    expect_apply(&st, &tx, -CU_EINVAL, "itself");
    mk(&tx, CU_TX_TRANSFER, 3, 2, 1, NULL);
    expect_apply(&st, &tx, -CU_ECONFLICT, "balance 0");

    mk(&tx, CU_TX_ESCROW_LOCK, 1, -1, 1001, "j-a");
    expect_apply(&st, &tx, -CU_ECONFLICT, "exceeds the balance");
    mk(&tx, CU_TX_ESCROW_LOCK, 1, -1, 600, "j-a");
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_ESCROW_RELEASE, -1, 2, 601, "j-a");
    expect_apply(&st, &tx, -CU_ECONFLICT, "escrow release of 601 exceeds the locked escrow 600 of job j-a");
    mk(&tx, CU_TX_ESCROW_RELEASE, -1, 2, 500, "j-b");
    expect_apply(&st, &tx, -CU_ENOTFOUND, "no escrow");
    mk(&tx, CU_TX_ESCROW_RELEASE, -1, 2, 500, "j-a");
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_FEE, -1, 3, 101, "j-a");
    expect_apply(&st, &tx, -CU_ECONFLICT, "fee of 101 exceeds");
    mk(&tx, CU_TX_FEE, -1, 3, 60, "j-a");
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_REFUND, -1, 2, 40, "j-a");
    expect_apply(&st, &tx, -CU_EPERM, "not to its owner");
    /* Another requester cannot top up (or claim) 1's job. */
    mk(&tx, CU_TX_ESCROW_LOCK, 2, -1, 10, "j-a");
    expect_apply(&st, &tx, -CU_ECONFLICT, "belongs to");
    mk(&tx, CU_TX_REFUND, -1, 1, 41, "j-a");
    expect_apply(&st, &tx, -CU_ECONFLICT, "exceeds");
    mk(&tx, CU_TX_REFUND, -1, 1, 40, "j-a");
    expect_apply(&st, &tx, 0, NULL);
    const struct cu_ledger_escrow *x = cu_ledger_escrow(&st, "j-a");
    assert_non_null(x);
    assert_int_equal(x->locked, 0);
    assert_int_equal(x->total_locked, 600);
    assert_int_equal(x->released, 500);
    assert_int_equal(x->fees, 60);
    assert_int_equal(x->refunded, 40);
    assert_string_equal(x->owner, ID(1));

    mk(&tx, CU_TX_STAKE, 2, -1, 501, NULL);
    expect_apply(&st, &tx, -CU_ECONFLICT, "stake of 501 exceeds the balance 500");
    mk(&tx, CU_TX_STAKE, 2, -1, 300, NULL);
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_UNSTAKE, 2, -1, 301, NULL);
    expect_apply(&st, &tx, -CU_ECONFLICT, "exceeds the stake 300");
    mk(&tx, CU_TX_SLASH, 2, 2, 10, NULL);
    expect_apply(&st, &tx, -CU_EINVAL, "itself");
    mk(&tx, CU_TX_SLASH, 2, 1, 301, NULL);
    expect_apply(&st, &tx, -CU_ECONFLICT, "exceeds the stake");
    mk(&tx, CU_TX_SLASH, 2, 1, 100, NULL);
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_UNSTAKE, 2, -1, 200, NULL);
    expect_apply(&st, &tx, 0, NULL);
    mk_record(&tx, "j-a", st.tx_count - 1);
    expect_apply(&st, &tx, 0, NULL);

    assert_int_equal(cu_ledger_balance(&st, ID(1)), 400 + 40 + 100);
    assert_int_equal(cu_ledger_balance(&st, ID(2)), 500 - 300 + 200);
    assert_int_equal(cu_ledger_balance(&st, ID(3)), 60);
    assert_int_equal(cu_ledger_stake(&st, ID(2)), 0);
    assert_int_equal(st.minted, 1000);
    cu_ledger_state_release(&st);
}

static void test_overflow(void **state)
{
    struct cu_ledger_state st;
    struct cu_tx tx;
    (void)state;
    cu_ledger_state_init(&st, true);
    mk(&tx, CU_TX_FAUCET_MINT, -1, 1, CU_AMOUNT_MAX, NULL);
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_FAUCET_MINT, -1, 2, 1, NULL);
    expect_apply(&st, &tx, -CU_EOVERFLOW, NULL);
    mk(&tx, CU_TX_STAKE, 1, -1, CU_AMOUNT_MAX, NULL);
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_UNSTAKE, 1, -1, CU_AMOUNT_MAX, NULL);
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_ESCROW_LOCK, 1, -1, CU_AMOUNT_MAX, "j-big");
    expect_apply(&st, &tx, 0, NULL);
    mk(&tx, CU_TX_ESCROW_RELEASE, -1, 2, CU_AMOUNT_MAX, "j-big");
    expect_apply(&st, &tx, 0, NULL);
    assert_int_equal(cu_ledger_balance(&st, ID(2)), CU_AMOUNT_MAX);
    cu_ledger_state_release(&st);
}

/* Level-by-level construction, as block.h words it. */
static void naive_root(const struct cu_hash *ids, size_t n, struct cu_hash *root)
{
    static const unsigned char t0 = 0, t1 = 1, t2 = 2;
    struct cu_hash lv[80];
    struct cu_hasher h;
    if (n == 0) {
        cu_hash_mem(&t2, 1, root);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        cu_hasher_init(&h);
        cu_hasher_update(&h, &t0, 1);
        cu_hasher_update(&h, ids[i].b, CU_HASH_LEN);
        cu_hasher_final(&h, &lv[i]);
    }
    for (size_t w = n; w > 1; w = (w + 1) / 2) {
        for (size_t i = 0; i < w / 2; i++) {
            cu_hasher_init(&h);
            cu_hasher_update(&h, &t1, 1);
            cu_hasher_update(&h, lv[2 * i].b, CU_HASH_LEN);
            cu_hasher_update(&h, lv[2 * i + 1].b, CU_HASH_LEN);
            cu_hasher_final(&h, &lv[i]);
        }
        if (w % 2)
            lv[w / 2] = lv[w - 1];
    }
    *root = lv[0];
}

static void test_merkle(void **state)
{
    struct cu_hash ids[80], a, b;
    (void)state;
    for (size_t i = 0; i < 80; i++)
        cu_hash_mem(&i, sizeof i, &ids[i]);
    for (size_t n = 0; n <= 80; n++) {
        cu_tx_root(ids, n, &a);
        naive_root(ids, n, &b);
        if (!cu_hash_eq(&a, &b))
            fail_msg("root differs at n=%zu", n);
    }
    /* Order matters. */
    cu_tx_root(ids, 5, &a);
    struct cu_hash t = ids[1];
    ids[1] = ids[2];
    ids[2] = t;
    cu_tx_root(ids, 5, &b);
    assert_false(cu_hash_eq(&a, &b));
}

static void test_chain_verifies(void **state)
{
    struct chain c;
    struct cu_verify_result r;
    struct cu_buf text, again;
    (void)state;
    build_sample(&c);
    assert_int_equal(cu_verify_chain(c.blocks, c.n, NULL, &r), 0);
    assert_int_equal(r.blocks, c.n);
    assert_int_equal(r.txs, 12);
    assert_int_equal(r.bad_block, -1);

    export_text(c.blocks, c.n, &text);
    assert_int_equal(cu_verify_export(text.data, text.len, ID(0), &r), 0);
    assert_int_equal(r.blocks, 5);
    /* The replayed state equals the producer's. */
    {
        struct cu_verifier v;
        struct cu_hash h1, h2;
        const char *line;
        size_t pos = 0, len;
        cu_verifier_init(&v, NULL);
        while (cu_export_next_line(text.data, text.len, &pos, &line, &len))
            assert_int_equal(cu_verifier_feed_line(&v, line, len, NULL), 0);
        assert_int_equal(cu_verifier_finish(&v, &r), 0);
        assert_int_equal(cu_ledger_state_hash(cu_verifier_state(&v), &h1), 0);
        assert_int_equal(cu_ledger_state_hash(&c.st, &h2), 0);
        assert_true(cu_hash_eq(&h1, &h2));
        assert_int_equal(cu_block_hash(&c.blocks[c.n - 1].h, &h2), 0);
        assert_true(cu_hash_eq(&r.tip, &h2));
        cu_verifier_release(&v);
    }
    /* Parse and re-export: byte-identical. */
    {
        const char *line;
        size_t pos = 0, len;
        cu_buf_init(&again, 64u << 20);
        while (cu_export_next_line(text.data, text.len, &pos, &line, &len)) {
            struct cu_block b;
            struct cu_err e = {0};
            int64_t bad;
            assert_int_equal(cu_export_parse_block(line, len, &b, &bad, &e), 0);
            assert_int_equal(cu_export_block(&b, &again), 0);
            cu_block_release(&b);
        }
        assert_int_equal(again.len, text.len);
        assert_memory_equal(again.data, text.data, text.len);
        cu_buf_release(&again);
    }
    /* Another producer pinned: refused at block 0. */
    assert_true(cu_verify_export(text.data, text.len, ID(3), &r) < 0);
    assert_int_equal(r.bad_block, 0);
    /* Empty ledger. */
    assert_true(cu_verify_export("", 0, NULL, &r) < 0);
    assert_non_null(strstr(r.err.msg, "empty"));
    cu_buf_release(&text);
    chain_release(&c);
}

/* Sealing and exporting with the ids computed once (what the exchange
 * does) gives the same root, signature and line as computing them each
 * time; and wrong ids give another root (the caller's word is used). */
static void test_seal_with_ids(void **state)
{
    struct chain c;
    (void)state;
    build_sample(&c);
    for (size_t k = 0; k < c.n; k++) {
        struct cu_block *b = &c.blocks[k];
        struct cu_block_header h0 = b->h;
        struct cu_hash *ids = calloc(b->ntx ? b->ntx : 1, sizeof *ids), root;
        struct cu_buf a = CU_BUF_INIT(1u << 20), bb = CU_BUF_INIT(1u << 20);
        assert_non_null(ids);
        assert_int_equal(cu_block_compute_root(b, ids, &root), 0);
        assert_int_equal(cu_block_seal_ids(b, ids, h0.height, k ? &h0.prev : NULL, h0.time_ms,
                                           h0.devnet, &keys[0]),
                         0);
        assert_memory_equal(&b->h.tx_root, &h0.tx_root, sizeof h0.tx_root);
        assert_memory_equal(b->h.sig, h0.sig, sizeof h0.sig);
        assert_int_equal(cu_export_block(b, &a), 0);
        assert_int_equal(cu_export_block_ids(b, ids, &bb), 0);
        assert_int_equal(a.len, bb.len);
        assert_memory_equal(a.data, bb.data, a.len);
        /* the producer's way: each form written with its id, then joined */
        {
            struct cu_buf forms = CU_BUF_INIT(1u << 20), line = CU_BUF_INIT(1u << 20);
            for (size_t i = 0; i < b->ntx; i++) {
                struct cu_hash id;
                if (i)
                    assert_int_equal(cu_buf_append(&forms, ",", 1), 0);
                assert_int_equal(cu_tx_id_export(&b->txs[i], &id, &forms), 0);
                assert_memory_equal(&id, &ids[i], sizeof id);
            }
            assert_int_equal(cu_export_block_txs(b, forms.data ? forms.data : "", forms.len,
                                                 &line),
                             0);
            assert_int_equal(line.len, a.len);
            assert_memory_equal(line.data, a.data, a.len);
            cu_buf_release(&forms);
            cu_buf_release(&line);
        }
        if (b->ntx) {
            ids[0].b[0] ^= 1;
            assert_int_equal(cu_block_seal_ids(b, ids, h0.height, k ? &h0.prev : NULL,
                                               h0.time_ms, h0.devnet, &keys[0]),
                             0);
            assert_false(cu_hash_eq(&b->h.tx_root, &h0.tx_root));
            b->h = h0;
        }
        cu_buf_release(&a);
        cu_buf_release(&bb);
        free(ids);
    }
    chain_release(&c);
}

/* A producer that signs a block breaking the rules is caught by replay. */
static void test_verify_names_rule_break(void **state)
{
    struct chain c;
    struct cu_tx tx;
    struct cu_verify_result r;
    (void)state;
    build_sample(&c);
    /* Block 5: a release beyond the job's (empty) escrow, sealed anyway. */
    mk(&tx, CU_TX_FAUCET_MINT, -1, 1, 5, NULL);
    chain_add(&c, &tx);
    mk(&tx, CU_TX_ESCROW_RELEASE, -1, 2, 900, "j-0123456789abcdef01234567");
    tx.seq = c.st.tx_count; /* not applied: the producer cheats */
    assert_int_equal(cu_block_add_tx(&c.cur, &tx), 0);
    chain_seal(&c);
    assert_true(cu_verify_chain(c.blocks, c.n, NULL, &r) < 0);
    assert_int_equal(r.bad_block, 5);
    assert_int_equal(r.bad_tx, 1);
    assert_string_equal(r.err.msg, "block 5 tx 1: escrow release of 900 exceeds the locked "
                                   "escrow 0 of job j-0123456789abcdef01234567");
    assert_int_equal(r.blocks, 5);
    chain_release(&c);
}

/* Byte range [start, end) of each tx of a line, found by its own dump. */
static void tx_ranges(const struct cu_block *b, const char *line, size_t *start, size_t *end)
{
    const char *from = strstr(line, "\"txs\":[");
    assert_non_null(from);
    for (size_t i = 0; i < b->ntx; i++) {
        json_t *j = cu_tx_to_json(&b->txs[i], true);
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        const char *p = strstr(from, s);
        assert_non_null(p);
        start[i] = (size_t)(p - line);
        end[i] = start[i] + strlen(s);
        from = p + strlen(s);
        free(s);
        json_decref(j);
    }
}

static void test_tamper_every_byte(void **state)
{
    struct chain c;
    struct cu_buf text;
    struct cu_verify_result r;
    size_t line_start[16], line_end[16], txs[16][16], txe[16][16];
    size_t pos = 0, len, k = 0;
    const char *line;
    char *copy;
    (void)state;

    build_sample(&c);
    export_text(c.blocks, c.n, &text);
    while (cu_export_next_line(text.data, text.len, &pos, &line, &len)) {
        char *z = strndup(line, len);
        assert_non_null(z);
        line_start[k] = (size_t)(line - text.data);
        line_end[k] = line_start[k] + len + 1; /* its "\n" belongs to it */
        tx_ranges(&c.blocks[k], z, txs[k], txe[k]);
        for (size_t i = 0; i < c.blocks[k].ntx; i++) {
            txs[k][i] += line_start[k];
            txe[k][i] += line_start[k];
        }
        free(z);
        k++;
    }
    assert_int_equal(k, c.n);
    copy = malloc(text.len);
    assert_non_null(copy);
    /* Blocks before the altered one are untouched, so each alteration is
     * verified from a checkpoint after them; every 61st is also verified
     * from scratch to show that the checkpoint changes nothing. */
    for (size_t blk = 0; blk < c.n; blk++) {
        struct cu_verifier base;
        cu_verifier_init(&base, NULL);
        for (size_t p = 0; p < blk; p++)
            assert_int_equal(cu_verifier_feed_line(&base, text.data + line_start[p],
                                                   line_end[p] - 1 - line_start[p], NULL),
                             0);
        for (size_t i = line_start[blk]; i < line_end[blk]; i++) {
            static const unsigned char flips[] = {0x01, 0x20};
            int64_t want_tx = CU_NO_TX;
            for (size_t t = 0; t < c.blocks[blk].ntx; t++) {
                if (i >= txs[blk][t] && i < txe[blk][t])
                    want_tx = (int64_t)t;
            }
            for (size_t f = 0; f < sizeof flips; f++) {
                struct cu_verifier v;
                size_t p = line_start[blk], n;
                const char *ln;
                memcpy(copy, text.data, text.len);
                copy[i] = (char)(copy[i] ^ flips[f]);
                assert_int_equal(cu_verifier_copy(&v, &base), 0);
                while (cu_export_next_line(copy, text.len, &p, &ln, &n) &&
                       cu_verifier_feed_line(&v, ln, n, NULL) == 0)
                    ;
                if (cu_verifier_finish(&v, &r) == 0)
                    fail_msg("byte %zu (block %zu) ^0x%02x went unnoticed", i, blk, flips[f]);
                cu_verifier_release(&v);
                if (r.bad_block != (int64_t)blk)
                    fail_msg("byte %zu: blamed block %lld, it is in block %zu: %s", i,
                             (long long)r.bad_block, blk, r.err.msg);
                if (r.bad_tx != CU_NO_TX && r.bad_tx != want_tx)
                    fail_msg("byte %zu: blamed tx %lld, it is in tx %lld: %s", i,
                             (long long)r.bad_tx, (long long)want_tx, r.err.msg);
                if (i % 61 == 0) {
                    struct cu_verify_result full;
                    assert_true(cu_verify_export(copy, text.len, NULL, &full) < 0);
                    assert_int_equal(full.bad_block, r.bad_block);
                    assert_int_equal(full.bad_tx, r.bad_tx);
                    assert_string_equal(full.err.msg, r.err.msg);
                }
            }
        }
        cu_verifier_release(&base);
    }
    free(copy);
    cu_buf_release(&text);
    chain_release(&c);
}

/* Verifies blocks (via their export) and checks who is blamed. */
static void expect_blame(const struct cu_block *b, size_t n, int64_t blk, int64_t tx,
                         const char *needle)
{
    struct cu_buf text;
    struct cu_verify_result r;
    export_text(b, n, &text);
    if (cu_verify_export(text.data, text.len, NULL, &r) == 0)
        fail_msg("tampered chain verified");
    if (r.bad_block != blk || r.bad_tx != tx)
        fail_msg("blamed block %lld tx %lld, want %lld %lld: %s", (long long)r.bad_block,
                 (long long)r.bad_tx, (long long)blk, (long long)tx, r.err.msg);
    if (needle && !strstr(r.err.msg, needle))
        fail_msg("'%s' lacks '%s'", r.err.msg, needle);
    cu_buf_release(&text);
}

static void test_delete_reorder(void **state)
{
    struct chain c;
    struct cu_block *v;
    (void)state;
    build_sample(&c);
    v = malloc(c.n * sizeof *v);
    assert_non_null(v);

    /* Delete block k: block k is blamed (except the tip: see verify.h). */
    for (size_t k = 0; k + 1 < c.n; k++) {
        size_t m = 0;
        for (size_t i = 0; i < c.n; i++)
            if (i != k)
                v[m++] = c.blocks[i];
        expect_blame(v, m, (int64_t)k, CU_NO_TX, "height");
    }
    /* Swap blocks k and k+1. */
    for (size_t k = 0; k + 1 < c.n; k++) {
        memcpy(v, c.blocks, c.n * sizeof *v);
        v[k] = c.blocks[k + 1];
        v[k + 1] = c.blocks[k];
        expect_blame(v, c.n, (int64_t)k, CU_NO_TX, "height");
    }
    /* Delete, swap or repeat transactions inside block k. */
    for (size_t k = 0; k < c.n; k++) {
        struct cu_block *b = &c.blocks[k];
        size_t ntx = b->ntx;
        struct cu_tx *orig = b->txs;
        struct cu_tx *alt = malloc((ntx + 1) * sizeof *alt);
        assert_non_null(alt);
        memcpy(v, c.blocks, c.n * sizeof *v);
        for (size_t j = 0; j < ntx; j++) {
            size_t m = 0;
            for (size_t i = 0; i < ntx; i++)
                if (i != j)
                    alt[m++] = orig[i];
            v[k].txs = alt;
            v[k].ntx = m;
            expect_blame(v, c.n, (int64_t)k, j + 1 < ntx ? (int64_t)j : CU_NO_TX, NULL);
            if (j + 1 < ntx) {
                memcpy(alt, orig, ntx * sizeof *alt);
                alt[j] = orig[j + 1];
                alt[j + 1] = orig[j];
                v[k].ntx = ntx;
                expect_blame(v, c.n, (int64_t)k, (int64_t)j, "sequence");
            }
            memcpy(alt, orig, (j + 1) * sizeof *alt);
            memcpy(alt + j + 1, orig + j, (ntx - j) * sizeof *alt);
            v[k].ntx = ntx + 1;
            expect_blame(v, c.n, (int64_t)k, (int64_t)j + 1, "sequence");
        }
        free(alt);
    }
    free(v);
    chain_release(&c);
}

static void test_streaming_sticky(void **state)
{
    struct chain c;
    struct cu_buf text;
    struct cu_verifier v;
    struct cu_verify_result r;
    const char *line;
    size_t pos = 0, len, k = 0;
    (void)state;
    build_sample(&c);
    export_text(c.blocks, c.n, &text);
    cu_verifier_init(&v, NULL);
    while (cu_export_next_line(text.data, text.len, &pos, &line, &len)) {
        int rc;
        if (k == 2) /* skip block 2 */
            rc = 0;
        else
            rc = cu_verifier_feed_line(&v, line, len, &r);
        if (k < 2)
            assert_int_equal(rc, 0);
        if (k > 2) {
            assert_true(rc < 0);
            assert_int_equal(r.bad_block, 2);
        }
        k++;
    }
    assert_true(cu_verifier_finish(&v, &r) < 0);
    assert_int_equal(r.bad_block, 2);
    assert_int_equal(r.blocks, 2);
    assert_non_null(strstr(r.err.msg, "block 2: height 3 where 2 was expected"));
    cu_verifier_release(&v);
    cu_buf_release(&text);
    chain_release(&c);
}

/* ---- property test: random operations against a model ---- */

#define NACC 5 /* keys[1..5] */
#define NJOB 4

struct model {
    uint64_t bal[NACC], stk[NACC], lock[NJOB], minted;
    int owner[NJOB];
};

static bool m_add(uint64_t a, uint64_t b, uint64_t *out)
{
    return cu_add_u64(a, b, out) == 0 && *out <= CU_AMOUNT_MAX;
}

static uint64_t pick_amount(uint64_t *rng, uint64_t around)
{
    switch (rng_below(rng, 10)) {
    case 0:
        return CU_AMOUNT_MAX - rng_below(rng, 3); /* overflow attempts */
    case 1:
        return around + 1 + rng_below(rng, 3); /* just too much */
    case 2:
        return around ? around : 1; /* exactly all */
    default:
        return 1 + rng_below(rng, around + 50);
    }
}

static void check_model(const struct cu_ledger_state *st, const struct model *m)
{
    char job[16];
    struct cu_err e = {0};
    for (unsigned a = 0; a < NACC; a++) {
        assert_int_equal(cu_ledger_balance(st, ID(a + 1)), m->bal[a]);
        assert_int_equal(cu_ledger_stake(st, ID(a + 1)), m->stk[a]);
        assert_true(m->bal[a] <= m->minted && m->stk[a] <= m->minted);
    }
    for (unsigned j = 0; j < NJOB; j++) {
        (void)cu_snprintf(job, sizeof job, "j-%u", j);
        assert_int_equal(cu_ledger_locked(st, job), m->lock[j]);
    }
    assert_int_equal(st->minted, m->minted);
    if (cu_ledger_check_invariant(st, &e))
        fail_msg("%s", e.msg);
}

/* One random sequence of nops operations. Every operation's outcome is
 * predicted by the model; failures must leave the state unchanged. When
 * chain is set, successful txs are sealed into blocks and the chain is
 * verified from its export at the end. */
static void run_sequence(uint64_t seed, int nops, bool with_chain)
{
    struct chain c;
    struct model m;
    uint64_t rng = seed;
    char job[16];

    memset(&m, 0, sizeof m);
    for (unsigned j = 0; j < NJOB; j++)
        m.owner[j] = -1;
    chain_init(&c, true);
    {
        struct cu_tx tx;
        mk(&tx, CU_TX_GENESIS_MINT, -1, 1, 1000, NULL);
        chain_add(&c, &tx);
        m.bal[0] = m.minted = 1000;
        chain_seal(&c);
    }
    for (int op = 0; op < nops; op++) {
        unsigned a = (unsigned)rng_below(&rng, NACC), b = (unsigned)rng_below(&rng, NACC);
        unsigned j = (unsigned)rng_below(&rng, NJOB);
        int kind = (int)rng_below(&rng, 10);
        struct cu_tx tx;
        struct cu_hash before, after;
        struct cu_err e = {0};
        bool ok = true;
        uint64_t amt, v;
        int rc;

        (void)cu_snprintf(job, sizeof job, "j-%u", j);
        switch (kind) {
        case 0:
            amt = pick_amount(&rng, 500);
            mk(&tx, CU_TX_FAUCET_MINT, -1, (int)a + 1, amt, NULL);
            ok = m_add(m.minted, amt, &v);
            break;
        case 1:
            amt = pick_amount(&rng, m.bal[a]);
            mk(&tx, CU_TX_TRANSFER, (int)a + 1, (int)b + 1, amt, NULL);
            ok = a != b && amt <= m.bal[a];
            break;
        case 2:
            amt = pick_amount(&rng, m.bal[a]);
            mk(&tx, CU_TX_ESCROW_LOCK, (int)a + 1, -1, amt, job);
            ok = amt <= m.bal[a] && (m.owner[j] < 0 || m.owner[j] == (int)a);
            break;
        case 3:
        case 4:
            amt = pick_amount(&rng, m.lock[j]);
            mk(&tx, kind == 3 ? CU_TX_ESCROW_RELEASE : CU_TX_FEE, -1, (int)b + 1, amt, job);
            ok = m.owner[j] >= 0 && amt <= m.lock[j];
            break;
        case 5: {
            int to = rng_below(&rng, 4) == 0 ? (int)b : (m.owner[j] >= 0 ? m.owner[j] : (int)b);
            amt = pick_amount(&rng, m.lock[j]);
            mk(&tx, CU_TX_REFUND, -1, to + 1, amt, job);
            ok = m.owner[j] >= 0 && amt <= m.lock[j] && to == m.owner[j];
            b = (unsigned)to;
            break;
        }
        case 6:
            amt = pick_amount(&rng, m.bal[a]);
            mk(&tx, CU_TX_STAKE, (int)a + 1, -1, amt, NULL);
            ok = amt <= m.bal[a];
            break;
        case 7:
            amt = pick_amount(&rng, m.stk[a]);
            mk(&tx, CU_TX_UNSTAKE, (int)a + 1, -1, amt, NULL);
            ok = amt <= m.stk[a];
            break;
        case 8:
            amt = pick_amount(&rng, m.stk[a]);
            mk(&tx, CU_TX_SLASH, (int)a + 1, (int)b + 1, amt, NULL);
            ok = a != b && amt <= m.stk[a];
            break;
        default:
            mk_record(&tx, job, c.st.tx_count ? c.st.tx_count - 1 : 0);
            amt = 0;
            break;
        }
        if (!ok)
            assert_int_equal(cu_ledger_state_hash(&c.st, &before), 0);
        if (ok) {
            chain_add(&c, &tx);
        } else {
            c.st.height = c.n;
            rc = apply(&c.st, &tx, &e);
            if (rc == 0)
                fail_msg("seed %llu op %d: %s should have failed", (unsigned long long)seed, op,
                         cu_tx_type_name(tx.type));
            cu_tx_release(&tx);
            assert_int_equal(cu_ledger_state_hash(&c.st, &after), 0);
            assert_true(cu_hash_eq(&before, &after));
        }
        if (ok) {
            switch (kind) {
            case 0: m.minted += amt; m.bal[a] += amt; break;
            case 1: m.bal[a] -= amt; m.bal[b] += amt; break;
            case 2: m.bal[a] -= amt; m.lock[j] += amt; m.owner[j] = (int)a; break;
            case 3: case 4: case 5: m.lock[j] -= amt; m.bal[b] += amt; break;
            case 6: m.bal[a] -= amt; m.stk[a] += amt; break;
            case 7: m.stk[a] -= amt; m.bal[a] += amt; break;
            case 8: m.stk[a] -= amt; m.bal[b] += amt; break;
            default: break;
            }
        }
        check_model(&c.st, &m);
        if (with_chain && rng_below(&rng, 8) == 0)
            chain_seal(&c);
    }
    if (with_chain) {
        struct cu_buf text;
        struct cu_verify_result r;
        struct cu_verifier v;
        struct cu_hash h1, h2;
        const char *line;
        size_t pos = 0, len;
        chain_seal(&c);
        export_text(c.blocks, c.n, &text);
        cu_verifier_init(&v, ID(0));
        while (cu_export_next_line(text.data, text.len, &pos, &line, &len))
            (void)cu_verifier_feed_line(&v, line, len, NULL);
        if (cu_verifier_finish(&v, &r))
            fail_msg("seed %llu: %s", (unsigned long long)seed, r.err.msg);
        assert_int_equal(cu_ledger_state_hash(cu_verifier_state(&v), &h1), 0);
        assert_int_equal(cu_ledger_state_hash(&c.st, &h2), 0);
        assert_true(cu_hash_eq(&h1, &h2));
        cu_verifier_release(&v);
        cu_buf_release(&text);
    }
    chain_release(&c);
}

static void test_property_random(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 1500; seed++)
        run_sequence(seed, 30, seed % 15 == 0);
}

/* A pending block applied in place under a journal: a rollback gives back
 * exactly the state it began from (digest, minted, seq, height, the
 * invariant), a commit keeps what was applied; refused transactions in
 * between change nothing either way. */
static void test_journal(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        struct cu_ledger_state st;
        struct cu_ledger_journal j;
        struct cu_tx tx;
        struct cu_err e = {0};
        uint64_t rng = seed * 7919;
        unsigned rollbacks = 0;

        cu_ledger_state_init(&st, true);
        mk(&tx, CU_TX_GENESIS_MINT, -1, 1, 1000, NULL);
        assert_int_equal(apply(&st, &tx, &e), 0);
        cu_tx_release(&tx);
        for (unsigned round = 0; round < 25; round++) {
            struct cu_hash before, mid, after;
            uint64_t minted = st.minted, seq = st.tx_count, height = st.height;
            unsigned n = (unsigned)rng_below(&rng, 7);
            bool undo = rng_below(&rng, 2) == 0;
            char job[16];

            assert_int_equal(cu_ledger_state_hash(&st, &before), 0);
            cu_ledger_journal_begin(&st, &j);
            st.height = height + 1;
            for (unsigned k = 0; k < n; k++) {
                int a = 1 + (int)rng_below(&rng, NACC), b = 1 + (int)rng_below(&rng, NACC);
                uint64_t amt = pick_amount(&rng, 300);
                (void)cu_snprintf(job, sizeof job, "j-%u", (unsigned)rng_below(&rng, NJOB));
                switch (rng_below(&rng, 9)) {
                case 0: mk(&tx, CU_TX_FAUCET_MINT, -1, a, amt, NULL); break;
                case 1: mk(&tx, CU_TX_TRANSFER, a, b, amt, NULL); break;
                case 2: mk(&tx, CU_TX_ESCROW_LOCK, a, -1, amt, job); break;
                case 3: mk(&tx, CU_TX_ESCROW_RELEASE, -1, b, amt, job); break;
                case 4: mk(&tx, CU_TX_FEE, -1, b, amt, job); break;
                case 5: mk(&tx, CU_TX_REFUND, -1, b, amt, job); break;
                case 6: mk(&tx, CU_TX_STAKE, a, -1, amt, NULL); break;
                case 7: mk(&tx, CU_TX_UNSTAKE, a, -1, amt, NULL); break;
                default: mk(&tx, CU_TX_SLASH, a, b, amt, NULL); break;
                }
                (void)apply(&st, &tx, &e); /* refused ones too: they must change nothing */
                cu_tx_release(&tx);
            }
            assert_int_equal(cu_ledger_state_hash(&st, &mid), 0);
            if (undo) {
                cu_ledger_journal_rollback(&st);
                rollbacks++;
                assert_int_equal(cu_ledger_state_hash(&st, &after), 0);
                assert_true(cu_hash_eq(&before, &after));
                assert_int_equal(st.minted, minted);
                assert_int_equal(st.tx_count, seq);
                assert_int_equal(st.height, height);
            } else {
                cu_ledger_journal_commit(&st);
                assert_int_equal(cu_ledger_state_hash(&st, &after), 0);
                assert_true(cu_hash_eq(&mid, &after));
                assert_int_equal(st.height, height + 1);
            }
            assert_null(st.journal);
            assert_int_equal(j.n, 0);
            assert_null(j.v);
            assert_int_equal(cu_ledger_check_invariant(&st, &e), 0);
        }
        assert_true(rollbacks > 0);
        cu_ledger_state_release(&st);
    }
}

static void test_many_accounts(void **state)
{
    struct cu_ledger_state st;
    struct cu_err e = {0};
    char id[CU_ID_LEN + 1];
    (void)state;
    cu_ledger_state_init(&st, true);
    for (unsigned i = 0; i < 5000; i++) {
        struct cu_tx tx;
        unsigned char raw[32] = {0};
        memcpy(raw, &i, sizeof i);
        cu_hex_encode(raw, sizeof raw, id);
        cu_tx_init(&tx, CU_TX_FAUCET_MINT);
        set_str(tx.to, sizeof tx.to, id);
        tx.amount = i + 1;
        tx.seq = st.tx_count;
        assert_int_equal(cu_ledger_apply(&st, &tx, &e), 0);
    }
    for (unsigned i = 0; i < 5000; i++) {
        unsigned char raw[32] = {0};
        memcpy(raw, &i, sizeof i);
        cu_hex_encode(raw, sizeof raw, id);
        assert_int_equal(cu_ledger_balance(&st, id), i + 1);
    }
    assert_int_equal(st.minted, 5000ULL * 5001 / 2);
    assert_int_equal(cu_ledger_check_invariant(&st, &e), 0);
    cu_ledger_state_release(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_tx_json_roundtrip),
        cmocka_unit_test(test_tx_strict),
        cmocka_unit_test(test_transfer_signature),
        cmocka_unit_test(test_escrow_authorization),
        cmocka_unit_test(test_apply_rules),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_merkle),
        cmocka_unit_test(test_chain_verifies),
        cmocka_unit_test(test_seal_with_ids),
        cmocka_unit_test(test_verify_names_rule_break),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_delete_reorder),
        cmocka_unit_test(test_streaming_sticky),
        cmocka_unit_test(test_property_random),
        cmocka_unit_test(test_journal),
        cmocka_unit_test(test_many_accounts),
    };
    /* LEDGER_TEST_FILTER=test_merkle runs the tests matching a pattern. */
    if (getenv("LEDGER_TEST_FILTER"))
        cmocka_set_test_filter(getenv("LEDGER_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
