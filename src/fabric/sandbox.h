/* sandbox.h - run one untrusted task under bubblewrap (DESIGN.md §8).
 *
 * The task sees:
 *   /work  writable scratch (host: opts.work_dir), its working directory
 *   /out   writable, collected afterwards (host: opts.out_dir)
 *   /in    read-only inputs (host: opts.in_dir)
 *   /usr /etc /bin /lib* read-only from the host ("image: host"), or
 *   opts.rootfs read-only as / (an OCI image, fabric/oci.h),
 *   fresh /proc, minimal /dev, private /tmp (tmpfs)
 * with every namespace unshared (no network unless opts.network), all
 * capabilities dropped, a new session, a cleared environment plus opts.env,
 * as uid/gid 65534 (nobody), with no_new_privs and the seccomp filter of
 * fabric/seccomp.h (ptrace, mount, namespaces, kexec, bpf, ... refused).
 * When the provider runs as root, bwrap itself is started as 65534
 * (setgid/setuid before exec) so RLIMIT_NPROC applies and no capability is
 * held; work_dir and out_dir are chowned to 65534.
 * rlimits: RLIMIT_CPU (time limit + 1 s), RLIMIT_FSIZE (output limit),
 * RLIMIT_NPROC, RLIMIT_CORE 0, and RLIMIT_AS (memory) only without a cgroup.
 * With opts.cgroup_parent the task runs in its own group under it
 * (fabric/cgroup.h): memory without swap, a CPU quota and a process cap;
 * the forked child joins it before it drops privileges, so nothing of the
 * task ever runs outside it. The group is read (peak memory, OOM kills,
 * refused forks) and removed when the task ends. Limits and their reasons:
 * an OOM kill "memory limit", refused forks "process limit", /work + /out
 * above disk_limit "disk limit" (each CU_SB_FAILED, the task killed).
 *
 * Spawning follows STYLE.md §10: one options struct with an INIT macro;
 * the child resets signal dispositions and mask, closes inherited
 * descriptors, and reports an exec failure over a close-on-exec pipe. bwrap's
 * --json-status-fd tells a sandbox setup failure (CU_SB_ERROR) apart from
 * the task's own non-zero exit (CU_SB_FAILED). */
#ifndef CU_FABRIC_SANDBOX_H
#define CU_FABRIC_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "fabric/cgroup.h"

struct cu_sandbox_opts {
    const char *const *argv;  /* command inside the sandbox; argv[0] resolved via PATH inside */
    const char *const *env;   /* "K=V" strings, NULL-terminated; may be NULL */
    const char *work_dir;     /* host dirs, must exist */
    const char *out_dir;
    const char *in_dir;       /* may be NULL: no /in */
    const char *stdout_path;  /* host files that receive the streams (created) */
    const char *stderr_path;
    uint64_t stdio_cap;       /* keep at most this many bytes of each stream */
    uint64_t time_limit_ms;   /* wall clock; 0 = none */
    uint64_t output_limit;    /* bytes under /out and /work together; 0 = none */
    uint64_t memory_limit;    /* bytes (RLIMIT_AS); 0 = none */
    unsigned nproc_limit;     /* RLIMIT_NPROC; 0 = 256 */
    bool network;             /* false: no network namespace access */
    int uid, gid;             /* inside and (when root) outside; default 65534 */
    const char *bwrap;        /* path of bwrap; NULL = "bwrap" on PATH */
    bool no_seccomp;          /* tests only: run without the seccomp filter */
    const char *rootfs;       /* NULL: host view ("image: host"); else an unpacked OCI
                                 root (fabric/oci.h), bound read-only as / */
    const char *cwd;          /* working directory inside; NULL = /work */
    const struct cu_cgroup *cgroup_parent; /* NULL: rlimits only */
    const char *cgroup_name;  /* the task's group; NULL = "task-PID-N" */
    uint64_t cpu_milli;       /* CPU quota, thousandths of a core (cgroup); 0 = none */
    uint64_t disk_limit;      /* bytes under /work and /out together; 0 = none */
    const char *const *dev_binds; /* host device nodes bound read-write (GPUs); may be NULL */
    const char *const *ro_binds;  /* host files bound read-only at the same path; may be NULL */
    /* The caller knows these of work_dir, out_dir, in_dir to be empty
     * (CU_SB_EMPTY_*): a warm sandbox does not read them to move their
     * entries in. Per task; 0 = read them all. */
    unsigned known_empty;
};

#define CU_SB_EMPTY_WORK 1u
#define CU_SB_EMPTY_OUT 2u
#define CU_SB_EMPTY_IN 4u

#define CU_SANDBOX_OPTS_INIT                                                   \
    {                                                                          \
        .argv = NULL, .env = NULL, .work_dir = NULL, .out_dir = NULL,          \
        .in_dir = NULL, .stdout_path = NULL, .stderr_path = NULL,              \
        .stdio_cap = 1 << 20, .time_limit_ms = 0, .output_limit = 0,           \
        .memory_limit = 0, .nproc_limit = 0, .network = false, .uid = 65534,   \
        .gid = 65534, .bwrap = NULL, .no_seccomp = false, .rootfs = NULL,      \
        .cwd = NULL, .cgroup_parent = NULL, .cgroup_name = NULL,               \
        .cpu_milli = 0, .disk_limit = 0, .dev_binds = NULL, .ro_binds = NULL   \
    }

enum cu_sandbox_status {
    CU_SB_RUNNING = 0,
    CU_SB_OK,            /* exited 0 */
    CU_SB_FAILED,        /* exited non-zero or killed by a signal on its own */
    CU_SB_TIMEOUT,       /* wall-clock or CPU limit reached, killed */
    CU_SB_OUTPUT_LIMIT,  /* wrote more than output_limit, killed */
    CU_SB_KILLED,        /* cu_sandbox_kill (e.g. job cancelled) */
    CU_SB_ERROR,         /* the sandbox could not be set up: not the task's fault */
};

struct cu_sandbox_result {
    enum cu_sandbox_status status;
    int exit_code;        /* valid when the task exited */
    int term_signal;      /* signal that ended it, or 0 */
    uint64_t cpu_ms;      /* user + system CPU of the task tree (kernel accounting), rounded up */
    uint64_t wall_ms;     /* running time: paused time (cu_sandbox_pause) not counted */
    uint64_t paused_ms;   /* time spent paused */
    uint64_t max_rss_kb;
    uint64_t memory_peak; /* bytes, from the cgroup; 0 without one */
    /* The task's out directory was found empty after every process of the
     * task ended (the final output size check): nothing to collect. False
     * when unknown (no output limit, or the task was stopped). */
    bool out_empty;
    /* Bytes of the task's stdout and stderr kept in the capture files
     * (opts->stdout_path, stderr_path): 0 means that file is empty. */
    uint64_t stdout_bytes, stderr_bytes;
    char reason[256];     /* human sentence: "exit code 3", "time limit 30s exceeded", ... */
};

const char *cu_sandbox_status_name(enum cu_sandbox_status s); /* "ok", "failed", "timeout", ... */

struct cu_sandbox;

/* Starts the task; does not block on it. -CU_ESANDBOX with e set when bwrap
 * cannot be started at all. Output streams are capped at stdio_cap each. */
int cu_sandbox_start(const struct cu_sandbox_opts *opts, struct cu_sandbox **out,
                     struct cu_err *e);
/* Waits up to timeout_ms (-1 forever) for the task to end, enforcing the
 * time and output limits meanwhile. 0 when it has ended (result ready),
 * -CU_EAGAIN when still running. */
int cu_sandbox_wait(struct cu_sandbox *s, int timeout_ms);
/* Kills the whole task tree (SIGKILL to the process group); the status
 * becomes CU_SB_KILLED with reason. Call cu_sandbox_wait after. */
void cu_sandbox_kill(struct cu_sandbox *s, const char *reason);
/* Valid after cu_sandbox_wait returned 0. */
void cu_sandbox_get_result(const struct cu_sandbox *s, struct cu_sandbox_result *r);
/* Kills the task if still running, reaps it, frees. */
void cu_sandbox_free(struct cu_sandbox *s);

/* Pauses the task: SIGSTOP to bwrap and every process of the task tree,
 * rescanning until all are stopped (fabric/proctree.h). While paused the
 * wall-clock limit stands still (the deadline moves on by the paused
 * time) and the result's wall_ms leaves the pause out; CPU time does not
 * grow anyway. The lease is the caller's business. 0 (also when already
 * paused or ended), or negative when some process could not be stopped
 * (the task stays marked paused; resume continues what was stopped).
 * Blocks a few ms. cu_sandbox_kill works on a paused task. */
int cu_sandbox_pause(struct cu_sandbox *s);
/* SIGCONT to the whole tree. 0 (also when not paused) or negative. */
int cu_sandbox_resume(struct cu_sandbox *s);
bool cu_sandbox_is_paused(const struct cu_sandbox *s);

/* Checks that bwrap exists and can create the namespaces here. 0 or
 * -CU_ESANDBOX with e saying what is missing. */
int cu_sandbox_probe(struct cu_err *e);

#endif
