/* provider_trust_test.c - the provider's trust helpers (src/provider/trust.c):
 * the --cheat names, the commit of a result, and what each cheat does to
 * outputs. The network side is covered by tests/e2e/trust_*.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "provider/agent.h"
#include "provider/collect.h"

#include "base/banned.h"

/* Every name cu_cheat_names() lists parses to a distinct mode, and the list
 * holds every mode: help text and parser cannot drift apart. */
static void test_cheat_names(void **state)
{
    char names[256];
    bool seen[CU_CHEAT_COLLUDE + 1] = {false};
    size_t count = 0;
    enum cu_cheat m = CU_CHEAT_NONE;
    char *p, *save = NULL;
    (void)state;

    assert_int_equal(cu_snprintf(names, sizeof names, "%s", cu_cheat_names()), 0);
    for (p = strtok_r(names, ", ", &save); p; p = strtok_r(NULL, ", ", &save)) {
        assert_int_equal(cu_cheat_parse(p, &m), 0);
        assert_true(m > CU_CHEAT_NONE && m <= CU_CHEAT_COLLUDE);
        assert_false(seen[m]);
        seen[m] = true;
        count++;
    }
    assert_int_equal(count, CU_CHEAT_COLLUDE);
    assert_int_equal(cu_cheat_parse("honest", &m), -CU_EINVAL);
    assert_int_equal(cu_cheat_parse("", &m), -CU_EINVAL);
    assert_int_equal(cu_cheat_parse("Wrong", &m), -CU_EINVAL);
}

/* The commit is BLAKE2b-256 over the exact string of docs/api.md. */
static void test_commit(void **state)
{
    const char *id = "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01";
    struct cu_hash root, want, other;
    char root_hex[CU_HASH_HEX_LEN + 1], text[256], got[CU_HASH_HEX_LEN + 1];
    char want_hex[CU_HASH_HEX_LEN + 1], got2[CU_HASH_HEX_LEN + 1];
    (void)state;

    cu_hash_mem("some outputs", 12, &root);
    cu_hash_to_hex(&root, root_hex);
    assert_int_equal(cu_snprintf(text, sizeof text, "cumulus-commit-v1\n%s\n%s", id, root_hex),
                     0);
    cu_hash_mem(text, strlen(text), &want);
    cu_hash_to_hex(&want, want_hex);
    cu_trust_commit_hex(id, &root, got);
    assert_string_equal(got, want_hex);
    /* Bound to the provider: another id, another commit. */
    cu_trust_commit_hex("cd01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01", &root,
                        got2);
    assert_string_not_equal(got, got2);
    /* And to the root. */
    cu_hash_mem("other outputs", 13, &other);
    cu_trust_commit_hex(id, &other, got2);
    assert_string_not_equal(got, got2);
}

static void test_corrupts(void **state)
{
    unsigned hits = 0;
    (void)state;

    for (int64_t r = 1; r <= 1000; r++) {
        bool c = cu_cheat_corrupts(CU_CHEAT_WRONG_SOMETIMES, r);
        assert_true(c == cu_cheat_corrupts(CU_CHEAT_WRONG_SOMETIMES, r)); /* deterministic */
        hits += c;
        assert_true(cu_cheat_corrupts(CU_CHEAT_WRONG, r));
        assert_true(cu_cheat_corrupts(CU_CHEAT_COLLUDE, r));
        assert_false(cu_cheat_corrupts(CU_CHEAT_NONE, r));
        assert_false(cu_cheat_corrupts(CU_CHEAT_VANISH, r));
        assert_false(cu_cheat_corrupts(CU_CHEAT_BAD_ANSWER, r));
    }
    /* About half (a fixed set of ids: no randomness, no flakiness). */
    assert_in_range(hits, 400, 600);
}

static void read_to(const char *path, char *out, size_t n)
{
    struct cu_buf b = CU_BUF_INIT(1 << 16);
    assert_int_equal(cu_read_file(path, &b), 0);
    assert_true(b.len < n);
    memcpy(out, b.data, b.len);
    out[b.len] = '\0';
    cu_buf_release(&b);
}

/* wrong appends to every listed file; collude makes them all one content,
 * so two colluders' outputs agree with each other and not with the truth. */
static void test_cheat_outputs(void **state)
{
    char dir[] = "/tmp/cu-ptrust-XXXXXX", a[CU_PATH_MAX], b[CU_PATH_MAX];
    char ta[512], tb[512];
    struct cu_output v[2] = {{.name = "a.txt"}, {.name = "b.txt"}};
    struct cu_outputs o = {.v = v, .n = 2, .cap = 2};
    (void)state;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(cu_path_join(a, sizeof a, dir, "a.txt"), 0);
    assert_int_equal(cu_path_join(b, sizeof b, dir, "b.txt"), 0);
    assert_int_equal(cu_write_file_atomic(a, "task 0\n", 7, 0644), 0);
    assert_int_equal(cu_write_file_atomic(b, "task 1\n", 7, 0644), 0);

    assert_int_equal(cu_cheat_outputs(CU_CHEAT_WRONG, dir, &o), 0);
    read_to(a, ta, sizeof ta);
    read_to(b, tb, sizeof tb);
    assert_true(strncmp(ta, "task 0\n", 7) == 0 && strlen(ta) > 7);
    assert_true(strncmp(tb, "task 1\n", 7) == 0 && strlen(tb) > 7);

    assert_int_equal(cu_cheat_outputs(CU_CHEAT_COLLUDE, dir, &o), 0);
    read_to(a, ta, sizeof ta);
    read_to(b, tb, sizeof tb);
    assert_string_equal(ta, tb);
    assert_null(strstr(ta, "task"));

    /* A listed file that is gone is an error, not a silent pass. */
    assert_int_equal(unlink(b), 0);
    assert_int_equal(cu_cheat_outputs(CU_CHEAT_WRONG, dir, &o), -CU_EIO);
    assert_int_equal(cu_rm_rf(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cheat_names),
        cmocka_unit_test(test_commit),
        cmocka_unit_test(test_corrupts),
        cmocka_unit_test(test_cheat_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
