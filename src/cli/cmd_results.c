/* cmd_results.c - `cumulus results`: download every done task's outputs,
 * verified against their hashes. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "cli/commands.h"
#include "client/api.h"
#include "crypto/hash.h"
#include "crypto/ident.h"

#include "base/banned.h"

#define MAX_NOT_DONE_SHOWN 10

static const char usage_text[] =
    "usage: cumulus results JOB --out DIR [--exchange URL] [--key FILE]\n"
    "\n"
    "Downloads each output of each done task to DIR/<task index>/<name>, checking\n"
    "every file against its hash before it appears (a file already there with\n"
    "the right hash is kept). Exits 1 if any task is not done, after fetching\n"
    "what exists.\n"
    "\n"
    "  --out DIR       where the files go (created)\n"
    "  --exchange URL  the exchange (else CUMULUS_EXCHANGE, else the config)\n"
    "  --key FILE      identity (else CUMULUS_KEY, else\n"
    "                  $CUMULUS_HOME/identity.key)\n";

struct tally {
    unsigned files, fetched, present, errors;
    uint64_t bytes;
};

/* A relative path of safe components: no "", ".", ".." component, not
 * absolute, no control characters. */
static bool output_name_ok(const char *name)
{
    const char *p = name;

    if (!*name || *name == '/' || strlen(name) >= 1024)
        return false;
    for (const char *q = name; *q; q++) {
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            return false;
    }
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!slash)
            break;
        p = slash + 1;
        if (!*p)
            return false; /* trailing slash */
    }
    return true;
}

/* Makes the directories above path (which lies under an existing root). */
static int make_parents(const char *path)
{
    char dir[CU_PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash)
        return 0;
    if (cu_snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) != 0)
        return -CU_ETOOBIG;
    return cu_mkdir_p(dir, 0755);
}

/* Fetches one output of task index into DIR/index/name. */
static void fetch_output(struct cu_api *api, const char *dir, int64_t index, const json_t *out,
                         struct tally *t)
{
    const char *name = json_string_value(json_object_get(out, "name"));
    const char *hex = json_string_value(json_object_get(out, "hash"));
    const json_t *sz = json_object_get(out, "size");
    char dest[CU_PATH_MAX];
    struct cu_hash want, have;
    struct cu_err e = {0};
    struct stat st;
    uint64_t size, got = 0;

    if (!name || !hex || cu_hash_from_hex(hex, &want) != 0 || !json_is_integer(sz) ||
        json_integer_value(sz) < 0) {
        cu_cli_errorf("results", "task %lld: the exchange listed an output without a valid "
                                 "name, hash and size", (long long)index);
        t->errors++;
        return;
    }
    size = (uint64_t)json_integer_value(sz);
    if (!output_name_ok(name)) {
        cu_cli_errorf("results", "task %lld: refusing output name '%s' (absolute or with '..')",
                      (long long)index, name);
        t->errors++;
        return;
    }
    if (cu_snprintf(dest, sizeof dest, "%s/%lld/%s", dir, (long long)index, name) != 0) {
        cu_cli_errorf("results", "task %lld: path for '%s' is too long", (long long)index, name);
        t->errors++;
        return;
    }
    if (lstat(dest, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size &&
        cu_hash_file(dest, &have, &got) == 0 && got == size && cu_hash_eq(&have, &want)) {
        t->files++;
        t->present++;
        t->bytes += size;
        return;
    }
    if (make_parents(dest) != 0) {
        cu_cli_errorf("results", "cannot create the directory for %s: %s", dest,
                      strerror(errno));
        t->errors++;
        return;
    }
    if (cu_api_output_save(api, out, dest, &e) != 0) {
        cu_cli_errorf("results", "task %lld: %s: %s", (long long)index, name, e.msg);
        t->errors++;
        return;
    }
    t->files++;
    t->fetched++;
    t->bytes += size;
}

int cmd_results(int argc, char **argv)
{
    const char *job = NULL, *dir = NULL;
    struct cu_cli_req_opts o = {.cmd = "results", .accept = CU_CLI_OPT_EXCHANGE | CU_CLI_OPT_KEY};
    struct cu_identity id;
    struct cu_api api;
    struct cu_err e = {0};
    struct tally t = {0};
    json_t *j = NULL, *task;
    unsigned not_done = 0;
    char size[32];
    size_t i;
    int r, rc = CU_EXIT_FAIL;

    for (int k = 1; k < argc; k++) {
        const char *a = argv[k];
        if (cu_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return CU_EXIT_OK;
        } else if (strcmp(a, "--out") == 0) {
            if (!(dir = cu_cli_value("results", argc, argv, &k)))
                return CU_EXIT_USAGE;
        } else if ((r = cu_cli_req_opt(&o, argc, argv, &k)) != 0) {
            if (r < 0)
                return CU_EXIT_USAGE;
        } else if (cu_cli_unknown_option(o.cmd, a)) {
            return CU_EXIT_USAGE;
        } else if (job) {
            cu_cli_errorf("results", "one job at a time ('%s' and '%s')", job, a);
            return CU_EXIT_USAGE;
        } else {
            job = a;
        }
    }
    if (!job || !dir) {
        cu_cli_errorf("results", "usage: cumulus results JOB --out DIR");
        return CU_EXIT_USAGE;
    }
    if (cu_cli_check_job(o.cmd, job) != 0)
        return CU_EXIT_USAGE;
    cu_cli_log_init("results", "results");
    if (cu_cli_connect("results", o.exchange, o.key, &id, &api) != 0)
        return CU_EXIT_FAIL;
    /* Small outputs come inline with the job (verified all the same):
     * one request instead of one per file. */
    if (cu_api_job_follow(&api, job, NULL, 0, CU_API_JOB_INLINE_MAX, &j, &e) != 0) {
        cu_cli_errorf("results", "%s", e.msg);
        goto out_close;
    }
    if (!json_is_array(json_object_get(j, "tasks"))) {
        cu_cli_errorf("results", "the exchange's answer for %s has no task list", job);
        goto out_close;
    }
    if (cu_mkdir_p(dir, 0755) != 0) {
        cu_cli_errorf("results", "--out: cannot create %s: %s", dir, strerror(errno));
        goto out_close;
    }
    json_array_foreach(json_object_get(j, "tasks"), i, task) {
        const char *state = json_string_value(json_object_get(task, "state"));
        const json_t *idx = json_object_get(task, "index"), *out;
        const json_t *outs = json_object_get(json_object_get(task, "result"), "outputs");
        size_t oi;

        if (!json_is_integer(idx) || json_integer_value(idx) < 0) {
            cu_cli_errorf("results", "the exchange listed a task without an index");
            t.errors++;
            continue;
        }
        if (!state || strcmp(state, "done") != 0) {
            const char *reason = json_string_value(json_object_get(task, "reason"));
            if (not_done++ < MAX_NOT_DONE_SHOWN)
                cu_cli_errorf("results", "task %lld is %s%s%s", (long long)json_integer_value(idx),
                              state ? state : "in an unknown state", reason ? ": " : "",
                              reason ? reason : "");
            continue;
        }
        json_array_foreach(outs, oi, out)
            fetch_output(&api, dir, (long long)json_integer_value(idx), out, &t);
    }
    cu_fmt_size(t.bytes, size, sizeof size);
    printf("%u file%s, %s \xe2\x86\x92 %s", t.files, t.files == 1 ? "" : "s", size, dir);
    if (t.present)
        printf(" (%u downloaded, %u already there)", t.fetched, t.present);
    printf("\n");
    if (not_done)
        cu_cli_errorf("results", "%u of %zu tasks are not done: their outputs are missing",
                      not_done, json_array_size(json_object_get(j, "tasks")));
    if (t.errors)
        cu_cli_errorf("results", "%u file%s could not be fetched", t.errors,
                      t.errors == 1 ? "" : "s");
    rc = not_done || t.errors ? CU_EXIT_FAIL : CU_EXIT_OK;
out_close:
    json_decref(j);
    cu_api_close(&api);
    cu_identity_wipe(&id);
    return rc;
}
