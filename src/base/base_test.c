/* base_test.c - unit tests for the base layer: buffers, parsing of sizes,
 * durations and integers, hex, safe names, checked arithmetic, errors. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "base/banned.h"

static void test_buf_bounded(void **state)
{
    struct cu_buf b = CU_BUF_INIT(8);
    (void)state;
    assert_string_equal(cu_buf_str(&b), "");
    assert_int_equal(cu_buf_appends(&b, "abcd"), 0);
    assert_int_equal(cu_buf_appendf(&b, "%d", 123), 0);
    assert_string_equal(cu_buf_str(&b), "abcd123");
    /* Past the maximum: refused, contents unchanged. */
    assert_int_equal(cu_buf_appends(&b, "xy"), -CU_ETOOBIG);
    assert_int_equal(cu_buf_appendf(&b, "%s", "xy"), -CU_ETOOBIG);
    assert_string_equal(cu_buf_str(&b), "abcd123");
    assert_int_equal(cu_buf_appends(&b, "z"), 0);
    assert_int_equal(b.len, 8);
    cu_buf_reset(&b);
    assert_string_equal(cu_buf_str(&b), "");
    cu_buf_release(&b);
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t v;
    } cases[] = {
        {"0", 0, 0},
        {"4096", 0, 4096},
        {"256MiB", 0, 256ULL << 20},
        {"1GiB", 0, 1ULL << 30},
        {"10MB", 0, 10000000},
        {"512k", 0, 512000},
        {"3 KiB", 0, 3072},
        {"2TiB", 0, 2ULL << 40},
        {"12XB", -CU_EINVAL, 0},
        {"", -CU_EINVAL, 0},
        {"-1", -CU_EINVAL, 0},
        {"MiB", -CU_EINVAL, 0},
        {"1.5GiB", -CU_EINVAL, 0},
        {"99999999999999999999", -CU_EOVERFLOW, 0},
        {"17179869184GiB", -CU_EOVERFLOW, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        int rc = cu_parse_size(cases[i].s, &v);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0)
            assert_true(v == cases[i].v);
    }
}

static void test_parse_duration(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t ms;
    } cases[] = {
        {"30s", 0, 30000},   {"500ms", 0, 500},  {"2m", 0, 120000},
        {"1h30m", 0, 5400000}, {"45", 0, 45000}, {"1d", 0, 86400000},
        {"", -CU_EINVAL, 0}, {"s", -CU_EINVAL, 0}, {"10x", -CU_EINVAL, 0},
        {"1m30", -CU_EINVAL, 0}, {"-5s", -CU_EINVAL, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        int rc = cu_parse_duration_ms(cases[i].s, &v);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0)
            assert_true(v == cases[i].ms);
    }
}

static void test_parse_i64(void **state)
{
    int64_t v;
    (void)state;
    assert_int_equal(cu_parse_i64("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cu_parse_i64("101", 0, 100, &v), -CU_EOVERFLOW);
    assert_int_equal(cu_parse_i64("-1", 0, 100, &v), -CU_EINVAL);
    assert_int_equal(cu_parse_i64("-1", -5, 100, &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(cu_parse_i64(" 1", 0, 100, &v), -CU_EINVAL);
    assert_int_equal(cu_parse_i64("1 ", 0, 100, &v), -CU_EINVAL);
    assert_int_equal(cu_parse_i64("+1", 0, 100, &v), -CU_EINVAL);
    assert_int_equal(cu_parse_i64("", 0, 100, &v), -CU_EINVAL);
    assert_int_equal(cu_parse_i64("99999999999999999999", 0, INT64_MAX, &v), -CU_EOVERFLOW);
}

static void test_hex_and_names(void **state)
{
    unsigned char in[4] = {0x00, 0xab, 0x10, 0xff}, out[4];
    char hex[9];
    (void)state;
    cu_hex_encode(in, 4, hex);
    assert_string_equal(hex, "00ab10ff");
    assert_int_equal(cu_hex_decode("00AB10ff", out, 4), 0);
    assert_memory_equal(in, out, 4);
    assert_int_equal(cu_hex_decode("00ab10f", out, 4), -CU_EINVAL);
    assert_int_equal(cu_hex_decode("00ab10fg", out, 4), -CU_EINVAL);

    assert_true(cu_name_is_safe("data.txt"));
    assert_true(cu_name_is_safe("a_b-c.1"));
    assert_false(cu_name_is_safe(""));
    assert_false(cu_name_is_safe("."));
    assert_false(cu_name_is_safe(".."));
    assert_false(cu_name_is_safe("../x"));
    assert_false(cu_name_is_safe("a/b"));
    assert_false(cu_name_is_safe("-rf"));
    assert_false(cu_name_is_safe("a b"));
}

static void test_checked_arithmetic(void **state)
{
    uint64_t r;
    (void)state;
    assert_int_equal(cu_add_u64(UINT64_MAX - 1, 1, &r), 0);
    assert_true(r == UINT64_MAX);
    assert_int_equal(cu_add_u64(UINT64_MAX, 1, &r), -CU_EOVERFLOW);
    assert_int_equal(cu_mul_u64(1ULL << 32, 1ULL << 31, &r), 0);
    assert_int_equal(cu_mul_u64(1ULL << 32, 1ULL << 32, &r), -CU_EOVERFLOW);
}

static void test_errors_and_json(void **state)
{
    struct cu_err e = {0};
    const char *s = NULL;
    uint64_t u = 0;
    static const char *const allowed[] = {"a", "b", NULL};
    json_t *j;
    (void)state;

    assert_string_equal(cu_errcode(-CU_ENOTFOUND), "not_found");
    assert_string_equal(cu_errcode(CU_E_MAX + 5), "unknown");
    assert_int_equal(cu_err_set(&e, -CU_EINVAL, "field '%s' bad", "x"), -CU_EINVAL);
    assert_string_equal(cu_err_msg(&e, -CU_EINVAL), "field 'x' bad");

    j = cu_json_parse("{\"a\": \"s\", \"b\": -3}", 19, &e);
    assert_non_null(j);
    assert_int_equal(cu_json_get_str(j, NULL, "a", true, &s, &e), 0);
    assert_string_equal(s, "s");
    assert_int_equal(cu_json_get_u64(j, "res", "b", true, &u, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "res.b"));
    assert_int_equal(cu_json_get_u64(j, NULL, "c", true, &u, &e), -CU_ENOTFOUND);
    assert_int_equal(cu_json_get_u64(j, NULL, "c", false, &u, &e), 0);
    assert_int_equal(cu_json_only_keys(j, NULL, allowed, &e), 0);
    json_decref(j);

    j = cu_json_parse("{\"a\": 1, \"z\": 2}", 16, &e);
    assert_non_null(j);
    assert_int_equal(cu_json_only_keys(j, "spec", allowed, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "spec.z"));
    json_decref(j);

    /* Duplicate keys and trailing garbage are refused. */
    assert_null(cu_json_parse("{\"a\": 1, \"a\": 2}", 16, &e));
    assert_null(cu_json_parse("{} x", 4, &e));
}

static void test_files(void **state)
{
    char dir[] = "/tmp/cu-base-test-XXXXXX", path[CU_PATH_MAX], sub[CU_PATH_MAX];
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    struct cu_buf small = CU_BUF_INIT(3);
    (void)state;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(cu_path_join(sub, sizeof sub, dir, "a/b/c"), 0);
    assert_int_equal(cu_mkdir_p(sub, 0755), 0);
    assert_int_equal(cu_path_join(path, sizeof path, sub, "f.txt"), 0);
    assert_int_equal(cu_write_file_atomic(path, "hello", 5, 0644), 0);
    assert_int_equal(cu_read_file(path, &b), 0);
    assert_string_equal(cu_buf_str(&b), "hello");
    assert_int_equal(cu_read_file(path, &small), -CU_ETOOBIG);
    assert_true(cu_dir_size(dir) == 5);
    {
        /* cu_dir_usage: an empty directory, one entry, then more entries
         * than one read of the directory returns (the walk starts over
         * after the emptiness check), and a missing one. */
        uint64_t entries = 7;
        char empty[CU_PATH_MAX], many[CU_PATH_MAX], name[CU_PATH_MAX];
        assert_int_equal(cu_path_join(empty, sizeof empty, dir, "empty"), 0);
        assert_int_equal(cu_mkdir_p(empty, 0755), 0);
        assert_true(cu_dir_usage(empty, &entries) == 0);
        assert_true(entries == 0);
        assert_true(cu_dir_usage(sub, &entries) == 5);
        assert_true(entries == 1);
        assert_int_equal(cu_path_join(many, sizeof many, dir, "many"), 0);
        assert_int_equal(cu_mkdir_p(many, 0755), 0);
        for (int i = 0; i < 200; i++) {
            char leaf[64];
            (void)cu_snprintf(leaf, sizeof leaf, "a-file-with-a-long-name-%03d", i);
            assert_int_equal(cu_path_join(name, sizeof name, many, leaf), 0);
            assert_int_equal(cu_write_file_atomic(name, "xy", 2, 0644), 0);
        }
        assert_true(cu_dir_usage(many, &entries) == 400);
        assert_true(entries == 200);
        assert_int_equal(cu_path_join(name, sizeof name, dir, "missing"), 0);
        assert_true(cu_dir_usage(name, &entries) == 0);
        assert_true(entries == 0);

        /* Through one descriptor, looked at again after each change. */
        int dfd = open(empty, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_true(cu_dir_usage_at(dfd, &entries) == 0);
        assert_true(entries == 0);
        assert_int_equal(cu_path_join(name, sizeof name, empty, "f"), 0);
        assert_int_equal(cu_write_file_atomic(name, "abc", 3, 0644), 0);
        assert_true(cu_dir_usage_at(dfd, &entries) == 3);
        assert_true(entries == 1);
        assert_true(cu_dir_usage_at(dfd, &entries) == 3);
        assert_true(entries == 1);
        assert_int_equal(unlink(name), 0);
        assert_true(cu_dir_usage_at(dfd, &entries) == 0);
        assert_true(entries == 0);
        assert_true(cu_dir_usage_at(dfd, NULL) == 0);
        close(dfd);
    }
    assert_int_equal(cu_rm_rf(dir), 0);
    assert_int_equal(cu_read_file(path, &b), -CU_ENOTFOUND);
    assert_int_equal(cu_rm_rf(dir), 0); /* missing is fine */
    cu_buf_release(&b);
    cu_buf_release(&small);
}

/* What fd 2 got since the last call (a temporary file stands in for it). */
static size_t stderr_read(int fd, char *out, size_t cap, off_t *at)
{
    ssize_t n = pread(fd, out, cap - 1, *at);

    assert_true(n >= 0);
    out[n] = '\0';
    *at += n;
    return (size_t)n;
}

/* Held lines wait for the release, in order, in one piece; a warning
 * writes what was held and itself at once; holds nest. */
static void test_log_hold(void **state)
{
    char path[] = "/tmp/cu_log_hold_XXXXXX", got[4096];
    int fd = mkstemp(path), saved = dup(2);
    off_t at = 0;

    (void)state;
    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    assert_int_equal(dup2(fd, 2), 2);
    cu_log_set_level(CU_LOG_INFO);

    cu_log_hold();
    cu_info("one");
    cu_debug("below the level");
    cu_info("two");
    assert_int_equal(stderr_read(fd, got, sizeof got, &at), 0);
    cu_log_hold(); /* nested: the inner release writes nothing */
    cu_info("three");
    cu_log_release();
    assert_int_equal(stderr_read(fd, got, sizeof got, &at), 0);
    cu_log_release();
    stderr_read(fd, got, sizeof got, &at);
    assert_non_null(strstr(got, "one\n"));
    assert_true(strstr(got, "one\n") < strstr(got, "two\n"));
    assert_true(strstr(got, "two\n") < strstr(got, "three\n"));
    assert_null(strstr(got, "below the level"));

    cu_log_hold();
    cu_info("four");
    cu_warn("five");
    stderr_read(fd, got, sizeof got, &at);
    assert_non_null(strstr(got, "four\n"));
    assert_true(strstr(got, "four\n") < strstr(got, "WARN"));
    cu_info("six");
    assert_int_equal(stderr_read(fd, got, sizeof got, &at), 0);
    /* More than the buffer holds: written as it fills, nothing lost. */
    for (int i = 0; i < 200; i++)
        cu_info("line %03d %s", i, "................................................");
    cu_log_release();
    stderr_read(fd, got, sizeof got, &at); /* the tail; count through the file */
    {
        FILE *f = fdopen(dup(fd), "r");
        char line[512];
        int n = 0;
        assert_non_null(f);
        rewind(f);
        while (fgets(line, sizeof line, f))
            n += strstr(line, "] line ") != NULL;
        fclose(f);
        assert_int_equal(n, 200);
    }
    cu_log_release(); /* unbalanced: ignored */

    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_bounded),   cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration), cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_hex_and_names), cmocka_unit_test(test_checked_arithmetic),
        cmocka_unit_test(test_errors_and_json), cmocka_unit_test(test_files),
        cmocka_unit_test(test_log_hold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
