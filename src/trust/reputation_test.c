/* reputation_test.c - the score formula: fixed points, decay, weights,
 * order independence, monotonicity, names and bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "trust/reputation.h"

#include "base/banned.h"

#define DAY (24LL * 3600 * 1000)
#define NOW (1700000000000LL)

static uint32_t score_of(const struct cu_rep_record *r, size_t n, int64_t now)
{
    struct cu_rep_params p;
    uint32_t s = 9999;
    cu_rep_params_default(&p);
    assert_int_equal(cu_rep_score(r, n, &p, now, &s, NULL), 0);
    return s;
}

/* n records of one outcome at time t into r (from index at). */
static size_t fill(struct cu_rep_record *r, size_t at, size_t n, enum cu_rep_outcome o, int64_t t)
{
    for (size_t i = 0; i < n; i++) {
        r[at + i].outcome = o;
        r[at + i].time_ms = t;
    }
    return at + n;
}

static void test_fixed_points(void **state)
{
    static struct cu_rep_record r[512];
    size_t n;
    (void)state;

    /* A fresh id has no evidence: 0. */
    assert_int_equal(score_of(r, 0, NOW), 0);
    n = fill(r, 0, 1, CU_REP_ACCEPTED, NOW);
    assert_int_equal(score_of(r, n, NOW), 90); /* 1 / 11 */
    n = fill(r, 0, 10, CU_REP_ACCEPTED, NOW);
    assert_int_equal(score_of(r, n, NOW), 500);
    n = fill(r, 0, 40, CU_REP_ACCEPTED, NOW);
    assert_int_equal(score_of(r, n, NOW), 800); /* the min_reputation 0.8 */
    n = fill(r, 0, 490, CU_REP_ACCEPTED, NOW);
    assert_int_equal(score_of(r, n, NOW), 980);
    /* One wrong result costs 16 accepted ones. */
    n = fill(r, 0, 100, CU_REP_ACCEPTED, NOW);
    n = fill(r, n, 1, CU_REP_WRONG_RESULT, NOW);
    assert_int_equal(score_of(r, n, NOW), 793); /* 100 / 126 */
    /* A lease expiry costs one. */
    n = fill(r, 0, 100, CU_REP_ACCEPTED, NOW);
    n = fill(r, n, 1, CU_REP_LEASE_EXPIRED, NOW);
    assert_int_equal(score_of(r, n, NOW), 900); /* 100 / 111 */
    n = fill(r, 0, 100, CU_REP_ACCEPTED, NOW);
    n = fill(r, n, 1, CU_REP_ABANDONED, NOW);
    assert_int_equal(score_of(r, n, NOW), 892); /* 100 / 112 */
    n = fill(r, 0, 100, CU_REP_ACCEPTED, NOW);
    n = fill(r, n, 1, CU_REP_CHALLENGE_FAILED, NOW);
    assert_int_equal(score_of(r, n, NOW), 847); /* 100 / 118 */
    /* Only bad records: 0. */
    n = fill(r, 0, 5, CU_REP_WRONG_RESULT, NOW);
    assert_int_equal(score_of(r, n, NOW), 0);
}

static void test_decay(void **state)
{
    const int64_t h = 30 * DAY;
    uint32_t prev = 1000001;
    (void)state;
    assert_int_equal(cu_rep_decay_ppm(0, h), 1000000);
    assert_int_equal(cu_rep_decay_ppm(-5, h), 1000000);
    assert_int_equal(cu_rep_decay_ppm(h / 2, h), 750000);
    assert_int_equal(cu_rep_decay_ppm(h, h), 500000);
    assert_int_equal(cu_rep_decay_ppm(2 * h, h), 250000);
    assert_int_equal(cu_rep_decay_ppm(3 * h / 2, h), 375000);
    assert_int_equal(cu_rep_decay_ppm(20 * h, h), 0);
    assert_int_equal(cu_rep_decay_ppm(INT64_MAX, h), 0);
    assert_int_equal(cu_rep_decay_ppm(10, 0), 0);
    assert_int_equal(cu_rep_decay_ppm(INT64_MAX - 1, INT64_MAX), 500001);
    /* Never increasing with age, continuous at the halvings. */
    for (int64_t a = 0; a <= 25 * h; a += h / 97) {
        uint32_t w = cu_rep_decay_ppm(a, h);
        assert_true(w <= prev);
        prev = w;
    }
    for (int k = 1; k < 19; k++) {
        uint32_t before = cu_rep_decay_ppm((int64_t)k * h - 1, h);
        uint32_t at = cu_rep_decay_ppm((int64_t)k * h, h);
        assert_true(before >= at && before - at <= 1);
    }

    /* 40 clean results a half-life ago count as 20 today. */
    struct cu_rep_record r[40];
    fill(r, 0, 40, CU_REP_ACCEPTED, NOW - h);
    assert_int_equal(score_of(r, 40, NOW), 666); /* 20 / 30 */
    /* A record from the future counts as new. */
    fill(r, 0, 40, CU_REP_ACCEPTED, NOW + DAY);
    assert_int_equal(score_of(r, 40, NOW), 800);
}

/* A provider cannot buy back trust by re-registering: the fresh id scores
 * 0, below any id with more good than bad evidence. */
static void test_fresh_id_starts_low(void **state)
{
    struct cu_rep_record r[64];
    size_t n;
    (void)state;
    n = fill(r, 0, 30, CU_REP_ACCEPTED, NOW - DAY);
    n = fill(r, n, 1, CU_REP_WRONG_RESULT, NOW);
    uint32_t caught = score_of(r, n, NOW);
    assert_true(caught > 0);
    assert_true(caught < 800);
    assert_int_equal(score_of(r, 0, NOW), 0);
    /* Honest work on the new id: 40 results to pass 0.8 again. */
    n = fill(r, 0, 39, CU_REP_ACCEPTED, NOW);
    assert_true(score_of(r, n, NOW) < 800);
    n = fill(r, 0, 40, CU_REP_ACCEPTED, NOW);
    assert_true(score_of(r, n, NOW) >= 800);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_order_and_monotone(void **state)
{
    static struct cu_rep_record r[200], shuf[200];
    struct cu_rep_params p;
    (void)state;
    cu_rep_params_default(&p);
    for (int round = 0; round < 200; round++) {
        size_t n = rnd() % 150;
        for (size_t i = 0; i < n; i++) {
            r[i].outcome = (enum cu_rep_outcome)(rnd() % CU_REP_NOUTCOMES);
            r[i].time_ms = NOW - (int64_t)(rnd() % (200 * (uint64_t)DAY));
        }
        uint32_t s = score_of(r, n, NOW);
        assert_true(s <= 1000);
        /* Any order gives the same score and tally. */
        memcpy(shuf, r, n * sizeof r[0]);
        for (size_t i = n; i > 1; i--) {
            size_t j = rnd() % i;
            struct cu_rep_record x = shuf[i - 1];
            shuf[i - 1] = shuf[j];
            shuf[j] = x;
        }
        struct cu_rep_tally ta, tb;
        uint32_t sa, sb;
        assert_int_equal(cu_rep_score(r, n, &p, NOW, &sa, &ta), 0);
        assert_int_equal(cu_rep_score(shuf, n, &p, NOW, &sb, &tb), 0);
        assert_int_equal(sa, sb);
        assert_memory_equal(&ta, &tb, sizeof ta);
        /* A new accepted record never lowers the score; a bad one never
         * raises it. */
        r[n].time_ms = NOW - (int64_t)(rnd() % (60 * (uint64_t)DAY));
        r[n].outcome = CU_REP_ACCEPTED;
        assert_true(score_of(r, n + 1, NOW) >= s);
        for (int o = 1; o < CU_REP_NOUTCOMES; o++) {
            r[n].outcome = (enum cu_rep_outcome)o;
            assert_true(score_of(r, n + 1, NOW) <= s);
        }
        /* Worse outcomes cost more: wrong > challenge > abandoned > expiry. */
        r[n].time_ms = NOW;
        r[n].outcome = CU_REP_WRONG_RESULT;
        uint32_t w = score_of(r, n + 1, NOW);
        r[n].outcome = CU_REP_CHALLENGE_FAILED;
        uint32_t c = score_of(r, n + 1, NOW);
        r[n].outcome = CU_REP_ABANDONED;
        uint32_t a = score_of(r, n + 1, NOW);
        r[n].outcome = CU_REP_LEASE_EXPIRED;
        uint32_t e = score_of(r, n + 1, NOW);
        assert_true(w <= c && c <= a && a <= e);
    }
}

static void test_tally(void **state)
{
    struct cu_rep_record r[6] = {
        {CU_REP_ACCEPTED, NOW - 5}, {CU_REP_WRONG_RESULT, NOW - 4},  {CU_REP_ACCEPTED, NOW - 3},
        {CU_REP_ACCEPTED, NOW - 2}, {CU_REP_LEASE_EXPIRED, NOW - 1}, {CU_REP_ACCEPTED, NOW},
    };
    struct cu_rep_params p;
    struct cu_rep_tally t;
    uint32_t s;
    (void)state;
    cu_rep_params_default(&p);
    assert_int_equal(cu_rep_score(r, 6, &p, NOW, &s, &t), 0);
    assert_int_equal(t.count[CU_REP_ACCEPTED], 4);
    assert_int_equal(t.count[CU_REP_WRONG_RESULT], 1);
    assert_int_equal(t.count[CU_REP_LEASE_EXPIRED], 1);
    assert_int_equal(t.last_bad_ms, NOW - 4);
    assert_int_equal(t.clean_streak, 3);
    cu_rep_tally_init(&t);
    assert_int_equal(t.last_bad_ms, INT64_MIN);
    assert_int_equal(cu_rep_score_milli(&t, &p), 0);
    /* Saturation instead of overflow. */
    t.good_ppm = UINT64_MAX - 5;
    assert_int_equal(cu_rep_tally_add(&t, &p, &r[0], NOW), 0);
    assert_true(t.good_ppm == UINT64_MAX);
    assert_int_equal(cu_rep_score_milli(&t, &p), 999);
    /* Bad input changes nothing. */
    struct cu_rep_record bad = {(enum cu_rep_outcome)CU_REP_NOUTCOMES, NOW};
    struct cu_rep_tally before = t;
    assert_int_equal(cu_rep_tally_add(&t, &p, &bad, NOW), -CU_EINVAL);
    assert_memory_equal(&t, &before, sizeof t);
    assert_int_equal(cu_rep_score(&bad, 1, &p, NOW, &s, NULL), -CU_EINVAL);
}

static void test_params(void **state)
{
    struct cu_rep_params p;
    uint32_t s;
    (void)state;
    cu_rep_params_default(&p);
    assert_int_equal(cu_rep_params_check(&p), 0);
    assert_int_equal(p.penalty[CU_REP_WRONG_RESULT], 16);
    assert_int_equal(p.penalty[CU_REP_LEASE_EXPIRED], 1);
    p.half_life_ms = 0;
    assert_int_equal(cu_rep_params_check(&p), -CU_EINVAL);
    assert_int_equal(cu_rep_score(NULL, 0, &p, NOW, &s, NULL), -CU_EINVAL);
    cu_rep_params_default(&p);
    p.prior = 0;
    assert_int_equal(cu_rep_params_check(&p), -CU_EINVAL);
    cu_rep_params_default(&p);
    p.penalty[CU_REP_ABANDONED] = 1001;
    assert_int_equal(cu_rep_params_check(&p), -CU_EINVAL);
}

static void test_names(void **state)
{
    enum cu_rep_outcome o;
    (void)state;
    for (int i = 0; i < CU_REP_NOUTCOMES; i++) {
        const char *name = cu_rep_outcome_name((enum cu_rep_outcome)i);
        assert_non_null(name);
        assert_int_equal(cu_rep_outcome_parse(name, &o), 0);
        assert_int_equal(o, i);
    }
    assert_null(cu_rep_outcome_name(CU_REP_NOUTCOMES));
    assert_string_equal(cu_rep_outcome_name(CU_REP_CHALLENGE_FAILED), "challenge_failed");
    assert_int_equal(cu_rep_outcome_parse("success", &o), 0);
    assert_int_equal(o, CU_REP_ACCEPTED);
    assert_int_equal(cu_rep_outcome_parse("timeout", &o), 0);
    assert_int_equal(o, CU_REP_LEASE_EXPIRED);
    assert_int_equal(cu_rep_outcome_parse("Accepted", &o), -CU_EINVAL);
    assert_int_equal(cu_rep_outcome_parse("", &o), -CU_EINVAL);
}

static void test_min_parse(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint32_t v;
    } cases[] = {
        {"0", 0, 0},
        {"1", 0, 1000},
        {"0.8", 0, 800},
        {"0.85", 0, 850},
        {"0.123", 0, 123},
        {"1.0", 0, 1000},
        {"1.000", 0, 1000},
        {"0.0", 0, 0},
        {"0.1234", -CU_EINVAL, 0},
        {"1.5", -CU_EINVAL, 0},
        {"2", -CU_EINVAL, 0},
        {"0.", -CU_EINVAL, 0},
        {".8", -CU_EINVAL, 0},
        {"", -CU_EINVAL, 0},
        {"0.8x", -CU_EINVAL, 0},
        {"-0.5", -CU_EINVAL, 0},
        {"01", -CU_EINVAL, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t v = 4242;
        int rc = cu_rep_min_parse(cases[i].s, &v);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, want %d", cases[i].s, rc, cases[i].rc);
        if (rc == 0)
            assert_int_equal(v, cases[i].v);
        else
            assert_int_equal(v, 4242);
    }
    assert_true(cu_rep_eligible(800, 800));
    assert_false(cu_rep_eligible(799, 800));
    assert_true(cu_rep_eligible(0, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_points),
        cmocka_unit_test(test_decay),
        cmocka_unit_test(test_fresh_id_starts_low),
        cmocka_unit_test(test_order_and_monotone),
        cmocka_unit_test(test_tally),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_min_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
