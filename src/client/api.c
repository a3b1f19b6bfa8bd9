/* api.c - requester calls to the exchange, with errors phrased for the
 * user (see api.h). */
#include "client/api.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "store/blob.h"

#include "base/banned.h"

#define API_TIMEOUT_MS 30000L
#define API_BLOB_TIMEOUT_MS (30L * 60 * 1000) /* one blob transfer */
#define CLIENT_REF_BYTES 16
#define SUBMIT_TRIES 3

int cu_api_open(struct cu_api *api, const char *url, const struct cu_identity *id,
                struct cu_err *e)
{
    memset(api, 0, sizeof *api);
    cu_http_result_init(&api->res);
    if (cu_snprintf(api->url, sizeof api->url, "%s", url) != 0)
        return cu_err_set(e, -CU_ETOOBIG, "exchange URL is too long");
    api->id = id;
    api->http = cu_http_client_new(url, id);
    if (!api->http)
        return cu_err_set(e, -CU_EINVAL,
                          "cannot use exchange URL '%s' (expected http://HOST[:PORT])", url);
    return 0;
}

void cu_api_close(struct cu_api *api)
{
    cu_http_client_free(api->http);
    api->http = NULL;
    cu_http_result_release(&api->res);
}

bool cu_api_job_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > CU_API_JOB_ID_MAX || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* The part of a transport message after its last ": " (curl's reason). */
static const char *transport_reason(const char *msg)
{
    const char *p = msg, *q;

    while ((q = strstr(p, ": ")) != NULL)
        p = q + 2;
    return *p ? p : "no response";
}

static int status_code(long status)
{
    switch (status) {
    case 400: return -CU_EINVAL;
    case 401: return -CU_EAUTH;
    case 403: return -CU_EPERM;
    case 404: return -CU_ENOTFOUND;
    case 409: return -CU_ECONFLICT;
    case 413: return -CU_ETOOBIG;
    case 502:
    case 503:
    case 504: return -CU_ENET;
    default: return -CU_EPROTO;
    }
}

/* Turns the outcome of one request (rc from the http client, the result in
 * api->res) into 0 for a 2xx, or an error with e phrased for the user. */
static int outcome(struct cu_api *api, int rc, struct cu_err *e)
{
    struct cu_http_result *r = &api->res;

    api->status = r->status;
    api->code[0] = '\0';
    if (rc == -CU_ENET || (rc == 0 && r->status == 0)) {
        cu_snprintf(api->code, sizeof api->code, "%s", "network_error");
        return cu_err_set(e, -CU_ENET, "cannot reach exchange at %s: %s", api->url,
                          transport_reason(r->err_msg));
    }
    if (rc)
        return cu_err_set(e, rc, "%s", r->err_msg[0] ? r->err_msg : cu_strerror(rc));
    if (r->status >= 200 && r->status < 300)
        return 0;
    cu_snprintf(api->code, sizeof api->code, "%s", r->err_code);
    if (r->err_msg[0] && r->err_code[0])
        return cu_err_set(e, status_code(r->status), "%s (HTTP %ld %s)", r->err_msg, r->status,
                          r->err_code);
    /* "http_NNN" is the client's stand-in for a body without our error
     * form: it says nothing the status does not. */
    if (!r->err_code[0] || strncmp(r->err_code, "http_", 5) == 0)
        return cu_err_set(e, status_code(r->status), "the exchange answered HTTP %ld",
                          r->status);
    return cu_err_set(e, status_code(r->status), "the exchange answered HTTP %ld %s", r->status,
                      r->err_code);
}

/* For JSON answers: hands the parsed body to *out (new reference). */
static int take_json(struct cu_api *api, const char *what, json_t **out, struct cu_err *e)
{
    if (!json_is_object(api->res.json))
        return cu_err_set(e, -CU_EPROTO, "the exchange's answer to %s is not a JSON object",
                          what);
    *out = json_incref(api->res.json);
    return 0;
}

static int get_json_within(struct cu_api *api, const char *method, const char *path,
                           long timeout_ms, json_t **out, struct cu_err *e)
{
    int rc;

    *out = NULL;
    rc = cu_http_request(api->http, method, path, NULL, 0, timeout_ms, &api->res);
    rc = outcome(api, rc, e);
    if (rc)
        return rc;
    return take_json(api, path, out, e);
}

static int get_json(struct cu_api *api, const char *method, const char *path, json_t **out,
                    struct cu_err *e)
{
    return get_json_within(api, method, path, API_TIMEOUT_MS, out, e);
}

int cu_api_health(struct cu_api *api, json_t **out, struct cu_err *e)
{
    return get_json(api, "GET", "/v1/health", out, e);
}

int cu_api_blob_exists(struct cu_api *api, const struct cu_hash *h, bool *exists,
                       struct cu_err *e)
{
    char hex[CU_HASH_HEX_LEN + 1], path[128];
    int rc;

    cu_hash_to_hex(h, hex);
    cu_snprintf(path, sizeof path, "/v1/blobs/%s", hex);
    rc = cu_http_request(api->http, "HEAD", path, NULL, 0, API_TIMEOUT_MS, &api->res);
    if (rc == 0 && api->res.status == 404) {
        api->status = 404;
        *exists = false;
        return 0;
    }
    rc = outcome(api, rc, e);
    if (rc)
        return rc;
    *exists = true;
    return 0;
}

int cu_api_upload_file(struct cu_api *api, const char *path, const struct cu_hash *h,
                       struct cu_err *e)
{
    char hex[CU_HASH_HEX_LEN + 1], url[128];
    int rc;

    cu_hash_to_hex(h, hex);
    cu_snprintf(url, sizeof url, "/v1/blobs/%s", hex);
    rc = cu_http_upload_file(api->http, "PUT", url, path, h, API_BLOB_TIMEOUT_MS, &api->res);
    if (rc == -CU_ENOTFOUND || rc == -CU_EIO)
        return cu_err_set(e, rc, "%s", api->res.err_msg);
    rc = outcome(api, rc, e);
    if (rc == -CU_EINVAL && strcmp(api->code, "hash_mismatch") == 0)
        rc = cu_err_set(e, -CU_ECORRUPT, "%s changed since it was hashed (HTTP 400 "
                        "hash_mismatch)", path);
    return rc;
}

/* Makes one blob present on the exchange, uploading it from its local
 * path when missing; *uploaded says whether it had to be sent. */
static int upload_one(struct cu_api *api, const struct cu_spec_input *in, const char *what,
                      bool *uploaded, struct cu_err *e)
{
    bool exists = false;
    int rc;

    rc = cu_api_blob_exists(api, &in->hash, &exists, e);
    if (rc)
        return rc;
    *uploaded = !exists;
    if (exists)
        return 0;
    if (!in->path)
        return cu_err_set(e, -CU_EINVAL, "%s '%s' is not on the exchange and has no local file",
                          what, in->name);
    rc = cu_api_upload_file(api, in->path, &in->hash, e);
    if (rc) {
        char msg[CU_ERR_MSG_MAX];
        cu_snprintf(msg, sizeof msg, "%s", e ? e->msg : "");
        return cu_err_set(e, rc, "uploading %s '%s' (%s): %s", what, in->name, in->path, msg);
    }
    return 0;
}

int cu_api_upload_inputs(struct cu_api *api, const struct cu_spec *spec,
                         cu_api_upload_progress progress, void *ctx, struct cu_err *e)
{
    bool uploaded = false;
    int rc;

    /* The OCI image tarball is one more blob, sent first and only once
     * (content-addressed: a second job on the same image skips it). */
    if (cu_spec_image_is_oci(spec)) {
        if ((rc = upload_one(api, &spec->image_oci, "image", &uploaded, e)) != 0)
            return rc;
        if (progress)
            progress(ctx, &spec->image_oci, uploaded);
    }
    for (size_t i = 0; i < spec->ninputs; i++) {
        if ((rc = upload_one(api, &spec->inputs[i], "input", &uploaded, e)) != 0)
            return rc;
        if (progress)
            progress(ctx, &spec->inputs[i], uploaded);
    }
    return 0;
}

int cu_api_submit(struct cu_api *api, const struct cu_spec *spec, char *id_out, size_t idn,
                  json_t **answer, struct cu_err *e)
{
    char ref[2 * CLIENT_REF_BYTES + 1];
    json_t *body = NULL, *js, *ans = NULL;
    const char *id = NULL;
    int rc;

    if (answer)
        *answer = NULL;
    js = cu_spec_to_json(spec);
    if (!js)
        return cu_err_set(e, -CU_ENOMEM, "out of memory building the job");
    cu_random_hex(ref, CLIENT_REF_BYTES);
    body = json_pack("{s:o, s:s}", "spec", js, "client_ref", ref);
    if (!body)
        return cu_err_set(e, -CU_ENOMEM, "out of memory building the job");
    /* The same body names the same job, so a submission whose answer was
     * lost can be sent again without making a second job. */
    for (int attempt = 0;; attempt++) {
        rc = cu_http_request_json(api->http, "POST", "/v1/jobs", body, API_TIMEOUT_MS,
                                  &api->res);
        rc = outcome(api, rc, e);
        if (rc != -CU_ENET || attempt + 1 >= SUBMIT_TRIES)
            break;
        cu_sleep_ms(1000);
    }
    if (rc)
        goto out_free_body;
    rc = take_json(api, "POST /v1/jobs", &ans, e);
    if (rc)
        goto out_free_body;
    id = json_string_value(json_object_get(ans, "id"));
    if (!id || !cu_api_job_id_valid(id)) {
        rc = cu_err_set(e, -CU_EPROTO, "the exchange accepted the job but sent no valid id");
        goto out_free_body;
    }
    if (cu_snprintf(id_out, idn, "%s", id) != 0) {
        rc = cu_err_set(e, -CU_ETOOBIG, "job id '%s' is too long", id);
        goto out_free_body;
    }
    if (answer) {
        *answer = ans;
        ans = NULL;
    }
out_free_body:
    json_decref(ans);
    json_decref(body);
    return rc;
}

/* Builds "/v1/jobs/ID<suffix>" after checking the id. */
static int job_path(const char *job, const char *suffix, char *out, size_t n, struct cu_err *e)
{
    if (!cu_api_job_id_valid(job))
        return cu_err_set(e, -CU_EINVAL, "'%s' is not a job id (like j-0123456789abcdef01234567)",
                          job);
    if (cu_snprintf(out, n, "/v1/jobs/%s%s", job, suffix) != 0)
        return cu_err_set(e, -CU_ETOOBIG, "job id is too long");
    return 0;
}

int cu_api_job(struct cu_api *api, const char *job, json_t **out, struct cu_err *e)
{
    char path[256];
    int rc;

    *out = NULL;
    rc = job_path(job, "", path, sizeof path, e);
    if (rc)
        return rc;
    return get_json(api, "GET", path, out, e);
}

int cu_api_job_wait(struct cu_api *api, const char *job, const char *after, uint32_t wait_ms,
                    json_t **out, struct cu_err *e)
{
    return cu_api_job_follow(api, job, after, wait_ms, 0, out, e);
}

int cu_api_job_follow(struct cu_api *api, const char *job, const char *after, uint32_t wait_ms,
                      uint32_t inline_max, json_t **out, struct cu_err *e)
{
    char path[256], suffix[48 + CU_API_JOB_VERSION_MAX];
    int rc;

    *out = NULL;
    if (inline_max > CU_API_JOB_INLINE_MAX)
        return cu_err_set(e, -CU_EINVAL, "inline outputs of %u bytes: at most %d",
                          (unsigned)inline_max, CU_API_JOB_INLINE_MAX);
    if (!after || !after[0] || wait_ms == 0) {
        if (inline_max == 0)
            return cu_api_job(api, job, out, e);
        cu_snprintf(suffix, sizeof suffix, "?inline=%u", (unsigned)inline_max);
        rc = job_path(job, suffix, path, sizeof path, e);
        return rc ? rc : get_json(api, "GET", path, out, e);
    }
    if (wait_ms > CU_API_JOB_WAIT_MAX_MS)
        return cu_err_set(e, -CU_EINVAL, "wait of %u ms: at most %d", (unsigned)wait_ms,
                          CU_API_JOB_WAIT_MAX_MS);
    /* The version is the exchange's own string, sent back verbatim: only
     * hex digits may go into the URL. */
    if (strlen(after) > CU_API_JOB_VERSION_MAX || strspn(after, "0123456789abcdef") != strlen(after))
        return cu_err_set(e, -CU_EPROTO, "job version '%.64s' from the exchange is not hex", after);
    if (inline_max)
        cu_snprintf(suffix, sizeof suffix, "?wait_ms=%u&after=%s&inline=%u", (unsigned)wait_ms,
                    after, (unsigned)inline_max);
    else
        cu_snprintf(suffix, sizeof suffix, "?wait_ms=%u&after=%s", (unsigned)wait_ms, after);
    rc = job_path(job, suffix, path, sizeof path, e);
    if (rc)
        return rc;
    return get_json_within(api, "GET", path, (long)wait_ms + API_TIMEOUT_MS, out, e);
}

int cu_api_jobs(struct cu_api *api, json_t **out, struct cu_err *e)
{
    return get_json(api, "GET", "/v1/jobs", out, e);
}

int cu_api_cancel(struct cu_api *api, const char *job, json_t **out, struct cu_err *e)
{
    char path[256];
    int rc;

    *out = NULL;
    rc = job_path(job, "/cancel", path, sizeof path, e);
    if (rc)
        return rc;
    return get_json(api, "POST", path, out, e);
}

int cu_api_logs(struct cu_api *api, const char *job, uint32_t task, json_t **out,
                struct cu_err *e)
{
    char suffix[64], path[256];
    int rc;

    *out = NULL;
    cu_snprintf(suffix, sizeof suffix, "/tasks/%u/logs", (unsigned)task);
    rc = job_path(job, suffix, path, sizeof path, e);
    if (rc)
        return rc;
    return get_json(api, "GET", path, out, e);
}

static int sink_write(void *ctx, const char *data, size_t n)
{
    return cu_blob_writer_write(ctx, data, n);
}

int cu_api_download_blob(struct cu_api *api, const struct cu_hash *h, uint64_t size,
                         const char *dest, struct cu_err *e)
{
    struct cu_blob_writer w;
    char hex[CU_HASH_HEX_LEN + 1], path[128];
    int rc;

    cu_hash_to_hex(h, hex);
    cu_snprintf(path, sizeof path, "/v1/blobs/%s", hex);
    rc = cu_vfile_open(&w, dest, size, 0644);
    if (rc)
        return cu_err_set(e, rc, "cannot create %s: %s", dest, cu_strerror(rc));
    rc = cu_http_download(api->http, path, sink_write, &w, API_BLOB_TIMEOUT_MS, &api->res);
    if (rc == -CU_ETOOBIG) {
        rc = cu_err_set(e, rc, "blob %.12s is larger than its declared %llu bytes", hex,
                        (unsigned long long)size);
        goto out_abort;
    }
    if (rc && rc != -CU_ENET) {
        rc = cu_err_set(e, rc, "writing %s: %s", dest, cu_strerror(rc));
        goto out_abort;
    }
    rc = outcome(api, rc, e);
    if (rc)
        goto out_abort;
    if (w.size != size) {
        rc = cu_err_set(e, -CU_ECORRUPT, "blob %.12s: got %llu bytes, expected %llu", hex,
                        (unsigned long long)w.size, (unsigned long long)size);
        goto out_abort;
    }
    rc = cu_blob_writer_commit(&w, h, NULL);
    if (rc == -CU_ECORRUPT)
        return cu_err_set(e, rc, "blob %.12s from the exchange does not match its hash", hex);
    if (rc)
        return cu_err_set(e, rc, "cannot write %s: %s", dest, cu_strerror(rc));
    return 0;

out_abort:
    cu_blob_writer_abort(&w);
    return rc;
}

int cu_api_output_save(struct cu_api *api, const json_t *output, const char *dest,
                       struct cu_err *e)
{
    const json_t *sz = json_object_get(output, "size"), *data = json_object_get(output, "data");
    struct cu_blob_writer w;
    struct cu_hash h;
    unsigned char *bin;
    size_t n = 0;
    uint64_t size;
    int rc;

    if (cu_hash_from_hex(json_string_value(json_object_get(output, "hash")), &h) != 0 ||
        !json_is_integer(sz) || json_integer_value(sz) < 0)
        return cu_err_set(e, -CU_EPROTO, "an output in the job answer has no valid hash and size");
    size = (uint64_t)json_integer_value(sz);
    if (!json_is_string(data) || size > CU_API_JOB_INLINE_MAX)
        return cu_api_download_blob(api, &h, size, dest, e);
    bin = malloc(size ? size : 1);
    if (!bin)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    if (sodium_base642bin(bin, size, json_string_value(data), json_string_length(data), NULL, &n,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n != size) {
        free(bin);
        return cu_err_set(e, -CU_ECORRUPT, "inline output %s: not base64 of %llu bytes", dest,
                          (unsigned long long)size);
    }
    rc = cu_vfile_open(&w, dest, size, 0644);
    if (rc) {
        free(bin);
        return cu_err_set(e, rc, "cannot create %s: %s", dest, cu_strerror(rc));
    }
    rc = cu_blob_writer_write(&w, bin, n);
    free(bin);
    if (rc) {
        cu_blob_writer_abort(&w);
        return cu_err_set(e, rc, "writing %s: %s", dest, cu_strerror(rc));
    }
    rc = cu_blob_writer_commit(&w, &h, NULL);
    if (rc == -CU_ECORRUPT)
        return cu_err_set(e, rc, "inline output %s does not match its hash", dest);
    if (rc)
        return cu_err_set(e, rc, "cannot write %s: %s", dest, cu_strerror(rc));
    return 0;
}

/* ---- money --------------------------------------------------------------------- */

int cu_api_wallet(struct cu_api *api, json_t **out, struct cu_err *e)
{
    return get_json(api, "GET", "/v1/wallet", out, e);
}

int cu_api_wallet_history(struct cu_api *api, unsigned limit, json_t **out, struct cu_err *e)
{
    char path[64];

    cu_snprintf(path, sizeof path, "/v1/wallet/history?limit=%u", limit);
    return get_json(api, "GET", path, out, e);
}

/* POST of a JSON body (borrowed) answered by a JSON object. */
static int post_json(struct cu_api *api, const char *path, const json_t *body, json_t **out,
                     struct cu_err *e)
{
    int rc;

    *out = NULL;
    rc = cu_http_request_json(api->http, "POST", path, body, API_TIMEOUT_MS, &api->res);
    rc = outcome(api, rc, e);
    if (rc)
        return rc;
    return take_json(api, path, out, e);
}

int cu_api_faucet(struct cu_api *api, uint64_t amount, json_t **out, struct cu_err *e)
{
    json_t *body;
    int rc;

    *out = NULL;
    if (amount > CU_AMOUNT_MAX)
        return cu_err_set(e, -CU_EINVAL, "amount %llu is too large",
                          (unsigned long long)amount);
    body = json_pack("{s:I}", "amount", (json_int_t)amount);
    if (!body)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    rc = post_json(api, "/v1/faucet", body, out, e);
    json_decref(body);
    return rc;
}

/* POST {"amount":N} to path (stake, unstake): the amount checked first. */
static int post_amount(struct cu_api *api, const char *path, uint64_t amount, json_t **out,
                       struct cu_err *e)
{
    json_t *body;
    int rc;

    *out = NULL;
    if (amount == 0 || amount > CU_AMOUNT_MAX)
        return cu_err_set(e, -CU_EINVAL, "amount %llu: must be between 1 and %llu",
                          (unsigned long long)amount, (unsigned long long)CU_AMOUNT_MAX);
    body = json_pack("{s:I}", "amount", (json_int_t)amount);
    if (!body)
        return cu_err_set(e, -CU_ENOMEM, "out of memory");
    rc = post_json(api, path, body, out, e);
    json_decref(body);
    return rc;
}

int cu_api_stake(struct cu_api *api, uint64_t amount, json_t **out, struct cu_err *e)
{
    return post_amount(api, "/v1/stake", amount, out, e);
}

int cu_api_unstake(struct cu_api *api, uint64_t amount, json_t **out, struct cu_err *e)
{
    return post_amount(api, "/v1/unstake", amount, out, e);
}

int cu_api_reputation(struct cu_api *api, const char *id, json_t **out, struct cu_err *e)
{
    char path[128];

    *out = NULL;
    if (!id || strlen(id) != 64 || strspn(id, "0123456789abcdef") != 64)
        return cu_err_set(e, -CU_EINVAL, "'%.80s' is not a participant id (64 lowercase hex)",
                          id ? id : "");
    cu_snprintf(path, sizeof path, "/v1/reputation/%s", id);
    return get_json(api, "GET", path, out, e);
}

int cu_api_transfer(struct cu_api *api, const struct cu_tx *tx, json_t **out, struct cu_err *e)
{
    json_t *txj, *body;
    int rc;

    *out = NULL;
    txj = cu_tx_to_json(tx, false);
    if (!txj)
        return cu_err_set(e, -CU_ENOMEM, "out of memory building the transfer");
    body = json_pack("{s:o}", "tx", txj);
    if (!body)
        return cu_err_set(e, -CU_ENOMEM, "out of memory building the transfer");
    /* Not retried: a lost answer is found from the nonce (wallet history). */
    rc = post_json(api, "/v1/transfers", body, out, e);
    json_decref(body);
    return rc;
}

int cu_api_ledger_head(struct cu_api *api, json_t **out, struct cu_err *e)
{
    return get_json(api, "GET", "/v1/ledger/head", out, e);
}

int cu_api_market(struct cu_api *api, json_t **out, struct cu_err *e)
{
    return get_json(api, "GET", "/v1/market", out, e);
}

int cu_api_ledger_page(struct cu_api *api, uint64_t from, uint64_t limit, cu_http_sink sink,
                       void *ctx, struct cu_err *e)
{
    char path[96];
    int rc;

    cu_snprintf(path, sizeof path, "/v1/ledger?from=%llu&limit=%llu", (unsigned long long)from,
                (unsigned long long)limit);
    rc = cu_http_download(api->http, path, sink, ctx, API_BLOB_TIMEOUT_MS, &api->res);
    if (rc && rc != -CU_ENET)
        return cu_err_set(e, rc, "reading the ledger from %s: %s", api->url, cu_strerror(rc));
    return outcome(api, rc, e);
}

void cu_api_fmt_cu(int64_t cu_milli, char *out, size_t n)
{
    if (cu_milli < 0) {
        cu_snprintf(out, n, "-");
        return;
    }
    cu_snprintf(out, n, "%lld.%03lld", (long long)(cu_milli / 1000),
                (long long)(cu_milli % 1000));
}

void cu_lines_init(struct cu_lines *l, size_t max_line, cu_lines_fn fn, void *ctx)
{
    memset(l, 0, sizeof *l);
    cu_buf_init(&l->part, max_line);
    l->fn = fn;
    l->ctx = ctx;
}

void cu_lines_release(struct cu_lines *l)
{
    cu_buf_release(&l->part);
}

static int lines_deliver(struct cu_lines *l, const char *line, size_t n)
{
    int rc = l->fn(l->ctx, line, n);

    if (rc)
        l->failed = rc;
    else
        l->count++;
    return rc;
}

int cu_lines_feed(void *lines_ctx, const char *data, size_t n)
{
    struct cu_lines *l = lines_ctx;
    size_t pos = 0;
    int rc;

    if (l->failed)
        return l->failed;
    while (pos < n) {
        const char *nl = memchr(data + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : n - pos;

        if (!nl) {
            rc = cu_buf_append(&l->part, data + pos, len);
            if (rc)
                l->failed = rc;
            return rc;
        }
        if (l->part.len) {
            rc = cu_buf_append(&l->part, data + pos, len);
            if (!rc)
                rc = lines_deliver(l, l->part.data, l->part.len);
            cu_buf_reset(&l->part);
        } else if (len > l->part.max) {
            rc = -CU_ETOOBIG;
        } else {
            rc = lines_deliver(l, data + pos, len);
        }
        if (rc) {
            l->failed = rc;
            return rc;
        }
        pos += len + 1;
    }
    return 0;
}

int cu_lines_finish(struct cu_lines *l)
{
    int rc;

    if (l->failed)
        return l->failed;
    if (!l->part.len)
        return 0;
    rc = lines_deliver(l, l->part.data, l->part.len);
    cu_buf_reset(&l->part);
    return rc;
}
