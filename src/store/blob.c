/* blob.c - content-addressed blob store and verified file writes. */
#include "store/blob.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#include "base/banned.h"

#define BLOB_TMP_DIR "tmp"
#define COPY_CHUNK (1u << 20)
/* Every WRITEBACK_STEP bytes a buffered writer asks the kernel to start
 * writing the new range to disk (sync_file_range, no wait), so the fsync
 * at commit finds most of it already on its way instead of flushing it all
 * at the end (1 GiB through the page cache: fsync 0.48 s -> 0.01 s here).
 * The fsync still decides durability; this only starts the I/O earlier. */
#define WRITEBACK_STEP (8u << 20)
/* O_DIRECT writers: the staging buffer, its alignment (the largest
 * logical block size in use), and the smallest max that goes direct. */
#define STAGE_SIZE (4u << 20)
#define DIRECT_ALIGN 4096u
#define DIRECT_MIN_MAX STAGE_SIZE

/* True when the temp file name "PID.RAND" belongs to a process that no
 * longer runs (so its writer can never finish). */
static bool tmp_is_stale(const char *name)
{
    char pidbuf[24];
    const char *dot = strchr(name, '.');
    int64_t pid;

    if (!dot || (size_t)(dot - name) >= sizeof pidbuf)
        return true;
    memcpy(pidbuf, name, (size_t)(dot - name));
    pidbuf[dot - name] = '\0';
    if (cu_parse_i64(pidbuf, 1, INT32_MAX, &pid))
        return true;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Removes temp files left by writers whose process died (crash, kill -9);
 * live writers of other processes sharing the store are left alone. */
static void sweep_tmp(const char *tmpdir)
{
    char path[CU_PATH_MAX];
    struct dirent *de;
    DIR *d = opendir(tmpdir);

    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !tmp_is_stale(de->d_name))
            continue;
        if (cu_path_join(path, sizeof path, tmpdir, de->d_name) == 0 && unlink(path) == 0)
            cu_debug("blob: removed stale temp file %s", path);
    }
    closedir(d);
}

int cu_blobstore_open(struct cu_blobstore *bs, const char *root, struct cu_err *e)
{
    char tmpdir[CU_PATH_MAX];
    int rc;

    /* Room for "/ab/" + 62 hex chars and temp names below root. */
    if (strlen(root) + 80 >= sizeof bs->root)
        return cu_err_set(e, -CU_ETOOBIG, "blob store path too long: %s", root);
    if (cu_snprintf(bs->root, sizeof bs->root, "%s", root) ||
        cu_path_join(tmpdir, sizeof tmpdir, root, BLOB_TMP_DIR))
        return cu_err_set(e, -CU_ETOOBIG, "blob store path too long: %s", root);
    rc = cu_mkdir_p(tmpdir, 0755);
    if (rc)
        return cu_err_set(e, rc, "cannot create blob store %s: %s", tmpdir, strerror(errno));
    sweep_tmp(tmpdir);
    /* The empty blob always exists (blob.h): stored once, durably, here,
     * so empty logs and outputs are never uploaded or written per task. */
    {
        struct cu_hash empty;
        uint64_t size = 1;
        cu_blob_empty_hash(&empty);
        if (cu_blob_stat(bs, &empty, &size) != 0 || size != 0) {
            rc = cu_blob_put_mem(bs, "", 0, NULL);
            if (rc)
                return cu_err_set(e, rc, "cannot store the empty blob in %s: %s", root,
                                  cu_strerror(rc));
        }
    }
    return 0;
}

void cu_blob_empty_hash(struct cu_hash *out)
{
    cu_hash_mem("", 0, out);
}

bool cu_blob_is_empty_hash(const struct cu_hash *h)
{
    struct cu_hash empty;

    cu_blob_empty_hash(&empty);
    return cu_hash_eq(h, &empty);
}

int cu_blob_path(const struct cu_blobstore *bs, const struct cu_hash *h, char *out, size_t n)
{
    char hex[CU_HASH_HEX_LEN + 1];
    cu_hash_to_hex(h, hex);
    return cu_snprintf(out, n, "%s/%.2s/%s", bs->root, hex, hex + 2);
}

int cu_blob_stat(const struct cu_blobstore *bs, const struct cu_hash *h, uint64_t *size)
{
    char path[CU_PATH_MAX];
    struct stat st;

    if (cu_blob_path(bs, h, path, sizeof path))
        return -CU_ETOOBIG;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? -CU_ENOTFOUND : -CU_EIO;
    if (!S_ISREG(st.st_mode))
        return -CU_EIO;
    if (size)
        *size = (uint64_t)st.st_size;
    return 0;
}

/* Reads the whole blob: may take a while for large blobs. */
int cu_blob_verify(const struct cu_blobstore *bs, const struct cu_hash *h)
{
    char path[CU_PATH_MAX];
    struct cu_hash got;
    int rc;

    if (cu_blob_path(bs, h, path, sizeof path))
        return -CU_ETOOBIG;
    rc = cu_hash_file(path, &got, NULL);
    if (rc)
        return rc;
    return cu_hash_eq(&got, h) ? 0 : -CU_ECORRUPT;
}

static void writer_reset(struct cu_blob_writer *w)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->durable = true;
}

/* Creates the temp file w->tmp exclusively (0600 until commit). O_DIRECT
 * is asked for afterwards with fcntl, not at open: a file system without
 * it (tmpfs before Linux 6.6) refuses the fcntl with EINVAL, while an
 * open with O_DIRECT there may create the file and then fail. */
static int writer_create(struct cu_blob_writer *w, uint64_t max)
{
    int fl;

    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int rc = errno == ENOENT ? -CU_ENOTFOUND : -CU_EIO;
        w->tmp[0] = '\0';
        return rc;
    }
    if (max >= DIRECT_MIN_MAX && (fl = fcntl(w->fd, F_GETFL)) >= 0 &&
        fcntl(w->fd, F_SETFL, fl | O_DIRECT) == 0)
        w->direct = true;
    cu_hasher_init(&w->h);
    w->size = 0;
    w->max = max;
    return 0;
}

/* write(2) of all n bytes: 0 or -CU_EIO. */
static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    int fl;

    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            /* A file system that took O_DIRECT but refuses the I/O (a
             * block size over DIRECT_ALIGN, some FUSE or overlay
             * mounts): go on through the page cache. */
            if (errno == EINVAL && (fl = fcntl(fd, F_GETFL)) >= 0 && (fl & O_DIRECT) &&
                fcntl(fd, F_SETFL, fl & ~O_DIRECT) == 0)
                continue;
            return -CU_EIO;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- the pipeline of a large direct writer ------------------------------- */

/* Full stages move through three steps, each on its own thread, so that
 * receiving (the caller), hashing and the disk overlap: the caller fills
 * stage k while the hash thread hashes stage k-1 and the write thread
 * writes stage k-2. Stages are numbered; stage k lives in buf[k % DEPTH].
 * The counters only grow: filled (handed over by the caller) >= hashed
 * >= written. The caller may fill buffer k % DEPTH again once stage
 * k - DEPTH is written. Only the hash thread touches the writer's hasher
 * and only the write thread the fd until drain says written == filled;
 * then the caller has both back (tail and final hash). Stages are hashed
 * and written in order, so the hash is of exactly the bytes on disk. */
#define PIPE_DEPTH 3

struct cu_blob_flusher {
    pthread_t hash_th, write_th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    struct cu_hasher *h;            /* the writer's */
    unsigned char *buf[PIPE_DEPTH]; /* owned; buf[0] was the writer's stage */
    uint64_t filled, hashed, written;
    int rc;                         /* first write error; sticky */
    bool quit;                      /* threads leave when nothing is left */
    bool cancel;                    /* abort: skip what is left */
};

/* Pipeline threads take no signals: the process's own threads handle
 * them as before. */
static void block_signals(void)
{
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void *pipe_hash_main(void *arg)
{
    struct cu_blob_flusher *fl = arg;

    block_signals();
    pthread_mutex_lock(&fl->mu);
    for (;;) {
        unsigned char *buf;

        while (fl->hashed == fl->filled && !fl->quit)
            pthread_cond_wait(&fl->cv, &fl->mu);
        if (fl->hashed == fl->filled)
            break;
        buf = fl->buf[fl->hashed % PIPE_DEPTH];
        if (!fl->cancel) {
            pthread_mutex_unlock(&fl->mu);
            cu_hasher_update(fl->h, buf, STAGE_SIZE);
            pthread_mutex_lock(&fl->mu);
        }
        fl->hashed++;
        pthread_cond_broadcast(&fl->cv);
    }
    pthread_mutex_unlock(&fl->mu);
    return NULL;
}

static void *pipe_write_main(void *arg)
{
    struct cu_blob_flusher *fl = arg;

    block_signals();
    pthread_mutex_lock(&fl->mu);
    for (;;) {
        unsigned char *buf;
        int rc = 0;

        while (fl->written == fl->hashed && !(fl->quit && fl->written == fl->filled))
            pthread_cond_wait(&fl->cv, &fl->mu);
        if (fl->written == fl->filled)
            break;
        buf = fl->buf[fl->written % PIPE_DEPTH];
        /* After an error or an abort the rest is not written: the commit
         * fails anyway. */
        if (!fl->rc && !fl->cancel) {
            pthread_mutex_unlock(&fl->mu);
            rc = write_all(fl->fd, buf, STAGE_SIZE);
            pthread_mutex_lock(&fl->mu);
        }
        if (rc && !fl->rc)
            fl->rc = rc;
        fl->written++;
        pthread_cond_broadcast(&fl->cv);
    }
    pthread_mutex_unlock(&fl->mu);
    return NULL;
}

/* Starts w's pipeline, taking over w->stage as its first buffer. NULL
 * (w untouched) when memory or threads are short: the writer then hashes
 * and writes its stages itself. */
static struct cu_blob_flusher *flusher_start(struct cu_blob_writer *w)
{
    struct cu_blob_flusher *fl = calloc(1, sizeof *fl);
    int i;

    if (!fl)
        return NULL;
    fl->fd = w->fd;
    fl->h = &w->h;
    fl->buf[0] = w->stage; /* freed by flusher_stop, not on failure here */
    for (i = 1; i < PIPE_DEPTH; i++)
        if (posix_memalign((void **)&fl->buf[i], DIRECT_ALIGN, STAGE_SIZE) != 0)
            goto out_free_bufs;
    if (pthread_mutex_init(&fl->mu, NULL) != 0)
        goto out_free_bufs;
    if (pthread_cond_init(&fl->cv, NULL) != 0)
        goto out_destroy_mu;
    if (pthread_create(&fl->hash_th, NULL, pipe_hash_main, fl) != 0)
        goto out_destroy_cv;
    if (pthread_create(&fl->write_th, NULL, pipe_write_main, fl) != 0)
        goto out_stop_hash;
    return fl;
out_stop_hash:
    pthread_mutex_lock(&fl->mu);
    fl->quit = true;
    pthread_cond_broadcast(&fl->cv);
    pthread_mutex_unlock(&fl->mu);
    pthread_join(fl->hash_th, NULL);
out_destroy_cv:
    pthread_cond_destroy(&fl->cv);
out_destroy_mu:
    pthread_mutex_destroy(&fl->mu);
out_free_bufs:
    for (i = 1; i < PIPE_DEPTH; i++)
        free(fl->buf[i]);
    free(fl);
    return NULL;
}

/* Waits until every stage handed over is hashed and written: 0 or the
 * first write error. */
static int flusher_drain(struct cu_blob_flusher *fl)
{
    int rc;

    pthread_mutex_lock(&fl->mu);
    while (fl->written < fl->filled)
        pthread_cond_wait(&fl->cv, &fl->mu);
    rc = fl->rc;
    pthread_mutex_unlock(&fl->mu);
    return rc;
}

/* Hands the full stage *stage over and points *stage at the next buffer,
 * waiting until the stage that used it last is on disk. */
static int flusher_submit(struct cu_blob_flusher *fl, unsigned char **stage)
{
    int rc;

    pthread_mutex_lock(&fl->mu);
    assert(*stage == fl->buf[fl->filled % PIPE_DEPTH]);
    fl->filled++;
    pthread_cond_broadcast(&fl->cv);
    while (fl->filled - fl->written >= PIPE_DEPTH)
        pthread_cond_wait(&fl->cv, &fl->mu);
    rc = fl->rc;
    *stage = fl->buf[fl->filled % PIPE_DEPTH];
    pthread_mutex_unlock(&fl->mu);
    return rc;
}

/* Stops both threads (skipping what is left when cancel), frees the
 * buffers, including the one the writer's stage points into. */
static void flusher_stop(struct cu_blob_flusher *fl, bool cancel)
{
    pthread_mutex_lock(&fl->mu);
    fl->quit = true;
    fl->cancel = cancel;
    pthread_cond_broadcast(&fl->cv);
    pthread_mutex_unlock(&fl->mu);
    pthread_join(fl->hash_th, NULL);
    pthread_join(fl->write_th, NULL);
    pthread_cond_destroy(&fl->cv);
    pthread_mutex_destroy(&fl->mu);
    for (int i = 0; i < PIPE_DEPTH; i++)
        free(fl->buf[i]);
    free(fl);
}

/* Writes what is staged: whole aligned blocks with O_DIRECT; when last,
 * the unaligned tail too, after turning O_DIRECT off (it needs aligned
 * lengths). Not last, only full buffers are flushed, so every direct
 * write starts at an aligned offset. */
static int stage_flush(struct cu_blob_writer *w, bool last)
{
    size_t aligned = w->staged & ~(size_t)(DIRECT_ALIGN - 1);
    int fl, rc;

    if (!last && w->staged < STAGE_SIZE)
        return 0;
    if (!last) {
        /* A full stage: into the pipeline (started on the first one, so
         * blobs under 4 MiB never start a thread). */
        if (!w->fl)
            w->fl = flusher_start(w);
        if (w->fl) {
            rc = flusher_submit(w->fl, &w->stage);
            if (!rc)
                w->staged = 0;
            return rc;
        }
    } else if (w->fl && (rc = flusher_drain(w->fl)) != 0) {
        return rc;
    }
    /* The pipeline is idle or absent: hash and write here. */
    cu_hasher_update(&w->h, w->stage, w->staged);
    rc = write_all(w->fd, w->stage, aligned);
    if (rc)
        return rc;
    if (aligned < w->staged) {
        assert(last);
        fl = fcntl(w->fd, F_GETFL);
        if (fl < 0 || fcntl(w->fd, F_SETFL, fl & ~O_DIRECT) != 0)
            return -CU_EIO;
        w->direct = false;
        rc = write_all(w->fd, w->stage + aligned, w->staged - aligned);
        if (rc)
            return rc;
    }
    w->staged = 0;
    return 0;
}

int cu_blob_writer_open(struct cu_blob_writer *w, const struct cu_blobstore *bs, uint64_t max)
{
    char rnd[17];

    writer_reset(w);
    cu_random_hex(rnd, 8);
    if (cu_snprintf(w->tmp, sizeof w->tmp, "%s/%s/%ld.%s", bs->root, BLOB_TMP_DIR,
                    (long)getpid(), rnd)) {
        w->tmp[0] = '\0';
        return -CU_ETOOBIG;
    }
    w->bs = bs;
    w->mode = 0444;
    return writer_create(w, max);
}

/* The temp file is ".NAME.tmp.PID.RAND" in dest's directory, so the final
 * rename never crosses a file system. The directory must exist. */
int cu_vfile_open(struct cu_blob_writer *w, const char *dest_path, uint64_t max, mode_t mode)
{
    const char *slash = strrchr(dest_path, '/');
    const char *base = slash ? slash + 1 : dest_path;
    int dirlen = slash ? (int)(slash - dest_path) + 1 : 0;
    char rnd[17];

    writer_reset(w);
    if (!base[0])
        return -CU_EINVAL;
    if (cu_snprintf(w->dest, sizeof w->dest, "%s", dest_path))
        return -CU_ETOOBIG;
    cu_random_hex(rnd, 8);
    if (cu_snprintf(w->tmp, sizeof w->tmp, "%.*s.%s.tmp.%ld.%s", dirlen, dest_path, base,
                    (long)getpid(), rnd)) {
        writer_reset(w);
        return -CU_ETOOBIG;
    }
    w->mode = mode;
    return writer_create(w, max);
}

/* Buffered writers hash p and write it through; direct ones copy it into
 * the stage, and each full 4 MiB is hashed and written by the pipeline
 * (or here, by stage_flush, without one). */
int cu_blob_writer_write(struct cu_blob_writer *w, const void *p, size_t n)
{
    const unsigned char *c = p;
    int rc;

    if (w->fd < 0)
        return -CU_EINVAL;
    if (n > w->max - w->size)
        return -CU_ETOOBIG;
    w->size += n;
    if (w->direct) {
        if (!w->stage && posix_memalign((void **)&w->stage, DIRECT_ALIGN, STAGE_SIZE) != 0) {
            w->stage = NULL;
            return -CU_ENOMEM;
        }
        while (n) {
            size_t take = STAGE_SIZE - w->staged < n ? STAGE_SIZE - w->staged : n;
            memcpy(w->stage + w->staged, c, take);
            w->staged += take;
            c += take;
            n -= take;
            rc = stage_flush(w, false);
            if (rc)
                return rc;
        }
        return 0;
    }
    cu_hasher_update(&w->h, c, n);
    rc = write_all(w->fd, c, n);
    if (rc)
        return rc;
    if (w->size - w->synced >= WRITEBACK_STEP) {
        /* Only a hint: a failure here (say a file system without it) is
         * caught, if it matters, by the fsync at commit. */
        (void)sync_file_range(w->fd, (off_t)w->synced, (off_t)(w->size - w->synced),
                              SYNC_FILE_RANGE_WRITE);
        w->synced = w->size;
    }
    return 0;
}

void cu_blob_writer_abort(struct cu_blob_writer *w)
{
    if (w->fl) {
        flusher_stop(w->fl, true);
        w->stage = NULL; /* one of the pipeline's buffers, freed with it */
    }
    free(w->stage);
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp[0])
        unlink(w->tmp);
    writer_reset(w);
}

/* Makes the fan-out directory of final (ROOT/ab), fsyncing ROOT when it was
 * created so the directory entry itself is durable. */
static int ensure_fanout(const struct cu_blobstore *bs, const char *final)
{
    char dir[CU_PATH_MAX];
    const char *slash = strrchr(final, '/');

    if (cu_snprintf(dir, sizeof dir, "%.*s", (int)(slash - final), final))
        return -CU_ETOOBIG;
    if (mkdir(dir, 0755) == 0)
        return cu_fsync_dir(bs->root);
    return errno == EEXIST ? 0 : -CU_EIO;
}

/* Blocks on fsync. Closes the writer on every path. */
int cu_blob_writer_commit(struct cu_blob_writer *w, const struct cu_hash *expect,
                          struct cu_hash *out)
{
    char final[CU_PATH_MAX];
    struct cu_hash got;
    int rc = 0;

    if (w->fd < 0)
        return -CU_EINVAL;
    /* Direct writers hash what they write: the last stage first. */
    if (w->staged)
        rc = stage_flush(w, true);
    else if (w->fl)
        rc = flusher_drain(w->fl);
    if (rc)
        goto out_abort;
    cu_hasher_final(&w->h, &got);
    if (expect && !cu_hash_eq(&got, expect)) {
        rc = -CU_ECORRUPT;
        goto out_abort;
    }
    if ((w->durable && fsync(w->fd) != 0) || fchmod(w->fd, w->mode) != 0) {
        rc = -CU_EIO;
        goto out_abort;
    }
    rc = close(w->fd) != 0 ? -CU_EIO : 0;
    w->fd = -1;
    if (rc)
        goto out_abort;
    if (w->dest[0]) {
        rc = cu_snprintf(final, sizeof final, "%s", w->dest);
    } else {
        rc = cu_blob_path(w->bs, &got, final, sizeof final);
        if (!rc)
            rc = ensure_fanout(w->bs, final);
    }
    if (rc)
        goto out_abort;
    /* Over an existing blob of the same hash the content is identical, so
     * replacing it is harmless (and heals a corrupted copy). */
    if (rename(w->tmp, final) != 0) {
        rc = -CU_EIO;
        goto out_abort;
    }
    w->tmp[0] = '\0';
    rc = w->durable ? cu_fsync_dir(final) : 0;
    if (!rc && out)
        *out = got;
out_abort:
    cu_blob_writer_abort(w);
    return rc;
}

/* Streams fd into w until EOF. The chunk is on the heap: callers may run
 * on threads with small stacks. */
static int copy_fd(int fd, struct cu_blob_writer *w)
{
    char *chunk = malloc(COPY_CHUNK);
    int rc = 0;

    if (!chunk)
        return -CU_ENOMEM;
    for (;;) {
        ssize_t k = read(fd, chunk, COPY_CHUNK);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            rc = -CU_EIO;
            break;
        }
        if (k == 0)
            break;
        rc = cu_blob_writer_write(w, chunk, (size_t)k);
        if (rc)
            break;
    }
    free(chunk);
    return rc;
}

int cu_blob_put_file(const struct cu_blobstore *bs, const char *path, struct cu_hash *out,
                     uint64_t *size)
{
    struct cu_blob_writer w;
    uint64_t n;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -CU_ENOTFOUND : -CU_EIO;
    rc = cu_blob_writer_open(&w, bs, UINT64_MAX);
    if (rc)
        goto out_close_fd;
    rc = copy_fd(fd, &w);
    if (rc) {
        cu_blob_writer_abort(&w);
        goto out_close_fd;
    }
    n = w.size;
    rc = cu_blob_writer_commit(&w, NULL, out);
    if (!rc && size)
        *size = n;
out_close_fd:
    close(fd);
    return rc;
}

int cu_blob_put_mem(const struct cu_blobstore *bs, const void *p, size_t n, struct cu_hash *out)
{
    struct cu_blob_writer w;
    int rc = cu_blob_writer_open(&w, bs, n);

    if (rc)
        return rc;
    rc = cu_blob_writer_write(&w, p, n);
    if (rc) {
        cu_blob_writer_abort(&w);
        return rc;
    }
    return cu_blob_writer_commit(&w, NULL, out);
}

/* Copies through a verified writer, so dest appears only with the right
 * content; a corrupt stored blob gives -CU_ECORRUPT and leaves dest alone. */
int cu_blob_copy_out(const struct cu_blobstore *bs, const struct cu_hash *h, const char *dest,
                     mode_t mode)
{
    char path[CU_PATH_MAX];
    struct cu_blob_writer w;
    struct stat st;
    int fd, rc;

    if (cu_blob_path(bs, h, path, sizeof path))
        return -CU_ETOOBIG;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -CU_ENOTFOUND : -CU_EIO;
    if (fstat(fd, &st) != 0) {
        rc = -CU_EIO;
        goto out_close_fd;
    }
    /* dest may be executed by a sandbox soon: no fork while it is open
     * for writing (util.h, cu_exec_write_begin). */
    cu_exec_write_begin();
    rc = cu_vfile_open(&w, dest, (uint64_t)st.st_size, mode);
    if (rc)
        goto out_end_write;
    w.durable = false; /* a scratch copy (blob.h) */
    rc = copy_fd(fd, &w);
    if (rc) {
        cu_blob_writer_abort(&w);
        /* A blob that grew past its recorded size was altered. */
        if (rc == -CU_ETOOBIG)
            rc = -CU_ECORRUPT;
        goto out_end_write;
    }
    rc = cu_blob_writer_commit(&w, h, NULL);
out_end_write:
    cu_exec_write_end();
out_close_fd:
    close(fd);
    return rc;
}
