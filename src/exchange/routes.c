/* routes.c - the exchange's route table and handlers (docs/api.md).
 *
 * Handlers parse and check what the client sent (naming the bad field),
 * do the file work (blobs) outside the state lock, and leave every read
 * and write of the state to state.c. */
#include "exchange/explain.h"
#include "exchange/routes.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "crypto/merkle.h"
#include "exchange/state.h"
#include "exchange/trust.h"
#include "market/lease.h"
#include "market/spec.h"

#include "base/banned.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define LIMIT_SMALL (64 * KiB) /* hello, claims, heartbeats, cancel */
#define LIMIT_JOB (8 * MiB)
#define LIMIT_REPORT (1 * MiB)
#define LIMIT_REPORTS (4 * MiB) /* a batch of reports */
#define LIMIT_BLOB (1 * GiB)
#define LOG_CAP (1 * MiB) /* bytes of stdout/stderr shown per stream */
#define MAX_OUTPUTS 4096
#define MAX_REASON 1024
#define DEFAULT_WAIT_MS 25000
#define MAX_MISSING_LISTED 64

static struct ex_state *app_of(struct cu_http_req *req)
{
    return req->app;
}

static void reply_fail(struct cu_http_resp *resp, const struct ex_fail *f)
{
    cu_http_error(resp, f->status ? f->status : 500, f->code ? f->code : "internal", "%s", f->msg);
}

/* 200 with j (taken), or the failure f describes when j is NULL. */
static void reply_result(struct cu_http_resp *resp, json_t *j, const struct ex_fail *f)
{
    if (j)
        cu_http_json(resp, 200, j);
    else
        reply_fail(resp, f);
}

/* 400 naming the field from a cu_err filled by the JSON helpers. */
static int reply_invalid(struct cu_http_resp *resp, const char *prefix, const struct cu_err *e,
                         int rc)
{
    if (rc == -CU_ENOMEM) {
        cu_http_error(resp, 500, "internal", "out of memory");
        return rc;
    }
    cu_http_error(resp, 400, "invalid", "%s%s", prefix ? prefix : "", cu_err_msg(e, rc));
    return -CU_EINVAL;
}

/* The body as a JSON object, or NULL with a 400 answered. An empty body is
 * an empty object when empty_ok. */
static json_t *body_object(struct cu_http_req *req, struct cu_http_resp *resp, bool empty_ok)
{
    struct cu_err e = {0};
    json_t *j;

    if (req->body_len == 0 && empty_ok)
        return json_object();
    j = cu_json_parse(req->body, req->body_len, &e);
    if (!j) {
        cu_http_error(resp, 400, "invalid", "body: %s", e.msg);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        cu_http_error(resp, 400, "invalid", "body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- service --------------------------------------------------------------- */

static int h_health(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);

    __atomic_add_fetch(&st->requests, 1, __ATOMIC_RELAXED);
    cu_http_json(resp, 200,
                 json_pack("{s:b,s:s,s:I,s:b}", "ok", 1, "version", EX_VERSION, "time_ms",
                           (json_int_t)cu_now_ms(), "devnet", st->devnet));
    return 0;
}

static int h_metrics(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct cu_buf b = CU_BUF_INIT(4 * MiB);
    int rc;

    __atomic_add_fetch(&st->requests, 1, __ATOMIC_RELAXED);
    rc = ex_metrics(st, cu_now_ms(), &b);
    if (rc) {
        cu_buf_release(&b);
        cu_http_error(resp, 500, "internal", "cannot compute metrics");
        return rc;
    }
    resp->status = 200;
    resp->raw_len = b.len;
    resp->raw = cu_buf_detach(&b);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (!resp->raw) {
        cu_http_error(resp, 500, "internal", "out of memory");
        return -CU_ENOMEM;
    }
    return 0;
}

/* ---- blobs ------------------------------------------------------------------ */

/* Parses the {hash} capture; answers 400 when it is not canonical hex. */
static int blob_param(struct cu_http_req *req, struct cu_http_resp *resp, struct cu_hash *h)
{
    if (cu_hash_from_hex(req->params[0], h) != 0) {
        cu_http_error(resp, 400, "invalid", "blob hash '%.80s' is not 64 lowercase hex chars",
                      req->params[0]);
        return -CU_EINVAL;
    }
    return 0;
}

/* GET and HEAD: the blob's bytes from its file (HEAD sends only the
 * length). */
static int h_blob_get(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    char path[CU_PATH_MAX];
    struct cu_hash h;
    struct stat sb;
    int fd;

    if (blob_param(req, resp, &h))
        return 0;
    if (cu_blob_path(&st->blobs, &h, path, sizeof path) != 0)
        goto out_not_found;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out_not_found;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        goto out_not_found;
    }
    resp->status = 200;
    resp->fd = fd;
    resp->fd_size = (uint64_t)sb.st_size;
    /* Stored blobs are written with O_DIRECT (store/blob.h); reading large
     * ones back the same way keeps them out of the page cache here too. */
    resp->fd_uncached = true;
    resp->content_type = "application/octet-stream";
    return 0;
out_not_found:
    cu_http_error(resp, 404, "not_found", "blob %s not found", req->params[0]);
    return 0;
}

struct upload {
    struct cu_blob_writer w;
    struct cu_hash expect;
    bool exists; /* already stored: the body is read and dropped */
    uint64_t size;
};

static int blob_stream_open(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct upload *u;
    uint64_t size;
    int rc;

    u = calloc(1, sizeof *u);
    if (!u) {
        cu_http_error(resp, 500, "internal", "out of memory");
        return -CU_ENOMEM;
    }
    if (blob_param(req, resp, &u->expect)) {
        rc = -CU_EINVAL;
        goto out_free;
    }
    if (strcmp(req->sig.body_hash, req->params[0]) != 0) {
        cu_http_error(resp, 400, "hash_mismatch",
                      "X-Cumulus-Body-Hash must equal the blob hash in the path");
        rc = -CU_EINVAL;
        goto out_free;
    }
    if (cu_blob_stat(&st->blobs, &u->expect, &size) == 0) {
        u->exists = true;
        u->size = size;
    } else {
        rc = cu_blob_writer_open(&u->w, &st->blobs, LIMIT_BLOB);
        if (rc) {
            cu_error("blob upload: cannot open a temp file: %s", cu_strerror(rc));
            cu_http_error(resp, 500, "internal", "cannot store the blob");
            goto out_free;
        }
    }
    req->stream_ctx = u;
    return 0;
out_free:
    free(u);
    return rc;
}

static int blob_stream_write(struct cu_http_req *req, const char *data, size_t n,
                             struct cu_http_resp *resp)
{
    struct upload *u = req->stream_ctx;
    int rc;

    if (u->exists)
        return 0;
    rc = cu_blob_writer_write(&u->w, data, n);
    if (rc == -CU_ETOOBIG)
        cu_http_error(resp, 413, "too_large", "blob is over the limit of %llu bytes",
                      (unsigned long long)LIMIT_BLOB);
    else if (rc)
        cu_http_error(resp, 500, "internal", "cannot store the blob");
    return rc;
}

static void blob_stream_abort(struct cu_http_req *req)
{
    struct upload *u = req->stream_ctx;

    if (!u)
        return;
    if (!u->exists)
        cu_blob_writer_abort(&u->w);
    free(u);
    req->stream_ctx = NULL;
}

/* The last step of a PUT: commit, verified against the hash in the path.
 * Owns req->stream_ctx from here. */
static int h_blob_put(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct upload *u = req->stream_ctx;
    int status = 200, rc;

    req->stream_ctx = NULL;
    if (!u) {
        cu_http_error(resp, 500, "internal", "upload state lost");
        return -CU_EINVAL;
    }
    if (!u->exists) {
        u->size = u->w.size;
        rc = cu_blob_writer_commit(&u->w, &u->expect, NULL);
        if (rc == -CU_ECORRUPT) {
            cu_http_error(resp, 400, "hash_mismatch", "content does not hash to %s",
                          req->params[0]);
            goto out_free;
        }
        if (rc) {
            cu_error("blob upload %s: commit failed: %s", req->params[0], cu_strerror(rc));
            cu_http_error(resp, 500, "internal", "cannot store the blob");
            goto out_free;
        }
        status = 201;
        cu_debug("blob %s stored (%llu bytes)", req->params[0], (unsigned long long)u->size);
    }
    cu_http_json(resp, status,
                 json_pack("{s:s,s:I}", "hash", req->params[0], "size", (json_int_t)u->size));
out_free:
    free(u);
    return 0;
}

/* ---- jobs ------------------------------------------------------------------- */

/* The five signature headers as a JSON object (kept with the job). */
static char *sig_json(const struct cu_sig_headers *h)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "key", h->key, "timestamp", h->ts, "nonce",
                          h->nonce, "body_hash", h->body_hash, "signature", h->sig);
    char *s = j ? cu_json_dumps(j) : NULL;

    json_decref(j);
    return s;
}

/* "j-" + 24 hex of BLAKE2b-256(signer id || body). */
static void job_id(const char *signer, const char *body, size_t n, char out[27])
{
    struct cu_hasher hs;
    struct cu_hash h;
    char hex[CU_HASH_HEX_LEN + 1];

    cu_hasher_init(&hs);
    cu_hasher_update(&hs, signer, strlen(signer));
    cu_hasher_update(&hs, body, n);
    cu_hasher_final(&hs, &h);
    cu_hash_to_hex(&h, hex);
    out[0] = 'j';
    out[1] = '-';
    memcpy(out + 2, hex, 24);
    out[26] = '\0';
}

/* Checks that every input blob is stored with its declared size. 0; or a
 * 409 missing_blobs (listing them) / 400 answered and negative. */
static int inputs_present(struct ex_state *st, const struct cu_spec *sp, struct cu_http_resp *resp)
{
    json_t *missing = json_array();
    struct cu_buf names = CU_BUF_INIT(2048);
    size_t nmissing = 0;
    int rc = 0;

    if (!missing) {
        cu_http_error(resp, 500, "internal", "out of memory");
        return -CU_ENOMEM;
    }
    /* Index ninputs stands for the OCI image tarball, when there is one. */
    for (size_t i = 0; i < sp->ninputs + cu_spec_image_is_oci(sp); i++) {
        const struct cu_spec_input *in = i < sp->ninputs ? &sp->inputs[i] : &sp->image_oci;
        char hex[CU_HASH_HEX_LEN + 1];
        uint64_t size;
        cu_hash_to_hex(&in->hash, hex);
        if (cu_blob_stat(&st->blobs, &in->hash, &size) != 0) {
            if (nmissing++ < MAX_MISSING_LISTED) {
                json_array_append_new(missing, json_string(hex));
                (void)cu_buf_appendf(&names, "%s%s (%.12s)", nmissing > 1 ? ", " : "", in->name,
                                     hex);
            }
            continue;
        }
        if (size != in->size) {
            if (i == sp->ninputs)
                cu_http_error(resp, 400, "invalid",
                              "spec: image.oci.size: blob %.12s has %llu bytes, not %llu", hex,
                              (unsigned long long)size, (unsigned long long)in->size);
            else
                cu_http_error(resp, 400, "invalid",
                              "spec: inputs[%zu].size: blob %.12s has %llu bytes, not %llu", i,
                              hex, (unsigned long long)size, (unsigned long long)in->size);
            rc = -CU_EINVAL;
            goto out_free;
        }
    }
    if (nmissing) {
        char msg[CU_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%zu input blob(s) not uploaded: %s%s", nmissing,
                 cu_buf_str(&names), nmissing > MAX_MISSING_LISTED ? ", ..." : "");
        cu_http_json(resp, 409,
                     json_pack("{s:{s:s,s:s,s:O}}", "error", "code", "missing_blobs", "message",
                               msg, "missing", missing));
        rc = -CU_ECONFLICT;
    }
out_free:
    cu_buf_release(&names);
    json_decref(missing);
    return rc;
}

static int h_job_submit(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"spec", "client_ref", NULL};
    struct ex_state *st = app_of(req);
    struct cu_spec spec;
    struct cu_err e = {0};
    struct ex_fail f = {0};
    struct ex_submit sub;
    json_t *body, *canon = NULL;
    const char *ref = NULL;
    char id[27], *spec_s = NULL, *sig_s = NULL, *auth = NULL;
    bool existed = false;
    int rc;

    cu_spec_init(&spec);
    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (!rc)
        rc = cu_json_get_str(body, NULL, "client_ref", false, &ref, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    if (ref && strlen(ref) > 128) {
        cu_http_error(resp, 400, "invalid", "field 'client_ref' is longer than 128 chars");
        goto out_free;
    }
    if (!json_object_get(body, "spec")) {
        cu_http_error(resp, 400, "invalid", "missing field 'spec'");
        goto out_free;
    }
    rc = cu_spec_from_json(&spec, json_object_get(body, "spec"), &e);
    if (rc) {
        reply_invalid(resp, "spec: ", &e, rc);
        goto out_free;
    }
    if (inputs_present(st, &spec, resp))
        goto out_free;
    canon = cu_spec_to_json(&spec);
    spec_s = canon ? cu_json_dumps(canon) : NULL;
    sig_s = sig_json(&req->sig);
    if (cu_tx_auth_make("POST", "/v1/jobs", req->body, req->body_len, &req->sig, &auth) != 0)
        auth = NULL;
    if (!spec_s || !sig_s || !auth) {
        cu_http_error(resp, 500, "internal", "out of memory");
        goto out_free;
    }
    job_id(req->signer, req->body, req->body_len, id);
    sub = (struct ex_submit){
        .id = id,
        .owner = req->signer,
        .spec = &spec,
        .spec_json = spec_s,
        .body = req->body,
        .body_len = req->body_len,
        .sig_json = sig_s,
        .auth = auth,
        .now_ms = cu_now_ms(),
    };
    if (ex_job_submit(st, &sub, &existed, &f)) {
        reply_fail(resp, &f);
        goto out_free;
    }
    cu_http_json(resp, existed ? 200 : 201,
                 json_pack("{s:s,s:I,s:I}", "id", id, "tasks", (json_int_t)spec.task_count,
                           "replicas", (json_int_t)spec.task_count * spec.replication));
out_free:
    free(auth);
    free(sig_s);
    free(spec_s);
    json_decref(canon);
    cu_spec_release(&spec);
    json_decref(body);
    return 0;
}

static int h_job_list(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_fail f = {0};
    json_t *j = ex_job_list(app_of(req), req->signer, &f);

    reply_result(resp, j, &f);
    return 0;
}

/* Job ids are short; anything longer cannot name a job. */
static bool job_param_ok(struct cu_http_req *req, struct cu_http_resp *resp)
{
    if (strlen(req->params[0]) > 64) {
        cu_http_error(resp, 404, "not_found", "job '%.64s...' not found", req->params[0]);
        return false;
    }
    return true;
}

static bool query_u64(struct cu_http_req *req, struct cu_http_resp *resp, const char *key,
                      uint64_t def, uint64_t max, uint64_t *out);

/* ---- job long-poll ---------------------------------------------------------
 *
 * GET /v1/jobs/{id}?wait_ms=N&after=VERSION answers as soon as the job's
 * "version" differs from VERSION, or after N ms (docs/api.md). A request
 * that may change a job (claim, heartbeat, report, commit, cancel, an
 * expired lease) bumps one generation and wakes every waiter, which reads
 * its job again and compares versions; so a waiter costs nothing while
 * nothing happens, and one job read per change elsewhere. Process-wide, so
 * that state.c stays untouched; a wake-up meant for another exchange of
 * the same process only costs a re-read. */

static struct {
    pthread_once_t once;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    uint64_t gen;      /* bumped by ex_jobs_changed */
    uint64_t stops;    /* bumped by ex_jobs_watch_stop */
} watch = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

static void watch_init(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&watch.cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void watch_bump(uint64_t *counter)
{
    pthread_once(&watch.once, watch_init);
    pthread_mutex_lock(&watch.mu);
    (*counter)++;
    pthread_cond_broadcast(&watch.cv);
    pthread_mutex_unlock(&watch.mu);
}

void ex_jobs_changed(void)
{
    watch_bump(&watch.gen);
}

void ex_jobs_watch_stop(void)
{
    watch_bump(&watch.stops);
}

static void hash_str(crypto_generichash_state *h, const json_t *v)
{
    const char *s = json_string_value(v);

    crypto_generichash_update(h, (const unsigned char *)(s ? s : ""), (s ? strlen(s) : 0) + 1);
}

static void hash_int(crypto_generichash_state *h, const json_t *v)
{
    json_int_t x = json_integer_value(v);

    crypto_generichash_update(h, (const unsigned char *)&x, sizeof x);
}

/* The job's "version": 16 hex digits of a hash over what a watcher waits
 * for: the job's state, and each task's and each replica's state (a new
 * replica, a lease, a report, a verdict each change it). Times that move
 * by themselves ("waiting") are left out. */
static void job_version(const json_t *job, char out[EX_JOB_VERSION_LEN + 1])
{
    crypto_generichash_state h;
    unsigned char d[EX_JOB_VERSION_LEN / 2];
    const json_t *t, *r;
    size_t i, k;

    crypto_generichash_init(&h, NULL, 0, sizeof d);
    hash_str(&h, json_object_get(job, "state"));
    hash_int(&h, json_object_get(job, "finished_ms"));
    json_array_foreach (json_object_get(job, "tasks"), i, t) {
        hash_str(&h, json_object_get(t, "state"));
        hash_int(&h, json_object_get(t, "attempts"));
        json_array_foreach (json_object_get(t, "replicas"), k, r) {
            hash_int(&h, json_object_get(r, "id"));
            hash_str(&h, json_object_get(r, "state"));
        }
    }
    crypto_generichash_final(&h, d, sizeof d);
    cu_hex_encode(d, sizeof d, out);
}

static bool version_ok(const char *v)
{
    if (strlen(v) != EX_JOB_VERSION_LEN)
        return false;
    for (size_t i = 0; v[i]; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
            return false;
    return true;
}

/* Reads the blob h of exactly size bytes into a new base64 string (the
 * caller frees it); NULL when it is not stored with that size, cannot be
 * read, or memory runs out (the output is then simply not inlined). */
static char *blob_base64(const struct cu_blobstore *bs, const struct cu_hash *h, size_t size)
{
    char path[CU_PATH_MAX];
    unsigned char *bin = NULL;
    char *b64 = NULL;
    size_t got = 0, len;
    struct stat sb;
    int fd;

    if (cu_blob_path(bs, h, path, sizeof path) != 0)
        return NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != size)
        goto out_close;
    bin = malloc(size ? size : 1);
    if (!bin)
        goto out_close;
    while (got < size) {
        ssize_t n = read(fd, bin + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out_free;
        got += (size_t)n;
    }
    len = sodium_base64_encoded_len(size, sodium_base64_VARIANT_ORIGINAL);
    b64 = malloc(len);
    if (b64)
        sodium_bin2base64(b64, len, bin, size, sodium_base64_VARIANT_ORIGINAL);
out_free:
    free(bin);
out_close:
    close(fd);
    return b64;
}

/* ?inline=N (docs/api.md): the outputs of the job's task results, in
 * order, each as "data" (base64) while their sizes add up to at most
 * budget bytes (and EX_JOB_INLINE_FILES files: empty outputs cost a read
 * too); the others keep their hash for GET /v1/blobs/{hash}. The
 * client verifies the hash, so a requester that follows the job to its end
 * gets its small results with the answer, not one request per file. */
static void job_inline_outputs(const struct ex_state *st, json_t *job, uint64_t budget)
{
    const json_t *t, *o;
    size_t i, k, files = 0;

    json_array_foreach (json_object_get(job, "tasks"), i, t) {
        json_array_foreach (json_object_get(json_object_get(t, "result"), "outputs"), k, o) {
            json_int_t size = json_integer_value(json_object_get(o, "size"));
            struct cu_hash h;
            char *b64;

            if (files >= EX_JOB_INLINE_FILES)
                return;
            if (!json_is_integer(json_object_get(o, "size")) || size < 0 ||
                (uint64_t)size > budget ||
                cu_hash_from_hex(json_string_value(json_object_get(o, "hash")), &h) != 0)
                continue;
            b64 = blob_base64(&st->blobs, &h, (size_t)size);
            if (!b64)
                continue;
            if (json_object_set_new((json_t *)o, "data", json_string(b64)) == 0) {
                budget -= (uint64_t)size;
                files++;
            }
            free(b64);
        }
    }
}

static int h_job_get(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct ex_fail f = {0};
    const char *after = cu_http_query(req, "after");
    char version[EX_JOB_VERSION_LEN + 1];
    struct timespec deadline;
    uint64_t wait_ms, inline_max, gen, stops;
    json_t *j;

    if (!job_param_ok(req, resp) ||
        !query_u64(req, resp, "wait_ms", 0, EX_JOB_WAIT_MAX_MS, &wait_ms) ||
        !query_u64(req, resp, "inline", 0, EX_JOB_INLINE_MAX, &inline_max))
        return 0;
    if (after && !version_ok(after)) {
        cu_http_error(resp, 400, "invalid",
                      "query 'after' must be a job's \"version\" (%d lowercase hex digits)",
                      EX_JOB_VERSION_LEN);
        return 0;
    }
    if (wait_ms > 0 && !after) {
        cu_http_error(resp, 400, "invalid",
                      "query 'wait_ms' needs 'after' (the \"version\" last seen)");
        return 0;
    }
    pthread_once(&watch.once, watch_init);
    cu_mono_deadline(&deadline, wait_ms);
    /* The generation before the read: a change after it wakes us. */
    pthread_mutex_lock(&watch.mu);
    gen = watch.gen;
    stops = watch.stops;
    pthread_mutex_unlock(&watch.mu);
    for (;;) {
        bool changed;
        j = ex_job_get(st, req->params[0], req->signer, &f);
        if (!j)
            break;
        job_version(j, version);
        if (wait_ms == 0 || strcmp(version, after) != 0)
            break;
        pthread_mutex_lock(&watch.mu);
        while (watch.gen == gen && watch.stops == stops &&
               pthread_cond_timedwait(&watch.cv, &watch.mu, &deadline) != ETIMEDOUT)
            ;
        changed = watch.gen != gen && watch.stops == stops;
        gen = watch.gen;
        pthread_mutex_unlock(&watch.mu);
        if (!changed)
            break; /* timed out, or the exchange stops: the job as it is */
        json_decref(j);
    }
    if (j) {
        json_object_set_new(j, "version", json_string(version));
        if (inline_max > 0)
            job_inline_outputs(st, j, inline_max);
    }
    reply_result(resp, j, &f);
    return 0;
}


static int h_job_cancel(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_fail f = {0};

    if (!job_param_ok(req, resp))
        return 0;
    if (ex_job_cancel(app_of(req), req->params[0], req->signer, cu_now_ms(), &f)) {
        reply_fail(resp, &f);
        return 0;
    }
    cu_http_json(resp, 200, json_pack("{s:s,s:s}", "id", req->params[0], "state", "cancelled"));
    return 0;
}

/* Appends s (n bytes) to out as UTF-8, each invalid sequence replaced by
 * U+FFFD. */
static int utf8_sanitize(const unsigned char *s, size_t n, struct cu_buf *out)
{
    static const char repl[] = "\xEF\xBF\xBD";
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len = 0;
        uint32_t cp = 0, min = 0;
        if (c < 0x80) {
            len = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        }
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                ok = false;
            else
                cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (ok && len > 1 && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
            ok = false;
        if (!ok) {
            if (cu_buf_append(out, repl, 3))
                return -CU_ENOMEM;
            i++;
            continue;
        }
        if (cu_buf_append(out, s + i, len))
            return -CU_ENOMEM;
        i += len;
    }
    return 0;
}

/* The first LOG_CAP bytes of a log blob as a JSON string ("" when none or
 * gone). */
static json_t *log_text(struct ex_state *st, const char *hex)
{
    struct cu_buf raw = CU_BUF_INIT(LOG_CAP), clean = CU_BUF_INIT(3 * LOG_CAP + 16);
    char path[CU_PATH_MAX];
    struct cu_hash h;
    char chunk[65536];
    json_t *j = NULL;
    int fd = -1;

    if (!hex[0] || cu_hash_from_hex(hex, &h) || cu_blob_path(&st->blobs, &h, path, sizeof path))
        return json_string("");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return json_string("");
    while (raw.len < LOG_CAP) {
        size_t want = LOG_CAP - raw.len < sizeof chunk ? LOG_CAP - raw.len : sizeof chunk;
        ssize_t r = read(fd, chunk, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (cu_buf_append(&raw, chunk, (size_t)r))
            break;
    }
    close(fd);
    if (utf8_sanitize((const unsigned char *)(raw.data ? raw.data : ""), raw.len, &clean) == 0)
        j = json_stringn(cu_buf_str(&clean), clean.len);
    cu_buf_release(&raw);
    cu_buf_release(&clean);
    return j;
}

static int h_job_logs(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct ex_logs_ref ref;
    struct ex_fail f = {0};
    json_t *out, *so, *se;
    int64_t idx;

    if (!job_param_ok(req, resp))
        return 0;
    if (cu_parse_i64(req->params[1], 0, INT32_MAX, &idx) != 0) {
        cu_http_error(resp, 404, "not_found", "job '%s' has no task '%.32s'", req->params[0],
                      req->params[1]);
        return 0;
    }
    if (ex_logs_find(st, req->params[0], idx, req->signer, &ref, &f)) {
        reply_fail(resp, &f);
        return 0;
    }
    so = log_text(st, ref.stdout_hash);
    se = log_text(st, ref.stderr_hash);
    out = json_pack("{s:s,s:I,s:I,s:s,s:o,s:o,s:o,s:o}", "job", req->params[0], "task",
                    (json_int_t)idx, "replica", (json_int_t)ref.replica, "status", ref.status,
                    "exit_code", ref.has_exit ? json_integer(ref.exit_code) : json_null(), "reason",
                    ref.has_reason ? json_string(ref.reason) : json_null(), "stdout",
                    so ? so : json_string(""), "stderr", se ? se : json_string(""));
    if (!out) {
        cu_http_error(resp, 500, "internal", "out of memory");
        return 0;
    }
    cu_http_json(resp, 200, out);
    return 0;
}

/* ---- providers ----------------------------------------------------------------- */

static int h_hello(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct ex_hello h = {.price_per_cu = EX_DEFAULT_PRICE_PER_CU,
                         .cu_factor_milli = EX_DEFAULT_CU_FACTOR_MILLI};
    struct cu_err e = {0};
    struct ex_fail f = {0};
    json_t *body;
    char *allow_s = NULL;
    int rc;

    body = body_object(req, resp, false);
    if (!body)
        return 0;
    /* Unknown keys are allowed: newer providers may say more. */
    rc = cu_json_get_u64(body, NULL, "slots", true, &h.slots, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "cores", true, &h.cores, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "memory", true, &h.memory, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "gpus", false, &h.gpus, &e);
    if (!rc)
        rc = cu_json_get_str(body, NULL, "version", false, &h.version, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "price_per_cu", false, &h.price_per_cu, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "cu_factor_milli", false, &h.cu_factor_milli, &e);
    if (!rc)
        rc = cu_json_get_str(body, NULL, "owner", false, &h.owner, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "disk", false, &h.disk, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    if (h.owner && !cu_ledger_id_ok(h.owner)) {
        cu_http_error(resp, 400, "invalid", "field 'owner' must be an id (64 lowercase hex)");
        goto out_free;
    }
    {
        json_t *al = json_object_get(body, "allow_images"), *v;
        size_t i;
        if (al) {
            struct cu_hash hh;
            if (!json_is_array(al) || json_array_size(al) > 64) {
                cu_http_error(resp, 400, "invalid",
                              "field 'allow_images' must be a list of at most 64 image hashes");
                goto out_free;
            }
            json_array_foreach(al, i, v) {
                if (!json_is_string(v) || cu_hash_from_hex(json_string_value(v), &hh) != 0) {
                    cu_http_error(resp, 400, "invalid",
                                  "field 'allow_images[%zu]' must be 64 lowercase hex", i);
                    goto out_free;
                }
            }
            allow_s = json_dumps(al, JSON_COMPACT);
            h.allow_images = allow_s;
        }
    }
    if (h.price_per_cu > CU_AMOUNT_MAX) {
        cu_http_error(resp, 400, "invalid", "field 'price_per_cu' must be at most %llu",
                      (unsigned long long)CU_AMOUNT_MAX);
        goto out_free;
    }
    if (h.cu_factor_milli < EX_CU_FACTOR_MIN || h.cu_factor_milli > EX_CU_FACTOR_MAX) {
        cu_http_error(resp, 400, "invalid", "field 'cu_factor_milli' must be %d..%d",
                      EX_CU_FACTOR_MIN, EX_CU_FACTOR_MAX);
        goto out_free;
    }
    if (h.version && strlen(h.version) > 64) {
        cu_http_error(resp, 400, "invalid", "field 'version' is longer than 64 chars");
        goto out_free;
    }
    if (ex_provider_hello(st, req->signer, &h, cu_now_ms(), &f)) {
        reply_fail(resp, &f);
        goto out_free;
    }
    cu_http_json(resp, 200,
                 json_pack("{s:I,s:I,s:I}", "lease_ms", (json_int_t)st->lease_ms, "heartbeat_ms",
                           (json_int_t)cu_lease_heartbeat_ms(st->lease_ms), "time_ms",
                           (json_int_t)cu_now_ms()));
out_free:
    free(allow_s);
    json_decref(body);
    return 0;
}

/* A lease as JSON text into out, its "spec" last: the lease's other
 * fields dumped, then the spec's text, which *spec_txt caches for the
 * spec object *spec_of (the leases of one job in a batch share it, so a
 * batch of 16 dumps its spec once, not 16 times: the spec is most of a
 * trivial lease). 0 or negative. */
static int lease_text(json_t *lease, struct cu_buf *out, const json_t **spec_of,
                      struct cu_buf *spec_txt)
{
    json_t *spec = json_incref(json_object_get(lease, "spec"));
    size_t start = out->len;
    int rc;

    if (!spec)
        return cu_json_dump_unsorted(lease, out);
    rc = json_object_del(lease, "spec") == 0 ? cu_json_dump_unsorted(lease, out) : -CU_ENOMEM;
    /* Back in the object (now last), should the caller fall back to
     * dumping it whole. */
    if (json_object_set(lease, "spec", spec) != 0 && !rc)
        rc = -CU_ENOMEM;
    if (!rc && (out->len - start < 2 || out->data[out->len - 1] != '}'))
        rc = -CU_EINVAL;
    if (!rc && *spec_of != spec) {
        cu_buf_reset(spec_txt);
        rc = cu_json_dump_unsorted(spec, spec_txt);
        *spec_of = rc ? NULL : spec;
    }
    if (!rc) {
        out->len--; /* the lease's closing brace */
        rc = cu_buf_appends(out, out->len - start > 1 ? ",\"spec\":" : "\"spec\":");
    }
    if (!rc)
        rc = cu_buf_append(out, spec_txt->data, spec_txt->len);
    if (!rc)
        rc = cu_buf_append(out, "}", 1);
    json_decref(spec);
    return rc;
}

/* The answer of a claim that got leases ({"lease":{...}} or
 * {"leases":[...]}) as raw JSON text, each job's spec dumped once
 * (lease_text). Falls back to the JSON path on any failure. */
static void claim_respond(struct cu_http_resp *resp, json_t *answer)
{
    struct cu_buf out = CU_BUF_INIT(256u << 20), spec_txt = CU_BUF_INIT(256u << 20);
    const json_t *spec_of = NULL;
    json_t *one = json_object_get(answer, "lease"), *many = json_object_get(answer, "leases");
    int rc = 0;

    if (!one && !json_is_array(many)) {
        cu_http_json(resp, 200, answer);
        return;
    }
    if (one) {
        rc = cu_buf_appends(&out, "{\"lease\":");
        if (!rc)
            rc = lease_text(one, &out, &spec_of, &spec_txt);
    } else {
        rc = cu_buf_appends(&out, "{\"leases\":[");
        for (size_t i = 0; !rc && i < json_array_size(many); i++) {
            if (i)
                rc = cu_buf_append(&out, ",", 1);
            if (!rc)
                rc = lease_text(json_array_get(many, i), &out, &spec_of, &spec_txt);
        }
        if (!rc)
            rc = cu_buf_append(&out, "]", 1);
    }
    if (!rc)
        rc = cu_buf_append(&out, "}\n", 2);
    cu_buf_release(&spec_txt);
    if (rc) {
        /* The leases are granted: answer them the plain way. */
        cu_buf_release(&out);
        cu_http_json(resp, 200, answer);
        return;
    }
    json_decref(answer);
    resp->status = 200;
    resp->raw_len = out.len;
    resp->raw = cu_buf_detach(&out);
    resp->content_type = "application/json";
    if (!resp->raw)
        cu_http_error(resp, 500, "internal", "out of memory");
}

static int h_claim(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"wait_ms", "free", "max", "sequential", NULL};
    static const char *const free_keys[] = {"cores", "memory", "gpus", NULL};
    struct ex_state *st = app_of(req);
    struct ex_free fr = {0};
    struct cu_err e = {0};
    struct ex_fail f = {0};
    uint64_t wait_ms = DEFAULT_WAIT_MS, max = 0;
    json_t *body, *free_j, *lease = NULL;
    int rc;

    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "wait_ms", false, &wait_ms, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "max", false, &max, &e);
    if (!rc)
        rc = cu_json_get_bool(body, NULL, "sequential", false, &fr.sequential, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    /* "max" asks for a batch ({"leases":[...]}); without it the answer is
     * the one {"lease":...} that providers have always read. */
    if (json_object_get(body, "max") && (max < 1 || max > EX_MAX_CLAIM_BATCH)) {
        cu_http_error(resp, 400, "invalid", "field 'max' must be 1..%d", EX_MAX_CLAIM_BATCH);
        goto out_free;
    }
    if (wait_ms > EX_MAX_WAIT_MS) {
        cu_http_error(resp, 400, "invalid", "field 'wait_ms' must be at most %d", EX_MAX_WAIT_MS);
        goto out_free;
    }
    free_j = json_object_get(body, "free");
    if (!free_j) {
        cu_http_error(resp, 400, "invalid", "missing field 'free'");
        goto out_free;
    }
    rc = cu_json_only_keys(free_j, "free", free_keys, &e);
    if (!rc)
        rc = cu_json_get_u64(free_j, "free", "cores", true, &fr.cores, &e);
    if (!rc)
        rc = cu_json_get_u64(free_j, "free", "memory", true, &fr.memory, &e);
    if (!rc)
        rc = cu_json_get_u64(free_j, "free", "gpus", false, &fr.gpus, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    if (ex_claim_batch(st, req->signer, &fr, (int64_t)wait_ms, (unsigned)max, &lease, &f)) {
        reply_fail(resp, &f);
        goto out_free;
    }
    if (lease)
        claim_respond(resp, lease);
    else
        resp->status = 204;
out_free:
    json_decref(body);
    return 0;
}

/* The {id} capture of a replica route; answers 404 when it is no id. */
static int replica_param(struct cu_http_req *req, struct cu_http_resp *resp, int64_t *id)
{
    if (cu_parse_i64(req->params[0], 1, INT64_MAX, id) != 0) {
        cu_http_error(resp, 404, "not_found", "replica '%.32s' not found", req->params[0]);
        return -CU_ENOTFOUND;
    }
    return 0;
}

static int h_heartbeat(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"state", "answer", NULL};
    struct ex_fail f = {0};
    struct cu_err e = {0};
    const char *state = "running", *answer = NULL;
    json_t *body, *out = NULL;
    int64_t id;
    int rc;

    if (replica_param(req, resp, &id))
        return 0;
    body = body_object(req, resp, true);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (!rc)
        rc = cu_json_get_str(body, NULL, "state", false, &state, &e);
    if (!rc)
        rc = cu_json_get_str(body, NULL, "answer", false, &answer, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    if (strcmp(state, "running") != 0) {
        cu_http_error(resp, 400, "invalid", "field 'state' must be \"running\"");
        goto out_free;
    }
    if (ex_heartbeat(app_of(req), id, req->signer, answer, cu_now_ms(), &out, &f))
        reply_fail(resp, &f);
    else
        cu_http_json(resp, 200, out);
out_free:
    json_decref(body);
    return 0;
}

/* A {"hash","size"} object (stdout, stderr, outputs[i]); names the field. */
static int hash_size(const json_t *o, const char *what, const char **hash, uint64_t *size,
                     struct cu_err *e)
{
    static const char *const keys[] = {"hash", "size", NULL};
    static const char *const keys_named[] = {"name", "hash", "size", NULL};
    int rc;

    if (!json_is_object(o))
        return cu_err_set(e, -CU_EINVAL, "field '%s' must be an object", what);
    rc = cu_json_only_keys(o, what, json_object_get(o, "name") ? keys_named : keys, e);
    if (!rc)
        rc = cu_json_get_str(o, what, "hash", true, hash, e);
    if (!rc)
        rc = cu_json_get_u64(o, what, "size", true, size, e);
    if (!rc && !cu_hash_hex_valid(*hash))
        rc = cu_err_set(e, -CU_EINVAL, "field '%s.hash' must be 64 lowercase hex chars", what);
    return rc;
}

/* A relative path under /out: components that are safe names. */
static bool output_name_ok(const char *name)
{
    char comp[256];
    const char *p = name;

    if (!*name || strlen(name) > 1024)
        return false;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= sizeof comp)
            return false;
        memcpy(comp, p, len);
        comp[len] = '\0';
        if (!cu_name_is_safe(comp))
            return false;
        p += len;
        if (*p == '/' && !*++p)
            return false;
    }
    return true;
}

/* Everything parsed from a report body; strings borrowed from the JSON. */
struct report_in {
    struct ex_report r;
    struct cu_merkle_leaf *leaves;
    uint64_t *sizes;
    size_t nout;
    json_t *outputs; /* borrowed */
    json_t *blobs;   /* borrowed: inline blobs {hash: base64}, or NULL */
    uint64_t stdout_size, stderr_size;
};

/* Strict validation of a report body (docs/api.md); names the bad field. */
static int report_parse(json_t *body, struct report_in *in, struct cu_err *e)
{
    static const char *const keys[] = {"status",  "exit_code",   "reason", "cpu_ms",
                                       "wall_ms", "outputs",     "merkle_root", "stdout",
                                       "stderr",  "blobs",       NULL};
    const char *status = NULL;
    json_t *v;
    int rc;

    rc = cu_json_only_keys(body, NULL, keys, e);
    if (!rc)
        rc = cu_json_get_str(body, NULL, "status", true, &status, e);
    if (rc)
        return rc;
    if (ex_status_parse(status, &in->r.status))
        return cu_err_set(e, -CU_EINVAL,
                          "field 'status' must be one of ok, failed, timeout, output_limit, "
                          "killed, error (got '%.32s')",
                          status);
    v = json_object_get(body, "exit_code");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v))
            return cu_err_set(e, -CU_EINVAL, "field 'exit_code' must be an integer or null");
        in->r.has_exit = true;
        in->r.exit_code = json_integer_value(v);
    }
    v = json_object_get(body, "reason");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v))
            return cu_err_set(e, -CU_EINVAL, "field 'reason' must be a string or null");
        if (json_string_length(v) > MAX_REASON)
            return cu_err_set(e, -CU_EINVAL, "field 'reason' is longer than %d bytes", MAX_REASON);
        in->r.reason = json_string_value(v);
    }
    rc = cu_json_get_u64(body, NULL, "cpu_ms", false, &in->r.cpu_ms, e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "wall_ms", false, &in->r.wall_ms, e);
    if (rc)
        return rc;

    v = json_object_get(body, "merkle_root");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !cu_hash_hex_valid(json_string_value(v)))
            return cu_err_set(e, -CU_EINVAL, "field 'merkle_root' must be 64 lowercase hex chars");
        in->r.merkle_root = json_string_value(v);
    } else if (in->r.status == EX_ST_OK) {
        return cu_err_set(e, -CU_EINVAL,
                          "missing field 'merkle_root' (required when status is ok)");
    }

    v = json_object_get(body, "outputs");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v))
            return cu_err_set(e, -CU_EINVAL, "field 'outputs' must be an array");
        if (json_array_size(v) > MAX_OUTPUTS)
            return cu_err_set(e, -CU_EINVAL, "field 'outputs' has more than %d files", MAX_OUTPUTS);
        in->outputs = v;
        in->nout = json_array_size(v);
        in->leaves = calloc(in->nout ? in->nout : 1, sizeof *in->leaves);
        in->sizes = calloc(in->nout ? in->nout : 1, sizeof *in->sizes);
        if (!in->leaves || !in->sizes)
            return cu_err_set(e, -CU_ENOMEM, "out of memory");
        for (size_t i = 0; i < in->nout; i++) {
            json_t *o = json_array_get(v, i);
            const char *name = NULL, *hash = NULL;
            char what[32];
            snprintf(what, sizeof what, "outputs[%zu]", i);
            rc = hash_size(o, what, &hash, &in->sizes[i], e);
            if (!rc)
                rc = cu_json_get_str(o, what, "name", true, &name, e);
            if (rc)
                return rc;
            if (!output_name_ok(name))
                return cu_err_set(e, -CU_EINVAL,
                                  "field '%s.name': '%.64s' is not a safe relative path", what,
                                  name);
            if (cu_add_u64(in->r.outputs_size, in->sizes[i], &in->r.outputs_size))
                return cu_err_set(e, -CU_EINVAL, "field 'outputs': sizes overflow");
            in->leaves[i].name = name;
            (void)cu_hash_from_hex(hash, &in->leaves[i].hash);
        }
    } else if (in->r.status == EX_ST_OK) {
        return cu_err_set(e, -CU_EINVAL, "missing field 'outputs' (required when status is ok)");
    }

    v = json_object_get(body, "stdout");
    if (v && !json_is_null(v) &&
        (rc = hash_size(v, "stdout", &in->r.stdout_hash, &in->stdout_size, e)))
        return rc;
    v = json_object_get(body, "stderr");
    if (v && !json_is_null(v) &&
        (rc = hash_size(v, "stderr", &in->r.stderr_hash, &in->stderr_size, e)))
        return rc;

    v = json_object_get(body, "blobs");
    if (v && !json_is_null(v)) {
        const char *key;
        json_t *val;
        if (!json_is_object(v))
            return cu_err_set(e, -CU_EINVAL, "field 'blobs' must be an object {hash: base64}");
        json_object_foreach(v, key, val) {
            if (!cu_hash_hex_valid(key))
                return cu_err_set(e, -CU_EINVAL,
                                  "field 'blobs': key '%.80s' is not 64 lowercase hex chars",
                                  key);
            if (!json_is_string(val))
                return cu_err_set(e, -CU_EINVAL, "field 'blobs.%.12s…' must be a base64 string",
                                  key);
        }
        in->blobs = v;
    }
    return 0;
}

/* True when hex is a blob the report names (an output, stdout or
 * stderr); *size gets the size it declares. */
static bool report_names(const struct report_in *in, const char *hex, uint64_t *size)
{
    struct cu_hash h;

    if (cu_hash_from_hex(hex, &h))
        return false;
    for (size_t i = 0; i < in->nout; i++)
        if (cu_hash_eq(&in->leaves[i].hash, &h)) {
            *size = in->sizes[i];
            return true;
        }
    if (in->r.stdout_hash && strcmp(in->r.stdout_hash, hex) == 0) {
        *size = in->stdout_size;
        return true;
    }
    if (in->r.stderr_hash && strcmp(in->r.stderr_hash, hex) == 0) {
        *size = in->stderr_size;
        return true;
    }
    return false;
}

/* Stores the report's inline blobs (docs/api.md "blobs"): each must be
 * named by the report with the size it declares and hash to its key, and
 * all of them together hold at most CU_REPORT_INLINE_MAX bytes. Each is
 * written as a PUT would write it (temp file, fsync, rename, directory
 * fsync) before the report is applied, so an answered report never names
 * a blob a crash could lose. 0, or negative with f set. */
static int report_store_inline(struct ex_state *st, const struct report_in *in,
                               struct ex_fail *f)
{
    unsigned char *bin;
    size_t left = CU_REPORT_INLINE_MAX;
    const char *key;
    json_t *val;
    int rc = 0;

    if (!in->blobs || json_object_size(in->blobs) == 0)
        return 0;
    bin = malloc(CU_REPORT_INLINE_MAX + 1);
    if (!bin) {
        return ex_fail_set(f, 500, "internal", "out of memory");
    }
    json_object_foreach(in->blobs, key, val) {
        const char *b64 = json_string_value(val);
        size_t b64len = json_string_length(val), n = 0;
        uint64_t declared = 0, have;
        struct cu_hash want, got;

        if (!report_names(in, key, &declared)) {
            ex_fail_set(f, 400, "invalid",
                          "field 'blobs.%.12s…': not an output, stdout or stderr of this report",
                          key);
            rc = -CU_EINVAL;
            break;
        }
        /* Base64 of n bytes is 4 * ceil(n / 3) characters. */
        if (b64len / 4 * 3 > left + 2 || declared > left) {
            ex_fail_set(f, 413, "too_large",
                          "field 'blobs': more than %d bytes inline; upload large blobs with "
                          "PUT /v1/blobs/{hash}",
                          CU_REPORT_INLINE_MAX);
            rc = -CU_ETOOBIG;
            break;
        }
        if (sodium_base642bin(bin, left, b64, b64len, NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
            ex_fail_set(f, 400, "invalid",
                          "field 'blobs.%.12s…' is not base64 (RFC 4648, with padding)", key);
            rc = -CU_EINVAL;
            break;
        }
        (void)cu_hash_from_hex(key, &want);
        cu_hash_mem(bin, n, &got);
        if (!cu_hash_eq(&want, &got)) {
            ex_fail_set(f, 400, "hash_mismatch",
                          "field 'blobs.%.12s…': the content does not hash to its key", key);
            rc = -CU_ECORRUPT;
            break;
        }
        if (n != declared) {
            ex_fail_set(f, 400, "invalid",
                          "field 'blobs.%.12s…': %zu bytes, but the report says %llu", key, n,
                          (unsigned long long)declared);
            rc = -CU_EINVAL;
            break;
        }
        left -= n;
        if (cu_blob_stat(&st->blobs, &want, &have) == 0 && have == n)
            continue;
        rc = cu_blob_put_mem(&st->blobs, bin, n, NULL);
        if (rc) {
            cu_error("report: cannot store inline blob %s: %s", key, cu_strerror(rc));
            ex_fail_set(f, 500, "internal", "cannot store the blob");
            break;
        }
    }
    free(bin);
    return rc;
}

/* Adds hex to the missing list unless the blob is stored with that size;
 * a size mismatch is a 400 (returned as -CU_EINVAL with e set). */
static int blob_check(struct ex_state *st, const char *what, const char *hex, uint64_t size,
                      json_t *missing, struct cu_err *e)
{
    struct cu_hash h;
    uint64_t have;

    if (cu_hash_from_hex(hex, &h))
        return cu_err_set(e, -CU_EINVAL, "field '%s.hash' is not a hash", what);
    if (cu_blob_stat(&st->blobs, &h, &have) != 0) {
        json_array_append_new(missing, json_string(hex));
        return 0;
    }
    if (have != size)
        return cu_err_set(e, -CU_EINVAL, "field '%s.size': blob %.12s has %llu bytes, not %llu",
                          what, hex, (unsigned long long)have, (unsigned long long)size);
    return 0;
}

/* The checks of a parsed report against the blob store and the job
 * (limit: its output limit): every output and log blob stored with its
 * size, the Merkle root, the size limit; *outputs_s gets the canonical
 * outputs (owned, NULL when none). 0, or negative with f set: 409
 * missing_blobs with the hashes in missing, 400, 500. */
static int report_verify(struct ex_state *st, struct report_in *in, uint64_t limit,
                         char **outputs_s, json_t *missing, struct ex_fail *f)
{
    struct cu_err e = {0};
    int rc = 0;

    *outputs_s = NULL;
    for (size_t i = 0; i < in->nout && !rc; i++) {
        char what[32], hex[CU_HASH_HEX_LEN + 1];
        snprintf(what, sizeof what, "outputs[%zu]", i);
        cu_hash_to_hex(&in->leaves[i].hash, hex);
        rc = blob_check(st, what, hex, in->sizes[i], missing, &e);
    }
    if (!rc && in->r.stdout_hash)
        rc = blob_check(st, "stdout", in->r.stdout_hash, in->stdout_size, missing, &e);
    if (!rc && in->r.stderr_hash)
        rc = blob_check(st, "stderr", in->r.stderr_hash, in->stderr_size, missing, &e);
    if (rc == -CU_ENOMEM)
        return ex_fail_set(f, 500, "internal", "out of memory");
    if (rc)
        return ex_fail_set(f, 400, "invalid", "%s", cu_err_msg(&e, rc));
    if (json_array_size(missing))
        return ex_fail_set(f, 409, "missing_blobs", "upload the outputs and logs before reporting");
    if (in->outputs) {
        struct cu_hash root, claimed;
        rc = cu_merkle_root(in->leaves, in->nout, &root);
        if (rc == -CU_EINVAL)
            return ex_fail_set(f, 400, "invalid", "field 'outputs': two files have the same name");
        else if (rc)
            return ex_fail_set(f, 500, "internal", "out of memory");
        if (in->r.merkle_root &&
            (cu_hash_from_hex(in->r.merkle_root, &claimed) || !cu_hash_eq(&root, &claimed)))
            return ex_fail_set(f, 400, "invalid",
                               "field 'merkle_root' is not the Merkle root of 'outputs'");
        /* A run stopped for its output size says so; only a success must fit. */
        if (in->r.status == EX_ST_OK && in->r.outputs_size > limit)
            return ex_fail_set(f, 400, "invalid",
                               "field 'outputs': %llu bytes in total, over the job's output "
                               "limit of %llu",
                               (unsigned long long)in->r.outputs_size,
                               (unsigned long long)limit);
        *outputs_s = cu_json_dumps(in->outputs);
        if (!*outputs_s)
            return ex_fail_set(f, 500, "internal", "out of memory");
    }
    return 0;
}

/* 409 missing_blobs lists the absent hashes; other failures as usual. */
static void reply_report_fail(struct cu_http_resp *resp, const struct ex_fail *f,
                              json_t *missing)
{
    if (f->code && strcmp(f->code, "missing_blobs") == 0)
        cu_http_json(resp, 409,
                     json_pack("{s:{s:s,s:s,s:O}}", "error", "code", "missing_blobs", "message",
                               f->msg, "missing", missing));
    else
        reply_fail(resp, f);
}

static int h_report(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct report_in in;
    struct cu_err e = {0};
    struct ex_fail f = {0};
    json_t *body, *out = NULL, *missing = NULL;
    char *outputs_s = NULL;
    uint64_t limit = 0;
    bool done = false;
    int64_t id;
    int rc;

    memset(&in, 0, sizeof in);
    if (replica_param(req, resp, &id))
        return 0;
    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = report_parse(body, &in, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    /* Holder, lease and idempotence first: a lost lease is 409 whatever
     * the report says. */
    if (ex_report_check(st, id, req->signer, cu_now_ms(), &limit, &done, &out, &f)) {
        reply_fail(resp, &f);
        goto out_free;
    }
    if (done) {
        cu_http_json(resp, 200, out);
        out = NULL;
        goto out_free;
    }

    if (report_store_inline(st, &in, &f)) {
        reply_fail(resp, &f);
        goto out_free;
    }
    missing = json_array();
    if (!missing) {
        cu_http_error(resp, 500, "internal", "out of memory");
        goto out_free;
    }
    if (report_verify(st, &in, limit, &outputs_s, missing, &f)) {
        reply_report_fail(resp, &f, missing);
        goto out_free;
    }
    in.r.outputs_json = outputs_s;
    in.r.body = req->body;
    in.r.body_len = req->body_len;
    if (ex_report_apply(st, id, req->signer, &in.r, cu_now_ms(), &out, &f)) {
        reply_fail(resp, &f);
        goto out_free;
    }
    cu_http_json(resp, 200, out);
    out = NULL;
out_free:
    json_decref(out);
    json_decref(missing);
    free(outputs_s);
    free(in.leaves);
    free(in.sizes);
    json_decref(body);
    return 0;
}

/* One report of a batch: what h_report reads from its path and body. */
struct batch_item {
    int64_t id;
    json_t *fields; /* the report without "replica" (owned) */
    struct report_in in;
    char *outputs_s;
    json_t *missing;
};

/* {"replica":R,"error":{"code","message"[,"missing"]}} for a refused report. */
static json_t *batch_error(int64_t id, const struct ex_fail *f, json_t *missing)
{
    json_t *err = json_pack("{s:s,s:s}", "code", f->code ? f->code : "internal", "message",
                            f->msg);

    if (err && f->code && strcmp(f->code, "missing_blobs") == 0 && missing)
        json_object_set(err, "missing", missing);
    return json_pack("{s:I,s:o}", "replica", (json_int_t)id, "error", err);
}

/* Whether a report of the batch names a file (outputs, stdout, stderr)
 * or carries inline blobs: then the holder is checked before the files
 * are, and the output limit is needed. */
static bool reports_need_check(const struct batch_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct report_in *in = &items[i].in;
        if (in->nout || in->r.stdout_hash || in->r.stderr_hash ||
            (in->blobs && json_object_size(in->blobs)))
            return true;
    }
    return false;
}

/* POST /v1/reports: several reports of one holder in one signed request
 * and one transaction (docs/api.md "Batched reports"). Each is checked as
 * POST /v1/replicas/{id}/report checks it and answered on its own. */
static int h_reports(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"reports", NULL};
    struct ex_state *st = app_of(req);
    struct batch_item *items = NULL;
    const struct ex_report **reps = NULL;
    struct ex_fail *fails = NULL, f = {0};
    json_t *body, *list, **outs = NULL, *results = NULL;
    struct cu_err e = {0};
    int64_t *ids = NULL;
    uint64_t *limits = NULL;
    bool *dones = NULL;
    int *rcs = NULL;
    size_t n = 0;
    int rc;

    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    list = json_object_get(body, "reports");
    if (!json_is_array(list) || json_array_size(list) < 1 ||
        json_array_size(list) > EX_MAX_REPORT_BATCH) {
        cu_http_error(resp, 400, "invalid", "field 'reports' must be an array of 1..%d reports",
                      EX_MAX_REPORT_BATCH);
        goto out_free;
    }
    n = json_array_size(list);
    items = calloc(n, sizeof *items);
    reps = calloc(n, sizeof *reps);
    fails = calloc(n, sizeof *fails);
    outs = calloc(n, sizeof *outs);
    ids = calloc(n, sizeof *ids);
    results = json_array();
    if (!items || !reps || !fails || !outs || !ids || !results) {
        cu_http_error(resp, 500, "internal", "out of memory");
        goto out_free;
    }
    /* Shape first: a malformed entry refuses the whole request. */
    for (size_t i = 0; i < n; i++) {
        struct batch_item *it = &items[i];
        json_t *o = json_array_get(list, i);
        char prefix[40];
        snprintf(prefix, sizeof prefix, "reports[%zu]: ", i);
        if (!json_is_object(o) || !json_is_integer(json_object_get(o, "replica")) ||
            json_integer_value(json_object_get(o, "replica")) < 1) {
            cu_http_error(resp, 400, "invalid", "%sfield 'replica' must be a replica id", prefix);
            goto out_free;
        }
        it->id = ids[i] = json_integer_value(json_object_get(o, "replica"));
        for (size_t k = 0; k < i; k++)
            if (items[k].id == it->id) {
                cu_http_error(resp, 400, "invalid", "%sreplica %lld is reported twice", prefix,
                              (long long)it->id);
                goto out_free;
            }
        it->fields = json_copy(o);
        if (!it->fields || json_object_del(it->fields, "replica") != 0) {
            cu_http_error(resp, 500, "internal", "out of memory");
            goto out_free;
        }
        rc = report_parse(it->fields, &it->in, &e);
        if (rc) {
            reply_invalid(resp, prefix, &e, rc);
            goto out_free;
        }
    }
    /* Then each on its own, as h_report: holder, lease and idempotence
     * (all in one turn of the state lock), then blobs and roots. */
    limits = calloc(n, sizeof *limits);
    dones = calloc(n, sizeof *dones);
    rcs = calloc(n, sizeof *rcs);
    if (!limits || !dones || !rcs) {
        cu_http_error(resp, 500, "internal", "out of memory");
        goto out_free;
    }
    /* The early look is for reports with files: it refuses a stranger
     * before any blob is stored or looked up, and gives the job's output
     * limit. A batch of reports without outputs, logs or inline blobs
     * (trivial tasks) has nothing to guard; ex_report_apply_batch makes
     * the same checks in its own turn of the lock, so one turn less. */
    if (reports_need_check(items, n))
        ex_report_check_many(st, req->signer, n, ids, cu_now_ms(), limits, dones, outs, fails,
                             rcs);
    for (size_t i = 0; i < n; i++) {
        struct batch_item *it = &items[i];
        uint64_t limit = limits[i];
        if (rcs[i] || dones[i])
            continue;
        if (report_store_inline(st, &it->in, &fails[i]))
            continue;
        it->missing = json_array();
        if (!it->missing) {
            ex_fail_set(&fails[i], 500, "internal", "out of memory");
            continue;
        }
        if (report_verify(st, &it->in, limit, &it->outputs_s, it->missing, &fails[i]))
            continue;
        it->in.r.outputs_json = it->outputs_s;
        it->in.r.body = NULL; /* the batch's body is stored once */
        reps[i] = &it->in.r;
    }
    if (ex_report_apply_batch(st, req->signer, n, ids, reps, req->body, req->body_len,
                              cu_now_ms(), outs, fails, &f)) {
        reply_fail(resp, &f);
        goto out_free;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *r = outs[i] ? json_incref(outs[i]) : batch_error(items[i].id, &fails[i],
                                                                 items[i].missing);
        if (!r || json_array_append_new(results, r) != 0) {
            cu_http_error(resp, 500, "internal", "out of memory");
            goto out_free;
        }
    }
    cu_http_json(resp, 200, json_pack("{s:O}", "results", results));
out_free:
    for (size_t i = 0; items && i < n; i++) {
        json_decref(items[i].fields);
        json_decref(items[i].missing);
        free(items[i].outputs_s);
        free(items[i].in.leaves);
        free(items[i].in.sizes);
        if (outs)
            json_decref(outs[i]);
    }
    free(items);
    free(reps);
    free(fails);
    free(outs);
    free(ids);
    free(limits);
    free(dones);
    free(rcs);
    json_decref(results);
    json_decref(body);
    return 0;
}

/* ---- money (docs/api.md "Money") ------------------------------------------------ */

#define LEDGER_DEFAULT_LIMIT 1000
#define LEDGER_MAX_LIMIT 10000
#define HISTORY_DEFAULT_LIMIT 50
#define HISTORY_MAX_LIMIT 1000

/* Query parameter key as an integer in 0..max (def when absent); answers
 * 400 and returns false when it is not. */
static bool query_u64(struct cu_http_req *req, struct cu_http_resp *resp, const char *key,
                      uint64_t def, uint64_t max, uint64_t *out)
{
    const char *v = cu_http_query(req, key);
    int64_t x;

    *out = def;
    if (!v)
        return true;
    if (cu_parse_i64(v, 0, max > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)max, &x) != 0) {
        cu_http_error(resp, 400, "invalid", "query '%s' must be an integer 0..%llu", key,
                      (unsigned long long)max);
        return false;
    }
    *out = (uint64_t)x;
    return true;
}

static int h_wallet(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_fail f = {0};
    json_t *j = ex_wallet(app_of(req), req->signer, &f);

    reply_result(resp, j, &f);
    return 0;
}

static int h_faucet(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"amount", NULL};
    struct ex_state *st = app_of(req);
    struct cu_err e = {0};
    struct ex_fail f = {0};
    uint64_t amount = 0;
    json_t *body, *j;
    int rc;

    if (!st->ledger.devnet) { /* fixed at start: no lock needed */
        cu_http_error(resp, 403, "not_devnet", "the faucet exists only on a devnet exchange");
        return 0;
    }
    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "amount", true, &amount, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    j = ex_faucet(st, req->signer, amount, cu_now_ms(), &f);
    reply_result(resp, j, &f);
out_free:
    json_decref(body);
    return 0;
}

static int h_transfer(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"tx", NULL};
    struct cu_err e = {0};
    struct ex_fail f = {0};
    struct cu_tx tx;
    json_t *body, *j;
    int rc;

    cu_tx_init(&tx, CU_TX_TRANSFER);
    body = body_object(req, resp, false);
    if (!body)
        goto out;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out;
    }
    if (!json_is_object(json_object_get(body, "tx"))) {
        cu_http_error(resp, 400, "invalid", "field 'tx' must be a transaction object");
        goto out;
    }
    rc = cu_tx_from_json(json_object_get(body, "tx"), &tx, &e);
    if (rc) {
        reply_invalid(resp, "tx: ", &e, rc);
        goto out;
    }
    j = ex_transfer(app_of(req), req->signer, &tx, cu_now_ms(), &f); /* consumes tx */
    reply_result(resp, j, &f);
out:
    cu_tx_release(&tx);
    json_decref(body);
    return 0;
}

static int h_wallet_history(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_fail f = {0};
    uint64_t limit;
    json_t *j;

    if (!query_u64(req, resp, "limit", HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, &limit))
        return 0;
    j = ex_wallet_history(app_of(req), req->signer, limit, &f);
    reply_result(resp, j, &f);
    return 0;
}

static int h_ledger(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct ex_fail f = {0};
    struct cu_buf b = CU_BUF_INIT(LIMIT_BLOB); /* 1 GiB of lines at most */
    uint64_t from, limit;

    __atomic_add_fetch(&st->requests, 1, __ATOMIC_RELAXED);
    if (!query_u64(req, resp, "from", 0, (uint64_t)INT64_MAX, &from) ||
        !query_u64(req, resp, "limit", LEDGER_DEFAULT_LIMIT, LEDGER_MAX_LIMIT, &limit))
        return 0;
    if (ex_ledger_lines(st, from, limit, &b, &f) != 0) {
        cu_buf_release(&b);
        reply_fail(resp, &f);
        return 0;
    }
    resp->status = 200;
    resp->raw_len = b.len;
    resp->raw = cu_buf_detach(&b);
    resp->content_type = "application/x-ndjson";
    if (!resp->raw) {
        cu_http_error(resp, 500, "internal", "out of memory");
        return -CU_ENOMEM;
    }
    return 0;
}

static int h_ledger_head(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct ex_fail f = {0};
    json_t *j;

    __atomic_add_fetch(&st->requests, 1, __ATOMIC_RELAXED);
    j = ex_ledger_head(st, &f);
    reply_result(resp, j, &f);
    return 0;
}

static int h_stake(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"amount", NULL};
    struct ex_state *st = app_of(req);
    struct cu_err e = {0};
    struct ex_fail f = {0};
    uint64_t amount = 0;
    bool unstake = strstr(req->path, "/unstake") != NULL;
    json_t *body, *j;
    int rc;

    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (!rc)
        rc = cu_json_get_u64(body, NULL, "amount", true, &amount, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    j = ex_stake(st, req->signer, amount, unstake, cu_now_ms(), &f);
    reply_result(resp, j, &f);
out_free:
    json_decref(body);
    return 0;
}

static int h_challenge_answer(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"p", "q", "answer", NULL};
    struct ex_state *st = app_of(req);
    struct cu_err e = {0};
    struct ex_fail f = {0};
    json_t *body, *j;
    int rc;

    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    j = ex_challenge_answer(st, req->params[0], req->signer, body, cu_now_ms(), &f);
    reply_result(resp, j, &f);
out_free:
    json_decref(body);
    return 0;
}

static int h_commit(struct cu_http_req *req, struct cu_http_resp *resp)
{
    static const char *const keys[] = {"commit", NULL};
    struct ex_fail f = {0};
    struct cu_err e = {0};
    const char *commit = NULL;
    struct cu_hash h;
    json_t *body, *out = NULL;
    int64_t id;
    int rc;

    if (replica_param(req, resp, &id))
        return 0;
    body = body_object(req, resp, false);
    if (!body)
        return 0;
    rc = cu_json_only_keys(body, NULL, keys, &e);
    if (!rc)
        rc = cu_json_get_str(body, NULL, "commit", true, &commit, &e);
    if (rc) {
        reply_invalid(resp, "", &e, rc);
        goto out_free;
    }
    if (cu_hash_from_hex(commit, &h) != 0) {
        cu_http_error(resp, 400, "invalid", "field 'commit' must be 64 lowercase hex chars");
        goto out_free;
    }
    if (ex_commit(app_of(req), id, req->signer, commit, cu_now_ms(), &out, &f))
        reply_fail(resp, &f);
    else
        cu_http_json(resp, 200, out);
out_free:
    json_decref(body);
    return 0;
}

static int h_reputation(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct ex_fail f = {0};
    json_t *j;

    __atomic_add_fetch(&st->requests, 1, __ATOMIC_RELAXED);
    if (!cu_ledger_id_ok(req->params[0])) {
        cu_http_error(resp, 400, "invalid", "'%.80s' is not a provider id (64 lowercase hex)",
                      req->params[0]);
        return 0;
    }
    j = ex_reputation(st, req->params[0], cu_now_ms(), &f);
    reply_result(resp, j, &f);
    return 0;
}

static int h_market(struct cu_http_req *req, struct cu_http_resp *resp)
{
    struct ex_state *st = app_of(req);
    struct ex_fail f = {0};
    json_t *j;

    __atomic_add_fetch(&st->requests, 1, __ATOMIC_RELAXED);
    j = ex_market(st, cu_now_ms(), &f);
    reply_result(resp, j, &f);
    return 0;
}

/* ---- the table ------------------------------------------------------------------- */

/* Requests after which a job may look different to a watcher of GET
 * /v1/jobs/{id}?wait_ms: each wakes the watchers when it succeeded. */
static int notify(int rc, const struct cu_http_resp *resp)
{
    if (resp->status < 300)
        ex_jobs_changed();
    return rc;
}

static int h_job_cancel_n(struct cu_http_req *req, struct cu_http_resp *resp)
{
    return notify(h_job_cancel(req, resp), resp);
}

static int h_claim_n(struct cu_http_req *req, struct cu_http_resp *resp)
{
    return notify(h_claim(req, resp), resp);
}

static int h_heartbeat_n(struct cu_http_req *req, struct cu_http_resp *resp)
{
    return notify(h_heartbeat(req, resp), resp);
}

static int h_report_n(struct cu_http_req *req, struct cu_http_resp *resp)
{
    return notify(h_report(req, resp), resp);
}

static int h_reports_n(struct cu_http_req *req, struct cu_http_resp *resp)
{
    return notify(h_reports(req, resp), resp);
}

static int h_commit_n(struct cu_http_req *req, struct cu_http_resp *resp)
{
    return notify(h_commit(req, resp), resp);
}

#define SIGNED CU_ROUTE_SIGNED
#define WRITES CU_ROUTE_WRITES

static const struct cu_route routes[] = {
    {CU_HTTP_GET, "/v1/health", h_health, 0, 0},
    {CU_HTTP_GET, "/metrics", h_metrics, 0, 0},
    {CU_HTTP_GET | CU_HTTP_HEAD, "/v1/blobs/{hash}", h_blob_get, SIGNED, 0},
    {CU_HTTP_PUT, "/v1/blobs/{hash}", h_blob_put, SIGNED | WRITES | CU_ROUTE_STREAM, LIMIT_BLOB,
     blob_stream_open, blob_stream_write, blob_stream_abort},
    {CU_HTTP_POST, "/v1/jobs", h_job_submit, SIGNED | WRITES, LIMIT_JOB},
    {CU_HTTP_GET, "/v1/jobs", h_job_list, SIGNED, 0},
    {CU_HTTP_GET, "/v1/jobs/{id}", h_job_get, SIGNED, 0},
    {CU_HTTP_POST, "/v1/jobs/{id}/cancel", h_job_cancel_n, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_GET, "/v1/jobs/{id}/tasks/{index}/logs", h_job_logs, SIGNED, 0},
    {CU_HTTP_POST, "/v1/providers/hello", h_hello, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_POST, "/v1/claims", h_claim_n, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_POST, "/v1/replicas/{id}/heartbeat", h_heartbeat_n, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_POST, "/v1/replicas/{id}/report", h_report_n, SIGNED | WRITES, LIMIT_REPORT},
    {CU_HTTP_POST, "/v1/reports", h_reports_n, SIGNED | WRITES, LIMIT_REPORTS},
    {CU_HTTP_GET, "/v1/wallet", h_wallet, SIGNED, 0},
    {CU_HTTP_GET, "/v1/wallet/history", h_wallet_history, SIGNED, 0},
    {CU_HTTP_POST, "/v1/faucet", h_faucet, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_POST, "/v1/transfers", h_transfer, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_GET, "/v1/ledger", h_ledger, 0, 0},
    {CU_HTTP_GET, "/v1/ledger/head", h_ledger_head, 0, 0},
    {CU_HTTP_GET, "/v1/market", h_market, 0, 0},
    {CU_HTTP_POST, "/v1/stake", h_stake, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_POST, "/v1/unstake", h_stake, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_POST, "/v1/challenges/{id}", h_challenge_answer, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_POST, "/v1/replicas/{id}/commit", h_commit_n, SIGNED | WRITES, LIMIT_SMALL},
    {CU_HTTP_GET, "/v1/reputation/{id}", h_reputation, 0, 0},
};

const struct cu_route *ex_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
