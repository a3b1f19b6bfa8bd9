/* db.c - SQLite connection setup, migrations and transactions. */
#include "store/db.h"

#include <assert.h>
#include <string.h>

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
    db->h = NULL;
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

void cu_db_close(struct cu_db *db)
{
    if (!db->h)
        return;
    /* SQLITE_BUSY here means a caller leaked a statement: a bug to report. */
    if (sqlite3_close(db->h) != SQLITE_OK)
    {
        cu_error("db: close failed: %s (unfinalized statements?)", sqlite3_errmsg(db->h));
        sqlite3_close_v2(db->h); /* frees the handle once they are finalized */
    }
    db->h = NULL;
}
