/* provider.h - the provider agent (resource layer). */
#ifndef CU_PROVIDER_PROVIDER_H
#define CU_PROVIDER_PROVIDER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

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
};

/* Runs until SIGINT/SIGTERM: claims replicas by long-poll, runs them in the
 * sandbox, heartbeats, uploads outputs, reports. Survives exchange outages
 * (retries with backoff). After a crash, on start it reports replicas it
 * was running as abandoned ("error") and re-sends finished reports it had
 * not delivered. */
int cu_provider_run(const struct cu_provider_opts *opts, struct cu_err *e);

#endif
