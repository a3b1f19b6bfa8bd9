/* log.h - leveled logging to stderr: "2026-11-23T12:00:00.123Z INFO [role] msg".
 * Thread-safe (one write(2) per line). */
#ifndef CU_BASE_LOG_H
#define CU_BASE_LOG_H

enum cu_log_level { CU_LOG_DEBUG, CU_LOG_INFO, CU_LOG_WARN, CU_LOG_ERROR, CU_LOG_OFF };

void cu_log_set_level(enum cu_log_level lvl);
/* Parses "debug", "info", "warn", "error", "off"; -CU_EINVAL otherwise. */
int cu_log_parse_level(const char *s, enum cu_log_level *out);
/* Short tag printed in brackets, e.g. "exchange"; the string must outlive
 * all logging (a literal). */
void cu_log_set_role(const char *role);
void cu_log(enum cu_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Between cu_log_hold and cu_log_release the calling thread's DEBUG and
 * INFO lines are kept (each formatted, with its time, when logged) and
 * written together at the release, in one write(2): for code holding a
 * lock others wait for, whose lines would otherwise cost a system call
 * each inside it. A WARN or ERROR line writes what is held and itself at
 * once; so does a full buffer (CU_LOG_HOLD_MAX). Holds nest; the
 * outermost release writes. */
#define CU_LOG_HOLD_MAX 8192
void cu_log_hold(void);
void cu_log_release(void);

#define cu_debug(...) cu_log(CU_LOG_DEBUG, __VA_ARGS__)
#define cu_info(...) cu_log(CU_LOG_INFO, __VA_ARGS__)
#define cu_warn(...) cu_log(CU_LOG_WARN, __VA_ARGS__)
#define cu_error(...) cu_log(CU_LOG_ERROR, __VA_ARGS__)

#endif
