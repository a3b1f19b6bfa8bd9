/* sandbox_test.c - runs real tasks under bwrap (needs bubblewrap installed
 * and user namespaces; CI runs as root on Debian 12). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <dirent.h>
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "fabric/sandbox.h"
#include "fabric/seccomp.h"

#include "base/banned.h"

struct fixture {
    char base[64];
    char work[CU_PATH_MAX], out[CU_PATH_MAX], in[CU_PATH_MAX];
    char so[CU_PATH_MAX], se[CU_PATH_MAX];
    struct cu_sandbox_opts o;
    struct cu_sandbox_result r;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cu_sandbox_opts init = CU_SANDBOX_OPTS_INIT;

    if (!f)
        return -1;
    cu_snprintf(f->base, sizeof(f->base), "/tmp/cu-sandbox-test-XXXXXX");
    if (!mkdtemp(f->base))
        return -1;
    chmod(f->base, 0755); /* uid 65534 must reach the directories below */
    cu_path_join(f->work, sizeof(f->work), f->base, "work");
    cu_path_join(f->out, sizeof(f->out), f->base, "out");
    cu_path_join(f->in, sizeof(f->in), f->base, "in");
    cu_path_join(f->so, sizeof(f->so), f->base, "stdout");
    cu_path_join(f->se, sizeof(f->se), f->base, "stderr");
    if (mkdir(f->work, 0755) || mkdir(f->out, 0755) || mkdir(f->in, 0755))
        return -1;
    f->o = init;
    f->o.work_dir = f->work;
    f->o.out_dir = f->out;
    f->o.in_dir = f->in;
    f->o.stdout_path = f->so;
    f->o.stderr_path = f->se;
    f->o.time_limit_ms = 60000; /* generous: CI machines can be slow */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cu_rm_rf(f->base);
    free(f);
    return 0;
}

/* Runs argv to completion with f->o; returns the start code. */
static int run(struct fixture *f, const char *const *argv)
{
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    int rc;

    f->o.argv = argv;
    rc = cu_sandbox_start(&f->o, &s, &e);
    if (rc != 0) {
        print_message("start: %s\n", cu_err_msg(&e, rc));
        return rc;
    }
    assert_int_equal(cu_sandbox_wait(s, -1), 0);
    cu_sandbox_get_result(s, &f->r);
    cu_sandbox_free(s);
    return 0;
}

static int run_sh(struct fixture *f, const char *script)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    return run(f, argv);
}

static char *slurp(const char *path)
{
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    if (cu_read_file(path, &b) != 0) {
        cu_buf_release(&b);
        return strdup("");
    }
    return cu_buf_detach(&b);
}

static void assert_file_equal(const char *path, const char *want)
{
    char *got = slurp(path);
    assert_string_equal(got, want);
    free(got);
}

static void test_ok(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"true", NULL};
    assert_int_equal(run(f, argv), 0);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_int_equal(f->r.exit_code, 0);
    assert_string_equal(cu_sandbox_status_name(f->r.status), "ok");
}

static void test_exit_code(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_sh(f, "exit 3"), 0);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_int_equal(f->r.exit_code, 3);
    assert_int_equal(f->r.term_signal, 0);
    assert_string_equal(f->r.reason, "exit code 3");
}

static void test_signal(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_sh(f, "kill -SEGV $$"), 0);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_int_equal(f->r.term_signal, 11);
    assert_non_null(strstr(f->r.reason, "signal 11"));
}

static void test_time_limit(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"sleep", "30", NULL};
    f->o.time_limit_ms = 1000;
    assert_int_equal(run(f, argv), 0);
    assert_int_equal(f->r.status, CU_SB_TIMEOUT);
    assert_string_equal(f->r.reason, "time limit 1s exceeded");
    assert_true(f->r.wall_ms >= 900);
    assert_true(f->r.wall_ms < 20000);
}

static void test_output_limit_one_file(void **state)
{
    struct fixture *f = *state;
    f->o.output_limit = 1 << 20;
    assert_int_equal(run_sh(f, "head -c 10000000 /dev/zero > /out/big; exit 0"), 0);
    assert_int_equal(f->r.status, CU_SB_OUTPUT_LIMIT);
    assert_non_null(strstr(f->r.reason, "output limit"));
    assert_true(cu_dir_size(f->out) <= (1 << 20) + 1);
}

static void test_output_limit_fsize(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"dd", "if=/dev/zero", "of=/out/big", "bs=65536", "count=160", NULL};
    f->o.output_limit = 1 << 20;
    assert_int_equal(run(f, argv), 0);
    assert_int_equal(f->r.status, CU_SB_OUTPUT_LIMIT);
    assert_non_null(strstr(f->r.reason, "output limit"));
}

static void test_tmp_bounded(void **state)
{
    struct fixture *f = *state;
    f->o.output_limit = 1 << 20;
    /* /tmp is a tmpfs sized to the output limit; / is read-only. */
    assert_int_equal(run_sh(f, "head -c 2000000 /dev/zero > /tmp/t 2>/dev/null && exit 10; "
                               "(echo x > /x) 2>/dev/null && exit 11; exit 0"),
                     0);
    assert_int_equal(f->r.status, CU_SB_OK);
}

static void test_output_limit_many_files(void **state)
{
    struct fixture *f = *state;
    f->o.output_limit = 1 << 20;
    /* Each file is under RLIMIT_FSIZE: only the size check can stop it. */
    assert_int_equal(run_sh(f, "i=0; while :; do head -c 100000 /dev/zero > /work/f$i; "
                               "i=$((i+1)); done"),
                     0);
    assert_int_equal(f->r.status, CU_SB_OUTPUT_LIMIT);
    assert_non_null(strstr(f->r.reason, "output limit 1.0 MiB exceeded"));
}

static void test_no_network(void **state)
{
    struct fixture *f = *state;
    char *dev;
    const char *argv[] = {"cat", "/proc/net/dev", NULL};
    assert_int_equal(run(f, argv), 0);
    assert_int_equal(f->r.status, CU_SB_OK);
    dev = slurp(f->so);
    assert_non_null(strstr(dev, "lo:"));
    /* header (2 lines) + lo only */
    int lines = 0;
    for (const char *p = dev; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    free(dev);
}

static void test_filesystem_view(void **state)
{
    struct fixture *f = *state;
    char path[CU_PATH_MAX];
    FILE *fp;

    cu_path_join(path, sizeof(path), f->in, "input.txt");
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("hello input\n", fp);
    fclose(fp);
    assert_int_equal(run_sh(f, "set -u; "
                               "(echo x > /usr/x) 2>/dev/null && exit 10; "
                               "(echo x > /etc/x) 2>/dev/null && exit 11; "
                               "(echo x > /in/x) 2>/dev/null && exit 12; "
                               "(echo x > /x) 2>/dev/null && exit 13; "
                               "(echo x > /in/input.txt) 2>/dev/null && exit 14; "
                               "[ \"$(pwd)\" = /work ] || exit 15; "
                               "echo t > /tmp/t || exit 16; "
                               "cat /in/input.txt > /out/copy && echo w > /work/w"),
                     0);
    assert_int_equal(f->r.status, CU_SB_OK);
    cu_path_join(path, sizeof(path), f->out, "copy");
    assert_file_equal(path, "hello input\n");
    cu_path_join(path, sizeof(path), f->work, "w");
    assert_file_equal(path, "w\n");
    assert_int_equal(access("/usr/x", F_OK), -1);
}

static void test_identity(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_sh(f, "id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status"), 0);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_file_equal(f->so, "65534\n65534\n"
                             "CapPrm:\t0000000000000000\n"
                             "CapEff:\t0000000000000000\n"
                             "CapBnd:\t0000000000000000\n");
}

static void test_stdio_capped(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    f->o.stdio_cap = 1000;
    assert_int_equal(run_sh(f, "echo oops >&2; head -c 5000000 /dev/zero | tr '\\0' a; "
                               "echo done >&2"),
                     0);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_int_equal(stat(f->so, &st), 0);
    assert_int_equal(st.st_size, 1000);
    assert_file_equal(f->se, "oops\ndone\n");
    /* The result says what the files hold. */
    assert_int_equal(f->r.stdout_bytes, 1000);
    assert_int_equal(f->r.stderr_bytes, 10);
    assert_int_equal(run_sh(f, "echo only >&2"), 0);
    assert_int_equal(f->r.stdout_bytes, 0);
    assert_int_equal(f->r.stderr_bytes, 5);
}

static void test_env(void **state)
{
    struct fixture *f = *state;
    const char *env[] = {"FOO=bar baz", "CUMULUS_TASK_INDEX=7", "EMPTY=", NULL};
    setenv("CU_SANDBOX_TEST_LEAK", "1", 1);
    f->o.env = env;
    assert_int_equal(run_sh(f, "printf '%s|%s|%s|%s|%s|%s\\n' \"$FOO\" \"$CUMULUS_TASK_INDEX\" "
                               "\"${EMPTY-unset}\" \"$HOME\" \"$PATH\" "
                               "\"${CU_SANDBOX_TEST_LEAK-none}\""),
                     0);
    unsetenv("CU_SANDBOX_TEST_LEAK");
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_file_equal(f->so, "bar baz|7||/work|/usr/local/bin:/usr/bin:/bin|none\n");
}

static void test_bad_env(void **state)
{
    struct fixture *f = *state;
    const char *env[] = {"NOEQUALS", NULL};
    const char *argv[] = {"true", NULL};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    f->o.env = env;
    f->o.argv = argv;
    assert_int_equal(cu_sandbox_start(&f->o, &s, &e), -CU_EINVAL);
    assert_null(s);
    assert_non_null(strstr(e.msg, "NOEQUALS"));
}

static void test_cpu_accounted(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_sh(f, "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"), 0);
    assert_int_equal(f->r.status, CU_SB_OK);
    /* The loop takes ~0.3 s of CPU here; the task's time must be counted,
     * not just bwrap's own few milliseconds. */
    assert_true(f->r.cpu_ms >= 50);
    assert_true(f->r.max_rss_kb > 0);
}

static void test_kill(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"sleep", "30", NULL};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    f->o.argv = argv;
    assert_int_equal(cu_sandbox_start(&f->o, &s, &e), 0);
    assert_int_equal(cu_sandbox_wait(s, 300), -CU_EAGAIN);
    cu_sandbox_get_result(s, &f->r);
    assert_int_equal(f->r.status, CU_SB_RUNNING);
    cu_sandbox_kill(s, "job cancelled");
    assert_int_equal(cu_sandbox_wait(s, -1), 0);
    cu_sandbox_get_result(s, &f->r);
    cu_sandbox_free(s);
    assert_int_equal(f->r.status, CU_SB_KILLED);
    assert_string_equal(f->r.reason, "job cancelled");
    assert_true(f->r.wall_ms < 20000);
}

static void test_free_running(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"sleep", "30", NULL};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    int64_t t0 = cu_mono_ms();
    f->o.argv = argv;
    assert_int_equal(cu_sandbox_start(&f->o, &s, &e), 0);
    cu_sandbox_free(s); /* kills and reaps */
    assert_true(cu_mono_ms() - t0 < 20000);
}

static void test_missing_command(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"no-such-command-xyz", NULL};
    assert_int_equal(run(f, argv), 0);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_int_equal(f->r.exit_code, 127);
    assert_non_null(strstr(f->r.reason, "no-such-command-xyz"));
}

static void test_bad_bwrap(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"true", NULL};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    f->o.argv = argv;
    f->o.bwrap = "/nonexistent/bwrap";
    assert_int_equal(cu_sandbox_start(&f->o, &s, &e), -CU_ESANDBOX);
    assert_null(s);
    assert_non_null(strstr(e.msg, "/nonexistent/bwrap"));
    f->o.bwrap = "no-such-bwrap-on-path";
    assert_int_equal(cu_sandbox_start(&f->o, &s, &e), -CU_ESANDBOX);
    assert_null(s);
}

static void test_setup_failure(void **state)
{
    struct fixture *f = *state;
    char fake[CU_PATH_MAX];
    FILE *fp;
    /* A stand-in for bwrap that fails before running the task, as bwrap
     * does when a mount fails: no "exit-code" on the status fd. */
    cu_path_join(fake, sizeof(fake), f->base, "fake-bwrap");
    fp = fopen(fake, "w");
    assert_non_null(fp);
    fputs("#!/bin/sh\necho \"bwrap: Can't mount proc on /newroot/proc\" >&2\nexit 1\n", fp);
    fclose(fp);
    chmod(fake, 0755);
    f->o.bwrap = fake;
    assert_int_equal(run_sh(f, "exit 0"), 0);
    assert_int_equal(f->r.status, CU_SB_ERROR);
    assert_string_equal(f->r.reason,
                        "sandbox setup failed: bwrap: Can't mount proc on /newroot/proc");
}

static void test_missing_dir(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"true", NULL};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    f->o.argv = argv;
    f->o.in_dir = "/nonexistent/in";
    assert_int_equal(cu_sandbox_start(&f->o, &s, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "in_dir"));
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_no_fd_leak(void **state)
{
    struct fixture *f = *state;
    const char *argv[] = {"true", NULL};
    const char *bad[] = {"no-such-command-xyz", NULL};
    int before = count_fds();
    for (int i = 0; i < 10; i++) {
        assert_int_equal(run(f, i % 2 ? argv : bad), 0);
        assert_int_equal(f->r.status, i % 2 ? CU_SB_OK : CU_SB_FAILED);
    }
    assert_int_equal(count_fds(), before);
}

static void test_probe(void **state)
{
    struct cu_err e = {0};
    (void)state;
    int rc = cu_sandbox_probe(&e);
    if (rc != 0)
        print_message("probe: %s\n", cu_err_msg(&e, rc));
    assert_int_equal(rc, 0);
}

/* ---- seccomp ---------------------------------------------------------- */

static void test_seccomp_status(void **state)
{
    struct fixture *f = *state;
    /* ls shows the task's descriptors: bwrap consumed the filter's memfd. */
    assert_int_equal(run_sh(f, "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; "
                               "ls /proc/self/fd | wc -l"),
                     0);
    assert_int_equal(f->r.status, CU_SB_OK);
    /* 0, 1, 2 and the directory ls reads */
    assert_file_equal(f->so, "NoNewPrivs:\t1\nSeccomp:\t2\n4\n");
}

static const char userns_script[] =
    "unshare -r true 2>/dev/null && echo 'unshare -r ok'; "
    "unshare -U true 2>/dev/null && echo 'unshare -U ok'; "
    "unshare -rm sh -c 'mount -t tmpfs none /tmp' 2>/dev/null && echo 'mount ok'; "
    "mount -t tmpfs none /tmp 2>/dev/null && echo 'plain mount ok'; "
    "exit 0";

static void test_seccomp_userns_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_sh(f, userns_script), 0);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_file_equal(f->so, "");
    assert_int_equal(run_sh(f, "unshare -U true"), 0);
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_file_equal(f->se, "unshare: unshare failed: Operation not permitted\n");
}

/* The control: without the filter a task can make a user namespace and
 * mount in it, so test_seccomp_userns_refused tests the filter. Skipped
 * where the kernel refuses nested user namespaces anyway. */
static void test_seccomp_off_allows_userns(void **state)
{
    struct fixture *f = *state;
    char *got;
    f->o.no_seccomp = true;
    assert_int_equal(run_sh(f, "grep '^Seccomp:' /proc/self/status"), 0);
    assert_file_equal(f->so, "Seccomp:\t0\n");
    assert_int_equal(run_sh(f, userns_script), 0);
    assert_int_equal(f->r.status, CU_SB_OK);
    got = slurp(f->so);
    if (!strstr(got, "unshare -U ok")) {
        free(got);
        skip();
    }
    assert_non_null(strstr(got, "mount ok"));
    assert_null(strstr(got, "plain mount ok")); /* no capability without a new userns */
    free(got);
}

static void test_seccomp_ordinary_programs(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(run_sh(f, "set -e; printf 'b\\na\\nc\\n' | sort > /out/sorted; "
                               "cat /out/sorted | tr -d '\\n'; echo; ls -d /usr /work; "
                               "echo $((6 * 7)); awk 'BEGIN { s = 0; for (i = 1; i <= 100; i++) "
                               "s += i * i; print s }'; "
                               "sleep 0.1 & wait; (echo sub) | cat; "
                               "seq 1 200000 | sort -n --parallel=4 -S 1M | tail -1; "
                               "date +%Y > /dev/null; id -u"),
                     0);
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_file_equal(f->so, "abc\n/usr\n/work\n42\n338350\nsub\n200000\n65534\n");
}

/* Every name the filter refuses is known to libseccomp (an unknown one
 * would be skipped silently), and the filter compiles. */
static void test_seccomp_table(void **state)
{
    struct cu_err e = {0};
    size_t n = 0;
    int fd;
    (void)state;
    for (const char *name; (name = cu_seccomp_denied_name(n)) != NULL; n++) {
        if (seccomp_syscall_resolve_name(name) == __NR_SCMP_ERROR)
            fail_msg("libseccomp does not know '%s'", name);
    }
    assert_true(n > 40);
    fd = cu_seccomp_task_fd(&e);
    assert_true(fd >= 0);
    /* a whole number of 8-byte BPF instructions, sealed against writes */
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len > 0 && len % 8 == 0);
    assert_int_equal(write(fd, "x", 1), -1);
    close(fd);
}

/* ---- the syscall probe: this binary, copied into /in, run in the sandbox */

static void *probe_thread(void *arg)
{
    return arg;
}

#define PROBE(name, call)                                                                          \
    do {                                                                                           \
        long r_ = (call);                                                                          \
        printf("%s %d\n", name, r_ < 0 ? errno : 0);                                               \
    } while (0)

/* Makes each refused call once and prints "name errno" (0: it worked);
 * then checks that threads and fork still work. Exits with _exit: the leak
 * checker would need ptrace. */
_Noreturn static void syscall_probe(void)
{
    pthread_t t;
    void *ret = NULL;
    pid_t pid;
    int st = 0;
    struct clone_args ca = {.flags = 0, .exit_signal = SIGCHLD};

    setvbuf(stdout, NULL, _IONBF, 0);
    /* The calls that make a child or a namespace come first, each in a
     * child where it could succeed, so that without the filter (the
     * control) one success cannot change what the next sees. */
    pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    printf("clone-newuser %d\n", pid < 0 ? errno : 0);
    if (pid > 0)
        waitpid(pid, &st, 0);
    pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
    if (pid == 0)
        _exit(0);
    printf("clone3 %d\n", pid < 0 ? errno : 0);
    if (pid > 0)
        waitpid(pid, &st, 0);
#if defined(__x86_64__)
    /* The i386 unshare (310) through int 0x80. Without IA32 emulation
     * int 0x80 is a fault, not a system call: nothing to bypass. */
    pid = fork();
    if (pid == 0) {
        long r;
        __asm__ volatile("int $0x80"
                         : "=a"(r)
                         : "a"(310L), "b"((long)CLONE_NEWUSER)
                         : "memory", "r8", "r9", "r10", "r11");
        printf("i386-unshare %ld\n", -r);
        _exit(0);
    }
    if (pid > 0 && (waitpid(pid, &st, 0) != pid || !WIFEXITED(st)))
        printf("i386-unshare %d\n", EPERM);
#else
    printf("i386-unshare %d\n", EPERM);
#endif
    pid = fork();
    if (pid == 0) {
        PROBE("unshare", unshare(CLONE_NEWUSER));
        _exit(0);
    }
    if (pid > 0)
        waitpid(pid, &st, 0);
    PROBE("ptrace", syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0));
    PROBE("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    PROBE("setns", syscall(SYS_setns, 0, CLONE_NEWUSER));
    PROBE("bpf", syscall(SYS_bpf, 0, NULL, 0));
    PROBE("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    PROBE("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    PROBE("userfaultfd", syscall(SYS_userfaultfd, 0));
    PROBE("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    PROBE("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    printf("thread %d\n", pthread_create(&t, NULL, probe_thread, &st) == 0 &&
                                  pthread_join(t, &ret) == 0 && ret == &st
                              ? 0
                              : 1);
    pid = fork();
    if (pid == 0)
        _exit(7);
    printf("fork %d\n",
           pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : 1);
    _exit(0);
}

static void test_seccomp_syscalls(void **state)
{
    struct fixture *f = *state;
    struct cu_buf exe = CU_BUF_INIT(256u << 20);
    char path[CU_PATH_MAX], want[512];
    const char *argv[] = {"/in/probe", "--syscall-probe", NULL};

    assert_int_equal(cu_read_file("/proc/self/exe", &exe), 0);
    cu_path_join(path, sizeof(path), f->in, "probe");
    assert_int_equal(cu_write_file_atomic(path, exe.data, exe.len, 0755), 0);
    cu_buf_release(&exe);
    assert_int_equal(run(f, argv), 0);
    assert_int_equal(f->r.status, CU_SB_OK);
    cu_snprintf(want, sizeof(want),
                "clone-newuser %d\nclone3 %d\ni386-unshare %d\nunshare %d\nptrace %d\n"
                "mount %d\nsetns %d\nbpf %d\nperf_event_open %d\nkeyctl %d\nuserfaultfd %d\n"
                "kexec_load %d\nio_uring_setup %d\nthread 0\nfork 0\n",
                EPERM, ENOSYS, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM, EPERM,
                EPERM);
    assert_file_equal(f->so, want);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--syscall-probe") == 0)
        syscall_probe();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit_one_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit_many_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit_fsize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tmp_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_network, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filesystem_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_accounted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bwrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setup_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_fd_leak, setup, teardown),
        cmocka_unit_test(test_probe),
        cmocka_unit_test_setup_teardown(test_seccomp_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seccomp_userns_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seccomp_off_allows_userns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seccomp_ordinary_programs, setup, teardown),
        cmocka_unit_test(test_seccomp_table),
        cmocka_unit_test_setup_teardown(test_seccomp_syscalls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
