/* warm_proto.h - the messages between the provider (fabric/warm.c) and the
 * supervisor that runs as pid 1 inside a warm sandbox (fabric/init/
 * warm_init.c). Plain structs over a SOCK_SEQPACKET socketpair: both ends
 * are built from this one header in the same build, on the same machine,
 * so no byte-order or version negotiation is needed (the magic catches a
 * stray writer). Kept free of other project headers: the supervisor is a
 * separate static program. */
#ifndef CU_FABRIC_WARM_PROTO_H
#define CU_FABRIC_WARM_PROTO_H

#include <stdint.h>

#define CU_WARM_MAGIC 0x43575331u /* "CWS1" */
#define CU_WARM_MSG_MAX (128u * 1024u) /* one RUN message, strings included */
#define CU_WARM_CTL_FD 6               /* the control socket inside the sandbox */

enum cu_warm_type {
    CU_WARM_READY = 1, /* supervisor -> provider: set up, waiting for a task */
    CU_WARM_RUN,       /* provider -> supervisor: run one task (+2 fds: stdout, stderr; kept by
                        * the supervisor, so only when they change) */
    CU_WARM_KILL,      /* provider -> supervisor: kill the running task now */
    CU_WARM_DONE,      /* supervisor -> provider: the task and all it started are gone */
};

/* Where a task start failed inside the supervisor's child. */
enum cu_warm_stage { CU_WARM_STAGE_NONE = 0, CU_WARM_STAGE_SETUP, CU_WARM_STAGE_CHDIR,
                     CU_WARM_STAGE_EXEC };

struct cu_warm_hdr {
    uint32_t magic;
    uint32_t type;
};

/* RUN: followed by strings_len bytes: nargv NUL-terminated argv strings,
 * nenv "K=V" strings, then the working directory. A limit of 0 is unset. */
struct cu_warm_run {
    struct cu_warm_hdr h;
    uint32_t nargv, nenv;
    uint32_t strings_len;
    uint32_t pad;
    uint64_t lim_cpu_cur, lim_cpu_max; /* RLIMIT_CPU, seconds */
    uint64_t lim_fsize;                /* RLIMIT_FSIZE, bytes */
    uint64_t lim_nproc;                /* RLIMIT_NPROC */
    uint64_t lim_as;                   /* RLIMIT_AS, bytes */
};

struct cu_warm_done {
    struct cu_warm_hdr h;
    int32_t wstatus;    /* of the task's first process (waitpid) */
    int32_t stage;      /* enum cu_warm_stage: NONE when the task ran */
    int32_t err;        /* errno of the failed stage */
    uint32_t pad;
    uint64_t cpu_us;    /* user + system CPU of every process of the task */
    uint64_t maxrss_kb; /* of the task's first process */
};

#endif
