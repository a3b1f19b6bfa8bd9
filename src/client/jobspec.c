/* jobspec.c - the requester's YAML job file (libfyaml) into a struct cu_spec.
 *
 * Every error reads "FILE:LINE: field: problem". libfyaml 0.7.12 has no
 * public start mark for collections, so a node's line is that of its key
 * (for mapping values), its own token (scalars) or its first entry. */
#include "client/jobspec.h"

#include <errno.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"

#include "base/banned.h"

#define JOBSPEC_MAX_FILE (1u << 20)
#define FIELD_MAX 200

struct jctx {
    const char *name;     /* file name for messages */
    const char *base_dir; /* input paths resolve against it */
    struct cu_err *e;
};

/* "NAME:LINE: " + message (line <= 0: no line). Returns code. */
static int jerr(struct jctx *c, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int jerr(struct jctx *c, int code, int line, const char *fmt, ...)
{
    char msg[CU_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        return cu_err_set(c->e, code, "%s:%d: %s", c->name, line, msg);
    return cu_err_set(c->e, code, "%s: %s", c->name, msg);
}

static int nomem(struct jctx *c)
{
    return cu_err_set(c->e, -CU_ENOMEM, "%s: out of memory", c->name);
}

/* 1-based line of a node, or fallback when it carries none (null values,
 * empty collections). */
static int node_line(struct fy_node *n, int fallback)
{
    struct fy_token *t;
    const struct fy_mark *m;
    void *it = NULL;

    if (!n)
        return fallback;
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR:
        t = fy_node_get_scalar_token(n);
        m = t ? fy_token_start_mark(t) : NULL;
        return m ? m->line + 1 : fallback;
    case FYNT_SEQUENCE:
        return node_line(fy_node_sequence_iterate(n, &it), fallback);
    case FYNT_MAPPING: {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p ? node_line(fy_node_pair_key(p), fallback) : fallback;
    }
    }
    return fallback;
}

static bool is_null(struct fy_node *n)
{
    return !n || (fy_node_get_type(n) == FYNT_SCALAR && !fy_node_get_scalar_token(n));
}

/* Copies a scalar (not null, not an alias, no NUL bytes) into *out. */
static int get_str(struct jctx *c, struct fy_node *n, const char *field, int line, char **out)
{
    const char *p;
    size_t len;

    if (is_null(n))
        return jerr(c, -CU_EINVAL, line, "%s: missing value", field);
    if (fy_node_is_alias(n))
        return jerr(c, -CU_EINVAL, line, "%s: YAML aliases are not supported", field);
    if (fy_node_get_type(n) != FYNT_SCALAR)
        return jerr(c, -CU_EINVAL, line, "%s: must be a single value, not a %s", field,
                    fy_node_get_type(n) == FYNT_SEQUENCE ? "list" : "mapping");
    p = fy_node_get_scalar(n, &len);
    if (!p || memchr(p, '\0', len))
        return jerr(c, -CU_EINVAL, line, "%s: must not contain NUL bytes", field);
    *out = strndup(p, len);
    return *out ? 0 : nomem(c);
}

/* A non-negative whole number. Values above max saturate at max so that
 * validation refuses them with its range message. */
static int get_uint(struct jctx *c, struct fy_node *n, const char *field, int line, uint64_t max,
                    uint64_t *out)
{
    char *s = NULL;
    int64_t v;
    int rc = get_str(c, n, field, line, &s);

    if (rc)
        return rc;
    if (cu_parse_i64(s, INT64_MIN, INT64_MAX, &v) != 0)
        rc =
            jerr(c, -CU_EINVAL, line, "%s: '%.80s' is %s", field, s,
                 s[0] && strspn(s, "0123456789") == strlen(s) ? "too large" : "not a whole number");
    else if (v < 0)
        rc = jerr(c, -CU_EINVAL, line, "%s: must not be negative", field);
    else
        *out = (uint64_t)v > max ? max : (uint64_t)v;
    free(s);
    return rc;
}

static int get_u32(struct jctx *c, struct fy_node *n, const char *field, int line, uint32_t *out)
{
    uint64_t v = 0;
    int rc = get_uint(c, n, field, line, UINT32_MAX, &v);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

static int get_size(struct jctx *c, struct fy_node *n, const char *field, int line, uint64_t *out)
{
    char *s = NULL;
    int rc = get_str(c, n, field, line, &s);

    if (rc)
        return rc;
    rc = cu_parse_size(s, out);
    if (rc == -CU_EOVERFLOW)
        rc = jerr(c, -CU_EINVAL, line, "%s: '%.80s' is too large", field, s);
    else if (rc)
        rc = jerr(c, -CU_EINVAL, line, "%s: '%.80s' is not a size (use e.g. 256MiB)", field, s);
    free(s);
    return rc;
}

static int get_duration(struct jctx *c, struct fy_node *n, const char *field, int line,
                        uint64_t *out)
{
    char *s = NULL;
    int rc = get_str(c, n, field, line, &s);

    if (rc)
        return rc;
    rc = cu_parse_duration_ms(s, out);
    if (rc == -CU_EOVERFLOW)
        rc = jerr(c, -CU_EINVAL, line, "%s: '%.80s' is too long", field, s);
    else if (rc)
        rc = jerr(c, -CU_EINVAL, line, "%s: '%.80s' is not a duration (use e.g. 30s, 5m, 1h)",
                  field, s);
    free(s);
    return rc;
}

static int need(struct jctx *c, struct fy_node *n, enum fy_node_type type, const char *field,
                int line)
{
    static const char *const names[] = {"a single value", "a list", "a mapping"};
    if (is_null(n))
        return jerr(c, -CU_EINVAL, line, "%s: missing value", field);
    if (fy_node_is_alias(n))
        return jerr(c, -CU_EINVAL, line, "%s: YAML aliases are not supported", field);
    if (fy_node_get_type(n) != type)
        return jerr(c, -CU_EINVAL, line, "%s: must be %s", field, names[type]);
    return 0;
}

/* A list of scalars into a fresh array of *n strings (all owned by *out,
 * also on failure). */
static int get_strv(struct jctx *c, struct fy_node *n, const char *field, int line, size_t max,
                    char ***out, size_t *count)
{
    char fname[FIELD_MAX];
    void *it = NULL;
    struct fy_node *item;
    int len, rc;

    if ((rc = need(c, n, FYNT_SEQUENCE, field, line)) != 0)
        return rc;
    len = fy_node_sequence_item_count(n);
    if (len < 0 || (size_t)len > max)
        return jerr(c, -CU_EINVAL, line, "%s: at most %zu entries (has %d)", field, max, len);
    *out = calloc(len ? (size_t)len : 1, sizeof(char *));
    if (!*out)
        return nomem(c);
    *count = (size_t)len;
    for (size_t i = 0; (item = fy_node_sequence_iterate(n, &it)) != NULL; i++) {
        cu_snprintf(fname, sizeof(fname), "%s[%zu]", field, i);
        if ((rc = get_str(c, item, fname, node_line(item, line), &(*out)[i])) != 0)
            return rc;
    }
    return 0;
}

/* ---- mapping walk, one table per level ----------------------------------- */

typedef int (*field_fn)(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                        int line, void *arg);

struct field_def {
    const char *key;
    field_fn fn;
};

/* Calls the handler of each key of mapping n (named prefix in messages);
 * unknown and non-scalar keys are errors. */
static int walk(struct jctx *c, struct cu_spec *s, struct fy_node *n, const char *prefix, int line,
                const struct field_def *defs, void *arg)
{
    struct fy_node_pair *p;
    void *it = NULL;
    char field[FIELD_MAX];
    int rc;

    if ((rc = need(c, n, FYNT_MAPPING, prefix ? prefix : "job", line)) != 0)
        return rc;
    while ((p = fy_node_mapping_iterate(n, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        int kline = node_line(k, line);
        const char *key = NULL;
        size_t klen = 0;
        const struct field_def *d;

        if (!is_null(k) && fy_node_get_type(k) == FYNT_SCALAR)
            key = fy_node_get_scalar(k, &klen);
        if (!key)
            return jerr(c, -CU_EINVAL, kline, "%s%skeys must be plain names", prefix ? prefix : "",
                        prefix ? ": " : "");
        cu_snprintf(field, sizeof(field), "%s%s%.*s", prefix ? prefix : "", prefix ? "." : "",
                    (int)(klen > 80 ? 80 : klen), key);
        for (d = defs; d->key; d++)
            if (strlen(d->key) == klen && memcmp(d->key, key, klen) == 0)
                break;
        if (!d->key) {
            char expected[256] = "";
            size_t used = 0;
            for (const struct field_def *x = defs; x->key; x++) {
                int w = snprintf(expected + used, sizeof(expected) - used, "%s%s",
                                 x == defs ? "" : ", ", x->key);
                if (w < 0 || (size_t)w >= sizeof(expected) - used)
                    break;
                used += (size_t)w;
            }
            return jerr(c, -CU_EINVAL, kline, "%s: unknown key (expected one of: %s)", field,
                        expected);
        }
        if ((rc = d->fn(c, s, fy_node_pair_value(p), field, kline, arg)) != 0)
            return rc;
    }
    return 0;
}

static int f_name(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field, int line,
                  void *arg)
{
    (void)arg;
    return get_str(c, v, field, line, &s->name);
}

static int f_command(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                     int line, void *arg)
{
    int rc;

    (void)arg;
    if (!is_null(v) && fy_node_get_type(v) == FYNT_SCALAR) {
        /* A single string is a shell command line. */
        s->command = calloc(3, sizeof(char *));
        if (!s->command)
            return nomem(c);
        s->ncommand = 3;
        if (!(s->command[0] = strdup("sh")) || !(s->command[1] = strdup("-c")))
            return nomem(c);
        if ((rc = get_str(c, v, field, line, &s->command[2])) != 0)
            return rc;
        if (s->command[2][0] == '\0')
            return jerr(c, -CU_EINVAL, line, "%s: must not be empty", field);
        return 0;
    }
    return get_strv(c, v, field, line, CU_SPEC_MAX_ARGV, &s->command, &s->ncommand);
}

struct input_arg {
    struct cu_spec_input *in;
    char *path; /* as written */
    int path_line;
};
static int load_input(struct jctx *c, struct input_arg *a, const char *pf, int line);

/* "host", or "oci:PATH": an OCI image layout tarball, resolved and hashed
 * like an input and uploaded as a blob. */
static int f_image(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                   int line, void *arg)
{
    struct input_arg a = {&s->image_oci, NULL, line};
    char *str = NULL;
    int rc;

    (void)arg;
    free(s->image);
    s->image = NULL;
    if ((rc = get_str(c, v, field, line, &str)) != 0)
        return rc;
    if (strncmp(str, "oci:", 4) != 0) {
        s->image = str; /* validation refuses anything but "host" */
        return 0;
    }
    if (!(a.path = strdup(str + 4)) || !(s->image = strdup("oci")) ||
        !(s->image_oci.name = strdup("image.tar"))) {
        rc = nomem(c);
        goto out_free;
    }
    rc = load_input(c, &a, field, line);
out_free:
    free(a.path);
    free(str);
    return rc;
}

static int f_env(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field, int line,
                 void *arg)
{
    struct fy_node_pair *p;
    void *it = NULL;
    char fname[FIELD_MAX];
    int n, rc;

    (void)arg;
    if ((rc = need(c, v, FYNT_MAPPING, field, line)) != 0)
        return rc;
    n = fy_node_mapping_item_count(v);
    if (n < 0 || n > CU_SPEC_MAX_ENV)
        return jerr(c, -CU_EINVAL, line, "%s: at most %d variables (has %d)", field,
                    CU_SPEC_MAX_ENV, n);
    s->env = calloc(n ? (size_t)n : 1, sizeof(*s->env));
    if (!s->env)
        return nomem(c);
    s->nenv = (size_t)n;
    for (size_t i = 0; (p = fy_node_mapping_iterate(v, &it)) != NULL; i++) {
        struct fy_node *k = fy_node_pair_key(p);
        int kline = node_line(k, line);
        if ((rc = get_str(c, k, field, kline, &s->env[i].key)) != 0)
            return rc;
        cu_snprintf(fname, sizeof(fname), "%s.%.80s", field, s->env[i].key);
        if ((rc = get_str(c, fy_node_pair_value(p), fname, kline, &s->env[i].value)) != 0)
            return rc;
    }
    return 0;
}

/* ---- inputs: resolved, checked and hashed here ----------------------------- */


static int f_input_name(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                        int line, void *arg)
{
    struct input_arg *a = arg;
    (void)s;
    return get_str(c, v, field, line, &a->in->name);
}

static int f_input_path(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                        int line, void *arg)
{
    struct input_arg *a = arg;
    (void)s;
    a->path_line = line;
    return get_str(c, v, field, line, &a->path);
}

static const struct field_def input_fields[] = {
    {"name", f_input_name},
    {"path", f_input_path},
    {NULL, NULL},
};

/* Resolves, checks and hashes one input's file; fills name when absent.
 * pf names the path's field in messages ("inputs[0].path", "image"). */
static int load_input(struct jctx *c, struct input_arg *a, const char *pf, int line)
{
    char full[CU_PATH_MAX];
    struct stat st;
    const char *base;
    int rc;

    if (!a->path)
        return jerr(c, -CU_EINVAL, line, "%s: missing (the local file to upload)", pf);
    if (a->path[0] == '\0')
        return jerr(c, -CU_EINVAL, a->path_line, "%s: must not be empty", pf);
    if (a->path[0] == '/')
        rc = cu_snprintf(full, sizeof(full), "%s", a->path);
    else
        rc = cu_path_join(full, sizeof(full), c->base_dir ? c->base_dir : ".", a->path);
    if (rc)
        return jerr(c, -CU_EINVAL, a->path_line, "%s: too long", pf);
    if (stat(full, &st) != 0)
        return jerr(c, errno == ENOENT ? -CU_ENOTFOUND : -CU_EIO, a->path_line,
                    "%s: '%.200s': %s", pf, full, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return jerr(c, -CU_EINVAL, a->path_line, "%s: '%.200s' is not a regular file", pf,
                    full);
    if (access(full, R_OK) != 0)
        return jerr(c, -CU_EPERM, a->path_line, "%s: '%.200s' is not readable", pf, full);
    rc = cu_hash_file(full, &a->in->hash, &a->in->size);
    if (rc)
        return jerr(c, rc, a->path_line, "%s: cannot read '%.200s': %s", pf, full,
                    cu_strerror(rc));
    if (!(a->in->path = strdup(full)))
        return nomem(c);
    if (!a->in->name) {
        /* The name defaults to the file name part of the path as written. */
        base = strrchr(a->path, '/');
        if (!(a->in->name = strdup(base ? base + 1 : a->path)))
            return nomem(c);
    }
    return 0;
}

static int f_inputs(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                    int line, void *arg)
{
    struct fy_node *item;
    void *it = NULL;
    char what[FIELD_MAX];
    int n, rc;

    (void)arg;
    if ((rc = need(c, v, FYNT_SEQUENCE, field, line)) != 0)
        return rc;
    n = fy_node_sequence_item_count(v);
    if (n < 0 || n > CU_SPEC_MAX_INPUTS)
        return jerr(c, -CU_EINVAL, line, "%s: at most %d inputs (has %d)", field,
                    CU_SPEC_MAX_INPUTS, n);
    s->inputs = calloc(n ? (size_t)n : 1, sizeof(*s->inputs));
    if (!s->inputs)
        return nomem(c);
    s->ninputs = (size_t)n;
    for (size_t i = 0; (item = fy_node_sequence_iterate(v, &it)) != NULL; i++) {
        struct input_arg a = {&s->inputs[i], NULL, 0};
        int iline = node_line(item, line);
        cu_snprintf(what, sizeof(what), "%s[%zu]", field, i);
        rc = walk(c, s, item, what, iline, input_fields, &a);
        if (rc == 0) {
            char pf[FIELD_MAX + 8];
            cu_snprintf(pf, sizeof(pf), "%s.path", what);
            rc = load_input(c, &a, pf, iline);
        }
        free(a.path);
        if (rc)
            return rc;
    }
    return 0;
}

static int f_tasks(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                   int line, void *arg)
{
    size_t n = 0;
    int rc;

    (void)arg;
    if (is_null(v) || fy_node_get_type(v) != FYNT_SEQUENCE)
        return get_u32(c, v, field, line, &s->task_count);
    rc = get_strv(c, v, field, line, CU_SPEC_MAX_TASKS, &s->task_args, &n);
    /* task_count is how many task_args release frees. */
    s->task_count = (uint32_t)n;
    if (rc)
        return rc;
    if (n == 0)
        return jerr(c, -CU_EINVAL, line,
                    "%s: the list is empty (give a count or one argument per task)", field);
    return 0;
}

static int f_cores(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                   int line, void *arg)
{
    (void)arg;
    return get_u32(c, v, field, line, &s->res.cores);
}

static int f_gpus(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field, int line,
                  void *arg)
{
    (void)arg;
    return get_u32(c, v, field, line, &s->res.gpus);
}

static int f_memory(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                    int line, void *arg)
{
    (void)arg;
    return get_size(c, v, field, line, &s->res.memory);
}

static int f_output(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                    int line, void *arg)
{
    (void)arg;
    return get_size(c, v, field, line, &s->res.output);
}

static int f_time(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field, int line,
                  void *arg)
{
    (void)arg;
    return get_duration(c, v, field, line, &s->res.time_ms);
}

static const struct field_def resource_fields[] = {
    {"cores", f_cores},   {"memory", f_memory}, {"time", f_time},
    {"output", f_output}, {"gpus", f_gpus},     {NULL, NULL},
};

static int f_resources(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                       int line, void *arg)
{
    (void)arg;
    return walk(c, s, v, field, line, resource_fields, NULL);
}

static int f_rep_min(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                     int line, void *arg)
{
    (void)arg;
    return get_u32(c, v, field, line, &s->replication);
}

static int f_rep_quorum(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                        int line, void *arg)
{
    (void)arg;
    return get_u32(c, v, field, line, &s->quorum);
}

static int f_rep_max(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                     int line, void *arg)
{
    (void)arg;
    return get_u32(c, v, field, line, &s->max_replicas);
}

static const struct field_def replication_fields[] = {
    {"min", f_rep_min},
    {"quorum", f_rep_quorum},
    {"max", f_rep_max},
    {NULL, NULL},
};

/* replication: K (the legacy policy), {min, quorum, max} (all three
 * required: a policy half written is more likely a mistake than a wish for
 * defaults), or "adaptive" (the fixed policy {2, 2, 5} with solo replicas
 * for trusted providers; docs/api.md "Trust"). Validation checks ranges. */
static int f_replication(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                         int line, void *arg)
{
    const char *p;
    size_t len;
    int rc;

    (void)arg;
    if (!is_null(v) && !fy_node_is_alias(v) && fy_node_get_type(v) == FYNT_MAPPING) {
        s->replication = 0;
        if ((rc = walk(c, s, v, field, line, replication_fields, NULL)) != 0)
            return rc;
        if (!fy_node_mapping_lookup_by_string(v, "min", -1))
            return jerr(c, -CU_EINVAL, line, "%s.min: missing (replicas run at first)", field);
        if (!fy_node_mapping_lookup_by_string(v, "quorum", -1))
            return jerr(c, -CU_EINVAL, line, "%s.quorum: missing (agreeing results needed)",
                        field);
        if (!fy_node_mapping_lookup_by_string(v, "max", -1))
            return jerr(c, -CU_EINVAL, line, "%s.max: missing (most replicas in all)", field);
        return 0;
    }
    if (!is_null(v) && !fy_node_is_alias(v) && fy_node_get_type(v) == FYNT_SCALAR) {
        p = fy_node_get_scalar(v, &len);
        if (p && len == 8 && memcmp(p, "adaptive", 8) == 0) {
            s->replication = 2;
            s->quorum = 2;
            s->max_replicas = 5;
            s->adaptive = true;
            return 0;
        }
        if (p && len > 0 && ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')))
            return jerr(c, -CU_EINVAL, line,
                        "%s: '%.40s' is not a policy (use a number, {min: 2, quorum: 2, max: 5} "
                        "or adaptive)",
                        field, p);
    }
    return get_u32(c, v, field, line, &s->replication);
}

/* min_reputation: a decimal 0..1 with at most 3 decimals, kept exactly as
 * thousandths (no floating point: "0.8" is 800, not 799.999...). */
static int f_min_reputation(struct jctx *c, struct cu_spec *s, struct fy_node *v,
                            const char *field, int line, void *arg)
{
    char *str = NULL;
    const char *p, *frac;
    uint32_t milli = 0;
    size_t nfrac;
    int rc;

    (void)arg;
    if ((rc = get_str(c, v, field, line, &str)) != 0)
        return rc;
    p = str;
    if (p[0] != '0' && p[0] != '1')
        goto out_bad;
    frac = p[1] == '.' ? p + 2 : NULL;
    if (p[1] != '\0' && !frac)
        goto out_bad;
    nfrac = frac ? strlen(frac) : 0;
    if (frac && (nfrac == 0 || nfrac > 3 || strspn(frac, "0123456789") != nfrac)) {
        if (nfrac > 3 && strspn(frac, "0123456789") == nfrac)
            rc = jerr(c, -CU_EINVAL, line, "%s: '%.40s' has more than 3 decimals", field, str);
        else
            goto out_bad;
        goto out_free;
    }
    milli = p[0] == '1' ? 1000 : 0;
    for (size_t i = 0; i < 3; i++)
        milli += (uint32_t)(i < nfrac ? frac[i] - '0' : 0) * (i == 0 ? 100u : i == 1 ? 10u : 1u);
    if (milli > 1000) {
        rc = jerr(c, -CU_EINVAL, line, "%s: '%.40s' must be between 0 and 1", field, str);
        goto out_free;
    }
    s->min_reputation = milli;
    goto out_free;
out_bad:
    rc = jerr(c, -CU_EINVAL, line, "%s: '%.40s' is not a number between 0 and 1 (e.g. 0.8)",
              field, str);
out_free:
    free(str);
    return rc;
}

struct challenge_arg {
    char *kind;
    int kind_line;
    bool has_bits, has_mib;
    uint32_t bits, mib;
};

static int f_ch_kind(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                     int line, void *arg)
{
    struct challenge_arg *a = arg;
    (void)s;
    free(a->kind);
    a->kind = NULL;
    a->kind_line = line;
    return get_str(c, v, field, line, &a->kind);
}

static int f_ch_bits(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                     int line, void *arg)
{
    struct challenge_arg *a = arg;
    (void)s;
    a->has_bits = true;
    return get_u32(c, v, field, line, &a->bits);
}

static int f_ch_mib(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                    int line, void *arg)
{
    struct challenge_arg *a = arg;
    (void)s;
    a->has_mib = true;
    return get_u32(c, v, field, line, &a->mib);
}

static const struct field_def challenge_fields[] = {
    {"kind", f_ch_kind},
    {"bits", f_ch_bits},
    {"mib", f_ch_mib},
    {NULL, NULL},
};

/* challenge: {kind: factor, bits: B} | {kind: memory, mib: M}; the size
 * key must be the one of the kind. Ranges are checked by validation. */
static int f_challenge(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                       int line, void *arg)
{
    struct challenge_arg a = {0};
    int rc;

    (void)arg;
    a.kind_line = line;
    if ((rc = walk(c, s, v, field, line, challenge_fields, &a)) != 0)
        goto out_free;
    if (!a.kind) {
        rc = jerr(c, -CU_EINVAL, line, "%s.kind: missing (factor or memory)", field);
    } else if (strcmp(a.kind, "factor") == 0) {
        if (a.has_mib)
            rc = jerr(c, -CU_EINVAL, line, "%s.mib: only for kind memory (factor takes bits)",
                      field);
        else if (!a.has_bits)
            rc = jerr(c, -CU_EINVAL, line, "%s.bits: missing (size of the semiprime, 8..64)",
                      field);
        s->challenge = CU_SPEC_CHALLENGE_FACTOR;
        s->challenge_bits = a.bits;
    } else if (strcmp(a.kind, "memory") == 0) {
        if (a.has_bits)
            rc = jerr(c, -CU_EINVAL, line, "%s.bits: only for kind factor (memory takes mib)",
                      field);
        else if (!a.has_mib)
            rc = jerr(c, -CU_EINVAL, line, "%s.mib: missing (MiB of the puzzle, 1..4096)",
                      field);
        s->challenge = CU_SPEC_CHALLENGE_MEMORY;
        s->challenge_mib = a.mib;
    } else {
        rc = jerr(c, -CU_EINVAL, a.kind_line, "%s.kind: '%.40s' must be factor or memory", field,
                  a.kind);
    }
out_free:
    free(a.kind);
    return rc;
}

/* validator: exact (equal output Merkle roots, the default), or
 * {command: [...]}: a program run by the exchange that compares two
 * results (/work/a, /work/b) and exits 0 when they agree. */
static int f_validator_command(struct jctx *c, struct cu_spec *s, struct fy_node *v,
                               const char *field, int line, void *arg)
{
    (void)arg;
    return get_strv(c, v, field, line, CU_SPEC_MAX_ARGV, &s->validator, &s->nvalidator);
}

static const struct field_def validator_fields[] = {
    {"command", f_validator_command},
    {NULL, NULL},
};

static int f_validator(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                       int line, void *arg)
{
    char *str = NULL;
    int rc;

    (void)arg;
    if (!is_null(v) && !fy_node_is_alias(v) && fy_node_get_type(v) == FYNT_MAPPING) {
        rc = walk(c, s, v, field, line, validator_fields, NULL);
        if (rc == 0 && s->nvalidator == 0)
            rc = jerr(c, -CU_EINVAL, line, "%s.command: missing (a list: program and arguments)",
                      field);
        return rc;
    }
    if ((rc = get_str(c, v, field, line, &str)) != 0)
        return rc;
    if (strcmp(str, "exact") != 0)
        rc = jerr(c, -CU_EINVAL, line,
                  "%s: '%.60s' must be 'exact' (equal output Merkle roots) or "
                  "{command: [...]} (a program comparing /work/a and /work/b)",
                  field, str);
    free(str);
    return rc;
}

static int f_outputs(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                     int line, void *arg)
{
    (void)arg;
    if (!is_null(v) && fy_node_get_type(v) == FYNT_SCALAR) {
        /* One glob may be written without the list. */
        s->outputs = calloc(1, sizeof(char *));
        if (!s->outputs)
            return nomem(c);
        s->noutputs = 1;
        return get_str(c, v, field, line, &s->outputs[0]);
    }
    return get_strv(c, v, field, line, CU_SPEC_MAX_OUTPUTS, &s->outputs, &s->noutputs);
}

static int f_max_per_cu(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                        int line, void *arg)
{
    (void)arg;
    return get_uint(c, v, field, line, UINT64_MAX, &s->max_per_cu);
}

static int f_max_cu(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                    int line, void *arg)
{
    (void)arg;
    return get_uint(c, v, field, line, UINT64_MAX, &s->max_cu);
}

static const struct field_def price_fields[] = {
    {"max_per_cu", f_max_per_cu},
    {"max_cu", f_max_cu},
    {NULL, NULL},
};

static int f_price(struct jctx *c, struct cu_spec *s, struct fy_node *v, const char *field,
                   int line, void *arg)
{
    (void)arg;
    return walk(c, s, v, field, line, price_fields, NULL);
}

static const struct field_def top_fields[] = {
    {"name", f_name},
    {"command", f_command},
    {"image", f_image},
    {"env", f_env},
    {"inputs", f_inputs},
    {"tasks", f_tasks},
    {"resources", f_resources},
    {"replication", f_replication},
    {"outputs", f_outputs},
    {"price", f_price},
    {"min_reputation", f_min_reputation},
    {"challenge", f_challenge},
    {"validator", f_validator},
    {NULL, NULL},
};

/* ---- validation errors back to lines --------------------------------------- */

/* The YAML spelling of a JSON field path from cu_spec_validate_field. */
static void yaml_field(const struct cu_spec *s, bool command_is_string, const char *json_field,
                       char *out, size_t n)
{
    (void)s;
    if (strcmp(json_field, "tasks.count") == 0)
        cu_snprintf(out, n, "tasks");
    else if (strncmp(json_field, "tasks.args", 10) == 0)
        cu_snprintf(out, n, "tasks%s", json_field + 10);
    else if (strcmp(json_field, "resources.time_ms") == 0)
        cu_snprintf(out, n, "resources.time");
    else if (command_is_string && strncmp(json_field, "command", 7) == 0)
        cu_snprintf(out, n, "command");
    else
        cu_snprintf(out, n, "%s", json_field);
}

/* Line of the node at a YAML field path ("inputs[1].name"), or of its
 * nearest ancestor present in the document. */
static int field_line(struct fy_node *root, const char *path)
{
    struct fy_node *n = root;
    int line = node_line(root, 0);
    const char *p = path;

    while (n && *p) {
        if (*p == '.') {
            p++;
        } else if (*p == '[') {
            char *end;
            unsigned long i = strtoul(p + 1, &end, 10);
            struct fy_node *item;
            if (*end != ']' || fy_node_get_type(n) != FYNT_SEQUENCE || i > INT32_MAX)
                break;
            item = fy_node_sequence_get_by_index(n, (int)i);
            if (!item)
                break;
            line = node_line(item, line);
            n = item;
            p = end + 1;
        } else {
            size_t len = strcspn(p, ".[");
            struct fy_node_pair *pair;
            if (fy_node_get_type(n) != FYNT_MAPPING)
                break;
            pair = fy_node_mapping_lookup_pair_by_string(n, p, len);
            if (!pair)
                break;
            line = node_line(fy_node_pair_key(pair), line);
            n = fy_node_pair_value(pair);
            p += len;
        }
    }
    return line;
}

static int validate(struct jctx *c, struct cu_spec *s, struct fy_node *root, bool command_is_string)
{
    struct cu_err ve = {0};
    char jfield[FIELD_MAX], yfield[FIELD_MAX];
    size_t jlen;
    const char *rest;
    int rc = cu_spec_validate_field(s, &ve, jfield, sizeof(jfield));

    if (rc == 0)
        return 0;
    yaml_field(s, command_is_string, jfield, yfield, sizeof(yfield));
    jlen = strlen(jfield);
    /* Re-spell the message's leading field the YAML way. */
    rest = strncmp(ve.msg, jfield, jlen) == 0 ? ve.msg + jlen : NULL;
    if (rest && *rest == ':')
        return jerr(c, rc, field_line(root, yfield), "%s%s", yfield, rest);
    return jerr(c, rc, field_line(root, yfield), "%s", ve.msg);
}

/* ---- entry points ------------------------------------------------------------ */

/* Offset of the first byte of s[0..n) that does not start a well-formed
 * UTF-8 sequence (no overlong forms, surrogates or code points above
 * U+10FFFF), or n when all of it is valid. libfyaml 0.7.12 loops forever on
 * some invalid sequences (e.g. "%\xff", a directive name), so job files are
 * checked before it sees them; YAML allows only valid Unicode anyway. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return i;
        i += len;
    }
    return n;
}

static void diag_sink(struct fy_diag *d, void *user, const char *buf, size_t len)
{
    (void)d;
    (void)user;
    (void)buf;
    (void)len;
}

static int parse(struct jctx *c, struct cu_spec *s, const char *yaml, size_t n)
{
    struct fy_diag_cfg dcfg;
    struct fy_diag *diag;
    struct fy_parse_cfg pcfg;
    struct fy_document *doc;
    struct fy_node *root, *cmd;
    int rc, line;
    size_t bad = utf8_invalid_at((const unsigned char *)yaml, n);

    if (bad < n) {
        line = 1;
        for (size_t i = 0; i < bad; i++)
            line += yaml[i] == '\n';
        return jerr(c, -CU_EINVAL, line, "not valid UTF-8 (byte 0x%02x at offset %zu)",
                    (unsigned char)yaml[bad], bad);
    }

    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_sink;
    dcfg.level = FYET_ERROR;
    dcfg.colorize = false;
    diag = fy_diag_create(&dcfg);
    if (!diag)
        return nomem(c);
    fy_diag_set_collect_errors(diag, true);
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.flags = FYPCF_QUIET;
    pcfg.diag = diag;

    doc = fy_document_build_from_string(&pcfg, yaml, n);
    if (!doc) {
        void *it = NULL;
        struct fy_diag_error *de = fy_diag_errors_iterate(diag, &it);
        if (de)
            rc = jerr(c, -CU_EINVAL, de->line, "not valid YAML near line %d: %s", de->line,
                      de->msg ? de->msg : "syntax error");
        else
            rc = jerr(c, -CU_EINVAL, 0, "empty or not valid YAML");
        goto out_free_diag;
    }
    root = fy_document_root(doc);
    if (is_null(root)) {
        rc = jerr(c, -CU_EINVAL, 0, "empty job file");
        goto out_free_doc;
    }
    line = node_line(root, 1);
    if ((rc = walk(c, s, root, NULL, line, top_fields, NULL)) != 0)
        goto out_free_doc;

    if (!s->name) {
        rc = jerr(c, -CU_EINVAL, line, "name: missing");
        goto out_free_doc;
    }
    if (!s->command && !cu_spec_image_is_oci(s)) {
        rc = jerr(c, -CU_EINVAL, line,
                  "command: missing (e.g. command: [\"sh\", \"-c\", \"echo hi > /out/hi.txt\"])");
        goto out_free_doc;
    }
    if (!s->outputs) {
        rc = jerr(c, -CU_EINVAL, line, "outputs: missing (e.g. outputs: [\"*.txt\"])");
        goto out_free_doc;
    }
    if (!s->image && !(s->image = strdup("host"))) {
        rc = nomem(c);
        goto out_free_doc;
    }
    cmd = fy_node_mapping_lookup_by_string(root, "command", -1);
    rc = validate(c, s, root, cmd && fy_node_get_type(cmd) == FYNT_SCALAR);

out_free_doc:
    fy_document_destroy(doc);
out_free_diag:
    fy_diag_destroy(diag);
    return rc;
}

int cu_jobspec_parse(struct cu_spec *s, const char *yaml, size_t n, const char *name,
                     const char *base_dir, struct cu_err *e)
{
    struct jctx c = {name ? name : "job", base_dir, e};
    int rc = parse(&c, s, yaml, n);
    if (rc)
        cu_spec_release(s);
    return rc;
}

int cu_jobspec_load(struct cu_spec *s, const char *yaml_path, struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(JOBSPEC_MAX_FILE);
    char dir[CU_PATH_MAX];
    const char *slash;
    int rc;

    rc = cu_read_file(yaml_path, &b);
    if (rc) {
        cu_err_set(e, rc, "%s: %s", yaml_path,
                   rc == -CU_ENOTFOUND ? "no such file"
                   : rc == -CU_ETOOBIG ? "larger than 1 MiB"
                                       : cu_strerror(rc));
        goto out_release;
    }
    slash = strrchr(yaml_path, '/');
    if (!slash)
        rc = cu_snprintf(dir, sizeof(dir), ".");
    else if (slash == yaml_path)
        rc = cu_snprintf(dir, sizeof(dir), "/");
    else
        rc = cu_snprintf(dir, sizeof(dir), "%.*s", (int)(slash - yaml_path), yaml_path);
    if (rc) {
        cu_err_set(e, rc, "%s: path too long", yaml_path);
        goto out_release;
    }
    rc = cu_jobspec_parse(s, cu_buf_str(&b), b.len, yaml_path, dir, e);
    cu_buf_release(&b);
    return rc;

out_release:
    cu_buf_release(&b);
    cu_spec_release(s);
    return rc;
}
