/* cmd_ledger.c - `cumulus ledger`: verify a ledger from genesis (from an
 * exchange, its data directory or an export file), export it, show a block. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/buf.h"
#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "client/config.h"
#include "exchange/exchange.h"
#include "ledger/block.h"
#include "ledger/export.h"
#include "ledger/verify.h"

#include "base/banned.h"

#define PAGE_BLOCKS 1000     /* blocks per GET /v1/ledger (the exchange allows 10000) */
#define FILE_CHUNK (64u << 10)
#define EXPORT_MAX ((size_t)1 << 36) /* largest export held in memory */
#define SHORT_ID 12

static const char usage_text[] =
    "usage: cumulus ledger verify (URL | DATA_DIR | FILE)\n"
    "       cumulus ledger export FILE [--exchange URL]\n"
    "       cumulus ledger show [HEIGHT] [--exchange URL]\n"
    "\n"
    "  verify  replays the ledger from genesis and checks every hash link,\n"
    "          signature and invariant. The source is an exchange (http://...),\n"
    "          an exchange's data directory (read-only, works while it runs) or\n"
    "          an export file. Exit 0 only if all hold; else names the first\n"
    "          bad block and transaction.\n"
    "  export  writes the exchange's ledger to FILE as JSON Lines (atomically),\n"
    "          verifying it on the way; anyone can verify FILE offline\n"
    "  show    a readable view of one block (default: the head)\n"
    "\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n";

/* ---- verifying a stream of lines ---------------------------------------------- */

struct vctx {
    struct cu_verifier v;
    struct cu_buf *copy; /* export: every line kept here too (NULL: not kept) */
    int copy_err;
};

static int feed_line(void *ctx, const char *line, size_t n)
{
    struct vctx *c = ctx;
    int rc = cu_verifier_feed_line(&c->v, line, n, NULL);

    if (rc)
        return rc;
    if (c->copy) {
        rc = cu_buf_append(c->copy, line, n);
        if (!rc)
            rc = cu_buf_append(c->copy, "\n", 1);
        if (rc)
            c->copy_err = rc;
    }
    return rc;
}

/* Prints the verifier's failure, naming the block and transaction. */
static void report_bad(const struct cu_verify_result *r)
{
    const char *msg = r->err.msg[0] ? r->err.msg : cu_strerror(r->err.code);

    if (r->bad_block >= 0 && strncmp(msg, "block ", 6) != 0) {
        if (r->bad_tx != CU_NO_TX)
            cu_cli_errorf("ledger", "NOT verified: block %lld tx %lld: %s",
                          (long long)r->bad_block, (long long)r->bad_tx, msg);
        else
            cu_cli_errorf("ledger", "NOT verified: block %lld: %s", (long long)r->bad_block,
                          msg);
    } else {
        cu_cli_errorf("ledger", "NOT verified: %s", msg);
    }
    if (r->blocks)
        fprintf(stderr, "  (the %llu block(s) before it verified)\n",
                (unsigned long long)r->blocks);
}

/* Ends the stream and prints the outcome; returns the exit code. */
static int finish(struct vctx *c, bool quiet)
{
    struct cu_verify_result r;
    char hex[CU_HASH_HEX_LEN + 1];

    if (cu_verifier_finish(&c->v, &r) != 0) {
        if (r.blocks == 0 && r.bad_block < 0)
            cu_cli_errorf("ledger", "NOT verified: the ledger is empty (not even a genesis "
                                    "block)");
        else
            report_bad(&r);
        return CU_EXIT_FAIL;
    }
    cu_hash_to_hex(&r.tip, hex);
    if (!quiet)
        printf("ledger: %llu transactions in %llu blocks \xe2\x80\x94 verified "
               "(head %.16s\xe2\x80\xa6)\n",
               (unsigned long long)r.txs, (unsigned long long)r.blocks, hex);
    return CU_EXIT_OK;
}

/* After a source stopped with rc: the verifier's failure if it had one,
 * else the source's own (msg). Returns the exit code. */
static int source_failed(struct vctx *c, const char *msg)
{
    if (c->v.failed) {
        report_bad(&c->v.res);
        return CU_EXIT_FAIL;
    }
    if (c->copy_err) {
        cu_cli_errorf("ledger", "the ledger does not fit in memory (%s)",
                      cu_strerror(c->copy_err));
        return CU_EXIT_FAIL;
    }
    cu_cli_errorf("ledger", "%s", msg);
    return CU_EXIT_FAIL;
}

/* Streams every block from the exchange at api into c. 0, or the exit code
 * after printing why. */
static int from_exchange(struct cu_api *api, struct vctx *c)
{
    struct cu_lines l;
    struct cu_err e = {0};
    json_t *head = NULL;
    int64_t want = -1;
    uint64_t from = 0;
    int rc = 0;

    /* The head before paging: a chain served shorter than that was cut. */
    if (cu_api_ledger_head(api, &head, &e) != 0) {
        cu_cli_errorf("ledger", "%s", e.msg);
        return CU_EXIT_FAIL;
    }
    if (json_is_integer(json_object_get(head, "blocks")))
        want = (int64_t)json_integer_value(json_object_get(head, "blocks"));
    json_decref(head);
    cu_lines_init(&l, CU_EXPORT_LINE_MAX, feed_line, c);
    for (;;) {
        uint64_t before = l.count;
        if (cu_api_ledger_page(api, from, PAGE_BLOCKS, cu_lines_feed, &l, &e) != 0 ||
            cu_lines_finish(&l) != 0) {
            if (l.failed == -CU_ETOOBIG && !c->v.failed && !c->copy_err)
                cu_snprintf(e.msg, sizeof e.msg, "block %llu: its line is longer than %u bytes",
                            (unsigned long long)l.count, CU_EXPORT_LINE_MAX);
            rc = source_failed(c, e.msg);
            goto out;
        }
        from += l.count - before;
        if (l.count - before < PAGE_BLOCKS)
            break;
    }
    if (want >= 0 && (int64_t)from < want && !c->v.failed) {
        cu_cli_errorf("ledger", "NOT verified: the exchange's head says %lld blocks but it "
                                "served only %llu", (long long)want, (unsigned long long)from);
        rc = CU_EXIT_FAIL;
    }
out:
    cu_lines_release(&l);
    return rc;
}

static int verify_url(const char *url)
{
    struct cu_api api;
    struct cu_err e = {0};
    struct vctx c = {0};
    int rc;

    if (cu_api_open(&api, url, NULL, &e) != 0) {
        cu_cli_errorf("ledger", "%s", e.msg);
        cu_api_close(&api);
        return CU_EXIT_USAGE;
    }
    cu_verifier_init(&c.v, NULL);
    rc = from_exchange(&api, &c);
    if (!rc)
        rc = finish(&c, false);
    cu_verifier_release(&c.v);
    cu_api_close(&api);
    return rc;
}

static int verify_dir(const char *dir)
{
    struct cu_lines l;
    struct cu_err e = {0};
    struct vctx c = {0};
    int rc;

    cu_verifier_init(&c.v, NULL);
    cu_lines_init(&l, CU_EXPORT_LINE_MAX, feed_line, &c);
    if (cu_exchange_ledger_dump(dir, cu_lines_feed, &l, &e) != 0 || cu_lines_finish(&l) != 0)
        rc = source_failed(&c, e.msg[0] ? e.msg : "reading the ledger failed");
    else
        rc = finish(&c, false);
    cu_lines_release(&l);
    cu_verifier_release(&c.v);
    return rc;
}

static int verify_file(const char *path)
{
    struct cu_lines l;
    struct vctx c = {0};
    char *chunk;
    FILE *f;
    size_t n;
    int rc = 0;

    f = fopen(path, "rb");
    if (!f) {
        cu_cli_errorf("ledger", "cannot open %s: %s", path, strerror(errno));
        return CU_EXIT_FAIL;
    }
    chunk = malloc(FILE_CHUNK);
    if (!chunk) {
        fclose(f);
        cu_cli_errorf("ledger", "out of memory");
        return CU_EXIT_FAIL;
    }
    cu_verifier_init(&c.v, NULL);
    cu_lines_init(&l, CU_EXPORT_LINE_MAX, feed_line, &c);
    while ((n = fread(chunk, 1, FILE_CHUNK, f)) > 0) {
        if (cu_lines_feed(&l, chunk, n) != 0) {
            rc = -1;
            break;
        }
    }
    if (!rc && ferror(f)) {
        cu_cli_errorf("ledger", "reading %s: %s", path, strerror(errno));
        rc = CU_EXIT_FAIL;
    } else if (rc || cu_lines_finish(&l) != 0) {
        char msg[128];
        cu_snprintf(msg, sizeof msg, "%s: line %llu is longer than %u bytes", path,
                    (unsigned long long)l.count + 1, CU_EXPORT_LINE_MAX);
        rc = source_failed(&c, msg);
    } else {
        rc = finish(&c, false);
    }
    cu_lines_release(&l);
    cu_verifier_release(&c.v);
    free(chunk);
    fclose(f);
    return rc;
}

static int cmd_verify(const char *src)
{
    struct stat st;

    if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0)
        return verify_url(src);
    if (stat(src, &st) != 0) {
        cu_cli_errorf("ledger", "'%s' is not a URL (http://...), a directory or a file: %s", src,
                      strerror(errno));
        return CU_EXIT_FAIL;
    }
    return S_ISDIR(st.st_mode) ? verify_dir(src) : verify_file(src);
}

/* ---- export ------------------------------------------------------------------- */

static int open_exchange(const char *exchange, struct cu_api *api)
{
    char url[CU_API_URL_MAX];
    struct cu_err e = {0};

    memset(api, 0, sizeof *api);
    if (cu_config_exchange_url(exchange, url, sizeof url, &e) != 0 ||
        cu_api_open(api, url, NULL, &e) != 0) {
        cu_cli_errorf("ledger", "%s", e.msg);
        cu_api_close(api);
        return CU_EXIT_FAIL;
    }
    return 0;
}

static int cmd_export(const char *file, const char *exchange)
{
    struct cu_api api;
    struct cu_buf out = CU_BUF_INIT(EXPORT_MAX);
    struct vctx c = {.copy = &out};
    int rc, wr;

    if (open_exchange(exchange, &api) != 0)
        return CU_EXIT_FAIL;
    cu_verifier_init(&c.v, NULL);
    rc = from_exchange(&api, &c);
    if (!rc)
        rc = finish(&c, true);
    if (rc) {
        cu_cli_errorf("ledger", "%s not written", file);
        goto out;
    }
    wr = cu_write_file_atomic(file, out.data ? out.data : "", out.len, 0644);
    if (wr) {
        cu_cli_errorf("ledger", "cannot write %s: %s", file, cu_strerror(wr));
        rc = CU_EXIT_FAIL;
        goto out;
    }
    printf("ledger: %llu transactions in %llu blocks \xe2\x80\x94 verified; written to %s "
           "(%zu bytes)\n",
           (unsigned long long)c.v.res.txs, (unsigned long long)c.v.res.blocks, file, out.len);
out:
    cu_buf_release(&out);
    cu_verifier_release(&c.v);
    cu_api_close(&api);
    return rc;
}

/* ---- show --------------------------------------------------------------------- */

static void fmt_time(int64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[32];

    if (ms < 0 || !gmtime_r(&t, &tm) || strftime(s, sizeof s, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        cu_snprintf(out, n, "-");
        return;
    }
    cu_snprintf(out, n, "%s.%03lld UTC", s, (long long)(ms % 1000));
}

static int grab_line(void *ctx, const char *line, size_t n)
{
    struct cu_buf *b = ctx;
    if (b->len) /* one block was asked for */
        return 0;
    return cu_buf_append(b, line, n);
}

static void print_block(const struct cu_block *b)
{
    struct cu_hash h;
    char hex[CU_HASH_HEX_LEN + 1], prev[CU_HASH_HEX_LEN + 1], root[CU_HASH_HEX_LEN + 1];
    char when[48];

    cu_block_hash(&b->h, &h);
    cu_hash_to_hex(&h, hex);
    cu_hash_to_hex(&b->h.prev, prev);
    cu_hash_to_hex(&b->h.tx_root, root);
    fmt_time(b->h.time_ms, when, sizeof when);
    printf("block %llu%s\n", (unsigned long long)b->h.height, b->h.devnet ? " (devnet)" : "");
    printf("  time      %s\n", when);
    printf("  producer  %s\n", b->h.producer);
    printf("  hash      %s\n", hex);
    printf("  prev      %s\n", prev);
    printf("  tx root   %s\n", root);
    printf("  txs       %zu\n", b->ntx);
    if (!b->ntx)
        return;
    printf("\n%-4s %-8s %-15s %-12s %-12s %16s  %s\n", "#", "SEQ", "TYPE", "FROM", "TO", "AMOUNT",
           "JOB");
    for (size_t i = 0; i < b->ntx; i++) {
        const struct cu_tx *t = &b->txs[i];
        char amt[32];
        if (t->type == CU_TX_TASK_RECORD)
            cu_snprintf(amt, sizeof amt, "-");
        else
            cu_snprintf(amt, sizeof amt, "%llu", (unsigned long long)t->amount);
        printf("%-4zu %-8llu %-15s %-12.*s %-12.*s %16s  %s%s%s\n", i,
               (unsigned long long)t->seq, cu_tx_type_name(t->type), SHORT_ID,
               t->from[0] ? t->from : "-", SHORT_ID, t->to[0] ? t->to : "-", amt,
               t->job[0] ? t->job : "-", t->replica[0] ? " replica " : "", t->replica);
    }
}

static int cmd_show(const char *height_s, const char *exchange)
{
    struct cu_api api;
    struct cu_err e = {0};
    struct cu_buf line = CU_BUF_INIT(CU_EXPORT_LINE_MAX);
    struct cu_lines l;
    struct cu_block b;
    json_t *head = NULL;
    int64_t height = -1, head_h = -1, bad_tx;
    int rc = CU_EXIT_FAIL;

    if (height_s && cu_parse_i64(height_s, 0, INT64_MAX, &height) != 0) {
        cu_cli_errorf("ledger", "show: HEIGHT '%s' is not a block height (0, 1, ...)", height_s);
        return CU_EXIT_USAGE;
    }
    if (open_exchange(exchange, &api) != 0)
        return CU_EXIT_FAIL;
    cu_block_init(&b);
    cu_lines_init(&l, CU_EXPORT_LINE_MAX, grab_line, &line);
    if (cu_api_ledger_head(&api, &head, &e) != 0) {
        cu_cli_errorf("ledger", "%s", e.msg);
        goto out;
    }
    if (json_is_integer(json_object_get(head, "height")))
        head_h = (int64_t)json_integer_value(json_object_get(head, "height"));
    if (height < 0)
        height = head_h;
    if (height < 0) {
        cu_cli_errorf("ledger", "the exchange's ledger head names no height");
        goto out;
    }
    if (cu_api_ledger_page(&api, (uint64_t)height, 1, cu_lines_feed, &l, &e) != 0 ||
        cu_lines_finish(&l) != 0) {
        cu_cli_errorf("ledger", "%s", e.msg[0] ? e.msg : "reading the block failed");
        goto out;
    }
    if (!line.len) {
        cu_cli_errorf("ledger", "no block at height %lld (the head is %lld)", (long long)height,
                      (long long)head_h);
        goto out;
    }
    if (cu_export_parse_block(line.data, line.len, &b, &bad_tx, &e) != 0) {
        cu_cli_errorf("ledger", "block %lld from the exchange is malformed: %s",
                      (long long)height, e.msg);
        goto out;
    }
    print_block(&b);
    rc = CU_EXIT_OK;
out:
    cu_block_release(&b);
    cu_lines_release(&l);
    cu_buf_release(&line);
    json_decref(head);
    cu_api_close(&api);
    return rc;
}

int cmd_ledger(int argc, char **argv)
{
    const char *sub = NULL, *arg = NULL;
    struct cu_cli_req_opts o = {.cmd = "ledger", .accept = CU_CLI_OPT_EXCHANGE};
    int r;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if ((r = cu_cli_req_opt(&o, argc, argv, &i)) != 0) {
            if (r < 0)
                return CU_EXIT_USAGE;
        } else if (cu_cli_unknown_option(o.cmd, a)) {
            return CU_EXIT_USAGE;
        } else if (!sub) {
            sub = a;
        } else if (!arg) {
            arg = a;
        } else {
            cu_cli_errorf("ledger", "unexpected argument '%s' (see 'cumulus ledger --help')", a);
            return CU_EXIT_USAGE;
        }
    }
    if (!sub) {
        cu_cli_errorf("ledger", "which action? verify, export or show (see 'cumulus ledger "
                                "--help')");
        return CU_EXIT_USAGE;
    }
    cu_cli_log_init("ledger", "ledger");
    if (strcmp(sub, "verify") == 0) {
        if (!arg) {
            cu_cli_errorf("ledger", "verify what? usage: cumulus ledger verify (URL | DATA_DIR "
                                    "| FILE)");
            return CU_EXIT_USAGE;
        }
        if (o.exchange) {
            cu_cli_errorf("ledger", "verify takes its source as an argument, not --exchange");
            return CU_EXIT_USAGE;
        }
        return cmd_verify(arg);
    }
    if (strcmp(sub, "export") == 0) {
        if (!arg) {
            cu_cli_errorf("ledger", "export to where? usage: cumulus ledger export FILE");
            return CU_EXIT_USAGE;
        }
        return cmd_export(arg, o.exchange);
    }
    if (strcmp(sub, "show") == 0)
        return cmd_show(arg, o.exchange);
    cu_cli_errorf("ledger", "'%s' is not a ledger action (verify, export, show)", sub);
    return CU_EXIT_USAGE;
}
