/* ledger.c - appending signed transactions in blocks, then replaying and
 * verifying the whole exported ledger (issue 6, `ledger` row).
 *
 *   build/bench/ledger [--txs N] [--block B] [--accounts A] [--transfer-pct P]
 *                      [--runs R]
 *   (default 1,000,000 transactions, 1,000 per block, 2,000 accounts,
 *    10 % transfers, 3 verify runs)
 *
 * The workload is what the exchange's settlement writes (src/ledger/tx.h):
 * every account is funded by a faucet_mint; jobs lock escrow (escrow_lock
 * carrying the requester's signed job request), each settled task writes
 * escrow_release (pay to a provider) + fee (to the exchange) + task_record,
 * a finished job writes a refund of what is left; between them, transfers
 * signed by random accounts (P % of all transactions). Eight jobs settle
 * at once, interleaved. Transfers and job requests are signed before the
 * clock starts (the client's cost): a first pass of the same deterministic
 * generator signs them, the timed pass replays it.
 *
 * Append (timed, per block of B transactions), the way the exchange's
 * ex_ledger_stage + append_block do it (src/exchange/ledger.c): copy the
 * state, cu_ledger_apply each transaction to the copy (rules, transfer
 * signatures, escrow authorizations) and compute its id, seal the block
 * (Merkle root, producer signature), hash it, export its line, then one
 * SQLite transaction (BEGIN IMMEDIATE; INSERT into ledger_blocks and one
 * row per transaction into ledger_txs; COMMIT) on a database opened with
 * cu_db_open and the exchange's own schema (WAL, synchronous=FULL), and
 * the copy replaces the state. The line is also appended to an export
 * file (buffered, like `cumulus ledger export` writes it).
 *
 * Verify: `cumulus ledger verify FILE` (the real binary, as a user runs
 * it) on the export, R times; verify_tx_per_s = transactions / CPU seconds
 * of that process (user + sys: it is single-threaded, so this is per
 * core); the wall figure is reported too.
 *
 * Size: bytes_per_tx = export bytes / transactions. A task settles as
 * escrow_release + fee + task_record: settle_bytes_per_1000_tasks is 1000
 * x the mean exported size of those three (each transaction object with
 * its id and the comma that separates it, measured on every 8th
 * transaction of the generator) plus their share of the block header
 * line; task_bytes_per_1000_tasks adds each job's escrow_lock and refund
 * spread over its tasks. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "benchlib.h"
#include "exchange/state.h"
#include "ledger/block.h"
#include "ledger/export.h"
#include "ledger/state.h"
#include "ledger/tx.h"
#include "store/db.h"

#include "base/banned.h"

#define ACTIVE_JOBS 8
#define TASKS_PER_JOB 1000
#define PAY 100      /* base units per task to the provider */
#define FEE 10       /* to the exchange */
#define UNUSED 50    /* per task locked but never spent: refunded */
#define MINT 1000000000000ULL
#define T0_MS 1700000000000LL
#define SIZE_SAMPLE 8 /* measure the exported size of every 8th tx */

/* ---- the deterministic workload ---------------------------------------------- */

struct job {
    char name[CU_LEDGER_NAME_MAX + 1];
    unsigned owner;     /* account index */
    unsigned next_task; /* tasks settled so far */
    bool locked;
    uint64_t no; /* job number: index into the signed requests */
};

struct gen {
    uint64_t rng;
    uint64_t seq;       /* seq of the next transaction */
    unsigned naccounts; /* the first half request jobs, the second half provide */
    const struct cu_identity *accounts;
    const char *exchange; /* fee account (the producer) */
    uint64_t *nonce;      /* per account */
    unsigned transfer_permille;
    struct job jobs[ACTIVE_JOBS];
    uint64_t njobs; /* jobs started so far */
    /* settling a task: phase 1 = fee next, 2 = task_record next */
    unsigned phase, cur;
    char cur_seller[CU_ID_LEN + 1];
    uint64_t release_seq;
    /* the signatures made by pass 1, used by pass 2 */
    bool signing;
    unsigned char (*sigs)[CU_SIG_LEN];
    uint64_t nsigs, sigcap, transfers;
    char **auths;
    uint64_t nauths, authcap;
    char *spec_body; /* a job request body (canonical spec JSON) */
};

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void set_str(char *dst, size_t cap, const char *s)
{
    if (cu_snprintf(dst, cap, "%s", s) != 0)
        bl_die("string too long: %s", s);
}

static void new_job(struct gen *g, unsigned slot)
{
    struct job *j = &g->jobs[slot];

    memset(j, 0, sizeof *j);
    j->no = g->njobs++;
    j->owner = (unsigned)(rng_next(&g->rng) % (g->naccounts / 2));
    (void)cu_snprintf(j->name, sizeof j->name, "j-%024llx",
                      (unsigned long long)(rng_next(&g->rng) & 0xffffffffffffULL) << 48 | j->no);
}

/* The requester's signed POST /v1/jobs for job j, as the exchange keeps it
 * in escrow_lock (pass 1 makes it, pass 2 reuses it). */
static const char *job_auth(struct gen *g, const struct job *j)
{
    if (!g->signing) {
        if (j->no >= g->nauths || !g->auths[j->no])
            bl_die("job %llu was not signed in the first pass", (unsigned long long)j->no);
        return g->auths[j->no];
    }
    struct cu_sig_headers h;
    struct cu_hash bh;
    char *auth = NULL;
    size_t n = strlen(g->spec_body);

    cu_hash_mem(g->spec_body, n, &bh);
    cu_reqsign_make(&g->accounts[j->owner], "POST", "/v1/jobs", &bh,
                    T0_MS / 1000 + (int64_t)j->no, &h);
    if (cu_tx_auth_make("POST", "/v1/jobs", g->spec_body, n, &h, &auth) != 0)
        bl_die("cannot build a job authorization");
    /* Jobs lock in random order: keep each at its job number. */
    while (j->no >= g->authcap) {
        uint64_t cap = g->authcap ? 2 * g->authcap : 64;
        g->auths = realloc(g->auths, cap * sizeof *g->auths);
        if (!g->auths)
            bl_die("out of memory");
        memset(g->auths + g->authcap, 0, (cap - g->authcap) * sizeof *g->auths);
        g->authcap = cap;
    }
    free(g->auths[j->no]);
    g->auths[j->no] = auth;
    if (j->no >= g->nauths)
        g->nauths = j->no + 1;
    return auth;
}

/* Fills tx (initialised here) with the next transaction of the stream. */
static void gen_next(struct gen *g, struct cu_tx *tx)
{
    unsigned half = g->naccounts / 2;
    struct job *j;

    if (g->seq < g->naccounts) { /* funding: one faucet_mint per account */
        cu_tx_init(tx, CU_TX_FAUCET_MINT);
        set_str(tx->to, sizeof tx->to, g->accounts[g->seq].id);
        tx->amount = MINT;
        goto out_seq;
    }
    if (g->phase == 1) {
        j = &g->jobs[g->cur];
        cu_tx_init(tx, CU_TX_FEE);
        set_str(tx->to, sizeof tx->to, g->exchange);
        tx->amount = FEE;
        set_str(tx->job, sizeof tx->job, j->name);
        (void)cu_snprintf(tx->replica, sizeof tx->replica, "r-%llu-%u",
                          (unsigned long long)j->no, j->next_task);
        g->phase = 2;
        goto out_seq;
    }
    if (g->phase == 2) {
        j = &g->jobs[g->cur];
        cu_tx_init(tx, CU_TX_TASK_RECORD);
        set_str(tx->job, sizeof tx->job, j->name);
        (void)cu_snprintf(tx->replica, sizeof tx->replica, "r-%llu-%u",
                          (unsigned long long)j->no, j->next_task);
        set_str(tx->rec.id, sizeof tx->rec.id, tx->replica);
        tx->rec.time_ms = T0_MS + (int64_t)(g->seq / 16);
        set_str(tx->rec.client, sizeof tx->rec.client, g->accounts[j->owner].id);
        set_str(tx->rec.seller, sizeof tx->rec.seller, g->cur_seller);
        tx->rec.task = j->next_task;
        tx->rec.tx_number = g->release_seq;
        tx->rec.incentive = PAY;
        tx->rec.status = CU_TASK_SUCCESS;
        tx->rec.duration_ms = 400 + rng_next(&g->rng) % 200;
        set_str(tx->rec.task_type, sizeof tx->rec.task_type, "cpu");
        j->next_task++;
        g->phase = 0;
        goto out_seq;
    }
    if (rng_next(&g->rng) % 1000 < g->transfer_permille) {
        unsigned a = (unsigned)(rng_next(&g->rng) % g->naccounts);
        unsigned b = (unsigned)(rng_next(&g->rng) % (g->naccounts - 1));
        if (b >= a)
            b++;
        cu_tx_init(tx, CU_TX_TRANSFER);
        tx->time_ms = T0_MS + (int64_t)(g->seq / 16);
        set_str(tx->to, sizeof tx->to, g->accounts[b].id);
        tx->amount = 1 + rng_next(&g->rng) % 1000;
        tx->nonce = g->nonce[a]++;
        if (g->signing) {
            if (cu_tx_sign(tx, &g->accounts[a]) != 0)
                bl_die("cannot sign a transfer");
            if (g->nsigs == g->sigcap) {
                g->sigcap = g->sigcap ? 2 * g->sigcap : 1024;
                g->sigs = realloc(g->sigs, g->sigcap * sizeof *g->sigs);
                if (!g->sigs)
                    bl_die("out of memory");
            }
            memcpy(g->sigs[g->nsigs++], tx->sig, CU_SIG_LEN);
        } else {
            if (g->transfers >= g->nsigs)
                bl_die("transfer %llu was not signed in the first pass",
                       (unsigned long long)g->transfers);
            set_str(tx->from, sizeof tx->from, g->accounts[a].id);
            memcpy(tx->sig, g->sigs[g->transfers], CU_SIG_LEN);
            tx->has_sig = true;
        }
        g->transfers++;
        tx->seq = g->seq++; /* not signed: the producer's placement */
        return;
    }
    g->cur = (unsigned)(rng_next(&g->rng) % ACTIVE_JOBS);
    j = &g->jobs[g->cur];
    if (!j->locked) {
        const char *auth = job_auth(g, j);
        cu_tx_init(tx, CU_TX_ESCROW_LOCK);
        set_str(tx->from, sizeof tx->from, g->accounts[j->owner].id);
        tx->amount = (uint64_t)TASKS_PER_JOB * (PAY + FEE + UNUSED);
        set_str(tx->job, sizeof tx->job, j->name);
        if (cu_tx_set_authorization(tx, auth, strlen(auth)) != 0)
            bl_die("out of memory");
        j->locked = true;
    } else if (j->next_task < TASKS_PER_JOB) {
        unsigned p = half + (unsigned)(rng_next(&g->rng) % (g->naccounts - half));
        cu_tx_init(tx, CU_TX_ESCROW_RELEASE);
        set_str(g->cur_seller, sizeof g->cur_seller, g->accounts[p].id);
        set_str(tx->to, sizeof tx->to, g->cur_seller);
        tx->amount = PAY;
        set_str(tx->job, sizeof tx->job, j->name);
        (void)cu_snprintf(tx->replica, sizeof tx->replica, "r-%llu-%u",
                          (unsigned long long)j->no, j->next_task);
        g->release_seq = g->seq;
        g->phase = 1;
    } else {
        cu_tx_init(tx, CU_TX_REFUND);
        set_str(tx->to, sizeof tx->to, g->accounts[j->owner].id);
        tx->amount = (uint64_t)TASKS_PER_JOB * UNUSED;
        set_str(tx->job, sizeof tx->job, j->name);
        new_job(g, g->cur);
    }
out_seq:
    tx->time_ms = T0_MS + (int64_t)(g->seq / 16);
    tx->seq = g->seq++;
}

static void gen_init(struct gen *g, const struct cu_identity *accounts, unsigned n,
                     const char *exchange, unsigned transfer_permille, const char *spec_body)
{
    memset(g, 0, sizeof *g);
    g->rng = 42;
    g->accounts = accounts;
    g->naccounts = n;
    g->exchange = exchange;
    g->transfer_permille = transfer_permille;
    g->spec_body = (char *)spec_body;
    g->nonce = calloc(n, sizeof *g->nonce);
    if (!g->nonce)
        bl_die("out of memory");
    for (unsigned i = 0; i < ACTIVE_JOBS; i++)
        new_job(g, i);
}

/* Rewinds to the start of the stream, keeping what pass 1 signed. */
static void gen_rewind(struct gen *g)
{
    g->rng = 42;
    g->seq = 0;
    g->njobs = 0;
    g->phase = 0;
    g->transfers = 0;
    g->signing = false;
    memset(g->nonce, 0, g->naccounts * sizeof *g->nonce);
    for (unsigned i = 0; i < ACTIVE_JOBS; i++)
        new_job(g, i);
}

/* ---- storing blocks with the exchange's own ex_ledger_store_block ------------------- */

struct chain {
    struct cu_db db;
    struct cu_ledger_state st;
    const struct cu_identity *producer;
    struct cu_hash tip;
    uint64_t height; /* of the last block stored */
    FILE *export;
    uint64_t export_bytes, header_bytes, blocks;
    double apply_ms, seal_ms, db_ms; /* where the time goes */
};

/* Seals and stores one block of txs[n] (moved into the block) at the next
 * height, as ex_ledger_stage + append_block do. Dies on any failure: the
 * workload is valid by construction. */
static void append_block(struct chain *c, struct cu_tx *txs, size_t n, int64_t time_ms)
{
    struct cu_ledger_state next;
    struct cu_block b;
    struct cu_buf line = CU_BUF_INIT(CU_EXPORT_LINE_MAX);
    struct cu_hash *ids = calloc(n ? n : 1, sizeof *ids), hash;
    struct cu_err e = {0};
    uint64_t height = c->blocks ? c->height + 1 : 0;
    double t0 = bl_now_ms(), t1, t2;
    int rc;

    if (!ids || cu_ledger_state_copy(&next, &c->st) != 0)
        bl_die("out of memory");
    cu_block_init(&b);
    next.height = height;
    for (size_t i = 0; i < n; i++) {
        if (txs[i].seq != next.tx_count)
            bl_die("generator seq %llu, state expects %llu", (unsigned long long)txs[i].seq,
                   (unsigned long long)next.tx_count);
        if ((rc = cu_ledger_apply(&next, &txs[i], &e)) != 0)
            bl_die("block %llu tx %zu (%s): %s", (unsigned long long)height, i,
                   cu_tx_type_name(txs[i].type), e.msg);
        if (cu_tx_id(&txs[i], &ids[i]) != 0 || cu_block_add_tx(&b, &txs[i]) != 0)
            bl_die("out of memory");
    }
    t1 = bl_now_ms();
    if (cu_block_seal(&b, height, c->blocks ? &c->tip : NULL, time_ms, true, c->producer) != 0 ||
        cu_block_hash(&b.h, &hash) != 0 || cu_export_block(&b, &line) != 0)
        bl_die("cannot seal block %llu", (unsigned long long)height);
    t2 = bl_now_ms();
    if (cu_db_begin(&c->db) != 0 || ex_ledger_store_block(&c->db, &b, ids, &hash, line.data,
                                                line.len - 1) != 0 ||
        cu_db_commit(&c->db) != 0)
        bl_die("storing block %llu: %s", (unsigned long long)height, sqlite3_errmsg(c->db.h));
    cu_ledger_state_release(&c->st);
    c->st = next;
    c->tip = hash;
    c->height = height;
    c->blocks++;
    c->apply_ms += t1 - t0;
    c->seal_ms += t2 - t1;
    c->db_ms += bl_now_ms() - t2;
    if (fwrite(line.data, 1, line.len, c->export) != line.len)
        bl_die("writing the export: %s", strerror(errno));
    c->export_bytes += line.len;
    {
        json_t *hj = cu_block_header_to_json(&b.h, true);
        struct cu_buf hb = CU_BUF_INIT(1u << 16);
        if (!hj || cu_json_dump(hj, &hb) != 0)
            bl_die("out of memory");
        /* {"header":H,"txs":[...]}\n minus the transactions */
        c->header_bytes += hb.len + strlen("{\"header\":,\"txs\":[]}\n") - (n ? 1 : 0);
        cu_buf_release(&hb);
        json_decref(hj);
    }
    cu_buf_release(&line);
    cu_block_release(&b);
    free(ids);
}

/* ---- verifying with the real CLI ------------------------------------------------ */

/* Runs `cumulus ledger verify path`; *wall_ms and *cpu_ms get its wall and
 * user+sys time. Dies unless it exits 0. */
static void run_verify(const char *path, double *wall_ms, double *cpu_ms)
{
    const char *bin = bl_cumulus();
    struct rusage ru;
    double t0 = bl_now_ms();
    int status;
    pid_t pid = fork();

    if (pid < 0)
        bl_die("fork: %s", strerror(errno));
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        execl(bin, bin, "ledger", "verify", path, (char *)NULL);
        _exit(127);
    }
    if (wait4(pid, &status, 0, &ru) != pid)
        bl_die("wait4: %s", strerror(errno));
    *wall_ms = bl_now_ms() - t0;
    *cpu_ms = (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3 +
              (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bl_die("cumulus ledger verify %s failed (status %d)", path, status);
}

/* ---- main ------------------------------------------------------------------------- */

/* The body of a realistic job request: a 1,000-task job with a price. */
static char *spec_body(void)
{
    static const char *const cmd[] = {"sh", "-c", "./render --tile $CUMULUS_TASK_INDEX", NULL};
    struct cu_spec s;
    json_t *j;
    char *body;

    bl_spec(&s, "render", cmd, TASKS_PER_JOB, NULL, NULL, "*.png");
    s.max_per_cu = 10;
    j = cu_spec_to_json(&s);
    body = j ? cu_json_dumps(j) : NULL;
    if (!body)
        bl_die("out of memory");
    json_decref(j);
    cu_spec_release(&s);
    return body;
}

struct sizes {
    uint64_t bytes[CU_TX_NTYPES], count[CU_TX_NTYPES];
};

/* Adds tx's exported size (object with id, plus its separating comma). */
static void size_of(struct sizes *sz, const struct cu_tx *tx)
{
    struct cu_buf b = CU_BUF_INIT(CU_EXPORT_LINE_MAX);
    json_t *j = cu_tx_to_json(tx, true);

    if (!j || cu_json_dump(j, &b) != 0)
        bl_die("out of memory");
    sz->bytes[tx->type] += b.len + 1;
    sz->count[tx->type]++;
    json_decref(j);
    cu_buf_release(&b);
}

static double mean_size(const struct sizes *sz, enum cu_tx_type t)
{
    return sz->count[t] ? (double)sz->bytes[t] / (double)sz->count[t] : 0;
}

int main(int argc, char **argv)
{
    uint64_t ntx = bl_opt_u64(argc, argv, "--txs", 1000000);
    uint64_t per_block = bl_opt_u64(argc, argv, "--block", 1000);
    uint64_t nacc = bl_opt_u64(argc, argv, "--accounts", 2000);
    uint64_t tpct = bl_opt_u64(argc, argv, "--transfer-pct", 10);
    uint64_t runs = bl_opt_u64(argc, argv, "--runs", 3);
    uint64_t cache_mb = bl_opt_u64(argc, argv, "--cache-mb", 0);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    struct cu_identity producer, *accounts;
    struct chain c;
    struct gen g;
    struct sizes sz;
    struct cu_err e = {0};
    struct cu_tx *txs;
    struct stat sb;
    double t0, t1, sign_ms, append_ms, *vwall, *vcpu;
    struct bl_stats sw, sc;
    size_t nm;
    const struct cu_migration *m;
    char *body;

    bl_init("ledger");
    if (nacc < 4 || nacc > 1000000 || per_block < 1 || per_block > CU_BLOCK_MAX_TXS ||
        tpct > 100 || ntx <= nacc || runs < 1 || runs > 100)
        bl_die("--txs > --accounts >= 4, --block 1..%d, --transfer-pct 0..100, --runs 1..100",
               CU_BLOCK_MAX_TXS);
    bl_tmpdir(dir, sizeof dir);
    accounts = calloc(nacc, sizeof *accounts);
    txs = calloc(per_block, sizeof *txs);
    vwall = calloc(runs, sizeof *vwall);
    vcpu = calloc(runs, sizeof *vcpu);
    if (!accounts || !txs || !vwall || !vcpu || cu_identity_generate(&producer) != 0)
        bl_die("out of memory");
    for (uint64_t i = 0; i < nacc; i++)
        if (cu_identity_generate(&accounts[i]) != 0)
            bl_die("cannot generate keys");
    body = spec_body();

    /* Pass 1 (not timed): the clients sign their transfers and job
     * requests; sizes are sampled. */
    /* A non-transfer step mostly settles a task (3 transactions): pick
     * transfers with q = 3P / (1 + 2P) per step so P of all are transfers. */
    gen_init(&g, accounts, (unsigned)nacc, producer.id, (unsigned)(3000 * tpct / (100 + 2 * tpct)),
             body);
    g.signing = true;
    memset(&sz, 0, sizeof sz);
    t0 = bl_now_ms();
    for (uint64_t i = 0; i < ntx; i++) {
        struct cu_tx tx;
        gen_next(&g, &tx);
        if (i % SIZE_SAMPLE == 0 || tx.type == CU_TX_ESCROW_LOCK || tx.type == CU_TX_REFUND)
            size_of(&sz, &tx);
        cu_tx_release(&tx);
    }
    sign_ms = bl_now_ms() - t0;
    uint64_t transfers = g.transfers, jobs_started = g.njobs;
    gen_rewind(&g);

    /* The exchange's database, with its own schema. */
    if (cu_snprintf(path, sizeof path, "%s/state.db", dir) != 0)
        bl_die("path too long");
    m = ex_schema(&nm);
    memset(&c, 0, sizeof c);
    if (cu_db_open(&c.db, path, m, nm, &e) != 0)
        bl_die("%s", e.msg);
    for (int i = 1; i + 1 < argc; i++) { /* what-if: statements run after opening */
        if (strcmp(argv[i], "--what-if-sql") == 0 && cu_db_exec(&c.db, argv[i + 1], &e) != 0)
            bl_die("%s", e.msg);
    }
    if (cache_mb) { /* what-if: a larger page cache than the exchange's default */
        char sql[64];
        (void)cu_snprintf(sql, sizeof sql, "PRAGMA cache_size = -%llu",
                          (unsigned long long)cache_mb * 1024);
        if (cu_db_exec(&c.db, sql, &e) != 0)
            bl_die("%s", e.msg);
    }
    cu_ledger_state_init(&c.st, true);
    c.producer = &producer;
    if (cu_snprintf(path, sizeof path, "%s/ledger.jsonl", dir) != 0)
        bl_die("path too long");
    c.export = fopen(path, "wb");
    if (!c.export)
        bl_die("cannot create %s: %s", path, strerror(errno));
    append_block(&c, txs, 0, T0_MS); /* genesis: empty, as the exchange makes it */

    /* Pass 2 (timed): apply, seal, export, commit. */
    t0 = bl_now_ms();
    for (uint64_t done = 0; done < ntx;) {
        size_t n = (size_t)(ntx - done < per_block ? ntx - done : per_block);
        for (size_t i = 0; i < n; i++)
            gen_next(&g, &txs[i]);
        append_block(&c, txs, n, txs[n - 1].time_ms);
        done += n;
    }
    t1 = bl_now_ms();
    append_ms = t1 - t0;
    if (fclose(c.export) != 0)
        bl_die("writing the export: %s", strerror(errno));
    uint64_t minted = c.st.minted;
    cu_ledger_state_release(&c.st);
    cu_db_close(&c.db);
    if (cu_snprintf(path, sizeof path, "%s/state.db", dir) != 0 || stat(path, &sb) != 0)
        bl_die("cannot stat the database");
    uint64_t db_bytes = (uint64_t)sb.st_size;
    if (cu_snprintf(path, sizeof path, "%s/state.db-wal", dir) == 0 && stat(path, &sb) == 0)
        db_bytes += (uint64_t)sb.st_size;

    /* Verify, R times, with the real CLI. */
    if (cu_snprintf(path, sizeof path, "%s/ledger.jsonl", dir) != 0)
        bl_die("path too long");
    for (uint64_t r = 0; r < runs; r++)
        run_verify(path, &vwall[r], &vcpu[r]);
    bl_stats(vwall, runs, &sw);
    bl_stats(vcpu, runs, &sc);

    double all = (double)ntx;
    double hdr_per_tx = (double)c.header_bytes / all;
    double settle = mean_size(&sz, CU_TX_ESCROW_RELEASE) + mean_size(&sz, CU_TX_FEE) +
                    mean_size(&sz, CU_TX_TASK_RECORD) + 3 * hdr_per_tx;
    double per_job = (mean_size(&sz, CU_TX_ESCROW_LOCK) + mean_size(&sz, CU_TX_REFUND) +
                      2 * hdr_per_tx) / TASKS_PER_JOB;
    printf("{\"bench\":\"ledger\",\"append_tx_per_s\":%.0f,\"verify_tx_per_s\":%.0f,"
           "\"verify_wall_tx_per_s\":%.0f,\"txs\":%llu,\"blocks\":%llu,\"tx_per_block\":%llu,"
           "\"transfers\":%llu,\"jobs\":%llu,\"accounts\":%llu,\"bytes_per_tx\":%.1f,"
           "\"export_bytes\":%llu,\"db_bytes\":%llu,\"db_bytes_per_tx\":%.1f,"
           "\"settle_bytes_per_1000_tasks\":%.0f,\"task_bytes_per_1000_tasks\":%.0f,"
           "\"append_s\":%.3f,\"append_apply_s\":%.3f,\"append_seal_export_s\":%.3f,"
           "\"append_db_s\":%.3f,\"verify_cpu_s_median\":%.3f,\"verify_cpu_s_min\":%.3f,"
           "\"verify_cpu_s_max\":%.3f,\"verify_wall_s_median\":%.3f,\"verify_runs\":%llu,"
           "\"client_sign_s\":%.3f,\"minted\":%llu}\n",
           all * 1e3 / append_ms, all * 1e3 / sc.median, all * 1e3 / sw.median,
           (unsigned long long)ntx, (unsigned long long)c.blocks, (unsigned long long)per_block,
           (unsigned long long)transfers, (unsigned long long)jobs_started,
           (unsigned long long)nacc, (double)c.export_bytes / all,
           (unsigned long long)c.export_bytes, (unsigned long long)db_bytes,
           (double)db_bytes / all, settle * 1000, (settle + per_job) * 1000, append_ms / 1e3,
           c.apply_ms / 1e3, c.seal_ms / 1e3, c.db_ms / 1e3, sc.median / 1e3, sc.min / 1e3,
           sc.max / 1e3, sw.median / 1e3, (unsigned long long)runs, sign_ms / 1e3,
           (unsigned long long)minted);
    fprintf(stderr,
            "ledger: append %.0f tx/s (%llu tx in %llu blocks, %.1f s: apply %.1f, seal+export "
            "%.1f, SQLite %.1f), verify %.0f tx/s per core (CPU %.1f s, median of %llu), "
            "%.0f bytes/tx, %.0f KB of ledger per 1,000 settled tasks\n",
            all * 1e3 / append_ms, (unsigned long long)ntx, (unsigned long long)c.blocks,
            append_ms / 1e3, c.apply_ms / 1e3, c.seal_ms / 1e3, c.db_ms / 1e3,
            all * 1e3 / sc.median, sc.median / 1e3, (unsigned long long)runs,
            (double)c.export_bytes / all, (settle + per_job));
    for (uint64_t i = 0; i < g.nauths; i++)
        free(g.auths[i]);
    free(g.auths);
    free(g.sigs);
    free(g.nonce);
    free(body);
    free(txs);
    free(accounts);
    free(vwall);
    free(vcpu);
    return 0;
}
