/* cubench_test.c - the CU benchmark: its checksum, the factor's range
 * (no timing assertions: machines differ) and the CU arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "base/err.h"
#include "fabric/cubench.h"

#include "base/banned.h"

static void test_checksum(void **state)
{
    (void)state;
    assert_int_equal(cu_cubench_work(), CU_CUBENCH_CHECKSUM);
    /* deterministic: the same on a second run */
    assert_int_equal(cu_cubench_work(), CU_CUBENCH_CHECKSUM);
}

static void test_run_factor_in_range(void **state)
{
    uint64_t f = 0, ns = 0, f2 = 0;

    (void)state;
    assert_int_equal(cu_cubench_run(&f, &ns), 0);
    assert_true(f >= CU_CUBENCH_FACTOR_MIN && f <= CU_CUBENCH_FACTOR_MAX);
    assert_true(ns > 0);
    /* elapsed_ns is optional */
    assert_int_equal(cu_cubench_run(&f2, NULL), 0);
    assert_true(f2 >= CU_CUBENCH_FACTOR_MIN && f2 <= CU_CUBENCH_FACTOR_MAX);
    assert_int_equal(cu_cubench_run(NULL, &ns), -CU_EINVAL);
}

static void test_cu_milli(void **state)
{
    (void)state;
    /* the reference core: CU × 1000 = CPU ms */
    assert_int_equal(cu_cu_milli(1234, 1000), 1234);
    assert_int_equal(cu_cu_milli(0, 1000), 0);
    assert_int_equal(cu_cu_milli(1234, 0), 0);
    assert_int_equal(cu_cu_milli(1000, 1023), 1023);
    assert_int_equal(cu_cu_milli(2000, 500), 1000);
    /* rounded down */
    assert_int_equal(cu_cu_milli(1, 999), 0);
    assert_int_equal(cu_cu_milli(3, 1500), 4);
    assert_int_equal(cu_cu_milli(999, 1001), 999);
    /* exact where the product overflows 64 bits but the quotient fits */
    assert_int_equal(cu_cu_milli(UINT64_MAX, 1000), UINT64_MAX);
    assert_int_equal(cu_cu_milli(UINT64_MAX, 10), UINT64_MAX / 100);
    assert_int_equal(cu_cu_milli(UINT64_MAX / 2, 2000), UINT64_MAX - 1);
    assert_int_equal(cu_cu_milli(1ULL << 62, 100000), UINT64_MAX); /* 2^62 × 100 */
    /* saturates */
    assert_int_equal(cu_cu_milli(UINT64_MAX, 1001), UINT64_MAX);
    assert_int_equal(cu_cu_milli(UINT64_MAX, UINT64_MAX), UINT64_MAX);
    assert_int_equal(cu_cu_milli(UINT64_MAX / 1000 + 1, 1000000), UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_run_factor_in_range),
        cmocka_unit_test(test_cu_milli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
