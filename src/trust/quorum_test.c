/* quorum_test.c - quorum decisions: named scenarios, then every sequence of
 * up to 6 votes over {none, pending, result A/B/C, failed} for k = 1..4,
 * checked against a reference model written independently of quorum.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "trust/quorum.h"

#include "base/banned.h"

/* Symbols: N none, P pending, A/B/C results with roots a/b/c, F failed. */
static void make_votes(const char *s, struct cu_vote *v, size_t *n)
{
    *n = strlen(s);
    for (size_t i = 0; i < *n; i++) {
        memset(&v[i], 0, sizeof v[i]);
        switch (s[i]) {
        case 'N':
            v[i].kind = CU_VOTE_NONE;
            break;
        case 'P':
            v[i].kind = CU_VOTE_PENDING;
            break;
        case 'F':
            v[i].kind = CU_VOTE_FAILED;
            break;
        default:
            v[i].kind = CU_VOTE_RESULT;
            memset(v[i].root.b, s[i], sizeof v[i].root.b);
            break;
        }
    }
}

static struct cu_quorum_decision decide(const char *s, unsigned k, enum cu_vote_outcome *out)
{
    struct cu_vote v[16];
    struct cu_quorum_decision d;
    size_t n;

    make_votes(s, v, &n);
    assert_int_equal(cu_quorum_decide(v, n, k, out, &d), 0);
    return d;
}

static void test_replication_one(void **state)
{
    enum cu_vote_outcome o[8];
    struct cu_quorum_decision d;
    (void)state;
    d = decide("P", 1, o);
    assert_int_equal(d.verdict, CU_QUORUM_WAIT);
    d = decide("A", 1, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[0], CU_OUTCOME_ACCEPT);
    d = decide("N", 1, o); /* the only replica expired */
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 1);
    d = decide("F", 1, o);
    assert_int_equal(d.verdict, CU_QUORUM_FAILED);
    assert_int_equal(d.failed_vote, 0);
    assert_int_equal(o[0], CU_OUTCOME_REJECT);
    d = decide("", 1, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 1);
}

static void test_replication_two(void **state)
{
    enum cu_vote_outcome o[8];
    struct cu_quorum_decision d;
    (void)state;
    assert_int_equal(decide("PP", 2, o).verdict, CU_QUORUM_WAIT);
    assert_int_equal(decide("AP", 2, o).verdict, CU_QUORUM_WAIT);
    d = decide("AA", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[0], CU_OUTCOME_ACCEPT);
    assert_int_equal(o[1], CU_OUTCOME_ACCEPT);
    /* Disagreement: one more replica to break the tie. */
    d = decide("AB", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 1);
    assert_int_equal(d.distinct, 2);
    assert_int_equal(o[0], CU_OUTCOME_KEEP);
    d = decide("ABA", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[0], CU_OUTCOME_ACCEPT);
    assert_int_equal(o[1], CU_OUTCOME_REJECT);
    assert_int_equal(o[2], CU_OUTCOME_ACCEPT);
    /* Cap 2k+1 = 5 results without agreement: fail. */
    assert_int_equal(decide("ABCD", 2, o).verdict, CU_QUORUM_NEED_MORE);
    d = decide("ABCDE", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_FAILED);
    assert_int_equal(d.distinct, 5);
    assert_int_equal(d.failed_vote, SIZE_MAX);
    for (int i = 0; i < 5; i++)
        assert_int_equal(o[i], CU_OUTCOME_REJECT);
    /* The cap counts pending replicas: wait for the last one. */
    assert_int_equal(decide("ABCDP", 2, o).verdict, CU_QUORUM_WAIT);
    /* An expired replica is replaced. */
    d = decide("AN", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 1);
    /* A failure fails the task; pending replicas are dropped. */
    d = decide("AFP", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_FAILED);
    assert_int_equal(d.failed_vote, 1);
    assert_int_equal(o[0], CU_OUTCOME_REJECT);
    assert_int_equal(o[1], CU_OUTCOME_REJECT);
    assert_int_equal(o[2], CU_OUTCOME_DROP);
    /* A quorum already reached wins over a late failure. */
    d = decide("AFA", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[1], CU_OUTCOME_REJECT);
    /* Done with a replica still out: it is dropped. */
    d = decide("AAP", 2, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[2], CU_OUTCOME_DROP);
}

static void test_bad_input(void **state)
{
    struct cu_vote v[1] = {{.kind = CU_VOTE_PENDING}};
    struct cu_quorum_decision d;
    (void)state;
    assert_int_equal(cu_quorum_decide(v, 1, 0, NULL, &d), -CU_EINVAL);
    assert_int_equal(cu_quorum_decide(v, 1, 1001, NULL, &d), -CU_EINVAL);
    v[0].kind = (enum cu_vote_kind)9;
    assert_int_equal(cu_quorum_decide(v, 1, 1, NULL, &d), -CU_EINVAL);
    v[0].kind = CU_VOTE_PENDING;
    assert_int_equal(cu_quorum_decide(v, 1, 1, NULL, &d), 0);
    assert_int_equal(d.verdict, CU_QUORUM_WAIT);
}

/* ---- the reference model --------------------------------------------- */

static const char alphabet[] = "NPABCF";
#define MAXLEN 6

/* Checks one vote string against the rules stated in quorum.h. */
static void check_model(const char *s, unsigned k)
{
    enum cu_vote_outcome o[MAXLEN];
    struct cu_quorum_decision d = decide(s, k, o);
    size_t n = strlen(s), cnt[256] = {0}, results = 0, pending = 0, distinct = 0;
    size_t first_fail = SIZE_MAX, maxc = 0;
    char winner = 0;
    size_t cap = 2 * k + 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 'P')
            pending++;
        else if (c == 'F' && first_fail == SIZE_MAX)
            first_fail = i;
        else if (c >= 'A' && c <= 'C') {
            if (cnt[c]++ == 0)
                distinct++;
            results++;
        }
    }
    /* Winner: the largest group; ties go to the group reported first. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'C' && cnt[c] > maxc) {
            maxc = cnt[c];
            winner = (char)c;
        }
    }
    assert_int_equal(d.results, results);
    assert_int_equal(d.pending, pending);
    assert_int_equal(d.distinct, distinct);

    if (maxc >= k) {
        if (d.verdict != CU_QUORUM_DONE)
            fail_msg("'%s' k=%u: expected DONE, got %d", s, k, d.verdict);
        for (size_t i = 0; i < n; i++) {
            enum cu_vote_outcome want = s[i] == winner ? CU_OUTCOME_ACCEPT
                                        : s[i] == 'P'  ? CU_OUTCOME_DROP
                                        : s[i] == 'N'  ? CU_OUTCOME_KEEP
                                                       : CU_OUTCOME_REJECT;
            if (o[i] != want)
                fail_msg("'%s' k=%u: vote %zu outcome %d, want %d", s, k, i, o[i], want);
        }
        return;
    }
    if (first_fail != SIZE_MAX) {
        if (d.verdict != CU_QUORUM_FAILED || d.failed_vote != first_fail)
            fail_msg("'%s' k=%u: expected FAILED at %zu, got %d/%zu", s, k, first_fail, d.verdict,
                     d.failed_vote);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(o[i], s[i] == 'P'   ? CU_OUTCOME_DROP
                                   : s[i] == 'N' ? CU_OUTCOME_KEEP
                                                 : CU_OUTCOME_REJECT);
        return;
    }
    assert_int_equal(d.failed_vote, SIZE_MAX);
    if (pending >= k - maxc) {
        if (d.verdict != CU_QUORUM_WAIT)
            fail_msg("'%s' k=%u: expected WAIT, got %d", s, k, d.verdict);
    } else if (results + pending < cap) {
        size_t want = k - maxc - pending;
        if (want > cap - results - pending)
            want = cap - results - pending;
        if (d.verdict != CU_QUORUM_NEED_MORE || d.more != want)
            fail_msg("'%s' k=%u: expected NEED_MORE %zu, got %d/%u", s, k, want, d.verdict, d.more);
        /* Never more results in flight than the cap. */
        assert_true(results + pending + d.more <= cap);
    } else if (pending > 0) {
        assert_int_equal(d.verdict, CU_QUORUM_WAIT);
    } else {
        if (d.verdict != CU_QUORUM_FAILED)
            fail_msg("'%s' k=%u: expected FAILED (disagreement), got %d", s, k, d.verdict);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(o[i], s[i] == 'N' ? CU_OUTCOME_KEEP : CU_OUTCOME_REJECT);
        return;
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(o[i], CU_OUTCOME_KEEP);
}

static void test_exhaustive(void **state)
{
    char s[MAXLEN + 1];
    size_t idx[MAXLEN];
    size_t na = sizeof alphabet - 1, checked = 0;
    (void)state;

    for (unsigned k = 1; k <= 4; k++) {
        for (size_t len = 0; len <= MAXLEN; len++) {
            memset(idx, 0, sizeof idx);
            for (;;) {
                for (size_t i = 0; i < len; i++)
                    s[i] = alphabet[idx[i]];
                s[len] = '\0';
                check_model(s, k);
                checked++;
                size_t p = 0;
                while (p < len && ++idx[p] == na)
                    idx[p++] = 0;
                if (p == len)
                    break;
            }
        }
    }
    assert_true(checked > 4 * 46000);
}

/* The verdict does not depend on the order of the votes, except which of
 * two tied roots wins (k = 1 or a tie at k). */
static void test_order_independent(void **state)
{
    static const char *const cases[] = {"ABAB", "AABBC", "PAAN", "ABCDE", "NNPA", "FPA", "AAAB"};
    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (unsigned k = 2; k <= 3; k++) {
            char s[16], r[16];
            size_t n = strlen(cases[c]);
            memcpy(s, cases[c], n + 1);
            for (size_t i = 0; i < n; i++)
                r[i] = s[n - 1 - i];
            r[n] = '\0';
            struct cu_quorum_decision a = decide(s, k, NULL), b = decide(r, k, NULL);
            assert_int_equal(a.verdict, b.verdict);
            assert_int_equal(a.more, b.more);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replication_one),   cmocka_unit_test(test_replication_two),
        cmocka_unit_test(test_bad_input),         cmocka_unit_test(test_exhaustive),
        cmocka_unit_test(test_order_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
