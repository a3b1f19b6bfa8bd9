/* challenge_test.c - primality against a sieve, semiprime generation for
 * every size, answers right and wrong (including products that wrap at
 * 2^64), the bounded solver, memory puzzles and heartbeat answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "crypto/hash.h"
#include "trust/challenge.h"

#include "base/banned.h"

static void seed_of(unsigned char seed[32], unsigned i)
{
    memset(seed, 0, 32);
    seed[0] = (unsigned char)i;
    seed[1] = (unsigned char)(i >> 8);
    seed[31] = 0x5a;
}

static void test_is_prime(void **state)
{
    enum { N = 200000 };
    unsigned char *composite = calloc(N, 1);
    (void)state;
    assert_non_null(composite);
    composite[0] = composite[1] = 1;
    for (unsigned i = 2; i * i < N; i++)
        if (!composite[i])
            for (unsigned j = i * i; j < N; j += i)
                composite[j] = 1;
    for (unsigned i = 0; i < N; i++)
        if (cu_chal_is_prime(i) != !composite[i])
            fail_msg("is_prime(%u) wrong", i);
    free(composite);
    /* Large primes, Carmichael numbers and strong pseudoprimes. */
    assert_true(cu_chal_is_prime(2305843009213693951ull));  /* 2^61 - 1 */
    assert_true(cu_chal_is_prime(18446744073709551557ull)); /* largest 64-bit prime */
    assert_true(cu_chal_is_prime(4294967291ull));           /* largest 32-bit prime */
    assert_false(cu_chal_is_prime(UINT64_MAX));
    assert_false(cu_chal_is_prime(3215031751ull));          /* spsp(2,3,5,7) */
    assert_false(cu_chal_is_prime(3825123056546413051ull)); /* spsp to bases 2..23 */
    assert_false(cu_chal_is_prime(4294967291ull * 4294967291ull));
    assert_false(cu_chal_is_prime(561));
    assert_false(cu_chal_is_prime(41041));
}

static void test_factor_make(void **state)
{
    unsigned char seed[32];
    (void)state;
    for (unsigned bits = CU_CHAL_FACTOR_MIN_BITS; bits <= CU_CHAL_FACTOR_MAX_BITS; bits++) {
        for (unsigned i = 0; i < 20; i++) {
            struct cu_factor_chal c, c2;
            struct cu_factor_answer a;
            seed_of(seed, bits * 100 + i);
            assert_int_equal(cu_chal_factor_make(seed, sizeof seed, bits, &c, &a), 0);
            assert_int_equal(c.bits, bits);
            assert_true(c.n >> (bits - 1) == 1); /* exactly bits bits */
            assert_true(a.p < a.q);
            assert_true(cu_chal_is_prime(a.p) && cu_chal_is_prime(a.q));
            assert_true((unsigned __int128)a.p * a.q == c.n);
            assert_int_equal(cu_chal_factor_check(&c, &a), 0);
            /* Balanced: neither factor is tiny. */
            assert_true(a.p >> (bits / 2 - 1) >= 1);
            /* Deterministic. */
            assert_int_equal(cu_chal_factor_make(seed, sizeof seed, bits, &c2, NULL), 0);
            assert_true(c2.n == c.n);
        }
    }
    /* Seeds give different challenges. */
    struct cu_factor_chal c1, c2;
    seed_of(seed, 1);
    assert_int_equal(cu_chal_factor_make(seed, sizeof seed, 64, &c1, NULL), 0);
    seed_of(seed, 2);
    assert_int_equal(cu_chal_factor_make(seed, sizeof seed, 64, &c2, NULL), 0);
    assert_true(c1.n != c2.n);
    /* Bounds. */
    unsigned char big[CU_CHAL_SEED_MAX + 1] = {0};
    assert_int_equal(cu_chal_factor_make(seed, sizeof seed, 7, &c1, NULL), -CU_EINVAL);
    assert_int_equal(cu_chal_factor_make(seed, sizeof seed, 65, &c1, NULL), -CU_EINVAL);
    assert_int_equal(cu_chal_factor_make(seed, CU_CHAL_SEED_MIN - 1, 32, &c1, NULL), -CU_EINVAL);
    assert_int_equal(cu_chal_factor_make(big, sizeof big, 32, &c1, NULL), -CU_EINVAL);
    assert_int_equal(cu_chal_factor_make(big, CU_CHAL_SEED_MAX, 32, &c1, NULL), 0);
}

/* Inverse of an odd x modulo 2^64 (Newton). */
static uint64_t inv64(uint64_t x)
{
    uint64_t y = x;
    for (int i = 0; i < 6; i++)
        y *= 2 - x * y;
    return y;
}

static void test_factor_wrong_answers(void **state)
{
    unsigned char seed[32];
    struct cu_factor_chal c;
    struct cu_factor_answer a, w;
    (void)state;
    seed_of(seed, 7);
    assert_int_equal(cu_chal_factor_make(seed, sizeof seed, 64, &c, &a), 0);
    w = (struct cu_factor_answer){a.q, a.p}; /* either order */
    assert_int_equal(cu_chal_factor_check(&c, &w), 0);
    w = (struct cu_factor_answer){1, c.n};
    assert_int_equal(cu_chal_factor_check(&c, &w), -CU_EAUTH);
    w = (struct cu_factor_answer){c.n, 1};
    assert_int_equal(cu_chal_factor_check(&c, &w), -CU_EAUTH);
    w = (struct cu_factor_answer){0, 0};
    assert_int_equal(cu_chal_factor_check(&c, &w), -CU_EAUTH);
    w = (struct cu_factor_answer){a.p + 2, a.q};
    assert_int_equal(cu_chal_factor_check(&c, &w), -CU_EAUTH);
    /* A pair whose 64-bit product wraps around to n. */
    w = (struct cu_factor_answer){3, c.n * inv64(3)};
    assert_true(w.p * w.q == c.n);
    assert_int_equal(cu_chal_factor_check(&c, &w), -CU_EAUTH);
    /* A malformed challenge. */
    struct cu_factor_chal bad = {.bits = 63, .n = c.n};
    assert_int_equal(cu_chal_factor_check(&bad, &a), -CU_EINVAL);
    bad = (struct cu_factor_chal){.bits = 4, .n = 15};
    w = (struct cu_factor_answer){3, 5};
    assert_int_equal(cu_chal_factor_check(&bad, &w), -CU_EINVAL);
}

static void test_factor_solve(void **state)
{
    unsigned char seed[32];
    struct cu_factor_chal c;
    struct cu_factor_answer a, s;
    uint64_t steps;
    (void)state;
    for (unsigned bits = CU_CHAL_FACTOR_MIN_BITS; bits <= CU_CHAL_FACTOR_MAX_BITS; bits++) {
        for (unsigned i = 0; i < 2; i++) {
            seed_of(seed, 5000 + bits * 10 + i);
            assert_int_equal(cu_chal_factor_make(seed, sizeof seed, bits, &c, &a), 0);
            assert_int_equal(cu_chal_factor_solve(c.n, UINT64_MAX, &s, &steps), 0);
            if (s.p != a.p || s.q != a.q)
                fail_msg("bits %u: solved %llu*%llu, want %llu*%llu", bits, (unsigned long long)s.p,
                         (unsigned long long)s.q, (unsigned long long)a.p, (unsigned long long)a.q);
            assert_int_equal(cu_chal_factor_check(&c, &s), 0);
            assert_true(steps > 0);
        }
    }
    /* The step bound is honoured. */
    seed_of(seed, 99);
    assert_int_equal(cu_chal_factor_make(seed, sizeof seed, 64, &c, &a), 0);
    assert_int_equal(cu_chal_factor_solve(c.n, 100, &s, &steps), -CU_ETIMEOUT);
    assert_true(steps <= 100 + 2 * 128 + 1);
    /* Small and odd inputs. */
    assert_int_equal(cu_chal_factor_solve(4, 1000, &s, NULL), 0);
    assert_true(s.p == 2 && s.q == 2);
    assert_int_equal(cu_chal_factor_solve(1009ull * 1013ull, 5, &s, NULL), -CU_ETIMEOUT);
    assert_int_equal(cu_chal_factor_solve(1009ull * 1013ull, 1000000, &s, NULL), 0);
    assert_true(s.p == 1009 && s.q == 1013);
    assert_int_equal(cu_chal_factor_solve(4294967291ull * 4294967291ull, UINT64_MAX, &s, NULL), 0);
    assert_true(s.p == 4294967291ull && s.q == 4294967291ull);
    assert_int_equal(cu_chal_factor_solve(3, 1000, &s, NULL), -CU_EINVAL);
    assert_int_equal(cu_chal_factor_solve(0, 1000, &s, NULL), -CU_EINVAL);
    assert_int_equal(cu_chal_factor_solve(18446744073709551557ull, 1000, &s, NULL), -CU_EINVAL);
}

static void test_memory(void **state)
{
    unsigned char rnd[CU_CHAL_NONCE_LEN], ans[CU_CHAL_ANSWER_LEN], ans2[CU_CHAL_ANSWER_LEN];
    struct cu_memory_chal c, c2;
    (void)state;
    assert_int_equal(cu_crypto_init(), 0);
    memset(rnd, 0x11, sizeof rnd);
    assert_int_equal(cu_chal_memory_make(rnd, 1, 1, &c), 0);
    assert_int_equal(cu_chal_memory_solve(&c, ans), 0);
    assert_int_equal(cu_chal_memory_check(&c, ans, NULL), 0);
    assert_int_equal(cu_chal_memory_check(&c, ans, ans), 0);
    assert_int_equal(cu_chal_memory_solve(&c, ans2), 0);
    assert_memory_equal(ans, ans2, sizeof ans);
    /* Another nonce, size or pass count: another answer. */
    rnd[0] ^= 1;
    assert_int_equal(cu_chal_memory_make(rnd, 1, 1, &c2), 0);
    assert_int_equal(cu_chal_memory_solve(&c2, ans2), 0);
    assert_memory_not_equal(ans, ans2, sizeof ans);
    assert_int_equal(cu_chal_memory_check(&c, ans2, NULL), -CU_EAUTH);
    rnd[0] ^= 1;
    assert_int_equal(cu_chal_memory_make(rnd, 2, 1, &c2), 0);
    assert_int_equal(cu_chal_memory_check(&c2, ans, NULL), -CU_EAUTH);
    assert_int_equal(cu_chal_memory_make(rnd, 1, 2, &c2), 0);
    assert_int_equal(cu_chal_memory_check(&c2, ans, NULL), -CU_EAUTH);
    /* A flipped bit, checked both ways. */
    memcpy(ans2, ans, sizeof ans);
    ans2[31] ^= 0x80;
    assert_int_equal(cu_chal_memory_check(&c, ans2, NULL), -CU_EAUTH);
    assert_int_equal(cu_chal_memory_check(&c, ans2, ans), -CU_EAUTH);
    /* Bounds. */
    assert_int_equal(cu_chal_memory_make(rnd, 0, 1, &c2), -CU_EINVAL);
    assert_int_equal(cu_chal_memory_make(rnd, CU_CHAL_MEMORY_MAX_MIB + 1, 1, &c2), -CU_EINVAL);
    assert_int_equal(cu_chal_memory_make(rnd, 1, 0, &c2), -CU_EINVAL);
    assert_int_equal(cu_chal_memory_make(rnd, 1, CU_CHAL_MEMORY_MAX_OPS + 1, &c2), -CU_EINVAL);
    c2 = c;
    c2.mib = 0;
    assert_int_equal(cu_chal_memory_solve(&c2, ans2), -CU_EINVAL);
    assert_int_equal(cu_chal_memory_check(&c2, ans, NULL), -CU_EINVAL);
}

static void test_heartbeat(void **state)
{
    unsigned char master[CU_CHAL_KEY_LEN], sec[CU_CHAL_KEY_LEN], sec2[CU_CHAL_KEY_LEN];
    unsigned char nonce[CU_CHAL_NONCE_LEN], ans[CU_CHAL_ANSWER_LEN], bad[CU_CHAL_ANSWER_LEN];
    (void)state;
    memset(master, 0x42, sizeof master);
    memset(nonce, 0x07, sizeof nonce);
    cu_chal_lease_secret(master, 17, 1, sec);
    cu_chal_lease_secret(master, 17, 1, sec2);
    assert_memory_equal(sec, sec2, sizeof sec);
    cu_chal_lease_secret(master, 17, 2, sec2);
    assert_memory_not_equal(sec, sec2, sizeof sec);
    cu_chal_lease_secret(master, 18, 1, sec2);
    assert_memory_not_equal(sec, sec2, sizeof sec);
    master[0] ^= 1;
    cu_chal_lease_secret(master, 17, 1, sec2);
    assert_memory_not_equal(sec, sec2, sizeof sec);

    cu_chal_heartbeat_answer(sec, 17, nonce, ans);
    assert_int_equal(cu_chal_heartbeat_check(sec, 17, nonce, ans), 0);
    /* Wrong replica, nonce, secret or a flipped bit. */
    assert_int_equal(cu_chal_heartbeat_check(sec, 18, nonce, ans), -CU_EAUTH);
    assert_int_equal(cu_chal_heartbeat_check(sec2, 17, nonce, ans), -CU_EAUTH);
    nonce[15] ^= 1;
    assert_int_equal(cu_chal_heartbeat_check(sec, 17, nonce, ans), -CU_EAUTH);
    nonce[15] ^= 1;
    for (size_t i = 0; i < sizeof ans; i++) {
        memcpy(bad, ans, sizeof ans);
        bad[i] ^= 0x01;
        assert_int_equal(cu_chal_heartbeat_check(sec, 17, nonce, bad), -CU_EAUTH);
    }
    /* A replayed answer does not fit a fresh nonce. */
    unsigned char nonce2[CU_CHAL_NONCE_LEN];
    memset(nonce2, 0x08, sizeof nonce2);
    assert_int_equal(cu_chal_heartbeat_check(sec, 17, nonce2, ans), -CU_EAUTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_prime),
        cmocka_unit_test(test_factor_make),
        cmocka_unit_test(test_factor_wrong_answers),
        cmocka_unit_test(test_factor_solve),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_heartbeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
