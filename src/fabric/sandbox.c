/* sandbox.c - run one untrusted task under bubblewrap (see sandbox.h).
 *
 * Process layout:  provider -> bwrap (monitor, own process group, uid 65534
 * when the provider is root) -> bwrap pid 1 of the new pid namespace -> task.
 * Killing the process group kills the monitor and pid 1; when pid 1 dies
 * the kernel kills everything else in the namespace, so no task process can
 * outlive a kill. The task's stdout/stderr are pipes that cu_sandbox_wait
 * drains into the capture files, keeping at most stdio_cap bytes of each.
 *
 * CPU accounting: bwrap's monitor exits as soon as the task has exited, without
 * reaping its pid 1, so wait4 on the monitor does not see the task's CPU time.
 * The provider therefore makes itself a child subreaper
 * (PR_SET_CHILD_SUBREAPER): the orphaned pid 1 becomes our child, and wait4
 * on it yields the task tree's rusage. */
#include "fabric/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "fabric/proctree.h"
#include "fabric/sandbox_int.h"
#include "fabric/seccomp.h"

#include "base/banned.h"

/* Descriptor numbers bwrap sees; FD_SECCOMP only with the filter on. */

#define TMP_DEFAULT_SIZE (512ULL << 20) /* /tmp tmpfs when no output limit */


/* What the child reports over the close-on-exec pipe when it cannot exec. */
struct exec_failure {
    int stage;
    int err;
};

enum {
    STAGE_FDS = 1,
    STAGE_CGROUP,
    STAGE_RLIMIT,
    STAGE_CREDS,
    STAGE_ACCESS,
    STAGE_EXEC,
};

static const char *const stage_names[] = {
    [STAGE_FDS] = "set up descriptors",
    [STAGE_CGROUP] = "join the task's cgroup",
    [STAGE_RLIMIT] = "set resource limits",
    [STAGE_CREDS] = "drop privileges to the task uid",
    [STAGE_ACCESS] = "reach work_dir/out_dir/in_dir as the task uid",
    [STAGE_EXEC] = "execute bwrap",
};

const char *cu_sandbox_status_name(enum cu_sandbox_status s)
{
    switch (s) {
    case CU_SB_RUNNING:
        return "running";
    case CU_SB_OK:
        return "ok";
    case CU_SB_FAILED:
        return "failed";
    case CU_SB_TIMEOUT:
        return "timeout";
    case CU_SB_OUTPUT_LIMIT:
        return "output_limit";
    case CU_SB_KILLED:
        return "killed";
    case CU_SB_ERROR:
        return "error";
    }
    return "unknown";
}

/* ---- argument vector -------------------------------------------------- */


void cu_sb_av_add(struct argv_builder *a, const char *s)
{
    char *copy;
    if (a->failed)
        return;
    if (a->n + 2 > a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        char **nv = realloc(a->v, ncap * sizeof(*nv));
        if (!nv) {
            a->failed = true;
            return;
        }
        a->v = nv;
        a->cap = ncap;
    }
    copy = strdup(s);
    if (!copy) {
        a->failed = true;
        return;
    }
    a->v[a->n++] = copy;
    a->v[a->n] = NULL;
}

static void av_add3(struct argv_builder *a, const char *x, const char *y, const char *z)
{
    cu_sb_av_add(a, x);
    cu_sb_av_add(a, y);
    if (z)
        cu_sb_av_add(a, z);
}

void cu_sb_av_release(struct argv_builder *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* Top-level directories that hold programs and libraries: mirrored from the
 * host as a symlink when the host has a symlink (merged /usr), else bound. */
static const char *const host_dirs[] = {"/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"};

static void av_add_host_dir(struct argv_builder *a, const char *path)
{
    struct stat st;
    char target[CU_PATH_MAX];
    ssize_t n;

    if (lstat(path, &st) != 0)
        return;
    if (S_ISLNK(st.st_mode)) {
        n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
            return;
        target[n] = '\0';
        av_add3(a, "--symlink", target, path);
    } else if (S_ISDIR(st.st_mode)) {
        av_add3(a, "--ro-bind", path, path);
    }
}

int cu_sb_build_argv(const struct cu_sandbox_opts *o, const char *bwrap_path,
                     enum cu_sb_argv_mode mode, struct argv_builder *a, struct cu_err *e)
{
    char num[32];

    cu_sb_av_add(a, bwrap_path);
    cu_sb_av_add(a, "--unshare-all");
    if (o->network)
        cu_sb_av_add(a, "--share-net");
    cu_sb_av_add(a, "--die-with-parent");
    cu_sb_av_add(a, "--new-session");
    cu_sb_av_add(a, "--unshare-user");
    snprintf(num, sizeof(num), "%d", o->uid);
    av_add3(a, "--uid", num, NULL);
    snprintf(num, sizeof(num), "%d", o->gid);
    av_add3(a, "--gid", num, NULL);
    av_add3(a, "--cap-drop", "ALL", NULL);
    if (o->rootfs) {
        /* An OCI image: its root replaces the host view; the mounts below
         * land on mount points the unpacker made (the root is read-only). */
        av_add3(a, "--ro-bind", o->rootfs, "/");
    } else {
        av_add3(a, "--ro-bind", "/usr", "/usr");
        for (size_t i = 0; i < sizeof(host_dirs) / sizeof(host_dirs[0]); i++)
            av_add_host_dir(a, host_dirs[i]);
        av_add3(a, "--ro-bind", "/etc", "/etc");
    }
    av_add3(a, "--proc", "/proc", NULL);
    av_add3(a, "--dev", "/dev", NULL);
    /* The IPC namespace's own POSIX message queues, mounted so that the
     * warm supervisor can list and remove what a task left (mq_open works
     * without the mount; only listing needs it). */
    av_add3(a, "--mqueue", "/dev/mqueue", NULL);
    /* /tmp is memory: bound it (bwrap >= 0.7 for --size). */
    snprintf(num, sizeof(num), "%llu",
             (unsigned long long)(o->output_limit ? o->output_limit : TMP_DEFAULT_SIZE));
    av_add3(a, "--size", num, NULL);
    av_add3(a, "--tmpfs", "/tmp", NULL);
    av_add3(a, "--bind", o->work_dir, "/work");
    av_add3(a, "--bind", o->out_dir, "/out");
    if (o->in_dir)
        av_add3(a, "--ro-bind", o->in_dir, "/in");
    /* GPUs: only the device nodes and driver files the provider chose. */
    for (size_t i = 0; o->dev_binds && o->dev_binds[i]; i++)
        av_add3(a, "--dev-bind", o->dev_binds[i], o->dev_binds[i]);
    for (size_t i = 0; o->ro_binds && o->ro_binds[i]; i++)
        av_add3(a, "--ro-bind", o->ro_binds[i], o->ro_binds[i]);
    /* The root itself is a tmpfs bwrap made; without this a task could
     * fill memory by writing to /. */
    av_add3(a, "--remount-ro", "/", NULL);
    if (mode == CU_SB_ARGV_WARM) {
        /* The supervisor (fabric/init/warm_init.c) is pid 1 itself, so no
         * task can signal it, and it reaps every orphan of a task; it sets
         * each task's directory and environment. */
        cu_sb_av_add(a, "--as-pid-1");
        cu_sb_av_add(a, "--clearenv");
        av_add3(a, "--chdir", "/", NULL);
        snprintf(num, sizeof(num), "%d", FD_STATUS);
        av_add3(a, "--json-status-fd", num, NULL);
        if (!o->no_seccomp) {
            snprintf(num, sizeof(num), "%d", FD_SECCOMP);
            av_add3(a, "--seccomp", num, NULL);
        }
        snprintf(num, sizeof(num), "/proc/self/fd/%d", FD_INIT);
        av_add3(a, "--", num, NULL);
        if (a->failed)
            return cu_err_set(e, -CU_ENOMEM, "out of memory building sandbox arguments");
        return 0;
    }
    av_add3(a, "--chdir", o->cwd ? o->cwd : "/work", NULL);
    cu_sb_av_add(a, "--clearenv");
    av_add3(a, "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin");
    av_add3(a, "--setenv", "HOME", "/work");
    for (size_t i = 0; o->env && o->env[i]; i++) {
        const char *eq = strchr(o->env[i], '=');
        char *key;
        if (!eq || eq == o->env[i])
            return cu_err_set(e, -CU_EINVAL, "env entry '%s': must be KEY=VALUE", o->env[i]);
        key = strndup(o->env[i], (size_t)(eq - o->env[i]));
        if (!key)
            return cu_err_set(e, -CU_ENOMEM, "out of memory building sandbox arguments");
        av_add3(a, "--setenv", key, eq + 1);
        free(key);
    }
    snprintf(num, sizeof(num), "%d", FD_STATUS);
    av_add3(a, "--json-status-fd", num, NULL);
    if (!o->no_seccomp) {
        /* bwrap reads the BPF program from the descriptor, sets
         * no_new_privs and installs it just before it executes the task. */
        snprintf(num, sizeof(num), "%d", FD_SECCOMP);
        av_add3(a, "--seccomp", num, NULL);
    }
    cu_sb_av_add(a, "--");
    for (size_t i = 0; o->argv[i]; i++)
        cu_sb_av_add(a, o->argv[i]);
    if (a->failed)
        return cu_err_set(e, -CU_ENOMEM, "out of memory building sandbox arguments");
    return 0;
}

/* Finds an executable named name on PATH (or takes it as is when it has a
 * '/'). 0 with out filled, or -CU_ENOTFOUND. */
int cu_sb_resolve_exe(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    const char *p;

    if (strchr(name, '/'))
        return cu_snprintf(out, n, "%s", name);
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0 && cu_snprintf(out, n, "%.*s/%s", (int)len, p, name) == 0 &&
            access(out, X_OK) == 0)
            return 0;
        p += len;
        if (*p == ':')
            p++;
    }
    return -CU_ENOTFOUND;
}

/* ---- host preparation ------------------------------------------------- */

/* lchowns everything below the directory dfd (which it closes). */
static int chown_tree_at(int dfd, uid_t uid, gid_t gid, int depth)
{
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (depth > 64) {
        close(dfd);
        return -CU_EINVAL;
    }
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -CU_EIO;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (fchownat(dirfd(d), de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
            rc = -CU_EIO;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || chown_tree_at(sub, uid, gid, depth + 1) != 0)
                rc = -CU_EIO;
        }
    }
    closedir(d);
    return rc;
}

/* Gives dir and everything under it to uid:gid, so the task (running as
 * that uid) can write there. */
int cu_sb_chown_tree(const char *dir, uid_t uid, gid_t gid, struct cu_err *e)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return cu_err_set(e, -CU_ESANDBOX, "directory '%s': %s", dir, strerror(errno));
    if (fchown(fd, uid, gid) != 0) {
        int err = errno;
        close(fd);
        return cu_err_set(e, -CU_ESANDBOX, "chown '%s': %s", dir, strerror(err));
    }
    if (chown_tree_at(fd, uid, gid, 0) != 0)
        return cu_err_set(e, -CU_ESANDBOX, "chown of the contents of '%s' failed", dir);
    return 0;
}

/* Threads (tasks) the real uid already runs: RLIMIT_NPROC counts them too,
 * so a non-root provider adds them to the task's allowance. Best effort. */
static unsigned count_user_tasks(uid_t uid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    unsigned total = 0;

    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        char path[64];
        char line[128];
        FILE *f;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || st.st_uid != uid)
            continue;
        if (cu_snprintf(path, sizeof(path), "/proc/%s/status", de->d_name) != 0)
            continue;
        f = fopen(path, "re");
        if (!f)
            continue;
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "Threads:", 8) == 0) {
                total += (unsigned)strtoul(line + 8, NULL, 10);
                break;
            }
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

/* ---- the child -------------------------------------------------------- */


_Noreturn static void child_fail(int errpipe, int stage, int err)
{
    struct exec_failure f = {stage, err};
    ssize_t n = write(errpipe, &f, sizeof(f));
    (void)n;
    _exit(127);
}

/* Runs in the child (spawn_child): only async-signal-safe calls (the
 * provider is multi-threaded, and the child may share its memory), no
 * allocation. Never returns. */
_Noreturn static void child_exec(const struct child_plan *p)
{
    static char *const empty_env[] = {NULL};
    struct sigaction sa;
    sigset_t all;
    int high[FD_MAX_PASSED];
    int errpipe = p->fds[FD_EXECERR];

    setpgid(0, 0);
    /* Join first, while still privileged and before any descriptor moves:
     * everything bwrap and the task start is then inside the group. */
    if (cu_cgroup_join_fds(p->cg_fds) != 0)
        child_fail(errpipe, STAGE_CGROUP, errno);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &sa, NULL); /* fails harmlessly for KILL/STOP/reserved */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    /* Move the descriptors out of the way first, so that placing them at
     * 0..nfds-1 cannot clobber one not yet placed. dup2 leaves the placed
     * ones open across exec (the seccomp memfd included). */
    for (int i = 0; i < p->nfds; i++) {
        high[i] = fcntl(p->fds[i], F_DUPFD_CLOEXEC, 64);
        if (high[i] < 0)
            child_fail(errpipe, STAGE_FDS, errno);
    }
    for (int i = 0; i < p->nfds; i++) {
        if (dup2(high[i], i) < 0)
            child_fail(errpipe, STAGE_FDS, errno);
    }
    errpipe = FD_EXECERR;
    if (fcntl(errpipe, F_SETFD, FD_CLOEXEC) != 0)
        child_fail(errpipe, STAGE_FDS, errno);
    if (syscall(SYS_close_range, (unsigned)p->nfds, ~0U, 0) != 0) {
        struct rlimit nf;
        unsigned maxfd = 65536;
        if (getrlimit(RLIMIT_NOFILE, &nf) == 0 && nf.rlim_cur != RLIM_INFINITY &&
            nf.rlim_cur < maxfd)
            maxfd = (unsigned)nf.rlim_cur;
        for (unsigned fd = (unsigned)p->nfds; fd < maxfd; fd++)
            close((int)fd);
    }

    if (p->drop_privileges) {
        /* Raw syscalls: in the child only one thread exists, and glibc's
         * wrappers would try to coordinate threads of the parent image. */
        if (syscall(SYS_setgroups, 0, NULL) != 0 ||
            syscall(SYS_setresgid, p->gid, p->gid, p->gid) != 0 ||
            syscall(SYS_setresuid, p->uid, p->uid, p->uid) != 0)
            child_fail(errpipe, STAGE_CREDS, errno);
        for (int i = 0; i < 3 && p->check_dirs[i]; i++) {
            if (access(p->check_dirs[i], X_OK) != 0)
                child_fail(errpipe, STAGE_ACCESS, errno);
        }
    }

    if ((p->set_cpu && setrlimit(RLIMIT_CPU, &p->lim_cpu) != 0) ||
        (p->set_as && setrlimit(RLIMIT_AS, &p->lim_as) != 0) ||
        (p->set_fsize && setrlimit(RLIMIT_FSIZE, &p->lim_fsize) != 0) ||
        (p->set_nproc && setrlimit(RLIMIT_NPROC, &p->lim_nproc) != 0))
        child_fail(errpipe, STAGE_RLIMIT, errno);
    {
        struct rlimit core = {0, 0};
        if (setrlimit(RLIMIT_CORE, &core) != 0)
            child_fail(errpipe, STAGE_RLIMIT, errno);
    }

    execve(p->argv[0], p->argv, empty_env);
    child_fail(errpipe, STAGE_EXEC, errno);
}

static pid_t fork_child(struct child_plan *plan)
{
    pid_t pid = fork();
    if (pid == 0)
        child_exec(plan);
    return pid;
}

#if !defined(__SANITIZE_ADDRESS__)
static int child_main(void *arg)
{
    child_exec(arg);
}
#endif

/* Starts child_exec(plan) in a child; its pid, or -1 with errno. The
 * provider is a big multi-threaded process: a fork copied its page tables
 * and left every page copy-on-write, so each of its threads took a fault
 * per page it wrote next; with a spare sandbox started at each new job's
 * lease, that sat on the task's path (latency ~1.5 ms). Like posix_spawn
 * (which cannot join cgroups or drop privileges between fork and exec),
 * the child shares our memory on a stack of its own while this thread
 * sleeps until its exec; other threads run on. Under ASan, whose shadow
 * bookkeeping a foreign stack confuses, and when no stack can be mapped,
 * a plain fork. */
static pid_t spawn_child(struct child_plan *plan)
{
#if defined(__SANITIZE_ADDRESS__)
    return fork_child(plan);
#else
    enum { STACK = 256 * 1024 };
    char *stack = mmap(NULL, STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    pid_t pid;

    if (stack == MAP_FAILED)
        return fork_child(plan);
    pid = clone(child_main, stack + STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, plan);
    munmap(stack, STACK);
    return pid;
#endif
}

/* ---- start ------------------------------------------------------------ */

int cu_sb_spawn(struct child_plan *plan, pid_t *pid, struct cu_err *e)
{
    int p_exec[2] = {-1, -1};
    sigset_t all, old;
    struct exec_failure fail;
    ssize_t n;

    *pid = 0;
    if (pipe2(p_exec, O_CLOEXEC) != 0)
        return cu_err_set(e, -CU_ESANDBOX, "cannot create pipes: %s", strerror(errno));
    plan->fds[FD_EXECERR] = p_exec[1];
    /* Block signals across the spawn so no parent handler runs in the
     * child before it resets the dispositions. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    cu_fork_begin(); /* no task input open for writing now (util.h) */
    *pid = spawn_child(plan);
    cu_fork_end();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cu_sb_close_fd(&p_exec[1]);
    plan->fds[FD_EXECERR] = -1;
    if (*pid < 0) {
        *pid = 0;
        cu_sb_close_fd(&p_exec[0]);
        return cu_err_set(e, -CU_ESANDBOX, "fork: %s", strerror(errno));
    }
    setpgid(*pid, *pid); /* also done in the child; whichever runs first wins */
    do {
        n = read(p_exec[0], &fail, sizeof(fail));
    } while (n < 0 && errno == EINTR);
    cu_sb_close_fd(&p_exec[0]);
    if (n == (ssize_t)sizeof(fail)) {
        int st;
        while (waitpid(*pid, &st, 0) < 0 && errno == EINTR) {
        }
        *pid = 0;
        return cu_err_set(e, -CU_ESANDBOX, "cannot %s (%s): %s",
                          fail.stage > 0 && fail.stage <= STAGE_EXEC ? stage_names[fail.stage]
                                                                     : "start bwrap",
                          plan->argv[0], strerror(fail.err));
    }
    return 0;
}


void cu_sb_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void sandbox_free_fds(struct cu_sandbox *s)
{
    cu_sb_close_fd(&s->pidfd);
    if (s->rd_borrowed)
        s->rd_out = s->rd_err = -1;
    cu_sb_close_fd(&s->rd_out);
    cu_sb_close_fd(&s->rd_err);
    cu_sb_close_fd(&s->rd_status);
    cu_sb_close_fd(&s->f_out);
    cu_sb_close_fd(&s->f_err);
}

int cu_sb_open_capture(const char *path, int *fd, struct cu_err *e)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (*fd < 0)
        return cu_err_set(e, -CU_ESANDBOX, "cannot create '%s': %s", path, strerror(errno));
    return 0;
}

int cu_sb_check_dir(const char *what, const char *path, struct cu_err *e)
{
    struct stat st;
    if (!path)
        return cu_err_set(e, -CU_EINVAL, "sandbox option '%s': missing", what);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return cu_err_set(e, -CU_EINVAL, "sandbox option '%s': '%s' is not a directory", what,
                          path);
    return 0;
}

/* Creates the task's group under opts->cgroup_parent (into s->cg) and
 * opens its cgroup.procs files into fds for the child to join. On failure
 * nothing is left behind and s->cg stays NONE. */
static int cgroup_prepare(struct cu_sandbox *s, const struct cu_sandbox_opts *opts,
                          int fds[CU_CG_NCTRL], struct cu_err *e)
{
    static atomic_uint serial;
    struct cu_cgroup_limits lim = {.memory = opts->memory_limit,
                                   .cpu_milli = opts->cpu_milli,
                                   .pids = opts->nproc_limit ? opts->nproc_limit : 256};
    char name[64];
    int rc;

    if (opts->cgroup_name)
        rc = cu_snprintf(name, sizeof(name), "%s", opts->cgroup_name);
    else
        rc = cu_snprintf(name, sizeof(name), "task-%d-%u", (int)getpid(),
                         atomic_fetch_add(&serial, 1));
    if (rc)
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'cgroup_name': too long");
    rc = cu_cgroup_create(opts->cgroup_parent, name, &lim, &s->cg, e);
    if (rc == 0 && (rc = cu_cgroup_open_procs(&s->cg, fds, e)) != 0)
        (void)cu_cgroup_destroy(&s->cg);
    if (rc) {
        char why[CU_ERR_MSG_MAX];
        (void)cu_snprintf(why, sizeof(why), "%s", cu_err_msg(e, rc));
        memset(&s->cg, 0, sizeof(s->cg));
        return cu_err_set(e, -CU_ESANDBOX, "task cgroup: %s", why);
    }
    return 0;
}

void cu_sb_plan_limits(const struct cu_sandbox_opts *opts, const struct cu_cgroup *cg,
                       struct child_plan *plan, uint64_t *cpu_limit_s)
{
    bool root = geteuid() == 0;

    *cpu_limit_s = 0;
    if (opts->time_limit_ms > 0) {
        *cpu_limit_s = opts->time_limit_ms / 1000 + 1;
        plan->set_cpu = true;
        plan->lim_cpu.rlim_cur = *cpu_limit_s;
        plan->lim_cpu.rlim_max = *cpu_limit_s + 1; /* SIGXCPU first, SIGKILL a second later */
    }
    if (opts->memory_limit > 0 && cg->version == CU_CG_NONE) {
        /* Without a cgroup, address space is the only memory cap we have
         * (it fails allocations instead of killing, and counts mappings,
         * not memory; the cgroup's limit is the real one). */
        plan->set_as = true;
        plan->lim_as.rlim_cur = plan->lim_as.rlim_max = opts->memory_limit;
    }
    if (opts->output_limit > 0) {
        plan->set_fsize = true;
        /* One byte over the limit, so that a file stopped by it shows as
         * exceeding the limit in the final size check. */
        plan->lim_fsize.rlim_cur = plan->lim_fsize.rlim_max = opts->output_limit + 1;
    }
    {
        rlim_t nproc = opts->nproc_limit ? opts->nproc_limit : 256;
        if (cg->version != CU_CG_NONE && cg->dir[CU_CG_PIDS][0])
            nproc *= 2; /* pids.max is the cap; this stays as a backstop */
        if (!root) /* the limit counts every process of the provider's uid */
            nproc += count_user_tasks(getuid());
        plan->set_nproc = true;
        plan->lim_nproc.rlim_cur = plan->lim_nproc.rlim_max = nproc;
        if (!root) {
            struct rlimit cur;
            if (getrlimit(RLIMIT_NPROC, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
                cur.rlim_max < nproc)
                plan->lim_nproc.rlim_cur = plan->lim_nproc.rlim_max = cur.rlim_max;
        }
    }
}

int cu_sandbox_start(const struct cu_sandbox_opts *opts, struct cu_sandbox **out, struct cu_err *e)
{
    struct cu_sandbox *s;
    struct argv_builder av = {0};
    struct child_plan plan;
    char bwrap_path[CU_PATH_MAX];
    int p_out[2] = {-1, -1}, p_err[2] = {-1, -1}, p_status[2] = {-1, -1};
    int devnull = -1, seccomp_fd = -1;
    int cg_fds[CU_CG_NCTRL] = {-1, -1, -1, -1};
    int rc;
    bool root = geteuid() == 0;

    *out = NULL;
    /* See the top of this file; idempotent and cheap. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        return cu_err_set(e, -CU_ESANDBOX, "cannot become a child subreaper: %s", strerror(errno));
    if (!opts->argv || !opts->argv[0] || !opts->argv[0][0])
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'argv': empty command");
    if ((rc = cu_sb_check_dir("work_dir", opts->work_dir, e)) != 0 ||
        (rc = cu_sb_check_dir("out_dir", opts->out_dir, e)) != 0 ||
        (opts->in_dir && (rc = cu_sb_check_dir("in_dir", opts->in_dir, e)) != 0))
        return rc;
    if (!opts->stdout_path || !opts->stderr_path)
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'stdout_path'/'stderr_path': missing");
    if (opts->uid < 0 || opts->gid < 0)
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'uid'/'gid': must be >= 0");
    if (root && (opts->uid == 0 || opts->gid == 0))
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'uid'/'gid': tasks never run as root");
    if (cu_sb_resolve_exe(opts->bwrap ? opts->bwrap : "bwrap", bwrap_path, sizeof(bwrap_path)) != 0)
        return cu_err_set(e, -CU_ESANDBOX, "bwrap not found on PATH (install bubblewrap)");

    s = calloc(1, sizeof(*s));
    if (!s)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    s->pidfd = s->rd_out = s->rd_err = s->rd_status = s->f_out = s->f_err = -1;
    s->work_dfd = s->out_dfd = -1;
    s->forced = CU_SB_RUNNING;
    s->stdio_cap = opts->stdio_cap;
    s->output_limit = opts->output_limit;
    s->disk_limit = opts->disk_limit;
    s->time_limit_ms = opts->time_limit_ms;
    cu_buf_init(&s->status, STATUS_MAX);
    s->work_dir = strdup(opts->work_dir);
    s->out_dir = strdup(opts->out_dir);
    if (!s->work_dir || !s->out_dir) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_free_sandbox;
    }

    if ((rc = cu_sb_build_argv(opts, bwrap_path, CU_SB_ARGV_TASK, &av, e)) != 0)
        goto out_free_argv;
    if (opts->cgroup_parent && opts->cgroup_parent->version != CU_CG_NONE &&
        (rc = cgroup_prepare(s, opts, cg_fds, e)) != 0)
        goto out_free_argv;

    if (root) {
        if ((rc = cu_sb_chown_tree(opts->work_dir, (uid_t)opts->uid, (gid_t)opts->gid, e)) != 0 ||
            (rc = cu_sb_chown_tree(opts->out_dir, (uid_t)opts->uid, (gid_t)opts->gid, e)) != 0)
            goto out_free_argv;
    }

    if ((rc = cu_sb_open_capture(opts->stdout_path, &s->f_out, e)) != 0 ||
        (rc = cu_sb_open_capture(opts->stderr_path, &s->f_err, e)) != 0)
        goto out_close_fds;
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || pipe2(p_out, O_CLOEXEC) != 0 || pipe2(p_err, O_CLOEXEC) != 0 ||
        pipe2(p_status, O_CLOEXEC) != 0) {
        rc = cu_err_set(e, -CU_ESANDBOX, "cannot create pipes: %s", strerror(errno));
        goto out_close_pipes;
    }
    if (!opts->no_seccomp && (seccomp_fd = cu_seccomp_task_fd(e)) < 0) {
        rc = seccomp_fd;
        goto out_close_pipes;
    }

    memset(&plan, 0, sizeof(plan));
    plan.argv = av.v;
    plan.fds[0] = devnull;
    plan.fds[1] = p_out[1];
    plan.fds[2] = p_err[1];
    plan.fds[FD_STATUS] = p_status[1];
    plan.fds[FD_SECCOMP] = seccomp_fd;
    plan.nfds = seccomp_fd >= 0 ? FD_SECCOMP + 1 : FD_SECCOMP;
    plan.drop_privileges = root;
    plan.uid = (uid_t)opts->uid;
    plan.gid = (gid_t)opts->gid;
    plan.check_dirs[0] = opts->work_dir;
    plan.check_dirs[1] = opts->out_dir;
    plan.check_dirs[2] = opts->in_dir;
    memcpy(plan.cg_fds, cg_fds, sizeof(plan.cg_fds));
    cu_sb_plan_limits(opts, &s->cg, &plan, &s->cpu_limit_s);

    plan.fds[FD_EXECERR] = -1;
    s->start_ms = cu_mono_ms();
    rc = cu_sb_spawn(&plan, &s->pid, e);
    cu_sb_close_fd(&devnull);
    cu_sb_close_fd(&seccomp_fd);
    cu_cgroup_close_fds(cg_fds);
    cu_sb_close_fd(&p_out[1]);
    cu_sb_close_fd(&p_err[1]);
    cu_sb_close_fd(&p_status[1]);
    if (rc)
        goto out_close_pipes;

    s->rd_out = p_out[0];
    s->rd_err = p_err[0];
    s->rd_status = p_status[0];
    fcntl(s->rd_out, F_SETFL, O_NONBLOCK);
    fcntl(s->rd_err, F_SETFL, O_NONBLOCK);
    fcntl(s->rd_status, F_SETFL, O_NONBLOCK);
    s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
    if (s->pidfd >= 0)
        fcntl(s->pidfd, F_SETFD, FD_CLOEXEC);
    s->time_deadline_ms = opts->time_limit_ms ? s->start_ms + (int64_t)opts->time_limit_ms : 0;
    s->next_size_check_ms = s->start_ms + SIZE_CHECK_MS;
    cu_sb_av_release(&av);
    *out = s;
    return 0;

out_close_pipes:
    cu_sb_close_fd(&devnull);
    cu_sb_close_fd(&seccomp_fd);
    cu_cgroup_close_fds(cg_fds);
    for (int i = 0; i < 2; i++) {
        cu_sb_close_fd(&p_out[i]);
        cu_sb_close_fd(&p_err[i]);
        cu_sb_close_fd(&p_status[i]);
    }
out_close_fds:
    sandbox_free_fds(s);
out_free_argv:
    cu_sb_av_release(&av);
    if (s->cg.version != CU_CG_NONE)
        (void)cu_cgroup_destroy(&s->cg);
out_free_sandbox:
    cu_buf_release(&s->status);
    free(s->work_dir);
    free(s->out_dir);
    free(s);
    return rc;
}

/* ---- waiting ---------------------------------------------------------- */

/* Done with a stream: closes *fd, or only forgets it when it is a warm
 * sandbox's (rd_borrowed). */
static void stream_end(struct cu_sandbox *s, int *fd)
{
    if (s->rd_borrowed)
        *fd = -1;
    else
        cu_sb_close_fd(fd);
}

/* Reads what is available on one stream; keeps at most cap bytes in the
 * file and drops the rest. Ends *fd at EOF. */
static void drain_stream(struct cu_sandbox *s, int *fd, int file, uint64_t *kept, bool is_err)
{
    char buf[65536];

    while (*fd >= 0) {
        ssize_t n = read(*fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                stream_end(s, fd);
            return;
        }
        if (n == 0) {
            stream_end(s, fd);
            return;
        }
        if (is_err && s->err_head_len < sizeof(s->err_head) - 1) {
            size_t take = sizeof(s->err_head) - 1 - s->err_head_len;
            if (take > (size_t)n)
                take = (size_t)n;
            memcpy(s->err_head + s->err_head_len, buf, take);
            s->err_head_len += take;
            s->err_head[s->err_head_len] = '\0';
        }
        if (file >= 0 && *kept < s->stdio_cap) {
            uint64_t room = s->stdio_cap - *kept;
            size_t w = (uint64_t)n < room ? (size_t)n : (size_t)room;
            const char *p = buf;
            while (w > 0) {
                ssize_t k = write(file, p, w);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0) {
                    *kept = s->stdio_cap; /* disk trouble: stop keeping */
                    break;
                }
                p += k;
                w -= (size_t)k;
                *kept += (uint64_t)k;
            }
        }
    }
}

static void drain_status(struct cu_sandbox *s)
{
    char buf[1024];

    while (s->rd_status >= 0) {
        ssize_t n = read(s->rd_status, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                cu_sb_close_fd(&s->rd_status);
            return;
        }
        if (n == 0) {
            cu_sb_close_fd(&s->rd_status);
            return;
        }
        (void)cu_buf_append(&s->status, buf, (size_t)n); /* bounded; bwrap writes little */
    }
}

void cu_sb_drain_all(struct cu_sandbox *s)
{
    drain_stream(s, &s->rd_out, s->f_out, &s->out_kept, false);
    drain_stream(s, &s->rd_err, s->f_err, &s->err_kept, true);
    drain_status(s);
}

static void force_end(struct cu_sandbox *s, enum cu_sandbox_status st, const char *reason)
{
    if (s->reaped || s->pid <= 0)
        return;
    if (s->forced == CU_SB_RUNNING) {
        s->forced = st;
        snprintf(s->forced_reason, sizeof(s->forced_reason), "%s", reason);
    }
    if (s->warm) {
        cu_warm_task_kill(s);
        return;
    }
    drain_status(s); /* learn pid 1's pid while bwrap still holds it */
    kill(-s->pid, SIGKILL);
    kill(s->pid, SIGKILL); /* in case setpgid had not happened yet */
}

static void fmt_limit_duration(uint64_t ms, char *out, size_t n)
{
    if (ms % 1000 == 0)
        snprintf(out, n, "%llus", (unsigned long long)(ms / 1000));
    else if (ms < 1000)
        snprintf(out, n, "%llums", (unsigned long long)ms);
    else
        snprintf(out, n, "%llu.%03llus", (unsigned long long)(ms / 1000),
                 (unsigned long long)(ms % 1000));
}

/* A warm task's share of its sandbox group's counters: what they grew by
 * since the task started. */
static void warm_share(struct cu_cgroup_stats *now, const struct cu_cgroup_stats *base)
{
    now->oom_kills = now->oom_kills > base->oom_kills ? now->oom_kills - base->oom_kills : 0;
    now->pids_refused =
        now->pids_refused > base->pids_refused ? now->pids_refused - base->pids_refused : 0;
}

/* The cgroup's verdicts: an OOM kill or a refused fork ends the task
 * (without a group OOM kill in v1, the rest of the tree would run on). */
static void enforce_cgroup(struct cu_sandbox *s)
{
    if (s->warm) { /* the warm sandbox's group: this task's share only */
        cu_warm_task_cg_stats(s, &s->cg_stats);
        warm_share(&s->cg_stats, &s->cg_base);
    } else {
        cu_cgroup_read_stats(&s->cg, &s->cg_stats);
    }
    if (s->cg_stats.oom_kills > 0)
        force_end(s, CU_SB_FAILED, "memory limit");
    else if (s->cg_stats.pids_refused > 0)
        force_end(s, CU_SB_FAILED, "process limit");
}

void cu_sb_enforce_limits(struct cu_sandbox *s, int64_t now)
{
    char reason[160], amount[32];

    if (s->time_deadline_ms && !s->paused && now >= s->time_deadline_ms) {
        fmt_limit_duration(s->time_limit_ms, amount, sizeof(amount));
        snprintf(reason, sizeof(reason), "time limit %s exceeded", amount);
        force_end(s, CU_SB_TIMEOUT, reason);
    }
    if ((s->output_limit || s->disk_limit || s->cg.version != CU_CG_NONE) &&
        now >= s->next_size_check_ms) {
        uint64_t used = 0;
        s->next_size_check_ms = now + SIZE_CHECK_MS;
        if (s->cg.version != CU_CG_NONE)
            enforce_cgroup(s);
        if (s->output_limit || s->disk_limit)
            used = cu_dir_size(s->out_dir) + cu_dir_size(s->work_dir);
        if (s->disk_limit && used > s->disk_limit)
            force_end(s, CU_SB_FAILED, "disk limit");
        if (s->output_limit && used > s->output_limit) {
            cu_fmt_size(s->output_limit, amount, sizeof(amount));
            snprintf(reason, sizeof(reason), "output limit %s exceeded", amount);
            force_end(s, CU_SB_OUTPUT_LIMIT, reason);
        }
    }
}

static void try_reap(struct cu_sandbox *s)
{
    pid_t r;

    if (s->reaped)
        return;
    do {
        r = wait4(s->pid, &s->wstatus, WNOHANG, &s->ru);
    } while (r < 0 && errno == EINTR);
    if (r == s->pid || (r < 0 && errno == ECHILD)) {
        if (r < 0) /* someone else reaped it (SIGCHLD ignored?): nothing known */
            s->wstatus = 0xff00;
        s->reaped = true;
        s->end_ms = cu_mono_ms();
        s->drain_deadline_ms = s->end_ms + DRAIN_AFTER_EXIT_MS;
        cu_sb_close_fd(&s->pidfd);
    }
}

/* Value of the integer field key (quoted) in bwrap's status lines. */
static bool status_field(const struct cu_sandbox *s, const char *key, long *out)
{
    const char *p = strstr(cu_buf_str(&s->status), key);
    char *end;
    long v;

    if (!p)
        return false;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    v = strtol(p, &end, 10);
    if (end == p)
        return false;
    *out = v;
    return true;
}

/* Reaps bwrap's orphaned pid 1 (see the top of this file) and adds its
 * rusage. With block, waits for it (killing it if it lingers); otherwise
 * only looks. Call only after the monitor has been reaped: by then the
 * reparenting is complete. */
static void reap_inner(struct cu_sandbox *s, bool block)
{
    struct rusage ru;
    int st;
    long v;
    pid_t r;

    if (s->inner_done)
        return;
    if (!s->inner_pid) {
        if (!status_field(s, "\"child-pid\"", &v) || v <= 1 || v > INT_MAX) {
            if (s->rd_status < 0 || block)
                s->inner_done = true; /* never learnt: nothing we can reap */
            return;
        }
        s->inner_pid = (pid_t)v;
    }
    do {
        r = wait4(s->inner_pid, &st, WNOHANG, &ru);
    } while (r < 0 && errno == EINTR);
    if (r == 0 && block) {
        /* Still running though its monitor is gone: it is our child (a
         * subreaper's), so this kill cannot hit an unrelated process. */
        kill(s->inner_pid, SIGKILL);
        do {
            r = wait4(s->inner_pid, &st, 0, &ru);
        } while (r < 0 && errno == EINTR);
    }
    if (r == s->inner_pid) {
        s->ru.ru_utime.tv_sec += ru.ru_utime.tv_sec;
        s->ru.ru_utime.tv_usec += ru.ru_utime.tv_usec;
        s->ru.ru_stime.tv_sec += ru.ru_stime.tv_sec;
        s->ru.ru_stime.tv_usec += ru.ru_stime.tv_usec;
        if (ru.ru_maxrss > s->ru.ru_maxrss)
            s->ru.ru_maxrss = ru.ru_maxrss;
        s->inner_done = true;
    } else if (r < 0) {
        s->inner_done = true; /* not our child: its monitor reaped it */
    }
}

/* cu_dir_usage of dir, through dfd when it is open. */
static uint64_t dir_usage(int dfd, const char *dir, uint64_t *entries)
{
    return dfd >= 0 ? cu_dir_usage_at(dfd, entries) : cu_dir_usage(dir, entries);
}

/* The task's exit code from bwrap's {"exit-code": N} line; false when
 * bwrap never ran the task (setup failed). */
static bool status_exit_code(const struct cu_sandbox *s, int *code)
{
    long v;

    if (!status_field(s, "\"exit-code\"", &v) || v < 0 || v > 255)
        return false;
    *code = (int)v;
    return true;
}

static void first_line(const char *in, char *out, size_t n)
{
    size_t len = strcspn(in, "\n");
    if (len >= n)
        len = n - 1;
    memcpy(out, in, len);
    out[len] = '\0';
}

void cu_sb_finish(struct cu_sandbox *s)
{
    struct cu_sandbox_result *r = &s->result;
    int code = 0;
    char line[200];

    memset(r, 0, sizeof(*r));
    if (s->warm && s->cg.version != CU_CG_NONE) {
        /* The warm sandbox's group lives on: this task's share is what
         * its counters grew by since the task started. */
        cu_warm_task_cg_stats(s, &s->cg_stats);
        warm_share(&s->cg_stats, &s->cg_base);
        r->memory_peak = s->cg_stats.memory_peak;
        memset(&s->cg, 0, sizeof(s->cg));
    } else if (s->cg.version != CU_CG_NONE) {
        /* Everything in it has exited (pid 1 of its namespace is reaped). */
        cu_cgroup_read_stats(&s->cg, &s->cg_stats);
        r->memory_peak = s->cg_stats.memory_peak;
        if (cu_cgroup_destroy(&s->cg) != 0)
            cu_warn("cannot remove cgroup %s", s->cg.dir[CU_CG_MEMORY]);
        memset(&s->cg, 0, sizeof(s->cg));
    }
    /* Whole milliseconds, rounded up: what a task used is billed, and a
     * task that ran at all used some (docs/decisions.md "CU metering"). */
    uint64_t cpu_us = (uint64_t)s->ru.ru_utime.tv_sec * 1000000 + (uint64_t)s->ru.ru_utime.tv_usec +
                      (uint64_t)s->ru.ru_stime.tv_sec * 1000000 + (uint64_t)s->ru.ru_stime.tv_usec;
    r->cpu_ms = (cpu_us + 999) / 1000;
    if (s->paused) /* ended (killed) while paused */
        s->paused_ms += s->end_ms - s->paused_at_ms;
    s->paused = false;
    r->paused_ms = (uint64_t)s->paused_ms;
    r->wall_ms = (uint64_t)(s->end_ms - s->start_ms - s->paused_ms);
    r->max_rss_kb = (uint64_t)s->ru.ru_maxrss;
    bool have_code = s->warm ? s->have_code : status_exit_code(s, &code);
    if (s->warm)
        code = s->code;
    if (have_code) {
        r->exit_code = code;
        if (code > 128 && code < 128 + 65)
            r->term_signal = code - 128;
    }

    s->left_work = s->left_out = UINT64_MAX;
    if (s->forced == CU_SB_RUNNING && s->output_limit && !WIFSIGNALED(s->wstatus) &&
        dir_usage(s->out_dfd, s->out_dir, &s->left_out) +
                dir_usage(s->work_dfd, s->work_dir, &s->left_work) >
            s->output_limit) {
        /* Ended between two size checks, or a child was stopped by
         * RLIMIT_FSIZE while the task itself carried on. */
        char amount[32];
        cu_fmt_size(s->output_limit, amount, sizeof(amount));
        s->forced = CU_SB_OUTPUT_LIMIT;
        snprintf(s->forced_reason, sizeof(s->forced_reason), "output limit %s exceeded", amount);
    }
    r->out_empty = s->left_out == 0;
    r->stdout_bytes = s->out_kept;
    r->stderr_bytes = s->err_kept;
    if (s->forced == CU_SB_RUNNING && s->cg_stats.oom_kills > 0) {
        /* Killed by the OOM killer between two checks. */
        s->forced = CU_SB_FAILED;
        snprintf(s->forced_reason, sizeof(s->forced_reason), "memory limit");
    } else if (s->forced == CU_SB_RUNNING && s->cg_stats.pids_refused > 0 &&
               !(have_code && code == 0)) {
        s->forced = CU_SB_FAILED;
        snprintf(s->forced_reason, sizeof(s->forced_reason), "process limit");
    }
    if (s->forced != CU_SB_RUNNING) {
        r->status = s->forced;
        snprintf(r->reason, sizeof(r->reason), "%s", s->forced_reason);
        if (!have_code)
            r->term_signal = SIGKILL;
    } else if (WIFSIGNALED(s->wstatus)) {
        r->status = CU_SB_ERROR;
        snprintf(r->reason, sizeof(r->reason), "sandbox killed by signal %d (%s)",
                 WTERMSIG(s->wstatus), strsignal(WTERMSIG(s->wstatus)));
    } else if (have_code && code == 0) {
        r->status = CU_SB_OK;
        snprintf(r->reason, sizeof(r->reason), "exit code 0");
    } else if (have_code && r->term_signal == SIGXCPU && s->cpu_limit_s &&
               r->cpu_ms + 20 >= s->cpu_limit_s * 1000) {
        r->status = CU_SB_TIMEOUT;
        snprintf(r->reason, sizeof(r->reason), "CPU time limit %llus exceeded",
                 (unsigned long long)s->cpu_limit_s);
    } else if (have_code && r->term_signal == SIGKILL && s->cpu_limit_s &&
               r->cpu_ms + 20 >= (s->cpu_limit_s + 1) * 1000) {
        r->status = CU_SB_TIMEOUT;
        snprintf(r->reason, sizeof(r->reason), "CPU time limit %llus exceeded",
                 (unsigned long long)s->cpu_limit_s);
    } else if (have_code && r->term_signal == SIGXFSZ && s->output_limit) {
        char amount[32];
        cu_fmt_size(s->output_limit, amount, sizeof(amount));
        r->status = CU_SB_OUTPUT_LIMIT;
        snprintf(r->reason, sizeof(r->reason), "output limit %s exceeded (file too large)", amount);
    } else if (have_code && r->term_signal) {
        r->status = CU_SB_FAILED;
        snprintf(r->reason, sizeof(r->reason), "killed by signal %d (%s)", r->term_signal,
                 strsignal(r->term_signal));
    } else if (have_code) {
        r->status = CU_SB_FAILED;
        snprintf(r->reason, sizeof(r->reason), "exit code %d", code);
    } else if (s->warm && s->exec_error) {
        r->status = CU_SB_FAILED;
        r->exit_code = strstr(s->setup_error, "Permission denied") ? 126 : 127;
        snprintf(r->reason, sizeof(r->reason), "cannot run command: %s (exit code %d)",
                 s->setup_error, r->exit_code);
    } else if (s->warm) {
        r->status = CU_SB_ERROR;
        snprintf(r->reason, sizeof(r->reason), "sandbox setup failed: %s",
                 s->setup_error[0] ? s->setup_error : "the warm sandbox ended without the task");
    } else if (strncmp(s->err_head, "bwrap: execvp ", 14) == 0) {
        /* bwrap set everything up but could not run the command itself:
         * that is the task's fault, reported as a shell would. */
        r->status = CU_SB_FAILED;
        r->exit_code = strstr(s->err_head, "Permission denied") ? 126 : 127;
        first_line(s->err_head + 14, line, sizeof(line));
        snprintf(r->reason, sizeof(r->reason), "cannot run command: %s (exit code %d)", line,
                 r->exit_code);
    } else {
        r->status = CU_SB_ERROR;
        r->exit_code = WIFEXITED(s->wstatus) ? WEXITSTATUS(s->wstatus) : 0;
        first_line(s->err_head, line, sizeof(line));
        snprintf(r->reason, sizeof(r->reason), "sandbox setup failed: %s",
                 line[0] ? line : "bwrap exited without running the task");
    }
    s->done = true;
}

int cu_sandbox_wait(struct cu_sandbox *s, int timeout_ms)
{
    int64_t until = timeout_ms < 0 ? INT64_MAX : cu_mono_ms() + timeout_ms;

    if (s->warm)
        return cu_warm_task_wait(s, timeout_ms);

    for (;;) {
        struct pollfd pfd[4];
        nfds_t np = 0;
        int64_t now, wake;

        if (s->done)
            return 0;
        now = cu_mono_ms();
        if (!s->reaped)
            cu_sb_enforce_limits(s, now);
        try_reap(s);
        if (s->reaped) {
            cu_sb_drain_all(s);
            reap_inner(s, now >= s->drain_deadline_ms);
            if ((s->rd_out < 0 && s->rd_err < 0 && s->rd_status < 0 && s->inner_done) ||
                now >= s->drain_deadline_ms) {
                reap_inner(s, true);
                cu_sb_finish(s);
                return 0;
            }
        }
        if (now >= until)
            return -CU_EAGAIN;

        wake = until;
        if (!s->reaped) {
            if (s->time_deadline_ms && !s->paused && s->time_deadline_ms < wake)
                wake = s->time_deadline_ms;
            if ((s->output_limit || s->disk_limit || s->cg.version != CU_CG_NONE) &&
                s->next_size_check_ms < wake)
                wake = s->next_size_check_ms;
            if (s->pidfd < 0 && now + 20 < wake)
                wake = now + 20; /* no pidfd: poll for the exit */
            if (s->pidfd >= 0)
                pfd[np++] = (struct pollfd){.fd = s->pidfd, .events = POLLIN};
        } else {
            if (s->drain_deadline_ms < wake)
                wake = s->drain_deadline_ms;
            if (!s->inner_done && now + 5 < wake)
                wake = now + 5; /* pid 1 exits right after its monitor */
        }
        if (s->rd_out >= 0)
            pfd[np++] = (struct pollfd){.fd = s->rd_out, .events = POLLIN};
        if (s->rd_err >= 0)
            pfd[np++] = (struct pollfd){.fd = s->rd_err, .events = POLLIN};
        if (s->rd_status >= 0)
            pfd[np++] = (struct pollfd){.fd = s->rd_status, .events = POLLIN};
        {
            int64_t ms = wake - now;
            if (ms < 0)
                ms = 0;
            if (ms > INT_MAX)
                ms = INT_MAX;
            if (poll(pfd, np, (int)ms) > 0)
                cu_sb_drain_all(s);
        }
    }
}

void cu_sandbox_kill(struct cu_sandbox *s, const char *reason)
{
    force_end(s, CU_SB_KILLED, reason && *reason ? reason : "killed");
}

void cu_sandbox_get_result(const struct cu_sandbox *s, struct cu_sandbox_result *r)
{
    if (!s->done) {
        memset(r, 0, sizeof(*r));
        r->status = CU_SB_RUNNING;
        return;
    }
    *r = s->result;
}

void cu_sandbox_free(struct cu_sandbox *s)
{
    if (!s)
        return;
    if (s->warm) {
        cu_warm_task_free(s);
    } else if (s->pid > 0 && !s->reaped) {
        force_end(s, CU_SB_KILLED, "sandbox freed while running");
        while (wait4(s->pid, &s->wstatus, 0, &s->ru) < 0 && errno == EINTR) {
        }
        s->reaped = true;
    }
    if (s->pid > 0 && !s->warm) {
        drain_status(s);
        reap_inner(s, true);
    }
    sandbox_free_fds(s);
    if (s->cg.version != CU_CG_NONE && !s->warm)
        (void)cu_cgroup_destroy(&s->cg);
    cu_buf_release(&s->status);
    free(s->work_dir);
    free(s->out_dir);
    for (int i = 0; i < 3; i++)
        free(s->task_dir[i]);
    free(s);
}

/* ---- pause and resume (idle-only providers) ----------------------------- */

int cu_sandbox_pause(struct cu_sandbox *s)
{
    int rc;

    if (s->paused || s->reaped || s->done || s->pid <= 0)
        return 0;
    /* From the monitor down: bwrap, the namespace's pid 1, every task
     * process. The task runs in a session of its own (--new-session), so
     * the monitor's process group would miss it; the tree does not. */
    rc = cu_proc_tree_stop(s->pid);
    if (rc == -CU_ENOTFOUND)
        return 0; /* just ended: cu_sandbox_wait will see it */
    s->paused = true;
    s->paused_at_ms = cu_mono_ms();
    return rc;
}

int cu_sandbox_resume(struct cu_sandbox *s)
{
    int64_t now, stood;
    int rc = 0;

    if (!s->paused)
        return 0;
    if (!s->reaped && !s->done && s->pid > 0) {
        rc = cu_proc_tree_cont(s->pid);
        if (rc == -CU_ENOTFOUND)
            rc = 0;
    }
    now = cu_mono_ms();
    stood = now - s->paused_at_ms;
    s->paused_ms += stood;
    if (s->time_deadline_ms)
        s->time_deadline_ms += stood;
    s->paused = false;
    return rc;
}

bool cu_sandbox_is_paused(const struct cu_sandbox *s)
{
    return s->paused;
}

/* ---- probe ------------------------------------------------------------ */

int cu_sandbox_probe(struct cu_err *e)
{
    static const char *const argv[] = {"true", NULL};
    struct cu_sandbox_opts o = CU_SANDBOX_OPTS_INIT;
    struct cu_sandbox *s = NULL;
    struct cu_sandbox_result r;
    char base[] = "/tmp/cumulus-probe-XXXXXX";
    char work[CU_PATH_MAX], outd[CU_PATH_MAX], so[CU_PATH_MAX], se[CU_PATH_MAX];
    int rc;

    if (!mkdtemp(base))
        return cu_err_set(e, -CU_ESANDBOX, "sandbox probe: mkdtemp: %s", strerror(errno));
    chmod(base, 0755); /* the task uid must be able to reach work/ and out/ */
    if (cu_path_join(work, sizeof(work), base, "work") != 0 ||
        cu_path_join(outd, sizeof(outd), base, "out") != 0 ||
        cu_path_join(so, sizeof(so), base, "stdout") != 0 ||
        cu_path_join(se, sizeof(se), base, "stderr") != 0 || mkdir(work, 0755) != 0 ||
        mkdir(outd, 0755) != 0) {
        rc = cu_err_set(e, -CU_ESANDBOX, "sandbox probe: cannot prepare directories");
        goto out_remove_dir;
    }
    o.argv = argv;
    o.work_dir = work;
    o.out_dir = outd;
    o.stdout_path = so;
    o.stderr_path = se;
    o.time_limit_ms = 20000;
    if ((rc = cu_sandbox_start(&o, &s, e)) != 0)
        goto out_remove_dir;
    cu_sandbox_wait(s, -1);
    cu_sandbox_get_result(s, &r);
    cu_sandbox_free(s);
    if (r.status != CU_SB_OK)
        rc = cu_err_set(e, -CU_ESANDBOX, "bwrap cannot run a task here: %s", r.reason);
out_remove_dir:
    cu_rm_rf(base);
    return rc;
}
