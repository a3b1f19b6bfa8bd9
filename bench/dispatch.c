/* dispatch.c - many simulated providers in one process against one real
 * exchange (its own process): each thread has its own identity and its own
 * signed keep-alive HTTP client, says hello, then loops claiming a replica
 * (POST /v1/claims) and reporting it done with no outputs (POST
 * /v1/replicas/{id}/report, status ok, Merkle root of zero files). No
 * sandbox, no blobs: this measures the exchange's dispatch path alone.
 *
 *   build/bench/dispatch [--providers P] [--tasks N] [--seconds S] [--batch B]
 *                        [--batch-reports 0|1] [--rounds R] [--verbose 0|1]
 *                        (default 16 providers, 2000 tasks, 30 s cap, B 16, 1, R 5, 0)
 *
 * Two rounds, each against a fresh exchange with one job of N trivial
 * tasks (replication 1) queued before the clock starts: first single
 * claims (no "max": one {"lease"} per request, as `cumulus provide`
 * claims), then batched claims ("max": B, free resources for B tasks:
 * {"leases":[...]}) whose leases are reported together in one POST
 * /v1/reports (--batch-reports 0: each on its own). --batch 0 runs the
 * single round alone. replicas_per_s = replicas reported accepted /
 * elapsed (until all are done or S seconds pass) of the batched round
 * (of the single round with --batch 0), replicas_per_s_single that of the
 * single round; claim latency counts claims answered with a lease (work
 * was waiting), report latency every report. The clock stops when the
 * report of the last replica is answered (elapsed_s); wall_s goes on until
 * every thread is back, which includes the claims still long-polling
 * (up to wait_ms 500) for work that will not come.
 *
 * The measured round (batched, or single with --batch 0) runs R times,
 * each against a fresh exchange: one round is ~0.4 s of work, and this
 * shared host's speed moves by a quarter from one minute to the next.
 * replicas_per_s is the median of the rounds' rates, with their min and
 * max beside it; the latency percentiles pool every round's claims and
 * reports (claim_p99_ms_max: the worst round's own p99). The single
 * reference round runs once. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
static unsigned batch; /* "max" of this round's claims; 0: single claims */
static bool batch_reports; /* the batched round reports through POST /v1/reports */
static atomic_ullong completed;
static atomic_int stop_now;
static _Atomic double done_ms; /* when the last replica was reported; 0 until then */
static unsigned long long total_tasks;
static char root0[CU_HASH_HEX_LEN + 1];
static double deadline_ms;
static bool verbose; /* --verbose 1: a summary line per round on stderr */

/* The report that completed the last replica was answered at t_ms: the
 * round's work is done. The other threads may still sit in a long-poll
 * claim (wait_ms 500) that the exchange answers 204 only when it times
 * out; that wait is no dispatch work, so the clock stops here. */
static void all_done(double t_ms)
{
    double zero = 0;

    atomic_compare_exchange_strong(&done_ms, &zero, t_ms);
    atomic_store(&stop_now, 1);
}

static void *sim_main(void *arg)
{
    struct sim *s = arg;
    struct cu_http_client *c = cu_http_client_new(s->url, &s->id);
    struct cu_http_result r;
    json_t *claim, *report;
    char path[64], desc[700];
    bool ready = false;

    cu_http_result_init(&r);
    if (batch)
        claim = json_pack("{s:i,s:i,s:{s:i,s:I,s:i}}", "max", (int)batch, "wait_ms", 500, "free",
                          "cores", (int)batch, "memory", (json_int_t)batch * (4LL << 30), "gpus",
                          0);
    else
        claim = json_pack("{s:i,s:{s:i,s:I,s:i}}", "wait_ms", 500, "free", "cores", 1, "memory",
                          (json_int_t)(4LL << 30), "gpus", 0);
    report = json_pack("{s:s,s:i,s:n,s:i,s:i,s:[],s:s}", "status", "ok", "exit_code", 0,
                       "reason", "cpu_ms", 0, "wall_ms", 0, "outputs", "merkle_root", root0);
    json_t *hello = json_pack("{s:i,s:i,s:I,s:i,s:s}", "slots", batch ? (int)batch : 1, "cores",
                              batch ? (int)batch : 1, "memory",
                              (json_int_t)(batch ? batch : 1) * (4LL << 30), "gpus", 0,
                              "version", "bench");
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
        json_t *one = json_object_get(r.json, "lease");
        json_t *many = json_object_get(r.json, "leases");
        size_t nl = batch ? json_array_size(many) : (one ? 1 : 0);
        if (nl == 0) {
            cu_snprintf(s->err, sizeof s->err, "claim answered 200 without a lease");
            break;
        }
        if (s->nclaim < s->cap)
            s->claim_ms[s->nclaim++] = t1 - t0;
        /* The leases are ours to report once this answer is released. */
        json_int_t rids[256];
        for (size_t k = 0; k < nl && k < 256; k++)
            rids[k] = json_integer_value(
                json_object_get(batch ? json_array_get(many, k) : one, "replica"));
        if (batch && batch_reports) {
            /* All of this claim's leases in one POST /v1/reports. */
            json_t *list = json_array(), *rb = json_pack("{s:o}", "reports", list);
            for (size_t k = 0; k < nl && k < 256; k++) {
                json_t *one_r = json_copy(report);
                json_object_set_new(one_r, "replica", json_integer(rids[k]));
                json_array_append_new(list, one_r);
            }
            t0 = bl_now_ms();
            if (!rb || cu_http_request_json(c, "POST", "/v1/reports", rb, 10000, &r) != 0 ||
                r.status != 200) {
                cu_snprintf(s->err, sizeof s->err, "reports: %s",
                            cu_http_result_describe(&r, desc, sizeof desc));
                json_decref(rb);
                break;
            }
            json_decref(rb);
            t1 = bl_now_ms();
            json_t *res = json_object_get(r.json, "results");
            size_t ok = 0;
            for (size_t k = 0; k < json_array_size(res); k++)
                if (!json_object_get(json_array_get(res, k), "error"))
                    ok++;
            if (ok != nl) {
                cu_snprintf(s->err, sizeof s->err, "reports: %zu of %zu refused", nl - ok, nl);
                break;
            }
            if (s->nreport < s->cap)
                s->report_ms[s->nreport++] = t1 - t0;
            if (atomic_fetch_add(&completed, nl) + nl >= total_tasks)
                all_done(t1);
            continue;
        }
        for (size_t k = 0; k < nl && k < 256; k++) {
            cu_snprintf(path, sizeof path, "/v1/replicas/%lld/report", (long long)rids[k]);
            t0 = bl_now_ms();
            if (cu_http_request_json(c, "POST", path, report, 10000, &r) != 0 ||
                r.status != 200) {
                cu_snprintf(s->err, sizeof s->err, "report %lld: %s", (long long)rids[k],
                            cu_http_result_describe(&r, desc, sizeof desc));
                ready = false;
                break;
            }
            t1 = bl_now_ms();
            if (s->nreport < s->cap)
                s->report_ms[s->nreport++] = t1 - t0;
            if (atomic_fetch_add(&completed, 1) + 1 >= total_tasks)
                all_done(t1);
        }
    }
    json_decref(claim);
    json_decref(report);
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

/* One round's figures. */
struct round {
    unsigned long long completed, done_ex;
    double elapsed_ms, submit_ms;
    double wall_ms; /* until every thread was back (idle long-polls included) */
    double ex_cpu_s; /* the exchange's CPU time during the round */
    struct bl_stats sc, sr;
    unsigned empty;
    double *claims, *reports; /* the latencies (owned; sorted by bl_stats) */
    size_t nclaims, nreports;
};

/* A round's rate: replicas completed per second until the last one. */
static double round_rate(const struct round *r)
{
    return (double)r->completed * 1e3 / r->elapsed_ms;
}

/* Runs one round against a fresh exchange with claims of `batch` (global,
 * set by the caller) and fills out. Dies on failure. */
static void run_round(uint64_t np, uint64_t tasks, uint64_t secs, struct round *out)
{
    static const char *const cmd[] = {"true", NULL};
    static struct sim sims[MAX_PROVIDERS];
    char dir[PATH_MAX], url[512], job[CU_API_JOB_ID_MAX + 1];
    struct cu_identity rid;
    struct cu_api api;
    struct cu_spec spec;
    struct cu_err e = {0};
    double *all_c, *all_r, t0, t1;
    size_t nc = 0, nr = 0;
    pid_t ex;

    memset(out, 0, sizeof *out);
    memset(sims, 0, sizeof sims);
    atomic_store(&completed, 0);
    atomic_store(&stop_now, 0);
    atomic_store(&done_ms, 0);
    bl_tmpdir(dir, sizeof dir);
    ex = bl_start_exchange(dir, NULL, url, sizeof url);
    bl_api_open(&api, &rid, url);
    bl_spec(&spec, "dispatch", cmd, (uint32_t)tasks, NULL, NULL, NULL);
    t0 = bl_now_ms();
    if (cu_api_submit(&api, &spec, job, sizeof job, NULL, &e) != 0)
        bl_die("submit: %s", e.msg);
    out->submit_ms = bl_now_ms() - t0;

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
    double cpu0 = bl_proc_cpu_s(ex);
    t0 = bl_now_ms();
    deadline_ms = t0 + (double)secs * 1e3;
    for (uint64_t i = 0; i < np; i++)
        pthread_join(sims[i].t, NULL);
    t1 = bl_now_ms();
    out->ex_cpu_s = bl_proc_cpu_s(ex) - cpu0;
    pthread_barrier_destroy(&start_barrier);

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
        out->empty += s->empty;
        free(s->claim_ms);
        free(s->report_ms);
    }
    /* The exchange's own count of what finished. */
    json_t *list = NULL;
    if (cu_api_jobs(&api, &list, &e) == 0) {
        json_t *j0 = json_array_get(json_object_get(list, "jobs"), 0);
        out->done_ex = (unsigned long long)json_integer_value(
            json_object_get(json_object_get(j0, "counts"), "done"));
    }
    json_decref(list);
    cu_spec_release(&spec);
    cu_api_close(&api);
    bl_stop(ex);
    bl_stats(all_c, nc, &out->sc);
    bl_stats(all_r, nr, &out->sr);
    out->claims = all_c;
    out->reports = all_r;
    out->nclaims = nc;
    out->nreports = nr;
    out->completed = atomic_load(&completed);
    /* Until the last replica completed; t1 (every thread back) when the
     * round ended at the deadline instead. */
    out->wall_ms = t1 - t0;
    out->elapsed_ms = atomic_load(&done_ms) > 0 ? atomic_load(&done_ms) - t0 : t1 - t0;
    if (out->completed == 0)
        bl_die("no replica completed (claims %s)", batch ? "batched" : "single");
    if (verbose)
        fprintf(stderr,
                "dispatch: %llu simulated providers, %s claims: %.0f replicas/s (%llu in %.1f s), "
                "claim p50 %.1f ms p99 %.1f ms, report p50 %.1f ms p99 %.1f ms; exchange CPU "
                "%.0f us per replica\n",
                (unsigned long long)np, batch ? "batched" : "single", round_rate(out),
                out->completed, out->elapsed_ms / 1e3, out->sc.median, out->sc.p99,
                out->sr.median, out->sr.p99, out->ex_cpu_s * 1e6 / (double)out->completed);
}

#define MAX_ROUNDS 50

int main(int argc, char **argv)
{
    uint64_t np = bl_opt_u64(argc, argv, "--providers", 16);
    uint64_t tasks = bl_opt_u64(argc, argv, "--tasks", 2000);
    uint64_t secs = bl_opt_u64(argc, argv, "--seconds", 30);
    uint64_t nb = bl_opt_u64(argc, argv, "--batch", 16);
    uint64_t nrounds = bl_opt_u64(argc, argv, "--rounds", 5);
    batch_reports = bl_opt_u64(argc, argv, "--batch-reports", 1) != 0;
    verbose = bl_opt_u64(argc, argv, "--verbose", 0) != 0;
    static struct round rounds[MAX_ROUNDS], single;
    const struct round *ref; /* the single-claim figures */
    double rate[MAX_ROUNDS], cpu[MAX_ROUNDS], elapsed[MAX_ROUNDS], wall[MAX_ROUNDS];
    double p99[MAX_ROUNDS], *pc, *pr;
    size_t npc = 0, npr = 0;
    unsigned long long completed_min = ULLONG_MAX, done_min = ULLONG_MAX;
    unsigned empty = 0;
    struct bl_stats srate, scpu, sel, swall, sp99, sc, sr;
    struct cu_hash h0;

    bl_init("dispatch");
    if (np < 1 || np > MAX_PROVIDERS || tasks < 1 || tasks > CU_SPEC_MAX_TASKS || secs < 1 ||
        nb > 64 || nrounds < 1 || nrounds > MAX_ROUNDS)
        bl_die("--providers 1..%d, --tasks 1..%d, --seconds >= 1, --batch 0..64, --rounds 1..%d",
               MAX_PROVIDERS, CU_SPEC_MAX_TASKS, MAX_ROUNDS);
    if (cu_merkle_root(NULL, 0, &h0) != 0)
        bl_die("merkle root of nothing failed");
    cu_hash_to_hex(&h0, root0);
    total_tasks = tasks;

    /* The single-claim reference round, once; with --batch 0 it is the
     * measured round, and its figures are the middle round's. */
    if (nb > 0) {
        batch = 0;
        run_round(np, tasks, secs, &single);
        ref = &single;
    } else {
        ref = &rounds[nrounds / 2];
    }
    batch = (unsigned)nb;
    for (uint64_t k = 0; k < nrounds; k++)
        run_round(np, tasks, secs, &rounds[k]);

    for (uint64_t k = 0; k < nrounds; k++) {
        npc += rounds[k].nclaims;
        npr += rounds[k].nreports;
    }
    pc = calloc(npc + 1, sizeof *pc);
    pr = calloc(npr + 1, sizeof *pr);
    if (!pc || !pr)
        bl_die("out of memory");
    npc = npr = 0;
    for (uint64_t k = 0; k < nrounds; k++) {
        const struct round *r = &rounds[k];
        memcpy(pc + npc, r->claims, r->nclaims * sizeof *pc);
        memcpy(pr + npr, r->reports, r->nreports * sizeof *pr);
        npc += r->nclaims;
        npr += r->nreports;
        rate[k] = round_rate(r);
        cpu[k] = r->ex_cpu_s * 1e6 / (double)r->completed;
        elapsed[k] = r->elapsed_ms / 1e3;
        wall[k] = r->wall_ms / 1e3;
        p99[k] = r->sc.p99;
        empty += r->empty;
        if (r->completed < completed_min)
            completed_min = r->completed;
        if (r->done_ex < done_min)
            done_min = r->done_ex;
    }
    bl_stats(rate, nrounds, &srate);
    bl_stats(cpu, nrounds, &scpu);
    bl_stats(elapsed, nrounds, &sel);
    bl_stats(wall, nrounds, &swall);
    bl_stats(p99, nrounds, &sp99);
    bl_stats(pc, npc, &sc);
    bl_stats(pr, npr, &sr);
    printf("{\"bench\":\"dispatch\",\"providers\":%llu,\"tasks\":%llu,\"batch\":%llu,"
           "\"batch_reports\":%s,\"rounds\":%llu,"
           "\"completed\":%llu,\"exchange_done\":%llu,\"elapsed_s\":%.3f,\"wall_s\":%.3f,"
           "\"replicas_per_s\":%.1f,\"replicas_per_s_min\":%.1f,\"replicas_per_s_max\":%.1f,"
           "\"claim_p50_ms\":%.2f,\"claim_p99_ms\":%.2f,\"claim_p99_ms_max\":%.2f,"
           "\"claim_max_ms\":%.2f,\"report_p50_ms\":%.2f,\"report_p99_ms\":%.2f,"
           "\"empty_claims\":%u,\"submit_ms\":%.1f,"
           "\"replicas_per_s_single\":%.1f,\"claim_p50_ms_single\":%.2f,"
           "\"claim_p99_ms_single\":%.2f,\"report_p99_ms_single\":%.2f,"
           "\"completed_single\":%llu,\"exchange_done_single\":%llu,"
           "\"exchange_cpu_us_per_replica\":%.0f,\"exchange_cpu_us_per_replica_single\":%.0f}\n",
           (unsigned long long)np, (unsigned long long)tasks, (unsigned long long)nb,
           nb && batch_reports ? "true" : "false", (unsigned long long)nrounds, completed_min,
           done_min, sel.median, swall.median, srate.median, srate.min, srate.max, sc.median,
           sc.p99, sp99.max, sc.max, sr.median, sr.p99, empty, rounds[0].submit_ms,
           round_rate(ref), ref->sc.median, ref->sc.p99, ref->sr.p99, ref->completed,
           ref->done_ex, scpu.median, ref->ex_cpu_s * 1e6 / (double)ref->completed);
    fprintf(stderr,
            "dispatch: %llu providers, %s claims, median of %llu rounds: %.0f replicas/s "
            "(%.0f-%.0f), claim p50 %.1f ms p99 %.1f ms (worst round's p99 %.1f ms); single "
            "claims %.0f replicas/s; exchange CPU %.0f us per replica\n",
            (unsigned long long)np, nb ? "batched" : "single", (unsigned long long)nrounds,
            srate.median, srate.min, srate.max, sc.median, sc.p99, sp99.max, round_rate(ref),
            scpu.median);
    for (uint64_t k = 0; k < nrounds; k++) {
        free(rounds[k].claims);
        free(rounds[k].reports);
    }
    free(single.claims);
    free(single.reports);
    free(pc);
    free(pr);
    return 0;
}
