/* state.c - accounts, escrow and stakes, and the rules that move tokens
 * between them (contracts in state.h). */
#include "ledger/state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#include "base/banned.h"

/* ---- the map: open addressing, linear probing, load <= 1/2 ---- */

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 1099511628211ULL;
    }
    return h;
}

static void *map_find(const struct cu_ledger_map *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = key_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const char *k = m->slots[i];
        if (!k)
            return NULL;
        if (strcmp(k, key) == 0)
            return m->slots[i];
    }
}

static void map_place(void **slots, size_t cap, void *entry)
{
    size_t i = key_hash(entry) & (cap - 1);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = entry;
}

/* Makes room for one more entry. 0 or -CU_ENOMEM (map unchanged). */
static int map_reserve(struct cu_ledger_map *m)
{
    size_t cap;
    void **slots;
    if ((m->n + 1) * 2 <= m->cap)
        return 0;
    cap = m->cap ? m->cap * 2 : 64;
    if (cap > SIZE_MAX / sizeof *slots)
        return -CU_ENOMEM;
    slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -CU_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i])
            map_place(slots, cap, m->slots[i]);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

/* The entry for key, created zeroed (size bytes, key copied into its first
 * member) when missing. NULL when out of memory. Entries are separately
 * allocated, so pointers stay valid when the map grows. */
static void *map_get_or_add(struct cu_ledger_map *m, const char *key, size_t size)
{
    void *entry = map_find(m, key);
    if (entry)
        return entry;
    if (map_reserve(m))
        return NULL;
    entry = calloc(1, size);
    if (!entry)
        return NULL;
    memcpy(entry, key, strlen(key) + 1); /* lengths checked by cu_tx_check */
    map_place(m->slots, m->cap, entry);
    m->n++;
    return entry;
}

static void map_release(struct cu_ledger_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i]);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- state ---- */

void cu_ledger_state_init(struct cu_ledger_state *st, bool devnet)
{
    memset(st, 0, sizeof *st);
    st->devnet = devnet;
}

void cu_ledger_state_release(struct cu_ledger_state *st)
{
    map_release(&st->accounts);
    map_release(&st->escrows);
}

/* Copies every entry of src (entries of size bytes) into dst. */
static int map_copy(struct cu_ledger_map *dst, const struct cu_ledger_map *src, size_t size)
{
    memset(dst, 0, sizeof *dst);
    if (src->cap == 0)
        return 0;
    dst->slots = calloc(src->cap, sizeof *dst->slots);
    if (!dst->slots)
        return -CU_ENOMEM;
    dst->cap = src->cap;
    for (size_t i = 0; i < src->cap; i++) {
        if (!src->slots[i])
            continue;
        dst->slots[i] = malloc(size);
        if (!dst->slots[i]) {
            map_release(dst);
            return -CU_ENOMEM;
        }
        memcpy(dst->slots[i], src->slots[i], size);
        dst->n++;
    }
    return 0;
}

int cu_ledger_state_copy(struct cu_ledger_state *dst, const struct cu_ledger_state *src)
{
    *dst = *src;
    dst->journal = NULL;
    if (map_copy(&dst->accounts, &src->accounts, sizeof(struct cu_ledger_account)))
        goto out_empty;
    if (map_copy(&dst->escrows, &src->escrows, sizeof(struct cu_ledger_escrow)))
        goto out_release_accounts;
    return 0;
out_release_accounts:
    map_release(&dst->accounts);
out_empty:
    cu_ledger_state_init(dst, src->devnet);
    return -CU_ENOMEM;
}

const struct cu_ledger_account *cu_ledger_account(const struct cu_ledger_state *st,
                                                  const char *id)
{
    return map_find(&st->accounts, id);
}

const struct cu_ledger_escrow *cu_ledger_escrow(const struct cu_ledger_state *st, const char *job)
{
    return map_find(&st->escrows, job);
}

uint64_t cu_ledger_balance(const struct cu_ledger_state *st, const char *id)
{
    const struct cu_ledger_account *a = cu_ledger_account(st, id);
    return a ? a->balance : 0;
}

uint64_t cu_ledger_stake(const struct cu_ledger_state *st, const char *id)
{
    const struct cu_ledger_account *a = cu_ledger_account(st, id);
    return a ? a->stake : 0;
}

uint64_t cu_ledger_nonce(const struct cu_ledger_state *st, const char *id)
{
    const struct cu_ledger_account *a = cu_ledger_account(st, id);
    return a ? a->nonce : 0;
}

uint64_t cu_ledger_locked(const struct cu_ledger_state *st, const char *job)
{
    const struct cu_ledger_escrow *x = cu_ledger_escrow(st, job);
    return x ? x->locked : 0;
}

int cu_ledger_foreach_account(const struct cu_ledger_state *st,
                              int (*fn)(const struct cu_ledger_account *a, void *ctx), void *ctx)
{
    for (size_t i = 0; i < st->accounts.cap; i++) {
        int rc;
        if (st->accounts.slots[i] && (rc = fn(st->accounts.slots[i], ctx)))
            return rc;
    }
    return 0;
}

int cu_ledger_foreach_escrow(const struct cu_ledger_state *st,
                             int (*fn)(const struct cu_ledger_escrow *x, void *ctx), void *ctx)
{
    for (size_t i = 0; i < st->escrows.cap; i++) {
        int rc;
        if (st->escrows.slots[i] && (rc = fn(st->escrows.slots[i], ctx)))
            return rc;
    }
    return 0;
}

/* ---- the journal ---- */

struct cu_ledger_undo {
    void *entry; /* in one of the maps; entries never move or go */
    size_t size;
    unsigned char *old; /* size bytes, malloc'd */
};

void cu_ledger_journal_begin(struct cu_ledger_state *st, struct cu_ledger_journal *j)
{
    assert(!st->journal);
    memset(j, 0, sizeof *j);
    j->minted = st->minted;
    j->tx_count = st->tx_count;
    j->height = st->height;
    st->journal = j;
}

static void journal_free(struct cu_ledger_state *st)
{
    struct cu_ledger_journal *j = st->journal;

    for (size_t i = 0; i < j->n; i++)
        free(j->v[i].old);
    free(j->v);
    memset(j, 0, sizeof *j);
    st->journal = NULL;
}

void cu_ledger_journal_commit(struct cu_ledger_state *st)
{
    if (st->journal)
        journal_free(st);
}

void cu_ledger_journal_rollback(struct cu_ledger_state *st)
{
    struct cu_ledger_journal *j = st->journal;

    if (!j)
        return;
    for (size_t i = j->n; i-- > 0;)
        memcpy(j->v[i].entry, j->v[i].old, j->v[i].size);
    st->minted = j->minted;
    st->tx_count = j->tx_count;
    st->height = j->height;
    journal_free(st);
}

/* Saves entry's contents before its first change under the journal (the
 * first save of an entry is the one a rollback needs). 0, or -CU_ENOMEM
 * with nothing saved; no journal: 0. */
static int journal_note(struct cu_ledger_state *st, void *entry, size_t size)
{
    struct cu_ledger_journal *j = st->journal;
    struct cu_ledger_undo *u;

    if (!j || !entry)
        return 0;
    /* A block touches few entries (a task's payer, payee and escrow). */
    for (size_t i = j->n; i-- > 0;)
        if (j->v[i].entry == entry)
            return 0;
    if (j->n == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 16;
        void *v = cap > SIZE_MAX / sizeof *u ? NULL : realloc(j->v, cap * sizeof *u);
        if (!v)
            return -CU_ENOMEM;
        j->v = v;
        j->cap = cap;
    }
    u = &j->v[j->n];
    u->old = malloc(size);
    if (!u->old)
        return -CU_ENOMEM;
    memcpy(u->old, entry, size);
    u->entry = entry;
    u->size = size;
    j->n++;
    return 0;
}

/* The entries a transaction may change, recorded in the journal first.
 * account_w / escrow_w: NULL when missing (or, *oom set, when the journal
 * is out of memory); the _add forms create a missing one (zeroed: its old
 * contents are empty, which is what a rollback leaves). */
static struct cu_ledger_account *account_w(struct cu_ledger_state *st, const char *id, bool *oom)
{
    struct cu_ledger_account *a = map_find(&st->accounts, id);
    if (a && journal_note(st, a, sizeof *a)) {
        *oom = true;
        return NULL;
    }
    return a;
}

static struct cu_ledger_escrow *escrow_w(struct cu_ledger_state *st, const char *job, bool *oom)
{
    struct cu_ledger_escrow *x = map_find(&st->escrows, job);
    if (x && journal_note(st, x, sizeof *x)) {
        *oom = true;
        return NULL;
    }
    return x;
}

/* a + b when the sum stays <= CU_AMOUNT_MAX. */
static int add_amount(uint64_t a, uint64_t b, uint64_t *out)
{
    if (cu_add_u64(a, b, out) || *out > CU_AMOUNT_MAX)
        return -CU_EOVERFLOW;
    return 0;
}

#define ULL(x) ((unsigned long long)(x))

static struct cu_ledger_account *account_add(struct cu_ledger_state *st, const char *id)
{
    struct cu_ledger_account *a = map_get_or_add(&st->accounts, id, sizeof *a);
    return a && journal_note(st, a, sizeof *a) == 0 ? a : NULL;
}

/* Credits amount to `to` (created if new). Validates before any change. */
static int credit(struct cu_ledger_state *st, const char *to, uint64_t amount,
                  struct cu_ledger_account **acct, uint64_t *new_balance, struct cu_err *e)
{
    *acct = account_add(st, to);
    if (!*acct)
        return cu_err_set(e, -CU_ENOMEM, "out of memory adding account %.12s…", to);
    if (add_amount((*acct)->balance, amount, new_balance))
        return cu_err_set(e, -CU_EOVERFLOW, "balance of %.12s… would overflow", to);
    return 0;
}

static int apply_mint(struct cu_ledger_state *st, const struct cu_tx *tx, struct cu_err *e)
{
    struct cu_ledger_account *to;
    uint64_t minted, bal;
    int rc;

    if (tx->type == CU_TX_GENESIS_MINT && st->height != 0)
        return cu_err_set(e, -CU_EPERM, "genesis_mint in block %llu: only block 0 may hold one",
                          ULL(st->height));
    if (tx->type == CU_TX_FAUCET_MINT && !st->devnet)
        return cu_err_set(e, -CU_EPERM, "faucet_mint on a chain that is not a devnet");
    if (add_amount(st->minted, tx->amount, &minted))
        return cu_err_set(e, -CU_EOVERFLOW, "minting %llu would take the supply past %llu",
                          ULL(tx->amount), ULL(CU_AMOUNT_MAX));
    if ((rc = credit(st, tx->to, tx->amount, &to, &bal, e)))
        return rc;
    st->minted = minted;
    to->balance = bal;
    return 0;
}

static int apply_transfer(struct cu_ledger_state *st, const struct cu_tx *tx, struct cu_err *e)
{
    bool oom = false;
    struct cu_ledger_account *from = account_w(st, tx->from, &oom), *to;
    uint64_t bal;
    int rc;

    if (oom)
        return cu_err_set(e, -CU_ENOMEM, "out of memory recording %.12s…", tx->from);

    if (strcmp(tx->from, tx->to) == 0)
        return cu_err_set(e, -CU_EINVAL, "transfer from %.12s… to itself", tx->from);
    if (tx->nonce != (from ? from->nonce : 0))
        return cu_err_set(e, -CU_ECONFLICT,
                          "transfer nonce %llu from %.12s… where %llu was expected (replayed or "
                          "out of order)",
                          ULL(tx->nonce), tx->from, ULL(from ? from->nonce : 0));
    if (!from || from->balance < tx->amount)
        return cu_err_set(e, -CU_ECONFLICT,
                          "transfer of %llu exceeds the balance %llu of %.12s…", ULL(tx->amount),
                          ULL(from ? from->balance : 0), tx->from);
    if ((rc = cu_tx_verify_sig(tx, e)))
        return rc;
    if ((rc = credit(st, tx->to, tx->amount, &to, &bal, e)))
        return rc;
    from->balance -= tx->amount;
    from->nonce++;
    to->balance = bal;
    return 0;
}

static int apply_lock(struct cu_ledger_state *st, const struct cu_tx *tx, struct cu_err *e)
{
    bool oom = false;
    struct cu_ledger_account *from = account_w(st, tx->from, &oom);
    struct cu_ledger_escrow *x = escrow_w(st, tx->job, &oom);
    uint64_t locked, total;
    int rc;

    if (oom)
        return cu_err_set(e, -CU_ENOMEM, "out of memory recording the escrow of job %s", tx->job);

    if (x && x->owner[0] && strcmp(x->owner, tx->from) != 0)
        return cu_err_set(e, -CU_ECONFLICT, "escrow of job %s belongs to %.12s…, not %.12s…",
                          tx->job, x->owner, tx->from);
    if (!from || from->balance < tx->amount)
        return cu_err_set(e, -CU_ECONFLICT,
                          "escrow lock of %llu for job %s exceeds the balance %llu of %.12s…",
                          ULL(tx->amount), tx->job, ULL(from ? from->balance : 0), tx->from);
    if ((rc = cu_tx_auth_check(tx->authorization, tx->from, e)))
        return rc;
    if (!x) {
        x = map_get_or_add(&st->escrows, tx->job, sizeof *x);
        if (!x || journal_note(st, x, sizeof *x))
            return cu_err_set(e, -CU_ENOMEM, "out of memory adding the escrow of job %s",
                              tx->job);
    }
    if (add_amount(x->locked, tx->amount, &locked) ||
        add_amount(x->total_locked, tx->amount, &total))
        return cu_err_set(e, -CU_EOVERFLOW, "escrow of job %s would overflow", tx->job);
    memcpy(x->owner, tx->from, sizeof x->owner);
    x->locked = locked;
    x->total_locked = total;
    from->balance -= tx->amount;
    return 0;
}

/* escrow_release, fee and refund: escrow of tx->job -> tx->to. */
static int apply_payout(struct cu_ledger_state *st, const struct cu_tx *tx, struct cu_err *e)
{
    bool oom = false;
    struct cu_ledger_escrow *x = escrow_w(st, tx->job, &oom);
    struct cu_ledger_account *to;
    uint64_t bal, *counter;
    int rc;

    if (oom)
        return cu_err_set(e, -CU_ENOMEM, "out of memory recording the escrow of job %s", tx->job);

    if (!x || !x->owner[0])
        return cu_err_set(e, -CU_ENOTFOUND, "%s for job %s, which has no escrow",
                          cu_tx_type_name(tx->type), tx->job);
    if (tx->amount > x->locked)
        return cu_err_set(e, -CU_ECONFLICT, "%s of %llu exceeds the locked escrow %llu of job %s",
                          tx->type == CU_TX_ESCROW_RELEASE ? "escrow release"
                                                           : cu_tx_type_name(tx->type),
                          ULL(tx->amount), ULL(x->locked), tx->job);
    if (tx->type == CU_TX_REFUND && strcmp(tx->to, x->owner) != 0)
        return cu_err_set(e, -CU_EPERM, "refund of job %s to %.12s…, not to its owner %.12s…",
                          tx->job, tx->to, x->owner);
    if ((rc = credit(st, tx->to, tx->amount, &to, &bal, e)))
        return rc;
    counter = tx->type == CU_TX_ESCROW_RELEASE ? &x->released
              : tx->type == CU_TX_FEE          ? &x->fees
                                               : &x->refunded;
    x->locked -= tx->amount;
    *counter += tx->amount; /* <= total_locked: cannot overflow */
    to->balance = bal;
    return 0;
}

static int apply_stake(struct cu_ledger_state *st, const struct cu_tx *tx, struct cu_err *e)
{
    bool oom = false;
    struct cu_ledger_account *a = account_w(st, tx->from, &oom), *to;
    uint64_t v;
    int rc;

    if (oom)
        return cu_err_set(e, -CU_ENOMEM, "out of memory recording %.12s…", tx->from);

    switch (tx->type) {
    case CU_TX_STAKE:
        if (!a || a->balance < tx->amount)
            return cu_err_set(e, -CU_ECONFLICT, "stake of %llu exceeds the balance %llu of %.12s…",
                              ULL(tx->amount), ULL(a ? a->balance : 0), tx->from);
        if (add_amount(a->stake, tx->amount, &v))
            return cu_err_set(e, -CU_EOVERFLOW, "stake of %.12s… would overflow", tx->from);
        a->balance -= tx->amount;
        a->stake = v;
        return 0;
    case CU_TX_UNSTAKE:
        if (!a || a->stake < tx->amount)
            return cu_err_set(e, -CU_ECONFLICT, "unstake of %llu exceeds the stake %llu of %.12s…",
                              ULL(tx->amount), ULL(a ? a->stake : 0), tx->from);
        if (add_amount(a->balance, tx->amount, &v))
            return cu_err_set(e, -CU_EOVERFLOW, "balance of %.12s… would overflow", tx->from);
        a->stake -= tx->amount;
        a->balance = v;
        return 0;
    default: /* slash */
        if (strcmp(tx->from, tx->to) == 0)
            return cu_err_set(e, -CU_EINVAL, "slash of %.12s… paid to itself", tx->from);
        if (!a || a->stake < tx->amount)
            return cu_err_set(e, -CU_ECONFLICT, "slash of %llu exceeds the stake %llu of %.12s…",
                              ULL(tx->amount), ULL(a ? a->stake : 0), tx->from);
        if ((rc = credit(st, tx->to, tx->amount, &to, &v, e)))
            return rc;
        a->stake -= tx->amount;
        to->balance = v;
        return 0;
    }
}

int cu_ledger_apply(struct cu_ledger_state *st, const struct cu_tx *tx, struct cu_err *e)
{
    int rc;

    if ((rc = cu_tx_check(tx, e)))
        return rc;
    if (tx->seq != st->tx_count)
        return cu_err_set(e, -CU_EINVAL,
                          "sequence number %llu where %llu was expected (a transaction is "
                          "missing, repeated or out of order)",
                          ULL(tx->seq), ULL(st->tx_count));
    switch (tx->type) {
    case CU_TX_GENESIS_MINT:
    case CU_TX_FAUCET_MINT:
        rc = apply_mint(st, tx, e);
        break;
    case CU_TX_TRANSFER:
        rc = apply_transfer(st, tx, e);
        break;
    case CU_TX_ESCROW_LOCK:
        rc = apply_lock(st, tx, e);
        break;
    case CU_TX_ESCROW_RELEASE:
    case CU_TX_FEE:
    case CU_TX_REFUND:
        rc = apply_payout(st, tx, e);
        break;
    case CU_TX_STAKE:
    case CU_TX_UNSTAKE:
    case CU_TX_SLASH:
        rc = apply_stake(st, tx, e);
        break;
    case CU_TX_TASK_RECORD:
        rc = 0; /* a record moves no tokens; cu_tx_check validated it */
        break;
    default:
        rc = cu_err_set(e, -CU_EINVAL, "unknown transaction type %d", (int)tx->type);
        break;
    }
    if (rc == 0)
        st->tx_count++;
    return rc;
}

int cu_ledger_check_invariant(const struct cu_ledger_state *st, struct cu_err *e)
{
    uint64_t bal = 0, esc = 0, stk = 0, sum;

    for (size_t i = 0; i < st->accounts.cap; i++) {
        const struct cu_ledger_account *a = st->accounts.slots[i];
        if (a && (add_amount(bal, a->balance, &bal) || add_amount(stk, a->stake, &stk)))
            return cu_err_set(e, -CU_ECORRUPT, "balances or stakes sum past %llu",
                              ULL(CU_AMOUNT_MAX));
    }
    for (size_t i = 0; i < st->escrows.cap; i++) {
        const struct cu_ledger_escrow *x = st->escrows.slots[i];
        if (x && add_amount(esc, x->locked, &esc))
            return cu_err_set(e, -CU_ECORRUPT, "escrow sums past %llu", ULL(CU_AMOUNT_MAX));
    }
    if (add_amount(bal, esc, &sum) || add_amount(sum, stk, &sum) || sum != st->minted)
        return cu_err_set(e, -CU_ECORRUPT,
                          "tokens not conserved: balances %llu + escrow %llu + stakes %llu != "
                          "minted %llu",
                          ULL(bal), ULL(esc), ULL(stk), ULL(st->minted));
    return 0;
}

/* ---- digest ---- */

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void put_u64(struct cu_hasher *h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (56 - 8 * i));
    cu_hasher_update(h, b, sizeof b);
}

/* Non-empty entries of m, sorted by key, into a malloc'd array. */
static int sorted_entries(const struct cu_ledger_map *m, bool accounts, void ***out, size_t *n)
{
    void **v = malloc((m->n ? m->n : 1) * sizeof *v);
    size_t k = 0;
    if (!v)
        return -CU_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i])
            continue;
        if (accounts) {
            const struct cu_ledger_account *a = m->slots[i];
            if (!a->balance && !a->stake && !a->nonce)
                continue;
        } else {
            const struct cu_ledger_escrow *x = m->slots[i];
            if (!x->owner[0])
                continue;
        }
        v[k++] = m->slots[i];
    }
    qsort(v, k, sizeof *v, key_cmp);
    *out = v;
    *n = k;
    return 0;
}

int cu_ledger_state_hash(const struct cu_ledger_state *st, struct cu_hash *out)
{
    static const char tag[] = "cumulus-state-v1";
    struct cu_hasher h;
    void **acc, **esc;
    size_t na, ne;

    if (sorted_entries(&st->accounts, true, &acc, &na))
        return -CU_ENOMEM;
    if (sorted_entries(&st->escrows, false, &esc, &ne)) {
        free(acc);
        return -CU_ENOMEM;
    }
    cu_hasher_init(&h);
    cu_hasher_update(&h, tag, sizeof tag);
    put_u64(&h, na);
    for (size_t i = 0; i < na; i++) {
        const struct cu_ledger_account *a = acc[i];
        cu_hasher_update(&h, a->id, CU_ID_LEN);
        put_u64(&h, a->balance);
        put_u64(&h, a->stake);
        put_u64(&h, a->nonce);
    }
    put_u64(&h, ne);
    for (size_t i = 0; i < ne; i++) {
        const struct cu_ledger_escrow *x = esc[i];
        cu_hasher_update(&h, x->job, strlen(x->job) + 1);
        cu_hasher_update(&h, x->owner, CU_ID_LEN);
        put_u64(&h, x->locked);
        put_u64(&h, x->total_locked);
        put_u64(&h, x->released);
        put_u64(&h, x->fees);
        put_u64(&h, x->refunded);
    }
    put_u64(&h, st->minted);
    put_u64(&h, st->tx_count);
    put_u64(&h, st->devnet);
    cu_hasher_final(&h, out);
    free(esc);
    free(acc);
    return 0;
}
