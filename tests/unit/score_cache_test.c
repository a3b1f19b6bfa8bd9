/* score_cache_test.c - the exchange's cached reputation score
 * (exchange/trust.h): an exact read always equals a recount of the
 * provider's records as of its newest one; an inexact read may miss only
 * accepted records, fewer than EX_SCORE_LAG_RECORDS within
 * EX_SCORE_LAG_MS, and any other outcome is seen at once. Drives the
 * exchange's state in-process, with records at chosen times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/util.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "exchange/state.h"
#include "exchange/trust.h"
#include "trust/reputation.h"

#include "base/banned.h"

#define MAX_RECORDS 600

struct env {
    char dir[CU_PATH_MAX];
    struct ex_state st;
    struct cu_identity prov;
    struct cu_rep_record rec[MAX_RECORDS];
    size_t n;
    int64_t t; /* the next record's time */
};

/* The score a full recount gives as of the newest record (what an exact
 * read must return). */
static uint32_t recount(const struct env *v)
{
    struct cu_rep_params p;
    uint32_t s = 0;

    cu_rep_params_default(&p);
    assert_int_equal(cu_rep_score(v->rec, v->n, &p, v->n ? v->rec[v->n - 1].time_ms : 0, &s, NULL),
                     0);
    return s;
}

/* One record in its own transaction, dt ms after the previous one. */
static void add(struct env *v, enum cu_rep_outcome o, int64_t dt)
{
    assert_true(v->n < MAX_RECORDS);
    v->t += dt;
    v->rec[v->n].outcome = o;
    v->rec[v->n].time_ms = v->t;
    v->n++;
    pthread_mutex_lock(&v->st.mu);
    assert_int_equal(ex_txn_begin(&v->st, NULL), 0);
    assert_int_equal(ex_trust_record(&v->st, v->prov.id, o, "j-test", (int64_t)v->n, v->t), 0);
    assert_int_equal(ex_txn_commit(&v->st, v->t, NULL), 0);
    pthread_mutex_unlock(&v->st.mu);
}

static uint32_t score(struct env *v, bool exact)
{
    uint32_t s;

    pthread_mutex_lock(&v->st.mu);
    s = ex_trust_score(&v->st, v->prov.id, exact);
    pthread_mutex_unlock(&v->st.mu);
    return s;
}

static int setup(void **state)
{
    struct ex_hello h = {.slots = 1, .cores = 1, .memory = 1 << 20, .version = "test",
                         .price_per_cu = 1, .cu_factor_milli = 1000};
    struct cu_err e = {0};
    struct ex_fail f = {0};
    struct env *v = calloc(1, sizeof *v);

    assert_non_null(v);
    assert_int_equal(cu_crypto_init(), 0);
    assert_int_equal(cu_identity_generate(&v->prov), 0);
    assert_int_equal(cu_snprintf(v->dir, sizeof v->dir, "%s/cu_score_XXXXXX",
                                 access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp"),
                     0);
    assert_non_null(mkdtemp(v->dir));
    if (ex_state_open(&v->st, v->dir, 20000, true, &e) != 0)
        fail_msg("open: %s", e.msg);
    v->t = cu_now_ms();
    assert_int_equal(ex_provider_hello(&v->st, v->prov.id, &h, v->t, &f), 0);
    *state = v;
    return 0;
}

static int teardown(void **state)
{
    struct env *v = *state;

    ex_state_close(&v->st);
    (void)cu_rm_rf(v->dir);
    cu_identity_wipe(&v->prov);
    free(v);
    return 0;
}

/* Several records of one provider in one transaction (a report batch):
 * the first marks the score stale and the others skip the write; an
 * exact read in between recomputes and clears the mark, so the records
 * after it mark it stale again and a later exact read counts them. */
static void test_records_in_one_transaction(void **state)
{
    struct env *v = *state;

    pthread_mutex_lock(&v->st.mu);
    assert_int_equal(ex_txn_begin(&v->st, NULL), 0);
    for (int i = 0; i < 6; i++) {
        assert_true(v->n < MAX_RECORDS);
        v->t += 5;
        v->rec[v->n].outcome = CU_REP_ACCEPTED;
        v->rec[v->n].time_ms = v->t;
        v->n++;
        assert_int_equal(
            ex_trust_record(&v->st, v->prov.id, CU_REP_ACCEPTED, "j-test", (int64_t)v->n, v->t),
            0);
        if (i == 2) /* a claim of the same transaction reading it exactly */
            (void)ex_trust_score(&v->st, v->prov.id, true);
    }
    assert_int_equal(ex_txn_commit(&v->st, v->t, NULL), 0);
    pthread_mutex_unlock(&v->st.mu);
    assert_int_equal(score(v, true), recount(v));
    assert_int_equal(score(v, false), recount(v));
}

/* A new provider scores 0; its first record is always seen. */
static void test_first_record(void **state)
{
    struct env *v = *state;

    assert_int_equal(score(v, false), 0);
    assert_int_equal(score(v, true), 0);
    add(v, CU_REP_ACCEPTED, 0);
    assert_true(recount(v) > 0);
    assert_int_equal(score(v, false), recount(v));
    assert_int_equal(score(v, true), recount(v));
}

/* Accepted records within the lag leave the inexact score where it was
 * computed; an exact read counts them all; past the lag's count or span
 * the inexact read recomputes too. */
static void test_accepted_lag(void **state)
{
    struct env *v = *state;
    uint32_t cached;

    for (int i = 0; i < 50; i++)
        add(v, CU_REP_ACCEPTED, 10);
    (void)score(v, true); /* fresh now */
    cached = recount(v);
    for (int i = 0; i < EX_SCORE_LAG_RECORDS - 1; i++) {
        add(v, CU_REP_ACCEPTED, 1);
        assert_int_equal(score(v, false), cached);
    }
    /* The cache did move the score: the recount differs. */
    assert_true(recount(v) > cached);
    add(v, CU_REP_ACCEPTED, 1); /* the lag's count is reached */
    assert_int_equal(score(v, false), recount(v));
    cached = recount(v);
    add(v, CU_REP_ACCEPTED, 1);
    assert_int_equal(score(v, false), cached);
    assert_int_equal(score(v, true), recount(v)); /* exact: counted at once */
    cached = recount(v);
    add(v, CU_REP_ACCEPTED, EX_SCORE_LAG_MS); /* the lag's span is reached */
    assert_int_equal(score(v, false), recount(v));
}

/* A record other than accepted is seen by the very next read, inexact or
 * not, whatever the lag. */
static void test_bad_record_at_once(void **state)
{
    struct env *v = *state;
    static const enum cu_rep_outcome bad[] = {CU_REP_WRONG_RESULT, CU_REP_LEASE_EXPIRED,
                                              CU_REP_ABANDONED, CU_REP_CHALLENGE_FAILED};

    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        uint32_t before;
        (void)score(v, true);
        add(v, CU_REP_ACCEPTED, 1);
        before = score(v, false);
        add(v, bad[k], 1);
        assert_int_equal(score(v, false), recount(v));
        assert_true(recount(v) < before);
        /* ...and accepted records after it, before any read, do not hide
         * it. */
        add(v, bad[k], 1);
        add(v, CU_REP_ACCEPTED, 1);
        add(v, CU_REP_ACCEPTED, 1);
        assert_int_equal(score(v, false), recount(v));
    }
}

/* A random mix: exact reads always equal the recount; inexact ones equal
 * it whenever a non-accepted record, the count or the span says so. */
static void test_random_mix(void **state)
{
    struct env *v = *state;
    uint64_t x = 0x9E3779B97F4A7C15ULL;

    for (int i = 0; i < 300 && v->n < MAX_RECORDS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        enum cu_rep_outcome o = x % 10 < 8 ? CU_REP_ACCEPTED : (enum cu_rep_outcome)(1 + x % 4);
        add(v, o, (int64_t)(x >> 40) % 300);
        if (o != CU_REP_ACCEPTED)
            assert_int_equal(score(v, false), recount(v));
        if ((x >> 20) % 3 == 0)
            assert_int_equal(score(v, true), recount(v));
    }
    assert_int_equal(score(v, true), recount(v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_record),
        cmocka_unit_test(test_accepted_lag),
        cmocka_unit_test(test_bad_record_at_once),
        cmocka_unit_test(test_records_in_one_transaction),
        cmocka_unit_test(test_random_mix),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
