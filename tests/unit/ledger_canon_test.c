/* ledger_canon_test.c - the direct writer of canonical transaction bytes
 * (src/ledger/tx.c) and export lines (src/ledger/export.c) against
 * jansson: for random transactions of every type, with hostile strings
 * (quotes, backslashes, control bytes, DEL, multi-byte and invalid UTF-8)
 * and extreme integers, the canonical, signing and export forms must be
 * byte-for-byte what cu_json_dump writes for cu_tx_to_json's object, and
 * fail exactly where jansson refuses a string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/json.h"
#include "base/util.h"
#include "ledger/block.h"
#include "ledger/export.h"
#include "ledger/tx.h"

#include "base/banned.h"

#define ROUNDS 20000

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Pieces hostile strings are made of. */
static const char *const pieces[] = {
    "a", "Z09", "-_.:", "\"", "\\", "/", "\n", "\r\t", "\b\f", "\x01", "\x1f", "\x7f",
    "\xc3\xa9",                 /* é */
    "\xe2\x80\x94",             /* em dash */
    "\xf0\x9f\x98\x80",         /* U+1F600 */
    "\xef\xbf\xbf",             /* U+FFFF */
    "{\"k\":[1,2]}", " ", "0123456789abcdef",
};
static const char *const bad_pieces[] = {
    "\xff", "\xc0\x80", "\xed\xa0\x80", /* surrogate */
    "\xf4\x90\x80\x80",                 /* > U+10FFFF */
    "\xe2\x80", "\x80", "\xc3",
};

/* A random string of at most cap-1 bytes; rarely invalid UTF-8. */
static void rand_str(uint64_t *rng, char *dst, size_t cap, bool allow_bad)
{
    size_t n = 0, parts = rng_next(rng) % 6;

    dst[0] = '\0';
    for (size_t i = 0; i < parts; i++) {
        const char *p;
        if (allow_bad && rng_next(rng) % 50 == 0)
            p = bad_pieces[rng_next(rng) % (sizeof bad_pieces / sizeof bad_pieces[0])];
        else
            p = pieces[rng_next(rng) % (sizeof pieces / sizeof pieces[0])];
        size_t l = strlen(p);
        if (n + l >= cap)
            break;
        memcpy(dst + n, p, l + 1);
        n += l;
    }
}

static void rand_id(uint64_t *rng, char *dst)
{
    for (int i = 0; i < CU_ID_LEN; i++)
        dst[i] = "0123456789abcdef"[rng_next(rng) % 16];
    dst[CU_ID_LEN] = '\0';
}

static int64_t rand_int(uint64_t *rng)
{
    switch (rng_next(rng) % 5) {
    case 0: return 0;
    case 1: return (int64_t)(rng_next(rng) % 1000);
    case 2: return INT64_MAX;
    case 3: return -(int64_t)(rng_next(rng) % 100000) - 1;
    default: return (int64_t)rng_next(rng);
    }
}

/* A transaction of a random type; fields filled at random, sometimes
 * beyond what the type allows (the writers serialise what is stored). */
static void rand_tx(uint64_t *rng, struct cu_tx *tx, bool allow_bad)
{
    cu_tx_init(tx, (enum cu_tx_type)(rng_next(rng) % CU_TX_NTYPES));
    tx->seq = (uint64_t)rand_int(rng);
    tx->time_ms = rand_int(rng);
    if (rng_next(rng) % 4)
        rand_id(rng, tx->from);
    else
        rand_str(rng, tx->from, sizeof tx->from, allow_bad);
    if (rng_next(rng) % 4)
        rand_id(rng, tx->to);
    tx->amount = (uint64_t)rand_int(rng);
    tx->nonce = (uint64_t)rand_int(rng);
    rand_str(rng, tx->job, sizeof tx->job, allow_bad);
    rand_str(rng, tx->replica, sizeof tx->replica, allow_bad);
    rand_str(rng, tx->memo, sizeof tx->memo, allow_bad);
    if (rng_next(rng) % 2) {
        char a[200];
        rand_str(rng, a, sizeof a, allow_bad);
        assert_int_equal(cu_tx_set_authorization(tx, a, strlen(a)), 0);
    }
    rand_str(rng, tx->rec.id, sizeof tx->rec.id, allow_bad);
    tx->rec.time_ms = rand_int(rng);
    rand_id(rng, tx->rec.client);
    rand_str(rng, tx->rec.seller, sizeof tx->rec.seller, allow_bad);
    tx->rec.task = (uint64_t)rand_int(rng);
    tx->rec.tx_number = (uint64_t)rand_int(rng);
    tx->rec.incentive = (uint64_t)rand_int(rng);
    tx->rec.status = (enum cu_task_status)(rng_next(rng) % (CU_TASK_NSTATUSES + 1));
    tx->rec.duration_ms = (uint64_t)rand_int(rng);
    rand_str(rng, tx->rec.task_type, sizeof tx->rec.task_type, allow_bad);
    for (int i = 0; i < CU_SIG_LEN; i++)
        tx->sig[i] = (unsigned char)rng_next(rng);
    tx->has_sig = rng_next(rng) % 2;
}

/* jansson's bytes for j (consumed); false when j is NULL. */
static bool jansson_bytes(json_t *j, struct cu_buf *out)
{
    if (!j)
        return false;
    assert_int_equal(cu_json_dump(j, out), 0);
    json_decref(j);
    return true;
}

static void expect_same(const struct cu_buf *fast, const struct cu_buf *ref, const char *form)
{
    if (fast->len != ref->len || memcmp(fast->data, ref->data, ref->len) != 0)
        fail_msg("%s form differs:\n fast %s\n ref  %s", form, cu_buf_str(fast),
                 cu_buf_str(ref));
}

static void test_forms_match_jansson(void **state)
{
    uint64_t rng = 7;
    unsigned refused = 0;

    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        struct cu_tx tx;
        struct cu_buf fast = CU_BUF_INIT(1u << 20), ref = CU_BUF_INIT(1u << 20);
        json_t *j;
        bool ok;
        int rc;

        rand_tx(&rng, &tx, true);
        /* canonical (the id's bytes) */
        j = cu_tx_to_json(&tx, false);
        ok = jansson_bytes(j, &ref);
        rc = cu_tx_canonical(&tx, &fast);
        if (!ok) {
            assert_int_equal(rc, -CU_ENOMEM);
            assert_int_equal(fast.len, 0);
            refused++;
        } else {
            assert_int_equal(rc, 0);
            expect_same(&fast, &ref, "canonical");
            /* export form: with the id */
            cu_buf_reset(&fast);
            cu_buf_reset(&ref);
            assert_true(jansson_bytes(cu_tx_to_json(&tx, true), &ref));
            assert_int_equal(cu_tx_export_form(&tx, &fast), 0);
            expect_same(&fast, &ref, "export");
            /* the id and the export form in one write, after earlier
             * bytes (a block's line joins them): the same id and form */
            {
                struct cu_buf both = CU_BUF_INIT(1u << 20);
                struct cu_hash id1, id2;
                assert_int_equal(cu_buf_appends(&both, "{},"), 0);
                assert_int_equal(cu_tx_id_export(&tx, &id1, &both), 0);
                assert_int_equal(cu_tx_id(&tx, &id2), 0);
                assert_memory_equal(&id1, &id2, sizeof id1);
                assert_int_equal(both.len, 3 + fast.len);
                assert_memory_equal(both.data, "{},", 3);
                assert_memory_equal(both.data + 3, fast.data, fast.len);
                assert_int_equal(both.data[both.len], '\0');
                cu_buf_release(&both);
            }
            /* signing form: without seq and sig, after the prefix */
            cu_buf_reset(&fast);
            cu_buf_reset(&ref);
            j = cu_tx_to_json(&tx, false);
            assert_non_null(j);
            json_object_del(j, "seq");
            json_object_del(j, "sig");
            assert_int_equal(cu_buf_appends(&ref, "cumulus-tx-v1\n"), 0);
            assert_true(jansson_bytes(j, &ref));
            assert_int_equal(cu_tx_signing_bytes(&tx, &fast), 0);
            expect_same(&fast, &ref, "signing");
        }
        cu_buf_release(&fast);
        cu_buf_release(&ref);
        cu_tx_release(&tx);
    }
    /* The hostile strings did reach the refusal path. */
    assert_true(refused > 0);
}

static void test_export_line_matches_jansson(void **state)
{
    uint64_t rng = 11;
    struct cu_identity producer;

    (void)state;
    assert_int_equal(cu_crypto_init(), 0);
    assert_int_equal(cu_identity_generate(&producer), 0);
    for (size_t ntx = 0; ntx < 40; ntx += 1 + ntx / 4) {
        struct cu_block b;
        struct cu_buf fast = CU_BUF_INIT(1u << 24), ref = CU_BUF_INIT(1u << 24);
        json_t *o = json_object(), *txs = json_array();

        cu_block_init(&b);
        for (size_t i = 0; i < ntx; i++) {
            struct cu_tx tx;
            rand_tx(&rng, &tx, false);
            assert_int_equal(json_array_append_new(txs, cu_tx_to_json(&tx, true)), 0);
            assert_int_equal(cu_block_add_tx(&b, &tx), 0);
            cu_tx_release(&tx);
        }
        assert_int_equal(cu_block_seal(&b, ntx, NULL, 1700000000000LL, ntx % 2, &producer), 0);
        assert_int_equal(json_object_set_new(o, "header", cu_block_header_to_json(&b.h, true)),
                         0);
        assert_int_equal(json_object_set_new(o, "txs", txs), 0);
        assert_true(jansson_bytes(o, &ref));
        assert_int_equal(cu_buf_append(&ref, "\n", 1), 0);
        assert_int_equal(cu_buf_appends(&fast, "kept|"), 0);
        assert_int_equal(cu_export_block(&b, &fast), 0);
        assert_memory_equal(fast.data, "kept|", 5);
        assert_int_equal(fast.len - 5, ref.len);
        assert_memory_equal(fast.data + 5, ref.data, ref.len);
        cu_buf_release(&fast);
        cu_buf_release(&ref);
        cu_block_release(&b);
    }
}

static void test_export_too_big_leaves_buffer(void **state)
{
    struct cu_block b;
    struct cu_tx tx;
    struct cu_buf out = CU_BUF_INIT(300);
    struct cu_identity producer;

    (void)state;
    assert_int_equal(cu_identity_generate(&producer), 0);
    cu_block_init(&b);
    for (int i = 0; i < 3; i++) {
        cu_tx_init(&tx, CU_TX_FAUCET_MINT);
        memset(tx.to, 'a', CU_ID_LEN);
        tx.amount = 5;
        tx.seq = (uint64_t)i;
        assert_int_equal(cu_block_add_tx(&b, &tx), 0);
    }
    assert_int_equal(cu_block_seal(&b, 1, NULL, 1, true, &producer), 0);
    assert_int_equal(cu_buf_appends(&out, "x"), 0);
    assert_int_equal(cu_export_block(&b, &out), -CU_ETOOBIG);
    assert_int_equal(out.len, 1);
    assert_string_equal(cu_buf_str(&out), "x");
    cu_buf_release(&out);
    cu_block_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms_match_jansson),
        cmocka_unit_test(test_export_line_matches_jansson),
        cmocka_unit_test(test_export_too_big_leaves_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
