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
    size_t room = results + pending < cap ? cap - results - pending : 0;
    if (maxc + pending + room < k) {
        /* Even if every pending and every allowed new replica agreed with
         * the best root, no quorum: fail now. */
        if (d.verdict != CU_QUORUM_FAILED || d.fail_reason != CU_QFAIL_NO_QUORUM)
            fail_msg("'%s' k=%u: expected FAILED (disagreement), got %d", s, k, d.verdict);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(o[i], s[i] == 'N'   ? CU_OUTCOME_KEEP
                                   : s[i] == 'P' ? CU_OUTCOME_DROP
                                                 : CU_OUTCOME_REJECT);
        return;
    }
    if (pending >= k - maxc) {
        if (d.verdict != CU_QUORUM_WAIT)
            fail_msg("'%s' k=%u: expected WAIT, got %d", s, k, d.verdict);
    } else {
        size_t want = k - maxc - pending;
        if (want > room)
            want = room;
        if (d.verdict != CU_QUORUM_NEED_MORE || d.more != want)
            fail_msg("'%s' k=%u: expected NEED_MORE %zu, got %d/%u", s, k, want, d.verdict, d.more);
        /* Never more results in flight than the cap. */
        assert_true(results + pending + d.more <= cap);
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

/* ---- policies {min, quorum, max} with owners ---------------------------- */

/* Pairs: kind (N P A B C F) then owner digit ('-': none). Providers are
 * "p<digit>", owners "o<digit>"; owner digits >= 5 have no owner string
 * (the provider is its own owner). */
static char prov_names[16][4], owner_names[16][4];

static void make_owned(const char *s, struct cu_vote *v, size_t *n)
{
    char kinds[16];
    size_t m = strlen(s) / 2;
    for (size_t i = 0; i < m; i++)
        kinds[i] = s[2 * i];
    kinds[m] = '\0';
    make_votes(kinds, v, n);
    for (size_t i = 0; i < m; i++) {
        char o = s[2 * i + 1];
        if (o == '-')
            continue;
        prov_names[i][0] = 'p';
        prov_names[i][1] = o;
        prov_names[i][2] = '\0';
        v[i].provider = prov_names[i];
        if (o < '5') {
            owner_names[i][0] = 'o';
            owner_names[i][1] = o;
            owner_names[i][2] = '\0';
            v[i].owner = owner_names[i];
        }
    }
}

static struct cu_quorum_decision decide_p(const char *s, unsigned mn, unsigned q, unsigned mx,
                                          bool ff, enum cu_vote_outcome *out)
{
    struct cu_vote v[16];
    struct cu_quorum_decision d;
    struct cu_replication r = {.min = mn, .quorum = q, .max = mx, .fail_fast = ff};
    size_t n;

    make_owned(s, v, &n);
    assert_int_equal(cu_quorum_decide_policy(v, n, &r, out, &d), 0);
    return d;
}

static void test_policy_scenarios(void **state)
{
    enum cu_vote_outcome o[16];
    struct cu_quorum_decision d;
    (void)state;

    /* The example {2, 2, 5}. */
    d = decide_p("", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 2);
    d = decide_p("A1B2", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 1);
    d = decide_p("A1B2A3", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[0], CU_OUTCOME_ACCEPT);
    assert_int_equal(o[1], CU_OUTCOME_REJECT);
    assert_int_equal(o[2], CU_OUTCOME_ACCEPT);
    assert_int_equal(d.support, 2);

    /* Two results of one owner count once; the second is a duplicate. */
    d = decide_p("A1A1", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 1);
    assert_int_equal(d.support, 1);
    d = decide_p("A1A1A2", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[0], CU_OUTCOME_ACCEPT);
    assert_int_equal(o[1], CU_OUTCOME_DUPLICATE);
    assert_int_equal(o[2], CU_OUTCOME_ACCEPT);
    /* Owned by the same owner through different providers. */
    {
        struct cu_vote v[2];
        struct cu_replication r = {2, 2, 5, false};
        size_t n;
        make_votes("AA", v, &n);
        v[0].provider = "p1";
        v[1].provider = "p2";
        v[0].owner = v[1].owner = "alice";
        assert_int_equal(cu_quorum_decide_policy(v, n, &r, o, &d), 0);
        assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
        /* The same provider named with two owners is still one. */
        v[0].provider = v[1].provider = "p1";
        v[0].owner = "alice";
        v[1].owner = "bob";
        assert_int_equal(cu_quorum_decide_policy(v, n, &r, o, &d), 0);
        assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
        v[1].provider = "p2";
        assert_int_equal(cu_quorum_decide_policy(v, n, &r, o, &d), 0);
        assert_int_equal(d.verdict, CU_QUORUM_DONE);
    }

    /* Without fail_fast a lone failure is outvoted... */
    d = decide_p("A1F2", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.failed_vote, SIZE_MAX);
    d = decide_p("A1F2A3", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[1], CU_OUTCOME_REJECT);
    /* ...and a quorum of failures fails the task. */
    d = decide_p("F1A2F3", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_FAILED);
    assert_int_equal(d.fail_reason, CU_QFAIL_TASK);
    assert_int_equal(d.failed_vote, 0);
    assert_int_equal(o[0], CU_OUTCOME_ACCEPT);
    assert_int_equal(o[1], CU_OUTCOME_REJECT);
    assert_int_equal(o[2], CU_OUTCOME_ACCEPT);
    assert_int_equal(decide_p("F1F1", 2, 2, 5, false, o).verdict, CU_QUORUM_NEED_MORE);
    /* With fail_fast one failure is enough. */
    d = decide_p("A1F2", 2, 2, 5, true, o);
    assert_int_equal(d.verdict, CU_QUORUM_FAILED);
    assert_int_equal(d.fail_reason, CU_QFAIL_TASK);
    assert_int_equal(d.failed_vote, 1);

    /* A quorum that max makes unreachable fails at once. */
    d = decide_p("A1B2C3", 3, 3, 4, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_FAILED);
    assert_int_equal(d.fail_reason, CU_QFAIL_NO_QUORUM);
    d = decide_p("A1B2C3", 3, 3, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 2);
    d = decide_p("A1B2P3", 2, 2, 3, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_WAIT);
    d = decide_p("A1B2C3P4", 2, 2, 4, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_WAIT);

    /* min above quorum: min replicas are kept out, lost ones replaced. */
    d = decide_p("", 3, 2, 5, false, o);
    assert_int_equal(d.more, 3);
    d = decide_p("A1P2N3", 3, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);
    assert_int_equal(d.more, 1);
    d = decide_p("A1A2P3", 3, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[2], CU_OUTCOME_DROP);

    /* Solo (quorum 1): the first result stands. */
    d = decide_p("B1", 1, 1, 1, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    d = decide_p("N1", 1, 1, 1, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_NEED_MORE);

    /* Colluders with one wrong root and distinct owners win a quorum: the
     * quorum bounds cheating by probability, not by certainty (trust.md). */
    d = decide_p("B1B2A3", 2, 2, 5, false, o);
    assert_int_equal(d.verdict, CU_QUORUM_DONE);
    assert_int_equal(o[2], CU_OUTCOME_REJECT);
}

static void test_policy_check(void **state)
{
    static const struct cu_replication bad[] = {
        {0, 0, 1, false},    {1, 2, 3, false},          {3, 2, 2, false},
        {2, 2, 2002, false}, {1001, 1001, 2001, false},
    };
    static const struct cu_replication good[] = {
        {1, 1, 1, false},
        {2, 2, 5, false},
        {3, 2, 5, true},
        {1000, 1000, 2001, false},
    };
    struct cu_vote v[1] = {{.kind = CU_VOTE_PENDING}};
    struct cu_quorum_decision d;
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cu_replication_check(&bad[i]), -CU_EINVAL);
        assert_int_equal(cu_quorum_decide_policy(v, 1, &bad[i], NULL, &d), -CU_EINVAL);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(cu_replication_check(&good[i]), 0);
    struct cu_replication l = cu_replication_legacy(3);
    assert_int_equal(l.min, 3);
    assert_int_equal(l.quorum, 3);
    assert_int_equal(l.max, 7);
    assert_true(l.fail_fast);
}

/* Reference model for policies, from the rules in quorum.h. */
static void check_policy_model(const char *s, const struct cu_replication *r)
{
    enum cu_vote_outcome o[16];
    struct cu_quorum_decision d = decide_p(s, r->min, r->quorum, r->max, r->fail_fast, o);
    size_t m = strlen(s) / 2, results = 0, failures = 0, pending = 0;
    /* owners[g] bit set: owner digit seen for outcome g (A B C F). */
    unsigned owners[4] = {0};
    int order[4] = {-1, -1, -1, -1}, norder = 0;
    size_t first_fail = SIZE_MAX;
    static const char groups[] = "ABCF";

    for (size_t i = 0; i < m; i++) {
        char k = s[2 * i];
        int g = k == 'A' ? 0 : k == 'B' ? 1 : k == 'C' ? 2 : k == 'F' ? 3 : -1;
        if (k == 'P')
            pending++;
        if (k == 'F') {
            failures++;
            if (first_fail == SIZE_MAX)
                first_fail = i;
        }
        if (g >= 0 && g < 3)
            results++;
        if (g < 0 || (g == 3 && r->fail_fast))
            continue;
        if (owners[g] == 0)
            order[norder++] = g;
        owners[g] |= 1u << (s[2 * i + 1] - '0');
    }
    int win = -1;
    size_t best = 0;
    for (int j = 0; j < norder; j++) {
        size_t c = (size_t)__builtin_popcount(owners[order[j]]);
        if (c > best) {
            best = c;
            win = order[j];
        }
    }
    assert_int_equal(d.support, best);
    assert_int_equal(d.results, results);
    assert_int_equal(d.failures, failures);
    assert_int_equal(d.pending, pending);

    bool final = false;
    if (best >= r->quorum) {
        final = true;
        if (win == 3) {
            assert_int_equal(d.verdict, CU_QUORUM_FAILED);
            assert_int_equal(d.fail_reason, CU_QFAIL_TASK);
            assert_int_equal(d.failed_vote, first_fail);
        } else {
            assert_int_equal(d.verdict, CU_QUORUM_DONE);
        }
    } else if (r->fail_fast && failures > 0) {
        final = true;
        win = -1;
        assert_int_equal(d.verdict, CU_QUORUM_FAILED);
        assert_int_equal(d.fail_reason, CU_QFAIL_TASK);
        assert_int_equal(d.failed_vote, first_fail);
    } else {
        size_t inflight = results + failures + pending;
        size_t room = inflight < r->max ? r->max - inflight : 0;
        if (best + pending + room < r->quorum) {
            final = true;
            win = -1;
            assert_int_equal(d.verdict, CU_QUORUM_FAILED);
            assert_int_equal(d.fail_reason, CU_QFAIL_NO_QUORUM);
        } else {
            size_t want = r->quorum - best > pending ? r->quorum - best - pending : 0;
            if (r->min > inflight && r->min - inflight > want)
                want = r->min - inflight;
            if (want > room)
                want = room;
            if (want == 0) {
                assert_int_equal(d.verdict, CU_QUORUM_WAIT);
            } else {
                if (d.verdict != CU_QUORUM_NEED_MORE || d.more != want)
                    fail_msg("'%s' {%u,%u,%u}: want NEED_MORE %zu, got %d/%u", s, r->min, r->quorum,
                             r->max, want, d.verdict, d.more);
                assert_true(inflight + d.more <= r->max);
            }
        }
    }
    unsigned seen = 0;
    for (size_t i = 0; i < m; i++) {
        char k = s[2 * i];
        enum cu_vote_outcome want = CU_OUTCOME_KEEP;
        if (final) {
            if (k == 'P')
                want = CU_OUTCOME_DROP;
            else if (k == 'N')
                want = CU_OUTCOME_KEEP;
            else if (win >= 0 && k == groups[win]) {
                unsigned bit = 1u << (s[2 * i + 1] - '0');
                want = seen & bit ? CU_OUTCOME_DUPLICATE : CU_OUTCOME_ACCEPT;
                seen |= bit;
            } else
                want = CU_OUTCOME_REJECT;
        }
        if (o[i] != want)
            fail_msg("'%s' {%u,%u,%u,%d}: vote %zu outcome %d, want %d", s, r->min, r->quorum,
                     r->max, r->fail_fast, i, o[i], want);
    }
}

static void test_policy_exhaustive(void **state)
{
    static const char *const sym[] = {"N0", "P0", "P1", "A0", "A1", "A2",
                                      "B1", "B2", "C0", "F0", "F1"};
    static const struct cu_replication pol[] = {
        {1, 1, 1, false}, {1, 1, 3, false}, {2, 2, 3, false}, {2, 2, 5, false},
        {3, 2, 5, false}, {3, 3, 4, false}, {2, 2, 5, true},  {3, 2, 4, true},
    };
    const size_t ns = sizeof sym / sizeof sym[0];
    size_t idx[5], checked = 0;
    char s[16];
    (void)state;

    for (size_t len = 0; len <= 5; len++) {
        memset(idx, 0, sizeof idx);
        for (;;) {
            for (size_t i = 0; i < len; i++)
                memcpy(s + 2 * i, sym[idx[i]], 2);
            s[2 * len] = '\0';
            for (size_t p = 0; p < sizeof pol / sizeof pol[0]; p++)
                check_policy_model(s, &pol[p]);
            checked++;
            size_t p = 0;
            while (p < len && ++idx[p] == ns)
                idx[p++] = 0;
            if (p == len)
                break;
        }
    }
    assert_true(checked > 170000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replication_one),   cmocka_unit_test(test_replication_two),
        cmocka_unit_test(test_bad_input),         cmocka_unit_test(test_exhaustive),
        cmocka_unit_test(test_order_independent), cmocka_unit_test(test_policy_scenarios),
        cmocka_unit_test(test_policy_check),      cmocka_unit_test(test_policy_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
