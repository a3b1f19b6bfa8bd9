/* price_test.c - pay and fee arithmetic: exact cases, overflow, and a
 * property test that escrow locked for a job always covers its pay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "ledger/tx.h"
#include "market/price.h"

#include "base/banned.h"

static void exact(void **state)
{
    uint64_t v;
    (void)state;
    assert_int_equal(cu_price_fee(1000, 250, &v), 0);
    assert_int_equal(v, 25);
    assert_int_equal(cu_price_fee(1, 1, &v), 0); /* rounds down */
    assert_int_equal(v, 0);
    assert_int_equal(cu_price_fee(199, 100, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cu_price_fee(0, 500, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cu_price_fee(10, 10001, &v), -CU_EINVAL);
    assert_int_equal(cu_price_replica_max(10, 30, 200, &v), 0); /* 300 + 6 */
    assert_int_equal(v, 306);
    assert_int_equal(cu_price_job_max(10, 30, 64, 2, 200, 50, &v), 0);
    assert_int_equal(v, 306 * 128 + 50);
    assert_int_equal(cu_price_pay(1500, 30, 4, &v), 0); /* 1.5 CU x 4 */
    assert_int_equal(v, 6);
    assert_int_equal(cu_price_pay(1, 30, 1, &v), 0); /* any CPU pays >= 1 */
    assert_int_equal(v, 1);
    assert_int_equal(cu_price_pay(0, 30, 7, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cu_price_pay(99000, 30, 4, &v), 0); /* capped at 30 CU */
    assert_int_equal(v, 120);
}

/* CU of a report rounds up: any CPU time counts at least one milli-CU,
 * whatever the factor; exact where there is nothing to round. */
static void cu_of_cpu(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(cu_price_cu_milli(1234, 1000, &v), 0); /* the reference core */
    assert_int_equal(v, 1234);
    assert_int_equal(cu_price_cu_milli(2000, 500, &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(cu_price_cu_milli(1000, 1023, &v), 0);
    assert_int_equal(v, 1023);
    assert_int_equal(cu_price_cu_milli(0, 1000, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cu_price_cu_milli(1, 10, &v), 0); /* a slow core, 1 ms: not 0 */
    assert_int_equal(v, 1);
    assert_int_equal(cu_price_cu_milli(3, 1500, &v), 0); /* 4.5 -> 5 */
    assert_int_equal(v, 5);
    assert_int_equal(cu_price_cu_milli(999, 1001, &v), 0); /* 999.999 -> 1000 */
    assert_int_equal(v, 1000);
    /* the product overflows 64 bits, the quotient does not */
    assert_int_equal(cu_price_cu_milli(1ULL << 60, 10, &v), 0);
    assert_int_equal(v, (1ULL << 60) / 100 + 1);
    assert_int_equal(cu_price_cu_milli(UINT64_MAX, 100000, &v), -CU_EOVERFLOW);
}

static void overflow(void **state)
{
    uint64_t v;
    (void)state;
    assert_int_equal(cu_price_replica_max(UINT64_MAX / 2, 3, 0, &v), -CU_EOVERFLOW);
    assert_int_equal(cu_price_replica_max(CU_AMOUNT_MAX, 1, 1, &v), -CU_EOVERFLOW);
    assert_int_equal(cu_price_job_max(1000, 1000, 100000, 16, 10000, 0, &v), 0);
    assert_int_equal(cu_price_job_max(1ULL << 40, 1 << 20, 100000, 16, 0, 0, &v), -CU_EOVERFLOW);
    assert_int_equal(cu_price_job_max(1, 1, 1, 1, 0, CU_AMOUNT_MAX, &v), -CU_EOVERFLOW);
    assert_int_equal(cu_price_pay(UINT64_MAX, UINT64_MAX, UINT64_MAX, &v), -CU_EOVERFLOW);
}

static void median(void **state)
{
    uint64_t a[] = {5, 1, 9, 3}, b[] = {7}, c[] = {4, 4, 1, 8, 2};
    (void)state;
    assert_int_equal(cu_price_median(a, 4), 3);
    assert_int_equal(cu_price_median(b, 1), 7);
    assert_int_equal(cu_price_median(c, 5), 4);
    assert_int_equal(cu_price_median(NULL, 0), 0);
}

/* Every replica of every task paid at any ask <= bid, any CU, never costs
 * more than the escrow the job locked. */
static void escrow_covers_pay(void **state)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    (void)state;
    for (int round = 0; round < 20000; round++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t bid = 1 + (seed >> 33) % 1000, max_cu = 1 + (seed >> 20) % 500;
        uint64_t tasks = 1 + (seed >> 10) % 20, repl = 1 + (seed >> 5) % 3;
        uint32_t bps = (uint32_t)((seed >> 40) % 3000);
        uint64_t escrow_fee = (seed >> 50) % 100, locked, spent = 0;
        assert_int_equal(cu_price_job_max(bid, max_cu, tasks, repl, bps, escrow_fee, &locked), 0);
        for (uint64_t r = 0; r < tasks * repl; r++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t ask = 1 + (seed >> 33) % bid, cu_milli = (seed >> 7) % 1000000, pay, fee;
            assert_int_equal(cu_price_pay(cu_milli, max_cu, ask, &pay), 0);
            assert_true(pay <= bid * max_cu);
            assert_int_equal(cu_price_fee(pay, bps, &fee), 0);
            spent += pay + fee;
        }
        assert_true(spent + escrow_fee <= locked);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exact),
        cmocka_unit_test(cu_of_cpu),
        cmocka_unit_test(overflow),
        cmocka_unit_test(median),
        cmocka_unit_test(escrow_covers_pay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
