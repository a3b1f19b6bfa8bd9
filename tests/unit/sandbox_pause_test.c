/* sandbox_pause_test.c - pausing a real sandboxed task (idle-only
 * providers): every process of its tree stops, it resumes where it was,
 * the wall-clock limit does not count the pause, and a paused task can
 * still be killed. Needs bubblewrap, like sandbox_test.c. No timing
 * assertions: only lower bounds that the test itself guarantees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "fabric/proctree.h"
#include "fabric/sandbox.h"
#include "sandbox_fixture.h"

#include "base/banned.h"

struct fixture {
    struct sbfix x;
    char ready[CU_PATH_MAX], done[CU_PATH_MAX];
    struct cu_sandbox *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (!f || sbfix_init(&f->x, "cu-pause-test") != 0)
        return -1;
    cu_path_join(f->ready, sizeof(f->ready), f->x.out, "ready");
    cu_path_join(f->done, sizeof(f->done), f->x.out, "done");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_sandbox_free(f->s);
    sbfix_release(&f->x);
    free(f);
    return 0;
}

/* Starts script and waits (up to 60 s) until it has created /out/ready. */
static void start_ready(struct fixture *f, const char *script)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    struct cu_err e = {0};
    int64_t end = cu_mono_ms() + 60000;

    f->x.o.argv = argv;
    assert_int_equal(cu_sandbox_start(&f->x.o, &f->s, &e), 0);
    while (access(f->ready, F_OK) != 0) {
        assert_true(cu_mono_ms() < end);
        assert_int_equal(cu_sandbox_wait(f->s, 50), -CU_EAGAIN);
    }
}

/* The sandbox processes: this test's descendants. *stopped counts those
 * in state T (or already zombies). */
static size_t task_procs(size_t *stopped)
{
    static struct cu_proc_info v[CU_PROCTREE_MAX];
    size_t n = 0, k = 0;

    *stopped = 0;
    assert_int_equal(cu_proc_tree(getpid(), v, CU_PROCTREE_MAX, &n), 0);
    for (size_t i = 0; i < n; i++) {
        if (v[i].pid == getpid())
            continue;
        k++;
        if (v[i].state == 'T' || v[i].state == 'Z')
            (*stopped)++;
    }
    return k;
}

static void test_pause_stops_the_whole_tree(void **state)
{
    struct fixture *f = *state;
    struct cu_sandbox_result r;
    size_t n, stopped;

    /* two background children and the shell itself */
    start_ready(f, "sleep 100 & sleep 100 & touch /out/ready; wait");
    n = task_procs(&stopped);
    assert_true(n >= 5); /* bwrap, its pid 1, sh, 2 x sleep */
    assert_int_equal(cu_sandbox_pause(f->s), 0);
    assert_true(cu_sandbox_is_paused(f->s));
    n = task_procs(&stopped);
    assert_true(n >= 5);
    assert_int_equal(stopped, n);
    /* paused twice is one pause */
    assert_int_equal(cu_sandbox_pause(f->s), 0);
    assert_int_equal(cu_sandbox_wait(f->s, 200), -CU_EAGAIN);

    assert_int_equal(cu_sandbox_resume(f->s), 0);
    assert_false(cu_sandbox_is_paused(f->s));
    n = task_procs(&stopped);
    assert_true(n >= 5);
    assert_int_equal(stopped, 0);
    cu_sandbox_kill(f->s, "test over");
    assert_int_equal(cu_sandbox_wait(f->s, -1), 0);
    cu_sandbox_get_result(f->s, &r);
    assert_int_equal(r.status, CU_SB_KILLED);
}

/* A 5 s limit, a 6 s pause, about 1 s of work: it ends ok, and the wall
 * time it reports leaves the pause out. */
static void test_time_limit_skips_the_pause(void **state)
{
    struct fixture *f = *state;
    struct cu_sandbox_result r;
    int64_t t0 = cu_mono_ms(), pause_end;

    f->x.o.time_limit_ms = 5000;
    start_ready(f, "touch /out/ready; sleep 1; echo done > /out/done");
    assert_int_equal(cu_sandbox_pause(f->s), 0);
    pause_end = cu_mono_ms() + 6000;
    while (cu_mono_ms() < pause_end)
        assert_int_equal(cu_sandbox_wait(f->s, 100), -CU_EAGAIN);
    assert_int_equal(access(f->done, F_OK), -1);
    assert_int_equal(cu_sandbox_resume(f->s), 0);
    assert_int_equal(cu_sandbox_wait(f->s, -1), 0);
    cu_sandbox_get_result(f->s, &r);
    assert_int_equal(r.status, CU_SB_OK);
    assert_int_equal(access(f->done, F_OK), 0);
    assert_true(r.paused_ms >= 6000);
    assert_true((int64_t)r.wall_ms <= cu_mono_ms() - t0 - 6000);
}

static void test_kill_while_paused(void **state)
{
    struct fixture *f = *state;
    struct cu_sandbox_result r;

    start_ready(f, "touch /out/ready; sleep 100");
    assert_int_equal(cu_sandbox_pause(f->s), 0);
    cu_sandbox_kill(f->s, "job cancelled");
    assert_int_equal(cu_sandbox_wait(f->s, -1), 0);
    cu_sandbox_get_result(f->s, &r);
    assert_int_equal(r.status, CU_SB_KILLED);
    assert_string_equal(r.reason, "job cancelled");
    assert_true(r.paused_ms > 0 || r.wall_ms > 0);
    /* resuming an ended task is harmless */
    assert_int_equal(cu_sandbox_resume(f->s), 0);
    {
        size_t stopped;
        assert_int_equal(task_procs(&stopped), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pause_stops_the_whole_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_limit_skips_the_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_while_paused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
