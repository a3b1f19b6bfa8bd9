/* warm_test.c - runs real tasks in a warm sandbox (fabric/warm.h): needs
 * bubblewrap and user namespaces, as sandbox_test.c. Each test starts one
 * warm sandbox and runs several tasks in it, as a provider slot does for
 * consecutive tasks of one job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "fabric/cgroup.h"
#include "fabric/sandbox.h"
#include "fabric/warm.h"

#include "base/banned.h"

struct fixture {
    char base[64];
    char warm[CU_PATH_MAX];
    char work[CU_PATH_MAX], out[CU_PATH_MAX], in[CU_PATH_MAX];
    char so[CU_PATH_MAX], se[CU_PATH_MAX];
    struct cu_sandbox_opts o;
    struct cu_sandbox_result r;
    struct cu_warm *w;
    struct cu_cgroup cg; /* a parent group for the memory test; NONE if none */
};

/* Fresh task directories, as the provider makes one set per task. */
static void task_dirs(struct fixture *f)
{
    char dir[CU_PATH_MAX];
    assert_int_equal(cu_path_join(dir, sizeof(dir), f->base, "task"), 0);
    cu_rm_rf(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mkdir(f->work, 0755), 0);
    assert_int_equal(mkdir(f->out, 0755), 0);
    assert_int_equal(mkdir(f->in, 0755), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cu_sandbox_opts init = CU_SANDBOX_OPTS_INIT;
    char task[CU_PATH_MAX];

    if (!f)
        return -1;
    cu_snprintf(f->base, sizeof(f->base), "/tmp/cu-warm-test-XXXXXX");
    if (!mkdtemp(f->base))
        return -1;
    chmod(f->base, 0755);
    cu_path_join(f->warm, sizeof(f->warm), f->base, "warm");
    cu_path_join(task, sizeof(task), f->base, "task");
    cu_path_join(f->work, sizeof(f->work), task, "work");
    cu_path_join(f->out, sizeof(f->out), task, "out");
    cu_path_join(f->in, sizeof(f->in), task, "in");
    cu_path_join(f->so, sizeof(f->so), f->base, "stdout");
    cu_path_join(f->se, sizeof(f->se), f->base, "stderr");
    f->o = init;
    f->o.work_dir = f->work;
    f->o.out_dir = f->out;
    f->o.in_dir = f->in;
    f->o.stdout_path = f->so;
    f->o.stderr_path = f->se;
    f->o.time_limit_ms = 60000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_warm_free(f->w);
    if (f->cg.version != CU_CG_NONE)
        (void)cu_cgroup_destroy(&f->cg);
    cu_rm_rf(f->base);
    free(f);
    return 0;
}

/* Runs argv as the next task of job "job-a" in f's warm sandbox (started
 * on first use) in the task directories as they are; the result in f->r. */
static void run_here(struct fixture *f, const char *const *argv)
{
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    int rc;

    f->o.argv = argv;
    rc = cu_warm_acquire(&f->w, &f->o, f->warm, "job-a", &e);
    if (rc)
        fail_msg("warm start: %s", e.msg);
    rc = cu_warm_run(f->w, &f->o, &s, &e);
    if (rc)
        fail_msg("warm run: %s", e.msg);
    assert_int_equal(cu_sandbox_wait(s, -1), 0);
    cu_sandbox_get_result(s, &f->r);
    cu_sandbox_free(s);
}

/* run_here in fresh task directories. */
static void run(struct fixture *f, const char *const *argv)
{
    task_dirs(f);
    run_here(f, argv);
}

static char *slurp(const char *path)
{
    struct cu_buf b;
    cu_buf_init(&b, 1 << 20);
    if (cu_read_file(path, &b) != 0) {
        cu_buf_release(&b);
        return NULL;
    }
    return cu_buf_detach(&b);
}

static bool exists(const char *dir, const char *name)
{
    char p[CU_PATH_MAX];
    struct stat st;
    cu_path_join(p, sizeof(p), dir, name);
    return lstat(p, &st) == 0;
}

static void test_runs_and_reuses(void **state)
{
    struct fixture *f = *state;
    static const char *const echo[] = {"sh", "-c", "echo hello; echo oops >&2; "
                                       "echo r > /out/r.txt; echo $$ > /work/pid", NULL};
    struct cu_warm *first;
    char *out;

    run(f, echo);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_string_equal(f->r.reason, "exit code 0");
    out = slurp(f->so);
    assert_non_null(out);
    assert_string_equal(out, "hello\n");
    free(out);
    out = slurp(f->se);
    assert_string_equal(out, "oops\n");
    free(out);
    /* The task's outputs came back to its own directory; /work is
     * scratch, emptied with the sandbox's copy. */
    assert_true(exists(f->out, "r.txt"));
    assert_false(exists(f->work, "pid"));
    first = f->w;
    run(f, echo);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_ptr_equal(f->w, first); /* the same sandbox ran both */
}

/* Runs argv in w (owned by "job-a") with f's options and directories. */
static void run_in(struct fixture *f, struct cu_warm *w, const char *const *argv)
{
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};

    task_dirs(f);
    f->o.argv = argv;
    if (cu_warm_run(w, &f->o, &s, &e) != 0)
        fail_msg("warm run: %s", e.msg);
    assert_int_equal(cu_sandbox_wait(s, -1), 0);
    cu_sandbox_get_result(s, &f->r);
    cu_sandbox_free(s);
}

/* Asserts that path holds exactly want, and that the result counts it. */
static void log_is(const char *path, const char *want, uint64_t counted)
{
    char *got = slurp(path);

    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(counted, strlen(want));
    free(got);
}

/* The capture files stay open from task to task: each task's logs are
 * its own, whatever the tasks before wrote (longer, shorter, nothing),
 * when another sandbox wrote the same files in between (a slot's spare),
 * and when the file was removed meanwhile. */
static void test_logs_per_task(void **state)
{
    struct fixture *f = *state;
    static const char *const lng[] = {"sh", "-c", "echo a-long-line-of-output; echo e1 >&2",
                                      NULL};
    static const char *const shrt[] = {"sh", "-c", "echo x", NULL};
    static const char *const quiet[] = {"true", NULL};
    static const char *const mid[] = {"sh", "-c", "echo middle >&2", NULL};
    struct cu_warm *other = NULL;
    struct cu_err e = {0};
    char base[CU_PATH_MAX];

    run(f, lng);
    log_is(f->so, "a-long-line-of-output\n", f->r.stdout_bytes);
    log_is(f->se, "e1\n", f->r.stderr_bytes);
    run(f, shrt);
    log_is(f->so, "x\n", f->r.stdout_bytes);
    log_is(f->se, "", f->r.stderr_bytes);
    run(f, quiet);
    log_is(f->so, "", f->r.stdout_bytes);
    log_is(f->se, "", f->r.stderr_bytes);
    run(f, lng);
    log_is(f->so, "a-long-line-of-output\n", f->r.stdout_bytes);
    run(f, quiet);

    /* A second sandbox of the same files writes them after the first's
     * task that wrote nothing; then the first runs another task. */
    cu_path_join(base, sizeof(base), f->base, "second");
    assert_int_equal(cu_warm_start(&f->o, base, "job-a", &other, &e), 0);
    run_in(f, other, quiet); /* opens the files: the first's output is gone */
    log_is(f->so, "", f->r.stdout_bytes);
    run_in(f, other, lng);
    run_in(f, f->w, mid);
    log_is(f->so, "", f->r.stdout_bytes);
    log_is(f->se, "middle\n", f->r.stderr_bytes);
    run_in(f, other, shrt);
    log_is(f->so, "x\n", f->r.stdout_bytes);
    log_is(f->se, "", f->r.stderr_bytes);

    /* Removed between two tasks: created again, and the log lands there. */
    assert_int_equal(unlink(f->so), 0);
    run_in(f, f->w, shrt);
    log_is(f->so, "x\n", f->r.stdout_bytes);
    cu_warm_free(other);

    /* The pipes outlive the tasks too: what a task wrote past a pipe's
     * buffer is all read, up to the cap, and a writer left in the
     * background (killed at the task's end) leaves nothing for the next. */
    {
        static const char *const big[] = {
            "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a; echo tail >&2", NULL};
        static const char *const bg[] = {
            "sh", "-c", "(while :; do echo late; echo late >&2; done) & echo early", NULL};
        struct stat st;
        run(f, big);
        assert_int_equal(f->r.status, CU_SB_OK);
        assert_int_equal(f->r.stdout_bytes, 300000);
        assert_int_equal(stat(f->so, &st), 0);
        assert_int_equal(st.st_size, 300000);
        log_is(f->se, "tail\n", f->r.stderr_bytes);
        f->o.stdio_cap = 1000;
        run(f, big);
        assert_int_equal(f->r.stdout_bytes, 1000);
        f->o.stdio_cap = 1 << 20;
        run(f, bg);
        assert_int_equal(f->r.status, CU_SB_OK);
        run(f, shrt);
        log_is(f->so, "x\n", f->r.stdout_bytes);
        log_is(f->se, "", f->r.stderr_bytes);
    }

    /* A task that wrote and ended before anyone waited: its end and its
     * output are both waiting, and the output is its, not the next's. */
    {
        struct cu_sandbox *s = NULL;
        task_dirs(f);
        f->o.argv = lng;
        assert_int_equal(cu_warm_run(f->w, &f->o, &s, &e), 0);
        usleep(300 * 1000);
        assert_int_equal(cu_sandbox_wait(s, -1), 0);
        cu_sandbox_get_result(s, &f->r);
        cu_sandbox_free(s);
        log_is(f->so, "a-long-line-of-output\n", f->r.stdout_bytes);
        log_is(f->se, "e1\n", f->r.stderr_bytes);
        run(f, quiet);
        log_is(f->so, "", f->r.stdout_bytes);
        log_is(f->se, "", f->r.stderr_bytes);
    }
}

static void test_exit_codes_and_signals(void **state)
{
    struct fixture *f = *state;
    static const char *const code3[] = {"sh", "-c", "exit 3", NULL};
    static const char *const segv[] = {"sh", "-c", "kill -SEGV $$", NULL};
    static const char *const missing[] = {"no-such-program-here", NULL};

    run(f, code3);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_int_equal(f->r.exit_code, 3);
    assert_string_equal(f->r.reason, "exit code 3");
    run(f, segv);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_int_equal(f->r.term_signal, SIGSEGV);
    run(f, missing);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_int_equal(f->r.exit_code, 127);
    assert_string_equal(f->r.reason, "cannot run command: no-such-program-here: No such file or "
                                     "directory (exit code 127)");
    /* Still usable after all that. */
    run(f, code3);
    assert_int_equal(f->r.exit_code, 3);
}

/* A task starts with stdin /dev/null, stdout and stderr its logs, and no
 * other descriptor: never the control socket, nor the supervisor's own
 * /dev/null. Twice, so that the second task of a sandbox is checked too. */
static void test_task_descriptors(void **state)
{
    struct fixture *f = *state;
    /* The shell's own script descriptor aside, ls's listing of its fds
     * shows 0, 1, 2 and the one it reads the directory through. */
    static const char *const fds[] = {"sh", "-c", "readlink /proc/self/fd/0; exec ls /proc/self/fd",
                                      NULL};
    char *out;

    for (int i = 0; i < 2; i++) {
        run(f, fds);
        assert_int_equal(f->r.status, CU_SB_OK);
        out = slurp(f->so);
        assert_non_null(out);
        assert_string_equal(out, "/dev/null\n0\n1\n2\n3\n");
        free(out);
    }
}

static void nothing_leaks(struct fixture *f)
{
    static const char *const leave[] = {
        "sh", "-c",
        "(sleep 1000 & echo $! > /tmp/bg; sleep 1000) & "
        "echo x > /work/left; echo y > /out/left; echo z > /tmp/left; "
        "echo w > /dev/shm/left 2>/dev/null; mkdir /tmp/d; chmod 0 /tmp/d; sleep 0.2",
        NULL};
    static const char *const look[] = {
        "sh", "-c",
        "n=$(ls -A /work /out /tmp | grep -v ':$' | grep -c .); "
        "s=$(ls -A /dev/shm 2>/dev/null | grep -c .); "
        "p=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c sleep); "
        "echo \"$n $p $s\"",
        NULL};

    /* Twice: the second time after a task that left nothing. */
    for (int round = 0; round < 2; round++) {
        char *out;
        int n = -1, p = -1, s = -1;
        run(f, leave);
        assert_int_equal(f->r.status, CU_SB_OK);
        assert_false(f->r.out_empty); /* it left /out/left */
        run(f, look);
        assert_int_equal(f->r.status, CU_SB_OK);
        /* Known empty only where the final size check looked. */
        assert_int_equal(f->r.out_empty, f->o.output_limit != 0);
        out = slurp(f->so);
        assert_non_null(out);
        assert_int_equal(f->r.stdout_bytes, strlen(out));
        assert_int_equal(f->r.stderr_bytes, 0);
        /* no files, no sleep process left */
        assert_int_equal(sscanf(out, "%d %d %d", &n, &p, &s), 3);
        bool clean = n == 0 && p == 0 && s == 0;
        if (!clean)
            print_error("leftovers seen by the next task: '%s'\n", out);
        free(out);
        assert_true(clean);
    }
}

/* A task leaves a background process, files in /work, /out, /tmp and
 * /dev/shm: the next task of the same job sees none of it. Without an
 * output limit and with one (then the final size check tells which
 * directories are empty, and those are not read again). */
static void test_nothing_leaks_to_next_task(void **state)
{
    struct fixture *f = *state;

    for (int limited = 0; limited < 2; limited++) {
        f->o.output_limit = limited ? 1 << 20 : 0;
        nothing_leaks(f);
    }
}

/* System V IPC objects, a POSIX message queue and a changed mode of
 * /tmp do not reach the next task either, and a task after one that left
 * nothing (when the supervisor finds the shared directories empty by
 * their size and skips reading them) is still cleaned up after. */
static void test_ipc_and_modes_cleaned(void **state)
{
    struct fixture *f = *state;
    static const char *const leave[] = {
        "sh", "-c",
        "ipcmk -Q >/dev/null && ipcmk -M 4096 >/dev/null && ipcmk -S 1 >/dev/null && "
        "touch /dev/mqueue/q /tmp/t && mkdir /dev/shm/d && chmod 0555 /tmp",
        NULL};
    static const char *const nothing[] = {"true", NULL};
    static const char *const look[] = {
        "sh", "-c",
        "i=$(cat /proc/sysvipc/msg /proc/sysvipc/shm /proc/sysvipc/sem | grep -vc key); "
        "f=$(ls -A /tmp /dev/shm /dev/mqueue | grep -v ':$' | grep -c .); "
        "touch /tmp/probe && w=1 || w=0; echo \"$i $f $w\"",
        NULL};

    if (access("/usr/bin/ipcmk", X_OK) != 0)
        skip();
    for (int round = 0; round < 2; round++) {
        char *out;
        int i = -1, n = -1, w = -1;
        run(f, leave);
        assert_int_equal(f->r.status, CU_SB_OK);
        assert_int_equal(f->r.exit_code, 0);
        run(f, look);
        assert_int_equal(f->r.status, CU_SB_OK);
        out = slurp(f->so);
        assert_non_null(out);
        assert_int_equal(sscanf(out, "%d %d %d", &i, &n, &w), 3);
        if (i != 0 || n != 0 || w != 1)
            print_error("round %d: leftovers seen by the next task: '%s'\n", round, out);
        free(out);
        assert_int_equal(i, 0);
        assert_int_equal(n, 0);
        assert_int_equal(w, 1);
        run(f, nothing); /* a task that leaves nothing between two that do */
        assert_int_equal(f->r.status, CU_SB_OK);
    }
}

static void test_time_limit_kills(void **state)
{
    struct fixture *f = *state;
    static const char *const sleeper[] = {"sh", "-c", "trap '' TERM; sleep 100", NULL};
    static const char *const ok[] = {"true", NULL};

    f->o.time_limit_ms = 300;
    run(f, sleeper);
    assert_int_equal(f->r.status, CU_SB_TIMEOUT);
    assert_string_equal(f->r.reason, "time limit 300ms exceeded");
    assert_true(f->r.wall_ms < 5000);
    f->o.time_limit_ms = 60000;
    run(f, ok);
    assert_int_equal(f->r.status, CU_SB_OK);
}

/* Three files, each under the limit, together over it, written faster
 * than the periodic size check: the final check still sees them. */
static void test_output_limit(void **state)
{
    struct fixture *f = *state;
    static const char *const fill[] = {
        "sh", "-c",
        "for n in a b c; do head -c 600000 /dev/zero > /out/$n; done", NULL};
    static const char *const ok[] = {"true", NULL};

    f->o.output_limit = 1 << 20;
    run(f, fill);
    assert_int_equal(f->r.status, CU_SB_OUTPUT_LIMIT);
    assert_string_equal(f->r.reason, "output limit 1.0 MiB exceeded");
    run(f, ok); /* the files are gone with the task */
    assert_int_equal(f->r.status, CU_SB_OK);
}

static void test_cpu_accounting(void **state)
{
    struct fixture *f = *state;
    /* Busy in a background child that the main process waits for: the
     * kernel's accounting of the whole task tree counts it. */
    static const char *const spin[] = {
        "sh", "-c", "(i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done) & wait", NULL};

    run(f, spin);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_true(f->r.cpu_ms >= 50);
    assert_true(f->r.cpu_ms <= f->r.wall_ms + 50);
}

static void test_other_owner_gets_new_sandbox(void **state)
{
    struct fixture *f = *state;
    static const char *const ok[] = {"true", NULL};
    struct cu_err e = {0};
    struct cu_warm *first;

    run(f, ok);
    first = f->w;
    f->o.argv = ok;
    assert_true(cu_warm_fits(f->w, &f->o, "job-a"));
    assert_false(cu_warm_fits(f->w, &f->o, "job-b"));
    f->o.output_limit = 1 << 20; /* another /tmp size: another sandbox */
    assert_false(cu_warm_fits(f->w, &f->o, "job-a"));
    f->o.output_limit = 0;
    assert_int_equal(cu_warm_acquire(&f->w, &f->o, f->warm, "job-b", &e), 0);
    assert_true(f->w != first || cu_warm_fits(f->w, &f->o, "job-b"));
    assert_true(cu_warm_fits(f->w, &f->o, "job-b"));
    assert_false(cu_warm_fits(f->w, &f->o, "job-a"));
}

/* A spare, started ahead of time from another sandbox's shape, becomes
 * the sandbox of whichever job's task comes first, and only that job's. */
static void test_spare_takes_first_owner(void **state)
{
    struct fixture *f = *state;
    static const char *const ok[] = {"sh", "-c", "echo spare > /out/s.txt", NULL};
    struct cu_warm *spare = NULL;
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    char base[CU_PATH_MAX];

    run(f, ok);
    cu_path_join(base, sizeof(base), f->base, "spare");
    {
        struct cu_warm_shape *sh = cu_warm_shape_of(f->w);
        assert_non_null(sh);
        cu_warm_free(f->w); /* the shape outlives its sandbox */
        f->w = NULL;
        assert_int_equal(cu_warm_start_shape(sh, base, &spare, &e), 0);
        cu_warm_shape_free(sh);
    }
    f->o.argv = ok;
    assert_true(cu_warm_fits(spare, &f->o, "job-b"));
    assert_true(cu_warm_fits(spare, &f->o, "job-c"));
    assert_int_equal(cu_warm_acquire(&spare, &f->o, base, "job-b", &e), 0);
    assert_false(cu_warm_fits(spare, &f->o, "job-c"));
    task_dirs(f);
    assert_int_equal(cu_warm_run(spare, &f->o, &s, &e), 0);
    assert_int_equal(cu_sandbox_wait(s, -1), 0);
    cu_sandbox_get_result(s, &f->r);
    cu_sandbox_free(s);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_true(exists(f->out, "s.txt"));
    cu_warm_free(spare);
    assert_false(exists(f->base, "spare")); /* its directory goes with it */
}

static void test_memory_limit(void **state)
{
    struct fixture *f = *state;
    struct cu_cgroup self;
    struct cu_cgroup_limits none = {0};
    struct cu_err e = {0};
    char name[64];
    static const char *const hog[] = {
        "sh", "-c", "x=a; while :; do x=$x$x$x$x; done", NULL};
    static const char *const ok[] = {"true", NULL};
    static const char *const nap[] = {"sleep", "0.5", NULL};

    if (cu_cgroup_self(&self, &e) != 0) {
        skip();
        return;
    }
    cu_snprintf(name, sizeof(name), "cu-warm-test-%d", (int)getpid());
    if (cu_cgroup_create(&self, name, &none, &f->cg, &e) != 0) {
        skip();
        return;
    }
    f->o.cgroup_parent = &f->cg;
    f->o.memory_limit = 32 << 20;
    f->o.time_limit_ms = 30000;
    run(f, hog);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_string_equal(f->r.reason, "memory limit");
    run(f, ok); /* the next task is not blamed for the last one's OOM */
    assert_int_equal(f->r.status, CU_SB_OK);
    run(f, nap); /* ... not even when it runs past a limit check */
    assert_int_equal(f->r.status, CU_SB_OK);
    cu_warm_free(f->w);
    f->w = NULL;
}

/* Writes text into dir/name (made with its parents' modes as given). */
static void put_file(const char *dir, const char *name, const char *text)
{
    char p[CU_PATH_MAX];
    FILE *fp;
    assert_int_equal(cu_path_join(p, sizeof(p), dir, name), 0);
    fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* What the provider placed in the task's directories (a tree under /work,
 * a file in /out, an input) is there for the task, and writable where a
 * fresh sandbox's would be, also in a subdirectory made by the provider
 * (as root it becomes the task uid's on the way in); /out comes back,
 * /work and /in do not (scratch, and the provider's copies), and the next
 * task finds all three empty. */
static void test_task_files_in_and_back(void **state)
{
    struct fixture *f = *state;
    static const char *const use[] = {
        "sh", "-c",
        "cat /in/input.txt > /out/copy.txt && echo new > /work/sub/deep/new && "
        "echo more >> /out/pre.txt && cat /work/sub/deep/new >> /out/pre.txt",
        NULL};
    static const char *const look[] = {
        "sh", "-c", "n=$(ls -A /work /out /in | grep -v ':$' | grep -c .); echo $n", NULL};
    char sub[CU_PATH_MAX], in_left[CU_PATH_MAX];
    char *out;

    task_dirs(f);
    assert_int_equal(cu_path_join(sub, sizeof(sub), f->work, "sub/deep"), 0);
    assert_int_equal(cu_mkdir_p(sub, 0755), 0);
    put_file(f->in, "input.txt", "input\n");
    put_file(f->out, "pre.txt", "pre\n");
    run_here(f, use);
    if (f->r.status != CU_SB_OK) {
        out = slurp(f->se);
        fail_msg("task failed: %s: %s", f->r.reason, out ? out : "");
    }
    out = NULL;
    assert_int_equal(cu_path_join(in_left, sizeof(in_left), f->out, "copy.txt"), 0);
    out = slurp(in_left);
    assert_non_null(out);
    assert_string_equal(out, "input\n");
    free(out);
    assert_int_equal(cu_path_join(in_left, sizeof(in_left), f->out, "pre.txt"), 0);
    out = slurp(in_left);
    assert_string_equal(out, "pre\nmore\nnew\n");
    free(out);
    assert_false(exists(f->work, "sub"));
    assert_false(exists(f->in, "input.txt"));
    run(f, look); /* the same sandbox, fresh task directories */
    assert_int_equal(f->r.status, CU_SB_OK);
    out = slurp(f->so);
    assert_non_null(out);
    assert_string_equal(out, "0\n");
    free(out);
}

/* Directories the caller says are empty are not read before the task;
 * the inputs still arrive when /in is not among them, and nothing of one
 * task reaches the next. */
static void test_known_empty_dirs(void **state)
{
    struct fixture *f = *state;
    static const char *const use[] = {
        "sh", "-c", "cat /in/input.txt > /out/copy.txt && echo x > /work/left", NULL};
    static const char *const look[] = {
        "sh", "-c", "n=$(ls -A /work /out /in | grep -v ':$' | grep -c .); echo $n", NULL};
    char path[CU_PATH_MAX];
    char *out;

    f->o.output_limit = 1 << 20;
    f->o.known_empty = CU_SB_EMPTY_WORK | CU_SB_EMPTY_OUT;
    task_dirs(f);
    put_file(f->in, "input.txt", "input\n");
    run_here(f, use);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_false(f->r.out_empty);
    assert_int_equal(cu_path_join(path, sizeof(path), f->out, "copy.txt"), 0);
    out = slurp(path);
    assert_non_null(out);
    assert_string_equal(out, "input\n");
    free(out);
    f->o.known_empty = CU_SB_EMPTY_WORK | CU_SB_EMPTY_OUT | CU_SB_EMPTY_IN;
    run(f, look);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_true(f->r.out_empty);
    out = slurp(f->so);
    assert_non_null(out);
    assert_string_equal(out, "0\n");
    free(out);
}

/* True when the group name exists under f's parent group (memory). */
static bool group_exists(struct fixture *f, const char *name)
{
    char path[CU_PATH_MAX];
    struct stat st;
    assert_int_equal(cu_path_join(path, sizeof(path), f->cg.dir[CU_CG_MEMORY], name), 0);
    return stat(path, &st) == 0;
}

/* A task runs in the sandbox's own group, which keeps its name
 * (cu_warm_cgroup_name) across tasks: no rename per task (each took the
 * kernel's global cgroup mutex), and no group is ever named after a task
 * (cgroup_name names only a sandbox of its own). */
static void test_cgroup_named_per_task(void **state)
{
    struct fixture *f = *state;
    struct cu_cgroup self;
    struct cu_cgroup_limits none = {0};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    char name[64];
    static const char *const ok[] = {"true", NULL};
    static const char *const nap[] = {"sleep", "0.3", NULL};

    if (cu_cgroup_self(&self, &e) != 0) {
        skip();
        return;
    }
    cu_snprintf(name, sizeof(name), "cu-warm-name-%d", (int)getpid());
    if (cu_cgroup_create(&self, name, &none, &f->cg, &e) != 0) {
        skip();
        return;
    }
    f->o.cgroup_parent = &f->cg;
    f->o.cgroup_name = "task-1";
    run(f, ok);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_false(group_exists(f, "task-1"));
    assert_non_null(cu_warm_cgroup_name(f->w));
    cu_snprintf(name, sizeof(name), "%s", cu_warm_cgroup_name(f->w));
    assert_true(group_exists(f, name));
    task_dirs(f);
    f->o.cgroup_name = "task-2";
    f->o.argv = nap;
    assert_int_equal(cu_warm_acquire(&f->w, &f->o, f->warm, "job-a", &e), 0);
    assert_int_equal(cu_warm_run(f->w, &f->o, &s, &e), 0);
    /* While it runs: in the sandbox's group, under the same name. */
    assert_string_equal(cu_warm_cgroup_name(f->w), name);
    assert_true(group_exists(f, name));
    assert_false(group_exists(f, "task-2"));
    assert_int_equal(cu_sandbox_wait(s, -1), 0);
    cu_sandbox_get_result(s, &f->r);
    cu_sandbox_free(s);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_false(group_exists(f, "task-2"));
    assert_true(group_exists(f, name));
    cu_warm_free(f->w);
    f->w = NULL;
}

/* A task of the same job fits the sandbox when only its per-task options
 * differ (command, time limit, group name), not when its shape does. */
static void test_fits_only_same_shape(void **state)
{
    struct fixture *f = *state;
    static const char *const ok[] = {"true", NULL};
    static const char *const other[] = {"sh", "-c", "exit 0", NULL};
    static const char *const ro[] = {"/etc/hostname", NULL};
    struct cu_sandbox_opts o;

    run(f, ok);
    assert_int_equal(f->r.status, CU_SB_OK);
    o = f->o;
    o.argv = other;
    o.time_limit_ms = 5000;
    o.cgroup_name = "task-9";
    assert_true(cu_warm_fits(f->w, &o, "job-a"));
    assert_false(cu_warm_fits(f->w, &o, "job-b"));
    o = f->o;
    o.memory_limit = 64 << 20;
    assert_false(cu_warm_fits(f->w, &o, "job-a"));
    o = f->o;
    o.network = !f->o.network;
    assert_false(cu_warm_fits(f->w, &o, "job-a"));
    o = f->o;
    o.ro_binds = ro;
    assert_false(cu_warm_fits(f->w, &o, "job-a"));
    o = f->o;
    o.in_dir = NULL;
    assert_false(cu_warm_fits(f->w, &o, "job-a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_and_reuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs_per_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_codes_and_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_leaks_to_next_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipc_and_modes_cleaned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_limit_kills, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_accounting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_owner_gets_new_sandbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spare_takes_first_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_files_in_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_empty_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_named_per_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fits_only_same_shape, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
