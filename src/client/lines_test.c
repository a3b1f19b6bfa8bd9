/* lines_test.c - the JSON Lines splitter (cu_lines_*) and the CU
 * formatter from client/api.h: pure helpers of `cumulus ledger` and
 * `cumulus status`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "base/util.h"
#include "client/api.h"

#include "base/banned.h"

struct seen {
    char all[512]; /* lines joined with '|' */
    unsigned n;
    unsigned stop_at; /* fail on this line (1-based); 0 never */
};

static int collect(void *ctx, const char *line, size_t n)
{
    struct seen *s = ctx;
    size_t len = strlen(s->all);

    s->n++;
    if (s->stop_at && s->n == s->stop_at)
        return -CU_EINVAL;
    assert_true(len + n + 2 < sizeof s->all);
    memcpy(s->all + len, line, n);
    s->all[len + n] = '|';
    s->all[len + n + 1] = '\0';
    return 0;
}

/* Every way of cutting the text into two chunks gives the same lines. */
static void test_split_any_chunking(void **state)
{
    static const char text[] = "{\"a\":1}\n\n{\"b\":22}\nlast";
    size_t n = strlen(text);
    (void)state;

    for (size_t cut = 0; cut <= n; cut++) {
        struct seen s = {{0}};
        struct cu_lines l;
        cu_lines_init(&l, 64, collect, &s);
        assert_int_equal(cu_lines_feed(&l, text, cut), 0);
        assert_int_equal(cu_lines_feed(&l, text + cut, n - cut), 0);
        assert_int_equal(cu_lines_finish(&l), 0);
        assert_string_equal(s.all, "{\"a\":1}||{\"b\":22}|last|");
        assert_int_equal(l.count, 4);
        cu_lines_release(&l);
    }
}

static void test_byte_at_a_time_and_final_newline(void **state)
{
    static const char text[] = "x\nyy\n";
    struct seen s = {{0}};
    struct cu_lines l;
    (void)state;

    cu_lines_init(&l, 8, collect, &s);
    for (size_t i = 0; i < strlen(text); i++)
        assert_int_equal(cu_lines_feed(&l, text + i, 1), 0);
    assert_int_equal(cu_lines_finish(&l), 0);
    assert_string_equal(s.all, "x|yy|"); /* no empty line after the last "\n" */
    cu_lines_release(&l);
}

static void test_too_long_and_errors_stick(void **state)
{
    struct seen s = {{0}};
    struct cu_lines l;
    (void)state;

    cu_lines_init(&l, 4, collect, &s);
    assert_int_equal(cu_lines_feed(&l, "abcd\n", 5), 0);
    assert_int_equal(cu_lines_feed(&l, "abcde\n", 6), -CU_ETOOBIG);
    assert_int_equal(cu_lines_feed(&l, "ok\n", 3), -CU_ETOOBIG);
    assert_int_equal(cu_lines_finish(&l), -CU_ETOOBIG);
    cu_lines_release(&l);

    /* Split across chunks, still too long. */
    memset(&s, 0, sizeof s);
    cu_lines_init(&l, 4, collect, &s);
    assert_int_equal(cu_lines_feed(&l, "abc", 3), 0);
    assert_int_equal(cu_lines_feed(&l, "de\n", 3), -CU_ETOOBIG);
    cu_lines_release(&l);

    /* The callback's error stops the stream and is kept. */
    memset(&s, 0, sizeof s);
    s.stop_at = 2;
    cu_lines_init(&l, 64, collect, &s);
    assert_int_equal(cu_lines_feed(&l, "a\nb\nc\n", 6), -CU_EINVAL);
    assert_int_equal(l.count, 1);
    assert_int_equal(cu_lines_finish(&l), -CU_EINVAL);
    assert_string_equal(s.all, "a|");
    cu_lines_release(&l);
}

static void test_fmt_cu(void **state)
{
    char b[32];
    (void)state;

    cu_api_fmt_cu(0, b, sizeof b);
    assert_string_equal(b, "0.000");
    cu_api_fmt_cu(7, b, sizeof b);
    assert_string_equal(b, "0.007");
    cu_api_fmt_cu(1234, b, sizeof b);
    assert_string_equal(b, "1.234");
    cu_api_fmt_cu(100050, b, sizeof b);
    assert_string_equal(b, "100.050");
    cu_api_fmt_cu(INT64_MAX, b, sizeof b);
    assert_string_equal(b, "9223372036854775.807");
    cu_api_fmt_cu(-1, b, sizeof b);
    assert_string_equal(b, "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_any_chunking),
        cmocka_unit_test(test_byte_at_a_time_and_final_newline),
        cmocka_unit_test(test_too_long_and_errors_stick),
        cmocka_unit_test(test_fmt_cu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
