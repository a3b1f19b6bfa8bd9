/* warm_slot.c - a slot's warm sandboxes (fabric/warm.h): the one its
 * current job's tasks run in, and a spare started ahead of time.
 *
 * Starting a sandbox (bwrap, namespaces, a cgroup) and ending one take
 * milliseconds that must not sit on a task's path or delay the next claim.
 * So each slot has a keeper thread that does both: it keeps spares of the
 * last sandbox's shape ready to take a new job's first task, and it ends
 * the sandboxes the slot hands it (replaced during a lease, or idle). The
 * keeper lives exactly as long as its slot thread: bwrap runs with
 * --die-with-parent, which follows the thread that started it, so a
 * sandbox dies with the keeper at the latest.
 *
 * Neither is free while a task runs: a start is ~6 ms of CPU (bwrap, a
 * network namespace, the cgroups) and an end ~2 ms more, and beside a new
 * job's first task on two cores they cost that job ~2.5 ms of its ~9
 * (docs/performance.md, "Eleventh session"). So the keeper does them when
 * the provider is quiet (no lease running, none ended in the last
 * QUIET_MS: its report and the requester's download are done by then),
 * unless the work cannot wait: fewer than SPARES_URGENT spares ready or
 * starting, or FREES_URGENT sandboxes waiting to end. A lone requester's
 * job then finds a spare ready and nothing starting beside it; jobs that
 * follow one another without a pause get a start per job as before, and
 * as many spares ahead. Spares belong to no job, so an idle slot keeps
 * them (only its job's sandbox ends): a job after a quiet minute starts as
 * fast as one after a quiet second. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "provider/agent.h"

#include "base/banned.h"

#define TO_FREE_MAX 8
/* Spares kept ready per slot, and keeper threads starting them. A start
 * takes 10-30 ms here (fork, the cgroup join's RCU wait, bwrap's setup),
 * mostly waiting, and one slot may take a new job every 10-15 ms (a
 * client's jobs go to the same slot one after another): two keepers start
 * two spares at once, and while jobs come without a pause each take
 * starts one at once (below SPARES_URGENT), so a start has two jobs' time
 * to be ready, as when the pool was two spares refilled at every take. An
 * idle spare is a sleeping bwrap monitor and supervisor. */
#define SPARES 3
#define SPARES_URGENT 2
#define KEEPERS 2
/* Ended sandboxes wait for a quiet provider up to this many. */
#define FREES_URGENT 4
/* The provider is quiet this long after its last lease ended. */
#define QUIET_MS 20

struct cu_warm_keeper {
    struct cu_slot *s;
    pthread_t thread[KEEPERS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct cu_warm_shape *want; /* keep spares of this shape ready (owned) */
    const struct cu_warm *want_of; /* the sandbox want was copied from (compared only) */
    struct cu_warm *spare[SPARES]; /* ready, no owner yet; the first nspare */
    size_t nspare;
    unsigned starting;          /* spares being started (not under the lock) */
    unsigned gen;               /* counts releases: a spare started before one is not kept */
    unsigned started;           /* counts finished starts (a task waits for one) */
    struct cu_warm *to_free[TO_FREE_MAX];
    size_t nfree;
    int note_fd; /* DATA/tasks/slot-N.cgroup, or -1 (slot thread only) */
};

/* A slot file's one record, fixed width so that each task's rewrites it
 * in place with one pwrite (no truncate): "REPLICA GROUP", spaces, "\n". */
#define NOTE_LEN 96

/* DATA/warm/SLOT-N: each sandbox gets its own (removed with it). Under
 * the keeper's lock or before the keeper runs. */
static int warm_base(struct cu_slot *s, char *out, size_t n)
{
    char name[32];
    if (cu_snprintf(name, sizeof name, "%u-%u", s->index, s->warm_serial++) != 0)
        return -CU_EINVAL;
    return cu_path_join(out, n, s->a->warm_dir, name);
}

/* How long until the provider is quiet (see the head comment): 0 when it
 * is; -1 while a lease runs. */
static int64_t quiet_in(const struct cu_agent *a)
{
    int64_t since;

    if (atomic_load(&a->leases_running) > 0)
        return -1;
    since = cu_mono_ms() - atomic_load(&a->lease_ended_ms);
    return since >= QUIET_MS ? 0 : QUIET_MS - since;
}

static void *keeper_main(void *arg)
{
    struct cu_warm_keeper *k = arg;

    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        unsigned have = (unsigned)k->nspare + k->starting;
        bool start_due = k->want && have < SPARES;
        int64_t quiet = start_due || k->nfree > 0 ? quiet_in(k->s->a) : -1;

        /* Ending a sandbox first when too many wait (each holds a bwrap,
         * a supervisor and cgroups), and no task needs a spare now. */
        if (k->nfree >= FREES_URGENT && !(start_due && k->nspare == 0)) {
            struct cu_warm *w = k->to_free[--k->nfree];
            pthread_mutex_unlock(&k->mu);
            cu_warm_free(w);
            pthread_mutex_lock(&k->mu);
            continue;
        }
        if (start_due && (have < SPARES_URGENT || quiet == 0)) {
            struct cu_warm_shape *sh = cu_warm_shape_dup(k->want);
            struct cu_warm *w = NULL;
            struct cu_err e = {0};
            char base[CU_PATH_MAX];
            unsigned gen = k->gen;
            int rc;
            if (!sh) { /* out of memory: no spares until the next lease asks */
                cu_warm_shape_free(k->want);
                k->want = NULL;
                continue;
            }
            k->starting++;
            rc = warm_base(k->s, base, sizeof base);
            pthread_mutex_unlock(&k->mu);
            if (rc == 0)
                rc = cu_warm_start_shape(sh, base, &w, &e);
            cu_warm_shape_free(sh);
            if (rc)
                cu_warn("slot %u: cannot start a spare warm sandbox: %s", k->s->index,
                        cu_err_msg(&e, rc));
            pthread_mutex_lock(&k->mu);
            k->starting--;
            k->started++;
            pthread_cond_broadcast(&k->cv); /* a task may wait for this spare */
            if (!w && k->gen == gen) {
                /* Not retried until the next lease asks again. */
                cu_warm_shape_free(k->want);
                k->want = NULL;
            }
            if (w && (k->stop || k->gen != gen || k->nspare >= SPARES)) {
                pthread_mutex_unlock(&k->mu);
                cu_warm_free(w);
                pthread_mutex_lock(&k->mu);
            } else if (w) {
                k->spare[k->nspare++] = w;
            }
            continue;
        }
        if (k->nfree > 0 && quiet == 0) {
            struct cu_warm *w = k->to_free[--k->nfree];
            pthread_mutex_unlock(&k->mu);
            cu_warm_free(w);
            pthread_mutex_lock(&k->mu);
            continue;
        }
        if (quiet > 0) {
            struct timespec until;
            cu_mono_deadline(&until, quiet);
            (void)pthread_cond_timedwait(&k->cv, &k->mu, &until);
        } else if (quiet < 0 && (start_due || k->nfree > 0)) {
            /* A lease's end wakes no keeper (that was a wake-up of both
             * per task): with work waiting, look again every QUIET_MS. */
            struct timespec until;
            cu_mono_deadline(&until, QUIET_MS);
            (void)pthread_cond_timedwait(&k->cv, &k->mu, &until);
        } else {
            pthread_cond_wait(&k->cv, &k->mu);
        }
    }
    while (k->nfree > 0)
        cu_warm_free(k->to_free[--k->nfree]);
    while (k->nspare > 0)
        cu_warm_free(k->spare[--k->nspare]);
    cu_warm_shape_free(k->want);
    k->want = NULL;
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int cu_slot_warm_init(struct cu_slot *s)
{
    struct cu_warm_keeper *k;

    s->warm = NULL;
    s->keeper = NULL;
    if (!s->a->warm)
        return 0;
    k = calloc(1, sizeof *k);
    if (!k)
        return -CU_ENOMEM;
    k->s = s;
    k->note_fd = -1;
    pthread_mutex_init(&k->mu, NULL);
    {
        pthread_condattr_t ca; /* the quiet wait's deadline is monotonic */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&k->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    for (int i = 0; i < KEEPERS; i++) {
        if (pthread_create(&k->thread[i], NULL, keeper_main, k) != 0)
            break;
        k->nthreads++;
    }
    if (k->nthreads == 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return -CU_ENOMEM;
    }
    s->keeper = k;
    return 0;
}

/* Hands w to the keeper to end; ends it here when the keeper is busy with
 * too many. NULL is fine. */
static void retire(struct cu_slot *s, struct cu_warm *w)
{
    struct cu_warm_keeper *k = s->keeper;
    bool queued = false;

    if (!w)
        return;
    if (k) {
        pthread_mutex_lock(&k->mu);
        if (k->want_of == w)
            k->want_of = NULL; /* its address may come back as another sandbox */
        if (k->nfree < TO_FREE_MAX) {
            k->to_free[k->nfree++] = w;
            queued = true;
            pthread_cond_broadcast(&k->cv);
        }
        pthread_mutex_unlock(&k->mu);
    }
    if (!queued)
        cu_warm_free(w);
}

void cu_slot_warm_fini(struct cu_slot *s)
{
    struct cu_warm_keeper *k = s->keeper;

    cu_warm_free(s->warm);
    s->warm = NULL;
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    for (int i = 0; i < k->nthreads; i++)
        pthread_join(k->thread[i], NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    if (k->note_fd >= 0)
        close(k->note_fd);
    free(k);
    s->keeper = NULL;
}

bool cu_slot_warm_held(struct cu_slot *s)
{
    return s->warm != NULL;
}

void cu_slot_warm_idle(struct cu_slot *s)
{
    struct cu_warm_keeper *k = s->keeper;
    size_t spares = 0;

    if (!s->warm)
        return;
    retire(s, s->warm);
    s->warm = NULL;
    if (k) {
        pthread_mutex_lock(&k->mu);
        spares = k->nspare + k->starting;
        pthread_mutex_unlock(&k->mu);
    }
    cu_info("slot %u: idle: its job's warm sandbox ends; %zu spare(s) stay ready", s->index,
            spares);
}

void cu_slot_warm_release(struct cu_slot *s)
{
    struct cu_warm_keeper *k = s->keeper;

    retire(s, s->warm);
    s->warm = NULL;
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    cu_warm_shape_free(k->want);
    k->want = NULL;
    k->gen++; /* one starting now is ended when it is ready */
    while (k->nspare > 0 && k->nfree < TO_FREE_MAX) {
        k->to_free[k->nfree++] = k->spare[--k->nspare];
        pthread_cond_broadcast(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
}

void cu_slot_warm_after_lease(struct cu_slot *s)
{
    struct cu_warm_keeper *k = s->keeper;
    struct cu_warm_shape *sh;

    if (!k || cu_agent_stopping())
        return;
    pthread_mutex_lock(&k->mu);
    /* The last sandbox's shape, from now on, when a spare is missing (a
     * full pool has nothing to start: no copy per lease). No wake-up per
     * lease: a keeper with work waiting for quiet looks every QUIET_MS
     * (a wake-up of both keepers per task cost e2e_trivial ~40 us of the
     * provider's CPU per task). */
    if (s->warm && !(k->want && s->warm == k->want_of) && k->nspare + k->starting < SPARES &&
        (sh = cu_warm_shape_of(s->warm)) != NULL) {
        if (!k->want)
            pthread_cond_broadcast(&k->cv);
        cu_warm_shape_free(k->want);
        k->want = sh;
        k->want_of = s->warm; /* its shape does not change: one copy per sandbox */
    }
    pthread_mutex_unlock(&k->mu);
}

/* Moves a ready spare that fits into *out; false when none does. Under
 * the keeper's lock. */
static bool take_fitting(struct cu_warm_keeper *k, const struct cu_sandbox_opts *o,
                         const char *job, struct cu_warm **out)
{
    for (size_t i = 0; i < k->nspare; i++) {
        if (cu_warm_fits(k->spare[i], o, job)) {
            *out = k->spare[i];
            k->spare[i] = k->spare[--k->nspare];
            return true;
        }
    }
    return false;
}

int cu_slot_warm_take(struct cu_slot *s, const struct cu_sandbox_opts *o, const char *job,
                      bool *spare, struct cu_err *e)
{
    struct cu_warm_keeper *k = s->keeper;
    char base[CU_PATH_MAX];
    int rc;

    *spare = false;
    if (s->warm && cu_warm_fits(s->warm, o, job))
        return 0; /* the last task's: same job, same shape */
    retire(s, s->warm); /* another job or shape: ended off this task's path */
    s->warm = NULL;
    if (k) {
        pthread_mutex_lock(&k->mu);
        *spare = take_fitting(k, o, job, &s->warm);
        if (!*spare && k->starting) {
            /* A spare on its way is ready sooner than a new sandbox would be. */
            unsigned started = k->started;
            while (k->starting && k->started == started)
                pthread_cond_wait(&k->cv, &k->mu);
            *spare = take_fitting(k, o, job, &s->warm);
        }
        if (*spare) {
            /* The keeper refills the pool: at once when it ran low (a new
             * job's first task may come within a few ms of this one's
             * end, sooner than bwrap starts one), else once quiet. */
            if (!k->want && (k->want = cu_warm_shape_of(s->warm)) != NULL) {
                k->want_of = s->warm;
                pthread_cond_broadcast(&k->cv);
            }
            else if (k->nspare + k->starting < SPARES_URGENT)
                pthread_cond_broadcast(&k->cv);
        } else if (k->nspare > 0 && k->nspare + k->starting >= SPARES && k->nfree < TO_FREE_MAX) {
            /* No spare fits this task (jobs ask for another shape now, or
             * one died): one of them makes room for a spare of the shape
             * of the sandbox started below (after_lease keeps it). Spares
             * outlive idleness, so otherwise a pool of an old shape would
             * stay full, and of no use, for good. */
            k->to_free[k->nfree++] = k->spare[0];
            k->spare[0] = k->spare[--k->nspare];
        }
        rc = *spare ? 0 : warm_base(s, base, sizeof base);
        pthread_mutex_unlock(&k->mu);
    } else {
        rc = warm_base(s, base, sizeof base);
    }
    if (*spare)
        return cu_warm_own(s->warm, job, e); /* it fits: take_fitting checked */
    if (rc)
        return cu_err_set(e, rc, "warm sandbox directory path too long");
    return cu_warm_acquire(&s->warm, o, base, job, e);
}

void cu_slot_warm_discard(struct cu_slot *s)
{
    retire(s, s->warm);
    s->warm = NULL;
}

/* ---- which group runs which task ---------------------------------------- */

void cu_slot_warm_note_task(struct cu_slot *s, int64_t replica)
{
    struct cu_warm_keeper *k = s->keeper;
    const char *group = cu_warm_cgroup_name(s->warm);
    char rec[NOTE_LEN + 1], path[CU_PATH_MAX], name[32];
    int n;

    if (!k || !group)
        return;
    if (k->note_fd < 0) {
        if (cu_snprintf(name, sizeof name, "slot-%u.cgroup", s->index) != 0 ||
            cu_path_join(path, sizeof path, s->a->tasks_dir, name) != 0)
            return;
        k->note_fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (k->note_fd < 0) {
            cu_warn("slot %u: cannot open %s: %s (provider status will not show its tasks' "
                    "usage)", s->index, path, strerror(errno));
            return;
        }
    }
    n = snprintf(rec, sizeof rec, "%lld %s", (long long)replica, group);
    if (n < 0 || n >= NOTE_LEN)
        return;
    memset(rec + n, ' ', (size_t)(NOTE_LEN - 1 - n));
    rec[NOTE_LEN - 1] = '\n';
    if (pwrite(k->note_fd, rec, NOTE_LEN, 0) != NOTE_LEN)
        cu_debug("slot %u: cannot note replica %lld's group: %s", s->index, (long long)replica,
                 strerror(errno));
}

int cu_slot_task_cgroup(const char *tasks_dir, int64_t replica, char *out, size_t n)
{
    DIR *d = opendir(tasks_dir);
    struct dirent *de;
    int rc = -CU_ENOTFOUND;

    if (!d)
        return rc;
    while (rc != 0 && (de = readdir(d)) != NULL) {
        char rec[NOTE_LEN + 1], group[64];
        long long id;
        ssize_t got;
        size_t len = strlen(de->d_name);
        int fd;
        if (strncmp(de->d_name, "slot-", 5) != 0 || len < 7 ||
            strcmp(de->d_name + len - 7, ".cgroup") != 0)
            continue;
        fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        got = pread(fd, rec, NOTE_LEN, 0);
        close(fd);
        if (got <= 0)
            continue;
        rec[got] = '\0';
        if (sscanf(rec, "%lld %63s", &id, group) == 2 && id == (long long)replica &&
            cu_name_is_safe(group) && cu_snprintf(out, n, "%s", group) == 0)
            rc = 0;
    }
    closedir(d);
    return rc;
}
