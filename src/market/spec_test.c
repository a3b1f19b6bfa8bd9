/* spec_test.c - canonical JSON round trip, every validation rule, globs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/json.h"
#include "market/spec.h"

#include "base/banned.h"

static char **strv(size_t n, ...)
{
    va_list ap;
    char **v = calloc(n, sizeof(*v));
    assert_non_null(v);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        v[i] = strdup(va_arg(ap, const char *));
    va_end(ap);
    return v;
}

/* A valid spec using every field. */
static void make_good(struct cu_spec *s)
{
    cu_spec_init(s);
    s->name = strdup("hello-1.x_y");
    s->command = strv(3, "sh", "-c", "echo hi > /out/a.txt");
    s->ncommand = 3;
    s->image = strdup("host");
    s->env = calloc(2, sizeof(*s->env));
    s->nenv = 2;
    s->env[0].key = strdup("ZETA");
    s->env[0].value = strdup("1");
    s->env[1].key = strdup("_alpha9");
    s->env[1].value = strdup("");
    s->inputs = calloc(2, sizeof(*s->inputs));
    s->ninputs = 2;
    s->inputs[0].name = strdup("data.txt");
    cu_hash_mem("abc", 3, &s->inputs[0].hash);
    s->inputs[0].size = 3;
    s->inputs[1].name = strdup("prog");
    cu_hash_mem("", 0, &s->inputs[1].hash);
    s->inputs[1].size = 0;
    s->task_count = 3;
    s->task_args = strv(3, "a", "", "c d");
    s->res.cores = 2;
    s->res.memory = 512ULL << 20;
    s->res.time_ms = 30000;
    s->res.output = 1ULL << 20;
    s->res.gpus = 1;
    s->replication = 2;
    s->outputs = strv(2, "*.txt", "tiles/?.ppm");
    s->noutputs = 2;
    s->max_per_cu = 100;
}

static void assert_spec_equal(const struct cu_spec *a, const struct cu_spec *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->ncommand, b->ncommand);
    for (size_t i = 0; i < a->ncommand; i++)
        assert_string_equal(a->command[i], b->command[i]);
    assert_string_equal(a->image, b->image);
    assert_int_equal(a->nenv, b->nenv);
    for (size_t i = 0; i < a->nenv; i++) {
        assert_string_equal(a->env[i].key, b->env[i].key);
        assert_string_equal(a->env[i].value, b->env[i].value);
    }
    assert_int_equal(a->ninputs, b->ninputs);
    for (size_t i = 0; i < a->ninputs; i++) {
        assert_string_equal(a->inputs[i].name, b->inputs[i].name);
        assert_true(cu_hash_eq(&a->inputs[i].hash, &b->inputs[i].hash));
        assert_int_equal(a->inputs[i].size, b->inputs[i].size);
    }
    assert_int_equal(a->task_count, b->task_count);
    assert_int_equal(a->task_args == NULL, b->task_args == NULL);
    for (uint32_t i = 0; a->task_args && i < a->task_count; i++)
        assert_string_equal(a->task_args[i], b->task_args[i]);
    assert_int_equal(a->res.cores, b->res.cores);
    assert_int_equal(a->res.memory, b->res.memory);
    assert_int_equal(a->res.time_ms, b->res.time_ms);
    assert_int_equal(a->res.output, b->res.output);
    assert_int_equal(a->res.gpus, b->res.gpus);
    assert_int_equal(a->replication, b->replication);
    assert_int_equal(a->noutputs, b->noutputs);
    for (size_t i = 0; i < a->noutputs; i++)
        assert_string_equal(a->outputs[i], b->outputs[i]);
    assert_int_equal(a->max_per_cu, b->max_per_cu);
}

/* from_json(parse(dump(to_json(s)))) == s. */
static void roundtrip(const struct cu_spec *s)
{
    struct cu_spec back;
    struct cu_err e = {0};
    json_t *j = cu_spec_to_json(s), *j2;
    char *text, *text2;

    assert_non_null(j);
    text = cu_json_dumps(j);
    assert_non_null(text);
    j2 = cu_json_parse(text, strlen(text), &e);
    assert_non_null(j2);
    cu_spec_init(&back);
    assert_int_equal(cu_spec_from_json(&back, j2, &e), 0);
    assert_spec_equal(s, &back);
    /* And the canonical text is a fixed point. */
    json_decref(j2);
    j2 = cu_spec_to_json(&back);
    text2 = cu_json_dumps(j2);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    json_decref(j);
    json_decref(j2);
    cu_spec_release(&back);
}

static void test_roundtrip_full(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    (void)state;
    make_good(&s);
    assert_int_equal(cu_spec_validate(&s, &e), 0);
    roundtrip(&s);
    cu_spec_release(&s);
}

static void test_roundtrip_minimal(void **state)
{
    struct cu_spec s;
    json_t *j;
    char *text;
    (void)state;
    cu_spec_init(&s);
    s.name = strdup("min");
    s.command = strv(1, "true");
    s.ncommand = 1;
    s.image = strdup("host");
    s.outputs = strv(1, "*");
    s.noutputs = 1;
    roundtrip(&s);
    j = cu_spec_to_json(&s);
    text = cu_json_dumps(j);
    assert_string_equal(
        text, "{\"command\":[\"true\"],\"image\":\"host\",\"inputs\":[],\"name\":\"min\","
              "\"outputs\":[\"*\"],\"price\":{\"max_per_cu\":0},\"replication\":1,"
              "\"resources\":{\"cores\":1,\"gpus\":0,\"memory\":268435456,\"output\":67108864,"
              "\"time_ms\":60000},\"tasks\":{\"count\":1}}");
    free(text);
    json_decref(j);
    cu_spec_release(&s);
}

/* Parses JSON text as a spec, expecting failure with a message containing
 * want. */
static void json_refused(const char *text, const char *want)
{
    struct cu_spec s;
    struct cu_err e = {0};
    json_t *j = cu_json_parse(text, strlen(text), &e);
    assert_non_null(j);
    cu_spec_init(&s);
    assert_int_equal(cu_spec_from_json(&s, j, &e), -CU_EINVAL);
    assert_int_equal(e.code, -CU_EINVAL);
    if (!strstr(e.msg, want))
        fail_msg("message '%s' lacks '%s'", e.msg, want);
    assert_null(s.name);
    json_decref(j);
}

#define BASE_HEAD "{\"name\":\"x\",\"command\":[\"true\"],\"outputs\":[\"*\"],"

static void test_from_json_defaults(void **state)
{
    const char *text = "{\"name\":\"x\",\"command\":[\"true\"],\"outputs\":[\"*\"],"
                       "\"tasks\":{\"count\":2}}";
    struct cu_spec s;
    struct cu_err e = {0};
    json_t *j = cu_json_parse(text, strlen(text), &e);
    (void)state;
    cu_spec_init(&s);
    assert_int_equal(cu_spec_from_json(&s, j, &e), 0);
    assert_string_equal(s.image, "host");
    assert_int_equal(s.task_count, 2);
    assert_null(s.task_args);
    assert_int_equal(s.res.cores, CU_SPEC_DEFAULT_CORES);
    assert_int_equal(s.res.memory, CU_SPEC_DEFAULT_MEMORY);
    assert_int_equal(s.res.time_ms, CU_SPEC_DEFAULT_TIME_MS);
    assert_int_equal(s.res.output, CU_SPEC_DEFAULT_OUTPUT);
    assert_int_equal(s.replication, 1);
    assert_int_equal(s.ninputs, 0);
    assert_int_equal(s.nenv, 0);
    json_decref(j);
    cu_spec_release(&s);
}

static void test_from_json_strict(void **state)
{
    (void)state;
    json_refused("[]", "spec");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"bogus\":1}", "bogus");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"resources\":{\"cpus\":1}}", "resources.cpus");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"resources\":{\"cores\":\"2\"}}",
                 "resources.cores");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"resources\":{\"memory\":-1}}",
                 "resources.memory");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"resources\":{\"cores\":8589934593}}",
                 "resources.cores: must be between 1 and 1024");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"resources\":[]}", "resources");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"price\":{\"max\":1}}", "price.max");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"price\":{\"max_per_cu\":1.5}}",
                 "price.max_per_cu");
    json_refused(BASE_HEAD "\"tasks\":{}}", "tasks.count");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1,\"n\":2}}", "tasks.n");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":2,\"args\":[\"a\"]}}", "tasks.args");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1,\"args\":[1]}}", "tasks.args[0]");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":0}}", "tasks.count: must be between");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"replication\":true}", "replication");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"env\":{\"A\":1}}", "env.A");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"env\":[]}", "env");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"image\":7}", "image");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"inputs\":{}}", "inputs");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"inputs\":[{\"name\":\"a\","
                           "\"hash\":\"zz\",\"size\":1}]}",
                 "inputs[0].hash");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"inputs\":[{\"name\":\"a\",\"size\":1,"
                           "\"hash\":\""
                           "0000000000000000000000000000000000000000000000000000000000000000"
                           "\",\"path\":\"/x\"}]}",
                 "inputs[0].path");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"inputs\":[{\"name\":\"a\","
                           "\"hash\":\""
                           "0000000000000000000000000000000000000000000000000000000000000000"
                           "\"}]}",
                 "inputs[0].size");
    json_refused("{\"command\":[\"true\"],\"outputs\":[\"*\"],\"tasks\":{\"count\":1}}", "name");
    json_refused("{\"name\":\"x\",\"outputs\":[\"*\"],\"tasks\":{\"count\":1}}", "command");
    json_refused("{\"name\":\"x\",\"command\":\"true\",\"outputs\":[\"*\"],"
                 "\"tasks\":{\"count\":1}}",
                 "command");
    json_refused("{\"name\":\"x\",\"command\":[\"true\"],\"tasks\":{\"count\":1}}", "outputs");
    json_refused("{\"name\":\"x\",\"command\":[\"true\"],\"outputs\":[\"*\"]}", "tasks");
    json_refused(BASE_HEAD "\"tasks\":{\"count\":1},\"image\":\"ubuntu\"}",
                 "image 'ubuntu': must be 'host' or an OCI image ('oci:./image.tar')");
}

/* ---- every validation rule -------------------------------------------- */

struct rule_case {
    const char *field; /* expected from cu_spec_validate_field */
    const char *msg;   /* substring of the message */
    void (*mutate)(struct cu_spec *s);
};

static void set_str(char **p, const char *v)
{
    free(*p);
    *p = v ? strdup(v) : NULL;
}

static void m_name_empty(struct cu_spec *s)
{
    set_str(&s->name, "");
}
static void m_name_long(struct cu_spec *s)
{
    char n[66];
    memset(n, 'a', 65);
    n[65] = '\0';
    set_str(&s->name, n);
}
static void m_name_chars(struct cu_spec *s)
{
    set_str(&s->name, "a b");
}
static void m_name_null(struct cu_spec *s)
{
    set_str(&s->name, NULL);
}
static void m_cmd_empty(struct cu_spec *s)
{
    for (size_t i = 0; i < s->ncommand; i++)
        free(s->command[i]);
    s->ncommand = 0;
}
static void m_cmd_many(struct cu_spec *s)
{
    char **v = calloc(CU_SPEC_MAX_ARGV + 1, sizeof(*v));
    for (size_t i = 0; i < CU_SPEC_MAX_ARGV + 1; i++)
        v[i] = strdup("x");
    for (size_t i = 0; i < s->ncommand; i++)
        free(s->command[i]);
    free(s->command);
    s->command = v;
    s->ncommand = CU_SPEC_MAX_ARGV + 1;
}
static void m_cmd_long(struct cu_spec *s)
{
    char *a = malloc(CU_SPEC_MAX_ARG_LEN + 2);
    memset(a, 'x', CU_SPEC_MAX_ARG_LEN + 1);
    a[CU_SPEC_MAX_ARG_LEN + 1] = '\0';
    free(s->command[1]);
    s->command[1] = a;
}
static void m_cmd_prog_empty(struct cu_spec *s)
{
    set_str(&s->command[0], "");
}
static void m_image(struct cu_spec *s)
{
    set_str(&s->image, "debian:12");
}
static void m_env_key(struct cu_spec *s)
{
    set_str(&s->env[0].key, "9LIVES");
}
static void m_env_key_dash(struct cu_spec *s)
{
    set_str(&s->env[0].key, "A-B");
}
static void m_env_reserved(struct cu_spec *s)
{
    set_str(&s->env[1].key, "CUMULUS_TASK_INDEX");
}
static void m_env_dup(struct cu_spec *s)
{
    set_str(&s->env[1].key, "ZETA");
}
static void m_input_unsafe(struct cu_spec *s)
{
    set_str(&s->inputs[1].name, "../x");
}
static void m_input_slash(struct cu_spec *s)
{
    set_str(&s->inputs[0].name, "a/b");
}
static void m_input_dup(struct cu_spec *s)
{
    set_str(&s->inputs[1].name, "data.txt");
}
static void m_tasks_zero(struct cu_spec *s)
{
    for (uint32_t i = 0; i < s->task_count; i++)
        free(s->task_args[i]);
    free(s->task_args);
    s->task_args = NULL;
    s->task_count = 0;
}
static void m_tasks_many(struct cu_spec *s)
{
    m_tasks_zero(s);
    s->task_count = CU_SPEC_MAX_TASKS + 1;
}
static void m_task_arg_long(struct cu_spec *s)
{
    char *a = malloc(CU_SPEC_MAX_ARG_LEN + 2);
    memset(a, 'x', CU_SPEC_MAX_ARG_LEN + 1);
    a[CU_SPEC_MAX_ARG_LEN + 1] = '\0';
    free(s->task_args[2]);
    s->task_args[2] = a;
}
static void m_cores0(struct cu_spec *s)
{
    s->res.cores = 0;
}
static void m_cores_big(struct cu_spec *s)
{
    s->res.cores = CU_SPEC_MAX_CORES + 1;
}
static void m_mem(struct cu_spec *s)
{
    s->res.memory = (1ULL << 20) - 1;
}
static void m_time_short(struct cu_spec *s)
{
    s->res.time_ms = 999;
}
static void m_time_long(struct cu_spec *s)
{
    s->res.time_ms = CU_SPEC_MAX_TIME_MS + 1;
}
static void m_output0(struct cu_spec *s)
{
    s->res.output = 0;
}
static void m_output_big(struct cu_spec *s)
{
    s->res.output = (16ULL << 30) + 1;
}
static void m_gpus(struct cu_spec *s)
{
    s->res.gpus = 65;
}
static void m_repl0(struct cu_spec *s)
{
    s->replication = 0;
}
static void m_repl17(struct cu_spec *s)
{
    s->replication = CU_SPEC_MAX_REPLICATION + 1;
}
static void m_outputs_none(struct cu_spec *s)
{
    for (size_t i = 0; i < s->noutputs; i++)
        free(s->outputs[i]);
    s->noutputs = 0;
}
static void m_outputs_abs(struct cu_spec *s)
{
    set_str(&s->outputs[0], "/etc/passwd");
}
static void m_outputs_dotdot(struct cu_spec *s)
{
    set_str(&s->outputs[1], "a/../../b");
}
static void m_outputs_dotdot2(struct cu_spec *s)
{
    set_str(&s->outputs[1], "..");
}
static void m_outputs_empty(struct cu_spec *s)
{
    set_str(&s->outputs[0], "");
}
static void m_price(struct cu_spec *s)
{
    s->max_per_cu = UINT64_MAX;
}

static const struct rule_case rules[] = {
    {"name", "name:", m_name_empty},
    {"name", "name:", m_name_long},
    {"name", "name: 'a b'", m_name_chars},
    {"name", "name: missing", m_name_null},
    {"command", "command: must have at least one", m_cmd_empty},
    {"command", "command: at most 256", m_cmd_many},
    {"command[1]", "command[1]: longer than 4096", m_cmd_long},
    {"command[0]", "command[0]:", m_cmd_prog_empty},
    {"image", "image 'debian:12': must be 'host' or an OCI image ('oci:./image.tar')", m_image},
    {"env.9LIVES", "env.9LIVES: not a valid variable name", m_env_key},
    {"env.A-B", "env.A-B: not a valid", m_env_key_dash},
    {"env.CUMULUS_TASK_INDEX", "reserved", m_env_reserved},
    {"env.ZETA", "env.ZETA: defined twice", m_env_dup},
    {"inputs[1].name", "inputs[1].name: '../x' is not a safe file name", m_input_unsafe},
    {"inputs[0].name", "inputs[0].name: 'a/b'", m_input_slash},
    {"inputs[1].name", "inputs[1].name: 'data.txt' is used by inputs[0]", m_input_dup},
    {"tasks.count", "tasks.count: must be between 1 and 100000", m_tasks_zero},
    {"tasks.count", "tasks.count: must be between 1 and 100000", m_tasks_many},
    {"tasks.args[2]", "tasks.args[2]: longer than", m_task_arg_long},
    {"resources.cores", "resources.cores: must be between 1 and 1024", m_cores0},
    {"resources.cores", "resources.cores: must be between 1 and 1024", m_cores_big},
    {"resources.memory", "resources.memory: must be at least 1MiB", m_mem},
    {"resources.time_ms", "resources.time_ms: must be between 1s and 7d", m_time_short},
    {"resources.time_ms", "resources.time_ms: must be between 1s and 7d", m_time_long},
    {"resources.output", "resources.output: must be between 1 byte and 16GiB", m_output0},
    {"resources.output", "resources.output:", m_output_big},
    {"resources.gpus", "resources.gpus: must be between 0 and 64", m_gpus},
    {"replication", "replication: must be between 1 and 16", m_repl0},
    {"replication", "replication: must be between 1 and 16", m_repl17},
    {"outputs", "outputs: must list between 1 and 64", m_outputs_none},
    {"outputs[0]", "outputs[0]: '/etc/passwd' must be relative", m_outputs_abs},
    {"outputs[1]", "outputs[1]: 'a/../../b' must not contain '..'", m_outputs_dotdot},
    {"outputs[1]", "must not contain '..'", m_outputs_dotdot2},
    {"outputs[0]", "outputs[0]: '' must not be empty", m_outputs_empty},
    {"price.max_per_cu", "price.max_per_cu:", m_price},
};

static void test_validate_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        struct cu_spec s;
        struct cu_err e = {0};
        char field[128];
        make_good(&s);
        rules[i].mutate(&s);
        assert_int_equal(cu_spec_validate_field(&s, &e, field, sizeof(field)), -CU_EINVAL);
        assert_int_equal(e.code, -CU_EINVAL);
        if (strcmp(field, rules[i].field) != 0 || !strstr(e.msg, rules[i].msg))
            fail_msg("rule %zu: field '%s' message '%s'; wanted field '%s' and '%s'", i, field,
                     e.msg, rules[i].field, rules[i].msg);
        /* The same rules guard the JSON door. */
        if (s.name && s.ncommand > 0 && s.image && s.max_per_cu <= INT64_MAX && s.noutputs > 0) {
            json_t *j = cu_spec_to_json(&s);
            struct cu_spec back;
            struct cu_err e2 = {0};
            assert_non_null(j);
            cu_spec_init(&back);
            if (strncmp(rules[i].field, "env.", 4) != 0 || strstr(rules[i].msg, "twice") == 0)
                assert_int_equal(cu_spec_from_json(&back, j, &e2), -CU_EINVAL);
            json_decref(j);
        }
        cu_spec_release(&s);
    }
}

static void test_validate_edges_ok(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    char name[65];
    (void)state;
    make_good(&s);
    memset(name, 'z', 64);
    name[64] = '\0';
    set_str(&s.name, name);
    s.res.cores = CU_SPEC_MAX_CORES;
    s.res.memory = 1ULL << 20;
    s.res.time_ms = 1000;
    s.res.output = 16ULL << 30;
    s.res.gpus = 64;
    s.replication = CU_SPEC_MAX_REPLICATION;
    s.max_per_cu = INT64_MAX;
    set_str(&s.outputs[1], "a..b/x..y.txt");
    assert_int_equal(cu_spec_validate(&s, &e), 0);
    s.res.time_ms = CU_SPEC_MAX_TIME_MS;
    assert_int_equal(cu_spec_validate(&s, &e), 0);
    roundtrip(&s);
    cu_spec_release(&s);
    cu_spec_release(&s); /* released twice is harmless */
}

static void test_glob(void **state)
{
    (void)state;
    assert_true(cu_spec_glob_match("*.txt", "hello.txt"));
    assert_false(cu_spec_glob_match("*.txt", "hello.txt.bak"));
    assert_false(cu_spec_glob_match("*.txt", "dir/hello.txt"));
    assert_true(cu_spec_glob_match("tiles/?.ppm", "tiles/3.ppm"));
    assert_false(cu_spec_glob_match("tiles/?.ppm", "tiles/33.ppm"));
    assert_true(cu_spec_glob_match("*/*", "a/b"));
    assert_false(cu_spec_glob_match("*", "a/b"));
    assert_true(cu_spec_glob_match("*", "a"));
    assert_true(cu_spec_glob_match("out[0-9].bin", "out7.bin"));
    assert_false(cu_spec_glob_match("out[0-9].bin", "outx.bin"));
    assert_true(cu_spec_glob_match("exact", "exact"));
    assert_false(cu_spec_glob_match("exact", "exactly"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_full),
        cmocka_unit_test(test_roundtrip_minimal),
        cmocka_unit_test(test_from_json_defaults),
        cmocka_unit_test(test_from_json_strict),
        cmocka_unit_test(test_validate_rules),
        cmocka_unit_test(test_validate_edges_ok),
        cmocka_unit_test(test_glob),
    };
    assert_int_equal(cu_crypto_init(), 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
