/* ident.c - ed25519 identities and the keystore file. */
#include "crypto/ident.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/hash.h"

#include "base/banned.h"

#define KS_VERSION 1
#define KS_KDF "argon2id13"
#define KS_MAX_BYTES 65536
#define KS_WARNING "UNENCRYPTED devnet key: do not hold real funds"
/* Bounds on KDF parameters read from a file, so a crafted keystore cannot
 * make us spin or allocate without limit. */
#define KS_OPS_MAX 64ULL
#define KS_MEM_MAX (4ULL << 30)

int cu_identity_generate(struct cu_identity *id)
{
    if (cu_crypto_init())
        return -CU_ECRYPTO;
    if (crypto_sign_keypair(id->pk, id->sk) != 0)
        return -CU_ECRYPTO;
    cu_hex_encode(id->pk, CU_PK_LEN, id->id);
    return 0;
}

void cu_identity_wipe(struct cu_identity *id)
{
    sodium_memzero(id->sk, sizeof id->sk);
}

bool cu_id_valid(const char *id)
{
    unsigned char pk[CU_PK_LEN];
    return cu_id_to_pk(id, pk) == 0;
}

#define ID_CACHE 8 /* valid keys each thread remembers (cu_id_to_pk) */

/* Only lowercase hex is an id: one key has exactly one id string. */
int cu_id_to_pk(const char *id, unsigned char pk[CU_PK_LEN])
{
    if (!id)
        return -CU_EINVAL;
    for (size_t i = 0; i < CU_ID_LEN; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -CU_EINVAL;
    }
    if (id[CU_ID_LEN] != '\0')
        return -CU_EINVAL;
    if (cu_hex_decode(id, pk, CU_PK_LEN))
        return -CU_EINVAL;
    /* The point check (decompression and subgroup membership) costs more
     * than the signature check it precedes; a thread that served a key
     * recently (a keep-alive connection's signer) remembers that it was
     * valid. Only valid keys are kept, per thread: no lock, no sharing. */
    {
        static __thread unsigned char seen[ID_CACHE][CU_PK_LEN];
        static __thread unsigned nseen, next;
        for (unsigned i = 0; i < nseen; i++)
            if (memcmp(seen[i], pk, CU_PK_LEN) == 0)
                return 0;
        if (cu_crypto_init() || !crypto_core_ed25519_is_valid_point(pk))
            return -CU_EINVAL;
        memcpy(seen[next], pk, CU_PK_LEN);
        next = (next + 1) % ID_CACHE;
        if (nseen < ID_CACHE)
            nseen++;
    }
    return 0;
}

void cu_sign(const struct cu_identity *id, const void *msg, size_t n, unsigned char sig[CU_SIG_LEN])
{
    crypto_sign_detached(sig, NULL, msg, n, id->sk);
}

bool cu_verify(const unsigned char pk[CU_PK_LEN], const void *msg, size_t n,
               const unsigned char sig[CU_SIG_LEN])
{
    return crypto_sign_verify_detached(sig, msg, n, pk) == 0;
}

/* Sets e to "keystore PATH: <e's current message>" and returns code; keeps
 * field-naming messages from the JSON helpers. */
static int ks_fail(struct cu_err *e, const char *path, int code)
{
    char inner[CU_ERR_MSG_MAX];
    if (!e)
        return code;
    /* Truncation only shortens the message. */
    (void)cu_snprintf(inner, sizeof inner, "%s", e->msg);
    return cu_err_set(e, code, "keystore %s: %s", path, inner[0] ? inner : cu_strerror(code));
}

/* Builds the keystore JSON for id. Returns a new reference or NULL (out of
 * memory, or the KDF failed: e says which). */
static json_t *ks_build(const struct cu_identity *id, const char *passphrase, struct cu_err *e)
{
    unsigned char salt[crypto_pwhash_SALTBYTES];
    unsigned char nonce[crypto_secretbox_NONCEBYTES];
    unsigned char key[crypto_secretbox_KEYBYTES];
    unsigned char box[CU_SK_LEN + crypto_secretbox_MACBYTES];
    char salt_hex[2 * sizeof salt + 1], nonce_hex[2 * sizeof nonce + 1];
    char box_hex[2 * sizeof box + 1], sk_hex[2 * CU_SK_LEN + 1];
    json_t *j;

    if (!passphrase) {
        cu_hex_encode(id->sk, CU_SK_LEN, sk_hex);
        j = json_pack("{s:i, s:s, s:b, s:s, s:s}", "version", KS_VERSION, "id", id->id,
                      "insecure_plain", 1, "secret", sk_hex, "warning", KS_WARNING);
        sodium_memzero(sk_hex, sizeof sk_hex);
        if (!j)
            cu_err_set(e, -CU_ENOMEM, "out of memory building the keystore");
        return j;
    }
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(nonce, sizeof nonce);
    if (crypto_pwhash(key, sizeof key, passphrase, strlen(passphrase), salt,
                      crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        cu_err_set(e, -CU_ENOMEM, "argon2id key derivation failed (out of memory?)");
        return NULL;
    }
    crypto_secretbox_easy(box, id->sk, CU_SK_LEN, nonce, key);
    sodium_memzero(key, sizeof key);
    cu_hex_encode(salt, sizeof salt, salt_hex);
    cu_hex_encode(nonce, sizeof nonce, nonce_hex);
    cu_hex_encode(box, sizeof box, box_hex);
    j = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "version", KS_VERSION, "id", id->id,
                  "kdf", KS_KDF, "opslimit", (json_int_t)crypto_pwhash_OPSLIMIT_INTERACTIVE,
                  "memlimit", (json_int_t)crypto_pwhash_MEMLIMIT_INTERACTIVE, "salt", salt_hex,
                  "nonce", nonce_hex, "box", box_hex);
    if (!j)
        cu_err_set(e, -CU_ENOMEM, "out of memory building the keystore");
    return j;
}

/* Writes the keystore (mode 0600, atomically). Blocks for the KDF (about
 * 0.1-0.5 s) when a passphrase is given. */
int cu_identity_save(const struct cu_identity *id, const char *path, const char *passphrase,
                     bool overwrite, struct cu_err *e)
{
    struct stat st;
    json_t *j;
    char *text;
    int rc;

    if (cu_crypto_init())
        return cu_err_set(e, -CU_ECRYPTO, "libsodium failed to initialise");
    if (!overwrite && lstat(path, &st) == 0)
        return cu_err_set(e, -CU_EEXISTS, "keystore %s already exists (refusing to overwrite)",
                          path);
    j = ks_build(id, passphrase, e);
    if (!j)
        return e ? e->code : -CU_ENOMEM;
    text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!text)
        return cu_err_set(e, -CU_ENOMEM, "out of memory writing the keystore");
    rc = cu_write_file_atomic(path, text, strlen(text), 0600);
    sodium_memzero(text, strlen(text));
    free(text);
    if (rc)
        return cu_err_set(e, rc, "cannot write keystore %s: %s", path, cu_strerror(rc));
    /* A pre-existing temp file keeps its mode through O_TRUNC; make sure. */
    if (chmod(path, 0600) != 0)
        return cu_err_set(e, -CU_EIO, "cannot chmod keystore %s: %s", path, strerror(errno));
    return 0;
}

/* Reads and parses path into *out (new reference). */
static int ks_read(const char *path, json_t **out, struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(KS_MAX_BYTES);
    int rc;

    *out = NULL;
    rc = cu_read_file(path, &b);
    if (rc == -CU_ENOTFOUND) {
        rc = cu_err_set(e, rc, "keystore %s not found", path);
        goto out_free_buf;
    }
    if (rc) {
        rc = cu_err_set(e, rc, "cannot read keystore %s: %s", path, cu_strerror(rc));
        goto out_free_buf;
    }
    *out = cu_json_parse(cu_buf_str(&b), b.len, e);
    if (!*out) {
        rc = ks_fail(e, path, -CU_EINVAL);
        goto out_free_buf;
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        rc = cu_err_set(e, -CU_EINVAL, "keystore %s: not a JSON object", path);
    }
out_free_buf:
    if (b.data)
        sodium_memzero(b.data, b.len);
    cu_buf_release(&b);
    return rc;
}

bool cu_keystore_is_plain(const char *path)
{
    json_t *j;
    bool plain;

    if (ks_read(path, &j, NULL))
        return false;
    plain = json_is_true(json_object_get(j, "insecure_plain"));
    json_decref(j);
    return plain;
}

/* Decodes a required hex field of exactly n bytes. */
static int get_hex(const json_t *j, const char *key, void *out, size_t n, struct cu_err *e)
{
    const char *s = NULL;
    int rc = cu_json_get_str(j, NULL, key, true, &s, e);
    if (rc)
        return -CU_EINVAL;
    if (cu_hex_decode(s, out, n))
        return cu_err_set(e, -CU_EINVAL, "field '%s' must be %zu hex chars", key, 2 * n);
    return 0;
}

/* Decrypts the encrypted form's secret key into sk. */
static int ks_decrypt(const json_t *j, const char *passphrase, unsigned char sk[CU_SK_LEN],
                      struct cu_err *e)
{
    static const char *const keys[] = {"version", "id", "kdf", "opslimit", "memlimit",
                                       "salt", "nonce", "box", "insecure_plain", NULL};
    unsigned char salt[crypto_pwhash_SALTBYTES];
    unsigned char nonce[crypto_secretbox_NONCEBYTES];
    unsigned char key[crypto_secretbox_KEYBYTES];
    unsigned char box[CU_SK_LEN + crypto_secretbox_MACBYTES];
    const char *kdf = NULL;
    uint64_t ops = 0, mem = 0;
    int rc;

    if (cu_json_only_keys(j, NULL, keys, e))
        return -CU_EINVAL;
    if (cu_json_get_str(j, NULL, "kdf", true, &kdf, e))
        return -CU_EINVAL;
    if (strcmp(kdf, KS_KDF) != 0)
        return cu_err_set(e, -CU_EINVAL, "field 'kdf' must be \"%s\"", KS_KDF);
    if (cu_json_get_u64(j, NULL, "opslimit", true, &ops, e))
        return -CU_EINVAL;
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > KS_OPS_MAX)
        return cu_err_set(e, -CU_EINVAL, "field 'opslimit' out of range");
    if (cu_json_get_u64(j, NULL, "memlimit", true, &mem, e))
        return -CU_EINVAL;
    if (mem < crypto_pwhash_MEMLIMIT_MIN || mem > KS_MEM_MAX)
        return cu_err_set(e, -CU_EINVAL, "field 'memlimit' out of range");
    if ((rc = get_hex(j, "salt", salt, sizeof salt, e)) ||
        (rc = get_hex(j, "nonce", nonce, sizeof nonce, e)) ||
        (rc = get_hex(j, "box", box, sizeof box, e)))
        return rc;
    if (!passphrase)
        return cu_err_set(e, -CU_ENEEDPASS, "keystore is encrypted: a passphrase is required");
    if (crypto_pwhash(key, sizeof key, passphrase, strlen(passphrase), salt,
                      (unsigned long long)ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
        return cu_err_set(e, -CU_ENOMEM, "argon2id key derivation failed (out of memory?)");
    rc = crypto_secretbox_open_easy(sk, box, sizeof box, nonce, key);
    sodium_memzero(key, sizeof key);
    if (rc != 0)
        return cu_err_set(e, -CU_EAUTH, "wrong passphrase (or the keystore was altered)");
    return 0;
}

static int ks_plain(const json_t *j, unsigned char sk[CU_SK_LEN], struct cu_err *e)
{
    static const char *const keys[] = {"version", "id", "insecure_plain", "secret", "warning",
                                       NULL};
    if (cu_json_only_keys(j, NULL, keys, e))
        return -CU_EINVAL;
    return get_hex(j, "secret", sk, CU_SK_LEN, e);
}

/* Loads a keystore: rebuilds the key pair from the seed half of the secret
 * key and checks that both the stored public half and the stored id match.
 * May block for the KDF. On failure *id holds no secret. */
int cu_identity_load(struct cu_identity *id, const char *path, const char *passphrase,
                     struct cu_err *e)
{
    unsigned char sk[CU_SK_LEN];
    const char *stored_id = NULL;
    bool plain = false;
    int64_t version = 0;
    json_t *j;
    int rc;

    memset(id, 0, sizeof *id);
    if (cu_crypto_init())
        return cu_err_set(e, -CU_ECRYPTO, "libsodium failed to initialise");
    rc = ks_read(path, &j, e);
    if (rc)
        return rc;
    if (cu_json_get_i64(j, NULL, "version", true, &version, e) ||
        cu_json_get_str(j, NULL, "id", true, &stored_id, e) ||
        cu_json_get_bool(j, NULL, "insecure_plain", false, &plain, e)) {
        rc = ks_fail(e, path, -CU_EINVAL);
        goto out_decref;
    }
    if (version != KS_VERSION) {
        rc = cu_err_set(e, -CU_EINVAL, "keystore %s: field 'version' must be %d, got %lld", path,
                        KS_VERSION, (long long)version);
        goto out_decref;
    }
    if (!cu_id_valid(stored_id)) {
        rc = cu_err_set(e, -CU_EINVAL, "keystore %s: field 'id' is not a valid id", path);
        goto out_decref;
    }
    rc = plain ? ks_plain(j, sk, e) : ks_decrypt(j, passphrase, sk, e);
    if (rc) {
        if (rc == -CU_EINVAL)
            rc = ks_fail(e, path, rc);
        goto out_wipe;
    }
    if (crypto_sign_seed_keypair(id->pk, id->sk, sk) != 0) {
        rc = cu_err_set(e, -CU_ECRYPTO, "keystore %s: cannot rebuild the key pair", path);
        goto out_wipe;
    }
    if (sodium_memcmp(id->sk, sk, CU_SK_LEN) != 0) {
        rc = cu_err_set(e, -CU_EINVAL,
                        "keystore %s: field '%s' is inconsistent (public half does not match)",
                        path, plain ? "secret" : "box");
        goto out_wipe;
    }
    cu_hex_encode(id->pk, CU_PK_LEN, id->id);
    if (strcmp(id->id, stored_id) != 0) {
        rc = cu_err_set(e, -CU_EINVAL, "keystore %s: field 'id' does not match the key", path);
        goto out_wipe;
    }
    if (plain)
        cu_debug("keystore %s is UNENCRYPTED (devnet only)", path);
    rc = 0;
out_wipe:
    sodium_memzero(sk, sizeof sk);
    if (rc)
        sodium_memzero(id, sizeof *id);
out_decref:
    json_decref(j);
    return rc;
}
