/* money_property_test.c - the exchange's money rules under random
 * sequences of operations (issue 3, "Tests that must exist and pass").
 *
 * Drives the exchange's state API in-process (exchange/state.h): devnet
 * faucet, signed transfers, job submissions (escrow locked with the
 * requester's real signed request as authorization), claims, heartbeats,
 * reports (ok with agreeing or disagreeing roots, failed, timeout,
 * killed, error, repeated), lease expiry (ex_reap with a future now),
 * cancels, and providers changing their ask and CU factor; the exchange
 * and escrow fees change between submissions.
 *
 * After every operation:
 *   - cu_ledger_check_invariant: balances + escrow + stakes == minted, and
 *     minted == what the faucet gave;
 *   - no balance past CU_AMOUNT_MAX (a negative one would wrap there);
 *   - each requester: balance + its jobs' escrow + what its jobs paid out
 *     (releases and fees) + what it sent == what it was given; each job's
 *     total locked == the maximum cost computed here from its terms;
 *   - each provider: balance + sent == given + earned (wallet);
 *   - a running job's escrow covers every replica it has out plus the
 *     escrow fee (never runs on credit); a finished job's escrow is 0.
 * At the end of each sequence (after draining and cancelling what is left):
 *   - each accepted replica's escrow_release and fee appear exactly once
 *     when non-zero, with the amounts computed here from the report's CPU
 *     time, the provider's factor and its ask at lease time (the lowest
 *     claim of the task), and no other replica is paid; each replica has at
 *     most one task_record; each job at most one refund;
 *   - each provider's balance == given - sent + the pay computed here;
 *   - the stored ledger dump verifies from genesis with the same tip and
 *     transaction count, and a reopened state has the same state hash.
 *
 * Fixed seeds; a failure names the seed and the step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "crypto/reqsign.h"
#include "exchange/exchange.h"
#include "exchange/state.h"
#include "trust/challenge.h"
#include "ledger/export.h"
#include "ledger/state.h"
#include "ledger/tx.h"
#include "ledger/verify.h"
#include "market/price.h"

#include "base/banned.h"

#define NREQ 3               /* requesters */
#define NPROV 4              /* providers */
#define NACCT (NREQ + NPROV) /* accounts the test gives tokens to */
#define MAX_JOBS 64          /* per sequence */
#define MAX_LEASES 1024      /* replicas leased per sequence */
#define DRAIN_ROUNDS 60      /* claim/report rounds before the final cancel */

/* Sequences and operations; CU_MONEY_SEQS overrides the count and
 * CU_MONEY_SEED the first seed (for longer soaks). */
#define DEFAULT_SEQS 300
#define MIN_OPS 20
#define MAX_OPS 60

/* ---- the model ------------------------------------------------------------------ */

struct acct {
    struct cu_identity id;
    uint64_t given; /* faucet + transfers in */
    uint64_t sent;  /* transfers out */
};

struct prov {
    uint64_t ask, factor_milli;
};

struct mjob {
    char id[32];
    int owner; /* index into accounts (a requester) */
    uint64_t bid, max_cu, job_max, replica_max, escrow_fee;
    uint32_t fee_bps;
};

struct mlease {
    int64_t rid;
    int prov;          /* 0..NPROV-1 */
    int job;           /* index into jobs */
    uint64_t ask;      /* the provider's ask when leased */
    bool live;         /* not yet reported, as far as the test knows */
    bool reported;     /* a report was applied */
    uint64_t cu_milli; /* from the report: cpu_ms x factor / 1000, rounded up */
    /* The lease's heartbeat challenge: renewals answer the open nonce. */
    unsigned char hb_secret[CU_CHAL_KEY_LEN], hb_nonce[CU_CHAL_NONCE_LEN];
    bool committed, commit_wrong; /* committed to a result (waiting to reveal) */
};

struct world {
    uint64_t seed, rng;
    int step;
    char dir[CU_PATH_MAX];
    struct ex_state st;
    bool open;
    struct acct acct[NACCT];
    struct prov prov[NPROV];
    struct mjob jobs[MAX_JOBS];
    int njobs;
    struct mlease leases[MAX_LEASES];
    int nleases;
    uint64_t minted; /* what the faucet gave in this sequence */
};

/* Over all sequences, for the summary line. */
static struct {
    uint64_t seqs, ops, submits, claims, reports, accepted_paid, txs;
    uint64_t batch_claims, batch_leases, batch_reports; /* batches of more than one */
    uint64_t remigrations; /* reopened from before migration 15 */
    uint64_t remig_finished_held; /* finished tasks that counted held replicas then */
} totals;

static struct world *W;

#define ACCT_PROV(i) (NREQ + (i))

/* xorshift64*: the operations of a seed are the same on every run. */
static uint64_t rnd(struct world *w)
{
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi]. */
static uint64_t rnd_in(struct world *w, uint64_t lo, uint64_t hi)
{
    return lo + rnd(w) % (hi - lo + 1);
}

static bool chance(struct world *w, unsigned percent)
{
    return rnd(w) % 100 < percent;
}

#define FAILF(w, ...)                                                                              \
    do {                                                                                           \
        fprintf(stderr, "# seed %llu step %d: ", (unsigned long long)(w)->seed, (w)->step);        \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

static int64_t jint(const json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* ---- checks after every operation --------------------------------------------------- */

struct acct_scan {
    uint64_t max_balance;
    bool stake;
};

static int scan_account(const struct cu_ledger_account *a, void *ctx)
{
    struct acct_scan *s = ctx;
    if (a->balance > s->max_balance)
        s->max_balance = a->balance;
    if (a->stake)
        s->stake = true;
    return 0;
}

/* Replicas of job out (leased, running, reported), from the database. */
static int64_t held_of(struct world *w, const char *job)
{
    sqlite3_stmt *s = NULL;
    int64_t n = -1;

    assert_int_equal(sqlite3_prepare_v2(w->st.db.h,
                                        /* Replicas out that may still be paid: at
                                         * most the quorum of each task. */
                                        "SELECT COALESCE(SUM(MIN(n, q)), 0) FROM (SELECT "
                                        "COUNT(*) AS n, (SELECT CASE WHEN quorum > 0 THEN "
                                        "quorum ELSE replication END FROM jobs WHERE id = ?1) "
                                        "AS q FROM replicas WHERE job_id = ?1 AND state IN "
                                        "('leased','running','reported') GROUP BY task_idx)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, job, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* The job's state from the database into out (16 bytes). */
static void job_state(struct world *w, const char *job, char *out)
{
    sqlite3_stmt *s = NULL;

    out[0] = '\0';
    assert_int_equal(
        sqlite3_prepare_v2(w->st.db.h, "SELECT state FROM jobs WHERE id = ?1", -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_text(s, 1, job, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        (void)cu_snprintf(out, 16, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
}

static void wallet_of(struct world *w, const char *id, int64_t *balance, int64_t *escrow,
                      int64_t *earned)
{
    struct ex_fail f = {0};
    json_t *j = ex_wallet(&w->st, id, &f);

    if (!j)
        FAILF(w, "wallet of %.8s: %s", id, f.msg);
    *balance = jint(j, "balance");
    *escrow = jint(j, "escrow");
    *earned = jint(j, "earned");
    json_decref(j);
}

/* An account's wallet history (walked through the ledger's chains,
 * src/exchange/ledger.c) is every transaction naming it, newest first,
 * exactly what a scan of the ledger's rows finds. */
static void check_history_of(struct world *w, const char *id)
{
    struct ex_fail f = {0};
    json_t *j = ex_wallet_history(&w->st, id, 1000, &f);
    const json_t *entries = json_object_get(j, "entries");
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    int rc;

    if (!j)
        FAILF(w, "history of %.8s: %s", id, f.msg);
    assert_int_equal(sqlite3_prepare_v2(w->st.db.h,
                                        "SELECT txid FROM ledger_txs WHERE from_id = ?1 OR "
                                        "to_id = ?1 ORDER BY seq DESC LIMIT 1000",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *want = (const char *)sqlite3_column_text(s, 0);
        const char *got = json_string_value(json_object_get(json_array_get(entries, n), "tx"));
        if (!got || strcmp(got, want) != 0) {
            char msg[256];
            (void)cu_snprintf(msg, sizeof msg, "entry %zu is %.64s, the ledger's rows say %.64s",
                              n, got ? got : "missing", want);
            sqlite3_finalize(s);
            FAILF(w, "history of %.8s: %s", id, msg);
        }
        n++;
    }
    sqlite3_finalize(s);
    assert_int_equal(rc, SQLITE_DONE);
    if (json_array_size(entries) != n)
        FAILF(w, "history of %.8s: %zu entries, the ledger's rows have %zu", id,
              json_array_size(entries), n);
    json_decref(j);
}

/* The value of series (e.g. cumulus_replicas{state="queued"}) in a
 * metrics text, or -1 when it has no such line. */
static long long metric_value(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    }
    return -1;
}

/* GET /metrics (ex_metrics, read through its own connection without
 * the state mutex) gives every replica and task state the count a scan
 * of the tables finds, and the jobs by state. */
static void check_metrics(struct world *w)
{
    static const char *const checks[][2] = {
        {"cumulus_replicas", "SELECT COUNT(*) FROM replicas WHERE state = ?1"},
        {"cumulus_tasks", "SELECT COUNT(*) FROM tasks WHERE state = ?1"},
        {"cumulus_jobs", "SELECT COUNT(*) FROM jobs WHERE state = ?1"},
    };
    static const char *const states[] = {"queued", "leased",   "running",   "reported",
                                         "accepted", "rejected", "expired", "cancelled",
                                         "done",     "failed",   NULL};
    struct cu_buf out = CU_BUF_INIT(1 << 20);
    char series[96];

    assert_int_equal(ex_metrics(&w->st, cu_now_ms(), &out), 0);
    for (size_t c = 0; c < sizeof checks / sizeof checks[0]; c++) {
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(w->st.db.h, checks[c][1], -1, &s, NULL), SQLITE_OK);
        for (size_t i = 0; states[i]; i++) {
            long long got, want;
            (void)cu_snprintf(series, sizeof series, "%s{state=\"%s\"}", checks[c][0],
                              states[i]);
            got = metric_value((const char *)out.data, series);
            if (got < 0)
                continue; /* not a state of this kind */
            sqlite3_reset(s);
            sqlite3_bind_text(s, 1, states[i], -1, SQLITE_STATIC);
            assert_int_equal(sqlite3_step(s), SQLITE_ROW);
            want = sqlite3_column_int64(s, 0);
            if (got != want) {
                sqlite3_finalize(s);
                cu_buf_release(&out);
                FAILF(w, "metrics say %s %lld, the tables %lld", series, got, want);
            }
        }
        sqlite3_finalize(s);
    }
    /* Each kind has its lines, whatever the counts. */
    assert_true(metric_value((const char *)out.data, "cumulus_replicas{state=\"queued\"}") >= 0);
    assert_true(metric_value((const char *)out.data, "cumulus_tasks{state=\"done\"}") >= 0);
    assert_true(metric_value((const char *)out.data, "cumulus_jobs{state=\"running\"}") >= 0);
    cu_buf_release(&out);
}

/* The task counts and accepted CU the triggers keep per job (what GET
 * /v1/jobs shows) equal a full recount, for every job. */
static void check_counts(struct world *w)
{
    sqlite3_stmt *s = NULL;

    assert_int_equal(
        sqlite3_prepare_v2(
            w->st.db.h,
            "SELECT j.id, c.job_id IS NULL, c.queued, c.running, c.done, c.failed, c.cancelled, "
            "c.cu_milli FROM jobs j LEFT JOIN job_counts c ON c.job_id = j.id WHERE c.job_id IS "
            "NULL OR c.queued != (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.state "
            "= 'queued') OR c.running != (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND "
            "t.state = 'running') OR c.done != (SELECT COUNT(*) FROM tasks t WHERE t.job_id = "
            "j.id AND t.state = 'done') OR c.failed != (SELECT COUNT(*) FROM tasks t WHERE "
            "t.job_id = j.id AND t.state = 'failed') OR c.cancelled != (SELECT COUNT(*) FROM "
            "tasks t WHERE t.job_id = j.id AND t.state = 'cancelled') OR c.cu_milli != (SELECT "
            "COALESCE(SUM(r.cu_milli), 0) FROM replicas r WHERE r.job_id = j.id AND r.state = "
            "'accepted') OR c.queued + c.running + c.done + c.failed + c.cancelled != "
            "j.task_count LIMIT 1",
            -1, &s, NULL),
        SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW) {
        char msg[256];
        (void)cu_snprintf(msg, sizeof msg,
                          "job %s: kept counts (missing %d) queued %lld running %lld done %lld "
                          "failed %lld cancelled %lld cu_milli %lld differ from a recount",
                          (const char *)sqlite3_column_text(s, 0), sqlite3_column_int(s, 1),
                          (long long)sqlite3_column_int64(s, 2),
                          (long long)sqlite3_column_int64(s, 3),
                          (long long)sqlite3_column_int64(s, 4),
                          (long long)sqlite3_column_int64(s, 5),
                          (long long)sqlite3_column_int64(s, 6),
                          (long long)sqlite3_column_int64(s, 7));
        sqlite3_finalize(s);
        FAILF(w, "%s", msg);
    }
    sqlite3_finalize(s);

    /* The payable count the escrow check reads (held replicas per
     * unfinished task up to the quorum, summed: schema.c 25) and the
     * validator flag (schema.c 17) equal a recount and the spec. */
    assert_int_equal(
        sqlite3_prepare_v2(
            w->st.db.h,
            "SELECT j.id, c.payable, (SELECT COALESCE(SUM(MIN((SELECT COUNT(*) FROM replicas r "
            "WHERE r.job_id = t.job_id AND r.task_idx = t.idx AND r.state IN "
            "('leased','running','reported')), CASE WHEN j.quorum > 0 THEN j.quorum ELSE "
            "j.replication END)), 0) FROM tasks t WHERE t.job_id = j.id AND t.state IN "
            "('queued','running')), c.validator, "
            "json_extract(j.spec_json, '$.validator.command') IS NOT NULL "
            "FROM jobs j JOIN job_counts c ON c.job_id = j.id",
            -1, &s, NULL),
        SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (sqlite3_column_int64(s, 1) != sqlite3_column_int64(s, 2) ||
            sqlite3_column_int64(s, 3) != sqlite3_column_int64(s, 4)) {
            char msg[256];
            (void)cu_snprintf(msg, sizeof msg,
                              "job %s: kept payable %lld (recount %lld), validator %lld (spec %lld)",
                              (const char *)sqlite3_column_text(s, 0),
                              (long long)sqlite3_column_int64(s, 1),
                              (long long)sqlite3_column_int64(s, 2),
                              (long long)sqlite3_column_int64(s, 3),
                              (long long)sqlite3_column_int64(s, 4));
            sqlite3_finalize(s);
            FAILF(w, "%s", msg);
        }
    }
    sqlite3_finalize(s);

    /* Per task (schema.c, 20 and 25): held counts its held replicas
     * while it is unfinished and is 0 once it is done, failed or
     * cancelled, attempts the leases granted (a replica gets its provider
     * when leased and keeps it), and an unfinished task is running
     * exactly while it holds a replica. */
    assert_int_equal(
        sqlite3_prepare_v2(
            w->st.db.h,
            "SELECT * FROM (SELECT t.job_id, t.idx, t.state, t.held, t.attempts, "
            "(SELECT COUNT(*) FROM replicas r WHERE r.job_id = t.job_id AND r.task_idx = t.idx "
            "AND r.state IN ('leased','running','reported')) AS h, "
            "(SELECT COUNT(*) FROM replicas r WHERE r.job_id = t.job_id AND r.task_idx = t.idx "
            "AND r.provider IS NOT NULL) AS a FROM tasks t) WHERE "
            "held != CASE WHEN state IN ('queued','running') THEN h ELSE 0 END OR attempts != a OR "
            "(state = 'running' AND held = 0) OR (state = 'queued' AND held > 0) LIMIT 1",
            -1, &s, NULL),
        SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW) {
        char msg[256];
        (void)cu_snprintf(msg, sizeof msg,
                          "task %s/%lld (%s): kept held %lld attempts %lld, recount %lld / %lld",
                          (const char *)sqlite3_column_text(s, 0),
                          (long long)sqlite3_column_int64(s, 1),
                          (const char *)sqlite3_column_text(s, 2),
                          (long long)sqlite3_column_int64(s, 3),
                          (long long)sqlite3_column_int64(s, 4),
                          (long long)sqlite3_column_int64(s, 5),
                          (long long)sqlite3_column_int64(s, 6));
        sqlite3_finalize(s);
        FAILF(w, "%s", msg);
    }
    sqlite3_finalize(s);
}

/* Settlement wrote what it owes, row by row: every accepted replica of a
 * job with escrow is paid and recorded, only accepted ones are paid,
 * every recorded replica has its reputation record, and every result
 * that lost an agreed quorum (rejected, ok, not a duplicate owner, in a
 * done task) has its wrong_result record. */
static void check_settled(struct world *w)
{
    static const char *const checks[] = {
        "SELECT r.id, 'accepted but not paid and recorded' FROM replicas r JOIN jobs j "
        "ON j.id = r.job_id WHERE j.replica_max > 0 AND r.state = 'accepted' AND "
        "(r.paid IS NULL OR r.recorded = 0) LIMIT 1",
        "SELECT id, 'paid but not accepted' FROM replicas WHERE paid IS NOT NULL AND "
        "state != 'accepted' LIMIT 1",
        "SELECT r.id, 'recorded without a reputation record' FROM replicas r WHERE "
        "r.recorded = 1 AND NOT EXISTS (SELECT 1 FROM rep_records x WHERE x.replica = r.id) "
        "LIMIT 1",
        "SELECT r.id, 'lost the quorum without a record' FROM replicas r JOIN tasks t ON "
        "t.job_id = r.job_id AND t.idx = r.task_idx JOIN jobs j ON j.id = r.job_id WHERE "
        "j.replica_max > 0 AND t.state = 'done' AND r.state = 'rejected' AND r.status = 'ok' "
        "AND r.provider IS NOT NULL AND COALESCE(r.reason, '') != 'duplicate owner' AND "
        "r.recorded = 0 LIMIT 1",
        NULL};

    for (size_t i = 0; checks[i]; i++) {
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(w->st.db.h, checks[i], -1, &s, NULL), SQLITE_OK);
        if (sqlite3_step(s) == SQLITE_ROW) {
            char msg[160];
            (void)cu_snprintf(msg, sizeof msg, "replica %lld: %s",
                              (long long)sqlite3_column_int64(s, 0),
                              (const char *)sqlite3_column_text(s, 1));
            sqlite3_finalize(s);
            FAILF(w, "%s", msg);
        }
        sqlite3_finalize(s);
    }
}

static void check_money(struct world *w)
{
    check_counts(w);
    check_settled(w);
    for (int a = 0; a < NACCT; a++)
        check_history_of(w, w->acct[a].id.id);
    check_history_of(w, w->st.ident.id);

    const struct cu_ledger_state *L = &w->st.ledger;
    struct cu_err e = {0};
    struct acct_scan scan = {0};
    uint64_t released_all = 0, fees_all = 0, earned_all = 0;

    if (cu_ledger_check_invariant(L, &e) != 0)
        FAILF(w, "invariant: %s", e.msg);
    if (L->minted != w->minted)
        FAILF(w, "minted %llu, the faucet gave %llu", (unsigned long long)L->minted,
              (unsigned long long)w->minted);
    cu_ledger_foreach_account(L, scan_account, &scan);
    if (scan.max_balance > CU_AMOUNT_MAX)
        FAILF(w, "a balance of %llu (negative?)", (unsigned long long)scan.max_balance);
    if (scan.stake)
        FAILF(w, "a stake appeared though nothing was staked");

    /* Requesters: every token given is in the balance, an escrow, paid out
     * by one of its jobs, or sent away. */
    for (int r = 0; r < NREQ; r++) {
        uint64_t sum = cu_ledger_balance(L, w->acct[r].id.id) + w->acct[r].sent, esc = 0;
        int64_t bal, wesc, earned;
        for (int j = 0; j < w->njobs; j++) {
            const struct mjob *m = &w->jobs[j];
            const struct cu_ledger_escrow *x;
            if (m->owner != r)
                continue;
            x = cu_ledger_escrow(L, m->id);
            if (!x)
                FAILF(w, "job %s has no escrow", m->id);
            if (x->total_locked != m->job_max)
                FAILF(w, "job %s locked %llu, its terms say %llu", m->id,
                      (unsigned long long)x->total_locked, (unsigned long long)m->job_max);
            if (x->locked + x->released + x->fees + x->refunded != x->total_locked)
                FAILF(w, "job %s: locked %llu + released %llu + fees %llu + refunded %llu != %llu",
                      m->id, (unsigned long long)x->locked, (unsigned long long)x->released,
                      (unsigned long long)x->fees, (unsigned long long)x->refunded,
                      (unsigned long long)x->total_locked);
            sum += x->locked + x->released + x->fees;
            esc += x->locked;
            released_all += x->released;
            fees_all += x->fees;
        }
        if (sum != w->acct[r].given)
            FAILF(w, "requester %d: balance + escrow + paid out + sent = %llu, given %llu", r,
                  (unsigned long long)sum, (unsigned long long)w->acct[r].given);
        wallet_of(w, w->acct[r].id.id, &bal, &wesc, &earned);
        if ((uint64_t)bal != cu_ledger_balance(L, w->acct[r].id.id) || (uint64_t)wesc != esc ||
            earned != 0)
            FAILF(w,
                  "requester %d: wallet says balance %lld escrow %lld earned %lld, the ledger "
                  "%llu and %llu",
                  r, (long long)bal, (long long)wesc, (long long)earned,
                  (unsigned long long)cu_ledger_balance(L, w->acct[r].id.id),
                  (unsigned long long)esc);
    }
    /* Providers: given + earned - sent. */
    for (int p = 0; p < NPROV; p++) {
        const struct acct *a = &w->acct[ACCT_PROV(p)];
        int64_t bal, wesc, earned;
        wallet_of(w, a->id.id, &bal, &wesc, &earned);
        if (wesc != 0 || earned < 0 || (uint64_t)bal + a->sent != a->given + (uint64_t)earned)
            FAILF(w, "provider %d: balance %lld + sent %llu != given %llu + earned %lld", p,
                  (long long)bal, (unsigned long long)a->sent, (unsigned long long)a->given,
                  (long long)earned);
        earned_all += (uint64_t)earned;
    }
    if (earned_all != released_all)
        FAILF(w, "providers earned %llu, the jobs released %llu", (unsigned long long)earned_all,
              (unsigned long long)released_all);
    if (cu_ledger_balance(L, w->st.ident.id) != fees_all)
        FAILF(w, "the exchange holds %llu, the jobs paid %llu in fees",
              (unsigned long long)cu_ledger_balance(L, w->st.ident.id),
              (unsigned long long)fees_all);

    /* Never on credit; nothing left locked in a finished job. */
    for (int j = 0; j < w->njobs; j++) {
        const struct mjob *m = &w->jobs[j];
        uint64_t locked = cu_ledger_locked(L, m->id);
        char state[16];
        job_state(w, m->id, state);
        if (strcmp(state, "running") == 0) {
            int64_t held = held_of(w, m->id);
            if (held < 0 || locked < (uint64_t)held * m->replica_max + m->escrow_fee)
                FAILF(w,
                      "job %s runs on credit: %lld payable replicas out at up to %llu each + escrow "
                      "fee %llu, but only %llu locked",
                      m->id, (long long)held, (unsigned long long)m->replica_max,
                      (unsigned long long)m->escrow_fee, (unsigned long long)locked);
        } else if (locked != 0) {
            FAILF(w, "job %s is %s with %llu still locked", m->id, state,
                  (unsigned long long)locked);
        }
    }
}

/* ---- operations ------------------------------------------------------------------------ */

static void op_faucet(struct world *w, int a)
{
    struct ex_fail f = {0};
    uint64_t amount = chance(w, 20) ? rnd_in(w, 1, 100) : rnd_in(w, 1000, 2000000);
    json_t *j = ex_faucet(&w->st, w->acct[a].id.id, amount, cu_now_ms(), &f);

    if (!j)
        FAILF(w, "faucet of %llu refused: %s", (unsigned long long)amount, f.msg);
    json_decref(j);
    w->acct[a].given += amount;
    w->minted += amount;
}

static void op_transfer(struct world *w)
{
    int from = (int)rnd_in(w, 0, NACCT - 1), to = (int)rnd_in(w, 0, NACCT - 1);
    const char *fid = w->acct[from].id.id;
    uint64_t bal = cu_ledger_balance(&w->st.ledger, fid);
    uint64_t nonce = cu_ledger_nonce(&w->st.ledger, fid), txs = w->st.ledger.tx_count;
    bool bad_nonce = chance(w, 10);
    uint64_t amount;
    struct ex_fail f = {0};
    struct cu_tx tx;
    json_t *j;
    bool ok;

    if (to == from)
        to = (to + 1) % NACCT;
    /* Mostly affordable, sometimes just over the balance. */
    amount = chance(w, 15) ? bal + 1 : (bal ? rnd_in(w, 1, bal) : 1);
    cu_tx_init(&tx, CU_TX_TRANSFER);
    tx.time_ms = cu_now_ms();
    assert_int_equal(cu_snprintf(tx.to, sizeof tx.to, "%s", w->acct[to].id.id), 0);
    tx.amount = amount;
    tx.nonce = bad_nonce ? nonce + 1 : nonce;
    assert_int_equal(cu_tx_sign(&tx, &w->acct[from].id), 0);
    ok = !bad_nonce && amount <= bal;
    j = ex_transfer(&w->st, fid, &tx, cu_now_ms(), &f); /* consumes tx */
    if (ok && !j)
        FAILF(w, "transfer of %llu (balance %llu) refused: %s", (unsigned long long)amount,
              (unsigned long long)bal, f.msg);
    if (!ok && j)
        FAILF(w, "transfer of %llu (balance %llu, nonce %s) accepted", (unsigned long long)amount,
              (unsigned long long)bal, bad_nonce ? "wrong" : "right");
    if (!ok && w->st.ledger.tx_count != txs)
        FAILF(w, "a refused transfer added a transaction");
    json_decref(j);
    if (ok) {
        w->acct[from].sent += amount;
        w->acct[to].given += amount;
    }
}

/* A job id as the exchange's route derives it: j- + 24 hex of H(signer || body). */
static void job_id_of(const char *signer, const char *body, size_t n, char out[32])
{
    struct cu_hasher hs;
    struct cu_hash h;
    char hex[CU_HASH_HEX_LEN + 1];

    cu_hasher_init(&hs);
    cu_hasher_update(&hs, signer, strlen(signer));
    cu_hasher_update(&hs, body, n);
    cu_hasher_final(&hs, &h);
    cu_hash_to_hex(&h, hex);
    (void)cu_snprintf(out, 32, "j-%.24s", hex);
}

static void submit_job(struct world *w, int r, unsigned tasks, unsigned rep);
/* When not 0, submit_job's jobs agree at this quorum of their replicas
 * (spec "quorum", with "max_replicas" 2 x rep + 1) instead of all. */
static unsigned submit_quorum;

static void op_submit(struct world *w)
{
    int r = (int)rnd_in(w, 0, NREQ - 1);
    /* Single-task jobs run out of escrow soonest when results disagree. */
    unsigned tasks = chance(w, 40) ? 1 : (unsigned)rnd_in(w, 2, 5), rep = (unsigned)rnd_in(w, 1, 3);

    submit_job(w, r, tasks, rep);
}

/* Requester r submits a job of tasks tasks and replication rep, with
 * random price terms and fees (refused when r cannot pay: checked). */
static void submit_job(struct world *w, int r, unsigned tasks, unsigned rep)
{
    const struct cu_identity *id = &w->acct[r].id;
    struct mjob m = {.owner = r};
    char body[1024], ref[40], qpart[64] = "", *auth = NULL, *spec_s;
    struct cu_sig_headers h;
    struct cu_hash bh;
    struct cu_spec spec;
    struct cu_err e = {0};
    struct ex_fail f = {0};
    struct ex_submit sub;
    json_t *bj, *canon;
    uint64_t bal = cu_ledger_balance(&w->st.ledger, id->id), txs = w->st.ledger.tx_count;
    bool existed = false, ok;
    int rc;

    if (w->njobs >= MAX_JOBS)
        return;
    /* The operator may change fees at any time; a job keeps those it was
     * submitted under. */
    w->st.fee_bps = chance(w, 20) ? 0 : (uint32_t)rnd_in(w, 1, chance(w, 10) ? 10000 : 1000);
    w->st.escrow_fee = chance(w, 20) ? 0 : rnd_in(w, 1, 500);
    m.bid = rnd_in(w, 1, 25);
    m.max_cu = rnd_in(w, 1, 40);
    m.fee_bps = w->st.fee_bps;
    m.escrow_fee = w->st.escrow_fee;
    assert_int_equal(cu_price_replica_max(m.bid, m.max_cu, m.fee_bps, &m.replica_max), 0);
    assert_int_equal(
        cu_price_job_max(m.bid, m.max_cu, tasks, rep, m.fee_bps, m.escrow_fee, &m.job_max), 0);
    assert_int_equal(cu_snprintf(ref, sizeof ref, "s%llu-%d", (unsigned long long)w->seed, w->step),
                     0);
    if (submit_quorum)
        assert_int_equal(cu_snprintf(qpart, sizeof qpart, "\"max_replicas\":%u,\"quorum\":%u,",
                                     2 * rep + 1, submit_quorum),
                         0);
    assert_int_equal(
        cu_snprintf(body, sizeof body,
                    "{\"client_ref\":\"%s\",\"spec\":{\"command\":[\"true\"],\"image\":\"host\","
                    "\"inputs\":[],%s\"name\":\"prop\",\"outputs\":[\"*.txt\"],\"price\":{"
                    "\"max_cu\":%llu,\"max_per_cu\":%llu},\"replication\":%u,\"resources\":{"
                    "\"cores\":1,\"gpus\":0,\"memory\":67108864,\"output\":1048576,"
                    "\"time_ms\":10000},\"tasks\":{\"count\":%u}}}",
                    ref, qpart, (unsigned long long)m.max_cu, (unsigned long long)m.bid, rep, tasks),
        0);
    bj = json_loads(body, 0, NULL);
    assert_non_null(bj);
    cu_spec_init(&spec);
    if (cu_spec_from_json(&spec, json_object_get(bj, "spec"), &e) != 0)
        FAILF(w, "spec refused: %s", e.msg);
    canon = cu_spec_to_json(&spec);
    assert_non_null(canon);
    spec_s = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(spec_s);
    /* The request as a client signs it; the escrow keeps it verbatim. */
    cu_hash_mem(body, strlen(body), &bh);
    cu_reqsign_make(id, "POST", "/v1/jobs", &bh, cu_now_ms() / 1000, &h);
    assert_int_equal(cu_tx_auth_make("POST", "/v1/jobs", body, strlen(body), &h, &auth), 0);
    job_id_of(id->id, body, strlen(body), m.id);
    sub = (struct ex_submit){
        .id = m.id,
        .owner = id->id,
        .spec = &spec,
        .spec_json = spec_s,
        .body = body,
        .body_len = strlen(body),
        .sig_json = "{}",
        .auth = auth,
        .now_ms = cu_now_ms(),
    };
    ok = bal >= m.job_max;
    rc = ex_job_submit(&w->st, &sub, &existed, &f);
    free(auth);
    free(spec_s);
    json_decref(canon);
    json_decref(bj);
    cu_spec_release(&spec);
    if (ok && rc)
        FAILF(w, "submit costing %llu with balance %llu refused: %s", (unsigned long long)m.job_max,
              (unsigned long long)bal, f.msg);
    if (!ok) {
        if (rc == 0)
            FAILF(w, "submit costing %llu with balance %llu accepted",
                  (unsigned long long)m.job_max, (unsigned long long)bal);
        if (f.status != 409 || strcmp(f.code, "insufficient_funds") != 0)
            FAILF(w, "an unaffordable submit answered %d %s: %s", f.status, f.code, f.msg);
        if (w->st.ledger.tx_count != txs || held_of(w, m.id) != 0)
            FAILF(w, "a refused submit left something behind");
        return;
    }
    assert_false(existed);
    w->jobs[w->njobs++] = m;
    totals.submits++;
}

static void op_hello(struct world *w, int p)
{
    struct ex_hello h = {.slots = 4, .cores = 64, .memory = 1ULL << 40, .version = "test"};
    struct ex_fail f = {0};

    w->prov[p].ask = chance(w, 30) ? rnd_in(w, 1, 3) : rnd_in(w, 1, 30);
    w->prov[p].factor_milli = rnd_in(w, 200, 4000);
    h.price_per_cu = w->prov[p].ask;
    h.cu_factor_milli = w->prov[p].factor_milli;
    if (ex_provider_hello(&w->st, w->acct[ACCT_PROV(p)].id.id, &h, cu_now_ms(), &f) != 0)
        FAILF(w, "hello refused: %s", f.msg);
}

static int job_index(struct world *w, const char *id)
{
    for (int j = 0; j < w->njobs; j++)
        if (strcmp(w->jobs[j].id, id) == 0)
            return j;
    return -1;
}

/* Registers lease l of provider p (one object of a claim's answer) and
 * checks it: the job exists, its bid covers the ask, the provider holds
 * one live replica of the task. Returns the lease index. */
static int add_lease(struct world *w, int p, const json_t *l)
{
    const char *pid = w->acct[ACCT_PROV(p)].id.id;
    struct mlease *ml;
    sqlite3_stmt *s = NULL;
    int64_t same = -1;
    int j;

    j = job_index(w, json_string_value(json_object_get(l, "job")));
    if (j < 0)
        FAILF(w, "leased a replica of an unknown job");
    if (w->prov[p].ask > w->jobs[j].bid)
        FAILF(w, "replica of job %s (bid %llu) leased to an ask of %llu", w->jobs[j].id,
              (unsigned long long)w->jobs[j].bid, (unsigned long long)w->prov[p].ask);
    if (w->nleases >= MAX_LEASES)
        FAILF(w, "more leases than the test keeps");
    ml = &w->leases[w->nleases];
    *ml = (struct mlease){
        .rid = jint(l, "replica"), .prov = p, .job = j, .ask = w->prov[p].ask, .live = true};
    {
        const json_t *hb = json_object_get(l, "heartbeat");
        if (cu_hex_decode(json_string_value(json_object_get(hb, "secret")), ml->hb_secret,
                          sizeof ml->hb_secret) != 0 ||
            cu_hex_decode(json_string_value(json_object_get(hb, "nonce")), ml->hb_nonce,
                          sizeof ml->hb_nonce) != 0)
            FAILF(w, "lease of replica %lld has no heartbeat challenge", (long long)ml->rid);
    }
    /* Never two live replicas of one task on one provider (nor within
     * one batch). */
    assert_int_equal(sqlite3_prepare_v2(w->st.db.h,
                                        "SELECT COUNT(*) FROM replicas WHERE job_id = ?1 AND "
                                        "task_idx = ?2 AND provider = ?3 AND state IN "
                                        "('leased','running','reported','accepted')",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, w->jobs[j].id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, jint(l, "task"));
    sqlite3_bind_text(s, 3, pid, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        same = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (same != 1)
        FAILF(w, "provider %d holds %lld replicas of task %s/%lld", p, (long long)same,
              w->jobs[j].id, (long long)jint(l, "task"));
    totals.claims++;
    return w->nleases++;
}

/* Provider p claims once (no waiting): one replica, or sometimes a batch
 * ("max") whose free cores are fewer than the batch (each task takes one
 * core). Returns the index of the (first) lease or -1. */
static int op_claim(struct world *w, int p)
{
    static const uint64_t lease_ms[] = {2000, 20000, 120000};
    struct ex_free fr = {.cores = 64, .memory = 1ULL << 40, .gpus = 0};
    const char *pid = w->acct[ACCT_PROV(p)].id.id;
    struct ex_fail f = {0};
    json_t *lease = NULL, *list;
    unsigned max = 0;
    int first = -1;

    if (w->nleases + EX_MAX_CLAIM_BATCH > MAX_LEASES)
        return -1;
    w->st.lease_ms = lease_ms[rnd(w) % 3];
    if (chance(w, 40)) {
        max = (unsigned)rnd_in(w, 1, 8);
        fr.cores = rnd_in(w, 1, 8);
        if (ex_claim_batch(&w->st, pid, &fr, 0, max, &lease, &f) != 0)
            FAILF(w, "batched claim failed: %s", f.msg);
    } else if (ex_claim(&w->st, pid, &fr, 0, &lease, &f) != 0) {
        FAILF(w, "claim failed: %s", f.msg);
    }
    if (!lease)
        return -1;
    if (max == 0) {
        if (json_object_get(lease, "leases"))
            FAILF(w, "a claim without max answered a batch");
        first = add_lease(w, p, json_object_get(lease, "lease"));
    } else {
        list = json_object_get(lease, "leases");
        if (json_object_get(lease, "lease") || !json_is_array(list) || json_array_size(list) < 1)
            FAILF(w, "a batched claim answered no leases array");
        if (json_array_size(list) > max || json_array_size(list) > fr.cores)
            FAILF(w, "a batch of max %u with %llu free cores leased %zu replicas", max,
                  (unsigned long long)fr.cores, json_array_size(list));
        if (json_array_size(list) > 1) {
            totals.batch_claims++;
            totals.batch_leases += json_array_size(list);
        }
        for (size_t k = 0; k < json_array_size(list); k++) {
            int i = add_lease(w, p, json_array_get(list, k));
            if (first < 0)
                first = i;
        }
    }
    json_decref(lease);
    return first;
}

/* A live lease chosen at random, or -1. */
static int pick_live(struct world *w)
{
    int n = 0, k;
    for (int i = 0; i < w->nleases; i++)
        n += w->leases[i].live;
    if (n == 0)
        return -1;
    k = (int)rnd_in(w, 0, (uint64_t)n - 1);
    for (int i = 0; i < w->nleases; i++)
        if (w->leases[i].live && k-- == 0)
            return i;
    return -1;
}

static void root_hex(char c, char out[CU_HASH_HEX_LEN + 1])
{
    struct cu_hash h;
    cu_hash_mem(&c, 1, &h);
    cu_hash_to_hex(&h, out);
}

/* What a provider sends for lease i with status st (ok uses root A, or B
 * when wrong; a committed lease reveals what it committed to): fills r
 * (root is its storage), checks the lease and commits an ok result.
 * Returns true when the report may go, false when the lease was lost. */
static bool report_prepare(struct world *w, int i, enum ex_status status, bool wrong,
                           uint64_t cpu_ms, struct ex_report *r, char root[CU_HASH_HEX_LEN + 1])
{
    struct mlease *ml = &w->leases[i];
    const char *pid = w->acct[ACCT_PROV(ml->prov)].id.id;
    struct ex_fail f = {0};
    uint64_t limit = 0;
    bool done = false;
    json_t *out = NULL;
    int64_t now = cu_now_ms();
    int rc;

    if (ml->committed && status == EX_ST_OK)
        wrong = ml->commit_wrong; /* a provider reveals what it committed to */
    root_hex(wrong ? 'B' : 'A', root);
    memset(r, 0, sizeof *r);
    r->status = status;
    r->has_exit = status == EX_ST_OK || status == EX_ST_FAILED;
    r->exit_code = status == EX_ST_FAILED ? 3 : 0;
    r->reason = status == EX_ST_ERROR ? "test: provider error" : NULL;
    r->cpu_ms = cpu_ms;
    r->wall_ms = cpu_ms + 5;
    r->outputs_json = "[]";
    r->merkle_root = status == EX_ST_OK ? root : NULL;
    r->body = "{}";
    r->body_len = 2;
    rc = ex_report_check(&w->st, ml->rid, pid, now, &limit, &done, &out, &f);
    json_decref(out);
    out = NULL;
    if (rc) {
        /* Lost (reaped, or the lease ran out): the provider drops it. */
        if (f.status != 409 || strcmp(f.code, "lease_lost") != 0)
            FAILF(w, "report check of replica %lld: %d %s %s", (long long)ml->rid, f.status, f.code,
                  f.msg);
        ml->live = false;
        return false;
    }
    if (done)
        FAILF(w, "replica %lld counts as reported before its report", (long long)ml->rid);
    if (status == EX_ST_OK && !ml->committed) {
        /* Commit, then reveal (docs/api.md "Trust"). */
        char commit[CU_HASH_HEX_LEN + 1];
        ex_commit_hash(pid, root, commit);
        rc = ex_commit(&w->st, ml->rid, pid, commit, now, &out, &f);
        json_decref(out);
        out = NULL;
        if (rc) {
            if (f.status != 409 || strcmp(f.code, "lease_lost") != 0)
                FAILF(w, "commit of replica %lld: %d %s %s", (long long)ml->rid, f.status, f.code,
                      f.msg);
            ml->live = false;
            return false;
        }
        ml->committed = true;
        ml->commit_wrong = wrong;
    }
    return true;
}

/* An applied report's answer says what the database says of its replica
 * and task now (a report accepted at once answers without reading them),
 * and the row holds every field of report r: written with the replica's
 * acceptance or on its own, none may be lost. batch: r came in a batch
 * (its body is the batch's, not the row's). */
static void check_report_row(struct world *w, int64_t rid, const struct ex_report *r,
                             const json_t *answer, bool batch)
{
    sqlite3_stmt *s = NULL;

    assert_int_equal(
        sqlite3_prepare_v2(w->st.db.h,
                           "SELECT r.state, t.state, r.status, r.exit_code, r.cpu_ms, r.wall_ms, "
                           "r.merkle_root, r.outputs_json, r.report_body IS NOT NULL, "
                           "r.report_batch IS NOT NULL, r.reported_ms, r.paid IS NOT NULL, "
                           "r.recorded, j.replica_max FROM replicas r JOIN tasks t ON "
                           "t.job_id = r.job_id AND t.idx = r.task_idx JOIN jobs j ON "
                           "j.id = r.job_id WHERE r.id = ?1",
                           -1, &s, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(s, 1, rid);
    if (sqlite3_step(s) != SQLITE_ROW)
        FAILF(w, "reported replica %lld has no row", (long long)rid);
#define COL(k) ((const char *)sqlite3_column_text(s, k))
    if (!answer || !json_is_string(json_object_get(answer, "state")) ||
        strcmp(json_string_value(json_object_get(answer, "state")), COL(0)) != 0 ||
        strcmp(json_string_value(json_object_get(answer, "task_state")), COL(1)) != 0)
        FAILF(w, "replica %lld: report answered state %s / task %s, the database says %s / %s",
              (long long)rid, json_string_value(json_object_get(answer, "state")),
              json_string_value(json_object_get(answer, "task_state")), COL(0), COL(1));
    if ((!COL(2) || strcmp(COL(2), ex_status_name(r->status)) != 0 ||
         (r->has_exit && sqlite3_column_int64(s, 3) != r->exit_code) ||
         sqlite3_column_int64(s, 4) != (int64_t)r->cpu_ms ||
         sqlite3_column_int64(s, 5) != (int64_t)r->wall_ms ||
         (r->merkle_root ? !COL(6) || strcmp(COL(6), r->merkle_root) != 0 : COL(6) != NULL) ||
         !COL(7) || strcmp(COL(7), r->outputs_json) != 0 ||
         sqlite3_column_int64(s, 8) != !batch || sqlite3_column_int64(s, 9) != batch ||
         sqlite3_column_type(s, 10) == SQLITE_NULL))
        FAILF(w, "replica %lld (%s): its row lost fields of its report", (long long)rid, COL(0));
    /* Accepted in a priced job: paid, and its record written; in a job
     * stored before escrow existed (replica_max 0), neither. */
    if (strcmp(COL(0), "accepted") == 0 && sqlite3_column_int64(s, 13) > 0 &&
        (sqlite3_column_int64(s, 11) != 1 || sqlite3_column_int64(s, 12) != 1))
        FAILF(w, "accepted replica %lld is not paid and recorded", (long long)rid);
    if (strcmp(COL(0), "accepted") == 0 && sqlite3_column_int64(s, 13) == 0 &&
        sqlite3_column_int64(s, 11) != 0)
        FAILF(w, "replica %lld of an unpriced job was paid", (long long)rid);
#undef COL
    sqlite3_finalize(s);
}

/* The outcome of lease i's report: rc/f from the apply. Returns true when
 * it was applied. */
static bool report_outcome(struct world *w, int i, int rc, const struct ex_fail *f,
                           uint64_t cpu_ms)
{
    struct mlease *ml = &w->leases[i];

    if (rc && f->status == 409 && strcmp(f->code, "reveal_not_yet") == 0)
        return false; /* the provider keeps heartbeating until the others commit */
    if (rc) {
        if (f->status != 409 || strcmp(f->code, "lease_lost") != 0)
            FAILF(w, "report of replica %lld: %d %s %s", (long long)ml->rid, f->status, f->code,
                  f->msg);
        ml->live = false;
        return false;
    }
    ml->live = false;
    ml->reported = true;
    ml->cu_milli = (cpu_ms * w->prov[ml->prov].factor_milli + 999) / 1000; /* rounded up */
    totals.reports++;
    return true;
}

/* Reports lease i with status st (ok uses root A, or B when wrong). */
static void report(struct world *w, int i, enum ex_status status, bool wrong, uint64_t cpu_ms)
{
    struct mlease *ml = &w->leases[i];
    const char *pid = w->acct[ACCT_PROV(ml->prov)].id.id;
    char root[CU_HASH_HEX_LEN + 1];
    struct ex_report r;
    struct ex_fail f = {0};
    uint64_t txs;
    json_t *out = NULL;
    int rc;

    if (!report_prepare(w, i, status, wrong, cpu_ms, &r, root))
        return;
    rc = ex_report_apply(&w->st, ml->rid, pid, &r, cu_now_ms(), &out, &f);
    if (!rc)
        check_report_row(w, ml->rid, &r, out, false);
    json_decref(out);
    out = NULL;
    if (!report_outcome(w, i, rc, &f, cpu_ms))
        return;
    /* Sent again (a retry after a lost answer): same answer, no money. */
    if (chance(w, 15)) {
        txs = w->st.ledger.tx_count;
        rc = ex_report_apply(&w->st, ml->rid, pid, &r, cu_now_ms(), &out, &f);
        if (rc || !out)
            FAILF(w, "repeated report of replica %lld refused: %s", (long long)ml->rid, f.msg);
        json_decref(out);
        if (w->st.ledger.tx_count != txs)
            FAILF(w, "a repeated report moved money");
    }
}

#define MAX_REPORT_BATCH 6
/* One provider reports several live leases in one batch (POST
 * /v1/reports): random outcomes, sometimes a replica it does not hold,
 * and sometimes one it reported already (answered as before, no money). */
static void op_report_batch(struct world *w)
{
    int first = pick_live(w), idx[MAX_REPORT_BATCH + 1], n = 0, p;
    struct ex_report r[MAX_REPORT_BATCH + 1];
    const struct ex_report *rp[MAX_REPORT_BATCH + 1];
    char roots[MAX_REPORT_BATCH + 1][CU_HASH_HEX_LEN + 1];
    uint64_t cpu[MAX_REPORT_BATCH + 1];
    int64_t ids[MAX_REPORT_BATCH + 1];
    json_t *outs[MAX_REPORT_BATCH + 1];
    struct ex_fail fails[MAX_REPORT_BATCH + 1], f = {0};
    int stranger = -1, again = -1;

    if (first < 0)
        return;
    p = w->leases[first].prov;
    for (int i = 0; i < w->nleases && n < MAX_REPORT_BATCH; i++) {
        const struct mjob *m = &w->jobs[w->leases[i].job];
        unsigned k = (unsigned)rnd_in(w, 0, 99);
        enum ex_status status = k < 60 ? EX_ST_OK : k < 70 ? EX_ST_FAILED : k < 85 ? EX_ST_KILLED
                                                                                 : EX_ST_ERROR;
        if (!w->leases[i].live || w->leases[i].prov != p)
            continue;
        cpu[n] = chance(w, 10) ? 0 : rnd_in(w, 1, m->max_cu * 1500);
        if (!report_prepare(w, i, status, chance(w, 15), cpu[n], &r[n], roots[n]))
            continue;
        idx[n] = i;
        ids[n] = w->leases[i].rid;
        rp[n] = &r[n];
        n++;
    }
    /* A replica someone else holds, or one already reported. */
    if (chance(w, 20)) {
        for (int i = 0; i < w->nleases; i++)
            if (w->leases[i].prov != p && w->leases[i].live) {
                stranger = i;
                break;
            }
    } else if (chance(w, 20)) {
        for (int i = 0; i < w->nleases; i++)
            if (w->leases[i].prov == p && w->leases[i].reported) {
                again = i;
                break;
            }
    }
    if (stranger >= 0 || again >= 0) {
        int i = stranger >= 0 ? stranger : again;
        root_hex('A', roots[n]);
        r[n] = (struct ex_report){.status = EX_ST_OK, .cpu_ms = 1, .outputs_json = "[]",
                                  .merkle_root = roots[n]};
        rp[n] = &r[n];
        ids[n] = w->leases[i].rid;
        idx[n] = -1;
        n++;
    }
    if (n == 0)
        return;
    for (int k = 0; k < n; k++)
        fails[k] = (struct ex_fail){0};
    uint64_t txs = w->st.ledger.tx_count;
    if (ex_report_apply_batch(&w->st, w->acct[ACCT_PROV(p)].id.id, (size_t)n, ids, rp, "{}", 2,
                              cu_now_ms(), outs, fails, &f) != 0)
        FAILF(w, "batched report failed: %d %s %s", f.status, f.code, f.msg);
    if (n > 1)
        totals.batch_reports++;
    for (int k = 0; k < n; k++) {
        if (idx[k] >= 0) {
            if (outs[k])
                check_report_row(w, ids[k], &r[k], outs[k], true);
            (void)report_outcome(w, idx[k], outs[k] ? 0 : -1, &fails[k], cpu[k]);
        } else if (stranger >= 0) {
            if (outs[k] || fails[k].status != 403)
                FAILF(w, "a batch reported replica %lld of another provider", (long long)ids[k]);
        } else if (!outs[k]) {
            FAILF(w, "a batch's repeated report of replica %lld refused: %s", (long long)ids[k],
                  fails[k].msg);
        }
        json_decref(outs[k]);
    }
    if (n == 1 && again >= 0 && w->st.ledger.tx_count != txs)
        FAILF(w, "a repeated report in a batch moved money");
}

/* Reports lease i with a random outcome. */
static void report_random(struct world *w, int i)
{
    const struct mjob *m = &w->jobs[w->leases[i].job];
    /* CPU time: sometimes none, sometimes past the job's CU cap. */
    uint64_t cpu = chance(w, 10) ? 0 : rnd_in(w, 1, m->max_cu * 1500);
    unsigned k = (unsigned)rnd_in(w, 0, 99);

    if (k < 58)
        report(w, i, EX_ST_OK, false, cpu);
    else if (k < 72)
        report(w, i, EX_ST_OK, true, cpu);
    else if (k < 78)
        report(w, i, EX_ST_FAILED, false, cpu);
    else if (k < 80)
        report(w, i, EX_ST_TIMEOUT, false, cpu);
    else if (k < 90)
        report(w, i, EX_ST_KILLED, false, cpu);
    else
        report(w, i, EX_ST_ERROR, false, cpu);
}

static void op_report(struct world *w)
{
    int i = pick_live(w);

    if (i >= 0)
        report_random(w, i);
}

static void op_heartbeat(struct world *w)
{
    char answer[2 * CU_CHAL_ANSWER_LEN + 1];
    int i = pick_live(w);
    struct ex_fail f = {0};
    json_t *out = NULL;
    struct mlease *ml;

    if (i < 0)
        return;
    ml = &w->leases[i];
    {
        unsigned char a[CU_CHAL_ANSWER_LEN];
        cu_chal_heartbeat_answer(ml->hb_secret, ml->rid, ml->hb_nonce, a);
        cu_hex_encode(a, sizeof a, answer);
    }
    if (ex_heartbeat(&w->st, ml->rid, w->acct[ACCT_PROV(ml->prov)].id.id, answer, cu_now_ms(),
                     &out, &f) != 0) {
        if (f.status != 409 || strcmp(f.code, "lease_lost") != 0)
            FAILF(w, "heartbeat of replica %lld: %d %s %s", (long long)ml->rid, f.status, f.code,
                  f.msg);
        ml->live = false;
        return;
    }
    if (cu_hex_decode(json_string_value(json_object_get(out, "nonce")), ml->hb_nonce,
                      sizeof ml->hb_nonce) != 0)
        FAILF(w, "heartbeat of replica %lld gave no next nonce", (long long)ml->rid);
    /* Told to stop: the provider kills the run and says so. */
    if (json_is_true(json_object_get(out, "cancel")))
        report(w, i, EX_ST_KILLED, false, rnd_in(w, 0, 500));
    json_decref(out);
}

static void op_reap(struct world *w)
{
    /* Up to past the longest lease: some, all or none expire. */
    int rc = ex_reap(&w->st, cu_now_ms() + (int64_t)rnd_in(w, 0, 150000));
    if (rc < 0)
        FAILF(w, "reap failed: %d", rc);
}

static void op_cancel(struct world *w)
{
    int j, who;
    char state[16];
    struct ex_fail f = {0};
    int rc;

    if (w->njobs == 0)
        return;
    j = (int)rnd_in(w, 0, (uint64_t)w->njobs - 1);
    who = chance(w, 15) ? (w->jobs[j].owner + 1) % NREQ : w->jobs[j].owner;
    job_state(w, w->jobs[j].id, state);
    rc = ex_job_cancel(&w->st, w->jobs[j].id, w->acct[who].id.id, cu_now_ms(), &f);
    if (who != w->jobs[j].owner) {
        if (rc == 0 || f.status != 403)
            FAILF(w, "cancel by another key answered %d", rc ? f.status : 200);
    } else if (strcmp(state, "running") == 0) {
        if (rc)
            FAILF(w, "cancel of running job %s refused: %s", w->jobs[j].id, f.msg);
    } else if (rc == 0 || f.status != 409) {
        FAILF(w, "cancel of %s job answered %d", state, rc ? f.status : 200);
    }
}

/* ---- the end of a sequence ------------------------------------------------------------ */

struct paid {
    int64_t rid;
    unsigned releases, fees, records;
    uint64_t released, fee;
};

struct ledger_scan {
    struct world *w;
    struct paid *by_lease; /* MAX_LEASES, indexed like w->leases */
    unsigned refunds[MAX_JOBS], escrow_fees[MAX_JOBS];
    uint64_t escrow_fee_amount[MAX_JOBS];
    unsigned unknown; /* payouts naming a replica the test never leased */
};

static int lease_of(struct world *w, const char *replica)
{
    char *end;
    long long rid = strtoll(replica, &end, 10);
    if (!replica[0] || *end)
        return -1;
    for (int i = 0; i < w->nleases; i++)
        if (w->leases[i].rid == rid)
            return i;
    return -1;
}

static int scan_block_line(struct ledger_scan *ls, const char *line, size_t n)
{
    struct cu_block b;
    struct cu_err e = {0};
    int64_t bad = CU_NO_TX;
    int rc = cu_export_parse_block(line, n, &b, &bad, &e);

    if (rc) {
        cu_block_release(&b);
        fail_msg("the dump does not parse: %s", e.msg);
    }
    for (size_t i = 0; i < b.ntx; i++) {
        const struct cu_tx *tx = &b.txs[i];
        int j = tx->job[0] ? job_index(ls->w, tx->job) : -1, l;
        switch (tx->type) {
        case CU_TX_ESCROW_RELEASE:
        case CU_TX_FEE:
        case CU_TX_TASK_RECORD:
            if (!tx->replica[0]) {
                /* The escrow fee names the job only. */
                if (tx->type == CU_TX_FEE && j >= 0) {
                    ls->escrow_fees[j]++;
                    ls->escrow_fee_amount[j] += tx->amount;
                } else {
                    ls->unknown++;
                }
                break;
            }
            l = lease_of(ls->w, tx->replica);
            if (l < 0) {
                ls->unknown++;
                break;
            }
            if (tx->type == CU_TX_ESCROW_RELEASE) {
                ls->by_lease[l].releases++;
                ls->by_lease[l].released += tx->amount;
            } else if (tx->type == CU_TX_FEE) {
                ls->by_lease[l].fees++;
                ls->by_lease[l].fee += tx->amount;
            } else {
                ls->by_lease[l].records++;
            }
            break;
        case CU_TX_REFUND:
            if (j >= 0)
                ls->refunds[j]++;
            else
                ls->unknown++;
            break;
        default:
            break;
        }
    }
    cu_block_release(&b);
    return 0;
}

static int buf_sink(void *ctx, const char *data, size_t n)
{
    return cu_buf_append(ctx, data, n);
}

/* Drives what is left: providers claim and report, at random for the
 * first half of the rounds (disagreements, failures, losses), agreeing
 * results after; then every job still running is cancelled, the replicas
 * out report `killed`, and every lease expires. */
static void drain(struct world *w)
{
    for (int round = 0; round < DRAIN_ROUNDS; round++) {
        bool any = false;
        for (int p = 0; p < NPROV; p++) {
            int first = op_claim(w, p), end = w->nleases;
            if (first < 0)
                continue;
            any = true;
            /* Every lease of the claim (a batch may have leased several). */
            for (int i = first; i < end; i++) {
                if (round < DRAIN_ROUNDS / 2)
                    report_random(w, i);
                else
                    report(w, i, EX_ST_OK, false,
                           rnd_in(w, 0, w->jobs[w->leases[i].job].max_cu * 1200));
                check_money(w);
            }
        }
        if (!any)
            break;
    }
    for (int j = 0; j < w->njobs; j++) {
        char state[16];
        struct ex_fail f = {0};
        job_state(w, w->jobs[j].id, state);
        if (strcmp(state, "running") != 0)
            continue;
        if (ex_job_cancel(&w->st, w->jobs[j].id, w->acct[w->jobs[j].owner].id.id, cu_now_ms(),
                          &f) != 0)
            FAILF(w, "final cancel of %s: %s", w->jobs[j].id, f.msg);
        check_money(w);
    }
    for (int i = 0; i < w->nleases; i++)
        if (w->leases[i].live)
            report(w, i, EX_ST_KILLED, false, 10);
    if (ex_reap(&w->st, cu_now_ms() + 10 * 120000) < 0)
        FAILF(w, "final reap failed");
    check_money(w);
}

/* The pay of each accepted replica as computed here, checked against the
 * ledger; the dump verified; the state reopened. */
static void final_checks(struct world *w)
{
    struct ledger_scan *ls = calloc(1, sizeof *ls);
    struct cu_buf dump = CU_BUF_INIT(256 << 20);
    struct cu_verify_result res;
    struct cu_err e = {0};
    struct cu_hash before, after;
    uint64_t pay_to[NPROV] = {0};
    char prod[CU_ID_LEN + 1];
    sqlite3_stmt *s = NULL;
    size_t pos = 0, n;
    const char *line;

    assert_non_null(ls);
    ls->w = w;
    ls->by_lease = calloc(MAX_LEASES, sizeof *ls->by_lease);
    assert_non_null(ls->by_lease);
    if (cu_exchange_ledger_dump(w->dir, buf_sink, &dump, &e) != 0)
        FAILF(w, "dump: %s", e.msg);
    while (cu_export_next_line(cu_buf_str(&dump), dump.len, &pos, &line, &n))
        scan_block_line(ls, line, n);
    if (ls->unknown)
        FAILF(w, "%u payouts or records name no replica or job of this test", ls->unknown);

    /* Every replica the exchange accepted, by task. */
    assert_int_equal(sqlite3_prepare_v2(w->st.db.h,
                                        "SELECT id, job_id, task_idx, state FROM replicas WHERE "
                                        "provider IS NOT NULL ORDER BY job_id, task_idx, id",
                                        -1, &s, NULL),
                     SQLITE_OK);
    struct row {
        int lease;
        int64_t task;
        bool accepted;
    } *rows = calloc(MAX_LEASES, sizeof *rows);
    size_t nrows = 0;
    assert_non_null(rows);
    while (sqlite3_step(s) == SQLITE_ROW) {
        int l = -1;
        int64_t rid = sqlite3_column_int64(s, 0);
        for (int i = 0; i < w->nleases; i++)
            if (w->leases[i].rid == rid)
                l = i;
        if (l < 0 || nrows >= MAX_LEASES)
            FAILF(w, "replica %lld was leased to no provider of this test", (long long)rid);
        rows[nrows].lease = l;
        rows[nrows].task = sqlite3_column_int64(s, 2);
        rows[nrows].accepted = strcmp((const char *)sqlite3_column_text(s, 3), "accepted") == 0;
        if (rows[nrows].accepted && !w->leases[l].reported)
            FAILF(w, "replica %lld accepted without a report", (long long)rid);
        nrows++;
    }
    sqlite3_finalize(s);
    for (size_t i = 0; i < nrows; i++) {
        const struct mlease *ml = &w->leases[rows[i].lease];
        const struct mjob *m = &w->jobs[ml->job];
        const struct paid *pd = &ls->by_lease[rows[i].lease];
        uint64_t lowest = UINT64_MAX, pay = 0, fee = 0;

        if (pd->records > 1)
            FAILF(w, "replica %lld has %u task records", (long long)ml->rid, pd->records);
        if (!rows[i].accepted) {
            if (pd->releases || pd->fees)
                FAILF(w, "replica %lld was not accepted but paid %u time(s)", (long long)ml->rid,
                      pd->releases);
            continue;
        }
        /* Among agreeing replicas the lowest claim is paid, each at its ask. */
        for (size_t k = 0; k < nrows; k++) {
            const struct mlease *o = &w->leases[rows[k].lease];
            if (rows[k].accepted && o->job == ml->job && rows[k].task == rows[i].task &&
                o->cu_milli < lowest)
                lowest = o->cu_milli;
        }
        assert_int_equal(cu_price_pay(lowest, m->max_cu, ml->ask, &pay), 0);
        assert_int_equal(cu_price_fee(pay, m->fee_bps, &fee), 0);
        if (pd->releases != (pay > 0) || pd->released != pay)
            FAILF(w,
                  "accepted replica %lld (lowest claim %llu milli-CU, ask %llu, cap %llu CU) "
                  "paid %u time(s), %llu in all; expected once, %llu",
                  (long long)ml->rid, (unsigned long long)lowest, (unsigned long long)ml->ask,
                  (unsigned long long)m->max_cu, pd->releases, (unsigned long long)pd->released,
                  (unsigned long long)pay);
        if (pd->fees != (fee > 0) || pd->fee != fee)
            FAILF(w, "replica %lld: %u fee(s) of %llu, expected %llu", (long long)ml->rid, pd->fees,
                  (unsigned long long)pd->fee, (unsigned long long)fee);
        if (pd->records != 1)
            FAILF(w, "accepted replica %lld has %u task records", (long long)ml->rid, pd->records);
        pay_to[ml->prov] += pay;
        totals.accepted_paid += pay > 0;
    }
    free(rows);
    for (int p = 0; p < NPROV; p++) {
        const struct acct *a = &w->acct[ACCT_PROV(p)];
        uint64_t bal = cu_ledger_balance(&w->st.ledger, a->id.id);
        if (bal + a->sent != a->given + pay_to[p])
            FAILF(w, "provider %d: balance %llu + sent %llu != given %llu + pay %llu", p,
                  (unsigned long long)bal, (unsigned long long)a->sent,
                  (unsigned long long)a->given, (unsigned long long)pay_to[p]);
    }
    for (int j = 0; j < w->njobs; j++) {
        if (ls->refunds[j] > 1 || ls->escrow_fees[j] > 1 ||
            ls->escrow_fee_amount[j] > w->jobs[j].escrow_fee)
            FAILF(w, "job %s: %u refunds, %u escrow fees of %llu (fee %llu)", w->jobs[j].id,
                  ls->refunds[j], ls->escrow_fees[j], (unsigned long long)ls->escrow_fee_amount[j],
                  (unsigned long long)w->jobs[j].escrow_fee);
    }

    /* The stored chain verifies from genesis to the live tip. */
    if (cu_verify_export(cu_buf_str(&dump), dump.len, w->st.ident.id, &res) != 0)
        FAILF(w, "the stored ledger does not verify: %s", res.err.msg);
    if (res.txs != w->st.ledger.tx_count || res.blocks != w->st.tip_height + 1 ||
        !cu_hash_eq(&res.tip, &w->st.tip))
        FAILF(w, "the dump ends at %llu blocks / %llu txs, the exchange at %llu / %llu",
              (unsigned long long)res.blocks, (unsigned long long)res.txs,
              (unsigned long long)(w->st.tip_height + 1),
              (unsigned long long)w->st.ledger.tx_count);
    totals.txs += res.txs;
    cu_buf_release(&dump);
    free(ls->by_lease);
    free(ls);

    /* Reopened, the state replayed from the blocks is the same. */
    assert_int_equal(cu_ledger_state_hash(&w->st.ledger, &before), 0);
    assert_int_equal(cu_snprintf(prod, sizeof prod, "%s", w->st.ident.id), 0);
    ex_state_close(&w->st);
    w->open = false;
    if (ex_state_open(&w->st, w->dir, 20000, true, &e) != 0)
        FAILF(w, "reopen: %s", e.msg);
    w->open = true;
    assert_int_equal(cu_ledger_state_hash(&w->st.ledger, &after), 0);
    if (!cu_hash_eq(&before, &after) || strcmp(prod, w->st.ident.id) != 0)
        FAILF(w, "the reopened state differs from the one closed");
    check_money(w);
}

/* ---- the sequences ------------------------------------------------------------------------ */

static const char *temp_base(void)
{
    /* Commits fsync (synchronous=FULL): a memory file system keeps the
     * test fast; durability is the crash test's subject, not this one's. */
    if (access("/dev/shm", W_OK | X_OK) == 0)
        return "/dev/shm";
    return getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
}

/* Takes the open exchange back to before migration 15 (no kept job
 * counts; and so before 16 and 17), or with before_17 only to before 17
 * (payable on the jobs row, no validator flag), and reopens it: the
 * migrations must fill the counts of the jobs already there, whatever
 * state they are in, and carry the payable counts over. */
static void remigrate_counts(struct world *w, bool before_17)
{
    /* Undoes 18 (the nonces back in the old table) and 17: payable back
     * on the jobs row (its value, as 14's triggers kept it), the flag and
     * the new triggers gone. */
    static const char *const downgrade_17 =
        /* migration 25's counts first: a finished task counts its held
         * replicas again (tasks_counts_move puts them back into the
         * job's payable), */
        "UPDATE tasks SET held = (SELECT COUNT(*) FROM replicas r WHERE r.job_id = tasks.job_id "
        "AND r.task_idx = tasks.idx AND r.state IN ('leased','running','reported')) "
        "WHERE state NOT IN ('queued','running'); "
        /* migration 24's index of held replicas, */
        "DROP INDEX replicas_held_by; "
        "CREATE INDEX replicas_provider ON replicas(provider) WHERE provider IS NOT NULL; "
        /* migration 22's chains next (20's undo below rebuilds
         * ledger_txs without their links and with both indexes), */
        "DROP TABLE ledger_accounts; "
        /* migration 21's index of paid replicas, */
        "DROP INDEX replicas_trades; "
        /* then migration 20: 15's task triggers (no payable) and 17's
         * job trigger (no quorum), the index
         * of tasks by state, replicas_provider over every replica, and
         * ledger_txs keyed by (height, idx) with seq and both accounts
         * indexed... */
        "DROP TRIGGER tasks_counts_new; DROP TRIGGER tasks_counts_move; "
        "DROP TRIGGER tasks_counts_gone; DROP TRIGGER jobs_counts_new; "
        "ALTER TABLE job_counts DROP COLUMN quorum; "
        "CREATE TRIGGER jobs_counts_new AFTER INSERT ON jobs "
        "BEGIN INSERT OR IGNORE INTO job_counts (job_id, validator) VALUES (NEW.id, "
        "json_extract(NEW.spec_json, '$.validator.command') IS NOT NULL); END; "
        "CREATE TRIGGER tasks_counts_new AFTER INSERT ON tasks BEGIN "
        "UPDATE job_counts SET queued = queued + (NEW.state = 'queued'), "
        "running = running + (NEW.state = 'running'), done = done + (NEW.state = 'done'), "
        "failed = failed + (NEW.state = 'failed'), "
        "cancelled = cancelled + (NEW.state = 'cancelled') WHERE job_id = NEW.job_id; END; "
        "CREATE TRIGGER tasks_counts_move AFTER UPDATE OF state ON tasks "
        "WHEN NEW.state IS NOT OLD.state BEGIN UPDATE job_counts SET "
        "queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'), "
        "running = running + (NEW.state = 'running') - (OLD.state = 'running'), "
        "done = done + (NEW.state = 'done') - (OLD.state = 'done'), "
        "failed = failed + (NEW.state = 'failed') - (OLD.state = 'failed'), "
        "cancelled = cancelled + (NEW.state = 'cancelled') - (OLD.state = 'cancelled') "
        "WHERE job_id = NEW.job_id; END; "
        "CREATE TRIGGER tasks_counts_gone AFTER DELETE ON tasks BEGIN "
        "UPDATE job_counts SET queued = queued - (OLD.state = 'queued'), "
        "running = running - (OLD.state = 'running'), done = done - (OLD.state = 'done'), "
        "failed = failed - (OLD.state = 'failed'), "
        "cancelled = cancelled - (OLD.state = 'cancelled') WHERE job_id = OLD.job_id; END; "
        "CREATE INDEX tasks_state ON tasks(job_id, state); "
        "DROP INDEX replicas_provider; CREATE INDEX replicas_provider ON replicas(provider); "
        "CREATE TABLE ledger_txs_19 (txid TEXT NOT NULL, "
        "height INTEGER NOT NULL REFERENCES ledger_blocks(height), idx INTEGER NOT NULL, "
        "seq INTEGER NOT NULL UNIQUE, type TEXT NOT NULL, from_id TEXT, to_id TEXT, job TEXT, "
        "amount INTEGER, time_ms INTEGER NOT NULL, PRIMARY KEY (height, idx)); "
        "INSERT INTO ledger_txs_19 SELECT txid, height, idx, seq, type, from_id, to_id, job, "
        "amount, time_ms FROM ledger_txs; DROP TABLE ledger_txs; "
        "ALTER TABLE ledger_txs_19 RENAME TO ledger_txs; "
        "CREATE INDEX ledger_txs_from ON ledger_txs(from_id, seq); "
        "CREATE INDEX ledger_txs_to ON ledger_txs(to_id, seq); "
        /* ...then migration 19's index... */
        "DROP INDEX replicas_queued; "
        "CREATE INDEX replicas_claim ON replicas(job_id, state, task_idx); "
        "DROP INDEX replicas_provider; CREATE INDEX replicas_paid ON replicas(provider, paid); "
        "INSERT OR IGNORE INTO nonces (key, nonce, ts_ms) SELECT key, nonce, ts_ms "
        "FROM nonces_signed; DROP TABLE nonces_signed; "
        "ALTER TABLE jobs ADD COLUMN payable INTEGER NOT NULL DEFAULT 0; "
        "UPDATE jobs SET payable = (SELECT c.payable FROM job_counts c WHERE c.job_id = jobs.id); "
        "DROP TRIGGER replicas_held_up; DROP TRIGGER replicas_held_down; "
        "DROP TRIGGER replicas_held_new; DROP TRIGGER replicas_held_gone; "
        "ALTER TABLE job_counts DROP COLUMN payable; ALTER TABLE job_counts DROP COLUMN validator; "
        "PRAGMA user_version = 16;";
    static const char *const downgrade =
        "DROP TRIGGER jobs_counts_new; DROP TRIGGER jobs_counts_gone; "
        "DROP TRIGGER tasks_counts_new; DROP TRIGGER tasks_counts_move; "
        "DROP TRIGGER tasks_counts_gone; DROP TRIGGER replicas_cu_move; "
        "DROP TRIGGER replicas_cu_new; DROP TRIGGER replicas_cu_gone; "
        "DROP TABLE job_counts; "
        /* ...and migration 16's, which comes after it. */
        "DROP INDEX jobs_min_reputation; ALTER TABLE providers DROP COLUMN score_lag; "
        "ALTER TABLE providers DROP COLUMN score_ms; PRAGMA user_version = 14;";
    char path[CU_PATH_MAX];
    struct cu_err e = {0};
    sqlite3 *db = NULL;

    ex_state_close(&w->st);
    w->open = false;
    assert_int_equal(cu_path_join(path, sizeof path, w->dir, "state.db"), 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, downgrade_17, NULL, NULL, NULL) != SQLITE_OK)
        FAILF(w, "downgrade to 16: %s", sqlite3_errmsg(db));
    if (!before_17 && sqlite3_exec(db, downgrade, NULL, NULL, NULL) != SQLITE_OK)
        FAILF(w, "downgrade: %s", sqlite3_errmsg(db));
    {
        /* What migration 25 will have to take back out. */
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT COUNT(*) FROM tasks WHERE held > 0 AND "
                                            "state NOT IN ('queued','running')",
                                            -1, &s, NULL),
                         SQLITE_OK);
        if (sqlite3_step(s) == SQLITE_ROW)
            totals.remig_finished_held += (uint64_t)sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    if (ex_state_open(&w->st, w->dir, 20000, true, &e) != 0)
        FAILF(w, "reopen: %s", e.msg);
    w->open = true;
    totals.remigrations++;
}

static void run_sequence(struct world *w, uint64_t seed, int remigrate_at, bool before_17)
{
    struct cu_err e = {0};
    int nops;

    w->seed = seed;
    w->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    w->step = 0;
    w->njobs = 0;
    w->nleases = 0;
    w->minted = 0;
    for (int a = 0; a < NACCT; a++)
        w->acct[a].given = w->acct[a].sent = 0;
    assert_int_equal(cu_snprintf(w->dir, sizeof w->dir, "%s/cu_moneyprop_XXXXXX", temp_base()), 0);
    assert_non_null(mkdtemp(w->dir));
    if (ex_state_open(&w->st, w->dir, 20000, true, &e) != 0)
        FAILF(w, "open: %s", e.msg);
    w->open = true;
    for (int p = 0; p < NPROV; p++)
        op_hello(w, p);
    for (int r = 0; r < NREQ; r++)
        op_faucet(w, r);
    check_money(w);

    nops = (int)rnd_in(w, MIN_OPS, MAX_OPS);
    for (w->step = 1; w->step <= nops; w->step++) {
        unsigned k = (unsigned)rnd_in(w, 0, 99);
        if (k < 5)
            op_faucet(w, (int)rnd_in(w, 0, NACCT - 1));
        else if (k < 12)
            op_transfer(w);
        else if (k < 27)
            op_submit(w);
        else if (k < 30)
            op_hello(w, (int)rnd_in(w, 0, NPROV - 1));
        else if (k < 52)
            (void)op_claim(w, (int)rnd_in(w, 0, NPROV - 1));
        else if (k < 70)
            op_report(w);
        else if (k < 80)
            op_report_batch(w);
        else if (k < 87)
            op_heartbeat(w);
        else if (k < 93)
            op_reap(w);
        else
            op_cancel(w);
        check_money(w);
        if (w->step % 8 == 0)
            check_metrics(w);
        if (w->step == remigrate_at) {
            remigrate_counts(w, before_17);
            check_money(w);
        }
    }
    totals.ops += (uint64_t)nops;
    w->step = -1; /* the end */
    drain(w);
    check_metrics(w);
    final_checks(w);
    ex_state_close(&w->st);
    w->open = false;
    assert_int_equal(cu_rm_rf(w->dir), 0);
    w->dir[0] = '\0';
    totals.seqs++;
}

static int group_setup(void **state)
{
    (void)state;
    if (cu_crypto_init() != 0)
        return -1;
    /* The exchange logs every lease and report; only errors matter here. */
    cu_log_set_level(CU_LOG_ERROR);
    W = calloc(1, sizeof *W);
    if (!W)
        return -1;
    for (int a = 0; a < NACCT; a++)
        if (cu_identity_generate(&W->acct[a].id) != 0)
            return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!W)
        return 0;
    if (W->open)
        ex_state_close(&W->st);
    if (W->dir[0])
        (void)cu_rm_rf(W->dir);
    for (int a = 0; a < NACCT; a++)
        cu_identity_wipe(&W->acct[a].id);
    free(W);
    W = NULL;
    return 0;
}

static void test_random_sequences(void **state)
{
    const char *env = getenv("CU_MONEY_SEQS");
    const char *first = getenv("CU_MONEY_SEED");
    uint64_t nseq = env && env[0] ? strtoull(env, NULL, 10) : DEFAULT_SEQS;
    uint64_t seed0 = first && first[0] ? strtoull(first, NULL, 10) : 1;
    int64_t t0 = cu_mono_ms();

    (void)state;
    for (uint64_t seed = seed0; seed < seed0 + nseq; seed++)
        run_sequence(W, seed, 0, false);
    fprintf(stderr,
            "# %llu sequences, %llu random operations (+ drains), %llu submits, %llu leases, "
            "%llu reports, %llu paid replicas, %llu ledger txs, %llu batched claims (%llu "
            "leases), %llu batched reports, %lld ms\n",
            (unsigned long long)totals.seqs, (unsigned long long)totals.ops,
            (unsigned long long)totals.submits, (unsigned long long)totals.claims,
            (unsigned long long)totals.reports, (unsigned long long)totals.accepted_paid,
            (unsigned long long)totals.txs, (unsigned long long)totals.batch_claims,
            (unsigned long long)totals.batch_leases, (unsigned long long)totals.batch_reports,
            (long long)(cu_mono_ms() - t0));
    /* The sequences must actually have moved money, and batches have been
     * tried. */
    assert_true(totals.accepted_paid > nseq);
    assert_true(totals.batch_claims > nseq / 10);
    assert_true(totals.batch_reports > nseq / 10);
}

/* A batched claim never leases two replicas of one task to one provider
 * or to two providers of one owner, nor beyond the job's escrow: provider
 * 1 declares provider 0's owner; jobs of replication 3. */
/* The job counts of migration 15 are filled right for databases that
 * existed before it, whatever their jobs went through. */
static void test_counts_migration(void **state)
{
    (void)state;
    totals.remigrations = 0;
    totals.remig_finished_held = 0;
    for (uint64_t seed = 1000; seed < 1020; seed++)
        run_sequence(W, seed, (int)(seed % 2 ? MIN_OPS : MIN_OPS / 2), false);
    assert_int_equal(totals.remigrations, 20);
}

/* Migration 17 carries each job's payable count over from the jobs row
 * and sets the validator flag of the jobs already there. */
static void test_payable_migration(void **state)
{
    (void)state;
    totals.remigrations = 0;
    for (uint64_t seed = 2000; seed < 2010; seed++)
        run_sequence(W, seed, (int)(seed % 2 ? MIN_OPS : MIN_OPS / 2), true);
    assert_int_equal(totals.remigrations, 10);
}

/* A fresh world for the batch tests: every provider said hello, providers
 * 0 and 2 with room for 64 tasks, provider 1 the same but owned by
 * provider 0, every requester funded, and njobs jobs of 4 tasks with
 * replication 3 queued. */
static void batch_world_open(struct world *w, int njobs)
{
    struct ex_hello h = {.slots = 8, .cores = 64, .memory = 1ULL << 40, .version = "test"};
    struct cu_err e = {0};
    struct ex_fail f = {0};

    w->seed = 7;
    w->rng = 7 * 0x9E3779B97F4A7C15ULL + 1;
    w->step = 0;
    w->njobs = w->nleases = 0;
    w->minted = 0;
    for (int a = 0; a < NACCT; a++)
        w->acct[a].given = w->acct[a].sent = 0;
    assert_int_equal(cu_snprintf(w->dir, sizeof w->dir, "%s/cu_moneyprop_XXXXXX", temp_base()), 0);
    assert_non_null(mkdtemp(w->dir));
    if (ex_state_open(&w->st, w->dir, 20000, true, &e) != 0)
        FAILF(w, "open: %s", e.msg);
    w->open = true;
    for (int p = 0; p < NPROV; p++)
        op_hello(w, p);
    for (int p = 0; p < NPROV; p++)
        w->prov[p].ask = 1;
    h.price_per_cu = 1;
    h.cu_factor_milli = 1000;
    assert_int_equal(ex_provider_hello(&w->st, w->acct[ACCT_PROV(0)].id.id, &h, cu_now_ms(), &f), 0);
    assert_int_equal(ex_provider_hello(&w->st, w->acct[ACCT_PROV(2)].id.id, &h, cu_now_ms(), &f), 0);
    h.owner = w->acct[ACCT_PROV(0)].id.id;
    assert_int_equal(ex_provider_hello(&w->st, w->acct[ACCT_PROV(1)].id.id, &h, cu_now_ms(), &f), 0);
    for (int r = 0; r < NREQ; r++)
        op_faucet(w, r);
    for (int j = 0; j < njobs; j++)
        submit_job(w, j % NREQ, 4, 3);
    assert_true(w->njobs > 0);
}

static void batch_world_close(struct world *w)
{
    ex_state_close(&w->st);
    w->open = false;
    assert_int_equal(cu_rm_rf(w->dir), 0);
    w->dir[0] = '\0';
}

static void test_batch_owners(void **state)
{
    const struct ex_free fr = {.cores = 64, .memory = 1ULL << 40, .gpus = 0};
    struct world *w = W;
    struct ex_fail f = {0};
    json_t *ans = NULL;
    int tasks_of[MAX_JOBS][8];
    size_t got[2] = {0, 0};

    (void)state;
    memset(tasks_of, 0, sizeof tasks_of);
    batch_world_open(w, 4);
    for (int p = 0; p < 2; p++) {
        assert_int_equal(
            ex_claim_batch(&w->st, w->acct[ACCT_PROV(p)].id.id, &fr, 0, 64, &ans, &f), 0);
        if (!ans)
            continue;
        const json_t *list = json_object_get(ans, "leases");
        got[p] = json_array_size(list);
        for (size_t k = 0; k < json_array_size(list); k++) {
            const json_t *l = json_array_get(list, k);
            int j = job_index(w, json_string_value(json_object_get(l, "job")));
            int64_t t = jint(l, "task");
            assert_true(j >= 0 && t >= 0 && t < 8);
            /* One owner: at most one replica of each task over both. */
            if (tasks_of[j][t]++ != 0)
                FAILF(w, "owner got two replicas of task %s/%lld", w->jobs[j].id, (long long)t);
            (void)add_lease(w, p, l);
        }
        json_decref(ans);
        ans = NULL;
        check_money(w); /* escrow covers every replica out */
    }
    /* Provider 0 took one replica of every task; provider 1 none. */
    assert_int_equal(got[0], (size_t)w->njobs * 4);
    assert_int_equal(got[1], 0);
    /* Provider 2 (its own owner) may take the others' tasks again. */
    assert_int_equal(ex_claim_batch(&w->st, w->acct[ACCT_PROV(2)].id.id, &fr, 0, 64, &ans, &f),
                     0);
    assert_non_null(ans);
    assert_true(json_array_size(json_object_get(ans, "leases")) > 0);
    for (size_t k = 0; k < json_array_size(json_object_get(ans, "leases")); k++)
        (void)add_lease(w, 2, json_array_get(json_object_get(ans, "leases"), k));
    json_decref(ans);
    check_money(w);
    batch_world_close(w);
}

/* Leases granted to provider p for a claim of max while waiting other
 * claims are counted as queued for the state (claim_share); each is
 * recorded and the money checked. */
static size_t claim_while_queued(struct world *w, int p, unsigned max, unsigned waiting)
{
    const struct ex_free fr = {.cores = 64, .memory = 1ULL << 40, .gpus = 0};
    struct ex_fail f = {0};
    json_t *ans = NULL;
    size_t n;

    __atomic_store_n(&w->st.reports.claims_waiting, waiting, __ATOMIC_SEQ_CST);
    assert_int_equal(ex_claim_batch(&w->st, w->acct[ACCT_PROV(p)].id.id, &fr, 0, max, &ans, &f),
                     0);
    __atomic_store_n(&w->st.reports.claims_waiting, 0, __ATOMIC_SEQ_CST);
    n = json_array_size(json_object_get(ans, "leases"));
    for (size_t k = 0; k < n; k++)
        (void)add_lease(w, p, json_array_get(json_object_get(ans, "leases"), k));
    json_decref(ans);
    check_money(w);
    return n;
}

/* While other claims queue for the exchange's state, a batch takes
 * EX_CLAIM_QUEUE_LEASES / (queued + 1), at least EX_CLAIM_SHARE_MIN, never
 * more than max; with none queued, all it asked for (24 tasks queued, one
 * replica of each per owner). */
static void test_batch_share(void **state)
{
    struct world *w = W;

    (void)state;
    assert_int_equal(EX_CLAIM_QUEUE_LEASES, 32); /* the figures below */
    batch_world_open(w, 6);
    assert_int_equal(w->njobs, 6);
    assert_int_equal(claim_while_queued(w, 2, 16, 7), 4);
    assert_int_equal(claim_while_queued(w, 2, 16, 3), 8);
    assert_int_equal(claim_while_queued(w, 2, 16, 0), 12); /* what was left to it */
    assert_int_equal(claim_while_queued(w, 0, 3, 10), 3);
    assert_int_equal(claim_while_queued(w, 0, 16, 10), EX_CLAIM_SHARE_MIN);
    assert_int_equal(claim_while_queued(w, 0, 64, 1), 16); /* 32 / 2 */
    assert_int_equal(claim_while_queued(w, 0, 64, 0), 1);
    batch_world_close(w);
}

/* A task whose quorum agreed while a third replica is still out counts
 * no held replica (nothing of it will be paid); the one out leaves
 * without a write of the task. Migration 25 takes back what a finished
 * task counted before it (the remigration puts the old count back). */
static void test_finished_task_held(void **state)
{
    const struct ex_free fr = {.cores = 64, .memory = 1ULL << 40, .gpus = 0};
    struct ex_hello h = {.slots = 8, .cores = 64, .memory = 1ULL << 40, .version = "test",
                         .price_per_cu = 1, .cu_factor_milli = 1000};
    struct world *w = W;
    struct ex_fail f = {0};
    struct ex_report r;
    char root[CU_HASH_HEX_LEN + 1];
    const int provs[3] = {0, 2, 3}; /* three owners */
    json_t *ans = NULL;
    sqlite3_stmt *s = NULL;
    int64_t done_held = -1;

    (void)state;
    submit_quorum = 2;
    batch_world_open(w, 1); /* 4 tasks, replication 3, quorum 2 */
    submit_quorum = 0;
    assert_int_equal(ex_provider_hello(&w->st, w->acct[ACCT_PROV(3)].id.id, &h, cu_now_ms(), &f),
                     0);
    w->prov[3].ask = 1;
    for (int k = 0; k < 3; k++) {
        assert_int_equal(ex_claim_batch(&w->st, w->acct[ACCT_PROV(provs[k])].id.id, &fr, 0, 64,
                                        &ans, &f),
                         0);
        assert_non_null(ans);
        assert_int_equal(json_array_size(json_object_get(ans, "leases")), 4);
        for (size_t n = 0; n < 4; n++)
            (void)add_lease(w, provs[k], json_array_get(json_object_get(ans, "leases"), n));
        json_decref(ans);
        ans = NULL;
    }
    assert_int_equal(w->nleases, 12);
    /* Every replica commits to its result (a reveal waits for the
     * others' commits); provider 3 then holds on while 0 and 2 agree. */
    for (int i = 0; i < w->nleases; i++)
        assert_true(report_prepare(w, i, EX_ST_OK, false, 10, &r, root));
    for (int i = 0; i < w->nleases; i++)
        if (w->leases[i].prov != 3) {
            report(w, i, EX_ST_OK, false, 10);
            assert_true(w->leases[i].reported);
        }
    check_counts(w);
    check_money(w);
    assert_int_equal(sqlite3_prepare_v2(w->st.db.h,
                                        "SELECT COUNT(*) FROM tasks WHERE state = 'done' AND "
                                        "held = 0",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    done_held = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    assert_int_equal(done_held, 4);
    /* From before migration 25: each done task counted provider 3's
     * replica; the migration takes it back out of the task and the job. */
    totals.remig_finished_held = 0;
    remigrate_counts(w, false);
    assert_int_equal(totals.remig_finished_held, 4);
    check_counts(w);
    check_money(w);
    /* Provider 3's replicas report after the task ended: no count moves. */
    for (int i = 0; i < w->nleases; i++)
        if (w->leases[i].prov == 3)
            report(w, i, EX_ST_OK, false, 10);
    check_counts(w);
    check_money(w);
    batch_world_close(w);
}

/* A job stored before escrow existed (replica_max 0) settles nothing,
 * yet a report its quorum accepts at once is written with the move to
 * accepted (ex_settle_accept's branch for such jobs): every field of
 * the report, nothing paid, the task done, the counts kept. */
static void test_unpriced_accept(void **state)
{
    const struct ex_free fr = {.cores = 64, .memory = 1ULL << 40, .gpus = 0};
    struct world *w = W;
    struct ex_fail f = {0};
    json_t *ans = NULL;
    sqlite3_stmt *s = NULL;
    char *err = NULL, sql[160];
    int j, reported = 0;

    (void)state;
    batch_world_open(w, 1);
    submit_job(w, 0, 3, 1);
    j = w->njobs - 1;
    assert_int_equal(j, 1);
    assert_int_equal(cu_snprintf(sql, sizeof sql,
                                 "UPDATE jobs SET replica_max = 0 WHERE id = '%s'", w->jobs[j].id),
                     0);
    assert_int_equal(sqlite3_exec(w->st.db.h, sql, NULL, NULL, &err), SQLITE_OK);
    assert_int_equal(ex_claim_batch(&w->st, w->acct[ACCT_PROV(2)].id.id, &fr, 0, 64, &ans, &f),
                     0);
    assert_non_null(ans);
    for (size_t k = 0; k < json_array_size(json_object_get(ans, "leases")); k++)
        (void)add_lease(w, 2, json_array_get(json_object_get(ans, "leases"), k));
    json_decref(ans);
    for (int i = 0; i < w->nleases; i++) {
        if (w->leases[i].job != j)
            continue;
        report(w, i, EX_ST_OK, false, 10); /* check_report_row: fields kept, unpaid */
        assert_true(w->leases[i].reported);
        reported++;
    }
    assert_int_equal(reported, 3);
    check_counts(w);
    assert_int_equal(sqlite3_prepare_v2(w->st.db.h,
                                        "SELECT COUNT(*) FROM replicas r JOIN tasks t ON "
                                        "t.job_id = r.job_id AND t.idx = r.task_idx WHERE "
                                        "r.job_id = ?1 AND r.state = 'accepted' AND "
                                        "r.paid IS NULL AND t.state = 'done'",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, w->jobs[j].id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(s, 0), 3);
    sqlite3_finalize(s);
    batch_world_close(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_sequences),
        cmocka_unit_test(test_batch_owners),
        cmocka_unit_test(test_batch_share),
        cmocka_unit_test(test_unpriced_accept),
        cmocka_unit_test(test_finished_task_held),
        cmocka_unit_test(test_counts_migration),
        cmocka_unit_test(test_payable_migration),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
