/* state.h - the exchange's state: one SQLite database behind one mutex.
 *
 * Internal to src/exchange/. Every read and write of jobs, tasks, replicas,
 * providers and nonces goes through these functions; each state change is
 * one SQLite transaction, so a kill -9 at any moment leaves either the
 * whole change or none of it. Replica transitions are checked against the
 * state machine of market/lease.h (an illegal one is a bug: assert).
 *
 * All functions lock st->mu themselves; callers hold no lock. Functions
 * that can fail for a reason the client should see fill a struct ex_fail
 * (HTTP status, stable code, message) and return negative. */
#ifndef CU_EXCHANGE_STATE_H
#define CU_EXCHANGE_STATE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "crypto/reqsign.h"
#include "exchange/replay.h"
#include "ledger/block.h"
#include "ledger/state.h"
#include "ledger/tx.h"
#include "market/spec.h"
#include "store/blob.h"
#include "store/db.h"

#define EX_VERSION "0.1.0"
#define EX_NONCE_TTL_MS 600000   /* nonces are remembered this long */
#define EX_MAX_PROVIDER_ERRORS 5 /* a task fails after this many lost replicas */
#define EX_MAX_WAIT_MS 60000
#define EX_PRUNE_EVERY_MS                                                                          \
    10000 /* how often old nonces are deleted */ /* longest claim long-poll                        \
                                                  */

/* The block being built by the open transaction (ledger.c): the state
 * with its txs applied, the block, and after sealing its hash and time. */
struct ex_ledger_pending {
    struct cu_ledger_journal j; /* st->ledger's changes since the block began */
    struct cu_block b;
    struct cu_hash tip;
    uint64_t height;
    int64_t time_ms;
    bool active, sealed, broken;
};

/* A provider waiting in a claim long-poll (under mu). */
struct ex_free {
    uint64_t cores, memory, gpus;
    /* A batched claim with "sequential": the provider runs its leases one
     * after another, so each alone must fit, not all of them together. */
    bool sequential;
};
struct ex_waiter {
    char provider[CU_ID_LEN + 1];
    struct ex_free fr;
    uint64_t ask;
    uint32_t score;   /* reputation, thousandths (trust.h) */
    int64_t since_ms;
    bool active;
    bool expected; /* woken for work and announced to the group commit (cu_db_expect) */
};
#define EX_MAX_WAITERS 1024
/* How long the sync after a change that woke waiting claims waits for
 * their leases (cu_db_expect): a claim takes ~0.2-0.5 ms here. */
#define EX_CLAIM_EXPECT_US 1000
/* While claims queue for the state, each takes about
 * EX_CLAIM_QUEUE_LEASES / (queued + 1) leases, at least EX_CLAIM_SHARE_MIN
 * (state.c claim_share). */
#define EX_CLAIM_QUEUE_LEASES 32
#define EX_CLAIM_SHARE_MIN 4
#define EX_CHEAPER_FIRST_MS 300 /* a fresh replica waits this long for a cheaper ask */

/* Nonces of signed requests not yet in the nonces table (under
 * nonce_mu). They ride along in the next transaction that commits
 * (ex_txn_commit), or the request's own barrier writes them
 * (ex_nonces_flush), so a nonce is in SQLite before any answer to its
 * request leaves, without a commit of its own per request. Nonces are
 * numbered in the order they queue; base is the number of p[0], and every
 * nonce numbered below base is in the table. A commit carries a prefix of
 * p (staged under mu); nonces queued meanwhile stay for the next one. */
#define EX_NONCES_PENDING 256
struct ex_nonces {
    struct {
        char key[CU_ID_LEN + 1];
        char nonce[CU_NONCE_HEX_LEN + 1];
        int64_t ts_ms;
    } p[EX_NONCES_PENDING];
    size_t n;
    uint64_t base; /* written under nonce_mu, read without it (atomic) */
    uint64_t seq;  /* the last COMMIT that carried nonces (cu_db_owed); as base */
};

struct ex_state {
    pthread_mutex_t mu;
    /* Reports take lane before mu (state.c "the report lane"): at most
     * one report waits for mu at a time, and it lets claims waiting for mu
     * go first: claims_waiting and yielding are atomics; a report waits
     * on gate_cv (with gate) while claims wait. */
    struct {
        pthread_mutex_t lane, gate;
        pthread_cond_t gate_cv; /* CLOCK_MONOTONIC */
        unsigned claims_waiting;
        bool yielding; /* the lane's head waits for claims_waiting to reach 0 */
    } reports;
    pthread_cond_t work; /* broadcast when replicas are queued, and on stop */
    struct cu_db db;
    struct cu_blobstore blobs;
    uint64_t lease_ms;
    bool devnet;
    uint32_t fee_bps;    /* exchange fee on providers' pay, basis points */
    uint64_t escrow_fee; /* flat per job, charged at settlement */
    uint32_t slash_bps;  /* share of a quorum loser's stake slashed, basis points */
    bool stopping;     /* under mu */
    uint64_t requests; /* HTTP requests seen (atomic builtins) */
    int64_t pruned_ms; /* last nonce pruning (under mu) */
    bool legacy_nonces; /* the pre-18 nonces table still has rows (mu; read atomically) */
    /* The ledger (ledger.c), under mu: the exchange's own identity (the
     * block producer), the state replayed from every stored block, and the
     * tip. ledger.devnet is the chain's flag, fixed by block 0. */
    struct cu_identity ident;
    struct cu_ledger_state ledger;
    struct cu_hash tip;  /* hash of the last block */
    uint64_t tip_height; /* height of the last block */
    int64_t tip_time_ms; /* its time */
    bool in_txn;                   /* a transaction is open (ex_txn_begin) */
    /* The provider whose score this transaction already marked stale
     * (ex_trust_record); "" at each ex_txn_begin and when a score is
     * recomputed. */
    char score_marked[CU_ID_LEN + 1];
    struct ex_waiter waiters[EX_MAX_WAITERS];
    bool deferred; /* a claimer left a replica to a cheaper waiter */
    struct ex_ledger_pending pend; /* the block of the open transaction */
    struct cu_hash *last_ids;      /* where ex_ledger_seal copies tx ids, or NULL */
    size_t last_ids_cap;
    struct ex_nonces nonces;       /* pending nonces (ex_nonce_use) */
    /* The replay check runs without mu (state.c "nonces"): nonce_mu guards
     * nonces and nonce_db, a read-only connection of its own. */
    pthread_mutex_t nonce_mu;
    sqlite3 *nonce_db;
    sqlite3_stmt *nonce_q, *nonce_legacy_q; /* on nonce_db, prepared on first use */
    /* GET /metrics counts without mu, on a read-only connection of its
     * own that metrics_mu guards (state.c "metrics"). */
    pthread_mutex_t metrics_mu;
    sqlite3 *metrics_db;
    struct ex_replay reads;        /* nonces of signed reads (replay.h) */
};

/* Why a request was refused: HTTP status, stable code, sentence. */
struct ex_fail {
    int status;
    const char *code; /* a literal */
    char msg[CU_ERR_MSG_MAX];
};

/* Fills f and returns a negative CU_E* fitting the status. */
int ex_fail_set(struct ex_fail *f, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Migrations of DATA/state.db (schema.c). */
const struct cu_migration *ex_schema(size_t *n);

/* Opens DATA/state.db and DATA/blobs (creating them). 0, or negative with
 * e set; on failure nothing is left open. */
int ex_state_open(struct ex_state *st, const char *data_dir, uint64_t lease_ms, bool devnet,
                  struct cu_err *e);
/* Closes the database; st must be stopped and no handler may run. */
void ex_state_close(struct ex_state *st);
/* Marks the state stopping and wakes every long-poll. */
void ex_state_stop(struct ex_state *st);

/* Records (key, nonce) of a request signed at signed_ms (its verified
 * timestamp, in ms) as used. 0; -CU_EAUTH with e->msg
 * "replayed: ..." when already used (in the table or pending); -CU_EDB.
 * The nonce is pending (st->nonces) until a commit carries it: the
 * request's own state change if it has one, else ex_nonces_flush from the
 * barrier; the calling thread remembers that it owes one. */
int ex_nonce_use(struct ex_state *st, const char *key, const char *nonce, int64_t signed_ms,
                 struct cu_err *e);
/* Inserts the pending nonces into the open transaction (mu held, before
 * COMMIT). Returns how many it inserted (>= 0) or -CU_EDB; after the
 * COMMIT succeeded, ex_nonces_committed(st, n) forgets them. */
int ex_nonces_stage(struct ex_state *st);
void ex_nonces_committed(struct ex_state *st, size_t n);
/* For the barrier, without mu: if a nonce this thread added is still
 * pending, commits every pending nonce in one transaction. 0 or -CU_EDB. */
int ex_nonces_flush(struct ex_state *st);

/* The reaper: expires leases that ran out before now_ms (queuing
 * replacements) and forgets nonces older than EX_NONCE_TTL_MS. Returns the
 * number of leases expired, or -CU_EDB. */
int ex_reap(struct ex_state *st, int64_t now_ms);

/* ---- jobs -------------------------------------------------------------- */

struct ex_submit {
    const char *id;    /* "j-" + 24 hex */
    const char *owner; /* signer id */
    const struct cu_spec *spec;
    const char *spec_json; /* canonical dump of the spec */
    const char *body;      /* the verbatim signed body */
    size_t body_len;
    const char *sig_json; /* the five signature headers as JSON */
    const char *auth;     /* cu_tx_auth_make of the signed request (escrow) */
    int64_t now_ms;
};

/* Stores a validated job with its tasks and queued replicas (one
 * transaction) and wakes claim waiters. *existed is set when a job with
 * this id was already stored (nothing is changed then). 0 or negative with
 * f set. */
int ex_job_submit(struct ex_state *st, const struct ex_submit *s, bool *existed, struct ex_fail *f);
/* {"jobs":[SUMMARY...]} of owner's jobs, newest first; NULL with f set. */
json_t *ex_job_list(struct ex_state *st, const char *owner, struct ex_fail *f);
/* SUMMARY + spec + tasks (docs/api.md) for the owner; NULL with f set
 * (404 unknown, 403 not the owner). */
json_t *ex_job_get(struct ex_state *st, const char *id, const char *who, struct ex_fail *f);
/* Cancels a running job of who's. 0 or negative with f set (404, 403,
 * 409 job_finished). */
int ex_job_cancel(struct ex_state *st, const char *id, const char *who, int64_t now_ms,
                  struct ex_fail *f);

/* Where a task's logs are: the latest reported replica of the task. */
struct ex_logs_ref {
    int64_t replica;
    char status[16];
    bool has_exit;
    int64_t exit_code;
    char reason[512];
    bool has_reason;
    char stdout_hash[65]; /* "" if none */
    char stderr_hash[65];
};
int ex_logs_find(struct ex_state *st, const char *job, int64_t task, const char *who,
                 struct ex_logs_ref *out, struct ex_fail *f);

/* ---- providers ------------------------------------------------------------ */

#define EX_DEFAULT_PRICE_PER_CU 1
#define EX_DEFAULT_CU_FACTOR_MILLI 1000
#define EX_CU_FACTOR_MIN 10
#define EX_CU_FACTOR_MAX 100000

struct ex_hello {
    uint64_t slots, cores, memory, gpus;
    const char *version;
    uint64_t price_per_cu;    /* the ask, base units per CU (<= CU_AMOUNT_MAX) */
    uint64_t cu_factor_milli; /* EX_CU_FACTOR_MIN..EX_CU_FACTOR_MAX */
    const char *owner;        /* owner id, or NULL: the provider itself */
    const char *allow_images; /* JSON array of image hashes, or NULL: any */
    uint64_t disk;            /* disk offered, bytes; 0 = not said */
};
int ex_provider_hello(struct ex_state *st, const char *provider, const struct ex_hello *h,
                      int64_t now_ms, struct ex_fail *f);

/* Long-poll: leases the oldest fitting queued replica to provider, waiting
 * up to wait_ms for one. Blocks (without holding the lock while waiting).
 * Returns 0 with *lease set (owned: {"lease":LEASE} or {"challenge":CH})
 * or NULL when wait_ms passed; negative with f set (503 when stopping,
 * 500). */
int ex_claim(struct ex_state *st, const char *provider, const struct ex_free *free_res,
             int64_t wait_ms, json_t **lease, struct ex_fail *f);
#define EX_MAX_CLAIM_BATCH 64
/* The same for up to max replicas (1..EX_MAX_CLAIM_BATCH) at once, leased
 * in one transaction; together they fit free_res. *answer is
 * {"leases":[LEASE...]} (1..max) or {"challenge":CH}; max 0 answers as
 * ex_claim. While many other claims queue for the state, a batch takes
 * fewer (at least EX_CLAIM_SHARE_MIN; state.c claim_share). */
int ex_claim_batch(struct ex_state *st, const char *provider, const struct ex_free *free_res,
                   int64_t wait_ms, unsigned max, json_t **answer, struct ex_fail *f);
/* Renews provider's lease of replica, checking answer (hex, may be NULL)
 * against the lease's open heartbeat nonce; *out = {"lease_expires_ms",
 * "cancel"[,"reason"],"nonce" (the next to answer),"reveal"}. 404 unknown,
 * 403 not the holder, 409 lease_lost, 409 challenge_failed (the lease
 * ended). */
int ex_heartbeat(struct ex_state *st, int64_t replica, const char *provider, const char *answer,
                 int64_t now_ms, json_t **out, struct ex_fail *f);

enum ex_status {
    EX_ST_OK,
    EX_ST_FAILED,
    EX_ST_TIMEOUT,
    EX_ST_OUTPUT_LIMIT,
    EX_ST_KILLED,
    EX_ST_ERROR
};
const char *ex_status_name(enum ex_status s);
int ex_status_parse(const char *s, enum ex_status *out);

/* A validated report (routes.c checks shapes, blobs and the Merkle root). */
struct ex_report {
    enum ex_status status;
    bool has_exit;
    int64_t exit_code;
    const char *reason; /* may be NULL */
    uint64_t cpu_ms, wall_ms;
    uint64_t outputs_size;    /* sum of output sizes */
    const char *outputs_json; /* canonical [{"name","hash","size"}] */
    const char *merkle_root;  /* hex, or NULL when status is not ok */
    const char *stdout_hash;  /* hex or NULL */
    const char *stderr_hash;
    const char *body; /* the verbatim report */
    size_t body_len;
};
/* Checks that provider may report replica, before blobs are examined:
 * 0 and *done = false when it may; *done = true with *out set when this
 * replica was already reported (idempotent answer); negative with f set
 * (404, 403, 409 lease_lost). *output_limit gets the job's output limit. */
int ex_report_check(struct ex_state *st, int64_t replica, const char *provider, int64_t now_ms,
                    uint64_t *output_limit, bool *done, json_t **out, struct ex_fail *f);
/* ex_report_check of n replicas at once (one turn of the state lock):
 * for each i, 0 or negative with fails[i] set, as ex_report_check, in
 * rcs[i]; output_limits[i], done[i] and outs[i] likewise. */
void ex_report_check_many(struct ex_state *st, const char *provider, size_t n,
                          const int64_t *replicas, int64_t now_ms, uint64_t *output_limits,
                          bool *done, json_t **outs, struct ex_fail *fails, int *rcs);
/* Applies a report in one transaction: the replica's new state, the task's
 * quorum decision, replacements, the job's state. *out = {"replica",
 * "state","task_state"}. Same refusals as ex_report_check. */
int ex_report_apply(struct ex_state *st, int64_t replica, const char *provider,
                    const struct ex_report *r, int64_t now_ms, json_t **out, struct ex_fail *f);

#define EX_MAX_REPORT_BATCH 64
/* Applies the reports of one batch (POST /v1/reports) in one
 * transaction: reports[i] of replica replicas[i] (NULL: answered before,
 * outs[i] or fails[i] already set and left alone). Each passes the gates of ex_report_apply on its
 * own: outs[i] gets its answer (or the idempotent one), or fails[i] its
 * refusal while the others go on. body is the batch's verbatim signed
 * body, stored once for all. 0; negative with f set when the transaction
 * failed (nothing applied, no outs). */
int ex_report_apply_batch(struct ex_state *st, const char *provider, size_t n,
                          const int64_t *replicas, const struct ex_report *const *reports,
                          const char *body, size_t body_len, int64_t now_ms, json_t **outs,
                          struct ex_fail *fails, struct ex_fail *f);

/* mu held, in a transaction: decides a task from its replicas (the
 * quorum) and applies the decision (validate.c uses it). */
int ex_task_decide(struct ex_state *st, const char *job, int64_t idx, int64_t now, bool *queued);

/* ---- trust (issue 4) --------------------------------------------------------- */

/* POST /v1/stake and /v1/unstake: {"tx","height","stake"}; 409
 * insufficient_funds, 409 busy (unstake while holding a lease). */
json_t *ex_stake(struct ex_state *st, const char *who, uint64_t amount, bool unstake,
                 int64_t now_ms, struct ex_fail *f);
/* POST /v1/challenges/{id}: checks the answer (outside the lock for the
 * memory kind) and settles the challenge: {"passed":bool[,"reason"]}. */
json_t *ex_challenge_answer(struct ex_state *st, const char *id, const char *provider,
                            const json_t *answer, int64_t now_ms, struct ex_fail *f);
/* POST /v1/replicas/{id}/commit: stores the holder's commitment;
 * *out = {"reveal":bool}. 404, 403, 409 lease_lost / already_committed. */
int ex_commit(struct ex_state *st, int64_t replica, const char *provider, const char *commit,
              int64_t now_ms, json_t **out, struct ex_fail *f);
/* Whether provider holds a replica (leased or running). mu held. */
bool ex_holds_lease(struct ex_state *st, const char *provider);
/* The commitment a provider must send for an output root (hex out). */
void ex_commit_hash(const char *provider, const char *merkle_root, char out[CU_HASH_HEX_LEN + 1]);

/* ---- the ledger (ledger.c) --------------------------------------------------- */

/* Loads DATA/identity.key (creating a plain devnet key when missing), then
 * rebuilds st->ledger by replaying every stored block through the verifier
 * (pinned to this identity), or produces block 0 on a fresh database.
 * Refuses (negative, e set) when the stored ledger does not verify or was
 * made with another devnet flag. Called by ex_state_open, before any
 * thread runs. */
int ex_ledger_open(struct ex_state *st, const char *data_dir, struct cu_err *e);
/* Releases the ledger state and wipes the key. */
void ex_ledger_close(struct ex_state *st);

/* Every state change is one SQLite transaction, and the ledger
 * transactions it produces go into one block committed with it:
 *   ex_txn_begin; ... ex_ledger_add(tx)...; ex_txn_commit (or rollback).
 * All with mu held. ex_txn_commit seals the pending block (if any tx was
 * added), stores it, commits, and only then makes the new ledger state
 * current; on any failure everything is rolled back (rolling back twice is
 * harmless). f may be NULL. A commit is atomic at once but durable only
 * after the committing thread's barrier (group commit, store/db.h): the
 * HTTP server runs it (ex_barrier) before the answer leaves, so code that
 * tells the outside world about a change by any other way must call
 * cu_db_barrier(&st->db) first, without mu. */
int ex_txn_begin(struct ex_state *st, struct ex_fail *f);
int ex_txn_commit(struct ex_state *st, int64_t now_ms, struct ex_fail *f);
void ex_txn_rollback(struct ex_state *st);

/* Applies tx (seq assigned here; consumed on every path) to the pending
 * state. 0 with *seq (may be NULL) set, or negative with f set (409
 * insufficient_funds, 400 invalid, 500); after a failure the caller rolls
 * back. */
int ex_ledger_add(struct ex_state *st, struct cu_tx *tx, uint64_t *seq, struct ex_fail *f);
/* The ledger state as the current transaction sees it (the pending state
 * when txs were added, else the committed one). mu held. */
const struct cu_ledger_state *ex_ledger_view(const struct ex_state *st);
/* Inserts a sealed block's row (its canonical export line) and its
 * transactions' index rows into db; ids: the n tx ids (NULL when the block
 * has none). In the caller's transaction. 0 or -CU_EDB. Also what
 * bench/ledger times, so the bench stores blocks exactly as the exchange. */
int ex_ledger_store_block(struct cu_db *db, const struct cu_block *b, const struct cu_hash *ids,
                          const struct cu_hash *hash, const char *line, size_t line_len);
/* Internal to ex_txn_commit / rollback. */
int ex_ledger_seal(struct ex_state *st, int64_t now_ms, struct ex_fail *f);
void ex_ledger_end(struct ex_state *st, bool committed);

/* The money routes' state work (docs/api.md "Money"). Each returns a new
 * JSON reference, or NULL with f set. */
json_t *ex_wallet(struct ex_state *st, const char *who, struct ex_fail *f);
json_t *ex_faucet(struct ex_state *st, const char *who, uint64_t amount, int64_t now_ms,
                  struct ex_fail *f);
/* tx: a decoded transfer (consumed: moved into the block or released). */
json_t *ex_transfer(struct ex_state *st, const char *who, struct cu_tx *tx, int64_t now_ms,
                    struct ex_fail *f);
json_t *ex_wallet_history(struct ex_state *st, const char *who, uint64_t limit, struct ex_fail *f);
json_t *ex_ledger_head(struct ex_state *st, struct ex_fail *f);
/* Appends the lines of blocks from.. (at most limit), each with "\n". */
int ex_ledger_lines(struct ex_state *st, uint64_t from, uint64_t limit, struct cu_buf *out,
                    struct ex_fail *f);

/* Prometheus text exposition into out. 0 or -CU_EDB/-CU_ETOOBIG. */
int ex_metrics(struct ex_state *st, int64_t now_ms, struct cu_buf *out);

#endif
