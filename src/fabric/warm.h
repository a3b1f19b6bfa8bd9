/* warm.h - a warm sandbox: one long-lived bwrap sandbox that runs the
 * consecutive tasks of one job in one provider slot, instead of a new
 * bwrap per task (issue 6; docs/decisions.md "Warm sandbox").
 *
 * The sandbox is built exactly as fabric/sandbox.h builds a task's (the
 * same command line builder, seccomp filter, uid 65534, every namespace,
 * cap-drop ALL, read-only host view or OCI root, the same rlimits), with
 * its /work, /out and /in bound from BASE/work, BASE/out and BASE/in, and
 * runs in one cgroup of its own (memory, CPU and process limits of the
 * job). Its pid 1 is a small static supervisor (fabric/init/warm_init.c)
 * that runs one task at a time on the provider's word and, when the task
 * ends, kills every process the task left, empties /tmp and /dev/shm and
 * removes System V IPC objects. Per task, the task's own directories'
 * entries are moved into BASE (rename) before it runs, those of /out moved
 * back after it ends, and BASE is emptied, so the next task finds /work,
 * /out and /in as a fresh sandbox would.
 *
 * A warm task is an ordinary struct cu_sandbox handle: cu_sandbox_wait,
 * _kill, _pause, _resume, _get_result and _free work on it, with the same
 * limits, reasons and accounting (CPU: the supervisor's kernel accounting
 * of every process of the task). Tasks of different owners (jobs) never
 * share a warm sandbox: cu_warm_acquire starts a fresh one whenever the
 * owner or anything that shapes the sandbox differs.
 *
 * Not thread-safe: one warm sandbox belongs to one slot thread. */
#ifndef CU_FABRIC_WARM_H
#define CU_FABRIC_WARM_H

#include <stdbool.h>

#include "base/err.h"
#include "fabric/sandbox.h"

struct cu_warm;

/* Starts a warm sandbox shaped by opts (everything except argv, env, cwd,
 * stdout/stderr paths and the time limit, which are per task; work_dir,
 * out_dir, in_dir only say whether there is an /in) for owner (a job id;
 * NULL: a spare, whose first cu_warm_acquire gives it an owner), bound from
 * base_dir/{work,out,in} (created; base_dir is removed with the sandbox,
 * so give each sandbox its own). Blocks until the supervisor is ready (a
 * few ms). -CU_ESANDBOX with e saying why bwrap or the supervisor could
 * not start. */
int cu_warm_start(const struct cu_sandbox_opts *opts, const char *base_dir, const char *owner,
                  struct cu_warm **out, struct cu_err *e);

/* The shape of w (a copy: it outlives w), and a spare (no owner) of that
 * shape in base_dir, as cu_warm_start: started ahead of time, a spare
 * takes a new job's first task without a bwrap start. */
struct cu_warm_shape;
struct cu_warm_shape *cu_warm_shape_of(const struct cu_warm *w); /* NULL: out of memory */
void cu_warm_shape_free(struct cu_warm_shape *sh);
struct cu_warm_shape *cu_warm_shape_dup(const struct cu_warm_shape *sh); /* NULL: out of memory */
int cu_warm_start_shape(const struct cu_warm_shape *sh, const char *base_dir,
                        struct cu_warm **out, struct cu_err *e);

/* True when a task of owner with opts may run in w: same sandbox shape,
 * w has not died, and w belongs to owner or has run no task yet. */
bool cu_warm_fits(struct cu_warm *w, const struct cu_sandbox_opts *opts, const char *owner);

/* Runs one task in w (see the top): opts->work_dir, out_dir, in_dir are the
 * task's own directories; their entries are moved into the sandbox now
 * (so, once this returned 0, work_dir and in_dir stay empty: what the task
 * leaves in /work is scratch, removed with the sandbox's copy) and out's
 * back when the task has ended (cu_sandbox_wait returned 0). With a
 * cgroup, the task runs in the sandbox's group, under its own name
 * (cu_warm_cgroup_name; opts->cgroup_name is not used). *out is a task
 * handle for cu_sandbox_wait and the rest.
 * -CU_ETOOBIG when the command and environment do not fit one message
 * (run it cold), -CU_ECONFLICT when a task runs already, -CU_ESANDBOX
 * when w is dead. */
int cu_warm_run(struct cu_warm *w, const struct cu_sandbox_opts *opts, struct cu_sandbox **out,
                struct cu_err *e);

/* Gives w to owner when it has none yet (a spare that cu_warm_fits just
 * accepted for owner's task; one with an owner is left as it is). 0 or
 * -CU_ENOMEM. */
int cu_warm_own(struct cu_warm *w, const char *owner, struct cu_err *e);

/* Keeps *wp when the task fits it (giving it to owner when it had none);
 * otherwise frees it and starts a new one for opts and owner in base_dir
 * into *wp. 0 or as cu_warm_start (*wp NULL). */
int cu_warm_acquire(struct cu_warm **wp, const struct cu_sandbox_opts *opts,
                    const char *base_dir, const char *owner, struct cu_err *e);

/* Ends the sandbox (every process in it), removes its cgroup and its
 * base directory. Call with no task running (free it first). NULL is
 * fine. */
void cu_warm_free(struct cu_warm *w);
/* The name of w's cgroup (its directory under the parent group given at
 * the start, the same in every controller), or NULL when it has none. A
 * warm sandbox's group keeps this name across its tasks; whoever needs to
 * find a task's group keeps the pairing (the provider: warm_slot.c). */
const char *cu_warm_cgroup_name(const struct cu_warm *w);

#endif
