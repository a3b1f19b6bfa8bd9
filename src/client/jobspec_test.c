/* jobspec_test.c - the YAML job file: good files, defaults, and every kind
 * of mistake reported with its field and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "client/jobspec.h"

#include "base/banned.h"

static char g_dir[CU_PATH_MAX];

static void write_file(const char *name, const char *text)
{
    char path[CU_PATH_MAX];
    assert_int_equal(cu_path_join(path, sizeof(path), g_dir, name), 0);
    assert_int_equal(cu_write_file_atomic(path, text, strlen(text), 0644), 0);
}

static int setup(void **state)
{
    char sub[CU_PATH_MAX];
    (void)state;
    assert_int_equal(cu_snprintf(g_dir, sizeof(g_dir), "%s", "/tmp/cu-jobspec-XXXXXX"), 0);
    assert_non_null(mkdtemp(g_dir));
    write_file("data.txt", "hello\n");
    write_file("prog", "#!/bin/sh\n");
    assert_int_equal(cu_path_join(sub, sizeof(sub), g_dir, "subdir"), 0);
    assert_int_equal(cu_mkdir_p(sub, 0755), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cu_rm_rf(g_dir);
}

static int parse(struct cu_spec *s, const char *yaml, struct cu_err *e)
{
    cu_spec_init(s);
    return cu_jobspec_parse(s, yaml, strlen(yaml), "job.yaml", g_dir, e);
}

/* Expects yaml refused with a message starting with want. */
static void refused(const char *yaml, const char *want)
{
    struct cu_spec s;
    struct cu_err e = {0};
    int rc = parse(&s, yaml, &e);
    if (rc == 0) {
        cu_spec_release(&s);
        fail_msg("accepted; wanted '%s'", want);
    }
    assert_int_equal(e.code, rc);
    if (strncmp(e.msg, want, strlen(want)) != 0)
        fail_msg("message '%s' does not start with '%s'", e.msg, want);
    /* Left released. */
    assert_null(s.name);
    assert_null(s.command);
    assert_null(s.inputs);
    assert_null(s.outputs);
}

static const char good_yaml[] =
    "name: hello\n"
    "command: [\"sh\", \"-c\", \"echo task $CUMULUS_TASK_INDEX > /out/hello.txt\"]\n"
    "inputs:                      # uploaded as blobs\n"
    "  - {name: data.txt, path: ./data.txt}\n"
    "  - path: prog\n"
    "tasks: 4\n"
    "resources: {cores: 2, memory: 256MiB, time: 30s, output: 64MiB, gpus: 1}\n"
    "replication: 2\n"
    "outputs: [\"*.txt\", \"tiles/*.ppm\"]\n"
    "price: {max_per_cu: 100}\n"
    "image: host\n"
    "env: {GREETING: hi there, N: 3}\n";

static void test_good(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    struct cu_hash h;
    char path[CU_PATH_MAX];
    (void)state;

    assert_int_equal(parse(&s, good_yaml, &e), 0);
    assert_string_equal(s.name, "hello");
    assert_int_equal(s.ncommand, 3);
    assert_string_equal(s.command[0], "sh");
    assert_string_equal(s.command[1], "-c");
    assert_string_equal(s.command[2], "echo task $CUMULUS_TASK_INDEX > /out/hello.txt");
    assert_string_equal(s.image, "host");
    assert_int_equal(s.nenv, 2);
    assert_string_equal(s.env[0].key, "GREETING");
    assert_string_equal(s.env[0].value, "hi there");
    assert_string_equal(s.env[1].key, "N");
    assert_string_equal(s.env[1].value, "3");
    assert_int_equal(s.ninputs, 2);
    assert_string_equal(s.inputs[0].name, "data.txt");
    cu_hash_mem("hello\n", 6, &h);
    assert_true(cu_hash_eq(&h, &s.inputs[0].hash));
    assert_int_equal(s.inputs[0].size, 6);
    assert_int_equal(cu_path_join(path, sizeof(path), g_dir, "./data.txt"), 0);
    assert_string_equal(s.inputs[0].path, path);
    assert_string_equal(s.inputs[1].name, "prog");
    assert_int_equal(s.inputs[1].size, 10);
    assert_int_equal(s.task_count, 4);
    assert_null(s.task_args);
    assert_int_equal(s.res.cores, 2);
    assert_int_equal(s.res.memory, 256ULL << 20);
    assert_int_equal(s.res.time_ms, 30000);
    assert_int_equal(s.res.output, 64ULL << 20);
    assert_int_equal(s.res.gpus, 1);
    assert_int_equal(s.replication, 2);
    assert_int_equal(s.noutputs, 2);
    assert_string_equal(s.outputs[0], "*.txt");
    assert_string_equal(s.outputs[1], "tiles/*.ppm");
    assert_int_equal(s.max_per_cu, 100);
    cu_spec_release(&s);
}

static void test_defaults_and_string_command(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    (void)state;
    assert_int_equal(parse(&s,
                           "name: d\n"
                           "command: echo hi > /out/x.txt\n"
                           "outputs: [x.txt]\n",
                           &e),
                     0);
    assert_int_equal(s.ncommand, 3);
    assert_string_equal(s.command[0], "sh");
    assert_string_equal(s.command[1], "-c");
    assert_string_equal(s.command[2], "echo hi > /out/x.txt");
    assert_string_equal(s.image, "host");
    assert_int_equal(s.nenv, 0);
    assert_int_equal(s.ninputs, 0);
    assert_int_equal(s.task_count, 1);
    assert_null(s.task_args);
    assert_int_equal(s.res.cores, CU_SPEC_DEFAULT_CORES);
    assert_int_equal(s.res.memory, CU_SPEC_DEFAULT_MEMORY);
    assert_int_equal(s.res.time_ms, CU_SPEC_DEFAULT_TIME_MS);
    assert_int_equal(s.res.output, CU_SPEC_DEFAULT_OUTPUT);
    assert_int_equal(s.res.gpus, 0);
    assert_int_equal(s.replication, 1);
    assert_int_equal(s.max_per_cu, 0);
    cu_spec_release(&s);

    /* Plain integers: bytes for sizes, seconds for time; one glob alone. */
    assert_int_equal(parse(&s,
                           "name: d\ncommand: [true]\noutputs: out.bin\n"
                           "resources:\n  memory: 2097152\n  time: 45\n  output: 1\n",
                           &e),
                     0);
    assert_int_equal(s.res.memory, 2097152);
    assert_int_equal(s.res.time_ms, 45000);
    assert_int_equal(s.res.output, 1);
    assert_int_equal(s.noutputs, 1);
    assert_string_equal(s.outputs[0], "out.bin");
    cu_spec_release(&s);
}

static void test_list_tasks(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    (void)state;
    assert_int_equal(parse(&s,
                           "name: sweep\n"
                           "command: [./prog]\n"
                           "tasks:\n"
                           "  - alpha\n"
                           "  - \"beta gamma\"\n"
                           "  - 3\n"
                           "outputs: ['*']\n",
                           &e),
                     0);
    assert_int_equal(s.task_count, 3);
    assert_non_null(s.task_args);
    assert_string_equal(s.task_args[0], "alpha");
    assert_string_equal(s.task_args[1], "beta gamma");
    assert_string_equal(s.task_args[2], "3");
    cu_spec_release(&s);
}

static void test_load_file(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    (void)state;

    /* Inputs resolve against the YAML file's directory, not the cwd. */
    assert_int_equal(cu_path_join(path, sizeof(path), g_dir, "subdir/job.yaml"), 0);
    assert_int_equal(cu_write_file_atomic(path,
                                          "name: f\ncommand: [cat, /in/d]\noutputs: ['*']\n"
                                          "inputs: [{name: d, path: ../data.txt}]\n",
                                          strlen("name: f\ncommand: [cat, /in/d]\noutputs: "
                                                 "['*']\ninputs: [{name: d, path: "
                                                 "../data.txt}]\n"),
                                          0644),
                     0);
    cu_spec_init(&s);
    assert_int_equal(cu_jobspec_load(&s, path, &e), 0);
    assert_int_equal(s.ninputs, 1);
    assert_int_equal(s.inputs[0].size, 6);
    cu_spec_release(&s);

    assert_int_equal(cu_path_join(path, sizeof(path), g_dir, "nope.yaml"), 0);
    cu_spec_init(&s);
    assert_int_equal(cu_jobspec_load(&s, path, &e), -CU_ENOTFOUND);
    assert_non_null(strstr(e.msg, "nope.yaml: no such file"));
    assert_null(s.name);

    /* Errors name the file as given. */
    assert_int_equal(cu_path_join(path, sizeof(path), g_dir, "bad.yaml"), 0);
    assert_int_equal(cu_write_file_atomic(path, "name: x\nbogus: 1\n", 17, 0644), 0);
    cu_spec_init(&s);
    assert_int_equal(cu_jobspec_load(&s, path, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "bad.yaml:2: bogus: unknown key"));
}

#define HEAD "name: x\ncommand: [true]\noutputs: ['*']\n" /* lines 1-3 */

static void test_errors(void **state)
{
    (void)state;
    refused(HEAD "bogus: 1\n", "job.yaml:4: bogus: unknown key (expected one of: name, ");
    refused(HEAD "resources:\n  cores: 1\n  cpus: 2\n", "job.yaml:6: resources.cpus: unknown key");
    refused(HEAD "inputs:\n  - {path: data.txt, hash: abc}\n",
            "job.yaml:5: inputs[0].hash: unknown key");
    refused(HEAD "price: {max_per_cu: 1, min: 2}\n", "job.yaml:4: price.min: unknown key");
    refused(HEAD "resources:\n  memory: 12XB\n",
            "job.yaml:5: resources.memory: '12XB' is not a size (use e.g. 256MiB)");
    refused(HEAD "resources: {output: lots}\n",
            "job.yaml:4: resources.output: 'lots' is not a size");
    refused(HEAD "resources:\n  time: 5 parsecs\n",
            "job.yaml:5: resources.time: '5 parsecs' is not a duration");
    refused(HEAD "resources:\n  cores: two\n",
            "job.yaml:5: resources.cores: 'two' is not a whole number");
    refused(HEAD "resources:\n  cores: 2000\n",
            "job.yaml:5: resources.cores: must be between 1 and 1024");
    refused(HEAD "resources:\n  memory: 1KiB\n",
            "job.yaml:5: resources.memory: must be at least 1MiB");
    refused(HEAD "resources:\n  time: 8d\n",
            "job.yaml:5: resources.time: must be between 1s and 7d");
    refused(HEAD "resources: [1]\n", "job.yaml:4: resources: must be a mapping");
    refused(HEAD "tasks: 0\n", "job.yaml:4: tasks: must be between 1 and 100000");
    refused(HEAD "tasks: -3\n", "job.yaml:4: tasks: must not be negative");
    refused(HEAD "tasks: 100001\n", "job.yaml:4: tasks: must be between 1 and 100000");
    refused(HEAD "tasks: []\n", "job.yaml:4: tasks: the list is empty");
    refused(HEAD "tasks:\n  - a\n  - [b]\n",
            "job.yaml:6: tasks[1]: must be a single value, not a list");
    refused(HEAD "tasks:\n", "job.yaml:4: tasks: missing value");
    refused("name: x\noutputs: ['*']\n", "job.yaml:1: command: missing");
    refused("command: [true]\noutputs: ['*']\n", "job.yaml:1: name: missing");
    refused("name: x\ncommand: [true]\n", "job.yaml:1: outputs: missing");
    refused("name: x\ncommand: []\noutputs: ['*']\n",
            "job.yaml:2: command: must have at least one argument");
    refused("name: x\ncommand: {a: 1}\noutputs: ['*']\n", "job.yaml:2: command: must be a list");
    refused("name: x\ncommand: ''\noutputs: ['*']\n", "job.yaml:2: command: must not be empty");
    refused("name: x\ncommand:\n  - ./run\n  - [nested]\noutputs: ['*']\n",
            "job.yaml:4: command[1]: must be a single value");
    refused("name: 'bad name'\ncommand: [true]\noutputs: ['*']\n", "job.yaml:1: name: 'bad name'");
    refused(HEAD "image: ubuntu:24.04\n",
            "job.yaml:4: image 'ubuntu:24.04': must be 'host' or an OCI image ('oci:./image.tar')");
    refused(HEAD "env:\n  OK: 1\n  CUMULUS_TASK_INDEX: 3\n",
            "job.yaml:6: env.CUMULUS_TASK_INDEX: names starting with CUMULUS_ are reserved");
    refused(HEAD "env:\n  1BAD: x\n", "job.yaml:5: env.1BAD: not a valid variable name");
    refused(HEAD "env: [A]\n", "job.yaml:4: env: must be a mapping");
    refused(HEAD "inputs:\n  - {name: a, path: missing.txt}\n", "job.yaml:5: inputs[0].path: '");
    refused(HEAD "inputs:\n  - {name: a}\n", "job.yaml:5: inputs[0].path: missing");
    refused(HEAD "inputs:\n  - {name: a, path: subdir}\n", "job.yaml:5: inputs[0].path: '");
    refused(HEAD "inputs:\n  - name: ../x\n    path: data.txt\n",
            "job.yaml:5: inputs[0].name: '../x' is not a safe file name");
    refused(HEAD "inputs:\n  - path: data.txt\n  - path: ./data.txt\n",
            "job.yaml:6: inputs[1].name: 'data.txt' is used by inputs[0] too");
    refused(HEAD "inputs:\n  - data.txt\n", "job.yaml:5: inputs[0]: must be a mapping");
    refused(HEAD "replication: 0\n", "job.yaml:4: replication: must be between 1 and 16");
    refused(HEAD "replication: 1.5\n", "job.yaml:4: replication: '1.5' is not a whole number");
    refused("name: x\ncommand: [true]\noutputs:\n  - '*.txt'\n  - ../secret\n",
            "job.yaml:5: outputs[1]: '../secret' must not contain '..'");
    refused("name: x\ncommand: [true]\noutputs: [/etc/passwd]\n",
            "job.yaml:3: outputs[0]: '/etc/passwd' must be relative");
    refused(HEAD "price: {max_per_cu: -1}\n", "job.yaml:4: price.max_per_cu: must not be negative");
    refused(HEAD "price: {max_per_cu: 99999999999999999999}\n",
            "job.yaml:4: price.max_per_cu: '99999999999999999999' is too large");
    refused(HEAD "price: {max_per_cu: 18446744073709551615}\n", "job.yaml:4: price.max_per_cu:");
    /* Syntax errors name a line. */
    refused("name: x\ncommand: [true,\noutputs: ['*']\n", "job.yaml:3: not valid YAML near line 3");
    refused("name: x\nname: y\ncommand: [true]\noutputs: ['*']\n",
            "job.yaml:2: not valid YAML near line 2: duplicate key");
    refused("name: x\n  bad: indent\n", "job.yaml:");
    refused("", "job.yaml: ");
    refused("- just\n- a list\n", "job.yaml:1: job: must be a mapping");
    refused("just a string\n", "job.yaml:1: job: must be a mapping");
    refused("a: &x 1\nname: *x\n", "job.yaml:");
}

/* The trust fields (docs/api.md "Trust"): every spelling of the policy,
 * exact thousandths for min_reputation, both challenge kinds, and each
 * mistake named with its line and field. */
static void test_trust_fields(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    (void)state;

    assert_int_equal(parse(&s, HEAD "replication: 3\n", &e), 0);
    assert_int_equal(s.replication, 3);
    assert_int_equal(s.quorum, 0);
    assert_int_equal(s.max_replicas, 0);
    assert_false(s.adaptive);
    assert_int_equal(s.challenge, CU_SPEC_CHALLENGE_NONE);
    cu_spec_release(&s);

    assert_int_equal(parse(&s,
                           HEAD "replication: {min: 2, quorum: 2, max: 5}\n"
                                "min_reputation: 0.8\n"
                                "challenge: {kind: factor, bits: 48}\n"
                                "validator: exact\n",
                           &e),
                     0);
    assert_int_equal(s.replication, 2);
    assert_int_equal(s.quorum, 2);
    assert_int_equal(s.max_replicas, 5);
    assert_false(s.adaptive);
    assert_int_equal(s.min_reputation, 800);
    assert_int_equal(s.challenge, CU_SPEC_CHALLENGE_FACTOR);
    assert_int_equal(s.challenge_bits, 48);
    cu_spec_release(&s);

    assert_int_equal(parse(&s,
                           HEAD "replication: adaptive\n"
                                "min_reputation: 0.125\n"
                                "challenge:\n  kind: memory\n  mib: 256\n",
                           &e),
                     0);
    assert_int_equal(s.replication, 2);
    assert_int_equal(s.quorum, 2);
    assert_int_equal(s.max_replicas, 5);
    assert_true(s.adaptive);
    assert_int_equal(s.min_reputation, 125);
    assert_int_equal(s.challenge, CU_SPEC_CHALLENGE_MEMORY);
    assert_int_equal(s.challenge_mib, 256);
    cu_spec_release(&s);

    /* Exact decimals, no rounding: each spelling gives its thousandths. */
    static const struct {
        const char *text;
        uint32_t milli;
    } reps[] = {{"0", 0},         {"1", 1000},     {"1.0", 1000},  {"1.000", 1000},
                {"0.999", 999},   {"0.05", 50},    {"0.001", 1},   {"0.7", 700},
                {"0.29", 290},    {"0.57", 570},   {"0.100", 100}, {"0.0", 0}};
    for (size_t i = 0; i < sizeof(reps) / sizeof(reps[0]); i++) {
        char yaml[256];
        assert_int_equal(cu_snprintf(yaml, sizeof(yaml), HEAD "min_reputation: %s\n",
                                     reps[i].text),
                         0);
        assert_int_equal(parse(&s, yaml, &e), 0);
        if (s.min_reputation != reps[i].milli)
            fail_msg("min_reputation %s gave %u", reps[i].text, s.min_reputation);
        cu_spec_release(&s);
    }

    refused(HEAD "min_reputation: 1.5\n", "job.yaml:4: min_reputation: '1.5' must be between 0 and 1");
    refused(HEAD "min_reputation: 2\n", "job.yaml:4: min_reputation: '2' is not a number between 0 and 1");
    refused(HEAD "min_reputation: 0.8125\n",
            "job.yaml:4: min_reputation: '0.8125' has more than 3 decimals");
    refused(HEAD "min_reputation: .8\n", "job.yaml:4: min_reputation: '.8' is not a number");
    refused(HEAD "min_reputation: 0.\n", "job.yaml:4: min_reputation: '0.' is not a number");
    refused(HEAD "min_reputation: 80%\n", "job.yaml:4: min_reputation: '80%' is not a number");
    refused(HEAD "min_reputation: 0.8e1\n", "job.yaml:4: min_reputation: '0.8e1' is not");
    refused(HEAD "min_reputation: -0.5\n", "job.yaml:4: min_reputation: '-0.5' is not");
    refused(HEAD "replication: sometimes\n",
            "job.yaml:4: replication: 'sometimes' is not a policy (use a number, {min: 2, quorum: 2, max: 5} or adaptive)");
    refused(HEAD "replication: {min: 2, quorum: 2}\n", "job.yaml:4: replication.max: missing");
    refused(HEAD "replication: {quorum: 2, max: 5}\n", "job.yaml:4: replication.min: missing");
    refused(HEAD "replication: {min: 2, max: 5}\n", "job.yaml:4: replication.quorum: missing");
    refused(HEAD "replication: {min: 2, quorum: 2, max: 5, k: 1}\n",
            "job.yaml:4: replication.k: unknown key (expected one of: min, quorum, max)");
    refused(HEAD "replication:\n  min: 2\n  quorum: 3\n  max: 5\n",
            "job.yaml:6: replication.quorum: must be between 1 and replication.min (2)");
    refused(HEAD "replication:\n  min: 3\n  quorum: 2\n  max: 2\n",
            "job.yaml:7: replication.max: must be between replication.min (3) and");
    refused(HEAD "replication: {min: two, quorum: 2, max: 5}\n",
            "job.yaml:4: replication.min: 'two' is not a whole number");
    refused(HEAD "challenge: {kind: factor, bits: 80}\n",
            "job.yaml:4: challenge.bits: must be between 8 and 64");
    refused(HEAD "challenge: {kind: factor}\n", "job.yaml:4: challenge.bits: missing");
    refused(HEAD "challenge: {kind: memory, bits: 48}\n",
            "job.yaml:4: challenge.bits: only for kind factor");
    refused(HEAD "challenge: {kind: factor, mib: 48}\n", "job.yaml:4: challenge.mib: only for kind memory");
    refused(HEAD "challenge:\n  kind: memory\n  mib: 9000\n",
            "job.yaml:6: challenge.mib: must be between 1 and 4096");
    refused(HEAD "challenge: {kind: sudoku, bits: 8}\n",
            "job.yaml:4: challenge.kind: 'sudoku' must be factor or memory");
    refused(HEAD "challenge: {bits: 8}\n", "job.yaml:4: challenge.kind: missing");
    refused(HEAD "challenge: factor\n", "job.yaml:4: challenge: must be a mapping");
    refused(HEAD "validator: ./compare.sh\n",
            "job.yaml:4: validator: './compare.sh' must be 'exact'");
    refused(HEAD "validator: [python3, cmp.py]\n", "job.yaml:4: validator:");
    refused(HEAD "validator: {cmd: [x]}\n", "job.yaml:4: validator.cmd: unknown key");
    refused(HEAD "validator: {}\n", "job.yaml:4: validator.command: missing");
    /* A validator command: kept as given. */
    assert_int_equal(parse(&s, HEAD "validator: {command: [/in/cmp, -s]}\n", &e), 0);
    assert_int_equal(s.nvalidator, 2);
    assert_string_equal(s.validator[0], "/in/cmp");
    assert_string_equal(s.validator[1], "-s");
    cu_spec_release(&s);
}

static void test_missing_input_message(void **state)
{
    struct cu_spec s;
    struct cu_err e = {0};
    (void)state;
    assert_int_equal(parse(&s, HEAD "inputs:\n  - {name: a, path: missing.txt}\n", &e),
                     -CU_ENOTFOUND);
    assert_non_null(strstr(e.msg, "missing.txt"));
    assert_non_null(strstr(e.msg, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),       cmocka_unit_test(test_defaults_and_string_command),
        cmocka_unit_test(test_list_tasks), cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_errors),     cmocka_unit_test(test_missing_input_message),
        cmocka_unit_test(test_trust_fields),
    };
    assert_int_equal(cu_crypto_init(), 0);
    return cmocka_run_group_tests(tests, setup, teardown);
}
