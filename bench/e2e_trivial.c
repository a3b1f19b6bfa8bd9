/* e2e_trivial.c - one job of N trivial tasks (`true`) through a real
 * exchange and one real provider with 2 slots (their own processes,
 * sandbox included), against `xargs -P2` running /bin/true N times, in the
 * same run, alternating, for several rounds.
 *
 *   build/bench/e2e_trivial [--tasks N] [--rounds R] [--poll-ms MS]
 *                           (default 1000 tasks, 3 rounds, 10 ms)
 *
 * The Cumulus time runs from submit to the poll (GET /v1/jobs every
 * --poll-ms) that sees the job done. Figures are medians over the rounds.
 * provider_cpu_us_per_task and exchange_cpu_us_per_task are each
 * process's own user + system CPU (/proc/PID/stat; the sandboxes and
 * tasks, its children, are not in it) over a round, per task. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "benchlib.h"

#include "base/banned.h"

#define MAX_ROUNDS 32

int main(int argc, char **argv)
{
    uint64_t tasks = bl_opt_u64(argc, argv, "--tasks", 1000);
    uint64_t rounds = bl_opt_u64(argc, argv, "--rounds", 3);
    double poll_ms = (double)bl_opt_u64(argc, argv, "--poll-ms", 10);
    static const char *const cmd[] = {"true", NULL};
    double cu[MAX_ROUNDS], xa[MAX_ROUNDS], exm[MAX_ROUNDS], ratio[MAX_ROUNDS];
    double pcpu[MAX_ROUNDS], xcpu[MAX_ROUNDS];
    char dir[PATH_MAX], url[512], script[256];
    struct cu_identity id;
    struct cu_api api;
    struct cu_spec spec;
    struct bl_stats sc, sx, se, sr, sp, sxc;
    pid_t ex, pv;

    bl_init("e2e_trivial");
    if (tasks < 1 || tasks > CU_SPEC_MAX_TASKS || rounds < 1 || rounds > MAX_ROUNDS)
        bl_die("--tasks must be 1..%d and --rounds 1..%d", CU_SPEC_MAX_TASKS, MAX_ROUNDS);
    bl_tmpdir(dir, sizeof dir);
    ex = bl_start_exchange(dir, NULL, url, sizeof url);
    pv = bl_start_provider(dir, "provider", url, 2);
    bl_api_open(&api, &id, url);
    bl_spec(&spec, "trivial", cmd, (uint32_t)tasks, NULL, NULL, NULL);
    cu_snprintf(script, sizeof script, "seq 1 %llu | xargs -P2 -n1 /bin/true",
                (unsigned long long)tasks);

    for (uint64_t r = 0; r < rounds; r++) {
        double p0, x0;
        xa[r] = bl_time_sh(script);
        p0 = 1e6 * bl_proc_cpu_s(pv);
        x0 = 1e6 * bl_proc_cpu_s(ex);
        cu[r] = bl_time_job(&api, &spec, poll_ms, 600000, &exm[r]);
        pcpu[r] = (1e6 * bl_proc_cpu_s(pv) - p0) / (double)tasks;
        xcpu[r] = (1e6 * bl_proc_cpu_s(ex) - x0) / (double)tasks;
        ratio[r] = cu[r] / xa[r];
        fprintf(stderr,
                "e2e_trivial: round %llu: cumulus %.0f ms, xargs -P2 %.0f ms; CPU per task: "
                "provider %.0f us, exchange %.0f us\n",
                (unsigned long long)r + 1, cu[r], xa[r], pcpu[r], xcpu[r]);
    }
    cu_spec_release(&spec);
    cu_api_close(&api);
    bl_stop(pv);
    bl_stop(ex);
    bl_stats(cu, rounds, &sc);
    bl_stats(xa, rounds, &sx);
    bl_stats(exm, rounds, &se);
    bl_stats(ratio, rounds, &sr);
    bl_stats(pcpu, rounds, &sp);
    bl_stats(xcpu, rounds, &sxc);
    printf("{\"bench\":\"e2e_trivial\",\"tasks\":%llu,\"rounds\":%llu,\"tasks_per_s\":%.1f,"
           "\"tasks_per_s_min\":%.1f,\"tasks_per_s_max\":%.1f,\"xargs_tasks_per_s\":%.1f,"
           "\"wall_s\":%.3f,\"exchange_makespan_s\":%.3f,\"xargs_wall_s\":%.3f,"
           "\"ratio\":%.3f,\"provider_cpu_us_per_task\":%.0f,\"exchange_cpu_us_per_task\":%.0f}\n",
           (unsigned long long)tasks, (unsigned long long)rounds,
           (double)tasks * 1e3 / sc.median, (double)tasks * 1e3 / sc.max,
           (double)tasks * 1e3 / sc.min, (double)tasks * 1e3 / sx.median, sc.median / 1e3,
           se.median / 1e3, sx.median / 1e3, sr.median, sp.median, sxc.median);
    fprintf(stderr,
            "e2e_trivial: %llu x true: cumulus %.0f tasks/s, xargs -P2 %.0f tasks/s (median of "
            "%llu rounds)\n",
            (unsigned long long)tasks, (double)tasks * 1e3 / sc.median,
            (double)tasks * 1e3 / sx.median, (unsigned long long)rounds);
    return 0;
}
