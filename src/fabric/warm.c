/* warm.c - a warm sandbox per (job, slot) (see warm.h).
 *
 * Process layout: provider -> bwrap (monitor, own process group, uid 65534
 * when the provider is root, in the sandbox's cgroup) -> supervisor (pid 1
 * of the sandbox's pid namespace, fabric/init/warm_init.c) -> one task at
 * a time. The provider talks to the supervisor over a SOCK_SEQPACKET
 * socketpair (fabric/warm_proto.h). Ending the sandbox: closing the
 * socket makes the supervisor kill everything and exit; SIGKILL to
 * bwrap's group and to pid 1 does it regardless (pid 1's death ends every
 * process of the namespace), and the cgroup is destroyed last. We are a
 * child subreaper (sandbox.c), so pid 1 is ours to reap when bwrap's
 * monitor goes first. */
#include "fabric/warm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "fabric/sandbox_int.h"
#include "fabric/seccomp.h"
#include "fabric/warm_proto.h"

#include "base/banned.h"

#define READY_TIMEOUT_MS 10000
#define KILL_GRACE_MS 2000 /* a supervisor that does not answer KILL by then is killed */
#define KEY_MAX 65536

/* warm_blob.c */
size_t cu_warm_init_size(void);
const unsigned char *cu_warm_init_data(void);

struct cu_warm {
    pid_t pid;       /* bwrap's monitor */
    pid_t inner_pid; /* the supervisor (pid 1 inside), host pid; 0 unknown */
    int pidfd;       /* of the monitor; -1 without pidfd_open */
    int ctl;         /* our end of the control socket */
    int rd_err;      /* bwrap's stderr (its own setup errors) */
    int rd_status;   /* bwrap --json-status-fd */
    struct cu_buf status;
    struct cu_cgroup cg; /* the sandbox's group; NONE without one */
    struct cu_cgroup_live cgl; /* its files held open (per-task reads, renames) */
    char *key;           /* the sandbox's shape: cu_warm_fits compares it */
    char *owner;         /* the job whose tasks it runs; NULL until its first */
    struct shape *shape; /* what it was started from, for cu_warm_shape_of */
    char bwrap[CU_PATH_MAX];  /* the bwrap it was started with, resolved on PATH */
    char cg_name[64];         /* its group's name (cu_warm_cgroup_name) */
    char base[CU_PATH_MAX];   /* removed with the sandbox */
    char dir[3][CU_PATH_MAX]; /* work, out, in under the base directory */
    bool has_in;
    /* The capture files of stdout and stderr, kept open from task to task
     * of the same paths (two opens with O_TRUNC and two closes per task
     * otherwise); a task borrows them while it runs (task_release gives
     * them back). cap_used: the last task kept bytes there. */
    int cap_fd[2];
    char cap_path[2][CU_PATH_MAX];
    bool cap_used[2];
    int dfd[2]; /* dir[D_WORK] and dir[D_OUT] open, for the final size check */
    /* The tasks' stdout and stderr pipes, made at the first task and kept
     * (two pipe2, two fcntl, four closes and two reads of EOF per task
     * otherwise). We keep the write ends too, so a task's end is not an
     * EOF but the supervisor's DONE, which it sends only once every
     * process of the task is gone: what the pipes hold then is all the
     * task wrote (cu_warm_task_wait reads it to the end). kill_hard closes
     * the write ends, so that a dead sandbox's dying processes end in an
     * EOF as a sandbox of their own would. */
    int pipe_rd[2], pipe_wr[2];
    bool pipes_sent; /* the supervisor has the write ends (it keeps them) */
    bool dead;  /* ended or misbehaved: only cu_warm_free is left */
    bool busy;  /* a task runs */
    uid_t uid;
    gid_t gid;
};

enum { D_WORK = 0, D_OUT, D_IN };
static const char *const dir_names[3] = {"work", "out", "in"};

/* ---- the supervisor program ------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_memfd = -1;
static int init_errno;

/* Copies the embedded supervisor into a sealed memfd once per process;
 * every warm sandbox is handed a dup of it. */
static void init_memfd_make(void)
{
    const unsigned char *p = cu_warm_init_data();
    size_t left = cu_warm_init_size();
    int fd = memfd_create("cumulus-warm-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0) {
        init_errno = errno;
        return;
    }
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            init_errno = n < 0 ? errno : EIO;
            close(fd);
            return;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, 0555) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        init_errno = errno;
        close(fd);
        return;
    }
    init_memfd = fd;
}

/* ---- directories ---------------------------------------------------------- */

/* Gives the entry name of the directory dfd (path dir) to uid:gid: a
 * directory with everything below it, anything else itself (a symbolic
 * link, not what it points to). 0 or -1. */
static int chown_moved(int dfd, const char *dir, const char *name, uid_t uid, gid_t gid)
{
    struct stat st;
    char path[CU_PATH_MAX];
    struct cu_err e = {0};

    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -1;
    if (cu_path_join(path, sizeof(path), dir, name) != 0)
        return -1;
    return cu_sb_chown_tree(path, uid, gid, &e) == 0 ? 0 : -1;
}

/* Moves every entry of the directory from into the directory to (rename:
 * same file system, nothing copied); with chown, each moved entry (and
 * everything below it) then belongs to uid:gid. to is opened only when
 * there is something to move: most of a trivial task's directories are
 * empty, and this runs six times per task. 0 or -errno of the first
 * failure; 0 means from is empty now (nothing writes there meanwhile).
 * *moved (may be NULL) counts the entries moved. */
static int move_entries(const char *from, const char *to, bool chown, uid_t uid, gid_t gid,
                        size_t *moved)
{
    DIR *d = opendir(from);
    struct dirent *de;
    int tfd = -1, rc = 0;

    if (!d)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (tfd < 0 && (tfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
            rc = -errno;
            break;
        }
        if (renameat(dirfd(d), de->d_name, tfd, de->d_name) != 0) {
            if (rc == 0)
                rc = -errno;
            continue;
        }
        if (moved)
            (*moved)++;
        if (chown && rc == 0 && chown_moved(tfd, to, de->d_name, uid, gid) != 0)
            rc = -EPERM;
    }
    if (tfd >= 0)
        close(tfd);
    closedir(d);
    return rc;
}

/* ---- the shape ------------------------------------------------------------ */

/* A deep copy of the options a sandbox was started from (the per-task ones
 * left out), so that a spare of the same shape can be started later. */
struct shape {
    struct cu_sandbox_opts o;
    struct cu_cgroup cg_parent;
    char *rootfs, *bwrap;
    char **dev_binds, **ro_binds;
};

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int strv_dup(const char *const *v, char ***out)
{
    size_t n = 0;

    *out = NULL;
    if (!v)
        return 0;
    while (v[n])
        n++;
    *out = calloc(n + 1, sizeof(**out));
    if (!*out)
        return -CU_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!((*out)[i] = strdup(v[i])))
            return -CU_ENOMEM; /* the rest are NULL: strv_free stops there */
    }
    return 0;
}

static void shape_free(struct shape *sh)
{
    if (!sh)
        return;
    free(sh->rootfs);
    free(sh->bwrap);
    strv_free(sh->dev_binds);
    strv_free(sh->ro_binds);
    free(sh);
}

static struct shape *shape_copy(const struct cu_sandbox_opts *opts)
{
    struct shape *sh = calloc(1, sizeof(*sh));
    struct cu_sandbox_opts init = CU_SANDBOX_OPTS_INIT;

    if (!sh)
        return NULL;
    sh->o = init;
    sh->o.stdio_cap = opts->stdio_cap;
    sh->o.output_limit = opts->output_limit;
    sh->o.memory_limit = opts->memory_limit;
    sh->o.nproc_limit = opts->nproc_limit;
    sh->o.network = opts->network;
    sh->o.uid = opts->uid;
    sh->o.gid = opts->gid;
    sh->o.no_seccomp = opts->no_seccomp;
    sh->o.cpu_milli = opts->cpu_milli;
    sh->o.disk_limit = opts->disk_limit;
    /* Only whether there is an /in matters: any directory says yes. */
    sh->o.in_dir = opts->in_dir ? "/" : NULL;
    if (opts->cgroup_parent) {
        sh->cg_parent = *opts->cgroup_parent;
        sh->o.cgroup_parent = &sh->cg_parent;
    }
    if ((opts->rootfs && !(sh->rootfs = strdup(opts->rootfs))) ||
        (opts->bwrap && !(sh->bwrap = strdup(opts->bwrap))) ||
        strv_dup(opts->dev_binds, &sh->dev_binds) != 0 ||
        strv_dup(opts->ro_binds, &sh->ro_binds) != 0) {
        shape_free(sh);
        return NULL;
    }
    sh->o.rootfs = sh->rootfs;
    sh->o.bwrap = sh->bwrap;
    sh->o.dev_binds = (const char *const *)sh->dev_binds;
    sh->o.ro_binds = (const char *const *)sh->ro_binds;
    return sh;
}

static bool str_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool strv_equal(const char *const *a, const char *const *b)
{
    size_t i = 0;

    if (!a || !b)
        return (!a || !a[0]) && (!b || !b[0]);
    for (; a[i] && b[i]; i++) {
        if (strcmp(a[i], b[i]) != 0)
            return false;
    }
    return !a[i] && !b[i];
}

/* True when opts has exactly the shape sh was copied from: every field
 * shape_copy keeps is equal (the per-task ones are not compared). The key
 * is built from these alone (a spare, started from a shape, must fit the
 * tasks of that shape), so equal shapes have equal keys; this saves
 * building the key, with its look at the host's root symlinks, for every
 * task of a job. Unequal shapes may still have equal keys: the caller
 * compares keys then. */
static bool shape_equal(const struct shape *sh, const struct cu_sandbox_opts *o)
{
    const struct cu_sandbox_opts *a = &sh->o;

    if (a->stdio_cap != o->stdio_cap || a->output_limit != o->output_limit ||
        a->memory_limit != o->memory_limit || a->nproc_limit != o->nproc_limit ||
        a->network != o->network || a->uid != o->uid || a->gid != o->gid ||
        a->no_seccomp != o->no_seccomp || a->cpu_milli != o->cpu_milli ||
        a->disk_limit != o->disk_limit || (a->in_dir != NULL) != (o->in_dir != NULL) ||
        !str_equal(a->rootfs, o->rootfs) || !str_equal(a->bwrap, o->bwrap) ||
        !strv_equal(a->dev_binds, o->dev_binds) || !strv_equal(a->ro_binds, o->ro_binds) ||
        (a->cgroup_parent != NULL) != (o->cgroup_parent != NULL))
        return false;
    if (o->cgroup_parent) {
        if (a->cgroup_parent->version != o->cgroup_parent->version)
            return false;
        for (int c = 0; c < CU_CG_NCTRL; c++) {
            if (strcmp(a->cgroup_parent->dir[c], o->cgroup_parent->dir[c]) != 0)
                return false;
        }
    }
    return true;
}

/* ---- the key ------------------------------------------------------------ */

/* The bound view of opts: the sandbox's own directories instead of the
 * task's. */
static void sandbox_view(const struct cu_warm *w, const struct cu_sandbox_opts *opts,
                         struct cu_sandbox_opts *v)
{
    *v = *opts;
    v->work_dir = w->dir[D_WORK];
    v->out_dir = w->dir[D_OUT];
    v->in_dir = opts->in_dir ? w->dir[D_IN] : NULL;
    v->argv = NULL;
    v->env = NULL;
    v->cwd = NULL;
}

/* Everything that shapes the sandbox, as one string: the bwrap command
 * line (binds, devices, /tmp size, seccomp, uid) and the cgroup's limits.
 * malloc'd, or NULL. */
static char *make_key(const struct cu_warm *w, const struct cu_sandbox_opts *opts,
                      const char *bwrap_path, struct cu_err *e)
{
    struct cu_sandbox_opts v;
    struct argv_builder av = {0};
    struct cu_buf b;
    char num[160];
    char *key = NULL;

    sandbox_view(w, opts, &v);
    if (cu_sb_build_argv(&v, bwrap_path, CU_SB_ARGV_WARM, &av, e) != 0)
        return NULL;
    cu_buf_init(&b, KEY_MAX);
    for (size_t i = 0; i < av.n; i++) {
        (void)cu_buf_append(&b, av.v[i], strlen(av.v[i]));
        (void)cu_buf_append(&b, "\x1f", 1);
    }
    (void)cu_snprintf(num, sizeof(num), "mem=%llu cpu=%llu pids=%u cg=%s",
                      (unsigned long long)opts->memory_limit, (unsigned long long)opts->cpu_milli,
                      opts->nproc_limit,
                      opts->cgroup_parent && opts->cgroup_parent->version != CU_CG_NONE
                          ? opts->cgroup_parent->dir[CU_CG_MEMORY]
                          : "-");
    if (cu_buf_append(&b, num, strlen(num)) == 0)
        key = strdup(cu_buf_str(&b));
    cu_buf_release(&b);
    cu_sb_av_release(&av);
    if (!key)
        cu_err_set(e, -CU_ENOMEM, "out of memory");
    return key;
}

/* ---- start and end ------------------------------------------------------ */

static void kill_hard(struct cu_warm *w)
{
    if (w->pid > 0) {
        kill(-w->pid, SIGKILL);
        kill(w->pid, SIGKILL);
    }
    /* Our child or our grandchild: either way a process of this sandbox. */
    if (w->inner_pid > 0)
        kill(w->inner_pid, SIGKILL);
    w->dead = true;
    cu_sb_close_fd(&w->pipe_wr[0]);
    cu_sb_close_fd(&w->pipe_wr[1]);
}

/* Learns pid 1's host pid from bwrap's status ("child-pid"). */
static void read_status(struct cu_warm *w)
{
    char buf[1024];
    const char *p;

    while (w->rd_status >= 0) {
        ssize_t n = read(w->rd_status, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || errno != EAGAIN)
                cu_sb_close_fd(&w->rd_status);
            break;
        }
        (void)cu_buf_append(&w->status, buf, (size_t)n);
    }
    if (w->inner_pid == 0 && (p = strstr(cu_buf_str(&w->status), "\"child-pid\"")) != NULL) {
        long v;
        p += strlen("\"child-pid\"");
        while (*p == ' ' || *p == ':')
            p++;
        v = strtol(p, NULL, 10);
        if (v > 1 && v <= INT_MAX)
            w->inner_pid = (pid_t)v;
    }
}

/* The first line bwrap wrote on stderr, for an error message. */
static void read_err_line(struct cu_warm *w, char *out, size_t n)
{
    char buf[512];
    ssize_t k;

    out[0] = '\0';
    if (w->rd_err < 0)
        return;
    do {
        k = read(w->rd_err, buf, sizeof(buf) - 1);
    } while (k < 0 && errno == EINTR);
    if (k <= 0)
        return;
    buf[k] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    (void)cu_snprintf(out, n, "%s", buf);
}

const char *cu_warm_cgroup_name(const struct cu_warm *w)
{
    return w && w->cg.version != CU_CG_NONE ? w->cg_name : NULL;
}

void cu_warm_free(struct cu_warm *w)
{
    if (!w)
        return;
    cu_sb_close_fd(&w->ctl); /* the supervisor sees EOF and ends it all */
    if (w->pid > 0) {
        read_status(w);
        kill_hard(w);
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        if (w->inner_pid > 0) {
            /* Reparented to us (a subreaper) once the monitor is gone;
             * ECHILD when the monitor reaped it first. */
            while (waitpid(w->inner_pid, NULL, 0) < 0 && errno == EINTR) {
            }
        }
    }
    cu_sb_close_fd(&w->pidfd);
    cu_sb_close_fd(&w->rd_err);
    cu_sb_close_fd(&w->rd_status);
    cu_sb_close_fd(&w->cap_fd[0]);
    cu_sb_close_fd(&w->cap_fd[1]);
    cu_sb_close_fd(&w->dfd[D_WORK]);
    cu_sb_close_fd(&w->dfd[D_OUT]);
    for (int i = 0; i < 2; i++) {
        cu_sb_close_fd(&w->pipe_rd[i]);
        cu_sb_close_fd(&w->pipe_wr[i]);
    }
    cu_cgroup_live_close(&w->cgl);
    if (w->cg.version != CU_CG_NONE && cu_cgroup_destroy(&w->cg) != 0)
        cu_warn("cannot remove cgroup %s", w->cg.dir[CU_CG_MEMORY]);
    if (w->base[0] && cu_rm_rf(w->base) != 0)
        cu_warn("cannot remove %s", w->base);
    cu_buf_release(&w->status);
    free(w->key);
    free(w->owner);
    shape_free(w->shape);
    free(w);
}

/* Waits for the supervisor's READY. 0, or -CU_ESANDBOX with e saying what
 * bwrap said. */
static int wait_ready(struct cu_warm *w, struct cu_err *e)
{
    int64_t until = cu_mono_ms() + READY_TIMEOUT_MS;
    struct cu_warm_hdr h;
    char line[300];

    for (;;) {
        struct pollfd p = {.fd = w->ctl, .events = POLLIN};
        int64_t left = until - cu_mono_ms();
        ssize_t n;

        if (left <= 0) {
            read_err_line(w, line, sizeof(line));
            return cu_err_set(e, -CU_ESANDBOX, "warm sandbox: no answer from its supervisor%s%s",
                              line[0] ? ": " : "", line);
        }
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        n = recv(w->ctl, &h, sizeof(h), MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n == (ssize_t)sizeof(h) && h.magic == CU_WARM_MAGIC && h.type == CU_WARM_READY)
            return 0;
        /* EOF: bwrap or the supervisor ended. bwrap says why on stderr. */
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        w->pid = 0;
        read_err_line(w, line, sizeof(line));
        return cu_err_set(e, -CU_ESANDBOX, "warm sandbox setup failed: %s",
                          line[0] ? line : "bwrap exited before its supervisor was ready");
    }
}

int cu_warm_start(const struct cu_sandbox_opts *opts, const char *base_dir, const char *owner,
                  struct cu_warm **out, struct cu_err *e)
{
    static atomic_uint serial;
    struct cu_warm *w;
    struct cu_sandbox_opts v;
    struct argv_builder av = {0};
    struct child_plan plan;
    char bwrap_path[CU_PATH_MAX], name[64];
    int p_err[2] = {-1, -1}, p_status[2] = {-1, -1}, sp[2] = {-1, -1};
    int devnull = -1, seccomp_fd = -1, init_fd = -1;
    int cg_fds[CU_CG_NCTRL] = {-1, -1, -1, -1};
    bool root = geteuid() == 0;
    int rc;

    *out = NULL;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        return cu_err_set(e, -CU_ESANDBOX, "cannot become a child subreaper: %s", strerror(errno));
    if (opts->uid < 0 || opts->gid < 0 || (root && (opts->uid == 0 || opts->gid == 0)))
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'uid'/'gid': tasks never run as root");
    if (cu_sb_resolve_exe(opts->bwrap ? opts->bwrap : "bwrap", bwrap_path, sizeof(bwrap_path)) != 0)
        return cu_err_set(e, -CU_ESANDBOX, "bwrap not found on PATH (install bubblewrap)");
    pthread_once(&init_once, init_memfd_make);
    if (init_memfd < 0)
        return cu_err_set(e, -CU_ESANDBOX, "warm sandbox: cannot load its supervisor: %s",
                          strerror(init_errno));

    w = calloc(1, sizeof(*w));
    if (!w)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    w->pidfd = w->ctl = w->rd_err = w->rd_status = w->cap_fd[0] = w->cap_fd[1] = -1;
    w->dfd[D_WORK] = w->dfd[D_OUT] = -1;
    w->pipe_rd[0] = w->pipe_rd[1] = w->pipe_wr[0] = w->pipe_wr[1] = -1;
    cu_cgroup_live_init(&w->cgl);
    w->uid = (uid_t)opts->uid;
    w->gid = (gid_t)opts->gid;
    w->has_in = opts->in_dir != NULL;
    cu_buf_init(&w->status, STATUS_MAX);
    if (cu_snprintf(w->base, sizeof(w->base), "%s", base_dir) != 0) {
        w->base[0] = '\0';
        rc = cu_err_set(e, -CU_EINVAL, "warm sandbox directory '%s': too long", base_dir);
        goto out_free;
    }
    (void)cu_snprintf(w->bwrap, sizeof(w->bwrap), "%s", bwrap_path); /* same size */
    if ((owner && !(w->owner = strdup(owner))) || !(w->shape = shape_copy(opts))) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_free;
    }
    for (int i = 0; i < 3; i++) {
        if (cu_path_join(w->dir[i], sizeof(w->dir[i]), base_dir, dir_names[i]) != 0) {
            rc = cu_err_set(e, -CU_EINVAL, "warm sandbox directory '%s': too long", base_dir);
            goto out_free;
        }
        if (cu_mkdir_p(w->dir[i], 0755) != 0 || chmod(w->dir[i], 0755) != 0 ||
            cu_empty_dir(w->dir[i]) != 0) {
            rc = cu_err_set(e, -CU_ESANDBOX, "warm sandbox: cannot prepare %s: %s", w->dir[i],
                            strerror(errno));
            goto out_free;
        }
    }
    if (chmod(base_dir, 0755) != 0) { /* the task uid must reach the three */
        rc = cu_err_set(e, -CU_ESANDBOX, "warm sandbox: chmod %s: %s", base_dir, strerror(errno));
        goto out_free;
    }
    if (root && ((rc = cu_sb_chown_tree(w->dir[D_WORK], w->uid, w->gid, e)) != 0 ||
                 (rc = cu_sb_chown_tree(w->dir[D_OUT], w->uid, w->gid, e)) != 0))
        goto out_free;
    if (!(w->key = make_key(w, opts, bwrap_path, e))) {
        rc = -CU_ENOMEM;
        goto out_free;
    }
    sandbox_view(w, opts, &v);
    if ((rc = cu_sb_build_argv(&v, bwrap_path, CU_SB_ARGV_WARM, &av, e)) != 0)
        goto out_free;
    if (opts->cgroup_parent && opts->cgroup_parent->version != CU_CG_NONE) {
        struct cu_cgroup_limits lim = {.memory = opts->memory_limit,
                                       .cpu_milli = opts->cpu_milli,
                                       .pids = opts->nproc_limit ? opts->nproc_limit : 256};
        (void)cu_snprintf(name, sizeof(name), "warm-%d-%u", (int)getpid(),
                          atomic_fetch_add(&serial, 1));
        (void)cu_snprintf(w->cg_name, sizeof(w->cg_name), "%s", name);
        rc = cu_cgroup_create(opts->cgroup_parent, name, &lim, &w->cg, e);
        if (rc == 0 && ((rc = cu_cgroup_open_procs(&w->cg, cg_fds, e)) != 0 ||
                        (rc = cu_cgroup_live_open(&w->cg, &w->cgl, e)) != 0)) {
            cu_cgroup_close_fds(cg_fds);
            (void)cu_cgroup_destroy(&w->cg);
            memset(&w->cg, 0, sizeof(w->cg));
        }
        if (rc) {
            memset(&w->cg, 0, sizeof(w->cg));
            goto out_free_argv;
        }
    }

    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    init_fd = fcntl(init_memfd, F_DUPFD_CLOEXEC, 3);
    if (devnull < 0 || init_fd < 0 || pipe2(p_err, O_CLOEXEC) != 0 ||
        pipe2(p_status, O_CLOEXEC) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) {
        rc = cu_err_set(e, -CU_ESANDBOX, "warm sandbox: cannot create pipes: %s", strerror(errno));
        goto out_close;
    }
    if (!opts->no_seccomp && (seccomp_fd = cu_seccomp_task_fd(e)) < 0) {
        rc = seccomp_fd;
        goto out_close;
    }
    memset(&plan, 0, sizeof(plan));
    plan.argv = av.v;
    plan.fds[0] = devnull;
    plan.fds[1] = p_err[1];
    plan.fds[2] = p_err[1];
    plan.fds[FD_STATUS] = p_status[1];
    plan.fds[FD_SECCOMP] = seccomp_fd >= 0 ? seccomp_fd : devnull;
    plan.fds[FD_CONTROL] = sp[1];
    plan.fds[FD_INIT] = init_fd;
    plan.nfds = FD_MAX_PASSED;
    plan.drop_privileges = root;
    plan.uid = w->uid;
    plan.gid = w->gid;
    plan.check_dirs[0] = w->dir[D_WORK];
    plan.check_dirs[1] = w->dir[D_OUT];
    plan.check_dirs[2] = w->has_in ? w->dir[D_IN] : NULL;
    memcpy(plan.cg_fds, cg_fds, sizeof(plan.cg_fds));
    /* No rlimits on bwrap and the supervisor: each task gets its own from
     * the supervisor (cu_warm_run); the cgroup caps the whole sandbox. */
    rc = cu_sb_spawn(&plan, &w->pid, e);
    if (rc)
        goto out_close;
    cu_sb_close_fd(&p_err[1]);
    cu_sb_close_fd(&p_status[1]);
    cu_sb_close_fd(&sp[1]);
    w->ctl = sp[0];
    w->rd_err = p_err[0];
    w->rd_status = p_status[0];
    sp[0] = p_err[0] = p_status[0] = -1;
    fcntl(w->rd_err, F_SETFL, O_NONBLOCK);
    fcntl(w->rd_status, F_SETFL, O_NONBLOCK);
    w->pidfd = (int)syscall(SYS_pidfd_open, w->pid, 0);
    if (w->pidfd >= 0)
        fcntl(w->pidfd, F_SETFD, FD_CLOEXEC);
    rc = wait_ready(w, e);
    if (rc == 0) {
        read_status(w);
        if (w->inner_pid == 0)
            rc = cu_err_set(e, -CU_ESANDBOX, "warm sandbox: bwrap did not say its child's pid");
    }
out_close:
    cu_sb_close_fd(&devnull);
    cu_sb_close_fd(&init_fd);
    cu_sb_close_fd(&seccomp_fd);
    cu_cgroup_close_fds(cg_fds);
    for (int i = 0; i < 2; i++) {
        cu_sb_close_fd(&p_err[i]);
        cu_sb_close_fd(&p_status[i]);
        cu_sb_close_fd(&sp[i]);
    }
out_free_argv:
    cu_sb_av_release(&av);
    if (rc == 0) {
        *out = w;
        return 0;
    }
out_free:
    cu_warm_free(w);
    return rc;
}

bool cu_warm_fits(struct cu_warm *w, const struct cu_sandbox_opts *opts, const char *owner)
{
    char bwrap_path[CU_PATH_MAX];
    const char *bwrap = opts->bwrap ? opts->bwrap : "bwrap";
    const char *had = w && w->shape->o.bwrap ? w->shape->o.bwrap : "bwrap";
    struct cu_err e = {0};
    char *key;
    bool same;

    if (!w || w->dead || w->busy)
        return false;
    /* A sandbox that has run no task yet is as clean as a new one: it
     * may become any job's. Checked first: it is the cheap test, and
     * the one a new job's task fails. */
    if (w->owner && strcmp(w->owner, owner) != 0)
        return false;
    if (w->pidfd >= 0) {
        struct pollfd p = {.fd = w->pidfd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0) { /* bwrap ended between tasks */
            w->dead = true;
            return false;
        }
    }
    if (shape_equal(w->shape, opts))
        return true;
    /* The same bwrap asked for is the one found on PATH at the start (a
     * PATH search per task was ten failed access() calls here). */
    if (strcmp(bwrap, had) == 0)
        (void)cu_snprintf(bwrap_path, sizeof(bwrap_path), "%s", w->bwrap);
    else if (cu_sb_resolve_exe(bwrap, bwrap_path, sizeof(bwrap_path)) != 0)
        return false;
    key = make_key(w, opts, bwrap_path, &e);
    same = key && strcmp(key, w->key) == 0;
    free(key);
    return same;
}

struct cu_warm_shape *cu_warm_shape_of(const struct cu_warm *w)
{
    return (struct cu_warm_shape *)shape_copy(&w->shape->o);
}

struct cu_warm_shape *cu_warm_shape_dup(const struct cu_warm_shape *sh)
{
    return (struct cu_warm_shape *)shape_copy(&((const struct shape *)sh)->o);
}

void cu_warm_shape_free(struct cu_warm_shape *sh)
{
    shape_free((struct shape *)sh);
}

int cu_warm_start_shape(const struct cu_warm_shape *sh, const char *base_dir,
                        struct cu_warm **out, struct cu_err *e)
{
    return cu_warm_start(&((const struct shape *)sh)->o, base_dir, NULL, out, e);
}

int cu_warm_own(struct cu_warm *w, const char *owner, struct cu_err *e)
{
    if (!w->owner && !(w->owner = strdup(owner)))
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    return 0;
}

int cu_warm_acquire(struct cu_warm **wp, const struct cu_sandbox_opts *opts,
                    const char *base_dir, const char *owner, struct cu_err *e)
{
    if (*wp && cu_warm_fits(*wp, opts, owner))
        return cu_warm_own(*wp, owner, e);
    cu_warm_free(*wp);
    *wp = NULL;
    return cu_warm_start(opts, base_dir, owner, wp, e);
}

/* ---- one task ------------------------------------------------------------ */

/* Makes w's stdout and stderr pipes if they are not there yet: read ends
 * non-blocking; all four close-on-exec (the supervisor gets the write ends
 * with the sandbox's first task and keeps them). 0 or -CU_ESANDBOX. */
static int pipes_make(struct cu_warm *w, struct cu_err *e)
{
    for (int i = 0; i < 2; i++) {
        int p[2];
        if (w->pipe_rd[i] >= 0)
            continue;
        if (pipe2(p, O_CLOEXEC) != 0)
            return cu_err_set(e, -CU_ESANDBOX, "cannot create pipes: %s", strerror(errno));
        if (fcntl(p[0], F_SETFL, O_NONBLOCK) != 0) {
            close(p[0]);
            close(p[1]);
            return cu_err_set(e, -CU_ESANDBOX, "cannot set up pipes: %s", strerror(errno));
        }
        w->pipe_rd[i] = p[0];
        w->pipe_wr[i] = p[1];
    }
    return 0;
}

/* The capture file at path for stream i (0 stdout, 1 stderr), empty and
 * written from its start, into *fd (the sandbox's: the task borrows it
 * until capture_give_back). The one kept from the last task when it is
 * the same path and still linked (a file unlinked or replaced meanwhile
 * would swallow the log); else opened afresh (cu_sb_open_capture). */
static int capture_take(struct cu_warm *w, int i, const char *path, int *fd, struct cu_err *e)
{
    int rc;

    if (w->cap_fd[i] >= 0 && strcmp(w->cap_path[i], path) == 0) {
        struct stat st;
        /* Another sandbox of the slot (a spare) may have written the
         * same file since: its size says so. Our own offset is 0 unless
         * our last task kept bytes. */
        if (fstat(w->cap_fd[i], &st) == 0 && st.st_nlink > 0 &&
            ((!w->cap_used[i] && st.st_size == 0) ||
             (ftruncate(w->cap_fd[i], 0) == 0 && lseek(w->cap_fd[i], 0, SEEK_SET) == 0))) {
            w->cap_used[i] = false;
            *fd = w->cap_fd[i];
            return 0;
        }
    }
    cu_sb_close_fd(&w->cap_fd[i]);
    rc = cu_sb_open_capture(path, fd, e);
    if (rc == 0 && cu_snprintf(w->cap_path[i], sizeof w->cap_path[i], "%s", path) == 0) {
        w->cap_fd[i] = *fd;
        w->cap_used[i] = false;
    }
    return rc;
}

/* Takes the capture files s borrowed back from its warm sandbox (before
 * cu_sandbox_free, which closes the ones s owns), noting whether the task
 * kept bytes in each. */
static void capture_give_back(struct cu_sandbox *s)
{
    struct cu_warm *w = s->warm;
    int *fds[2] = {&s->f_out, &s->f_err};
    const uint64_t kept[2] = {s->out_kept, s->err_kept};

    for (int i = 0; i < 2; i++) {
        if (*fds[i] >= 0 && *fds[i] == w->cap_fd[i]) {
            w->cap_used[i] = kept[i] > 0;
            *fds[i] = -1;
        }
    }
}

/* The RUN message for opts into b: PATH and HOME as bwrap sets them, then
 * opts->env, a later entry replacing an earlier one of the same name
 * (bwrap's --setenv order). -CU_EINVAL for a bad entry, -CU_ETOOBIG. */
static int build_run(const struct cu_warm *w, const struct cu_sandbox_opts *opts,
                     uint64_t *cpu_limit_s, struct cu_buf *b, struct cu_err *e)
{
    static const char *const base_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work"};
    struct cu_warm_run run;
    struct child_plan plan;
    const char **env;
    size_t nin = 0, n = 0;
    int rc = 0;

    memset(&run, 0, sizeof(run));
    memset(&plan, 0, sizeof(plan));
    cu_sb_plan_limits(opts, &w->cg, &plan, cpu_limit_s);
    run.h.magic = CU_WARM_MAGIC;
    run.h.type = CU_WARM_RUN;
    if (plan.set_cpu) {
        run.lim_cpu_cur = plan.lim_cpu.rlim_cur;
        run.lim_cpu_max = plan.lim_cpu.rlim_max;
    }
    if (plan.set_fsize)
        run.lim_fsize = plan.lim_fsize.rlim_cur;
    if (plan.set_nproc)
        run.lim_nproc = plan.lim_nproc.rlim_cur;
    if (plan.set_as)
        run.lim_as = plan.lim_as.rlim_cur;
    while (opts->env && opts->env[nin])
        nin++;
    env = calloc(nin + 2, sizeof(*env));
    if (!env)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    for (size_t i = 0; i < nin + 2; i++) {
        const char *kv = i < 2 ? base_env[i] : opts->env[i - 2];
        const char *eq = strchr(kv, '=');
        size_t klen;
        bool replaced = false;
        if (!eq || eq == kv) {
            rc = cu_err_set(e, -CU_EINVAL, "env entry '%s': must be KEY=VALUE", kv);
            goto out_free;
        }
        klen = (size_t)(eq - kv) + 1;
        for (size_t j = 0; j < n && !replaced; j++) {
            if (strncmp(env[j], kv, klen) == 0) {
                env[j] = kv;
                replaced = true;
            }
        }
        if (!replaced)
            env[n++] = kv;
    }
    for (size_t i = 0; opts->argv[i]; i++) {
        run.nargv++;
        (void)cu_buf_append(b, opts->argv[i], strlen(opts->argv[i]) + 1);
    }
    for (size_t i = 0; i < n; i++)
        (void)cu_buf_append(b, env[i], strlen(env[i]) + 1);
    run.nenv = (uint32_t)n;
    {
        const char *cwd = opts->cwd ? opts->cwd : "/work";
        if (cu_buf_append(b, cwd, strlen(cwd) + 1) != 0 ||
            b->len + sizeof(run) > CU_WARM_MSG_MAX) {
            rc = cu_err_set(e, -CU_ETOOBIG, "command and environment too large for a warm sandbox");
            goto out_free;
        }
    }
    run.strings_len = (uint32_t)b->len;
    /* The header goes in front: shift the strings. */
    if (cu_buf_append(b, (const char *)&run, sizeof(run)) != 0) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_free;
    }
    memmove(b->data + sizeof(run), b->data, run.strings_len);
    memcpy(b->data, &run, sizeof(run));
out_free:
    free(env);
    return rc;
}

/* Sends a task's RUN message; with fd_out >= 0, the write ends fd_out and
 * fd_err of its stdout and stderr ride along (the supervisor keeps them
 * for the next tasks), else none. 0 or -1 (the supervisor is gone). */
static int send_run(struct cu_warm *w, const struct cu_buf *b, int fd_out, int fd_err)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } cbuf;
    struct iovec iov = {.iov_base = b->data, .iov_len = b->len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                        .msg_controllen = sizeof(cbuf.buf)};
    struct cmsghdr *c;
    int fds[2] = {fd_out, fd_err};
    ssize_t n;

    if (fd_out < 0) { /* the supervisor kept the last ones */
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        goto out_send;
    }
    memset(&cbuf, 0, sizeof(cbuf));
    c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
out_send:
    do {
        n = sendmsg(w->ctl, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)b->len ? 0 : -1;
}

int cu_warm_run(struct cu_warm *w, const struct cu_sandbox_opts *opts, struct cu_sandbox **out,
                struct cu_err *e)
{
    struct cu_sandbox *s;
    struct cu_buf msg;
    const char *task_dirs[3] = {opts->work_dir, opts->out_dir, opts->in_dir};
    uint64_t cpu_limit_s = 0;
    int rc;

    *out = NULL;
    if (w->busy)
        return cu_err_set(e, -CU_ECONFLICT, "warm sandbox: a task runs already");
    if (w->dead)
        return cu_err_set(e, -CU_ESANDBOX, "warm sandbox: it has ended");
    if (!w->owner)
        return cu_err_set(e, -CU_EINVAL, "warm sandbox: no owner yet (cu_warm_acquire)");
    if (!opts->argv || !opts->argv[0] || !opts->argv[0][0])
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'argv': empty command");
    if ((rc = cu_sb_check_dir("work_dir", opts->work_dir, e)) != 0 ||
        (rc = cu_sb_check_dir("out_dir", opts->out_dir, e)) != 0 ||
        (opts->in_dir && (rc = cu_sb_check_dir("in_dir", opts->in_dir, e)) != 0))
        return rc;
    if (!opts->stdout_path || !opts->stderr_path)
        return cu_err_set(e, -CU_EINVAL, "sandbox option 'stdout_path'/'stderr_path': missing");
    if ((opts->in_dir != NULL) != w->has_in)
        return cu_err_set(e, -CU_EINVAL, "warm sandbox: in_dir does not match the sandbox");

    cu_buf_init(&msg, CU_WARM_MSG_MAX + sizeof(struct cu_warm_run));
    if ((rc = build_run(w, opts, &cpu_limit_s, &msg, e)) != 0) {
        cu_buf_release(&msg);
        return rc;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        cu_buf_release(&msg);
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    }
    s->pidfd = s->rd_out = s->rd_err = s->rd_status = s->f_out = s->f_err = -1;
    /* Opened once per sandbox (a failure only means the paths are used). */
    for (int i = D_WORK; i <= D_OUT; i++)
        if (w->dfd[i] < 0)
            w->dfd[i] = open(w->dir[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    s->work_dfd = w->dfd[D_WORK];
    s->out_dfd = w->dfd[D_OUT];
    s->forced = CU_SB_RUNNING;
    s->left_work = s->left_out = UINT64_MAX; /* not looked yet */
    s->warm = w;
    s->pid = w->pid;
    s->inner_pid = w->inner_pid;
    s->stdio_cap = opts->stdio_cap;
    s->output_limit = opts->output_limit;
    s->disk_limit = opts->disk_limit;
    s->time_limit_ms = opts->time_limit_ms;
    s->cpu_limit_s = cpu_limit_s;
    (void)cu_snprintf(s->cmd, sizeof(s->cmd), "%s", opts->argv[0]); /* cut when longer */
    s->cg = w->cg;
    cu_buf_init(&s->status, 16);
    s->work_dir = strdup(w->dir[D_WORK]);
    s->out_dir = strdup(w->dir[D_OUT]);
    for (int i = 0; i < 3; i++)
        s->task_dir[i] = task_dirs[i] ? strdup(task_dirs[i]) : NULL;
    if (!s->work_dir || !s->out_dir || !s->task_dir[0] || !s->task_dir[1] ||
        (task_dirs[2] && !s->task_dir[2])) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_free;
    }
    if ((rc = capture_take(w, 0, opts->stdout_path, &s->f_out, e)) != 0 ||
        (rc = capture_take(w, 1, opts->stderr_path, &s->f_err, e)) != 0)
        goto out_free;
    if ((rc = pipes_make(w, e)) != 0)
        goto out_free;
    /* The task's files into the sandbox's directories; as root, what goes
     * into /work and /out becomes the task uid's as it moves (the
     * directories themselves became its at the start, and a task without
     * capabilities cannot give them away). */
    for (int i = 0; i < 3; i++) {
        static const unsigned known[3] = {CU_SB_EMPTY_WORK, CU_SB_EMPTY_OUT, CU_SB_EMPTY_IN};
        size_t n = 0;
        int mrc;
        if (!task_dirs[i] || (opts->known_empty & known[i]))
            continue;
        mrc = move_entries(task_dirs[i], w->dir[i], geteuid() == 0 && i != D_IN, w->uid, w->gid,
                           &n);
        if (i == D_IN && (n > 0 || mrc != 0))
            s->in_moved = true; /* to be emptied after the task */
        if (mrc != 0) {
            rc = cu_err_set(e, -CU_ESANDBOX, "warm sandbox: cannot move %s into %s: %s",
                            task_dirs[i], w->dir[i], strerror(-mrc));
            goto out_move_back;
        }
    }
    if (w->cg.version != CU_CG_NONE) {
        /* The group keeps its own name: renaming it to the task's and back
         * (for `cumulus provider status` to find it) took the kernel's
         * global cgroup mutex twice per task, ~8 % of the provider's CPU
         * under short tasks; the provider says which group runs which
         * task instead (cu_warm_cgroup_name). opts->cgroup_name names only
         * a sandbox of its own. */
        s->cg = w->cg;
        cu_cgroup_live_reset_peak(&w->cg, &w->cgl);
        cu_cgroup_live_stats(&w->cgl, &s->cg_base);
    }
    s->start_ms = cu_mono_ms();
    if (send_run(w, &msg, w->pipes_sent ? -1 : w->pipe_wr[0], w->pipe_wr[1]) != 0) {
        kill_hard(w);
        rc = cu_err_set(e, -CU_ESANDBOX, "warm sandbox: its supervisor is gone");
        goto out_move_back;
    }
    w->pipes_sent = true;
    s->rd_out = w->pipe_rd[0];
    s->rd_err = w->pipe_rd[1];
    s->rd_borrowed = true;
    s->time_deadline_ms = opts->time_limit_ms ? s->start_ms + (int64_t)opts->time_limit_ms : 0;
    s->next_size_check_ms = s->start_ms + SIZE_CHECK_MS;
    w->busy = true;
    cu_buf_release(&msg);
    *out = s;
    return 0;

out_move_back:
    for (int i = 0; i < 3; i++) {
        if (task_dirs[i])
            (void)move_entries(w->dir[i], task_dirs[i], false, 0, 0, NULL);
    }
out_free:
    cu_buf_release(&msg);
    capture_give_back(s);
    s->warm = NULL;
    s->pid = 0;
    memset(&s->cg, 0, sizeof(s->cg));
    cu_sandbox_free(s);
    return rc;
}

void cu_warm_task_cg_stats(struct cu_sandbox *s, struct cu_cgroup_stats *st)
{
    cu_cgroup_live_stats(&s->warm->cgl, st);
}

void cu_warm_task_kill(struct cu_sandbox *s)
{
    struct cu_warm *w = s->warm;
    struct cu_warm_hdr h = {CU_WARM_MAGIC, CU_WARM_KILL};

    if (s->kill_sent_ms)
        return;
    s->kill_sent_ms = cu_mono_ms();
    /* A paused supervisor cannot act on it: end the whole sandbox. */
    if (s->paused || send(w->ctl, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(h))
        kill_hard(w);
}

/* Reads the supervisor's answer if there is one. */
static void poll_done(struct cu_sandbox *s, int64_t now)
{
    struct cu_warm *w = s->warm;
    struct cu_warm_done d;
    ssize_t n;

    if (s->reaped)
        return;
    if (!w->dead) {
        n = recv(w->ctl, &d, sizeof(d), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (w->pidfd >= 0) {
                struct pollfd p = {.fd = w->pidfd, .events = POLLIN};
                if (poll(&p, 1, 0) <= 0)
                    goto check_grace;
            } else if (kill(w->pid, 0) == 0) {
                goto check_grace;
            }
            kill_hard(w); /* bwrap ended under the task */
        } else if (n == (ssize_t)sizeof(d) && d.h.magic == CU_WARM_MAGIC &&
                   d.h.type == CU_WARM_DONE) {
            s->ru.ru_utime.tv_sec = (time_t)(d.cpu_us / 1000000);
            s->ru.ru_utime.tv_usec = (suseconds_t)(d.cpu_us % 1000000);
            s->ru.ru_maxrss = (long)d.maxrss_kb;
            if (d.stage == CU_WARM_STAGE_NONE) {
                s->have_code = true;
                if (WIFEXITED(d.wstatus))
                    s->code = WEXITSTATUS(d.wstatus);
                else if (WIFSIGNALED(d.wstatus))
                    s->code = 128 + WTERMSIG(d.wstatus);
            } else if (d.stage == CU_WARM_STAGE_EXEC) {
                s->exec_error = true;
                (void)cu_snprintf(s->setup_error, sizeof(s->setup_error), "%s: %s", s->cmd,
                                  strerror(d.err));
            } else {
                (void)cu_snprintf(s->setup_error, sizeof(s->setup_error), "%s: %s",
                                  d.stage == CU_WARM_STAGE_CHDIR ? "cannot enter the working "
                                                                   "directory"
                                                                 : "cannot start the task",
                                  strerror(d.err));
            }
        } else {
            kill_hard(w); /* EOF or a message that makes no sense */
        }
    }
    if (w->dead) {
        if (!s->have_code && !s->setup_error[0] && s->forced == CU_SB_RUNNING)
            (void)cu_snprintf(s->setup_error, sizeof(s->setup_error),
                              "the warm sandbox ended under the task");
    }
    s->reaped = true;
    s->end_ms = now;
    s->drain_deadline_ms = now + DRAIN_AFTER_EXIT_MS;
    return;
check_grace:
    if (s->kill_sent_ms && now - s->kill_sent_ms >= KILL_GRACE_MS) {
        kill_hard(w); /* the supervisor did not obey KILL */
        s->reaped = true;
        s->end_ms = now;
        s->drain_deadline_ms = now + DRAIN_AFTER_EXIT_MS;
    }
}

/* After the task: the files of its /out back to its own out directory (a
 * move that took everything leaves the sandbox's directory empty: nothing
 * else to do there), /work and /in emptied (scratch, and the provider's
 * copies of the inputs), so the next task finds all three empty. A
 * directory known to be empty is not read again: /in when nothing went
 * in (the task cannot write there), /work and /out when the final size
 * check, run after every process of the task ended, found nothing. */
static void task_release(struct cu_sandbox *s)
{
    struct cu_warm *w = s->warm;

    capture_give_back(s);
    for (int i = 0; i < 3; i++) {
        bool moved = false;
        if ((i == D_IN && !s->in_moved) || (i == D_WORK && s->left_work == 0) ||
            (i == D_OUT && s->left_out == 0))
            continue;
        if (i == D_OUT && s->task_dir[i]) {
            moved = move_entries(w->dir[i], s->task_dir[i], false, 0, 0, NULL) == 0;
            if (!moved)
                cu_warn("warm sandbox: cannot move %s back to %s", w->dir[i], s->task_dir[i]);
        }
        if (!moved && cu_empty_dir(w->dir[i]) != 0) {
            cu_warn("warm sandbox: cannot empty %s; ending the sandbox", w->dir[i]);
            kill_hard(w);
        }
    }
    w->busy = false;
}

int cu_warm_task_wait(struct cu_sandbox *s, int timeout_ms)
{
    int64_t until = timeout_ms < 0 ? INT64_MAX : cu_mono_ms() + timeout_ms;
    struct cu_warm *w = s->warm;

    for (;;) {
        struct pollfd pfd[4];
        nfds_t np = 0;
        int64_t now, wake;

        if (s->done)
            return 0;
        now = cu_mono_ms();
        if (!s->reaped)
            cu_sb_enforce_limits(s, now);
        if (!s->reaped && (!s->paused || w->dead))
            poll_done(s, now);
        if (s->reaped) {
            cu_sb_drain_all(s);
            /* DONE came after every process of the task ended: the pipes
             * were read to the end just now. A dead sandbox's pipes end
             * in EOF instead (kill_hard closed our write ends). */
            if (!w->dead) {
                s->rd_out = s->rd_err = -1;
                s->rd_borrowed = false;
            }
            if ((s->rd_out < 0 && s->rd_err < 0) || now >= s->drain_deadline_ms) {
                /* The result first: the final size check reads the
                 * sandbox's directories, the cgroup its current name. */
                cu_sb_finish(s);
                task_release(s);
                return 0;
            }
        }
        if (now >= until)
            return -CU_EAGAIN;

        wake = until;
        if (!s->reaped) {
            if (s->time_deadline_ms && !s->paused && s->time_deadline_ms < wake)
                wake = s->time_deadline_ms;
            if (s->next_size_check_ms < wake)
                wake = s->next_size_check_ms;
            if (s->kill_sent_ms && s->kill_sent_ms + KILL_GRACE_MS < wake)
                wake = s->kill_sent_ms + KILL_GRACE_MS;
            if (!w->dead && !s->paused) {
                pfd[np++] = (struct pollfd){.fd = w->ctl, .events = POLLIN};
                if (w->pidfd >= 0)
                    pfd[np++] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
                else if (now + 20 < wake)
                    wake = now + 20;
            }
        } else if (s->drain_deadline_ms < wake) {
            wake = s->drain_deadline_ms;
        }
        if (s->rd_out >= 0)
            pfd[np++] = (struct pollfd){.fd = s->rd_out, .events = POLLIN};
        if (s->rd_err >= 0)
            pfd[np++] = (struct pollfd){.fd = s->rd_err, .events = POLLIN};
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

void cu_warm_task_free(struct cu_sandbox *s)
{
    if (!s->done) {
        /* Freed while running: the sandbox cannot be trusted to be clean. */
        kill_hard(s->warm);
        task_release(s);
    }
    if (s->rd_borrowed) { /* the sandbox's: closed with it */
        s->rd_out = s->rd_err = -1;
        s->rd_borrowed = false;
    }
    s->pid = 0;
}
