/* lease.c - one leased replica, from claim answer to report: fetch the
 * inputs, run the sandbox while a keeper thread heartbeats, collect and
 * upload the outputs, report, clean up. Every failure becomes a report. */
#include "provider/agent.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "fabric/oci.h"
#include "fabric/sandbox.h"
#include "fabric/warm.h"
#include "market/spec.h"
#include "provider/collect.h"
#include "trust/challenge.h"

#include "base/banned.h"

#define BLOB_PATH_MAX (sizeof "/v1/blobs/" + CU_HASH_HEX_LEN)
#define TRANSFER_TRIES 5 /* per input download while the exchange restarts */
#define REVEAL_ASK_MAX_MS 500 /* commit asked again at most this far apart */

/* ---- blobs and reports (also used by recovery in provider.c) ------------- */

int cu_blob_ensure_remote(struct cu_http_client *c, const struct cu_blobstore *bs,
                          const struct cu_hash *h, long timeout_ms, struct cu_err *e)
{
    struct cu_http_result r;
    char hex[CU_HASH_HEX_LEN + 1], path[BLOB_PATH_MAX], file[CU_PATH_MAX], desc[700];
    int rc;

    if (cu_blob_is_empty_hash(h))
        return 0; /* every store has it (store/blob.h) */
    cu_hash_to_hex(h, hex);
    (void)cu_snprintf(path, sizeof path, "/v1/blobs/%s", hex);
    rc = cu_blob_path(bs, h, file, sizeof file);
    if (rc)
        return cu_err_set(e, rc, "blob %s: path too long", hex);
    cu_http_result_init(&r);
    rc = cu_http_request(c, "HEAD", path, NULL, 0, timeout_ms, &r);
    if (rc == 0 && r.status == 200)
        goto out_release;
    if (rc == 0 && r.status == 404)
        rc = cu_http_upload_file(c, "PUT", path, file, h, CU_BLOB_TIMEOUT_MS, &r);
    if (rc == 0 && (r.status == 200 || r.status == 201))
        goto out_release;
    cu_http_result_describe(&r, desc, sizeof desc);
    if (rc == -CU_ENOTFOUND || rc == -CU_EIO)
        rc = cu_err_set(e, rc, "blob %s is missing from the local cache", hex);
    else if (rc != 0 || r.status >= 500)
        rc = cu_err_set(e, -CU_ENET, "upload of blob %s: %s", hex, desc);
    else
        rc = cu_err_set(e, -CU_EPROTO, "upload of blob %s refused: %s", hex, desc);
out_release:
    cu_http_result_release(&r);
    return rc;
}

char *cu_error_report(const char *reason)
{
    struct cu_report rep = {.status = "error", .reason = reason};
    json_t *j;
    char *s;

    cu_blob_empty_hash(&rep.out.hash);
    rep.err.hash = rep.out.hash;
    j = cu_report_to_json(&rep);
    s = j ? cu_json_dumps(j) : NULL;
    json_decref(j);
    return s;
}

int cu_report_upload_missing(struct cu_http_client *c, const struct cu_blobstore *bs,
                             int64_t replica, const json_t *missing)
{
    size_t i;
    json_t *v;

    if (!bs || !json_is_array(missing) || json_array_size(missing) == 0)
        return -CU_EPROTO;
    json_array_foreach (missing, i, v) {
        const char *hex = json_string_value(v);
        struct cu_hash h;
        struct cu_err e = {0};
        int rc;

        if (!hex || cu_hash_from_hex(hex, &h) != 0)
            return -CU_EPROTO;
        rc = cu_blob_ensure_remote(c, bs, &h, CU_BLOB_TIMEOUT_MS, &e);
        if (rc) {
            cu_warn("replica %lld: a blob the exchange misses: %s", (long long)replica, e.msg);
            return rc;
        }
    }
    cu_info("replica %lld: uploaded %zu blob(s) the exchange missed; reporting again",
            (long long)replica, json_array_size(missing));
    return 0;
}

enum cu_delivery cu_report_deliver(struct cu_http_client *c, const struct cu_blobstore *bs,
                                   int64_t replica, const char *body, long timeout_ms,
                                   bool once)
{
    struct cu_http_result r;
    char path[64], desc[700], last[64] = "";
    enum cu_delivery d = CU_UNSENT;
    int64_t backoff = 500;
    bool uploaded = false; /* one upload round for a 409 missing_blobs */

    (void)cu_snprintf(path, sizeof path, "/v1/replicas/%lld/report", (long long)replica);
    cu_http_result_init(&r);
    for (;;) {
        int rc = cu_http_request(c, "POST", path, body, strlen(body), timeout_ms, &r);
        if (rc == 0 && r.status == 200) {
            const char *state = json_string_value(json_object_get(r.json, "state"));
            const char *tstate = json_string_value(json_object_get(r.json, "task_state"));
            cu_info("reported replica %lld: replica %s, task %s", (long long)replica,
                    state ? state : "?", tstate ? tstate : "?");
            d = CU_DELIVERED;
            break;
        }
        cu_http_result_describe(&r, desc, sizeof desc);
        if (rc == 0 && r.status == 409 && !uploaded &&
            strcmp(r.err_code, "missing_blobs") == 0 &&
            cu_report_upload_missing(c, bs, replica,
                                     json_object_get(json_object_get(r.json, "error"),
                                                     "missing")) == 0) {
            uploaded = true;
            continue;
        }
        if (rc == 0 && r.status >= 400 && r.status < 500) {
            if (r.status == 409)
                cu_warn("report of replica %lld dropped: %s", (long long)replica, desc);
            else
                cu_error("report of replica %lld refused: %s", (long long)replica, desc);
            d = CU_DROPPED;
            break;
        }
        if (strcmp(last, r.err_code) != 0) {
            cu_warn("report of replica %lld not delivered yet: %s (retrying)",
                    (long long)replica, desc);
            (void)cu_snprintf(last, sizeof last, "%s", r.err_code);
        }
        if (once || cu_agent_stopping())
            break;
        cu_agent_nap(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    cu_http_result_release(&r);
    return d;
}

/* ---- the lease keeper: a heartbeat thread ---------------------------------- */

enum { KEEP_OK, KEEP_CANCEL, KEEP_LOST };

struct cu_beat_worker;

struct keeper {
    struct cu_beat_worker *w; /* the slot's heartbeat thread keeping it */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    bool stop;
    bool started;
    struct cu_http_client *c;
    int64_t replica;
    int64_t interval_ms;
    atomic_int verdict;
    char reason[256]; /* written before verdict is stored, read after */
    /* Heartbeat challenges: each beat answers the latest nonce with the
     * lease secret (docs/api.md "Trust"); has_secret false for an exchange
     * that gives none. Only the keeper thread touches nonce after start. */
    bool has_secret;
    unsigned char secret[CU_CHAL_KEY_LEN];
    unsigned char nonce[CU_CHAL_NONCE_LEN];
    enum cu_cheat cheat;
    atomic_bool reveal; /* an answer said "reveal":true (commit-then-reveal) */
    atomic_bool fast;   /* waiting for the reveal: beat at least every second */
};

/* One heartbeat; returns the verdict. last holds the error kind logged
 * last, so an outage is logged once, not every second. */
static int heartbeat_once(struct keeper *k, const char *path, const json_t *body, long timeout,
                          struct cu_http_result *r, char *last, size_t lastsz)
{
    char desc[700];
    int rc = cu_http_request_json(k->c, "POST", path, body, timeout, r);

    if (rc == 0 && r->status == 200) {
        json_t *cancel = json_object_get(r->json, "cancel");
        const char *nonce = json_string_value(json_object_get(r->json, "nonce"));
        unsigned char next[CU_CHAL_NONCE_LEN];
        if (last[0])
            cu_info("heartbeats for replica %lld answered again", (long long)k->replica);
        last[0] = '\0';
        if (k->has_secret && nonce && strlen(nonce) == 2 * CU_CHAL_NONCE_LEN &&
            cu_hex_decode(nonce, next, sizeof next) == 0)
            memcpy(k->nonce, next, sizeof next);
        if (json_is_true(json_object_get(r->json, "reveal")))
            atomic_store(&k->reveal, true);
        if (json_is_true(cancel)) {
            const char *why = json_string_value(json_object_get(r->json, "reason"));
            (void)cu_snprintf(k->reason, sizeof k->reason, "%s", why ? why : "job cancelled");
            return KEEP_CANCEL;
        }
        return KEEP_OK;
    }
    cu_http_result_describe(r, desc, sizeof desc);
    if (rc == 0 && (r->status == 409 || r->status == 403 || r->status == 404)) {
        (void)cu_snprintf(k->reason, sizeof k->reason, "%s", desc);
        return KEEP_LOST;
    }
    if (strcmp(last, r->err_code) != 0) {
        cu_warn("heartbeat for replica %lld failed: %s (task keeps running; retrying)",
                (long long)k->replica, desc);
        (void)cu_snprintf(last, lastsz, "%s", r->err_code);
    }
    return KEEP_OK;
}

/* The body of one heartbeat: {"state":"running"} and, when the lease has
 * a secret, "answer" for the latest nonce (wrong on purpose under
 * --cheat bad-answer). New reference, NULL when out of memory. */
static json_t *heartbeat_body(const struct keeper *k)
{
    unsigned char ans[CU_CHAL_ANSWER_LEN];
    char hex[2 * CU_CHAL_ANSWER_LEN + 1];

    if (!k->has_secret)
        return json_pack("{s:s}", "state", "running");
    cu_chal_heartbeat_answer(k->secret, k->replica, k->nonce, ans);
    if (k->cheat == CU_CHEAT_BAD_ANSWER)
        ans[0] ^= 0xff;
    cu_hex_encode(ans, sizeof ans, hex);
    return json_pack("{s:s,s:s}", "state", "running", "answer", hex);
}

/* Waits up to ms on the keeper's condition, returning early when asked
 * to stop. mu held. */
static void keeper_wait(struct keeper *k, int64_t ms)
{
    struct timespec until;

    cu_mono_deadline(&until, ms);
    while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) != ETIMEDOUT)
        ;
}

/* How long after its start a lease's first heartbeat is due. The lease
 * was granted a moment ago and lives for a whole lease_ms: a task that
 * ends within CU_FIRST_BEAT_MS needs no renewal, and the exchange is
 * spared a write (and its fsync) per short task. */
static int64_t first_beat_ms(const struct keeper *k)
{
    return k->interval_ms < CU_FIRST_BEAT_MS ? k->interval_ms : CU_FIRST_BEAT_MS;
}

/* Heartbeats k's lease until it is stopped, the first after first_wait_ms
 * (its due time less what has passed already). */
static void keeper_run(struct keeper *k, int64_t first_wait_ms)
{
    struct cu_http_result r;
    char path[64], last[64] = "";
    long timeout = k->interval_ms < 1000 ? 1000 : k->interval_ms > 10000 ? 10000 : k->interval_ms;
    unsigned beats = 0;

    (void)cu_snprintf(path, sizeof path, "/v1/replicas/%lld/heartbeat", (long long)k->replica);
    cu_http_result_init(&r);
    pthread_mutex_lock(&k->mu);
    if (first_wait_ms > 0)
        keeper_wait(k, first_wait_ms);
    while (!k->stop) {
        int64_t wait_ms = k->interval_ms;
        json_t *body;
        int v = KEEP_OK;

        pthread_mutex_unlock(&k->mu);
        if (k->cheat == CU_CHEAT_NO_HEARTBEAT && beats == 1)
            cu_warn("replica %lld: --cheat no-heartbeat: no more heartbeats",
                    (long long)k->replica);
        if (k->cheat != CU_CHEAT_NO_HEARTBEAT || beats == 0) {
            body = heartbeat_body(k);
            if (!body) {
                pthread_mutex_lock(&k->mu);
                break;
            }
            v = heartbeat_once(k, path, body, timeout, &r, last, sizeof last);
            json_decref(body);
        }
        beats++;
        pthread_mutex_lock(&k->mu);
        if (v != KEEP_OK) {
            atomic_store(&k->verdict, v);
            break;
        }
        if (atomic_load(&k->fast) && wait_ms > 1000)
            wait_ms = 1000;
        keeper_wait(k, wait_ms);
    }
    pthread_mutex_unlock(&k->mu);
    cu_http_result_release(&r);
}

/* The slot's heartbeat thread: it keeps one lease at a time. Starting a
 * thread per lease and joining it was a clone, an mmap and a futex round
 * per task, and even a waiting thread is woken at each start and stop of
 * a lease: ~8 % of the provider's CPU on trivial tasks. Most leases end
 * before their first heartbeat is due, so a lease is only handed over
 * (job, job_at); the thread looks for one every BEAT_TICK_MS and takes it
 * when its first heartbeat is due. A lease that ends before that is taken
 * back without the thread ever waking for it. Leases with heartbeats less
 * than BEAT_SIGNAL_MS apart wake it at once: a tick's lag must stay small
 * against their lease time (a claimed-ahead lease may have waited two
 * heartbeat intervals already; lease_ms is three). */
#define BEAT_TICK_MS 200
#define BEAT_SIGNAL_MS 1000

struct cu_beat_worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* CLOCK_MONOTONIC */
    struct keeper *job;   /* the lease handed over, NULL when none */
    int64_t job_at;       /* when it was (cu_mono_ms) */
    bool running;         /* the thread heartbeats job now */
    bool quit;
};

/* Waits on w->cv up to ms. w->mu held. */
static void worker_wait(struct cu_beat_worker *w, int64_t ms)
{
    struct timespec until;

    cu_mono_deadline(&until, ms);
    (void)pthread_cond_timedwait(&w->cv, &w->mu, &until);
}

static void *beat_worker_main(void *arg)
{
    struct cu_beat_worker *w = arg;

    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        struct keeper *k = w->job;
        int64_t due;
        if (!k) {
            worker_wait(w, BEAT_TICK_MS);
            continue;
        }
        due = w->job_at + first_beat_ms(k);
        if (cu_mono_ms() < due) {
            worker_wait(w, due - cu_mono_ms());
            continue; /* the lease may have ended meanwhile */
        }
        w->running = true;
        pthread_mutex_unlock(&w->mu);
        keeper_run(k, 0);
        pthread_mutex_lock(&w->mu);
        w->running = false;
        w->job = NULL;
        pthread_cond_broadcast(&w->cv); /* keeper_finish waits for this */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The slot's worker, started on its first lease. NULL when it cannot be
 * started. Only the slot's thread calls this. */
static struct cu_beat_worker *beat_worker(struct cu_slot *s)
{
    struct cu_beat_worker *w = s->beats;
    pthread_condattr_t ca;

    if (w)
        return w;
    w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->th, NULL, beat_worker_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    s->beats = w;
    return w;
}

void cu_slot_beats_fini(struct cu_slot *s)
{
    struct cu_beat_worker *w = s->beats;

    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    s->beats = NULL;
}

/* Starts the keeper on the slot's heartbeat thread. The heartbeat secret
 * and first nonce (has_secret, secret, nonce) and cheat are already set in
 * k by lease_parse and are kept; everything else is reset. */
static int keeper_start(struct keeper *k, struct cu_slot *s, int64_t replica,
                        int64_t interval_ms)
{
    struct cu_beat_worker *w = beat_worker(s);
    struct cu_http_client *c = s->hb;
    pthread_condattr_t ca;
    bool has_secret = k->has_secret;
    unsigned char secret[CU_CHAL_KEY_LEN], nonce[CU_CHAL_NONCE_LEN];
    enum cu_cheat cheat = k->cheat;

    memcpy(secret, k->secret, sizeof secret);
    memcpy(nonce, k->nonce, sizeof nonce);
    memset(k, 0, sizeof *k);
    k->has_secret = has_secret;
    memcpy(k->secret, secret, sizeof secret);
    memcpy(k->nonce, nonce, sizeof nonce);
    sodium_memzero(secret, sizeof secret);
    k->cheat = cheat;
    k->c = c;
    k->replica = replica;
    k->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    atomic_init(&k->verdict, KEEP_OK);
    atomic_init(&k->reveal, false);
    atomic_init(&k->fast, false);
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!w) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        return -CU_ENOMEM;
    }
    k->w = w;
    pthread_mutex_lock(&w->mu);
    assert(!w->job); /* one lease at a time per slot */
    w->job = k;
    w->job_at = cu_mono_ms();
    if (k->interval_ms < BEAT_SIGNAL_MS)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    k->started = true;
    return 0;
}

/* Asks the keeper to stop (returns at once). */
static void keeper_signal_stop(struct keeper *k)
{
    if (!k->started)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* Stops the keeper and waits until the slot's heartbeat thread has let
 * go of it (a heartbeat in flight ends first). */
static void keeper_finish(struct keeper *k)
{
    if (!k->started)
        return;
    keeper_signal_stop(k);
    pthread_mutex_lock(&k->w->mu);
    if (k->w->job == k && !k->w->running)
        k->w->job = NULL; /* never taken up: taken back */
    while (k->w->job == k)
        pthread_cond_wait(&k->w->cv, &k->w->mu);
    pthread_mutex_unlock(&k->w->mu);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    k->started = false;
}

/* ---- one task ------------------------------------------------------------ */

struct task {
    struct cu_slot *s;
    struct cu_agent *a;
    int64_t replica;
    char job[64];
    uint32_t index, count;
    const char *arg; /* borrowed from the lease JSON, or NULL */
    struct cu_spec spec;
    bool have_spec;
    char dir[CU_PATH_MAX], work[CU_PATH_MAX], out[CU_PATH_MAX], in[CU_PATH_MAX];
    char stdout_path[CU_PATH_MAX], stderr_path[CU_PATH_MAX];
    struct keeper k;
    bool failed; /* reported "error" through the provider's own fault */
    struct cu_oci_image image; /* when the spec names an OCI image */
};

/* lease.heartbeat {"secret":HEX64,"nonce":HEX32} into the keeper (before
 * it starts); absent: an exchange without heartbeat challenges. */
static int heartbeat_parse(struct task *t, const json_t *hb, struct cu_err *e)
{
    const char *secret = NULL, *nonce = NULL;
    int rc;

    if (!hb || json_is_null(hb))
        return 0;
    if (!json_is_object(hb))
        return cu_err_set(e, -CU_EPROTO, "lease.heartbeat: must be an object");
    if ((rc = cu_json_get_str(hb, "lease.heartbeat", "secret", true, &secret, e)) != 0 ||
        (rc = cu_json_get_str(hb, "lease.heartbeat", "nonce", true, &nonce, e)) != 0)
        return rc;
    if (strlen(secret) != 2 * CU_CHAL_KEY_LEN ||
        cu_hex_decode(secret, t->k.secret, CU_CHAL_KEY_LEN) != 0)
        return cu_err_set(e, -CU_EPROTO, "lease.heartbeat.secret: not %u hex digits",
                          2 * CU_CHAL_KEY_LEN);
    if (strlen(nonce) != 2 * CU_CHAL_NONCE_LEN ||
        cu_hex_decode(nonce, t->k.nonce, CU_CHAL_NONCE_LEN) != 0)
        return cu_err_set(e, -CU_EPROTO, "lease.heartbeat.nonce: not %u hex digits",
                          2 * CU_CHAL_NONCE_LEN);
    t->k.has_secret = true;
    return 0;
}

/* Reads the claim answer's lease. Sets t->replica as soon as it is known
 * (so a later failure can still be reported). */
static int lease_parse(struct task *t, const json_t *lease, int64_t *hb_ms, struct cu_err *e)
{
    const char *job = NULL, *arg = NULL;
    json_t *spec, *jarg;
    uint64_t task = 0, count = 0, hb = 0;
    int64_t replica = 0;
    int rc;

    if (!json_is_object(lease))
        return cu_err_set(e, -CU_EPROTO, "claim answer has no 'lease' object");
    if ((rc = cu_json_get_i64(lease, "lease", "replica", true, &replica, e)) != 0)
        return rc;
    if (replica <= 0)
        return cu_err_set(e, -CU_EPROTO, "lease.replica: must be positive");
    t->replica = replica;
    if ((rc = cu_json_get_str(lease, "lease", "job", true, &job, e)) != 0 ||
        (rc = cu_json_get_u64(lease, "lease", "task", true, &task, e)) != 0 ||
        (rc = cu_json_get_u64(lease, "lease", "task_count", false, &count, e)) != 0 ||
        (rc = cu_json_get_u64(lease, "lease", "heartbeat_ms", false, &hb, e)) != 0)
        return rc;
    if (strlen(job) >= sizeof t->job || !cu_name_is_safe(job))
        return cu_err_set(e, -CU_EPROTO, "lease.job: not a job id");
    (void)cu_snprintf(t->job, sizeof t->job, "%s", job);
    jarg = json_object_get(lease, "arg");
    if (jarg && !json_is_null(jarg)) {
        if (!json_is_string(jarg))
            return cu_err_set(e, -CU_EPROTO, "lease.arg: must be a string or null");
        arg = json_string_value(jarg);
    }
    spec = json_object_get(lease, "spec");
    if (!json_is_object(spec))
        return cu_err_set(e, -CU_EPROTO, "lease.spec: missing");
    rc = cu_spec_from_json(&t->spec, spec, e);
    if (rc)
        return rc;
    t->have_spec = true;
    if (count == 0)
        count = t->spec.task_count;
    if (task >= count || count > UINT32_MAX)
        return cu_err_set(e, -CU_EPROTO, "lease.task: %llu is not below task_count %llu",
                          (unsigned long long)task, (unsigned long long)count);
    t->index = (uint32_t)task;
    t->count = (uint32_t)count;
    t->arg = arg;
    if (hb > 0 && hb < 3600000)
        *hb_ms = (int64_t)hb;
    return heartbeat_parse(t, json_object_get(lease, "heartbeat"), e);
}

/* The task's paths, in its slot's reused directory (taskdir.c). */
static int task_paths(struct task *t)
{
    (void)cu_snprintf(t->dir, sizeof t->dir, "%s", t->s->dir);
    if (cu_path_join(t->work, sizeof t->work, t->dir, "work") ||
        cu_path_join(t->out, sizeof t->out, t->dir, "out") ||
        cu_path_join(t->in, sizeof t->in, t->dir, "in") ||
        cu_path_join(t->stdout_path, sizeof t->stdout_path, t->dir, "stdout") ||
        cu_path_join(t->stderr_path, sizeof t->stderr_path, t->dir, "stderr"))
        return -CU_ETOOBIG;
    return 0;
}

static int task_mkdirs(struct task *t, struct cu_err *e)
{
    return cu_slot_dir_prepare(t->s, e);
}

/* True while the lease is worth working on. */
static bool lease_live(const struct task *t)
{
    return !cu_agent_stopping() && atomic_load(&t->k.verdict) == KEEP_OK;
}

struct dl_sink {
    struct cu_blob_writer *w;
    const struct task *t;
};

static int dl_write(void *ctx, const char *data, size_t n)
{
    struct dl_sink *d = ctx;

    if (!lease_live(d->t))
        return -CU_ECANCELLED;
    return cu_blob_writer_write(d->w, data, n);
}

/* Downloads one input into the cache (verified against its hash). */
static int fetch_blob(struct task *t, const struct cu_spec_input *in, struct cu_err *e)
{
    struct cu_http_result r;
    struct cu_blob_writer w;
    struct dl_sink d = {.w = &w, .t = t};
    char hex[CU_HASH_HEX_LEN + 1], path[BLOB_PATH_MAX], desc[700];
    int64_t backoff = 500;
    int rc = 0;

    cu_hash_to_hex(&in->hash, hex);
    (void)cu_snprintf(path, sizeof path, "/v1/blobs/%s", hex);
    cu_http_result_init(&r);
    for (int attempt = 1;; attempt++) {
        rc = cu_blob_writer_open(&w, &t->a->cache, in->size);
        if (rc) {
            rc = cu_err_set(e, rc, "input '%s': cannot write to the cache: %s", in->name,
                            cu_strerror(rc));
            break;
        }
        rc = cu_http_download(t->s->http, path, dl_write, &d, CU_BLOB_TIMEOUT_MS, &r);
        if (rc == 0 && r.status == 200) {
            rc = cu_blob_writer_commit(&w, &in->hash, NULL);
            if (rc == -CU_ECORRUPT)
                rc = cu_err_set(e, rc, "input '%s': download does not match hash %s",
                                in->name, hex);
            else if (rc)
                rc = cu_err_set(e, rc, "input '%s': cannot store: %s", in->name,
                                cu_strerror(rc));
            break;
        }
        cu_blob_writer_abort(&w);
        cu_http_result_describe(&r, desc, sizeof desc);
        if (rc == -CU_ECANCELLED || !lease_live(t)) {
            rc = cu_err_set(e, -CU_ECANCELLED, "input '%s': download stopped", in->name);
            break;
        }
        if (rc == -CU_ETOOBIG) {
            rc = cu_err_set(e, rc, "input '%s': larger than its declared %llu bytes",
                            in->name, (unsigned long long)in->size);
            break;
        }
        if ((rc == 0 && r.status < 500) || attempt >= TRANSFER_TRIES) {
            rc = cu_err_set(e, rc ? rc : -CU_EPROTO, "input '%s' (%s): %s", in->name, hex,
                            desc);
            break;
        }
        cu_agent_nap(backoff);
        backoff *= 2;
    }
    cu_http_result_release(&r);
    return rc;
}

static int fetch_inputs(struct task *t, struct cu_err *e)
{
    for (size_t i = 0; i < t->spec.ninputs; i++) {
        const struct cu_spec_input *in = &t->spec.inputs[i];
        char dest[CU_PATH_MAX];
        uint64_t size = 0;
        int rc;

        if (cu_blob_stat(&t->a->cache, &in->hash, &size) != 0 || size != in->size) {
            rc = fetch_blob(t, in, e);
            if (rc)
                return rc;
        }
        if (cu_path_join(dest, sizeof dest, t->in, in->name) != 0)
            return cu_err_set(e, -CU_ETOOBIG, "input '%s': path too long", in->name);
        rc = cu_blob_copy_out(&t->a->cache, &in->hash, dest, 0555);
        if (rc == -CU_ECORRUPT) {
            /* The cached copy rotted on disk: fetch it again once. */
            char bad[CU_PATH_MAX];
            if (cu_blob_path(&t->a->cache, &in->hash, bad, sizeof bad) == 0)
                unlink(bad);
            rc = fetch_blob(t, in, e);
            if (rc == 0)
                rc = cu_blob_copy_out(&t->a->cache, &in->hash, dest, 0555);
        }
        if (rc)
            return cu_err_set(e, rc, "input '%s': cannot place it under /in: %s", in->name,
                              cu_strerror(rc));
    }
    return 0;
}

/* For an OCI job: the image tarball into the cache (like an input), then
 * its rootfs unpacked or found in DATA/oci (fabric/oci.h). */
static int prepare_image(struct task *t, struct cu_err *e)
{
    const struct cu_spec_input *in = &t->spec.image_oci;
    char path[CU_PATH_MAX];
    uint64_t size = 0;
    int64_t t0;
    int rc;

    if (!cu_spec_image_is_oci(&t->spec))
        return 0;
    if (t->a->nallow_images) {
        /* The exchange matches on this list too; never run another image. */
        char hex[CU_HASH_HEX_LEN + 1];
        bool ok = false;
        cu_hash_to_hex(&in->hash, hex);
        for (size_t i = 0; i < t->a->nallow_images && !ok; i++)
            ok = strcmp(t->a->allow_images[i], hex) == 0;
        if (!ok)
            return cu_err_set(e, -CU_EPERM, "image %.16s... is not one this provider allows "
                                            "(--allow-image)", hex);
    }
    if (cu_blob_stat(&t->a->cache, &in->hash, &size) != 0 || size != in->size) {
        if ((rc = fetch_blob(t, in, e)) != 0)
            return rc;
    }
    if (cu_blob_path(&t->a->cache, &in->hash, path, sizeof path) != 0)
        return cu_err_set(e, -CU_ETOOBIG, "image: cache path too long");
    t0 = cu_mono_ms();
    rc = cu_oci_prepare(path, t->a->oci_dir, 0, &t->image, e);
    if (rc) {
        char msg[CU_ERR_MSG_MAX];
        (void)cu_snprintf(msg, sizeof msg, "%s", e->msg);
        return cu_err_set(e, rc, "image: %s", msg);
    }
    cu_info("replica %lld: image %.19s %s in %lld ms", (long long)t->replica, t->image.digest,
            t->image.cached ? "found in the cache" : "unpacked", (long long)(cu_mono_ms() - t0));
    return 0;
}

/* Uploads every blob of the report that it does not carry inline (nor
 * is empty: the exchange always has that one), retrying transport errors
 * while the lease lives. */
static int upload_all(struct task *t, const struct cu_outputs *o, const struct cu_report *rep,
                      struct cu_err *e)
{
    size_t n = o->n + 2;

    for (size_t i = 0; i < n; i++) {
        const struct cu_hash *h = i < o->n ? &o->v[i].hash : i == o->n ? &rep->out.hash
                                                                       : &rep->err.hash;
        bool inl = i < o->n ? o->v[i].data != NULL : i == o->n ? rep->out.data != NULL
                                                                : rep->err.data != NULL;
        int64_t backoff = 500;
        int rc;

        if (inl)
            continue;
        for (;;) {
            rc = cu_blob_ensure_remote(t->s->http, &t->a->cache, h, 30000, e);
            if (rc != -CU_ENET)
                break;
            if (!lease_live(t))
                return cu_err_set(e, -CU_ECANCELLED, "upload stopped: lease ended");
            cu_agent_nap(backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* NULL-terminated copy of the spec's command (the array is borrowed); for
 * an OCI job without a command, the image's Entrypoint + Cmd. NULL when
 * out of memory or when there is nothing to run. */
static const char **command_argv(const struct cu_spec *s, const struct cu_oci_config *c)
{
    size_t n = s->ncommand ? s->ncommand : c->nentrypoint + c->ncmd, k = 0;
    const char **argv;

    if (n == 0)
        return NULL;
    argv = calloc(n + 1, sizeof *argv);
    for (size_t i = 0; argv && i < s->ncommand; i++)
        argv[k++] = s->command[i];
    for (size_t i = 0; argv && !s->ncommand && i < c->nentrypoint; i++)
        argv[k++] = c->entrypoint[i];
    for (size_t i = 0; argv && !s->ncommand && i < c->ncmd; i++)
        argv[k++] = c->cmd[i];
    return argv;
}

/* The image's Env first, then the task's: bwrap applies --setenv in order,
 * so the job's own variables and CUMULUS_* win. Borrowed strings; the
 * array is the caller's to free. */
static const char **merge_env(const struct cu_oci_config *c, char **task_env)
{
    size_t n = 0, k = 0;
    const char **env;

    while (task_env[n])
        n++;
    env = calloc(c->nenv + n + 1, sizeof *env);
    for (size_t i = 0; env && i < c->nenv; i++)
        env[k++] = c->env[i];
    for (size_t i = 0; env && i < n; i++)
        env[k++] = task_env[i];
    return env;
}

/* --idle-only: pauses the task (its whole process tree) while the machine
 * is busy and resumes it when idle again. The keeper thread heartbeats
 * all along, so the lease lives; the sandbox leaves paused time out of
 * the wall-clock limit. */
static void follow_idle(struct task *t, struct cu_sandbox *sb)
{
    bool idle = cu_idle_monitor_idle(t->a->idle);
    char why[192];
    int rc;

    if (idle != cu_sandbox_is_paused(sb))
        return;
    cu_idle_monitor_reason(t->a->idle, why, sizeof why);
    if (!idle) {
        rc = cu_sandbox_pause(sb);
        cu_info("replica %lld: paused (%s)%s", (long long)t->replica, why,
                rc ? "; some of its processes could not be stopped" : "");
    } else {
        rc = cu_sandbox_resume(sb);
        cu_info("replica %lld: resumed (%s)%s", (long long)t->replica, why,
                rc ? "; some of its processes could not be continued" : "");
    }
}

/* Starts the task: in the slot's warm sandbox when the provider keeps them
 * (warm_slot.c: the last task's when this is the same job and sandbox
 * shape, else a spare, else a new one; tasks of different jobs never share
 * one), else in a bwrap of its own. A warm sandbox that cannot start, or a
 * task too large for its message, runs in a sandbox of its own instead. */
static int start_task(struct task *t, const struct cu_sandbox_opts *o, struct cu_sandbox **sb,
                      struct cu_err *e)
{
    struct cu_slot *s = t->s;
    struct cu_warm *had = s->warm;
    bool spare = false;
    int rc;

    if (!s->keeper) {
        s->dir_exposed = true; /* bound in: made afresh after it (taskdir.c) */
        return cu_sandbox_start(o, sb, e);
    }
    rc = cu_slot_warm_take(s, o, t->job, &spare, e);
    if (rc == 0 && s->warm != had)
        cu_info("slot %u: warm sandbox started for job %s%s", s->index, t->job,
                spare ? " (the spare)" : "");
    if (rc == 0 && (rc = cu_warm_run(s->warm, o, sb, e)) == 0) {
        s->dir_moved = true;
        cu_slot_warm_note_task(s, t->replica);
        return 0;
    }
    cu_warn("replica %lld: warm sandbox: %s; running the task in a sandbox of its own",
            (long long)t->replica, cu_err_msg(e, rc));
    cu_slot_warm_discard(s);
    memset(e, 0, sizeof *e);
    s->dir_exposed = true;
    return cu_sandbox_start(o, sb, e);
}

/* Runs the sandbox to its end. res gets the outcome; *lost / *shutdown
 * say why it was killed, when it was. */
static void run_sandbox(struct task *t, struct cu_sandbox_result *res, bool *lost,
                        bool *shutdown)
{
    struct cu_sandbox_opts o = CU_SANDBOX_OPTS_INIT;
    struct cu_sandbox *sb = NULL;
    struct cu_err e = {0};
    const char **argv, **all_env = NULL;
    char **env;
    char cgname[48];
    char *gpu_binds[CU_GPU_BINDS_MAX] = {NULL};
    bool killed = false;
    int rc;

    memset(res, 0, sizeof *res);
    if (t->spec.res.gpus > 0) {
        /* This slot's share of the offered GPUs (provider.c splits them). */
        unsigned per = t->a->slot_free.gpus;
        rc = cu_gpu_device_binds("/dev", t->a->gpu_idx + (size_t)t->s->index * per,
                                 t->spec.res.gpus, gpu_binds, &e);
        if (rc) {
            res->status = CU_SB_ERROR;
            (void)cu_snprintf(res->reason, sizeof res->reason, "GPU: %s", e.msg);
            return;
        }
    }
    argv = command_argv(&t->spec, &t->image.config);
    env = cu_task_env_build(&t->spec, t->job, t->replica, t->index, t->count, t->arg);
    all_env = env ? merge_env(&t->image.config, env) : NULL;
    if (!argv && !t->spec.ncommand && env) {
        /* Not the provider's fault: the job and its image name no program. */
        res->status = CU_SB_FAILED;
        (void)cu_snprintf(res->reason, sizeof res->reason,
                          "no command: the job has none and the image has no Entrypoint/Cmd");
        goto out_free_env;
    }
    if (!argv || !all_env) {
        res->status = CU_SB_ERROR;
        (void)cu_snprintf(res->reason, sizeof res->reason, "provider out of memory");
        goto out_free_env;
    }
    o.argv = argv;
    o.env = all_env;
    if (cu_spec_image_is_oci(&t->spec)) {
        o.rootfs = t->image.rootfs;
        o.cwd = t->image.config.workdir; /* NULL: /work */
    }
    o.work_dir = t->work;
    o.out_dir = t->out;
    o.in_dir = t->in;
    /* The slot's directories start each task empty (taskdir.c); only the
     * inputs went in since. */
    o.known_empty = CU_SB_EMPTY_WORK | CU_SB_EMPTY_OUT | (t->spec.ninputs ? 0 : CU_SB_EMPTY_IN);
    o.stdout_path = t->stdout_path;
    o.stderr_path = t->stderr_path;
    o.stdio_cap = CU_STDIO_CAP;
    o.time_limit_ms = t->spec.res.time_ms;
    o.output_limit = t->spec.res.output;
    o.memory_limit = t->spec.res.memory;
    o.disk_limit = t->a->slot_disk;
    o.dev_binds = (const char *const *)gpu_binds;
    if (t->a->cg.version != CU_CG_NONE) {
        (void)cu_snprintf(cgname, sizeof cgname, "task-%lld", (long long)t->replica);
        o.cgroup_parent = &t->a->cg;
        o.cgroup_name = cgname;
        o.cpu_milli = (uint64_t)t->spec.res.cores * 1000;
    }
    rc = start_task(t, &o, &sb, &e);
    if (rc) {
        res->status = CU_SB_ERROR;
        (void)cu_snprintf(res->reason, sizeof res->reason, "sandbox: %s", cu_err_msg(&e, rc));
        goto out_free_env;
    }
    if (t->a->cheat == CU_CHEAT_VANISH) {
        /* Test-only: the provider dies with the task running and never
         * reports; the exchange must notice by the lease alone. */
        cu_warn("replica %lld: --cheat vanish: exiting mid-task", (long long)t->replica);
        cu_sandbox_kill(sb, "provider vanished");
        _exit(3);
    }
    for (;;) {
        if (!killed && t->a->idle_pauses)
            follow_idle(t, sb);
        rc = cu_sandbox_wait(sb, 100);
        if (rc == 0)
            break;
        if (rc != -CU_EAGAIN) {
            res->status = CU_SB_ERROR;
            (void)cu_snprintf(res->reason, sizeof res->reason, "sandbox wait failed: %s",
                     cu_strerror(rc));
            goto out_free_sandbox;
        }
        if (killed)
            continue;
        if (cu_agent_stopping()) {
            cu_sandbox_kill(sb, "provider shutting down");
            *shutdown = killed = true;
        } else if (atomic_load(&t->k.verdict) == KEEP_CANCEL) {
            cu_info("replica %lld: %s; killing the task", (long long)t->replica, t->k.reason);
            cu_sandbox_kill(sb, t->k.reason);
            killed = true;
        } else if (atomic_load(&t->k.verdict) == KEEP_LOST) {
            cu_sandbox_kill(sb, "lease lost");
            *lost = killed = true;
        }
    }
    cu_sandbox_get_result(sb, res);
out_free_sandbox:
    cu_sandbox_free(sb);
    if (res->status == CU_SB_ERROR && t->s->warm)
        cu_slot_warm_discard(t->s); /* whatever went wrong, the next task gets a fresh one */
out_free_env:
    free(all_env);
    cu_task_env_free(env);
    free(argv);
    cu_gpu_binds_free(gpu_binds);
}

/* What this provider cannot take: more GPUs than the slot offers, inputs
 * larger than the slot's disk share. NULL when it fits, else the reason
 * (in buf) for handing the replica back. */
static const char *refusal(const struct task *t, char *buf, size_t n)
{
    uint64_t inputs = 0;
    char have[32], need[32];

    if (t->spec.res.gpus > t->a->slot_free.gpus) {
        (void)cu_snprintf(buf, n, "the task asks for %u GPU(s); this provider offers %u per task",
                          t->spec.res.gpus, t->a->slot_free.gpus);
        return buf;
    }
    for (size_t i = 0; i < t->spec.ninputs; i++)
        inputs += t->spec.inputs[i].size;
    if (t->a->slot_disk && inputs > t->a->slot_disk) {
        cu_fmt_size(inputs, need, sizeof need);
        cu_fmt_size(t->a->slot_disk, have, sizeof have);
        (void)cu_snprintf(buf, n, "the task's inputs need %s; this provider's --disk cap "
                          "gives each task %s", need, have);
        return buf;
    }
    return NULL;
}

/* Sends an "error" report (the exchange requeues) and forgets the replica
 * once it was answered. While shutting down: one short try; otherwise the
 * report is retried while the lease lives. */
static void report_error(struct task *t, const char *reason, bool shutting_down)
{
    long timeout = shutting_down ? CU_SHUTDOWN_REPORT_MS : 30000;
    int64_t backoff = 500;
    char *body;
    enum cu_delivery d;

    cu_warn("replica %lld: error: %s", (long long)t->replica, reason);
    if (!shutting_down)
        t->failed = true;
    while (!(body = cu_error_report(reason))) {
        /* Out of memory: the row stays 'running' when we give up, and a
         * restart reports it abandoned. */
        if (shutting_down || !lease_live(t))
            return;
        cu_agent_nap(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    keeper_signal_stop(&t->k);
    cu_pstate_finished(&t->a->state, t->a->exchange, t->replica, body);
    d = cu_report_deliver(t->s->http, &t->a->cache, t->replica, body, timeout, shutting_down);
    if (d != CU_UNSENT)
        cu_pstate_forget_later(&t->a->state, t->a->exchange, t->replica);
    free(body);
}

/* Commit, then reveal (docs/api.md "Trust"): POSTs the commit of root and
 * keeps the lease alive until the commit answer or a heartbeat answer says
 * "reveal":true. Returns 0 to go on with the upload and report (also when
 * the exchange cancelled the task meanwhile, or predates commit-reveal),
 * -CU_ECANCELLED when the lease was lost or the provider stops (nothing to
 * report then; the caller tells which). Blocks until the reveal. */
static int commit_and_wait(struct task *t, const struct cu_hash *root)
{
    struct cu_http_result r;
    char commit[CU_HASH_HEX_LEN + 1], path[64], desc[700];
    json_t *body;
    int64_t backoff = 500, started = cu_mono_ms();
    int rc = 0;

    cu_trust_commit_hex(t->a->id.id, root, commit);
    body = json_pack("{s:s}", "commit", commit);
    if (!body)
        return -CU_ENOMEM;
    (void)cu_snprintf(path, sizeof path, "/v1/replicas/%lld/commit", (long long)t->replica);
    cu_http_result_init(&r);
    for (;;) {
        rc = cu_http_request_json(t->s->http, "POST", path, body, 30000, &r);
        if (rc == 0 && r.status == 200)
            break;
        cu_http_result_describe(&r, desc, sizeof desc);
        if (rc == 0 && r.status == 404 && strstr(r.err_msg, "no route")) {
            cu_warn("replica %lld: the exchange has no commit route; reporting directly",
                    (long long)t->replica);
            rc = 1;
            break;
        }
        if (rc == 0 && r.status >= 400 && r.status < 500) {
            cu_warn("replica %lld: commit refused: %s", (long long)t->replica, desc);
            (void)cu_snprintf(t->k.reason, sizeof t->k.reason, "%s", desc);
            rc = -CU_ECANCELLED;
            goto out_release;
        }
        if (!lease_live(t)) {
            rc = -CU_ECANCELLED;
            goto out_release;
        }
        cu_agent_nap(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    if (rc == 1) {
        rc = 0;
        goto out_release;
    }
    if (json_is_true(json_object_get(r.json, "reveal")))
        atomic_store(&t->k.reveal, true);
    cu_info("replica %lld: committed %.16s…%s", (long long)t->replica, commit,
            atomic_load(&t->k.reveal) ? "; revealing" : "; waiting for the other replicas");
    atomic_store(&t->k.fast, true);
    /* The reveal comes when the task's other replicas have committed. A
     * heartbeat answer says so within a second; asking again with the same
     * commit (idempotent, and only reads once it is stored) says so sooner:
     * after 25 ms, then twice as long each time, up to REVEAL_ASK_MAX_MS. */
    for (int64_t ask_ms = 25; !atomic_load(&t->k.reveal) && lease_live(t);) {
        int64_t until = cu_mono_ms() + ask_ms;
        while (!atomic_load(&t->k.reveal) && lease_live(t) && cu_mono_ms() < until)
            cu_agent_nap(until - cu_mono_ms() < 25 ? until - cu_mono_ms() : 25);
        if (atomic_load(&t->k.reveal) || !lease_live(t))
            break;
        ask_ms = ask_ms * 2 > REVEAL_ASK_MAX_MS ? REVEAL_ASK_MAX_MS : ask_ms * 2;
        if (cu_http_request_json(t->s->http, "POST", path, body, 30000, &r) == 0 &&
            r.status == 200) {
            if (json_is_true(json_object_get(r.json, "reveal")))
                atomic_store(&t->k.reveal, true);
        } else if (r.status >= 400 && r.status < 500) {
            /* The keeper's next heartbeat tells what happened. */
            while (!atomic_load(&t->k.reveal) && lease_live(t))
                cu_agent_nap(25);
        }
    }
    if (atomic_load(&t->k.verdict) == KEEP_LOST || cu_agent_stopping())
        rc = -CU_ECANCELLED;
    else if (!atomic_load(&t->k.reveal))
        cu_info("replica %lld: %s; reporting anyway", (long long)t->replica, t->k.reason);
    else if (cu_mono_ms() - started > 1000)
        cu_info("replica %lld: reveal after %lld ms", (long long)t->replica,
                (long long)(cu_mono_ms() - started));
out_release:
    cu_http_result_release(&r);
    json_decref(body);
    return rc;
}

/* After the sandbox ended normally: collect, upload, report. */
static void report_result(struct task *t, const struct cu_sandbox_result *res)
{
    struct cu_report rep = {.status = cu_sandbox_status_name(res->status),
                            .reason = res->reason[0] ? res->reason : NULL,
                            .cpu_ms = res->cpu_ms,
                            .wall_ms = res->wall_ms};
    struct cu_outputs o;
    struct cu_err e = {0};
    json_t *j;
    char *body = NULL;
    /* Small outputs and logs travel inside the report (docs/api.md): no
     * cache copy, no PUT per blob. */
    uint64_t room = CU_REPORT_INLINE_MAX;
    bool committed;
    int rc;

    cu_outputs_init(&o);
    if (res->status == CU_SB_OK || res->status == CU_SB_FAILED) {
        rep.has_exit_code = res->term_signal == 0;
        rep.exit_code = res->exit_code;
    }
    if (res->status == CU_SB_OK)
        rep.reason = NULL;
    /* An out directory the sandbox found empty is not read again. */
    rc = res->out_empty ? cu_outputs_none(&o, &e)
                        : cu_outputs_collect(t->out, t->spec.outputs, t->spec.noutputs,
                                             &t->a->cache, t->spec.res.output, &room, &o, &e);
    if (rc == 0 && res->status == CU_SB_OK && cu_cheat_corrupts(t->a->cheat, t->replica)) {
        /* Test-only (--cheat): the same files, other contents, collected
         * again so the root, the commit and the blobs all carry the lie. */
        cu_warn("replica %lld: --cheat: corrupting %zu output file(s)", (long long)t->replica,
                o.n);
        if (cu_cheat_outputs(t->a->cheat, t->out, &o) != 0) {
            cu_outputs_release(&o);
            report_error(t, "--cheat: cannot rewrite the outputs", false);
            return;
        }
        cu_outputs_release(&o);
        cu_outputs_init(&o);
        room = CU_REPORT_INLINE_MAX;
        rc = cu_outputs_collect(t->out, t->spec.outputs, t->spec.noutputs, &t->a->cache,
                                t->spec.res.output, &room, &o, &e);
    }
    if (rc == -CU_ETOOBIG) {
        /* The sandbox's own check is approximate; this one is exact. */
        cu_outputs_release(&o);
        rep.status = "output_limit";
        rep.has_exit_code = false;
        rep.reason = e.msg;
    } else if (rc) {
        cu_outputs_release(&o);
        report_error(t, e.msg, false);
        return;
    } else {
        rep.outputs = &o;
    }
    /* A stream the sandbox kept nothing of is the empty blob, its file not
     * read: the slot's capture files are reused, so a task that never
     * started (cancelled before) must not send the last task's logs. */
    if ((res->stdout_bytes ? cu_log_collect(&t->a->cache, t->stdout_path, &room, &rep.out)
                           : cu_log_none(&rep.out)) ||
        (res->stderr_bytes ? cu_log_collect(&t->a->cache, t->stderr_path, &room, &rep.err)
                           : cu_log_none(&rep.err))) {
        report_error(t, "cannot store the task's logs in the cache", false);
        goto out_release;
    }
    /* A job of one replica has nobody to copy from: the exchange asks no
     * commitment then, and the round trip is saved. */
    committed = strcmp(rep.status, "ok") == 0 && (t->spec.replication > 1 || t->spec.quorum > 1);
    if (committed) {
        rc = commit_and_wait(t, &o.root);
        if (rc == -CU_ENOMEM) {
            report_error(t, "provider out of memory building the commit", false);
            goto out_release;
        }
        if (rc == -CU_ECANCELLED) {
            if (cu_agent_stopping()) {
                report_error(t, "provider shutting down", true);
            } else {
                cu_warn("replica %lld: lease lost before the reveal (%s); not reported",
                        (long long)t->replica, t->k.reason);
                cu_pstate_forget(&t->a->state, t->a->exchange, t->replica);
            }
            goto out_release;
        }
    }
    rc = upload_all(t, &o, &rep, &e);
    if (rc == -CU_ECANCELLED) {
        if (cu_agent_stopping())
            report_error(t, "provider shutting down", true);
        else {
            cu_warn("replica %lld: lease lost during upload (%s); not reported",
                    (long long)t->replica, t->k.reason);
            cu_pstate_forget(&t->a->state, t->a->exchange, t->replica);
        }
        goto out_release;
    }
    if (rc) {
        report_error(t, e.msg, false);
        goto out_release;
    }
    j = cu_report_to_json(&rep);
    body = j ? cu_json_dumps(j) : NULL;
    json_decref(j);
    if (!body) {
        report_error(t, "provider out of memory building the report", false);
        goto out_release;
    }
    keeper_signal_stop(&t->k);
    /* The reporter stores and sends it while the slot claims its next
     * lease: one write for the reports it holds instead of a commit per
     * task here (docs/performance.md "Tenth session"). The
     * lease needs no heartbeat meanwhile: it was renewed at most one
     * heartbeat_ms ago and lives lease_ms (three of them), and the queue
     * holds at most cu_ahead_held_max reports, which leave together in
     * one or two round trips (docs/api.md "Batched reports"). Replicas of replicated
     * (commit-reveal) jobs are still reported here, in sequence. */
    if (!committed && t->a->reporter && !cu_agent_stopping() &&
        cu_reporter_submit(t->a->reporter, t->replica, body) == 0) {
        body = NULL; /* the reporter's now */
        goto out_release;
    }
    /* Durable before sending: a crash from here on resends this report. */
    cu_pstate_finished(&t->a->state, t->a->exchange, t->replica, body);
    if (cu_report_deliver(t->s->http, &t->a->cache, t->replica, body, 30000, false) !=
        CU_UNSENT)
        cu_pstate_forget_later(&t->a->state, t->a->exchange, t->replica);
out_release:
    free(body);
    cu_blobref_release(&rep.out);
    cu_blobref_release(&rep.err);
    cu_outputs_release(&o);
}

int cu_lease_run(struct cu_slot *s, const json_t *lease)
{
    struct task t;
    struct cu_err e = {0};
    struct cu_sandbox_result res;
    int64_t hb_ms;
    bool lost = false, shutdown = false;
    int rc;

    memset(&t, 0, sizeof t);
    cu_oci_image_init(&t.image);
    t.s = s;
    t.a = s->a;
    hb_ms = t.a->heartbeat_ms;
    cu_spec_init(&t.spec);
    rc = lease_parse(&t, lease, &hb_ms, &e);
    if (rc && t.replica <= 0) {
        cu_error("slot %u: unusable lease: %s", s->index, e.msg);
        t.failed = true;
        goto out_release_spec;
    }
    cu_info("leased replica %lld (job %s, task %u)", (long long)t.replica,
            t.job[0] ? t.job : "?", t.index);
    if (task_paths(&t) != 0) {
        cu_error("replica %lld: task directory path too long", (long long)t.replica);
        t.failed = true;
        goto out_release_spec;
    }
    cu_pstate_running(&t.a->state, t.a->exchange, t.replica, t.job, t.index);
    if (rc) {
        report_error(&t, e.msg, false);
        goto out_remove_dir;
    }
    if (cu_agent_stopping()) {
        report_error(&t, "provider shutting down", true);
        goto out_remove_dir;
    }
    {
        char why[200];
        if (refusal(&t, why, sizeof why)) {
            /* Handed back: the exchange requeues it for another provider. */
            report_error(&t, why, false);
            goto out_remove_dir;
        }
    }
    t.k.cheat = t.a->cheat;
    if (keeper_start(&t.k, s, t.replica, hb_ms) != 0) {
        report_error(&t, "provider cannot start a heartbeat thread", false);
        goto out_remove_dir;
    }
    if ((rc = task_mkdirs(&t, &e)) != 0 || (rc = fetch_inputs(&t, &e)) != 0 ||
        (rc = prepare_image(&t, &e)) != 0) {
        if (atomic_load(&t.k.verdict) == KEEP_LOST) {
            cu_warn("replica %lld: lease lost before start (%s); not reported",
                    (long long)t.replica, t.k.reason);
            cu_pstate_forget(&t.a->state, t.a->exchange, t.replica);
        } else if (cu_agent_stopping()) {
            report_error(&t, "provider shutting down", true);
        } else if (atomic_load(&t.k.verdict) == KEEP_CANCEL) {
            memset(&res, 0, sizeof res);
            res.status = CU_SB_KILLED;
            (void)cu_snprintf(res.reason, sizeof res.reason, "%s", t.k.reason);
            report_result(&t, &res);
        } else {
            report_error(&t, e.msg, false);
        }
        goto out_stop_keeper;
    }

    run_sandbox(&t, &res, &lost, &shutdown);
    s->out_empty = res.out_empty;
    if (lost) {
        cu_warn("replica %lld: lease lost (%s); task killed, not reported",
                (long long)t.replica, t.k.reason);
        cu_pstate_forget(&t.a->state, t.a->exchange, t.replica);
        goto out_stop_keeper;
    }
    if (shutdown) {
        report_error(&t, "provider shutting down", true);
        goto out_stop_keeper;
    }
    cu_info("replica %lld finished: %s%s%s, cpu %llu ms, wall %llu ms", (long long)t.replica,
            cu_sandbox_status_name(res.status), res.reason[0] ? " - " : "", res.reason,
            (unsigned long long)res.cpu_ms, (unsigned long long)res.wall_ms);
    if (res.status == CU_SB_ERROR)
        report_error(&t, res.reason[0] ? res.reason : "sandbox error", false);
    else
        report_result(&t, &res);
    /* For `provider status`, after the report left (the row rides on the
     * next write: not on this task's path). */
    {
        struct cu_pstate_done d = {.id = t.replica, .task = t.index, .cpu_ms = res.cpu_ms,
                                   .wall_ms = res.wall_ms, .memory_peak = res.memory_peak};
        (void)cu_snprintf(d.job, sizeof d.job, "%s", t.job);
        (void)cu_snprintf(d.status, sizeof d.status, "%s", cu_sandbox_status_name(res.status));
        (void)cu_snprintf(d.reason, sizeof d.reason, "%s", res.reason);
        (void)cu_pstate_history_add(&t.a->state, t.a->exchange, &d);
    }

out_stop_keeper:
    keeper_finish(&t.k);
out_remove_dir:
    cu_slot_dir_done(s);
out_release_spec:
    cu_oci_image_release(&t.image);
    cu_spec_release(&t.spec);
    return t.failed ? -CU_EAGAIN : 0;
}
