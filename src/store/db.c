/* db.c - SQLite connection setup, migrations and transactions. */
#include "store/db.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#include "base/banned.h"

#define DB_BUSY_TIMEOUT_MS 5000

static int db_fail(struct cu_db *db, struct cu_err *e, const char *what)
{
    return cu_err_set(e, -CU_EDB, "%s: %s", what, db->h ? sqlite3_errmsg(db->h) : "no handle");
}

/* Rewrites e's message as "<prefix>: <old message>" (copying first: the old
 * message cannot be a format argument for its own buffer). */
static int err_prefix(struct cu_err *e, int code, const char *prefix)
{
    char old[CU_ERR_MSG_MAX];
    if (!e)
        return code;
    (void)cu_snprintf(old, sizeof old, "%s", e->msg);
    return cu_err_set(e, code, "%s: %s", prefix, old);
}

int cu_db_exec(struct cu_db *db, const char *sql, struct cu_err *e)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        cu_err_set(e, -CU_EDB, "SQL error: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -CU_EDB;
    }
    return 0;
}

int cu_db_prepare(struct cu_db *db, const char *sql, sqlite3_stmt **st, struct cu_err *e)
{
    *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_fail(db, e, "cannot prepare statement");
    }
    return 0;
}

/* ---- statement cache ------------------------------------------------------- */

#define CACHE_SLOTS 1024 /* a power of two; the exchange has ~150 statements */
#define CACHE_PROBE 8     /* slots looked at from a statement's home slot */
#define CACHE_OUT 64      /* statements out at once that done finds without a scan */

struct cu_db_cached {
    const char *key; /* the caller's sql pointer */
    sqlite3_stmt *st;
    bool out;        /* handed out, not yet given back */
};

/* The table and, beside it, the slots now handed out: a task decision has
 * a few statements out at once, and cu_db_cached_done finds one among
 * those instead of scanning every slot. (A direct-mapped table of 256 by
 * address made task_decide's statement collide with another and be
 * prepared again on every report: 3.6 % of the exchange's time in
 * bench/dispatch.) */
struct cu_db_cache {
    struct cu_db_cached slot[CACHE_SLOTS];
    uint16_t out[CACHE_OUT];
    size_t nout;
};

static void cache_free(struct cu_db *db)
{
    if (!db->cache)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        sqlite3_finalize(db->cache->slot[i].st);
    free(db->cache);
    db->cache = NULL;
}

static size_t cache_home(const char *sql)
{
    /* Fibonacci hashing: literals sit close together, so the low bits of
     * their addresses alone spread badly. */
    return (size_t)(((uint64_t)(uintptr_t)sql * 0x9E3779B97F4A7C15ULL) >> 54) & (CACHE_SLOTS - 1);
}

int cu_db_cached(struct cu_db *db, const char *sql, sqlite3_stmt **st, struct cu_err *e)
{
    struct cu_db_cached *c = NULL, *victim = NULL;
    size_t home = cache_home(sql), i;
    int rc;

    *st = NULL;
    if (!db->cache) {
        db->cache = calloc(1, sizeof *db->cache);
        if (!db->cache)
            return cu_err_set(e, -CU_EDB, "out of memory for the statement cache");
    }
    for (size_t k = 0; k < CACHE_PROBE; k++) {
        struct cu_db_cached *p = &db->cache->slot[(home + k) & (CACHE_SLOTS - 1)];
        if (p->st && p->key == sql && strcmp(sqlite3_sql(p->st), sql) == 0) {
            c = p;
            break;
        }
        if (!victim && !p->out && (!p->st || k == CACHE_PROBE - 1))
            victim = p;
        if (!p->st)
            break; /* never probed past an empty slot: sql is not further on */
    }
    if (c && c->out) /* nested use: a statement of its own */
        return cu_db_prepare(db, sql, st, e);
    if (!c && (!victim || db->cache->nout == CACHE_OUT))
        return cu_db_prepare(db, sql, st, e);
    if (!c) {
        /* A full run of slots replaces its last statement. */
        c = victim;
        sqlite3_finalize(c->st);
        c->st = NULL;
        c->key = NULL;
        rc = cu_db_prepare(db, sql, &c->st, e);
        if (rc)
            return rc;
        c->key = sql;
    }
    if (db->cache->nout == CACHE_OUT)
        return cu_db_prepare(db, sql, st, e);
    i = (size_t)(c - db->cache->slot);
    db->cache->out[db->cache->nout++] = (uint16_t)i;
    c->out = true;
    *st = c->st;
    return 0;
}

void cu_db_cached_done(struct cu_db *db, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (size_t k = 0; db->cache && k < db->cache->nout; k++) {
        struct cu_db_cached *c = &db->cache->slot[db->cache->out[k]];
        if (c->st == st) {
            assert(c->out);
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            c->out = false;
            db->cache->out[k] = db->cache->out[--db->cache->nout];
            return;
        }
    }
    sqlite3_finalize(st);
}

/* The version, or -CU_EDB. */
int cu_db_user_version(struct cu_db *db)
{
    sqlite3_stmt *st;
    int v = -CU_EDB;

    if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -CU_EDB;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

int cu_db_begin(struct cu_db *db)
{
    struct cu_err e = {0};
    if (cu_db_exec(db, "BEGIN IMMEDIATE", &e)) {
        cu_warn("db: begin failed: %s", e.msg);
        return -CU_EDB;
    }
    return 0;
}

int cu_db_commit(struct cu_db *db)
{
    struct cu_err e = {0};
    if (cu_db_exec(db, "COMMIT", &e)) {
        cu_warn("db: commit failed: %s", e.msg);
        return -CU_EDB;
    }
    return 0;
}

void cu_db_rollback(struct cu_db *db)
{
    /* Fails harmlessly when no transaction is open (SQLite may already
     * have rolled back after an error). */
    if (!sqlite3_get_autocommit(db->h))
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* Applies migration m inside BEGIN IMMEDIATE, re-reading user_version under
 * the write lock so two processes opening the same file at once apply it
 * only once. */
static int apply_one(struct cu_db *db, const struct cu_migration *m, struct cu_err *e)
{
    char pragma[64];
    int v, rc;

    if (cu_db_exec(db, "BEGIN IMMEDIATE", e))
        return -CU_EDB;
    v = cu_db_user_version(db);
    if (v < 0) {
        rc = db_fail(db, e, "cannot read user_version");
        goto out_rollback;
    }
    if (v >= m->version) {
        rc = cu_db_exec(db, "COMMIT", e);
        if (rc)
            goto out_rollback;
        return 0;
    }
    rc = cu_db_exec(db, m->sql, e);
    if (rc) {
        char what[64];
        (void)cu_snprintf(what, sizeof what, "migration %d failed", m->version);
        err_prefix(e, -CU_EDB, what);
        goto out_rollback;
    }
    /* PRAGMA takes no bound parameters; the value is our own integer. */
    rc = cu_snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m->version);
    if (!rc)
        rc = cu_db_exec(db, pragma, e);
    if (rc)
        goto out_rollback;
    rc = cu_db_exec(db, "COMMIT", e);
    if (rc)
        goto out_rollback;
    cu_debug("db: applied migration %d", m->version);
    return 0;
out_rollback:
    cu_db_rollback(db);
    return rc;
}

/* Process-wide SQLite settings, before its first use. Memory statistics
 * off: with them on (the default) every allocation and free inside SQLite
 * takes a process-wide mutex to count bytes no one here reads; a profile
 * of the exchange's batched claims and reports found SQLite's malloc and
 * free behind most of its pthread_mutex_lock samples. sqlite3_config fails
 * harmlessly (SQLITE_MISUSE) when the library was initialised already, e.g.
 * by a test that opened a database directly first. */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Opens path and brings its schema up to the last migration. May block up
 * to the busy timeout when another process holds the write lock. */
int cu_db_open(struct cu_db *db, const char *path, const struct cu_migration *m, size_t n,
               struct cu_err *e)
{
    sqlite3_stmt *st = NULL;
    int known = n ? m[n - 1].version : 0;
    int rc, v;

    for (size_t i = 0; i < n; i++)
        assert(m[i].version == (int)i + 1 && m[i].sql);
    (void)pthread_once(&sqlite_once, sqlite_setup);
    db->h = NULL;
    db->g = NULL;
    db->cache = NULL;
    rc = sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        rc = cu_err_set(e, -CU_EDB, "cannot open database %s: %s", path,
                        db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        goto out_close_db;
    }
    sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
    rc = cu_db_prepare(db, "PRAGMA journal_mode=WAL", &st, e);
    if (rc)
        goto out_close_db;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(db, e, "cannot set journal_mode=WAL");
        goto out_finalize;
    }
    {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        /* An in-memory database reports "memory"; any file must be WAL. */
        if (!mode || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)) {
            rc = cu_err_set(e, -CU_EDB, "database %s: journal_mode is %s, not wal", path,
                            mode ? mode : "(null)");
            goto out_finalize;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = cu_db_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", e);
    if (rc)
        goto out_close_db;
    v = cu_db_user_version(db);
    if (v < 0) {
        rc = db_fail(db, e, "cannot read user_version");
        goto out_close_db;
    }
    if (v > known) {
        rc = cu_err_set(e, -CU_EUNSUPPORTED,
                        "database %s has schema version %d, newer than this program knows (%d)",
                        path, v, known);
        goto out_close_db;
    }
    for (size_t i = (size_t)v; i < n; i++) {
        rc = apply_one(db, &m[i], e);
        if (rc) {
            char what[CU_PATH_MAX + 16];
            (void)cu_snprintf(what, sizeof what, "database %s", path);
            err_prefix(e, rc, what);
            goto out_close_db;
        }
    }
    /* Another process may have raced ahead with newer migrations. */
    v = cu_db_user_version(db);
    if (v > known) {
        rc = cu_err_set(e, -CU_EUNSUPPORTED,
                        "database %s has schema version %d, newer than this program knows (%d)",
                        path, v, known);
        goto out_close_db;
    }
    return 0;
out_finalize:
    sqlite3_finalize(st);
out_close_db:
    sqlite3_close(db->h);
    db->h = NULL;
    return rc;
}

static void group_stop(struct cu_db *db);

void cu_db_close(struct cu_db *db)
{
    if (!db->h)
        return;
    cache_free(db);
    group_stop(db);
    /* SQLITE_BUSY here means a caller leaked a statement: a bug to report. */
    if (sqlite3_close(db->h) != SQLITE_OK)
    {
        cu_error("db: close failed: %s (unfinalized statements?)", sqlite3_errmsg(db->h));
        sqlite3_close_v2(db->h); /* frees the handle once they are finalized */
    }
    db->h = NULL;
}

/* ---- group commit (see db.h) ---------------------------------------------------- */

struct cu_db_group {
    pthread_mutex_t mu;
    pthread_cond_t synced_cv; /* broadcast when synced moves or a sync fails */
    pthread_cond_t expect_cv; /* (CLOCK_MONOTONIC) broadcast when expected falls */
    unsigned expected;        /* under mu: commits announced by cu_db_expect */
    unsigned expect_us;       /* under mu: how long a leader waits for them */
    pthread_cond_t ckpt_cv;   /* wakes the checkpoint thread */
    uint64_t committed;       /* last sequence number handed out (atomic) */
    uint64_t synced;          /* under mu: every commit <= this is on disk */
    bool syncing;             /* under mu: a leader is in fdatasync */
    int err;                  /* under mu: sticky -CU_EIO after a failed sync */
    int wal_fd;               /* on DB-wal: fdatasync of any fd flushes the inode */
    sqlite3 *ckpt_h;          /* the checkpoint thread's own connection */
    pthread_t ckpt_thread;
    bool ckpt_due, stopping;  /* under mu */
    int ckpt_floor;           /* under mu: WAL size at the last request */
    int backfilled;           /* under mu: frames the last checkpoint left in the
                               * database file when it could not take them all;
                               * 0 when none is pending */
    pthread_mutex_t ckpt_mu;  /* held by whoever uses ckpt_h */
    int wal_frames;           /* under mu: frames in the WAL at the last commit */
    uint64_t syncs, checkpoints, catchups, restarts; /* under mu */
    uint64_t expect_timeouts; /* under mu */
};

/* The commit this thread still has to see synced, and on which database. */
static __thread struct {
    struct cu_db_group *g;
    uint64_t seq;
} owed;

/* Finishes, in the committing thread, a checkpoint the checkpoint thread
 * could not complete: under a steady stream of commits a PASSIVE
 * checkpoint never catches up with the WAL's end, so the WAL would never
 * restart and would grow without bound (~100 MB a second under
 * load), every commit then writing fresh file blocks and every page
 * lookup searching an ever longer WAL index. Here the connection's lock is
 * held, so no commit can come between this checkpoint and the next write
 * transaction, which then restarts the WAL at its start. Called with g->mu
 * held; returns with it held. The remainder is what was committed while
 * the thread's pass ran (100-300 frames under bench/dispatch), so this
 * costs the committing thread the copy of those pages and two fsyncs (the
 * checkpoint connection runs synchronous=FULL), once per CU_DB_CKPT_PAGES
 * pages of WAL: 2-5 ms here, every ~130 ms. Writers that outpace the
 * thread wait longer here: back-pressure, as SQLite's own automatic
 * checkpoints give, instead of a WAL that grows on. */
static void catch_up(struct cu_db_group *g)
{
    int rc;

    if (pthread_mutex_trylock(&g->ckpt_mu) != 0)
        return; /* the checkpoint thread is at work: next commit */
    g->backfilled = 0;
    pthread_mutex_unlock(&g->mu);
    rc = sqlite3_wal_checkpoint_v2(g->ckpt_h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK)
        cu_warn("db: catch-up checkpoint failed: %s (will retry when the WAL grows)",
                sqlite3_errmsg(g->ckpt_h));
    pthread_mutex_unlock(&g->ckpt_mu);
    pthread_mutex_lock(&g->mu);
    if (rc != SQLITE_OK)
        return;
    /* Left short (a reader of another connection, an operator's sqlite3,
     * holds old frames): not again on the next commit, which would cost
     * every commit two fsyncs while the reader stays; the thread's next
     * pass, CU_DB_CKPT_PAGES pages on, tries anew. */
    g->catchups++;
}

/* SQLite calls this after every commit of the connection, with the WAL
 * already written and the transaction's locks released (the caller's lock
 * on the connection is held). Numbers the commit, remembers it as this
 * thread's debt, asks for a checkpoint each time the WAL has grown by
 * CU_DB_CKPT_PAGES, and finishes the checkpoint of the thread's last
 * pass (catch_up). Registering it replaces SQLite's automatic checkpoints. */
static int wal_hook(void *arg, sqlite3 *h, const char *name, int npages)
{
    struct cu_db_group *g = arg;

    (void)h;
    (void)name;
    owed.g = g;
    owed.seq = __atomic_add_fetch(&g->committed, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&g->mu);
    if (npages < g->wal_frames) {
        g->restarts++; /* the WAL restarted after a complete checkpoint */
        g->ckpt_floor = 0;
        g->backfilled = 0;
    }
    g->wal_frames = npages;
    if (g->backfilled > 0 && npages <= g->backfilled) {
        g->backfilled = 0; /* nothing committed since: the next write restarts */
    } else if (g->backfilled > 0) {
        catch_up(g);
    } else if (npages >= g->ckpt_floor + CU_DB_CKPT_PAGES && !g->ckpt_due) {
        g->ckpt_due = true;
        g->ckpt_floor = npages;
        pthread_cond_signal(&g->ckpt_cv);
    }
    pthread_mutex_unlock(&g->mu);
    return SQLITE_OK;
}

/* The checkpoint thread: a PASSIVE checkpoint each time one is due, on a
 * connection with synchronous=FULL, so the database file is synced before
 * frames count as backfilled (and before a writer may restart the WAL). */
static void *ckpt_main(void *arg)
{
    struct cu_db_group *g = arg;

    pthread_mutex_lock(&g->mu);
    for (;;) {
        int rc, nlog = 0, nckpt = 0;

        while (!g->ckpt_due && !g->stopping)
            pthread_cond_wait(&g->ckpt_cv, &g->mu);
        if (g->stopping)
            break;
        g->ckpt_due = false;
        pthread_mutex_unlock(&g->mu);
        pthread_mutex_lock(&g->ckpt_mu);
        rc = sqlite3_wal_checkpoint_v2(g->ckpt_h, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
        pthread_mutex_unlock(&g->ckpt_mu);
        if (rc != SQLITE_OK)
            cu_warn("db: checkpoint failed: %s (will retry when the WAL grows)",
                    sqlite3_errmsg(g->ckpt_h));
        else
            cu_debug("db: checkpoint: %d of %d WAL frames in the database", nckpt, nlog);
        pthread_mutex_lock(&g->mu);
        if (rc == SQLITE_OK) {
            g->checkpoints++;
            /* Frames committed meanwhile (nlog counts only those before
             * it started): the next commit finishes the job. */
            g->backfilled = nckpt;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* Frees g's synchronisation objects and descriptors (not the thread). */
static void group_free(struct cu_db_group *g)
{
    if (g->ckpt_h)
        sqlite3_close(g->ckpt_h);
    if (g->wal_fd >= 0)
        close(g->wal_fd);
    pthread_cond_destroy(&g->ckpt_cv);
    pthread_cond_destroy(&g->synced_cv);
    pthread_cond_destroy(&g->expect_cv);
    pthread_mutex_destroy(&g->ckpt_mu);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* Opens the WAL descriptor and the checkpoint connection of the database
 * file path. 0 or negative with e set. */
static int group_open_files(struct cu_db_group *g, const char *path, struct cu_err *e)
{
    char wal[CU_PATH_MAX], dir[CU_PATH_MAX];
    char *slash;
    int rc;

    rc = cu_snprintf(wal, sizeof wal, "%s-wal", path);
    if (rc)
        return cu_err_set(e, rc, "database path %s is too long", path);
    /* The connection has read the database in WAL mode, so DB-wal exists. */
    g->wal_fd = open(wal, O_RDWR | O_CLOEXEC);
    if (g->wal_fd < 0)
        return cu_err_set(e, -CU_EIO, "cannot open %s: %s", wal, strerror(errno));
    /* The WAL's directory entry must be durable before the first barrier
     * counts on it; later, SQLite reuses the same file. */
    (void)cu_snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        (void)cu_snprintf(dir, sizeof dir, ".");
    rc = cu_fsync_dir(dir);
    if (rc)
        return cu_err_set(e, rc, "cannot sync directory %s", dir);
    if (sqlite3_open_v2(path, &g->ckpt_h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        return cu_err_set(e, -CU_EDB, "cannot open %s for checkpoints: %s", path,
                          g->ckpt_h ? sqlite3_errmsg(g->ckpt_h) : "no handle");
    sqlite3_busy_timeout(g->ckpt_h, DB_BUSY_TIMEOUT_MS);
    if (sqlite3_exec(g->ckpt_h, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        return cu_err_set(e, -CU_EDB, "cannot set synchronous=FULL for checkpoints: %s",
                          sqlite3_errmsg(g->ckpt_h));
    return 0;
}

int cu_db_group_start(struct cu_db *db, struct cu_err *e)
{
    const char *path = sqlite3_db_filename(db->h, "main");
    struct cu_db_group *g;
    int rc;

    assert(!db->g);
    if (!path || !path[0])
        return cu_err_set(e, -CU_EINVAL, "group commit needs a database file, not memory");
    g = calloc(1, sizeof *g);
    if (!g)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    g->wal_fd = -1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->ckpt_mu, NULL);
    pthread_cond_init(&g->synced_cv, NULL);
    pthread_cond_init(&g->ckpt_cv, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&g->expect_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    rc = group_open_files(g, path, e);
    if (rc)
        goto out_free_group;
    if (pthread_create(&g->ckpt_thread, NULL, ckpt_main, g) != 0) {
        rc = cu_err_set(e, -CU_ENOMEM, "cannot start the checkpoint thread");
        goto out_free_group;
    }
    rc = cu_db_exec(db, "PRAGMA synchronous=OFF", e);
    if (rc)
        goto out_stop_thread;
    sqlite3_wal_hook(db->h, wal_hook, g);
    db->g = g;
    return 0;
out_stop_thread:
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_signal(&g->ckpt_cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->ckpt_thread, NULL);
out_free_group:
    group_free(g);
    return rc;
}

/* Undoes cu_db_group_start before the last close: synchronous=FULL again,
 * so the checkpoint SQLite runs when the last connection closes (and the
 * WAL's removal after it) is synced like any other. */
static void group_stop(struct cu_db *db)
{
    struct cu_db_group *g = db->g;

    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_signal(&g->ckpt_cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->ckpt_thread, NULL);
    sqlite3_wal_hook(db->h, NULL, NULL);
    if (sqlite3_exec(db->h, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        cu_warn("db: cannot restore synchronous=FULL: %s", sqlite3_errmsg(db->h));
    /* What the connection committed is synced by the close's checkpoint;
     * syncing the WAL now also covers a close that cannot checkpoint. */
    if (fdatasync(g->wal_fd) != 0)
        cu_warn("db: cannot sync the WAL at close: %s", strerror(errno));
    if (owed.g == g)
        owed.g = NULL;
    group_free(g);
    db->g = NULL;
}

uint64_t cu_db_owed(const struct cu_db *db)
{
    return db->g && owed.g == db->g ? owed.seq : 0;
}

void cu_db_owe(struct cu_db *db, uint64_t seq)
{
    if (!db->g || seq == 0)
        return;
    if (owed.g != db->g) {
        owed.g = db->g;
        owed.seq = 0;
    }
    if (seq > owed.seq)
        owed.seq = seq;
}

void cu_db_expect(struct cu_db *db, unsigned n, unsigned wait_us)
{
    struct cu_db_group *g = db->g;

    if (!g || n == 0)
        return;
    pthread_mutex_lock(&g->mu);
    if (g->expected == 0 || wait_us > g->expect_us)
        g->expect_us = wait_us;
    g->expected += n;
    pthread_mutex_unlock(&g->mu);
}

void cu_db_expect_done(struct cu_db *db)
{
    struct cu_db_group *g = db->g;

    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    if (g->expected > 0 && --g->expected == 0)
        pthread_cond_broadcast(&g->expect_cv);
    pthread_mutex_unlock(&g->mu);
}

/* A leader about to sync waits (up to the longest wait announced) for the
 * commits announced with cu_db_expect, so that one fdatasync covers them
 * too instead of a second one right after. Past the wait, whatever is
 * still expected is forgotten: an announcer that was slow or wrong costs
 * one wait, never more. g->mu held; g->syncing set, so no other thread
 * leads meanwhile. */
static void expect_wait(struct cu_db_group *g)
{
    struct timespec until;

    cu_mono_deadline(&until, 0);
    until.tv_sec += (time_t)(g->expect_us / 1000000u);
    until.tv_nsec += (long)(g->expect_us % 1000000u) * 1000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (g->expected > 0 && !g->stopping) {
        if (pthread_cond_timedwait(&g->expect_cv, &g->mu, &until) == ETIMEDOUT) {
            g->expected = 0;
            g->expect_timeouts++;
            break;
        }
    }
}

int cu_db_barrier(struct cu_db *db)
{
    struct cu_db_group *g = db->g;
    uint64_t want;
    int rc;

    if (!g || owed.g != g || owed.seq == 0)
        return 0;
    want = owed.seq;
    owed.seq = 0;
    pthread_mutex_lock(&g->mu);
    while (!g->err && g->synced < want) {
        uint64_t upto;
        int r, saved;

        if (g->syncing) {
            pthread_cond_wait(&g->synced_cv, &g->mu);
            continue;
        }
        /* Lead: every commit numbered so far has written its frames. */
        g->syncing = true;
        if (g->expected > 0)
            expect_wait(g);
        upto = __atomic_load_n(&g->committed, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&g->mu);
        r = fdatasync(g->wal_fd);
        saved = errno;
        pthread_mutex_lock(&g->mu);
        g->syncing = false;
        g->syncs++;
        if (r != 0) {
            cu_error("db: fdatasync of the WAL failed: %s; no later commit is acknowledged",
                     strerror(saved));
            g->err = -CU_EIO;
        } else if (upto > g->synced) {
            g->synced = upto;
        }
        pthread_cond_broadcast(&g->synced_cv);
    }
    rc = g->err;
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void cu_db_stats(struct cu_db *db, struct cu_db_stats *out)
{
    struct cu_db_group *g = db->g;

    memset(out, 0, sizeof *out);
    if (!g)
        return;
    out->commits = __atomic_load_n(&g->committed, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&g->mu);
    out->synced = g->synced;
    out->syncs = g->syncs;
    out->expect_timeouts = g->expect_timeouts;
    out->checkpoints = g->checkpoints;
    out->catchups = g->catchups;
    out->restarts = g->restarts;
    out->wal_frames = (uint64_t)g->wal_frames;
    pthread_mutex_unlock(&g->mu);
}
