/* cgroup.c - task control groups, v1 and v2 (see cgroup.h).
 *
 * Interface files by version (v1 file / v2 file):
 *   memory limit    memory.limit_in_bytes + memory.memsw.limit_in_bytes / memory.max + memory.swap.max
 *   peak, OOM kills memory.max_usage_in_bytes, memory.oom_control "oom_kill" / memory.peak, memory.events
 *   CPU quota       cpu.cfs_period_us + cpu.cfs_quota_us / cpu.max "QUOTA PERIOD"
 *   CPU weight      cpu.shares / cpu.weight
 *   processes       pids.max, pids.events "max" (same names in both)
 *   CPU used        cpuacct.usage (ns) / cpu.stat "usage_usec" */
#include "fabric/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"

#include "base/banned.h"

#define CPU_PERIOD_US 100000ULL
#define PROC_FILE_MAX (256u << 10)

static const char *const ctrl_names[CU_CG_NCTRL] = {
    [CU_CG_MEMORY] = "memory",
    [CU_CG_CPU] = "cpu",
    [CU_CG_PIDS] = "pids",
    [CU_CG_CPUACCT] = "cpuacct",
};

const char *cu_cgroup_version_name(enum cu_cg_version v)
{
    return v == CU_CG_V2 ? "v2" : v == CU_CG_V1 ? "v1" : "none";
}

/* ---- locating the caller's group ------------------------------------------ */

/* Copies the idx-th space-separated field of line (length len) into out;
 * false when there are fewer fields or it does not fit. */
static bool field(const char *line, size_t len, int idx, char *out, size_t n)
{
    size_t i = 0;

    for (int f = 0; i < len; f++) {
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        if (f == idx) {
            if (i - start >= n)
                return false;
            memcpy(out, line + start, i - start);
            out[i - start] = '\0';
            return true;
        }
        while (i < len && line[i] == ' ')
            i++;
    }
    return false;
}

/* True when the comma-separated list has the token. */
static bool has_token(const char *list, const char *tok)
{
    size_t tl = strlen(tok);

    for (const char *p = list; *p;) {
        size_t l = strcspn(p, ",");
        if (l == tl && memcmp(p, tok, tl) == 0)
            return true;
        p += l;
        if (*p == ',')
            p++;
    }
    return false;
}

/* The group path of the hierarchy with controller ctrl ("" for v2's "0::")
 * from /proc/self/cgroup text. */
static bool proc_group(const char *proc_cgroup, const char *ctrl, char *out, size_t n)
{
    for (const char *p = proc_cgroup; *p;) {
        size_t len = strcspn(p, "\n");
        const char *c1 = memchr(p, ':', len);
        const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)) : NULL;
        if (c2) {
            char list[256];
            size_t ll = (size_t)(c2 - c1 - 1);
            if (ll < sizeof list) {
                memcpy(list, c1 + 1, ll);
                list[ll] = '\0';
                if ((ctrl[0] == '\0' && ll == 0) || (ctrl[0] && has_token(list, ctrl))) {
                    size_t pl = len - (size_t)(c2 + 1 - p);
                    if (pl >= n)
                        return false;
                    memcpy(out, c2 + 1, pl);
                    out[pl] = '\0';
                    return true;
                }
            }
        }
        p += len;
        if (*p == '\n')
            p++;
    }
    return false;
}

/* Joins a mount point, the mount's root and the group path: the group's
 * directory as this process sees it. */
static bool join_group(const char *mnt, const char *root, const char *group, char *out, size_t n)
{
    size_t rl = strlen(root);
    const char *rest = group;

    if (strcmp(root, "/") != 0) {
        if (strncmp(group, root, rl) != 0 || (group[rl] != '\0' && group[rl] != '/'))
            return false; /* this mount does not show our group */
        rest = group + rl;
    }
    while (*rest == '/')
        rest++;
    return cu_snprintf(out, n, "%s%s%s", mnt, *rest ? "/" : "", rest) == 0;
}

int cu_cgroup_locate(const char *mountinfo, const char *proc_cgroup, struct cu_cgroup *cg)
{
    char v2dir[CU_PATH_MAX] = "";

    memset(cg, 0, sizeof *cg);
    for (const char *p = mountinfo; *p;) {
        size_t len = strcspn(p, "\n");
        const char *dash = NULL;
        char root[CU_PATH_MAX], mnt[CU_PATH_MAX], fstype[32], super[512], group[CU_PATH_MAX];

        /* Optional fields end with " - "; fstype, source, super options follow. */
        for (size_t i = 0; i + 2 < len; i++) {
            if (p[i] == ' ' && p[i + 1] == '-' && p[i + 2] == ' ') {
                dash = p + i + 3;
                break;
            }
        }
        if (dash && field(p, len, 3, root, sizeof root) && field(p, len, 4, mnt, sizeof mnt)) {
            size_t dl = len - (size_t)(dash - p);
            if (field(dash, dl, 0, fstype, sizeof fstype) &&
                field(dash, dl, 2, super, sizeof super)) {
                if (strcmp(fstype, "cgroup") == 0) {
                    for (int c = 0; c < CU_CG_NCTRL; c++) {
                        if (cg->dir[c][0] || !has_token(super, ctrl_names[c]) ||
                            !proc_group(proc_cgroup, ctrl_names[c], group, sizeof group))
                            continue;
                        if (!join_group(mnt, root, group, cg->dir[c], sizeof cg->dir[c]))
                            cg->dir[c][0] = '\0';
                    }
                } else if (strcmp(fstype, "cgroup2") == 0 && !v2dir[0] &&
                           proc_group(proc_cgroup, "", group, sizeof group)) {
                    if (!join_group(mnt, root, group, v2dir, sizeof v2dir))
                        v2dir[0] = '\0';
                }
            }
        }
        p += len;
        if (*p == '\n')
            p++;
    }
    if (cg->dir[CU_CG_MEMORY][0]) {
        cg->version = CU_CG_V1;
        return 0;
    }
    /* No v1 memory hierarchy: a unified tree, if any, has the controllers
     * (on hybrid machines the v1 memory hierarchy exists and wins above). */
    memset(cg->dir, 0, sizeof cg->dir);
    if (!v2dir[0])
        return -CU_ENOTFOUND;
    cg->version = CU_CG_V2;
    for (int c = 0; c < CU_CG_NCTRL; c++)
        memcpy(cg->dir[c], v2dir, sizeof v2dir);
    return 0;
}

int cu_cgroup_self(struct cu_cgroup *cg, struct cu_err *e)
{
    struct cu_buf mi, pc;
    int rc;

    memset(cg, 0, sizeof *cg);
    cu_buf_init(&mi, PROC_FILE_MAX);
    cu_buf_init(&pc, PROC_FILE_MAX);
    if (cu_read_file("/proc/self/mountinfo", &mi) != 0 ||
        cu_read_file("/proc/self/cgroup", &pc) != 0) {
        rc = cu_err_set(e, -CU_EIO, "cannot read /proc/self/mountinfo or /proc/self/cgroup");
        goto out_release;
    }
    rc = cu_cgroup_locate(cu_buf_str(&mi), cu_buf_str(&pc), cg);
    if (rc)
        rc = cu_err_set(e, rc, "no cgroup file system with the memory controller is mounted");
out_release:
    cu_buf_release(&mi);
    cu_buf_release(&pc);
    return rc;
}

/* ---- files ------------------------------------------------------------------ */

/* The directories of cg without repeats (v2 has one for all). */
static int distinct_dirs(const struct cu_cgroup *cg, const char *out[CU_CG_NCTRL])
{
    int n = 0;

    for (int c = 0; c < CU_CG_NCTRL; c++) {
        bool seen = false;
        if (!cg->dir[c][0])
            continue;
        for (int k = 0; k < n; k++)
            seen |= strcmp(out[k], cg->dir[c]) == 0;
        if (!seen)
            out[n++] = cg->dir[c];
    }
    return n;
}

/* Writes text to dir/file. 0 or -errno. */
static int write_at(const char *dir, const char *file, const char *text)
{
    char path[CU_PATH_MAX];
    int fd, err = 0;
    size_t len = strlen(text);

    if (cu_path_join(path, sizeof path, dir, file) != 0)
        return -ENAMETOOLONG;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t)len)
        err = errno ? -errno : -EIO;
    close(fd);
    return err;
}

/* Reads dir/file (small) into out. */
static bool read_at(const char *dir, const char *file, char *out, size_t n)
{
    char path[CU_PATH_MAX];
    int fd;
    ssize_t r;

    if (!dir[0] || cu_path_join(path, sizeof path, dir, file) != 0)
        return false;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    r = read(fd, out, n - 1);
    close(fd);
    if (r < 0)
        return false;
    out[r] = '\0';
    return true;
}

static uint64_t read_u64(const char *dir, const char *file)
{
    char text[64];

    if (!read_at(dir, file, text, sizeof text))
        return 0;
    return strtoull(text, NULL, 10);
}

/* The value of "key N" in flat-keyed text (memory.events, cpu.stat, ...). */
static uint64_t key_value(const char *text, const char *key)
{
    size_t kl = strlen(key);

    for (const char *p = text; *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return strtoull(p + kl + 1, NULL, 10);
        p += strcspn(p, "\n");
        if (*p == '\n')
            p++;
    }
    return 0;
}

/* The value of "key N" in a flat-keyed file. */
static uint64_t read_key(const char *dir, const char *file, const char *key)
{
    char text[4096];

    if (!read_at(dir, file, text, sizeof text))
        return 0;
    return key_value(text, key);
}

/* ---- creating ------------------------------------------------------------- */

static int set_limits(const struct cu_cgroup *cg, const struct cu_cgroup_limits *lim,
                      struct cu_err *e)
{
    char num[64];
    const char *file = NULL, *dir = NULL;
    int err = 0;

    if (lim->memory && cg->dir[CU_CG_MEMORY][0]) {
        dir = cg->dir[CU_CG_MEMORY];
        (void)cu_snprintf(num, sizeof num, "%llu", (unsigned long long)lim->memory);
        if (cg->version == CU_CG_V2) {
            if ((err = write_at(dir, file = "memory.max", num)) != 0)
                goto out_fail;
            /* Not every kernel has swap accounting: best effort. */
            (void)write_at(dir, "memory.swap.max", "0");
            (void)write_at(dir, "memory.oom.group", "1");
        } else {
            if ((err = write_at(dir, file = "memory.limit_in_bytes", num)) != 0)
                goto out_fail;
            (void)write_at(dir, "memory.memsw.limit_in_bytes", num);
        }
    }
    if (lim->cpu_milli && cg->dir[CU_CG_CPU][0]) {
        unsigned long long quota = lim->cpu_milli * (CPU_PERIOD_US / 1000);
        dir = cg->dir[CU_CG_CPU];
        if (cg->version == CU_CG_V2) {
            (void)cu_snprintf(num, sizeof num, "%llu %llu", quota, CPU_PERIOD_US);
            if ((err = write_at(dir, file = "cpu.max", num)) != 0)
                goto out_fail;
        } else {
            (void)cu_snprintf(num, sizeof num, "%llu", CPU_PERIOD_US);
            if ((err = write_at(dir, file = "cpu.cfs_period_us", num)) != 0)
                goto out_fail;
            (void)cu_snprintf(num, sizeof num, "%llu", quota);
            if ((err = write_at(dir, file = "cpu.cfs_quota_us", num)) != 0)
                goto out_fail;
        }
    }
    if (lim->cpu_weight && cg->dir[CU_CG_CPU][0]) {
        /* The kernel's ranges: shares 2..262144, weight 1..10000. */
        unsigned long long w = cg->version == CU_CG_V2 ? 100ULL * lim->cpu_weight
                                                       : 1024ULL * lim->cpu_weight;
        unsigned long long max = cg->version == CU_CG_V2 ? 10000 : 262144;
        dir = cg->dir[CU_CG_CPU];
        (void)cu_snprintf(num, sizeof num, "%llu", w < max ? w : max);
        if ((err = write_at(dir, file = cg->version == CU_CG_V2 ? "cpu.weight" : "cpu.shares",
                            num)) != 0)
            goto out_fail;
    }
    if (lim->pids && cg->dir[CU_CG_PIDS][0]) {
        dir = cg->dir[CU_CG_PIDS];
        (void)cu_snprintf(num, sizeof num, "%u", lim->pids);
        if ((err = write_at(dir, file = "pids.max", num)) != 0)
            goto out_fail;
    }
    return 0;
out_fail:
    return cu_err_set(e, err == -EACCES || err == -EPERM ? -CU_EPERM : -CU_EIO,
                      "cannot write %s/%s: %s", dir, file, strerror(-err));
}

/* v2: lets children of dir use the controllers (the parent must hold no
 * processes for this: the kernel's "no internal processes" rule). */
static int enable_controllers(const char *dir, struct cu_err *e)
{
    static const char *const want[] = {"+memory", "+cpu", "+pids"};
    char have[512] = "";

    (void)read_at(dir, "cgroup.subtree_control", have, sizeof have);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int err;
        if (has_token(have, want[i] + 1)) /* space separated; try the token */
            continue;
        err = write_at(dir, "cgroup.subtree_control", want[i]);
        if (err && i == 0)
            return cu_err_set(e, err == -EACCES || err == -EPERM ? -CU_EPERM : -CU_EIO,
                              "cannot enable the memory controller in %s: %s%s", dir,
                              strerror(-err),
                              err == -EBUSY ? " (processes live in that group)" : "");
    }
    return 0;
}

int cu_cgroup_child(const struct cu_cgroup *parent, const char *name, struct cu_cgroup *child)
{
    memset(child, 0, sizeof *child);
    if (!cu_name_is_safe(name))
        return -CU_EINVAL;
    child->version = parent->version;
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        if (parent->dir[c][0] &&
            cu_path_join(child->dir[c], sizeof child->dir[c], parent->dir[c], name) != 0)
            return -CU_ETOOBIG;
    }
    return 0;
}

int cu_cgroup_rename(struct cu_cgroup *cg, const char *name)
{
    struct cu_cgroup old = *cg;
    const char *dirs[CU_CG_NCTRL];
    int n = distinct_dirs(&old, dirs), done = 0, rc = 0;

    if (!cu_name_is_safe(name))
        return -CU_EINVAL;
    for (; done < n; done++) {
        char to[CU_PATH_MAX], parent[CU_PATH_MAX];
        const char *slash = strrchr(dirs[done], '/');
        if (!slash || cu_snprintf(parent, sizeof parent, "%.*s", (int)(slash - dirs[done]),
                                  dirs[done]) != 0 ||
            cu_path_join(to, sizeof to, parent, name) != 0) {
            rc = -CU_ETOOBIG;
            break;
        }
        if (rename(dirs[done], to) != 0) {
            rc = -CU_EIO;
            break;
        }
        for (int c = 0; c < CU_CG_NCTRL; c++) {
            if (strcmp(old.dir[c], dirs[done]) == 0)
                (void)cu_snprintf(cg->dir[c], sizeof cg->dir[c], "%s", to);
        }
    }
    if (rc) { /* put back what moved: all or nothing */
        for (int k = 0; k < done; k++) {
            for (int c = 0; c < CU_CG_NCTRL; c++) {
                if (strcmp(old.dir[c], dirs[k]) == 0) {
                    (void)rename(cg->dir[c], old.dir[c]);
                    break;
                }
            }
        }
        *cg = old;
    }
    return rc;
}

int cu_cgroup_create(const struct cu_cgroup *parent, const char *name,
                     const struct cu_cgroup_limits *lim, struct cu_cgroup *child,
                     struct cu_err *e)
{
    const char *dirs[CU_CG_NCTRL];
    int n, rc;

    if (parent->version == CU_CG_NONE)
        return cu_err_set(e, -CU_EUNSUPPORTED, "no cgroup to create '%s' under", name);
    if (cu_cgroup_child(parent, name, child) != 0)
        return cu_err_set(e, -CU_EINVAL, "cgroup name '%s': not a safe name", name);
    if (parent->version == CU_CG_V2 && (rc = enable_controllers(parent->dir[0], e)) != 0)
        return rc;
    n = distinct_dirs(child, dirs);
    for (int i = 0; i < n; i++) {
        if (mkdir(dirs[i], 0755) != 0 && errno != EEXIST) {
            int err = errno;
            for (int k = 0; k < i; k++)
                rmdir(dirs[k]);
            return cu_err_set(e, err == EACCES || err == EPERM || err == EROFS ? -CU_EPERM
                                                                                : -CU_EIO,
                              "cannot create cgroup %s: %s", dirs[i], strerror(err));
        }
    }
    rc = set_limits(child, lim, e);
    if (rc)
        (void)cu_cgroup_destroy(child);
    return rc;
}

/* ---- joining ---------------------------------------------------------------- */

/* The file a single-threaded process joins a group through. v1: "tasks",
 * not "cgroup.procs": writing "0" to "tasks" moves only the writing
 * thread, so the kernel skips the global cgroup_threadgroup_rwsem, whose
 * write side waits for an RCU grace period (measured here: 8.5 ms for the
 * four joins through cgroup.procs, 0.08 ms through tasks), all the while
 * holding cgroup_mutex, which every other cgroup mkdir, rmdir and rename
 * on the machine then waits for (a warm sandbox's rename at a task's
 * start waited 8 ms behind a spare's join). For a process of one thread
 * (a child between fork and exec) the thread is the whole process. v2
 * has no "tasks": cgroup.procs. */
const char *cu_cgroup_join_file(const struct cu_cgroup *cg)
{
    return cg->version == CU_CG_V1 ? "tasks" : "cgroup.procs";
}

int cu_cgroup_open_procs(const struct cu_cgroup *cg, int fds[CU_CG_NCTRL], struct cu_err *e)
{
    const char *dirs[CU_CG_NCTRL];
    int n = distinct_dirs(cg, dirs);

    for (int i = 0; i < CU_CG_NCTRL; i++)
        fds[i] = -1;
    for (int i = 0; i < n; i++) {
        char path[CU_PATH_MAX];
        if (cu_path_join(path, sizeof path, dirs[i], cu_cgroup_join_file(cg)) != 0)
            goto out_close;
        fds[i] = open(path, O_WRONLY | O_CLOEXEC);
        if (fds[i] < 0) {
            (void)cu_err_set(e, -CU_EIO, "cannot open %s: %s", path, strerror(errno));
            goto out_close;
        }
    }
    return 0;
out_close:
    cu_cgroup_close_fds(fds);
    return e ? e->code ? e->code : -CU_EIO : -CU_EIO;
}

void cu_cgroup_close_fds(int fds[CU_CG_NCTRL])
{
    for (int i = 0; i < CU_CG_NCTRL; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

int cu_cgroup_join_fds(const int fds[CU_CG_NCTRL])
{
    for (int i = 0; i < CU_CG_NCTRL; i++) {
        /* "0" is the writing thread (v1 tasks) or process (v2), the
         * same for a child of one thread. */
        if (fds[i] >= 0 && write(fds[i], "0", 1) != 1)
            return -1;
    }
    return 0;
}

int cu_cgroup_attach(const struct cu_cgroup *cg, pid_t pid, struct cu_err *e)
{
    const char *dirs[CU_CG_NCTRL];
    int n = distinct_dirs(cg, dirs);
    char num[32];

    (void)cu_snprintf(num, sizeof num, "%d", (int)pid);
    for (int i = 0; i < n; i++) {
        int err = write_at(dirs[i], "cgroup.procs", num);
        if (err)
            return cu_err_set(e, -CU_EIO, "cannot move pid %d into %s: %s", (int)pid, dirs[i],
                              strerror(-err));
    }
    return 0;
}

/* ---- reading and removing -------------------------------------------------- */

void cu_cgroup_read_stats(const struct cu_cgroup *cg, struct cu_cgroup_stats *st)
{
    const char *mem = cg->dir[CU_CG_MEMORY], *pids = cg->dir[CU_CG_PIDS];

    memset(st, 0, sizeof *st);
    if (cg->version == CU_CG_V2) {
        st->memory_current = read_u64(mem, "memory.current");
        st->memory_peak = read_u64(mem, "memory.peak");
        st->oom_kills = read_key(mem, "memory.events", "oom_kill");
        st->cpu_usec = read_key(cg->dir[CU_CG_CPU], "cpu.stat", "usage_usec");
    } else if (cg->version == CU_CG_V1) {
        st->memory_current = read_u64(mem, "memory.usage_in_bytes");
        st->memory_peak = read_u64(mem, "memory.max_usage_in_bytes");
        st->oom_kills = read_key(mem, "memory.oom_control", "oom_kill");
        st->cpu_usec = read_u64(cg->dir[CU_CG_CPUACCT], "cpuacct.usage") / 1000;
    }
    st->pids_current = read_u64(pids, "pids.current");
    st->pids_refused = read_key(pids, "pids.events", "max");
}

/* ---- a group kept open ------------------------------------------------------ */

void cu_cgroup_live_init(struct cu_cgroup_live *l)
{
    for (int c = 0; c < CU_CG_NCTRL; c++)
        l->parent[c] = -1;
    l->peak = l->oom = l->pids_events = -1;
}

void cu_cgroup_live_close(struct cu_cgroup_live *l)
{
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        if (l->parent[c] >= 0)
            close(l->parent[c]);
    }
    if (l->peak >= 0)
        close(l->peak);
    if (l->oom >= 0)
        close(l->oom);
    if (l->pids_events >= 0)
        close(l->pids_events);
    cu_cgroup_live_init(l);
}

/* Opens dir/file; -1 (errno set) when it cannot. */
static int open_in(const char *dir, const char *file, int flags)
{
    char path[CU_PATH_MAX];

    if (!dir[0] || cu_path_join(path, sizeof path, dir, file) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, flags | O_CLOEXEC);
}

int cu_cgroup_live_open(const struct cu_cgroup *cg, struct cu_cgroup_live *l, struct cu_err *e)
{
    const char *mem = cg->dir[CU_CG_MEMORY];
    bool v2 = cg->version == CU_CG_V2;

    cu_cgroup_live_init(l);
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        char parent[CU_PATH_MAX];
        const char *slash = strrchr(cg->dir[c], '/');
        bool seen = false;
        if (!cg->dir[c][0])
            continue;
        for (int k = 0; k < c; k++)
            seen |= strcmp(cg->dir[k], cg->dir[c]) == 0;
        if (seen)
            continue;
        if (!slash || slash == cg->dir[c] ||
            cu_snprintf(parent, sizeof parent, "%.*s", (int)(slash - cg->dir[c]), cg->dir[c]) !=
                0 ||
            (l->parent[c] = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
            (void)cu_err_set(e, -CU_EIO, "cannot open the parent of cgroup %s: %s", cg->dir[c],
                             strerror(errno));
            goto out_close;
        }
    }
    /* Absent files (older kernels, a controller not mounted) stay -1. */
    if (mem[0]) {
        l->peak = open_in(mem, v2 ? "memory.peak" : "memory.max_usage_in_bytes",
                          v2 ? O_RDONLY : O_RDWR);
        if (l->peak < 0 && !v2) /* not root: read it at least */
            l->peak = open_in(mem, "memory.max_usage_in_bytes", O_RDONLY);
        l->oom = open_in(mem, v2 ? "memory.events" : "memory.oom_control", O_RDONLY);
    }
    l->pids_events = open_in(cg->dir[CU_CG_PIDS], "pids.events", O_RDONLY);
    return 0;
out_close:
    cu_cgroup_live_close(l);
    return e ? e->code : -CU_EIO;
}

/* Reads an open cgroup file from its start (the kernel makes the text
 * anew for each read at offset 0). */
static bool pread_all(int fd, char *out, size_t n)
{
    ssize_t r;

    if (fd < 0)
        return false;
    do {
        r = pread(fd, out, n - 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return false;
    out[r] = '\0';
    return true;
}

void cu_cgroup_live_stats(const struct cu_cgroup_live *l, struct cu_cgroup_stats *st)
{
    char text[4096];

    memset(st, 0, sizeof *st);
    if (pread_all(l->peak, text, 64))
        st->memory_peak = strtoull(text, NULL, 10);
    if (pread_all(l->oom, text, sizeof text))
        st->oom_kills = key_value(text, "oom_kill");
    if (pread_all(l->pids_events, text, sizeof text))
        st->pids_refused = key_value(text, "max");
}

void cu_cgroup_live_reset_peak(const struct cu_cgroup *cg, const struct cu_cgroup_live *l)
{
    if (cg->version == CU_CG_V1 && l->peak >= 0)
        (void)pwrite(l->peak, "0", 1, 0);
}

/* cu_cgroup_live_rename of the controllers in mask (bits 1 << CU_CG_*),
 * and of those sharing a directory with one of them. */
static int live_rename_mask(struct cu_cgroup *cg, const struct cu_cgroup_live *l,
                            const char *name, unsigned mask)
{
    struct cu_cgroup old = *cg;
    int moved[CU_CG_NCTRL], nmoved = 0, rc = 0;

    if (!cu_name_is_safe(name))
        return -CU_EINVAL;
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        for (int k = 0; k < CU_CG_NCTRL; k++) {
            if ((mask & (1u << k)) && old.dir[c][0] && strcmp(old.dir[c], old.dir[k]) == 0)
                mask |= 1u << c;
        }
    }
    for (int c = 0; c < CU_CG_NCTRL && rc == 0; c++) {
        const char *slash = strrchr(old.dir[c], '/');
        size_t pl;
        if (!(mask & (1u << c)))
            continue;
        if (l->parent[c] < 0 || !slash) /* absent, or the same directory as an earlier one */
            continue;
        pl = (size_t)(slash - old.dir[c]);
        if (pl + 1 + strlen(name) >= sizeof cg->dir[c]) {
            rc = -CU_ETOOBIG;
            break;
        }
        if (strcmp(slash + 1, name) != 0 &&
            renameat(l->parent[c], slash + 1, l->parent[c], name) != 0) {
            rc = -CU_EIO;
            break;
        }
        moved[nmoved++] = c;
        for (int k = 0; k < CU_CG_NCTRL; k++) {
            if (strcmp(old.dir[k], old.dir[c]) == 0)
                (void)cu_snprintf(cg->dir[k], sizeof cg->dir[k], "%.*s/%s", (int)pl,
                                  old.dir[c], name);
        }
    }
    if (rc) { /* put back what moved: all or nothing */
        for (int i = 0; i < nmoved; i++) {
            int c = moved[i];
            const char *slash = strrchr(old.dir[c], '/');
            if (strcmp(slash + 1, name) != 0)
                (void)renameat(l->parent[c], name, l->parent[c], slash + 1);
        }
        *cg = old;
    }
    return rc;
}

int cu_cgroup_live_rename(struct cu_cgroup *cg, const struct cu_cgroup_live *l,
                          const char *name)
{
    return live_rename_mask(cg, l, name, ~0u);
}

int cu_cgroup_live_rename_shown(struct cu_cgroup *cg, const struct cu_cgroup_live *l,
                                const char *name)
{
    /* v2: one directory for all, cpu.stat in it; v1: cpuacct.usage (in
     * cpu's directory too where the two are mounted together). */
    return live_rename_mask(cg, l, name, 1u << CU_CG_MEMORY | 1u << CU_CG_CPUACCT);
}

void cu_cgroup_reset_peak(const struct cu_cgroup *cg)
{
    if (cg->version == CU_CG_V1 && cg->dir[CU_CG_MEMORY][0])
        (void)write_at(cg->dir[CU_CG_MEMORY], "memory.max_usage_in_bytes", "0");
}

/* SIGKILLs every process listed in dir/cgroup.procs; the count sent. */
static int kill_members(const char *dir)
{
    char path[CU_PATH_MAX], line[32];
    FILE *f;
    int n = 0;

    if (cu_path_join(path, sizeof path, dir, "cgroup.procs") != 0)
        return 0;
    f = fopen(path, "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        long pid = strtol(line, NULL, 10);
        if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
            n++;
    }
    fclose(f);
    return n;
}

/* Removes dir and the groups below it, deepest first. */
static int remove_tree(const char *dir, int depth)
{
    DIR *d;
    struct dirent *de;

    if (depth > 16)
        return -1;
    d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    while ((de = readdir(d)) != NULL) {
        char sub[CU_PATH_MAX];
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        if (cu_path_join(sub, sizeof sub, dir, de->d_name) == 0) {
            (void)write_at(sub, "cgroup.kill", "1");
            kill_members(sub);
            (void)remove_tree(sub, depth + 1);
        }
    }
    closedir(d);
    return rmdir(dir) == 0 || errno == ENOENT ? 0 : -1;
}

int cu_cgroup_destroy(const struct cu_cgroup *cg)
{
    const char *dirs[CU_CG_NCTRL];
    int n = distinct_dirs(cg, dirs), rc = 0;

    for (int i = 0; i < n; i++) {
        int tries = 0;
        (void)write_at(dirs[i], "cgroup.kill", "1"); /* v2, kernel >= 5.14 */
        while (remove_tree(dirs[i], 0) != 0) {
            /* Killed processes leave the group asynchronously. */
            kill_members(dirs[i]);
            if (++tries > 100) {
                rc = -CU_EIO;
                break;
            }
            usleep(10000);
        }
    }
    return rc;
}

int cu_cgroup_save(const struct cu_cgroup *cg, const char *path)
{
    char text[CU_CG_NCTRL * (CU_PATH_MAX + 16) + 32];
    size_t len;

    (void)cu_snprintf(text, sizeof text, "version %d\n", (int)cg->version);
    for (int c = 0; c < CU_CG_NCTRL; c++) {
        len = strlen(text);
        if (cg->dir[c][0] &&
            cu_snprintf(text + len, sizeof text - len, "%s %s\n", ctrl_names[c], cg->dir[c]))
            return -CU_ETOOBIG;
    }
    return cu_write_file_atomic(path, text, strlen(text), 0644);
}

int cu_cgroup_load(struct cu_cgroup *cg, const char *path)
{
    struct cu_buf b;
    int rc;

    memset(cg, 0, sizeof *cg);
    cu_buf_init(&b, 64u << 10);
    rc = cu_read_file(path, &b);
    if (rc)
        goto out_release;
    rc = -CU_ECORRUPT;
    for (const char *p = cu_buf_str(&b); *p;) {
        size_t len = strcspn(p, "\n");
        if (len > 8 && strncmp(p, "version ", 8) == 0) {
            long v = strtol(p + 8, NULL, 10);
            if (v == CU_CG_V1 || v == CU_CG_V2) {
                cg->version = (enum cu_cg_version)v;
                rc = 0;
            }
        }
        for (int c = 0; c < CU_CG_NCTRL; c++) {
            size_t nl = strlen(ctrl_names[c]);
            if (len > nl + 1 && strncmp(p, ctrl_names[c], nl) == 0 && p[nl] == ' ' &&
                len - nl - 1 < sizeof cg->dir[c]) {
                memcpy(cg->dir[c], p + nl + 1, len - nl - 1);
                cg->dir[c][len - nl - 1] = '\0';
            }
        }
        p += len;
        if (*p == '\n')
            p++;
    }
out_release:
    cu_buf_release(&b);
    return rc;
}
