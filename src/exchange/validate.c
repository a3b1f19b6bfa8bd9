/* validate.c - validator commands (issue 4, docs/api.md "Trust").
 *
 * A job may ship a validator: a program that compares two results and
 * exits 0 when they agree (for results that are not bitwise equal, e.g.
 * floating point). The exchange runs it in its own sandbox (bwrap, as
 * uid 65534, no network) with the job's inputs under /in and the two
 * results under /work/a and /work/b.
 *
 * A reported ok replica of such a job is held back from its task's quorum
 * (`validating`) until it has been compared with the task's earlier
 * results: it takes the vote root of the first one the validator (or
 * plain equality) says it agrees with, else its own root; then the task is
 * decided as usual on vote roots. Validations run one at a time (vmu), so
 * each sees the ones before it; a crash before the verdict leaves the
 * replica `validating`, and the reaper validates it again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "exchange/sql.h"
#include "exchange/validate.h"
#include "fabric/sandbox.h"

#include "base/banned.h"

#define VALIDATE_TIME_MS 60000
#define VALIDATE_MEMORY (512ULL << 20)
#define VALIDATE_MAX_OTHERS 32

static pthread_mutex_t vmu = PTHREAD_MUTEX_INITIALIZER;

/* Copies blob hash (hex) of the exchange's store to dir/name, creating
 * parent directories; world-readable for the sandbox's uid. */
static int place_blob(struct ex_state *st, const char *hex, const char *dir, const char *name,
                      struct cu_err *e)
{
    char src[CU_PATH_MAX], dst[CU_PATH_MAX];
    struct cu_buf b = CU_BUF_INIT(1ULL << 30);
    struct cu_hash h;
    char *slash;
    int rc;

    if (cu_hash_from_hex(hex, &h) != 0 || strstr(name, "..") || name[0] == '/')
        return cu_err_set(e, -CU_EINVAL, "bad output '%.80s'", name);
    if (cu_blob_path(&st->blobs, &h, src, sizeof src) != 0 ||
        cu_path_join(dst, sizeof dst, dir, name) != 0)
        return cu_err_set(e, -CU_ETOOBIG, "path too long");
    slash = strrchr(dst, '/');
    if (slash) {
        *slash = '\0';
        rc = cu_mkdir_p(dst, 0755);
        *slash = '/';
        if (rc)
            return cu_err_set(e, rc, "cannot create the directory of %s", dst);
    }
    rc = cu_read_file(src, &b);
    if (!rc)
        rc = cu_write_file_atomic(dst, b.data, b.len, 0644);
    cu_buf_release(&b);
    if (rc)
        return cu_err_set(e, rc, "cannot copy blob %.16s to %s", hex, dst);
    return 0;
}

/* Places a JSON list of {name, hash} under dir. */
static int place_list(struct ex_state *st, const json_t *list, const char *dir, struct cu_err *e)
{
    const json_t *o;
    size_t i;
    int rc;

    json_array_foreach(list, i, o) {
        rc = place_blob(st, json_string_value(json_object_get(o, "hash")), dir,
                        json_string_value(json_object_get(o, "name")), e);
        if (rc)
            return rc;
    }
    return 0;
}

int ex_validate_run(struct ex_state *st, const json_t *spec, const json_t *outs_a,
                    const json_t *outs_b, bool *agree, char *why, size_t whyn)
{
    char tmpl[] = "/tmp/cu-validate-XXXXXX", path[6][CU_PATH_MAX];
    const json_t *cmd = json_object_get(json_object_get(spec, "validator"), "command"), *v;
    const char *argv[CU_SPEC_MAX_ARGV + 1];
    struct cu_sandbox_opts o = CU_SANDBOX_OPTS_INIT;
    struct cu_sandbox_result res;
    struct cu_sandbox *sb = NULL;
    struct cu_err e = {0};
    size_t i, n = 0;
    int rc;

    *agree = false;
    json_array_foreach(cmd, i, v) {
        if (n < CU_SPEC_MAX_ARGV)
            argv[n++] = json_string_value(v);
    }
    argv[n] = NULL;
    if (n == 0 || !argv[0]) {
        (void)cu_snprintf(why, whyn, "the job has no validator command");
        return -CU_EINVAL;
    }
    if (!mkdtemp(tmpl)) {
        (void)cu_snprintf(why, whyn, "mkdtemp: %s", strerror(errno));
        return -CU_EIO;
    }
    chmod(tmpl, 0711); /* the sandbox's uid must reach into it */
    rc = cu_path_join(path[0], sizeof path[0], tmpl, "in") ||
         cu_path_join(path[1], sizeof path[1], tmpl, "work") ||
         cu_path_join(path[2], sizeof path[2], tmpl, "out") ||
         cu_path_join(path[3], sizeof path[3], tmpl, "work/a");
    if (!rc)
        rc = cu_mkdir_p(path[0], 0755) || cu_mkdir_p(path[2], 0755) ||
             cu_mkdir_p(path[3], 0755);
    if (!rc)
        rc = place_list(st, json_object_get(spec, "inputs"), path[0], &e);
    if (!rc)
        rc = place_list(st, outs_a, path[3], &e);
    if (!rc) {
        rc = cu_path_join(path[3], sizeof path[3], tmpl, "work/b");
        if (!rc)
            rc = cu_mkdir_p(path[3], 0755);
        if (!rc)
            rc = place_list(st, outs_b, path[3], &e);
    }
    if (rc) {
        (void)cu_snprintf(why, whyn, "cannot prepare the validation: %s", e.msg);
        goto out_rm;
    }
    if (cu_path_join(path[4], sizeof path[4], tmpl, "stdout") ||
        cu_path_join(path[5], sizeof path[5], tmpl, "stderr")) {
        (void)cu_snprintf(why, whyn, "path too long");
        rc = -CU_ETOOBIG;
        goto out_rm;
    }
    o.stdout_path = path[4];
    o.stderr_path = path[5];
    o.argv = argv;
    o.in_dir = path[0];
    o.work_dir = path[1];
    o.out_dir = path[2];
    o.time_limit_ms = VALIDATE_TIME_MS;
    o.memory_limit = VALIDATE_MEMORY;
    o.output_limit = 64ULL << 20;
    rc = cu_sandbox_start(&o, &sb, &e);
    if (rc) {
        (void)cu_snprintf(why, whyn, "cannot start the validator: %s", e.msg);
        goto out_rm;
    }
    while (cu_sandbox_wait(sb, 1000) == -CU_EAGAIN)
        ;
    cu_sandbox_get_result(sb, &res);
    cu_sandbox_free(sb);
    if (res.status == CU_SB_OK) {
        *agree = true;
        (void)cu_snprintf(why, whyn, "the validator says they agree");
    } else if (res.status == CU_SB_FAILED) {
        (void)cu_snprintf(why, whyn, "the validator says they differ (%s)", res.reason);
    } else {
        (void)cu_snprintf(why, whyn, "the validator did not finish: %s", res.reason);
        rc = -CU_ESANDBOX;
    }
out_rm:
    cu_rm_rf(tmpl);
    return rc;
}

struct other {
    int64_t id;
    char root[CU_HASH_HEX_LEN + 1];
    json_t *outputs;
};

int ex_validate_replica(struct ex_state *st, int64_t replica)
{
    struct other others[VALIDATE_MAX_OTHERS];
    size_t nothers = 0;
    char job[32] = "", root[CU_HASH_HEX_LEN + 1] = "", vote[CU_HASH_HEX_LEN + 1] = "";
    json_t *spec = NULL, *mine = NULL;
    bool queued = false;
    int64_t idx = 0, now;
    sqlite3_stmt *s;
    int rc;

    pthread_mutex_lock(&vmu);
    pthread_mutex_lock(&st->mu);
    s = ex_sql_query(st,
                     "SELECT r.job_id, r.task_idx, r.merkle_root, r.outputs_json, j.spec_json "
                     "FROM replicas r JOIN jobs j ON j.id = r.job_id "
                     "WHERE r.id = ?1 AND r.validating = 1",
                     "i", replica);
    rc = s ? ex_sql_step(st, s) : -CU_EDB;
    if (rc == 1) {
        ex_col_copy(s, 0, job, sizeof job);
        idx = sqlite3_column_int64(s, 1);
        ex_col_copy(s, 2, root, sizeof root);
        mine = ex_col_text(s, 3) ? json_loads(ex_col_text(s, 3), 0, NULL) : json_array();
        spec = ex_col_text(s, 4) ? json_loads(ex_col_text(s, 4), 0, NULL) : NULL;
    }
    sqlite3_finalize(s);
    if (rc == 1) {
        /* The task's results decided on so far, oldest first. */
        s = ex_sql_query(st,
                         "SELECT id, COALESCE(vote_root, merkle_root), outputs_json FROM replicas "
                         "WHERE job_id = ?1 AND task_idx = ?2 AND id != ?3 AND status = 'ok' "
                         "AND validating = 0 AND merkle_root IS NOT NULL AND "
                         "state IN ('reported','accepted','rejected') ORDER BY id",
                         "tii", job, idx, replica);
        while (s && ex_sql_step(st, s) == 1 && nothers < VALIDATE_MAX_OTHERS) {
            struct other *ot = &others[nothers++];
            ot->id = sqlite3_column_int64(s, 0);
            ex_col_copy(s, 1, ot->root, sizeof ot->root);
            ot->outputs = ex_col_text(s, 2) ? json_loads(ex_col_text(s, 2), 0, NULL) : NULL;
        }
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&st->mu);
    if (rc != 1) {
        rc = rc < 0 ? rc : 0;
        goto out_free;
    }

    /* Compare without the lock: the validator may take seconds. */
    (void)cu_snprintf(vote, sizeof vote, "%s", root);
    for (size_t i = 0; i < nothers; i++) {
        char why[CU_ERR_MSG_MAX] = "";
        bool agree = false;
        if (strcmp(others[i].root, root) == 0) {
            break; /* bitwise equal: its own root already is that vote */
        }
        if (ex_validate_run(st, spec, mine, others[i].outputs, &agree, why, sizeof why) != 0)
            cu_warn("replica %lld vs %lld: %s", (long long)replica, (long long)others[i].id,
                    why);
        cu_info("replica %lld vs %lld: %s", (long long)replica, (long long)others[i].id, why);
        if (agree) {
            (void)cu_snprintf(vote, sizeof vote, "%s", others[i].root);
            break;
        }
    }

    now = cu_now_ms();
    pthread_mutex_lock(&st->mu);
    rc = ex_txn_begin(st, NULL);
    if (!rc)
        rc = ex_sql_run(st,
                        "UPDATE replicas SET vote_root = ?2, validating = 0 WHERE id = ?1 AND "
                        "validating = 1",
                        "it", replica, vote);
    if (!rc)
        rc = ex_task_decide(st, job, idx, now, &queued);
    if (!rc)
        rc = ex_txn_commit(st, now, NULL);
    else
        ex_txn_rollback(st);
    if (!rc && queued)
        pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->mu);
out_free:
    pthread_mutex_unlock(&vmu);
    for (size_t i = 0; i < nothers; i++)
        json_decref(others[i].outputs);
    json_decref(mine);
    json_decref(spec);
    return rc;
}

int ex_validate_sweep(struct ex_state *st)
{
    int64_t ids[16];
    size_t n = 0;
    sqlite3_stmt *s;

    pthread_mutex_lock(&st->mu);
    s = ex_sql_query(st, "SELECT id FROM replicas WHERE validating = 1 ORDER BY id LIMIT 16", "");
    while (s && ex_sql_step(st, s) == 1 && n < 16)
        ids[n++] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n; i++)
        (void)ex_validate_replica(st, ids[i]);
    return (int)n;
}
