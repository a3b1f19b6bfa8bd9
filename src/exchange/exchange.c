/* exchange.c - the exchange daemon: startup, the signal and reaper loop,
 * shutdown.
 *
 * Threads: libmicrohttpd runs one thread per connection (handlers, claim
 * long-polls); this thread waits for SIGINT/SIGTERM and, every REAP_MS,
 * runs the reaper (expired leases, old nonces). Signals are blocked in
 * every thread and taken here with sigtimedwait, so no handler runs in
 * signal context. */
#include "exchange/exchange.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "exchange/routes.h"
#include "exchange/state.h"
#include "exchange/validate.h"
#include "market/lease.h"
#include "net/http_server.h"

#include "base/banned.h"

#define REAP_MS 250

/* The URL clients use for a listen address and the port bound: a wildcard
 * host becomes loopback. */
static int listen_url(const char *listen, uint16_t port, char *out, size_t n)
{
    char host[256];
    const char *colon;
    size_t len;

    if (listen[0] == '[') {
        const char *close_br = strchr(listen, ']');
        len = close_br ? (size_t)(close_br - listen + 1) : 0;
    } else {
        colon = strrchr(listen, ':');
        len = colon ? (size_t)(colon - listen) : strlen(listen);
    }
    if (len >= sizeof host)
        return -CU_ETOOBIG;
    memcpy(host, listen, len);
    host[len] = '\0';
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        return cu_snprintf(out, n, "http://127.0.0.1:%u", (unsigned)port);
    if (strcmp(host, "[::]") == 0)
        return cu_snprintf(out, n, "http://[::1]:%u", (unsigned)port);
    return cu_snprintf(out, n, "http://%s:%u", host, (unsigned)port);
}

/* The SQL of state.c spells the live and held replica states out; check
 * once that they still match the state machine. */
static void check_state_lists(void)
{
    for (int s = 0; s < CU_REPLICA_NSTATES; s++) {
        const char *name = cu_replica_state_name((enum cu_replica_state)s);
        bool live = strcmp(name, "leased") == 0 || strcmp(name, "running") == 0 ||
                    strcmp(name, "reported") == 0 || strcmp(name, "accepted") == 0;
        bool held = strcmp(name, "leased") == 0 || strcmp(name, "running") == 0;
        if (live != cu_replica_state_live((enum cu_replica_state)s) ||
            held != cu_replica_state_held((enum cu_replica_state)s))
            cu_error("BUG: replica state lists in state.c disagree with market/lease.h at '%s'",
                     name);
    }
}

/* The validator thread (validate.c): results of jobs with a validator
 * command are compared here, off the request threads, until stop. */
static void *validator_main(void *arg)
{
    struct ex_state *st = arg;

    for (;;) {
        bool stop;
        pthread_mutex_lock(&st->mu);
        stop = st->stopping;
        pthread_mutex_unlock(&st->mu);
        if (stop)
            break;
        if (ex_validate_sweep(st) == 0)
            cu_sleep_ms(100);
        else
            ex_jobs_changed(); /* verdicts: tasks decided */
    }
    return NULL;
}

/* Waits for SIGINT/SIGTERM, reaping every REAP_MS. Returns the signal. */
static int serve_until_signal(struct ex_state *st, const sigset_t *sigs)
{
    struct timespec ts = {0, REAP_MS * 1000000L};

    for (;;) {
        siginfo_t si;
        int sig = sigtimedwait(sigs, &si, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            return sig;
        if (sig < 0 && errno != EAGAIN && errno != EINTR)
            cu_warn("sigtimedwait: %s", strerror(errno));
        int n = ex_reap(st, cu_now_ms());
        if (n < 0)
            cu_warn("reaper: database error (will retry)");
        else if (n > 0)
            ex_jobs_changed(); /* expired leases: replicas queued again */
    }
}

int cu_exchange_run(const struct cu_exchange_opts *opts, struct cu_err *e)
{
    struct ex_state st;
    struct cu_http_server *srv = NULL;
    struct cu_http_server_opts so;
    struct sigaction ign, old_pipe;
    sigset_t sigs, old_mask;
    char url[320], urlfile[CU_PATH_MAX], line[330];
    uint64_t lease_ms = opts->lease_ms ? opts->lease_ms : CU_EXCHANGE_DEFAULT_LEASE_MS;
    int rc, sig, reaped;
    pthread_t validator;
    bool validator_started = false;

    if (!opts->data_dir || !opts->data_dir[0])
        return cu_err_set(e, -CU_EINVAL, "no data directory given");
    if (lease_ms < CU_LEASE_MIN_MS || lease_ms > CU_LEASE_MAX_MS)
        return cu_err_set(e, -CU_EINVAL, "lease %llums is outside %llums..%llums",
                          (unsigned long long)lease_ms, (unsigned long long)CU_LEASE_MIN_MS,
                          (unsigned long long)CU_LEASE_MAX_MS);
    if (cu_crypto_init() != 0)
        return cu_err_set(e, -CU_ECRYPTO, "libsodium failed to initialise");
    rc = cu_path_join(urlfile, sizeof urlfile, opts->data_dir, "exchange.url");
    if (rc)
        return cu_err_set(e, rc, "data directory path too long");
    check_state_lists();

    /* Block the stop signals before any thread starts, so every thread
     * inherits the mask and only sigtimedwait here sees them. A peer that
     * hangs up must not kill the process with SIGPIPE. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);

    rc = ex_state_open(&st, opts->data_dir, lease_ms, opts->devnet, e);
    if (rc)
        goto out_restore_signals;
    st.fee_bps = opts->fee_bps;
    st.escrow_fee = opts->escrow_fee;
    st.slash_bps = opts->slash_bps;
    /* Leases held before a crash: expired ones go back to the queue now;
     * live providers keep renewing the others. */
    reaped = ex_reap(&st, cu_now_ms());
    if (reaped > 0)
        cu_info("recovered %d expired lease(s) at start", reaped);
    validator_started = pthread_create(&validator, NULL, validator_main, &st) == 0;
    if (!validator_started)
        cu_warn("cannot start the validator thread: validator jobs will not finish");

    memset(&so, 0, sizeof so);
    so.listen = opts->listen ? opts->listen : "127.0.0.1:7070";
    so.routes = ex_routes(&so.nroutes);
    so.app = &st;
    so.auth = ex_auth;
    so.barrier = ex_barrier;
    so.static_dir = opts->web_dir;
    rc = cu_http_server_start(&srv, &so, e);
    if (rc)
        goto out_close_state;
    rc = listen_url(so.listen, cu_http_server_port(srv), url, sizeof url);
    if (!rc)
        rc = cu_snprintf(line, sizeof line, "%s\n", url);
    if (rc) {
        rc = cu_err_set(e, rc, "listen address '%s' is too long", so.listen);
        goto out_stop_server;
    }
    rc = cu_write_file_atomic(urlfile, line, strlen(line), 0644);
    if (rc) {
        rc = cu_err_set(e, rc, "cannot write %s", urlfile);
        goto out_stop_server;
    }
    cu_info("exchange listening on %s (data %s, lease %llums%s)", url, opts->data_dir,
            (unsigned long long)lease_ms, opts->devnet ? ", devnet" : "");

    sig = serve_until_signal(&st, &sigs);
    cu_info("exchange stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    unlink(urlfile);
    rc = 0;

out_stop_server:
    /* Wake the long-polls first: the server waits for its handlers. The
     * short pause lets their 503s reach the providers before the server
     * closes the connections. */
    ex_state_stop(&st);
    ex_jobs_watch_stop();
    if (validator_started)
        pthread_join(validator, NULL);
    if (srv)
        cu_sleep_ms(100);
    cu_http_server_stop(srv);
out_close_state:
    ex_state_close(&st);
out_restore_signals:
    sigaction(SIGPIPE, &old_pipe, NULL);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (!rc)
        cu_info("exchange stopped");
    return rc;
}
