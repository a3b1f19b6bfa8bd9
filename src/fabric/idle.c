/* idle.c - is the owner away? The pure decision, then the probes and the
 * monitor thread (see idle.h). */
#include "fabric/idle.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "fabric/proctree.h"

#include "base/banned.h"

#define INPUT_EVERY_MS 200
#define SAMPLE_MIN_MS 1000
#define RING_MAX 1024     /* load samples kept; the period grows with N to fit */
#define DEVICES_MAX 64
#define PROBE_FILE_MAX 4096

/* ---- the decision -------------------------------------------------------- */

static void fmt_load(uint32_t milli, char *out, size_t n)
{
    (void)cu_snprintf(out, n, "%u.%02u", milli / 1000, milli % 1000 / 10);
}

static uint64_t delta(uint64_t a, uint64_t b)
{
    return b >= a ? b - a : 0; /* counters never go back; if one did, no load */
}

void cu_idle_decide(const struct cu_idle_policy *p, const struct cu_idle_inputs *in,
                    struct cu_idle_verdict *v)
{
    int64_t quiet = p->quiet_ms > 0 ? p->quiet_ms : 0;
    int64_t window_start = in->now_ms - quiet;
    int64_t max_at = 0;
    bool input_busy = false, load_busy = false, no_samples = false, watching;
    char a[32], b[32], c[32];
    size_t counted = 0;

    memset(v, 0, sizeof *v);
    v->input_age_ms = -1;
    if (p->use_input && in->have_input && in->last_input_ms != CU_IDLE_NEVER) {
        v->input_age_ms = in->now_ms > in->last_input_ms ? in->now_ms - in->last_input_ms : 0;
        input_busy = v->input_age_ms < quiet;
    }
    if (p->use_load) {
        for (size_t i = 1; i < in->nsamples; i++) {
            const struct cu_idle_sample *s0 = &in->samples[i - 1], *s1 = &in->samples[i];
            int64_t dt = s1->t_ms - s0->t_ms;
            uint64_t busy, own, others, load;

            if (s1->t_ms <= window_start || dt <= 0)
                continue;
            busy = delta(s0->busy_ms, s1->busy_ms);
            own = delta(s0->own_ms, s1->own_ms);
            others = busy > own ? busy - own : 0;
            load = others > UINT64_MAX / 1000 ? UINT32_MAX : others * 1000 / (uint64_t)dt;
            if (load > UINT32_MAX)
                load = UINT32_MAX;
            counted++;
            if (load >= v->load_milli) {
                v->load_milli = (uint32_t)load;
                max_at = s1->t_ms;
            }
        }
        no_samples = counted == 0;
        load_busy = v->load_milli > p->max_load_milli;
    }
    watching = in->now_ms - in->watch_start_ms < quiet;

    cu_fmt_duration((uint64_t)quiet, c, sizeof c);
    if (input_busy) {
        v->why = CU_IDLE_INPUT;
        cu_fmt_duration((uint64_t)v->input_age_ms, a, sizeof a);
        (void)cu_snprintf(v->reason, sizeof v->reason,
                          "owner active: input %s ago, idle after %s without", a, c);
    } else if (load_busy) {
        v->why = CU_IDLE_LOAD;
        fmt_load(v->load_milli, a, sizeof a);
        fmt_load(p->max_load_milli, b, sizeof b);
        cu_fmt_duration((uint64_t)(in->now_ms > max_at ? in->now_ms - max_at : 0), c, sizeof c);
        (void)cu_snprintf(v->reason, sizeof v->reason,
                          "load from other processes %s is above %s (%s ago)", a, b, c);
    } else if (no_samples) {
        v->why = CU_IDLE_NO_SAMPLES;
        (void)cu_snprintf(v->reason, sizeof v->reason, "measuring the load of other processes");
    } else if (watching) {
        v->why = CU_IDLE_WATCHING;
        cu_fmt_duration((uint64_t)(in->now_ms - in->watch_start_ms), a, sizeof a);
        (void)cu_snprintf(v->reason, sizeof v->reason,
                          "watching for %s before counting as idle (%s so far)", c, a);
    } else {
        v->why = CU_IDLE_YES;
        v->idle = true;
        fmt_load(v->load_milli, a, sizeof a);
        fmt_load(p->max_load_milli, b, sizeof b);
        if (p->use_input && in->have_input && p->use_load)
            (void)cu_snprintf(v->reason, sizeof v->reason,
                              "idle: no input and load from others %s (at most %s) for %s", a,
                              b, c);
        else if (p->use_input && in->have_input)
            (void)cu_snprintf(v->reason, sizeof v->reason, "idle: no input for %s", c);
        else if (p->use_load)
            (void)cu_snprintf(v->reason, sizeof v->reason,
                              "load from others %s (at most %s) for %s", a, b, c);
        else
            (void)cu_snprintf(v->reason, sizeof v->reason, "idle: nothing to watch");
    }
}

int cu_idle_parse_load(const char *s, uint32_t *milli)
{
    uint64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;

    if (!s)
        return -CU_EINVAL;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        whole = whole * 10 + (uint64_t)(*s - '0');
        if (whole > 1000)
            return -CU_EINVAL;
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, fdigits++) {
            if (fdigits == 3)
                return -CU_EINVAL;
            frac = frac * 10 + (uint64_t)(*s - '0');
        }
        if (fdigits == 0)
            return -CU_EINVAL;
    }
    if (*s || digits == 0)
        return -CU_EINVAL;
    while (fdigits++ < 3)
        frac *= 10;
    if (whole * 1000 + frac > 1000000)
        return -CU_EINVAL;
    *milli = (uint32_t)(whole * 1000 + frac);
    return 0;
}

int cu_idle_parse_probe(const char *content)
{
    const char *s = content, *e;
    size_t n;

    if (!s)
        return -CU_EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    n = (size_t)(e - s);
    if (n == 4 && memcmp(s, "idle", 4) == 0)
        return 1;
    if (n == 6 && memcmp(s, "active", 6) == 0)
        return 0;
    return -CU_EINVAL;
}

/* ---- probes -------------------------------------------------------------- */

/* Machine-wide busy CPU time, ms, from the first line of /proc/stat. */
static int read_busy_ms(uint64_t *ms)
{
    unsigned long long f[8] = {0};
    long hz = sysconf(_SC_CLK_TCK);
    char line[512];
    FILE *fp = fopen("/proc/stat", "re");
    int n;

    if (!fp)
        return -CU_EIO;
    if (!fgets(line, sizeof line, fp)) {
        fclose(fp);
        return -CU_EIO;
    }
    fclose(fp);
    /* cpu user nice system idle iowait irq softirq steal (guest is in user) */
    n = sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3],
               &f[4], &f[5], &f[6], &f[7]);
    if (n < 4)
        return -CU_EPROTO;
    if (hz <= 0)
        hz = 100;
    *ms = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 1000ULL / (unsigned long long)hz;
    return 0;
}

/* Sum of the i8042 interrupt counters in /proc/interrupts; false if none. */
static bool read_i8042(uint64_t *count)
{
    char line[4096];
    FILE *fp = fopen("/proc/interrupts", "re");
    bool found = false;

    *count = 0;
    if (!fp)
        return false;
    while (fgets(line, sizeof line, fp)) {
        char *s = strchr(line, ':'), *end;
        if (!s || !strstr(line, "i8042"))
            continue;
        found = true;
        for (s++;;) {
            unsigned long long v;
            while (*s == ' ')
                s++;
            if (*s < '0' || *s > '9')
                break;
            v = strtoull(s, &end, 10);
            *count += v;
            s = end;
        }
    }
    fclose(fp);
    return found;
}

/* ---- the monitor --------------------------------------------------------- */

struct cu_idle_monitor {
    struct cu_idle_opts o;
    struct cu_idle_policy pol;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; wakes the thread to stop */
    bool stop;
    atomic_bool idle;
    char reason[192]; /* under mu */

    /* the thread's own */
    int64_t watch_start, last_input, sample_every, next_sample;
    bool have_input, have_irq, probe_warned;
    enum cu_idle_why last_why;
    uint64_t irq_count;
    char *devices[DEVICES_MAX];
    size_t ndevices;
    struct cu_idle_sample *ring;
    size_t nring;
};

static void find_devices(struct cu_idle_monitor *m)
{
    static const char *const patterns[] = {"/dev/input/event*", "/dev/input/mice",
                                           "/dev/tty[1-9]", "/dev/tty1[0-2]"};

    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
        glob_t g;
        if (glob(patterns[p], 0, NULL, &g) != 0)
            continue;
        for (size_t i = 0; i < g.gl_pathc && m->ndevices < DEVICES_MAX; i++) {
            char *d = strdup(g.gl_pathv[i]);
            if (d)
                m->devices[m->ndevices++] = d;
        }
        globfree(&g);
    }
}

/* Updates m->last_input (monotonic ms) from the probes. */
static void probe_input(struct cu_idle_monitor *m, int64_t now)
{
    int64_t now_real = cu_now_ms(), newest = CU_IDLE_NEVER;
    uint64_t irq;

    for (size_t i = 0; i < m->ndevices; i++) {
        struct stat st;
        int64_t t;
        if (stat(m->devices[i], &st) != 0)
            continue;
        t = (int64_t)st.st_atim.tv_sec * 1000 + st.st_atim.tv_nsec / 1000000;
        if (t > newest)
            newest = t;
    }
    if (newest != CU_IDLE_NEVER) {
        /* wall clock to monotonic; a stamp in the future is "now" */
        int64_t mono = now - (now_real > newest ? now_real - newest : 0);
        if (m->last_input == CU_IDLE_NEVER || mono > m->last_input)
            m->last_input = mono;
    }
    if (m->have_irq && read_i8042(&irq) && irq != m->irq_count) {
        m->irq_count = irq;
        m->last_input = now;
    }
}

/* The probe file's word; unreadable or unknown counts as active. */
static void probe_file(struct cu_idle_monitor *m, int64_t now)
{
    struct cu_buf b;
    int state = -CU_EINVAL;

    cu_buf_init(&b, PROBE_FILE_MAX);
    if (cu_read_file(m->o.probe_file, &b) == 0)
        state = cu_idle_parse_probe(cu_buf_str(&b));
    cu_buf_release(&b);
    if (state < 0 && !m->probe_warned) {
        cu_warn("idle probe %s: not readable or not 'active'/'idle'; counting the owner as "
                "active", m->o.probe_file);
        m->probe_warned = true;
    } else if (state >= 0) {
        m->probe_warned = false;
    }
    if (state != 1)
        m->last_input = now;
}

static void take_sample(struct cu_idle_monitor *m, int64_t now)
{
    struct cu_idle_sample s = {.t_ms = now};

    if (read_busy_ms(&s.busy_ms) != 0 || cu_proc_tree_cpu_ms(getpid(), &s.own_ms) != 0)
        return; /* no sample: a stuck probe shows as "measuring" */
    /* Keep one interval that reaches back past the window, nothing older. */
    while (m->nring >= 2 && m->ring[1].t_ms <= now - m->pol.quiet_ms) {
        memmove(m->ring, m->ring + 1, (m->nring - 1) * sizeof *m->ring);
        m->nring--;
    }
    if (m->nring == RING_MAX) {
        memmove(m->ring, m->ring + 1, (m->nring - 1) * sizeof *m->ring);
        m->nring--;
    }
    m->ring[m->nring++] = s;
}

static void publish(struct cu_idle_monitor *m, const struct cu_idle_verdict *v, bool first)
{
    bool was = atomic_load(&m->idle);

    if (!first && was == v->idle && v->why != m->last_why)
        cu_debug("still %s: %s", v->idle ? "idle" : "busy", v->reason);
    m->last_why = v->why;

    pthread_mutex_lock(&m->mu);
    (void)cu_snprintf(m->reason, sizeof m->reason, "%s", v->reason);
    pthread_mutex_unlock(&m->mu);
    atomic_store(&m->idle, v->idle);
    if (first || was != v->idle) {
        if (v->idle)
            cu_info("machine idle (%s): tasks may run", v->reason);
        else if (m->o.idle_only)
            cu_info("machine busy (%s): no new claims, running tasks paused", v->reason);
        else
            cu_info("machine busy (%s): no new claims", v->reason);
    }
}

/* One look: probe, sample when due, decide, publish. */
static void tick(struct cu_idle_monitor *m, bool first)
{
    struct cu_idle_inputs in;
    struct cu_idle_verdict v;
    int64_t now = cu_mono_ms();

    if (m->o.probe_file)
        probe_file(m, now);
    else if (m->pol.use_input)
        probe_input(m, now);
    if (m->pol.use_load && now >= m->next_sample) {
        take_sample(m, now);
        m->next_sample = now + m->sample_every;
    }
    in = (struct cu_idle_inputs){.now_ms = now,
                                 .watch_start_ms = m->watch_start,
                                 .have_input = m->have_input,
                                 .last_input_ms = m->last_input,
                                 .samples = m->ring,
                                 .nsamples = m->nring};
    cu_idle_decide(&m->pol, &in, &v);
    publish(m, &v, first);
}

static void *monitor_main(void *arg)
{
    struct cu_idle_monitor *m = arg;

    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        struct timespec until;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += INPUT_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT)
            ;
        if (m->stop)
            break;
        pthread_mutex_unlock(&m->mu);
        tick(m, false);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static void monitor_free(struct cu_idle_monitor *m)
{
    for (size_t i = 0; i < m->ndevices; i++)
        free(m->devices[i]);
    free(m->ring);
    free(m);
}

int cu_idle_monitor_start(const struct cu_idle_opts *o, struct cu_idle_monitor **out,
                          struct cu_err *e)
{
    struct cu_idle_monitor *m = calloc(1, sizeof *m);
    pthread_condattr_t ca;
    char after[32], load[32], what[160] = "";
    uint64_t busy;

    *out = NULL;
    if (!m)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    m->o = *o;
    m->ring = calloc(RING_MAX, sizeof *m->ring);
    if (!m->ring) {
        monitor_free(m);
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    }
    m->pol.quiet_ms = o->idle_after_ms;
    m->pol.max_load_milli = o->max_load_milli;
    /* With a probe file its word is the signal, in either mode. */
    m->pol.use_input = o->idle_only || o->probe_file;
    m->pol.use_load = !o->probe_file; /* the file replaces both measurements */
    m->watch_start = cu_mono_ms();
    m->last_input = CU_IDLE_NEVER;
    m->sample_every = o->idle_after_ms / (RING_MAX / 2);
    if (m->sample_every < SAMPLE_MIN_MS)
        m->sample_every = SAMPLE_MIN_MS;
    if (m->pol.use_load && read_busy_ms(&busy) != 0) {
        cu_warn("cannot read /proc/stat: the load of other processes is not judged");
        m->pol.use_load = false;
    }
    if (o->probe_file) {
        m->have_input = true;
        (void)cu_snprintf(what, sizeof what, "the owner (probe file %s)",
                          o->probe_file);
    } else if (o->idle_only) {
        find_devices(m);
        m->have_irq = read_i8042(&m->irq_count);
        m->have_input = m->ndevices > 0 || m->have_irq;
        if (!m->have_input)
            cu_warn("no keyboard or mouse found (no /dev/input or console devices, no i8042 "
                    "interrupts): idle means only that other processes' load is low");
        else
            (void)cu_snprintf(what, sizeof what, "%zu input device node(s)%s",
                              m->ndevices, m->have_irq ? " and i8042 interrupts" : "");
    }
    cu_fmt_duration((uint64_t)o->idle_after_ms, after, sizeof after);
    fmt_load(o->max_load_milli, load, sizeof load);
    cu_info("%s: claiming only after %s with %s%s%s%s%s", o->idle_only ? "idle-only" : "max-load",
            after, what[0] ? "no activity of " : "", what,
            what[0] && m->pol.use_load ? " and " : "",
            m->pol.use_load ? "other processes' load (cores kept busy, /proc/stat minus the "
                              "provider's own tasks) at most " : "",
            m->pol.use_load ? load : "");
    atomic_init(&m->idle, false);
    (void)cu_snprintf(m->reason, sizeof m->reason, "starting");
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    tick(m, true); /* a verdict before anyone asks */
    if (pthread_create(&m->th, NULL, monitor_main, m) != 0) {
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        monitor_free(m);
        return cu_err_set(e, -CU_ENOMEM, "cannot start the idle monitor thread");
    }
    *out = m;
    return 0;
}

bool cu_idle_monitor_idle(struct cu_idle_monitor *m)
{
    return atomic_load(&m->idle);
}

void cu_idle_monitor_reason(struct cu_idle_monitor *m, char *buf, size_t n)
{
    pthread_mutex_lock(&m->mu);
    (void)cu_snprintf(buf, n, "%s", m->reason);
    pthread_mutex_unlock(&m->mu);
}

void cu_idle_monitor_stop(struct cu_idle_monitor *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->th, NULL);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    monitor_free(m);
}
