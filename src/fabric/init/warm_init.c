/* warm_init.c - the supervisor of a warm sandbox (fabric/warm.h).
 *
 * A small static program that bwrap runs as pid 1 of the sandbox's pid
 * namespace (--as-pid-1), under the same seccomp filter, uid and
 * namespaces as the tasks it runs. The provider hands it in as a sealed
 * memfd (executed through /proc/self/fd), so it works on the host view and
 * on any OCI root file system alike, with nothing bound into the sandbox.
 *
 * It waits on the control socket (fd CU_WARM_CTL_FD) for one RUN message
 * at a time, starts the task (new session, the task's rlimits, stdout and
 * stderr from the two descriptors that came with the first message and
 * are kept for the next tasks (a later pair replaces them), stdin
 * /dev/null), and when the task's first process ends it kills every other
 * process of the namespace (kill(-1, SIGKILL) from pid 1 spares only pid
 * 1), reaps them all, and answers DONE with the wait status and the CPU
 * time of everything reaped meanwhile (kernel accounting of the task
 * tree). Then it empties /tmp, /dev/shm and /dev/mqueue (POSIX message
 * queues) and removes System V IPC objects, so the next task finds
 * nothing of this one.
 *
 * Why a task cannot subvert it: as the namespace's init it receives no
 * signal from inside the namespace that it has no handler for (SIGKILL
 * and SIGSTOP included), it is not dumpable (no /proc/1/mem, /proc/1/fd
 * for the same uid), ptrace is refused by seccomp, and the control socket
 * never reaches a task (closed in the child before exec). When the
 * control socket closes (the provider ended or let go of the sandbox) it
 * kills everything and exits, which ends the sandbox.
 *
 * Only libc; no allocation on the task path beyond one message buffer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fabric/warm_proto.h"

#define MAX_STRINGS 65536
#define CLEAN_DEPTH_MAX 64

extern char **environ;

static int ctl = CU_WARM_CTL_FD;
static int sigfd = -1;

static void send_msg(const void *m, size_t n)
{
    ssize_t r;
    do {
        r = send(ctl, m, n, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
}

/* The provider is gone: nothing of the sandbox may outlive it. */
_Noreturn static void end_all(void)
{
    kill(-1, SIGKILL);
    _exit(0);
}

static uint64_t ru_cpu_us(const struct rusage *ru)
{
    return (uint64_t)ru->ru_utime.tv_sec * 1000000 + (uint64_t)ru->ru_utime.tv_usec +
           (uint64_t)ru->ru_stime.tv_sec * 1000000 + (uint64_t)ru->ru_stime.tv_usec;
}

/* ---- cleaning between tasks ------------------------------------------- */

/* Removes everything below the directory dfd (closed here). Entries a task
 * made unwritable are made writable first: they all belong to our uid. */
static void clean_dir_at(int dfd, int depth)
{
    DIR *d;
    struct dirent *de;

    if (depth > CLEAN_DEPTH_MAX) {
        close(dfd);
        return;
    }
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int sub;
            (void)fchmodat(dirfd(d), de->d_name, 0700, 0);
            sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                clean_dir_at(sub, depth + 1);
            (void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        } else {
            (void)unlinkat(dirfd(d), de->d_name, 0);
        }
    }
    closedir(d);
}

/* The directories every task of this sandbox shares (memory file systems
 * bwrap made), their modes before the first task, and whether their size
 * tells that they are empty: tmpfs and mqueue count a directory's size as
 * a fixed 20 bytes per entry, so an empty one has its first size. */
static struct {
    const char *path;
    mode_t mode;
    off_t empty_size;
    int sized;
} shared_dirs[] = {{"/tmp", 0, 0, 0}, {"/dev/shm", 0, 0, 0}, {"/dev/mqueue", 0, 0, 0}};

#define TMPFS_MAGIC_ 0x01021994
#define MQUEUE_MAGIC_ 0x19800202

static void shared_dirs_note_modes(void)
{
    for (size_t i = 0; i < sizeof(shared_dirs) / sizeof(shared_dirs[0]); i++) {
        struct stat st;
        struct statfs fs;
        if (stat(shared_dirs[i].path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue; /* mode 0: not there at the start */
        shared_dirs[i].mode = st.st_mode & 07777;
        shared_dirs[i].empty_size = st.st_size;
        shared_dirs[i].sized = statfs(shared_dirs[i].path, &fs) == 0 &&
                               (fs.f_type == TMPFS_MAGIC_ || fs.f_type == MQUEUE_MAGIC_);
    }
}

/* Empties every shared directory. The sandbox's user owns their roots, so
 * a task may have taken its write or search bit away to keep its files
 * (or changed it to bother the next task): the first mode is set back
 * first. /dev/mqueue holds POSIX message queues, one file each. A
 * directory whose mode and size are as at the start holds nothing (one
 * stat instead of chmod, open and read per directory and task). */
static void clean_shared_dirs(void)
{
    for (size_t i = 0; i < sizeof(shared_dirs) / sizeof(shared_dirs[0]); i++) {
        struct stat st;
        int fd;
        if (shared_dirs[i].mode == 0)
            continue; /* not there at the start */
        if (shared_dirs[i].sized && lstat(shared_dirs[i].path, &st) == 0 && S_ISDIR(st.st_mode) &&
            (st.st_mode & 07777) == shared_dirs[i].mode && st.st_size == shared_dirs[i].empty_size)
            continue;
        (void)chmod(shared_dirs[i].path, shared_dirs[i].mode);
        fd = open(shared_dirs[i].path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            clean_dir_at(fd, 0);
    }
}

/* Whether this IPC namespace may hold objects of the kind (0 shm, 1 msg,
 * 2 sem): the kernel's count of them, without reading /proc; true when it
 * cannot say. */
static int ipc_in_use(int kind)
{
    if (kind == 0) {
        struct shm_info si;
        return shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&si) < 0 || si.used_ids > 0;
    }
    if (kind == 1) {
        struct msginfo mi;
        return msgctl(0, MSG_INFO, (struct msqid_ds *)(void *)&mi) < 0 || mi.msgpool > 0;
    }
    {
        struct seminfo si;
        union {
            int val;
            struct semid_ds *buf;
            unsigned short *array;
            struct seminfo *info;
        } arg = {.info = &si};
        return semctl(0, 0, SEM_INFO, arg) < 0 || si.semusz > 0;
    }
}

/* Removes the System V IPC objects of this IPC namespace (the sandbox's
 * own), listed in /proc/sysvipc/{shm,msg,sem}: the id is the second
 * column. */
static void clean_ipc(const char *file, int kind)
{
    char line[512];
    FILE *f;

    if (!ipc_in_use(kind))
        return;
    if (!(f = fopen(file, "re")))
        return;
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char *end;
        long id;
        (void)strtol(line, &end, 10); /* key */
        id = strtol(end, NULL, 10);
        if (kind == 0)
            (void)shmctl((int)id, IPC_RMID, NULL);
        else if (kind == 1)
            (void)msgctl((int)id, IPC_RMID, NULL);
        else
            (void)semctl((int)id, 0, IPC_RMID);
    }
    fclose(f);
}

static void clean_all(void)
{
    clean_shared_dirs();
    clean_ipc("/proc/sysvipc/shm", 0);
    clean_ipc("/proc/sysvipc/msg", 1);
    clean_ipc("/proc/sysvipc/sem", 2);
}

/* ---- one task ----------------------------------------------------------- */

struct task_req {
    char *argv[MAX_STRINGS / 2];
    char *env[MAX_STRINGS / 2];
    const char *cwd;
    struct cu_warm_run run;
    int fd_out, fd_err;
};

static struct task_req req;
static char msgbuf[CU_WARM_MSG_MAX];

/* Why the task's first process could not start: it shares our memory
 * until its exec (run_task), so it writes the stage and errno here and
 * exits; after a successful exec nothing was written. A pipe per task
 * did the same with seven more system calls (pipe2, dup2, fcntl, read,
 * three closes). */
static volatile int child_err[2];

/* /dev/null for the tasks' stdin, opened once (close-on-exec; each task
 * gets its own dup as fd 0): an open per task walked the path each time.
 * -1 when it could not be opened at start: then each task opens it. */
static int devnull = -1;

_Noreturn static void child_fail(int stage)
{
    child_err[1] = errno;
    child_err[0] = stage;
    _exit(127);
}

static int set_limit(int res, uint64_t cur, uint64_t max)
{
    struct rlimit r = {.rlim_cur = cur, .rlim_max = max};
    return setrlimit(res, &r);
}

/* The task's first process runs child_exec on this stack, in our memory,
 * until its exec (see run_task). Big enough for execvp's fallback for a
 * script without #! (a new argv of up to MAX_STRINGS / 2 + 2 pointers on
 * the stack) and its path buffer; untouched pages cost nothing. */
#define CHILD_STACK (MAX_STRINGS / 2 * sizeof(char *) + 256 * 1024)
static _Alignas(64) char child_stack[CHILD_STACK];

_Noreturn static void child_exec(void)
{
    sigset_t none;
    int in = devnull;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (setsid() < 0)
        child_fail(CU_WARM_STAGE_SETUP);
    if (in < 0)
        in = open("/dev/null", O_RDWR);
    if (in < 0 || dup2(in, 0) < 0 || dup2(req.fd_out, 1) < 0 || dup2(req.fd_err, 2) < 0)
        child_fail(CU_WARM_STAGE_SETUP);
    /* Only 0-2 survive: never the control socket. */
    if (syscall(SYS_close_range, 3U, ~0U, 0) != 0)
        child_fail(CU_WARM_STAGE_SETUP);
    if ((req.run.lim_cpu_cur &&
         set_limit(RLIMIT_CPU, req.run.lim_cpu_cur, req.run.lim_cpu_max) != 0) ||
        (req.run.lim_fsize && set_limit(RLIMIT_FSIZE, req.run.lim_fsize, req.run.lim_fsize) != 0) ||
        (req.run.lim_nproc && set_limit(RLIMIT_NPROC, req.run.lim_nproc, req.run.lim_nproc) != 0) ||
        (req.run.lim_as && set_limit(RLIMIT_AS, req.run.lim_as, req.run.lim_as) != 0) ||
        set_limit(RLIMIT_CORE, 0, 0) != 0)
        child_fail(CU_WARM_STAGE_SETUP);
    if (chdir(req.cwd) != 0)
        child_fail(CU_WARM_STAGE_CHDIR);
    (void)prctl(PR_SET_PDEATHSIG, 0);
    /* execvp searches the PATH of environ: the task's own, as bwrap does.
     * (This writes our own environ too, which we never read.) */
    environ = req.env;
    execvp(req.argv[0], req.argv);
    child_fail(CU_WARM_STAGE_EXEC);
}

static int child_main(void *arg)
{
    (void)arg;
    child_exec();
}

/* Parses a RUN message of n bytes in msgbuf into req. 0 or -1. */
static int parse_run(size_t n)
{
    const char *p, *end;
    uint32_t want;

    if (n < sizeof(req.run))
        return -1;
    memcpy(&req.run, msgbuf, sizeof(req.run));
    if (req.run.strings_len != n - sizeof(req.run) || req.run.nargv == 0 ||
        req.run.nargv >= MAX_STRINGS / 2 || req.run.nenv >= MAX_STRINGS / 2)
        return -1;
    p = msgbuf + sizeof(req.run);
    end = msgbuf + n;
    want = req.run.nargv + req.run.nenv + 1;
    for (uint32_t i = 0; i < want; i++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            return -1;
        if (i < req.run.nargv)
            req.argv[i] = (char *)p;
        else if (i < req.run.nargv + req.run.nenv)
            req.env[i - req.run.nargv] = (char *)p;
        else
            req.cwd = p;
        p = z + 1;
    }
    req.argv[req.run.nargv] = NULL;
    req.env[req.run.nenv] = NULL;
    return 0;
}

/* Reaps every child that has ended; returns whether pid was among them
 * (its status and rusage in *st, *ru). */
static int reap_some(pid_t pid, int *st, struct rusage *ru)
{
    int found = 0;
    for (;;) {
        int s;
        struct rusage r;
        pid_t got = wait4(-1, &s, WNOHANG, &r);
        if (got <= 0)
            return found;
        if (got == pid) {
            *st = s;
            *ru = r;
            found = 1;
        }
    }
}

static void drain_sigfd(void)
{
    struct signalfd_siginfo si;
    while (read(sigfd, &si, sizeof(si)) > 0) {
    }
}

static void run_task(void)
{
    struct cu_warm_done done = {.h = {CU_WARM_MAGIC, CU_WARM_DONE}};
    struct rusage before, after, ru;
    int st = 0;
    pid_t pid;
    ssize_t n;

    memset(&ru, 0, sizeof(ru));
    getrusage(RUSAGE_CHILDREN, &before);
    /* The child shares our memory and we sleep until its exec (or exit),
     * as posix_spawn does: no copy of our page tables, no copy-on-write
     * faults on either side, nothing for the exec to tear down. A fork
     * here cost ~0.2 ms of CPU per task on this VM. posix_spawn itself
     * cannot set rlimits. The child changes only its own process state
     * (fds, session, limits, directory), environ and child_err; its errno
     * lands in ours, which nothing reads before clone returns. When clone
     * returns the child has exec'd (child_err untouched) or exited. */
    child_err[0] = child_err[1] = 0;
    pid = clone(child_main, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD,
                NULL);
    if (pid < 0) {
        done.stage = CU_WARM_STAGE_SETUP;
        done.err = errno;
        goto out_send;
    }
    if (child_err[0] != 0) {
        done.stage = child_err[0];
        done.err = child_err[1];
    }
    /* Until the task's first process ends: reap what ends, obey KILL. */
    for (;;) {
        struct pollfd pfd[2] = {{.fd = sigfd, .events = POLLIN}, {.fd = ctl, .events = POLLIN}};
        if (reap_some(pid, &st, &ru))
            break;
        if (poll(pfd, 2, -1) < 0)
            continue;
        if (pfd[0].revents)
            drain_sigfd();
        if (pfd[1].revents) {
            struct cu_warm_hdr h;
            n = recv(ctl, &h, sizeof(h), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                end_all();
            if (n == (ssize_t)sizeof(h) && h.magic == CU_WARM_MAGIC && h.type == CU_WARM_KILL)
                kill(-1, SIGKILL);
        }
    }
    /* The task's first process is gone: so is the rest of it. Orphans
     * become our children (we are pid 1), so with no child left nothing
     * else runs, and the kill (a walk over every process of the machine)
     * is skipped. */
    {
        siginfo_t si;
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0 || errno != ECHILD)
            kill(-1, SIGKILL);
    }
    while (wait4(-1, NULL, 0, NULL) > 0 || errno == EINTR) {
    }
    drain_sigfd();
    done.wstatus = st;
    done.maxrss_kb = (uint64_t)ru.ru_maxrss;
out_send:
    getrusage(RUSAGE_CHILDREN, &after);
    done.cpu_us = ru_cpu_us(&after) - ru_cpu_us(&before);
    send_msg(&done, sizeof(done));
    clean_all();
}

/* Receives one message into msgbuf (with up to two descriptors). Returns
 * its length, 0 at EOF, -1 on error. */
static ssize_t recv_msg(int fds[2], int *nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } cbuf;
    struct iovec iov = {.iov_base = msgbuf, .iov_len = sizeof(msgbuf)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                        .msg_controllen = sizeof(cbuf.buf)};
    ssize_t n;

    *nfds = 0;
    do {
        n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *got = (int *)CMSG_DATA(c);
            for (size_t i = 0; i < k; i++) {
                if (*nfds < 2)
                    fds[(*nfds)++] = got[i];
                else
                    close(got[i]);
            }
        }
    }
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        return -1;
    return n;
}

int main(void)
{
    struct cu_warm_hdr ready = {CU_WARM_MAGIC, CU_WARM_READY};
    sigset_t chld;

    /* Not dumpable: a task of the same uid cannot open /proc/1/mem or
     * /proc/1/fd. The children it forks become dumpable again at exec. */
    if (prctl(PR_SET_DUMPABLE, 0) != 0)
        return 120;
    /* Everything but stdio and the control socket (the memfd we were
     * executed from, bwrap's leftovers) goes. */
    for (int fd = 3; fd < CU_WARM_CTL_FD; fd++)
        close(fd);
    if (syscall(SYS_close_range, (unsigned)CU_WARM_CTL_FD + 1, ~0U, 0) != 0)
        return 121;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, NULL) != 0)
        return 122;
    sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0 || fcntl(ctl, F_SETFD, FD_CLOEXEC) != 0)
        return 123;
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    shared_dirs_note_modes();
    send_msg(&ready, sizeof(ready));
    for (;;) {
        /* The tasks' stdout and stderr: the write ends of the provider's
         * pipes, sent with the first task and kept (close-on-exec; the
         * child dups them onto 1 and 2). A task's end is our DONE, not
         * an EOF: the provider keeps write ends of its own. */
        static int out_fd = -1, err_fd = -1;
        int fds[2], nfds;
        ssize_t n = recv_msg(fds, &nfds);
        struct cu_warm_hdr h;

        if (n <= 0)
            end_all();
        (void)reap_some(0, NULL, NULL); /* nothing should be left; be sure */
        if ((size_t)n < sizeof(h)) {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        memcpy(&h, msgbuf, sizeof(h));
        if (h.magic != CU_WARM_MAGIC || h.type != CU_WARM_RUN ||
            !(nfds == 2 || (nfds == 0 && out_fd >= 0)) || parse_run((size_t)n) != 0) {
            /* A message we cannot act on is a provider bug: refuse it
             * loudly rather than guess. */
            struct cu_warm_done bad = {.h = {CU_WARM_MAGIC, CU_WARM_DONE},
                                       .stage = CU_WARM_STAGE_SETUP, .err = EPROTO};
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            if (h.magic == CU_WARM_MAGIC && h.type == CU_WARM_KILL)
                continue; /* a kill that crossed the task's end: harmless */
            send_msg(&bad, sizeof(bad));
            continue;
        }
        if (nfds == 2) {
            if (out_fd >= 0) {
                close(out_fd);
                close(err_fd);
            }
            out_fd = fds[0];
            err_fd = fds[1];
        }
        req.fd_out = out_fd;
        req.fd_err = err_fd;
        run_task();
    }
}
