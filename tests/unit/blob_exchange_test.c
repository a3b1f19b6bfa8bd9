/* blob_exchange_test.c - large blobs through the real exchange on the
 * client paths requesters and providers use (cu_api_upload_file,
 * cu_api_download_blob): the exchange's O_DIRECT pipeline writer, its
 * uncached (O_DIRECT, bounce buffer) GET and the client's verified writer,
 * with sizes that cross stage and page boundaries; verification still
 * refuses a corrupted stored blob and a body under the wrong hash. */
#include "exchange_fixture.h"

#include <dirent.h>
#include <sys/stat.h>

#include "client/api.h"
#include "crypto/ident.h"
#include "store/blob.h"

#include "base/banned.h"

/* Over two 4 MiB stages and not a multiple of the page size. */
#define BIG_SIZE ((9u << 20) + 1237u)

struct env {
    struct exfix x;
    struct cu_identity id;
    struct cu_api api;
};

static struct env *E;

static int group_teardown(void **state);

/* On failure everything started so far is stopped here: cmocka does not
 * run the group teardown after a failed setup. */
static int group_setup(void **state)
{
    struct cu_err e = {0};

    E = calloc(1, sizeof *E);
    if (!E)
        return -1;
    if (exfix_init(&E->x, "/tmp/cu_blobx_XXXXXX") != 0 ||
        exfix_start(&E->x, "data", NULL, 30, false) != 0 || cu_identity_generate(&E->id) != 0 ||
        cu_api_open(&E->api, E->x.url, &E->id, &e) != 0) {
        group_teardown(state);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!E)
        return 0;
    cu_api_close(&E->api);
    exfix_cleanup(&E->x);
    free(E);
    E = NULL;
    return 0;
}

/* Writes n pseudo-random bytes (seeded) to path; returns them (owned). */
static unsigned char *make_file(const char *path, size_t n, uint64_t seed)
{
    unsigned char *p = malloc(n);
    uint64_t v = seed * 0x9E3779B97F4A7C15ULL + 1;
    int fd;

    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        v ^= v << 13;
        v ^= v >> 7;
        v ^= v << 17;
        p[i] = (unsigned char)v;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
    return p;
}

static void assert_file_is(const char *path, const unsigned char *data, size_t n)
{
    struct cu_buf b = CU_BUF_INIT(64u << 20);

    assert_int_equal(cu_read_file(path, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, data, n);
    cu_buf_release(&b);
}

/* Entries of dir other than "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Path of blob h in the exchange's store. */
static void stored_path(const struct cu_hash *h, char *out)
{
    struct cu_blobstore bs;

    assert_int_equal(cu_snprintf(bs.root, sizeof bs.root, "%s/blobs", E->x.data), 0);
    assert_int_equal(cu_blob_path(&bs, h, out, CU_PATH_MAX), 0);
}

static void test_big_blob_round_trip(void **state)
{
    char src[CU_PATH_MAX], dl_dir[CU_PATH_MAX], dest[CU_PATH_MAX], stored[CU_PATH_MAX];
    struct cu_err e = {0};
    struct cu_hash h;
    unsigned char *data;
    bool exists = true;

    (void)state;
    assert_int_equal(cu_path_join(src, sizeof src, E->x.dir, "input.bin"), 0);
    assert_int_equal(cu_path_join(dl_dir, sizeof dl_dir, E->x.dir, "dl"), 0);
    assert_int_equal(cu_path_join(dest, sizeof dest, dl_dir, "input.bin"), 0);
    assert_int_equal(mkdir(dl_dir, 0755), 0);
    data = make_file(src, BIG_SIZE, 1);
    cu_hash_mem(data, BIG_SIZE, &h);

    assert_int_equal(cu_api_blob_exists(&E->api, &h, &exists, &e), 0);
    assert_false(exists);
    if (cu_api_upload_file(&E->api, src, &h, &e) != 0)
        fail_msg("upload: %s", e.msg);
    assert_int_equal(E->api.status, 201);
    assert_int_equal(cu_api_blob_exists(&E->api, &h, &exists, &e), 0);
    assert_true(exists);
    stored_path(&h, stored);
    assert_file_is(stored, data, BIG_SIZE);

    if (cu_api_download_blob(&E->api, &h, BIG_SIZE, dest, &e) != 0)
        fail_msg("download: %s", e.msg);
    assert_file_is(dest, data, BIG_SIZE);
    assert_int_equal(count_entries(dl_dir), 1);

    /* Again over the existing file: replaced, same bytes. */
    if (cu_api_download_blob(&E->api, &h, BIG_SIZE, dest, &e) != 0)
        fail_msg("second download: %s", e.msg);
    assert_file_is(dest, data, BIG_SIZE);
    assert_int_equal(unlink(dest), 0);
    free(data);
}

/* A stored blob altered in its second stage is refused by the
 * downloader, which leaves nothing behind. */
static void test_big_blob_corrupt_refused(void **state)
{
    char src[CU_PATH_MAX], dl_dir[CU_PATH_MAX], dest[CU_PATH_MAX], stored[CU_PATH_MAX];
    struct cu_err e = {0};
    struct cu_hash h;
    unsigned char *data, c;
    int fd;

    (void)state;
    assert_int_equal(cu_path_join(src, sizeof src, E->x.dir, "input2.bin"), 0);
    assert_int_equal(cu_path_join(dl_dir, sizeof dl_dir, E->x.dir, "dl2"), 0);
    assert_int_equal(cu_path_join(dest, sizeof dest, dl_dir, "input2.bin"), 0);
    assert_int_equal(mkdir(dl_dir, 0755), 0);
    data = make_file(src, BIG_SIZE, 2);
    cu_hash_mem(data, BIG_SIZE, &h);
    if (cu_api_upload_file(&E->api, src, &h, &e) != 0)
        fail_msg("upload: %s", e.msg);

    stored_path(&h, stored);
    assert_int_equal(chmod(stored, 0644), 0);
    fd = open(stored, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, (5u << 20) + 3), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, (5u << 20) + 3), 1);
    assert_int_equal(fsync(fd), 0);
    close(fd);

    assert_int_equal(cu_api_download_blob(&E->api, &h, BIG_SIZE, dest, &e), -CU_ECORRUPT);
    assert_int_equal(access(dest, F_OK), -1);
    assert_int_equal(count_entries(dl_dir), 0);
    free(data);
}

/* A body sent under another blob's hash is refused and not stored. */
static void test_big_blob_wrong_hash(void **state)
{
    char src[CU_PATH_MAX], stored[CU_PATH_MAX];
    struct cu_err e = {0};
    struct cu_hash h, wrong;
    unsigned char *data;
    bool exists = true;

    (void)state;
    assert_int_equal(cu_path_join(src, sizeof src, E->x.dir, "input3.bin"), 0);
    data = make_file(src, BIG_SIZE, 3);
    cu_hash_mem(data, BIG_SIZE, &h);
    wrong = h;
    wrong.b[0] ^= 1;
    assert_true(cu_api_upload_file(&E->api, src, &wrong, &e) < 0);
    assert_int_equal(E->api.status, 400);
    assert_string_equal(E->api.code, "hash_mismatch");
    assert_int_equal(cu_api_blob_exists(&E->api, &wrong, &exists, &e), 0);
    assert_false(exists);
    stored_path(&wrong, stored);
    assert_int_equal(access(stored, F_OK), -1);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_blob_round_trip),
        cmocka_unit_test(test_big_blob_corrupt_refused),
        cmocka_unit_test(test_big_blob_wrong_hash),
    };
    return cmocka_run_group_tests_name("blob_exchange", tests, group_setup, group_teardown);
}
