/* cmd_demo.c - `cumulus demo`: the main job. Starts an exchange and a few
 * providers on loopback as children of this binary, submits a fractal job
 * rendered in tiles, shows the live progress bar, assembles the tiles into
 * one PNG and says who ran what. Every process it starts is stopped again,
 * also on failure and on Ctrl-C.
 *
 * The demo drives the other subcommands as child processes (the same
 * binary, through /proc/self/exe), exactly as a user would type them, so it
 * exercises the real CLI, exchange and provider code paths. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "client/png.h"

#include "base/banned.h"

#define DEMO_MAX_PROVIDERS 32
#define DEMO_MAX_SLOTS 64
#define DEMO_MAX_TASKS 4096
#define DEMO_BID "100000"        /* the job's bid per CU (base units) */
#define DEMO_FIRST_ASK 2         /* provider-N asks (DEMO_FIRST_ASK + N - 1) x DEMO_ASK_UNIT */
#define DEMO_ASK_UNIT 10000
#define DEMO_FUNDS_PER_TASK 7000000 /* > bid x 60 CU (time limit) + fees */
#define DEMO_MIN_SIZE 16
#define DEMO_MAXITER "2000"
#define DEMO_STOP_GRACE_MS 5000
#define DEMO_URL_WAIT_MS 10000
#define DEMO_SUBMIT_MS 120000
#define DEMO_WAIT_MS 300000
#define DEMO_RESULTS_MS 120000
#define DEMO_STATUS_MS 30000
#define DEMO_TAIL_LINES 20
#define DEMO_CAPTURE_MAX (16u << 20)

static const char usage_text[] =
    "usage: cumulus demo [--out DIR] [--data DIR] [--providers N] [--slots N]\n"
    "                    [--tasks N] [--size PIXELS] [--cheaters N]\n"
    "\n"
    "Starts an exchange and N providers on loopback, submits a job that renders\n"
    "a Mandelbrot image in tiles (one task per tile), shows a progress bar,\n"
    "writes the assembled image to DIR/fractal.png and stops everything again.\n"
    "\n"
    "  --out DIR        where fractal.png goes (default ./demo-out, created)\n"
    "  --data DIR       keep all state in DIR (exchange in DIR/exchange, providers\n"
    "                   in DIR/provider-N, logs in DIR/*.log); default: a temporary\n"
    "                   directory, removed at the end\n"
    "  --providers N    providers to start (default 3)\n"
    "  --slots N        task slots per provider (default 2)\n"
    "  --tasks N        tiles, a perfect square (default 64)\n"
    "  --size PIXELS    width and height of the image (default 1024)\n"
    "  --cheaters N     also start N providers that return wrong tiles (--cheat\n"
    "                   wrong, staking 1000 each); the job then runs each tile on\n"
    "                   2 providers that must agree (up to 5): the image is\n"
    "                   checked against an honest local render, and the\n"
    "                   cheaters are shown slashed (default 0)\n"
    "\n"
    "environment: CUMULUS_FRACTAL overrides the task program (default: the\n"
    "fractal binary built next to this one, build/examples/fractal).\n";

/* One process started by the demo. pid 0 means none (or already reaped). */
struct child {
    pid_t pid;
    char name[32];
    char log[CU_PATH_MAX];
    bool own_group;  /* in its own process group (daemons) */
    int wstatus;     /* valid once reaped */
    bool reaped;
};

struct demo {
    char self[CU_PATH_MAX];
    char data[CU_PATH_MAX];
    bool keep_data;
    char out[CU_PATH_MAX];
    unsigned nproviders, slots, tasks, grid, size;
    unsigned ncheaters; /* --cheaters: providers[nhonest..nproviders) run --cheat wrong */
    unsigned nhonest;
    char fractal[CU_PATH_MAX];
    char url[512];
    char key[CU_PATH_MAX];
    char job[128];
    char reqlog[CU_PATH_MAX];
    struct child exchange;
    struct child providers[DEMO_MAX_PROVIDERS];
    struct child req;  /* the requester command now running */
    int64_t start_ms;
};

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

/* Prints the last n lines of the file at path to stderr (bounded: only its
 * last 64 KiB are read). */
static void print_tail(const char *path, unsigned n)
{
    char buf[65536];
    FILE *f;
    long size;
    size_t len;

    if (!path || !path[0])
        return;
    f = fopen(path, "rbe");
    if (!f) {
        fprintf(stderr, "demo: (no log at %s)\n", path);
        return;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > (long)sizeof buf - 1)
        fseek(f, size - (long)(sizeof buf - 1), SEEK_SET);
    else
        fseek(f, 0, SEEK_SET);
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    while (len > 0 && buf[len - 1] == '\n')
        buf[--len] = '\0';
    size_t start = len;
    unsigned lines = 0;
    while (start > 0) {
        if (buf[start - 1] == '\n' && ++lines == n)
            break;
        start--;
    }
    fprintf(stderr, "--- last %u lines of %s ---\n%s\n--- end of %s ---\n", n, path,
            buf + start, path);
}

/* Reports a failed step: what failed, why, and the tail of the log that
 * tells more. Returns CU_EXIT_FAIL for `return fail(...)`. */
static int fail(const char *step, const char *log, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const char *step, const char *log, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "demo: step '%s' failed: ", step);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    print_tail(log, DEMO_TAIL_LINES);
    return CU_EXIT_FAIL;
}

static void describe_status(int wstatus, char *out, size_t n)
{
    if (WIFEXITED(wstatus))
        cu_snprintf(out, n, "exit code %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        cu_snprintf(out, n, "killed by signal %d", WTERMSIG(wstatus));
    else
        cu_snprintf(out, n, "wait status %d", wstatus);
}

/* Child side of spawn(): never returns. Resets signals, puts the standard
 * descriptors in place, marks every other descriptor close-on-exec (the
 * exec-error pipe already is) and execs this binary. */
static void __attribute__((noreturn))
spawn_child(const struct demo *d, char *const argv[], int in_fd, int out_fd, int err_fd,
            bool own_group, pid_t parent, int errpipe)
{
    sigset_t all;
    int err;

    if (own_group)
        setpgid(0, 0);
    /* If the demo dies without cleaning up (kill -9), its children follow. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    if ((in_fd >= 0 && dup2(in_fd, 0) < 0) || (out_fd >= 0 && dup2(out_fd, 1) < 0) ||
        (err_fd >= 0 && dup2(err_fd, 2) < 0))
        goto out_report;
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < 4096; fd++)
            if (fd != errpipe)
                close(fd);
    }
    execv(d->self, argv);
out_report:
    err = errno;
    if (write(errpipe, &err, sizeof err) < 0) {
        /* Nothing more to tell anyone. */
    }
    _exit(127);
}

/* Starts `self argv[1..]` as c. Output: when capture_fd is non-NULL, the
 * child's stdout goes to a new non-blocking pipe whose read end is returned
 * there (the caller closes it); stderr (and stdout when not captured) is
 * appended to c->log, or inherited when c->log is empty. stdin is /dev/null
 * unless inherit_stdin. Returns 0, or -1 after printing why. */
static int spawn(struct demo *d, struct child *c, char *const argv[], int *capture_fd,
                 bool inherit_stdin)
{
    int logfd = -1, nullfd = -1, pipefd[2] = {-1, -1}, errpipe[2] = {-1, -1};
    int child_err = 0, rc = -1;
    pid_t parent = getpid(), pid;
    ssize_t got;

    c->pid = 0;
    c->reaped = false;
    c->wstatus = 0;
    if (c->log[0]) {
        logfd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0) {
            fprintf(stderr, "demo: cannot open %s: %s\n", c->log, strerror(errno));
            goto out_close;
        }
    }
    if (!inherit_stdin && (nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "demo: cannot open /dev/null: %s\n", strerror(errno));
        goto out_close;
    }
    if (capture_fd && pipe2(pipefd, O_CLOEXEC) != 0) {
        fprintf(stderr, "demo: pipe: %s\n", strerror(errno));
        goto out_close;
    }
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "demo: pipe: %s\n", strerror(errno));
        goto out_close;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "demo: fork: %s\n", strerror(errno));
        goto out_close;
    }
    if (pid == 0)
        spawn_child(d, argv, nullfd, capture_fd ? pipefd[1] : logfd, logfd, c->own_group,
                    parent, errpipe[1]);
    if (c->own_group)
        setpgid(pid, pid); /* also here, so a kill of the group cannot race */
    c->pid = pid;
    close(errpipe[1]);
    errpipe[1] = -1;
    do {
        got = read(errpipe[0], &child_err, sizeof child_err);
    } while (got < 0 && errno == EINTR);
    if (got == (ssize_t)sizeof child_err) {
        fprintf(stderr, "demo: cannot run %s %s: %s\n", d->self, argv[1], strerror(child_err));
        waitpid(pid, NULL, 0);
        c->pid = 0;
        goto out_close;
    }
    if (capture_fd) {
        close(pipefd[1]);
        pipefd[1] = -1;
        fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
        *capture_fd = pipefd[0];
        pipefd[0] = -1;
    }
    rc = 0;
out_close:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    for (int i = 0; i < 2; i++) {
        if (pipefd[i] >= 0)
            close(pipefd[i]);
        if (errpipe[i] >= 0)
            close(errpipe[i]);
    }
    return rc;
}

/* Reaps c if it has exited (never blocks). True when it is gone. */
static bool child_gone(struct child *c)
{
    int st;
    pid_t r;
    if (c->pid <= 0)
        return true;
    r = waitpid(c->pid, &st, WNOHANG);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->wstatus = r == c->pid ? st : 0;
        c->reaped = true;
        c->pid = 0;
        return true;
    }
    return false;
}

static void child_signal(struct child *c, int sig)
{
    if (c->pid <= 0)
        return;
    if (c->own_group)
        kill(-c->pid, sig);
    kill(c->pid, sig);
}

/* Stops every process the demo started: SIGTERM to all at once, up to
 * DEMO_STOP_GRACE_MS for them to exit, then SIGKILL (to the whole process
 * group of a daemon, so nothing it started outlives it). Blocks. */
static void stop_all(struct demo *d)
{
    struct child *all[DEMO_MAX_PROVIDERS + 2];
    unsigned n = 0;
    int64_t deadline;
    bool any;

    all[n++] = &d->req;
    for (unsigned i = 0; i < d->nproviders; i++)
        all[n++] = &d->providers[i];
    all[n++] = &d->exchange;
    for (unsigned i = 0; i < n; i++)
        child_signal(all[i], SIGTERM);
    deadline = cu_mono_ms() + DEMO_STOP_GRACE_MS;
    do {
        any = false;
        for (unsigned i = 0; i < n; i++)
            if (!child_gone(all[i]))
                any = true;
        if (any)
            cu_sleep_ms(50);
    } while (any && cu_mono_ms() < deadline);
    for (unsigned i = 0; i < n; i++) {
        if (all[i]->pid > 0) {
            fprintf(stderr, "demo: %s (pid %ld) did not stop in %d s; killing it\n",
                    all[i]->name, (long)all[i]->pid, DEMO_STOP_GRACE_MS / 1000);
            child_signal(all[i], SIGKILL);
            waitpid(all[i]->pid, NULL, 0);
            all[i]->pid = 0;
        }
    }
}

/* Checks that the exchange and at least one provider still run. Returns 0,
 * or CU_EXIT_FAIL after reporting (under step) which one died. */
static int check_daemons(struct demo *d, const char *step)
{
    char how[64];
    unsigned alive = 0;
    if (d->exchange.pid > 0 && child_gone(&d->exchange)) {
        describe_status(d->exchange.wstatus, how, sizeof how);
        return fail(step, d->exchange.log, "the exchange exited unexpectedly (%s)", how);
    }
    for (unsigned i = 0; i < d->nproviders; i++) {
        struct child *p = &d->providers[i];
        if (p->pid > 0 && child_gone(p) && p->reaped) {
            describe_status(p->wstatus, how, sizeof how);
            fprintf(stderr, "demo: %s exited unexpectedly (%s); see %s\n", p->name, how, p->log);
        }
        if (p->pid > 0)
            alive++;
    }
    if (d->nproviders > 0 && alive == 0 && d->providers[0].reaped)
        return fail(step, d->providers[d->nproviders - 1].log, "every provider exited");
    return 0;
}

/* Runs `cumulus ARGV...` (requester side) to completion as d->req, with
 * stdout captured into out when non-NULL, polling the daemons meanwhile.
 * Returns the child's exit code (0..255), or -1 when it could not be run,
 * was killed, ran past timeout_ms, the demo was interrupted or a daemon
 * died (each already reported under step). */
static int run_cli(struct demo *d, const char *step, char *const argv[], struct cu_buf *out,
                   bool to_terminal, int64_t timeout_ms)
{
    int fd = -1, rc = -1;
    int64_t deadline = cu_mono_ms() + timeout_ms;
    char how[64];

    cu_snprintf(d->req.name, sizeof d->req.name, "cumulus %s", argv[1]);
    d->req.own_group = false;
    if (to_terminal)
        d->req.log[0] = '\0';
    else
        cu_snprintf(d->req.log, sizeof d->req.log, "%s", d->reqlog);
    if (spawn(d, &d->req, argv, out ? &fd : NULL, to_terminal) < 0) {
        fail(step, NULL, "could not start %s", d->req.name);
        return -1;
    }
    for (;;) {
        if (fd >= 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            char chunk[4096];
            ssize_t got;
            poll(&pfd, 1, 100);
            while ((got = read(fd, chunk, sizeof chunk)) > 0) {
                if (cu_buf_append(out, chunk, (size_t)got) < 0) {
                    fail(step, d->reqlog, "%s printed more than %u bytes", d->req.name,
                         DEMO_CAPTURE_MAX);
                    goto out_kill;
                }
            }
            if (got == 0) {
                close(fd);
                fd = -1;
            }
        } else {
            cu_sleep_ms(100);
        }
        if (stop_signal) {
            fprintf(stderr, "\ndemo: interrupted during '%s'; stopping everything\n", step);
            goto out_kill;
        }
        if (child_gone(&d->req) && d->req.reaped) {
            /* A grandchild could hold the pipe open; the output we want was
             * written before the child exited. */
            break;
        }
        if (check_daemons(d, step) != 0)
            goto out_kill;
        if (cu_mono_ms() > deadline) {
            fail(step, d->reqlog, "%s did not finish in %lld s", d->req.name,
                 (long long)(timeout_ms / 1000));
            goto out_kill;
        }
    }
    if (fd >= 0) {
        char chunk[4096];
        ssize_t got;
        while ((got = read(fd, chunk, sizeof chunk)) > 0)
            if (cu_buf_append(out, chunk, (size_t)got) < 0)
                break;
    }
    if (WIFEXITED(d->req.wstatus)) {
        rc = WEXITSTATUS(d->req.wstatus);
    } else {
        describe_status(d->req.wstatus, how, sizeof how);
        fail(step, to_terminal ? NULL : d->reqlog, "%s ended: %s", d->req.name, how);
    }
    goto out_close;
out_kill:
    child_signal(&d->req, SIGTERM);
    for (int i = 0; i < 50 && !child_gone(&d->req); i++)
        cu_sleep_ms(50);
    if (d->req.pid > 0) {
        child_signal(&d->req, SIGKILL);
        waitpid(d->req.pid, NULL, 0);
        d->req.pid = 0;
    }
out_close:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int parse_uint_opt(const char *opt, const char *v, int64_t min, int64_t max,
                          unsigned *out)
{
    int64_t x;
    if (cu_parse_i64(v, min, max, &x) < 0) {
        cu_cli_errorf("demo", "%s: '%s' is not a whole number between %lld and %lld", opt, v,
                      (long long)min, (long long)max);
        return -1;
    }
    *out = (unsigned)x;
    return 0;
}

/* Parses the options into d. Returns -1 (usage error printed), 0, or 1
 * when --help was printed. */
static int parse_args(struct demo *d, int argc, char **argv, const char **out_dir,
                      const char **data_dir)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (strcmp(a, "--out") != 0 && strcmp(a, "--data") != 0 &&
            strcmp(a, "--providers") != 0 && strcmp(a, "--slots") != 0 &&
            strcmp(a, "--tasks") != 0 && strcmp(a, "--size") != 0 &&
            strcmp(a, "--cheaters") != 0) {
            cu_cli_errorf("demo", "unknown argument '%s' (see 'cumulus demo --help')", a);
            return -1;
        }
        if (!(v = cu_cli_value("demo", argc, argv, &i)))
            return -1;
        if (strcmp(a, "--out") == 0) {
            *out_dir = v;
        } else if (strcmp(a, "--data") == 0) {
            *data_dir = v;
        } else if (strcmp(a, "--providers") == 0) {
            if (parse_uint_opt(a, v, 1, DEMO_MAX_PROVIDERS, &d->nproviders) < 0)
                return -1;
        } else if (strcmp(a, "--slots") == 0) {
            if (parse_uint_opt(a, v, 1, DEMO_MAX_SLOTS, &d->slots) < 0)
                return -1;
        } else if (strcmp(a, "--tasks") == 0) {
            if (parse_uint_opt(a, v, 1, DEMO_MAX_TASKS, &d->tasks) < 0)
                return -1;
        } else if (strcmp(a, "--cheaters") == 0) {
            if (parse_uint_opt(a, v, 0, DEMO_MAX_PROVIDERS - 1, &d->ncheaters) < 0)
                return -1;
        } else if (parse_uint_opt(a, v, DEMO_MIN_SIZE, CU_IMAGE_MAX_DIM, &d->size) < 0) {
            return -1;
        }
    }
    if (d->nproviders + d->ncheaters > DEMO_MAX_PROVIDERS) {
        cu_cli_errorf("demo", "--providers %u plus --cheaters %u is more than %d", d->nproviders,
                      d->ncheaters, DEMO_MAX_PROVIDERS);
        return -1;
    }
    if (d->ncheaters > 0 && d->nproviders < 2) {
        cu_cli_errorf("demo", "--cheaters needs at least 2 honest --providers to outvote them");
        return -1;
    }
    for (d->grid = 1; d->grid * d->grid < d->tasks; d->grid++)
        ;
    if (d->grid * d->grid != d->tasks) {
        cu_cli_errorf("demo", "--tasks: %u is not a perfect square (try 16, 64 or 100)",
                      d->tasks);
        return -1;
    }
    /* The fractal program cuts the image into g x g equal tiles. */
    if (d->size % d->grid != 0) {
        cu_cli_errorf("demo", "--size: %u pixels cannot be cut into %u equal tiles per side",
                      d->size, d->grid);
        return -1;
    }
    return 0;
}

/* Finds the fractal task program: $CUMULUS_FRACTAL, else examples/fractal
 * next to this binary. */
static int find_fractal(struct demo *d)
{
    const char *env = getenv("CUMULUS_FRACTAL");
    char dir[CU_PATH_MAX];
    char *slash;

    if (env && env[0]) {
        if (!realpath(env, d->fractal) || access(d->fractal, X_OK) != 0) {
            fprintf(stderr, "demo: CUMULUS_FRACTAL=%s is not an executable file\n", env);
            return -1;
        }
        return 0;
    }
    cu_snprintf(dir, sizeof dir, "%s", d->self);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (cu_snprintf(d->fractal, sizeof d->fractal, "%s/examples/fractal", dir) == 0 &&
        access(d->fractal, X_OK) == 0)
        return 0;
    fprintf(stderr, "demo: fractal task program not found (run make); looked for %s\n",
            d->fractal);
    return -1;
}

/* Appends s to b as a double-quoted YAML string. */
static int yaml_quote(struct cu_buf *b, const char *s)
{
    int rc = cu_buf_append(b, "\"", 1);
    for (; rc == 0 && *s; s++) {
        if (*s == '"' || *s == '\\')
            rc = cu_buf_appendf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            rc = cu_buf_appendf(b, "\\x%02x", (unsigned char)*s);
        else
            rc = cu_buf_append(b, s, 1);
    }
    return rc == 0 ? cu_buf_append(b, "\"", 1) : rc;
}

static int write_job_file(const struct demo *d, const char *path)
{
    struct cu_buf b = CU_BUF_INIT(1 << 16);
    int rc = cu_buf_appendf(&b,
                            "# Written by `cumulus demo`: one task per tile of a %ux%u "
                            "Mandelbrot image.\n"
                            "name: fractal\n"
                            "command: [\"/in/fractal\", \"%u\", \"%u\", \"" DEMO_MAXITER
                            "\"]\n"
                            "inputs:\n"
                            "  - name: fractal\n"
                            "    path: ",
                            d->size, d->size, d->size, d->size);
    if (rc == 0)
        rc = yaml_quote(&b, d->fractal);
    if (rc == 0)
        rc = cu_buf_appendf(&b,
                            "\n"
                            "tasks: %u\n"
                            "outputs: [\"tile.ppm\"]\n"
                            "resources: {cores: 1, memory: 256MiB, time: 60s, output: 16MiB}\n"
                            "replication: %s\n"
                            "price: {max_per_cu: " DEMO_BID "}\n",
                            d->tasks,
                            d->ncheaters ? "{min: 2, quorum: 2, max: 5}" : "1");
    if (rc == 0)
        rc = cu_write_file_atomic(path, b.data, b.len, 0644);
    cu_buf_release(&b);
    return rc;
}

/* Waits up to DEMO_URL_WAIT_MS for the exchange to write its URL. */
static int wait_for_url(struct demo *d, const char *url_path)
{
    int64_t deadline = cu_mono_ms() + DEMO_URL_WAIT_MS;
    for (;;) {
        struct cu_buf b = CU_BUF_INIT(sizeof d->url - 1);
        int rc = cu_read_file(url_path, &b);
        if (rc == 0 && b.len > 0) {
            size_t n = b.len;
            while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' ||
                             b.data[n - 1] == ' '))
                n--;
            memcpy(d->url, b.data, n);
            d->url[n] = '\0';
            cu_buf_release(&b);
            if (strncmp(d->url, "http://", 7) == 0 || strncmp(d->url, "https://", 8) == 0)
                return 0;
        }
        cu_buf_release(&b);
        if (stop_signal)
            return fail("start exchange", NULL, "interrupted");
        if (child_gone(&d->exchange) && d->exchange.reaped) {
            char how[64];
            describe_status(d->exchange.wstatus, how, sizeof how);
            return fail("start exchange", d->exchange.log, "the exchange exited (%s)", how);
        }
        if (cu_mono_ms() > deadline)
            return fail("start exchange", d->exchange.log,
                        "no URL in %s after %d s", url_path, DEMO_URL_WAIT_MS / 1000);
        cu_sleep_ms(50);
    }
}

static int start_daemons(struct demo *d)
{
    char exdir[CU_PATH_MAX], url_path[CU_PATH_MAX];

    /* The providers find their own identity in their data dir. */
    unsetenv("CUMULUS_KEY");
    if (cu_path_join(exdir, sizeof exdir, d->data, "exchange") < 0 ||
        cu_path_join(url_path, sizeof url_path, exdir, "exchange.url") < 0 ||
        cu_snprintf(d->exchange.log, sizeof d->exchange.log, "%s/exchange.log", d->data) < 0)
        return fail("start exchange", NULL, "data directory path too long");
    if (cu_mkdir_p(exdir, 0700) < 0)
        return fail("start exchange", NULL, "cannot create %s", exdir);
    /* A kept data dir holds the last run's URL: never read a stale one. */
    unlink(url_path);
    cu_snprintf(d->exchange.name, sizeof d->exchange.name, "the exchange");
    d->exchange.own_group = true;
    {
        char *argv[] = {"cumulus", "exchange", "--listen", "127.0.0.1:0", "--data", exdir,
                        "--lease", "10s", "--devnet", NULL};
        if (spawn(d, &d->exchange, argv, NULL, false) < 0)
            return fail("start exchange", NULL, "could not start the exchange");
    }
    if (wait_for_url(d, url_path) != 0)
        return CU_EXIT_FAIL;

    for (unsigned i = 0; i < d->nproviders; i++) {
        struct child *p = &d->providers[i];
        char pdir[CU_PATH_MAX], slots[16], price[16];
        cu_snprintf(p->name, sizeof p->name, "provider-%u", i + 1);
        cu_snprintf(slots, sizeof slots, "%u", d->slots);
        /* Different asks, so the settlement shows each paid its own. */
        cu_snprintf(price, sizeof price, "%u", (DEMO_FIRST_ASK + i) * DEMO_ASK_UNIT);
        if (cu_snprintf(pdir, sizeof pdir, "%s/provider-%u", d->data, i + 1) < 0 ||
            cu_snprintf(p->log, sizeof p->log, "%s/provider-%u.log", d->data, i + 1) < 0)
            return fail("start providers", NULL, "data directory path too long");
        /* Sandboxed tasks run as another uid and must traverse into the
         * provider's task directories. */
        if (cu_mkdir_p(pdir, 0711) < 0 || chmod(pdir, 0711) != 0)
            return fail("start providers", NULL, "cannot create %s", pdir);
        p->own_group = true;
        char *argv[] = {"cumulus", "provide", "--exchange", d->url, "--data", pdir,
                        "--slots", slots, "--price", price, NULL};
        if (spawn(d, p, argv, NULL, false) < 0)
            return fail("start providers", NULL, "could not start %s", p->name);
    }
    return 0;
}

static int make_requester_key(struct demo *d)
{
    char dir[CU_PATH_MAX];
    int rc;
    if (cu_path_join(dir, sizeof dir, d->data, "requester") < 0 ||
        cu_path_join(d->key, sizeof d->key, dir, "identity.key") < 0 ||
        cu_path_join(d->reqlog, sizeof d->reqlog, d->data, "requester.log") < 0)
        return fail("make requester key", NULL, "data directory path too long");
    if (cu_mkdir_p(dir, 0700) < 0)
        return fail("make requester key", NULL, "cannot create %s", dir);
    /* Requester commands below find everything through the environment,
     * as a user's shell would give it to them. */
    setenv("CUMULUS_HOME", dir, 1);
    setenv("CUMULUS_EXCHANGE", d->url, 1);
    setenv("CUMULUS_KEY", d->key, 1);
    if (access(d->key, R_OK) != 0) {
        char *argv[] = {"cumulus", "keygen", "--out", d->key, "--insecure-plain", NULL};
        rc = run_cli(d, "make requester key", argv, NULL, false, DEMO_STATUS_MS);
        if (rc < 0)
            return CU_EXIT_FAIL;
        if (rc != 0)
            return fail("make requester key", d->reqlog, "cumulus keygen exited with %d", rc);
    }
    return 0;
}

/* Funds the requester from the devnet faucet: enough for the job's most
 * expensive case (every tile at the bid for its whole time limit). */
static int fund_requester(struct demo *d)
{
    char amount[32];
    int rc;

    /* With cheaters a tile may run up to 5 times (the policy's max). */
    cu_snprintf(amount, sizeof amount, "%llu",
                (unsigned long long)d->tasks * DEMO_FUNDS_PER_TASK * (d->ncheaters ? 5 : 1));
    char *argv[] = {"cumulus", "faucet", amount, NULL};
    rc = run_cli(d, "fund requester", argv, NULL, false, DEMO_STATUS_MS);
    if (rc < 0)
        return CU_EXIT_FAIL;
    if (rc != 0)
        return fail("fund requester", d->reqlog, "cumulus faucet exited with %d", rc);
    printf("demo: requester funded with %s tokens from the devnet faucet\n", amount);
    return 0;
}

static void keystore_id(const char *path, char *out, size_t n);

/* Starts the --cheaters providers (providers[nhonest..]): each gets its own
 * key, funds from the faucet and a stake (so a slash can take it), and
 * runs with --cheat wrong. They join d->nproviders, so they are watched
 * and stopped like the others. */
static int start_cheaters(struct demo *d)
{
    for (unsigned k = 0; k < d->ncheaters; k++) {
        unsigned i = d->nproviders;
        struct child *p = &d->providers[i];
        char pdir[CU_PATH_MAX], key[CU_PATH_MAX], slots[16], price[16];
        int rc;

        cu_snprintf(p->name, sizeof p->name, "provider-%u (cheater)", i + 1);
        cu_snprintf(slots, sizeof slots, "%u", d->slots);
        cu_snprintf(price, sizeof price, "%u", (DEMO_FIRST_ASK + i) * DEMO_ASK_UNIT);
        if (cu_snprintf(pdir, sizeof pdir, "%s/provider-%u", d->data, i + 1) < 0 ||
            cu_path_join(key, sizeof key, pdir, "identity.key") < 0 ||
            cu_snprintf(p->log, sizeof p->log, "%s/provider-%u.log", d->data, i + 1) < 0)
            return fail("start cheaters", NULL, "data directory path too long");
        if (cu_mkdir_p(pdir, 0711) < 0 || chmod(pdir, 0711) != 0)
            return fail("start cheaters", NULL, "cannot create %s", pdir);
        if (access(key, R_OK) != 0) {
            char *kargv[] = {"cumulus", "keygen", "--out", key, "--insecure-plain", NULL};
            rc = run_cli(d, "start cheaters", kargv, NULL, false, DEMO_STATUS_MS);
            if (rc != 0)
                return rc < 0 ? CU_EXIT_FAIL
                              : fail("start cheaters", d->reqlog, "keygen exited with %d", rc);
        }
        char *fargv[] = {"cumulus", "faucet", "100000", "--key", key, NULL};
        rc = run_cli(d, "start cheaters", fargv, NULL, false, DEMO_STATUS_MS);
        if (rc != 0)
            return rc < 0 ? CU_EXIT_FAIL
                          : fail("start cheaters", d->reqlog, "faucet exited with %d", rc);
        p->own_group = true;
        char *argv[] = {"cumulus", "provide", "--exchange", d->url, "--data", pdir, "--slots",
                        slots, "--price", price, "--stake", "1000", "--cheat", "wrong", NULL};
        if (spawn(d, p, argv, NULL, false) < 0)
            return fail("start cheaters", NULL, "could not start %s", p->name);
        d->nproviders++;
    }
    if (d->ncheaters)
        printf("demo: started %u cheating provider(s) (--cheat wrong, stake 1000 each)\n",
               d->ncheaters);
    return 0;
}

/* Renders every tile here with the same fractal program, outside the
 * market, and compares it byte for byte with the tile the job accepted
 * (the fractal is deterministic: the same bytes on every machine). Prints
 * the verdict; returns 0 when all tiles match. */
static int check_honest(struct demo *d)
{
    char dir[CU_PATH_MAX], count[16], size[16];
    unsigned bad = 0;

    if (cu_path_join(dir, sizeof dir, d->data, "honest") < 0 || cu_mkdir_p(dir, 0755) < 0)
        return fail("honest render", NULL, "cannot create %s/honest", d->data);
    cu_snprintf(count, sizeof count, "%u", d->tasks);
    cu_snprintf(size, sizeof size, "%u", d->size);
    for (unsigned i = 0; i < d->tasks; i++) {
        char tdir[CU_PATH_MAX], mine[CU_PATH_MAX], theirs[CU_PATH_MAX], index[16];
        struct cu_hash h1, h2;
        int status = 0;
        pid_t pid;

        cu_snprintf(index, sizeof index, "%u", i);
        if (cu_snprintf(tdir, sizeof tdir, "%s/%u", dir, i) < 0 || cu_mkdir_p(tdir, 0755) < 0 ||
            cu_path_join(mine, sizeof mine, tdir, "tile.ppm") < 0 ||
            cu_snprintf(theirs, sizeof theirs, "%s/results/%u/tile.ppm", d->data, i) < 0)
            return fail("honest render", NULL, "path too long");
        pid = fork();
        if (pid < 0)
            return fail("honest render", NULL, "fork: %s", strerror(errno));
        if (pid == 0) {
            char *argv[] = {d->fractal, "--out", tdir, size, size, DEMO_MAXITER, NULL};
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) { /* the tile program's progress lines */
                dup2(devnull, STDOUT_FILENO);
                dup2(devnull, STDERR_FILENO);
            }
            setenv("CUMULUS_TASK_INDEX", index, 1);
            setenv("CUMULUS_TASK_COUNT", count, 1);
            execv(d->fractal, argv);
            _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return fail("honest render", NULL, "%s failed for tile %u", d->fractal, i);
        if (cu_hash_file(mine, &h1, NULL) != 0 || cu_hash_file(theirs, &h2, NULL) != 0 ||
            !cu_hash_eq(&h1, &h2))
            bad++;
    }
    if (bad)
        return fail("honest render", NULL,
                    "%u of %u tiles differ from an honest render: a wrong result was accepted",
                    bad, d->tasks);
    printf("  check:    all %u tiles equal an honest local render: the image is correct\n",
           d->tasks);
    return 0;
}

/* Prints which providers were slashed for the job, and by how much, from
 * its JSON (replicas' "slashed"), marking the cheaters. Best effort. */
static void print_slashed(struct demo *d)
{
    struct cu_buf out = CU_BUF_INIT(DEMO_CAPTURE_MAX);
    char ids[DEMO_MAX_PROVIDERS][65];
    json_t *j = NULL, *task, *rep;
    size_t ti, ri;
    unsigned wrong[DEMO_MAX_PROVIDERS] = {0};
    long long taken[DEMO_MAX_PROVIDERS] = {0};
    struct cu_err e = {0};

    char *argv[] = {"cumulus", "status", d->job, "--json", NULL};
    if (run_cli(d, "status", argv, &out, false, DEMO_STATUS_MS) != 0 ||
        !(j = cu_json_parse(cu_buf_str(&out), out.len, &e))) {
        fprintf(stderr, "demo: could not read the job's status for the slashing summary\n");
        goto out_release;
    }
    for (unsigned i = 0; i < d->nproviders; i++) {
        char path[CU_PATH_MAX];
        cu_snprintf(path, sizeof path, "%s/provider-%u/identity.key", d->data, i + 1);
        keystore_id(path, ids[i], sizeof ids[i]);
    }
    json_array_foreach(json_object_get(j, "tasks"), ti, task) {
        json_array_foreach(json_object_get(task, "replicas"), ri, rep) {
            const char *prov = json_string_value(json_object_get(rep, "provider"));
            for (unsigned i = 0; prov && i < d->nproviders; i++) {
                if (strcmp(ids[i], prov) != 0)
                    continue;
                if (json_is_false(json_object_get(rep, "agreed")))
                    wrong[i]++;
                taken[i] += json_integer_value(json_object_get(rep, "slashed"));
            }
        }
    }
    printf("  trust:    replicas against the quorum are not paid and lose stake:\n");
    for (unsigned i = 0; i < d->nproviders; i++) {
        if (!wrong[i] && !taken[i] && i < d->nhonest)
            continue;
        printf("    provider-%u  %-16.16s %s %3u wrong tile(s), slashed %lld\n", i + 1, ids[i],
               i >= d->nhonest ? "cheater" : "honest ", wrong[i], taken[i]);
    }
out_release:
    json_decref(j);
    cu_buf_release(&out);
}

/* Verifies the exchange's ledger from genesis, as anyone could, and prints
 * the verifier's line ("ledger: N transactions in M blocks — verified"). */
static int verify_ledger(struct demo *d)
{
    char exdir[CU_PATH_MAX];
    struct cu_buf out = CU_BUF_INIT(DEMO_CAPTURE_MAX);
    int rc;

    if (cu_path_join(exdir, sizeof exdir, d->data, "exchange") < 0)
        return fail("verify ledger", NULL, "path too long");
    char *argv[] = {"cumulus", "ledger", "verify", exdir, NULL};
    rc = run_cli(d, "verify ledger", argv, &out, false, DEMO_STATUS_MS);
    if (rc == 0) {
        const char *s = cu_buf_str(&out);
        printf("  %.*s\n", (int)strcspn(s, "\n"), s);
    }
    cu_buf_release(&out);
    if (rc < 0)
        return CU_EXIT_FAIL;
    if (rc != 0)
        return fail("verify ledger", d->reqlog, "cumulus ledger verify exited with %d", rc);
    return 0;
}

static int submit_job(struct demo *d)
{
    char yaml[CU_PATH_MAX];
    struct cu_buf out = CU_BUF_INIT(DEMO_CAPTURE_MAX);
    int rc;

    if (cu_path_join(yaml, sizeof yaml, d->data, "fractal.yaml") < 0 ||
        write_job_file(d, yaml) < 0)
        return fail("write job file", NULL, "cannot write %s/fractal.yaml", d->data);
    char *argv[] = {"cumulus", "submit", yaml, NULL};
    rc = run_cli(d, "submit", argv, &out, false, DEMO_SUBMIT_MS);
    if (rc < 0)
        goto out_release;
    if (rc != 0) {
        rc = -1;
        fail("submit", d->reqlog, "cumulus submit %s failed", yaml);
        goto out_release;
    }
    /* stdout is the job id alone (maybe with a newline). */
    size_t n = out.len;
    const char *s = cu_buf_str(&out);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    if (n == 0 || n >= sizeof d->job || memchr(s, '\n', n)) {
        rc = -1;
        fail("submit", d->reqlog, "cumulus submit printed no job id (stdout: '%.200s')", s);
        goto out_release;
    }
    memcpy(d->job, s, n);
    d->job[n] = '\0';
    rc = 0;
out_release:
    cu_buf_release(&out);
    return rc < 0 ? CU_EXIT_FAIL : 0;
}

/* Reads the "id" field of a keystore file (both forms carry it). */
static void keystore_id(const char *path, char *out, size_t n)
{
    struct cu_buf b = CU_BUF_INIT(1 << 16);
    json_t *j = NULL;
    out[0] = '\0';
    if (cu_read_file(path, &b) == 0 && (j = cu_json_parse(cu_buf_str(&b), b.len, NULL))) {
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id)
            cu_snprintf(out, n, "%s", id);
        json_decref(j);
    }
    cu_buf_release(&b);
}

/* Prints how many accepted tasks each provider ran, from `status --json`.
 * Best effort: a failure here only loses this part of the summary. */
static void print_per_provider(struct demo *d)
{
    struct cu_buf out = CU_BUF_INIT(DEMO_CAPTURE_MAX);
    json_t *j = NULL, *tasks, *task, *rep;
    size_t ti, ri;
    unsigned counts[DEMO_MAX_PROVIDERS] = {0}, other = 0;
    char ids[DEMO_MAX_PROVIDERS][CU_PATH_MAX / 32];
    struct cu_err e = {0};

    char *argv[] = {"cumulus", "status", d->job, "--json", NULL};
    if (run_cli(d, "status", argv, &out, false, DEMO_STATUS_MS) != 0 ||
        !(j = cu_json_parse(cu_buf_str(&out), out.len, &e)) ||
        !json_is_array(tasks = json_object_get(j, "tasks"))) {
        fprintf(stderr, "demo: could not read the job's status for the summary (see %s)\n",
                d->reqlog);
        goto out_release;
    }
    for (unsigned i = 0; i < d->nproviders; i++) {
        char path[CU_PATH_MAX];
        cu_snprintf(path, sizeof path, "%s/provider-%u/identity.key", d->data, i + 1);
        keystore_id(path, ids[i], sizeof ids[i]);
    }
    json_array_foreach(tasks, ti, task) {
        json_array_foreach(json_object_get(task, "replicas"), ri, rep) {
            const char *state = json_string_value(json_object_get(rep, "state"));
            const char *prov = json_string_value(json_object_get(rep, "provider"));
            bool found = false;
            if (!state || strcmp(state, "accepted") != 0 || !prov)
                continue;
            for (unsigned i = 0; i < d->nproviders && !found; i++) {
                if (ids[i][0] && strcmp(ids[i], prov) == 0) {
                    counts[i]++;
                    found = true;
                }
            }
            if (!found)
                other++;
        }
    }
    printf("  settlement (each provider paid its own ask x the CU its tiles used):\n");
    for (unsigned i = 0; i < d->nproviders; i++) {
        const json_t *p, *bill = json_object_get(j, "bill");
        long long paid = 0, cu_milli = 0;
        size_t pi;
        char cu[32];
        json_array_foreach(json_object_get(bill, "paid"), pi, p) {
            const char *who = json_string_value(json_object_get(p, "provider"));
            if (who && ids[i][0] && strcmp(who, ids[i]) == 0) {
                paid = (long long)json_integer_value(json_object_get(p, "amount"));
                cu_milli = (long long)json_integer_value(json_object_get(p, "cu_milli"));
            }
        }
        cu_api_fmt_cu(cu_milli, cu, sizeof cu);
        printf("    provider-%u  %-16.16s  ask %6u  %3u tiles  %9s CU  paid %8lld%s\n", i + 1,
               ids[i][0] ? ids[i] : "(unknown id)", (DEMO_FIRST_ASK + i) * DEMO_ASK_UNIT, counts[i], cu, paid,
               i >= d->nhonest ? "  (cheater)" : "");
    }
    if (other)
        printf("    other         %u tiles\n", other);
    {
        const json_t *bill = json_object_get(j, "bill");
        printf("    exchange fee %lld, escrow fee %lld, refunded %lld of %lld locked\n",
               (long long)json_integer_value(json_object_get(bill, "exchange_fee")),
               (long long)json_integer_value(json_object_get(bill, "escrow_fee")),
               (long long)json_integer_value(json_object_get(bill, "refunded")),
               (long long)json_integer_value(json_object_get(bill, "locked")));
    }
out_release:
    json_decref(j);
    cu_buf_release(&out);
}

/* Reads every tile and writes OUT/fractal.png. Tile i is column i % g, row
 * i / g; column c spans pixels [c*size/g, (c+1)*size/g). */
static int assemble(struct demo *d, char *png_path, size_t png_n)
{
    struct cu_image img, tile;
    struct cu_err e = {0};
    char outdir[CU_PATH_MAX];
    int rc = CU_EXIT_FAIL;

    cu_image_init(&img);
    cu_image_init(&tile);
    if (cu_mkdir_p(d->out, 0755) < 0 || !realpath(d->out, outdir)) {
        fail("assemble", NULL, "cannot create output directory %s: %s", d->out,
             strerror(errno));
        goto out_release;
    }
    if (cu_path_join(png_path, png_n, outdir, "fractal.png") < 0) {
        fail("assemble", NULL, "output path too long");
        goto out_release;
    }
    if (cu_image_alloc(&img, d->size, d->size) < 0) {
        fail("assemble", NULL, "out of memory for a %ux%u image", d->size, d->size);
        goto out_release;
    }
    for (unsigned i = 0; i < d->tasks; i++) {
        unsigned row = i / d->grid, col = i % d->grid;
        uint32_t x0 = (uint32_t)((uint64_t)col * d->size / d->grid);
        uint32_t x1 = (uint32_t)((uint64_t)(col + 1) * d->size / d->grid);
        uint32_t y0 = (uint32_t)((uint64_t)row * d->size / d->grid);
        uint32_t y1 = (uint32_t)((uint64_t)(row + 1) * d->size / d->grid);
        char path[CU_PATH_MAX];
        cu_snprintf(path, sizeof path, "%s/results/%u/tile.ppm", d->data, i);
        if (cu_ppm_read_file(path, (size_t)(x1 - x0) * (y1 - y0) * 3 + 64, &tile, &e) < 0) {
            fail("assemble", NULL, "task %u: %s", i, e.msg);
            goto out_release;
        }
        if (tile.width != x1 - x0 || tile.height != y1 - y0) {
            fail("assemble", NULL, "task %u: tile is %ux%u, expected %ux%u", i, tile.width,
                 tile.height, x1 - x0, y1 - y0);
            goto out_release;
        }
        cu_image_blit(&img, &tile, x0, y0);
    }
    if (cu_png_write_file(png_path, &img, &e) < 0) {
        fail("assemble", NULL, "%s", e.msg);
        goto out_release;
    }
    rc = 0;
out_release:
    cu_image_release(&tile);
    cu_image_release(&img);
    return rc;
}

/* The demo proper, after setup: each step returns 0 or has reported its
 * failure. */
static int run_demo(struct demo *d)
{
    char resdir[CU_PATH_MAX], png[CU_PATH_MAX], took[32];
    int rc;

    d->nhonest = d->nproviders;
    if ((rc = start_daemons(d)) != 0 || (rc = make_requester_key(d)) != 0 ||
        (rc = fund_requester(d)) != 0 || (rc = start_cheaters(d)) != 0)
        return rc;
    printf("demo: exchange at %s, %u providers x %u slots\n", d->url, d->nproviders,
           d->slots);
    fflush(stdout);
    if ((rc = submit_job(d)) != 0)
        return rc;
    printf("demo: submitted job %s: %u tiles of a %ux%u fractal\n", d->job, d->tasks, d->size,
           d->size);
    fflush(stdout);

    char *wait_argv[] = {"cumulus", "wait", d->job, NULL};
    rc = run_cli(d, "wait", wait_argv, NULL, true, DEMO_WAIT_MS);
    if (rc < 0)
        return CU_EXIT_FAIL;
    if (rc != 0) {
        fprintf(stderr, "demo: step 'wait' failed: cumulus wait exited with %d; job status:\n",
                rc);
        char *st_argv[] = {"cumulus", "status", d->job, NULL};
        d->req.log[0] = '\0';
        run_cli(d, "status", st_argv, NULL, true, DEMO_STATUS_MS);
        print_tail(d->providers[0].log, DEMO_TAIL_LINES);
        return CU_EXIT_FAIL;
    }

    if (cu_path_join(resdir, sizeof resdir, d->data, "results") < 0)
        return fail("results", NULL, "path too long");
    cu_rm_rf(resdir);
    char *res_argv[] = {"cumulus", "results", d->job, "--out", resdir, NULL};
    rc = run_cli(d, "results", res_argv, NULL, false, DEMO_RESULTS_MS);
    if (rc < 0)
        return CU_EXIT_FAIL;
    if (rc != 0)
        return fail("results", d->reqlog, "cumulus results exited with %d", rc);

    if ((rc = assemble(d, png, sizeof png)) != 0)
        return rc;
    cu_fmt_duration((uint64_t)(cu_mono_ms() - d->start_ms), took, sizeof took);
    printf("\ndemo: done in %s\n", took);
    printf("  image:    %s (%ux%u PNG)\n", png, d->size, d->size);
    printf("  job:      %s, %u tasks, all succeeded\n", d->job, d->tasks);
    print_per_provider(d);
    if (d->ncheaters) {
        if ((rc = check_honest(d)) != 0)
            return rc;
        print_slashed(d);
    }
    if ((rc = verify_ledger(d)) != 0)
        return rc;
    if (d->keep_data)
        printf("  data:     %s (exchange state in %s/exchange, logs in %s/*.log)\n", d->data,
               d->data, d->data);
    fflush(stdout);
    return 0;
}

int cmd_demo(int argc, char **argv)
{
    struct demo *d;
    const char *out_dir = "demo-out", *data_dir = NULL;
    struct sigaction sa, old_int, old_term, old_hup;
    ssize_t n;
    int rc;

    d = calloc(1, sizeof *d);
    if (!d) {
        cu_cli_errorf("demo", "out of memory");
        return CU_EXIT_FAIL;
    }
    d->nproviders = 3;
    d->slots = 2;
    d->tasks = 64;
    d->size = 1024;
    rc = parse_args(d, argc, argv, &out_dir, &data_dir);
    if (rc != 0) {
        free(d);
        return rc > 0 ? CU_EXIT_OK : CU_EXIT_USAGE;
    }
    d->start_ms = cu_mono_ms();
    n = readlink("/proc/self/exe", d->self, sizeof d->self - 1);
    if (n <= 0 || (size_t)n >= sizeof d->self - 1) {
        cu_cli_errorf("demo", "cannot find this program via /proc/self/exe");
        free(d);
        return CU_EXIT_FAIL;
    }
    d->self[n] = '\0';
    if (find_fractal(d) < 0) {
        free(d);
        return CU_EXIT_FAIL;
    }
    if (cu_snprintf(d->out, sizeof d->out, "%s", out_dir) < 0) {
        cu_cli_errorf("demo", "--out: path too long");
        free(d);
        return CU_EXIT_USAGE;
    }
    if (data_dir) {
        d->keep_data = true;
        if (cu_mkdir_p(data_dir, 0711) < 0 || !realpath(data_dir, d->data)) {
            cu_cli_errorf("demo", "--data: cannot create %s: %s", data_dir, strerror(errno));
            free(d);
            return CU_EXIT_FAIL;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !tmp[0])
            tmp = "/tmp";
        if (cu_snprintf(d->data, sizeof d->data, "%s/cumulus-demo-XXXXXX", tmp) < 0 ||
            !mkdtemp(d->data) || chmod(d->data, 0711) != 0) {
            cu_cli_errorf("demo", "cannot create a temporary directory in %s: %s", tmp,
                          strerror(errno));
            free(d);
            return CU_EXIT_FAIL;
        }
    }

    /* No SA_RESTART: a signal must interrupt the waits below. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);

    rc = run_demo(d);
    if (stop_signal && rc == 0)
        rc = CU_EXIT_FAIL;
    stop_all(d);
    if (!d->keep_data)
        cu_rm_rf(d->data);
    else if (rc != 0)
        fprintf(stderr, "demo: state and logs kept in %s\n", d->data);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    free(d);
    return rc;
}
