/* jobspec.h - reads a requester's YAML job file (libfyaml) into a spec.
 *
 * Errors name the field and the line: "job.yaml:7: resources.memory:
 * '12XB' is not a size (use e.g. 256MiB)". Unknown keys are errors.
 * Input paths are resolved relative to the YAML file's directory and must
 * be readable regular files; their hashes and sizes are computed here, so a
 * spec that loads is ready to upload. */
#ifndef CU_CLIENT_JOBSPEC_H
#define CU_CLIENT_JOBSPEC_H

#include "base/err.h"
#include "market/spec.h"

/* s must be cu_spec_init'ed; on failure it is left released. */
int cu_jobspec_load(struct cu_spec *s, const char *yaml_path, struct cu_err *e);
/* Same, from a string (base_dir resolves input paths; name is used in
 * messages). */
int cu_jobspec_parse(struct cu_spec *s, const char *yaml, size_t n, const char *name,
                     const char *base_dir, struct cu_err *e);

#endif
