/* scale.c - a real exchange holding many queued replicas and registered
 * providers, then claims against it (issue 6, `scale` row).
 *
 *   build/bench/scale [--jobs J] [--tasks T] [--providers P] [--claims C]
 *                     [--threads N] [--small]
 *   (default 1,000 jobs x 1,000 tasks = 1,000,000 queued replicas,
 *    10,000 providers, 2,000 claims, 8 client threads; --small: 20 x 100,
 *    200 providers, 200 claims, for make bench-smoke)
 *
 * Everything goes through the API a production client uses, signed:
 *   1. `cumulus exchange --devnet` is started (its own process);
 *   2. P providers, each with its own ed25519 key, say hello (POST
 *      /v1/providers/hello, ask 5 per CU), from N threads with keep-alive
 *      clients;
 *   3. one requester is funded from the devnet faucet (POST /v1/faucet,
 *      10^14) and submits J jobs of T tasks (replication 1, `true`, price
 *      max_per_cu 10) from N threads (POST /v1/jobs);
 *   4. C claims (POST /v1/claims, wait_ms 0) from N threads, each thread
 *      cycling through 8 of the registered providers; a claim that gets a
 *      lease counts towards the latency figures. Replicas are only leased,
 *      never reported: the queue stays at ~J x T.
 * Memory comes from the kernel: the exchange's VmRSS (and Pss from
 * /proc/PID/smaps_rollup) after start, after the hellos and after the
 * load; bytes_per_replica = (RSS after load - RSS after hellos) / queued
 * replicas. db_bytes_per_replica = (state.db + WAL after the load) /
 * queued replicas (jobs, tasks and replica rows with their indexes). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "benchlib.h"
#include "net/http_client.h"

#include "base/banned.h"

#define MAX_THREADS 64
#define CLAIM_IDS 8 /* providers each claiming thread cycles through */

struct mem {
    uint64_t rss, hwm, pss; /* bytes */
};

/* Reads "Key:   N kB" from a /proc file; 0 when absent. */
static uint64_t proc_kb(const char *path, const char *key)
{
    char line[256];
    size_t kl = strlen(key);
    uint64_t v = 0;
    FILE *f = fopen(path, "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v * 1024;
}

static void mem_read(pid_t pid, struct mem *m)
{
    char p[64];

    (void)cu_snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    m->rss = proc_kb(p, "VmRSS");
    m->hwm = proc_kb(p, "VmHWM");
    (void)cu_snprintf(p, sizeof p, "/proc/%d/smaps_rollup", (int)pid);
    m->pss = proc_kb(p, "Pss");
    if (!m->rss)
        bl_die("cannot read the exchange's memory from /proc/%d", (int)pid);
}

/* ---- the client threads ------------------------------------------------------------ */

enum phase { HELLO, SUBMIT, CLAIM };

struct worker {
    pthread_t t;
    enum phase phase;
    const char *url;
    unsigned no, nthreads;
    struct cu_identity *providers; /* all of them */
    uint64_t nproviders;
    const struct cu_identity *requester;
    uint64_t jobs, tasks, claims; /* totals, split between the threads */
    double *claim_ms;             /* claims answered with a lease */
    size_t nclaim;
    uint64_t empty, replicas;
    char err[512];
};

static void do_hello(struct worker *w)
{
    char desc[700];
    struct cu_http_result r;
    json_t *hello = json_pack("{s:i,s:i,s:I,s:i,s:s,s:i}", "slots", 2, "cores", 2, "memory",
                              (json_int_t)(4LL << 30), "gpus", 0, "version", "bench-scale",
                              "price_per_cu", 5);

    cu_http_result_init(&r);
    if (!hello)
        bl_die("out of memory");
    for (uint64_t i = w->no; i < w->nproviders && !w->err[0]; i += w->nthreads) {
        struct cu_http_client *c = cu_http_client_new(w->url, &w->providers[i]);
        if (!c)
            bl_die("out of memory");
        if (cu_http_request_json(c, "POST", "/v1/providers/hello", hello, 30000, &r) != 0 ||
            r.status != 200)
            cu_snprintf(w->err, sizeof w->err, "hello %llu: %s", (unsigned long long)i,
                        cu_http_result_describe(&r, desc, sizeof desc));
        cu_http_client_free(c);
    }
    json_decref(hello);
    cu_http_result_release(&r);
}

static void do_submit(struct worker *w)
{
    static const char *const cmd[] = {"true", NULL};
    char id[CU_API_JOB_ID_MAX + 1], name[64];
    struct cu_api api;
    struct cu_err e = {0};
    json_t *ans = NULL;

    if (cu_api_open(&api, w->url, w->requester, &e) != 0)
        bl_die("%s", e.msg);
    for (uint64_t j = w->no; j < w->jobs && !w->err[0]; j += w->nthreads) {
        struct cu_spec s;
        (void)cu_snprintf(name, sizeof name, "scale-%llu", (unsigned long long)j);
        bl_spec(&s, name, cmd, (uint32_t)w->tasks, NULL, NULL, NULL);
        s.max_per_cu = 10;
        if (cu_api_submit(&api, &s, id, sizeof id, &ans, &e) != 0)
            cu_snprintf(w->err, sizeof w->err, "submit job %llu: %s", (unsigned long long)j,
                        e.msg);
        else
            w->replicas += (uint64_t)json_integer_value(json_object_get(ans, "replicas"));
        json_decref(ans);
        ans = NULL;
        cu_spec_release(&s);
    }
    cu_api_close(&api);
}

static void do_claim(struct worker *w)
{
    struct cu_http_client *c[CLAIM_IDS] = {0};
    struct cu_http_result r;
    char desc[700];
    uint64_t mine = w->claims / w->nthreads + (w->no < w->claims % w->nthreads);
    json_t *claim = json_pack("{s:i,s:{s:i,s:I,s:i}}", "wait_ms", 0, "free", "cores", 2,
                              "memory", (json_int_t)(4LL << 30), "gpus", 0);

    cu_http_result_init(&r);
    w->claim_ms = calloc(mine ? mine : 1, sizeof *w->claim_ms);
    if (!claim || !w->claim_ms)
        bl_die("out of memory");
    for (unsigned k = 0; k < CLAIM_IDS; k++) {
        /* Spread the claiming providers over the registered ones. */
        uint64_t i = ((uint64_t)w->no * CLAIM_IDS + k) * 7919 % w->nproviders;
        if (!(c[k] = cu_http_client_new(w->url, &w->providers[i])))
            bl_die("out of memory");
    }
    for (uint64_t i = 0; i < mine && !w->err[0]; i++) {
        double t0 = bl_now_ms();
        if (cu_http_request_json(c[i % CLAIM_IDS], "POST", "/v1/claims", claim, 30000, &r) != 0 ||
            (r.status != 200 && r.status != 204)) {
            cu_snprintf(w->err, sizeof w->err, "claim: %s",
                        cu_http_result_describe(&r, desc, sizeof desc));
            break;
        }
        if (r.status == 204)
            w->empty++;
        else
            w->claim_ms[w->nclaim++] = bl_now_ms() - t0;
    }
    for (unsigned k = 0; k < CLAIM_IDS; k++)
        cu_http_client_free(c[k]);
    json_decref(claim);
    cu_http_result_release(&r);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    switch (w->phase) {
    case HELLO:
        do_hello(w);
        break;
    case SUBMIT:
        do_submit(w);
        break;
    case CLAIM:
        do_claim(w);
        break;
    }
    return NULL;
}

/* Runs phase on every worker and waits; returns the wall time in ms. Dies
 * when a worker failed. */
static double run_phase(struct worker *ws, unsigned n, enum phase phase)
{
    double t0 = bl_now_ms();

    for (unsigned i = 0; i < n; i++) {
        ws[i].phase = phase;
        if (pthread_create(&ws[i].t, NULL, worker_main, &ws[i]) != 0)
            bl_die("cannot start a thread");
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(ws[i].t, NULL);
    for (unsigned i = 0; i < n; i++)
        if (ws[i].err[0])
            bl_die("%s", ws[i].err);
    return bl_now_ms() - t0;
}

static uint64_t file_size(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat sb;

    if (cu_snprintf(p, sizeof p, "%s/exchange/%s", dir, name) != 0 || stat(p, &sb) != 0)
        return 0;
    return (uint64_t)sb.st_size;
}

int main(int argc, char **argv)
{
    bool small = bl_opt_flag(argc, argv, "--small");
    uint64_t njobs = bl_opt_u64(argc, argv, "--jobs", small ? 20 : 1000);
    uint64_t ntasks = bl_opt_u64(argc, argv, "--tasks", small ? 100 : 1000);
    uint64_t nprov = bl_opt_u64(argc, argv, "--providers", small ? 200 : 10000);
    uint64_t nclaims = bl_opt_u64(argc, argv, "--claims", small ? 200 : 2000);
    uint64_t nthreads = bl_opt_u64(argc, argv, "--threads", 8);
    static const char *const extra[] = {"--devnet", NULL};
    static struct worker ws[MAX_THREADS];
    char dir[PATH_MAX], url[512];
    struct cu_identity requester, *provs;
    struct cu_api api;
    struct cu_err e = {0};
    struct mem m0, m1, m2, m3;
    struct bl_stats sc;
    double hello_ms, submit_ms, claim_ms, *all;
    uint64_t replicas = 0, queued = 0, empty = 0, db_bytes;
    size_t nall = 0;
    json_t *out = NULL;
    pid_t ex;

    bl_init("scale");
    if (njobs < 1 || ntasks < 1 || ntasks > CU_SPEC_MAX_TASKS || nprov < CLAIM_IDS ||
        nclaims < 1 || nthreads < 1 || nthreads > MAX_THREADS)
        bl_die("--jobs >= 1, --tasks 1..%d, --providers >= %d, --claims >= 1, --threads 1..%d",
               CU_SPEC_MAX_TASKS, CLAIM_IDS, MAX_THREADS);
    provs = calloc(nprov, sizeof *provs);
    if (!provs || cu_identity_generate(&requester) != 0)
        bl_die("out of memory");
    for (uint64_t i = 0; i < nprov; i++)
        if (cu_identity_generate(&provs[i]) != 0)
            bl_die("cannot generate keys");
    bl_tmpdir(dir, sizeof dir);
    ex = bl_start_exchange_args(dir, extra, url, sizeof url);
    for (uint64_t i = 0; i < nthreads; i++) {
        ws[i] = (struct worker){.url = url, .no = (unsigned)i, .nthreads = (unsigned)nthreads,
                                .providers = provs, .nproviders = nprov,
                                .requester = &requester, .jobs = njobs, .tasks = ntasks,
                                .claims = nclaims};
    }
    mem_read(ex, &m0);

    hello_ms = run_phase(ws, (unsigned)nthreads, HELLO);
    if (bl_providers_online(url) < (int)nprov)
        bl_die("the exchange reports %d providers online, not %llu", bl_providers_online(url),
               (unsigned long long)nprov);
    mem_read(ex, &m1);

    if (cu_api_open(&api, url, &requester, &e) != 0 ||
        cu_api_faucet(&api, 100000000000000ULL, &out, &e) != 0)
        bl_die("faucet: %s", e.msg);
    json_decref(out);
    submit_ms = run_phase(ws, (unsigned)nthreads, SUBMIT);
    for (uint64_t i = 0; i < nthreads; i++)
        replicas += ws[i].replicas;
    if (cu_api_jobs(&api, &out, &e) != 0)
        bl_die("jobs: %s", e.msg);
    for (size_t i = 0; i < json_array_size(json_object_get(out, "jobs")); i++) {
        json_t *c = json_object_get(json_array_get(json_object_get(out, "jobs"), i), "counts");
        queued += (uint64_t)json_integer_value(json_object_get(c, "queued"));
    }
    json_decref(out);
    if (replicas != njobs * ntasks || queued != replicas)
        bl_die("%llu replicas accepted and %llu tasks queued, %llu expected",
               (unsigned long long)replicas, (unsigned long long)queued,
               (unsigned long long)(njobs * ntasks));
    mem_read(ex, &m2);
    db_bytes = file_size(dir, "state.db") + file_size(dir, "state.db-wal");

    claim_ms = run_phase(ws, (unsigned)nthreads, CLAIM);
    mem_read(ex, &m3);
    all = calloc(nclaims, sizeof *all);
    if (!all)
        bl_die("out of memory");
    for (uint64_t i = 0; i < nthreads; i++) {
        for (size_t k = 0; k < ws[i].nclaim && nall < nclaims; k++)
            all[nall++] = ws[i].claim_ms[k];
        empty += ws[i].empty;
        free(ws[i].claim_ms);
    }
    bl_stats(all, nall, &sc);
    if (nall == 0)
        bl_die("no claim got a lease");
    cu_api_close(&api);
    bl_stop(ex);

    double per_replica = ((double)m2.rss - (double)m1.rss) / (double)replicas;
    double pss_per_replica = ((double)m2.pss - (double)m1.pss) / (double)replicas;
    printf("{\"bench\":\"scale\",\"bytes_per_replica\":%.1f,\"claim_p50_ms\":%.2f,"
           "\"claim_p99_ms\":%.2f,\"claim_max_ms\":%.2f,\"claims\":%zu,\"empty_claims\":%llu,"
           "\"claims_per_s\":%.1f,\"replicas\":%llu,\"jobs\":%llu,\"providers\":%llu,"
           "\"pss_bytes_per_replica\":%.1f,\"db_bytes_per_replica\":%.1f,\"db_bytes\":%llu,"
           "\"rss_start_kb\":%llu,\"rss_providers_kb\":%llu,\"rss_loaded_kb\":%llu,"
           "\"rss_after_claims_kb\":%llu,\"hwm_kb\":%llu,\"bytes_per_provider\":%.1f,"
           "\"hello_s\":%.3f,\"hellos_per_s\":%.1f,\"load_s\":%.3f,\"replicas_loaded_per_s\":%.0f,"
           "\"threads\":%llu}\n",
           per_replica, sc.median, sc.p99, sc.max, nall, (unsigned long long)empty,
           (double)(nall + empty) * 1e3 / claim_ms, (unsigned long long)replicas,
           (unsigned long long)njobs, (unsigned long long)nprov, pss_per_replica,
           (double)db_bytes / (double)replicas, (unsigned long long)db_bytes,
           (unsigned long long)(m0.rss >> 10), (unsigned long long)(m1.rss >> 10),
           (unsigned long long)(m2.rss >> 10), (unsigned long long)(m3.rss >> 10),
           (unsigned long long)(m3.hwm >> 10), ((double)m1.rss - (double)m0.rss) / (double)nprov,
           hello_ms / 1e3, (double)nprov * 1e3 / hello_ms, submit_ms / 1e3,
           (double)replicas * 1e3 / submit_ms, (unsigned long long)nthreads);
    fprintf(stderr,
            "scale: %llu queued replicas (%llu jobs) and %llu providers: %.0f bytes resident "
            "and %.0f bytes of database per replica; claim p50 %.1f ms p99 %.1f ms (%zu "
            "claims); load took %.1f s (%.0f replicas/s), hellos %.1f s\n",
            (unsigned long long)replicas, (unsigned long long)njobs, (unsigned long long)nprov,
            per_replica, (double)db_bytes / (double)replicas, sc.median, sc.p99, nall,
            submit_ms / 1e3, (double)replicas * 1e3 / submit_ms, hello_ms / 1e3);
    free(all);
    free(provs);
    return 0;
}
