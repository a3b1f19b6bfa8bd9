#include "base/json.h"

#include <stdlib.h>
#include <string.h>

static int dump_cb(const char *p, size_t n, void *ctx)
{
    return cu_buf_append(ctx, p, n) ? -1 : 0;
}

int cu_json_dump(const json_t *j, struct cu_buf *out)
{
    if (json_dump_callback(j, dump_cb, out, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) != 0)
        return -CU_ETOOBIG;
    return 0;
}

int cu_json_dump_unsorted(const json_t *j, struct cu_buf *out)
{
    if (json_dump_callback(j, dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        return -CU_ETOOBIG;
    return 0;
}

char *cu_json_dumps(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

json_t *cu_json_parse(const char *s, size_t n, struct cu_err *e)
{
    json_error_t je;
    json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!j)
        cu_err_set(e, -CU_EINVAL, "invalid JSON at line %d column %d: %s", je.line, je.column,
                   je.text);
    return j;
}

static const char *pfx(const char *what) { return what ? what : ""; }
static const char *dot(const char *what) { return what ? "." : ""; }

static int missing(const char *what, const char *key, bool required, struct cu_err *e)
{
    if (!required)
        return 1;
    return cu_err_set(e, -CU_ENOTFOUND, "missing field '%s%s%s'", pfx(what), dot(what), key);
}

int cu_json_get_str(const json_t *obj, const char *what, const char *key, bool required,
                    const char **out, struct cu_err *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        int rc = missing(what, key, required, e);
        return rc > 0 ? 0 : rc;
    }
    if (!json_is_string(v))
        return cu_err_set(e, -CU_EINVAL, "field '%s%s%s' must be a string", pfx(what), dot(what),
                          key);
    *out = json_string_value(v);
    return 0;
}

int cu_json_get_i64(const json_t *obj, const char *what, const char *key, bool required,
                    int64_t *out, struct cu_err *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        int rc = missing(what, key, required, e);
        return rc > 0 ? 0 : rc;
    }
    if (!json_is_integer(v))
        return cu_err_set(e, -CU_EINVAL, "field '%s%s%s' must be an integer", pfx(what),
                          dot(what), key);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int cu_json_get_u64(const json_t *obj, const char *what, const char *key, bool required,
                    uint64_t *out, struct cu_err *e)
{
    int64_t v = 0;
    json_t *j = json_object_get(obj, key);
    int rc;
    if (!j)
        return cu_json_get_i64(obj, what, key, required, &v, e);
    rc = cu_json_get_i64(obj, what, key, required, &v, e);
    if (rc)
        return rc;
    if (v < 0)
        return cu_err_set(e, -CU_EINVAL, "field '%s%s%s' must not be negative", pfx(what),
                          dot(what), key);
    *out = (uint64_t)v;
    return 0;
}

int cu_json_get_bool(const json_t *obj, const char *what, const char *key, bool required,
                     bool *out, struct cu_err *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        int rc = missing(what, key, required, e);
        return rc > 0 ? 0 : rc;
    }
    if (!json_is_boolean(v))
        return cu_err_set(e, -CU_EINVAL, "field '%s%s%s' must be true or false", pfx(what),
                          dot(what), key);
    *out = json_is_true(v);
    return 0;
}

int cu_json_only_keys(const json_t *obj, const char *what, const char *const *allowed,
                      struct cu_err *e)
{
    const char *key;
    json_t *v;

    if (!json_is_object(obj))
        return cu_err_set(e, -CU_EINVAL, "'%s' must be an object", what ? what : "body");
    json_object_foreach((json_t *)obj, key, v) {
        bool ok = false;
        (void)v;
        for (size_t i = 0; allowed[i]; i++) {
            if (strcmp(key, allowed[i]) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok)
            return cu_err_set(e, -CU_EINVAL, "unknown field '%s%s%s'", pfx(what), dot(what), key);
    }
    return 0;
}
