/* idle_test.c - the idle decision over every class of its inputs (input
 * age, each interval's load, window edges, watch time, which checks are
 * on), the threshold and probe parsers, and /proc/PID/stat parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h> /* after the headers it needs */

#include "base/err.h"
#include "fabric/idle.h"
#include "fabric/proctree.h"

#include "base/banned.h"

#define Q 60000 /* quiet time used throughout, ms */
#define L 500   /* max load, milli */
#define NOW 1000000

static const struct cu_idle_policy both = {
    .use_input = true, .use_load = true, .quiet_ms = Q, .max_load_milli = L};

/* Samples every second over the last span ms before NOW, each interval
 * with others' load `load` milli (own CPU `own` ms per second on top). */
static size_t steady(struct cu_idle_sample *s, size_t max, int64_t span, uint64_t load,
                     uint64_t own)
{
    size_t n = 0;
    uint64_t busy = 123456, mine = 777;

    for (int64_t t = NOW - span; t <= NOW && n < max; t += 1000) {
        s[n++] = (struct cu_idle_sample){.t_ms = t, .busy_ms = busy, .own_ms = mine};
        busy += load + own;
        mine += own;
    }
    return n;
}

static void decide(const struct cu_idle_policy *p, int64_t last_input, bool have_input,
                   const struct cu_idle_sample *s, size_t n, int64_t watched,
                   struct cu_idle_verdict *v)
{
    struct cu_idle_inputs in = {.now_ms = NOW,
                                .watch_start_ms = NOW - watched,
                                .have_input = have_input,
                                .last_input_ms = last_input,
                                .samples = s,
                                .nsamples = n};
    cu_idle_decide(p, &in, v);
}

/* Every combination of input age, steady load, watch time and the two
 * switches against the rule written out. */
static void test_grid(void **state)
{
    static const int64_t ages[] = {-1, 0, 1, Q - 1, Q, Q + 1, 10 * Q};
    static const uint64_t loads[] = {0, 1, L - 1, L, L + 1, 4000};
    static const int64_t watched[] = {0, Q - 1, Q, 3 * Q};
    struct cu_idle_sample s[256];

    (void)state;
    for (int ui = 0; ui < 2; ui++)
        for (int ul = 0; ul < 2; ul++)
            for (int hi = 0; hi < 2; hi++)
                for (size_t a = 0; a < sizeof ages / sizeof ages[0]; a++)
                    for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++)
                        for (size_t w = 0; w < sizeof watched / sizeof watched[0]; w++) {
                            struct cu_idle_policy p = both;
                            struct cu_idle_verdict v;
                            int64_t last = ages[a] < 0 ? CU_IDLE_NEVER : NOW - ages[a];
                            size_t n = steady(s, 256, 2 * Q / 1000 * 1000, loads[l], 300);
                            bool input_busy, load_busy, expect;

                            p.use_input = ui;
                            p.use_load = ul;
                            decide(&p, last, hi, s, n, watched[w], &v);
                            input_busy = ui && hi && ages[a] >= 0 && ages[a] < Q;
                            load_busy = ul && loads[l] > L;
                            expect = !input_busy && !load_busy && watched[w] >= Q;
                            assert_int_equal(v.idle, expect);
                            if (input_busy)
                                assert_int_equal(v.why, CU_IDLE_INPUT);
                            else if (load_busy)
                                assert_int_equal(v.why, CU_IDLE_LOAD);
                            else if (!expect)
                                assert_int_equal(v.why, CU_IDLE_WATCHING);
                            else
                                assert_int_equal(v.why, CU_IDLE_YES);
                            if (ul)
                                assert_int_equal(v.load_milli, loads[l]);
                            assert_true(v.reason[0] != '\0');
                        }
}

static void test_reasons_name_the_numbers(void **state)
{
    struct cu_idle_sample s[256];
    struct cu_idle_verdict v;
    size_t n;

    (void)state;
    n = steady(s, 256, Q, 0, 0);
    decide(&both, NOW - 3000, true, s, n, Q, &v);
    assert_string_equal(v.reason, "owner active: input 3.0s ago, idle after 1m00s without");
    assert_int_equal(v.input_age_ms, 3000);
    n = steady(s, 256, Q, 1250, 0);
    decide(&both, CU_IDLE_NEVER, true, s, n, Q, &v);
    assert_string_equal(v.reason, "load from other processes 1.25 is above 0.50 (0ms ago)");
    assert_int_equal(v.input_age_ms, -1);
    n = steady(s, 256, Q, 100, 0);
    decide(&both, NOW - Q, true, s, n, Q, &v);
    assert_true(v.idle);
    assert_string_equal(v.reason, "idle: no input and load from others 0.10 (at most 0.50) "
                                  "for 1m00s");
    decide(&both, NOW - Q, true, s, n, 1000, &v);
    assert_string_equal(v.reason, "watching for 1m00s before counting as idle (1.0s so far)");
}

/* The provider's own CPU is not load, however much it is. */
static void test_own_cpu_subtracted(void **state)
{
    struct cu_idle_sample s[256];
    struct cu_idle_verdict v;
    size_t n = steady(s, 256, Q, L, 16000); /* 16 cores of own tasks */

    (void)state;
    decide(&both, CU_IDLE_NEVER, false, s, n, Q, &v);
    assert_true(v.idle);
    assert_int_equal(v.load_milli, L);
    /* own read after busy can exceed it: floored at 0, not wrapped */
    s[n - 1].own_ms = s[n - 1].busy_ms + 5000;
    decide(&both, CU_IDLE_NEVER, false, s, n, Q, &v);
    assert_true(v.idle);
    /* a counter going back (reset) counts as no load */
    s[n - 1].busy_ms = 0;
    s[n - 1].own_ms = 0;
    decide(&both, CU_IDLE_NEVER, false, s, n, Q, &v);
    assert_true(v.idle);
}

/* A spike counts while its interval ends inside the window, not after. */
static void test_window_edges(void **state)
{
    struct cu_idle_sample s[4] = {
        {.t_ms = NOW - Q - 1000, .busy_ms = 0, .own_ms = 0},
        {.t_ms = NOW - Q, .busy_ms = 5000, .own_ms = 0},     /* 5.0: ends at the edge */
        {.t_ms = NOW - Q / 2, .busy_ms = 5000, .own_ms = 0}, /* 0 */
        {.t_ms = NOW, .busy_ms = 5000 + Q / 4, .own_ms = 0}, /* 0.5 */
    };
    struct cu_idle_verdict v;

    (void)state;
    decide(&both, CU_IDLE_NEVER, false, s, 4, Q, &v);
    assert_true(v.idle);
    assert_int_equal(v.load_milli, 500);
    s[1].t_ms = NOW - Q + 1; /* now it ends inside */
    decide(&both, CU_IDLE_NEVER, false, s, 4, Q, &v);
    assert_false(v.idle);
    assert_int_equal(v.why, CU_IDLE_LOAD);
    /* intervals of zero or negative length are skipped, not divided by */
    s[1].t_ms = s[0].t_ms;
    s[1].busy_ms = 1000000;
    s[2].busy_ms = 1000000;
    s[3].busy_ms = 1000000;
    decide(&both, CU_IDLE_NEVER, false, s, 4, Q, &v);
    assert_true(v.idle);
    assert_int_equal(v.load_milli, 0);
    /* no interval inside the window at all */
    decide(&both, CU_IDLE_NEVER, false, s, 1, Q, &v);
    assert_int_equal(v.why, CU_IDLE_NO_SAMPLES);
    decide(&both, CU_IDLE_NEVER, false, NULL, 0, Q, &v);
    assert_int_equal(v.why, CU_IDLE_NO_SAMPLES);
    /* huge counters saturate instead of overflowing */
    s[2].busy_ms = UINT64_MAX;
    decide(&both, CU_IDLE_NEVER, false, s, 3, Q, &v);
    assert_int_equal(v.why, CU_IDLE_LOAD);
    assert_int_equal(v.load_milli, UINT32_MAX);
}

/* Input stamped in the future (clock steps) counts as now; no input
 * source means input is not judged. */
static void test_input_edges(void **state)
{
    struct cu_idle_policy p = {.use_input = true, .quiet_ms = Q};
    struct cu_idle_verdict v;

    (void)state;
    decide(&p, NOW + 5000, true, NULL, 0, Q, &v);
    assert_false(v.idle);
    assert_int_equal(v.input_age_ms, 0);
    decide(&p, NOW, false, NULL, 0, Q, &v);
    assert_true(v.idle);
    decide(&p, CU_IDLE_NEVER, true, NULL, 0, Q, &v);
    assert_true(v.idle);
    assert_string_equal(v.reason, "idle: no input for 1m00s");
    /* quiet time 0: idle at once unless input is this very moment */
    p.quiet_ms = 0;
    decide(&p, NOW - 1, true, NULL, 0, 0, &v);
    assert_true(v.idle);
}

static void test_parse_load(void **state)
{
    uint32_t m = 7;

    (void)state;
    assert_int_equal(cu_idle_parse_load("0.5", &m), 0);
    assert_int_equal(m, 500);
    assert_int_equal(cu_idle_parse_load("2", &m), 0);
    assert_int_equal(m, 2000);
    assert_int_equal(cu_idle_parse_load("1.25", &m), 0);
    assert_int_equal(m, 1250);
    assert_int_equal(cu_idle_parse_load("0.001", &m), 0);
    assert_int_equal(m, 1);
    assert_int_equal(cu_idle_parse_load("0", &m), 0);
    assert_int_equal(m, 0);
    assert_int_equal(cu_idle_parse_load("1000", &m), 0);
    assert_int_equal(m, 1000000);
    m = 7;
    static const char *const bad[] = {"", ".5", "1.", "0.0001", "-1", "1e3", "1000.001",
                                      "1001", "0.5x", " 1", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cu_idle_parse_load(bad[i], &m), -CU_EINVAL);
    assert_int_equal(cu_idle_parse_load(NULL, &m), -CU_EINVAL);
    assert_int_equal(m, 7);
}

static void test_parse_probe(void **state)
{
    (void)state;
    assert_int_equal(cu_idle_parse_probe("idle"), 1);
    assert_int_equal(cu_idle_parse_probe("idle\n"), 1);
    assert_int_equal(cu_idle_parse_probe("  active \n"), 0);
    assert_int_equal(cu_idle_parse_probe("active"), 0);
    assert_int_equal(cu_idle_parse_probe(""), -CU_EINVAL);
    assert_int_equal(cu_idle_parse_probe("Idle"), -CU_EINVAL);
    assert_int_equal(cu_idle_parse_probe("idle now"), -CU_EINVAL);
    assert_int_equal(cu_idle_parse_probe("activ"), -CU_EINVAL);
    assert_int_equal(cu_idle_parse_probe(NULL), -CU_EINVAL);
}

static void test_parse_stat(void **state)
{
    struct cu_proc_info p;

    (void)state;
    /* comm with spaces and a ')' */
    assert_int_equal(cu_proc_parse_stat("42 (a b) c) T 7 42 42 0 -1 4194304 1 2 3 4 100 50 20 "
                                        "30 20 0 1 0 5 6 7",
                                        100, &p),
                     0);
    assert_int_equal(p.pid, 42);
    assert_int_equal(p.ppid, 7);
    assert_int_equal(p.state, 'T');
    assert_int_equal(p.cpu_ms, 2000); /* (100+50+20+30) ticks at 100 Hz */
    assert_int_equal(cu_proc_parse_stat("42 (x) R 1", 100, &p), -CU_EPROTO);
    assert_int_equal(cu_proc_parse_stat("x (x) R 1 2 3", 100, &p), -CU_EPROTO);
    assert_int_equal(cu_proc_parse_stat("42 x R 1 2 3", 100, &p), -CU_EPROTO);
    assert_int_equal(cu_proc_parse_stat("", 100, &p), -CU_EPROTO);
}

/* The tree of this very process: it exists, we are first, the sum grows. */
static void test_own_tree(void **state)
{
    struct cu_proc_info v[16];
    uint64_t ms = 0;
    size_t n = 0;
    volatile uint64_t x = 0;

    (void)state;
    assert_int_equal(cu_proc_tree(getpid(), v, 16, &n), 0);
    assert_true(n >= 1);
    assert_int_equal(v[0].pid, getpid());
    assert_int_equal(cu_proc_tree_cpu_ms(getpid(), &ms), 0);
    assert_int_equal(cu_proc_tree(0x7ffffff0, v, 16, &n), -CU_ENOTFOUND);
    for (uint64_t i = 0; i < 200000000ULL; i++)
        x += i;
    {
        uint64_t later = 0;
        assert_int_equal(cu_proc_tree_cpu_ms(getpid(), &later), 0);
        assert_true(later >= ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_reasons_name_the_numbers),
        cmocka_unit_test(test_own_cpu_subtracted),
        cmocka_unit_test(test_window_edges),
        cmocka_unit_test(test_input_edges),
        cmocka_unit_test(test_parse_load),
        cmocka_unit_test(test_parse_probe),
        cmocka_unit_test(test_parse_stat),
        cmocka_unit_test(test_own_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
