/* hash.c - BLAKE2b-256 content hashes and randomness over libsodium. */
#include "crypto/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/util.h"

#include "base/banned.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc = -CU_ECRYPTO;

static void crypto_init_once(void)
{
    /* sodium_init returns 1 when already initialised by someone else. */
    init_rc = sodium_init() < 0 ? -CU_ECRYPTO : 0;
}

int cu_crypto_init(void)
{
    pthread_once(&init_once, crypto_init_once);
    return init_rc;
}

void cu_hash_mem(const void *p, size_t n, struct cu_hash *out)
{
    crypto_generichash(out->b, CU_HASH_LEN, p, n, NULL, 0);
}

/* Streams the file through the hasher; never loads it whole. Returns 0,
 * -CU_ENOTFOUND or -CU_EIO; out is only written on success. */
int cu_hash_file(const char *path, struct cu_hash *out, uint64_t *size_out)
{
    unsigned char chunk[65536];
    struct cu_hasher h;
    uint64_t size = 0;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -CU_ENOTFOUND : -CU_EIO;
    cu_hasher_init(&h);
    for (;;) {
        ssize_t k = read(fd, chunk, sizeof chunk);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rc = -CU_EIO;
            break;
        }
        if (k == 0)
            break;
        cu_hasher_update(&h, chunk, (size_t)k);
        size += (uint64_t)k;
    }
    close(fd);
    if (rc)
        return rc;
    cu_hasher_final(&h, out);
    if (size_out)
        *size_out = size;
    return 0;
}

void cu_hasher_init(struct cu_hasher *h)
{
    crypto_generichash_init(&h->st, NULL, 0, CU_HASH_LEN);
}

void cu_hasher_update(struct cu_hasher *h, const void *p, size_t n)
{
    crypto_generichash_update(&h->st, p, n);
}

void cu_hasher_final(struct cu_hasher *h, struct cu_hash *out)
{
    crypto_generichash_final(&h->st, out->b, CU_HASH_LEN);
}

void cu_hash_to_hex(const struct cu_hash *h, char out[CU_HASH_HEX_LEN + 1])
{
    cu_hex_encode(h->b, CU_HASH_LEN, out);
}

/* Only the canonical lowercase form is accepted, so one content has exactly
 * one name (in URLs, blob paths and signed documents). */
bool cu_hash_hex_valid(const char *hex)
{
    if (!hex)
        return false;
    for (size_t i = 0; i < CU_HASH_HEX_LEN; i++) {
        char c = hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return hex[CU_HASH_HEX_LEN] == '\0';
}

int cu_hash_from_hex(const char *hex, struct cu_hash *out)
{
    if (!cu_hash_hex_valid(hex))
        return -CU_EINVAL;
    return cu_hex_decode(hex, out->b, CU_HASH_LEN);
}

bool cu_hash_eq(const struct cu_hash *a, const struct cu_hash *b)
{
    return sodium_memcmp(a->b, b->b, CU_HASH_LEN) == 0;
}

void cu_random_bytes(void *p, size_t n)
{
    randombytes_buf(p, n);
}

void cu_random_hex(char *out, size_t nbytes)
{
    unsigned char tmp[64];
    size_t done = 0;

    /* Chunked so any length works without an allocation. */
    while (done < nbytes) {
        size_t k = nbytes - done < sizeof tmp ? nbytes - done : sizeof tmp;
        randombytes_buf(tmp, k);
        cu_hex_encode(tmp, k, out + 2 * done);
        done += k;
    }
    out[2 * nbytes] = '\0';
    sodium_memzero(tmp, sizeof tmp);
}
