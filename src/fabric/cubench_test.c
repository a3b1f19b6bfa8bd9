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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_run_factor_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
