/* group_commit_test.c - group commit (store/db.h) and its use by the
 * exchange:
 *
 *   - cu_db alone: a commit is owed until the barrier, the barrier syncs
 *     once and then owes nothing; threads committing and waiting at once
 *     all see their commits synced, with no more fdatasync calls than
 *     commits; the checkpoint thread runs once the WAL is large, and the
 *     database reopened without group commit holds every row and passes
 *     integrity_check;
 *   - the real exchange: threads with their own identities call the
 *     devnet faucet as fast as they can, the exchange is killed with
 *     SIGKILL in the middle, restarted, and every acknowledged mint is in
 *     the balance (at most one unanswered request per thread more), with a
 *     ledger that still verifies.
 *
 * The exchange is build/cumulus (CUMULUS_BIN overrides), as in
 * money_exchange_test.c. */
#include "exchange_fixture.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "crypto/ident.h"
#include "store/db.h"

#include "base/banned.h"

#define DB_THREADS 8
#define DB_ROWS 60           /* per thread */
#define DB_BLOB (64 * 1024)  /* bytes per row: 8 x 60 x 64 KiB > CU_DB_CKPT_PAGES pages */
#define FAUCET_THREADS 8
#define FAUCET_RUN_MS 1500   /* faucet calls before the kill */

static const struct cu_migration test_schema[] = {
    {1, "CREATE TABLE t (id INTEGER PRIMARY KEY, who INTEGER NOT NULL, data BLOB);"},
};

/* ---- cu_db --------------------------------------------------------------------- */

struct dbenv {
    char dir[CU_PATH_MAX];
    char path[CU_PATH_MAX];
    struct cu_db db;
    pthread_mutex_t mu; /* the caller's lock over the connection */
};

static int db_setup(struct dbenv *d)
{
    struct cu_err e = {0};

    memset(d, 0, sizeof *d);
    if (cu_snprintf(d->dir, sizeof d->dir, "%s", "/tmp/cu_gcommit_XXXXXX") || !mkdtemp(d->dir))
        return -1;
    if (cu_path_join(d->path, sizeof d->path, d->dir, "t.db"))
        return -1;
    if (cu_db_open(&d->db, d->path, test_schema, 1, &e) != 0) {
        fprintf(stderr, "# open: %s\n", e.msg);
        return -1;
    }
    if (cu_db_group_start(&d->db, &e) != 0) {
        fprintf(stderr, "# group start: %s\n", e.msg);
        return -1;
    }
    pthread_mutex_init(&d->mu, NULL);
    return 0;
}

static void db_teardown(struct dbenv *d)
{
    cu_db_close(&d->db);
    pthread_mutex_destroy(&d->mu);
    if (d->dir[0])
        cu_rm_rf(d->dir);
}

/* Inserts a row under d->mu; *seq (may be NULL) gets its commit number. */
static int insert_row(struct dbenv *d, int who, const void *blob, size_t n, uint64_t *seq)
{
    sqlite3_stmt *s;
    struct cu_err e = {0};
    struct cu_db_stats st;
    int rc;

    pthread_mutex_lock(&d->mu);
    rc = cu_db_cached(&d->db, "INSERT INTO t (who, data) VALUES (?1, ?2)", &s, &e);
    if (!rc) {
        sqlite3_bind_int(s, 1, who);
        sqlite3_bind_blob(s, 2, blob, (int)n, SQLITE_STATIC);
        rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -CU_EDB;
        cu_db_cached_done(&d->db, s);
    }
    cu_db_stats(&d->db, &st); /* no other commit can come between */
    if (seq)
        *seq = st.commits;
    pthread_mutex_unlock(&d->mu);
    return rc;
}

static void test_barrier_owes_then_syncs(void **state)
{
    struct dbenv d;
    struct cu_db_stats st;

    (void)state;
    assert_int_equal(db_setup(&d), 0);
    assert_int_equal(cu_db_barrier(&d.db), 0); /* nothing owed yet */
    cu_db_stats(&d.db, &st);
    assert_int_equal(st.syncs, 0);
    assert_int_equal(insert_row(&d, 0, "x", 1, NULL), 0);
    cu_db_stats(&d.db, &st);
    assert_int_equal(st.commits, 1);
    assert_int_equal(st.synced, 0); /* committed, not yet durable */
    assert_int_equal(cu_db_barrier(&d.db), 0);
    cu_db_stats(&d.db, &st);
    assert_int_equal(st.syncs, 1);
    assert_int_equal(st.synced, 1);
    assert_int_equal(cu_db_barrier(&d.db), 0); /* paid: no second sync */
    cu_db_stats(&d.db, &st);
    assert_int_equal(st.syncs, 1);
    db_teardown(&d);
}

/* cu_db_expect: a commit announced before the barrier's leader syncs is
 * covered by that one sync, even when it comes well after the barrier
 * started; one that never comes costs the leader its announced wait,
 * once. */
struct late {
    struct dbenv *d;
    int64_t delay_ms;
    int rc;
};

static void *late_committer(void *arg)
{
    struct late *l = arg;

    cu_sleep_ms(l->delay_ms);
    l->rc = insert_row(l->d, 1, "y", 1, NULL);
    cu_db_expect_done(&l->d->db);
    return NULL;
}

static void test_expected_commit_shares_sync(void **state)
{
    struct dbenv d;
    struct cu_db_stats st;
    struct late l;
    pthread_t th;
    int64_t t0, waited;
    int rc;

    (void)state;
    assert_int_equal(db_setup(&d), 0);
    assert_int_equal(insert_row(&d, 0, "x", 1, NULL), 0);
    /* Announced with a long wait, so that a slow machine cannot make the
     * late commit miss it. */
    cu_db_expect(&d.db, 1, 20 * 1000 * 1000);
    l = (struct late){.d = &d, .delay_ms = 100};
    t0 = cu_mono_ms();
    assert_int_equal(pthread_create(&th, NULL, late_committer, &l), 0);
    rc = cu_db_barrier(&d.db);
    waited = cu_mono_ms() - t0;
    cu_db_stats(&d.db, &st);
    pthread_join(th, NULL); /* before any assert can leave this frame */
    assert_int_equal(rc, 0);
    assert_int_equal(l.rc, 0);
    assert_true(waited >= 90); /* it waited for the late commit */
    assert_int_equal(st.commits, 2);
    assert_int_equal(st.synced, 2); /* and its sync covered it */
    assert_int_equal(st.syncs, 1);
    assert_int_equal(st.expect_timeouts, 0);

    /* Announced and never done: the leader waits once, then syncs. */
    assert_int_equal(insert_row(&d, 0, "z", 1, NULL), 0);
    cu_db_expect(&d.db, 2, 50 * 1000);
    t0 = cu_mono_ms();
    assert_int_equal(cu_db_barrier(&d.db), 0);
    assert_true(cu_mono_ms() - t0 >= 40);
    cu_db_stats(&d.db, &st);
    assert_int_equal(st.synced, 3);
    assert_int_equal(st.syncs, 2);
    assert_int_equal(st.expect_timeouts, 1);
    /* What was forgotten is not waited for again, and a late done is
     * harmless. */
    cu_db_expect_done(&d.db);
    assert_int_equal(insert_row(&d, 0, "w", 1, NULL), 0);
    assert_int_equal(cu_db_barrier(&d.db), 0);
    cu_db_stats(&d.db, &st);
    assert_int_equal(st.synced, 4);
    assert_int_equal(st.expect_timeouts, 1);
    db_teardown(&d);
}

struct worker {
    struct dbenv *d;
    int who;
    int failures; /* inserts or barriers that failed, or a barrier that
                   * returned before the thread's commits were synced */
};

static void *db_worker(void *arg)
{
    struct worker *w = arg;
    unsigned char *blob = calloc(1, DB_BLOB);

    if (!blob) {
        w->failures++;
        return NULL;
    }
    for (int i = 0; i < DB_ROWS; i++) {
        struct cu_db_stats after;
        uint64_t seq = 0;
        blob[0] = (unsigned char)w->who;
        blob[1] = (unsigned char)i;
        if (insert_row(w->d, w->who, blob, DB_BLOB, &seq) != 0) {
            w->failures++;
            continue;
        }
        if (cu_db_barrier(&w->d->db) != 0)
            w->failures++;
        cu_db_stats(&w->d->db, &after);
        if (after.synced < seq)
            w->failures++;
    }
    free(blob);
    return NULL;
}

static void test_concurrent_writers_share_syncs(void **state)
{
    struct dbenv d;
    struct worker w[DB_THREADS];
    pthread_t th[DB_THREADS];
    struct cu_db_stats st;
    struct cu_err e = {0};
    sqlite3_stmt *s;
    int64_t deadline;

    (void)state;
    assert_int_equal(db_setup(&d), 0);
    for (int i = 0; i < DB_THREADS; i++) {
        w[i] = (struct worker){.d = &d, .who = i};
        assert_int_equal(pthread_create(&th[i], NULL, db_worker, &w[i]), 0);
    }
    for (int i = 0; i < DB_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    cu_db_stats(&d.db, &st);
    assert_int_equal(st.commits, DB_THREADS * DB_ROWS);
    assert_int_equal(st.synced, st.commits); /* every commit waited for */
    assert_true(st.syncs >= 1 && st.syncs <= st.commits);
    /* The WAL passed CU_DB_CKPT_PAGES: the checkpoint thread runs (soon). */
    deadline = cu_mono_ms() + 30000;
    while (st.checkpoints == 0 && cu_mono_ms() < deadline) {
        cu_sleep_ms(50);
        cu_db_stats(&d.db, &st);
    }
    assert_true(st.checkpoints >= 1);
    cu_db_close(&d.db);

    /* Reopened the ordinary way: every row, and a sound file. */
    assert_int_equal(cu_db_open(&d.db, d.path, test_schema, 1, &e), 0);
    assert_int_equal(cu_db_prepare(&d.db, "SELECT COUNT(*), COUNT(DISTINCT who) FROM t", &s, &e),
                     0);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), DB_THREADS * DB_ROWS);
    assert_int_equal(sqlite3_column_int(s, 1), DB_THREADS);
    sqlite3_finalize(s);
    assert_int_equal(cu_db_prepare(&d.db, "PRAGMA integrity_check", &s, &e), 0);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    db_teardown(&d);
}

/* Under a steady stream of commits (one writer that never pauses) the WAL
 * still starts again at its beginning: the checkpoint thread takes most
 * frames and a commit takes the rest (catch_up in db.c). Before, every
 * PASSIVE checkpoint ended behind the frames committed meanwhile, so the
 * WAL never restarted and grew by every commit (~100 MB a second in
 * bench/dispatch). The writer commits at least 12 x CU_DB_CKPT_PAGES
 * frames and until the WAL restarted twice (on a loaded machine the
 * thread's passes are slow, so that may take longer; at most 48 x); the
 * WAL file must end well below what was committed. Sizes, not times. */
static void test_wal_restarts_under_steady_writes(void **state)
{
    struct dbenv d;
    struct cu_db_stats st;
    struct stat sb;
    char wal[CU_PATH_MAX];
    unsigned char *blob = calloc(1, 3 * 4096); /* about 4 frames a commit */
    const uint64_t goal = 12 * (uint64_t)CU_DB_CKPT_PAGES;
    uint64_t frames = 0, last = 0;

    (void)state;
    assert_non_null(blob);
    assert_int_equal(db_setup(&d), 0);
    do {
        blob[0]++;
        assert_int_equal(insert_row(&d, 1, blob, 3 * 4096, NULL), 0);
        cu_db_stats(&d.db, &st);
        frames += st.wal_frames > last ? st.wal_frames - last : st.wal_frames;
        last = st.wal_frames;
    } while ((frames < goal || st.restarts < 2) && frames < 4 * goal);
    assert_int_equal(cu_db_barrier(&d.db), 0);
    print_message("# %llu commits, %llu frames, %llu checkpoints by the thread, %llu by a "
                  "commit, %llu restarts\n",
                  (unsigned long long)st.commits, (unsigned long long)frames,
                  (unsigned long long)st.checkpoints, (unsigned long long)st.catchups,
                  (unsigned long long)st.restarts);
    assert_true(st.checkpoints >= 1);
    assert_true(st.restarts >= 2);
    assert_int_equal(cu_snprintf(wal, sizeof wal, "%s-wal", d.path), 0);
    assert_int_equal(stat(wal, &sb), 0);
    /* A restarted WAL is overwritten from its start: the file holds the
     * frames of one stretch between restarts, not everything committed
     * (without restarts it would hold all of goal). */
    assert_true((uint64_t)sb.st_size < frames * 3 / 4 * 4120);
    free(blob);
    db_teardown(&d);
}

/* A reader on another connection that holds an old snapshot keeps any
 * checkpoint short of the WAL's end. A commit then finishes at most one
 * checkpoint per pass of the thread, not one per commit (each costs two
 * fsyncs), and the thread is not woken again per commit either. */
static void test_pinned_reader_costs_no_checkpoint_per_commit(void **state)
{
    struct dbenv d;
    struct cu_db_stats st;
    sqlite3 *reader;
    unsigned char *blob = calloc(1, 3 * 4096);
    const uint64_t goal = 3 * (uint64_t)CU_DB_CKPT_PAGES;
    uint64_t frames = 0, last = 0;

    (void)state;
    assert_non_null(blob);
    assert_int_equal(db_setup(&d), 0);
    assert_int_equal(insert_row(&d, 1, blob, 16, NULL), 0);
    assert_int_equal(sqlite3_open_v2(d.path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(reader, "BEGIN; SELECT COUNT(*) FROM t;", NULL, NULL, NULL),
                     SQLITE_OK);
    while (frames < goal) {
        blob[0]++;
        assert_int_equal(insert_row(&d, 1, blob, 3 * 4096, NULL), 0);
        cu_db_stats(&d.db, &st);
        frames += st.wal_frames > last ? st.wal_frames - last : st.wal_frames;
        last = st.wal_frames;
    }
    assert_int_equal(cu_db_barrier(&d.db), 0);
    print_message("# pinned: %llu commits, %llu checkpoints by the thread, %llu by a commit, "
                  "%llu restarts\n",
                  (unsigned long long)st.commits, (unsigned long long)st.checkpoints,
                  (unsigned long long)st.catchups, (unsigned long long)st.restarts);
    assert_int_equal(st.restarts, 0); /* the reader's frames must stay */
    /* Per CU_DB_CKPT_PAGES pages at most one pass of the thread and one
     * catch-up, with one pass of slack (retrying on every commit made
     * hundreds here). */
    assert_true(st.checkpoints + st.catchups <= 2 * (goal / CU_DB_CKPT_PAGES + 1));
    sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(reader);
    free(blob);
    db_teardown(&d);
}

/* ---- the exchange, killed -9 under concurrent acknowledged writes ---------------- */

struct minter {
    const char *url;
    struct cu_identity id;
    volatile int *stop;
    int64_t acked;      /* faucet calls answered 200 */
    int64_t last_bal;   /* the balance the last 200 reported */
    int64_t bad;        /* answers that were neither 200 nor a failure to connect */
};

static void *minter_main(void *arg)
{
    struct minter *m = arg;
    struct cu_http_client *c = cu_http_client_new(m->url, &m->id);
    struct cu_http_result r;

    if (!c) {
        m->bad++;
        return NULL;
    }
    cu_http_result_init(&r);
    while (!*m->stop) {
        if (cu_http_request(c, "POST", "/v1/faucet", "{\"amount\":1}", 12, 10000, &r) != 0)
            break; /* the exchange is gone */
        if (r.status == 200 && r.json) {
            m->acked++;
            m->last_bal = (int64_t)json_integer_value(json_object_get(r.json, "balance"));
        } else if (r.status != 0) {
            m->bad++;
        }
        cu_http_result_release(&r);
        cu_http_result_init(&r);
    }
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return NULL;
}

static int64_t balance_of(const char *url, const struct cu_identity *id)
{
    struct cu_http_client *c = cu_http_client_new(url, id);
    struct cu_http_result r;
    int64_t bal = -1;

    assert_non_null(c);
    cu_http_result_init(&r);
    call(c, "GET", "/v1/wallet", NULL, &r);
    expect_status(&r, 200, NULL, "wallet");
    bal = (int64_t)json_integer_value(json_object_get(r.json, "balance"));
    cu_http_result_release(&r);
    cu_http_client_free(c);
    return bal;
}

static void test_exchange_kill9_keeps_acknowledged(void **state)
{
    static const char *const devnet[] = {"--devnet", NULL};
    struct minter m[FAUCET_THREADS];
    pthread_t th[FAUCET_THREADS];
    volatile int stop = 0;
    struct exfix x;
    int64_t total = 0;

    (void)state;
    assert_int_equal(exfix_init(&x, "/tmp/cu_gcommit_ex_XXXXXX"), 0);
    assert_int_equal(exfix_start(&x, "data", devnet, 60, false), 0);
    for (int i = 0; i < FAUCET_THREADS; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].url = x.url;
        m[i].stop = &stop;
        assert_int_equal(cu_identity_generate(&m[i].id), 0);
        assert_int_equal(pthread_create(&th[i], NULL, minter_main, &m[i]), 0);
    }
    cu_sleep_ms(FAUCET_RUN_MS);
    /* Killed while requests are in flight: each thread's loop ends when
     * its connection fails. */
    exfix_stop(&x, SIGKILL);
    stop = 1;
    for (int i = 0; i < FAUCET_THREADS; i++)
        pthread_join(th[i], NULL);

    assert_int_equal(exfix_start(&x, "data", devnet, 60, false), 0);
    for (int i = 0; i < FAUCET_THREADS; i++) {
        int64_t bal = balance_of(x.url, &m[i].id);
        assert_int_equal(m[i].bad, 0);
        /* Every acknowledged mint survived; at most the one request that
         * was unanswered when the exchange died committed beyond them. */
        assert_true(bal >= m[i].acked);
        assert_true(bal <= m[i].acked + 1);
        assert_true(bal >= m[i].last_bal);
        total += m[i].acked;
    }
    /* The run did write concurrently (a slow machine still manages some). */
    assert_true(total >= FAUCET_THREADS);
    /* The restart itself replayed and verified the whole ledger. */
    fprintf(stderr, "# %lld acknowledged mints survived kill -9\n", (long long)total);
    for (int i = 0; i < FAUCET_THREADS; i++)
        cu_identity_wipe(&m[i].id);
    exfix_cleanup(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_barrier_owes_then_syncs),
        cmocka_unit_test(test_expected_commit_shares_sync),
        cmocka_unit_test(test_concurrent_writers_share_syncs),
        cmocka_unit_test(test_wal_restarts_under_steady_writes),
        cmocka_unit_test(test_pinned_reader_costs_no_checkpoint_per_commit),
        cmocka_unit_test(test_exchange_kill9_keeps_acknowledged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
