/* db.h - SQLite wrapper: open in WAL mode with versioned migrations.
 *
 * Callers use the sqlite3 API for statements; this module owns opening,
 * pragmas, migrations and transactions. One struct cu_db is one connection;
 * it is not shared between threads without the caller's lock. */
#ifndef CU_STORE_DB_H
#define CU_STORE_DB_H

#include <sqlite3.h>
#include <stdint.h>

#include "base/err.h"

struct cu_db_group;
struct cu_db_cache;

struct cu_db {
    sqlite3 *h;
    struct cu_db_group *g;       /* group commit state; NULL: every COMMIT syncs */
    struct cu_db_cache *cache;   /* prepared statements (cu_db_cached), or NULL */
};

/* Migration `version` brings the schema from version-1 to version; the
 * list is ordered and starts at 1. Each runs in its own transaction and
 * sets PRAGMA user_version. */
struct cu_migration {
    int version;
    const char *sql;
};

/* Opens (creating) path with journal_mode=WAL, synchronous=FULL,
 * foreign_keys=ON, busy_timeout=5000, then applies pending migrations.
 * A database newer than the migrations known is refused (-CU_EUNSUPPORTED).
 * On failure db->h is NULL and e names the problem. */
int cu_db_open(struct cu_db *db, const char *path, const struct cu_migration *m, size_t n,
               struct cu_err *e);
void cu_db_close(struct cu_db *db);
/* Runs one or more statements without results; -CU_EDB with e set. */
int cu_db_exec(struct cu_db *db, const char *sql, struct cu_err *e);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. rollback never fails loudly. */
int cu_db_begin(struct cu_db *db);
int cu_db_commit(struct cu_db *db);
void cu_db_rollback(struct cu_db *db);
/* sqlite3_prepare_v2 with error reporting; *st NULL on failure. */
int cu_db_prepare(struct cu_db *db, const char *sql, sqlite3_stmt **st, struct cu_err *e);
int cu_db_user_version(struct cu_db *db);

/* A prepared statement for sql kept by db for reuse (parsing and planning
 * a statement costs more than running most of ours). sql is usually a
 * literal: the cache is keyed by its address and checks the text. The
 * caller binds and steps, then hands it back with cu_db_cached_done (never
 * sqlite3_finalize). While one is out, asking for the same sql again
 * gives a fresh statement that cu_db_cached_done finalizes, so nested use
 * is safe. Under the caller's lock like every use of db. 0, or -CU_EDB
 * with e set (*st NULL). */
int cu_db_cached(struct cu_db *db, const char *sql, sqlite3_stmt **st, struct cu_err *e);
/* Gives back st from cu_db_cached: reset (a statement left stepping holds
 * a read snapshot) and unbound for its next use, or finalized when it was
 * not the cached one. NULL is ignored. */
void cu_db_cached_done(struct cu_db *db, sqlite3_stmt *st);

/* ---- group commit ------------------------------------------------------------
 *
 * By default every COMMIT syncs (synchronous=FULL): one fdatasync per write
 * transaction, however many threads commit at once. In group commit mode
 * (cu_db_group_start) COMMIT only writes the WAL (synchronous=OFF) and
 * durability is a separate step, the barrier:
 *
 *   - every commit on the connection gets a sequence number (a WAL hook runs
 *     after each COMMIT, autocommit statements included) and the committing
 *     thread remembers the highest one it owes (thread-local);
 *   - before a thread tells anyone outside the process that its change
 *     happened, it calls cu_db_barrier: one waiting thread at a time becomes
 *     the leader, reads the latest sequence number, fdatasync()s the WAL
 *     file and marks everything up to that number synced; the others wait
 *     for it, so N concurrent writers share one fdatasync;
 *   - the WAL is a log of whole commits with checksums: after a crash SQLite
 *     recovers its longest valid prefix, so a commit that was synced is kept
 *     together with every commit before it, and one that was not is either
 *     kept whole or lost whole (a kill -9 loses nothing: the writes are in
 *     the page cache);
 *   - automatic checkpoints are off (they would run with synchronous=OFF and
 *     could restart the WAL over pages the database file has not yet got on
 *     disk). A checkpoint thread with its own connection (synchronous=FULL:
 *     it syncs the WAL before copying and the database file before marking
 *     frames as backfilled, which is what allows a writer to restart the
 *     WAL) runs a PASSIVE checkpoint whenever the WAL has grown by
 *     CU_DB_CKPT_PAGES pages; writers go on meanwhile. The frames they
 *     commit meanwhile are checkpointed by the next commit's thread,
 *     through the same connection, before the connection can start
 *     another write: only then does the next write restart the WAL at its
 *     start, so under steady load the WAL stays near CU_DB_CKPT_PAGES
 *     pages instead of growing without bound;
 *   - cu_db_close switches back to synchronous=FULL before the last close,
 *     whose checkpoint and WAL removal must be durable too.
 *
 * A thread that commits through two group-commit databases must run the
 * barrier of the first before committing to the second (the thread-local
 * holds one obligation); the exchange does, one request at a time. */

#define CU_DB_CKPT_PAGES 4096 /* WAL pages (of 4 KiB) between checkpoints */

struct cu_db_stats {
    uint64_t commits;     /* COMMITs seen by the WAL hook (the last number) */
    uint64_t synced;      /* every commit numbered up to this is durable */
    uint64_t syncs;       /* fdatasync calls of barrier leaders */
    uint64_t checkpoints; /* checkpoints run by the checkpoint thread */
    uint64_t catchups;    /* checkpoints finished by a committing thread */
    uint64_t restarts;    /* times the WAL started again at its beginning */
    uint64_t wal_frames;  /* frames in the WAL after the last commit */
    uint64_t expect_timeouts; /* leaders that stopped waiting for expected commits */
};

/* Switches the open database db (a file in WAL mode) to group commit:
 * synchronous=OFF, the WAL hook, an fd on its WAL file (DB-wal), and the
 * checkpoint thread with its own connection. Call once, right after
 * cu_db_open, before any other thread uses db. 0, or negative with e set
 * (db is then unchanged and still synchronous=FULL). */
int cu_db_group_start(struct cu_db *db, struct cu_err *e);

/* The durability barrier: returns once every commit this thread made on db
 * since its last barrier is on disk. Returns 0 at once when the thread owes
 * nothing (or db is not in group commit mode). Blocks for at most one or
 * two fdatasync calls; takes no lock of the caller's and must be called
 * without the caller's state lock held, or the commits of other threads
 * cannot join the group. -CU_EIO when fdatasync failed: then the outcome of
 * every commit since the last successful sync is unknown, and every later
 * barrier fails too (the page cache may have dropped the failed pages; the
 * process should be restarted, and SQLite's recovery decides). */
int cu_db_barrier(struct cu_db *db);

/* Announces n commits about to be made by other threads (a writer that
 * wakes n waiters who will each commit, or decide not to, right away).
 * The next barrier leader waits up to wait_us (the longest announced
 * since the last leader) before its fdatasync until as many
 * cu_db_expect_done calls came, so that its sync
 * covers those commits too: the waiters then need none of their own. So
 * a new job and the lease of it taken by a provider long-polling for work
 * share one sync. Each announced thread must call cu_db_expect_done once,
 * after its commit or when it has nothing to commit; a late call after
 * the leader gave up is harmless. No-ops without group commit. */
void cu_db_expect(struct cu_db *db, unsigned n, unsigned wait_us);
void cu_db_expect_done(struct cu_db *db);

/* For a thread that commits on behalf of others: the number of the last
 * commit this thread made on db and has not yet passed a barrier for (0:
 * none, or db is not in group commit mode). */
uint64_t cu_db_owed(const struct cu_db *db);
/* Makes this thread owe commit number seq of db as well (a commit another
 * thread made for it, read with cu_db_owed there): its next cu_db_barrier
 * waits until seq is durable too. 0 is ignored. */
void cu_db_owe(struct cu_db *db, uint64_t seq);

/* Counters since cu_db_group_start (all zero without group commit). */
void cu_db_stats(struct cu_db *db, struct cu_db_stats *out);

#endif
