/* benchlib.c - see benchlib.h. */
#include "benchlib.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "crypto/hash.h"

#include "base/banned.h"

#define MAX_CHILDREN 64
#define MAX_DIRS 8

static const char *bench_name = "bench";
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t children[MAX_CHILDREN];
static char dirs[MAX_DIRS][PATH_MAX];
static sigset_t stop_sigs;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double rank(const double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return v[i - 1];
}

void bl_stats(double *v, size_t n, struct bl_stats *s)
{
    memset(s, 0, sizeof *s);
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_double);
    s->n = n;
    s->min = v[0];
    s->max = v[n - 1];
    for (size_t i = 0; i < n; i++)
        s->mean += v[i];
    s->mean /= (double)n;
    s->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    s->p90 = rank(v, n, 0.90);
    s->p99 = rank(v, n, 0.99);
}

double bl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Kills every registered child and removes every registered directory.
 * Called at exit and from the signal thread. */
static void cleanup(void)
{
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] > 0)
            kill(children[i], SIGTERM);
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] <= 0)
            continue;
        int st;
        for (int t = 0; t < 300 && waitpid(children[i], &st, WNOHANG) == 0; t++)
            cu_sleep_ms(10);
        if (kill(children[i], 0) == 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], &st, 0);
        }
        children[i] = 0;
    }
    for (int i = 0; i < MAX_DIRS; i++) {
        if (dirs[i][0]) {
            cu_rm_rf(dirs[i]);
            dirs[i][0] = 0;
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

static void *signal_thread(void *arg)
{
    int sig = 0;
    (void)arg;
    if (sigwait(&stop_sigs, &sig) == 0) {
        fprintf(stderr, "%s: interrupted (signal %d), cleaning up\n", bench_name, sig);
        cleanup();
        _exit(128 + sig);
    }
    return NULL;
}

void bl_init(const char *name)
{
    pthread_t t;

    bench_name = name;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&t, NULL, signal_thread, NULL) != 0)
        bl_die("cannot start the signal thread");
    pthread_detach(t);
    atexit(cleanup);
    if (cu_crypto_init() != 0)
        bl_die("libsodium initialisation failed");
}

void bl_die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", bench_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void bl_tmpdir(char *out, size_t n)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];

    if (!base || !*base)
        base = "/tmp";
    if (cu_snprintf(tmpl, sizeof tmpl, "%s/cumulus-bench-%s-XXXXXX", base, bench_name) != 0 ||
        !mkdtemp(tmpl))
        bl_die("cannot create a temporary directory under %s: %s", base, strerror(errno));
    if (chmod(tmpl, 0711) != 0)
        bl_die("chmod %s: %s", tmpl, strerror(errno));
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_DIRS; i++) {
        if (!dirs[i][0]) {
            cu_snprintf(dirs[i], sizeof dirs[i], "%s", tmpl);
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    if (cu_snprintf(out, n, "%s", tmpl) != 0)
        bl_die("temporary path too long");
}

static pid_t spawn(const char *const *argv, const char *log_path, bool reg)
{
    pid_t parent = getpid(), pid;
    int fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                  0644);

    if (fd < 0)
        bl_die("cannot open %s: %s", log_path ? log_path : "/dev/null", strerror(errno));
    pid = fork();
    if (pid < 0)
        bl_die("fork: %s", strerror(errno));
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    if (reg) {
        pthread_mutex_lock(&reg_mu);
        for (int i = 0; i < MAX_CHILDREN; i++) {
            if (children[i] == 0) {
                children[i] = pid;
                break;
            }
        }
        pthread_mutex_unlock(&reg_mu);
    }
    return pid;
}

pid_t bl_spawn(const char *const *argv, const char *log_path)
{
    return spawn(argv, log_path, true);
}

/* utime + stime (+ cutime + cstime when reaped) of pid, in seconds. */
static double proc_cpu(pid_t pid, bool reaped)
{
    char path[64], buf[1024];
    const char *p;
    unsigned long long ut = 0, st = 0;
    long long cut = 0, cst = 0;
    FILE *f;
    size_t n;

    cu_snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        bl_die("cannot read %s", path);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* After the command name (in parentheses, may hold spaces): field 3
     * on; utime, stime, cutime and cstime are fields 14 to 17. */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
                     &ut, &st, &cut, &cst) != 4)
        bl_die("cannot parse %s", path);
    if (!reaped)
        cut = cst = 0;
    return (double)(ut + st + (unsigned long long)(cut + cst)) / (double)sysconf(_SC_CLK_TCK);
}

double bl_proc_cpu_s(pid_t pid)
{
    return proc_cpu(pid, false);
}

double bl_proc_cpu_tree_s(pid_t pid)
{
    return proc_cpu(pid, true);
}

void bl_machine_cpu_s(double *busy, double *total)
{
    unsigned long long v[10] = {0}, all = 0;
    FILE *f = fopen("/proc/stat", "r");
    int got;

    if (!f)
        bl_die("cannot read /proc/stat");
    /* "cpu  user nice system idle iowait irq softirq steal guest guest_nice";
     * guest time is counted in user already. */
    got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                 &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (got < 8)
        bl_die("cannot parse /proc/stat");
    for (int i = 0; i < 8; i++)
        all += v[i];
    *total = (double)all / (double)sysconf(_SC_CLK_TCK);
    *busy = (double)(all - v[3] - v[4]) / (double)sysconf(_SC_CLK_TCK);
}

int bl_stop(pid_t pid)
{
    int st = -1;

    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
    pthread_mutex_unlock(&reg_mu);
    kill(pid, SIGTERM);
    for (int t = 0; t < 500; t++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        cu_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

int bl_run(const char *const *argv)
{
    pid_t pid = spawn(argv, NULL, true);
    int st;

    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
    pthread_mutex_unlock(&reg_mu);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *bl_cumulus(void)
{
    static char path[PATH_MAX];
    const char *p = getenv("CUMULUS_BIN");

    if (path[0])
        return path;
    if (!p || !*p)
        p = "build/cumulus";
    if (!realpath(p, path) || access(path, X_OK) != 0)
        bl_die("cannot find the cumulus binary at %s (run from the repository root after "
               "'make', or set CUMULUS_BIN)", p);
    return path;
}

pid_t bl_start_exchange(const char *dir, const char *lease, char *url, size_t urln)
{
    const char *extra[] = {lease ? "--lease" : NULL, lease, NULL};

    return bl_start_exchange_args(dir, extra, url, urln);
}

pid_t bl_start_exchange_args(const char *dir, const char *const *extra, char *url, size_t urln)
{
    char data[PATH_MAX], log[PATH_MAX], urlfile[PATH_MAX];
    /* Always a devnet: requesters are funded from its faucet. */
    const char *argv[16] = {bl_cumulus(), "exchange", "--listen", "127.0.0.1:0", "--data", data,
                            "--log",      "warn",     "--devnet"};
    size_t na = 9;
    struct cu_buf b;
    pid_t pid;

    if (cu_snprintf(data, sizeof data, "%s/exchange", dir) ||
        cu_snprintf(log, sizeof log, "%s/exchange.log", dir) ||
        cu_snprintf(urlfile, sizeof urlfile, "%s/exchange/exchange.url", dir))
        bl_die("path too long");
    for (size_t i = 0; extra && extra[i]; i++) {
        if (na + 1 >= sizeof argv / sizeof argv[0])
            bl_die("too many exchange options");
        argv[na++] = extra[i];
    }
    argv[na] = NULL;
    pid = bl_spawn(argv, log);
    cu_buf_init(&b, 4096);
    for (int t = 0; t < 1000; t++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            bl_die("the exchange exited at start; see %s", log);
        cu_buf_reset(&b);
        if (cu_read_file(urlfile, &b) == 0 && b.len > 0) {
            size_t n = b.len;
            while (n && (b.data[n - 1] == '\n' || b.data[n - 1] == ' '))
                n--;
            if (cu_snprintf(url, urln, "%.*s", (int)n, (const char *)b.data) != 0)
                bl_die("exchange url too long");
            cu_buf_release(&b);
            return pid;
        }
        cu_sleep_ms(10);
    }
    cu_buf_release(&b);
    bl_die("the exchange did not write %s within 10 s", urlfile);
}

int bl_providers_online(const char *url)
{
    struct cu_http_client *c = cu_http_client_new(url, NULL);
    struct cu_http_result r;
    int n = -1;

    if (!c)
        return -1;
    cu_http_result_init(&r);
    if (cu_http_request(c, "GET", "/metrics", NULL, 0, 5000, &r) == 0 && r.status == 200 &&
        r.body.data) {
        const char *p = strstr((const char *)r.body.data, "\ncumulus_providers_online ");
        if (p)
            n = (int)strtol(p + strlen("\ncumulus_providers_online "), NULL, 10);
    }
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return n;
}

pid_t bl_start_provider(const char *dir, const char *name, const char *url, unsigned slots)
{
    char data[PATH_MAX], log[PATH_MAX], sl[16];
    int before = bl_providers_online(url);
    pid_t pid;

    if (cu_snprintf(data, sizeof data, "%s/%s", dir, name) ||
        cu_snprintf(log, sizeof log, "%s/%s.log", dir, name))
        bl_die("path too long");
    cu_snprintf(sl, sizeof sl, "%u", slots);
    const char *argv[] = {bl_cumulus(), "provide", "--exchange", url, "--data", data,
                          "--slots",    sl,        "--log",      "warn", NULL};
    pid = bl_spawn(argv, log);
    for (int t = 0; t < 1500; t++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            bl_die("the provider exited at start; see %s", log);
        if (bl_providers_online(url) > before) {
            /* Hello is said before the slots start long-polling; give the
             * slot threads a moment to park in their claims. */
            cu_sleep_ms(300);
            return pid;
        }
        cu_sleep_ms(10);
    }
    bl_die("the provider did not say hello within 15 s; see %s", log);
}

void bl_api_open(struct cu_api *api, struct cu_identity *id, const char *url)
{
    struct cu_err e = {0};

    if (cu_identity_generate(id) != 0)
        bl_die("cannot generate an identity");
    json_t *out = NULL;

    if (cu_api_open(api, url, id, &e) != 0)
        bl_die("cannot open the API client: %s", e.msg);
    /* Jobs lock their maximum cost in escrow: fund the requester. */
    if (cu_api_faucet(api, BL_FUNDS, &out, &e) != 0)
        bl_die("cannot fund the requester from the devnet faucet: %s", e.msg);
    json_decref(out);
}

static char **strv1(const char *s)
{
    char **v = calloc(1, sizeof *v);
    if (!v || !(v[0] = strdup(s)))
        bl_die("out of memory");
    return v;
}

void bl_spec(struct cu_spec *s, const char *name, const char *const *argv, uint32_t count,
             const char *in_name, const char *in_path, const char *outputs)
{
    struct cu_err e = {0};
    size_t n = 0;

    cu_spec_init(s);
    while (argv[n])
        n++;
    s->name = strdup(name);
    s->image = strdup("host");
    s->command = calloc(n, sizeof *s->command);
    if (!s->name || !s->image || !s->command)
        bl_die("out of memory");
    for (size_t i = 0; i < n; i++)
        if (!(s->command[i] = strdup(argv[i])))
            bl_die("out of memory");
    s->ncommand = n;
    s->task_count = count;
    s->res.cores = 1;
    s->res.memory = 64ULL << 20;
    s->res.time_ms = 60000;
    s->max_per_cu = 10;
    s->outputs = strv1(outputs ? outputs : "*");
    s->noutputs = 1;
    if (in_name) {
        s->inputs = calloc(1, sizeof *s->inputs);
        if (!s->inputs || !(s->inputs[0].name = strdup(in_name)) ||
            !(s->inputs[0].path = strdup(in_path)))
            bl_die("out of memory");
        s->ninputs = 1;
        if (cu_hash_file(in_path, &s->inputs[0].hash, &s->inputs[0].size) != 0)
            bl_die("cannot hash %s", in_path);
    }
    if (cu_spec_validate(s, &e) != 0)
        bl_die("bad job spec: %s", e.msg);
}

static json_t *find_job(json_t *list, const char *job)
{
    json_t *jobs = json_object_get(list, "jobs"), *j;
    size_t i;

    json_array_foreach(jobs, i, j) {
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id && strcmp(id, job) == 0)
            return j;
    }
    return NULL;
}

/* bl_wait_job with poll_ms 0: the job long-poll, as `cumulus wait` does
 * (answered when the job changes); the whole job as the summary. */
static int wait_job_longpoll(struct cu_api *api, const char *job, double timeout_ms,
                             json_t **summary)
{
    double end = bl_now_ms() + timeout_ms;
    char version[CU_API_JOB_VERSION_MAX + 1] = "";
    struct cu_err e = {0};

    for (;;) {
        json_t *j = NULL;
        const char *state, *v;

        if (cu_api_job_wait(api, job, version, 2000, &j, &e) != 0) {
            fprintf(stderr, "%s: GET /v1/jobs/%s: %s\n", bench_name, job, e.msg);
            return -1;
        }
        state = json_string_value(json_object_get(j, "state"));
        if (state && strcmp(state, "running") != 0) {
            *summary = j;
            return 0;
        }
        v = json_string_value(json_object_get(j, "version"));
        if (!v || cu_snprintf(version, sizeof version, "%s", v) != 0) {
            fprintf(stderr, "%s: the exchange's job answer has no usable \"version\"\n",
                    bench_name);
            json_decref(j);
            return -1;
        }
        json_decref(j);
        if (bl_now_ms() > end) {
            fprintf(stderr, "%s: job %s not finished after %.0f ms\n", bench_name, job,
                    timeout_ms);
            return -1;
        }
    }
}

int bl_wait_job(struct cu_api *api, const char *job, double poll_ms, double timeout_ms,
                json_t **summary)
{
    double end = bl_now_ms() + timeout_ms;
    struct cu_err e = {0};

    *summary = NULL;
    if (poll_ms <= 0)
        return wait_job_longpoll(api, job, timeout_ms, summary);
    for (;;) {
        json_t *list = NULL, *j;
        const char *state;

        if (cu_api_jobs(api, &list, &e) != 0) {
            fprintf(stderr, "%s: GET /v1/jobs: %s\n", bench_name, e.msg);
            return -1;
        }
        j = find_job(list, job);
        state = j ? json_string_value(json_object_get(j, "state")) : NULL;
        if (state && strcmp(state, "running") != 0) {
            *summary = json_incref(j);
            json_decref(list);
            return 0;
        }
        json_decref(list);
        if (bl_now_ms() > end) {
            fprintf(stderr, "%s: job %s not finished after %.0f ms\n", bench_name, job,
                    timeout_ms);
            return -1;
        }
        if (poll_ms > 0) {
            struct timespec ts = {.tv_sec = (time_t)(poll_ms / 1000),
                                  .tv_nsec = (long)((poll_ms - (double)(long)(poll_ms / 1000) *
                                                                   1000) * 1e6)};
            nanosleep(&ts, NULL);
        }
    }
}

double bl_time_job(struct cu_api *api, const struct cu_spec *spec, double poll_ms,
                   double timeout_ms, double *exchange_ms)
{
    char job[CU_API_JOB_ID_MAX + 1];
    struct cu_err e = {0};
    json_t *sum = NULL;
    double t0 = bl_now_ms(), t1;
    const char *state;

    if (cu_api_upload_inputs(api, spec, NULL, NULL, &e) != 0)
        bl_die("uploading inputs: %s", e.msg);
    if (cu_api_submit(api, spec, job, sizeof job, NULL, &e) != 0)
        bl_die("submit: %s", e.msg);
    if (bl_wait_job(api, job, poll_ms, timeout_ms, &sum) != 0)
        bl_die("job %s did not finish", job);
    t1 = bl_now_ms();
    state = json_string_value(json_object_get(sum, "state"));
    if (!state || strcmp(state, "done") != 0) {
        const char *reason = json_string_value(json_object_get(sum, "reason"));
        bl_die("job %s ended %s: %s", job, state ? state : "?", reason ? reason : "");
    }
    if (exchange_ms)
        *exchange_ms = (double)(json_integer_value(json_object_get(sum, "finished_ms")) -
                                json_integer_value(json_object_get(sum, "created_ms")));
    json_decref(sum);
    return t1 - t0;
}

double bl_time_sh(const char *script)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    double t0 = bl_now_ms();
    int rc = bl_run(argv);

    if (rc != 0)
        bl_die("'%s' failed (exit %d)", script, rc);
    return bl_now_ms() - t0;
}

uint64_t bl_opt_u64(int argc, char **argv, const char *name, uint64_t def)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) != 0)
            continue;
        uint64_t v;
        if (i + 1 >= argc || cu_parse_size(argv[i + 1], &v) != 0)
            bl_die("%s needs a number (got '%s')", name, i + 1 < argc ? argv[i + 1] : "");
        return v;
    }
    return def;
}

bool bl_opt_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}
