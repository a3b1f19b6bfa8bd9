/* cgroup_test.c - locating the caller's group on v1, hybrid and v2 layouts
 * (from text), saving/loading paths, and, where this process may create
 * groups (root with a writable hierarchy), real limits: an OOM kill seen
 * and counted, forks refused by pids.max, a CPU quota written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "fabric/cgroup.h"

#include "base/banned.h"

/* This machine's layout: v1 controllers, an almost empty v2 tree. */
static const char hybrid_mountinfo[] =
    "25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"
    "31 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
    "33 31 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "35 31 0:30 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "36 31 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char hybrid_cgroup[] = "9:name=systemd:/\n"
                                    "8:pids:/\n"
                                    "4:memory:/process_api/abc\n"
                                    "2:cpuacct:/\n"
                                    "1:cpu:/\n"
                                    "0::/\n";

static void test_locate_hybrid(void **state)
{
    struct cu_cgroup cg;

    (void)state;
    assert_int_equal(cu_cgroup_locate(hybrid_mountinfo, hybrid_cgroup, &cg), 0);
    assert_int_equal(cg.version, CU_CG_V1);
    assert_string_equal(cg.dir[CU_CG_MEMORY], "/sys/fs/cgroup/memory/process_api/abc");
    assert_string_equal(cg.dir[CU_CG_CPU], "/sys/fs/cgroup/cpu");
    assert_string_equal(cg.dir[CU_CG_PIDS], "/sys/fs/cgroup/pids");
    assert_string_equal(cg.dir[CU_CG_CPUACCT], "/sys/fs/cgroup/cpuacct");
}

/* cpu and cpuacct mounted together ("cpu,cpuacct"), as Debian does. */
static void test_locate_v1_comounted(void **state)
{
    static const char mi[] =
        "40 31 0:40 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "41 31 0:41 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    static const char pc[] = "5:cpu,cpuacct:/user.slice\n3:memory:/user.slice\n";
    struct cu_cgroup cg;

    (void)state;
    assert_int_equal(cu_cgroup_locate(mi, pc, &cg), 0);
    assert_int_equal(cg.version, CU_CG_V1);
    assert_string_equal(cg.dir[CU_CG_CPU], "/sys/fs/cgroup/cpu,cpuacct/user.slice");
    assert_string_equal(cg.dir[CU_CG_CPUACCT], "/sys/fs/cgroup/cpu,cpuacct/user.slice");
    assert_string_equal(cg.dir[CU_CG_MEMORY], "/sys/fs/cgroup/memory/user.slice");
    assert_string_equal(cg.dir[CU_CG_PIDS], ""); /* not mounted: not limited */
}

static void test_locate_v2(void **state)
{
    static const char mi[] = "22 1 0:21 / / rw - ext4 /dev/vda1 rw\n"
                             "30 22 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 "
                             "cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    static const char pc[] = "0::/system.slice/cumulus.service\n";
    struct cu_cgroup cg;

    (void)state;
    assert_int_equal(cu_cgroup_locate(mi, pc, &cg), 0);
    assert_int_equal(cg.version, CU_CG_V2);
    for (int c = 0; c < CU_CG_NCTRL; c++)
        assert_string_equal(cg.dir[c], "/sys/fs/cgroup/system.slice/cumulus.service");
}

/* In a container the mount's root is the container's group: it is not
 * repeated in the path. */
static void test_locate_v2_container_root(void **state)
{
    static const char mi[] =
        "30 22 0:26 /docker/ff /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
    static const char pc[] = "0::/docker/ff/sub\n";
    static const char other[] = "0::/elsewhere\n";
    struct cu_cgroup cg;

    (void)state;
    assert_int_equal(cu_cgroup_locate(mi, pc, &cg), 0);
    assert_string_equal(cg.dir[CU_CG_MEMORY], "/sys/fs/cgroup/sub");
    /* A group outside the mount's root is not visible: no cgroup. */
    assert_int_equal(cu_cgroup_locate(mi, other, &cg), -CU_ENOTFOUND);
    assert_int_equal(cg.version, CU_CG_NONE);
}

static void test_locate_none(void **state)
{
    struct cu_cgroup cg;

    (void)state;
    assert_int_equal(cu_cgroup_locate("22 1 0:21 / / rw - ext4 /dev/vda1 rw\n", "0::/\n", &cg),
                     -CU_ENOTFOUND);
    assert_int_equal(cg.version, CU_CG_NONE);
    assert_int_equal(cu_cgroup_locate("", "", &cg), -CU_ENOTFOUND);
    /* Truncated or odd lines are skipped, not misread. */
    assert_int_equal(cu_cgroup_locate("1 2 3\n - cgroup\n", "4:memory\n", &cg), -CU_ENOTFOUND);
}

static void test_child_and_save_load(void **state)
{
    struct cu_cgroup cg, child, back;
    char dir[] = "/tmp/cu-cgtest-XXXXXX", path[CU_PATH_MAX];

    (void)state;
    assert_int_equal(cu_cgroup_locate(hybrid_mountinfo, hybrid_cgroup, &cg), 0);
    assert_int_equal(cu_cgroup_child(&cg, "task-7", &child), 0);
    assert_string_equal(child.dir[CU_CG_MEMORY], "/sys/fs/cgroup/memory/process_api/abc/task-7");
    assert_string_equal(child.dir[CU_CG_PIDS], "/sys/fs/cgroup/pids/task-7");
    assert_int_equal(cu_cgroup_child(&cg, "../x", &child), -CU_EINVAL);

    assert_non_null(mkdtemp(dir));
    assert_int_equal(cu_path_join(path, sizeof path, dir, "cgroup"), 0);
    assert_int_equal(cu_cgroup_save(&cg, path), 0);
    assert_int_equal(cu_cgroup_load(&back, path), 0);
    assert_int_equal(back.version, CU_CG_V1);
    for (int c = 0; c < CU_CG_NCTRL; c++)
        assert_string_equal(back.dir[c], cg.dir[c]);
    assert_int_equal(cu_write_file_atomic(path, "nonsense\n", 9, 0644), 0);
    assert_int_equal(cu_cgroup_load(&back, path), -CU_ECORRUPT);
    unlink(path);
    assert_int_equal(cu_cgroup_load(&back, path), -CU_ENOTFOUND);
    rmdir(dir);
}

/* ---- real groups (skipped where this process may not create them) -------- */

/* A fresh group under our own; false (test skipped) when not allowed. */
static bool real_group(const char *name, const struct cu_cgroup_limits *lim,
                       struct cu_cgroup *out)
{
    struct cu_cgroup self;
    struct cu_err e = {0};
    char full[64];

    if (cu_cgroup_self(&self, &e) != 0) {
        print_message("skipped: %s\n", e.msg);
        return false;
    }
    (void)cu_snprintf(full, sizeof full, "cu-test-%d-%s", (int)getpid(), name);
    if (cu_cgroup_create(&self, full, lim, out, &e) != 0) {
        print_message("skipped: %s\n", e.msg);
        return false;
    }
    return true;
}

/* Forks a child that joins cg and runs fn; returns its wait status. */
static int run_in(const struct cu_cgroup *cg, void (*fn)(void))
{
    int fds[CU_CG_NCTRL], st = 0;
    struct cu_err e = {0};
    pid_t pid;

    assert_int_equal(cu_cgroup_open_procs(cg, fds, &e), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (cu_cgroup_join_fds(fds) != 0)
            _exit(99);
        fn();
        _exit(0);
    }
    cu_cgroup_close_fds(fds);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

static void eat_memory(void)
{
    size_t n = 256u << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        _exit(98);
    for (size_t i = 0; i < n; i += 4096)
        p[i] = 1;
    _exit(0);
}

static void test_real_oom(void **state)
{
    struct cu_cgroup_limits lim = {.memory = 32u << 20};
    struct cu_cgroup cg;
    struct cu_cgroup_stats st;
    struct stat sb;
    int ws;

    (void)state;
    if (!real_group("oom", &lim, &cg))
        skip();
    ws = run_in(&cg, eat_memory);
    cu_cgroup_read_stats(&cg, &st);
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGKILL);
    assert_true(st.oom_kills >= 1);
    assert_true(st.memory_peak == 0 || st.memory_peak >= (16u << 20));
    assert_true(st.memory_peak <= (33u << 20));
    assert_int_equal(cu_cgroup_destroy(&cg), 0);
    assert_int_equal(stat(cg.dir[CU_CG_MEMORY], &sb), -1);
}

static void fork_many(void)
{
    int refused = 0;
    pid_t kids[64];
    int n = 0;

    for (int i = 0; i < 64; i++) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0)
            refused++;
        else
            kids[n++] = p;
    }
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    _exit(refused > 0 ? 0 : 1);
}

static void test_real_pids(void **state)
{
    struct cu_cgroup_limits lim = {.pids = 8};
    struct cu_cgroup cg;
    struct cu_cgroup_stats st;
    int ws;

    (void)state;
    if (!real_group("pids", &lim, &cg))
        skip();
    if (!cg.dir[CU_CG_PIDS][0]) {
        cu_cgroup_destroy(&cg);
        skip();
    }
    ws = run_in(&cg, fork_many);
    cu_cgroup_read_stats(&cg, &st);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0); /* some forks were refused */
    assert_true(st.pids_refused >= 1);
    assert_int_equal(cu_cgroup_destroy(&cg), 0);
}

/* True when file dir/name lists the number n on a line of its own. */
static bool lists(const char *dir, const char *name, long n)
{
    char path[CU_PATH_MAX], line[64];
    bool found = false;
    FILE *f;

    assert_int_equal(cu_path_join(path, sizeof path, dir, name), 0);
    f = fopen(path, "re");
    assert_non_null(f);
    while (!found && fgets(line, sizeof line, f))
        found = strtol(line, NULL, 10) == n;
    fclose(f);
    return found;
}

static void *report_tid(void *arg)
{
    long m[2] = {0, (long)gettid()}; /* 0: a thread */
    if (write(*(int *)arg, m, sizeof m) != (ssize_t)sizeof m)
        _exit(97);
    for (;;) /* alive while the test looks */
        pause();
    return NULL;
}

/* A child that joins through cu_cgroup_open_procs's files (v1: "tasks",
 * one thread) is wholly in the group in every hierarchy: its process, a
 * thread it starts after the join and a process it forks. */
static void test_real_join_whole_process(void **state)
{
    struct cu_cgroup cg;
    struct cu_cgroup_limits lim = {.pids = 16};
    const char *dirs[CU_CG_NCTRL];
    int fds[CU_CG_NCTRL], p[2], n = 0;
    long got[2];
    struct cu_err e = {0};
    bool all_in = true;
    pid_t pid;

    (void)state;
    if (!real_group("join", &lim, &cg))
        skip();
    assert_string_equal(cu_cgroup_join_file(&cg), cg.version == CU_CG_V1 ? "tasks"
                                                                           : "cgroup.procs");
    assert_int_equal(cu_cgroup_open_procs(&cg, fds, &e), 0);
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pthread_t th;
        pid_t g;
        close(p[0]);
        if (cu_cgroup_join_fds(fds) != 0)
            _exit(99);
        if (pthread_create(&th, NULL, report_tid, &p[1]) != 0)
            _exit(98);
        if ((g = fork()) == 0) {
            for (;;)
                pause();
        }
        got[0] = 1; /* 1: a process */
        got[1] = (long)g;
        if (g < 0 || write(p[1], got, sizeof got) != (ssize_t)sizeof got)
            _exit(96);
        for (;;)
            pause();
    }
    close(p[1]);
    cu_cgroup_close_fds(fds);
    /* The thread's id and the grandchild's pid, in either order. */
    got[0] = got[1] = -1;
    for (int i = 0; i < 2; i++) {
        long m[2];
        if (read(p[0], m, sizeof m) != (ssize_t)sizeof m || (m[0] != 0 && m[0] != 1))
            all_in = false;
        else
            got[m[0]] = m[1];
    }
    close(p[0]);
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        bool seen = false;
        if (!cg.dir[c][0])
            continue;
        for (int k = 0; k < n; k++)
            seen |= strcmp(dirs[k], cg.dir[c]) == 0;
        if (seen)
            continue;
        dirs[n++] = cg.dir[c];
        all_in = all_in && lists(cg.dir[c], "cgroup.procs", (long)pid) &&
                 lists(cg.dir[c], "cgroup.procs", got[1]) &&
                 /* the thread, started after the join, too */
                 (cg.version != CU_CG_V1 || lists(cg.dir[c], "tasks", got[0]));
    }
    assert_int_equal(cu_cgroup_destroy(&cg), 0); /* kills both */
    waitpid(pid, NULL, 0);
    assert_true(n > 0);
    assert_true(all_in);
}

/* The kept-open files read what cu_cgroup_read_stats reads, before and
 * after renames (the files follow the group), and a rename onto a taken
 * name changes nothing. */
static void test_real_live(void **state)
{
    struct cu_cgroup_limits lim = {.memory = 32u << 20, .pids = 8};
    struct cu_cgroup cg, orig, blocker;
    struct cu_cgroup_live l;
    struct cu_cgroup_stats a, b;
    struct cu_err e = {0};
    struct stat sb;
    char name[64], taken[64];

    (void)state;
    if (!real_group("live", &lim, &cg))
        skip();
    orig = cg;
    assert_int_equal(cu_cgroup_live_open(&cg, &l, &e), 0);
    cu_cgroup_live_stats(&l, &a);
    assert_int_equal(a.oom_kills, 0);
    assert_int_equal(a.pids_refused, 0);

    (void)cu_snprintf(name, sizeof name, "cu-test-%d-task-7", (int)getpid());
    assert_int_equal(cu_cgroup_live_rename(&cg, &l, name), 0);
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        if (!orig.dir[c][0])
            continue;
        assert_int_equal(stat(orig.dir[c], &sb), -1);
        assert_int_equal(stat(cg.dir[c], &sb), 0);
        assert_non_null(strstr(cg.dir[c], name));
    }
    /* Unsafe names are refused. */
    assert_int_equal(cu_cgroup_live_rename(&cg, &l, "../x"), -CU_EINVAL);

    (void)run_in(&cg, eat_memory);
    if (cg.dir[CU_CG_PIDS][0])
        (void)run_in(&cg, fork_many);
    cu_cgroup_read_stats(&cg, &a);
    cu_cgroup_live_stats(&l, &b);
    assert_true(a.oom_kills >= 1);
    assert_int_equal(b.oom_kills, a.oom_kills);
    assert_int_equal(b.pids_refused, a.pids_refused);
    assert_true(b.memory_peak == a.memory_peak);
    if (cg.version == CU_CG_V1 && b.memory_peak > 0) {
        /* The group is empty now, but the kernel may still be giving back
         * what the dead processes held (seen once under make check's
         * load): reset again until the peak is small, for up to 2 s. */
        for (int i = 0; i < 100; i++) {
            cu_cgroup_live_reset_peak(&cg, &l);
            cu_cgroup_live_stats(&l, &b);
            if (b.memory_peak < (16u << 20))
                break;
            cu_sleep_ms(20);
        }
        assert_true(b.memory_peak < (16u << 20));
    }

    /* A taken name: the rename fails and nothing moves. */
    (void)cu_snprintf(taken, sizeof taken, "cu-test-%d-taken", (int)getpid());
    if (real_group("taken", &lim, &blocker)) {
        struct cu_cgroup before = cg;
        (void)cu_snprintf(taken, sizeof taken, "%s", strrchr(blocker.dir[CU_CG_MEMORY], '/') + 1);
        /* v1: only the memory hierarchy's name is taken, so the rename
         * moves other controllers first and must put them back. */
        for (int c = 0; c < CU_CG_NCTRL; c++) {
            if (c != CU_CG_MEMORY && blocker.dir[c][0] &&
                strcmp(blocker.dir[c], blocker.dir[CU_CG_MEMORY]) != 0)
                assert_int_equal(rmdir(blocker.dir[c]), 0);
        }
        assert_int_equal(cu_cgroup_live_rename(&cg, &l, taken), -CU_EIO);
        for (int c = 0; c < CU_CG_NCTRL; c++) {
            assert_string_equal(cg.dir[c], before.dir[c]);
            if (cg.dir[c][0])
                assert_int_equal(stat(cg.dir[c], &sb), 0);
        }
        assert_int_equal(cu_cgroup_destroy(&blocker), 0);
    }

    assert_int_equal(cu_cgroup_live_rename(&cg, &l, strrchr(orig.dir[CU_CG_MEMORY], '/') + 1), 0);
    for (int c = 0; c < CU_CG_NCTRL; c++)
        assert_string_equal(cg.dir[c], orig.dir[c]);
    cu_cgroup_live_close(&l);
    cu_cgroup_live_close(&l); /* twice is fine */
    assert_int_equal(cu_cgroup_destroy(&cg), 0);
    assert_int_equal(stat(cg.dir[CU_CG_MEMORY], &sb), -1);
}

/* cu_cgroup_live_rename_shown names only the groups a task's usage is read
 * from (memory, CPU accounting) and those sharing their directory; the
 * others keep their name, and renaming back restores every directory. */
static void test_real_live_rename_shown(void **state)
{
    struct cu_cgroup_limits lim = {.memory = 32u << 20, .pids = 8};
    struct cu_cgroup cg, orig;
    struct cu_cgroup_live l;
    struct cu_err e = {0};
    struct stat sb;
    char name[64];

    (void)state;
    if (!real_group("shown", &lim, &cg))
        skip();
    orig = cg;
    assert_int_equal(cu_cgroup_live_open(&cg, &l, &e), 0);
    (void)cu_snprintf(name, sizeof name, "cu-test-%d-task-8", (int)getpid());
    assert_int_equal(cu_cgroup_live_rename_shown(&cg, &l, name), 0);
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        bool shown = strcmp(orig.dir[c], orig.dir[CU_CG_MEMORY]) == 0 ||
                     strcmp(orig.dir[c], orig.dir[CU_CG_CPUACCT]) == 0;
        if (!orig.dir[c][0])
            continue;
        assert_int_equal(stat(cg.dir[c], &sb), 0);
        if (shown)
            assert_non_null(strstr(cg.dir[c], name));
        else
            assert_string_equal(cg.dir[c], orig.dir[c]);
    }
    assert_int_equal(
        cu_cgroup_live_rename_shown(&cg, &l, strrchr(orig.dir[CU_CG_MEMORY], '/') + 1), 0);
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        assert_string_equal(cg.dir[c], orig.dir[c]);
        if (cg.dir[c][0])
            assert_int_equal(stat(cg.dir[c], &sb), 0);
    }
    cu_cgroup_live_close(&l);
    assert_int_equal(cu_cgroup_destroy(&cg), 0);
}

/* Reads the first line of dir/name into text. */
static void read_first_line(const char *dir, const char *name, char *text, size_t n)
{
    char path[CU_PATH_MAX];
    FILE *f;

    assert_int_equal(cu_path_join(path, sizeof path, dir, name), 0);
    f = fopen(path, "re");
    assert_non_null(f);
    assert_non_null(fgets(text, (int)n, f));
    fclose(f);
}

static void test_real_cpu_weight(void **state)
{
    struct cu_cgroup_limits lim = {.cpu_weight = 3}, huge = {.cpu_weight = 1000};
    struct cu_cgroup cg;
    char text[64] = "";

    (void)state;
    if (!real_group("cpuw", &lim, &cg))
        skip();
    if (!cg.dir[CU_CG_CPU][0]) {
        cu_cgroup_destroy(&cg);
        skip();
    }
    read_first_line(cg.dir[CU_CG_CPU], cg.version == CU_CG_V2 ? "cpu.weight" : "cpu.shares",
                    text, sizeof text);
    assert_int_equal(strtol(text, NULL, 10), cg.version == CU_CG_V2 ? 300 : 3072);
    assert_int_equal(cu_cgroup_destroy(&cg), 0);
    /* Capped at the kernel's maximum rather than refused. */
    assert_true(real_group("cpuw2", &huge, &cg));
    read_first_line(cg.dir[CU_CG_CPU], cg.version == CU_CG_V2 ? "cpu.weight" : "cpu.shares",
                    text, sizeof text);
    assert_int_equal(strtol(text, NULL, 10), cg.version == CU_CG_V2 ? 10000 : 262144);
    assert_int_equal(cu_cgroup_destroy(&cg), 0);
}

static void test_real_cpu_quota(void **state)
{
    struct cu_cgroup_limits lim = {.cpu_milli = 1500};
    struct cu_cgroup cg;
    char path[CU_PATH_MAX], text[64] = "";
    FILE *f;

    (void)state;
    if (!real_group("cpu", &lim, &cg))
        skip();
    if (!cg.dir[CU_CG_CPU][0]) {
        cu_cgroup_destroy(&cg);
        skip();
    }
    assert_int_equal(cu_path_join(path, sizeof path, cg.dir[CU_CG_CPU],
                                  cg.version == CU_CG_V2 ? "cpu.max" : "cpu.cfs_quota_us"),
                     0);
    f = fopen(path, "re");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    assert_true(strncmp(text, "150000", 6) == 0);
    /* A group with a process still inside is emptied and removed. */
    {
        int fds[CU_CG_NCTRL];
        struct cu_err e = {0};
        pid_t pid;
        assert_int_equal(cu_cgroup_open_procs(&cg, fds, &e), 0);
        pid = fork();
        if (pid == 0) {
            if (cu_cgroup_join_fds(fds) != 0)
                _exit(99);
            for (;;)
                pause();
        }
        cu_cgroup_close_fds(fds);
        usleep(50000);
        assert_int_equal(cu_cgroup_destroy(&cg), 0);
        waitpid(pid, NULL, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locate_hybrid),
        cmocka_unit_test(test_locate_v1_comounted),
        cmocka_unit_test(test_locate_v2),
        cmocka_unit_test(test_locate_v2_container_root),
        cmocka_unit_test(test_locate_none),
        cmocka_unit_test(test_child_and_save_load),
        cmocka_unit_test(test_real_oom),
        cmocka_unit_test(test_real_pids),
        cmocka_unit_test(test_real_join_whole_process),
        cmocka_unit_test(test_real_live),
        cmocka_unit_test(test_real_live_rename_shown),
        cmocka_unit_test(test_real_cpu_quota),
        cmocka_unit_test(test_real_cpu_weight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
