/* provider.c - the provider agent: start-up (data directory, identity,
 * sandbox check, hello), crash recovery, the slot threads that claim
 * replicas by long-poll, and shutdown on SIGINT/SIGTERM.
 *
 * Free resources: each slot offers an equal share of the machine (cores,
 * memory and GPUs divided by the number of slots, at least one core), so
 * slots never need to agree on what is free and a claim never offers what
 * another slot is using. */
#include "provider/provider.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "fabric/cubench.h"
#include "fabric/probe.h"
#include "fabric/sandbox.h"
#include "provider/agent.h"

#include "base/banned.h"

#define MAX_SLOTS 256
#define HELLO_TIMEOUT_MS 5000
#define RECOVERY_TIMEOUT_MS 10000
#define SHUTDOWN_WAIT_MS 2500 /* for running tasks to be killed and reported */
#define IDLE_CHECK_MS 200      /* a waiting slot looks at the idle verdict this often */
/* A slot holding a warm sandbox long-polls this long; no lease by then
 * (204) ends the sandbox, so an idle provider holds no bwrap and no
 * cgroup of a job that is over. */
#define WARM_IDLE_MS 2000

static volatile sig_atomic_t g_stop;
/* Slot threads blocked in a claim's long-poll are not waited for at
 * shutdown (they may sit there for CU_CLAIM_TIMEOUT_MS); what they use is
 * then never freed, and these keep it reachable until the process exits. */
static struct cu_agent *g_agent;
static struct cu_slot *g_slots;

bool cu_agent_stopping(void)
{
    return g_stop != 0;
}

void cu_agent_stop(void)
{
    g_stop = 1;
}

void cu_agent_nap(int64_t ms)
{
    int64_t end = cu_mono_ms() + ms;

    while (!g_stop) {
        int64_t left = end - cu_mono_ms();
        if (left <= 0)
            break;
        cu_sleep_ms(left < 50 ? left : 50);
    }
}

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

struct saved_signals {
    struct sigaction intr, term, pipe;
};

static void signals_install(struct saved_signals *old)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old->intr);
    sigaction(SIGTERM, &sa, &old->term);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old->pipe);
}

static void signals_restore(const struct saved_signals *old)
{
    sigaction(SIGINT, &old->intr, NULL);
    sigaction(SIGTERM, &old->term, NULL);
    sigaction(SIGPIPE, &old->pipe, NULL);
}

/* ---- start-up ------------------------------------------------------------ */

/* Loads the identity, creating it when the keystore does not exist. */
static int identity_open(struct cu_agent *a, const struct cu_provider_opts *opts,
                         struct cu_err *e)
{
    char path[CU_PATH_MAX];
    int rc;

    if (opts->key_path)
        rc = cu_snprintf(path, sizeof path, "%s", opts->key_path);
    else
        rc = cu_path_join(path, sizeof path, opts->data_dir, "identity.key");
    if (rc)
        return cu_err_set(e, -CU_EINVAL, "key path is too long");
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        rc = cu_identity_generate(&a->id);
        if (rc)
            return cu_err_set(e, rc, "cannot generate an identity: %s", cu_strerror(rc));
        rc = cu_identity_save(&a->id, path, opts->passphrase, false, e);
        if (rc)
            return rc;
        cu_info("created provider identity %s in %s", a->id.id, path);
        if (!opts->passphrase)
            cu_warn("provider key is unencrypted (devnet): %s", path);
    } else {
        rc = cu_identity_load(&a->id, path, opts->passphrase, e);
        if (rc == -CU_ENEEDPASS)
            return cu_err_set(e, rc, "%s is encrypted: give its passphrase", path);
        if (rc)
            return rc;
    }
    /* Loading a plain keystore already warns (crypto/ident.c). */
    return 0;
}

static int agent_open(struct cu_agent *a, const struct cu_provider_opts *opts, struct cu_err *e)
{
    char path[CU_PATH_MAX];
    int rc;

    if (cu_snprintf(a->exchange, sizeof a->exchange, "%s", opts->exchange_url) != 0)
        return cu_err_set(e, -CU_EINVAL, "exchange URL is too long");
    /* 0711 / 0755: the sandbox (running as nobody) must reach tasks/. */
    if (cu_mkdir_p(opts->data_dir, 0711) != 0)
        return cu_err_set(e, -CU_EIO, "cannot create data directory %s: %s", opts->data_dir,
                          strerror(errno));
    if (cu_path_join(a->tasks_dir, sizeof a->tasks_dir, opts->data_dir, "tasks") ||
        cu_path_join(a->oci_dir, sizeof a->oci_dir, opts->data_dir, "oci") ||
        cu_path_join(a->warm_dir, sizeof a->warm_dir, opts->data_dir, "warm") ||
        cu_path_join(path, sizeof path, opts->data_dir, "blobs"))
        return cu_err_set(e, -CU_EINVAL, "data directory path is too long");
    if (cu_mkdir_p(a->tasks_dir, 0755) != 0)
        return cu_err_set(e, -CU_EIO, "cannot create %s: %s", a->tasks_dir, strerror(errno));
    /* Leftovers of a provider that died are nobody's now. */
    if (cu_rm_rf(a->warm_dir) != 0 || cu_mkdir_p(a->warm_dir, 0755) != 0)
        return cu_err_set(e, -CU_EIO, "cannot create %s: %s", a->warm_dir, strerror(errno));
    rc = cu_blobstore_open(&a->cache, path, e);
    if (rc)
        return rc;
    rc = identity_open(a, opts, e);
    if (rc)
        return rc;
    if (cu_path_join(path, sizeof path, opts->data_dir, "state.db"))
        return cu_err_set(e, -CU_EINVAL, "data directory path is too long");
    return cu_pstate_open(&a->state, path, e);
}

/* Runs "true" in the sandbox from a directory under tasks/, as every task
 * will run: cu_sandbox_probe checks bwrap in general, this checks it here
 * (for instance that the task uid can reach the data directory). */
static int sandbox_selftest(struct cu_agent *a, struct cu_err *e)
{
    static const char *const argv[] = {"true", NULL};
    struct cu_sandbox_opts o = CU_SANDBOX_OPTS_INIT;
    struct cu_sandbox_result res;
    struct cu_sandbox *sb = NULL;
    char dir[CU_PATH_MAX], work[CU_PATH_MAX], out[CU_PATH_MAX], in[CU_PATH_MAX];
    char so[CU_PATH_MAX], se[CU_PATH_MAX];
    int64_t end = cu_mono_ms() + 15000;
    int rc;

    if (cu_path_join(dir, sizeof dir, a->tasks_dir, "selftest") ||
        cu_path_join(work, sizeof work, dir, "work") ||
        cu_path_join(out, sizeof out, dir, "out") || cu_path_join(in, sizeof in, dir, "in") ||
        cu_path_join(so, sizeof so, dir, "stdout") || cu_path_join(se, sizeof se, dir, "stderr"))
        return cu_err_set(e, -CU_EINVAL, "data directory path is too long");
    if (cu_rm_rf(dir) || cu_mkdir_p(work, 0755) || cu_mkdir_p(out, 0755) ||
        cu_mkdir_p(in, 0755))
        return cu_err_set(e, -CU_EIO, "cannot create %s: %s", dir, strerror(errno));
    o.argv = argv;
    o.work_dir = work;
    o.out_dir = out;
    o.in_dir = in;
    o.stdout_path = so;
    o.stderr_path = se;
    o.time_limit_ms = 10000;
    rc = cu_sandbox_start(&o, &sb, e);
    if (rc)
        goto out_remove_dir;
    while ((rc = cu_sandbox_wait(sb, 100)) == -CU_EAGAIN && cu_mono_ms() < end)
        ;
    if (rc == 0) {
        cu_sandbox_get_result(sb, &res);
        if (res.status != CU_SB_OK)
            rc = cu_err_set(e, -CU_ESANDBOX, "a test task under %s ended %s: %s", a->tasks_dir,
                            cu_sandbox_status_name(res.status), res.reason);
    } else {
        rc = cu_err_set(e, -CU_ESANDBOX, "a test task under %s did not end", a->tasks_dir);
    }
    cu_sandbox_free(sb);
out_remove_dir:
    cu_rm_rf(dir);
    return rc;
}

/* Removes the groups of providers that died without cleaning up
 * (cumulus-provider-PID whose PID no longer exists) under self. */
static void cgroup_remove_stale(const struct cu_cgroup *self)
{
    DIR *d = opendir(self->dir[CU_CG_MEMORY]);
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        struct cu_cgroup old;
        int64_t pid;
        if (strncmp(de->d_name, "cumulus-provider-", 17) != 0 ||
            cu_parse_i64(de->d_name + 17, 1, INT32_MAX, &pid) != 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (cu_cgroup_child(self, de->d_name, &old) == 0 && cu_cgroup_destroy(&old) == 0)
            cu_info("removed the cgroup %s left by a provider that died", de->d_name);
    }
    closedir(d);
}

/* Makes the parent group of all tasks under the provider's own, with the
 * provider's caps (--cpus, --memory), into a->cg. Its CPU weight is that
 * of `cores` ordinary processes (the cores offered): otherwise all slots'
 * tasks together would weigh as one process against the machine's other
 * load (one session, one autogroup), and run at a fraction of the cores
 * offered whenever something else competes. Where that is not
 * possible (not root and no delegation, no cgroup file system) a->cg stays
 * NONE and one warning says what tasks are limited by instead. On pure v2
 * a group holding processes cannot give its children controllers, so the
 * provider first moves itself into a leaf of its own group. */
static void cgroup_setup(struct cu_agent *a, const struct cu_provider_opts *opts,
                         const char *data_dir, unsigned cores)
{
    struct cu_cgroup self, leaf;
    struct cu_cgroup_limits caps = {.memory = opts->max_memory, .cpu_milli = opts->cpu_milli,
                                    .cpu_weight = cores};
    struct cu_err e = {0};
    char name[64], path[CU_PATH_MAX];
    int rc;

    memset(&a->cg, 0, sizeof a->cg);
    (void)cu_snprintf(name, sizeof name, "cumulus-provider-%d", (int)getpid());
    rc = cu_cgroup_self(&self, &e);
    if (rc == 0) {
        cgroup_remove_stale(&self);
        rc = cu_cgroup_create(&self, name, &caps, &a->cg, &e);
        if (rc && self.version == CU_CG_V2) {
            struct cu_err e2 = {0};
            char leafname[64];
            (void)cu_snprintf(leafname, sizeof leafname, "cumulus-agent-%d", (int)getpid());
            if (cu_cgroup_create(&self, leafname, &(struct cu_cgroup_limits){0}, &leaf, &e2) ==
                    0 &&
                cu_cgroup_attach(&leaf, getpid(), &e2) == 0)
                rc = cu_cgroup_create(&self, name, &caps, &a->cg, &e);
        }
    }
    if (rc) {
        memset(&a->cg, 0, sizeof a->cg);
        cu_warn("no cgroup for tasks (%s): tasks are limited by rlimits only (memory by "
                "address space, processes per uid, no CPU quota)%s; run the provider as root "
                "or in a delegated cgroup for real limits",
                e.msg, opts->cpu_milli || opts->max_memory ? ", and --cpus/--memory caps on all "
                                                             "tasks together are not enforced"
                                                           : "");
        return;
    }
    cu_info("tasks run in cgroup %s (%s)%s", a->cg.dir[CU_CG_MEMORY],
            cu_cgroup_version_name(a->cg.version),
            opts->cpu_milli || opts->max_memory ? " with the provider's caps" : "");
    if (cu_path_join(path, sizeof path, data_dir, "cgroup") == 0 &&
        cu_cgroup_save(&a->cg, path) != 0)
        cu_warn("cannot write %s (provider status will not show usage)", path);
}

/* Removes the tasks' parent group (no task runs any more) and its file. */
static void cgroup_teardown(struct cu_agent *a, const char *data_dir)
{
    char path[CU_PATH_MAX];

    if (a->cg.version == CU_CG_NONE)
        return;
    if (cu_cgroup_destroy(&a->cg) != 0)
        cu_warn("cannot remove cgroup %s", a->cg.dir[CU_CG_MEMORY]);
    memset(&a->cg, 0, sizeof a->cg);
    if (cu_path_join(path, sizeof path, data_dir, "cgroup") == 0)
        unlink(path);
}

/* Writes DATA/provider.json: who runs here, for `cumulus provider status`. */
static void write_info(const struct cu_agent *a, const struct cu_provider_opts *opts,
                       unsigned nslots)
{
    char path[CU_PATH_MAX];
    json_t *j;
    char *text;

    if (cu_path_join(path, sizeof path, opts->data_dir, "provider.json") != 0)
        return;
    j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:I,s:I}", "exchange", a->exchange, "id", a->id.id,
                  "pid", (json_int_t)getpid(), "started_ms", (json_int_t)cu_now_ms(), "slots",
                  (json_int_t)nslots, "cgroup", cu_cgroup_version_name(a->cg.version),
                  "cpu_milli", (json_int_t)opts->cpu_milli, "disk", (json_int_t)opts->max_disk);
    text = j ? cu_json_dumps(j) : NULL;
    if (!text || cu_write_file_atomic(path, text, strlen(text), 0644) != 0)
        cu_warn("cannot write %s", path);
    free(text);
    json_decref(j);
}

/* Says hello until the exchange answers (it may not be up yet), with the
 * provider's ask (price_per_cu, base units per CU) and its measured speed
 * (cu_factor_milli; exchanges that predate them ignore unknown keys).
 * Returns 0, 1 when stopped first, or negative with e set when the
 * exchange refused. */
static int hello(struct cu_agent *a, struct cu_http_client *c, unsigned slots,
                 const struct cu_free_res *total, uint64_t price_per_cu,
                 uint64_t cu_factor_milli, struct cu_err *e)
{
    struct cu_http_result r;
    char last[64] = "", desc[700];
    int64_t backoff = 500;
    json_t *body;
    int rc = 1;

    body = json_pack("{s:I,s:I,s:I,s:I,s:s,s:I,s:I}", "slots", (json_int_t)slots, "cores",
                     (json_int_t)total->cores, "memory", (json_int_t)total->memory, "gpus",
                     (json_int_t)total->gpus, "version", CU_PROVIDER_VERSION, "price_per_cu",
                     (json_int_t)price_per_cu, "cu_factor_milli", (json_int_t)cu_factor_milli);
    if (body && a->owner[0] && json_object_set_new(body, "owner", json_string(a->owner)) != 0) {
        json_decref(body);
        body = NULL;
    }
    if (body && a->disk && json_object_set_new(body, "disk", json_integer((json_int_t)(
                                a->disk > INT64_MAX ? INT64_MAX : a->disk))) != 0) {
        json_decref(body);
        body = NULL;
    }
    if (body && a->nallow_images) {
        /* The exchange leases only jobs on these images to this provider. */
        json_t *list = json_array();
        for (size_t i = 0; list && i < a->nallow_images; i++)
            json_array_append_new(list, json_string(a->allow_images[i]));
        if (!list || json_object_set_new(body, "allow_images", list) != 0) {
            json_decref(body);
            body = NULL;
        }
    }
    if (!body)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    cu_http_result_init(&r);
    while (!cu_agent_stopping()) {
        int t = cu_http_request_json(c, "POST", "/v1/providers/hello", body, HELLO_TIMEOUT_MS,
                                     &r);
        if (t == 0 && r.status == 200) {
            uint64_t lease = 0, hb = 0;
            struct cu_err je = {0};
            if (cu_json_get_u64(r.json, "hello", "lease_ms", true, &lease, &je) ||
                cu_json_get_u64(r.json, "hello", "heartbeat_ms", false, &hb, &je) ||
                lease == 0 || lease > 24ULL * 3600 * 1000) {
                rc = cu_err_set(e, -CU_EPROTO, "exchange %s: bad hello answer: %s", a->exchange,
                                je.msg[0] ? je.msg : "lease_ms out of range");
                break;
            }
            if (hb == 0 || hb >= lease)
                hb = lease / 3 ? lease / 3 : 1;
            a->lease_ms = (int64_t)lease;
            a->heartbeat_ms = (int64_t)hb;
            rc = 0;
            break;
        }
        cu_http_result_describe(&r, desc, sizeof desc);
        if (t == 0 && (r.status == 400 || r.status == 403 || r.status == 404 ||
                       r.status == 405 || r.status == 413)) {
            rc = cu_err_set(e, -CU_EPROTO, "exchange %s refused hello: %s", a->exchange, desc);
            break;
        }
        if (strcmp(last, r.err_code) != 0) {
            cu_warn("exchange %s not answering yet: %s (retrying)", a->exchange, desc);
            (void)cu_snprintf(last, sizeof last, "%s", r.err_code);
        }
        cu_agent_nap(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
    cu_http_result_release(&r);
    json_decref(body);
    return rc;
}

/* Tells the exchange what a crash left behind: replicas that were running
 * are reported abandoned (status "error": requeued at once, the task is
 * not blamed); finished reports are sent again. Then clears tasks/. */
static void recover(struct cu_agent *a, struct cu_http_client *c)
{
    struct cu_pstate_row *rows = NULL;
    size_t n = 0;
    int others;

    others = cu_pstate_forget_others(&a->state, a->exchange);
    if (others > 0)
        cu_info("forgot %d replica(s) held for other exchanges", others);
    if (cu_pstate_list(&a->state, a->exchange, &rows, &n) != 0) {
        cu_error("cannot read the local replica table; nothing recovered");
        n = 0;
    }
    for (size_t i = 0; i < n && !cu_agent_stopping(); i++) {
        struct cu_pstate_row *row = &rows[i];
        char *body = NULL;
        const char *send;
        enum cu_delivery d;

        if (strcmp(row->state, "finished") == 0 && row->report_json) {
            send = row->report_json;
            cu_info("re-sending the report of replica %lld (job %s, task %u)",
                    (long long)row->id, row->job, row->task);
        } else if (strcmp(row->state, "running") == 0) {
            body = cu_error_report("provider restarted; task abandoned");
            if (!body)
                continue; /* kept: tried again at the next start */
            send = body;
            cu_info("reporting replica %lld (job %s, task %u) abandoned by a restart",
                    (long long)row->id, row->job, row->task);
        } else {
            cu_pstate_forget(&a->state, a->exchange, row->id);
            continue;
        }
        d = cu_report_deliver(c, &a->cache, row->id, send, RECOVERY_TIMEOUT_MS, false);
        if (d != CU_UNSENT)
            cu_pstate_forget(&a->state, a->exchange, row->id);
        free(body);
    }
    cu_pstate_rows_free(rows, n);
    /* No slot runs yet: everything under tasks/ is a leftover. */
    if (cu_rm_rf(a->tasks_dir) != 0 || cu_mkdir_p(a->tasks_dir, 0755) != 0)
        cu_warn("cannot clear %s", a->tasks_dir);
}

/* ---- slots --------------------------------------------------------------- */

/* Set when the exchange refused a claim with "sequential" (one from
 * before claiming ahead): every slot claims one lease at a time then. */
static atomic_bool g_no_ahead;

/* Runs one lease (borrowed) in slot s. A provider-side failure sets
 * *nap_ms to the pause before the next claim (*error_pause, doubling
 * while failures follow each other). */
static void slot_run(struct cu_slot *s, const json_t *lease, int64_t *error_pause,
                     int64_t *nap_ms)
{
    struct cu_ahead *ah = s->a->ahead;
    int64_t t0 = cu_mono_ms();
    int rc;

    atomic_store(&s->busy, true);
    atomic_fetch_add(&s->a->leases_running, 1);
    if (ah)
        cu_ahead_running(ah, true);
    rc = cu_lease_run(s, lease);
    atomic_store(&s->a->lease_ended_ms, (long long)cu_mono_ms());
    if (atomic_fetch_sub(&s->a->leases_running, 1) == 1 && s->a->reporter)
        cu_reporter_idle(s->a->reporter);
    if (ah) {
        cu_ahead_running(ah, false);
        cu_ahead_note(ah, cu_mono_ms() - t0);
    }
    cu_slot_warm_after_lease(s);
    atomic_store(&s->busy, false);
    if (rc == 0) {
        *error_pause = 0;
    } else if (!cu_agent_stopping()) {
        /* Our own failure (sandbox, disk, download): do not grab and fail
         * the whole queue at full speed. */
        *error_pause = *error_pause ? *error_pause * 2 : 1000;
        if (*error_pause > 30000)
            *error_pause = 30000;
        cu_warn("slot %u: pausing %lld ms after a provider-side error", s->index,
                (long long)*error_pause);
        *nap_ms = *error_pause;
    }
}

/* A queued lease (ahead.c): run it while its lease is surely alive (it
 * lives three heartbeat intervals from the claim, and its first
 * heartbeat follows the start within CU_FIRST_BEAT_MS), else hand it
 * back. Takes lease. */
static void slot_run_queued(struct cu_slot *s, json_t *lease, int64_t age_ms,
                            int64_t *error_pause, int64_t *nap_ms)
{
    if (cu_agent_stopping())
        cu_ahead_hand_back(s, lease, "provider shutting down", true);
    else if (age_ms > 2 * s->a->heartbeat_ms)
        cu_ahead_hand_back(s, lease, "lease waited too long in the provider's queue", false);
    else
        slot_run(s, lease, error_pause, nap_ms);
    json_decref(lease);
}

/* The claim answer r (200) into leases to run: returns the first lease
 * (borrowed from r) and queues the others (claimed ahead). */
static const json_t *claim_take(struct cu_slot *s, const struct cu_http_result *r)
{
    json_t *leases = json_object_get(r->json, "leases"), *l;
    size_t i;

    if (!json_is_array(leases) || json_array_size(leases) == 0)
        return json_object_get(r->json, "lease");
    if (json_array_size(leases) > 1)
        cu_ahead_record(s->a, leases);
    json_array_foreach (leases, i, l) {
        if (i == 0)
            continue;
        if (!s->a->ahead || cu_ahead_push(s->a->ahead, l) != 0)
            cu_ahead_hand_back(s, l, "provider queue full", false);
    }
    if (json_array_size(leases) > 1)
        cu_debug("slot %u: %zu lease(s) claimed ahead", s->index, json_array_size(leases) - 1);
    return json_array_get(leases, 0);
}

static void *slot_main(void *arg)
{
    struct cu_slot *s = arg;
    struct cu_ahead *ah = s->a->ahead;
    const struct cu_free_res *f = &s->a->slot_free;
    struct cu_http_result r;
    char last[64] = "", desc[700];
    int64_t backoff = 500, error_pause = 0, nap_ms = 0, age_ms;
    bool waiting = false;
    json_t *body, *queued;

    body = json_pack("{s:I,s:{s:I,s:I,s:I}}", "wait_ms", (json_int_t)CU_CLAIM_WAIT_MS, "free",
                     "cores", (json_int_t)f->cores, "memory", (json_int_t)f->memory, "gpus",
                     (json_int_t)f->gpus);
    cu_http_result_init(&r);
    if (cu_slot_warm_init(s) != 0)
        cu_warn("slot %u: cannot start its warm sandbox keeper: a sandbox per task", s->index);
    while (body && !cu_agent_stopping()) {
        unsigned want = 1;
        int rc;

        /* Leases claimed ahead go before any new claim. */
        if (ah && (queued = cu_ahead_pop(ah, &age_ms)) != NULL) {
            slot_run_queued(s, queued, age_ms, &error_pause, &nap_ms);
            continue;
        }
        if (nap_ms) {
            /* After a provider-side failure, before claiming more (the
             * queued leases went first: they must not wait). */
            cu_agent_nap(nap_ms);
            nap_ms = 0;
            if (cu_agent_stopping())
                break;
        }
        if (s->a->idle && !cu_idle_monitor_idle(s->a->idle)) {
            /* Paused for the owner: nothing stays warm meanwhile. */
            cu_slot_warm_release(s);
            if (!waiting) {
                char why[192];
                cu_idle_monitor_reason(s->a->idle, why, sizeof why);
                cu_info("slot %u: waiting for idle before claiming (%s)", s->index, why);
                waiting = true;
            }
            cu_agent_nap(IDLE_CHECK_MS);
            continue;
        }
        if (waiting)
            cu_info("slot %u: machine idle, claiming again", s->index);
        waiting = false;
        (void)json_object_set_new(body, "wait_ms",
                                  json_integer(cu_slot_warm_held(s) ? WARM_IDLE_MS
                                                                    : CU_CLAIM_WAIT_MS));
        if (ah && !atomic_load(&g_no_ahead))
            want = cu_ahead_want(ah, s->a);
        if (want > 1) {
            (void)json_object_set_new(body, "max", json_integer(want));
            (void)json_object_set_new(body, "sequential", json_true());
        } else {
            (void)json_object_del(body, "max");
            (void)json_object_del(body, "sequential");
        }
        rc = cu_http_request_json(s->http, "POST", "/v1/claims", body, CU_CLAIM_TIMEOUT_MS, &r);
        if (want > 1 && rc == 0 && r.status == 400 && !atomic_exchange(&g_no_ahead, true))
            cu_warn("exchange %s refused a claim ahead (%s): one lease per claim from now on",
                    s->a->exchange, r.err_code);
        if (!(rc == 0 && r.status == 200) && cu_slot_warm_held(s))
            cu_slot_warm_idle(s); /* no lease right away: idle, or the exchange is away */
        if (rc == 0 && (r.status == 200 || r.status == 204)) {
            const json_t *lease;
            if (last[0])
                cu_info("slot %u: exchange answering claims again", s->index);
            last[0] = '\0';
            backoff = 500;
            if (r.status == 204 || json_object_get(r.json, "challenge")) {
                if (want > 1)
                    cu_ahead_claimed(ah, want);
                if (r.status == 204)
                    continue;
                /* A proof of capability first; then claim again. */
                if (cu_trust_challenge(s, json_object_get(r.json, "challenge")) != 0)
                    cu_agent_nap(backoff);
                continue;
            }
            lease = claim_take(s, &r);
            if (want > 1)
                cu_ahead_claimed(ah, want);
            slot_run(s, lease, &error_pause, &nap_ms);
            continue;
        }
        if (want > 1)
            cu_ahead_claimed(ah, want);
        cu_http_result_describe(&r, desc, sizeof desc);
        if (strcmp(last, r.err_code) != 0) {
            cu_warn("slot %u: claim failed: %s (retrying)", s->index, desc);
            (void)cu_snprintf(last, sizeof last, "%s", r.err_code);
        }
        cu_agent_nap(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    /* Stopping: leases still queued are handed back (one short try each;
     * the unanswered keep their rows for recover()). */
    atomic_store(&s->busy, true);
    while (ah && (queued = cu_ahead_pop(ah, &age_ms)) != NULL) {
        cu_ahead_hand_back(s, queued, "provider shutting down", true);
        json_decref(queued);
    }
    atomic_store(&s->busy, false);
    if (!body)
        cu_error("slot %u: out of memory", s->index);
    cu_slot_warm_fini(s);
    cu_slot_beats_fini(s);
    cu_http_result_release(&r);
    json_decref(body);
    atomic_store(&s->done, true);
    return NULL;
}

static int slots_start(struct cu_agent *a, struct cu_slot *slots, unsigned n, struct cu_err *e)
{
    sigset_t block, old;
    int rc = 0;

    /* Signals go to the main thread only; the slots (and the sandboxes and
     * keepers they start, which reset or inherit this) poll the flag. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 0; i < n; i++) {
        struct cu_slot *s = &slots[i];
        s->a = a;
        s->index = i;
        atomic_init(&s->busy, false);
        atomic_init(&s->done, false);
        s->http = cu_http_client_new(a->exchange, &a->id);
        s->hb = cu_http_client_new(a->exchange, &a->id);
        if (!s->http || !s->hb) {
            rc = cu_err_set(e, -CU_ENOMEM, "cannot create HTTP clients for slot %u", i);
            break;
        }
        if ((rc = cu_slot_dir_init(s, e)) != 0)
            break;
        if (pthread_create(&s->thread, NULL, slot_main, s) != 0) {
            rc = cu_err_set(e, -CU_ENOMEM, "cannot start the thread of slot %u", i);
            break;
        }
        s->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Stops the slots: running tasks are killed and reported by their own
 * threads (they watch the flag); waits up to SHUTDOWN_WAIT_MS for them.
 * Returns true when every thread has returned and was joined (so the
 * caller may free what they used). */
static bool slots_stop(struct cu_slot *slots, unsigned n)
{
    int64_t start = cu_mono_ms();
    bool all_done;

    cu_agent_stop();
    for (;;) {
        int64_t now = cu_mono_ms();
        bool busy = false;
        all_done = true;
        for (unsigned i = 0; i < n; i++) {
            if (!slots[i].started)
                continue;
            busy |= atomic_load(&slots[i].busy);
            all_done &= atomic_load(&slots[i].done);
        }
        /* Idle slots leave within one nap (50 ms); give them 200 ms. Slots
         * in a long-poll never will, and need not: nothing runs there. */
        if (all_done || (!busy && now - start >= 200) || now - start >= SHUTDOWN_WAIT_MS)
            break;
        cu_sleep_ms(20);
    }
    if (!all_done)
        return false;
    for (unsigned i = 0; i < n; i++) {
        if (slots[i].started)
            pthread_join(slots[i].thread, NULL);
        slots[i].started = false;
    }
    return true;
}

static void slots_free(struct cu_slot *slots, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        cu_http_client_free(slots[i].http);
        cu_http_client_free(slots[i].hb);
    }
    free(slots);
}

/* ---- the agent ----------------------------------------------------------- */

int cu_provider_run(const struct cu_provider_opts *opts, struct cu_err *e)
{
    struct saved_signals old_signals;
    struct cu_machine m;
    struct cu_free_res total;
    struct cu_http_client *c = NULL;
    struct cu_agent *a;
    struct cu_slot *slots = NULL;
    uint64_t factor_milli = 0, bench_ns = 0, price;
    unsigned nslots;
    bool joined = true;
    int rc;

    if (!opts || !opts->exchange_url || !opts->data_dir)
        return cu_err_set(e, -CU_EINVAL, "provider needs an exchange URL and a data directory");
    nslots = opts->slots ? opts->slots : 1;
    price = opts->price_per_cu ? opts->price_per_cu : 1;
    if (nslots > MAX_SLOTS)
        return cu_err_set(e, -CU_EINVAL, "slots: %u is more than %d", nslots, MAX_SLOTS);
    if (price > INT64_MAX)
        return cu_err_set(e, -CU_EINVAL, "price per CU %llu is too large",
                          (unsigned long long)price);
    cu_log_set_role("provider");
    rc = cu_crypto_init();
    if (rc)
        return cu_err_set(e, rc, "cannot initialise libsodium");
    g_stop = 0;
    signals_install(&old_signals);

    a = calloc(1, sizeof *a);
    if (!a) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_restore_signals;
    }
    rc = agent_open(a, opts, e);
    if (rc)
        goto out_free_agent;
    a->cheat = opts->cheat;
    a->warm = !opts->no_warm_sandbox;
    if (opts->owner) {
        if (strlen(opts->owner) != 64 || strspn(opts->owner, "0123456789abcdef") != 64) {
            rc = cu_err_set(e, -CU_EINVAL, "--owner: '%.80s' is not an id (64 lowercase hex)",
                            opts->owner);
            goto out_close_state;
        }
        (void)cu_snprintf(a->owner, sizeof a->owner, "%s", opts->owner);
    }
    a->allow_images = opts->allow_images;
    a->nallow_images = opts->nallow_images;

    rc = cu_sandbox_probe(e);
    if (rc) {
        char why[CU_ERR_MSG_MAX];
        (void)cu_snprintf(why, sizeof why, "%s", cu_err_msg(e, rc));
        rc = cu_err_set(e, rc, "the sandbox does not work on this machine: %s", why);
        goto out_close_state;
    }
    rc = sandbox_selftest(a, e);
    if (rc) {
        char why[CU_ERR_MSG_MAX];
        (void)cu_snprintf(why, sizeof why, "%s", cu_err_msg(e, rc));
        rc = cu_err_set(e, rc, "the sandbox cannot run tasks: %s%s", why,
                        strstr(why, "as the task uid")
                            ? " (tasks run as uid 65534, which must be able to enter "
                              "the data directory: make its parent directories "
                              "searchable with chmod o+x, or pick a --data directory "
                              "outside a private home, e.g. /var/lib/cumulus)"
                            : "");
        goto out_close_state;
    }
    /* The CU factor is always measured, never configured (DESIGN.md §6). */
    rc = cu_cubench_run(&factor_milli, &bench_ns);
    if (rc) {
        rc = cu_err_set(e, rc, "the CU benchmark failed: %s%s", cu_strerror(rc),
                        rc == -CU_ECORRUPT ? " (its checksum is wrong: this build is broken)"
                                           : "");
        goto out_close_state;
    }
    cu_info("CU factor %llu.%03llu (benchmark %llu ms)",
            (unsigned long long)(factor_milli / 1000), (unsigned long long)(factor_milli % 1000),
            (unsigned long long)((bench_ns + 500000) / 1000000));
    cu_machine_probe(&m);
    if (opts->gpus) {
        rc = cu_gpu_parse_list(opts->gpus, m.gpus, a->gpu_idx, &a->ngpus, e);
        if (rc)
            goto out_close_state;
    } else {
        for (a->ngpus = 0; a->ngpus < m.gpus && a->ngpus < CU_GPU_MAX; a->ngpus++)
            a->gpu_idx[a->ngpus] = a->ngpus;
    }
    total.cores = opts->max_cores ? opts->max_cores : m.cores ? m.cores : 1;
    if (opts->cpu_milli && !opts->max_cores)
        total.cores = (unsigned)((opts->cpu_milli + 999) / 1000);
    total.memory = opts->max_memory ? opts->max_memory : m.memory;
    total.gpus = a->ngpus;
    a->slot_disk = opts->max_disk / nslots;
    /* The disk offered: --disk, else what is free where tasks run. */
    a->disk = opts->max_disk ? opts->max_disk : cu_probe_disk_free(opts->data_dir);
    cgroup_setup(a, opts, opts->data_dir, total.cores);
    if (!total.memory) {
        total.memory = 1ULL << 30;
        cu_warn("cannot tell this machine's memory; offering 1 GiB");
    }
    a->slot_free.cores = total.cores / nslots ? total.cores / nslots : 1;
    a->slot_free.memory = total.memory / nslots;
    a->slot_free.gpus = total.gpus / nslots;

    c = cu_http_client_new(a->exchange, &a->id);
    if (!c) {
        rc = cu_err_set(e, -CU_EINVAL, "exchange URL '%s' is not http(s)://host[:port]",
                        a->exchange);
        goto out_close_state;
    }
    cu_info("provider %s: %u slot(s), each offering %u core(s), %llu MiB, %u GPU(s); "
            "exchange %s",
            a->id.id, nslots, a->slot_free.cores,
            (unsigned long long)(a->slot_free.memory >> 20), a->slot_free.gpus, a->exchange);
    rc = hello(a, c, nslots, &total, price, factor_milli, e);
    if (rc == 1) {
        rc = 0; /* stopped before the exchange answered */
        goto out_free_client;
    }
    if (rc)
        goto out_free_client;
    cu_info("registered with %s (lease %lld ms, heartbeat %lld ms)", a->exchange,
            (long long)a->lease_ms, (long long)a->heartbeat_ms);
    write_info(a, opts, nslots);
    recover(a, c);
    if (opts->stake) {
        char key[CU_PATH_MAX];
        if (opts->key_path)
            (void)cu_snprintf(key, sizeof key, "%s", opts->key_path);
        else if (cu_path_join(key, sizeof key, opts->data_dir, "identity.key") != 0)
            (void)cu_snprintf(key, sizeof key, "%s", "DATA/identity.key");
        rc = cu_trust_stake(a, c, opts->stake, key, e);
        if (rc)
            goto out_free_client;
    }
    if (a->cheat != CU_CHEAT_NONE)
        cu_warn("--cheat is on: this provider misbehaves on purpose (devnet trust tests only)");

    if (opts->idle_only || opts->has_max_load) {
        struct cu_idle_opts io = {.idle_only = opts->idle_only,
                                  .idle_after_ms = opts->idle_after_ms,
                                  .max_load_milli = opts->max_load_milli,
                                  .probe_file = opts->idle_probe};
        rc = cu_idle_monitor_start(&io, &a->idle, e);
        if (rc)
            goto out_free_client;
        a->idle_pauses = opts->idle_only;
    }
    slots = calloc(nslots, sizeof *slots);
    if (!slots) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_stop_idle;
    }
    g_agent = a;
    g_slots = slots;
    /* As many pending reports as leases may be held (claimed ahead): a
     * slot never waits for its own report, and the reports of a run of
     * short tasks leave together, one request per batch (lease.c). */
    rc = cu_reporter_start(a, cu_ahead_held_max(nslots), &a->reporter, e);
    if (rc == 0 && (rc = cu_ahead_new(nslots, &a->ahead)) != 0)
        rc = cu_err_set(e, rc, "out of memory");
    if (rc == 0)
        rc = slots_start(a, slots, nslots, e);
    if (rc == 0) {
        while (!cu_agent_stopping())
            cu_sleep_ms(50);
        cu_info("stopping: running tasks are killed and reported");
    }
    joined = slots_stop(slots, nslots);
    /* The slots that returned have handed over their last reports; one
     * still in a claim's long-poll finds the reporter closed and reports
     * itself. Queued reports get one short try each, the rest are resent
     * by recover() at the next start. */
    if (!cu_reporter_stop(a->reporter, SHUTDOWN_WAIT_MS)) {
        cu_warn("a report is still unanswered at exit; it is sent again at the next start");
        joined = false;
    }
    if (!joined) {
        /* Threads still in a claim's long-poll, or the reporter still
         * waiting for an answer: leave what they use alone (the idle
         * monitor and the state database included). */
        cu_info("stopped");
        cu_http_client_free(c);
        cgroup_teardown(a, opts->data_dir);
        signals_restore(&old_signals);
        return rc;
    }
    slots_free(slots, nslots);
    cu_reporter_free(a->reporter); /* no slot thread is left to submit */
    a->reporter = NULL;
    cu_ahead_free(a->ahead); /* empty: each slot handed back what it found queued */
    a->ahead = NULL;
    g_slots = NULL;
    g_agent = NULL;
    if (rc == 0)
        cu_info("stopped");

out_stop_idle:
    cu_idle_monitor_stop(a->idle);
out_free_client:
    cu_http_client_free(c);
    cgroup_teardown(a, opts->data_dir);
out_close_state:
    cu_pstate_close(&a->state);
out_free_agent:
    cu_identity_wipe(&a->id);
    free(a);
out_restore_signals:
    signals_restore(&old_signals);
    return rc;
}
