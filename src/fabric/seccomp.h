/* seccomp.h - the seccomp filter every task runs under (DESIGN.md §8).
 *
 * A denylist with default allow: the calls a batch task never needs (ptrace,
 * mount, kexec, module loading, bpf, perf_event_open, keyrings, namespaces,
 * clock setting, ...) fail with EPERM; clone3 fails with ENOSYS so libc
 * falls back to clone, whose namespace flags the filter can inspect. The
 * filter covers the native architecture and its 32-bit companions (on
 * x86_64: i386 and x32), so a 32-bit syscall cannot bypass it; a call from
 * any other architecture kills the process.
 *
 * The filter is handed to bwrap as compiled BPF (--seccomp FD); bwrap sets
 * no_new_privs and installs it just before it executes the task. */
#ifndef CU_FABRIC_SECCOMP_H
#define CU_FABRIC_SECCOMP_H

#include <stddef.h>

#include "base/err.h"

/* Returns a new memfd (>= 0, close-on-exec, sealed against writes, offset 0)
 * holding the task filter as a BPF program, for bwrap --seccomp. The caller
 * owns the descriptor and closes it. The filter is compiled once per process
 * (thread-safe) and copied into a fresh memfd on each call; does not block.
 * -CU_ESANDBOX with e set when libseccomp or memfd_create fails. */
int cu_seccomp_task_fd(struct cu_err *e);

/* The i-th name of the system calls the filter refuses, NULL past the last
 * (for tests and documentation). clone is refused only with namespace
 * flags, clone3 always with ENOSYS, the rest with EPERM. */
const char *cu_seccomp_denied_name(size_t i);

#endif
