/* spec.c - the job specification: canonical JSON in and out, and the rules
 * every spec must satisfy. Pure logic: no I/O. */
#include "market/spec.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/util.h"

#include "base/banned.h"

/* jansson integers are signed 64-bit: larger values cannot round-trip. */
#define JSON_U64_MAX ((uint64_t)INT64_MAX)
#define SPEC_MIN_MEMORY (1ULL << 20)
#define SPEC_MAX_OUTPUT (16ULL << 30)
#define SPEC_MAX_GPUS 64
#define CU_SPEC_MAX_REPLICAS 64
#define SPEC_MAX_CU (1ULL << 40) /* CU per replica: ~35,000 core-years */
#define SPEC_MAX_ENV_KEY 128
#define SPEC_MAX_GLOB 1024

void cu_spec_init(struct cu_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->res.cores = CU_SPEC_DEFAULT_CORES;
    s->res.memory = CU_SPEC_DEFAULT_MEMORY;
    s->res.time_ms = CU_SPEC_DEFAULT_TIME_MS;
    s->res.output = CU_SPEC_DEFAULT_OUTPUT;
    s->replication = 1;
    s->task_count = 1;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void cu_spec_release(struct cu_spec *s)
{
    free(s->name);
    free_strv(s->command, s->ncommand);
    free_strv(s->validator, s->nvalidator);
    free(s->image);
    free(s->image_oci.name);
    free(s->image_oci.path);
    for (size_t i = 0; i < s->nenv; i++) {
        free(s->env[i].key);
        free(s->env[i].value);
    }
    free(s->env);
    for (size_t i = 0; i < s->ninputs; i++) {
        free(s->inputs[i].name);
        free(s->inputs[i].path);
    }
    free(s->inputs);
    free_strv(s->task_args, s->task_args ? s->task_count : 0);
    free_strv(s->outputs, s->noutputs);
    cu_spec_init(s);
}

/* ---- validation ---------------------------------------------------------- */

/* Sets e to "FIELD: problem" and copies FIELD into field (when non-NULL). */
static int fail(struct cu_err *e, char *field, size_t fieldsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct cu_err *e, char *field, size_t fieldsz, const char *fmt, ...)
{
    struct cu_err tmp = {0};
    va_list ap;
    va_start(ap, fmt);
    cu_err_vset(&tmp, -CU_EINVAL, fmt, ap);
    va_end(ap);
    if (field && fieldsz) {
        /* The field is the message up to the first ": " or " '" (image). */
        size_t n = strcspn(tmp.msg, ": '");
        if (n >= fieldsz)
            n = fieldsz - 1;
        memcpy(field, tmp.msg, n);
        field[n] = '\0';
    }
    if (e)
        *e = tmp;
    return -CU_EINVAL;
}

static bool env_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > SPEC_MAX_ENV_KEY)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && i > 0))
            return false;
    }
    return true;
}

static bool job_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > CU_SPEC_MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Why glob g is not acceptable, or NULL: relative, no ".." component. */
static const char *glob_problem(const char *g)
{
    size_t n = strlen(g);
    if (n == 0)
        return "must not be empty";
    if (n > SPEC_MAX_GLOB)
        return "is too long (at most 1024 bytes)";
    if (g[0] == '/')
        return "must be relative to /out (no leading '/')";
    for (const char *p = g; *p;) {
        size_t c = strcspn(p, "/");
        if (c == 2 && p[0] == '.' && p[1] == '.')
            return "must not contain '..'";
        p += c;
        if (*p == '/')
            p++;
    }
    return NULL;
}

/* cu_spec_validate, also naming the failing field ("resources.cores",
 * "inputs[2].name") into field, which may be NULL. */
int cu_spec_validate_field(const struct cu_spec *s, struct cu_err *e, char *field, size_t fieldsz)
{
#define FAIL(...) fail(e, field, fieldsz, __VA_ARGS__)
    if (field && fieldsz)
        field[0] = '\0';

    if (!s->name)
        return FAIL("name: missing");
    if (!job_name_ok(s->name))
        return FAIL("name: '%.80s' must be 1 to %d characters of A-Z a-z 0-9 . _ -", s->name,
                    CU_SPEC_MAX_NAME);

    /* An OCI job may leave the command to the image's Entrypoint/Cmd. */
    if (s->ncommand == 0 && !cu_spec_image_is_oci(s))
        return FAIL("command: must have at least one argument");
    if (s->ncommand > CU_SPEC_MAX_ARGV)
        return FAIL("command: at most %d arguments (has %zu)", CU_SPEC_MAX_ARGV, s->ncommand);
    for (size_t i = 0; i < s->ncommand; i++) {
        if (!s->command[i])
            return FAIL("command[%zu]: missing", i);
        if (strlen(s->command[i]) > CU_SPEC_MAX_ARG_LEN)
            return FAIL("command[%zu]: longer than %d bytes", i, CU_SPEC_MAX_ARG_LEN);
    }
    if (s->ncommand > 0 && s->command[0][0] == '\0')
        return FAIL("command[0]: the program must not be empty");

    if (!s->image)
        return FAIL("image: missing");
    if (strcmp(s->image, "oci") == 0) {
        if (s->image_oci.size == 0)
            return FAIL("image.oci.size: an OCI image tarball cannot be empty");
        if (s->image_oci.size > JSON_U64_MAX)
            return FAIL("image.oci.size: too large");
    } else if (strcmp(s->image, "host") != 0) {
        return FAIL("image '%.80s': must be 'host' or an OCI image ('oci:./image.tar')",
                    s->image);
    }

    if (s->nenv > CU_SPEC_MAX_ENV)
        return FAIL("env: at most %d variables (has %zu)", CU_SPEC_MAX_ENV, s->nenv);
    for (size_t i = 0; i < s->nenv; i++) {
        const char *k = s->env[i].key;
        if (!k || !env_key_ok(k))
            return FAIL("env.%.80s: not a valid variable name (use [A-Za-z_][A-Za-z0-9_]*)",
                        k ? k : "");
        if (strncmp(k, "CUMULUS_", 8) == 0)
            return FAIL("env.%s: names starting with CUMULUS_ are reserved", k);
        if (!s->env[i].value)
            return FAIL("env.%s: missing value", k);
        if (strlen(s->env[i].value) > CU_SPEC_MAX_ARG_LEN)
            return FAIL("env.%s: value longer than %d bytes", k, CU_SPEC_MAX_ARG_LEN);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->env[j].key, k) == 0)
                return FAIL("env.%s: defined twice", k);
    }

    if (s->ninputs > CU_SPEC_MAX_INPUTS)
        return FAIL("inputs: at most %d inputs (has %zu)", CU_SPEC_MAX_INPUTS, s->ninputs);
    for (size_t i = 0; i < s->ninputs; i++) {
        const char *n = s->inputs[i].name;
        if (!n || !cu_name_is_safe(n))
            return FAIL("inputs[%zu].name: '%.80s' is not a safe file name (one path component "
                        "of A-Z a-z 0-9 . _ -, not starting with '-')",
                        i, n ? n : "");
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->inputs[j].name, n) == 0)
                return FAIL("inputs[%zu].name: '%s' is used by inputs[%zu] too", i, n, j);
        if (s->inputs[i].size > JSON_U64_MAX)
            return FAIL("inputs[%zu].size: too large", i);
    }

    if (s->task_count < 1 || s->task_count > CU_SPEC_MAX_TASKS)
        return FAIL("tasks.count: must be between 1 and %d", CU_SPEC_MAX_TASKS);
    if (s->task_args) {
        for (uint32_t i = 0; i < s->task_count; i++) {
            if (!s->task_args[i])
                return FAIL("tasks.args[%u]: missing", i);
            if (strlen(s->task_args[i]) > CU_SPEC_MAX_ARG_LEN)
                return FAIL("tasks.args[%u]: longer than %d bytes", i, CU_SPEC_MAX_ARG_LEN);
        }
    }

    if (s->res.cores < 1 || s->res.cores > CU_SPEC_MAX_CORES)
        return FAIL("resources.cores: must be between 1 and %d", CU_SPEC_MAX_CORES);
    if (s->res.memory < SPEC_MIN_MEMORY)
        return FAIL("resources.memory: must be at least 1MiB");
    if (s->res.memory > JSON_U64_MAX)
        return FAIL("resources.memory: too large");
    if (s->res.time_ms < 1000 || s->res.time_ms > CU_SPEC_MAX_TIME_MS)
        return FAIL("resources.time_ms: must be between 1s and 7d");
    if (s->res.output < 1 || s->res.output > SPEC_MAX_OUTPUT)
        return FAIL("resources.output: must be between 1 byte and 16GiB");
    if (s->res.gpus > SPEC_MAX_GPUS)
        return FAIL("resources.gpus: must be between 0 and %d", SPEC_MAX_GPUS);

    if (s->replication < 1 || s->replication > CU_SPEC_MAX_REPLICATION)
        return FAIL("replication: must be between 1 and %d", CU_SPEC_MAX_REPLICATION);
    if (s->quorum || s->max_replicas) {
        if (s->quorum < 1 || s->quorum > s->replication)
            return FAIL("replication.quorum: must be between 1 and replication.min (%u)",
                        s->replication);
        if (s->max_replicas < s->replication || s->max_replicas > CU_SPEC_MAX_REPLICAS)
            return FAIL("replication.max: must be between replication.min (%u) and %d",
                        s->replication, CU_SPEC_MAX_REPLICAS);
    }
    if (s->adaptive && (!s->quorum || s->replication < 2))
        return FAIL("replication: adaptive needs a policy of at least 2 replicas");
    if (s->nvalidator) {
        if (s->nvalidator > CU_SPEC_MAX_ARGV || !s->validator[0] || !s->validator[0][0])
            return FAIL("validator.command: must name a program (at most %d arguments)",
                        CU_SPEC_MAX_ARGV);
        for (size_t i = 0; i < s->nvalidator; i++)
            if (!s->validator[i] || strlen(s->validator[i]) > CU_SPEC_MAX_ARG_LEN)
                return FAIL("validator.command[%zu]: missing or longer than %d", i,
                            CU_SPEC_MAX_ARG_LEN);
    }
    if (s->min_reputation > 1000)
        return FAIL("min_reputation: must be between 0 and 1 (%u thousandths given)",
                    s->min_reputation);
    switch (s->challenge) {
    case CU_SPEC_CHALLENGE_NONE:
        break;
    case CU_SPEC_CHALLENGE_FACTOR:
        if (s->challenge_bits < 8 || s->challenge_bits > 64)
            return FAIL("challenge.bits: must be between 8 and 64");
        break;
    case CU_SPEC_CHALLENGE_MEMORY:
        if (s->challenge_mib < 1 || s->challenge_mib > 4096)
            return FAIL("challenge.mib: must be between 1 and 4096");
        break;
    default:
        return FAIL("challenge.kind: must be 'factor' or 'memory'");
    }

    if (s->noutputs < 1 || s->noutputs > CU_SPEC_MAX_OUTPUTS)
        return FAIL("outputs: must list between 1 and %d globs", CU_SPEC_MAX_OUTPUTS);
    for (size_t i = 0; i < s->noutputs; i++) {
        const char *why = s->outputs[i] ? glob_problem(s->outputs[i]) : "missing";
        if (why)
            return FAIL("outputs[%zu]: '%.80s' %s", i, s->outputs[i] ? s->outputs[i] : "", why);
    }

    if (s->max_per_cu > JSON_U64_MAX)
        return FAIL("price.max_per_cu: must be at most %lld", (long long)INT64_MAX);
    if (s->max_cu > SPEC_MAX_CU)
        return FAIL("price.max_cu: must be at most %llu", (unsigned long long)SPEC_MAX_CU);
    return 0;
#undef FAIL
}

void cu_spec_policy(const struct cu_spec *s, uint32_t *min, uint32_t *quorum, uint32_t *max)
{
    *min = s->replication;
    *quorum = s->quorum ? s->quorum : s->replication;
    *max = s->quorum ? s->max_replicas : 2 * s->replication + 1;
}

uint64_t cu_spec_max_cu(const struct cu_spec *s)
{
    /* cores <= 1024 and time <= 7 days: the product fits easily. */
    return s->max_cu ? s->max_cu : (uint64_t)s->res.cores * ((s->res.time_ms + 999) / 1000);
}

bool cu_spec_image_is_oci(const struct cu_spec *s)
{
    return s->image && strcmp(s->image, "oci") == 0;
}

int cu_spec_validate(const struct cu_spec *s, struct cu_err *e)
{
    return cu_spec_validate_field(s, e, NULL, 0);
}

bool cu_spec_glob_match(const char *glob, const char *path)
{
    return fnmatch(glob, path, FNM_PATHNAME) == 0;
}

/* ---- JSON out ------------------------------------------------------------ */

static json_t *strv_to_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* json_*_set_new steal their value even on failure; one flag collects all
 * failures so the builder reads straight. */
static void put(json_t *obj, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(obj, key, v) != 0)
        *ok = false;
}

json_t *cu_spec_to_json(const struct cu_spec *s)
{
    bool ok = true;
    json_t *j = json_object();
    json_t *env, *inputs, *tasks, *res, *price;

    if (!j)
        return NULL;
    put(j, "name", json_string(s->name), &ok);
    put(j, "command", strv_to_json(s->command, s->ncommand), &ok);
    if (cu_spec_image_is_oci(s)) {
        char hex[CU_HASH_HEX_LEN + 1];
        cu_hash_to_hex(&s->image_oci.hash, hex);
        put(j, "image",
            json_pack("{s:{s:s,s:I}}", "oci", "hash", hex, "size",
                      (json_int_t)s->image_oci.size),
            &ok);
    } else {
        put(j, "image", json_string(s->image), &ok);
    }

    if (s->nenv > 0) {
        env = json_object();
        for (size_t i = 0; env && i < s->nenv; i++)
            put(env, s->env[i].key, json_string(s->env[i].value), &ok);
        put(j, "env", env, &ok);
    }

    inputs = json_array();
    for (size_t i = 0; inputs && i < s->ninputs; i++) {
        char hex[CU_HASH_HEX_LEN + 1];
        json_t *in = json_object();
        cu_hash_to_hex(&s->inputs[i].hash, hex);
        if (in) {
            put(in, "name", json_string(s->inputs[i].name), &ok);
            put(in, "hash", json_string(hex), &ok);
            put(in, "size", json_integer((json_int_t)s->inputs[i].size), &ok);
        }
        if (!in || json_array_append_new(inputs, in) != 0)
            ok = false;
    }
    put(j, "inputs", inputs, &ok);

    tasks = json_object();
    if (tasks) {
        put(tasks, "count", json_integer(s->task_count), &ok);
        if (s->task_args)
            put(tasks, "args", strv_to_json(s->task_args, s->task_count), &ok);
    }
    put(j, "tasks", tasks, &ok);

    res = json_object();
    if (res) {
        put(res, "cores", json_integer(s->res.cores), &ok);
        put(res, "memory", json_integer((json_int_t)s->res.memory), &ok);
        put(res, "time_ms", json_integer((json_int_t)s->res.time_ms), &ok);
        put(res, "output", json_integer((json_int_t)s->res.output), &ok);
        put(res, "gpus", json_integer(s->res.gpus), &ok);
    }
    put(j, "resources", res, &ok);

    put(j, "replication", json_integer(s->replication), &ok);
    /* Trust fields appear only when set, so older specs keep their form. */
    if (s->quorum) {
        put(j, "quorum", json_integer(s->quorum), &ok);
        put(j, "max_replicas", json_integer(s->max_replicas), &ok);
    }
    if (s->adaptive)
        put(j, "adaptive", json_true(), &ok);
    if (s->nvalidator)
        put(j, "validator", json_pack("{s:o}", "command", strv_to_json(s->validator, s->nvalidator)),
            &ok);
    if (s->min_reputation)
        put(j, "min_reputation", json_integer(s->min_reputation), &ok);
    if (s->challenge == CU_SPEC_CHALLENGE_FACTOR)
        put(j, "challenge", json_pack("{s:s,s:i}", "kind", "factor", "bits", s->challenge_bits),
            &ok);
    else if (s->challenge == CU_SPEC_CHALLENGE_MEMORY)
        put(j, "challenge", json_pack("{s:s,s:i}", "kind", "memory", "mib", s->challenge_mib),
            &ok);
    put(j, "outputs", strv_to_json(s->outputs, s->noutputs), &ok);

    price = json_object();
    if (price)
        put(price, "max_per_cu", json_integer((json_int_t)s->max_per_cu), &ok);
    if (price && s->max_cu)
        put(price, "max_cu", json_integer((json_int_t)s->max_cu), &ok);
    put(j, "price", price, &ok);

    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- JSON in ------------------------------------------------------------- */

/* Copies a JSON string, refusing embedded NUL bytes (a C string would
 * silently cut them). */
static int dup_str(const json_t *v, const char *field, char **out, struct cu_err *e)
{
    const char *p;
    size_t n;

    if (!json_is_string(v))
        return cu_err_set(e, -CU_EINVAL, "%s: must be a string", field);
    p = json_string_value(v);
    n = json_string_length(v);
    if (memchr(p, '\0', n))
        return cu_err_set(e, -CU_EINVAL, "%s: must not contain NUL bytes", field);
    *out = strndup(p, n);
    if (!*out)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    return 0;
}

/* Reads an array of strings; *out holds *n strings on success. */
static int dup_strv(const json_t *a, const char *field, size_t max, char ***out, size_t *n,
                    struct cu_err *e)
{
    char fname[64];
    size_t len;
    char **v;

    if (!json_is_array(a))
        return cu_err_set(e, -CU_EINVAL, "%s: must be an array of strings", field);
    len = json_array_size(a);
    if (len > max)
        return cu_err_set(e, -CU_EINVAL, "%s: at most %zu entries (has %zu)", field, max, len);
    v = calloc(len ? len : 1, sizeof(*v));
    if (!v)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        int rc;
        cu_snprintf(fname, sizeof(fname), "%s[%zu]", field, i);
        rc = dup_str(json_array_get(a, i), fname, &v[i], e);
        if (rc) {
            free_strv(v, i);
            return rc;
        }
    }
    *out = v;
    *n = len;
    return 0;
}

/* Reads an optional non-negative integer. Values beyond u32 saturate so that
 * validation refuses them with its range message instead of wrapping. */
static int get_u32(const json_t *obj, const char *what, const char *key, bool required,
                   uint32_t *out, struct cu_err *e)
{
    uint64_t v = *out;
    int rc = cu_json_get_u64(obj, what, key, required, &v, e);
    if (rc)
        return rc;
    *out = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    return 0;
}

static int object_field(const json_t *j, const char *key, bool required, json_t **out,
                        struct cu_err *e)
{
    json_t *v = json_object_get(j, key);
    *out = v;
    if (!v)
        return required ? cu_err_set(e, -CU_EINVAL, "%s: missing", key) : 0;
    if (!json_is_object(v))
        return cu_err_set(e, -CU_EINVAL, "%s: must be an object", key);
    return 0;
}

static int env_from_json(struct cu_spec *s, const json_t *env, struct cu_err *e)
{
    const char *key;
    json_t *v;
    size_t n = json_object_size(env);
    char field[200];

    if (n > CU_SPEC_MAX_ENV)
        return cu_err_set(e, -CU_EINVAL, "env: at most %d variables (has %zu)", CU_SPEC_MAX_ENV, n);
    s->env = calloc(n ? n : 1, sizeof(*s->env));
    if (!s->env)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    json_object_foreach((json_t *)env, key, v)
    {
        struct cu_spec_env *ev = &s->env[s->nenv];
        int rc;
        cu_snprintf(field, sizeof(field), "env.%.80s", key);
        ev->key = strdup(key);
        if (!ev->key)
            return cu_err_set(e, -CU_ENOMEM, "out of memory");
        s->nenv++;
        rc = dup_str(v, field, &ev->value, e);
        if (rc)
            return rc;
    }
    return 0;
}

static int inputs_from_json(struct cu_spec *s, const json_t *a, struct cu_err *e)
{
    static const char *const keys[] = {"name", "hash", "size", NULL};
    size_t n;
    char what[32], field[48];

    if (!json_is_array(a))
        return cu_err_set(e, -CU_EINVAL, "inputs: must be an array");
    n = json_array_size(a);
    if (n > CU_SPEC_MAX_INPUTS)
        return cu_err_set(e, -CU_EINVAL, "inputs: at most %d inputs (has %zu)", CU_SPEC_MAX_INPUTS,
                          n);
    s->inputs = calloc(n ? n : 1, sizeof(*s->inputs));
    if (!s->inputs)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *in = json_array_get(a, i);
        struct cu_spec_input *it = &s->inputs[i];
        const char *hex = NULL;
        int rc;

        s->ninputs++;
        cu_snprintf(what, sizeof(what), "inputs[%zu]", i);
        if ((rc = cu_json_only_keys(in, what, keys, e)) != 0)
            return rc;
        cu_snprintf(field, sizeof(field), "%s.name", what);
        if (!json_object_get(in, "name"))
            return cu_err_set(e, -CU_EINVAL, "%s: missing", field);
        if ((rc = dup_str(json_object_get(in, "name"), field, &it->name, e)) != 0)
            return rc;
        if ((rc = cu_json_get_str(in, what, "hash", true, &hex, e)) != 0)
            return rc;
        if (cu_hash_from_hex(hex, &it->hash) != 0)
            return cu_err_set(e, -CU_EINVAL, "%s.hash: '%.80s' is not 64 hex characters", what,
                              hex);
        if ((rc = cu_json_get_u64(in, what, "size", true, &it->size, e)) != 0)
            return rc;
    }
    return 0;
}

/* "image": "host" | {"oci":{"hash":HEX64,"size":N}}. */
static int image_from_json(struct cu_spec *s, const json_t *v, struct cu_err *e)
{
    static const char *const keys[] = {"oci", NULL};
    static const char *const oci_keys[] = {"hash", "size", NULL};
    const char *hex = NULL;
    json_t *oci;
    int rc;

    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "oci") == 0)
            return cu_err_set(e, -CU_EINVAL,
                              "image: 'oci' needs its tarball: {\"oci\":{\"hash\",\"size\"}}");
        return dup_str(v, "image", &s->image, e);
    }
    if (!json_is_object(v))
        return cu_err_set(e, -CU_EINVAL, "image: must be \"host\" or {\"oci\":{...}}");
    if ((rc = cu_json_only_keys(v, "image", keys, e)) != 0)
        return rc;
    oci = json_object_get(v, "oci");
    if (!oci || !json_is_object(oci))
        return cu_err_set(e, -CU_EINVAL, "image.oci: must be an object {\"hash\",\"size\"}");
    if ((rc = cu_json_only_keys(oci, "image.oci", oci_keys, e)) != 0)
        return rc;
    if ((rc = cu_json_get_str(oci, "image.oci", "hash", true, &hex, e)) != 0)
        return rc;
    if (cu_hash_from_hex(hex, &s->image_oci.hash) != 0)
        return cu_err_set(e, -CU_EINVAL, "image.oci.hash: '%.80s' is not 64 hex characters", hex);
    if ((rc = cu_json_get_u64(oci, "image.oci", "size", true, &s->image_oci.size, e)) != 0)
        return rc;
    if (!(s->image = strdup("oci")) || !(s->image_oci.name = strdup("image.tar")))
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    return 0;
}

static int tasks_from_json(struct cu_spec *s, const json_t *t, struct cu_err *e)
{
    static const char *const keys[] = {"count", "args", NULL};
    json_t *args;
    size_t nargs = 0;
    int rc;

    if ((rc = cu_json_only_keys(t, "tasks", keys, e)) != 0)
        return rc;
    if ((rc = get_u32(t, "tasks", "count", true, &s->task_count, e)) != 0)
        return rc;
    args = json_object_get(t, "args");
    if (!args)
        return 0;
    if ((rc = dup_strv(args, "tasks.args", CU_SPEC_MAX_TASKS, &s->task_args, &nargs, e)) != 0)
        return rc;
    if (nargs != s->task_count) {
        /* task_args must hold task_count strings for release to be right. */
        free_strv(s->task_args, nargs);
        s->task_args = NULL;
        return cu_err_set(e, -CU_EINVAL, "tasks.args: has %zu entries but tasks.count is %u", nargs,
                          s->task_count);
    }
    return 0;
}

static int resources_from_json(struct cu_spec *s, const json_t *r, struct cu_err *e)
{
    static const char *const keys[] = {"cores", "memory", "time_ms", "output", "gpus", NULL};
    int rc;

    if ((rc = cu_json_only_keys(r, "resources", keys, e)) != 0)
        return rc;
    if ((rc = get_u32(r, "resources", "cores", false, &s->res.cores, e)) != 0)
        return rc;
    if ((rc = cu_json_get_u64(r, "resources", "memory", false, &s->res.memory, e)) != 0)
        return rc;
    if ((rc = cu_json_get_u64(r, "resources", "time_ms", false, &s->res.time_ms, e)) != 0)
        return rc;
    if ((rc = cu_json_get_u64(r, "resources", "output", false, &s->res.output, e)) != 0)
        return rc;
    return get_u32(r, "resources", "gpus", false, &s->res.gpus, e);
}

static int spec_from_json(struct cu_spec *s, const json_t *j, struct cu_err *e)
{
    static const char *const keys[] = {"name",    "command", "image",     "env",
                                       "inputs",  "tasks",   "resources", "replication",
                                       "outputs", "price",   "quorum",    "max_replicas",
                                       "adaptive", "min_reputation", "challenge", "validator",
                                       NULL};
    static const char *const price_keys[] = {"max_per_cu", "max_cu", NULL};
    json_t *v;
    int rc;

    if (!json_is_object(j))
        return cu_err_set(e, -CU_EINVAL, "spec: must be a JSON object");
    if ((rc = cu_json_only_keys(j, NULL, keys, e)) != 0)
        return rc;

    if (!(v = json_object_get(j, "name")))
        return cu_err_set(e, -CU_EINVAL, "name: missing");
    if ((rc = dup_str(v, "name", &s->name, e)) != 0)
        return rc;

    if (!(v = json_object_get(j, "command")))
        return cu_err_set(e, -CU_EINVAL, "command: missing");
    if ((rc = dup_strv(v, "command", CU_SPEC_MAX_ARGV, &s->command, &s->ncommand, e)) != 0)
        return rc;

    v = json_object_get(j, "image");
    if ((rc = v ? image_from_json(s, v, e) : 0) != 0)
        return rc;
    if (!s->image && !(s->image = strdup("host")))
        return cu_err_set(e, -CU_ENOMEM, "out of memory");

    if ((rc = object_field(j, "env", false, &v, e)) != 0)
        return rc;
    if (v && (rc = env_from_json(s, v, e)) != 0)
        return rc;

    v = json_object_get(j, "inputs");
    if (v && (rc = inputs_from_json(s, v, e)) != 0)
        return rc;

    if ((rc = object_field(j, "tasks", true, &v, e)) != 0)
        return rc;
    if ((rc = tasks_from_json(s, v, e)) != 0)
        return rc;

    if ((rc = object_field(j, "resources", false, &v, e)) != 0)
        return rc;
    if (v && (rc = resources_from_json(s, v, e)) != 0)
        return rc;

    if ((rc = get_u32(j, NULL, "quorum", false, &s->quorum, e)) != 0 ||
        (rc = get_u32(j, NULL, "max_replicas", false, &s->max_replicas, e)) != 0 ||
        (rc = get_u32(j, NULL, "min_reputation", false, &s->min_reputation, e)) != 0)
        return rc;
    if ((v = json_object_get(j, "adaptive"))) {
        if (!json_is_boolean(v))
            return cu_err_set(e, -CU_EINVAL, "adaptive: must be true or false");
        s->adaptive = json_is_true(v);
    }
    if ((v = json_object_get(j, "validator"))) {
        static const char *const val_keys[] = {"command", NULL};
        if (json_is_string(v) && strcmp(json_string_value(v), "exact") == 0) {
            /* the default, written out */
        } else if (json_is_object(v)) {
            if ((rc = cu_json_only_keys(v, "validator", val_keys, e)) != 0)
                return rc;
            if (!json_object_get(v, "command"))
                return cu_err_set(e, -CU_EINVAL, "validator.command: missing");
            if ((rc = dup_strv(json_object_get(v, "command"), "validator.command",
                               CU_SPEC_MAX_ARGV, &s->validator, &s->nvalidator, e)) != 0)
                return rc;
        } else {
            return cu_err_set(e, -CU_EINVAL,
                              "validator: must be 'exact' or {command: [...]} (a program that "
                              "compares /work/a and /work/b and exits 0 when they agree)");
        }
    }
    if ((rc = object_field(j, "challenge", false, &v, e)) != 0)
        return rc;
    if (v) {
        static const char *const ch_keys[] = {"kind", "bits", "mib", NULL};
        const char *kind = NULL;
        if ((rc = cu_json_only_keys(v, "challenge", ch_keys, e)) != 0 ||
            (rc = cu_json_get_str(v, "challenge", "kind", true, &kind, e)) != 0)
            return rc;
        if (strcmp(kind, "factor") == 0) {
            s->challenge = CU_SPEC_CHALLENGE_FACTOR;
            if ((rc = get_u32(v, "challenge", "bits", true, &s->challenge_bits, e)) != 0)
                return rc;
        } else if (strcmp(kind, "memory") == 0) {
            s->challenge = CU_SPEC_CHALLENGE_MEMORY;
            if ((rc = get_u32(v, "challenge", "mib", true, &s->challenge_mib, e)) != 0)
                return rc;
        } else {
            return cu_err_set(e, -CU_EINVAL, "challenge.kind: '%.40s' must be 'factor' or 'memory'",
                              kind);
        }
    }
    if ((rc = get_u32(j, NULL, "replication", false, &s->replication, e)) != 0)
        return rc;

    if (!(v = json_object_get(j, "outputs")))
        return cu_err_set(e, -CU_EINVAL, "outputs: missing");
    if ((rc = dup_strv(v, "outputs", CU_SPEC_MAX_OUTPUTS, &s->outputs, &s->noutputs, e)) != 0)
        return rc;

    if ((rc = object_field(j, "price", false, &v, e)) != 0)
        return rc;
    if (v) {
        if ((rc = cu_json_only_keys(v, "price", price_keys, e)) != 0)
            return rc;
        if ((rc = cu_json_get_u64(v, "price", "max_per_cu", false, &s->max_per_cu, e)) != 0)
            return rc;
        if ((rc = cu_json_get_u64(v, "price", "max_cu", false, &s->max_cu, e)) != 0)
            return rc;
    }
    return cu_spec_validate(s, e);
}

/* s must be cu_spec_init'ed (and empty); on failure it is left released. */
int cu_spec_from_json(struct cu_spec *s, const json_t *j, struct cu_err *e)
{
    int rc = spec_from_json(s, j, e);
    if (rc) {
        /* Missing fields from the typed getters come back as not_found; to
         * the caller every bad spec is invalid (400). */
        if (rc != -CU_ENOMEM)
            rc = -CU_EINVAL;
        if (e)
            e->code = rc;
        cu_spec_release(s);
    }
    return rc;
}
