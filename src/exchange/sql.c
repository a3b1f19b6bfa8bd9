/* sql.c - SQLite statement helpers of the exchange (mu held). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>

#include "base/log.h"
#include "exchange/sql.h"

#include "base/banned.h"

/* A database failure: logged with SQLite's message, answered 500. mu held. */
int ex_fail_db(struct ex_state *st, struct ex_fail *f, const char *what)
{
    cu_error("db: %s: %s", what, sqlite3_errmsg(st->db.h));
    return ex_fail_set(f, 500, "internal", "database error while %s", what);
}


/* Binds variadic arguments by types: 't' const char * (NULL binds NULL),
 * 'i' int64_t, 'b' const void * then size_t (a blob). */
static int bind_v(sqlite3_stmt *s, const char *types, va_list ap)
{
    for (int i = 0; types[i]; i++) {
        int rc = SQLITE_OK;
        switch (types[i]) {
        case 't': {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(s, i + 1);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
            break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(s, i + 1, p, n, SQLITE_TRANSIENT);
            break;
        }
        default:
            assert(!"bad bind type");
            return -CU_EINVAL;
        }
        if (rc != SQLITE_OK)
            return -CU_EDB;
    }
    return 0;
}

/* Prepared and bound statement, or NULL (logged). The caller finalizes. */
sqlite3_stmt *ex_sql_query(struct ex_state *st, const char *sql, const char *types, ...)
{
    sqlite3_stmt *s = NULL;
    va_list ap;
    int rc;

    if (sqlite3_prepare_v2(st->db.h, sql, -1, &s, NULL) != SQLITE_OK) {
        cu_error("db: cannot prepare [%s]: %s", sql, sqlite3_errmsg(st->db.h));
        return NULL;
    }
    va_start(ap, types);
    rc = bind_v(s, types, ap);
    va_end(ap);
    if (rc) {
        cu_error("db: cannot bind [%s]: %s", sql, sqlite3_errmsg(st->db.h));
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

sqlite3_stmt *ex_sql_cached(struct ex_state *st, const char *sql, const char *types, ...)
{
    struct cu_err e = {0};
    sqlite3_stmt *s = NULL;
    va_list ap;
    int rc;

    if (cu_db_cached(&st->db, sql, &s, &e) != 0) {
        cu_error("db: cannot prepare [%s]: %s", sql, e.msg);
        return NULL;
    }
    va_start(ap, types);
    rc = bind_v(s, types, ap);
    va_end(ap);
    if (rc) {
        cu_error("db: cannot bind [%s]: %s", sql, sqlite3_errmsg(st->db.h));
        cu_db_cached_done(&st->db, s);
        return NULL;
    }
    return s;
}

void ex_sql_done(struct ex_state *st, sqlite3_stmt *s)
{
    cu_db_cached_done(&st->db, s);
}

/* 1 for a row, 0 at the end, -CU_EDB (logged). */
int ex_sql_step(struct ex_state *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    cu_error("db: step [%s]: %s", sqlite3_sql(s), sqlite3_errmsg(st->db.h));
    return -CU_EDB;
}

/* Runs one statement without rows: 0, -CU_EEXISTS on a constraint
 * violation, -CU_EDB (logged). The statement is prepared once per text and
 * reused (cu_db_cached): sql must not change while the state is open
 * unless it is a different string. */
int ex_sql_run(struct ex_state *st, const char *sql, const char *types, ...)
{
    struct cu_err e = {0};
    sqlite3_stmt *s = NULL;
    va_list ap;
    int rc;

    if (cu_db_cached(&st->db, sql, &s, &e) != 0) {
        cu_error("db: cannot prepare [%s]: %s", sql, e.msg);
        return -CU_EDB;
    }
    va_start(ap, types);
    rc = bind_v(s, types, ap);
    va_end(ap);
    if (rc) {
        cu_db_cached_done(&st->db, s);
        return -CU_EDB;
    }
    rc = sqlite3_step(s);
    /* sqlite3_errmsg must be read before the reset changes it. */
    if (rc != SQLITE_DONE && rc != SQLITE_ROW && (rc & 0xff) != SQLITE_CONSTRAINT)
        cu_error("db: [%s]: %s", sql, sqlite3_errmsg(st->db.h));
    cu_db_cached_done(&st->db, s);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return -CU_EEXISTS;
    return -CU_EDB;
}

const char *ex_col_text(sqlite3_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(s, i);
}

bool ex_col_null(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL;
}

json_t *ex_col_jtext(sqlite3_stmt *s, int i)
{
    const char *t = ex_col_text(s, i);
    return t ? json_string(t) : json_null();
}

json_t *ex_col_jint(sqlite3_stmt *s, int i)
{
    return ex_col_null(s, i) ? json_null() : json_integer(sqlite3_column_int64(s, i));
}

/* Copies column i into dst (n bytes), "" when NULL; truncates. */
void ex_col_copy(sqlite3_stmt *s, int i, char *dst, size_t n)
{
    const char *t = ex_col_text(s, i);
    snprintf(dst, n, "%s", t ? t : "");
}

