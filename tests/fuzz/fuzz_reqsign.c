/* fuzz_reqsign.c - libFuzzer harness for cu_reqsign_check.
 *
 * The input is split at '\n' into method, path and the five header values
 * (key, timestamp, nonce, body hash, signature), each cut to its field's
 * size as the HTTP layer does; the remaining bytes (if any) go to the last
 * field. Half the runs use a real signature for the fuzzed method and path
 * so that the verify step is reached too. Must never crash; a real
 * signature over a fresh timestamp must verify. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/hash.h"
#include "crypto/ident.h"
#include "crypto/reqsign.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_S 1700000000LL
#define NPARTS 7

/* Copies at most cap-1 bytes of [p, p+n) into dst, NUL-terminated. */
static void put_field(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static const struct cu_identity *test_identity(void)
{
    static struct cu_identity id;
    static int ready;
    if (!ready) {
        if (cu_crypto_init() != 0 || cu_identity_generate(&id) != 0)
            abort();
        ready = 1;
    }
    return &id;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cu_sig_headers h;
    struct cu_err e = {0};
    char *parts[NPARTS] = {0};
    size_t lens[NPARTS] = {0};
    char *buf;
    size_t start = 0, k = 0;
    int mode, rc;

    if (size < 1)
        return 0;
    mode = data[0];
    data++;
    size--;
    /* method and path are C strings in the server: cut at NUL too. */
    buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (size_t i = 0; i <= size && k < NPARTS; i++) {
        if (i == size || (buf[i] == '\n' && k < NPARTS - 1)) {
            parts[k] = buf + start;
            lens[k] = i - start;
            buf[i] = '\0';
            k++;
            start = i + 1;
        }
    }
    for (; k < NPARTS; k++) {
        parts[k] = buf + size;
        lens[k] = 0;
    }

    memset(&h, 0, sizeof h);
    put_field(h.key, sizeof h.key, (const uint8_t *)parts[2], lens[2]);
    put_field(h.ts, sizeof h.ts, (const uint8_t *)parts[3], lens[3]);
    put_field(h.nonce, sizeof h.nonce, (const uint8_t *)parts[4], lens[4]);
    put_field(h.body_hash, sizeof h.body_hash, (const uint8_t *)parts[5], lens[5]);
    put_field(h.sig, sizeof h.sig, (const uint8_t *)parts[6], lens[6]);

    if (mode & 1) {
        /* Genuine headers for this method and path; optionally tamper one
         * byte of one header (chosen by mode) so bad signatures are seen. */
        struct cu_hash bh;
        const char *method = parts[0], *path = parts[1];
        const struct cu_identity *id = test_identity();
        cu_hash_mem(path, strlen(path), &bh);
        cu_reqsign_make(id, method, path, &bh, NOW_S, &h);
        rc = cu_reqsign_check(method, path, &h, NOW_S + (mode >> 4) - 8, CU_REQSIGN_MAX_SKEW_S,
                              &e);
        if (rc != 0 && method[0]) {
            fprintf(stderr, "genuine signature refused: %s\n", e.msg);
            abort();
        }
        if (mode & 2) {
            char *f[] = {h.key, h.ts, h.nonce, h.body_hash, h.sig};
            char *t = f[(mode >> 2) % 5];
            size_t tl = strlen(t);
            if (tl)
                t[((unsigned)mode * 7u) % tl] ^= (char)((mode & 0x3c) | 1);
            (void)cu_reqsign_check(method, path, &h, NOW_S, CU_REQSIGN_MAX_SKEW_S, &e);
        }
    } else {
        int64_t now = NOW_S;
        if (mode & 2)
            now = (mode & 4) ? INT64_MAX : INT64_MIN;
        (void)cu_reqsign_check(parts[0], parts[1], &h, now, CU_REQSIGN_MAX_SKEW_S, &e);
    }
    free(buf);
    return 0;
}
