/* sandbox.c - start -> exit of /bin/true in the real task sandbox
 * (cu_sandbox_start/cu_sandbox_wait: bwrap, namespaces, seccomp, rlimits,
 * uid 65534) against a plain fork/exec/waitpid of /bin/true, interleaved
 * in one run so both see the same machine load.
 *
 *   build/bench/sandbox [--runs N] [--cgroup 1]    (default 200, no cgroup)
 *
 * With --cgroup 1 each sandboxed task also gets its own cgroup (created,
 * joined, read and removed), under a parent made below this process's own
 * group, as the provider does; "cgroup":true in the JSON then.
 *
 * A third series runs the same task in a warm sandbox (fabric/warm.h:
 * one bwrap kept for consecutive tasks of one job, as the provider does by
 * default): the task's directories moved in, fork+exec by the supervisor
 * inside, leftovers killed, files moved back.
 *
 * JSON: {"bench":"sandbox","runs":N,"sandbox_median_ms":..,"sandbox_p90_ms":..,
 *        "plain_median_ms":..,"plain_p90_ms":..,"overhead_ms":..,
 *        "warm_median_ms":..,"warm_p90_ms":..,"warm_overhead_ms":..} where
 * overhead_ms = sandbox median - plain median (a fresh bwrap per task) and
 * warm_overhead_ms = warm median - plain median. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "benchlib.h"
#include "fabric/cgroup.h"
#include "fabric/sandbox.h"
#include "fabric/warm.h"

#include "base/banned.h"

static struct cu_cgroup g_parent; /* version NONE: no cgroup */

/* The task's directories and files under DIR/SUB, made fresh (untimed:
 * the provider makes them before the start), and o pointed at them. */
struct task_paths {
    char top[PATH_MAX], work[PATH_MAX], out[PATH_MAX], in[PATH_MAX], so[PATH_MAX], se[PATH_MAX];
};

static void task_setup(const char *dir, const char *sub, struct task_paths *p,
                       struct cu_sandbox_opts *o)
{
    static const char *const argv[] = {"true", NULL};

    if (cu_snprintf(p->top, sizeof p->top, "%s/%s", dir, sub) ||
        cu_snprintf(p->work, sizeof p->work, "%s/work", p->top) ||
        cu_snprintf(p->out, sizeof p->out, "%s/out", p->top) ||
        cu_snprintf(p->in, sizeof p->in, "%s/in", p->top) ||
        cu_snprintf(p->so, sizeof p->so, "%s/stdout", p->top) ||
        cu_snprintf(p->se, sizeof p->se, "%s/stderr", p->top))
        bl_die("path too long");
    if (cu_mkdir_p(p->work, 0755) || cu_mkdir_p(p->out, 0755) || cu_mkdir_p(p->in, 0755))
        bl_die("cannot create task directories under %s: %s", dir, strerror(errno));
    o->argv = argv;
    o->work_dir = p->work;
    o->out_dir = p->out;
    o->in_dir = p->in;
    o->stdout_path = p->so;
    o->stderr_path = p->se;
    o->time_limit_ms = 10000;
    o->memory_limit = 256ULL << 20;
}

/* One /bin/true, start -> exit: in a fresh sandbox when w is NULL, else in
 * the warm sandbox w (started, untimed, before the first). */
static double run_task(struct cu_warm *w, const char *dir)
{
    struct cu_sandbox_opts o = CU_SANDBOX_OPTS_INIT;
    struct cu_sandbox_result res;
    struct cu_sandbox *sb = NULL;
    struct cu_err e = {0};
    struct task_paths p;
    double t0, t1;
    int rc;

    task_setup(dir, w ? "w" : "t", &p, &o);
    if (!w && g_parent.version != CU_CG_NONE)
        o.cgroup_parent = &g_parent;
    t0 = bl_now_ms();
    rc = w ? cu_warm_run(w, &o, &sb, &e) : cu_sandbox_start(&o, &sb, &e);
    if (rc != 0)
        bl_die("%s: %s", w ? "cu_warm_run" : "cu_sandbox_start", e.msg);
    while (cu_sandbox_wait(sb, -1) == -CU_EAGAIN)
        ;
    t1 = bl_now_ms();
    cu_sandbox_get_result(sb, &res);
    if (res.status != CU_SB_OK)
        bl_die("%s true ended %s: %s", w ? "warm" : "sandboxed",
               cu_sandbox_status_name(res.status), res.reason);
    cu_sandbox_free(sb);
    cu_rm_rf(p.top);
    return t1 - t0;
}

static struct cu_warm *warm_open(const char *dir)
{
    static const char *const argv[] = {"true", NULL};
    struct cu_sandbox_opts o = CU_SANDBOX_OPTS_INIT;
    struct cu_warm *w = NULL;
    struct cu_err e = {0};
    char base[PATH_MAX], in[PATH_MAX];

    if (cu_snprintf(base, sizeof base, "%s/warm", dir) ||
        cu_snprintf(in, sizeof in, "%s/warm-in", dir))
        bl_die("path too long");
    if (cu_mkdir_p(in, 0755))
        bl_die("cannot create %s: %s", in, strerror(errno));
    o.argv = argv;
    o.in_dir = in; /* the sandbox has an /in */
    o.time_limit_ms = 10000;
    o.memory_limit = 256ULL << 20;
    if (cu_warm_start(&o, base, "bench-job", &w, &e) != 0)
        bl_die("cu_warm_start: %s", e.msg);
    return w;
}

static double run_plain(void)
{
    double t0 = bl_now_ms(), t1;
    int st;
    pid_t pid = fork();

    if (pid < 0)
        bl_die("fork: %s", strerror(errno));
    if (pid == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    t1 = bl_now_ms();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bl_die("/bin/true failed");
    return t1 - t0;
}

int main(int argc, char **argv)
{
    uint64_t runs = bl_opt_u64(argc, argv, "--runs", 200);
    struct cu_err e = {0};
    struct bl_stats sb, pl, wm;
    struct cu_warm *w;
    char dir[PATH_MAX];
    double *vs, *vp, *vw;

    bl_init("sandbox");
    if (runs < 1 || runs > 1000000)
        bl_die("--runs must be between 1 and 1000000");
    if (cu_sandbox_probe(&e) != 0)
        bl_die("no sandbox here: %s", e.msg);
    if (bl_opt_u64(argc, argv, "--cgroup", 0)) {
        struct cu_cgroup self;
        char name[64];
        cu_snprintf(name, sizeof name, "cu-bench-%d", (int)getpid());
        if (cu_cgroup_self(&self, &e) != 0 ||
            cu_cgroup_create(&self, name, &(struct cu_cgroup_limits){0}, &g_parent, &e) != 0)
            bl_die("--cgroup: %s", e.msg);
    }
    bl_tmpdir(dir, sizeof dir);
    vs = calloc(runs, sizeof *vs);
    vp = calloc(runs, sizeof *vp);
    vw = calloc(runs, sizeof *vw);
    if (!vs || !vp || !vw)
        bl_die("out of memory");
    run_task(NULL, dir); /* warm-up: page cache, bwrap and libseccomp loaded */
    run_plain();
    w = warm_open(dir);
    run_task(w, dir);
    for (uint64_t i = 0; i < runs; i++) {
        vs[i] = run_task(NULL, dir);
        vp[i] = run_plain();
        vw[i] = run_task(w, dir);
    }
    cu_warm_free(w);
    bl_stats(vs, runs, &sb);
    bl_stats(vp, runs, &pl);
    bl_stats(vw, runs, &wm);
    printf("{\"bench\":\"sandbox\",\"runs\":%llu,\"sandbox_median_ms\":%.3f,"
           "\"sandbox_p90_ms\":%.3f,\"sandbox_min_ms\":%.3f,\"plain_median_ms\":%.3f,"
           "\"plain_p90_ms\":%.3f,\"plain_min_ms\":%.3f,\"overhead_ms\":%.3f,"
           "\"warm_median_ms\":%.3f,\"warm_p90_ms\":%.3f,\"warm_min_ms\":%.3f,"
           "\"warm_overhead_ms\":%.3f,\"cgroup\":%s}\n",
           (unsigned long long)runs, sb.median, sb.p90, sb.min, pl.median, pl.p90, pl.min,
           sb.median - pl.median, wm.median, wm.p90, wm.min, wm.median - pl.median,
           g_parent.version != CU_CG_NONE ? "true" : "false");
    fprintf(stderr,
            "sandbox: /bin/true in the sandbox %.2f ms median (p90 %.2f), plain fork/exec %.2f "
            "ms (p90 %.2f): overhead %.2f ms per task start; warm sandbox %.2f ms (overhead "
            "%.2f), %llu runs\n",
            sb.median, sb.p90, pl.median, pl.p90, sb.median - pl.median, wm.median,
            wm.median - pl.median, (unsigned long long)runs);
    free(vw);
    free(vs);
    free(vp);
    if (g_parent.version != CU_CG_NONE)
        cu_cgroup_destroy(&g_parent);
    return 0;
}
