/* replay_test.c - the in-memory replay window for signed reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdlib.h>

#include "base/err.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "exchange/replay.h"
#include "exchange/state.h"

static void test_replay_once(void **state)
{
    struct ex_replay r;

    (void)state;
    assert_int_equal(cu_crypto_init(), 0);
    assert_int_equal(ex_replay_init(&r, 1000), 0);
    assert_int_equal(ex_replay_use(&r, "k1", "n1", 100), 0);
    assert_int_equal(ex_replay_use(&r, "k1", "n1", 200), -CU_EAUTH);
    /* The same nonce under another key, another nonce under the same key. */
    assert_int_equal(ex_replay_use(&r, "k2", "n1", 200), 0);
    assert_int_equal(ex_replay_use(&r, "k1", "n2", 200), 0);
    /* Key and nonce do not run together: "k1"+"1n" is not "k11"+"n". */
    assert_int_equal(ex_replay_use(&r, "k11", "n", 200), 0);
    assert_int_equal(ex_replay_use(&r, "k1", "1n", 200), 0);
    /* Past the TTL the timestamp check refuses it anyway; the slot is free. */
    assert_int_equal(ex_replay_use(&r, "k1", "n1", 1100), 0);
    assert_int_equal(ex_replay_use(&r, "k1", "n1", 1101), -CU_EAUTH);
    ex_replay_release(&r);
}

/* Many distinct nonces: the window grows, every one is still caught. */
static void test_replay_grows(void **state)
{
    struct ex_replay r;
    char n[32];
    const unsigned count = 3 * EX_REPLAY_MIN;

    (void)state;
    assert_int_equal(ex_replay_init(&r, 60000), 0);
    for (unsigned i = 0; i < count; i++) {
        snprintf(n, sizeof n, "%u", i);
        assert_int_equal(ex_replay_use(&r, "k", n, 1000 + i), 0);
    }
    assert_true(r.cap > EX_REPLAY_MIN);
    for (unsigned i = 0; i < count; i++) {
        snprintf(n, sizeof n, "%u", i);
        assert_int_equal(ex_replay_use(&r, "k", n, 2000 + count), -CU_EAUTH);
    }
    ex_replay_release(&r);
}

/* Expired entries are purged instead of growing the table forever. */
static void test_replay_purges(void **state)
{
    struct ex_replay r;
    char n[32];

    (void)state;
    assert_int_equal(ex_replay_init(&r, 10), 0);
    for (unsigned i = 0; i < 20 * EX_REPLAY_MIN; i++) {
        snprintf(n, sizeof n, "%u", i);
        assert_int_equal(ex_replay_use(&r, "k", n, 1 + (int64_t)i * 100), 0);
    }
    assert_int_equal(r.cap, EX_REPLAY_MIN);
    ex_replay_release(&r);
}

/* A full window says so (the caller falls back to the durable path); it
 * never forgets a live entry to make room. */
static void test_replay_full(void **state)
{
    struct ex_replay r;
    char n[32];
    unsigned i, ok = 0;
    int rc = 0;

    (void)state;
    assert_int_equal(ex_replay_init(&r, 1000000), 0);
    for (i = 0; i < EX_REPLAY_MAX; i++) {
        snprintf(n, sizeof n, "%u", i);
        rc = ex_replay_use(&r, "k", n, 5);
        if (rc)
            break;
        ok++;
    }
    assert_int_equal(rc, -CU_EAGAIN);
    assert_true(ok >= EX_REPLAY_MAX / 2 - 1);
    for (i = 0; i < ok; i += 997) {
        snprintf(n, sizeof n, "%u", i);
        assert_int_equal(ex_replay_use(&r, "k", n, 6), -CU_EAUTH);
    }
    ex_replay_release(&r);
}

static void reopen(struct ex_state *st, const char *dir)
{
    struct cu_err e = {0};

    ex_state_close(st);
    if (ex_state_open(st, dir, 20000, true, &e) != 0)
        fail_msg("reopen: %s", e.msg);
}

/* Durable nonces of writes (state.c, schema.c 18): keyed by the signed
 * timestamp; a replay (same key, timestamp, nonce) is refused before and
 * after a restart; a nonce written before migration 18 (the old table,
 * by arrival time) still refuses its replay, whatever the timestamp, until
 * the reaper prunes it. */
static void test_durable_nonces(void **state)
{
    char dir[] = "/tmp/cu_nonces_XXXXXX", path[512];
    struct ex_state st = {0};
    struct cu_err e = {0};
    int64_t now = cu_now_ms(), t = now - now % 1000;
    sqlite3 *db;

    (void)state;
    assert_int_equal(cu_crypto_init(), 0);
    assert_non_null(mkdtemp(dir));
    assert_int_equal(ex_state_open(&st, dir, 20000, true, &e), 0);
    assert_int_equal(ex_nonce_use(&st, "k1", "n1", t, &e), 0);
    assert_int_equal(ex_nonce_use(&st, "k1", "n1", t, &e), -CU_EAUTH); /* pending */
    assert_int_equal(ex_nonces_flush(&st), 0);
    assert_int_equal(ex_nonce_use(&st, "k1", "n1", t, &e), -CU_EAUTH); /* in the table */
    assert_int_equal(ex_nonce_use(&st, "k2", "n1", t, &e), 0);
    assert_int_equal(ex_nonces_flush(&st), 0);
    reopen(&st, dir);
    assert_int_equal(ex_nonce_use(&st, "k1", "n1", t, &e), -CU_EAUTH);
    assert_int_equal(ex_nonce_use(&st, "k2", "n1", t, &e), -CU_EAUTH);
    assert_false(st.legacy_nonces);

    /* A nonce recorded before migration 18, at its arrival time. */
    assert_int_equal(cu_snprintf(path, sizeof path, "%s/state.db", dir), 0);
    ex_state_close(&st);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO nonces (key, nonce, ts_ms) "
                                  "VALUES ('k3', 'old', CAST(strftime('%s','now') AS INTEGER) * 1000)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ex_state_open(&st, dir, 20000, true, &e), 0);
    assert_true(st.legacy_nonces);
    assert_int_equal(ex_nonce_use(&st, "k3", "old", t - 7000, &e), -CU_EAUTH);
    assert_int_equal(ex_nonce_use(&st, "k3", "old", t + 3000, &e), -CU_EAUTH);
    assert_int_equal(ex_nonce_use(&st, "k3", "new", t, &e), 0);
    assert_int_equal(ex_nonces_flush(&st), 0);
    /* Pruned once older than EX_NONCE_TTL_MS: the old table is empty and
     * no longer asked; the new one forgets only what is stale. */
    assert_int_equal(ex_reap(&st, now + EX_NONCE_TTL_MS + 60000) >= 0, 1);
    assert_false(st.legacy_nonces);
    assert_int_equal(ex_nonce_use(&st, "k1", "n1", t + EX_NONCE_TTL_MS + 60000, &e), 0);
    ex_state_close(&st);
    assert_int_equal(cu_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_once),
        cmocka_unit_test(test_replay_grows),
        cmocka_unit_test(test_replay_purges),
        cmocka_unit_test(test_replay_full),
        cmocka_unit_test(test_durable_nonces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
