/* exchange_fixture.h - the real exchange as a test fixture, shared by the
 * tests in tests/unit that talk to it over HTTP (api_auth_test.c,
 * api_ownership_test.c, money_exchange_test.c). Header only: each test is
 * built standalone against libcumulus.a.
 *
 * Starts build/cumulus (relative to the repository root, where
 * tests/run.sh runs; CUMULUS_BIN overrides) as
 * `exchange --listen 127.0.0.1:0 --data DIR/DATA EXTRA...` in a temporary
 * directory DIR, logging to DIR/exchange.log, and waits for
 * DATA/exchange.url. */
#ifndef CU_TESTS_EXCHANGE_FIXTURE_H
#define CU_TESTS_EXCHANGE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "net/http_client.h"

#define EXFIX_UNUSED __attribute__((unused))
#define EXFIX_TIMEOUT_MS 60000L /* for call() */
#define EXFIX_MAX_EXTRA 8       /* extra exchange arguments */

struct exfix {
    char dir[CU_PATH_MAX];  /* the temporary directory */
    char data[CU_PATH_MAX]; /* the data directory of the last start */
    char url[256];
    pid_t pid;
};

/* Creates the temporary directory from template (e.g. "/tmp/cu_x_XXXXXX")
 * after cu_crypto_init; on failure x->dir is empty and -1 returned. */
static EXFIX_UNUSED int exfix_init(struct exfix *x, const char *template)
{
    if (cu_snprintf(x->dir, sizeof x->dir, "%s", template) != 0 || cu_crypto_init() != 0 ||
        !mkdtemp(x->dir)) {
        x->dir[0] = '\0';
        return -1;
    }
    return 0;
}

/* Sends sig, waits up to 10 s, then SIGKILL. */
static EXFIX_UNUSED void exfix_stop(struct exfix *x, int sig)
{
    int st;
    if (x->pid <= 0)
        return;
    kill(x->pid, sig);
    for (int i = 0; i < 100; i++) {
        if (waitpid(x->pid, &st, WNOHANG) == x->pid) {
            x->pid = 0;
            return;
        }
        cu_sleep_ms(100);
    }
    kill(x->pid, SIGKILL);
    waitpid(x->pid, &st, 0);
    x->pid = 0;
}

/* Stops the exchange (SIGTERM) and removes the temporary directory. */
static EXFIX_UNUSED void exfix_cleanup(struct exfix *x)
{
    exfix_stop(x, SIGTERM);
    if (x->dir[0])
        cu_rm_rf(x->dir);
}

static EXFIX_UNUSED void exfix_print_log(const struct exfix *x)
{
    char path[CU_PATH_MAX];
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    if (cu_path_join(path, sizeof path, x->dir, "exchange.log") == 0 && cu_read_file(path, &b) == 0)
        fprintf(stderr, "# exchange.log:\n%s\n", cu_buf_str(&b));
    cu_buf_release(&b);
}

/* Starts the exchange on data dir `data` (under x->dir) with the
 * NULL-terminated extra arguments `extra` (may be NULL) and waits up to
 * wait_s seconds for its URL. 0 when it listens (x->url set), -1 when it
 * did not start (quiet: an exit is expected, no log printed). */
static EXFIX_UNUSED int exfix_start(struct exfix *x, const char *data, const char *const *extra,
                                    int wait_s, bool quiet)
{
    const char *bin = getenv("CUMULUS_BIN");
    const char *argv[8 + EXFIX_MAX_EXTRA];
    char log[CU_PATH_MAX], urlfile[CU_PATH_MAX];
    size_t argc = 0;
    int logfd;

    if (!bin || !bin[0])
        bin = "build/cumulus";
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "# %s not found (run make from the repository root)\n", bin);
        return -1;
    }
    if (cu_path_join(x->data, sizeof x->data, x->dir, data) < 0 ||
        cu_path_join(log, sizeof log, x->dir, "exchange.log") < 0 ||
        cu_path_join(urlfile, sizeof urlfile, x->data, "exchange.url") < 0)
        return -1;
    argv[argc++] = bin;
    argv[argc++] = "exchange";
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--data";
    argv[argc++] = x->data;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (i >= EXFIX_MAX_EXTRA)
            return -1;
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    unlink(urlfile); /* a kill -9 leaves it behind */
    logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd < 0)
        return -1;
    x->pid = fork();
    if (x->pid < 0) {
        close(logfd);
        return -1;
    }
    if (x->pid == 0) {
        int nullfd = open("/dev/null", O_RDONLY);
        sigset_t none;
        for (int sig = 1; sig < NSIG; sig++)
            signal(sig, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (nullfd >= 0)
            dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(logfd);

    int64_t deadline = cu_mono_ms() + (int64_t)wait_s * 1000;
    while (cu_mono_ms() < deadline) {
        struct cu_buf b = CU_BUF_INIT(sizeof x->url - 1);
        int st;
        if (cu_read_file(urlfile, &b) == 0 && b.len > 0) {
            size_t n = b.len;
            while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == ' '))
                n--;
            memcpy(x->url, b.data, n);
            x->url[n] = '\0';
            cu_buf_release(&b);
            return 0;
        }
        cu_buf_release(&b);
        if (waitpid(x->pid, &st, WNOHANG) == x->pid) {
            x->pid = 0;
            if (!quiet) {
                fprintf(stderr, "# the exchange exited during start\n");
                exfix_print_log(x);
            }
            return -1;
        }
        cu_sleep_ms(50);
    }
    fprintf(stderr, "# no exchange.url after %d s\n", wait_s);
    exfix_print_log(x);
    return -1;
}

/* ---- requests ----------------------------------------------------------------- */

/* One request; a response must arrive. body may be NULL. */
static EXFIX_UNUSED void call(struct cu_http_client *c, const char *method, const char *path,
                              const char *body, struct cu_http_result *r)
{
    char why[640];
    if (cu_http_request(c, method, path, body, body ? strlen(body) : 0, EXFIX_TIMEOUT_MS, r) != 0)
        fail_msg("%s %s: no response: %s", method, path,
                 cu_http_result_describe(r, why, sizeof why));
}

static EXFIX_UNUSED void expect_status(const struct cu_http_result *r, long status,
                                       const char *code, const char *what)
{
    if (r->status != status)
        fail_msg("%s: expected %ld, got %ld: %s", what, status, r->status, cu_buf_str(&r->body));
    if (code && strcmp(r->err_code, code) != 0)
        fail_msg("%s: expected error '%s', got '%s': %s", what, code, r->err_code,
                 cu_buf_str(&r->body));
}

/* POST body to path and expect status (and, when code, that error code;
 * what names the step in a failure, path when NULL). *out gets a
 * reference to the answer's JSON and raw its body, each when given. */
static EXFIX_UNUSED void exfix_post(struct cu_http_client *c, const char *path, const char *body,
                                    long status, const char *code, const char *what, json_t **out,
                                    struct cu_buf *raw)
{
    struct cu_http_result r;

    cu_http_result_init(&r);
    call(c, "POST", path, body, &r);
    expect_status(&r, status, code, what ? what : path);
    if (out)
        *out = json_incref(r.json);
    if (raw && cu_buf_append(raw, r.body.data, r.body.len) != 0)
        fail_msg("%s: out of memory keeping the body", path);
    cu_http_result_release(&r);
}

/* The string member k of o; "" when absent or not a string. */
static EXFIX_UNUSED const char *exfix_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}


/* ---- an exchange with a requester and a provider ------------------------------ */

/* What most exchange tests start from: an exchange and two clients of
 * fresh identities, a requester funded from the faucet (a) and a
 * provider that said hello (p). */
struct exfix_pair {
    struct exfix x;
    struct cu_identity ida, idp;
    struct cu_http_client *a, *p;
};

/* Stops the exchange, removes its directory, frees e. NULL is fine. */
static EXFIX_UNUSED void exfix_pair_free(struct exfix_pair *e)
{
    if (!e)
        return;
    cu_http_client_free(e->a);
    cu_http_client_free(e->p);
    exfix_cleanup(&e->x);
    free(e);
}

/* Starts the exchange in a directory made from template with the extra
 * arguments args, funds the requester and sends the provider's hello
 * (hello_body, a JSON object). NULL when the exchange cannot start. */
static EXFIX_UNUSED struct exfix_pair *exfix_pair_new(const char *template, const char *const *args,
                                                      const char *hello_body)
{
    struct exfix_pair *e = calloc(1, sizeof *e);

    if (!e || exfix_init(&e->x, template) != 0 || cu_identity_generate(&e->ida) ||
        cu_identity_generate(&e->idp) || exfix_start(&e->x, "data", args, 60, false) != 0)
        goto out_fail;
    e->a = cu_http_client_new(e->x.url, &e->ida);
    e->p = cu_http_client_new(e->x.url, &e->idp);
    if (!e->a || !e->p)
        goto out_fail;
    exfix_post(e->a, "/v1/faucet", "{\"amount\":100000000}", 200, NULL, NULL, NULL, NULL);
    exfix_post(e->p, "/v1/providers/hello", hello_body, 200, NULL, NULL, NULL, NULL);
    return e;
out_fail:
    exfix_pair_free(e);
    return NULL;
}

#endif
