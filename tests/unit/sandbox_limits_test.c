/* sandbox_limits_test.c - the sandbox's resource limits end to end under
 * bwrap: disk use of the work dir, and with a cgroup (skipped where this
 * process may not create one) memory (an OOM kill is "memory limit"),
 * process count ("process limit"), peak memory read back and the task's
 * group removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "fabric/cgroup.h"
#include "fabric/sandbox.h"
#include "sandbox_fixture.h"

#include "base/banned.h"

struct fixture {
    struct sbfix x;
    struct cu_sandbox_result r;
    struct cu_cgroup parent; /* version NONE when cgroups are not usable here */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cu_cgroup self;
    struct cu_err e = {0};
    char name[64];

    if (!f || sbfix_init(&f->x, "cu-sblimits") != 0)
        return -1;
    cu_snprintf(name, sizeof(name), "cu-sblimits-%d", (int)getpid());
    if (cu_cgroup_self(&self, &e) != 0 ||
        cu_cgroup_create(&self, name, &(struct cu_cgroup_limits){0}, &f->parent, &e) != 0) {
        print_message("no cgroup here: %s\n", e.msg);
        memset(&f->parent, 0, sizeof(f->parent));
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->parent.version != CU_CG_NONE)
        cu_cgroup_destroy(&f->parent);
    sbfix_release(&f->x);
    free(f);
    return 0;
}

static void run_sh(struct fixture *f, const char *script)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    int rc;

    f->x.o.argv = argv;
    rc = cu_sandbox_start(&f->x.o, &s, &e);
    if (rc)
        print_message("start: %s\n", cu_err_msg(&e, rc));
    assert_int_equal(rc, 0);
    assert_int_equal(cu_sandbox_wait(s, -1), 0);
    cu_sandbox_get_result(s, &f->r);
    cu_sandbox_free(s);
}

static void test_disk_limit(void **state)
{
    struct fixture *f = *state;

    f->x.o.output_limit = 256u << 20;
    f->x.o.disk_limit = 4u << 20;
    run_sh(f, "i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero > /work/f$i; "
              "i=$((i+1)); done; sleep 30");
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_string_equal(f->r.reason, "disk limit");
}

/* Under the disk limit the task is untouched. */
static void test_disk_within_limit(void **state)
{
    struct fixture *f = *state;

    f->x.o.disk_limit = 8u << 20;
    run_sh(f, "head -c 1048576 /dev/zero > /work/a && head -c 1048576 /dev/zero > /out/b");
    assert_int_equal(f->r.status, CU_SB_OK);
}

static void test_memory_limit(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    char dir[CU_PATH_MAX];

    if (f->parent.version == CU_CG_NONE)
        skip();
    f->x.o.cgroup_parent = &f->parent;
    f->x.o.cgroup_name = "mem-task";
    f->x.o.memory_limit = 64u << 20;
    /* A string that doubles until memory runs out. */
    run_sh(f, "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; sleep 30");
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_string_equal(f->r.reason, "memory limit");
    assert_true(f->r.memory_peak == 0 || f->r.memory_peak > (16u << 20));
    assert_true(f->r.memory_peak <= (65u << 20));
    /* The task's group is gone. */
    assert_int_equal(cu_path_join(dir, sizeof dir, f->parent.dir[CU_CG_MEMORY], "mem-task"), 0);
    assert_int_equal(stat(dir, &st), -1);
}

/* Memory use below the limit: no verdict, peak read back. */
static void test_memory_within_limit(void **state)
{
    struct fixture *f = *state;

    if (f->parent.version == CU_CG_NONE)
        skip();
    f->x.o.cgroup_parent = &f->parent;
    f->x.o.memory_limit = 128u << 20;
    run_sh(f, "head -c 4000000 /dev/zero | awk '{ n++ } END { exit 0 }'");
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_true(f->r.memory_peak > 0);
}

static void test_process_limit(void **state)
{
    struct fixture *f = *state;

    if (f->parent.version == CU_CG_NONE || !f->parent.dir[CU_CG_PIDS][0])
        skip();
    f->x.o.cgroup_parent = &f->parent;
    f->x.o.nproc_limit = 16;
    run_sh(f, "i=0; while [ $i -lt 64 ]; do sleep 30 & i=$((i+1)); done; wait");
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_string_equal(f->r.reason, "process limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_within_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_within_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
