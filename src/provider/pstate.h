/* pstate.h - the provider's local state (DATA/state.db): which replicas it
 * holds and what it has not yet delivered, so a restart after a crash can
 * tell the exchange at once. Internal to src/provider.
 *
 * One row per replica: state 'running' (leased; its sandbox may have been
 * running when we died), 'finished' (report_json stored, not yet
 * delivered), 'reported' (kept only if a caller chooses; cu_pstate_forget
 * deletes the row). Rows are keyed by (exchange URL, replica id): replica
 * ids are only unique within one exchange. Thread-safe (one connection
 * behind a mutex). */
#ifndef CU_PROVIDER_PSTATE_H
#define CU_PROVIDER_PSTATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "store/db.h"

/* A finished replica (history) or, from cu_pstate_view, a running one
 * (status "running", finished_ms = when it started). */
struct cu_pstate_done {
    int64_t id;
    char job[64];
    uint32_t task;
    char status[16];       /* the sandbox status name: "ok", "failed", ... */
    char reason[256];
    uint64_t cpu_ms, wall_ms, memory_peak;
    int64_t finished_ms;   /* 0 = now */
    char exchange[1024];
};

/* At least the leases a provider holds claimed ahead (cu_ahead_held_max:
 * 64, or 2 x slots when more): with 32, two claims of 32 overflowed it
 * and every task of the older claim wrote its 'running' row again. */
#define CU_PSTATE_FRESH 128
/* History rows wait for the reporter's next write, which carries the
 * reports it holds (up to a batch of them): room for a batch's worth. */
#define CU_PSTATE_HIST_PENDING 64
#define CU_PSTATE_GONE_PENDING 64

struct cu_pstate {
    struct cu_db db;
    pthread_mutex_t lock;
    unsigned history_adds; /* under lock */
    /* Replicas written 'running' by cu_pstate_running_batch whose own
     * cu_pstate_running has not come yet: that call then writes nothing
     * (under lock; a ring, the oldest dropped when full). */
    struct {
        const char *exchange; /* the caller's pointer: compared, not read */
        int64_t replica;
    } fresh[CU_PSTATE_FRESH];
    unsigned nfresh;
    /* History rows not yet written: they ride in the next write's
     * transaction (the reporter's write of the reports it sends next),
     * saving a commit per task; kill -9 can lose them, and only
     * `provider status` would miss them (under lock). */
    struct cu_pstate_done hist[CU_PSTATE_HIST_PENDING];
    unsigned nhist;
    /* Rows of delivered reports not yet deleted (cu_pstate_forget_later):
     * deleted in the next write's transaction, saving a commit per task
     * (under lock). */
    struct {
        const char *exchange; /* the caller's string: outlives the pstate */
        int64_t replica;
    } gone[CU_PSTATE_GONE_PENDING];
    unsigned ngone;
};

/* One replica for cu_pstate_running_batch. */
struct cu_pstate_lease {
    int64_t replica;
    const char *job;
    uint32_t task;
};

struct cu_pstate_row {
    int64_t id;          /* replica */
    char job[64];
    uint32_t task;
    char state[16];      /* "running", "finished", "reported" */
    char *report_json;   /* owned; NULL unless finished */
};

int cu_pstate_open(struct cu_pstate *ps, const char *path, struct cu_err *e);
void cu_pstate_close(struct cu_pstate *ps);

/* Records (or resets) replica as 'running'. Writes nothing when
 * cu_pstate_running_batch recorded it with the same exchange pointer and
 * this is the first call for it since. */
int cu_pstate_running(struct cu_pstate *ps, const char *exchange, int64_t replica,
                      const char *job, uint32_t task);
/* Records n replicas as 'running' in one transaction (the leases of one
 * claim). 0 or negative (logged; then none is recorded). */
int cu_pstate_running_batch(struct cu_pstate *ps, const char *exchange,
                            const struct cu_pstate_lease *l, size_t n);
/* Stores the report body and marks the replica 'finished' (durable
 * across kill -9 of the provider: synchronous=NORMAL, see pstate.c). */
int cu_pstate_finished(struct cu_pstate *ps, const char *exchange, int64_t replica,
                       const char *report_json);
/* One report for cu_pstate_finished_batch. */
struct cu_pstate_report {
    int64_t replica;
    const char *body;
};
/* cu_pstate_finished for n replicas in one transaction (with the history
 * rows and deletes that wait): the reporter's write of the reports it is
 * about to send. 0 or negative (logged; then none is stored). */
int cu_pstate_finished_batch(struct cu_pstate *ps, const char *exchange,
                             const struct cu_pstate_report *r, size_t n);
/* Deletes the replica's row (delivered, or dropped for good). */
int cu_pstate_forget(struct cu_pstate *ps, const char *exchange, int64_t replica);
/* The same for a 'finished' row whose report the exchange answered, in
 * the next write's transaction (or cu_pstate_close; at once when
 * CU_PSTATE_GONE_PENDING wait already). A kill -9 before then leaves the
 * row, and the next start sends its report again, which the exchange
 * answers as already reported: nothing is paid twice. exchange must
 * outlive ps. Not for a 'running' row: `provider status` would show it
 * running meanwhile. 0 or negative (logged). */
int cu_pstate_forget_later(struct cu_pstate *ps, const char *exchange, int64_t replica);
/* Writes what waits for the next write (deletes of cu_pstate_forget_later,
 * history rows) now, in one transaction; nothing when nothing waits. For
 * when no write follows soon (the reporter, idle). 0 or negative (logged). */
int cu_pstate_flush(struct cu_pstate *ps);
/* Deletes every row of other exchanges (their replicas are not ours to
 * report here; those exchanges expire the leases). Returns the count or
 * negative. */
int cu_pstate_forget_others(struct cu_pstate *ps, const char *exchange);
/* Every row of exchange, oldest first, into a malloc'd array (free with
 * cu_pstate_rows_free). */
int cu_pstate_list(struct cu_pstate *ps, const char *exchange, struct cu_pstate_row **rows,
                   size_t *n);
void cu_pstate_rows_free(struct cu_pstate_row *rows, size_t n);


/* Records a finished replica; the newest 200 are kept (a few dozen more
 * between prunes). */
int cu_pstate_history_add(struct cu_pstate *ps, const char *exchange,
                          const struct cu_pstate_done *d);

/* For `cumulus provider status`, from another process: opens the database
 * at path read-only (a running provider goes on writing), reads the
 * running replicas (oldest first) and the newest `recent` finished ones
 * into malloc'd arrays (free() them). -CU_ENOTFOUND when there is no
 * database. */
int cu_pstate_view(const char *path, unsigned recent, struct cu_pstate_done **running,
                   size_t *nrunning, struct cu_pstate_done **done, size_t *ndone,
                   struct cu_err *e);

#endif
