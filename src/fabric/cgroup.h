/* cgroup.h - control groups for tasks: memory, CPU and process limits,
 * with peak memory and OOM kills read back (DESIGN.md §8).
 *
 * One module for both kernels' interfaces:
 *   v2 (unified): one directory per group holding memory.max, cpu.max,
 *      pids.max, ...; found where a cgroup2 file system with the memory
 *      controller is mounted (usually /sys/fs/cgroup).
 *   v1 (legacy, or "hybrid" with an almost empty v2 tree beside it): one
 *      hierarchy per controller (/sys/fs/cgroup/memory, .../cpu, .../pids,
 *      .../cpuacct), each with its own directory for the group.
 * v2 is used when its tree offers the memory controller; otherwise v1,
 * controller by controller (a missing one is simply not limited).
 *
 * Groups are created under the caller's own group (/proc/self/cgroup), so
 * a provider started inside a service or container stays inside it. The
 * provider makes one parent group (its caps on all its tasks together) and
 * one child group per task.
 *
 * A cu_cgroup is a plain value (paths), safe to copy; nothing is held open
 * (struct cu_cgroup_live below holds a long-lived group's files open). */
#ifndef CU_FABRIC_CGROUP_H
#define CU_FABRIC_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "base/util.h"

enum cu_cg_version { CU_CG_NONE = 0, CU_CG_V1 = 1, CU_CG_V2 = 2 };

/* Controllers we use. In v2 every one of them is the same directory. */
enum cu_cg_ctrl { CU_CG_MEMORY = 0, CU_CG_CPU, CU_CG_PIDS, CU_CG_CPUACCT, CU_CG_NCTRL };

struct cu_cgroup {
    enum cu_cg_version version;
    char dir[CU_CG_NCTRL][CU_PATH_MAX]; /* "" when that controller is absent */
};

struct cu_cgroup_limits {
    uint64_t memory;     /* bytes, no swap beyond it where the kernel allows; 0 = none */
    uint64_t cpu_milli;  /* CPU time in thousandths of a core (1500 = 1.5 cores); 0 = none */
    uint32_t pids;       /* processes and threads; 0 = none */
    /* CPU weight against the rest of the machine, in nice-0 processes: the
     * group competes for CPU as this many ordinary processes would (v1
     * cpu.shares = 1024 x n, v2 cpu.weight = 100 x n, each capped at the
     * kernel's maximum); 0 = the kernel's default (one process's worth). */
    uint32_t cpu_weight;
};

struct cu_cgroup_stats {
    uint64_t memory_current; /* bytes now */
    uint64_t memory_peak;    /* bytes, highest seen (0 where the kernel cannot say) */
    uint64_t oom_kills;      /* processes the OOM killer ended in this group */
    uint64_t pids_current;
    uint64_t pids_refused;   /* forks refused by pids.max */
    uint64_t cpu_usec;       /* CPU time used (0 where unknown) */
};

/* Finds the caller's own group from the text of /proc/self/mountinfo and
 * /proc/self/cgroup (pure: no I/O; unit-tested on both layouts). Fills cg;
 * CU_CG_NONE (and -CU_ENOTFOUND) when no usable memory controller is
 * mounted. */
int cu_cgroup_locate(const char *mountinfo, const char *proc_cgroup, struct cu_cgroup *cg);

/* cu_cgroup_locate on this process's own files. */
int cu_cgroup_self(struct cu_cgroup *cg, struct cu_err *e);

/* Creates group `name` (a safe file name) under parent with limits lim;
 * child gets its paths. An existing empty group of that name is reused.
 * -CU_EPERM / -CU_EIO with e naming the file when the kernel refuses
 * (not root, no delegation). On failure nothing is left behind. */
int cu_cgroup_create(const struct cu_cgroup *parent, const char *name,
                     const struct cu_cgroup_limits *lim, struct cu_cgroup *child,
                     struct cu_err *e);

/* Opens the group's join files for writing (close-on-exec); fds gets one
 * per controller directory, -1 for absent ones. For a child of one thread
 * (between fork and exec) that must join before it drops privileges: it
 * writes "0" to each (see cu_cgroup_join_fds), which is async-signal-safe.
 * On v1 the files are "tasks", which move only the writing thread (and
 * cost no RCU grace period under cgroup_mutex, as cgroup.procs does):
 * never hand them to a process of several threads. Close with
 * cu_cgroup_close_fds. */
int cu_cgroup_open_procs(const struct cu_cgroup *cg, int fds[CU_CG_NCTRL], struct cu_err *e);
/* The file cu_cgroup_open_procs opens in each directory: "tasks" (v1) or
 * "cgroup.procs" (v2). */
const char *cu_cgroup_join_file(const struct cu_cgroup *cg);
void cu_cgroup_close_fds(int fds[CU_CG_NCTRL]);
/* Moves the calling process into the group (async-signal-safe; for a
 * forked child). 0 or -1. */
int cu_cgroup_join_fds(const int fds[CU_CG_NCTRL]);
/* Moves process pid into the group. */
int cu_cgroup_attach(const struct cu_cgroup *cg, pid_t pid, struct cu_err *e);

/* Reads the group's usage; absent values stay 0. */
void cu_cgroup_read_stats(const struct cu_cgroup *cg, struct cu_cgroup_stats *st);

/* Starts the peak memory over from the current use (v1; v2 has no
 * group-wide reset, so its peak stays the group's since creation). For a
 * group that runs one task after another (fabric/warm.h). Best effort. */
void cu_cgroup_reset_peak(const struct cu_cgroup *cg);

/* Kills every process left in the group and removes it (waits up to about
 * a second for the kernel to empty it). 0, or -CU_EIO when a directory
 * would not go. */
int cu_cgroup_destroy(const struct cu_cgroup *cg);

/* Saves / loads the paths as "version N" and "CTRL PATH" lines, so another
 * process (`cumulus provider status`) can read a running provider's
 * groups. */
int cu_cgroup_save(const struct cu_cgroup *cg, const char *path);
int cu_cgroup_load(struct cu_cgroup *cg, const char *path);
/* Renames the group (each controller's directory, in place under its
 * parent; processes stay in it) to name, updating cg. All or nothing:
 * 0, -CU_EINVAL for an unsafe name, -CU_EIO when the kernel refuses. */
int cu_cgroup_rename(struct cu_cgroup *cg, const char *name);

/* A group kept open for a long life (a warm sandbox's, fabric/warm.h): the
 * files its per-task reads and writes need, opened once, and each
 * controller directory's parent, so that reading, resetting the peak and
 * renaming cost no path lookups. Every fd is close-on-exec; -1 where the
 * controller or file is absent. */
struct cu_cgroup_live {
    int parent[CU_CG_NCTRL]; /* O_PATH parent of each distinct directory (by controller) */
    int peak;                /* v1 memory.max_usage_in_bytes (read/write), v2 memory.peak */
    int oom;                 /* v1 memory.oom_control, v2 memory.events */
    int pids_events;         /* pids.events */
};

/* Opens l for cg (all or nothing: -CU_EIO with e naming what failed;
 * files the kernel lacks, like v2 memory.peak before 5.19, stay -1 and
 * read as 0, as cu_cgroup_read_stats reads them). */
int cu_cgroup_live_open(const struct cu_cgroup *cg, struct cu_cgroup_live *l, struct cu_err *e);
void cu_cgroup_live_init(struct cu_cgroup_live *l);  /* every fd -1: nothing open */
void cu_cgroup_live_close(struct cu_cgroup_live *l); /* safe twice; sets every fd to -1 */
/* What a task's result and limits need, from the open files: memory_peak,
 * oom_kills and pids_refused as cu_cgroup_read_stats reads them; the other
 * fields are 0. */
void cu_cgroup_live_stats(const struct cu_cgroup_live *l, struct cu_cgroup_stats *st);
/* cu_cgroup_reset_peak through the open file. */
void cu_cgroup_live_reset_peak(const struct cu_cgroup *cg, const struct cu_cgroup_live *l);
/* cu_cgroup_rename through the open parents (renameat with short names);
 * the open files follow the group. Same contract as cu_cgroup_rename. */
int cu_cgroup_live_rename(struct cu_cgroup *cg, const struct cu_cgroup_live *l,
                          const char *name);
/* The same for the groups cu_cgroup_read_stats reads a task's memory and
 * CPU usage from only (memory, and cpuacct or v2's one directory): on a v1
 * host with separate hierarchies that is half the renames, and the group
 * keeps its old name under the others (cpu, pids). Same contract
 * otherwise. */
int cu_cgroup_live_rename_shown(struct cu_cgroup *cg, const struct cu_cgroup_live *l,
                                const char *name);

/* The group `name` under parent, by path only (nothing created). */
int cu_cgroup_child(const struct cu_cgroup *parent, const char *name, struct cu_cgroup *child);

const char *cu_cgroup_version_name(enum cu_cg_version v); /* "none", "v1", "v2" */

#endif
