/* proctree.h - a process and its descendants, as /proc shows them: list,
 * stop/continue with signals, CPU time. Used to pause a sandboxed task
 * (SIGSTOP to its whole tree) and to tell the provider's own CPU use from
 * the rest of the machine's (fabric/idle.h).
 *
 * Descendants are found by parent pid from /proc/PID/stat, so a process
 * that was reparented away from the tree is not seen. Inside a task's pid
 * namespace that cannot happen: orphans go to the namespace's pid 1, which
 * is itself in the tree. */
#ifndef CU_FABRIC_PROCTREE_H
#define CU_FABRIC_PROCTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

#define CU_PROCTREE_MAX 4096 /* processes looked at in one tree */

struct cu_proc_info {
    pid_t pid;
    pid_t ppid;
    char state;       /* R, S, D, T, t, Z, X, ... */
    uint64_t cpu_ms;  /* utime + stime + cutime + cstime, in ms */
};

/* Fills v (room for max) with root and its live descendants, root first
 * when it exists. *n gets how many. 0; -CU_ENOTFOUND when root does not
 * exist; -CU_EIO when /proc cannot be read; -CU_ETOOBIG when the tree has
 * more than max processes (v holds the first max). */
int cu_proc_tree(pid_t root, struct cu_proc_info *v, size_t max, size_t *n);

/* Stops root and every descendant with SIGSTOP, rescanning until each is
 * stopped (T) or gone, so processes forked meanwhile are caught too (a
 * stopped process forks no more). Gives up after about a second of
 * rescans. 0; -CU_ENOTFOUND when root is gone; -CU_EAGAIN when some still
 * ran at the end; -CU_EIO. Blocks for a few ms. */
int cu_proc_tree_stop(pid_t root);

/* Sends SIGCONT to root and every descendant. 0 or as cu_proc_tree. */
int cu_proc_tree_cont(pid_t root);

/* CPU time used so far by root and its descendants, counting children
 * they already reaped (cutime/cstime), so the sum grows as processes come
 * and go. 0 or as cu_proc_tree. */
int cu_proc_tree_cpu_ms(pid_t root, uint64_t *ms);

/* Parses one /proc/PID/stat line into p. 0 or -CU_EPROTO. Pure. */
int cu_proc_parse_stat(const char *line, long ticks_per_s, struct cu_proc_info *p);

#endif
