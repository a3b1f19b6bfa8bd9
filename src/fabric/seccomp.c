/* seccomp.c - the task seccomp filter (see seccomp.h).
 *
 * libseccomp compiles the filter; it is exported as raw BPF, the format
 * bwrap's --seccomp reads. Compiling takes a little time and the filter
 * never changes, so it is compiled once per process and copied into a fresh
 * memfd per task: a memfd of its own, because bwrap reads from the current
 * offset, which descriptors sharing one open file would race on. */
#include "fabric/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/banned.h"

#define BPF_MAX (64u << 10) /* the kernel allows 4096 instructions = 32 KiB */

/* What a batch task never needs, and what it gets back instead. A name
 * libseccomp does not know for any architecture in the filter is skipped;
 * one that exists only on some (vm86 on i386) is added where it exists. */
struct denied_call {
    const char *name;
    int err;
};

static const struct denied_call denied[] = {
    /* Reading or steering other processes. */
    {"ptrace", EPERM},
    {"process_vm_readv", EPERM},
    {"process_vm_writev", EPERM},
    {"pidfd_getfd", EPERM},
    {"kcmp", EPERM},
    /* Mounts and the file system tree (old and new mount API). */
    {"mount", EPERM},
    {"umount", EPERM},
    {"umount2", EPERM},
    {"pivot_root", EPERM},
    {"chroot", EPERM},
    {"fsopen", EPERM},
    {"fsconfig", EPERM},
    {"fsmount", EPERM},
    {"fspick", EPERM},
    {"move_mount", EPERM},
    {"open_tree", EPERM},
    {"mount_setattr", EPERM},
    {"open_by_handle_at", EPERM},
    {"name_to_handle_at", EPERM},
    {"swapon", EPERM},
    {"swapoff", EPERM},
    {"quotactl", EPERM},
    {"quotactl_fd", EPERM},
    {"acct", EPERM},
    /* The kernel itself. */
    {"reboot", EPERM},
    {"kexec_load", EPERM},
    {"kexec_file_load", EPERM},
    {"init_module", EPERM},
    {"finit_module", EPERM},
    {"delete_module", EPERM},
    {"bpf", EPERM},
    {"perf_event_open", EPERM},
    {"userfaultfd", EPERM},
    {"lookup_dcookie", EPERM},
    {"syslog", EPERM},
    {"iopl", EPERM},
    {"ioperm", EPERM},
    {"vm86", EPERM},
    {"vm86old", EPERM},
    /* Kernel attack surface with a long record; callers fall back. */
    {"io_uring_setup", EPERM},
    {"io_uring_enter", EPERM},
    {"io_uring_register", EPERM},
    /* Keyrings are not namespaced. */
    {"keyctl", EPERM},
    {"add_key", EPERM},
    {"request_key", EPERM},
    /* New namespaces: a user namespace would give the task every
     * capability inside it. clone is filtered on its flags below. */
    {"unshare", EPERM},
    {"setns", EPERM},
    /* The system clock. */
    {"settimeofday", EPERM},
    {"stime", EPERM},
    {"clock_settime", EPERM},
    {"clock_settime64", EPERM},
    {"adjtimex", EPERM},
    {"clock_adjtime", EPERM},
    {"clock_adjtime64", EPERM},
    /* Its flags sit in a struct the filter cannot read: ENOSYS makes libc
     * fall back to clone (glibc >= 2.34 does). */
    {"clone3", ENOSYS},
};

#define N_DENIED (sizeof(denied) / sizeof(denied[0]))

/* clone flags that create a namespace; CLONE_NEWTIME is missing because in
 * clone() its bit is part of the exit signal (it works only via clone3). */
static const unsigned long clone_ns_flags[] = {
    CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,    CLONE_NEWNET,
    CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP,
};

/* Architectures whose system calls a process of the native one can also
 * make (int 0x80, the x32 ABI); the filter must cover them too. */
static const struct {
    uint32_t native;
    uint32_t companions[2]; /* 0 = none */
} companion_arches[] = {
    {SCMP_ARCH_X86_64, {SCMP_ARCH_X86, SCMP_ARCH_X32}},
    {SCMP_ARCH_AARCH64, {SCMP_ARCH_ARM, 0}},
};

const char *cu_seccomp_denied_name(size_t i)
{
    if (i < N_DENIED)
        return denied[i].name;
    return i == N_DENIED ? "clone" : NULL;
}

/* Adds every rule to ctx. 0 or -CU_ESANDBOX with e set. */
static int add_rules(scmp_filter_ctx ctx, struct cu_err *e)
{
    uint32_t native = seccomp_arch_native();
    /* clone(flags, ...) everywhere but s390, where flags come second. */
    unsigned flags_arg = native == SCMP_ARCH_S390 || native == SCMP_ARCH_S390X ? 1 : 0;
    int nr, rc;

    for (size_t i = 0; i < N_DENIED; i++) {
        nr = seccomp_syscall_resolve_name(denied[i].name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to this libseccomp */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t)denied[i].err), nr, 0);
        if (rc != 0)
            return cu_err_set(e, -CU_ESANDBOX, "seccomp rule for %s: %s", denied[i].name,
                              strerror(-rc));
    }
    for (size_t i = 0; i < sizeof(clone_ns_flags) / sizeof(clone_ns_flags[0]); i++) {
        struct scmp_arg_cmp cmp = {.arg = flags_arg,
                                   .op = SCMP_CMP_MASKED_EQ,
                                   .datum_a = clone_ns_flags[i],
                                   .datum_b = clone_ns_flags[i]};
        rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &cmp);
        if (rc != 0)
            return cu_err_set(e, -CU_ESANDBOX, "seccomp rule for clone: %s", strerror(-rc));
    }
    return 0;
}

/* Compiles the filter and exports it into a malloc'd buffer (*prog, *len;
 * the caller frees *prog). 0 or -CU_ESANDBOX / -CU_ENOMEM with e set. */
static int compile_filter(unsigned char **prog, size_t *len, struct cu_err *e)
{
    scmp_filter_ctx ctx;
    uint32_t native = seccomp_arch_native();
    unsigned char *buf;
    struct stat st;
    int fd, rc;

    ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return cu_err_set(e, -CU_ESANDBOX, "seccomp_init failed");
    /* Any architecture not added below: kill (x32 calls on x86_64 too,
     * should the companion not be added). */
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) != 0) {
        rc = cu_err_set(e, -CU_ESANDBOX, "seccomp bad-arch action: %s", strerror(-rc));
        goto out_release_ctx;
    }
    /* A binary tree of syscall numbers: fewer instructions per call. */
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t i = 0; i < sizeof(companion_arches) / sizeof(companion_arches[0]); i++) {
        if (companion_arches[i].native != native)
            continue;
        for (size_t j = 0; j < 2 && companion_arches[i].companions[j]; j++) {
            rc = seccomp_arch_add(ctx, companion_arches[i].companions[j]);
            if (rc != 0 && rc != -EEXIST) {
                rc = cu_err_set(e, -CU_ESANDBOX, "seccomp: cannot add architecture: %s",
                                strerror(-rc));
                goto out_release_ctx;
            }
        }
    }
    if ((rc = add_rules(ctx, e)) != 0)
        goto out_release_ctx;

    fd = memfd_create("cumulus-seccomp-export", MFD_CLOEXEC);
    if (fd < 0) {
        rc = cu_err_set(e, -CU_ESANDBOX, "memfd_create: %s", strerror(errno));
        goto out_release_ctx;
    }
    if ((rc = seccomp_export_bpf(ctx, fd)) != 0) {
        rc = cu_err_set(e, -CU_ESANDBOX, "seccomp_export_bpf: %s", strerror(-rc));
        goto out_close_fd;
    }
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || (size_t)st.st_size > BPF_MAX) {
        rc = cu_err_set(e, -CU_ESANDBOX, "seccomp filter export has a bad size");
        goto out_close_fd;
    }
    buf = malloc((size_t)st.st_size);
    if (!buf) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_close_fd;
    }
    if (pread(fd, buf, (size_t)st.st_size, 0) != (ssize_t)st.st_size) {
        free(buf);
        rc = cu_err_set(e, -CU_ESANDBOX, "cannot read back the seccomp filter");
        goto out_close_fd;
    }
    *prog = buf;
    *len = (size_t)st.st_size;
    rc = 0;
out_close_fd:
    close(fd);
out_release_ctx:
    seccomp_release(ctx);
    return rc;
}

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *cached_prog; /* never freed: one per process */
static size_t cached_len;

int cu_seccomp_task_fd(struct cu_err *e)
{
    size_t off = 0;
    int fd, rc = 0;

    /* A failed compile is not cached: the next task tries again. */
    pthread_mutex_lock(&cache_lock);
    if (!cached_prog)
        rc = compile_filter(&cached_prog, &cached_len, e);
    pthread_mutex_unlock(&cache_lock);
    if (rc != 0)
        return rc;

    fd = memfd_create("cumulus-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return cu_err_set(e, -CU_ESANDBOX, "memfd_create: %s", strerror(errno));
    while (off < cached_len) {
        ssize_t n = write(fd, cached_prog + off, cached_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = cu_err_set(e, -CU_ESANDBOX, "cannot write the seccomp filter: %s",
                            n < 0 ? strerror(errno) : "short write");
            goto out_close_fd;
        }
        off += (size_t)n;
    }
    /* Nothing that gets the descriptor can change the filter. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0 ||
        lseek(fd, 0, SEEK_SET) != 0) {
        rc = cu_err_set(e, -CU_ESANDBOX, "cannot seal the seccomp filter: %s", strerror(errno));
        goto out_close_fd;
    }
    return fd;

out_close_fd:
    close(fd);
    return rc;
}
