/* oci.c - OCI image unpack time (issue 5's figure): the test image of
 * tests/e2e/oci.sh (busybox-static in one layer plus a whiteout layer),
 * built here with libarchive, prepared by cu_oci_prepare into a fresh cache
 * (cold: verify digests, apply layers, rename) and again into the filled
 * cache (cached: read index.json, find the rootfs, read the config).
 *
 *   build/bench/oci [--runs N] [--busybox PATH]     (default 20, /bin/busybox)
 *
 * JSON: {"bench":"oci","runs":N,"image_bytes":B,"oci_unpack_cold_ms":median,
 *        "oci_unpack_cold_p90_ms":..,"oci_unpack_cached_ms":median,
 *        "oci_unpack_cached_p90_ms":..} */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"
#include "benchlib.h"
#include "fabric/oci.h"

#include "base/banned.h"

struct mem {
    const char *name;
    const char *data;
    size_t len;
    char type; /* 'f' file, 'l' symlink (data = target) */
};

/* A tar of ents into a malloc'ed buffer. */
static void tar_mem(const struct mem *m, size_t n, char **out, size_t *len)
{
    size_t cap = 16 << 20, used = 0;
    char *buf = malloc(cap);
    struct archive *w = archive_write_new();

    if (!buf || !w)
        bl_die("out of memory");
    archive_write_set_format_pax_restricted(w);
    if (archive_write_open_memory(w, buf, cap, &used) != ARCHIVE_OK)
        bl_die("archive: %s", archive_error_string(w));
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_perm(e, 0755);
        if (m[i].type == 'l') {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, m[i].data);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)m[i].len);
        }
        if (archive_write_header(w, e) != ARCHIVE_OK)
            bl_die("archive: %s", archive_error_string(w));
        if (m[i].type == 'f')
            archive_write_data(w, m[i].data, m[i].len);
        archive_entry_free(e);
    }
    if (archive_write_close(w) != ARCHIVE_OK)
        bl_die("archive: %s", archive_error_string(w));
    archive_write_free(w);
    *out = buf;
    *len = used;
}

static void hex_of(const char *p, size_t n, char hex[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)p, n);
    cu_hex_encode(d, sizeof d, hex);
}

/* Writes the test image's layout tarball to path; returns its size. */
static uint64_t build_image(const char *busybox, const char *path)
{
    static const char cfg[] = "{\"config\":{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"sh\"]}}";
    struct cu_buf bb = CU_BUF_INIT(64 << 20);
    struct mem l1[] = {{"bin/busybox", NULL, 0, 'f'}, {"bin/sh", "busybox", 0, 'l'},
                       {"bin/cat", "busybox", 0, 'l'},
                       {"etc/os-release", "ID=cumulus-oci-test\n", 20, 'f'},
                       {"etc/gone.txt", "x\n", 2, 'f'}};
    struct mem l2[] = {{"etc/.wh.gone.txt", "", 0, 'f'}, {"etc/added.txt", "y\n", 2, 'f'}};
    char *t1, *t2, *outer, h1[65], h2[65], hc[65], hm[65], man[1024], idx[512], names[5][96];
    size_t n1, n2, nouter;
    struct mem top[6];

    if (cu_read_file(busybox, &bb) != 0)
        bl_die("cannot read %s (install busybox-static)", busybox);
    l1[0].data = bb.data;
    l1[0].len = bb.len;
    tar_mem(l1, 5, &t1, &n1);
    tar_mem(l2, 2, &t2, &n2);
    hex_of(t1, n1, h1);
    hex_of(t2, n2, h2);
    hex_of(cfg, strlen(cfg), hc);
    snprintf(man, sizeof man,
             "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\",\"size\":%zu},\"layers\":["
             "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:%s\","
             "\"size\":%zu},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
             "\"digest\":\"sha256:%s\",\"size\":%zu}]}",
             hc, strlen(cfg), h1, n1, h2, n2);
    hex_of(man, strlen(man), hm);
    snprintf(idx, sizeof idx, "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:%s\","
             "\"size\":%zu}]}", hm, strlen(man));
    snprintf(names[0], sizeof names[0], "blobs/sha256/%s", h1);
    snprintf(names[1], sizeof names[1], "blobs/sha256/%s", h2);
    snprintf(names[2], sizeof names[2], "blobs/sha256/%s", hc);
    snprintf(names[3], sizeof names[3], "blobs/sha256/%s", hm);
    top[0] = (struct mem){"oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30, 'f'};
    top[1] = (struct mem){"index.json", idx, strlen(idx), 'f'};
    top[2] = (struct mem){names[0], t1, n1, 'f'};
    top[3] = (struct mem){names[1], t2, n2, 'f'};
    top[4] = (struct mem){names[2], cfg, strlen(cfg), 'f'};
    top[5] = (struct mem){names[3], man, strlen(man), 'f'};
    tar_mem(top, 6, &outer, &nouter);
    if (cu_write_file_atomic(path, outer, nouter, 0644) != 0)
        bl_die("cannot write %s", path);
    free(t1);
    free(t2);
    free(outer);
    cu_buf_release(&bb);
    return nouter;
}

static double prepare_once(const char *tar, const char *cache, bool want_cached)
{
    struct cu_oci_image im;
    struct cu_err e = {0};
    double t0, t1;

    cu_oci_image_init(&im);
    t0 = bl_now_ms();
    if (cu_oci_prepare(tar, cache, 0, &im, &e) != 0)
        bl_die("cu_oci_prepare: %s", e.msg);
    t1 = bl_now_ms();
    if (im.cached != want_cached)
        bl_die("expected a %s run", want_cached ? "cached" : "cold");
    cu_oci_image_release(&im);
    return t1 - t0;
}

int main(int argc, char **argv)
{
    uint64_t runs = bl_opt_u64(argc, argv, "--runs", 20);
    const char *busybox = "/bin/busybox";
    char dir[PATH_MAX], tar[PATH_MAX + 16], cache[PATH_MAX + 16];
    double *cold, *warm;
    struct bl_stats sc, sw;
    uint64_t bytes;

    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--busybox") == 0)
            busybox = argv[i + 1];
    bl_init("oci");
    if (runs < 1 || runs > 100000)
        bl_die("--runs must be between 1 and 100000");
    bl_tmpdir(dir, sizeof dir);
    snprintf(tar, sizeof tar, "%s/img.tar", dir);
    bytes = build_image(busybox, tar);
    cold = calloc(runs, sizeof *cold);
    warm = calloc(runs, sizeof *warm);
    if (!cold || !warm)
        bl_die("out of memory");
    for (uint64_t i = 0; i < runs; i++) {
        snprintf(cache, sizeof cache, "%s/cache", dir);
        if (cu_rm_rf(cache) != 0)
            bl_die("cannot empty %s: %s", cache, strerror(errno));
        cold[i] = prepare_once(tar, cache, false);
        warm[i] = prepare_once(tar, cache, true);
    }
    bl_stats(cold, runs, &sc);
    bl_stats(warm, runs, &sw);
    printf("{\"bench\":\"oci\",\"runs\":%llu,\"image_bytes\":%llu,\"oci_unpack_cold_ms\":%.3f,"
           "\"oci_unpack_cold_p90_ms\":%.3f,\"oci_unpack_cached_ms\":%.3f,"
           "\"oci_unpack_cached_p90_ms\":%.3f}\n",
           (unsigned long long)runs, (unsigned long long)bytes, sc.median, sc.p90, sw.median,
           sw.p90);
    fprintf(stderr, "oci: %llu-byte image: unpack cold %.2f ms, cached %.3f ms (medians of %llu)\n",
            (unsigned long long)bytes, sc.median, sw.median, (unsigned long long)runs);
    free(cold);
    free(warm);
    return 0;
}
