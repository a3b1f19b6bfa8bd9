/* fuzz_parse.c - libFuzzer harness for the number parsers of base/util.h:
 * cu_parse_size, cu_parse_duration_ms and cu_parse_i64 on arbitrary strings,
 * plus round-trip properties on values taken from the input's first bytes:
 *   - parse_size("%llu" of x) == x, and "%lluKiB" == x * 1024 or overflow;
 *   - parse_duration_ms("%llums" of x) == x, "%llus" == x * 1000 or overflow;
 *   - parse_i64("%lld" of v) == v, and out of [min, max] is an error;
 *   - an accepted i64 string is only [-]digits; an accepted size starts with
 *     a digit; whatever parse_i64 accepts it gives back when printed, up to
 *     leading zeros;
 *   - hex encode then decode is the identity; the formatters stay in bounds. */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static uint64_t take_u64(const uint8_t *data, size_t size, size_t off)
{
    uint64_t v = 0;
    if (size > off)
        memcpy(&v, data + off, size - off < 8 ? size - off : 8);
    return v;
}

/* Properties of the parsers on the fuzzed string s. */
static void check_string(const char *s, int64_t lo, int64_t hi)
{
    char txt[64];
    uint64_t u, u2;
    int64_t v, v2;
    int rc;

    if (cu_parse_size(s, &u) == 0) {
        CHECK(s[0] >= '0' && s[0] <= '9');
        CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64, u) == 0);
        CHECK(cu_parse_size(txt, &u2) == 0 && u2 == u);
    }

    if (cu_parse_duration_ms(s, &u) == 0) {
        size_t n = strlen(s);
        CHECK(n > 0 && s[0] >= '0' && s[0] <= '9');
        CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64 "ms", u) == 0);
        CHECK(cu_parse_duration_ms(txt, &u2) == 0 && u2 == u);
        /* Appending a zero part changes nothing once a unit was written. */
        if (n < 200 && !(s[n - 1] >= '0' && s[n - 1] <= '9')) {
            char more[256];
            CHECK(cu_snprintf(more, sizeof more, "%s0s", s) == 0);
            CHECK(cu_parse_duration_ms(more, &u2) == 0 && u2 == u);
        }
    }

    for (int pass = 0; pass < 3; pass++) {
        int64_t min = pass == 0 ? INT64_MIN : pass == 1 ? 0 : lo;
        int64_t max = pass == 2 ? hi : INT64_MAX;
        rc = cu_parse_i64(s, min, max, &v);
        if (rc != 0) {
            CHECK(rc == -CU_EINVAL || rc == -CU_EOVERFLOW);
            continue;
        }
        CHECK(v >= min && v <= max);
        /* Only an optional '-' and digits; the value prints back as s up
         * to leading zeros. */
        const char *d = s + (s[0] == '-');
        CHECK(*d != '\0' && strspn(d, "0123456789") == strlen(d));
        CHECK(min < 0 || s[0] != '-');
        CHECK(cu_snprintf(txt, sizeof txt, "%" PRId64, v) == 0);
        CHECK(cu_parse_i64(txt, min, max, &v2) == 0 && v2 == v);
        if (d[0] != '0' || d[1] == '\0') {
            if (!(s[0] == '-' && v == 0)) /* "-0" prints as "0" */
                CHECK(strcmp(txt, s) == 0);
        }
    }
}

/* Round trips from values x and y. */
static void check_values(uint64_t x, uint64_t y)
{
    char txt[96], small[8];
    unsigned char raw[16], back[16];
    uint64_t u, expect;
    int64_t v, lo, hi;
    int rc;

    CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64, x) == 0);
    CHECK(cu_parse_size(txt, &u) == 0 && u == x);
    CHECK(cu_parse_duration_ms(txt, &u) == (x > UINT64_MAX / 1000 ? -CU_EOVERFLOW : 0));

    CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64 "KiB", x) == 0);
    rc = cu_parse_size(txt, &u);
    if (x > UINT64_MAX >> 10)
        CHECK(rc == -CU_EOVERFLOW);
    else
        CHECK(rc == 0 && u == x << 10);

    CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64 " GB", x) == 0);
    rc = cu_parse_size(txt, &u);
    CHECK(rc == (__builtin_mul_overflow(x, 1000000000ULL, &expect) ? -CU_EOVERFLOW : 0));
    CHECK(rc != 0 || u == expect);

    CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64 "ms", x) == 0);
    CHECK(cu_parse_duration_ms(txt, &u) == 0 && u == x);

    CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64 "s", x) == 0);
    rc = cu_parse_duration_ms(txt, &u);
    if (x > UINT64_MAX / 1000)
        CHECK(rc == -CU_EOVERFLOW);
    else
        CHECK(rc == 0 && u == x * 1000);

    /* "XhYm" adds up (or overflows) like the arithmetic. */
    {
        uint64_t h = x % 1000000, m = y % 1000000, a, b;
        CHECK(cu_snprintf(txt, sizeof txt, "%" PRIu64 "h%" PRIu64 "m", h, m) == 0);
        CHECK(cu_mul_u64(h, 3600000, &a) == 0 && cu_mul_u64(m, 60000, &b) == 0);
        CHECK(cu_parse_duration_ms(txt, &u) == 0 && u == a + b);
    }

    v = (int64_t)x;
    CHECK(cu_snprintf(txt, sizeof txt, "%" PRId64, v) == 0);
    lo = (int64_t)x < (int64_t)y ? (int64_t)x : (int64_t)y;
    hi = (int64_t)x < (int64_t)y ? (int64_t)y : (int64_t)x;
    CHECK(cu_parse_i64(txt, INT64_MIN, INT64_MAX, &v) == 0 && v == (int64_t)x);
    rc = cu_parse_i64(txt, lo, hi, &v);
    CHECK(rc == 0 && v == (int64_t)x);
    if (hi > lo) {
        /* [lo, hi - 1] excludes x exactly when x == hi. */
        rc = cu_parse_i64(txt, lo, hi - 1, &v);
        CHECK((rc == 0) == ((int64_t)x != hi));
    }

    memcpy(raw, &x, 8);
    memcpy(raw + 8, &y, 8);
    cu_hex_encode(raw, sizeof raw, txt);
    CHECK(strlen(txt) == 32);
    CHECK(cu_hex_decode(txt, back, sizeof back) == 0 && memcmp(raw, back, sizeof raw) == 0);

    /* Formatters: always terminated, never past n. */
    for (size_t n = 1; n <= sizeof small; n++) {
        memset(small, 'x', sizeof small);
        cu_fmt_size(x, small, n);
        CHECK(memchr(small, '\0', n) != NULL);
        memset(small, 'x', sizeof small);
        cu_fmt_duration(y, small, n);
        CHECK(memchr(small, '\0', n) != NULL);
    }
    cu_fmt_size(x, txt, sizeof txt);
    cu_fmt_duration(x, txt, sizeof txt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    uint64_t x = take_u64(data, size, 0), y = take_u64(data, size, 8);
    int64_t lo = (int64_t)x < (int64_t)y ? (int64_t)x : (int64_t)y;
    int64_t hi = (int64_t)x < (int64_t)y ? (int64_t)y : (int64_t)x;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_string(s, lo, hi);
    check_values(x, y);
    free(s);
    return 0;
}
