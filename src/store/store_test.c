/* store_test.c - unit tests for the SQLite wrapper and the blob store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "store/blob.h"
#include "store/db.h"

#include "base/banned.h"

struct tmpdir {
    char path[CU_PATH_MAX];
};

static int setup_dir(void **state)
{
    struct tmpdir *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    memcpy(t->path, "/tmp/cu_store_XXXXXX", sizeof "/tmp/cu_store_XXXXXX");
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

/* Entries in dir other than "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* ---- db ---- */

static const struct cu_migration migs[] = {
    {1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"},
    {2, "CREATE TABLE c (id INTEGER PRIMARY KEY, t_id INTEGER NOT NULL REFERENCES t(id));"
        "INSERT INTO t (v) VALUES ('seeded');"},
};

static int64_t count_rows(struct cu_db *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    assert_int_equal(cu_db_prepare(db, sql, &st, NULL), 0);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_db_migrations(void **state)
{
    struct tmpdir *t = *state;
    char path[CU_PATH_MAX];
    struct cu_db db;
    struct cu_err e = {0};
    sqlite3_stmt *st;

    join(path, t, "a.db");
    /* First only migration 1. */
    assert_int_equal(cu_db_open(&db, path, migs, 1, &e), 0);
    assert_int_equal(cu_db_user_version(&db), 1);
    cu_db_close(&db);
    assert_null(db.h);

    assert_int_equal(cu_db_open(&db, path, migs, 2, &e), 0);
    assert_int_equal(cu_db_user_version(&db), 2);
    assert_int_equal(count_rows(&db, "SELECT count(*) FROM t"), 1);

    /* Pragmas as promised. */
    assert_int_equal(cu_db_prepare(&db, "PRAGMA journal_mode", &st, &e), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(count_rows(&db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(count_rows(&db, "PRAGMA synchronous"), 2);
    assert_int_equal(count_rows(&db, "PRAGMA busy_timeout"), 5000);
    /* Foreign keys are enforced. */
    assert_int_equal(cu_db_exec(&db, "INSERT INTO c (t_id) VALUES (999)", &e), -CU_EDB);
    assert_non_null(strstr(e.msg, "FOREIGN KEY"));
    cu_db_close(&db);

    /* Reopen: nothing reapplied. */
    assert_int_equal(cu_db_open(&db, path, migs, 2, &e), 0);
    assert_int_equal(count_rows(&db, "SELECT count(*) FROM t"), 1);
    cu_db_close(&db);
    cu_db_close(&db); /* idempotent */
}

static void test_db_newer_refused(void **state)
{
    struct tmpdir *t = *state;
    char path[CU_PATH_MAX];
    struct cu_db db;
    struct cu_err e = {0};

    join(path, t, "b.db");
    assert_int_equal(cu_db_open(&db, path, migs, 2, &e), 0);
    assert_int_equal(cu_db_exec(&db, "PRAGMA user_version = 3", &e), 0);
    cu_db_close(&db);
    assert_int_equal(cu_db_open(&db, path, migs, 2, &e), -CU_EUNSUPPORTED);
    assert_null(db.h);
    assert_non_null(strstr(e.msg, "version 3"));
}

static void test_db_bad_migration(void **state)
{
    struct tmpdir *t = *state;
    static const struct cu_migration bad[] = {
        {1, "CREATE TABLE t (id INTEGER PRIMARY KEY);"},
        {2, "CREATE TABLE u (x); THIS IS NOT SQL;"},
    };
    char path[CU_PATH_MAX];
    struct cu_db db;
    struct cu_err e = {0};

    join(path, t, "c.db");
    assert_int_equal(cu_db_open(&db, path, bad, 2, &e), -CU_EDB);
    assert_null(db.h);
    assert_non_null(strstr(e.msg, "migration 2"));
    /* Migration 1 committed, migration 2 rolled back entirely. */
    assert_int_equal(cu_db_open(&db, path, bad, 1, &e), 0);
    assert_int_equal(cu_db_user_version(&db), 1);
    assert_int_equal(count_rows(&db, "SELECT count(*) FROM sqlite_master WHERE name='u'"), 0);
    cu_db_close(&db);
}

static void test_db_transactions(void **state)
{
    struct tmpdir *t = *state;
    char path[CU_PATH_MAX];
    struct cu_db db;
    struct cu_err e = {0};
    sqlite3_stmt *st;

    join(path, t, "d.db");
    assert_int_equal(cu_db_open(&db, path, migs, 2, &e), 0);
    assert_int_equal(cu_db_begin(&db), 0);
    assert_int_equal(cu_db_exec(&db, "INSERT INTO t (v) VALUES ('x')", &e), 0);
    cu_db_rollback(&db);
    assert_int_equal(count_rows(&db, "SELECT count(*) FROM t"), 1);
    assert_int_equal(cu_db_begin(&db), 0);
    assert_int_equal(cu_db_exec(&db, "INSERT INTO t (v) VALUES ('y')", &e), 0);
    assert_int_equal(cu_db_commit(&db), 0);
    assert_int_equal(count_rows(&db, "SELECT count(*) FROM t"), 2);
    cu_db_rollback(&db); /* no transaction: harmless */
    assert_int_equal(cu_db_prepare(&db, "SELECT nope FROM t", &st, &e), -CU_EDB);
    assert_null(st);
    assert_non_null(strstr(e.msg, "nope"));
    cu_db_close(&db);
}

/* ---- blob ---- */

static void open_store(const struct tmpdir *t, struct cu_blobstore *bs)
{
    char root[CU_PATH_MAX];
    struct cu_err e = {0};
    join(root, t, "blobs");
    assert_int_equal(cu_blobstore_open(bs, root, &e), 0);
}

static void tmp_dir_of(const struct cu_blobstore *bs, char *out)
{
    assert_int_equal(cu_path_join(out, CU_PATH_MAX, bs->root, "tmp"), 0);
}

static void test_blob_put_stat_verify(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_hash h, want, missing;
    char path[CU_PATH_MAX], hex[CU_HASH_HEX_LEN + 1], expect[CU_PATH_MAX];
    uint64_t size = 0;
    struct stat st;

    open_store(t, &bs);
    assert_int_equal(cu_blob_put_mem(&bs, "hello world", 11, &h), 0);
    cu_hash_mem("hello world", 11, &want);
    assert_true(cu_hash_eq(&h, &want));
    assert_int_equal(cu_blob_stat(&bs, &h, &size), 0);
    assert_int_equal(size, 11);
    assert_int_equal(cu_blob_verify(&bs, &h), 0);

    assert_int_equal(cu_blob_path(&bs, &h, path, sizeof path), 0);
    cu_hash_to_hex(&h, hex);
    assert_int_equal(cu_snprintf(expect, sizeof expect, "%s/%.2s/%s", bs.root, hex, hex + 2), 0);
    assert_string_equal(path, expect);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0444);

    /* Same content again is fine. */
    assert_int_equal(cu_blob_put_mem(&bs, "hello world", 11, &h), 0);
    /* Empty blob. */
    assert_int_equal(cu_blob_put_mem(&bs, "", 0, &h), 0);
    assert_int_equal(cu_blob_stat(&bs, &h, &size), 0);
    assert_int_equal(size, 0);

    cu_hash_mem("absent", 6, &missing);
    assert_int_equal(cu_blob_stat(&bs, &missing, &size), -CU_ENOTFOUND);
    assert_int_equal(cu_blob_verify(&bs, &missing), -CU_ENOTFOUND);

    tmp_dir_of(&bs, path);
    assert_int_equal(count_entries(path), 0);
}

/* An open store always holds the empty blob, and a lost or damaged one
 * is put back at the next open. */
static void test_blob_empty_always(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_hash h;
    char path[CU_PATH_MAX];
    uint64_t size = 1;

    open_store(t, &bs);
    cu_blob_empty_hash(&h);
    assert_true(cu_blob_is_empty_hash(&h));
    assert_int_equal(cu_blob_stat(&bs, &h, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(cu_blob_verify(&bs, &h), 0);
    assert_int_equal(cu_blob_path(&bs, &h, path, sizeof path), 0);
    assert_int_equal(unlink(path), 0);
    open_store(t, &bs);
    assert_int_equal(cu_blob_stat(&bs, &h, &size), 0);
    assert_int_equal(size, 0);
    /* Damaged (content where there should be none): replaced. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(cu_write_file_atomic(path, "x", 1, 0444), 0);
    open_store(t, &bs);
    assert_int_equal(cu_blob_verify(&bs, &h), 0);
    cu_hash_mem("x", 1, &h);
    assert_false(cu_blob_is_empty_hash(&h));
}

static void test_blob_corrupt(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_hash h;
    char path[CU_PATH_MAX], dest[CU_PATH_MAX];
    unsigned char c;
    int fd;

    open_store(t, &bs);
    assert_int_equal(cu_blob_put_mem(&bs, "precious data", 13, &h), 0);
    assert_int_equal(cu_blob_path(&bs, &h, path, sizeof path), 0);
    assert_int_equal(chmod(path, 0644), 0);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, 4), 1);
    c ^= 0x01;
    assert_int_equal(pwrite(fd, &c, 1, 4), 1);
    close(fd);
    assert_int_equal(cu_blob_verify(&bs, &h), -CU_ECORRUPT);

    /* copy_out refuses, and leaves neither dest nor a temp file. */
    join(dest, t, "out.bin");
    assert_int_equal(cu_blob_copy_out(&bs, &h, dest, 0644), -CU_ECORRUPT);
    assert_int_equal(access(dest, F_OK), -1);
    assert_int_equal(count_entries(t->path), 1); /* only blobs/ */

    /* A blob that grew is also corrupt. */
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "xx", 2), 2);
    close(fd);
    assert_int_equal(cu_blob_copy_out(&bs, &h, dest, 0644), -CU_ECORRUPT);
    assert_int_equal(count_entries(t->path), 1);

    /* Writing the right content again heals it. */
    assert_int_equal(cu_blob_put_mem(&bs, "precious data", 13, &h), 0);
    assert_int_equal(cu_blob_verify(&bs, &h), 0);
}

static void test_blob_writer(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_blob_writer w;
    struct cu_hash h, want, wrong;
    char tmpdir[CU_PATH_MAX];
    uint64_t size;

    open_store(t, &bs);
    tmp_dir_of(&bs, tmpdir);

    /* Max size. */
    assert_int_equal(cu_blob_writer_open(&w, &bs, 10), 0);
    assert_int_equal(cu_blob_writer_write(&w, "12345", 5), 0);
    assert_int_equal(cu_blob_writer_write(&w, "67890", 5), 0);
    assert_int_equal(cu_blob_writer_write(&w, "x", 1), -CU_ETOOBIG);
    assert_int_equal(count_entries(tmpdir), 1);
    cu_blob_writer_abort(&w);
    assert_int_equal(count_entries(tmpdir), 0);
    cu_blob_writer_abort(&w); /* twice is harmless */

    /* Streaming, with the right expected hash. */
    cu_hash_mem("abcdef", 6, &want);
    assert_int_equal(cu_blob_writer_open(&w, &bs, 100), 0);
    assert_int_equal(cu_blob_writer_write(&w, "abc", 3), 0);
    assert_int_equal(cu_blob_writer_write(&w, "def", 3), 0);
    assert_int_equal(cu_blob_writer_commit(&w, &want, &h), 0);
    assert_true(cu_hash_eq(&h, &want));
    cu_blob_writer_abort(&w); /* after commit: nothing */
    assert_int_equal(cu_blob_stat(&bs, &want, &size), 0);
    assert_int_equal(size, 6);

    /* Wrong expected hash: temp removed, nothing stored. */
    cu_hash_mem("other", 5, &wrong);
    assert_int_equal(cu_blob_writer_open(&w, &bs, 100), 0);
    assert_int_equal(cu_blob_writer_write(&w, "ghijk", 5), 0);
    assert_int_equal(cu_blob_writer_commit(&w, &wrong, &h), -CU_ECORRUPT);
    assert_int_equal(count_entries(tmpdir), 0);
    cu_hash_mem("ghijk", 5, &h);
    assert_int_equal(cu_blob_stat(&bs, &h, NULL), -CU_ENOTFOUND);
    assert_int_equal(cu_blob_stat(&bs, &wrong, NULL), -CU_ENOTFOUND);
}

/* Pseudo-random bytes, different for each seed. */
static unsigned char *pattern(size_t n, uint64_t seed)
{
    unsigned char *p = malloc(n ? n : 1);
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;

    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
    return p;
}

/* Writes data[0..n) through w in uneven pieces (1 byte, a page less one,
 * 3 MiB + 7, ...) so the stage fills, flushes and straddles pieces. */
static void write_uneven(struct cu_blob_writer *w, const unsigned char *data, size_t n)
{
    static const size_t steps[] = {1, 4095, (3u << 20) + 7, 16384, 5, (1u << 20) + 333};
    size_t off = 0;

    for (size_t i = 0; off < n; i++) {
        size_t k = steps[i % (sizeof steps / sizeof steps[0])];
        if (k > n - off)
            k = n - off;
        assert_int_equal(cu_blob_writer_write(w, data + off, k), 0);
        off += k;
    }
    assert_int_equal(w->size, n);
}

/* The file at path holds exactly data[0..n). */
static void assert_file_is(const char *path, const unsigned char *data, size_t n)
{
    struct cu_buf b = CU_BUF_INIT(64u << 20);

    assert_int_equal(cu_read_file(path, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, data, n);
    cu_buf_release(&b);
}

/* Large writers (O_DIRECT where the file system allows it, through a 4 MiB
 * stage): sizes around the stage and page boundaries come back byte for
 * byte, into the store and to a path; a wrong hash still stores nothing. */
static void test_blob_writer_large(void **state)
{
    static const size_t sizes[] = {0, 1, 4095, 4096, 5000, 4u << 20, (4u << 20) + 1,
                                   (9u << 20) + 1237};
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_blob_writer w;
    struct cu_hash want, h, wrong;
    char tmpdir[CU_PATH_MAX], path[CU_PATH_MAX], dest[CU_PATH_MAX];
    struct stat st;

    open_store(t, &bs);
    tmp_dir_of(&bs, tmpdir);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *data = pattern(n, i + 1);

        cu_hash_mem(data, n, &want);
        assert_int_equal(cu_blob_writer_open(&w, &bs, UINT64_MAX), 0);
        write_uneven(&w, data, n);
        assert_int_equal(cu_blob_writer_commit(&w, &want, &h), 0);
        assert_true(cu_hash_eq(&h, &want));
        assert_int_equal(cu_blob_path(&bs, &want, path, sizeof path), 0);
        assert_file_is(path, data, n);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0444);
        assert_int_equal(cu_blob_verify(&bs, &want), 0);

        join(dest, t, "big.out");
        assert_int_equal(cu_vfile_open(&w, dest, n, 0600), 0);
        write_uneven(&w, data, n);
        assert_int_equal(cu_blob_writer_commit(&w, &want, NULL), 0);
        assert_file_is(dest, data, n);
        assert_int_equal(unlink(dest), 0);

        /* Same bytes claimed under another hash: refused, nothing left. */
        wrong = want;
        wrong.b[31] ^= 0x80;
        assert_int_equal(cu_blob_writer_open(&w, &bs, UINT64_MAX), 0);
        write_uneven(&w, data, n);
        assert_int_equal(cu_blob_writer_commit(&w, &wrong, NULL), -CU_ECORRUPT);
        assert_int_equal(cu_blob_stat(&bs, &wrong, NULL), -CU_ENOTFOUND);
        assert_int_equal(count_entries(tmpdir), 0);

        /* Aborted half way: the temp file and the stage go. */
        assert_int_equal(cu_blob_writer_open(&w, &bs, UINT64_MAX), 0);
        write_uneven(&w, data, n / 2);
        cu_blob_writer_abort(&w);
        assert_int_equal(count_entries(tmpdir), 0);
        free(data);
    }
    /* The size limit holds on the direct path too. */
    {
        unsigned char *data = pattern(5u << 20, 99);
        assert_int_equal(cu_blob_writer_open(&w, &bs, 5u << 20), 0);
        assert_int_equal(cu_blob_writer_write(&w, data, 5u << 20), 0);
        assert_int_equal(cu_blob_writer_write(&w, data, 1), -CU_ETOOBIG);
        cu_blob_writer_abort(&w);
        free(data);
    }
    assert_int_equal(count_entries(tmpdir), 0);
}

/* A disk error in the pipeline's write thread (a file size limit makes
 * write(2) fail with EFBIG) comes back from a later write or the commit,
 * and nothing is stored or left behind. */
static void test_blob_writer_write_error(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_blob_writer w;
    struct rlimit old, lim;
    struct sigaction ign = {.sa_handler = SIG_IGN}, prev;
    char tmpdir[CU_PATH_MAX];
    size_t n = 24u << 20, off = 0;
    unsigned char *data = pattern(n, 7);
    struct cu_hash want;
    int rc = 0;

    open_store(t, &bs);
    tmp_dir_of(&bs, tmpdir);
    cu_hash_mem(data, n, &want);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(sigaction(SIGXFSZ, &ign, &prev), 0);
    lim = old;
    lim.rlim_cur = 6u << 20;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    assert_int_equal(cu_blob_writer_open(&w, &bs, UINT64_MAX), 0);
    while (off < n && rc == 0) {
        rc = cu_blob_writer_write(&w, data + off, 1u << 20);
        off += 1u << 20;
    }
    if (rc == 0)
        rc = cu_blob_writer_commit(&w, &want, NULL);
    else
        cu_blob_writer_abort(&w);

    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(sigaction(SIGXFSZ, &prev, NULL), 0);
    assert_int_equal(rc, -CU_EIO);
    assert_int_equal(cu_blob_stat(&bs, &want, NULL), -CU_ENOTFOUND);
    assert_int_equal(count_entries(tmpdir), 0);
    free(data);
}

static void test_vfile(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blob_writer w;
    struct cu_hash want, h;
    char dest[CU_PATH_MAX];
    struct cu_buf b = CU_BUF_INIT(1024);
    struct stat st;

    join(dest, t, "download.bin");
    cu_hash_mem("payload", 7, &want);
    assert_int_equal(cu_vfile_open(&w, dest, 1024, 0640), 0);
    assert_int_equal(cu_blob_writer_write(&w, "pay", 3), 0);
    assert_int_equal(access(dest, F_OK), -1); /* not there until commit */
    assert_int_equal(cu_blob_writer_write(&w, "load", 4), 0);
    assert_int_equal(cu_blob_writer_commit(&w, &want, &h), 0);
    assert_true(cu_hash_eq(&h, &want));
    assert_int_equal(cu_read_file(dest, &b), 0);
    assert_string_equal(cu_buf_str(&b), "payload");
    cu_buf_release(&b);
    assert_int_equal(stat(dest, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(count_entries(t->path), 1);

    /* Mismatch: dest keeps its old content, no temp file left. */
    assert_int_equal(cu_vfile_open(&w, dest, 1024, 0640), 0);
    assert_int_equal(cu_blob_writer_write(&w, "evil", 4), 0);
    assert_int_equal(cu_blob_writer_commit(&w, &want, NULL), -CU_ECORRUPT);
    assert_int_equal(cu_read_file(dest, &b), 0);
    assert_string_equal(cu_buf_str(&b), "payload");
    cu_buf_release(&b);
    assert_int_equal(count_entries(t->path), 1);

    /* Missing directory. */
    join(dest, t, "no/such/dir/file");
    assert_int_equal(cu_vfile_open(&w, dest, 1024, 0640), -CU_ENOTFOUND);
    cu_blob_writer_abort(&w);
}

static void test_blob_files(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_hash h, h2, missing;
    char src[CU_PATH_MAX], dest[CU_PATH_MAX];
    unsigned char *big;
    struct cu_buf b = CU_BUF_INIT(1 << 20);
    uint64_t size = 0;
    struct stat st;
    const size_t n = 200000; /* several copy chunks */

    open_store(t, &bs);
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 31 + 7);
    join(src, t, "src.bin");
    assert_int_equal(cu_write_file_atomic(src, big, n, 0644), 0);
    assert_int_equal(cu_blob_put_file(&bs, src, &h, &size), 0);
    assert_int_equal(size, n);
    cu_hash_mem(big, n, &h2);
    assert_true(cu_hash_eq(&h, &h2));
    assert_int_equal(cu_blob_verify(&bs, &h), 0);

    join(dest, t, "copy.bin");
    assert_int_equal(cu_blob_copy_out(&bs, &h, dest, 0600), 0);
    assert_int_equal(cu_read_file(dest, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, big, n);
    cu_buf_release(&b);
    assert_int_equal(stat(dest, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Over an existing file. */
    assert_int_equal(cu_blob_copy_out(&bs, &h, dest, 0600), 0);

    cu_hash_mem("absent", 6, &missing);
    assert_int_equal(cu_blob_copy_out(&bs, &missing, dest, 0600), -CU_ENOTFOUND);
    join(src, t, "nope");
    assert_int_equal(cu_blob_put_file(&bs, src, &h, &size), -CU_ENOTFOUND);
    free(big);
}

static void test_blob_stale_tmp(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct cu_err e = {0};
    char tmpdir[CU_PATH_MAX], p[CU_PATH_MAX], root[CU_PATH_MAX];

    open_store(t, &bs);
    tmp_dir_of(&bs, tmpdir);
    /* A dead writer (pid beyond pid_max) and a live one (ours). */
    assert_int_equal(cu_path_join(p, sizeof p, tmpdir, "2147483600.deadbeef"), 0);
    assert_int_equal(cu_write_file_atomic(p, "x", 1, 0600), 0);
    assert_int_equal(cu_snprintf(p, sizeof p, "%s/%ld.cafe", tmpdir, (long)getpid()), 0);
    assert_int_equal(cu_write_file_atomic(p, "y", 1, 0600), 0);
    assert_int_equal(count_entries(tmpdir), 2);
    join(root, t, "blobs");
    assert_int_equal(cu_blobstore_open(&bs, root, &e), 0);
    assert_int_equal(count_entries(tmpdir), 1);
    assert_int_equal(access(p, F_OK), 0);
}

struct race {
    const struct cu_blobstore *bs;
    int rc;
};

static void *race_put(void *arg)
{
    struct race *r = arg;
    struct cu_hash h;
    for (int i = 0; i < 20 && r->rc == 0; i++)
        r->rc = cu_blob_put_mem(r->bs, "same content", 12, &h);
    return NULL;
}

static void test_blob_concurrent_same(void **state)
{
    struct tmpdir *t = *state;
    struct cu_blobstore bs;
    struct race r[4];
    pthread_t th[4];
    struct cu_hash h;
    char tmpdir[CU_PATH_MAX];

    open_store(t, &bs);
    for (int i = 0; i < 4; i++) {
        r[i].bs = &bs;
        r[i].rc = 0;
        assert_int_equal(pthread_create(&th[i], NULL, race_put, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, 0);
    }
    cu_hash_mem("same content", 12, &h);
    assert_int_equal(cu_blob_verify(&bs, &h), 0);
    tmp_dir_of(&bs, tmpdir);
    assert_int_equal(count_entries(tmpdir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_db_migrations, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_db_newer_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_db_bad_migration, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_db_transactions, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_put_stat_verify, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_empty_always, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_corrupt, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_writer, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_writer_large, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_writer_write_error, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_vfile, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_files, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_stale_tmp, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_blob_concurrent_same, setup_dir, teardown_dir),
    };
    if (cu_crypto_init() != 0)
        return 1;
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
