/* latency.c - one trivial task, submit -> result downloaded, with one idle
 * provider already connected and long-polling. The exchange and the
 * provider are the real binaries (their own processes, real sandbox); the
 * requester side runs in this process through client/api.h (no process
 * spawn per step): POST /v1/jobs, then GET /v1/jobs/{id} until the job is
 * done, then saves the task's output (verified; inline in the job answer,
 * ?inline=N, as `cumulus results` gets it, else GET /v1/blobs). By default
 * the job GET is the long-poll (?wait_ms&after=VERSION: answered as soon as
 * the job changes, as `cumulus wait` does); --poll-ms MS > 0 polls a plain GET
 * every MS ms instead (the bench's method before the long-poll existed).
 *
 *   build/bench/latency [--runs N] [--poll-ms MS] [--gap-ms MS]
 *     (default 30 runs, 0: long-poll, 0: the next submit right after a download)
 *
 * Runs follow one another at once by default, so each new job's task
 * shares the machine with what the last one left running (the provider
 * starting the next spare sandbox: ~7 ms of CPU here). --gap-ms MS
 * waits MS ms before each submit (outside the timing), so the provider
 * is idle when the job comes, as a lone user's job finds it.
 *
 * The task is `sh -c 'echo ok > /out/r.txt'` (one tiny output file). The
 * JSON also splits the median by the exchange's own timestamps:
 * submit->leased, leased->reported (the provider: fetch, sandbox, upload,
 * report) and reported->downloaded (seen by the poll + download), and
 * says where the CPU went over the timed runs, per run (from the kernel's
 * counters, in clock ticks: ~10 ms each, so over a few hundred ms of runs
 * a figure is good to a few tenths of a ms): the exchange, the provider
 * with the sandboxes it ended (bwrap, the supervisor, the tasks), this
 * requester, the whole machine; and how busy the machine was. When runs
 * follow one another the machine is nearly saturated, and a run's
 * latency is then about the CPU per run over the cores. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "benchlib.h"

#include "base/banned.h"

#define MAX_RUNS 10000

static const json_t *first_replica(const json_t *job, const json_t **task)
{
    *task = json_array_get(json_object_get(job, "tasks"), 0);
    return json_array_get(json_object_get(*task, "replicas"), 0);
}

/* One submit -> download; fills the phase durations (ms). */
static double one(struct cu_api *api, const struct cu_spec *spec, const char *dir,
                  double poll_ms, double phases[3])
{
    char job[CU_API_JOB_ID_MAX + 1], dest[PATH_MAX], version[CU_API_JOB_VERSION_MAX + 1] = "";
    struct cu_err e = {0};
    json_t *j = NULL;
    const json_t *task, *rep, *out;
    struct cu_hash h;
    int64_t submit_wall = cu_now_ms();
    double t0 = bl_now_ms(), t1, deadline = t0 + 30000;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(poll_ms * 1e6)};

    if (cu_api_submit(api, spec, job, sizeof job, NULL, &e) != 0)
        bl_die("submit: %s", e.msg);
    for (;;) {
        const char *state, *v;
        /* --poll-ms 0: the job long-poll (answered when the job changes);
         * else a plain GET every poll_ms. */
        if (cu_api_job_follow(api, job, poll_ms > 0 ? NULL : version, 2000,
                              CU_API_JOB_INLINE_MAX, &j, &e) != 0)
            bl_die("GET job: %s", e.msg);
        state = json_string_value(json_object_get(j, "state"));
        if (state && strcmp(state, "running") != 0) {
            if (strcmp(state, "done") != 0)
                bl_die("job %s ended %s", job, state);
            break;
        }
        v = json_string_value(json_object_get(j, "version"));
        if (poll_ms == 0 && (!v || cu_snprintf(version, sizeof version, "%s", v) != 0))
            bl_die("GET job: no usable \"version\" in the answer (an older exchange?)");
        json_decref(j);
        j = NULL;
        if (bl_now_ms() > deadline)
            bl_die("job %s not done after 30 s", job);
        if (poll_ms > 0)
            nanosleep(&ts, NULL);
    }
    rep = first_replica(j, &task);
    out = json_array_get(json_object_get(json_object_get(task, "result"), "outputs"), 0);
    if (!out || cu_hash_from_hex(json_string_value(json_object_get(out, "hash")), &h) != 0)
        bl_die("job %s: no output in the result", job);
    cu_snprintf(dest, sizeof dest, "%s/r.txt", dir);
    /* As `cumulus results` saves it: inline when the answer carries it. */
    if (cu_api_output_save(api, out, dest, &e) != 0)
        bl_die("download: %s", e.msg);
    t1 = bl_now_ms();
    unlink(dest);
    {
        double leased = (double)json_integer_value(json_object_get(rep, "leased_ms"));
        double reported = (double)json_integer_value(json_object_get(rep, "reported_ms"));
        phases[0] = leased - (double)submit_wall;
        phases[1] = reported - leased;
        phases[2] = (t1 - t0) - (reported - (double)submit_wall);
    }
    json_decref(j);
    return t1 - t0;
}

/* CPU seconds so far: [0] the exchange, [1] the provider with the
 * sandboxes it has ended, [2] this process, [3] the machine busy, [4] the
 * machine in all. */
static void cpu_now(pid_t ex, pid_t pv, double out[5])
{
    struct rusage ru;

    out[0] = bl_proc_cpu_tree_s(ex);
    out[1] = bl_proc_cpu_tree_s(pv);
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        bl_die("getrusage failed");
    out[2] = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    bl_machine_cpu_s(&out[3], &out[4]);
}

static double per_run_ms(const double *a, const double *b, int k, uint64_t runs)
{
    return (b[k] - a[k]) * 1000.0 / (double)runs;
}

int main(int argc, char **argv)
{
    uint64_t runs = bl_opt_u64(argc, argv, "--runs", 30);
    double poll_ms = (double)bl_opt_u64(argc, argv, "--poll-ms", 0);
    uint64_t gap_ms = bl_opt_u64(argc, argv, "--gap-ms", 0);
    struct timespec gap = {.tv_sec = (time_t)(gap_ms / 1000),
                           .tv_nsec = (long)(gap_ms % 1000) * 1000000L};
    static const char *const cmd[] = {"sh", "-c", "echo ok > /out/r.txt", NULL};
    char dir[PATH_MAX], url[512];
    struct cu_identity id;
    struct cu_api api;
    struct cu_spec spec;
    struct bl_stats s, p0, p1, p2;
    double *v, *ph[3], cpu0[5], cpu1[5];
    pid_t ex, pv;

    bl_init("latency");
    if (runs < 1 || runs > MAX_RUNS)
        bl_die("--runs must be between 1 and %d", MAX_RUNS);
    if (gap_ms > 60000)
        bl_die("--gap-ms must be at most 60000");
    v = calloc(runs, sizeof *v);
    for (int k = 0; k < 3; k++)
        ph[k] = calloc(runs, sizeof *ph[k]);
    if (!v || !ph[0] || !ph[1] || !ph[2])
        bl_die("out of memory");
    bl_tmpdir(dir, sizeof dir);
    ex = bl_start_exchange(dir, NULL, url, sizeof url);
    pv = bl_start_provider(dir, "provider", url, 1);
    bl_api_open(&api, &id, url);
    bl_spec(&spec, "latency", cmd, 1, NULL, NULL, "r.txt");

    for (int w = 0; w < 2; w++) { /* warm-up: caches, first connection */
        double tmp[3];
        one(&api, &spec, dir, poll_ms, tmp);
    }
    cpu_now(ex, pv, cpu0);
    for (uint64_t i = 0; i < runs; i++) {
        double phases[3];
        if (gap_ms)
            nanosleep(&gap, NULL);
        v[i] = one(&api, &spec, dir, poll_ms, phases);
        for (int k = 0; k < 3; k++)
            ph[k][i] = phases[k];
    }
    cpu_now(ex, pv, cpu1);
    cu_spec_release(&spec);
    cu_api_close(&api);
    bl_stop(pv);
    bl_stop(ex);
    bl_stats(v, runs, &s);
    bl_stats(ph[0], runs, &p0);
    bl_stats(ph[1], runs, &p1);
    bl_stats(ph[2], runs, &p2);
    printf("{\"bench\":\"latency\",\"runs\":%llu,\"poll_ms\":%.0f,\"gap_ms\":%llu,"
           "\"median_ms\":%.2f,\"p90_ms\":%.2f,\"min_ms\":%.2f,\"max_ms\":%.2f,"
           "\"submit_to_leased_ms\":%.1f,\"leased_to_reported_ms\":%.1f,"
           "\"reported_to_downloaded_ms\":%.1f,\"cpu_ms_per_run\":{\"exchange\":%.2f,"
           "\"provider\":%.2f,\"requester\":%.2f,\"machine\":%.2f},\"machine_busy_pct\":%.0f}\n",
           (unsigned long long)runs, poll_ms, (unsigned long long)gap_ms, s.median, s.p90, s.min,
           s.max, p0.median, p1.median, p2.median, per_run_ms(cpu0, cpu1, 0, runs),
           per_run_ms(cpu0, cpu1, 1, runs), per_run_ms(cpu0, cpu1, 2, runs),
           per_run_ms(cpu0, cpu1, 3, runs),
           cpu1[4] > cpu0[4] ? 100.0 * (cpu1[3] - cpu0[3]) / (cpu1[4] - cpu0[4]) : 0.0);
    fprintf(stderr,
            "latency: submit -> result downloaded %.1f ms median (p90 %.1f, min %.1f) over %llu "
            "runs; median phases: to lease %.0f, provider %.0f, to download %.0f ms; CPU per "
            "run %.1f ms (machine %.0f%% busy)\n",
            s.median, s.p90, s.min, (unsigned long long)runs, p0.median, p1.median, p2.median,
            per_run_ms(cpu0, cpu1, 3, runs),
            cpu1[4] > cpu0[4] ? 100.0 * (cpu1[3] - cpu0[3]) / (cpu1[4] - cpu0[4]) : 0.0);
    for (int k = 0; k < 3; k++)
        free(ph[k]);
    free(v);
    return 0;
}
