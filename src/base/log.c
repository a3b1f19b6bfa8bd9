#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"

static enum cu_log_level cur_level = CU_LOG_INFO;
static const char *cur_role = "cumulus";

static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

void cu_log_set_level(enum cu_log_level lvl) { cur_level = lvl; }
void cu_log_set_role(const char *role) { cur_role = role; }

int cu_log_parse_level(const char *s, enum cu_log_level *out)
{
    static const char *const lower[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i <= CU_LOG_OFF; i++) {
        if (strcmp(s, lower[i]) == 0) {
            *out = (enum cu_log_level)i;
            return 0;
        }
    }
    return -CU_EINVAL;
}

static __thread struct {
    unsigned depth;
    size_t n;
    char buf[CU_LOG_HOLD_MAX];
} held;

static void held_flush(void)
{
    if (held.n > 0 && write(STDERR_FILENO, held.buf, held.n) < 0) {
        /* nothing sensible to do when stderr is gone */
    }
    held.n = 0;
}

void cu_log_hold(void)
{
    held.depth++;
}

void cu_log_release(void)
{
    if (held.depth > 0 && --held.depth == 0)
        held_flush();
}

void cu_log(enum cu_log_level lvl, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    if (lvl < cur_level || lvl >= CU_LOG_OFF)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof line - n, ".%03ldZ %s [%s] ", ts.tv_nsec / 1000000L,
                 names[lvl], cur_role);
    if (k > 0)
        n += (size_t)k;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k;
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (held.depth > 0) {
        if (lvl <= CU_LOG_INFO && held.n + n <= sizeof held.buf) {
            memcpy(held.buf + held.n, line, n);
            held.n += n;
            return;
        }
        held_flush(); /* what came first goes first */
    }
    /* One write per line (or per held batch of whole lines) so concurrent
     * threads do not interleave. */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nothing sensible to do when stderr is gone */
    }
}
