/* lease_test.c - the replica state machine, exhaustively, and lease
 * arithmetic at its edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "market/lease.h"

#include "base/banned.h"

enum {
    Q = CU_REPLICA_QUEUED,
    L = CU_REPLICA_LEASED,
    RN = CU_REPLICA_RUNNING,
    RP = CU_REPLICA_REPORTED,
    AC = CU_REPLICA_ACCEPTED,
    RJ = CU_REPLICA_REJECTED,
    EX = CU_REPLICA_EXPIRED,
    CA = CU_REPLICA_CANCELLED
};

/* The allowed transitions, written out as DESIGN.md §5 and docs/api.md
 * describe them (independently of the bit table in lease.c). */
static const int expected[][2] = {
    {Q, L},   {Q, CA},                                          /* claim; cancel */
    {L, RN},  {L, RP},  {L, EX},  {L, CA},                      /* heartbeat; fast report; expiry */
    {RN, RP}, {RN, EX}, {RN, CA}, {RP, AC}, {RP, RJ}, {RP, CA}, /* quorum; task ended elsewhere */
};

static bool is_expected(int from, int to)
{
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (expected[i][0] == from && expected[i][1] == to)
            return true;
    return false;
}

static void test_transitions_exhaustive(void **state)
{
    (void)state;
    for (int from = -1; from <= CU_REPLICA_NSTATES; from++)
        for (int to = -1; to <= CU_REPLICA_NSTATES; to++) {
            bool got =
                cu_replica_can_transition((enum cu_replica_state)from, (enum cu_replica_state)to);
            if (got != is_expected(from, to))
                fail_msg("transition %d -> %d: got %d", from, to, got);
        }
}

static void test_cancel_from_every_nonfinal(void **state)
{
    (void)state;
    for (int s = 0; s < CU_REPLICA_NSTATES; s++) {
        bool final = cu_replica_state_final((enum cu_replica_state)s);
        assert_int_equal(cu_replica_can_transition((enum cu_replica_state)s, CU_REPLICA_CANCELLED),
                         !final);
        /* Final states lead nowhere; every other state leads somewhere. */
        bool any = false;
        for (int t = 0; t < CU_REPLICA_NSTATES; t++)
            any |= cu_replica_can_transition((enum cu_replica_state)s, (enum cu_replica_state)t);
        assert_int_equal(any, !final);
        assert_false(cu_replica_can_transition((enum cu_replica_state)s, (enum cu_replica_state)s));
    }
    assert_true(cu_replica_state_final(CU_REPLICA_ACCEPTED));
    assert_true(cu_replica_state_final(CU_REPLICA_REJECTED));
    assert_true(cu_replica_state_final(CU_REPLICA_EXPIRED));
    assert_true(cu_replica_state_final(CU_REPLICA_CANCELLED));
    assert_false(cu_replica_state_final(CU_REPLICA_REPORTED));
    assert_false(cu_replica_state_final((enum cu_replica_state)CU_REPLICA_NSTATES));
}

/* Every state is reachable from queued, and every path ends in a final
 * state (the graph has no cycles). */
static void test_reachability(void **state)
{
    unsigned reach = 1u << Q;
    (void)state;
    for (int round = 0; round < CU_REPLICA_NSTATES; round++)
        for (int s = 0; s < CU_REPLICA_NSTATES; s++)
            for (int t = 0; t < CU_REPLICA_NSTATES; t++)
                if ((reach & (1u << s)) &&
                    cu_replica_can_transition((enum cu_replica_state)s, (enum cu_replica_state)t))
                    reach |= 1u << t;
    assert_int_equal(reach, (1u << CU_REPLICA_NSTATES) - 1);
    /* Acyclic: a longest path has fewer steps than there are states. */
    int depth[CU_REPLICA_NSTATES] = {0};
    for (int round = 0; round < CU_REPLICA_NSTATES + 1; round++)
        for (int s = 0; s < CU_REPLICA_NSTATES; s++)
            for (int t = 0; t < CU_REPLICA_NSTATES; t++)
                if (cu_replica_can_transition((enum cu_replica_state)s, (enum cu_replica_state)t) &&
                    depth[t] < depth[s] + 1)
                    depth[t] = depth[s] + 1;
    for (int s = 0; s < CU_REPLICA_NSTATES; s++)
        assert_true(depth[s] < CU_REPLICA_NSTATES);
}

static void test_sets(void **state)
{
    (void)state;
    for (int s = 0; s < CU_REPLICA_NSTATES; s++) {
        enum cu_replica_state st = (enum cu_replica_state)s;
        assert_int_equal(cu_replica_state_held(st), s == L || s == RN);
        assert_int_equal(cu_replica_state_live(st), s == L || s == RN || s == RP || s == AC);
        /* A held replica can always be lost. */
        if (cu_replica_state_held(st))
            assert_true(cu_replica_can_transition(st, CU_REPLICA_EXPIRED));
    }
}

static void test_names(void **state)
{
    static const char *const names[] = {"queued",   "leased",   "running", "reported",
                                        "accepted", "rejected", "expired", "cancelled"};
    enum cu_replica_state out;
    (void)state;
    assert_int_equal(sizeof names / sizeof names[0], CU_REPLICA_NSTATES);
    for (int s = 0; s < CU_REPLICA_NSTATES; s++) {
        assert_string_equal(cu_replica_state_name((enum cu_replica_state)s), names[s]);
        assert_int_equal(cu_replica_state_parse(names[s], &out), 0);
        assert_int_equal(out, s);
    }
    assert_string_equal(cu_replica_state_name((enum cu_replica_state)CU_REPLICA_NSTATES), "?");
    assert_string_equal(cu_replica_state_name((enum cu_replica_state) - 1), "?");
    assert_int_equal(cu_replica_state_parse("Queued", &out), -CU_EINVAL);
    assert_int_equal(cu_replica_state_parse("", &out), -CU_EINVAL);
    assert_int_equal(cu_replica_state_parse(NULL, &out), -CU_EINVAL);
}

static void test_lease_arithmetic(void **state)
{
    int64_t t = 0;
    (void)state;
    assert_int_equal(cu_lease_expiry(1000, 30000, &t), 0);
    assert_int_equal(t, 31000);
    t = 7;
    assert_int_equal(cu_lease_expiry(INT64_MAX - 5, 6, &t), -CU_EOVERFLOW);
    assert_int_equal(t, 7);
    assert_int_equal(cu_lease_expiry(INT64_MAX - 5, 5, &t), 0);
    assert_int_equal(t, INT64_MAX);
    assert_int_equal(cu_lease_expiry(0, (uint64_t)INT64_MAX + 1, &t), -CU_EOVERFLOW);

    /* Expired strictly after the expiry instant. */
    assert_false(cu_lease_expired(5000, 4999));
    assert_false(cu_lease_expired(5000, 5000));
    assert_true(cu_lease_expired(5000, 5001));

    /* Renewal extends from now; never shortens; never revives. */
    assert_int_equal(cu_lease_renew(5000, 4000, 3000, &t), 0);
    assert_int_equal(t, 7000);
    assert_int_equal(cu_lease_renew(9000, 4000, 3000, &t), 0);
    assert_int_equal(t, 9000);
    assert_int_equal(cu_lease_renew(5000, 5000, 3000, &t), 0);
    assert_int_equal(t, 8000);
    t = 1;
    assert_int_equal(cu_lease_renew(5000, 5001, 3000, &t), -CU_ECONFLICT);
    assert_int_equal(t, 1);
    assert_int_equal(cu_lease_renew(INT64_MAX, INT64_MAX - 1, 10, &t), -CU_EOVERFLOW);

    assert_int_equal(cu_lease_heartbeat_ms(30000), 10000);
    assert_int_equal(cu_lease_heartbeat_ms(3000), 1000);
    assert_int_equal(cu_lease_heartbeat_ms(2), 1);
    assert_int_equal(cu_lease_heartbeat_ms(0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transitions_exhaustive),
        cmocka_unit_test(test_cancel_from_every_nonfinal),
        cmocka_unit_test(test_reachability),
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_lease_arithmetic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
