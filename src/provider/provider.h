/* provider.h - the provider agent (resource layer). */
#ifndef CU_PROVIDER_PROVIDER_H
#define CU_PROVIDER_PROVIDER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

/* Test-only misbehaviour (`cumulus provide --cheat MODE`): for testing
 * trust on a devnet, never for real use. */
enum cu_cheat {
    CU_CHEAT_NONE,
    CU_CHEAT_WRONG,           /* every ok result's outputs get garbage appended */
    CU_CHEAT_WRONG_SOMETIMES, /* half of them (by hash of the replica id) */
    CU_CHEAT_VANISH,          /* exits the process abruptly mid-task */
    CU_CHEAT_NO_HEARTBEAT,    /* stops heartbeating after the first */
    CU_CHEAT_BAD_ANSWER,      /* heartbeat answers wrong */
    CU_CHEAT_FAIL_CHALLENGE,  /* answers capability challenges wrongly */
    CU_CHEAT_COLLUDE,         /* outputs replaced by one fixed content (colluders agree) */
};

/* "wrong", "wrong-sometimes", ... into *out: 0, or -CU_EINVAL for an
 * unknown name. */
int cu_cheat_parse(const char *name, enum cu_cheat *out);
/* The names, for help and errors: "wrong, wrong-sometimes, ...". */
const char *cu_cheat_names(void);

struct cu_provider_opts {
    const char *exchange_url;
    const char *data_dir;    /* state.db, blobs/ (input cache), tasks/, identity.key */
    unsigned slots;          /* tasks run at once */
    const char *key_path;    /* NULL: DATA/identity.key (created if missing) */
    const char *passphrase;  /* for an encrypted key; NULL = plain/none */
    uint64_t max_memory;     /* offered; 0 = probe */
    unsigned max_cores;      /* offered; 0 = probe */
    uint64_t price_per_cu;   /* ask per CU in base units (sent in hello); 0 = default 1 */
    uint64_t cpu_milli;      /* cap on all tasks' CPU, thousandths of a core; 0 = none */
    uint64_t max_disk;       /* cap on all task directories together, bytes; 0 = none */
    const char *gpus;        /* offered GPU indices ("0,1"); NULL = none */
    /* Idle mode (fabric/idle.h). idle_only: claim only while the owner is
     * away, pause running tasks (SIGSTOP) while not. has_max_load alone:
     * claim only while other processes' load is at most max_load_milli. */
    bool idle_only;
    bool has_max_load;
    uint32_t max_load_milli;  /* L x 1000 */
    int64_t idle_after_ms;    /* N: how long it must have been quiet */
    const char *idle_probe;   /* tests and agents: a file saying "active"/"idle" */
    const char *owner;       /* owner id (64 hex) sent in hello; NULL = own id */
    /* --allow-image: the only OCI images (blob hashes, 64 hex) this
     * provider runs; nallow_images 0 = any image. */
    const char *const *allow_images;
    size_t nallow_images;
    uint64_t stake;          /* stake topped up to this at start; 0 = leave as is */
    enum cu_cheat cheat;     /* test-only misbehaviour; CU_CHEAT_NONE normally */
    /* --no-warm-sandbox: a new bwrap per task instead of one warm sandbox
     * per slot for consecutive tasks of one job (fabric/warm.h). */
    bool no_warm_sandbox;
};

/* Runs until SIGINT/SIGTERM: claims replicas by long-poll, runs them in the
 * sandbox, heartbeats, uploads outputs, reports. Survives exchange outages
 * (retries with backoff). After a crash, on start it reports replicas it
 * was running as abandoned ("error") and re-sends finished reports it had
 * not delivered. */
int cu_provider_run(const struct cu_provider_opts *opts, struct cu_err *e);

#endif
