/* crypto_test.c - unit tests for hash, ident (keystore), reqsign, merkle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "crypto/merkle.h"
#include "crypto/reqsign.h"

#include "base/banned.h"

#define PASS "correct horse battery staple"

struct tmpdir {
    char path[CU_PATH_MAX];
};

static int setup_dir(void **state)
{
    struct tmpdir *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    memcpy(t->path, "/tmp/cu_crypto_XXXXXX", sizeof "/tmp/cu_crypto_XXXXXX");
    if (!mkdtemp(t->path)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown_dir(void **state)
{
    struct tmpdir *t = *state;
    int rc = cu_rm_rf(t->path);
    free(t);
    return rc;
}

static void join(char *out, const struct tmpdir *t, const char *name)
{
    assert_int_equal(cu_path_join(out, CU_PATH_MAX, t->path, name), 0);
}

/* ---- hash ---- */

static void test_hash_vectors(void **state)
{
    static const struct {
        const char *in, *hex;
    } v[] = {
        {"", "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"},
        {"abc", "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct cu_hash h, ref;
        char hex[CU_HASH_HEX_LEN + 1];
        size_t n = strlen(v[i].in);

        cu_hash_mem(v[i].in, n, &h);
        crypto_generichash(ref.b, sizeof ref.b, (const unsigned char *)v[i].in, n, NULL, 0);
        assert_true(cu_hash_eq(&h, &ref));
        cu_hash_to_hex(&h, hex);
        assert_string_equal(hex, v[i].hex);
    }
}

static void test_hasher_streaming(void **state)
{
    unsigned char data[1000];
    struct cu_hash a, b;
    struct cu_hasher h;
    (void)state;

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7);
    cu_hash_mem(data, sizeof data, &a);
    cu_hasher_init(&h);
    cu_hasher_update(&h, data, 1);
    cu_hasher_update(&h, data + 1, 499);
    cu_hasher_update(&h, data + 500, 500);
    cu_hasher_final(&h, &b);
    assert_true(cu_hash_eq(&a, &b));
    data[3] ^= 1;
    cu_hash_mem(data, sizeof data, &b);
    assert_false(cu_hash_eq(&a, &b));
}

static void test_hash_hex(void **state)
{
    struct cu_hash h, back;
    char hex[CU_HASH_HEX_LEN + 1], bad[CU_HASH_HEX_LEN + 2];
    (void)state;

    cu_hash_mem("abc", 3, &h);
    cu_hash_to_hex(&h, hex);
    assert_true(cu_hash_hex_valid(hex));
    assert_int_equal(cu_hash_from_hex(hex, &back), 0);
    assert_true(cu_hash_eq(&h, &back));

    memcpy(bad, hex, sizeof hex);
    bad[63] = '\0'; /* 63 chars */
    assert_false(cu_hash_hex_valid(bad));
    assert_int_equal(cu_hash_from_hex(bad, &back), -CU_EINVAL);
    memcpy(bad, hex, 64);
    bad[64] = 'a';
    bad[65] = '\0'; /* 65 chars */
    assert_int_equal(cu_hash_from_hex(bad, &back), -CU_EINVAL);
    memcpy(bad, hex, sizeof hex);
    bad[10] = 'g';
    assert_int_equal(cu_hash_from_hex(bad, &back), -CU_EINVAL);
    memcpy(bad, hex, sizeof hex);
    bad[0] = 'A'; /* uppercase is not canonical */
    assert_int_equal(cu_hash_from_hex(bad, &back), -CU_EINVAL);
    assert_int_equal(cu_hash_from_hex("", &back), -CU_EINVAL);
    assert_int_equal(cu_hash_from_hex(NULL, &back), -CU_EINVAL);
}

static void test_hash_file(void **state)
{
    struct tmpdir *t = *state;
    char path[CU_PATH_MAX];
    struct cu_hash h, ref;
    uint64_t size = 0;

    join(path, t, "f");
    assert_int_equal(cu_write_file_atomic(path, "hello", 5, 0644), 0);
    assert_int_equal(cu_hash_file(path, &h, &size), 0);
    assert_int_equal(size, 5);
    cu_hash_mem("hello", 5, &ref);
    assert_true(cu_hash_eq(&h, &ref));
    join(path, t, "missing");
    assert_int_equal(cu_hash_file(path, &h, NULL), -CU_ENOTFOUND);
}

static void test_random(void **state)
{
    char a[33], b[33];
    (void)state;
    cu_random_hex(a, 16);
    cu_random_hex(b, 16);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
}

/* ---- ident ---- */

static void test_sign_verify(void **state)
{
    struct cu_identity id;
    unsigned char sig[CU_SIG_LEN], pk[CU_PK_LEN];
    (void)state;

    assert_int_equal(cu_identity_generate(&id), 0);
    assert_int_equal(strlen(id.id), CU_ID_LEN);
    assert_true(cu_id_valid(id.id));
    assert_int_equal(cu_id_to_pk(id.id, pk), 0);
    assert_memory_equal(pk, id.pk, CU_PK_LEN);

    cu_sign(&id, "message", 7, sig);
    assert_true(cu_verify(id.pk, "message", 7, sig));
    assert_false(cu_verify(id.pk, "messagf", 7, sig));
    sig[0] ^= 1;
    assert_false(cu_verify(id.pk, "message", 7, sig));
    cu_identity_wipe(&id);
    for (size_t i = 0; i < CU_SK_LEN; i++)
        assert_int_equal(id.sk[i], 0);
}

static void test_id_invalid(void **state)
{
    unsigned char pk[CU_PK_LEN];
    char id[CU_ID_LEN + 2];
    struct cu_identity good;
    (void)state;

    /* All-zero and the identity encoding are small-order points. */
    memset(id, '0', CU_ID_LEN);
    id[CU_ID_LEN] = '\0';
    assert_int_equal(cu_id_to_pk(id, pk), -CU_EINVAL);
    id[0] = '0';
    id[1] = '1';
    assert_false(cu_id_valid(id));
    assert_false(cu_id_valid(""));
    assert_false(cu_id_valid(NULL));
    assert_false(cu_id_valid("abcd"));

    assert_int_equal(cu_identity_generate(&good), 0);
    memcpy(id, good.id, CU_ID_LEN + 1);
    id[5] = 'x';
    assert_false(cu_id_valid(id));
    memcpy(id, good.id, CU_ID_LEN + 1);
    id[CU_ID_LEN] = 'a';
    id[CU_ID_LEN + 1] = '\0';
    assert_false(cu_id_valid(id));
    cu_identity_wipe(&good);
}

static void test_keystore_plain(void **state)
{
    struct tmpdir *t = *state;
    struct cu_identity id, back;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    struct cu_buf b = CU_BUF_INIT(65536);
    struct stat st;

    join(path, t, "plain.json");
    assert_int_equal(cu_identity_generate(&id), 0);
    assert_int_equal(cu_identity_save(&id, path, NULL, false, &e), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(cu_keystore_is_plain(path));
    assert_int_equal(cu_read_file(path, &b), 0);
    assert_non_null(strstr(cu_buf_str(&b), "\"insecure_plain\": true"));
    assert_non_null(strstr(cu_buf_str(&b), "UNENCRYPTED"));
    cu_buf_release(&b);

    assert_int_equal(cu_identity_load(&back, path, NULL, &e), 0);
    assert_string_equal(back.id, id.id);
    assert_memory_equal(back.sk, id.sk, CU_SK_LEN);
    /* A passphrase given for a plain file is simply unused. */
    assert_int_equal(cu_identity_load(&back, path, "x", &e), 0);

    /* Overwrite refusal. */
    assert_int_equal(cu_identity_save(&id, path, NULL, false, &e), -CU_EEXISTS);
    assert_int_equal(cu_identity_save(&id, path, NULL, true, &e), 0);

    join(path, t, "nope.json");
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_ENOTFOUND);
    assert_false(cu_keystore_is_plain(path));
}

static void test_keystore_encrypted(void **state)
{
    struct tmpdir *t = *state;
    struct cu_identity id, back;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    struct stat st;

    join(path, t, "enc.json");
    assert_int_equal(cu_identity_generate(&id), 0);
    assert_int_equal(cu_identity_save(&id, path, PASS, false, &e), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_false(cu_keystore_is_plain(path));

    assert_int_equal(cu_identity_load(&back, path, PASS, &e), 0);
    assert_string_equal(back.id, id.id);
    assert_memory_equal(back.sk, id.sk, CU_SK_LEN);

    memset(&e, 0, sizeof e);
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_ENEEDPASS);
    assert_int_equal(e.code, -CU_ENEEDPASS);
    assert_int_equal(cu_identity_load(&back, path, "wrong", &e), -CU_EAUTH);
    for (size_t i = 0; i < CU_SK_LEN; i++)
        assert_int_equal(back.sk[i], 0);
    assert_int_equal(cu_identity_save(&id, path, PASS, false, &e), -CU_EEXISTS);
}

/* Rewrites field key of the keystore at path with value (a JSON literal),
 * or deletes it when value is NULL. */
static void edit_keystore(const char *path, const char *key, const char *value)
{
    struct cu_buf b = CU_BUF_INIT(65536);
    json_error_t je;
    json_t *j;
    char *text;

    assert_int_equal(cu_read_file(path, &b), 0);
    j = json_loadb(b.data, b.len, 0, &je);
    assert_non_null(j);
    cu_buf_release(&b);
    if (value) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        assert_non_null(v);
        json_object_set_new(j, key, v);
    } else {
        json_object_del(j, key);
    }
    text = json_dumps(j, 0);
    assert_non_null(text);
    assert_int_equal(cu_write_file_atomic(path, text, strlen(text), 0600), 0);
    free(text);
    json_decref(j);
}

static void test_keystore_tampered(void **state)
{
    struct tmpdir *t = *state;
    struct cu_identity id, other, back;
    struct cu_err e = {0};
    char path[CU_PATH_MAX], quoted[CU_ID_LEN + 3], box[2 * (CU_SK_LEN + 16) + 3];
    struct cu_buf b = CU_BUF_INIT(65536);
    json_error_t je;
    json_t *j;

    assert_int_equal(cu_identity_generate(&id), 0);
    assert_int_equal(cu_identity_generate(&other), 0);
    assert_int_equal(cu_snprintf(quoted, sizeof quoted, "\"%s\"", other.id), 0);

    /* Plain: id swapped for another valid id. */
    join(path, t, "p.json");
    assert_int_equal(cu_identity_save(&id, path, NULL, true, &e), 0);
    edit_keystore(path, "id", quoted);
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "'id'"));

    /* Plain: missing secret, bad version, secret not hex, unknown field. */
    assert_int_equal(cu_identity_save(&id, path, NULL, true, &e), 0);
    edit_keystore(path, "secret", NULL);
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "secret"));
    assert_int_equal(cu_identity_save(&id, path, NULL, true, &e), 0);
    edit_keystore(path, "version", "2");
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "version"));
    assert_int_equal(cu_identity_save(&id, path, NULL, true, &e), 0);
    edit_keystore(path, "secret", "\"zz\"");
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "secret"));
    assert_int_equal(cu_identity_save(&id, path, NULL, true, &e), 0);
    edit_keystore(path, "extra", "1");
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "extra"));

    /* Not JSON at all. */
    assert_int_equal(cu_write_file_atomic(path, "{not json", 9, 0600), 0);
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_EINVAL);
    assert_int_equal(cu_write_file_atomic(path, "[1]", 3, 0600), 0);
    assert_int_equal(cu_identity_load(&back, path, NULL, &e), -CU_EINVAL);

    /* Encrypted: missing salt, bad opslimit, flipped box byte, swapped id. */
    join(path, t, "e.json");
    assert_int_equal(cu_identity_save(&id, path, PASS, true, &e), 0);
    edit_keystore(path, "salt", NULL);
    assert_int_equal(cu_identity_load(&back, path, PASS, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "salt"));
    assert_int_equal(cu_identity_save(&id, path, PASS, true, &e), 0);
    edit_keystore(path, "opslimit", "\"three\"");
    assert_int_equal(cu_identity_load(&back, path, PASS, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "opslimit"));
    assert_int_equal(cu_identity_save(&id, path, PASS, true, &e), 0);
    edit_keystore(path, "memlimit", "99999999999999");
    assert_int_equal(cu_identity_load(&back, path, PASS, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "memlimit"));

    assert_int_equal(cu_identity_save(&id, path, PASS, true, &e), 0);
    assert_int_equal(cu_read_file(path, &b), 0);
    j = json_loadb(b.data, b.len, 0, &je);
    assert_non_null(j);
    cu_buf_release(&b);
    assert_int_equal(cu_snprintf(box, sizeof box, "\"%s\"",
                                 json_string_value(json_object_get(j, "box"))),
                     0);
    json_decref(j);
    box[1] = box[1] == '0' ? '1' : '0';
    edit_keystore(path, "box", box);
    assert_int_equal(cu_identity_load(&back, path, PASS, &e), -CU_EAUTH);

    assert_int_equal(cu_identity_save(&id, path, PASS, true, &e), 0);
    edit_keystore(path, "id", quoted);
    assert_int_equal(cu_identity_load(&back, path, PASS, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "'id'"));
    cu_identity_wipe(&id);
    cu_identity_wipe(&other);
}

/* ---- reqsign ---- */

static void test_reqsign(void **state)
{
    struct cu_identity id, other;
    struct cu_sig_headers h, x;
    struct cu_hash body;
    struct cu_err e = {0};
    const int64_t now = 1700000000;
    (void)state;

    assert_int_equal(cu_identity_generate(&id), 0);
    assert_int_equal(cu_identity_generate(&other), 0);
    cu_hash_mem("{\"a\":1}", 7, &body);
    cu_reqsign_make(&id, "POST", "/v1/jobs?x=1", &body, now, &h);
    assert_string_equal(h.key, id.id);
    assert_string_equal(h.ts, "1700000000");
    assert_int_equal(strlen(h.nonce), CU_NONCE_HEX_LEN);
    assert_int_equal(strlen(h.sig), 2 * CU_SIG_LEN);

    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &h, now, 300, &e), 0);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &h, now + 300, 300, &e), 0);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &h, now - 300, 300, &e), 0);

    /* The signing string is exactly as documented. */
    {
        char msg[512];
        unsigned char sig[CU_SIG_LEN];
        assert_int_equal(cu_snprintf(msg, sizeof msg, "cumulus-request-v1\nPOST\n/v1/jobs?x=1\n%s\n%s\n%s",
                                     h.ts, h.nonce, h.body_hash),
                         0);
        assert_int_equal(cu_hex_decode(h.sig, sig, CU_SIG_LEN), 0);
        assert_true(cu_verify(id.pk, msg, strlen(msg), sig));
    }

    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=2", &h, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "bad_signature:", 14);
    assert_int_equal(cu_reqsign_check("PUT", "/v1/jobs?x=1", &h, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "bad_signature:", 14);

    x = h;
    cu_hash_mem("{\"a\":2}", 7, &body);
    cu_hash_to_hex(&body, x.body_hash);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "bad_signature:", 14);

    x = h;
    memcpy(x.ts, "1700000001", 11);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "bad_signature:", 14);

    x = h;
    x.nonce[0] = x.nonce[0] == 'a' ? 'b' : 'a';
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "bad_signature:", 14);

    x = h;
    memcpy(x.key, other.id, CU_ID_LEN + 1);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "bad_signature:", 14);

    /* Stale either way. */
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &h, now + 301, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "stale:", 6);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &h, now - 301, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "stale:", 6);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &h, INT64_MIN, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "stale:", 6);

    /* Each header missing. */
    {
        char *fields[] = {x.key, x.ts, x.nonce, x.body_hash, x.sig};
        for (size_t i = 0; i < 5; i++) {
            x = h;
            fields[i][0] = '\0';
            assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e),
                             -CU_EAUTH);
            assert_memory_equal(e.msg, "unsigned:", 9);
        }
    }

    /* Malformed headers. */
    x = h;
    x.key[3] = 'z';
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "malformed:", 10);
    x = h;
    memcpy(x.ts, "17e8", 5);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "malformed:", 10);
    x = h;
    memcpy(x.ts, "-5", 3);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "malformed:", 10);
    x = h;
    x.nonce[10] = '\0';
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "malformed:", 10);
    x = h;
    x.body_hash[0] = 'Q';
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "malformed:", 10);
    x = h;
    x.sig[100] = '\0';
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs?x=1", &x, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "malformed:", 10);
    assert_int_equal(cu_reqsign_check("POST", "/v1/jobs\nx", &h, now, 300, &e), -CU_EAUTH);
    assert_memory_equal(e.msg, "malformed:", 10);

    cu_identity_wipe(&id);
    cu_identity_wipe(&other);
}

/* ---- merkle ---- */

static void leaf_hash(const char *name, const struct cu_hash *fh, struct cu_hash *out)
{
    struct cu_hasher h;
    unsigned char z = 0;
    cu_hasher_init(&h);
    cu_hasher_update(&h, &z, 1);
    cu_hasher_update(&h, name, strlen(name));
    cu_hasher_update(&h, &z, 1);
    cu_hasher_update(&h, fh->b, CU_HASH_LEN);
    cu_hasher_final(&h, out);
}

static void node_hash(const struct cu_hash *l, const struct cu_hash *r, struct cu_hash *out)
{
    struct cu_hasher h;
    unsigned char one = 1;
    cu_hasher_init(&h);
    cu_hasher_update(&h, &one, 1);
    cu_hasher_update(&h, l->b, CU_HASH_LEN);
    cu_hasher_update(&h, r->b, CU_HASH_LEN);
    cu_hasher_final(&h, out);
}

static void test_merkle(void **state)
{
    struct cu_merkle_leaf l[3], rev[3];
    struct cu_hash root, root2, la, lb, lc, ab, want;
    unsigned char two = 2;
    (void)state;

    /* Empty. */
    assert_int_equal(cu_merkle_root(NULL, 0, &root), 0);
    cu_hash_mem(&two, 1, &want);
    assert_true(cu_hash_eq(&root, &want));

    l[0].name = "b.txt";
    cu_hash_mem("B", 1, &l[0].hash);
    l[1].name = "a.txt";
    cu_hash_mem("A", 1, &l[1].hash);
    l[2].name = "c.txt";
    cu_hash_mem("C", 1, &l[2].hash);

    /* Single leaf: the root is the leaf hash. */
    assert_int_equal(cu_merkle_root(l, 1, &root), 0);
    leaf_hash("b.txt", &l[0].hash, &want);
    assert_true(cu_hash_eq(&root, &want));

    /* Three leaves: node(node(a, b), c) with c promoted. */
    assert_int_equal(cu_merkle_root(l, 3, &root), 0);
    leaf_hash("a.txt", &l[1].hash, &la);
    leaf_hash("b.txt", &l[0].hash, &lb);
    leaf_hash("c.txt", &l[2].hash, &lc);
    node_hash(&la, &lb, &ab);
    node_hash(&ab, &lc, &want);
    assert_true(cu_hash_eq(&root, &want));

    /* Order independence. */
    rev[0] = l[2];
    rev[1] = l[0];
    rev[2] = l[1];
    assert_int_equal(cu_merkle_root(rev, 3, &root2), 0);
    assert_true(cu_hash_eq(&root, &root2));
    /* Input not modified. */
    assert_string_equal(rev[0].name, "c.txt");

    /* One file's content changes the root. */
    rev[1].hash.b[0] ^= 1;
    assert_int_equal(cu_merkle_root(rev, 3, &root2), 0);
    assert_false(cu_hash_eq(&root, &root2));

    /* A rename changes the root. */
    rev[1] = l[0];
    rev[1].name = "d.txt";
    assert_int_equal(cu_merkle_root(rev, 3, &root2), 0);
    assert_false(cu_hash_eq(&root, &root2));

    /* Duplicate names refused. */
    rev[1].name = "c.txt";
    assert_int_equal(cu_merkle_root(rev, 3, &root2), -CU_EINVAL);
    rev[1].name = NULL;
    assert_int_equal(cu_merkle_root(rev, 3, &root2), -CU_EINVAL);
}

static void test_merkle_many(void **state)
{
    struct cu_merkle_leaf l[37];
    char names[37][8];
    struct cu_hash r1, r2;
    (void)state;

    for (int n = 1; n <= 37; n++) {
        for (int i = 0; i < n; i++) {
            assert_int_equal(cu_snprintf(names[i], sizeof names[i], "f%02d", i), 0);
            l[i].name = names[i];
            cu_hash_mem(names[i], 3, &l[i].hash);
        }
        assert_int_equal(cu_merkle_root(l, (size_t)n, &r1), 0);
        /* Reverse and compare. */
        for (int i = 0; i < n / 2; i++) {
            struct cu_merkle_leaf tmp = l[i];
            l[i] = l[n - 1 - i];
            l[n - 1 - i] = tmp;
        }
        assert_int_equal(cu_merkle_root(l, (size_t)n, &r2), 0);
        assert_true(cu_hash_eq(&r1, &r2));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_hasher_streaming),
        cmocka_unit_test(test_hash_hex),
        cmocka_unit_test_setup_teardown(test_hash_file, setup_dir, teardown_dir),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_id_invalid),
        cmocka_unit_test_setup_teardown(test_keystore_plain, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_keystore_encrypted, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_keystore_tampered, setup_dir, teardown_dir),
        cmocka_unit_test(test_reqsign),
        cmocka_unit_test(test_merkle),
        cmocka_unit_test(test_merkle_many),
    };
    if (cu_crypto_init() != 0)
        return 1;
    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
