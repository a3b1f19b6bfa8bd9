/* json.h - jansson helpers: canonical dumps and typed field access whose
 * errors name the field. Integers are exact 64-bit (never doubles). */
#ifndef CU_BASE_JSON_H
#define CU_BASE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

/* Canonical form: compact, keys sorted, UTF-8; what gets hashed and signed. */
int cu_json_dump(const json_t *j, struct cu_buf *out);
/* Same, as a malloc'd C string (free()); NULL when out of memory. */
char *cu_json_dumps(const json_t *j);
/* Compact, keys in the order they were added: for answers nobody hashes or
 * signs (sorting every object's keys was ~2 % of the exchange's CPU under
 * bench/dispatch). 0, or -CU_ETOOBIG when out grows past its limit. */
int cu_json_dump_unsorted(const json_t *j, struct cu_buf *out);
/* Parses exactly one JSON value from n bytes (rejects trailing data and
 * duplicate keys); e names the line and column on failure. */
json_t *cu_json_parse(const char *s, size_t n, struct cu_err *e);

/* Typed getters. When the key is missing: -CU_ENOTFOUND if required (with
 * e set to "missing field 'KEY'"), else 0 and *out untouched. A wrong type or
 * range gives -CU_EINVAL with e naming the field. `what` prefixes field names
 * in messages (e.g. "resources"), may be NULL. */
int cu_json_get_str(const json_t *obj, const char *what, const char *key, bool required,
                    const char **out, struct cu_err *e);
int cu_json_get_u64(const json_t *obj, const char *what, const char *key, bool required,
                    uint64_t *out, struct cu_err *e);
int cu_json_get_i64(const json_t *obj, const char *what, const char *key, bool required,
                    int64_t *out, struct cu_err *e);
int cu_json_get_bool(const json_t *obj, const char *what, const char *key, bool required,
                     bool *out, struct cu_err *e);
/* Every key of obj must be in the NULL-terminated list allowed. */
int cu_json_only_keys(const json_t *obj, const char *what, const char *const *allowed,
                      struct cu_err *e);

#endif
