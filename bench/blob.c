/* blob.c - upload and download of one large input over loopback through a
 * real exchange (its own process), hashing included, on the real code
 * paths: the requester hashes the file (cu_hash_file, as `cumulus submit`
 * does to name the input) and PUTs it streamed (cu_http_upload_file,
 * signed; the exchange hashes while it stores, fsyncs and renames); the
 * download is a signed GET streamed (cu_http_download) into a verified
 * blob writer (hashed, fsynced, renamed only when the hash matches), as a
 * provider fills its input cache.
 *
 *   build/bench/blob [--size BYTES] [--runs N]     (default 1GiB, 3 runs)
 *
 * Each run changes the file's first bytes so the exchange never already
 * has the blob. upload_mb_per_s counts hashing + PUT (MB = 10^6 bytes);
 * put_mb_per_s the PUT alone. Figures are medians over the runs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/util.h"
#include "benchlib.h"
#include "crypto/hash.h"
#include "net/http_client.h"
#include "store/blob.h"

#include "base/banned.h"

#define CHUNK (4u << 20)

static void make_file(const char *path, uint64_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    unsigned char *buf = malloc(CHUNK);
    uint64_t x = 0x9E3779B97F4A7C15ULL, left = size;

    if (fd < 0 || !buf)
        bl_die("cannot create %s: %s", path, strerror(errno));
    while (left) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            memcpy(buf + i, &x, 8);
        }
        if (write(fd, buf, n) != (ssize_t)n)
            bl_die("writing %s: %s", path, strerror(errno));
        left -= n;
    }
    free(buf);
    close(fd);
}

static void stamp(const char *path, uint64_t run)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, &run, sizeof run, 0) != (ssize_t)sizeof run)
        bl_die("cannot rewrite %s: %s", path, strerror(errno));
    close(fd);
}

/* CPU seconds (user + system) of this thread so far. */
static double thread_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int sink(void *ctx, const char *data, size_t n)
{
    return cu_blob_writer_write(ctx, data, n);
}

int main(int argc, char **argv)
{
    uint64_t size = bl_opt_u64(argc, argv, "--size", 1ULL << 30);
    uint64_t runs = bl_opt_u64(argc, argv, "--runs", 3);
    char dir[PATH_MAX], url[512], file[PATH_MAX], cache[PATH_MAX], path[128], hex[65];
    double up[16], put[16], down[16], hash_ms[16], commit_ms[16], down_cpu[16];
    struct cu_identity id;
    struct cu_http_client *c;
    struct cu_http_result r;
    struct cu_blobstore bs;
    struct cu_err e = {0};
    struct bl_stats su, sp, sd, sh, sc, su_cpu;
    pid_t ex;

    bl_init("blob");
    if (size < 8 || runs < 1 || runs > 16)
        bl_die("--size must be at least 8 bytes and --runs between 1 and 16");
    bl_tmpdir(dir, sizeof dir);
    ex = bl_start_exchange(dir, NULL, url, sizeof url);
    if (cu_identity_generate(&id) != 0 || !(c = cu_http_client_new(url, &id)))
        bl_die("cannot set up the client");
    cu_snprintf(file, sizeof file, "%s/input.bin", dir);
    cu_snprintf(cache, sizeof cache, "%s/cache", dir);
    if (cu_blobstore_open(&bs, cache, &e) != 0)
        bl_die("blob cache: %s", e.msg);
    make_file(file, size);
    cu_http_result_init(&r);

    for (uint64_t i = 0; i < runs; i++) {
        struct cu_hash h, got;
        struct cu_blob_writer w;
        uint64_t n;
        double t0, t1, t2, t3, t4, t35, c0;
        char stored[PATH_MAX];

        stamp(file, i + 1);
        t0 = bl_now_ms();
        if (cu_hash_file(file, &h, &n) != 0 || n != size)
            bl_die("cannot hash %s", file);
        cu_hash_to_hex(&h, hex);
        cu_snprintf(path, sizeof path, "/v1/blobs/%s", hex);
        t1 = bl_now_ms();
        if (cu_http_upload_file(c, "PUT", path, file, &h, 600000, &r) != 0 || r.status != 201) {
            char d[700];
            bl_die("upload: %s", cu_http_result_describe(&r, d, sizeof d));
        }
        t2 = bl_now_ms();
        if (cu_blob_writer_open(&w, &bs, size) != 0)
            bl_die("cannot open a blob writer under %s", cache);
        t3 = bl_now_ms();
        c0 = thread_cpu_s();
        if (cu_http_download(c, path, sink, &w, 600000, &r) != 0 || r.status != 200) {
            char d[700];
            cu_blob_writer_abort(&w);
            bl_die("download: %s", cu_http_result_describe(&r, d, sizeof d));
        }
        t35 = bl_now_ms();
        if (w.size != size || cu_blob_writer_commit(&w, &h, &got) != 0)
            bl_die("the downloaded blob does not match (%llu bytes)",
                   (unsigned long long)w.size);
        t4 = bl_now_ms();
        down_cpu[i] = thread_cpu_s() - c0;
        commit_ms[i] = t4 - t35;
        hash_ms[i] = t1 - t0;
        up[i] = (double)size / 1e3 / (t2 - t0);
        put[i] = (double)size / 1e3 / (t2 - t1);
        down[i] = (double)size / 1e3 / (t4 - t3);
        /* Drop both copies so the disk holds one run at a time. */
        if (cu_blob_path(&bs, &h, stored, sizeof stored) == 0)
            unlink(stored);
        char exroot[PATH_MAX];
        struct cu_blobstore exbs;
        cu_snprintf(exroot, sizeof exroot, "%s/exchange/blobs", dir);
        cu_snprintf(exbs.root, sizeof exbs.root, "%s", exroot);
        if (cu_blob_path(&exbs, &h, stored, sizeof stored) == 0)
            unlink(stored);
    }
    cu_http_result_release(&r);
    cu_http_client_free(c);
    bl_stop(ex);
    bl_stats(up, runs, &su);
    bl_stats(put, runs, &sp);
    bl_stats(down, runs, &sd);
    bl_stats(hash_ms, runs, &sh);
    bl_stats(commit_ms, runs, &sc);
    bl_stats(down_cpu, runs, &su_cpu);
    printf("{\"bench\":\"blob\",\"size_bytes\":%llu,\"runs\":%llu,\"upload_mb_per_s\":%.1f,"
           "\"upload_min_mb_per_s\":%.1f,\"upload_max_mb_per_s\":%.1f,\"put_mb_per_s\":%.1f,"
           "\"client_hash_mb_per_s\":%.1f,\"download_mb_per_s\":%.1f,"
           "\"download_min_mb_per_s\":%.1f,\"download_max_mb_per_s\":%.1f,"
           "\"download_commit_ms\":%.1f,\"download_client_cpu_s\":%.2f}\n",
           (unsigned long long)size, (unsigned long long)runs, su.median, su.min, su.max,
           sp.median, (double)size / 1e3 / sh.median, sd.median, sd.min, sd.max, sc.median,
           su_cpu.median);
    fprintf(stderr,
            "blob: %.0f MB over loopback: upload %.0f MB/s (hash + PUT; PUT alone %.0f), "
            "download %.0f MB/s (verified), median of %llu\n",
            (double)size / 1e6, su.median, sp.median, sd.median, (unsigned long long)runs);
    return 0;
}
