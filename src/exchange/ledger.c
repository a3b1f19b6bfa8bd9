/* ledger.c - the exchange's ledger: its producer identity, blocks kept in
 * SQLite, the in-memory state, the money routes' state work, and the
 * read-only dump (see state.h, exchange.h, docs/api.md "Money").
 *
 * Blocks are the truth: ledger_blocks holds each block's canonical export
 * line; ledger_txs is an index for wallet history. At start the state is
 * rebuilt by replaying every block through the verifier, so a database
 * whose ledger does not verify is refused. The transactions a state change
 * produces (an escrow lock at submit, a release at acceptance, a refund at
 * the end) are applied to a copy of the state as they are added, sealed
 * into one block inside the same SQLite transaction as the change, and the
 * copy replaces the state only after COMMIT succeeded, so memory and disk
 * never disagree, even across a kill -9. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "exchange/exchange.h"
#include "exchange/state.h"
#include "ledger/block.h"
#include "ledger/export.h"
#include "ledger/verify.h"

#include "base/banned.h"

#define FAUCET_MAX 1000000000000000ULL /* 10^15 per request */
#define HISTORY_MAX 1000

/* ---- small SQLite helpers -------------------------------------------------- */

static int db_fail(struct ex_state *st, struct ex_fail *f, const char *what)
{
    cu_error("db: %s: %s", what, sqlite3_errmsg(st->db.h));
    return ex_fail_set(f, 500, "internal", "database error while %s", what);
}

/* Prepares sql on h; NULL when it cannot (logged). */
static sqlite3_stmt *prep(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
        cu_error("db: cannot prepare [%s]: %s", sql, sqlite3_errmsg(h));
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

/* Binds text or NULL for "". */
static int bind_opt(sqlite3_stmt *s, int i, const char *v)
{
    return v[0] ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

/* ---- startup ------------------------------------------------------------------ */

/* Loads the producer key, creating a plain one when missing. */
static int identity_open(struct ex_state *st, const char *data_dir, struct cu_err *e)
{
    char path[CU_PATH_MAX];
    int rc;

    rc = cu_path_join(path, sizeof path, data_dir, "identity.key");
    if (rc)
        return cu_err_set(e, rc, "data directory path too long");
    if (access(path, F_OK) != 0) {
        rc = cu_identity_generate(&st->ident);
        if (rc)
            return cu_err_set(e, rc, "cannot generate the exchange identity");
        rc = cu_identity_save(&st->ident, path, NULL, false, e);
        if (rc)
            return rc;
        cu_info("created exchange identity %s in %s (plain devnet key)", st->ident.id, path);
        return 0;
    }
    rc = cu_identity_load(&st->ident, path, NULL, e);
    if (rc)
        return rc;
    cu_info("exchange identity %s", st->ident.id);
    return 0;
}

/* ---- the accounts' chains ------------------------------------------------------
 *
 * A wallet's history is the account's transactions, newest first. An
 * index of ledger_txs by from_id and by to_id gave it, but every block
 * then wrote a page of each index per account it touched, all over two
 * B-trees keyed by 64 hex digits: at 1,000,000 transactions most of the
 * append's time (bench/ledger). Instead each row links to the account's
 * previous transaction (from_prev for from_id, to_prev for to_id, NULL
 * at its first) and ledger_accounts keeps each account's last seq and
 * what escrow releases paid it: a small table whose pages stay cached.
 * The history walks the links back from the last seq (ex_wallet_history),
 * and "earned" is one row (ex_wallet). */

struct accounts {
    sqlite3_stmt *get, *put;
};

static int accounts_open(struct cu_db *db, struct accounts *a)
{
    struct cu_err e = {0};

    a->get = a->put = NULL;
    if (cu_db_cached(db, "SELECT last_seq FROM ledger_accounts WHERE id = ?1", &a->get, &e) ||
        cu_db_cached(db,
                     "INSERT INTO ledger_accounts (id, last_seq, earned) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq, "
                     /* Saturates rather than wrap or turn into a float:
                      * tokens circulate, so what one account was paid
                      * over time has no bound. */
                     "earned = CASE WHEN earned > 9223372036854775807 - excluded.earned "
                     "THEN 9223372036854775807 ELSE earned + excluded.earned END",
                     &a->put, &e)) {
        cu_error("ledger: %s", e.msg);
        return -CU_EDB;
    }
    return 0;
}

static void accounts_close(struct cu_db *db, struct accounts *a)
{
    cu_db_cached_done(db, a->get);
    cu_db_cached_done(db, a->put);
}

/* *has and *last: whether id has a transaction stored, and the seq of
 * its last one. 0 or -CU_EDB. */
static int account_last(struct accounts *a, const char *id, bool *has, int64_t *last)
{
    int rc;

    sqlite3_reset(a->get);
    sqlite3_bind_text(a->get, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(a->get);
    *has = rc == SQLITE_ROW;
    if (*has)
        *last = sqlite3_column_int64(a->get, 0);
    sqlite3_reset(a->get);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -CU_EDB;
}

/* Transaction seq is id's last, and paid it earned more (<= CU_AMOUNT_MAX). */
static int account_note(struct accounts *a, const char *id, int64_t seq, uint64_t earned)
{
    int rc;

    sqlite3_reset(a->put);
    sqlite3_bind_text(a->put, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(a->put, 2, seq);
    sqlite3_bind_int64(a->put, 3, (int64_t)earned);
    rc = sqlite3_step(a->put);
    sqlite3_reset(a->put);
    return rc == SQLITE_DONE ? 0 : -CU_EDB;
}

int ex_ledger_store_block(struct cu_db *db, const struct cu_block *b, const struct cu_hash *ids,
                          const struct cu_hash *hash, const char *line, size_t line_len)
{
    struct accounts acc;
    char hex[CU_HASH_HEX_LEN + 1];
    struct cu_err e = {0};
    sqlite3_stmt *s;
    int rc;

    /* Cached: preparing these two on every block was 3.5 % of the
     * exchange's time under bench/dispatch. */
    if (cu_db_cached(db, "INSERT INTO ledger_blocks (height, hash, time_ms, tx_count, line) "
                         "VALUES (?1, ?2, ?3, ?4, ?5)", &s, &e) != 0) {
        cu_error("ledger: %s", e.msg);
        return -CU_EDB;
    }
    cu_hash_to_hex(hash, hex);
    sqlite3_bind_int64(s, 1, (int64_t)b->h.height);
    sqlite3_bind_text(s, 2, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, b->h.time_ms);
    sqlite3_bind_int64(s, 4, (int64_t)b->ntx);
    sqlite3_bind_text(s, 5, line, (int)line_len, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    cu_db_cached_done(db, s);
    if (rc != SQLITE_DONE)
        return -CU_EDB;
    if (!b->ntx)
        return 0;
    if (cu_db_cached(db, "INSERT INTO ledger_txs (txid, height, idx, seq, type, from_id, to_id, "
                         "job, amount, time_ms, from_prev, to_prev) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                     &s, &e) != 0) {
        cu_error("ledger: %s", e.msg);
        return -CU_EDB;
    }
    rc = accounts_open(db, &acc);
    for (size_t i = 0; !rc && i < b->ntx; i++) {
        const struct cu_tx *tx = &b->txs[i];
        int64_t from_prev = 0, to_prev = 0;
        bool from_has = false, to_has = false;
        /* Each account's previous transaction, then this one is its last
         * (an account on both sides chains once: both links are equal). */
        if (tx->from[0])
            rc = account_last(&acc, tx->from, &from_has, &from_prev);
        if (!rc && tx->to[0] && strcmp(tx->to, tx->from) != 0)
            rc = account_last(&acc, tx->to, &to_has, &to_prev);
        else if (!rc && tx->to[0]) {
            to_has = from_has;
            to_prev = from_prev;
        }
        if (rc)
            break;
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        cu_hash_to_hex(&ids[i], hex);
        sqlite3_bind_text(s, 1, hex, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, (int64_t)b->h.height);
        sqlite3_bind_int64(s, 3, (int64_t)i);
        sqlite3_bind_int64(s, 4, (int64_t)tx->seq);
        sqlite3_bind_text(s, 5, cu_tx_type_name(tx->type), -1, SQLITE_STATIC);
        bind_opt(s, 6, tx->from);
        bind_opt(s, 7, tx->to);
        bind_opt(s, 8, tx->job);
        sqlite3_bind_int64(s, 9, (int64_t)tx->amount); /* <= CU_AMOUNT_MAX */
        sqlite3_bind_int64(s, 10, tx->time_ms);
        if (from_has)
            sqlite3_bind_int64(s, 11, from_prev);
        if (to_has)
            sqlite3_bind_int64(s, 12, to_prev);
        if (sqlite3_step(s) != SQLITE_DONE) {
            rc = -CU_EDB;
            break;
        }
        if (tx->from[0])
            rc = account_note(&acc, tx->from, (int64_t)tx->seq, 0);
        if (!rc && tx->to[0])
            rc = account_note(&acc, tx->to, (int64_t)tx->seq,
                              tx->type == CU_TX_ESCROW_RELEASE ? tx->amount : 0);
    }
    accounts_close(db, &acc);
    cu_db_cached_done(db, s);
    return rc;
}

/* Produces block 0 (no transactions) in its own transaction. */
static int genesis(struct ex_state *st, bool devnet, struct cu_err *e)
{
    struct cu_block b;
    struct cu_buf line = CU_BUF_INIT(CU_EXPORT_LINE_MAX);
    struct cu_hash h;
    int64_t now = cu_now_ms();
    int rc;

    cu_block_init(&b);
    rc = cu_block_seal(&b, 0, NULL, now, devnet, &st->ident);
    if (!rc)
        rc = cu_block_hash(&b.h, &h);
    if (!rc)
        rc = cu_export_block(&b, &line);
    if (rc) {
        rc = cu_err_set(e, rc, "cannot build the genesis block: %s", cu_strerror(rc));
        goto out;
    }
    if (cu_db_begin(&st->db) != 0) {
        rc = cu_err_set(e, -CU_EDB, "cannot begin: %s", sqlite3_errmsg(st->db.h));
        goto out;
    }
    rc = ex_ledger_store_block(&st->db, &b, NULL, &h, line.data, line.len - 1);
    if (!rc && cu_db_commit(&st->db) != 0)
        rc = -CU_EDB;
    if (rc) {
        rc = cu_err_set(e, rc, "cannot store the genesis block: %s", sqlite3_errmsg(st->db.h));
        cu_db_rollback(&st->db);
        goto out;
    }
    cu_ledger_state_init(&st->ledger, devnet);
    st->tip = h;
    st->tip_height = 0;
    st->tip_time_ms = now;
    cu_info("ledger: produced the genesis block%s", devnet ? " (devnet)" : "");
out:
    cu_buf_release(&line);
    cu_block_release(&b);
    return rc;
}

int ex_ledger_open(struct ex_state *st, const char *data_dir, struct cu_err *e)
{
    struct cu_verifier v;
    struct cu_verify_result res;
    sqlite3_stmt *s;
    int rc, r;

    rc = identity_open(st, data_dir, e);
    if (rc)
        return rc;
    s = prep(st->db.h, "SELECT line FROM ledger_blocks ORDER BY height");
    if (!s) {
        rc = cu_err_set(e, -CU_EDB, "cannot read the ledger");
        goto out_wipe;
    }
    cu_verifier_init(&v, st->ident.id);
    rc = 0;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        rc = cu_verifier_feed_line(&v, line ? line : "", line ? n : 0, &res);
        if (rc)
            break;
    }
    sqlite3_finalize(s);
    if (!rc && r != SQLITE_DONE)
        rc = cu_err_set(e, -CU_EDB, "cannot read the ledger: %s", sqlite3_errmsg(st->db.h));
    else if (rc)
        rc = cu_err_set(e, rc, "the stored ledger does not verify: %s", res.err.msg);
    else if (v.res.blocks == 0) {
        cu_verifier_release(&v);
        rc = genesis(st, st->devnet, e);
        if (rc)
            goto out_wipe;
        return 0;
    } else if (v.devnet != st->devnet)
        rc = cu_err_set(e, -CU_EINVAL,
                        "the ledger in %s was started %s --devnet; start the exchange the same "
                        "way",
                        data_dir, v.devnet ? "with" : "without");
    if (!rc) {
        rc = cu_ledger_state_copy(&st->ledger, cu_verifier_state(&v));
        if (rc)
            rc = cu_err_set(e, rc, "out of memory");
    }
    if (!rc) {
        st->tip = v.res.tip;
        st->tip_height = v.res.blocks - 1;
        st->tip_time_ms = v.prev_time_ms;
        cu_info("ledger: %llu block(s), %llu transaction(s) verified",
                (unsigned long long)v.res.blocks, (unsigned long long)v.res.txs);
    }
    cu_verifier_release(&v);
    if (!rc)
        return 0;
out_wipe:
    cu_identity_wipe(&st->ident);
    return rc;
}

void ex_ledger_close(struct ex_state *st)
{
    cu_ledger_state_release(&st->ledger);
    cu_identity_wipe(&st->ident);
}

/* ---- appending ------------------------------------------------------------------ */

/* A refused transaction as the client sees it. */
static int apply_fail(int rc, const struct cu_err *e, struct ex_fail *f)
{
    switch (rc) {
    case -CU_ECONFLICT:
        return ex_fail_set(f, 409, "insufficient_funds", "%s", e->msg);
    case -CU_EOVERFLOW:
        return ex_fail_set(f, 409, "conflict", "%s", e->msg);
    case -CU_EINVAL:
    case -CU_EAUTH:
        return ex_fail_set(f, 400, "invalid", "%s", e->msg);
    case -CU_ENOTFOUND:
        return ex_fail_set(f, 404, "not_found", "%s", e->msg);
    default:
        return ex_fail_set(f, 500, "internal", "cannot apply the transaction: %s", e->msg);
    }
}

/* ---- the block of the current transaction ------------------------------------ */

/* Starts the pending block: its transactions apply to the state in place,
 * journaled, and ex_ledger_end keeps or undoes them (a copy of the state
 * per transaction cost O(accounts + escrows), which grows with the
 * market). */
static int pend_start(struct ex_state *st, struct ex_fail *f)
{
    struct ex_ledger_pending *p = &st->pend;
    uint64_t height;

    if (p->active)
        return 0;
    if (cu_add_u64(st->tip_height, 1, &height) != 0)
        return ex_fail_set(f, 500, "internal", "ledger height overflows");
    memset(p, 0, sizeof *p);
    cu_block_init(&p->b);
    cu_ledger_journal_begin(&st->ledger, &p->j);
    st->ledger.height = height;
    p->height = height;
    p->active = true;
    return 0;
}

int ex_ledger_add(struct ex_state *st, struct cu_tx *tx, uint64_t *seq, struct ex_fail *f)
{
    struct ex_ledger_pending *p = &st->pend;
    struct cu_err e = {0};
    int rc;

    rc = pend_start(st, f);
    if (rc) {
        cu_tx_release(tx);
        return rc;
    }
    tx->seq = st->ledger.tx_count;
    tx->has_id = false;
    rc = cu_ledger_apply(&st->ledger, tx, &e);
    if (rc) {
        cu_tx_release(tx);
        return apply_fail(rc, &e, f);
    }
    if (seq)
        *seq = tx->seq;
    if (cu_block_add_tx(&p->b, tx) != 0) {
        /* The state already holds it: this block cannot be sealed any more. */
        p->broken = true;
        cu_tx_release(tx);
        return ex_fail_set(f, 500, "internal", "out of memory (or block full)");
    }
    return 0;
}

const struct cu_ledger_state *ex_ledger_view(const struct ex_state *st)
{
    return &st->ledger; /* the pending block's changes included (journaled) */
}

int ex_ledger_seal(struct ex_state *st, int64_t now_ms, struct ex_fail *f)
{
    struct ex_ledger_pending *p = &st->pend;
    struct cu_buf line = CU_BUF_INIT(CU_EXPORT_LINE_MAX);
    struct cu_buf forms = CU_BUF_INIT(CU_EXPORT_LINE_MAX);
    struct cu_hash *tid = NULL;
    int64_t t = now_ms > st->tip_time_ms ? now_ms : st->tip_time_ms;
    int rc = 0;

    if (!p->active || p->b.ntx == 0)
        return 0;
    if (p->broken)
        return ex_fail_set(f, 500, "internal", "the pending ledger block is incomplete");
    assert(!p->sealed);
    tid = calloc(p->b.ntx, sizeof *tid);
    if (!tid)
        return ex_fail_set(f, 500, "internal", "out of memory");
    /* Each transaction's canonical form written once: its id, and its
     * export form for the line (the id in its place). */
    for (size_t i = 0; i < p->b.ntx; i++) {
        if ((i && cu_buf_append(&forms, ",", 1) != 0) ||
            cu_tx_id_export(&p->b.txs[i], &tid[i], &forms) != 0) {
            rc = ex_fail_set(f, 500, "internal", "out of memory");
            goto out_free;
        }
    }
    /* The ids once: the root and the export line reuse them. */
    if (cu_block_seal_ids(&p->b, tid, p->height, &st->tip, t, st->ledger.devnet, &st->ident) != 0 ||
        cu_block_hash(&p->b.h, &p->tip) != 0 ||
        cu_export_block_txs(&p->b, forms.data, forms.len, &line) != 0) {
        rc = ex_fail_set(f, 500, "internal", "cannot seal the block");
        goto out_free;
    }
    if (ex_ledger_store_block(&st->db, &p->b, tid, &p->tip, line.data, line.len - 1) != 0) {
        rc = db_fail(st, f, "storing a ledger block");
        goto out_free;
    }
    p->time_ms = t;
    p->sealed = true;
    if (st->last_ids) {
        size_t n = p->b.ntx < st->last_ids_cap ? p->b.ntx : st->last_ids_cap;
        memcpy(st->last_ids, tid, n * sizeof *tid);
    }
out_free:
    free(tid);
    cu_buf_release(&forms);
    cu_buf_release(&line);
    return rc;
}

void ex_ledger_end(struct ex_state *st, bool committed)
{
    struct ex_ledger_pending *p = &st->pend;

    if (!p->active)
        return;
    if (committed && p->sealed) {
        cu_ledger_journal_commit(&st->ledger);
        st->tip = p->tip;
        st->tip_height = p->height;
        st->tip_time_ms = p->time_ms;
    } else {
        cu_ledger_journal_rollback(&st->ledger);
    }
    cu_block_release(&p->b);
    memset(p, 0, sizeof *p);
}

int ex_txn_begin(struct ex_state *st, struct ex_fail *f)
{
    assert(!st->pend.active && !st->in_txn);
    if (cu_db_begin(&st->db) != 0)
        return db_fail(st, f, "starting a transaction");
    st->in_txn = true;
    st->score_marked[0] = '\0';
    return 0;
}

/* Also carries the pending request nonces (ex_nonces_stage): one commit
 * for the change and the nonces of every request waiting, the request's
 * own among them. */
int ex_txn_commit(struct ex_state *st, int64_t now_ms, struct ex_fail *f)
{
    int rc = ex_ledger_seal(st, now_ms, f);
    int staged = 0;

    if (!rc) {
        staged = ex_nonces_stage(st);
        if (staged < 0)
            rc = db_fail(st, f, "recording nonces");
    }
    if (rc) {
        ex_txn_rollback(st);
        return rc;
    }
    if (cu_db_commit(&st->db) != 0) {
        rc = db_fail(st, f, "committing");
        ex_txn_rollback(st);
        return rc;
    }
    st->in_txn = false;
    ex_nonces_committed(st, (size_t)staged);
    ex_ledger_end(st, true);
    return 0;
}

void ex_txn_rollback(struct ex_state *st)
{
    if (st->in_txn)
        cu_db_rollback(&st->db);
    st->in_txn = false;
    ex_ledger_end(st, false);
}

/* mu held: one block of txs in its own SQLite transaction; the txs are
 * consumed. ids (n entries, may be NULL) gets their ids. */
static int append_block(struct ex_state *st, struct cu_tx *txs, size_t n, int64_t now_ms,
                        struct cu_hash *ids, struct ex_fail *f)
{
    size_t i;
    int rc;

    rc = ex_txn_begin(st, f);
    if (rc) {
        for (i = 0; i < n; i++)
            cu_tx_release(&txs[i]);
        return rc;
    }
    for (i = 0; i < n && !rc; i++)
        rc = ex_ledger_add(st, &txs[i], NULL, f);
    for (; i < n; i++)
        cu_tx_release(&txs[i]);
    if (rc) {
        ex_txn_rollback(st);
        return rc;
    }
    st->last_ids = ids;
    st->last_ids_cap = ids ? n : 0;
    rc = ex_txn_commit(st, now_ms, f);
    st->last_ids = NULL;
    st->last_ids_cap = 0;
    return rc;
}

/* ---- the money routes' state work ---------------------------------------------- */

struct escrow_sum {
    const char *owner;
    uint64_t sum;
    bool overflow;
};

static int add_escrow(const struct cu_ledger_escrow *x, void *ctx)
{
    struct escrow_sum *s = ctx;

    if (strcmp(x->owner, s->owner) == 0 && cu_add_u64(s->sum, x->locked, &s->sum) != 0)
        s->overflow = true;
    return 0;
}

json_t *ex_wallet(struct ex_state *st, const char *who, struct ex_fail *f)
{
    struct escrow_sum es = {.owner = who};
    sqlite3_stmt *s;
    int64_t earned = 0;
    json_t *j;

    pthread_mutex_lock(&st->mu);
    cu_ledger_foreach_escrow(&st->ledger, add_escrow, &es);
    s = prep(st->db.h, "SELECT earned FROM ledger_accounts WHERE id = ?1");
    if (!s) {
        db_fail(st, f, "reading the wallet");
        pthread_mutex_unlock(&st->mu);
        return NULL;
    }
    sqlite3_bind_text(s, 1, who, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW)
        earned = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    j = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "id", who, "balance",
                  (json_int_t)cu_ledger_balance(&st->ledger, who), "stake",
                  (json_int_t)cu_ledger_stake(&st->ledger, who), "escrow",
                  (json_int_t)(es.overflow ? CU_AMOUNT_MAX : es.sum), "earned", (json_int_t)earned,
                  "nonce", (json_int_t)cu_ledger_nonce(&st->ledger, who));
    pthread_mutex_unlock(&st->mu);
    if (!j)
        ex_fail_set(f, 500, "internal", "out of memory");
    return j;
}

json_t *ex_faucet(struct ex_state *st, const char *who, uint64_t amount, int64_t now_ms,
                  struct ex_fail *f)
{
    struct cu_tx tx;
    struct cu_hash id;
    char hex[CU_HASH_HEX_LEN + 1];
    json_t *j = NULL;

    if (amount < 1 || amount > FAUCET_MAX) {
        ex_fail_set(f, 400, "invalid", "field 'amount' must be 1..%llu",
                    (unsigned long long)FAUCET_MAX);
        return NULL;
    }
    cu_tx_init(&tx, CU_TX_FAUCET_MINT);
    tx.time_ms = now_ms;
    (void)cu_snprintf(tx.to, sizeof tx.to, "%s", who);
    tx.amount = amount;
    pthread_mutex_lock(&st->mu);
    if (!st->ledger.devnet) {
        ex_fail_set(f, 403, "not_devnet", "the faucet exists only on a devnet exchange");
    } else if (append_block(st, &tx, 1, now_ms, &id, f) == 0) {
        cu_hash_to_hex(&id, hex);
        j = json_pack("{s:s,s:I,s:I}", "tx", hex, "height", (json_int_t)st->tip_height, "balance",
                      (json_int_t)cu_ledger_balance(&st->ledger, who));
        if (!j)
            ex_fail_set(f, 500, "internal", "out of memory");
    }
    pthread_mutex_unlock(&st->mu);
    cu_tx_release(&tx);
    return j;
}

json_t *ex_transfer(struct ex_state *st, const char *who, struct cu_tx *tx, int64_t now_ms,
                    struct ex_fail *f)
{
    struct cu_hash id;
    char hex[CU_HASH_HEX_LEN + 1];
    json_t *j = NULL;
    uint64_t bal, nonce;

    if (tx->type != CU_TX_TRANSFER) {
        ex_fail_set(f, 400, "invalid", "field 'tx': a %s, not a transfer",
                    cu_tx_type_name(tx->type));
        goto out;
    }
    if (strcmp(tx->from, who) != 0) {
        ex_fail_set(f, 403, "forbidden", "a transfer must be from the signer of the request");
        goto out;
    }
    pthread_mutex_lock(&st->mu);
    nonce = cu_ledger_nonce(&st->ledger, who);
    bal = cu_ledger_balance(&st->ledger, who);
    if (tx->nonce != nonce)
        ex_fail_set(f, 400, "invalid", "transfer nonce %llu where %llu was expected (replayed?)",
                    (unsigned long long)tx->nonce, (unsigned long long)nonce);
    else if (tx->amount > bal)
        ex_fail_set(f, 409, "insufficient_funds", "transfer of %llu exceeds the balance %llu",
                    (unsigned long long)tx->amount, (unsigned long long)bal);
    else if (append_block(st, tx, 1, now_ms, &id, f) == 0) {
        cu_hash_to_hex(&id, hex);
        j = json_pack("{s:s,s:I}", "tx", hex, "height", (json_int_t)st->tip_height);
        if (!j)
            ex_fail_set(f, 500, "internal", "out of memory");
    }
    pthread_mutex_unlock(&st->mu);
out:
    cu_tx_release(tx);
    return j;
}

static json_t *col_text(sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);
    return t ? json_string(t) : json_null();
}

json_t *ex_wallet_history(struct ex_state *st, const char *who, uint64_t limit, struct ex_fail *f)
{
    sqlite3_stmt *s, *last;
    json_t *arr = json_array(), *j = NULL;
    int64_t seq = 0, next;
    bool more;
    int rc;

    if (!arr) {
        ex_fail_set(f, 500, "internal", "out of memory");
        return NULL;
    }
    if (limit > HISTORY_MAX)
        limit = HISTORY_MAX;
    pthread_mutex_lock(&st->mu);
    /* The account's chain, newest first (see "the accounts' chains"). */
    s = prep(st->db.h, "SELECT height, time_ms, txid, type, amount, from_id, to_id, job, "
                       "CASE WHEN from_id = ?1 THEN from_prev ELSE to_prev END "
                       "FROM ledger_txs WHERE seq = ?2");
    last = prep(st->db.h, "SELECT last_seq FROM ledger_accounts WHERE id = ?1");
    if (!s || !last) {
        db_fail(st, f, "reading the history");
        goto out_finalize;
    }
    sqlite3_bind_text(last, 1, who, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(last);
    more = rc == SQLITE_ROW;
    if (more)
        seq = sqlite3_column_int64(last, 0);
    else if (rc != SQLITE_DONE) {
        db_fail(st, f, "reading the history");
        goto out_finalize;
    }
    sqlite3_bind_text(s, 1, who, -1, SQLITE_TRANSIENT);
    for (uint64_t n = 0; more && n < limit; n++) {
        json_t *o;
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 2, seq);
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) {
            /* A link to no row: the chain is broken. */
            db_fail(st, f, "reading the history");
            goto out_finalize;
        }
        o = json_pack("{s:I,s:I,s:o,s:o,s:I,s:o,s:o,s:o}", "height",
                      (json_int_t)sqlite3_column_int64(s, 0), "time_ms",
                      (json_int_t)sqlite3_column_int64(s, 1), "tx", col_text(s, 2), "type",
                      col_text(s, 3), "amount", (json_int_t)sqlite3_column_int64(s, 4), "from",
                      col_text(s, 5), "to", col_text(s, 6), "job", col_text(s, 7));
        if (!o || json_array_append_new(arr, o) != 0) {
            ex_fail_set(f, 500, "internal", "out of memory");
            goto out_finalize;
        }
        more = sqlite3_column_type(s, 8) != SQLITE_NULL;
        next = sqlite3_column_int64(s, 8);
        if (more && next >= seq) {
            db_fail(st, f, "reading the history"); /* links only go back */
            goto out_finalize;
        }
        seq = next;
    }
    j = json_pack("{s:O}", "entries", arr);
    if (!j)
        ex_fail_set(f, 500, "internal", "out of memory");
out_finalize:
    sqlite3_finalize(s);
    sqlite3_finalize(last);
    pthread_mutex_unlock(&st->mu);
    json_decref(arr);
    return j;
}

json_t *ex_ledger_head(struct ex_state *st, struct ex_fail *f)
{
    char hex[CU_HASH_HEX_LEN + 1];
    json_t *j;

    pthread_mutex_lock(&st->mu);
    cu_hash_to_hex(&st->tip, hex);
    j = json_pack("{s:I,s:s,s:s,s:I,s:I,s:I}", "height", (json_int_t)st->tip_height, "hash", hex,
                  "producer", st->ident.id, "blocks", (json_int_t)(st->tip_height + 1),
                  "transactions", (json_int_t)st->ledger.tx_count, "minted",
                  (json_int_t)st->ledger.minted);
    pthread_mutex_unlock(&st->mu);
    if (!j)
        ex_fail_set(f, 500, "internal", "out of memory");
    return j;
}

/* Appends each row's line and "\n" to out. */
static int lines_of(sqlite3_stmt *s, struct cu_buf *out)
{
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        if (!line)
            return -CU_ECORRUPT;
        if ((rc = cu_buf_append(out, line, n)) || (rc = cu_buf_append(out, "\n", 1)))
            return rc;
    }
    return rc == SQLITE_DONE ? 0 : -CU_EDB;
}

int ex_ledger_lines(struct ex_state *st, uint64_t from, uint64_t limit, struct cu_buf *out,
                    struct ex_fail *f)
{
    sqlite3_stmt *s;
    int rc;

    if (from > (uint64_t)INT64_MAX || limit > (uint64_t)INT64_MAX)
        return ex_fail_set(f, 400, "invalid", "from or limit out of range");
    pthread_mutex_lock(&st->mu);
    s = prep(st->db.h,
             "SELECT line FROM ledger_blocks WHERE height >= ?1 ORDER BY height LIMIT ?2");
    if (!s) {
        rc = db_fail(st, f, "reading the ledger");
        goto out_unlock;
    }
    sqlite3_bind_int64(s, 1, (int64_t)from);
    sqlite3_bind_int64(s, 2, (int64_t)limit);
    rc = lines_of(s, out);
    sqlite3_finalize(s);
    if (rc == -CU_EDB)
        rc = db_fail(st, f, "reading the ledger");
    else if (rc)
        rc = ex_fail_set(f, 500, "internal", "cannot export the ledger: %s", cu_strerror(rc));
out_unlock:
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* ---- the read-only dump ------------------------------------------------------------ */

int cu_exchange_ledger_dump(const char *data_dir, cu_http_sink sink, void *ctx, struct cu_err *e)
{
    char path[CU_PATH_MAX];
    sqlite3 *h = NULL;
    sqlite3_stmt *s;
    int rc, r;

    rc = cu_path_join(path, sizeof path, data_dir, "state.db");
    if (rc)
        return cu_err_set(e, rc, "data directory path too long");
    if (access(path, F_OK) != 0)
        return cu_err_set(e, -CU_ENOTFOUND, "no exchange database in %s", data_dir);
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = cu_err_set(e, -CU_EDB, "cannot open %s: %s", path, h ? sqlite3_errmsg(h) : "?");
        sqlite3_close(h);
        return rc;
    }
    sqlite3_busy_timeout(h, 5000);
    if (sqlite3_prepare_v2(h, "SELECT line FROM ledger_blocks ORDER BY height", -1, &s, NULL) !=
        SQLITE_OK) {
        rc = cu_err_set(e, -CU_ENOTFOUND, "no ledger in %s: %s", path, sqlite3_errmsg(h));
        sqlite3_close(h);
        return rc;
    }
    /* One read transaction: a consistent snapshot while the exchange
     * appends. */
    rc = 0;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        char *buf;
        if (!line) {
            rc = cu_err_set(e, -CU_ECORRUPT, "a ledger block row has no line");
            break;
        }
        buf = malloc(n + 1);
        if (!buf) {
            rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
            break;
        }
        memcpy(buf, line, n);
        buf[n] = '\n';
        rc = sink(ctx, buf, n + 1);
        free(buf);
        if (rc) {
            rc = cu_err_set(e, rc < 0 ? rc : -CU_EIO, "writing the ledger failed");
            break;
        }
    }
    if (!rc && r != SQLITE_DONE)
        rc = cu_err_set(e, -CU_EDB, "cannot read %s: %s", path, sqlite3_errmsg(h));
    sqlite3_finalize(s);
    sqlite3_close(h);
    return rc;
}

json_t *ex_stake(struct ex_state *st, const char *who, uint64_t amount, bool unstake,
                 int64_t now_ms, struct ex_fail *f)
{
    struct cu_tx tx;
    struct cu_hash id;
    char hex[CU_HASH_HEX_LEN + 1];
    json_t *j = NULL;
    uint64_t have;

    if (amount < 1 || amount > CU_AMOUNT_MAX) {
        ex_fail_set(f, 400, "invalid", "field 'amount' must be 1..%llu",
                    (unsigned long long)CU_AMOUNT_MAX);
        return NULL;
    }
    cu_tx_init(&tx, unstake ? CU_TX_UNSTAKE : CU_TX_STAKE);
    tx.time_ms = now_ms;
    (void)cu_snprintf(tx.from, sizeof tx.from, "%s", who);
    tx.amount = amount;
    pthread_mutex_lock(&st->mu);
    have = unstake ? cu_ledger_stake(&st->ledger, who) : cu_ledger_balance(&st->ledger, who);
    if (amount > have) {
        ex_fail_set(f, 409, "insufficient_funds", "%s of %llu exceeds the %s of %llu",
                    unstake ? "unstaking" : "staking", (unsigned long long)amount,
                    unstake ? "stake" : "balance", (unsigned long long)have);
        cu_tx_release(&tx);
    } else if (unstake && ex_holds_lease(st, who)) {
        /* A stake backs the leases held: it stays while one is. */
        ex_fail_set(f, 409, "busy", "a stake cannot be withdrawn while you hold a lease");
        cu_tx_release(&tx);
    } else if (append_block(st, &tx, 1, now_ms, &id, f) == 0) {
        cu_hash_to_hex(&id, hex);
        j = json_pack("{s:s,s:I,s:I}", "tx", hex, "height", (json_int_t)st->tip_height, "stake",
                      (json_int_t)cu_ledger_stake(&st->ledger, who));
        if (!j)
            ex_fail_set(f, 500, "internal", "out of memory");
        cu_info("%.8s %s %llu", who, unstake ? "unstaked" : "staked", (unsigned long long)amount);
    }
    pthread_mutex_unlock(&st->mu);
    return j;
}
