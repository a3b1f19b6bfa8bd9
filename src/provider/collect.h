/* collect.h - the parts of running a task that need no network: the
 * task's environment, collecting its outputs into the blob cache, and the
 * report body of docs/api.md. Internal to src/provider. */
#ifndef CU_PROVIDER_COLLECT_H
#define CU_PROVIDER_COLLECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/hash.h"
#include "market/spec.h"
#include "store/blob.h"

/* Bounds on what a task may leave under /out (beyond them: -CU_ETOOBIG). */
#define CU_OUTPUTS_MAX_FILES 10000
#define CU_OUTPUTS_MAX_DEPTH 16
#define CU_OUTPUTS_MAX_NAME 1024 /* bytes of a relative name */

struct cu_output {
    char *name;          /* relative path under out/ ("tiles/a.ppm"), owned */
    struct cu_hash hash;
    uint64_t size;
    unsigned char *data; /* owned: the content, sent inline in the report;
                            NULL: in the cache (or empty) */
};

struct cu_outputs {
    struct cu_output *v; /* sorted by name (bytewise) after collect */
    size_t n, cap;
    struct cu_hash root; /* Merkle root over {name, hash} (merkle.h) */
};

void cu_outputs_init(struct cu_outputs *o);
void cu_outputs_release(struct cu_outputs *o);

/* Walks out_dir recursively WITHOUT following symlinks (every directory is
 * opened O_NOFOLLOW relative to its parent, every file O_NOFOLLOW and
 * checked to be regular through its descriptor), so a task cannot make the
 * provider read anything outside out_dir. Symlinks, devices, fifos and
 * sockets are skipped, as are names that are not safe path components
 * (cu_name_is_safe) and files whose relative name matches none of globs.
 * Each kept file is listed in o (which must be freshly initialised) with
 * the Merkle root; its content is read into memory (cu_output.data, for
 * the report's inline "blobs") while it fits in *inline_room, which
 * shrinks by what was taken, else copied into bs. inline_room NULL: every
 * file into bs. Empty files are neither (the empty blob is everywhere).
 * max_total bounds the bytes kept (0: none). Returns 0, or negative with e
 * set: -CU_ETOOBIG past a bound, -CU_EIO, -CU_ENOMEM. On error o holds
 * what was collected so far (release it). Blocks on disk I/O. */
int cu_outputs_collect(const char *out_dir, char *const *globs, size_t nglobs,
                       const struct cu_blobstore *bs, uint64_t max_total, uint64_t *inline_room,
                       struct cu_outputs *o, struct cu_err *e);

/* The outputs of a task whose out directory is known to be empty (o
 * freshly initialised): none, and the Merkle root of none. 0 or negative
 * with e set. */
int cu_outputs_none(struct cu_outputs *o, struct cu_err *e);

/* The task's environment: CUMULUS_TASK_INDEX, CUMULUS_TASK_COUNT,
 * CUMULUS_TASK_ARG (when arg is non-NULL), CUMULUS_JOB_ID,
 * CUMULUS_REPLICA_ID, then the spec's env (a spec key that names one of
 * the CUMULUS_ variables is dropped: the provider's value wins). Returns a
 * malloc'd NULL-terminated array of malloc'd "K=V" strings (free with
 * cu_task_env_free), or NULL when out of memory. */
char **cu_task_env_build(const struct cu_spec *spec, const char *job, int64_t replica,
                         uint32_t index, uint32_t count, const char *arg);
void cu_task_env_free(char **env);

/* A blob named in a report (stdout, stderr). */
struct cu_blobref {
    struct cu_hash hash;
    uint64_t size;
    unsigned char *data; /* owned: sent inline; NULL: in the cache (or empty) */
};

/* A log file (stdout, stderr) into ref, as cu_outputs_collect takes an
 * output: in memory while it fits in *inline_room (NULL: never), else into
 * bs; a missing or empty file is the empty blob. 0 or negative. Release
 * ref with cu_blobref_release. */
int cu_log_collect(const struct cu_blobstore *bs, const char *path, uint64_t *inline_room,
                   struct cu_blobref *ref);
/* The empty blob into ref, reading nothing (a stream the sandbox kept
 * nothing of). Returns 0. */
int cu_log_none(struct cu_blobref *ref);
void cu_blobref_release(struct cu_blobref *ref);

struct cu_report {
    const char *status;        /* cu_sandbox_status_name(): ok, failed, ... */
    bool has_exit_code;        /* false: "exit_code":null */
    int exit_code;
    const char *reason;        /* NULL: null */
    uint64_t cpu_ms, wall_ms;
    const struct cu_outputs *outputs; /* NULL: no outputs (root of zero files) */
    struct cu_blobref out, err;       /* stdout and stderr blobs */
};

/* The report body of POST /v1/replicas/{id}/report (docs/api.md), new
 * reference; NULL when out of memory or the Merkle root cannot be made.
 * Blobs held in memory (outputs' and logs' data) go into its "blobs"
 * object, base64, keyed by hash. */
json_t *cu_report_to_json(const struct cu_report *r);

#endif
