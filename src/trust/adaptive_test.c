/* adaptive_test.c - solo probabilities, the draws, plans, and the rates
 * over all draws on a grid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "trust/adaptive.h"

#include "base/banned.h"

static void test_solo_ppm(void **state)
{
    struct cu_adaptive_params p;
    struct cu_adaptive_record r = {0, false};
    uint32_t prev = 0;
    (void)state;
    cu_adaptive_params_default(&p);
    assert_int_equal(cu_adaptive_params_check(&p), 0);
    assert_int_equal(cu_adaptive_solo_ppm(&p, &r), 0);
    r.clean = 20;
    assert_int_equal(cu_adaptive_solo_ppm(&p, &r), 0);
    r.clean = 60;
    assert_int_equal(cu_adaptive_solo_ppm(&p, &r), 450000);
    r.clean = 100;
    assert_int_equal(cu_adaptive_solo_ppm(&p, &r), 900000);
    r.clean = UINT64_MAX;
    assert_int_equal(cu_adaptive_solo_ppm(&p, &r), 900000);
    /* Caught once: no trust, whatever the record. */
    r.caught = true;
    assert_int_equal(cu_adaptive_solo_ppm(&p, &r), 0);
    /* Grows with the clean record, never past the cap. */
    r.caught = false;
    for (r.clean = 0; r.clean < 300; r.clean++) {
        uint32_t s = cu_adaptive_solo_ppm(&p, &r);
        assert_true(s >= prev && s <= p.solo_max_ppm);
        prev = s;
    }
    /* Bad params. */
    p.ramp = 0;
    assert_int_equal(cu_adaptive_params_check(&p), -CU_EINVAL);
    assert_int_equal(cu_adaptive_solo_ppm(&p, &r), 0);
    cu_adaptive_params_default(&p);
    p.audit_ppm = CU_PPM + 1;
    assert_int_equal(cu_adaptive_params_check(&p), -CU_EINVAL);
    cu_adaptive_params_default(&p);
    p.solo_max_ppm = CU_PPM + 1;
    assert_int_equal(cu_adaptive_params_check(&p), -CU_EINVAL);
}

static void test_draw(void **state)
{
    (void)state;
    assert_false(cu_ppm_draw(0, 0));
    assert_false(cu_ppm_draw(UINT32_MAX, 0));
    assert_true(cu_ppm_draw(0, 1));
    assert_true(cu_ppm_draw(UINT32_MAX, CU_PPM));
    assert_false(cu_ppm_draw(UINT32_MAX, CU_PPM - 1));
    /* Exactly ppm / 10^6 of a uniform grid of draws falls below. */
    for (uint32_t ppm = 0; ppm <= CU_PPM; ppm += 12500) {
        uint64_t hits = 0;
        for (uint64_t d = 0; d < (1ull << 32); d += 1ull << 12)
            hits += cu_ppm_draw((uint32_t)d, ppm);
        uint64_t want = ((uint64_t)ppm << 20) / CU_PPM; /* of 2^20 draws */
        assert_true(hits + 1 >= want && hits <= want + 1);
    }
}

static void test_plan(void **state)
{
    struct cu_adaptive_params p;
    struct cu_adaptive_record r = {1000, false};
    struct cu_replication normal = {2, 2, 5, false};
    struct cu_adaptive_plan pl;
    (void)state;
    cu_adaptive_params_default(&p);
    /* Low draw: solo; high half low too: audited. */
    assert_int_equal(cu_adaptive_plan(&p, &r, &normal, 0, &pl), 0);
    assert_true(pl.solo && pl.audit);
    assert_int_equal(pl.policy.min, 2);
    assert_int_equal(pl.policy.quorum, 2);
    assert_int_equal(pl.policy.max, 5);
    assert_int_equal(cu_replication_check(&pl.policy), 0);
    /* Solo, not audited. */
    assert_int_equal(cu_adaptive_plan(&p, &r, &normal, 0xffffffff00000000ull, &pl), 0);
    assert_true(pl.solo && !pl.audit);
    assert_int_equal(pl.policy.quorum, 1);
    assert_int_equal(pl.policy.max, 1);
    assert_int_equal(cu_replication_check(&pl.policy), 0);
    /* Above solo_max: the normal policy. */
    assert_int_equal(cu_adaptive_plan(&p, &r, &normal, 0xffffffffull, &pl), 0);
    assert_false(pl.solo);
    assert_false(pl.audit);
    assert_memory_equal(&pl.policy, &normal, sizeof normal);
    /* A caught provider never runs solo. */
    r.caught = true;
    assert_int_equal(cu_adaptive_plan(&p, &r, &normal, 0, &pl), 0);
    assert_false(pl.solo);
    assert_int_equal(pl.solo_ppm, 0);
    /* An audit of a job with max 1 still has room for its second replica. */
    r.caught = false;
    normal = (struct cu_replication){1, 1, 1, true};
    assert_int_equal(cu_adaptive_plan(&p, &r, &normal, 0, &pl), 0);
    assert_int_equal(pl.policy.max, 2);
    assert_true(pl.policy.fail_fast);
    assert_int_equal(cu_replication_check(&pl.policy), 0);
    /* Bad input. */
    normal.quorum = 0;
    assert_int_equal(cu_adaptive_plan(&p, &r, &normal, 0, &pl), -CU_EINVAL);
    normal = (struct cu_replication){2, 2, 5, false};
    p.ramp = 0;
    assert_int_equal(cu_adaptive_plan(&p, &r, &normal, 0, &pl), -CU_EINVAL);
}

/* Over a grid of draws the solo and audit rates are what the params say. */
static void test_rates(void **state)
{
    struct cu_adaptive_params p;
    struct cu_adaptive_record r = {60, false}; /* solo 45% */
    struct cu_replication normal = {2, 2, 5, false};
    struct cu_adaptive_plan pl;
    uint64_t solo = 0, audit = 0, n = 0;
    (void)state;
    cu_adaptive_params_default(&p);
    for (uint64_t lo = 0; lo < (1ull << 32); lo += 1ull << 22)
        for (uint64_t hi = 0; hi < (1ull << 32); hi += 1ull << 22) {
            assert_int_equal(cu_adaptive_plan(&p, &r, &normal, hi << 32 | lo, &pl), 0);
            solo += pl.solo;
            audit += pl.audit;
            n++;
        }
    assert_int_equal(n, 1u << 20);
    /* 45% of 1024 low draws = 460.8 -> 461 grid points below; 10% -> 103. */
    assert_int_equal(solo, 461u * 1024);
    assert_int_equal(audit, 461u * 103);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_solo_ppm),
        cmocka_unit_test(test_draw),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
