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

#include "base/banned.h"

struct fixture {
    char base[64];
    char work[CU_PATH_MAX], out[CU_PATH_MAX], so[CU_PATH_MAX], se[CU_PATH_MAX];
    struct cu_sandbox_opts o;
    struct cu_sandbox_result r;
    struct cu_cgroup parent; /* version NONE when cgroups are not usable here */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct cu_sandbox_opts init = CU_SANDBOX_OPTS_INIT;
    struct cu_cgroup self;
    struct cu_err e = {0};
    char name[64];

    if (!f)
        return -1;
    cu_snprintf(f->base, sizeof(f->base), "/tmp/cu-sblimits-XXXXXX");
    if (!mkdtemp(f->base))
        return -1;
    chmod(f->base, 0711); /* uid 65534 must reach the directories below */
    cu_path_join(f->work, sizeof(f->work), f->base, "work");
    cu_path_join(f->out, sizeof(f->out), f->base, "out");
    cu_path_join(f->so, sizeof(f->so), f->base, "stdout");
    cu_path_join(f->se, sizeof(f->se), f->base, "stderr");
    if (mkdir(f->work, 0755) || mkdir(f->out, 0755))
        return -1;
    f->o = init;
    f->o.work_dir = f->work;
    f->o.out_dir = f->out;
    f->o.stdout_path = f->so;
    f->o.stderr_path = f->se;
    f->o.time_limit_ms = 60000; /* generous: the limits, not the clock, must end these */
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
    cu_rm_rf(f->base);
    free(f);
    return 0;
}

static void run_sh(struct fixture *f, const char *script)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    struct cu_sandbox *s = NULL;
    struct cu_err e = {0};
    int rc;

    f->o.argv = argv;
    rc = cu_sandbox_start(&f->o, &s, &e);
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

    f->o.output_limit = 256u << 20;
    f->o.disk_limit = 4u << 20;
    run_sh(f, "i=0; while [ $i -lt 64 ]; do head -c 1048576 /dev/zero > /work/f$i; "
              "i=$((i+1)); done; sleep 30");
    assert_int_equal(f->r.status, CU_SB_FAILED);
    assert_string_equal(f->r.reason, "disk limit");
}

/* Under the disk limit the task is untouched. */
static void test_disk_within_limit(void **state)
{
    struct fixture *f = *state;

    f->o.disk_limit = 8u << 20;
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
    f->o.cgroup_parent = &f->parent;
    f->o.cgroup_name = "mem-task";
    f->o.memory_limit = 64u << 20;
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
    f->o.cgroup_parent = &f->parent;
    f->o.memory_limit = 128u << 20;
    run_sh(f, "head -c 4000000 /dev/zero | awk '{ n++ } END { exit 0 }'");
    assert_int_equal(f->r.status, CU_SB_OK);
    assert_true(f->r.memory_peak > 0);
}

static void test_process_limit(void **state)
{
    struct fixture *f = *state;

    if (f->parent.version == CU_CG_NONE || !f->parent.dir[CU_CG_PIDS][0])
        skip();
    f->o.cgroup_parent = &f->parent;
    f->o.nproc_limit = 16;
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
