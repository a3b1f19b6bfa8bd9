/* ident.h - identities: ed25519 key pairs, self-certifying ids and the
 * keystore file.
 *
 * An id is the lowercase hex of the 32-byte public key (64 chars), so anyone
 * can check a signature from the id alone.
 *
 * Keystore file (JSON, mode 0600):
 *   encrypted: {"version":1,"id":ID,"kdf":"argon2id13","opslimit":N,
 *               "memlimit":N,"salt":HEX,"nonce":HEX,"box":HEX}
 *              box = crypto_secretbox(secret key, key = argon2id(passphrase))
 *   plain:     {"version":1,"id":ID,"insecure_plain":true,"secret":HEX,
 *               "warning":"UNENCRYPTED devnet key: do not hold real funds"}
 */
#ifndef CU_CRYPTO_IDENT_H
#define CU_CRYPTO_IDENT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

#define CU_PK_LEN 32
#define CU_SK_LEN 64
#define CU_SIG_LEN 64
#define CU_ID_LEN 64 /* hex chars, without NUL */

struct cu_identity {
    unsigned char pk[CU_PK_LEN];
    unsigned char sk[CU_SK_LEN];
    char id[CU_ID_LEN + 1];
};

int cu_identity_generate(struct cu_identity *id);
/* Writes the keystore atomically with mode 0600. passphrase NULL writes the
 * plain (insecure, devnet) form. Refuses to overwrite an existing file
 * (-CU_EEXISTS) unless overwrite is true. */
int cu_identity_save(const struct cu_identity *id, const char *path, const char *passphrase,
                     bool overwrite, struct cu_err *e);
/* Loads a keystore. Encrypted and passphrase NULL: -CU_ENEEDPASS. Wrong
 * passphrase: -CU_EAUTH. Malformed file: -CU_EINVAL naming the field.
 * Checks that the stored id matches the key. */
int cu_identity_load(struct cu_identity *id, const char *path, const char *passphrase,
                     struct cu_err *e);
/* True when the keystore at path is the plain form (false if unreadable). */
bool cu_keystore_is_plain(const char *path);
/* Zeroes the secret key (sodium_memzero). */
void cu_identity_wipe(struct cu_identity *id);

/* Parses an id into a public key; -CU_EINVAL unless 64 hex chars that form
 * a valid ed25519 point. */
int cu_id_to_pk(const char *id, unsigned char pk[CU_PK_LEN]);
bool cu_id_valid(const char *id);

void cu_sign(const struct cu_identity *id, const void *msg, size_t n, unsigned char sig[CU_SIG_LEN]);
bool cu_verify(const unsigned char pk[CU_PK_LEN], const void *msg, size_t n,
               const unsigned char sig[CU_SIG_LEN]);

#endif
