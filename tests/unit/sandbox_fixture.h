/* sandbox_fixture.h - a temporary task directory layout for the unit tests
 * that run real sandboxed tasks (tests/unit/sandbox_*_test.c): base (0711,
 * so uid 65534 reaches below), work/, out/, stdout, stderr, and sandbox
 * options pointing at them with a generous time limit. Header-only. */
#ifndef CU_TESTS_SANDBOX_FIXTURE_H
#define CU_TESTS_SANDBOX_FIXTURE_H

#include <stdlib.h>
#include <sys/stat.h>

#include "base/util.h"
#include "fabric/sandbox.h"

struct sbfix {
    char base[64];
    char work[CU_PATH_MAX], out[CU_PATH_MAX], so[CU_PATH_MAX], se[CU_PATH_MAX];
    struct cu_sandbox_opts o;
};

/* Creates the directories under /tmp/PREFIX-XXXXXX and fills x->o.
 * 0, or -1 (x->base "" when nothing was created). */
static __attribute__((unused)) int sbfix_init(struct sbfix *x, const char *prefix)
{
    struct cu_sandbox_opts init = CU_SANDBOX_OPTS_INIT;

    if (cu_snprintf(x->base, sizeof x->base, "/tmp/%s-XXXXXX", prefix) != 0 || !mkdtemp(x->base)) {
        x->base[0] = '\0';
        return -1;
    }
    chmod(x->base, 0711); /* uid 65534 must reach the directories below */
    if (cu_path_join(x->work, sizeof x->work, x->base, "work") ||
        cu_path_join(x->out, sizeof x->out, x->base, "out") ||
        cu_path_join(x->so, sizeof x->so, x->base, "stdout") ||
        cu_path_join(x->se, sizeof x->se, x->base, "stderr") || mkdir(x->work, 0755) ||
        mkdir(x->out, 0755))
        return -1;
    x->o = init;
    x->o.work_dir = x->work;
    x->o.out_dir = x->out;
    x->o.stdout_path = x->so;
    x->o.stderr_path = x->se;
    x->o.time_limit_ms = 60000; /* generous: limits, not the clock, end these tasks */
    return 0;
}

/* Removes the directories. */
static __attribute__((unused)) void sbfix_release(struct sbfix *x)
{
    if (x->base[0])
        cu_rm_rf(x->base);
}

#endif
