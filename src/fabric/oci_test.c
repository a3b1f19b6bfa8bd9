/* oci_test.c - OCI image layouts built here with libarchive: layers and
 * whiteouts applied in order, the cache reused, the config read, and every
 * hostile layer refused (traversal, absolute names, escaping symlinks,
 * writes through symlinks, bad digests), setuid bits stripped, devices
 * skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <archive.h>
#include <archive_entry.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "fabric/oci.h"

#include "base/banned.h"

/* One tar entry: type 'f' file, 'd' dir, 'l' symlink, 'h' hard link,
 * 'c' char device. */
struct ent {
    char type;
    const char *name;
    const char *data; /* file content, or link target */
    unsigned mode;
};

/* A tar of ents in memory (malloc'ed into *out). */
static void make_tar(const struct ent *ents, size_t n, char **out, size_t *len)
{
    size_t cap = 1 << 20, used = 0;
    char *buf = malloc(cap);
    struct archive *w = archive_write_new();

    assert_non_null(buf);
    archive_write_set_format_pax_restricted(w);
    assert_int_equal(archive_write_open_memory(w, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ents[i].name);
        archive_entry_set_perm(e, ents[i].mode ? ents[i].mode : 0644);
        switch (ents[i].type) {
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)strlen(ents[i].data));
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, ents[i].data);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, ents[i].data);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdev(e, makedev(1, 3));
            break;
        }
        assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
        if (ents[i].type == 'f')
            archive_write_data(w, ents[i].data, strlen(ents[i].data));
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    archive_write_free(w);
    *out = buf;
    *len = used;
}

static void sha_hex(const void *p, size_t n, char hex[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, p, n);
    cu_hex_encode(d, sizeof d, hex);
}

struct blob {
    char name[96];
    char *data;
    size_t len;
};

/* Writes an image layout tarball at path with the given layers and config.
 * corrupt: the first layer's stored bytes differ from its digest. */
static void make_image(const char *path, char **layers, size_t *lens, size_t nl,
                       const char *config, bool corrupt)
{
    struct blob b[16];
    size_t nb = 0;
    char hex[65], man[4096], idx[512], cfghex[65];
    struct cu_buf lay = CU_BUF_INIT(4096);
    struct archive *w = archive_write_new();

    sha_hex(config, strlen(config), cfghex);
    for (size_t i = 0; i < nl; i++) {
        sha_hex(layers[i], lens[i], hex);
        (void)cu_buf_appendf(&lay, "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                             "\"digest\":\"sha256:%s\",\"size\":%zu}", i ? "," : "", hex, lens[i]);
        snprintf(b[nb].name, sizeof b[nb].name, "blobs/sha256/%s", hex);
        b[nb].data = layers[i];
        b[nb].len = lens[i];
        if (corrupt && i == 0)
            b[nb].data[lens[i] / 2] ^= 1;
        nb++;
    }
    snprintf(b[nb].name, sizeof b[nb].name, "blobs/sha256/%s", cfghex);
    b[nb].data = (char *)config;
    b[nb++].len = strlen(config);
    snprintf(man, sizeof man,
             "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\",\"size\":%zu},"
             "\"layers\":[%s]}", cfghex, strlen(config), cu_buf_str(&lay));
    sha_hex(man, strlen(man), hex);
    snprintf(b[nb].name, sizeof b[nb].name, "./blobs/sha256/%s", hex);
    b[nb].data = man;
    b[nb++].len = strlen(man);
    snprintf(idx, sizeof idx, "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
             "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\","
             "\"size\":%zu}]}", hex, strlen(man));
    b[nb] = (struct blob){"index.json", idx, strlen(idx)};
    nb++;
    b[nb] = (struct blob){"oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30};
    nb++;

    archive_write_set_format_pax_restricted(w);
    assert_int_equal(archive_write_open_filename(w, path), ARCHIVE_OK);
    for (size_t i = nb; i-- > 0;) { /* index first, blobs last, as skopeo does not */
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, b[i].name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)b[i].len);
        assert_int_equal(archive_write_header(w, e), ARCHIVE_OK);
        archive_write_data(w, b[i].data, b[i].len);
        archive_entry_free(e);
    }
    archive_write_close(w);
    archive_write_free(w);
    cu_buf_release(&lay);
}

struct fx {
    char dir[64];
    char tar[128], cache[128];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || sodium_init() < 0)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cu-oci-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->tar, sizeof f->tar, "%s/img.tar", f->dir);
    snprintf(f->cache, sizeof f->cache, "%s/cache", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    cu_rm_rf(f->dir);
    free(f);
    return 0;
}

static const char config[] =
    "{\"config\":{\"Env\":[\"PATH=/bin\",\"A=1\"],\"Entrypoint\":[\"/bin/run\"],"
    "\"Cmd\":[\"x\",\"y\"],\"WorkingDir\":\"/app\",\"User\":\"root\"}}";

/* Builds one image from layer entry lists and prepares it. */
static int prepare(struct fx *f, const struct ent *l1, size_t n1, const struct ent *l2, size_t n2,
                   bool corrupt, struct cu_oci_image *im, struct cu_err *e)
{
    char *layers[2];
    size_t lens[2];
    int rc;

    make_tar(l1, n1, &layers[0], &lens[0]);
    if (l2)
        make_tar(l2, n2, &layers[1], &lens[1]);
    make_image(f->tar, layers, lens, l2 ? 2 : 1, config, corrupt);
    free(layers[0]);
    if (l2)
        free(layers[1]);
    cu_oci_image_init(im);
    rc = cu_oci_prepare(f->tar, f->cache, 0, im, e);
    return rc;
}

static bool exists_in(const struct cu_oci_image *im, const char *rel)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", im->rootfs, rel);
    return lstat(p, &st) == 0;
}

static void test_layers_whiteouts_cache(void **state)
{
    struct fx *f = *state;
    const struct ent l1[] = {
        {'d', "etc", NULL, 0},          {'f', "etc/gone", "x", 0},
        {'f', "etc/kept", "k", 0},      {'d', "opq", NULL, 0},
        {'f', "opq/old", "o", 0},       {'f', "./bin/tool", "#!", 04755},
        {'l', "bin/sh", "tool", 0},     {'l', "bin/abs", "/bin/tool", 0},
        {'c', "dev/null", NULL, 0},     {'h', "bin/tool2", "bin/tool", 0},
    };
    const struct ent l2[] = {
        {'f', "opq/new", "n", 0},
        {'f', "opq/.wh..wh..opq", "", 0},
        {'f', "etc/.wh.gone", "", 0},
        {'f', "etc/.wh.never-existed", "", 0},
        {'f', "etc/added", "a", 0},
    };
    struct cu_oci_image im, im2;
    struct cu_err e = {0};
    struct stat st;
    char p[4200];

    assert_int_equal(prepare(f, l1, 10, l2, 5, false, &im, &e), 0);
    assert_false(im.cached);
    assert_true(exists_in(&im, "etc/kept"));
    assert_true(exists_in(&im, "etc/added"));
    assert_false(exists_in(&im, "etc/gone"));
    assert_false(exists_in(&im, "etc/.wh.gone"));
    assert_false(exists_in(&im, "opq/old"));  /* opaque: lower content gone */
    assert_true(exists_in(&im, "opq/new"));   /* ... this layer's stays */
    assert_true(exists_in(&im, "bin/sh"));
    assert_true(exists_in(&im, "bin/tool2"));
    assert_false(exists_in(&im, "dev/null")); /* devices skipped */
    assert_true(exists_in(&im, "work") && exists_in(&im, "proc") && exists_in(&im, "tmp"));
    snprintf(p, sizeof p, "%s/bin/tool", im.rootfs);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755); /* setuid stripped */
    /* the config */
    assert_int_equal(im.config.nenv, 2);
    assert_string_equal(im.config.env[1], "A=1");
    assert_int_equal(im.config.nentrypoint, 1);
    assert_string_equal(im.config.entrypoint[0], "/bin/run");
    assert_int_equal(im.config.ncmd, 2);
    assert_string_equal(im.config.workdir, "/app");

    /* Second time: the cached rootfs, same digest, config read again. */
    cu_oci_image_init(&im2);
    assert_int_equal(cu_oci_prepare(f->tar, f->cache, 0, &im2, &e), 0);
    assert_true(im2.cached);
    assert_string_equal(im.digest, im2.digest);
    assert_string_equal(im.rootfs, im2.rootfs);
    assert_int_equal(im2.config.ncmd, 2);
    cu_oci_image_release(&im);
    cu_oci_image_release(&im2);
}

/* Each hostile single-layer image is refused and leaves no rootfs. */
static void expect_refused(struct fx *f, const struct ent *l, size_t n, const char *needle)
{
    struct cu_oci_image im;
    struct cu_err e = {0};
    int rc = prepare(f, l, n, NULL, 0, false, &im, &e);

    assert_int_not_equal(rc, 0);
    if (!strstr(e.msg, needle))
        fail_msg("error '%s' does not mention '%s'", e.msg, needle);
    assert_false(exists_in(&im, ""));
    cu_oci_image_release(&im);
}

static void test_hostile_layers(void **state)
{
    struct fx *f = *state;
    const struct ent dotdot[] = {{'f', "a/../../evil", "x", 0}};
    const struct ent absolute[] = {{'f', "/etc/evil", "x", 0}};
    const struct ent esc_link[] = {{'l', "a/b", "../../../etc", 0}};
    const struct ent esc_hard[] = {{'h', "a", "../outside", 0}};
    const struct ent wh_dotdot[] = {{'f', "../.wh.x", "", 0}};

    expect_refused(f, dotdot, 1, "'..'");
    expect_refused(f, absolute, 1, "absolute");
    expect_refused(f, esc_link, 1, "outside the image root");
    expect_refused(f, esc_hard, 1, "'..'");
    expect_refused(f, wh_dotdot, 1, "'..'");
}

/* A symlink planted by a lower layer must not carry a write or a whiteout
 * of an upper layer outside the root. */
static void test_no_write_through_symlink(void **state)
{
    struct fx *f = *state;
    char victim[128], target[160];
    struct ent l1[] = {{'l', "link", NULL, 0}};
    const struct ent l2[] = {{'f', "link/planted", "pwned", 0}};
    const struct ent l2wh[] = {{'f', "link/.wh.keep", "", 0}};
    struct cu_oci_image im;
    struct cu_err e = {0};

    snprintf(victim, sizeof victim, "%s/victim", f->dir);
    assert_int_equal(mkdir(victim, 0755), 0);
    snprintf(target, sizeof target, "%s/keep", victim);
    assert_int_equal(cu_write_file_atomic(target, "k", 1, 0644), 0);
    l1[0].data = victim; /* absolute target: allowed as a link, never followed here */

    assert_int_not_equal(prepare(f, l1, 1, l2, 1, false, &im, &e), 0);
    cu_oci_image_release(&im);
    snprintf(target, sizeof target, "%s/planted", victim);
    assert_int_not_equal(access(target, F_OK), 0);

    assert_int_not_equal(prepare(f, l1, 1, l2wh, 1, false, &im, &e), 0);
    assert_non_null(strstr(e.msg, "symlink"));
    cu_oci_image_release(&im);
    snprintf(target, sizeof target, "%s/keep", victim);
    assert_int_equal(access(target, F_OK), 0);
}

static void test_bad_digest_and_layout(void **state)
{
    struct fx *f = *state;
    const struct ent l1[] = {{'f', "a", "some content here", 0}};
    struct cu_oci_image im;
    struct cu_err e = {0};

    assert_int_equal(prepare(f, l1, 1, NULL, 0, true, &im, &e), -CU_ECORRUPT);
    assert_non_null(strstr(e.msg, "sha256"));
    cu_oci_image_release(&im);

    /* A plain tar that is no image layout. */
    {
        char *t;
        size_t n;
        make_tar(l1, 1, &t, &n);
        assert_int_equal(cu_write_file_atomic(f->tar, t, n, 0644), 0);
        free(t);
    }
    cu_oci_image_init(&im);
    assert_int_equal(cu_oci_prepare(f->tar, f->cache, 0, &im, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "oci-layout"));
    cu_oci_image_release(&im);
}

static void test_config_parse(void **state)
{
    struct cu_oci_config c;
    struct cu_err e = {0};
    static const char bad_env[] = "{\"config\":{\"Env\":[\"NOEQUALS\"]}}";
    static const char bad_wd[] = "{\"config\":{\"WorkingDir\":\"rel\"}}";
    static const char none[] = "{\"architecture\":\"amd64\"}";

    (void)state;
    cu_oci_config_init(&c);
    assert_int_equal(cu_oci_config_parse(bad_env, strlen(bad_env), &c, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "config.Env[0]"));
    assert_int_equal(cu_oci_config_parse(bad_wd, strlen(bad_wd), &c, &e), -CU_EINVAL);
    assert_non_null(strstr(e.msg, "WorkingDir"));
    assert_int_equal(cu_oci_config_parse(none, strlen(none), &c, &e), 0);
    assert_int_equal(c.ncmd + c.nenv + c.nentrypoint, 0);
    assert_null(c.workdir);
    assert_int_equal(cu_oci_config_parse("[", 1, &c, &e), -CU_EINVAL);
    cu_oci_config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layers_whiteouts_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_write_through_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_digest_and_layout, setup, teardown),
        cmocka_unit_test(test_config_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
