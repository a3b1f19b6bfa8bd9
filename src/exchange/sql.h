/* sql.h - statement helpers shared by the exchange's state modules.
 *
 * Internal to src/exchange/. Every function expects st->mu held. */
#ifndef CU_EXCHANGE_SQL_H
#define CU_EXCHANGE_SQL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "exchange/state.h"

/* A database failure: logged with SQLite's message; f gets 500. Returns
 * the negative code. */
int ex_fail_db(struct ex_state *st, struct ex_fail *f, const char *what);
/* Prepared statement with arguments bound by types: 't' const char *
 * (NULL binds NULL), 'i' int64_t, 'b' const void * then size_t (a blob).
 * NULL when it cannot (logged). The caller finalizes. */
sqlite3_stmt *ex_sql_query(struct ex_state *st, const char *sql, const char *types, ...);
/* ex_sql_query with a statement reused across calls (cu_db_cached), for
 * hot paths: the caller gives it back with ex_sql_done, never
 * sqlite3_finalize. NULL when it cannot (logged). */
sqlite3_stmt *ex_sql_cached(struct ex_state *st, const char *sql, const char *types, ...);
/* Gives back a statement of ex_sql_cached (NULL is ignored). */
void ex_sql_done(struct ex_state *st, sqlite3_stmt *s);
/* 1 for a row, 0 at the end, -CU_EDB (logged). */
int ex_sql_step(struct ex_state *st, sqlite3_stmt *s);
/* Runs one statement without rows: 0, -CU_EEXISTS on a constraint
 * violation, -CU_EDB (logged). */
int ex_sql_run(struct ex_state *st, const char *sql, const char *types, ...);

/* Column readers. */
const char *ex_col_text(sqlite3_stmt *s, int i);
bool ex_col_null(sqlite3_stmt *s, int i);
json_t *ex_col_jtext(sqlite3_stmt *s, int i); /* string or null */
json_t *ex_col_jint(sqlite3_stmt *s, int i);  /* integer or null */
/* Copies column i into dst (n bytes), "" when NULL; truncates. */
void ex_col_copy(sqlite3_stmt *s, int i, char *dst, size_t n);

#endif
