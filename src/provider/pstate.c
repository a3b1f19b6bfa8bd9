/* pstate.c - the provider's local replica table in SQLite. */
#include "provider/pstate.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#include "base/banned.h"

#define HISTORY_KEEP 200       /* newest finished replicas kept */
#define HISTORY_KEEP_LESS1 199 /* the OFFSET of the oldest one kept */
_Static_assert(HISTORY_KEEP_LESS1 == HISTORY_KEEP - 1, "the prune's OFFSET");
#define HISTORY_PRUNE_EVERY 32
#define CU_STR_(x) #x
#define CU_STR(x) CU_STR_(x)

static int hist_flush(struct cu_pstate *ps, struct cu_err *e);
static int gone_flush(struct cu_pstate *ps, struct cu_err *e);

static const struct cu_migration pstate_migrations[] = {
    {1, "CREATE TABLE replicas ("
        "  exchange TEXT NOT NULL,"
        "  id INTEGER NOT NULL,"
        "  job TEXT NOT NULL,"
        "  task INTEGER NOT NULL,"
        "  state TEXT NOT NULL CHECK (state IN ('running','finished','reported')),"
        "  report_json TEXT,"
        "  updated_ms INTEGER NOT NULL,"
        "  PRIMARY KEY (exchange, id));"},
    /* Finished replicas for `cumulus provider status` (the newest kept). */
    {2, "CREATE TABLE history ("
        "  exchange TEXT NOT NULL,"
        "  id INTEGER NOT NULL,"
        "  job TEXT NOT NULL,"
        "  task INTEGER NOT NULL,"
        "  status TEXT NOT NULL,"
        "  reason TEXT NOT NULL,"
        "  cpu_ms INTEGER NOT NULL,"
        "  wall_ms INTEGER NOT NULL,"
        "  memory_peak INTEGER NOT NULL,"
        "  finished_ms INTEGER NOT NULL,"
        "  PRIMARY KEY (exchange, id));"},
};

int cu_pstate_open(struct cu_pstate *ps, const char *path, struct cu_err *e)
{
    int rc;

    rc = cu_db_open(&ps->db, path, pstate_migrations,
                    sizeof pstate_migrations / sizeof pstate_migrations[0], e);
    if (rc)
        return rc;
    /* synchronous=NORMAL (WAL): a commit is written to the WAL but not
     * fsynced; checkpoints still sync. That keeps every committed row
     * across kill -9 of the provider (the bytes are in the kernel, which
     * lives on), which is the crash DESIGN.md §9 fixes; it saves an fsync
     * (~0.5-1 ms here) on each of the 3-4 writes per task. Only a power
     * loss can drop the newest rows, and each loss is one the exchange
     * already survives without us: a lost 'running' row or 'finished'
     * report means the lease expires and the replica is requeued (nothing
     * was paid); a lost delete means a report is sent twice, which the
     * exchange answers idempotently; history is only for `provider
     * status`. The exchange's own state, where money moves, stays FULL. */
    rc = cu_db_exec(&ps->db, "PRAGMA synchronous=NORMAL", e);
    if (rc) {
        cu_db_close(&ps->db);
        return rc;
    }
    ps->history_adds = 0;
    ps->nfresh = 0;
    ps->nhist = 0;
    ps->ngone = 0;
    pthread_mutex_init(&ps->lock, NULL);
    return 0;
}

/* Writes the pending history rows and deletes (in the caller's
 * transaction, if any); both lists are empty afterwards, whatever failed.
 * Under ps->lock. 0 or -CU_EDB with e set. */
static int pending_write(struct cu_pstate *ps, struct cu_err *e)
{
    int rc = ps->nhist > 0 ? hist_flush(ps, e) : 0;

    if (ps->ngone > 0 && gone_flush(ps, e) != 0)
        rc = -CU_EDB;
    return rc;
}

/* Writes the pending history rows and deletes in one transaction. Under
 * ps->lock. 0 or -CU_EDB (logged). */
static int pending_flush(struct cu_pstate *ps)
{
    struct cu_err e = {0};
    bool txn;
    int rc = 0;

    if (ps->nhist == 0 && ps->ngone == 0)
        return 0;
    txn = cu_db_begin(&ps->db) == 0;
    rc = pending_write(ps, &e);
    if (txn && cu_db_commit(&ps->db) != 0) {
        cu_db_rollback(&ps->db);
        (void)cu_snprintf(e.msg, sizeof e.msg, "cannot commit the pending writes");
        rc = -CU_EDB;
    }
    if (rc)
        cu_error("provider state: %s", e.msg);
    return rc;
}

int cu_pstate_flush(struct cu_pstate *ps)
{
    int rc;

    pthread_mutex_lock(&ps->lock);
    rc = pending_flush(ps);
    pthread_mutex_unlock(&ps->lock);
    return rc;
}

void cu_pstate_close(struct cu_pstate *ps)
{
    pthread_mutex_lock(&ps->lock);
    (void)pending_flush(ps);
    pthread_mutex_unlock(&ps->lock);
    cu_db_close(&ps->db);
    pthread_mutex_destroy(&ps->lock);
}

/* Runs one write statement whose parameters are ?1 exchange, ?2 replica,
 * ?3 job or report text, ?4 task, ?5 the time now (each optional). */
static int write_stmt(struct cu_pstate *ps, const char *sql, const char *exchange,
                      int64_t replica, const char *text, int64_t task)
{
    sqlite3_stmt *st = NULL;
    struct cu_err e = {0};
    bool txn = false;
    int rc, np;

    pthread_mutex_lock(&ps->lock);
    if (ps->nhist > 0 || ps->ngone > 0) {
        /* The pending history rows and deletes commit with this write. */
        txn = cu_db_begin(&ps->db) == 0;
        if (pending_write(ps, &e) != 0) {
            cu_error("provider state: %s", e.msg);
            memset(&e, 0, sizeof e);
        }
    }
    /* Reused: parsing each of the 3-4 writes per task again was most of
     * their cost (docs/performance.md "Provider: ..."). */
    rc = cu_db_cached(&ps->db, sql, &st, &e);
    if (rc)
        goto out_commit;
    np = sqlite3_bind_parameter_count(st);
    sqlite3_bind_text(st, 1, exchange, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, replica);
    if (np >= 3)
        sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
    if (np >= 4)
        sqlite3_bind_int64(st, 4, task);
    if (np >= 5)
        sqlite3_bind_int64(st, 5, cu_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) {
        (void)cu_snprintf(e.msg, sizeof e.msg, "%s", sqlite3_errmsg(ps->db.h));
        rc = -CU_EDB;
    }
    cu_db_cached_done(&ps->db, st);
out_commit:
    if (txn && cu_db_commit(&ps->db) != 0 && rc == 0) {
        cu_db_rollback(&ps->db);
        rc = -CU_EDB;
    }
    pthread_mutex_unlock(&ps->lock);
    if (rc)
        cu_error("provider state: %s", e.msg[0] ? e.msg : cu_strerror(rc));
    return rc;
}

static const char sql_running[] = "INSERT OR REPLACE INTO replicas"
                                  " (exchange, id, job, task, state, report_json, updated_ms)"
                                  " VALUES (?1, ?2, ?3, ?4, 'running', NULL, ?5)";

/* Takes (exchange, replica) out of ps->fresh; true when it was there.
 * Under ps->lock. */
static bool fresh_take(struct cu_pstate *ps, const char *exchange, int64_t replica)
{
    for (unsigned i = 0; i < ps->nfresh; i++) {
        if (ps->fresh[i].replica == replica && ps->fresh[i].exchange == exchange) {
            ps->fresh[i] = ps->fresh[--ps->nfresh];
            return true;
        }
    }
    return false;
}

int cu_pstate_running(struct cu_pstate *ps, const char *exchange, int64_t replica,
                      const char *job, uint32_t task)
{
    bool fresh;

    pthread_mutex_lock(&ps->lock);
    fresh = fresh_take(ps, exchange, replica);
    pthread_mutex_unlock(&ps->lock);
    if (fresh)
        return 0; /* written moments ago with its claim's other leases */
    return write_stmt(ps, sql_running, exchange, replica, job, task);
}

/* One row of rows_write: ?2 replica, ?3 text, ?4 task. */
struct row_vals {
    int64_t replica;
    const char *text;
    int64_t task;
};

/* Runs sql (parameters as write_stmt's: ?1 exchange, ?2 replica, ?3 text,
 * ?4 task, ?5 the time now) for the n rows that row(v, i) gives, in one
 * transaction with the pending history rows and deletes. Under ps->lock.
 * 0, or negative with e set (then nothing of it is written). */
static int rows_write(struct cu_pstate *ps, const char *sql, const char *exchange, size_t n,
                      void (*row)(const void *v, size_t i, struct row_vals *out), const void *v,
                      struct cu_err *e)
{
    int64_t now = cu_now_ms();
    int rc = cu_db_begin(&ps->db);

    if (rc)
        return rc;
    if (pending_write(ps, e) != 0) { /* they ride along, as in write_stmt */
        cu_error("provider state: %s", e->msg);
        memset(e, 0, sizeof *e);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_stmt *st = NULL;
        struct row_vals r;
        rc = cu_db_cached(&ps->db, sql, &st, e);
        if (rc)
            break;
        row(v, i, &r);
        sqlite3_bind_text(st, 1, exchange, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r.replica);
        sqlite3_bind_text(st, 3, r.text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, r.task); /* unused by sql_finished: harmless */
        sqlite3_bind_int64(st, 5, now);
        if (sqlite3_step(st) != SQLITE_DONE) {
            (void)cu_snprintf(e->msg, sizeof e->msg, "%s", sqlite3_errmsg(ps->db.h));
            rc = -CU_EDB;
        }
        cu_db_cached_done(&ps->db, st);
    }
    if (rc == 0)
        rc = cu_db_commit(&ps->db);
    else
        cu_db_rollback(&ps->db);
    return rc;
}

static void lease_row(const void *v, size_t i, struct row_vals *out)
{
    const struct cu_pstate_lease *l = v;
    *out = (struct row_vals){.replica = l[i].replica, .text = l[i].job, .task = l[i].task};
}

int cu_pstate_running_batch(struct cu_pstate *ps, const char *exchange,
                            const struct cu_pstate_lease *l, size_t n)
{
    struct cu_err e = {0};
    int rc;

    pthread_mutex_lock(&ps->lock);
    rc = rows_write(ps, sql_running, exchange, n, lease_row, l, &e);
    for (size_t i = 0; i < n && rc == 0; i++) {
        (void)fresh_take(ps, exchange, l[i].replica);
        if (ps->nfresh == CU_PSTATE_FRESH) {
            /* The oldest is written again by its own call: harmless. */
            memmove(&ps->fresh[0], &ps->fresh[1], (CU_PSTATE_FRESH - 1) * sizeof ps->fresh[0]);
            ps->nfresh--;
        }
        ps->fresh[ps->nfresh].exchange = exchange;
        ps->fresh[ps->nfresh].replica = l[i].replica;
        ps->nfresh++;
    }
    pthread_mutex_unlock(&ps->lock);
    if (rc)
        cu_error("provider state: %s", e.msg[0] ? e.msg : cu_strerror(rc));
    return rc;
}

static const char sql_finished[] = "UPDATE replicas SET state = 'finished', report_json = ?3,"
                                   " updated_ms = ?5 WHERE exchange = ?1 AND id = ?2";

int cu_pstate_finished(struct cu_pstate *ps, const char *exchange, int64_t replica,
                       const char *report_json)
{
    return write_stmt(ps, sql_finished, exchange, replica, report_json, 0);
}

static void report_row(const void *v, size_t i, struct row_vals *out)
{
    const struct cu_pstate_report *r = v;
    *out = (struct row_vals){.replica = r[i].replica, .text = r[i].body};
}

int cu_pstate_finished_batch(struct cu_pstate *ps, const char *exchange,
                             const struct cu_pstate_report *r, size_t n)
{
    struct cu_err e = {0};
    int rc;

    if (n == 0)
        return 0;
    pthread_mutex_lock(&ps->lock);
    rc = rows_write(ps, sql_finished, exchange, n, report_row, r, &e);
    pthread_mutex_unlock(&ps->lock);
    if (rc)
        cu_error("provider state: %s", e.msg[0] ? e.msg : cu_strerror(rc));
    return rc;
}

static const char sql_forget[] = "DELETE FROM replicas WHERE exchange = ?1 AND id = ?2";

int cu_pstate_forget(struct cu_pstate *ps, const char *exchange, int64_t replica)
{
    pthread_mutex_lock(&ps->lock);
    (void)fresh_take(ps, exchange, replica);
    pthread_mutex_unlock(&ps->lock);
    return write_stmt(ps, sql_forget, exchange, replica, NULL, 0);
}

/* Deletes the rows of ps->gone (in the caller's transaction, if any).
 * Under ps->lock. 0 or -CU_EDB with e set; the list is emptied either
 * way (a row left behind only means its report is sent again). */
static int gone_flush(struct cu_pstate *ps, struct cu_err *e)
{
    int rc = 0;

    for (unsigned i = 0; i < ps->ngone && rc == 0; i++) {
        sqlite3_stmt *st = NULL;
        rc = cu_db_cached(&ps->db, sql_forget, &st, e);
        if (rc)
            break;
        sqlite3_bind_text(st, 1, ps->gone[i].exchange, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, ps->gone[i].replica);
        if (sqlite3_step(st) != SQLITE_DONE) {
            (void)cu_snprintf(e->msg, sizeof e->msg, "forget: %s", sqlite3_errmsg(ps->db.h));
            rc = -CU_EDB;
        }
        cu_db_cached_done(&ps->db, st);
    }
    ps->ngone = 0;
    return rc;
}

int cu_pstate_forget_later(struct cu_pstate *ps, const char *exchange, int64_t replica)
{
    int rc = 0;

    pthread_mutex_lock(&ps->lock);
    (void)fresh_take(ps, exchange, replica);
    if (ps->ngone == CU_PSTATE_GONE_PENDING)
        rc = pending_flush(ps); /* no write came between: a transaction of their own */
    assert(ps->ngone < CU_PSTATE_GONE_PENDING); /* gone_flush empties it, whatever failed */
    ps->gone[ps->ngone].exchange = exchange;
    ps->gone[ps->ngone].replica = replica;
    ps->ngone++;
    pthread_mutex_unlock(&ps->lock);
    return rc;
}

int cu_pstate_forget_others(struct cu_pstate *ps, const char *exchange)
{
    char *err = NULL;
    char *sql;
    int rc;

    sql = sqlite3_mprintf("DELETE FROM replicas WHERE exchange <> %Q", exchange);
    if (!sql)
        return -CU_ENOMEM;
    pthread_mutex_lock(&ps->lock);
    rc = sqlite3_exec(ps->db.h, sql, NULL, NULL, &err) == SQLITE_OK
             ? sqlite3_changes(ps->db.h)
             : -CU_EDB;
    pthread_mutex_unlock(&ps->lock);
    if (rc < 0)
        cu_error("provider state: %s", err ? err : "delete failed");
    sqlite3_free(err);
    sqlite3_free(sql);
    return rc;
}

int cu_pstate_list(struct cu_pstate *ps, const char *exchange, struct cu_pstate_row **rows,
                   size_t *n)
{
    sqlite3_stmt *st = NULL;
    struct cu_pstate_row *v = NULL;
    struct cu_err e = {0};
    size_t cnt = 0, cap = 0;
    int rc, step;

    *rows = NULL;
    *n = 0;
    pthread_mutex_lock(&ps->lock);
    rc = cu_db_prepare(&ps->db,
                       "SELECT id, job, task, state, report_json FROM replicas"
                       " WHERE exchange = ?1 ORDER BY updated_ms, id",
                       &st, &e);
    if (rc)
        goto out_unlock;
    sqlite3_bind_text(st, 1, exchange, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *rep = sqlite3_column_text(st, 4);
        struct cu_pstate_row *r;
        if (cnt == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            struct cu_pstate_row *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = -CU_ENOMEM;
                goto out_finalize;
            }
            v = nv;
            cap = ncap;
        }
        r = &v[cnt];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        (void)cu_snprintf(r->job, sizeof r->job, "%s", (const char *)sqlite3_column_text(st, 1));
        r->task = (uint32_t)sqlite3_column_int64(st, 2);
        (void)cu_snprintf(r->state, sizeof r->state, "%s", (const char *)sqlite3_column_text(st, 3));
        cnt++;
        if (rep && !(r->report_json = strdup((const char *)rep))) {
            rc = -CU_ENOMEM;
            goto out_finalize;
        }
    }
    if (step != SQLITE_DONE) {
        cu_error("provider state: %s", sqlite3_errmsg(ps->db.h));
        rc = -CU_EDB;
    }
out_finalize:
    sqlite3_finalize(st);
out_unlock:
    pthread_mutex_unlock(&ps->lock);
    if (rc) {
        cu_pstate_rows_free(v, cnt);
        return rc;
    }
    *rows = v;
    *n = cnt;
    return 0;
}

static const char sql_history[] =
    "INSERT OR REPLACE INTO history (exchange, id, job, task, status, reason,"
    " cpu_ms, wall_ms, memory_peak, finished_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/* Writes the pending history rows (in the caller's transaction, if any)
 * and prunes now and then. Under ps->lock. 0 or -CU_EDB with e set. */
static int hist_flush(struct cu_pstate *ps, struct cu_err *e)
{
    int rc = 0;

    for (unsigned i = 0; i < ps->nhist && rc == 0; i++) {
        const struct cu_pstate_done *d = &ps->hist[i];
        sqlite3_stmt *st = NULL;
        rc = cu_db_cached(&ps->db, sql_history, &st, e);
        if (rc)
            break;
        sqlite3_bind_text(st, 1, d->exchange, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, d->id);
        sqlite3_bind_text(st, 3, d->job, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, d->task);
        sqlite3_bind_text(st, 5, d->status, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, d->reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, (int64_t)d->cpu_ms);
        sqlite3_bind_int64(st, 8, (int64_t)d->wall_ms);
        sqlite3_bind_int64(st, 9, (int64_t)d->memory_peak);
        sqlite3_bind_int64(st, 10, d->finished_ms);
        if (sqlite3_step(st) != SQLITE_DONE) {
            (void)cu_snprintf(e->msg, sizeof e->msg, "history: %s", sqlite3_errmsg(ps->db.h));
            rc = -CU_EDB;
        }
        cu_db_cached_done(&ps->db, st);
        /* Once every HISTORY_PRUNE_EVERY adds (at most HISTORY_KEEP +
         * HISTORY_PRUNE_EVERY rows), the rows older than the newest
         * HISTORY_KEEP go: by rowid, which grows with each insert, so the
         * prune walks the table's own b-tree from its end instead of
         * sorting it (that sort was ~11 us per task under short tasks). */
        if (rc == 0 && ps->history_adds++ % HISTORY_PRUNE_EVERY == 0) {
            sqlite3_stmt *pr = NULL;
            rc = cu_db_cached(&ps->db,
                              "DELETE FROM history WHERE rowid < (SELECT rowid FROM history"
                              " ORDER BY rowid DESC LIMIT 1 OFFSET " CU_STR(HISTORY_KEEP_LESS1) ")",
                              &pr, e);
            if (rc == 0 && sqlite3_step(pr) != SQLITE_DONE) {
                (void)cu_snprintf(e->msg, sizeof e->msg, "history prune: %s",
                                  sqlite3_errmsg(ps->db.h));
                rc = -CU_EDB;
            }
            if (pr)
                cu_db_cached_done(&ps->db, pr);
        }
    }
    ps->nhist = 0; /* written, or lost with a logged error: never retried forever */
    return rc;
}

int cu_pstate_history_add(struct cu_pstate *ps, const char *exchange,
                          const struct cu_pstate_done *d)
{
    int rc = 0;

    pthread_mutex_lock(&ps->lock);
    if (ps->nhist == CU_PSTATE_HIST_PENDING)
        rc = pending_flush(ps); /* no write came between: a transaction of their own (logged) */
    ps->hist[ps->nhist] = *d;
    (void)cu_snprintf(ps->hist[ps->nhist].exchange, sizeof ps->hist[0].exchange, "%s", exchange);
    if (!d->finished_ms)
        ps->hist[ps->nhist].finished_ms = cu_now_ms();
    ps->nhist++;
    pthread_mutex_unlock(&ps->lock);
    return rc;
}

/* Copies column i (text, may be NULL) into out. */
static void col_copy(sqlite3_stmt *st, int i, char *out, size_t n)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    (void)cu_snprintf(out, n, "%s", t ? (const char *)t : "");
}

int cu_pstate_view(const char *path, unsigned recent, struct cu_pstate_done **running,
                   size_t *nrunning, struct cu_pstate_done **done, size_t *ndone,
                   struct cu_err *e)
{
    static const char *const sql[2] = {
        "SELECT id, job, task, 'running', '', 0, 0, 0, updated_ms, exchange FROM replicas"
        " WHERE state = 'running' ORDER BY updated_ms, id",
        "SELECT id, job, task, status, reason, cpu_ms, wall_ms, memory_peak, finished_ms,"
        " exchange FROM history ORDER BY finished_ms DESC, id DESC LIMIT ?1",
    };
    struct cu_pstate_done **outs[2] = {running, done};
    size_t *counts[2] = {nrunning, ndone};
    sqlite3 *db = NULL;
    int rc = 0;

    *running = *done = NULL;
    *nrunning = *ndone = 0;
    /* Read-only, so a running provider's database is never changed or
     * locked for writing by this reader (WAL lets both go on). */
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = cu_err_set(e, -CU_ENOTFOUND, "cannot open %s: %s", path,
                        db ? sqlite3_errmsg(db) : "out of memory");
        goto out_close;
    }
    sqlite3_busy_timeout(db, 2000);
    for (int q = 0; q < 2; q++) {
        sqlite3_stmt *st = NULL;
        size_t cap = 0;
        int step;
        if (sqlite3_prepare_v2(db, sql[q], -1, &st, NULL) != SQLITE_OK) {
            if (q == 1)
                continue; /* a database from before the history table */
            rc = cu_err_set(e, -CU_EDB, "%s: %s", path, sqlite3_errmsg(db));
            goto out_close;
        }
        if (q == 1)
            sqlite3_bind_int64(st, 1, recent);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            struct cu_pstate_done *r;
            if (*counts[q] == cap) {
                size_t ncap = cap ? 2 * cap : 8;
                struct cu_pstate_done *nv = realloc(*outs[q], ncap * sizeof *nv);
                if (!nv) {
                    sqlite3_finalize(st);
                    rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
                    goto out_close;
                }
                *outs[q] = nv;
                cap = ncap;
            }
            r = &(*outs[q])[(*counts[q])++];
            memset(r, 0, sizeof *r);
            r->id = sqlite3_column_int64(st, 0);
            col_copy(st, 1, r->job, sizeof r->job);
            r->task = (uint32_t)sqlite3_column_int64(st, 2);
            col_copy(st, 3, r->status, sizeof r->status);
            col_copy(st, 4, r->reason, sizeof r->reason);
            r->cpu_ms = (uint64_t)sqlite3_column_int64(st, 5);
            r->wall_ms = (uint64_t)sqlite3_column_int64(st, 6);
            r->memory_peak = (uint64_t)sqlite3_column_int64(st, 7);
            r->finished_ms = sqlite3_column_int64(st, 8);
            col_copy(st, 9, r->exchange, sizeof r->exchange);
        }
        if (step != SQLITE_DONE)
            rc = cu_err_set(e, -CU_EDB, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        if (rc)
            goto out_close;
    }
out_close:
    sqlite3_close(db);
    if (rc) {
        free(*running);
        free(*done);
        *running = *done = NULL;
        *nrunning = *ndone = 0;
    }
    return rc;
}

void cu_pstate_rows_free(struct cu_pstate_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].report_json);
    free(rows);
}
