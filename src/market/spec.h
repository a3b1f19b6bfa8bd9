/* spec.h - the job specification, as the exchange stores and validates it.
 *
 * The requester writes YAML (client/jobspec.h parses it, with line
 * numbers); what is signed and sent is this canonical JSON:
 *
 * {"name":"hello",
 *  "command":["sh","-c","..."],
 *  "image":"host" | {"oci":{"hash":HEX64,"size":N}},
 *  "env":{"KEY":"value"},                        (optional)
 *  "inputs":[{"name":"data.txt","hash":HEX64,"size":N}],
 *  "tasks":{"count":4} | {"count":3,"args":["a","b","c"]},
 *  "resources":{"cores":1,"memory":BYTES,"time_ms":MS,"output":BYTES,"gpus":0},
 *  "replication":1,
 *  "outputs":["*.txt"],
 *  "price":{"max_per_cu":100,"max_cu":30}}       (max_cu optional)
 *
 * Pure logic: no I/O. */
#ifndef CU_MARKET_SPEC_H
#define CU_MARKET_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/hash.h"

/* Limits a spec must respect (refused beyond them, naming the field). */
#define CU_SPEC_MAX_NAME 64
#define CU_SPEC_MAX_ARGV 256
#define CU_SPEC_MAX_ARG_LEN 4096
#define CU_SPEC_MAX_INPUTS 256
#define CU_SPEC_MAX_TASKS 100000
#define CU_SPEC_MAX_OUTPUTS 64
#define CU_SPEC_MAX_ENV 64
#define CU_SPEC_MAX_REPLICATION 16
#define CU_SPEC_MAX_CORES 1024
#define CU_SPEC_MAX_TIME_MS (7ULL * 24 * 3600 * 1000)

struct cu_spec_input {
    char *name;            /* safe file name under /in */
    struct cu_hash hash;
    uint64_t size;
    char *path;            /* client side only: local file; NULL on the exchange */
};

struct cu_spec_env {
    char *key;
    char *value;
};

enum cu_spec_challenge {
    CU_SPEC_CHALLENGE_NONE,
    CU_SPEC_CHALLENGE_FACTOR,
    CU_SPEC_CHALLENGE_MEMORY,
};

struct cu_spec {
    char *name;
    char **command;        /* ncommand strings */
    size_t ncommand;
    char *image;           /* "host", or "oci": run on the OCI image layout tarball image_oci */
    struct cu_spec_input image_oci; /* when image is "oci": the tarball as a blob (name
                                       "image.tar", not in the JSON; path client side) */
    struct cu_spec_env *env;
    size_t nenv;
    struct cu_spec_input *inputs;
    size_t ninputs;
    uint32_t task_count;
    char **task_args;      /* NULL, or task_count strings (CUMULUS_TASK_ARG) */
    struct {
        uint32_t cores;
        uint64_t memory;   /* bytes */
        uint64_t time_ms;
        uint64_t output;   /* bytes under /out */
        uint32_t gpus;
    } res;
    uint32_t replication;
    char **outputs;        /* globs matched under /out */
    size_t noutputs;
    uint64_t max_per_cu;   /* price bid, base units per CU */
    uint64_t max_cu;       /* most CU paid per replica; 0 = cu_spec_max_cu's default */
    /* Trust (docs/api.md "Trust"). quorum/max_replicas 0 = the legacy
     * policy of `replication` alone; see cu_spec_policy. */
    uint32_t quorum;
    uint32_t max_replicas;
    bool adaptive;
    uint32_t min_reputation; /* thousandths, 0..1000; 0 = none */
    enum cu_spec_challenge challenge;
    uint32_t challenge_bits; /* factor: 8..64 */
    uint32_t challenge_mib;  /* memory: 1..4096 */
    /* A validator command (NULL: "exact", equal output Merkle roots). It
     * runs in the exchange's sandbox with the job's inputs under /in and two
     * results under /work/a and /work/b; exit 0 = they agree. */
    char **validator;
    size_t nvalidator;
};

/* True when the job runs on an OCI image (image_oci holds its tarball). */
bool cu_spec_image_is_oci(const struct cu_spec *s);

/* Defaults when a field is omitted (the YAML parser applies the same). */
#define CU_SPEC_DEFAULT_CORES 1
#define CU_SPEC_DEFAULT_MEMORY (256ULL << 20)
#define CU_SPEC_DEFAULT_TIME_MS 60000ULL
#define CU_SPEC_DEFAULT_OUTPUT (64ULL << 20)

void cu_spec_init(struct cu_spec *s);
void cu_spec_release(struct cu_spec *s);

/* Parses and validates the canonical JSON form (strict: unknown keys,
 * wrong types and out-of-range values are errors naming the field, e.g.
 * "resources.cores: must be between 1 and 1024"). */
int cu_spec_from_json(struct cu_spec *s, const json_t *j, struct cu_err *e);
/* Canonical JSON (new reference); NULL when out of memory. */
json_t *cu_spec_to_json(const struct cu_spec *s);
/* Checks every rule (used by both parsers): names safe, command non-empty,
 * 1 <= tasks <= max, args count equals tasks, replication in range, output
 * globs relative without "..", image supported, input names distinct... */
int cu_spec_validate(const struct cu_spec *s, struct cu_err *e);
/* Same, and also writes the failing field's path in JSON form
 * ("resources.cores", "inputs[2].name", "tasks.args[0]") into field (may
 * be NULL; "" on success), so a parser can point at the source line. */
int cu_spec_validate_field(const struct cu_spec *s, struct cu_err *e, char *field,
                           size_t fieldsz);
/* The job's replication policy: {replication, quorum, max_replicas}, or
 * the legacy {k, k, 2k+1} when quorum is 0. min <= max always holds for a
 * validated spec. */
void cu_spec_policy(const struct cu_spec *s, uint32_t *min, uint32_t *quorum, uint32_t *max);
/* The most CU one replica is paid for: price.max_cu when set, else the
 * task's reference-core seconds, cores x ceil(time limit in s). */
uint64_t cu_spec_max_cu(const struct cu_spec *s);
/* fnmatch-style match of an output glob against a relative path under
 * /out ("*.txt", "tiles/?.ppm"); '*' does not cross '/'. */
bool cu_spec_glob_match(const char *glob, const char *path);

#endif
