/* state.h - the deterministic ledger state (pure).
 *
 * State = accounts (balance, stake, transfer nonce), escrow per job (owner
 * and what is still locked), total minted, and where the chain stands
 * (height of the block being applied, number of transactions so far). It is
 * a function of the transactions alone: replaying the same transactions
 * from an empty state gives the same state.
 *
 * Invariant (DESIGN.md §6): sum(balances) + sum(escrow) + sum(stakes) ==
 * minted, and every figure <= CU_AMOUNT_MAX.
 *
 * Lookups are O(1): open-addressing hash maps keyed by account id / job.
 * Entries are never removed (a drained account or escrow stays, at zero). */
#ifndef CU_LEDGER_STATE_H
#define CU_LEDGER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "ledger/tx.h"

struct cu_ledger_account {
    char id[CU_ID_LEN + 1]; /* key: first member */
    uint64_t balance;
    uint64_t stake;
    uint64_t nonce; /* next transfer nonce expected from this account */
};

struct cu_ledger_escrow {
    char job[CU_LEDGER_NAME_MAX + 1]; /* key: first member */
    char owner[CU_ID_LEN + 1];        /* the requester who locked it */
    uint64_t locked;                  /* still held */
    uint64_t total_locked, released, fees, refunded; /* history, for bills */
};

/* Open-addressing map of pointers to entries whose key string is their
 * first member. Private to state.c; here so the state can live on the
 * stack. */
struct cu_ledger_map {
    void **slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

/* What a journal keeps to undo (state.c). */
struct cu_ledger_undo;

/* The changes made to a state since cu_ledger_journal_begin, to keep
 * (cu_ledger_journal_commit) or undo (cu_ledger_journal_rollback): a
 * pending block applied in place, in O(entries it touches), instead of on
 * a copy of the whole state (O(accounts + escrows) per transaction). */
struct cu_ledger_journal {
    struct cu_ledger_undo *v; /* old contents of each touched entry, in order */
    size_t n, cap;
    uint64_t minted, tx_count, height; /* as they were at the start */
};

struct cu_ledger_state {
    struct cu_ledger_map accounts;
    struct cu_ledger_map escrows;
    uint64_t minted;
    uint64_t tx_count; /* seq the next transaction must carry */
    uint64_t height;   /* height of the block whose transactions are applied */
    bool devnet;       /* faucet_mint allowed */
    struct cu_ledger_journal *journal; /* not owned; NULL: changes are not recorded */
};

/* Empty state (no accounts, nothing minted, height 0). */
void cu_ledger_state_init(struct cu_ledger_state *st, bool devnet);
void cu_ledger_state_release(struct cu_ledger_state *st);

/* Deep copy of src into dst (uninitialised), e.g. to try a batch of
 * transactions on a scratch copy. 0 or -CU_ENOMEM (dst then empty). dst
 * records no journal. */
int cu_ledger_state_copy(struct cu_ledger_state *dst, const struct cu_ledger_state *src);

/* Starts recording st's changes into j (uninitialised; st must have no
 * journal yet): every cu_ledger_apply from now on saves the old contents
 * of each account and escrow before it first changes them. Changing
 * st->height afterwards is recorded too (it is saved here). Then exactly
 * one of: _commit keeps the changes, _rollback restores st to what it was
 * here (an entry created since stays, empty, as after a refused
 * transaction: no figure or digest sees it). Both free j's memory and
 * detach it. */
void cu_ledger_journal_begin(struct cu_ledger_state *st, struct cu_ledger_journal *j);
void cu_ledger_journal_commit(struct cu_ledger_state *st);
void cu_ledger_journal_rollback(struct cu_ledger_state *st);

/* Validates tx against the rules and st, and applies it atomically: on any
 * error st is unchanged (at most an empty account or escrow entry was
 * created, which no figure or hash sees). Rules:
 *   - cu_tx_check passes; tx->seq == st->tx_count;
 *   - genesis_mint only at height 0; faucet_mint only when st->devnet;
 *     minted stays <= CU_AMOUNT_MAX (-CU_EOVERFLOW);
 *   - transfer: signature of `from` verifies, nonce == from's nonce,
 *     from != to, balance covers the amount;
 *   - escrow_lock: the authorization is signed by `from`, balance covers
 *     it; a job's escrow has one owner (a second lock by another is
 *     refused, a top-up by the owner is allowed);
 *   - escrow_release, fee, refund: never more than the job's locked
 *     escrow; refund goes only to the job's owner;
 *   - stake/unstake/slash: balance or stake covers it.
 * Insufficient funds: -CU_ECONFLICT; bad signature: -CU_EAUTH; malformed:
 * -CU_EINVAL; unknown job: -CU_ENOTFOUND; -CU_ENOMEM (also when a journal
 * cannot record an entry: nothing changed then). e names the figure. */
int cu_ledger_apply(struct cu_ledger_state *st, const struct cu_tx *tx, struct cu_err *e);

/* Checks the invariant by summing every account and escrow (O(n)). 0, or
 * -CU_ECORRUPT with e giving both sides. */
int cu_ledger_check_invariant(const struct cu_ledger_state *st, struct cu_err *e);

/* Read access. NULL when the account / job has never been seen. */
const struct cu_ledger_account *cu_ledger_account(const struct cu_ledger_state *st,
                                                  const char *id);
const struct cu_ledger_escrow *cu_ledger_escrow(const struct cu_ledger_state *st,
                                                const char *job);
/* Convenience: 0 for unknown accounts / jobs. */
uint64_t cu_ledger_balance(const struct cu_ledger_state *st, const char *id);
uint64_t cu_ledger_stake(const struct cu_ledger_state *st, const char *id);
uint64_t cu_ledger_nonce(const struct cu_ledger_state *st, const char *id);
uint64_t cu_ledger_locked(const struct cu_ledger_state *st, const char *job);

/* Calls fn for every account / escrow in an unspecified order; stops and
 * returns fn's value when it is non-zero. */
int cu_ledger_foreach_account(const struct cu_ledger_state *st,
                              int (*fn)(const struct cu_ledger_account *a, void *ctx), void *ctx);
int cu_ledger_foreach_escrow(const struct cu_ledger_state *st,
                             int (*fn)(const struct cu_ledger_escrow *x, void *ctx), void *ctx);

/* Digest of the state (sorted non-zero accounts and escrows, minted,
 * tx_count, devnet; not height, which says where
 * a replay stands rather than what it holds) so two replicas of the state can be compared
 * cheaply, e.g. the exchange's SQLite state against a replay. 0 or
 * -CU_ENOMEM. */
int cu_ledger_state_hash(const struct cu_ledger_state *st, struct cu_hash *out);

#endif
