/* collect.c - a task's environment, its outputs, and its report body. */
#include "provider/collect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "crypto/merkle.h"

#include "base/banned.h"

void cu_outputs_init(struct cu_outputs *o)
{
    memset(o, 0, sizeof *o);
}

void cu_outputs_release(struct cu_outputs *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].name);
        free(o->v[i].data);
    }
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* ---- output collection -------------------------------------------------- */

struct walk {
    char *const *globs;
    size_t nglobs;
    const struct cu_blobstore *bs;
    uint64_t max_total; /* 0: none */
    uint64_t total;
    uint64_t *inline_room; /* NULL: everything into bs */
    struct cu_outputs *o;
    struct cu_err *e;
};

static bool matches_any(const struct walk *w, const char *rel)
{
    for (size_t i = 0; i < w->nglobs; i++)
        if (cu_spec_glob_match(w->globs[i], rel))
            return true;
    return false;
}

/* Copies the open regular file fd (closed here on every path) into the
 * store, at most `room` bytes; -CU_ETOOBIG past it. */
static int put_fd(const struct cu_blobstore *bs, int fd, uint64_t room, struct cu_hash *h,
                  uint64_t *size)
{
    struct cu_blob_writer w;
    char buf[64 * 1024];
    uint64_t n = 0;
    int rc;

    rc = cu_blob_writer_open(&w, bs, room);
    if (rc)
        goto out_close_fd;
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -CU_EIO;
            goto out_abort;
        }
        if (got == 0)
            break;
        rc = cu_blob_writer_write(&w, buf, (size_t)got);
        if (rc)
            goto out_abort;
        n += (uint64_t)got;
    }
    rc = cu_blob_writer_commit(&w, NULL, h);
    if (rc == 0)
        *size = n;
    goto out_close_fd;

out_abort:
    cu_blob_writer_abort(&w);
out_close_fd:
    close(fd);
    return rc;
}

/* Reads the open regular file fd of st_size bytes into memory when it
 * fits in *inline_room (which shrinks by its size); 1 when it did not fit
 * or grew while being read (fd is rewound: store it instead), 0 with *data
 * (malloc'd; NULL for an empty file), *h and *size set, negative on error.
 * Does not close fd. */
static int take_small(int fd, uint64_t st_size, uint64_t *inline_room, unsigned char **data,
                      struct cu_hash *h, uint64_t *size)
{
    unsigned char *buf;
    size_t got = 0;

    *data = NULL;
    if (!inline_room || st_size > *inline_room)
        return 1;
    /* One byte more than fstat said, to see a file that grew. */
    buf = malloc((size_t)st_size + 1);
    if (!buf)
        return -CU_ENOMEM;
    while (got < (size_t)st_size + 1) {
        ssize_t k = read(fd, buf + got, (size_t)st_size + 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            free(buf);
            return -CU_EIO;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    if (got > st_size) {
        free(buf);
        return lseek(fd, 0, SEEK_SET) == 0 ? 1 : -CU_EIO;
    }
    cu_hash_mem(buf, got, h);
    *size = got;
    *inline_room -= got;
    if (got == 0)
        free(buf); /* the empty blob: every store has it */
    else
        *data = buf;
    return 0;
}

/* The open regular file fd (closed here on every path), at most room
 * bytes (-CU_ETOOBIG past it): in memory when small (take_small), else
 * copied into bs. */
static int take_fd(const struct cu_blobstore *bs, int fd, uint64_t room, uint64_t *inline_room,
                   struct cu_hash *h, uint64_t *size, unsigned char **data)
{
    struct stat st;
    int rc;

    *data = NULL;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -CU_EIO;
    }
    rc = (uint64_t)st.st_size <= room
             ? take_small(fd, (uint64_t)st.st_size, inline_room, data, h, size)
             : 1;
    if (rc <= 0) {
        close(fd);
        return rc;
    }
    return put_fd(bs, fd, room, h, size);
}

int cu_log_collect(const struct cu_blobstore *bs, const char *path, uint64_t *inline_room,
                   struct cu_blobref *ref)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0 && errno == ENOENT)
        return cu_log_none(ref); /* no log: the empty blob */
    memset(ref, 0, sizeof *ref);
    if (fd < 0)
        return -CU_EIO;
    return take_fd(bs, fd, UINT64_MAX, inline_room, &ref->hash, &ref->size, &ref->data);
}

int cu_log_none(struct cu_blobref *ref)
{
    memset(ref, 0, sizeof *ref);
    cu_hash_mem("", 0, &ref->hash);
    return 0;
}

void cu_blobref_release(struct cu_blobref *ref)
{
    free(ref->data);
    ref->data = NULL;
}

/* Takes data (may be NULL) on every path. */
static int outputs_add(struct cu_outputs *o, const char *name, const struct cu_hash *h,
                       uint64_t size, unsigned char *data)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        struct cu_output *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            free(data);
            return -CU_ENOMEM;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n].name = strdup(name);
    if (!o->v[o->n].name) {
        free(data);
        return -CU_ENOMEM;
    }
    o->v[o->n].hash = *h;
    o->v[o->n].size = size;
    o->v[o->n].data = data;
    o->n++;
    return 0;
}

/* One regular file at rel (already known to be S_ISREG by lstat). */
static int walk_file(struct walk *w, int dfd, const char *name, const char *rel)
{
    struct stat st;
    struct cu_hash h;
    uint64_t size = 0, room;
    unsigned char *data = NULL;
    int fd, rc;

    if (!matches_any(w, rel)) {
        cu_debug("outputs: '%s' matches no output glob; skipped", rel);
        return 0;
    }
    if (w->o->n >= CU_OUTPUTS_MAX_FILES)
        return cu_err_set(w->e, -CU_ETOOBIG, "outputs: more than %d files matched",
                          CU_OUTPUTS_MAX_FILES);
    /* O_NOFOLLOW: the name was a regular file at lstat time; if it has been
     * swapped for a symlink since, the open fails rather than follow it.
     * O_NONBLOCK: a swapped-in fifo must not hang the provider. */
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        cu_warn("outputs: cannot open '%s' (%s); skipped", rel, strerror(errno));
        return 0;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        cu_warn("outputs: '%s' is no longer a regular file; skipped", rel);
        return 0;
    }
    room = w->max_total ? w->max_total - w->total : UINT64_MAX;
    rc = take_fd(w->bs, fd, room, w->inline_room, &h, &size, &data);
    if (rc == -CU_ETOOBIG)
        return cu_err_set(w->e, rc, "outputs exceed the output limit of %llu bytes (at '%s')",
                          (unsigned long long)w->max_total, rel);
    if (rc)
        return cu_err_set(w->e, rc, "outputs: cannot store '%s': %s", rel, cu_strerror(rc));
    w->total += size;
    rc = outputs_add(w->o, rel, &h, size, data);
    if (rc)
        return cu_err_set(w->e, rc, "outputs: out of memory");
    return 0;
}

/* Walks the directory open at dfd (taken: closed on every path); rel is its
 * name relative to out/ ("" for out/ itself). */
static int walk_dir(struct walk *w, int dfd, const char *rel, int depth)
{
    DIR *d;
    struct dirent *de;
    int rc = 0;

    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return cu_err_set(w->e, -CU_EIO, "outputs: cannot read directory '%s'",
                          rel[0] ? rel : ".");
    }
    while ((de = readdir(d)) != NULL) {
        char child[CU_OUTPUTS_MAX_NAME];
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (!cu_name_is_safe(de->d_name)) {
            cu_debug("outputs: unsafe name under '%s'; skipped", rel[0] ? rel : ".");
            continue;
        }
        if ((rel[0] ? cu_snprintf(child, sizeof child, "%s/%s", rel, de->d_name)
                    : cu_snprintf(child, sizeof child, "%s", de->d_name)) != 0) {
            cu_debug("outputs: name under '%s' too long; skipped", rel);
            continue;
        }
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* vanished */
        if (S_ISDIR(st.st_mode)) {
            int cfd;
            if (depth + 1 >= CU_OUTPUTS_MAX_DEPTH) {
                cu_debug("outputs: '%s' is nested too deep; skipped", child);
                continue;
            }
            cfd = openat(dirfd(d), de->d_name,
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0)
                continue;
            rc = walk_dir(w, cfd, child, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            rc = walk_file(w, dirfd(d), de->d_name, child);
        } else {
            cu_debug("outputs: '%s' is not a regular file or directory; skipped", child);
        }
        if (rc)
            break;
    }
    closedir(d);
    return rc;
}

static int output_cmp(const void *a, const void *b)
{
    return strcmp(((const struct cu_output *)a)->name, ((const struct cu_output *)b)->name);
}

static int outputs_root(struct cu_outputs *o, struct cu_err *e)
{
    struct cu_merkle_leaf *leaves = NULL;
    int rc;

    if (o->n) {
        leaves = calloc(o->n, sizeof *leaves);
        if (!leaves)
            return cu_err_set(e, -CU_ENOMEM, "outputs: out of memory");
    }
    for (size_t i = 0; i < o->n; i++) {
        leaves[i].name = o->v[i].name;
        leaves[i].hash = o->v[i].hash;
    }
    rc = cu_merkle_root(leaves, o->n, &o->root);
    free(leaves);
    if (rc)
        return cu_err_set(e, rc, "outputs: cannot compute the Merkle root: %s",
                          cu_strerror(rc));
    return 0;
}

int cu_outputs_collect(const char *out_dir, char *const *globs, size_t nglobs,
                       const struct cu_blobstore *bs, uint64_t max_total, uint64_t *inline_room,
                       struct cu_outputs *o, struct cu_err *e)
{
    struct walk w = {.globs = globs, .nglobs = nglobs, .bs = bs, .max_total = max_total,
                     .inline_room = inline_room, .o = o, .e = e};
    int dfd, rc;

    dfd = open(out_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return cu_err_set(e, -CU_EIO, "outputs: cannot open '%s': %s", out_dir,
                          strerror(errno));
    rc = walk_dir(&w, dfd, "", 0);
    if (rc)
        return rc;
    if (o->n > 1)
        qsort(o->v, o->n, sizeof *o->v, output_cmp);
    return outputs_root(o, e);
}

int cu_outputs_none(struct cu_outputs *o, struct cu_err *e)
{
    return outputs_root(o, e);
}

/* ---- environment -------------------------------------------------------- */

static char *kv_new(const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    char *s = malloc(kl + vl + 2);

    if (!s)
        return NULL;
    memcpy(s, k, kl);
    s[kl] = '=';
    memcpy(s + kl + 1, v, vl + 1);
    return s;
}

static const char *const provider_vars[] = {"CUMULUS_TASK_INDEX", "CUMULUS_TASK_COUNT",
                                            "CUMULUS_TASK_ARG",   "CUMULUS_JOB_ID",
                                            "CUMULUS_REPLICA_ID", NULL};

static bool is_provider_var(const char *k)
{
    for (size_t i = 0; provider_vars[i]; i++)
        if (strcmp(provider_vars[i], k) == 0)
            return true;
    return false;
}

char **cu_task_env_build(const struct cu_spec *spec, const char *job, int64_t replica,
                         uint32_t index, uint32_t count, const char *arg)
{
    char num[3][24];
    char **env;
    size_t n = 0;

    env = calloc(spec->nenv + 6, sizeof *env);
    if (!env)
        return NULL;
    (void)cu_snprintf(num[0], sizeof num[0], "%u", index);
    (void)cu_snprintf(num[1], sizeof num[1], "%u", count);
    (void)cu_snprintf(num[2], sizeof num[2], "%lld", (long long)replica);
    if (!(env[n++] = kv_new("CUMULUS_TASK_INDEX", num[0])) ||
        !(env[n++] = kv_new("CUMULUS_TASK_COUNT", num[1])) ||
        !(env[n++] = kv_new("CUMULUS_JOB_ID", job)) ||
        !(env[n++] = kv_new("CUMULUS_REPLICA_ID", num[2])) ||
        (arg && !(env[n++] = kv_new("CUMULUS_TASK_ARG", arg))))
        goto out_free_env;
    for (size_t i = 0; i < spec->nenv; i++) {
        if (is_provider_var(spec->env[i].key))
            continue;
        if (!(env[n++] = kv_new(spec->env[i].key, spec->env[i].value)))
            goto out_free_env;
    }
    return env;

out_free_env:
    cu_task_env_free(env);
    return NULL;
}

void cu_task_env_free(char **env)
{
    if (!env)
        return;
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

/* ---- report ------------------------------------------------------------- */

static json_t *blobref_json(const struct cu_blobref *b)
{
    char hex[CU_HASH_HEX_LEN + 1];

    cu_hash_to_hex(&b->hash, hex);
    return json_pack("{s:s,s:I}", "hash", hex, "size", (json_int_t)b->size);
}

/* A reason is free text from the sandbox or a peer: never let a bad byte
 * lose the whole report. */
static json_t *reason_json(const char *reason)
{
    json_t *s;

    if (!reason)
        return json_null();
    s = json_string(reason);
    return s ? s : json_string("(reason was not valid UTF-8)");
}

/* Adds {hex: base64(data)} to blobs (created on first use). */
static int inline_add(json_t **blobs, const struct cu_hash *h, const unsigned char *data,
                      uint64_t size)
{
    char hex[CU_HASH_HEX_LEN + 1];
    size_t len = sodium_base64_encoded_len((size_t)size, sodium_base64_VARIANT_ORIGINAL);
    char *b64;
    int rc;

    if (!*blobs && !(*blobs = json_object()))
        return -CU_ENOMEM;
    b64 = malloc(len);
    if (!b64)
        return -CU_ENOMEM;
    sodium_bin2base64(b64, len, data, (size_t)size, sodium_base64_VARIANT_ORIGINAL);
    cu_hash_to_hex(h, hex);
    rc = json_object_set_new(*blobs, hex, json_string(b64)) ? -CU_ENOMEM : 0;
    free(b64);
    return rc;
}

/* The "blobs" member: every blob of r held in memory, or NULL when none
 * (*err set when out of memory). */
static json_t *inline_json(const struct cu_report *r, const struct cu_outputs *o, bool *err)
{
    json_t *blobs = NULL;
    int rc = 0;

    for (size_t i = 0; i < o->n && !rc; i++)
        if (o->v[i].data)
            rc = inline_add(&blobs, &o->v[i].hash, o->v[i].data, o->v[i].size);
    if (!rc && r->out.data)
        rc = inline_add(&blobs, &r->out.hash, r->out.data, r->out.size);
    if (!rc && r->err.data)
        rc = inline_add(&blobs, &r->err.hash, r->err.data, r->err.size);
    if (rc) {
        json_decref(blobs);
        *err = true;
        return NULL;
    }
    return blobs;
}

json_t *cu_report_to_json(const struct cu_report *r)
{
    struct cu_outputs none;
    const struct cu_outputs *o = r->outputs;
    char hex[CU_HASH_HEX_LEN + 1];
    json_t *j, *outs, *blobs;
    bool err = false;

    if (!o) {
        cu_outputs_init(&none);
        if (cu_merkle_root(NULL, 0, &none.root) != 0)
            return NULL;
        o = &none;
    }
    outs = json_array();
    if (!outs)
        return NULL;
    for (size_t i = 0; i < o->n; i++) {
        cu_hash_to_hex(&o->v[i].hash, hex);
        if (json_array_append_new(outs, json_pack("{s:s,s:s,s:I}", "name", o->v[i].name, "hash",
                                                  hex, "size", (json_int_t)o->v[i].size))) {
            json_decref(outs);
            return NULL;
        }
    }
    cu_hash_to_hex(&o->root, hex);
    /* "o" steals each reference, and json_pack frees them on failure. */
    j = json_pack("{s:s,s:o,s:o,s:I,s:I,s:o,s:s,s:o,s:o}", "status", r->status, "exit_code",
                  r->has_exit_code ? json_integer(r->exit_code) : json_null(), "reason",
                  reason_json(r->reason), "cpu_ms",
                  (json_int_t)r->cpu_ms, "wall_ms", (json_int_t)r->wall_ms, "outputs", outs,
                  "merkle_root", hex, "stdout", blobref_json(&r->out), "stderr",
                  blobref_json(&r->err));
    if (!j)
        return NULL;
    blobs = inline_json(r, o, &err);
    if (err || (blobs && json_object_set_new(j, "blobs", blobs) != 0)) {
        json_decref(j);
        return NULL;
    }
    return j;
}
