/* challenge.c - factor, memory and heartbeat challenges (see challenge.h). */
#include "trust/challenge.h"

#include <sodium.h>
#include <string.h>

#include "base/err.h"
#include "crypto/hash.h"

#include "base/banned.h"

typedef unsigned __int128 u128;

/* Attempts at drawing a semiprime of the right size before giving up; each
 * succeeds with probability above 1/4, so 4096 failures do not happen. */
#define MAKE_ATTEMPTS 4096
/* Trial division before rho: catches the small factors of small n. */
#define TRIAL_LIMIT 1000u
/* Rho steps between gcds (Brent's batching). */
#define RHO_BATCH 128u

static const char memory_password[] = "cumulus-memory-challenge-v1";
static const char heartbeat_tag[] = "cumulus-heartbeat-v1";
static const char lease_tag[] = "cumulus-lease-v1";

static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t n)
{
    return (uint64_t)((u128)a * b % n);
}

static uint64_t powmod(uint64_t b, uint64_t e, uint64_t n)
{
    uint64_t r = 1 % n;

    b %= n;
    while (e) {
        if (e & 1)
            r = mulmod(r, b, n);
        b = mulmod(b, b, n);
        e >>= 1;
    }
    return r;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static unsigned bit_length(uint64_t x)
{
    return x ? 64u - (unsigned)__builtin_clzll(x) : 0u;
}

bool cu_chal_is_prime(uint64_t n)
{
    /* These bases decide every n < 3.3e24 (Sorenson and Webster 2015). */
    static const uint64_t bases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    uint64_t d;
    unsigned s = 0;

    if (n < 2)
        return false;
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        if (n == bases[i])
            return true;
        if (n % bases[i] == 0)
            return false;
    }
    d = n - 1;
    while ((d & 1) == 0) {
        d >>= 1;
        s++;
    }
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        uint64_t x = powmod(bases[i], d, n);
        if (x == 1 || x == n - 1)
            continue;
        bool witness = true;
        for (unsigned r = 1; r < s; r++) {
            x = mulmod(x, x, n);
            if (x == n - 1) {
                witness = false;
                break;
            }
        }
        if (witness)
            return false;
    }
    return true;
}

/* A deterministic byte stream: BLAKE2b-256 of seed || counter. */
struct stream {
    unsigned char in[CU_CHAL_SEED_MAX + 8];
    size_t seed_len;
    uint64_t counter;
    struct cu_hash block;
    size_t used;
};

static void stream_init(struct stream *s, const void *seed, size_t n)
{
    memset(s, 0, sizeof *s);
    memcpy(s->in, seed, n);
    s->seed_len = n;
    s->used = sizeof s->block.b;
}

static uint64_t stream_u64(struct stream *s)
{
    uint64_t v = 0;

    if (s->used + 8 > sizeof s->block.b) {
        for (int i = 0; i < 8; i++)
            s->in[s->seed_len + (size_t)i] = (unsigned char)(s->counter >> (8 * i));
        s->counter++;
        cu_hash_mem(s->in, s->seed_len + 8, &s->block);
        s->used = 0;
    }
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)s->block.b[s->used + (size_t)i] << (8 * i);
    s->used += 8;
    return v;
}

/* A prime of exactly `bits` bits (4..32): the first prime at or after a
 * random odd number with the top bit set, redrawn when none is left below
 * 2^bits. */
static uint64_t draw_prime(struct stream *s, unsigned bits)
{
    const uint64_t top = 1ull << (bits - 1), end = 1ull << bits;

    for (;;) {
        uint64_t x = (stream_u64(s) & (end - 1)) | top | 1u;
        for (; x < end; x += 2)
            if (cu_chal_is_prime(x))
                return x;
    }
}

int cu_chal_factor_make(const void *seed, size_t seed_len, unsigned bits, struct cu_factor_chal *c,
                        struct cu_factor_answer *secret)
{
    struct stream s;
    unsigned pbits = bits / 2, qbits = bits - bits / 2;

    if (bits < CU_CHAL_FACTOR_MIN_BITS || bits > CU_CHAL_FACTOR_MAX_BITS ||
        seed_len < CU_CHAL_SEED_MIN || seed_len > CU_CHAL_SEED_MAX)
        return -CU_EINVAL;
    stream_init(&s, seed, seed_len);
    for (int attempt = 0; attempt < MAKE_ATTEMPTS; attempt++) {
        uint64_t p = draw_prime(&s, pbits), q = draw_prime(&s, qbits), n;
        if (p == q)
            continue;
        n = p * q; /* < 2^pbits * 2^qbits = 2^bits <= 2^64 */
        if (bit_length(n) != bits)
            continue;
        c->bits = bits;
        c->n = n;
        if (secret) {
            secret->p = p < q ? p : q;
            secret->q = p < q ? q : p;
        }
        return 0;
    }
    return -CU_EAGAIN;
}

int cu_chal_factor_check(const struct cu_factor_chal *c, const struct cu_factor_answer *a)
{
    if (c->bits < CU_CHAL_FACTOR_MIN_BITS || c->bits > CU_CHAL_FACTOR_MAX_BITS ||
        bit_length(c->n) != c->bits)
        return -CU_EINVAL;
    if (a->p < 2 || a->q < 2 || (u128)a->p * a->q != c->n)
        return -CU_EAUTH;
    return 0;
}

static uint64_t rho_f(uint64_t y, uint64_t c, uint64_t n)
{
    return (uint64_t)(((u128)mulmod(y, y, n) + c) % n);
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* One Pollard-Brent run with constant c: a factor of n (possibly n itself
 * when this c fails), or 0 when the step budget ran out. */
static uint64_t rho_brent(uint64_t n, uint64_t c, uint64_t max_steps, uint64_t *steps)
{
    uint64_t y = 2, x = 2, ys = 2, q = 1, g = 1, r = 1;

    while (g == 1) {
        x = y;
        for (uint64_t i = 0; i < r; i++)
            y = rho_f(y, c, n);
        *steps += r;
        for (uint64_t k = 0; k < r && g == 1; k += RHO_BATCH) {
            uint64_t m = r - k < RHO_BATCH ? r - k : RHO_BATCH;
            ys = y;
            for (uint64_t i = 0; i < m; i++) {
                y = rho_f(y, c, n);
                q = mulmod(q, absdiff(x, y), n);
            }
            *steps += 2 * m;
            g = gcd_u64(q, n);
            if (*steps > max_steps)
                return 0;
        }
        r *= 2;
    }
    if (g == n) {
        /* The batch overshot: redo it one step at a time. */
        do {
            ys = rho_f(ys, c, n);
            (*steps)++;
            g = gcd_u64(absdiff(x, ys), n);
        } while (g == 1 && *steps <= max_steps);
        if (g == 1)
            return 0;
    }
    return g;
}

int cu_chal_factor_solve(uint64_t n, uint64_t max_steps, struct cu_factor_answer *a,
                         uint64_t *steps)
{
    uint64_t used = 0, f = 0;
    int rc = -CU_ETIMEOUT;

    if (n < 4 || cu_chal_is_prime(n))
        return -CU_EINVAL;
    for (uint64_t d = 2; d <= TRIAL_LIMIT && d * d <= n; d++) {
        if (++used > max_steps)
            goto out;
        if (n % d == 0) {
            f = d;
            break;
        }
    }
    for (uint64_t c = 1; f == 0 && used <= max_steps; c++) {
        uint64_t g = rho_brent(n, c, max_steps, &used);
        if (g == 0)
            goto out;
        if (g != n)
            f = g;
    }
    if (f == 0)
        goto out;
    a->p = f < n / f ? f : n / f;
    a->q = n / a->p;
    rc = 0;
out:
    if (steps)
        *steps = used;
    return rc;
}

int cu_chal_memory_make(const unsigned char rnd[CU_CHAL_NONCE_LEN], unsigned mib, unsigned ops,
                        struct cu_memory_chal *c)
{
    if (mib < 1 || mib > CU_CHAL_MEMORY_MAX_MIB || ops < 1 || ops > CU_CHAL_MEMORY_MAX_OPS)
        return -CU_EINVAL;
    c->mib = mib;
    c->ops = ops;
    memcpy(c->nonce, rnd, CU_CHAL_NONCE_LEN);
    return 0;
}

int cu_chal_memory_solve(const struct cu_memory_chal *c, unsigned char out[CU_CHAL_ANSWER_LEN])
{
    if (c->mib < 1 || c->mib > CU_CHAL_MEMORY_MAX_MIB || c->ops < 1 ||
        c->ops > CU_CHAL_MEMORY_MAX_OPS)
        return -CU_EINVAL;
    if (cu_crypto_init() != 0)
        return -CU_ECRYPTO;
    /* crypto_pwhash fails only when it cannot allocate the memory. */
    if (crypto_pwhash(out, CU_CHAL_ANSWER_LEN, memory_password, sizeof memory_password - 1,
                      c->nonce, c->ops, (size_t)c->mib << 20, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return -CU_ENOMEM;
    return 0;
}

int cu_chal_memory_check(const struct cu_memory_chal *c,
                         const unsigned char answer[CU_CHAL_ANSWER_LEN],
                         const unsigned char *expected)
{
    unsigned char want[CU_CHAL_ANSWER_LEN];
    int rc;

    if (!expected) {
        rc = cu_chal_memory_solve(c, want);
        if (rc)
            return rc;
        expected = want;
    }
    return sodium_memcmp(answer, expected, CU_CHAL_ANSWER_LEN) == 0 ? 0 : -CU_EAUTH;
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void cu_chal_lease_secret(const unsigned char master[CU_CHAL_KEY_LEN], int64_t replica,
                          uint64_t lease_seq, unsigned char out[CU_CHAL_KEY_LEN])
{
    unsigned char msg[sizeof lease_tag + 16];

    memcpy(msg, lease_tag, sizeof lease_tag); /* with its NUL: a separator */
    put_le64(msg + sizeof lease_tag, (uint64_t)replica);
    put_le64(msg + sizeof lease_tag + 8, lease_seq);
    crypto_generichash(out, CU_CHAL_KEY_LEN, msg, sizeof msg, master, CU_CHAL_KEY_LEN);
}

void cu_chal_heartbeat_answer(const unsigned char secret[CU_CHAL_KEY_LEN], int64_t replica,
                              const unsigned char nonce[CU_CHAL_NONCE_LEN],
                              unsigned char out[CU_CHAL_ANSWER_LEN])
{
    unsigned char msg[sizeof heartbeat_tag + 8 + CU_CHAL_NONCE_LEN];

    memcpy(msg, heartbeat_tag, sizeof heartbeat_tag);
    put_le64(msg + sizeof heartbeat_tag, (uint64_t)replica);
    memcpy(msg + sizeof heartbeat_tag + 8, nonce, CU_CHAL_NONCE_LEN);
    crypto_generichash(out, CU_CHAL_ANSWER_LEN, msg, sizeof msg, secret, CU_CHAL_KEY_LEN);
}

int cu_chal_heartbeat_check(const unsigned char secret[CU_CHAL_KEY_LEN], int64_t replica,
                            const unsigned char nonce[CU_CHAL_NONCE_LEN],
                            const unsigned char answer[CU_CHAL_ANSWER_LEN])
{
    unsigned char want[CU_CHAL_ANSWER_LEN];

    cu_chal_heartbeat_answer(secret, replica, nonce, want);
    return sodium_memcmp(answer, want, CU_CHAL_ANSWER_LEN) == 0 ? 0 : -CU_EAUTH;
}
