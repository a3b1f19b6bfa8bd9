/* dispatch.c - many simulated providers in one process against one real
 * exchange (its own process): each thread has its own identity and its own
 * signed keep-alive HTTP client, says hello, then loops claiming a replica
 * (POST /v1/claims) and reporting it done with no outputs (POST
 * /v1/replicas/{id}/report, status ok, Merkle root of zero files). No
 * sandbox, no blobs: this measures the exchange's dispatch path alone.
 *
 *   build/bench/dispatch [--providers P] [--tasks N] [--seconds S]
 *                        (default 16 providers, 2000 tasks, 30 s cap)
 *
 * One job of N trivial tasks (replication 1) is queued before the clock
 * starts. replicas_per_s = replicas reported accepted / elapsed (until all
 * are done or S seconds pass); claim latency counts claims answered with
 * a lease (work was waiting), report latency every report. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "benchlib.h"
#include "crypto/merkle.h"
#include "net/http_client.h"

#include "base/banned.h"

#define MAX_PROVIDERS 256

struct sim {
    pthread_t t;
    const char *url;
    struct cu_identity id;
    double *claim_ms, *report_ms;
    size_t nclaim, nreport, cap;
    unsigned empty;   /* claims answered 204 */
    char err[512];
};

static pthread_barrier_t start_barrier;
static atomic_ullong completed;
static atomic_int stop_now;
static unsigned long long total_tasks;
static char root0[CU_HASH_HEX_LEN + 1];
static double deadline_ms;

static void *sim_main(void *arg)
{
    struct sim *s = arg;
    struct cu_http_client *c = cu_http_client_new(s->url, &s->id);
    struct cu_http_result r;
    json_t *claim, *report;
    char path[64], desc[700];
    bool ready = false;

    cu_http_result_init(&r);
    claim = json_pack("{s:i,s:{s:i,s:I,s:i}}", "wait_ms", 500, "free", "cores", 1, "memory",
                      (json_int_t)(4LL << 30), "gpus", 0);
    report = json_pack("{s:s,s:i,s:n,s:i,s:i,s:[],s:s}", "status", "ok", "exit_code", 0,
                       "reason", "cpu_ms", 0, "wall_ms", 0, "outputs", "merkle_root", root0);
    json_t *hello = json_pack("{s:i,s:i,s:I,s:i,s:s}", "slots", 1, "cores", 1, "memory",
                              (json_int_t)(4LL << 30), "gpus", 0, "version", "bench");
    if (!c || !claim || !report || !hello) {
        cu_snprintf(s->err, sizeof s->err, "out of memory");
    } else if (cu_http_request_json(c, "POST", "/v1/providers/hello", hello, 10000, &r) != 0 ||
               r.status != 200) {
        cu_snprintf(s->err, sizeof s->err, "hello: %s",
                    cu_http_result_describe(&r, desc, sizeof desc));
    } else {
        ready = true;
    }
    json_decref(hello);
    pthread_barrier_wait(&start_barrier);
    while (ready && !atomic_load(&stop_now)) {
        double t0 = bl_now_ms(), t1;
        if (cu_http_request_json(c, "POST", "/v1/claims", claim, 10000, &r) != 0 ||
            (r.status != 200 && r.status != 204)) {
            cu_snprintf(s->err, sizeof s->err, "claim: %s",
                        cu_http_result_describe(&r, desc, sizeof desc));
            break;
        }
        t1 = bl_now_ms();
        if (t1 > deadline_ms)
            break;
        if (r.status == 204) {
            s->empty++;
            if (atomic_load(&completed) >= total_tasks)
                break;
            continue;
        }
        json_int_t rid = json_integer_value(
            json_object_get(json_object_get(r.json, "lease"), "replica"));
        if (s->nclaim < s->cap)
            s->claim_ms[s->nclaim++] = t1 - t0;
        cu_snprintf(path, sizeof path, "/v1/replicas/%lld/report", (long long)rid);
        t0 = bl_now_ms();
        if (cu_http_request_json(c, "POST", path, report, 10000, &r) != 0 || r.status != 200) {
            cu_snprintf(s->err, sizeof s->err, "report %lld: %s", (long long)rid,
                        cu_http_result_describe(&r, desc, sizeof desc));
            break;
        }
        t1 = bl_now_ms();
        if (s->nreport < s->cap)
            s->report_ms[s->nreport++] = t1 - t0;
        if (atomic_fetch_add(&completed, 1) + 1 >= total_tasks)
            atomic_store(&stop_now, 1);
    }
    json_decref(claim);
    json_decref(report);
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t np = bl_opt_u64(argc, argv, "--providers", 16);
    uint64_t tasks = bl_opt_u64(argc, argv, "--tasks", 2000);
    uint64_t secs = bl_opt_u64(argc, argv, "--seconds", 30);
    static const char *const cmd[] = {"true", NULL};
    static struct sim sims[MAX_PROVIDERS];
    char dir[PATH_MAX], url[512], job[CU_API_JOB_ID_MAX + 1];
    struct cu_identity rid;
    struct cu_api api;
    struct cu_spec spec;
    struct cu_err e = {0};
    struct cu_hash h0;
    struct bl_stats sc, sr;
    double *all_c, *all_r, t0, t1, submit_ms;
    size_t nc = 0, nr = 0;
    unsigned empty = 0;
    pid_t ex;

    bl_init("dispatch");
    if (np < 1 || np > MAX_PROVIDERS || tasks < 1 || tasks > CU_SPEC_MAX_TASKS || secs < 1)
        bl_die("--providers 1..%d, --tasks 1..%d, --seconds >= 1", MAX_PROVIDERS,
               CU_SPEC_MAX_TASKS);
    if (cu_merkle_root(NULL, 0, &h0) != 0)
        bl_die("merkle root of nothing failed");
    cu_hash_to_hex(&h0, root0);
    total_tasks = tasks;

    bl_tmpdir(dir, sizeof dir);
    ex = bl_start_exchange(dir, NULL, url, sizeof url);
    bl_api_open(&api, &rid, url);
    bl_spec(&spec, "dispatch", cmd, (uint32_t)tasks, NULL, NULL, NULL);
    t0 = bl_now_ms();
    if (cu_api_submit(&api, &spec, job, sizeof job, NULL, &e) != 0)
        bl_die("submit: %s", e.msg);
    submit_ms = bl_now_ms() - t0;

    if (pthread_barrier_init(&start_barrier, NULL, (unsigned)np + 1) != 0)
        bl_die("barrier");
    deadline_ms = 1e300;
    for (uint64_t i = 0; i < np; i++) {
        struct sim *s = &sims[i];
        s->url = url;
        s->cap = tasks;
        s->claim_ms = calloc(tasks, sizeof *s->claim_ms);
        s->report_ms = calloc(tasks, sizeof *s->report_ms);
        if (!s->claim_ms || !s->report_ms || cu_identity_generate(&s->id) != 0)
            bl_die("out of memory");
        if (pthread_create(&s->t, NULL, sim_main, s) != 0)
            bl_die("cannot start thread %llu", (unsigned long long)i);
    }
    pthread_barrier_wait(&start_barrier);
    t0 = bl_now_ms();
    deadline_ms = t0 + (double)secs * 1e3;
    for (uint64_t i = 0; i < np; i++)
        pthread_join(sims[i].t, NULL);
    t1 = bl_now_ms();

    all_c = calloc(tasks, sizeof *all_c);
    all_r = calloc(tasks, sizeof *all_r);
    if (!all_c || !all_r)
        bl_die("out of memory");
    for (uint64_t i = 0; i < np; i++) {
        struct sim *s = &sims[i];
        if (s->err[0])
            fprintf(stderr, "dispatch: provider %llu: %s\n", (unsigned long long)i, s->err);
        for (size_t k = 0; k < s->nclaim && nc < tasks; k++)
            all_c[nc++] = s->claim_ms[k];
        for (size_t k = 0; k < s->nreport && nr < tasks; k++)
            all_r[nr++] = s->report_ms[k];
        empty += s->empty;
        free(s->claim_ms);
        free(s->report_ms);
    }
    /* The exchange's own count of what finished. */
    unsigned long long done_ex = 0;
    json_t *list = NULL;
    if (cu_api_jobs(&api, &list, &e) == 0) {
        json_t *j0 = json_array_get(json_object_get(list, "jobs"), 0);
        done_ex = (unsigned long long)json_integer_value(
            json_object_get(json_object_get(j0, "counts"), "done"));
    }
    json_decref(list);
    cu_spec_release(&spec);
    cu_api_close(&api);
    bl_stop(ex);
    bl_stats(all_c, nc, &sc);
    bl_stats(all_r, nr, &sr);
    unsigned long long got = atomic_load(&completed);
    if (got == 0)
        bl_die("no replica completed");
    printf("{\"bench\":\"dispatch\",\"providers\":%llu,\"tasks\":%llu,\"completed\":%llu,"
           "\"exchange_done\":%llu,\"elapsed_s\":%.3f,\"replicas_per_s\":%.1f,"
           "\"claim_p50_ms\":%.2f,\"claim_p99_ms\":%.2f,\"claim_max_ms\":%.2f,"
           "\"report_p50_ms\":%.2f,\"report_p99_ms\":%.2f,\"empty_claims\":%u,"
           "\"submit_ms\":%.1f}\n",
           (unsigned long long)np, (unsigned long long)tasks, got, done_ex, (t1 - t0) / 1e3,
           (double)got * 1e3 / (t1 - t0), sc.median, sc.p99, sc.max, sr.median, sr.p99, empty,
           submit_ms);
    fprintf(stderr,
            "dispatch: %llu simulated providers: %.0f replicas/s (%llu in %.1f s), claim p50 "
            "%.1f ms p99 %.1f ms, report p50 %.1f ms p99 %.1f ms\n",
            (unsigned long long)np, (double)got * 1e3 / (t1 - t0), got, (t1 - t0) / 1e3,
            sc.median, sc.p99, sr.median, sr.p99);
    free(all_c);
    free(all_r);
    return 0;
}
