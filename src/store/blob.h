/* blob.h - content-addressed blob store and verified file writes.
 *
 * A blob lives at ROOT/ab/cdef... (the BLAKE2b-256 hex split after two
 * chars), mode 0444. Writes go to ROOT/tmp/, are hashed as they stream,
 * fsynced, then renamed into place and the directory fsynced, so a crash
 * never leaves a partial blob under a hash name. */
#ifndef CU_STORE_BLOB_H
#define CU_STORE_BLOB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "base/util.h"
#include "crypto/hash.h"

struct cu_blob_flusher;

/* Bytes of blob content (decoded) a report may carry inline in its
 * "blobs" object instead of separate PUTs (docs/api.md): the provider's
 * budget and the exchange's limit. */
#define CU_REPORT_INLINE_MAX (64 * 1024)

struct cu_blobstore {
    char root[CU_PATH_MAX];
};

/* Creates root and root/tmp as needed, deletes stale temp files and makes
 * sure the empty blob (zero bytes) is stored: in an open store it always
 * exists, so peers never upload it (docs/api.md "Blobs"). */
int cu_blobstore_open(struct cu_blobstore *bs, const char *root, struct cu_err *e);
/* The hash of the empty blob. */
void cu_blob_empty_hash(struct cu_hash *out);
bool cu_blob_is_empty_hash(const struct cu_hash *h);
/* Path of a blob (whether or not it exists). -CU_ETOOBIG if too long. */
int cu_blob_path(const struct cu_blobstore *bs, const struct cu_hash *h, char *out, size_t n);
/* 0 and *size if present, -CU_ENOTFOUND otherwise. */
int cu_blob_stat(const struct cu_blobstore *bs, const struct cu_hash *h, uint64_t *size);
/* Re-hashes the stored file: 0, -CU_ENOTFOUND or -CU_ECORRUPT. */
int cu_blob_verify(const struct cu_blobstore *bs, const struct cu_hash *h);

/* A streaming writer. Either into the store (name = hash at commit) or to
 * an arbitrary destination path (a verified download).
 *
 * A writer that may receive a large blob (max of at least 4 MiB) writes
 * with O_DIRECT where the file system allows it: bytes are hashed as they
 * arrive, gathered in a 4 MiB aligned buffer and written from there by
 * DMA, so a 1 GiB blob neither passes through nor evicts the page cache
 * (on this VM first-touch page-cache memory costs ~2 s of CPU per GiB).
 * Full stages are hashed and written by two threads of the writer while
 * the caller fills the next one (see blob.c), so receiving, hashing and
 * the disk overlap. Those threads point into the writer: a writer must not
 * be moved or copied between open and commit/abort.
 * Elsewhere (tmpfs, small blobs) it writes through the page cache. Either
 * way the content is hashed once and fsynced before the rename. */
struct cu_blob_writer {
    int fd;
    char tmp[CU_PATH_MAX];
    char dest[CU_PATH_MAX]; /* empty: into the store */
    const struct cu_blobstore *bs;
    struct cu_hasher h;
    uint64_t size;    /* bytes accepted (written or staged) */
    uint64_t max;
    uint64_t synced;  /* buffered: bytes handed to early writeback */
    bool direct;      /* fd is O_DIRECT: full stage buffers go straight to disk */
    unsigned char *stage; /* direct: aligned staging buffer (owned), or NULL */
    struct cu_blob_flusher *fl; /* direct: thread writing full stages, or NULL */
    size_t staged;    /* bytes waiting in stage */
    mode_t mode;
    bool durable;     /* fsync the file and its directory at commit (default) */
};

/* Starts a write into the store of at most max bytes. */
int cu_blob_writer_open(struct cu_blob_writer *w, const struct cu_blobstore *bs, uint64_t max);
/* Starts a verified write to dest_path (temp file beside it), mode for the
 * final file. */
int cu_vfile_open(struct cu_blob_writer *w, const char *dest_path, uint64_t max, mode_t mode);
/* -CU_ETOOBIG past max, -CU_EIO. */
int cu_blob_writer_write(struct cu_blob_writer *w, const void *p, size_t n);
/* Finishes: if expect is non-NULL and the content hash differs, the temp
 * file is removed and -CU_ECORRUPT returned. Otherwise fsync + rename
 * (an existing blob with the same hash is kept: same content). out (may be
 * NULL) gets the hash. The writer is closed on every path. */
int cu_blob_writer_commit(struct cu_blob_writer *w, const struct cu_hash *expect,
                          struct cu_hash *out);
/* Discards the temp file. Safe after commit (does nothing). */
void cu_blob_writer_abort(struct cu_blob_writer *w);

/* Copies a file into the store. */
int cu_blob_put_file(const struct cu_blobstore *bs, const char *path, struct cu_hash *out,
                     uint64_t *size);
int cu_blob_put_mem(const struct cu_blobstore *bs, const void *p, size_t n, struct cu_hash *out);
/* Copies a blob to dest (atomic, verified against its hash while copying),
 * with the given mode. dest is a scratch copy (a task's /in): renamed into
 * place but not fsynced, so after a power loss it may be missing or
 * partial; its user must clear such leftovers (the provider wipes tasks/
 * at start). -CU_ENOTFOUND, -CU_ECORRUPT, -CU_EIO. */
int cu_blob_copy_out(const struct cu_blobstore *bs, const struct cu_hash *h, const char *dest,
                     mode_t mode);

#endif
