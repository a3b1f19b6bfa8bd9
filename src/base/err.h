/* err.h - the one error table of Cumulus.
 *
 * Functions return 0 on success and a negative CU_E* code on failure
 * (libuv style). Where the caller needs a sentence naming the bad field,
 * value or peer, the function also fills a struct cu_err. */
#ifndef CU_BASE_ERR_H
#define CU_BASE_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* X(name, stable code string, default message) */
#define CU_ERROR_TABLE(X)                                                     \
    X(NOMEM, "out_of_memory", "out of memory")                                \
    X(INVAL, "invalid", "invalid argument")                                   \
    X(IO, "io_error", "input/output error")                                   \
    X(NOTFOUND, "not_found", "not found")                                     \
    X(EXISTS, "exists", "already exists")                                     \
    X(PERM, "forbidden", "permission denied")                                 \
    X(AUTH, "unauthorized", "authentication failed")                          \
    X(TOOBIG, "too_large", "too large")                                       \
    X(TIMEOUT, "timeout", "timed out")                                        \
    X(PROTO, "protocol_error", "protocol error")                              \
    X(DB, "database_error", "database error")                                 \
    X(CRYPTO, "crypto_error", "cryptographic failure")                        \
    X(AGAIN, "again", "try again")                                            \
    X(CONFLICT, "conflict", "conflicting state")                              \
    X(OVERFLOW, "overflow", "arithmetic overflow")                            \
    X(NET, "network_error", "network error")                                  \
    X(SANDBOX, "sandbox_error", "sandbox error")                              \
    X(CANCELLED, "cancelled", "cancelled")                                    \
    X(UNSUPPORTED, "unsupported", "not supported")                            \
    X(CORRUPT, "corrupt", "data does not match its hash")                     \
    X(NEEDPASS, "passphrase_required", "passphrase required")

enum cu_errno {
    CU_OK = 0,
#define CU_X_ENUM(name, code, msg) CU_E##name,
    CU_ERROR_TABLE(CU_X_ENUM)
#undef CU_X_ENUM
        CU_E_MAX
};
/* Values are returned negated: return -CU_EINVAL; */

/* Stable snake_case code string for an error ("invalid"); accepts the
 * negative or positive value; "unknown" for values outside the table. */
const char *cu_errcode(int err);
/* Default human message for an error. */
const char *cu_strerror(int err);

#define CU_ERR_MSG_MAX 512

/* Error detail for the user: a code (negative CU_E*) and a sentence that
 * names what is wrong. Zero-initialise; cu_err_set overwrites. */
struct cu_err {
    int code;
    char msg[CU_ERR_MSG_MAX];
};

/* Sets e (if non-NULL) and returns code, so callers can write
 *   return cu_err_set(e, -CU_EINVAL, "field 'tasks': must be > 0");
 * code must be negative. */
int cu_err_set(struct cu_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cu_err_vset(struct cu_err *e, int code, const char *fmt, va_list ap);
/* Message of e, or cu_strerror(code) when e carries no message. */
const char *cu_err_msg(const struct cu_err *e, int code);

#endif
