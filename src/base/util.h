/* util.h - small helpers with no policy: clocks, files, parsing of sizes and
 * durations, hex. */
#ifndef CU_BASE_UTIL_H
#define CU_BASE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/buf.h"
#include "base/err.h"

#define CU_PATH_MAX 4096

/* Wall-clock milliseconds since the epoch. */
int64_t cu_now_ms(void);
/* Monotonic milliseconds (for timeouts, never stored). */
int64_t cu_mono_ms(void);
/* Adds ms (>= 0) milliseconds to *t, keeping tv_nsec below a second. */
void cu_timespec_add_ms(struct timespec *t, int64_t ms);
/* CLOCK_MONOTONIC now plus ms (>= 0): a deadline for pthread_cond_timedwait
 * on a condition variable whose clock is CLOCK_MONOTONIC. */
void cu_mono_deadline(struct timespec *out, int64_t ms);

/* Files a sandbox may execute must never be open for writing in one thread
 * while another thread forks: the child holds the write descriptor until
 * its own exec, and an exec of that file meanwhile fails with ETXTBSY
 * ("Text file busy"). A writer of such a file holds the shared side while
 * its descriptor is open (cu_exec_write_begin/end); fork takes the
 * exclusive side (cu_fork_begin/end), so no child ever inherits one. The
 * lock prefers the fork side, so a stream of copies cannot starve a start.
 * Never fork while holding the shared side. */
void cu_exec_write_begin(void);
void cu_exec_write_end(void);
void cu_fork_begin(void);
void cu_fork_end(void);
/* Sleeps ms milliseconds (restarts on EINTR). */
void cu_sleep_ms(int64_t ms);

/* mkdir -p with the given mode for created directories. */
int cu_mkdir_p(const char *path, mode_t mode);
/* rm -rf: removes path and everything below it; missing path is success.
 * Does not follow symlinks. */
int cu_rm_rf(const char *path);
/* Removes every entry of dir (as cu_rm_rf), keeping dir itself. 0, or
 * -CU_EIO when an entry stays or dir cannot be read. */
int cu_empty_dir(const char *dir);
/* Reads a whole file into b (bounded by b->max): -CU_ENOTFOUND, -CU_ETOOBIG,
 * -CU_EIO. */
int cu_read_file(const char *path, struct cu_buf *b);
/* Writes data to path atomically: temp file in the same directory, fsync,
 * rename, fsync of the directory. */
int cu_write_file_atomic(const char *path, const void *data, size_t n, mode_t mode);
/* fsyncs the directory containing path (or path itself if a directory). */
int cu_fsync_dir(const char *dir);
/* Total bytes of regular files under dir (not following symlinks); 0 if
 * missing. */
uint64_t cu_dir_size(const char *dir);
/* cu_dir_size, and in *entries how many entries dir itself holds (of any
 * kind; 0 when dir is missing, UINT64_MAX when it cannot be read). */
uint64_t cu_dir_usage(const char *dir, uint64_t *entries);
/* cu_dir_usage of the directory open at dfd (left open; its read position
 * is rewound): for a directory looked at again and again, without a walk
 * of its path each time. */
uint64_t cu_dir_usage_at(int dfd, uint64_t *entries);
/* snprintf that reports truncation: -CU_ETOOBIG if the result did not fit. */
int cu_snprintf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Joins dir and name with one '/' into out (-CU_ETOOBIG on overflow). */
int cu_path_join(char *out, size_t n, const char *dir, const char *name);

/* "256MiB", "1GiB", "10MB", "512k", "4096" (bytes) -> bytes. Units: B, k/K/KB
 * (1000), KiB, M/MB, MiB, G/GB, GiB, T/TB, TiB. -CU_EINVAL / -CU_EOVERFLOW. */
int cu_parse_size(const char *s, uint64_t *out);
/* "30s", "500ms", "2m", "1h", "1h30m", "45" (seconds) -> milliseconds. */
int cu_parse_duration_ms(const char *s, uint64_t *out);
/* Strict decimal parse of a whole string into [min, max]; no sign unless
 * min < 0, no spaces, no trailing junk. */
int cu_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Human forms: "1.5 MiB", "2m03s" (into out; always terminated). */
void cu_fmt_size(uint64_t bytes, char *out, size_t n);
void cu_fmt_duration(uint64_t ms, char *out, size_t n);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void cu_hex_encode(const void *in, size_t n, char *out);
/* Decodes exactly 2n hex chars (either case) of s into n bytes. */
int cu_hex_decode(const char *s, void *out, size_t n);

/* True if name is a safe single path component: 1..255 bytes of
 * [A-Za-z0-9._-], not "." or "..", not starting with '-'. */
bool cu_name_is_safe(const char *name);

/* Overflow-checked arithmetic for money and sizes: 0 or -CU_EOVERFLOW. */
int cu_add_u64(uint64_t a, uint64_t b, uint64_t *out);
int cu_mul_u64(uint64_t a, uint64_t b, uint64_t *out);

#endif
