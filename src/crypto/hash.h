/* hash.h - BLAKE2b-256 content hashes (libsodium crypto_generichash). */
#ifndef CU_CRYPTO_HASH_H
#define CU_CRYPTO_HASH_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CU_HASH_LEN 32
#define CU_HASH_HEX_LEN 64

struct cu_hash {
    unsigned char b[CU_HASH_LEN];
};

struct cu_hasher {
    crypto_generichash_state st;
};

/* Must be called once before any other crypto call (idempotent, thread-safe
 * after the first call returns). 0 or -CU_ECRYPTO. */
int cu_crypto_init(void);

void cu_hash_mem(const void *p, size_t n, struct cu_hash *out);
/* Hashes a file's contents; size_out (may be NULL) gets its length.
 * -CU_ENOTFOUND, -CU_EIO. */
int cu_hash_file(const char *path, struct cu_hash *out, uint64_t *size_out);
void cu_hasher_init(struct cu_hasher *h);
void cu_hasher_update(struct cu_hasher *h, const void *p, size_t n);
void cu_hasher_final(struct cu_hasher *h, struct cu_hash *out);

/* 64 lowercase hex chars + NUL. */
void cu_hash_to_hex(const struct cu_hash *h, char out[CU_HASH_HEX_LEN + 1]);
/* Accepts exactly 64 lowercase hex chars (the canonical form, so one
 * content has one name); -CU_EINVAL otherwise. */
int cu_hash_from_hex(const char *hex, struct cu_hash *out);
bool cu_hash_hex_valid(const char *hex);
bool cu_hash_eq(const struct cu_hash *a, const struct cu_hash *b);

/* Cryptographic randomness. */
void cu_random_bytes(void *p, size_t n);
/* n random bytes as 2n hex chars into out (2n+1 bytes). */
void cu_random_hex(char *out, size_t nbytes);

#endif
