/* db.h - SQLite wrapper: open in WAL mode with versioned migrations.
 *
 * Callers use the sqlite3 API for statements; this module owns opening,
 * pragmas, migrations and transactions. One struct cu_db is one connection;
 * it is not shared between threads without the caller's lock. */
#ifndef CU_STORE_DB_H
#define CU_STORE_DB_H

#include <sqlite3.h>

#include "base/err.h"

struct cu_db {
    sqlite3 *h;
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

#endif
