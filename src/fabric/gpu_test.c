/* gpu_test.c - --gpus parsing against the probe, and the device nodes a
 * GPU task gets (on a fake /dev). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "fabric/gpu.h"

#include "base/banned.h"

static void test_parse(void **state)
{
    unsigned idx[CU_GPU_MAX], n = 99;
    struct cu_err e = {0};

    (void)state;
    assert_int_equal(cu_gpu_parse_list("0,1", 2, idx, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    assert_int_equal(cu_gpu_parse_list("3", 4, idx, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(idx[0], 3);

    assert_int_equal(cu_gpu_parse_list("0", 0, idx, &n, &e), -CU_EINVAL);
    assert_string_equal(e.msg, "--gpus 0: this machine has no GPU (the probe found none)");
    assert_int_equal(cu_gpu_parse_list("0,2", 2, idx, &n, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "GPU 2 does not exist"));
    assert_int_equal(cu_gpu_parse_list("1,1", 2, idx, &n, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "listed twice"));
    assert_int_equal(cu_gpu_parse_list("a", 2, idx, &n, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "'a' is not a GPU index"));
    assert_int_equal(cu_gpu_parse_list("0,", 2, idx, &n, &e), -CU_EINVAL);
    assert_int_equal(cu_gpu_parse_list(",0", 2, idx, &n, &e), -CU_EINVAL);
    assert_int_equal(cu_gpu_parse_list("", 2, idx, &n, &e), -CU_EINVAL);
    assert_int_equal(cu_gpu_parse_list("-1", 2, idx, &n, &e), -CU_EINVAL);
}

static void touch(const char *dir, const char *name)
{
    char p[CU_PATH_MAX];
    int fd;

    assert_int_equal(cu_path_join(p, sizeof p, dir, name), 0);
    fd = open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
}

static void test_binds(void **state)
{
    char dev[] = "/tmp/cu-gpudev-XXXXXX", want[CU_PATH_MAX];
    char *b[CU_GPU_BINDS_MAX];
    unsigned one[] = {1}, missing[] = {2};
    struct cu_err e = {0};

    (void)state;
    assert_non_null(mkdtemp(dev));
    touch(dev, "nvidia0");
    touch(dev, "nvidia1");
    touch(dev, "nvidiactl");
    touch(dev, "nvidia-uvm");
    assert_int_equal(cu_gpu_device_binds(dev, one, 1, b, &e), 0);
    /* Only the offered GPU's node, then the shared ones that exist. */
    assert_int_equal(cu_snprintf(want, sizeof want, "%s/nvidia1", dev), 0);
    assert_string_equal(b[0], want);
    assert_int_equal(cu_snprintf(want, sizeof want, "%s/nvidiactl", dev), 0);
    assert_string_equal(b[1], want);
    assert_int_equal(cu_snprintf(want, sizeof want, "%s/nvidia-uvm", dev), 0);
    assert_string_equal(b[2], want);
    assert_null(b[3]);
    cu_gpu_binds_free(b);
    assert_int_equal(cu_gpu_device_binds(dev, missing, 1, b, &e), -CU_ENOTFOUND);
    assert_non_null(strstr(e.msg, "GPU 2"));
    assert_null(b[0]);
    cu_rm_rf(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_binds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
