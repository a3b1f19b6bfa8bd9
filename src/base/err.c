#include "base/err.h"

#include <stdio.h>
#include <string.h>

static const char *const codes[] = {
    [CU_OK] = "ok",
#define CU_X_CODE(name, code, msg) [CU_E##name] = code,
    CU_ERROR_TABLE(CU_X_CODE)
#undef CU_X_CODE
};

static const char *const msgs[] = {
    [CU_OK] = "success",
#define CU_X_MSG(name, code, msg) [CU_E##name] = msg,
    CU_ERROR_TABLE(CU_X_MSG)
#undef CU_X_MSG
};

static int norm(int err) { return err < 0 ? -err : err; }

const char *cu_errcode(int err)
{
    int e = norm(err);
    return e < CU_E_MAX ? codes[e] : "unknown";
}

const char *cu_strerror(int err)
{
    int e = norm(err);
    return e < CU_E_MAX ? msgs[e] : "unknown error";
}

int cu_err_vset(struct cu_err *e, int code, const char *fmt, va_list ap)
{
    if (e) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

int cu_err_set(struct cu_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cu_err_vset(e, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *cu_err_msg(const struct cu_err *e, int code)
{
    if (e && e->msg[0])
        return e->msg;
    return cu_strerror(code);
}
