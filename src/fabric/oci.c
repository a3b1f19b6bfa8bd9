/* oci.c - OCI image layout tarball -> verified, cached root file system.
 * See oci.h for the rules. libarchive reads the outer tar and the layers and
 * writes files (with its secure-extraction flags); libsodium checks sha256
 * digests; jansson reads the JSON documents. */
#include "fabric/oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"

#include "base/banned.h"

#define SMALL_BLOB_MAX (256u << 10) /* JSON blobs are kept in memory in pass 1 */
#define SMALL_BLOBS_TOTAL (8u << 20)
#define MAX_BLOBS 4096
#define RM_DEPTH_MAX 512
#define HEX_LEN 64
#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

/* ---- the image config ---------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void cu_oci_config_init(struct cu_oci_config *c)
{
    memset(c, 0, sizeof *c);
}

void cu_oci_config_release(struct cu_oci_config *c)
{
    strv_free(c->env, c->nenv);
    strv_free(c->entrypoint, c->nentrypoint);
    strv_free(c->cmd, c->ncmd);
    free(c->workdir);
    cu_oci_config_init(c);
}

/* An optional array of strings (null = absent) into *out. */
static int get_strv(const json_t *obj, const char *key, char ***out, size_t *n, struct cu_err *e)
{
    json_t *a = json_object_get(obj, key);
    size_t len;

    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || (len = json_array_size(a)) > 4096)
        return cu_err_set(e, -CU_EINVAL, "image config: config.%s: must be a list of strings",
                          key);
    *out = calloc(len + 1, sizeof **out);
    if (!*out)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s) || memchr(json_string_value(s), '\0', json_string_length(s)))
            return cu_err_set(e, -CU_EINVAL,
                              "image config: config.%s[%zu]: must be a string without NUL", key,
                              i);
        if (!((*out)[i] = strdup(json_string_value(s))))
            return cu_err_set(e, -CU_ENOMEM, "out of memory");
        (*n)++;
    }
    return 0;
}

int cu_oci_config_parse(const char *json, size_t n, struct cu_oci_config *c, struct cu_err *e)
{
    json_error_t je;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je), *cfg, *wd;
    int rc = 0;

    if (!root || !json_is_object(root)) {
        rc = cu_err_set(e, -CU_EINVAL, "image config: not a JSON object (%s)",
                        root ? "wrong type" : je.text);
        goto out_free;
    }
    cfg = json_object_get(root, "config");
    if (!cfg || json_is_null(cfg))
        goto out_free; /* a config without runtime defaults is valid */
    if (!json_is_object(cfg)) {
        rc = cu_err_set(e, -CU_EINVAL, "image config: config: must be an object");
        goto out_free;
    }
    if ((rc = get_strv(cfg, "Env", &c->env, &c->nenv, e)) != 0 ||
        (rc = get_strv(cfg, "Entrypoint", &c->entrypoint, &c->nentrypoint, e)) != 0 ||
        (rc = get_strv(cfg, "Cmd", &c->cmd, &c->ncmd, e)) != 0)
        goto out_free;
    for (size_t i = 0; i < c->nenv; i++) {
        const char *eq = strchr(c->env[i], '=');
        if (!eq || eq == c->env[i]) {
            rc = cu_err_set(e, -CU_EINVAL, "image config: config.Env[%zu]: '%.80s' is not K=V",
                            i, c->env[i]);
            goto out_free;
        }
    }
    wd = json_object_get(cfg, "WorkingDir");
    if (wd && json_is_string(wd) && json_string_length(wd) > 0) {
        if (json_string_value(wd)[0] != '/') {
            rc = cu_err_set(e, -CU_EINVAL,
                            "image config: config.WorkingDir: '%.80s' must be absolute",
                            json_string_value(wd));
            goto out_free;
        }
        if (!(c->workdir = strdup(json_string_value(wd))))
            rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
    }
out_free:
    json_decref(root);
    if (rc)
        cu_oci_config_release(c);
    return rc;
}

void cu_oci_image_init(struct cu_oci_image *im)
{
    memset(im, 0, sizeof *im);
    cu_oci_config_init(&im->config);
}

void cu_oci_image_release(struct cu_oci_image *im)
{
    cu_oci_config_release(&im->config);
    cu_oci_image_init(im);
}

/* ---- names and digests --------------------------------------------------- */

static bool is_hex64(const char *s)
{
    for (int i = 0; i < HEX_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[HEX_LEN] == '\0';
}

/* "sha256:HEX" -> HEX (pointer into d), or NULL when not that form. */
static const char *digest_hex(const char *d)
{
    if (!d || strncmp(d, "sha256:", 7) != 0 || !is_hex64(d + 7))
        return NULL;
    return d + 7;
}

/* Strips leading "./" and "/" runs' absence check: returns the name
 * without "./" prefixes and without a trailing '/', into out. */
static void strip_dot_slash(const char *in, char *out, size_t n)
{
    size_t len;

    while (in[0] == '.' && in[1] == '/')
        in += 2;
    cu_snprintf(out, n, "%s", in);
    len = strlen(out);
    while (len > 0 && out[len - 1] == '/')
        out[--len] = '\0';
}

/* Why a layer entry name is refused, or NULL. */
static const char *name_problem(const char *name)
{
    if (name[0] == '/')
        return "is an absolute path";
    for (const char *p = name; *p;) {
        size_t c = strcspn(p, "/");
        if (c == 2 && p[0] == '.' && p[1] == '.')
            return "has a '..' component";
        p += c;
        while (*p == '/')
            p++;
    }
    return NULL;
}

/* True if the relative symlink target, seen from the directory of name,
 * climbs above the root. Absolute targets are not judged here. */
static bool symlink_escapes(const char *name, const char *target)
{
    long depth = 0;

    for (const char *p = name; *p;) { /* components of name's directory */
        size_t c = strcspn(p, "/");
        if (p[c] == '\0')
            break;
        if (!(c == 1 && p[0] == '.'))
            depth++;
        p += c + 1;
        while (*p == '/')
            p++;
    }
    for (const char *p = target; *p;) {
        size_t c = strcspn(p, "/");
        if (c == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0)
                return true;
        } else if (c > 0 && !(c == 1 && p[0] == '.')) {
            depth++;
        }
        p += c;
        while (*p == '/')
            p++;
    }
    return false;
}

/* ---- pass 1: the outer tar's small documents ----------------------------- */

struct small_blob {
    char hex[HEX_LEN + 1];
    char *data;
    size_t len;
};

struct layout {
    char *index;                /* index.json */
    size_t index_len;
    bool have_layout;           /* oci-layout seen */
    struct small_blob *small;   /* verified small blobs */
    size_t nsmall;
    size_t small_total;
};

static void layout_release(struct layout *l)
{
    free(l->index);
    for (size_t i = 0; i < l->nsmall; i++)
        free(l->small[i].data);
    free(l->small);
    memset(l, 0, sizeof *l);
}

static struct archive *open_tar(const char *path, struct cu_err *e, int *rc)
{
    struct archive *a = archive_read_new();

    if (!a) {
        *rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        return NULL;
    }
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        *rc = cu_err_set(e, -CU_EINVAL, "'%.200s': not a readable tar archive: %s", path,
                         archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    *rc = 0;
    return a;
}

/* Reads the current entry (at most max bytes) into a malloc'ed buffer. */
static int read_entry(struct archive *a, const char *what, size_t max, char **out, size_t *n,
                      struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(max);
    char chunk[65536];
    la_ssize_t r;

    while ((r = archive_read_data(a, chunk, sizeof chunk)) > 0) {
        if (cu_buf_append(&b, chunk, (size_t)r) != 0) {
            cu_buf_release(&b);
            return cu_err_set(e, -CU_ETOOBIG, "%s: larger than %zu bytes", what, max);
        }
    }
    if (r < 0) {
        cu_buf_release(&b);
        return cu_err_set(e, -CU_EINVAL, "%s: cannot read: %s", what, archive_error_string(a));
    }
    if (cu_buf_append(&b, "", 1) != 0) { /* NUL for the JSON parser's sake */
        cu_buf_release(&b);
        return cu_err_set(e, -CU_ETOOBIG, "%s: larger than %zu bytes", what, max);
    }
    *n = b.len - 1;
    *out = b.data; /* ownership moves to the caller */
    return 0;
}

/* Pass 1 over the image tarball: index.json, oci-layout and the small
 * blobs (manifests, indexes, configs), each checked against its digest. */
static int read_layout(const char *tar, struct layout *l, struct cu_err *e)
{
    struct archive_entry *ent;
    struct archive *a;
    char name[CU_PATH_MAX];
    int r, rc;

    if (!(a = open_tar(tar, e, &rc)))
        return rc;
    while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *hex;
        strip_dot_slash(archive_entry_pathname(ent) ? archive_entry_pathname(ent) : "", name,
                        sizeof name);
        if (strcmp(name, "index.json") == 0) {
            free(l->index);
            l->index = NULL;
            if ((rc = read_entry(a, "index.json", CU_OCI_MAX_JSON, &l->index, &l->index_len, e)))
                goto out_free;
        } else if (strcmp(name, "oci-layout") == 0) {
            l->have_layout = true;
        } else if (strncmp(name, "blobs/sha256/", 13) == 0 && is_hex64(name + 13) &&
                   archive_entry_filetype(ent) == AE_IFREG &&
                   archive_entry_size(ent) <= (la_int64_t)SMALL_BLOB_MAX &&
                   l->small_total < SMALL_BLOBS_TOTAL && l->nsmall < MAX_BLOBS) {
            struct small_blob *sb;
            unsigned char d[crypto_hash_sha256_BYTES];
            char dhex[HEX_LEN + 1];
            void *p = realloc(l->small, (l->nsmall + 1) * sizeof *l->small);
            if (!p) {
                rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
                goto out_free;
            }
            l->small = p;
            hex = name + 13;
            sb = &l->small[l->nsmall];
            memset(sb, 0, sizeof *sb);
            memcpy(sb->hex, hex, HEX_LEN + 1);
            if ((rc = read_entry(a, name, SMALL_BLOB_MAX, &sb->data, &sb->len, e)))
                goto out_free;
            l->nsmall++;
            l->small_total += sb->len;
            crypto_hash_sha256(d, (const unsigned char *)sb->data, sb->len);
            cu_hex_encode(d, sizeof d, dhex);
            if (strcmp(dhex, hex) != 0) {
                rc = cu_err_set(e, -CU_ECORRUPT,
                                "blob %.16s...: content does not match its sha256 name", hex);
                goto out_free;
            }
        }
    }
    if (r != ARCHIVE_EOF) {
        rc = cu_err_set(e, -CU_EINVAL, "image tarball: %s", archive_error_string(a));
        goto out_free;
    }
    if (!l->have_layout)
        rc = cu_err_set(e, -CU_EINVAL, "image tarball: no oci-layout file (not an OCI image "
                                       "layout; save it with skopeo ... oci-archive:FILE)");
    else if (!l->index)
        rc = cu_err_set(e, -CU_EINVAL, "image tarball: no index.json");
out_free:
    archive_read_free(a);
    return rc;
}

static const struct small_blob *find_small(const struct layout *l, const char *hex)
{
    for (size_t i = 0; i < l->nsmall; i++)
        if (strcmp(l->small[i].hex, hex) == 0)
            return &l->small[i];
    return NULL;
}

/* The architecture name OCI uses for this machine. */
static const char *oci_arch(void)
{
    static const struct {
        const char *uname, *oci;
    } map[] = {{"x86_64", "amd64"}, {"aarch64", "arm64"}, {"armv7l", "arm"},
               {"i686", "386"},     {"ppc64le", "ppc64le"}, {"s390x", "s390x"},
               {"riscv64", "riscv64"}};
    static struct utsname u;

    if (uname(&u) != 0)
        return "amd64";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(u.machine, map[i].uname) == 0)
            return map[i].oci;
    return u.machine;
}

/* Picks the manifest descriptor of an index document: the only one, or
 * the one for linux/this architecture. Copies its digest into out. */
static int pick_manifest(const char *doc, size_t n, const char *what, char *out, size_t outn,
                         bool *is_index, struct cu_err *e)
{
    json_error_t je;
    json_t *root = json_loadb(doc, n, JSON_REJECT_DUPLICATES, &je), *ms, *m, *pick = NULL;
    size_t i;
    int rc = 0;

    if (!root || !json_is_object(root) ||
        !json_is_array(ms = json_object_get(root, "manifests")) || json_array_size(ms) == 0) {
        rc = cu_err_set(e, -CU_EINVAL, "%s: must be a JSON object with a non-empty "
                                       "\"manifests\" list", what);
        goto out_free;
    }
    if (json_array_size(ms) == 1) {
        pick = json_array_get(ms, 0);
    } else {
        json_array_foreach(ms, i, m)
        {
            json_t *p = json_object_get(m, "platform");
            const char *os = json_string_value(json_object_get(p, "os"));
            const char *arch = json_string_value(json_object_get(p, "architecture"));
            if (os && arch && strcmp(os, "linux") == 0 && strcmp(arch, oci_arch()) == 0) {
                pick = m;
                break;
            }
        }
        if (!pick) {
            rc = cu_err_set(e, -CU_EUNSUPPORTED, "%s: %zu manifests and none for linux/%s",
                            what, json_array_size(ms), oci_arch());
            goto out_free;
        }
    }
    {
        const char *d = json_string_value(json_object_get(pick, "digest"));
        const char *mt = json_string_value(json_object_get(pick, "mediaType"));
        if (!digest_hex(d)) {
            rc = cu_err_set(e, -CU_EINVAL, "%s: manifests[].digest: '%.80s' is not sha256:HEX64",
                            what, d ? d : "");
            goto out_free;
        }
        cu_snprintf(out, outn, "%s", d);
        *is_index = mt && (strcmp(mt, MT_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0);
    }
out_free:
    json_decref(root);
    return rc;
}

/* The manifest's config digest and layer digests. */
struct manifest {
    char config[HEX_LEN + 1];
    char (*layers)[HEX_LEN + 1];
    size_t nlayers;
};

static int parse_manifest(const char *doc, size_t n, struct manifest *m, struct cu_err *e)
{
    json_error_t je;
    json_t *root = json_loadb(doc, n, JSON_REJECT_DUPLICATES, &je), *ls, *l;
    const char *hex;
    size_t i;
    int rc = 0;

    if (!root || !json_is_object(root)) {
        rc = cu_err_set(e, -CU_EINVAL, "manifest: not a JSON object");
        goto out_free;
    }
    hex = digest_hex(json_string_value(json_object_get(json_object_get(root, "config"),
                                                       "digest")));
    if (!hex) {
        rc = cu_err_set(e, -CU_EINVAL, "manifest: config.digest: missing or not sha256:HEX64");
        goto out_free;
    }
    memcpy(m->config, hex, HEX_LEN + 1);
    ls = json_object_get(root, "layers");
    if (!json_is_array(ls) || json_array_size(ls) > CU_OCI_MAX_LAYERS) {
        rc = cu_err_set(e, -CU_EINVAL, "manifest: layers: must be a list of at most %d",
                        CU_OCI_MAX_LAYERS);
        goto out_free;
    }
    m->layers = calloc(json_array_size(ls) + 1, sizeof *m->layers);
    if (!m->layers) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_free;
    }
    json_array_foreach(ls, i, l)
    {
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        hex = digest_hex(json_string_value(json_object_get(l, "digest")));
        if (!hex) {
            rc = cu_err_set(e, -CU_EINVAL, "manifest: layers[%zu].digest: not sha256:HEX64", i);
            goto out_free;
        }
        if (mt && strstr(mt, "nondistributable") == NULL && strstr(mt, "tar") == NULL) {
            rc = cu_err_set(e, -CU_EUNSUPPORTED, "manifest: layers[%zu].mediaType: '%.80s' is "
                            "not a tar layer", i, mt);
            goto out_free;
        }
        memcpy(m->layers[m->nlayers++], hex, HEX_LEN + 1);
    }
out_free:
    json_decref(root);
    return rc;
}

/* Resolves index.json (and one nested index) to the manifest digest. */
static int resolve_manifest(const struct layout *l, char *digest, size_t n, struct cu_err *e)
{
    bool is_index = false;
    const struct small_blob *sb;
    int rc = pick_manifest(l->index, l->index_len, "index.json", digest, n, &is_index, e);

    if (rc || !is_index)
        return rc;
    sb = find_small(l, digest_hex(digest));
    if (!sb)
        return cu_err_set(e, -CU_EINVAL, "index.json names %.19s..., which is not in the tarball",
                          digest);
    rc = pick_manifest(sb->data, sb->len, "nested image index", digest, n, &is_index, e);
    if (rc == 0 && is_index)
        rc = cu_err_set(e, -CU_EUNSUPPORTED, "image indexes nested more than one level deep");
    return rc;
}

/* ---- pass 2: the layer blobs into files ---------------------------------- */

static bool wanted(const struct manifest *m, const char *hex)
{
    for (size_t i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i], hex) == 0)
            return true;
    return false;
}

/* Copies every layer blob of m out of the tarball into dir/HEX, checking
 * its sha256 on the way. */
static int extract_layers(const char *tar, const struct manifest *m, const char *dir,
                          struct cu_err *e)
{
    struct archive_entry *ent;
    struct archive *a;
    char name[CU_PATH_MAX], path[CU_PATH_MAX];
    int r, rc;

    if (!(a = open_tar(tar, e, &rc)))
        return rc;
    while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        crypto_hash_sha256_state st;
        unsigned char d[crypto_hash_sha256_BYTES], buf[65536];
        char dhex[HEX_LEN + 1];
        la_ssize_t got;
        int fd;

        strip_dot_slash(archive_entry_pathname(ent) ? archive_entry_pathname(ent) : "", name,
                        sizeof name);
        if (strncmp(name, "blobs/sha256/", 13) != 0 || !is_hex64(name + 13) ||
            !wanted(m, name + 13) || archive_entry_filetype(ent) != AE_IFREG)
            continue;
        if (cu_path_join(path, sizeof path, dir, name + 13) != 0) {
            rc = cu_err_set(e, -CU_ETOOBIG, "cache path too long");
            goto out_free;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            rc = cu_err_set(e, -CU_EIO, "%s: %s", path, strerror(errno));
            goto out_free;
        }
        crypto_hash_sha256_init(&st);
        while ((got = archive_read_data(a, buf, sizeof buf)) > 0) {
            crypto_hash_sha256_update(&st, buf, (unsigned long long)got);
            if (write(fd, buf, (size_t)got) != got) {
                close(fd);
                rc = cu_err_set(e, -CU_EIO, "%s: write failed: %s", path, strerror(errno));
                goto out_free;
            }
        }
        close(fd);
        if (got < 0) {
            rc = cu_err_set(e, -CU_EINVAL, "%s: %s", name, archive_error_string(a));
            goto out_free;
        }
        crypto_hash_sha256_final(&st, d);
        cu_hex_encode(d, sizeof d, dhex);
        if (strcmp(dhex, name + 13) != 0) {
            rc = cu_err_set(e, -CU_ECORRUPT,
                            "layer %.16s...: content does not match its sha256 name", name + 13);
            goto out_free;
        }
    }
    if (r != ARCHIVE_EOF)
        rc = cu_err_set(e, -CU_EINVAL, "image tarball: %s", archive_error_string(a));
    for (size_t i = 0; rc == 0 && i < m->nlayers; i++) {
        if (cu_path_join(path, sizeof path, dir, m->layers[i]) != 0 || access(path, R_OK) != 0)
            rc = cu_err_set(e, -CU_EINVAL, "manifest: layers[%zu] (%.16s...) is not in the "
                            "tarball", i, m->layers[i]);
    }
out_free:
    archive_read_free(a);
    return rc;
}

/* ---- applying a layer ---------------------------------------------------- */

/* Removes name under dirfd and everything below it, never following a
 * symlink. depth bounds the recursion. */
static int rm_at(int at, const char *name, int depth)
{
    struct stat st;
    struct dirent *de;
    DIR *d;
    int fd, rc = 0;

    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -CU_EIO;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(at, name, 0) == 0 ? 0 : -CU_EIO;
    if (depth > RM_DEPTH_MAX)
        return -CU_ETOOBIG;
    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || !(d = fdopendir(fd))) {
        if (fd >= 0)
            close(fd);
        return -CU_EIO;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        rc = rm_at(dirfd(d), de->d_name, depth + 1);
    }
    closedir(d);
    if (rc == 0 && unlinkat(at, name, AT_REMOVEDIR) != 0)
        rc = -CU_EIO;
    return rc;
}

/* Opens directory rel (relative, checked) under rootfd, one component at a
 * time with O_NOFOLLOW, so a symlink planted by a lower layer cannot send
 * a whiteout outside the root. -CU_ENOTFOUND when a component is missing
 * (nothing to delete), -CU_EPERM when one is a symlink or not a dir. */
static int open_dir_under(int rootfd, const char *rel, int *out)
{
    char comp[NAME_MAX + 1];
    int fd = dup(rootfd);

    if (fd < 0)
        return -CU_EIO;
    for (const char *p = rel; *p;) {
        size_t c = strcspn(p, "/");
        int next;
        if (c > NAME_MAX) {
            close(fd);
            return -CU_EINVAL;
        }
        if (c > 0 && !(c == 1 && p[0] == '.')) {
            memcpy(comp, p, c);
            comp[c] = '\0';
            next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0) {
                int err = errno;
                close(fd);
                return err == ENOENT ? -CU_ENOTFOUND : -CU_EPERM;
            }
            close(fd);
            fd = next;
        }
        p += c;
        while (*p == '/')
            p++;
    }
    *out = fd;
    return 0;
}

static int open_layer(const char *path, struct archive **out, struct cu_err *e)
{
    struct archive *a = archive_read_new();

    if (!a)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        int rc = cu_err_set(e, -CU_EINVAL, "layer: not a tar archive: %s",
                            archive_error_string(a));
        archive_read_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* Pass A of a layer: applies its whiteouts to what the lower layers left. */
static int apply_whiteouts(const char *layer, int rootfd, size_t li, struct cu_err *e)
{
    struct archive_entry *ent;
    struct archive *a;
    char name[CU_PATH_MAX], dir[CU_PATH_MAX];
    unsigned long n = 0;
    int r, rc;

    if ((rc = open_layer(layer, &a, e)) != 0)
        return rc;
    while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *base, *why;
        int dfd;

        if (++n > CU_OCI_MAX_ENTRIES) {
            rc = cu_err_set(e, -CU_ETOOBIG, "layers[%zu]: more than %d entries", li,
                            CU_OCI_MAX_ENTRIES);
            break;
        }
        strip_dot_slash(archive_entry_pathname(ent) ? archive_entry_pathname(ent) : "", name,
                        sizeof name);
        base = strrchr(name, '/');
        base = base ? base + 1 : name;
        if (strncmp(base, ".wh.", 4) != 0)
            continue;
        if ((why = name_problem(name)) != NULL) {
            rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: whiteout '%.200s' %s", li, name, why);
            break;
        }
        cu_snprintf(dir, sizeof dir, "%.*s", (int)(base - name), name);
        rc = open_dir_under(rootfd, dir, &dfd);
        if (rc == -CU_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc) {
            rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: whiteout '%.200s' goes through a "
                            "symlink or a non-directory", li, name);
            break;
        }
        if (strcmp(base, ".wh..wh..opq") == 0) {
            /* Opaque: the directory keeps only what this layer puts in it. */
            DIR *d = fdopendir(dup(dfd));
            struct dirent *de;
            while (rc == 0 && d && (de = readdir(d)) != NULL)
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                    rc = rm_at(dfd, de->d_name, 0);
            if (d)
                closedir(d);
            else
                rc = -CU_EIO;
        } else if (strncmp(base, ".wh..wh.", 8) != 0) { /* other .wh..wh.* are aufs notes */
            const char *victim = base + 4;
            bool dots = strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0;
            rc = victim[0] && !dots ? rm_at(dfd, victim, 0) : 0;
        }
        close(dfd);
        if (rc) {
            rc = cu_err_set(e, rc, "layers[%zu]: applying whiteout '%.200s': %s", li, name,
                            cu_strerror(rc));
            break;
        }
    }
    if (rc == 0 && r != ARCHIVE_EOF)
        rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: %s", li, archive_error_string(a));
    archive_read_free(a);
    return rc;
}

/* Pass B of a layer: writes its files (not its whiteouts) under root. */
static int apply_files(const char *layer, const char *root, size_t li, uint64_t max_bytes,
                       uint64_t *total, struct cu_err *e)
{
    struct archive_entry *ent;
    struct archive *a, *w;
    char name[CU_PATH_MAX], full[CU_PATH_MAX], link[CU_PATH_MAX];
    unsigned long skipped = 0;
    int r, rc;

    if ((rc = open_layer(layer, &a, e)) != 0)
        return rc;
    if (!(w = archive_write_disk_new())) {
        archive_read_free(a);
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    }
    /* No OWNER/XATTR/ACL/FFLAGS: files belong to the provider user and no
     * file capability or immutable flag comes from the image. */
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT);
    while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *base, *why, *hl, *sl;
        mode_t type = archive_entry_filetype(ent);

        strip_dot_slash(archive_entry_pathname(ent) ? archive_entry_pathname(ent) : "", name,
                        sizeof name);
        base = strrchr(name, '/');
        base = base ? base + 1 : name;
        if (name[0] == '\0' || strcmp(name, ".") == 0 || strncmp(base, ".wh.", 4) == 0)
            continue;
        if ((why = name_problem(name)) != NULL) {
            rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: entry '%.200s' %s", li, name, why);
            break;
        }
        if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK) {
            skipped++;
            continue;
        }
        sl = archive_entry_symlink(ent);
        if (type == AE_IFLNK && sl && sl[0] != '/' && symlink_escapes(name, sl)) {
            rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: symlink '%.200s' -> '%.200s' points "
                            "outside the image root", li, name, sl);
            break;
        }
        hl = archive_entry_hardlink(ent);
        if (hl) {
            char hname[CU_PATH_MAX];
            strip_dot_slash(hl, hname, sizeof hname);
            if (hname[0] == '\0' || (why = name_problem(hname)) != NULL) {
                rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: hard link '%.200s' -> '%.200s' %s",
                                li, name, hl, why ? why : "is empty");
                break;
            }
            if (cu_path_join(link, sizeof link, root, hname) != 0) {
                rc = cu_err_set(e, -CU_ETOOBIG, "layers[%zu]: path too long", li);
                break;
            }
            archive_entry_set_hardlink(ent, link);
        }
        if (type == AE_IFREG && archive_entry_size(ent) > 0) {
            if (cu_add_u64(*total, (uint64_t)archive_entry_size(ent), total) != 0 ||
                *total > max_bytes) {
                rc = cu_err_set(e, -CU_ETOOBIG, "image: unpacks to more than %llu bytes",
                                (unsigned long long)max_bytes);
                break;
            }
        }
        if (cu_path_join(full, sizeof full, root, name) != 0) {
            rc = cu_err_set(e, -CU_ETOOBIG, "layers[%zu]: path too long", li);
            break;
        }
        archive_entry_set_pathname(ent, full);
        archive_entry_set_perm(ent, archive_entry_perm(ent) & 01777); /* no setuid/setgid */
        if (archive_write_header(w, ent) != ARCHIVE_OK) {
            rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: '%.200s': %s", li, name,
                            archive_error_string(w));
            break;
        }
        if (type == AE_IFREG && !hl) {
            const void *buf;
            size_t len;
            la_int64_t off;
            while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
                if (archive_write_data_block(w, buf, len, off) != ARCHIVE_OK) {
                    r = ARCHIVE_FATAL;
                    break;
                }
            }
            if (r != ARCHIVE_EOF) {
                rc = cu_err_set(e, -CU_EIO, "layers[%zu]: '%.200s': %s", li, name,
                                archive_error_string(r == ARCHIVE_FATAL ? w : a));
                break;
            }
        }
        if (archive_write_finish_entry(w) != ARCHIVE_OK) {
            rc = cu_err_set(e, -CU_EIO, "layers[%zu]: '%.200s': %s", li, name,
                            archive_error_string(w));
            break;
        }
    }
    if (rc == 0 && r != ARCHIVE_EOF)
        rc = cu_err_set(e, -CU_EINVAL, "layers[%zu]: %s", li, archive_error_string(a));
    if (archive_write_close(w) != ARCHIVE_OK && rc == 0)
        rc = cu_err_set(e, -CU_EIO, "layers[%zu]: %s", li, archive_error_string(w));
    archive_write_free(w);
    archive_read_free(a);
    if (skipped)
        cu_info("oci: layers[%zu]: %lu device node(s)/FIFO(s) skipped", li, skipped);
    return rc;
}

/* ---- the cache ----------------------------------------------------------- */

static int load_config(const char *dir, struct cu_oci_config *c, struct cu_err *e)
{
    struct cu_buf b = CU_BUF_INIT(CU_OCI_MAX_JSON);
    char path[CU_PATH_MAX];
    int rc;

    if (cu_path_join(path, sizeof path, dir, "config.json") != 0)
        return cu_err_set(e, -CU_ETOOBIG, "cache path too long");
    if ((rc = cu_read_file(path, &b)) != 0)
        return cu_err_set(e, rc, "%s: %s", path, cu_strerror(rc));
    rc = cu_oci_config_parse(b.data ? b.data : "", b.len, c, e);
    cu_buf_release(&b);
    return rc;
}

/* Unpacks everything into tmp (a fresh directory): layers/, rootfs/,
 * config.json. */
static int unpack(const char *tar, const struct layout *l, const struct manifest *m,
                  const char *tmp, uint64_t max_bytes, struct cu_err *e)
{
    static const char *const mounts[] = {"work", "out", "in", "proc", "dev", "tmp"};
    const struct small_blob *cfg = find_small(l, m->config);
    char layers[CU_PATH_MAX], root[CU_PATH_MAX], path[CU_PATH_MAX];
    uint64_t total = 0;
    int rootfd, rc;

    if (!cfg)
        return cu_err_set(e, -CU_EINVAL, "manifest: config %.16s... is not in the tarball",
                          m->config);
    if (cu_path_join(layers, sizeof layers, tmp, "layers") != 0 ||
        cu_path_join(root, sizeof root, tmp, "rootfs") != 0 ||
        cu_path_join(path, sizeof path, tmp, "config.json") != 0)
        return cu_err_set(e, -CU_ETOOBIG, "cache path too long");
    if (mkdir(layers, 0700) != 0 || mkdir(root, 0755) != 0 || chmod(root, 0755) != 0)
        return cu_err_set(e, -CU_EIO, "%s: %s", tmp, strerror(errno));
    if (cu_write_file_atomic(path, cfg->data, cfg->len, 0644) != 0)
        return cu_err_set(e, -CU_EIO, "%s: cannot write", path);
    if ((rc = extract_layers(tar, m, layers, e)) != 0)
        return rc;
    rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return cu_err_set(e, -CU_EIO, "%s: %s", root, strerror(errno));
    for (size_t i = 0; rc == 0 && i < m->nlayers; i++) {
        if (cu_path_join(path, sizeof path, layers, m->layers[i]) != 0)
            rc = cu_err_set(e, -CU_ETOOBIG, "cache path too long");
        else if ((rc = apply_whiteouts(path, rootfd, i, e)) == 0)
            rc = apply_files(path, root, i, max_bytes ? max_bytes : CU_OCI_DEFAULT_MAX_BYTES,
                             &total, e);
    }
    /* Mount points for the sandbox: bwrap cannot create them in a
     * read-only root. A symlink left there by the image is replaced. */
    for (size_t i = 0; rc == 0 && i < sizeof mounts / sizeof mounts[0]; i++) {
        struct stat st;
        if (fstatat(rootfd, mounts[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
            (void)rm_at(rootfd, mounts[i], 0);
        if (mkdirat(rootfd, mounts[i], 0755) != 0 && errno != EEXIST)
            rc = cu_err_set(e, -CU_EIO, "rootfs/%s: %s", mounts[i], strerror(errno));
    }
    close(rootfd);
    if (rc == 0)
        rc = cu_rm_rf(layers) == 0 ? 0 : cu_err_set(e, -CU_EIO, "%s: cannot remove", layers);
    return rc;
}

int cu_oci_prepare(const char *tar_path, const char *cache_dir, uint64_t max_bytes,
                   struct cu_oci_image *im, struct cu_err *e)
{
    struct layout l;
    struct manifest m;
    const struct small_blob *mb;
    char dir[CU_PATH_MAX], tmp[CU_PATH_MAX], real[PATH_MAX];
    struct stat st;
    int rc;

    memset(&l, 0, sizeof l);
    memset(&m, 0, sizeof m);
    if ((rc = read_layout(tar_path, &l, e)) != 0)
        goto out_free;
    if ((rc = resolve_manifest(&l, im->digest, sizeof im->digest, e)) != 0)
        goto out_free;
    if (cu_mkdir_p(cache_dir, 0711) != 0 || !realpath(cache_dir, real)) {
        rc = cu_err_set(e, -CU_EIO, "%s: cannot create the image cache", cache_dir);
        goto out_free;
    }
    if (cu_path_join(dir, sizeof dir, real, digest_hex(im->digest)) != 0 ||
        cu_path_join(im->rootfs, sizeof im->rootfs, dir, "rootfs") != 0) {
        rc = cu_err_set(e, -CU_ETOOBIG, "%s: path too long", cache_dir);
        goto out_free;
    }
    if (stat(im->rootfs, &st) == 0 && S_ISDIR(st.st_mode)) {
        im->cached = true;
        rc = load_config(dir, &im->config, e);
        goto out_free;
    }

    mb = find_small(&l, digest_hex(im->digest));
    if (!mb) {
        rc = cu_err_set(e, -CU_EINVAL, "index.json names manifest %.19s..., which is not in "
                        "the tarball", im->digest);
        goto out_free;
    }
    if ((rc = parse_manifest(mb->data, mb->len, &m, e)) != 0)
        goto out_free;
    if (cu_snprintf(tmp, sizeof tmp, "%s/.tmp-%.12s-XXXXXX", real, digest_hex(im->digest)) ||
        !mkdtemp(tmp)) {
        rc = cu_err_set(e, -CU_EIO, "%s: cannot make a temporary directory", cache_dir);
        goto out_free;
    }
    (void)chmod(tmp, 0711); /* the sandbox user must reach rootfs/ */
    rc = unpack(tar_path, &l, &m, tmp, max_bytes, e);
    if (rc == 0 && rename(tmp, dir) != 0) {
        /* Another task unpacked the same manifest first: use its copy. */
        if (errno != EEXIST && errno != ENOTEMPTY)
            rc = cu_err_set(e, -CU_EIO, "%s: rename: %s", dir, strerror(errno));
    }
    if (rc == 0)
        (void)cu_fsync_dir(real);
    if (rc != 0 || access(tmp, F_OK) == 0)
        (void)cu_rm_rf(tmp);
    if (rc == 0)
        rc = load_config(dir, &im->config, e);
out_free:
    free(m.layers);
    layout_release(&l);
    return rc;
}
