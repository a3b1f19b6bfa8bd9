/* benchlib.h - helpers shared by the benchmarks under bench/: statistics,
 * temporary directories and child processes that are cleaned up on every
 * path (normal exit, error exit, SIGINT/SIGTERM), starting the real
 * exchange and provider binaries, and waiting for a job.
 *
 * Every benchmark prints exactly one JSON line on stdout and a one-line
 * summary on stderr; everything else (child logs) goes to files in the
 * benchmark's temporary directory. */
#ifndef CU_BENCH_BENCHLIB_H
#define CU_BENCH_BENCHLIB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/api.h"

struct bl_stats {
    size_t n;
    double min, max, mean, median, p90, p99;
};

/* Sorts v in place and fills s (all zero when n == 0). Percentiles are
 * nearest-rank. */
void bl_stats(double *v, size_t n, struct bl_stats *s);
/* Monotonic clock in milliseconds, sub-millisecond resolution. */
double bl_now_ms(void);

/* Must be called first, before any thread is started: blocks the stop
 * signals (a helper thread receives them and cleans up), registers the
 * exit-time cleanup and initialises libsodium. */
void bl_init(const char *bench_name);
/* Prints "bench: message" on stderr and exits 1 (cleanup runs). */
void bl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Creates a fresh directory (mode 0711, so the sandbox's uid 65534 can
 * reach task directories below it) under $TMPDIR or /tmp, removed at exit.
 * out gets its path. Dies on failure. */
void bl_tmpdir(char *out, size_t n);

/* Starts argv[0] (searched in PATH) with stdout and stderr appended to
 * log_path (NULL: /dev/null); the child dies with this process. The pid is
 * killed and reaped at exit unless bl_stop was called. Dies on failure. */
pid_t bl_spawn(const char *const *argv, const char *log_path);
/* SIGTERM, up to 5 s for it to exit, then SIGKILL; reaps it. Returns its
 * wait status. */
int bl_stop(pid_t pid);
/* User + system CPU seconds process pid has used so far (its threads, not
 * its children), from /proc/PID/stat. Dies when it cannot be read. */
double bl_proc_cpu_s(pid_t pid);
/* The same, plus what its children that it has waited for used (cutime and
 * cstime): for the provider, the sandboxes it started and ended. */
double bl_proc_cpu_tree_s(pid_t pid);
/* The machine's CPU time so far, in seconds summed over all CPUs: *busy
 * (everything but idle and iowait) and *total, from /proc/stat. Dies when
 * it cannot be read. */
void bl_machine_cpu_s(double *busy, double *total);
/* Runs argv to completion with stdout/stderr to /dev/null; exit status
 * (or -1). */
int bl_run(const char *const *argv);

/* Absolute path of the cumulus binary: $CUMULUS_BIN, else build/cumulus
 * relative to the current directory. Dies if missing. */
const char *bl_cumulus(void);
/* Starts `cumulus exchange --listen 127.0.0.1:0 --data DIR/exchange` and
 * waits for DIR/exchange/exchange.url; url gets it. */
pid_t bl_start_exchange(const char *dir, const char *lease, char *url, size_t urln);
/* The same with more options (NULL-terminated, at most 7; NULL: none),
 * e.g. {"--devnet", NULL}. */
pid_t bl_start_exchange_args(const char *dir, const char *const *extra, char *url, size_t urln);
/* Starts `cumulus provide` with its data under DIR/NAME and waits until it
 * has said hello (the exchange's /metrics shows one more provider). */
pid_t bl_start_provider(const char *dir, const char *name, const char *url, unsigned slots);

/* Number of providers the exchange's /metrics reports online (-1 on error). */
int bl_providers_online(const char *url);

/* What bl_api_open funds each requester with (base units). */
#define BL_FUNDS 1000000000000000ULL
/* A plain in-memory identity and an api for it, funded with BL_FUNDS from
 * the devnet faucet. Dies on failure. */
void bl_api_open(struct cu_api *api, struct cu_identity *id, const char *url);

/* Builds a job: command argv (NULL-terminated), count tasks, no inputs
 * unless in_name/in_path are given (one input), outputs glob (NULL: none),
 * replication 1, 1 core, 64 MiB. Dies on failure. */
void bl_spec(struct cu_spec *s, const char *name, const char *const *argv, uint32_t count,
             const char *in_name, const char *in_path, const char *outputs);

/* Polls GET /v1/jobs every poll_ms until the job's state is final or
 * timeout_ms passes; poll_ms 0: waits with the job long-poll (GET
 * /v1/jobs/{id}?wait_ms&after, answered when the job changes) instead.
 * Returns 0 and *summary (new reference; the whole job with the long-poll)
 * when final, -1 on timeout or error (message printed). */
int bl_wait_job(struct cu_api *api, const char *job, double poll_ms, double timeout_ms,
                json_t **summary);

/* Uploads spec's inputs (HEAD, PUT when missing), submits it and waits
 * (bl_wait_job) until it ends; dies unless every task is done. Returns the
 * wall time from before the upload to the poll that saw it done, in ms;
 * *exchange_ms (may be NULL) gets finished_ms - created_ms as the exchange
 * recorded them. */
double bl_time_job(struct cu_api *api, const struct cu_spec *spec, double poll_ms,
                   double timeout_ms, double *exchange_ms);
/* Runs `sh -c script` and returns its wall time in ms; dies on failure. */
double bl_time_sh(const char *script);

/* Parses "--name VALUE" options into u64; returns def when absent. Dies on
 * a malformed value. --size accepts size suffixes (1GiB). */
uint64_t bl_opt_u64(int argc, char **argv, const char *name, uint64_t def);
bool bl_opt_flag(int argc, char **argv, const char *name);

#endif
