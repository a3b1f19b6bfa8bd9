/* taskdir.c - the slot's task directory, reused by its tasks.
 *
 * Each task needs work/, out/ and in/ directories and two capture files
 * (stdout, stderr). Creating and removing a fresh tree per task cost a
 * third of the provider's CPU on trivial tasks (ext4 inode allocation and
 * eviction: docs/performance.md "Provider: one task directory per slot").
 * So each slot keeps one set, DATA/tasks/slot-N, and empties it after each
 * task instead; the capture files are truncated when the next task opens
 * them (fabric/sandbox.h opens them with O_TRUNC).
 *
 * Isolation is the same as with a fresh tree: a task in the warm sandbox
 * never sees these directories themselves, only their entries, which the
 * warm sandbox moves in before the task and, for out/, back after it
 * (fabric/warm.h);
 * emptying them leaves exactly what mkdir would. A task that ran in a
 * sandbox of its own had work/ and out/ bound in (it may have changed
 * their modes, owners or extended attributes), so after such a task the
 * whole tree is removed and made afresh, as before. Anything that cannot
 * be emptied makes the tree be set aside and replaced. recover() removes
 * all of DATA/tasks at the next start, so a crash leaves nothing behind
 * either. */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "provider/agent.h"

#include "base/banned.h"

static const char *const task_subdirs[] = {"work", "out", "in"};

int cu_slot_dir_init(struct cu_slot *s, struct cu_err *e)
{
    char name[32];

    (void)cu_snprintf(name, sizeof name, "slot-%u", s->index);
    s->dir_ready = false;
    s->dir_exposed = false;
    if (cu_path_join(s->dir, sizeof s->dir, s->a->tasks_dir, name) != 0)
        return cu_err_set(e, -CU_ETOOBIG, "task directory path under %s too long",
                          s->a->tasks_dir);
    return 0;
}

/* Removes the slot's tree; when that fails, renames it aside (recover()
 * removes it at the next start) so a fresh one can be made. 0 when the
 * path is free. */
static int drop_tree(struct cu_slot *s)
{
    static atomic_uint serial;
    char aside[CU_PATH_MAX + 32];

    if (cu_rm_rf(s->dir) == 0)
        return 0;
    (void)cu_snprintf(aside, sizeof aside, "%s.stale-%u-%lld", s->dir,
                      atomic_fetch_add(&serial, 1), (long long)cu_mono_ms());
    cu_warn("slot %u: cannot remove %s; moving it aside to %s", s->index, s->dir, aside);
    if (rename(s->dir, aside) != 0)
        return -CU_EIO;
    return 0;
}

int cu_slot_dir_prepare(struct cu_slot *s, struct cu_err *e)
{
    char sub[CU_PATH_MAX];

    s->dir_exposed = false;
    s->dir_moved = false;
    if (s->dir_ready)
        return 0; /* emptied after the last task */
    if (drop_tree(s) != 0)
        return cu_err_set(e, -CU_EIO, "cannot clear task directory %s", s->dir);
    if (cu_mkdir_p(s->dir, 0755) != 0)
        goto out_mkdir_failed;
    for (size_t i = 0; i < sizeof task_subdirs / sizeof task_subdirs[0]; i++) {
        if (cu_path_join(sub, sizeof sub, s->dir, task_subdirs[i]) != 0) {
            errno = ENAMETOOLONG;
            goto out_mkdir_failed;
        }
        if (cu_mkdir_p(sub, 0755) != 0)
            goto out_mkdir_failed;
    }
    s->dir_ready = true;
    return 0;

out_mkdir_failed:
    return cu_err_set(e, -CU_EIO, "cannot create task directories under %s: %s", s->dir,
                      strerror(errno));
}

void cu_slot_dir_done(struct cu_slot *s)
{
    char sub[CU_PATH_MAX];
    bool clean = s->dir_ready && !s->dir_exposed;

    for (size_t i = 0; clean && i < sizeof task_subdirs / sizeof task_subdirs[0]; i++) {
        /* After a warm task only out/ holds anything (fabric/warm.h). */
        if (s->dir_moved && strcmp(task_subdirs[i], "out") != 0)
            continue;
        if (s->out_empty && strcmp(task_subdirs[i], "out") == 0)
            continue; /* found empty after the task; nothing wrote there since */
        if (cu_path_join(sub, sizeof sub, s->dir, task_subdirs[i]) != 0 ||
            cu_empty_dir(sub) != 0)
            clean = false;
    }
    s->dir_exposed = false;
    s->dir_moved = false;
    s->out_empty = false;
    if (clean)
        return;
    /* Made afresh by the next task; removed now so its outputs do not
     * hold disk space meanwhile. */
    s->dir_ready = false;
    if (drop_tree(s) != 0)
        cu_warn("slot %u: cannot remove or move aside %s", s->index, s->dir);
}
