/* spec_image_test.c - the job spec's image field: "host", or an OCI image
 * tarball as {"oci":{"hash","size"}} in canonical JSON and "oci:PATH" in
 * YAML; strict refusals name the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "client/jobspec.h"
#include "market/spec.h"

#include "base/banned.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int from_text(const char *text, struct cu_spec *s, struct cu_err *e)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    int rc;

    assert_non_null(j);
    cu_spec_init(s);
    rc = cu_spec_from_json(s, j, e);
    json_decref(j);
    return rc;
}

static void test_json_round_trip(void **state)
{
    static const char *text =
        "{\"name\":\"o\",\"command\":[],\"image\":{\"oci\":{\"hash\":\"" H64 "\",\"size\":1234}},"
        "\"tasks\":{\"count\":1},\"outputs\":[\"*\"]}";
    struct cu_spec s;
    struct cu_err e = {0};
    json_t *j;
    char *out;

    (void)state;
    assert_int_equal(from_text(text, &s, &e), 0);
    assert_true(cu_spec_image_is_oci(&s));
    assert_int_equal(s.image_oci.size, 1234);
    assert_int_equal(s.ncommand, 0); /* the image's Entrypoint/Cmd will run */
    j = cu_spec_to_json(&s);
    out = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(strstr(out, "\"image\":{\"oci\":{\"hash\":\"" H64 "\",\"size\":1234}}"));
    free(out);
    json_decref(j);
    cu_spec_release(&s);
}

static void expect_bad(const char *image, const char *needle)
{
    char text[1024];
    struct cu_spec s;
    struct cu_err e = {0};

    snprintf(text, sizeof text,
             "{\"name\":\"o\",\"command\":[\"true\"],\"image\":%s,\"tasks\":{\"count\":1},"
             "\"outputs\":[\"*\"]}", image);
    assert_int_equal(from_text(text, &s, &e), -CU_EINVAL);
    if (!strstr(e.msg, needle))
        fail_msg("for %s: '%s' does not mention '%s'", image, e.msg, needle);
}

static void test_json_refusals(void **state)
{
    (void)state;
    expect_bad("\"docker.io/alpine\"", "image");
    expect_bad("\"oci\"", "image");
    expect_bad("42", "image");
    expect_bad("{\"oci\":{\"hash\":\"xyz\",\"size\":1}}", "image.oci.hash");
    expect_bad("{\"oci\":{\"hash\":\"" H64 "\"}}", "size");
    expect_bad("{\"oci\":{\"hash\":\"" H64 "\",\"size\":0}}", "image.oci.size");
    expect_bad("{\"oci\":{\"hash\":\"" H64 "\",\"size\":1,\"x\":1}}", "x");
    expect_bad("{\"docker\":{}}", "docker");
    {
        /* host jobs still need a command */
        struct cu_spec s;
        struct cu_err e = {0};
        assert_int_equal(from_text("{\"name\":\"o\",\"command\":[],\"tasks\":{\"count\":1},"
                                   "\"outputs\":[\"*\"]}", &s, &e), -CU_EINVAL);
        assert_non_null(strstr(e.msg, "command"));
    }
}

static void test_yaml(void **state)
{
    char dir[] = "/tmp/cu-spec-image-XXXXXX", tar[64];
    static const char ok[] = "name: o\nimage: oci:./img.tar\noutputs: [\"*\"]\n";
    static const char missing[] = "name: o\n\nimage: oci:./nope.tar\noutputs: [\"*\"]\n";
    static const char other[] = "name: o\nimage: ubuntu\ncommand: [x]\noutputs: [\"*\"]\n";
    struct cu_spec s;
    struct cu_err e = {0};

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(tar, sizeof tar, "%s/img.tar", dir);
    assert_int_equal(cu_write_file_atomic(tar, "tarball", 7, 0644), 0);

    cu_spec_init(&s);
    assert_int_equal(cu_jobspec_parse(&s, ok, strlen(ok), "job.yaml", dir, &e), 0);
    assert_true(cu_spec_image_is_oci(&s));
    assert_int_equal(s.image_oci.size, 7);
    assert_non_null(s.image_oci.path);
    cu_spec_release(&s);

    cu_spec_init(&s);
    assert_int_not_equal(cu_jobspec_parse(&s, missing, strlen(missing), "job.yaml", dir, &e), 0);
    assert_non_null(strstr(e.msg, "job.yaml:3: image: "));
    assert_non_null(strstr(e.msg, "nope.tar"));

    cu_spec_init(&s);
    assert_int_equal(cu_jobspec_parse(&s, other, strlen(other), "job.yaml", dir, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "job.yaml:2: image"));
    assert_non_null(strstr(e.msg, "oci:"));
    cu_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_refusals),
        cmocka_unit_test(test_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
