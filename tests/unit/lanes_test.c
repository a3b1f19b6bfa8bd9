/* lanes_test.c - the exchange's locking since "the report lane" and
 * "nonces" (src/exchange/state.c):
 *
 *   - the replay check runs without mu: the pending queue has nonce_mu
 *     and the table is read through a connection of its own. A nonce
 *     leaves the queue only after the COMMIT that wrote it, so a replay is
 *     refused at every moment of its way from the queue to the table,
 *     including a nonce queued while another transaction sits between
 *     ex_nonces_stage and its COMMIT (it stays for the next commit), and a
 *     commit that fails (it stays queued). A thread's ex_nonces_flush
 *     commits only while its own nonce is still queued;
 *   - many threads using nonces while another commits in a loop and a
 *     third replays what was accepted: nothing refused that is new,
 *     nothing accepted twice, every nonce in the table after a flush;
 *   - the report lane, seen from where each thread blocks while mu is
 *     held: a waiting claim is counted, the report at the lane's head
 *     yields to it only for a bounded time, a second report waits in the
 *     lane; and report checks keep their turn among claims in a loop;
 *   - over real HTTP: providers claiming and reporting in batches at once,
 *     beside a stream of claims, all finish (reports are not starved by
 *     claims), and every replica is leased once, accepted once and paid
 *     exactly once.
 *
 * A watchdog (alarm) ends the process when a lock is never released: a
 * deadlock fails the test instead of hanging make check.
 *
 * test_full_queue_replay_race caught a replay accepted beside its
 * original while the queue was full (fixed: ex_nonce_use looks again after
 * its flush). */
#include "exchange_fixture.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/syscall.h>
#include <time.h>

#include "base/err.h"
#include "crypto/ident.h"
#include "crypto/merkle.h"
#include "exchange/explain.h"
#include "exchange/routes.h"
#include "exchange/state.h"
#include "store/db.h"

#include "base/banned.h"

#define WATCHDOG_S 60       /* per in-process test */
#define WATCHDOG_HTTP_S 200 /* the HTTP test (RUN_MS and the start) */

/* ---- in-process: an ex_state on a temporary directory ------------------------ */

enum helper_op { OP_NONE, OP_USE, OP_FLUSH, OP_COMMIT, OP_QUIT };

struct st_env;

struct helper {
    pthread_t t;
    pthread_mutex_t m;
    pthread_cond_t cv;
    struct st_env *v;
    enum helper_op op;
    bool busy;
    const char *key, *nonce;
    int rc;
};

struct st_env {
    char dir[64];
    char path[CU_PATH_MAX]; /* DIR/state.db */
    struct ex_state st;
    bool open;
    int64_t ts; /* the signed timestamp every nonce here carries */
    struct helper h;
    bool helper_on;
};

static void st_env_open(struct st_env *v)
{
    struct cu_err e = {0};
    int64_t now = cu_now_ms();

    assert_int_equal(cu_crypto_init(), 0);
    assert_int_equal(cu_snprintf(v->dir, sizeof v->dir, "%s", "/tmp/cu_lanes_XXXXXX"), 0);
    assert_non_null(mkdtemp(v->dir));
    assert_int_equal(cu_path_join(v->path, sizeof v->path, v->dir, "state.db"), 0);
    if (ex_state_open(&v->st, v->dir, 20000, true, &e) != 0)
        fail_msg("ex_state_open: %s", e.msg);
    v->open = true;
    v->ts = now - now % 1000;
}

/* One transaction of its own (begin, commit) under mu, as a request
 * that changes state does: it carries every nonce queued. 0 or negative. */
static int commit_one(struct ex_state *st)
{
    struct ex_fail f = {0};
    int rc;

    pthread_mutex_lock(&st->mu);
    rc = ex_txn_begin(st, &f);
    if (rc == 0)
        rc = ex_txn_commit(st, cu_now_ms(), &f);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* Rows of nonces_signed for (ts, key, nonce), read through a connection
 * of the test's own, opened read-only on the database file; -1 when it
 * cannot be asked. */
static int table_count(const struct st_env *v, const char *key, const char *nonce)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int n = -1;

    if (sqlite3_open_v2(v->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto out_close;
    if (sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM nonces_signed WHERE ts_ms = ?1 AND key = ?2 "
                           "AND nonce = ?3",
                           -1, &s, NULL) != SQLITE_OK)
        goto out_close;
    sqlite3_bind_int64(s, 1, v->ts);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, nonce, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int(s, 0);
out_close:
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

/* Whether (key, nonce) is in the pending queue (read under nonce_mu). */
static bool queued(struct ex_state *st, const char *key, const char *nonce)
{
    bool found = false;

    pthread_mutex_lock(&st->nonce_mu);
    for (size_t i = 0; i < st->nonces.n; i++)
        if (strcmp(st->nonces.p[i].key, key) == 0 && strcmp(st->nonces.p[i].nonce, nonce) == 0)
            found = true;
    pthread_mutex_unlock(&st->nonce_mu);
    return found;
}

static size_t queue_len(struct ex_state *st)
{
    size_t n;

    pthread_mutex_lock(&st->nonce_mu);
    n = st->nonces.n;
    pthread_mutex_unlock(&st->nonce_mu);
    return n;
}

static uint64_t commits(struct ex_state *st)
{
    struct cu_db_stats s;

    cu_db_stats(&st->db, &s);
    return s.commits;
}

static int use(struct st_env *v, const char *key, const char *nonce)
{
    struct cu_err e = {0};
    int rc = ex_nonce_use(&v->st, key, nonce, v->ts, &e);

    if (rc == -CU_EAUTH && !strstr(e.msg, "replayed"))
        fail_msg("refused %s/%s, but not as replayed: %s", key, nonce, e.msg);
    return rc;
}

static void *helper_main(void *arg)
{
    struct helper *h = arg;

    pthread_mutex_lock(&h->m);
    for (;;) {
        while (!h->busy)
            pthread_cond_wait(&h->cv, &h->m);
        if (h->op == OP_QUIT)
            break;
        pthread_mutex_unlock(&h->m);
        int rc = h->op == OP_USE     ? use(h->v, h->key, h->nonce)
                 : h->op == OP_FLUSH ? ex_nonces_flush(&h->v->st)
                                     : commit_one(&h->v->st);
        pthread_mutex_lock(&h->m);
        h->rc = rc;
        h->busy = false;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->m);
    return NULL;
}

static void helper_start(struct helper *h, struct st_env *v)
{
    memset(h, 0, sizeof *h);
    h->v = v;
    assert_int_equal(pthread_mutex_init(&h->m, NULL), 0);
    assert_int_equal(pthread_cond_init(&h->cv, NULL), 0);
    assert_int_equal(pthread_create(&h->t, NULL, helper_main, h), 0);
}

#define HELPER_STUCK INT_MIN /* helper_do: the op did not end in HELPER_WAIT_S */
#define HELPER_WAIT_S 10

/* Runs op on the helper thread and returns its result, or HELPER_STUCK
 * when it has not ended after HELPER_WAIT_S (it is then still running;
 * the next call waits for it). The caller may hold mu: an op that needs
 * it (a nonce_use that took mu) is stuck until the caller lets go. */
static int helper_do(struct helper *h, enum helper_op op, const char *key, const char *nonce)
{
    struct timespec until;
    int rc = 0;

    pthread_mutex_lock(&h->m);
    while (h->busy)
        pthread_cond_wait(&h->cv, &h->m);
    h->op = op;
    h->key = key;
    h->nonce = nonce;
    h->busy = true;
    pthread_cond_broadcast(&h->cv);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += HELPER_WAIT_S;
    while (h->busy && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&h->cv, &h->m, &until);
    rc = h->busy ? HELPER_STUCK : h->rc;
    pthread_mutex_unlock(&h->m);
    return rc;
}

static void helper_stop(struct helper *h)
{
    pthread_mutex_lock(&h->m);
    while (h->busy)
        pthread_cond_wait(&h->cv, &h->m);
    h->op = OP_QUIT;
    h->busy = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->m);
    pthread_join(h->t, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->m);
}

/* Each in-process test gets a fresh state and a helper thread, in *state;
 * the teardown undoes whatever a failed test left behind. */
static int env_setup(void **state)
{
    struct st_env *v = calloc(1, sizeof *v);

    *state = v;
    if (!v)
        return -1;
    alarm(WATCHDOG_S);
    st_env_open(v);
    helper_start(&v->h, v);
    v->helper_on = true;
    return 0;
}

static int env_teardown(void **state)
{
    struct st_env *v = *state;

    if (!v)
        return 0;
    if (v->helper_on)
        helper_stop(&v->h);
    if (v->open) {
        sqlite3_commit_hook(v->st.db.h, NULL, NULL);
        ex_state_close(&v->st);
    }
    if (v->dir[0])
        cu_rm_rf(v->dir);
    free(v);
    alarm(0);
    return 0;
}

/* A nonce used by one request and committed by another request's
 * transaction: it leaves the queue, is in the table, and a replay is
 * refused from there; its own thread's flush then owes nothing (no
 * commit). */
static void test_replay_after_other_commit(void **state)
{
    struct st_env *v = *state;
    struct helper *h = &v->h;
    uint64_t c0;

    /* This thread owes nothing from here on (the state's own commits at
     * open were made on it). */
    assert_int_equal(ex_barrier(&v->st), 0);
    assert_int_equal(use(v, "k1", "a"), 0);
    assert_true(queued(&v->st, "k1", "a"));
    assert_int_equal(use(v, "k1", "a"), -CU_EAUTH); /* from the queue */
    assert_int_equal(table_count(v, "k1", "a"), 0);
    /* Same nonce, another key: not a replay. */
    assert_int_equal(use(v, "k2", "a"), 0);

    assert_int_equal(helper_do(h, OP_COMMIT, NULL, NULL), 0); /* another request's commit */
    assert_false(queued(&v->st, "k1", "a"));
    assert_false(queued(&v->st, "k2", "a"));
    assert_int_equal(queue_len(&v->st), 0);
    assert_int_equal(table_count(v, "k1", "a"), 1);
    assert_int_equal(table_count(v, "k2", "a"), 1);
    assert_int_equal(use(v, "k1", "a"), -CU_EAUTH); /* from the table */
    assert_int_equal(use(v, "k2", "a"), -CU_EAUTH);
    assert_int_equal(helper_do(h, OP_USE, "k1", "a"), -CU_EAUTH); /* from any thread */
    assert_int_equal(queue_len(&v->st), 0);

    /* This thread's nonce was carried: its barrier commits nothing, but
     * waits until the commit that carried it is synced (that commit was
     * the helper's, so without the wait an answer could leave before its
     * nonce is on disk). */
    c0 = commits(&v->st);
    {
        struct cu_db_stats ds;
        assert_int_equal(ex_barrier(&v->st), 0);
        cu_db_stats(&v->st.db, &ds);
        assert_true(ds.synced >= c0);
    }
    assert_int_equal(commits(&v->st), c0);
    /* One still queued: the flush commits it. */
    assert_int_equal(use(v, "k1", "b"), 0);
    assert_int_equal(ex_nonces_flush(&v->st), 0);
    assert_true(commits(&v->st) > c0);
    assert_int_equal(table_count(v, "k1", "b"), 1);
    assert_int_equal(queue_len(&v->st), 0);
    assert_int_equal(use(v, "k1", "b"), -CU_EAUTH);
}

/* The moment between ex_nonces_stage and COMMIT, reached through
 * SQLite's commit hook on mu's connection: it runs inside ex_txn_commit
 * after the nonces were staged, while mu is held. */
struct hook_ctx {
    struct st_env *v;
    struct helper *h;
    const char *nonce; /* what the helper uses there */
    int use_rc;
    const char *staged; /* a nonce the commit carries */
    bool in_queue;      /* staged was still queued inside the commit */
    int fail;           /* nonzero: turn the COMMIT into a ROLLBACK */
    int calls;
};

static int commit_hook(void *arg)
{
    struct hook_ctx *c = arg;

    c->calls++;
    c->use_rc = helper_do(c->h, OP_USE, "k", c->nonce);
    c->in_queue = queued(&c->v->st, "k", c->staged);
    return c->fail;
}

/* A nonce queued while a transaction is between stage and COMMIT: the
 * commit does not carry it (it was not staged), it stays queued and
 * refused, its thread's flush writes it; a commit that fails leaves
 * every staged nonce queued (refused) for the next one. */
static void test_replay_between_stage_and_commit(void **state)
{
    struct st_env *v = *state;
    struct helper *h = &v->h;
    struct hook_ctx c;
    uint64_t c0;

    memset(&c, 0, sizeof c);
    c.v = v;
    c.h = h;

    /* "b" is queued; a transaction stages it; "c" comes meanwhile. */
    assert_int_equal(use(v, "k", "b"), 0);
    c.staged = "b";
    c.nonce = "c";
    sqlite3_commit_hook(v->st.db.h, commit_hook, &c);
    assert_int_equal(commit_one(&v->st), 0);
    sqlite3_commit_hook(v->st.db.h, NULL, NULL);
    assert_int_equal(c.calls, 1);
    if (c.use_rc == HELPER_STUCK)
        fail_msg("ex_nonce_use did not return in %d s while mu was held: it waits for mu",
                 HELPER_WAIT_S);
    assert_int_equal(c.use_rc, 0); /* queued without mu */
    assert_true(c.in_queue);       /* "b" stays queued until its COMMIT */
    assert_int_equal(table_count(v, "k", "b"), 1);
    assert_false(queued(&v->st, "k", "b"));
    assert_int_equal(table_count(v, "k", "c"), 0); /* not staged, not written */
    assert_true(queued(&v->st, "k", "c"));
    assert_int_equal(queue_len(&v->st), 1);
    assert_int_equal(use(v, "k", "b"), -CU_EAUTH);
    assert_int_equal(use(v, "k", "c"), -CU_EAUTH);
    assert_int_equal(helper_do(h, OP_USE, "k", "c"), -CU_EAUTH);
    /* The main thread's nonce "b" was carried: nothing to flush. */
    c0 = commits(&v->st);
    assert_int_equal(ex_nonces_flush(&v->st), 0);
    assert_int_equal(commits(&v->st), c0);
    assert_true(queued(&v->st, "k", "c"));
    /* The helper's "c" is still owed: its barrier writes it. */
    assert_int_equal(helper_do(h, OP_FLUSH, NULL, NULL), 0);
    assert_true(commits(&v->st) > c0);
    assert_int_equal(table_count(v, "k", "c"), 1);
    assert_int_equal(queue_len(&v->st), 0);
    assert_int_equal(use(v, "k", "c"), -CU_EAUTH);

    /* Again, and the next commit is another request's transaction. */
    assert_int_equal(use(v, "k", "d"), 0);
    c.staged = "d";
    c.nonce = "e";
    c.calls = 0;
    sqlite3_commit_hook(v->st.db.h, commit_hook, &c);
    assert_int_equal(commit_one(&v->st), 0);
    sqlite3_commit_hook(v->st.db.h, NULL, NULL);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.use_rc, 0);
    assert_true(c.in_queue);
    assert_int_equal(table_count(v, "k", "d"), 1);
    assert_int_equal(table_count(v, "k", "e"), 0);
    assert_true(queued(&v->st, "k", "e"));
    assert_int_equal(commit_one(&v->st), 0);
    assert_int_equal(table_count(v, "k", "e"), 1);
    assert_int_equal(queue_len(&v->st), 0);
    assert_int_equal(use(v, "k", "e"), -CU_EAUTH);
    /* The helper's "e" was carried by that commit: its flush is free. */
    c0 = commits(&v->st);
    assert_int_equal(helper_do(h, OP_FLUSH, NULL, NULL), 0);
    assert_int_equal(commits(&v->st), c0);

    /* A COMMIT that fails (the hook turns it into a ROLLBACK): "f", which
     * was staged, and "g", which came meanwhile, both stay queued and
     * refused; the next commit writes both. (SQLite logs the failed
     * COMMIT as "constraint failed": expected here.) */
    assert_int_equal(use(v, "k", "f"), 0);
    c.staged = "f";
    c.nonce = "g";
    c.calls = 0;
    c.fail = 1;
    sqlite3_commit_hook(v->st.db.h, commit_hook, &c);
    assert_true(commit_one(&v->st) < 0);
    sqlite3_commit_hook(v->st.db.h, NULL, NULL);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.use_rc, 0);
    assert_true(c.in_queue);
    assert_int_equal(table_count(v, "k", "f"), 0);
    assert_int_equal(table_count(v, "k", "g"), 0);
    assert_true(queued(&v->st, "k", "f"));
    assert_true(queued(&v->st, "k", "g"));
    assert_int_equal(use(v, "k", "f"), -CU_EAUTH);
    assert_int_equal(helper_do(h, OP_USE, "k", "g"), -CU_EAUTH);
    /* Neither was written: this thread's flush commits (both), then the
     * helper's has nothing left to do. */
    c0 = commits(&v->st);
    assert_int_equal(ex_nonces_flush(&v->st), 0);
    assert_true(commits(&v->st) > c0);
    assert_int_equal(table_count(v, "k", "f"), 1);
    assert_int_equal(table_count(v, "k", "g"), 1);
    assert_int_equal(queue_len(&v->st), 0);
    c0 = commits(&v->st);
    assert_int_equal(helper_do(h, OP_FLUSH, NULL, NULL), 0);
    assert_int_equal(commits(&v->st), c0);
    assert_int_equal(use(v, "k", "f"), -CU_EAUTH);
    assert_int_equal(use(v, "k", "g"), -CU_EAUTH);
}

/* ---- many threads ---------------------------------------------------------- */

#define USERS 8
#define USES 200

struct crowd {
    struct st_env *v;
    int accepted[USERS];  /* nonces of user u accepted so far (atomic) */
    int stop;             /* the users are done (atomic) */
    int refused, retried; /* a new nonce refused; -CU_EAGAIN retried */
    int replays_accepted; /* a replay that got through */
    int replays;          /* replays tried */
    int commit_errors, other_errors;
};

struct user_arg {
    struct crowd *c;
    int u;
};

static void nonce_name(char *out, size_t n, int u, int i)
{
    (void)cu_snprintf(out, n, "u%d-n%d", u, i);
}

static void *user_main(void *arg)
{
    struct user_arg *a = arg;
    struct crowd *c = a->c;
    char key[16], nonce[32];

    (void)cu_snprintf(key, sizeof key, "key%d", a->u);
    for (int i = 0; i < USES; i++) {
        struct cu_err e = {0};
        int rc;

        nonce_name(nonce, sizeof nonce, a->u, i);
        while ((rc = ex_nonce_use(&c->v->st, key, nonce, c->v->ts, &e)) == -CU_EAGAIN)
            __atomic_add_fetch(&c->retried, 1, __ATOMIC_RELAXED);
        if (rc == -CU_EAUTH)
            __atomic_add_fetch(&c->refused, 1, __ATOMIC_RELAXED);
        else if (rc != 0)
            __atomic_add_fetch(&c->other_errors, 1, __ATOMIC_RELAXED);
        else
            __atomic_store_n(&c->accepted[a->u], i + 1, __ATOMIC_RELEASE);
        /* Every third request has a barrier of its own, as a read would. */
        if (i % 3 == 0 && ex_nonces_flush(&c->v->st) != 0)
            __atomic_add_fetch(&c->other_errors, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *committer_main(void *arg)
{
    struct crowd *c = arg;

    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        if (commit_one(&c->v->st) != 0)
            __atomic_add_fetch(&c->commit_errors, 1, __ATOMIC_RELAXED);
        sched_yield();
    }
    return NULL;
}

/* Replays nonces already accepted while they move from the queue to the
 * table: every one must be refused. */
static void *replayer_main(void *arg)
{
    struct crowd *c = arg;
    char key[16], nonce[32];
    unsigned seed = 7;

    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        int u = (int)(rand_r(&seed) % USERS);
        int n = __atomic_load_n(&c->accepted[u], __ATOMIC_ACQUIRE);
        struct cu_err e = {0};
        int rc;

        if (n == 0)
            continue;
        /* Mostly the newest (most likely still queued), sometimes any. */
        int i = rand_r(&seed) % 2 ? n - 1 : (int)(rand_r(&seed) % (unsigned)n);
        (void)cu_snprintf(key, sizeof key, "key%d", u);
        nonce_name(nonce, sizeof nonce, u, i);
        rc = ex_nonce_use(&c->v->st, key, nonce, c->v->ts, &e);
        c->replays++;
        if (rc == 0)
            c->replays_accepted++;
        else if (rc != -CU_EAUTH && rc != -CU_EAGAIN)
            __atomic_add_fetch(&c->other_errors, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_many_threads(void **state)
{
    struct st_env *v = *state;
    struct crowd c;
    struct user_arg args[USERS];
    pthread_t users[USERS], committer, replayer;
    char key[16], nonce[32];
    sqlite3 *db;
    sqlite3_stmt *s;

    memset(&c, 0, sizeof c);
    c.v = v;
    assert_int_equal(pthread_create(&committer, NULL, committer_main, &c), 0);
    assert_int_equal(pthread_create(&replayer, NULL, replayer_main, &c), 0);
    for (int u = 0; u < USERS; u++) {
        args[u].c = &c;
        args[u].u = u;
        assert_int_equal(pthread_create(&users[u], NULL, user_main, &args[u]), 0);
    }
    for (int u = 0; u < USERS; u++)
        pthread_join(users[u], NULL);
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
    pthread_join(committer, NULL);
    pthread_join(replayer, NULL);

    if (c.refused || c.other_errors || c.commit_errors || c.replays_accepted)
        fail_msg("new nonces refused: %d, errors: %d, failed commits: %d, replays accepted: %d "
                 "of %d",
                 c.refused, c.other_errors, c.commit_errors, c.replays_accepted, c.replays);
    for (int u = 0; u < USERS; u++)
        assert_int_equal(c.accepted[u], USES);
    print_message("# %d replays refused while committing; %d retries on a full queue\n", c.replays,
                  c.retried);

    /* A last commit carries what is left; then the table has each nonce
     * exactly once, and nothing else. */
    assert_int_equal(commit_one(&v->st), 0);
    assert_int_equal(queue_len(&v->st), 0);
    assert_int_equal(sqlite3_open_v2(v->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), count(DISTINCT key || '/' || nonce) "
                                        "FROM nonces_signed WHERE ts_ms = ?1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, v->ts);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), USERS * USES);
    assert_int_equal(sqlite3_column_int(s, 1), USERS * USES);
    sqlite3_finalize(s);
    sqlite3_close(db);
    for (int u = 0; u < USERS; u++) {
        (void)cu_snprintf(key, sizeof key, "key%d", u);
        for (int i = 0; i < USES; i++) {
            nonce_name(nonce, sizeof nonce, u, i);
            assert_int_equal(table_count(v, key, nonce), 1);
            assert_int_equal(use(v, key, nonce), -CU_EAUTH);
        }
    }
    assert_int_equal(queue_len(&v->st), 0);
}

/* ---- a full queue ------------------------------------------------------------ */

struct racer {
    struct st_env *v;
    pid_t tid; /* atomic */
    int rc;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;

    __atomic_store_n(&r->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    r->rc = use(r->v, "k", "X");
    return NULL;
}

/* The thread id a started thread stores at *tid, once it did. */
static pid_t await_tid(const pid_t *tid)
{
    pid_t t;

    while ((t = __atomic_load_n(tid, __ATOMIC_ACQUIRE)) == 0)
        cu_sleep_ms(1);
    return t;
}

static int futex_of(pid_t tid, uintptr_t *addr);
static bool blocks_on(pid_t tid, const void *want, int64_t ms, uintptr_t *last);

/* The same nonce sent twice at once (a replay racing its original) while
 * the queue is full: each request finds it neither queued nor in the
 * table, lets go of nonce_mu to write the full queue (ex_nonces_flush_all,
 * which waits for mu), then queues the nonce. One of them must be refused.
 *
 * It was a bug (state.c ex_nonce_use, and the same before the nonce lane,
 * under mu): after the flush it queued the nonce without looking again, so
 * both were accepted and the nonce queued twice. Now it starts over from
 * the queue scan after the flush (at most twice, then -CU_EAGAIN). */
static void test_full_queue_replay_race(void **state)
{
    struct st_env *v = *state;
    struct racer a = {.v = v}, b = {.v = v};
    pthread_t ta, tb;
    char name[32], why[160] = "";
    uintptr_t last;
    for (int i = 0; i < EX_NONCES_PENDING; i++) {
        (void)cu_snprintf(name, sizeof name, "fill-%d", i);
        assert_int_equal(use(v, "k", name), 0);
    }
    assert_int_equal(queue_len(&v->st), EX_NONCES_PENDING);

    /* Both reach the flush of the full queue while mu is held. */
    pthread_mutex_lock(&v->st.mu);
    assert_int_equal(pthread_create(&ta, NULL, racer_main, &a), 0);
    if (!blocks_on(await_tid(&a.tid), &v->st.mu, 5000, &last))
        (void)cu_snprintf(why, sizeof why, "the first did not wait for mu (futex %#lx)",
                          (unsigned long)last);
    assert_int_equal(pthread_create(&tb, NULL, racer_main, &b), 0);
    if (!why[0] && !blocks_on(await_tid(&b.tid), &v->st.mu, 5000, &last))
        (void)cu_snprintf(why, sizeof why, "the second did not wait for mu (futex %#lx)",
                          (unsigned long)last);
    pthread_mutex_unlock(&v->st.mu);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (why[0])
        fail_msg("%s", why);
    if (a.rc == 0 && b.rc == 0)
        fail_msg("one nonce accepted twice at once (queue full): a replay got through");
    assert_true(a.rc == 0 || b.rc == 0);
    assert_int_equal(a.rc == 0 ? b.rc : a.rc, -CU_EAUTH);
    assert_int_equal(commit_one(&v->st), 0);
    assert_int_equal(table_count(v, "k", "X"), 1);
    assert_int_equal(use(v, "k", "X"), -CU_EAUTH);
}

/* ---- metrics without mu ------------------------------------------------------- */

struct metrics_call {
    struct ex_state *st;
    int rc;
    int done; /* atomic */
};

static void *metrics_main(void *arg)
{
    struct metrics_call *m = arg;
    struct cu_buf out = CU_BUF_INIT(1 << 20);

    m->rc = ex_metrics(m->st, cu_now_ms(), &out);
    if (m->rc == 0 && !strstr(out.data, "cumulus_replicas{state=\"queued\"} 0\n"))
        m->rc = 1;
    cu_buf_release(&out);
    __atomic_store_n(&m->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* GET /metrics counts every replica by state (0.2-0.35 s at a million):
 * it must not hold the state mutex meanwhile, so it answers while
 * another thread holds mu. */
static void test_metrics_without_mu(void **state)
{
    struct st_env *v = *state;
    struct metrics_call m = {.st = &v->st};
    pthread_t t;
    int64_t until;
    bool answered;

    pthread_mutex_lock(&v->st.mu);
    assert_int_equal(pthread_create(&t, NULL, metrics_main, &m), 0);
    until = cu_mono_ms() + 10000;
    while (!__atomic_load_n(&m.done, __ATOMIC_ACQUIRE) && cu_mono_ms() < until)
        cu_sleep_ms(1);
    answered = __atomic_load_n(&m.done, __ATOMIC_ACQUIRE); /* before mu is let go */
    pthread_mutex_unlock(&v->st.mu);
    pthread_join(t, NULL);
    if (!answered)
        fail_msg("ex_metrics did not answer in 10 s while mu was held");
    assert_int_equal(m.rc, 0);
}

/* ---- the report lane, in process -------------------------------------------- */

#define CLAIMERS 6      /* threads claiming without a pause */
#define LANE_REPORTS 40 /* report checks timed among them */
#define LANE_SLOW_MS 3000

struct claim_crowd {
    struct ex_state *st;
    int stop;    /* atomic */
    int started; /* claimers in their loop (atomic) */
    long claims; /* atomic */
    int errors;  /* atomic */
};

/* Claims that fit nothing as fast as they are answered: at almost every
 * moment some claim waits for mu. */
static void *lane_claimer_main(void *arg)
{
    struct claim_crowd *c = arg;
    const struct ex_free fr = {.cores = 1, .memory = 1, .gpus = 0};

    __atomic_add_fetch(&c->started, 1, __ATOMIC_ACQ_REL);
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        struct ex_fail f = {0};
        json_t *ans = NULL;

        if (ex_claim_batch(c->st, "p-claimer", &fr, 0, 8, &ans, &f) != 0 || ans)
            __atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
        json_decref(ans);
        __atomic_add_fetch(&c->claims, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* Reports go through the lane while claims keep coming: each report at
 * the lane's head lets waiting claims go first for at most a few ms, so
 * every report gets its turn at mu; a report that waited for the claims
 * without a bound would wait here until the claims stop. */
static void test_report_lane_not_starved(void **state)
{
    struct st_env *v = *state;
    struct claim_crowd c = {.st = &v->st};
    struct ex_hello hello = {.slots = 1,
                             .cores = 1,
                             .memory = 1,
                             .price_per_cu = 1,
                             .cu_factor_milli = 1000,
                             .version = "test"};
    struct ex_fail f = {0};
    pthread_t t[CLAIMERS];
    int64_t slowest = 0, total = 0;
    const int64_t replicas[4] = {1, 2, 3, 4};
    long claims_before;

    assert_int_equal(ex_provider_hello(&v->st, "p-claimer", &hello, cu_now_ms(), &f), 0);
    for (int i = 0; i < CLAIMERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, lane_claimer_main, &c), 0);
    while (__atomic_load_n(&c.started, __ATOMIC_ACQUIRE) < CLAIMERS)
        sched_yield();
    cu_sleep_ms(20);
    claims_before = __atomic_load_n(&c.claims, __ATOMIC_RELAXED);
    for (int i = 0; i < LANE_REPORTS; i++) {
        uint64_t limits[4];
        bool done[4];
        json_t *outs[4] = {NULL};
        struct ex_fail fails[4];
        int rcs[4];
        int64_t t0 = cu_mono_ms(), took;

        ex_report_check_many(&v->st, "p-reporter", 4, replicas, cu_now_ms(), limits, done, outs,
                             fails, rcs);
        took = cu_mono_ms() - t0;
        total += took;
        if (took > slowest)
            slowest = took;
        for (int k = 0; k < 4; k++) {
            json_decref(outs[k]);
            if (rcs[k] >= 0 || fails[k].status != 404) {
                __atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
                fail_msg("report check of unknown replica %" PRId64 ": rc %d status %d",
                         replicas[k], rcs[k], fails[k].status);
            }
        }
        if (took > LANE_SLOW_MS)
            break;
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < CLAIMERS; i++)
        pthread_join(t[i], NULL);
    print_message("# %d report checks beside %ld claims: slowest %" PRId64 " ms, mean %.1f ms\n",
                  LANE_REPORTS, __atomic_load_n(&c.claims, __ATOMIC_RELAXED) - claims_before,
                  slowest, (double)total / LANE_REPORTS);
    assert_int_equal(c.errors, 0);
    if (slowest > LANE_SLOW_MS)
        fail_msg("a report waited %" PRId64 " ms for mu while claims kept coming (starved)",
                 slowest);
    /* The claims were not shut out either. */
    assert_true(__atomic_load_n(&c.claims, __ATOMIC_RELAXED) > claims_before);
}

/* Where thread tid is blocked: 1 with *addr = the futex word it waits on,
 * 0 when it is not in futex(2), -1 when /proc cannot say. A pthread
 * mutex's futex word is its first field, so a thread blocked in
 * pthread_mutex_lock(&m) waits on &m. */
static int futex_of(pid_t tid, uintptr_t *addr)
{
    char path[64], line[256];
    long nr;
    unsigned long a0;
    FILE *f;
    int n;

    (void)cu_snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fgets(line, sizeof line, f) ? sscanf(line, "%ld 0x%lx", &nr, &a0) : 0;
    fclose(f);
    if (n != 2 || nr != SYS_futex)
        return 0;
    *addr = (uintptr_t)a0;
    return 1;
}

/* Waits up to ms for thread tid to block on the futex word at want. */
static bool blocks_on(pid_t tid, const void *want, int64_t ms, uintptr_t *last)
{
    int64_t until = cu_mono_ms() + ms;

    *last = 0;
    do {
        if (futex_of(tid, last) == 1 && *last == (uintptr_t)want)
            return true;
        cu_sleep_ms(1);
    } while (cu_mono_ms() < until);
    return false;
}

struct lane_call {
    struct ex_state *st;
    bool claim;
    pid_t tid; /* atomic; 0 until the thread runs */
    int rc;
    int rcs[2];
    int status[2];
};

static void *lane_call_main(void *arg)
{
    struct lane_call *l = arg;
    const struct ex_free fr = {.cores = 1, .memory = 1, .gpus = 0};
    const int64_t replicas[2] = {5, 6};
    struct ex_fail f = {0}, fails[2] = {{0}, {0}};
    json_t *ans = NULL, *outs[2] = {NULL, NULL};
    uint64_t limits[2];
    bool done[2];

    __atomic_store_n(&l->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    if (l->claim) {
        l->rc = ex_claim_batch(l->st, "p-claimer", &fr, 0, 8, &ans, &f);
        if (ans)
            l->rc = 1; /* nothing fits it: a lease is wrong */
        json_decref(ans);
        return NULL;
    }
    ex_report_check_many(l->st, "p-reporter", 2, replicas, cu_now_ms(), limits, done, outs, fails,
                         l->rcs);
    for (int k = 0; k < 2; k++) {
        json_decref(outs[k]);
        l->status[k] = fails[k].status;
    }
    return NULL;
}


static unsigned claims_waiting(struct ex_state *st)
{
    unsigned n;

    n = __atomic_load_n(&st->reports.claims_waiting, __ATOMIC_SEQ_CST);
    return n;
}

/* The lane's shape, seen from where each thread blocks while mu is held:
 * a claim waiting for mu is counted; the report at the lane's head lets
 * it go first only for a bounded time, then waits for mu itself with the
 * claim still waiting (no starvation); a second report waits in the lane,
 * not for mu (one report at a time competes for it). Then mu is let go
 * and all three finish. */
static void test_report_lane_shape(void **state)
{
    struct st_env *v = *state;
    struct ex_hello hello = {.slots = 1,
                             .cores = 1,
                             .memory = 1,
                             .price_per_cu = 1,
                             .cu_factor_milli = 1000,
                             .version = "test"};
    struct ex_fail f = {0};
    struct lane_call claim = {.st = &v->st, .claim = true}, r1 = {.st = &v->st},
                     r2 = {.st = &v->st};
    pthread_t tc, t1, t2;
    char why[256] = "";
    uintptr_t last, probe;
    int64_t until;

    assert_int_equal(ex_provider_hello(&v->st, "p-claimer", &hello, cu_now_ms(), &f), 0);
    if (futex_of((pid_t)syscall(SYS_gettid), &probe) < 0)
        fail_msg("cannot read /proc/self/task/N/syscall: this test needs it to see where a "
                 "thread waits");

    pthread_mutex_lock(&v->st.mu);
    assert_int_equal(pthread_create(&tc, NULL, lane_call_main, &claim), 0);
    if (!blocks_on(await_tid(&claim.tid), &v->st.mu, 5000, &last))
        (void)cu_snprintf(why, sizeof why, "the claim is not waiting for mu (futex %#lx)",
                          (unsigned long)last);
    until = cu_mono_ms() + 5000;
    while (!why[0] && claims_waiting(&v->st) != 1 && cu_mono_ms() < until)
        cu_sleep_ms(1);
    if (!why[0] && claims_waiting(&v->st) != 1)
        (void)cu_snprintf(why, sizeof why, "a claim waits for mu, but claims_waiting is %u",
                          claims_waiting(&v->st));

    assert_int_equal(pthread_create(&t1, NULL, lane_call_main, &r1), 0);
    if (!why[0] && !blocks_on(await_tid(&r1.tid), &v->st.mu, 3000, &last))
        (void)cu_snprintf(why, sizeof why,
                          "the report at the lane's head still yields after 3 s while a claim "
                          "waits (futex %#lx, not mu): reports starve",
                          (unsigned long)last);
    if (!why[0] && claims_waiting(&v->st) != 1)
        (void)cu_snprintf(why, sizeof why, "claims_waiting is %u", claims_waiting(&v->st));

    assert_int_equal(pthread_create(&t2, NULL, lane_call_main, &r2), 0);
    if (!why[0] && !blocks_on(await_tid(&r2.tid), &v->st.reports.lane, 3000, &last))
        (void)cu_snprintf(why, sizeof why,
                          "a second report does not wait in the lane (futex %#lx; mu %p, lane "
                          "%p)",
                          (unsigned long)last, (void *)&v->st.mu, (void *)&v->st.reports.lane);

    /* Let go whatever was seen, so the threads end before a failure. */
    pthread_mutex_unlock(&v->st.mu);
    pthread_join(tc, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    if (why[0])
        fail_msg("%s", why);
    assert_int_equal(claim.rc, 0);
    assert_int_equal(claims_waiting(&v->st), 0);
    for (int k = 0; k < 2; k++) {
        assert_true(r1.rcs[k] < 0);
        assert_int_equal(r1.status[k], 404);
        assert_true(r2.rcs[k] < 0);
        assert_int_equal(r2.status[k], 404);
    }
}

/* ---- over HTTP: batched claims and reports from several providers ---------- */

#define PROVIDERS 4
#define TASKS_PER_JOB 50
#define JOBS PROVIDERS
#define TASKS (JOBS * TASKS_PER_JOB)
#define ASK 7       /* price_per_cu of every provider */
#define CPU_MS 1000 /* per report: 1 CU at cu_factor 1000, paid ASK */
#define CLAIM_MAX 8
#define REPORT_MAX 16
#define OUTSTANDING 16 /* leases a provider holds before it waits for its reporter */
#define PRESSURE 2     /* threads that only claim (nothing fits them) */
#define RUN_MS 120000L /* the whole exchange of work must end before this */
#define SLOW_MS 20000L /* no report request may take this long */

static const char *const http_args[] = {"--lease", "10m", "--devnet", NULL};

struct prov {
    struct cu_identity id;
    char key[CU_ID_LEN + 1];
    pthread_mutex_t m;
    pthread_cond_t cv;
    int64_t q[TASKS]; /* leased, not yet reported */
    size_t qn;
    int64_t got[TASKS]; /* every replica leased to it */
    size_t ngot;
    size_t accepted;
    bool claims_done;
    int64_t slowest_report_ms;
    size_t report_requests;
    char err[512];
};

struct market {
    struct exfix x;
    struct cu_identity ida, idq;
    char url[256];
    struct prov p[PROVIDERS];
    int leased;   /* replicas leased, all providers (atomic) */
    int reported; /* replicas accepted (atomic) */
    int stop;     /* pressure threads end (atomic) */
    int64_t deadline;
    size_t pressure_claims;
    char pressure_err[512];
    char empty_hex[CU_HASH_HEX_LEN + 1];
    char report_tail[2048];   /* the fields every report shares, after "{\"replica\":N," */
    struct cu_http_client *a; /* the requester */
    int inited;               /* providers whose m and cv exist */
};

static void prov_fail(struct prov *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prov_fail(struct prov *p, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&p->m);
    if (!p->err[0]) {
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof p->err, fmt, ap);
        va_end(ap);
    }
    p->claims_done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->m);
}

static bool prov_failed(struct prov *p)
{
    bool f;

    pthread_mutex_lock(&p->m);
    f = p->err[0] != '\0';
    pthread_mutex_unlock(&p->m);
    return f;
}

struct prov_arg {
    struct market *mk;
    struct prov *p;
};

/* Claims in batches while work is left, holding at most OUTSTANDING
 * leases unreported. */
static void *claimer_main(void *arg)
{
    struct prov_arg *a = arg;
    struct market *mk = a->mk;
    struct prov *p = a->p;
    struct cu_http_client *c = cu_http_client_new(mk->url, &p->id);
    struct cu_http_result r;
    char why[640];

    cu_http_result_init(&r);
    if (!c) {
        prov_fail(p, "claimer: no client");
        return NULL;
    }
    while (__atomic_load_n(&mk->leased, __ATOMIC_ACQUIRE) < TASKS && !prov_failed(p)) {
        const json_t *leases;

        if (cu_mono_ms() > mk->deadline) {
            prov_fail(p, "claimer: work not done in time (%d of %d leased)",
                      __atomic_load_n(&mk->leased, __ATOMIC_ACQUIRE), TASKS);
            break;
        }
        pthread_mutex_lock(&p->m);
        while (p->qn >= OUTSTANDING && !p->err[0])
            pthread_cond_wait(&p->cv, &p->m);
        pthread_mutex_unlock(&p->m);
        if (cu_http_request(c, "POST", "/v1/claims",
                            "{\"max\":8,\"wait_ms\":200,\"free\":{\"cores\":8,\"memory\":"
                            "4294967296,\"gpus\":0}}",
                            strlen("{\"max\":8,\"wait_ms\":200,\"free\":{\"cores\":8,\"memory\":"
                                   "4294967296,\"gpus\":0}}"),
                            EXFIX_TIMEOUT_MS, &r) != 0) {
            prov_fail(p, "claim: no answer: %s", cu_http_result_describe(&r, why, sizeof why));
            break;
        }
        if (r.status == 204)
            continue;
        if (r.status != 200) {
            prov_fail(p, "claim: %ld %s", r.status, cu_buf_str(&r.body));
            break;
        }
        leases = json_object_get(r.json, "leases");
        if (!json_is_array(leases) || json_array_size(leases) == 0 ||
            json_array_size(leases) > CLAIM_MAX) {
            prov_fail(p, "claim: not 1..%d leases: %s", CLAIM_MAX, cu_buf_str(&r.body));
            break;
        }
        pthread_mutex_lock(&p->m);
        for (size_t i = 0; i < json_array_size(leases); i++) {
            int64_t rid = json_integer_value(json_object_get(json_array_get(leases, i), "replica"));
            if (rid <= 0 || p->ngot >= TASKS)
                break;
            p->q[p->qn++] = rid;
            p->got[p->ngot++] = rid;
            __atomic_add_fetch(&mk->leased, 1, __ATOMIC_ACQ_REL);
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->m);
    }
    pthread_mutex_lock(&p->m);
    p->claims_done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->m);
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

/* {"reports":[{"replica":R,TAIL,...]} of the n replicas at rids. */
static char *reports_body(const struct market *mk, const int64_t *rids, size_t n)
{
    struct cu_buf b = CU_BUF_INIT(8u << 20);

    if (cu_buf_appends(&b, "{\"reports\":[") != 0)
        goto out_fail;
    for (size_t i = 0; i < n; i++)
        if (cu_buf_appendf(&b, "%s{\"replica\":%" PRId64 ",", i ? "," : "", rids[i]) != 0 ||
            cu_buf_appends(&b, mk->report_tail) != 0)
            goto out_fail;
    if (cu_buf_appends(&b, "]}") != 0)
        goto out_fail;
    return cu_buf_detach(&b);
out_fail:
    cu_buf_release(&b);
    return NULL;
}

/* Sends up to REPORT_MAX of what its claimer leased per request, and
 * checks that each is accepted and its task done. */
static void *reporter_main(void *arg)
{
    struct prov_arg *a = arg;
    struct market *mk = a->mk;
    struct prov *p = a->p;
    struct cu_http_client *c = cu_http_client_new(mk->url, &p->id);
    struct cu_http_result r;
    int64_t rids[REPORT_MAX];
    char why[640];

    cu_http_result_init(&r);
    if (!c) {
        prov_fail(p, "reporter: no client");
        return NULL;
    }
    for (;;) {
        size_t n;
        char *body;
        int64_t t0, took;
        const json_t *res;

        pthread_mutex_lock(&p->m);
        while (p->qn == 0 && !p->claims_done)
            pthread_cond_wait(&p->cv, &p->m);
        if (p->err[0] || (p->qn == 0 && p->claims_done)) {
            pthread_mutex_unlock(&p->m);
            break;
        }
        n = p->qn < REPORT_MAX ? p->qn : REPORT_MAX;
        memcpy(rids, p->q, n * sizeof rids[0]);
        memmove(p->q, p->q + n, (p->qn - n) * sizeof p->q[0]);
        p->qn -= n;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->m);

        body = reports_body(mk, rids, n);
        if (!body) {
            prov_fail(p, "reporter: out of memory");
            break;
        }
        t0 = cu_mono_ms();
        if (cu_http_request(c, "POST", "/v1/reports", body, strlen(body), EXFIX_TIMEOUT_MS, &r) !=
            0) {
            free(body);
            prov_fail(p, "report: no answer: %s", cu_http_result_describe(&r, why, sizeof why));
            break;
        }
        free(body);
        took = cu_mono_ms() - t0;
        if (r.status != 200) {
            prov_fail(p, "report: %ld %s", r.status, cu_buf_str(&r.body));
            break;
        }
        res = json_object_get(r.json, "results");
        if (json_array_size(res) != n) {
            prov_fail(p, "report: %zu results for %zu reports", json_array_size(res), n);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            const json_t *o = json_array_get(res, i);
            if (json_integer_value(json_object_get(o, "replica")) != rids[i] ||
                strcmp(exfix_str(o, "state"), "accepted") != 0 ||
                strcmp(exfix_str(o, "task_state"), "done") != 0) {
                char *s = json_dumps(o, JSON_COMPACT);
                prov_fail(p, "report of %" PRId64 ": %s", rids[i], s ? s : "?");
                free(s);
                goto out;
            }
        }
        pthread_mutex_lock(&p->m);
        p->accepted += n;
        p->report_requests++;
        if (took > p->slowest_report_ms)
            p->slowest_report_ms = took;
        pthread_mutex_unlock(&p->m);
        __atomic_add_fetch(&mk->reported, (int)n, __ATOMIC_ACQ_REL);
    }
out:
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

/* A provider whose free resources fit no task: its claims only take
 * their turn at mu (the claims a report at the lane's head lets go
 * first), as fast as they are answered. */
static void *pressure_main(void *arg)
{
    struct market *mk = arg;
    struct cu_http_client *c = cu_http_client_new(mk->url, &mk->idq);
    struct cu_http_result r;
    static const char body[] = "{\"max\":8,\"wait_ms\":0,\"free\":{\"cores\":8,\"memory\":1024,"
                               "\"gpus\":0}}";
    char why[640];
    size_t n = 0;

    cu_http_result_init(&r);
    while (c && !__atomic_load_n(&mk->stop, __ATOMIC_ACQUIRE)) {
        if (cu_http_request(c, "POST", "/v1/claims", body, sizeof body - 1, EXFIX_TIMEOUT_MS, &r) !=
                0 ||
            r.status != 204) {
            (void)cu_snprintf(
                mk->pressure_err, sizeof mk->pressure_err, "pressure claim: %ld %s", r.status,
                r.status ? cu_buf_str(&r.body) : cu_http_result_describe(&r, why, sizeof why));
            break;
        }
        n++;
    }
    __atomic_add_fetch(&mk->pressure_claims, n, __ATOMIC_RELAXED);
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

/* The fields of every report: ok, one output "r.txt" = "ok\n" carried
 * inline, empty stdout and stderr, CPU_MS of CPU. */
static void report_tail_make(struct market *mk)
{
    struct cu_merkle_leaf leaf = {.name = "r.txt"};
    struct cu_hash root, h;
    char hex[CU_HASH_HEX_LEN + 1], root_hex[CU_HASH_HEX_LEN + 1], b64[16];
    json_t *j;
    char *s;

    cu_hash_mem("", 0, &h);
    cu_hash_to_hex(&h, mk->empty_hex);
    cu_hash_mem("ok\n", 3, &leaf.hash);
    cu_hash_to_hex(&leaf.hash, hex);
    assert_int_equal(cu_merkle_root(&leaf, 1, &root), 0);
    cu_hash_to_hex(&root, root_hex);
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)"ok\n", 3,
                      sodium_base64_VARIANT_ORIGINAL);
    j = json_pack("{s:s,s:i,s:n,s:i,s:i,s:[{s:s,s:s,s:i}],s:s,s:{s:s,s:i},s:{s:s,s:i},s:{s:s}}",
                  "status", "ok", "exit_code", 0, "reason", "cpu_ms", CPU_MS, "wall_ms", CPU_MS,
                  "outputs", "name", "r.txt", "hash", hex, "size", 3, "merkle_root", root_hex,
                  "stdout", "hash", mk->empty_hex, "size", 0, "stderr", "hash", mk->empty_hex,
                  "size", 0, "blobs", hex, b64);
    assert_non_null(j);
    s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    /* Drop the leading '{': the replica id goes first. */
    assert_int_equal(cu_snprintf(mk->report_tail, sizeof mk->report_tail, "%s", s + 1), 0);
    free(s);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static struct prov *prov_of(struct market *mk, const char *key)
{
    for (int i = 0; i < PROVIDERS; i++)
        if (strcmp(mk->p[i].key, key) == 0)
            return &mk->p[i];
    return NULL;
}

static int http_setup(void **state)
{
    struct market *mk = calloc(1, sizeof *mk);

    *state = mk;
    alarm(WATCHDOG_HTTP_S);
    return mk && exfix_init(&mk->x, "/tmp/cu_lanes_http_XXXXXX") == 0 ? 0 : -1;
}

static int http_teardown(void **state)
{
    struct market *mk = *state;

    if (!mk)
        return 0;
    cu_http_client_free(mk->a);
    for (int i = 0; i < mk->inited; i++) {
        pthread_cond_destroy(&mk->p[i].cv);
        pthread_mutex_destroy(&mk->p[i].m);
    }
    exfix_cleanup(&mk->x);
    free(mk);
    alarm(0);
    return 0;
}

/* GET /v1/market after every replica was paid: the newest trades first,
 * each at the providers' ask for one CU; and the query behind it reads
 * index replicas_trades (a scan of every replica held the state mutex
 * ~130 ms at 1,000,000 replicas). */
static void market_trades(struct market *mk)
{
    struct cu_http_result r;
    const json_t *trades, *t;
    char path[CU_PATH_MAX];
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char sql[512];
    json_int_t last = INT64_MAX;
    size_t i;
    bool indexed = false;

    cu_http_result_init(&r);
    call(mk->a, "GET", "/v1/market", NULL, &r);
    expect_status(&r, 200, NULL, "market");
    trades = json_object_get(r.json, "recent_trades");
    assert_int_equal(json_array_size(trades), 20); /* MARKET_TRADES_SHOWN of 200 */
    json_array_foreach(trades, i, t) {
        json_int_t when = json_integer_value(json_object_get(t, "time_ms"));
        assert_true(when > 0 && when <= last);
        last = when;
        assert_int_equal(json_integer_value(json_object_get(t, "price_per_cu")), ASK);
        assert_int_equal(json_integer_value(json_object_get(t, "amount")), ASK);
    }
    cu_http_result_release(&r);

    assert_int_equal(cu_path_join(path, sizeof path, mk->x.data, "state.db"), 0);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(cu_snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", ex_market_trades_sql),
                     0);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(s, 3);
        if (d && strstr(d, "replicas_trades"))
            indexed = true;
        if (d && strstr(d, "TEMP B-TREE"))
            fail_msg("the market's trades are sorted, not read from the index: %s", d);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_true(indexed);
}

static void test_http_claims_and_reports(void **state)
{
    struct market *mk = *state;
    struct cu_http_client *a, *c;
    struct prov_arg pa[PROVIDERS];
    pthread_t claimers[PROVIDERS], reporters[PROVIDERS], pressure[PRESSURE];
    char jobs[JOBS][64], body[1024], ref[33], path[128];
    int64_t all[TASKS];
    size_t nall = 0, paid_replicas[PROVIDERS] = {0};
    int64_t t0;
    json_t *out;

    assert_int_equal(cu_identity_generate(&mk->ida), 0);
    assert_int_equal(cu_identity_generate(&mk->idq), 0);
    assert_int_equal(exfix_start(&mk->x, "data", http_args, 60, false), 0);
    assert_int_equal(cu_snprintf(mk->url, sizeof mk->url, "%s", mk->x.url), 0);
    report_tail_make(mk);

    a = mk->a = cu_http_client_new(mk->url, &mk->ida);
    assert_non_null(a);
    exfix_post(a, "/v1/faucet", "{\"amount\":100000000}", 200, NULL, "faucet", NULL, NULL);
    for (int i = 0; i < PROVIDERS; i++) {
        struct prov *p = &mk->p[i];
        assert_int_equal(cu_identity_generate(&p->id), 0);
        assert_int_equal(cu_snprintf(p->key, sizeof p->key, "%s", p->id.id), 0);
        assert_int_equal(pthread_mutex_init(&p->m, NULL), 0);
        assert_int_equal(pthread_cond_init(&p->cv, NULL), 0);
        mk->inited++;
        c = cu_http_client_new(mk->url, &p->id);
        assert_non_null(c);
        exfix_post(c, "/v1/providers/hello",
                   "{\"slots\":8,\"cores\":8,\"memory\":4294967296,\"gpus\":0,\"price_per_cu\":7}",
                   200, NULL, "hello", NULL, NULL);
        cu_http_client_free(c);
    }
    c = cu_http_client_new(mk->url, &mk->idq);
    assert_non_null(c);
    exfix_post(c, "/v1/providers/hello",
               "{\"slots\":8,\"cores\":8,\"memory\":4294967296,\"gpus\":0,\"price_per_cu\":7}", 200,
               NULL, "hello (pressure)", NULL, NULL);
    cu_http_client_free(c);
    for (int j = 0; j < JOBS; j++) {
        cu_random_hex(ref, 16);
        assert_int_equal(cu_snprintf(body, sizeof body,
                                     "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],"
                                     "\"image\":\"host\",\"inputs\":[],\"name\":\"lanes-%d\","
                                     "\"outputs\":[\"*\"],\"price\":{\"max_per_cu\":10},"
                                     "\"resources\":{\"cores\":1,\"gpus\":0,\"memory\":67108864,"
                                     "\"output\":1048576,\"time_ms\":10000},"
                                     "\"tasks\":{\"count\":%d}}}",
                                     ref, j, TASKS_PER_JOB),
                         0);
        out = NULL;
        exfix_post(a, "/v1/jobs", body, 201, NULL, "submit", &out, NULL);
        assert_int_equal(cu_snprintf(jobs[j], sizeof jobs[j], "%s", exfix_str(out, "id")), 0);
        json_decref(out);
    }

    t0 = cu_mono_ms();
    mk->deadline = t0 + RUN_MS;
    for (int i = 0; i < PRESSURE; i++)
        assert_int_equal(pthread_create(&pressure[i], NULL, pressure_main, mk), 0);
    for (int i = 0; i < PROVIDERS; i++) {
        pa[i].mk = mk;
        pa[i].p = &mk->p[i];
        assert_int_equal(pthread_create(&reporters[i], NULL, reporter_main, &pa[i]), 0);
        assert_int_equal(pthread_create(&claimers[i], NULL, claimer_main, &pa[i]), 0);
    }
    for (int i = 0; i < PROVIDERS; i++) {
        pthread_join(claimers[i], NULL);
        pthread_join(reporters[i], NULL);
    }
    __atomic_store_n(&mk->stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < PRESSURE; i++)
        pthread_join(pressure[i], NULL);

    for (int i = 0; i < PROVIDERS; i++) {
        struct prov *p = &mk->p[i];
        if (p->err[0]) {
            exfix_print_log(&mk->x);
            fail_msg("provider %d: %s", i, p->err);
        }
        print_message("# provider %d: %zu leased, %zu accepted in %zu requests, slowest %" PRId64
                      " ms\n",
                      i, p->ngot, p->accepted, p->report_requests, p->slowest_report_ms);
        if (p->slowest_report_ms > SLOW_MS)
            fail_msg("provider %d: a report waited %" PRId64 " ms (starved by claims?)", i,
                     p->slowest_report_ms);
        assert_int_equal(p->accepted, p->ngot);
        memcpy(all + nall, p->got, p->ngot * sizeof all[0]);
        nall += p->ngot;
    }
    if (mk->pressure_err[0])
        fail_msg("%s", mk->pressure_err);
    print_message("# %d replicas in %" PRId64 " ms beside %zu claims that fit nothing\n", TASKS,
                  cu_mono_ms() - t0, mk->pressure_claims);
    /* Every replica leased once, to one provider. */
    assert_int_equal(nall, TASKS);
    qsort(all, nall, sizeof all[0], cmp_i64);
    for (size_t i = 1; i < nall; i++)
        if (all[i] == all[i - 1])
            fail_msg("replica %" PRId64 " leased twice", all[i]);
    assert_int_equal(__atomic_load_n(&mk->reported, __ATOMIC_ACQUIRE), TASKS);

    /* Every task done by its one replica, accepted and paid once, to the
     * provider that leased it; every job done and its bill adding up. */
    for (int j = 0; j < JOBS; j++) {
        struct cu_http_result r;
        const json_t *tasks, *paid;
        size_t k;
        json_t *t;

        assert_int_equal(cu_snprintf(path, sizeof path, "/v1/jobs/%s", jobs[j]), 0);
        cu_http_result_init(&r);
        call(a, "GET", path, NULL, &r);
        expect_status(&r, 200, NULL, path);
        assert_string_equal(exfix_str(r.json, "state"), "done");
        tasks = json_object_get(r.json, "tasks");
        assert_int_equal(json_array_size(tasks), TASKS_PER_JOB);
        json_array_foreach(tasks, k, t)
        {
            const json_t *reps = json_object_get(t, "replicas"), *rep = json_array_get(reps, 0);
            struct prov *p = prov_of(mk, exfix_str(rep, "provider"));
            int64_t rid = json_integer_value(json_object_get(rep, "id"));
            bool mine = false;

            assert_string_equal(exfix_str(t, "state"), "done");
            assert_int_equal(json_integer_value(json_object_get(t, "attempts")), 1);
            assert_int_equal(json_array_size(reps), 1);
            assert_string_equal(exfix_str(rep, "state"), "accepted");
            assert_int_equal(json_integer_value(json_object_get(rep, "paid")), ASK);
            assert_non_null(p);
            for (size_t g = 0; g < p->ngot && !mine; g++)
                mine = p->got[g] == rid;
            if (!mine)
                fail_msg("replica %" PRId64 " accepted for a provider that did not lease it", rid);
        }
        paid = json_object_get(json_object_get(r.json, "bill"), "paid");
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(r.json, "bill"), "paid_total")),
            TASKS_PER_JOB * ASK);
        json_array_foreach(paid, k, t)
        {
            struct prov *p = prov_of(mk, exfix_str(t, "provider"));
            json_int_t nrep = json_integer_value(json_object_get(t, "replicas"));

            assert_non_null(p);
            assert_int_equal(json_integer_value(json_object_get(t, "amount")), nrep * ASK);
            paid_replicas[p - mk->p] += (size_t)nrep;
        }
        cu_http_result_release(&r);
    }

    /* Each provider's wallet holds what it was paid, once; a report sent
     * again is answered as before and pays nothing more. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < PROVIDERS; i++) {
            struct prov *p = &mk->p[i];
            struct cu_http_result r;

            assert_int_equal(paid_replicas[i], p->ngot);
            c = cu_http_client_new(mk->url, &p->id);
            assert_non_null(c);
            if (round == 1 && p->ngot > 0) {
                size_t n = p->ngot < REPORT_MAX ? p->ngot : REPORT_MAX;
                char *again = reports_body(mk, p->got, n);
                json_t *res;

                assert_non_null(again);
                out = NULL;
                exfix_post(c, "/v1/reports", again, 200, NULL, "reports again", &out, NULL);
                free(again);
                res = json_object_get(out, "results");
                assert_int_equal(json_array_size(res), n);
                for (size_t k = 0; k < n; k++)
                    assert_string_equal(exfix_str(json_array_get(res, k), "state"), "accepted");
                json_decref(out);
            }
            cu_http_result_init(&r);
            call(c, "GET", "/v1/wallet", NULL, &r);
            expect_status(&r, 200, NULL, "wallet");
            assert_int_equal(json_integer_value(json_object_get(r.json, "balance")),
                             (json_int_t)(p->ngot * ASK));
            cu_http_result_release(&r);
            cu_http_client_free(c);
        }
    }
    market_trades(mk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_after_other_commit, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_replay_between_stage_and_commit, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_many_threads, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_without_mu, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_report_lane_not_starved, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_report_lane_shape, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_http_claims_and_reports, http_setup, http_teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_replay_race, env_setup, env_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
