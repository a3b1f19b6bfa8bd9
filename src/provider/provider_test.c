/* provider_test.c - unit tests for the provider's pure parts: output
 * collection (glob filter, symlinks and special files ignored, Merkle root,
 * output limit, small outputs and logs kept inline), the task environment,
 * the report body, and the local replica table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "crypto/hash.h"
#include "crypto/merkle.h"
#include "market/spec.h"
#include "provider/collect.h"
#include "provider/pstate.h"
#include "store/blob.h"

#include "base/banned.h"

struct fixture {
    char dir[CU_PATH_MAX];
    char out[CU_PATH_MAX];
    struct cu_blobstore bs;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char blobs[CU_PATH_MAX];

    if (!f || cu_crypto_init() != 0)
        return -1;
    memcpy(f->dir, "/tmp/cu_provider_XXXXXX", sizeof "/tmp/cu_provider_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    if (cu_path_join(f->out, sizeof f->out, f->dir, "out") || mkdir(f->out, 0755) ||
        cu_path_join(blobs, sizeof blobs, f->dir, "blobs") ||
        cu_blobstore_open(&f->bs, blobs, NULL))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = cu_rm_rf(f->dir);

    free(f);
    return rc;
}

/* Writes text to out/rel (parent directories created). */
static void put(const struct fixture *f, const char *rel, const char *text)
{
    char path[CU_PATH_MAX], parent[CU_PATH_MAX];
    char *slash;

    assert_int_equal(cu_path_join(path, sizeof path, f->out, rel), 0);
    assert_int_equal(cu_snprintf(parent, sizeof parent, "%s", path), 0);
    slash = strrchr(parent, '/');
    *slash = '\0';
    assert_int_equal(cu_mkdir_p(parent, 0755), 0);
    assert_int_equal(cu_write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void out_path(const struct fixture *f, const char *rel, char *path)
{
    assert_int_equal(cu_path_join(path, CU_PATH_MAX, f->out, rel), 0);
}

static void test_collect_filters_and_roots(void **state)
{
    struct fixture *f = *state;
    char *globs[] = {"*.txt", "sub/*.txt"};
    struct cu_outputs o;
    struct cu_err e = {0};
    struct cu_merkle_leaf leaves[2];
    struct cu_hash h, root;
    char p[CU_PATH_MAX], secret[CU_PATH_MAX];
    uint64_t size;

    put(f, "b.txt", "bee\n");
    put(f, "a.txt", "a\n");
    put(f, "skip.log", "not matched\n");
    put(f, "sub/c.txt", "sea\n");
    put(f, "sub/deeper/d.txt", "not matched: '*' does not cross '/'\n");
    /* A secret outside out/, reachable only through symlinks. */
    assert_int_equal(cu_path_join(secret, sizeof secret, f->dir, "secret.txt"), 0);
    assert_int_equal(cu_write_file_atomic(secret, "secret", 6, 0644), 0);
    out_path(f, "link.txt", p);
    assert_int_equal(symlink(secret, p), 0);
    out_path(f, "linkdir", p);
    assert_int_equal(symlink(f->dir, p), 0);
    out_path(f, "fifo.txt", p);
    assert_int_equal(mkfifo(p, 0644), 0);
    put(f, "bad name.txt", "unsafe name\n");

    cu_outputs_init(&o);
    assert_int_equal(cu_outputs_collect(f->out, globs, 2, &f->bs, 0, NULL, &o, &e), 0);
    assert_int_equal(o.n, 3);
    assert_string_equal(o.v[0].name, "a.txt");
    assert_string_equal(o.v[1].name, "b.txt");
    assert_string_equal(o.v[2].name, "sub/c.txt");
    out_path(f, "b.txt", p);
    assert_int_equal(cu_hash_file(p, &h, &size), 0);
    assert_true(cu_hash_eq(&h, &o.v[1].hash));
    assert_int_equal(o.v[1].size, 4);
    /* Every output is in the store. */
    for (size_t i = 0; i < o.n; i++) {
        assert_int_equal(cu_blob_stat(&f->bs, &o.v[i].hash, &size), 0);
        assert_int_equal(size, o.v[i].size);
    }
    /* The root is the Merkle root over {name, hash}. */
    leaves[0].name = "a.txt";
    leaves[0].hash = o.v[0].hash;
    leaves[1].name = "b.txt";
    leaves[1].hash = o.v[1].hash;
    assert_int_equal(cu_merkle_root(leaves, 2, &root), 0);
    assert_false(cu_hash_eq(&root, &o.root)); /* three leaves, not two */
    {
        struct cu_merkle_leaf all[3] = {{"sub/c.txt", o.v[2].hash},
                                        {"a.txt", o.v[0].hash},
                                        {"b.txt", o.v[1].hash}};
        assert_int_equal(cu_merkle_root(all, 3, &root), 0);
        assert_true(cu_hash_eq(&root, &o.root));
    }
    cu_outputs_release(&o);
}

static void test_collect_symlinked_dir_not_followed(void **state)
{
    struct fixture *f = *state;
    char *globs[] = {"*", "*/*"};
    struct cu_outputs o;
    struct cu_err e = {0};
    char p[CU_PATH_MAX], secret[CU_PATH_MAX];

    assert_int_equal(cu_path_join(secret, sizeof secret, f->dir, "secret.txt"), 0);
    assert_int_equal(cu_write_file_atomic(secret, "secret", 6, 0644), 0);
    out_path(f, "up", p);
    assert_int_equal(symlink("..", p), 0);
    cu_outputs_init(&o);
    assert_int_equal(cu_outputs_collect(f->out, globs, 2, &f->bs, 0, NULL, &o, &e), 0);
    assert_int_equal(o.n, 0);
    cu_outputs_release(&o);
}

static void test_collect_empty_root(void **state)
{
    struct fixture *f = *state;
    char *globs[] = {"*.txt"};
    struct cu_outputs o;
    struct cu_err e = {0};
    struct cu_hash root;

    cu_outputs_init(&o);
    assert_int_equal(cu_outputs_collect(f->out, globs, 1, &f->bs, 0, NULL, &o, &e), 0);
    assert_int_equal(o.n, 0);
    assert_int_equal(cu_merkle_root(NULL, 0, &root), 0);
    assert_true(cu_hash_eq(&root, &o.root));
    cu_outputs_release(&o);
}

static void test_collect_output_limit(void **state)
{
    struct fixture *f = *state;
    char *globs[] = {"*.txt"};
    struct cu_outputs o;
    struct cu_err e = {0};

    put(f, "a.txt", "0123456789");
    put(f, "b.txt", "0123456789");
    cu_outputs_init(&o);
    assert_int_equal(cu_outputs_collect(f->out, globs, 1, &f->bs, 15, NULL, &o, &e), -CU_ETOOBIG);
    assert_non_null(strstr(e.msg, "output limit"));
    cu_outputs_release(&o);
    cu_outputs_init(&o);
    assert_int_equal(cu_outputs_collect(f->out, globs, 1, &f->bs, 20, NULL, &o, &e), 0);
    assert_int_equal(o.n, 2);
    cu_outputs_release(&o);
}

static void load_spec(struct cu_spec *s, const char *json)
{
    struct cu_err e = {0};
    json_t *j = cu_json_parse(json, strlen(json), &e);

    assert_non_null(j);
    cu_spec_init(s);
    if (cu_spec_from_json(s, j, &e) != 0)
        fail_msg("spec: %s", e.msg);
    json_decref(j);
}

static const char *env_get(char **env, const char *key)
{
    size_t kl = strlen(key);

    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
            return env[i] + kl + 1;
    return NULL;
}

static const char spec_json[] =
    "{\"name\":\"t\",\"command\":[\"sh\",\"-c\",\"true\"],\"image\":\"host\","
    "\"env\":{\"FOO\":\"bar baz\"},\"inputs\":[],"
    "\"tasks\":{\"count\":4},\"resources\":{\"cores\":1,\"memory\":268435456,"
    "\"time_ms\":30000,\"output\":1048576,\"gpus\":0},\"replication\":1,"
    "\"outputs\":[\"*.txt\"],\"price\":{\"max_per_cu\":100}}";

static void test_env(void **state)
{
    struct cu_spec s;
    char **env;
    size_t n = 0;

    (void)state;
    load_spec(&s, spec_json);
    env = cu_task_env_build(&s, "j-abc", 42, 2, 4, NULL);
    assert_non_null(env);
    assert_string_equal(env_get(env, "CUMULUS_TASK_INDEX"), "2");
    assert_string_equal(env_get(env, "CUMULUS_TASK_COUNT"), "4");
    assert_string_equal(env_get(env, "CUMULUS_JOB_ID"), "j-abc");
    assert_string_equal(env_get(env, "CUMULUS_REPLICA_ID"), "42");
    assert_string_equal(env_get(env, "FOO"), "bar baz");
    assert_null(env_get(env, "CUMULUS_TASK_ARG"));
    for (n = 0; env[n]; n++)
        ;
    assert_int_equal(n, 5);
    cu_task_env_free(env);

    env = cu_task_env_build(&s, "j-abc", 42, 0, 4, "x=1 y");
    assert_non_null(env);
    assert_string_equal(env_get(env, "CUMULUS_TASK_ARG"), "x=1 y");
    cu_task_env_free(env);
    cu_spec_release(&s);
}

static void test_report_json(void **state)
{
    struct fixture *f = *state;
    char *globs[] = {"*.txt"};
    struct cu_outputs o;
    struct cu_err e = {0};
    struct cu_report rep = {.status = "ok", .has_exit_code = true, .exit_code = 0,
                            .cpu_ms = 120, .wall_ms = 130};
    char hex[CU_HASH_HEX_LEN + 1];
    json_t *j, *out0;

    put(f, "r.txt", "result\n");
    cu_outputs_init(&o);
    assert_int_equal(cu_outputs_collect(f->out, globs, 1, &f->bs, 0, NULL, &o, &e), 0);
    rep.outputs = &o;
    cu_hash_mem("out", 3, &rep.out.hash);
    rep.out.size = 3;
    cu_hash_mem("", 0, &rep.err.hash);
    j = cu_report_to_json(&rep);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 0);
    assert_true(json_is_null(json_object_get(j, "reason")));
    assert_int_equal(json_integer_value(json_object_get(j, "cpu_ms")), 120);
    assert_int_equal(json_integer_value(json_object_get(j, "wall_ms")), 130);
    out0 = json_array_get(json_object_get(j, "outputs"), 0);
    assert_string_equal(json_string_value(json_object_get(out0, "name")), "r.txt");
    assert_int_equal(json_integer_value(json_object_get(out0, "size")), 7);
    cu_hash_to_hex(&o.root, hex);
    assert_string_equal(json_string_value(json_object_get(j, "merkle_root")), hex);
    cu_hash_to_hex(&rep.out.hash, hex);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "stdout"), "hash")), hex);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "stdout"), "size")),
                     3);
    assert_int_equal(json_object_size(j), 9);
    json_decref(j);

    /* An error report: no exit code, a reason, no outputs. */
    rep = (struct cu_report){.status = "error", .reason = "provider restarted"};
    j = cu_report_to_json(&rep);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "exit_code")));
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "provider restarted");
    assert_int_equal(json_array_size(json_object_get(j, "outputs")), 0);
    json_decref(j);
    cu_outputs_release(&o);
}

/* Small files are kept in memory for the report's "blobs" while the
 * inline budget lasts, larger ones go to the cache, empty ones are neither;
 * logs the same; the report carries exactly the in-memory ones, base64. */
static void test_collect_inline(void **state)
{
    struct fixture *f = *state;
    char *globs[] = {"*"};
    struct cu_outputs o;
    struct cu_err e = {0};
    struct cu_blobref lo, le, lm;
    struct cu_report rep = {.status = "ok", .has_exit_code = true};
    char hex[CU_HASH_HEX_LEN + 1], p[CU_PATH_MAX], big[101];
    uint64_t room = 30, size;
    json_t *j, *blobs;
    unsigned char dec[128];
    size_t n;

    memset(big, 'b', 100);
    big[100] = '\0';
    put(f, "a.txt", "small a\n");  /* 8 bytes: inline */
    put(f, "b.txt", big);          /* 100: past the budget of 30: cache */
    put(f, "c.txt", "");           /* empty: neither */
    put(f, "d.txt", "small d\n");  /* 8: inline */
    cu_outputs_init(&o);
    assert_int_equal(cu_outputs_collect(f->out, globs, 1, &f->bs, 0, &room, &o, &e), 0);
    assert_int_equal(o.n, 4);
    assert_non_null(o.v[0].data);
    assert_memory_equal(o.v[0].data, "small a\n", 8);
    assert_null(o.v[1].data);
    assert_int_equal(cu_blob_stat(&f->bs, &o.v[1].hash, &size), 0);
    assert_int_equal(size, 100);
    assert_null(o.v[2].data);
    assert_true(cu_blob_is_empty_hash(&o.v[2].hash));
    assert_int_equal(o.v[2].size, 0);
    assert_non_null(o.v[3].data);
    assert_int_equal(cu_blob_stat(&f->bs, &o.v[0].hash, NULL), -CU_ENOTFOUND); /* not cached */
    assert_int_equal(room, 30 - 16);

    /* Logs: missing = empty blob; small = inline; past the budget = cache. */
    assert_int_equal(cu_path_join(p, sizeof p, f->dir, "no-such-log"), 0);
    assert_int_equal(cu_log_collect(&f->bs, p, &room, &lm), 0);
    assert_true(cu_blob_is_empty_hash(&lm.hash));
    assert_null(lm.data);
    assert_int_equal(cu_path_join(p, sizeof p, f->dir, "stdout"), 0);
    assert_int_equal(cu_write_file_atomic(p, "log line\n", 9, 0644), 0);
    assert_int_equal(cu_log_collect(&f->bs, p, &room, &lo), 0);
    assert_non_null(lo.data);
    assert_int_equal(lo.size, 9);
    assert_int_equal(cu_path_join(p, sizeof p, f->dir, "stderr"), 0);
    assert_int_equal(cu_write_file_atomic(p, big, 100, 0644), 0);
    assert_int_equal(cu_log_collect(&f->bs, p, &room, &le), 0);
    assert_null(le.data);
    assert_int_equal(cu_blob_stat(&f->bs, &le.hash, &size), 0);

    rep.outputs = &o;
    rep.out = lo;
    rep.err = le;
    j = cu_report_to_json(&rep);
    assert_non_null(j);
    blobs = json_object_get(j, "blobs");
    assert_true(json_is_object(blobs));
    /* a.txt, d.txt and stdout; not b.txt, c.txt or stderr. */
    assert_int_equal(json_object_size(blobs), 3);
    cu_hash_to_hex(&o.v[0].hash, hex);
    assert_int_equal(sodium_base642bin(dec, sizeof dec, json_string_value(json_object_get(blobs, hex)),
                                       json_string_length(json_object_get(blobs, hex)), NULL, &n,
                                       NULL, sodium_base64_VARIANT_ORIGINAL),
                     0);
    assert_int_equal(n, 8);
    assert_memory_equal(dec, "small a\n", 8);
    cu_hash_to_hex(&lo.hash, hex);
    assert_non_null(json_object_get(blobs, hex));
    cu_hash_to_hex(&o.v[1].hash, hex);
    assert_null(json_object_get(blobs, hex));
    json_decref(j);
    cu_blobref_release(&lo);
    cu_blobref_release(&le);
    cu_outputs_release(&o);
}

static void test_pstate(void **state)
{
    struct fixture *f = *state;
    struct cu_pstate ps;
    struct cu_pstate_row *rows;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    size_t n;

    assert_int_equal(cu_path_join(path, sizeof path, f->dir, "state.db"), 0);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    assert_int_equal(cu_pstate_running(&ps, "http://a", 7, "j-1", 3), 0);
    assert_int_equal(cu_pstate_running(&ps, "http://a", 8, "j-1", 4), 0);
    assert_int_equal(cu_pstate_running(&ps, "http://b", 7, "j-2", 0), 0);
    assert_int_equal(cu_pstate_finished(&ps, "http://a", 8, "{\"status\":\"ok\"}"), 0);
    assert_int_equal(cu_pstate_list(&ps, "http://a", &rows, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].id == 7) {
            assert_string_equal(rows[i].state, "running");
            assert_string_equal(rows[i].job, "j-1");
            assert_int_equal(rows[i].task, 3);
            assert_null(rows[i].report_json);
        } else {
            assert_int_equal(rows[i].id, 8);
            assert_string_equal(rows[i].state, "finished");
            assert_string_equal(rows[i].report_json, "{\"status\":\"ok\"}");
        }
    }
    cu_pstate_rows_free(rows, n);
    assert_int_equal(cu_pstate_forget(&ps, "http://a", 7), 0);
    assert_int_equal(cu_pstate_forget_others(&ps, "http://a"), 1);
    cu_pstate_close(&ps);

    /* Survives a reopen. */
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    assert_int_equal(cu_pstate_list(&ps, "http://a", &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].id, 8);
    cu_pstate_rows_free(rows, n);
    assert_int_equal(cu_pstate_list(&ps, "http://b", &rows, &n), 0);
    assert_int_equal(n, 0);
    cu_pstate_rows_free(rows, n);
    cu_pstate_close(&ps);
}

/* History rows ride in the next write's transaction, or are written at
 * close: either way `provider status` (cu_pstate_view) sees each. */
static void test_pstate_history(void **state)
{
    struct fixture *f = *state;
    struct cu_pstate ps;
    struct cu_pstate_done d = {.task = 1, .cpu_ms = 5, .wall_ms = 6}, *run, *done;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    size_t nrun, ndone;

    assert_int_equal(cu_path_join(path, sizeof path, f->dir, "state.db"), 0);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    (void)cu_snprintf(d.job, sizeof d.job, "j-h");
    (void)cu_snprintf(d.status, sizeof d.status, "ok");
    for (int64_t id = 1; id <= CU_PSTATE_HIST_PENDING + 2; id++) { /* overflows once */
        d.id = id;
        assert_int_equal(cu_pstate_history_add(&ps, "http://a", &d), 0);
    }
    assert_int_equal(cu_pstate_running(&ps, "http://a", 9, "j-h", 2), 0);
    assert_int_equal(cu_pstate_view(path, 200, &run, &nrun, &done, &ndone, &e), 0);
    assert_int_equal(nrun, 1);
    assert_int_equal(ndone, CU_PSTATE_HIST_PENDING + 2);
    free(run);
    free(done);
    d.id = CU_PSTATE_HIST_PENDING + 3;
    assert_int_equal(cu_pstate_history_add(&ps, "http://a", &d), 0);
    cu_pstate_close(&ps);
    assert_int_equal(cu_pstate_view(path, 200, &run, &nrun, &done, &ndone, &e), 0);
    assert_int_equal(ndone, CU_PSTATE_HIST_PENDING + 3);
    assert_int_equal(done[0].id, CU_PSTATE_HIST_PENDING + 3);
    assert_string_equal(done[0].exchange, "http://a");
    free(run);
    free(done);
}

/* The reporter's write: n reports 'finished' in one transaction, with the
 * deletes and history rows that wait riding along; a replica without a
 * row stays without one, and a reopen finds each report to resend. */
static void test_pstate_finished_batch(void **state)
{
    struct fixture *f = *state;
    static const char ex[] = "http://a";
    struct cu_pstate_report r[3] = {{1, "{\"status\":\"ok\"}"},
                                    {2, "{\"status\":\"failed\"}"},
                                    {9, "{\"status\":\"ok\"}"}};
    struct cu_pstate_done d = {.id = 3, .task = 2};
    struct cu_pstate_done *run, *done;
    struct cu_pstate_row *rows;
    struct cu_pstate ps;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    size_t n, nrun, ndone;

    assert_int_equal(cu_path_join(path, sizeof path, f->dir, "state.db"), 0);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    for (int64_t id = 1; id <= 3; id++)
        assert_int_equal(cu_pstate_running(&ps, ex, id, "j-b", (uint32_t)id), 0);
    assert_int_equal(cu_pstate_finished(&ps, ex, 3, "{\"status\":\"ok\"}"), 0);
    assert_int_equal(cu_pstate_forget_later(&ps, ex, 3), 0);
    (void)cu_snprintf(d.job, sizeof d.job, "j-b");
    (void)cu_snprintf(d.status, sizeof d.status, "ok");
    assert_int_equal(cu_pstate_history_add(&ps, ex, &d), 0);
    assert_int_equal(cu_pstate_finished_batch(&ps, ex, r, 0), 0);
    assert_int_equal(cu_pstate_finished_batch(&ps, ex, r, 3), 0);
    /* Read back as a crash would find it: without closing. */
    assert_int_equal(cu_pstate_view(path, 10, &run, &nrun, &done, &ndone, &e), 0);
    assert_int_equal(nrun, 0);
    assert_int_equal(ndone, 1); /* the history row rode along */
    assert_int_equal(done[0].id, 3);
    free(run);
    free(done);
    assert_int_equal(cu_pstate_list(&ps, ex, &rows, &n), 0);
    assert_int_equal(n, 2); /* 3 deleted with the batch; 9 never had a row */
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].state, "finished");
        assert_string_equal(rows[i].report_json, r[rows[i].id - 1].body);
    }
    cu_pstate_rows_free(rows, n);
    cu_pstate_close(&ps);
}

/* The history keeps the newest 200 finished replicas (a few dozen more
 * between prunes), whatever their clocks say. */
static void test_pstate_history_pruned(void **state)
{
    struct fixture *f = *state;
    struct cu_pstate_done d = {.task = 1}, *run, *done;
    struct cu_pstate ps;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    size_t nrun, ndone;

    assert_int_equal(cu_path_join(path, sizeof path, f->dir, "state.db"), 0);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    (void)cu_snprintf(d.job, sizeof d.job, "j-p");
    (void)cu_snprintf(d.status, sizeof d.status, "ok");
    for (int64_t id = 1; id <= 1000; id++) {
        d.id = id;
        d.finished_ms = 5000000 - id; /* a clock that went backwards */
        assert_int_equal(cu_pstate_history_add(&ps, "http://a", &d), 0);
        if (id % 10 == 0)
            assert_int_equal(cu_pstate_flush(&ps), 0);
    }
    cu_pstate_close(&ps);
    assert_int_equal(cu_pstate_view(path, 5000, &run, &nrun, &done, &ndone, &e), 0);
    assert_true(ndone >= 200 && ndone <= 200 + 32);
    for (size_t i = 0; i < ndone; i++)
        assert_true(done[i].id > 1000 - (int64_t)ndone); /* the newest added */
    free(run);
    free(done);
}

/* Leases written by their claims' batch writes are not written again
 * when they start, for as many leases as a provider holds ahead. */
static void test_pstate_fresh(void **state)
{
    struct fixture *f = *state;
    static const char ex[] = "http://a";
    struct cu_pstate_lease l[32];
    struct cu_pstate ps;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    int changes;

    assert_int_equal(cu_path_join(path, sizeof path, f->dir, "state.db"), 0);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    for (int c = 0; c < 2; c++) { /* two claims of 32: 64 held */
        for (size_t i = 0; i < 32; i++)
            l[i] = (struct cu_pstate_lease){.replica = 1 + c * 32 + (int64_t)i, .job = "j-r"};
        assert_int_equal(cu_pstate_running_batch(&ps, ex, l, 32), 0);
    }
    changes = sqlite3_total_changes(ps.db.h);
    for (int64_t id = 1; id <= 64; id++)
        assert_int_equal(cu_pstate_running(&ps, ex, id, "j-r", 0), 0);
    assert_int_equal(sqlite3_total_changes(ps.db.h), changes);
    /* Not written by a batch: written now. */
    assert_int_equal(cu_pstate_running(&ps, ex, 99, "j-r", 0), 0);
    assert_int_equal(sqlite3_total_changes(ps.db.h), changes + 1);
    cu_pstate_close(&ps);
}

/* Counts the rows of exchange in ps. */
static size_t pstate_rows(struct cu_pstate *ps, const char *exchange, int64_t has, bool *found)
{
    struct cu_pstate_row *rows;
    size_t n;

    assert_int_equal(cu_pstate_list(ps, exchange, &rows, &n), 0);
    *found = false;
    for (size_t i = 0; i < n; i++)
        *found = *found || rows[i].id == has;
    cu_pstate_rows_free(rows, n);
    return n;
}

/* A forgotten-later row stays until the next write, a flush, or close
 * (each deletes it), and too many waiting are deleted at once. */
static void test_pstate_forget_later(void **state)
{
    struct fixture *f = *state;
    static const char ex[] = "http://a";
    struct cu_pstate_lease l[CU_PSTATE_GONE_PENDING + 6];
    struct cu_pstate ps;
    struct cu_err e = {0};
    char path[CU_PATH_MAX];
    bool found;

    assert_int_equal(cu_path_join(path, sizeof path, f->dir, "state.db"), 0);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    for (int64_t id = 1; id <= 3; id++) {
        assert_int_equal(cu_pstate_running(&ps, ex, id, "j-f", 0), 0);
        assert_int_equal(cu_pstate_finished(&ps, ex, id, "{\"status\":\"ok\"}"), 0);
    }
    assert_int_equal(cu_pstate_forget_later(&ps, ex, 1), 0);
    assert_int_equal(pstate_rows(&ps, ex, 1, &found), 3);
    assert_true(found); /* not yet */
    assert_int_equal(cu_pstate_running(&ps, ex, 4, "j-f", 1), 0); /* a write */
    assert_int_equal(pstate_rows(&ps, ex, 1, &found), 3);
    assert_false(found);
    assert_int_equal(cu_pstate_forget_later(&ps, ex, 2), 0);
    assert_int_equal(cu_pstate_flush(&ps), 0);
    assert_int_equal(pstate_rows(&ps, ex, 2, &found), 2);
    assert_false(found);
    assert_int_equal(cu_pstate_flush(&ps), 0); /* nothing waits: nothing to do */
    assert_int_equal(cu_pstate_forget_later(&ps, ex, 3), 0);
    cu_pstate_close(&ps);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    assert_int_equal(pstate_rows(&ps, ex, 4, &found), 1); /* 3 went at close */
    assert_true(found);

    /* A claim's batch write carries them too; more than fit wait for none. */
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        l[i] = (struct cu_pstate_lease){.replica = 100 + (int64_t)i, .job = "j-g", .task = 0};
    assert_int_equal(cu_pstate_running_batch(&ps, ex, l, sizeof l / sizeof l[0]), 0);
    assert_int_equal(pstate_rows(&ps, ex, 4, &found), 1 + sizeof l / sizeof l[0]);
    assert_int_equal(cu_pstate_forget_later(&ps, ex, 4), 0);
    assert_int_equal(cu_pstate_running_batch(&ps, ex, l, 1), 0);
    assert_int_equal(pstate_rows(&ps, ex, 4, &found), sizeof l / sizeof l[0]);
    assert_false(found);
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        assert_int_equal(cu_pstate_forget_later(&ps, ex, l[i].replica), 0);
    /* The first CU_PSTATE_GONE_PENDING went when the next one came. */
    assert_int_equal(pstate_rows(&ps, ex, 4, &found), 6);
    cu_pstate_close(&ps);
    assert_int_equal(cu_pstate_open(&ps, path, &e), 0);
    assert_int_equal(pstate_rows(&ps, ex, 4, &found), 0);
    cu_pstate_close(&ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_collect_filters_and_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect_symlinked_dir_not_followed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_collect_empty_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect_output_limit, setup, teardown),
        cmocka_unit_test(test_env),
        cmocka_unit_test_setup_teardown(test_report_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect_inline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstate_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstate_history_pruned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstate_forget_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstate_finished_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pstate_fresh, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
