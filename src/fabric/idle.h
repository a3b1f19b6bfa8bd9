/* idle.h - is the owner away? (DESIGN.md §8: "a provider may choose to run
 * only when the machine is idle").
 *
 * "Idle" means both, for the last N ms (the quiet time, --idle-after):
 *   - no keyboard or mouse input, and
 *   - the CPU load of every process that is not the provider or one of its
 *     tasks at most L (--max-load), measured as cores kept busy: from the
 *     machine's busy CPU time (/proc/stat: all but idle and iowait) minus
 *     the CPU time of the provider's own process tree (fabric/proctree.h),
 *     over each sample interval. 0.5 = half a core busy on average, the
 *     same scale as /proc/loadavg for CPU-bound work, but without the
 *     provider's own tasks in it.
 * and the provider has been watching for at least N ms (nothing is known
 * from before it started).
 *
 * The decision (cu_idle_decide) is pure: it takes the last input time, the
 * load samples, thresholds and now, and returns idle/busy with a reason.
 * Probing and the thread that keeps the verdict current are below it
 * (struct cu_idle_monitor). Input is seen, without X, through
 *   - the access time of /dev/input/event*, /dev/input/mice and the
 *     virtual consoles /dev/tty1..12 (the tty driver stamps each read;
 *     the evdev nodes only where the kernel or udev does), and
 *   - the interrupt counters of the i8042 (PS/2 keyboard and mouse)
 *     lines in /proc/interrupts, which rise on every key and move.
 * USB keyboards share their interrupt with other USB devices and are
 * seen only through the device nodes. A desktop session can instead say
 * what it knows through a probe file (--idle-probe FILE), which replaces
 * both measurements: its first word is "active" (the owner is there now)
 * or "idle" (away since the file stopped saying "active"); anything else,
 * or no file, counts as active. Tests simulate the owner with it. */
#ifndef CU_FABRIC_IDLE_H
#define CU_FABRIC_IDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CU_IDLE_NEVER INT64_MIN /* last_input_ms when no input was ever seen */

/* ---- the decision (pure) ------------------------------------------------- */

struct cu_idle_policy {
    bool use_input;          /* input makes the machine busy */
    bool use_load;           /* load of others above max_load_milli makes it busy */
    int64_t quiet_ms;        /* N: how long both must have been quiet */
    uint32_t max_load_milli; /* L x 1000 */
};

/* Cumulative counters at one moment (monotonic clock). */
struct cu_idle_sample {
    int64_t t_ms;
    uint64_t busy_ms; /* CPU time the whole machine spent busy, all cores */
    uint64_t own_ms;  /* of which the provider and its tasks */
};

struct cu_idle_inputs {
    int64_t now_ms;
    int64_t watch_start_ms;  /* when observation began */
    bool have_input;         /* some input source exists; else input is not judged */
    int64_t last_input_ms;   /* or CU_IDLE_NEVER */
    const struct cu_idle_sample *samples; /* oldest first */
    size_t nsamples;
};

enum cu_idle_why {
    CU_IDLE_YES = 0,    /* idle */
    CU_IDLE_INPUT,      /* input less than quiet_ms ago */
    CU_IDLE_LOAD,       /* some interval in the window had others' load above L */
    CU_IDLE_NO_SAMPLES, /* no load interval in the window yet */
    CU_IDLE_WATCHING,   /* observed for less than quiet_ms */
};

struct cu_idle_verdict {
    bool idle;
    enum cu_idle_why why;
    int64_t input_age_ms;  /* -1 when input is not judged or never seen */
    uint32_t load_milli;   /* highest others' load of the window's intervals */
    char reason[192];      /* "owner active: input 3.0s ago, idle after 5m00s without" */
};

/* Decides idle or busy. A sample interval (samples[i-1], samples[i]]
 * belongs to the window when it ends after now - quiet_ms; its load of
 * others is (busy delta - own delta) / time delta, floored at 0 (own CPU
 * read a little later than the machine's can exceed it). Intervals with a
 * time delta <= 0 are skipped. Input counts when its age (now - last
 * input, 0 if in the future) is below quiet_ms. Load at exactly L is
 * idle. Reasons in order: input, load, no samples, watching. */
void cu_idle_decide(const struct cu_idle_policy *p, const struct cu_idle_inputs *in,
                    struct cu_idle_verdict *v);

/* Parses a load threshold "0.5", "2", "1.25" (at most 3 decimals, at most
 * 1000) into thousandths. 0 or -CU_EINVAL. */
int cu_idle_parse_load(const char *s, uint32_t *milli);

/* Parses the probe file's content: 1 "idle", 0 "active", -CU_EINVAL
 * anything else. Leading and trailing white space is ignored. */
int cu_idle_parse_probe(const char *content);

/* ---- the monitor (probes /proc, /dev, a file; owns a thread) ------------- */

struct cu_idle_opts {
    bool idle_only;          /* pause tasks and stop claiming while busy */
    int64_t idle_after_ms;   /* N */
    uint32_t max_load_milli; /* L x 1000 */
    const char *probe_file;  /* NULL: measure; else read this file (tests, agents) */
};

struct cu_idle_monitor;

/* Starts the monitor thread, which samples input every 200 ms and load
 * every second (or every N/512 when that is longer) and logs each change
 * between idle and busy. Without idle_only only load is judged (--max-load
 * alone); with a probe file only the file is. Returns 0 or -CU_ENOMEM
 * with e set. */
int cu_idle_monitor_start(const struct cu_idle_opts *o, struct cu_idle_monitor **out,
                          struct cu_err *e);
/* True while the last verdict was idle. Thread-safe, does not block. */
bool cu_idle_monitor_idle(struct cu_idle_monitor *m);
/* The last verdict's reason into buf. Thread-safe. */
void cu_idle_monitor_reason(struct cu_idle_monitor *m, char *buf, size_t n);
/* Stops and joins the thread, frees m. NULL is a no-op. */
void cu_idle_monitor_stop(struct cu_idle_monitor *m);

#endif
