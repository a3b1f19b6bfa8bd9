/* e2e_cpu.c - N CPU-bound tasks of about --task-ms of CPU each through a
 * real exchange and one real provider with 2 slots (sandbox included),
 * against `xargs -P2` running the same binary with the same argument on
 * the same number of tasks (each under setsid, like the sandbox's new
 * session), in the same run, alternating, for several rounds.
 *
 *   build/bench/e2e_cpu [--tasks N] [--task-ms MS] [--rounds R] [--poll-ms MS]
 *                       (default 40 tasks, 500 ms, 3 rounds, 0)
 *
 * --poll-ms 0 (the default) waits for the job with the job long-poll, as
 * `cumulus wait` does; MS > 0 polls GET /v1/jobs every MS ms (the method
 * before the long-poll: 10 ms, a signed request and a job list on the
 * exchange 100 times a second, CPU taken from the tasks that xargs does not
 * pay).
 *
 * The task binary is build/bench/tasks/spin (uploaded as the job's input,
 * run as /in/spin ITERATIONS); ITERATIONS is calibrated here first so one
 * run takes --task-ms of CPU. The Cumulus time runs from before the input
 * upload to the answer that shows the job done. ratio = median over rounds of
 * cumulus wall / xargs wall of the same round. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "benchlib.h"

#include "base/banned.h"

#define MAX_ROUNDS 32

/* CPU ms of one local run of spin with n iterations. */
static double cpu_ms_of(const char *spin, unsigned long long n)
{
    char arg[32];
    struct rusage ru;
    int st;
    pid_t pid;

    cu_snprintf(arg, sizeof arg, "%llu", n);
    /* Not registered with benchlib: it is reaped right here. */
    pid = fork();
    if (pid < 0)
        bl_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, STDOUT_FILENO);
        execl(spin, "spin", arg, (char *)NULL);
        _exit(127);
    }
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bl_die("%s failed", spin);
    return (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
           (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
}

int main(int argc, char **argv)
{
    uint64_t tasks = bl_opt_u64(argc, argv, "--tasks", 40);
    uint64_t task_ms = bl_opt_u64(argc, argv, "--task-ms", 500);
    uint64_t rounds = bl_opt_u64(argc, argv, "--rounds", 3);
    double poll_ms = (double)bl_opt_u64(argc, argv, "--poll-ms", 0);
    double cu[MAX_ROUNDS], xa[MAX_ROUNDS], exm[MAX_ROUNDS], ratio[MAX_ROUNDS];
    char dir[PATH_MAX], url[512], script[PATH_MAX + 256], spin[PATH_MAX], iters[32];
    struct cu_identity id;
    struct cu_api api;
    struct cu_spec spec;
    struct bl_stats sc, sx, se, sr;
    unsigned long long n = 20000000ULL;
    double best = 1e30;
    pid_t ex, pv;

    bl_init("e2e_cpu");
    if (tasks < 1 || tasks > CU_SPEC_MAX_TASKS || rounds < 1 || rounds > MAX_ROUNDS ||
        task_ms < 1 || task_ms > 60000)
        bl_die("--tasks must be 1..%d, --rounds 1..%d, --task-ms 1..60000", CU_SPEC_MAX_TASKS,
               MAX_ROUNDS);
    if (!realpath("build/bench/tasks/spin", spin))
        bl_die("build/bench/tasks/spin is missing (run 'make bench')");
    /* Calibrate: the fastest of 3 runs (least disturbed by neighbours). */
    for (int i = 0; i < 3; i++) {
        double ms = cpu_ms_of(spin, n);
        if (ms < best)
            best = ms;
    }
    n = (unsigned long long)((double)n * (double)task_ms / (best > 0.1 ? best : 0.1));
    cu_snprintf(iters, sizeof iters, "%llu", n);

    bl_tmpdir(dir, sizeof dir);
    ex = bl_start_exchange(dir, NULL, url, sizeof url);
    pv = bl_start_provider(dir, "provider", url, 2);
    bl_api_open(&api, &id, url);
    const char *cmd[] = {"/in/spin", iters, NULL};
    bl_spec(&spec, "cpu", cmd, (uint32_t)tasks, "spin", spin, NULL);
    /* Each task in its own session, as the sandbox starts it (bwrap
     * --new-session): with sched_autogroup_enabled=1 a session is a
     * scheduling group, and on a shared machine tasks in their own groups
     * get a larger share against other load than tasks sharing xargs'
     * group. Without setsid the baseline would be handicapped. */
    cu_snprintf(script, sizeof script,
                "yes %s | head -n %llu | xargs -P2 -n1 setsid %s >/dev/null", iters,
                (unsigned long long)tasks, spin);

    for (uint64_t r = 0; r < rounds; r++) {
        xa[r] = bl_time_sh(script);
        cu[r] = bl_time_job(&api, &spec, poll_ms, 600000, &exm[r]);
        ratio[r] = cu[r] / xa[r];
        fprintf(stderr, "e2e_cpu: round %llu: cumulus %.0f ms, xargs -P2 %.0f ms, ratio %.3f\n",
                (unsigned long long)r + 1, cu[r], xa[r], ratio[r]);
    }
    cu_spec_release(&spec);
    cu_api_close(&api);
    bl_stop(pv);
    bl_stop(ex);
    bl_stats(cu, rounds, &sc);
    bl_stats(xa, rounds, &sx);
    bl_stats(exm, rounds, &se);
    bl_stats(ratio, rounds, &sr);
    printf("{\"bench\":\"e2e_cpu\",\"tasks\":%llu,\"task_cpu_ms\":%llu,\"iterations\":%llu,"
           "\"rounds\":%llu,\"wall_s\":%.3f,\"exchange_makespan_s\":%.3f,\"xargs_wall_s\":%.3f,"
           "\"ratio\":%.4f,\"ratio_min\":%.4f,\"ratio_max\":%.4f}\n",
           (unsigned long long)tasks, (unsigned long long)task_ms, n,
           (unsigned long long)rounds, sc.median / 1e3, se.median / 1e3, sx.median / 1e3,
           sr.median, sr.min, sr.max);
    fprintf(stderr,
            "e2e_cpu: %llu tasks of %llu ms CPU: cumulus %.2f s, xargs -P2 %.2f s, ratio %.3f "
            "(median of %llu rounds)\n",
            (unsigned long long)tasks, (unsigned long long)task_ms, sc.median / 1e3,
            sx.median / 1e3, sr.median, (unsigned long long)rounds);
    return 0;
}
