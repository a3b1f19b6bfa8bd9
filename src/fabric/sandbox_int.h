/* sandbox_int.h - what sandbox.c shares with warm.c, the warm sandbox
 * (fabric/warm.h): the task handle, the bwrap command line builder, the
 * spawning of bwrap and the limit checks. Internal to src/fabric; nothing
 * outside it includes this. */
#ifndef CU_FABRIC_SANDBOX_INT_H
#define CU_FABRIC_SANDBOX_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "base/buf.h"
#include "fabric/cgroup.h"
#include "fabric/sandbox.h"

/* Descriptor numbers bwrap sees; FD_SECCOMP only with the filter on;
 * FD_CONTROL and FD_INIT only for a warm sandbox (the supervisor's control
 * socket, the memfd it is executed from). */
enum { FD_STATUS = 3, FD_EXECERR = 4, FD_SECCOMP = 5, FD_CONTROL = 6, FD_INIT = 7,
       FD_MAX_PASSED = 8 };

#define SIZE_CHECK_MS 150
#define DRAIN_AFTER_EXIT_MS 2000
#define STATUS_MAX 8192
#define ERR_HEAD_MAX 512

struct cu_warm;

/* One task. Cold (warm == NULL): its own bwrap, pid is bwrap's monitor.
 * Warm: a task of the warm sandbox warm; pid is that sandbox's bwrap
 * monitor (paused and resumed as a tree with the task), the end comes as
 * the supervisor's DONE message, and cg is the sandbox's group, read as
 * differences from cg_base. */
struct cu_sandbox {
    pid_t pid;
    int pidfd;                     /* -1 when pidfd_open is not available */
    int rd_out, rd_err, rd_status; /* read ends, -1 once at EOF */
    bool rd_borrowed;              /* rd_out, rd_err are a warm sandbox's: never closed here */
    int f_out, f_err;              /* capture files */
    uint64_t out_kept, err_kept, stdio_cap;
    char err_head[ERR_HEAD_MAX]; /* first bytes of stderr: bwrap's own errors */
    size_t err_head_len;
    struct cu_buf status; /* bwrap --json-status-fd output */

    char *work_dir, *out_dir;
    int work_dfd, out_dfd; /* the same open (a warm sandbox's, borrowed), or -1 */
    uint64_t output_limit;
    uint64_t disk_limit;
    struct cu_cgroup cg; /* the task's own group; version NONE without one */
    struct cu_cgroup_stats cg_stats;
    uint64_t time_limit_ms;
    uint64_t cpu_limit_s; /* RLIMIT_CPU soft limit, 0 = none */
    int64_t start_ms, time_deadline_ms, next_size_check_ms;
    /* cu_sandbox_pause: the wall-clock limit stands still while paused */
    bool paused;
    int64_t paused_at_ms, paused_ms;

    bool reaped;
    int wstatus;
    struct rusage ru;
    /* bwrap's pid 1 in the task's pid namespace ("child-pid"). The monitor
     * exits without reaping it, so it is reparented to us (we are a child
     * subreaper) and its rusage holds the task's CPU time. */
    pid_t inner_pid;
    bool inner_done;
    int64_t end_ms, drain_deadline_ms;

    enum cu_sandbox_status forced; /* set by a kill we did; RUNNING if none */
    char forced_reason[256];

    bool done;
    struct cu_sandbox_result result;

    /* warm tasks only */
    struct cu_warm *warm;
    struct cu_cgroup_stats cg_base; /* the sandbox group's counters at the start */
    int64_t kill_sent_ms;           /* when KILL went to the supervisor; 0 = not yet */
    bool have_code;                 /* the supervisor's verdict: code is the task's */
    int code;                       /* exit code, 128 + signal when killed */
    char setup_error[200];          /* the task could not be started: why */
    bool exec_error;                /* ... because its command cannot run */
    char cmd[128];                  /* the command's name, for that reason */
    char *task_dir[3];              /* the task's work, out, in: entries go back there */
    /* Entries the final size check (cu_sb_finish) found in the work and
     * out directories, after every process of the task ended; UINT64_MAX
     * when it did not look or could not read one. */
    uint64_t left_work, left_out;
    bool in_moved; /* warm: the task's inputs went into the sandbox's /in */
};

struct argv_builder {
    char **v;
    size_t n, cap;
    bool failed;
};

void cu_sb_av_add(struct argv_builder *a, const char *s);
void cu_sb_av_release(struct argv_builder *a);

/* How build_argv ends the command line. */
enum cu_sb_argv_mode {
    CU_SB_ARGV_TASK, /* --chdir, the environment, -- opts->argv (one task) */
    CU_SB_ARGV_WARM, /* --as-pid-1, -- /proc/self/fd/FD_INIT (the supervisor) */
};

/* Builds the bwrap command line into a (argv[0] = bwrap_path). -CU_EINVAL
 * with e set for a bad env entry, -CU_ENOMEM. */
int cu_sb_build_argv(const struct cu_sandbox_opts *o, const char *bwrap_path,
                     enum cu_sb_argv_mode mode, struct argv_builder *a, struct cu_err *e);

/* Finds an executable named name on PATH (or takes it as is when it has a
 * '/'). 0 with out filled, or -CU_ENOTFOUND. */
int cu_sb_resolve_exe(const char *name, char *out, size_t n);

/* Gives dir and everything under it to uid:gid. */
int cu_sb_chown_tree(const char *dir, uid_t uid, gid_t gid, struct cu_err *e);

/* How bwrap is started: descriptors, cgroup, credentials, rlimits. */
struct child_plan {
    char *const *argv;
    int fds[FD_MAX_PASSED]; /* what becomes fd 0..nfds-1 in bwrap */
    int nfds;               /* FD_SECCOMP + 1 with the filter, else FD_SECCOMP */
    bool drop_privileges;
    uid_t uid;
    gid_t gid;
    const char *check_dirs[3]; /* must be reachable after dropping privileges */
    int cg_fds[CU_CG_NCTRL];   /* cgroup.procs of the task's group, -1 if none */
    struct rlimit lim_cpu, lim_as, lim_fsize, lim_nproc;
    bool set_cpu, set_as, set_fsize, set_nproc;
};

/* The task's rlimits (CPU, address space without a cgroup, file size,
 * processes) into plan, as opts ask; *cpu_limit_s gets the CPU soft limit
 * (0 = none). cg is the group the task will run in (NONE: none). */
void cu_sb_plan_limits(const struct cu_sandbox_opts *opts, const struct cu_cgroup *cg,
                       struct child_plan *plan, uint64_t *cpu_limit_s);

/* Forks and executes bwrap as plan says (STYLE.md §10); plan->fds[FD_EXECERR]
 * is filled here. *pid gets bwrap's pid, leader of its own process group.
 * -CU_ESANDBOX with e set when it could not be executed (reaped already). */
int cu_sb_spawn(struct child_plan *plan, pid_t *pid, struct cu_err *e);

/* Per-task pieces shared by both kinds. */
void cu_sb_close_fd(int *fd);
int cu_sb_open_capture(const char *path, int *fd, struct cu_err *e);
int cu_sb_check_dir(const char *what, const char *path, struct cu_err *e);
void cu_sb_drain_all(struct cu_sandbox *s);
void cu_sb_enforce_limits(struct cu_sandbox *s, int64_t now);
/* The result from what is known (forced ends, cgroup verdicts, code);
 * marks s done. */
void cu_sb_finish(struct cu_sandbox *s);

/* warm.c: the warm sandbox side of a warm task. */
void cu_warm_task_kill(struct cu_sandbox *s);
int cu_warm_task_wait(struct cu_sandbox *s, int timeout_ms);
void cu_warm_task_free(struct cu_sandbox *s);
/* The warm sandbox's group counters a task's verdicts and result need
 * (memory_peak, oom_kills, pids_refused), read through its open files. */
void cu_warm_task_cg_stats(struct cu_sandbox *s, struct cu_cgroup_stats *st);

#endif
