/* trust.c - the exchange's trust state (issue 4): reputation records and
 * cached scores, capability challenges, heartbeat secrets, and the
 * reputation view (see trust.h; the rules are src/trust/, docs/trust.md).
 *
 * Every function expects mu held unless it says otherwise; those that
 * write run inside the caller's transaction. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "exchange/settle.h"
#include "exchange/sql.h"
#include "exchange/trust.h"
#include "trust/challenge.h"
#include "trust/reputation.h"

#include "base/banned.h"

#define SCORE_RECORDS_MAX 1000 /* the newest records behind a score */

/* ---- reputation ------------------------------------------------------------------ */

static int score_of(struct ex_state *st, const char *provider, int64_t now, uint32_t *score,
                    struct cu_rep_tally *tally)
{
    struct cu_rep_params params;
    struct cu_rep_tally t;
    sqlite3_stmt *s;
    int rc;

    cu_rep_params_default(&params);
    cu_rep_tally_init(&t);
    s = ex_sql_cached(st,
                     "SELECT outcome, time_ms FROM rep_records WHERE provider = ?1 "
                     "ORDER BY time_ms DESC LIMIT ?2",
                     "ti", provider, (int64_t)SCORE_RECORDS_MAX);
    if (!s)
        return -CU_EDB;
    while ((rc = ex_sql_step(st, s)) == 1) {
        struct cu_rep_record r;
        if (cu_rep_outcome_parse(ex_col_text(s, 0), &r.outcome) != 0)
            continue;
        r.time_ms = sqlite3_column_int64(s, 1);
        (void)cu_rep_tally_add(&t, &params, &r, now);
        /* Newest first: the clean streak ends at the first bad record. */
        if (r.outcome == CU_REP_ACCEPTED && t.last_bad_ms == INT64_MIN)
            t.clean_streak++;
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    *score = cu_rep_score_milli(&t, &params);
    if (tally)
        *tally = t;
    return 0;
}

enum cu_rep_outcome ex_trust_outcome(enum cu_task_status s)
{
    switch (s) {
    case CU_TASK_SUCCESS:
        return CU_REP_ACCEPTED;
    case CU_TASK_WRONG_RESULT:
        return CU_REP_WRONG_RESULT;
    case CU_TASK_TIMEOUT:
        return CU_REP_LEASE_EXPIRED;
    case CU_TASK_CHALLENGE_FAILED:
        return CU_REP_CHALLENGE_FAILED;
    case CU_TASK_ABANDONED:
    default:
        return CU_REP_ABANDONED;
    }
}

int ex_trust_record(struct ex_state *st, const char *provider, enum cu_rep_outcome outcome,
                    const char *job, int64_t replica, int64_t now)
{
    int rc;

    rc = ex_sql_run(st,
                    "INSERT INTO rep_records (provider, time_ms, outcome, job, replica) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)",
                    "titti", provider, now, cu_rep_outcome_name(outcome), job,
                    replica > 0 ? replica : (int64_t)0);
    /* The score is recomputed from up to SCORE_RECORDS_MAX records when
     * it is next read (ex_trust_score). score_at marks it stale since the
     * first record it misses: only that record writes the providers row,
     * so the accepted records of a busy provider's reports mostly leave
     * it out of their commits. Any other outcome makes every read
     * recompute (score_lag). */
    if (!rc && outcome == CU_REP_ACCEPTED) {
        /* A report batch records one provider up to 16 times in one
         * transaction: once its score_at is set, the others would find it
         * set. Nothing in the transaction clears it but a recompute,
         * which forgets the mark (ex_trust_score). */
        if (st->in_txn && strcmp(st->score_marked, provider) == 0)
            return 0;
        rc = ex_sql_run(st, "UPDATE providers SET score_at = ?2 WHERE id = ?1 AND score_at IS NULL",
                        "ti", provider, now);
        if (!rc && st->in_txn)
            (void)cu_snprintf(st->score_marked, sizeof st->score_marked, "%s", provider);
    } else if (!rc)
        rc = ex_sql_run(st,
                        "UPDATE providers SET score_at = COALESCE(score_at, ?2), score_lag = ?3 "
                        "WHERE id = ?1",
                        "tii", provider, now, (int64_t)EX_SCORE_LAG_RECORDS);
    return rc;
}

uint32_t ex_trust_score(struct ex_state *st, const char *provider, bool exact)
{
    sqlite3_stmt *s = ex_sql_cached(
        st, "SELECT score, score_at, score_lag, score_ms FROM providers WHERE id = ?1", "t",
        provider);
    uint32_t v = 0;
    int64_t at = 0, lag = 0, since = 0, missed = 0, newest = 0;
    bool stale = false, computed = false;
    int rc;

    if (s && ex_sql_step(st, s) == 1) {
        v = (uint32_t)sqlite3_column_int64(s, 0);
        stale = !ex_col_null(s, 1);
        at = sqlite3_column_int64(s, 1);
        lag = sqlite3_column_int64(s, 2);
        computed = !ex_col_null(s, 3);
        since = sqlite3_column_int64(s, 3);
    }
    ex_sql_done(st, s);
    if (!stale)
        return v;
    /* The records since the first one the score misses (an index range;
     * records of that same millisecond it did count make the count
     * larger, never smaller), and the newest record's time. */
    s = ex_sql_cached(st,
                      "SELECT (SELECT COUNT(*) FROM rep_records WHERE provider = ?1 AND "
                      "time_ms >= ?2), (SELECT MAX(time_ms) FROM rep_records WHERE provider = ?1)",
                      "ti", provider, at);
    rc = s ? ex_sql_step(st, s) : -CU_EDB;
    if (rc == 1) {
        missed = sqlite3_column_int64(s, 0);
        newest = ex_col_null(s, 1) ? at : sqlite3_column_int64(s, 1);
    }
    ex_sql_done(st, s);
    if (rc != 1)
        return 0;
    /* Only accepted records since, few and recent: the provisional score
     * will do where it only orders waiters. */
    if (!exact && computed && lag < EX_SCORE_LAG_RECORDS && missed < EX_SCORE_LAG_RECORDS &&
        newest >= since && newest - since < EX_SCORE_LAG_MS)
        return v;
    /* Exactly the score the newest record's time gives (what
     * ex_trust_record used to store at once), kept in the open
     * transaction or on its own: it is derived from the records, so
     * losing this write in a crash loses nothing. */
    if (score_of(st, provider, newest, &v, NULL) != 0)
        return 0;
    st->score_marked[0] = '\0';
    if (ex_sql_run(st,
                   "UPDATE providers SET score = ?2, score_at = NULL, score_lag = 0, "
                   "score_ms = ?3 WHERE id = ?1",
                   "tii", provider, (int64_t)v, newest) != 0)
        cu_warn("provider %.8s: cannot store its score", provider);
    return v;
}

bool ex_trust_floor_running(struct ex_state *st)
{
    sqlite3_stmt *s = ex_sql_cached(
        st, "SELECT 1 FROM jobs WHERE state = 'running' AND min_reputation > 0 LIMIT 1", "");
    int rc;

    if (!s)
        return true; /* unsure: the exact score is always right */
    rc = ex_sql_step(st, s);
    ex_sql_done(st, s);
    return rc != 0;
}

json_t *ex_reputation(struct ex_state *st, const char *id, int64_t now, struct ex_fail *f)
{
    struct cu_rep_tally t;
    uint32_t score = 0;
    json_t *j = NULL, *counts = NULL, *recent = NULL;
    sqlite3_stmt *s;
    int rc;

    pthread_mutex_lock(&st->mu);
    rc = score_of(st, id, now, &score, &t);
    counts = json_object();
    recent = json_array();
    if (rc || !counts || !recent)
        goto out_fail;
    for (unsigned o = 0; o < CU_REP_NOUTCOMES; o++)
        json_object_set_new(counts, cu_rep_outcome_name((enum cu_rep_outcome)o),
                            json_integer((json_int_t)t.count[o]));
    s = ex_sql_cached(st,
                     "SELECT time_ms, outcome, job, replica FROM rep_records WHERE provider = ?1 "
                     "ORDER BY time_ms DESC, rowid DESC LIMIT 20",
                     "t", id);
    if (!s)
        goto out_fail;
    while ((rc = ex_sql_step(st, s)) == 1)
        json_array_append_new(recent, json_pack("{s:I,s:s,s:o,s:o}", "time_ms",
                                                (json_int_t)sqlite3_column_int64(s, 0),
                                                "outcome", ex_col_text(s, 1), "job",
                                                ex_col_jtext(s, 2), "replica", ex_col_jint(s, 3)));
    ex_sql_done(st, s);
    if (rc < 0)
        goto out_fail;
    {
        uint64_t n = 0;
        for (unsigned o = 0; o < CU_REP_NOUTCOMES; o++)
            n += t.count[o];
        j = json_pack("{s:s,s:I,s:I,s:I,s:I,s:o,s:o}", "id", id, "score_milli",
                      (json_int_t)score, "records", (json_int_t)n, "clean_streak",
                      (json_int_t)t.clean_streak, "stake",
                      (json_int_t)cu_ledger_stake(&st->ledger, id), "counts", counts, "recent",
                      recent);
    }
    pthread_mutex_unlock(&st->mu);
    if (!j)
        ex_fail_set(f, 500, "internal", "out of memory");
    return j;

out_fail:
    pthread_mutex_unlock(&st->mu);
    json_decref(counts);
    json_decref(recent);
    ex_fail_db(st, f, "reading the reputation");
    return NULL;
}

int ex_trust_adaptive(struct ex_state *st, const char *provider, int64_t now,
                      const struct cu_replication *normal, struct cu_adaptive_plan *plan)
{
    struct cu_adaptive_params params;
    struct cu_adaptive_record rec;
    struct cu_rep_tally t;
    uint32_t score;
    uint64_t rnd;
    int rc;

    rc = score_of(st, provider, now, &score, &t);
    if (rc)
        return rc;
    cu_adaptive_params_default(&params);
    rec.clean = t.clean_streak;
    rec.caught = t.count[CU_REP_WRONG_RESULT] + t.count[CU_REP_CHALLENGE_FAILED] > 0;
    randombytes_buf(&rnd, sizeof rnd);
    return cu_adaptive_plan(&params, &rec, normal, rnd, plan);
}

/* ---- capability challenges ------------------------------------------------------- */

int ex_trust_gate(struct ex_state *st, const char *provider, const char *job,
                  const char *challenge_json, int64_t now, json_t **challenge, bool *skip)
{
    sqlite3_stmt *s;
    char state[16] = "", id[40];
    json_t *spec = NULL, *pub = NULL;
    int64_t expires = 0;
    unsigned char seed[32];
    int rc;

    *challenge = NULL;
    *skip = false;
    if (!challenge_json)
        return 0;
    s = ex_sql_cached(st,
                     "SELECT state, public_json, expires_ms FROM challenges WHERE provider = ?1 "
                     "AND job = ?2 ORDER BY created_ms DESC LIMIT 1",
                     "tt", provider, job);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        ex_col_copy(s, 0, state, sizeof state);
        expires = sqlite3_column_int64(s, 2);
        if (strcmp(state, "open") == 0 && expires > now)
            *challenge = json_loads(ex_col_text(s, 1), 0, NULL);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    if (strcmp(state, "passed") == 0)
        return 0;
    if (strcmp(state, "failed") == 0) {
        *skip = true;
        return 0;
    }
    if (*challenge)
        return 0; /* the open one again */

    /* A new challenge, shaped by the job's spec. */
    spec = json_loads(challenge_json, 0, NULL);
    const char *kind = json_string_value(json_object_get(spec, "kind"));
    randombytes_buf(seed, sizeof seed);
    {
        char hex[17];
        cu_hex_encode(seed, 8, hex);
        (void)cu_snprintf(id, sizeof id, "c-%s", hex);
    }
    expires = now + EX_CHALLENGE_TTL_MS;
    char secret[48] = "";
    if (kind && strcmp(kind, "factor") == 0) {
        struct cu_factor_chal c;
        struct cu_factor_answer a;
        unsigned bits = (unsigned)json_integer_value(json_object_get(spec, "bits"));
        char n[24];
        if (cu_chal_factor_make(seed, sizeof seed, bits, &c, &a) != 0) {
            json_decref(spec);
            return -CU_EINVAL;
        }
        (void)cu_snprintf(n, sizeof n, "%" PRIu64, c.n);
        (void)cu_snprintf(secret, sizeof secret, "%" PRIu64 " %" PRIu64, a.p, a.q);
        pub = json_pack("{s:s,s:s,s:s,s:i,s:s,s:I}", "id", id, "job", job, "kind", "factor",
                        "bits", (int)bits, "n", n, "expires_ms", (json_int_t)expires);
    } else {
        struct cu_memory_chal c;
        unsigned mib = (unsigned)json_integer_value(json_object_get(spec, "mib"));
        char nonce[2 * CU_CHAL_NONCE_LEN + 1];
        if (cu_chal_memory_make(seed, mib, EX_MEMORY_OPS, &c) != 0) {
            json_decref(spec);
            return -CU_EINVAL;
        }
        cu_hex_encode(c.nonce, CU_CHAL_NONCE_LEN, nonce);
        pub = json_pack("{s:s,s:s,s:s,s:i,s:i,s:s,s:I}", "id", id, "job", job, "kind", "memory",
                        "mib", (int)mib, "ops", EX_MEMORY_OPS, "nonce", nonce, "expires_ms",
                        (json_int_t)expires);
    }
    json_decref(spec);
    if (!pub)
        return -CU_ENOMEM;
    {
        char *pub_s = json_dumps(pub, JSON_COMPACT | JSON_SORT_KEYS);
        rc = pub_s ? ex_sql_run(st,
                                "INSERT INTO challenges (id, provider, job, kind, public_json, "
                                "secret, state, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, "
                                "?5, ?6, 'open', ?7, ?8)",
                                "ttttttii", id, provider, job,
                                json_string_value(json_object_get(pub, "kind")), pub_s,
                                secret[0] ? secret : NULL, now, expires)
                   : -CU_ENOMEM;
        free(pub_s);
    }
    if (rc) {
        json_decref(pub);
        return rc;
    }
    cu_info("challenge %s (%s) issued to %.8s for job %s", id,
            json_string_value(json_object_get(pub, "kind")), provider, job);
    *challenge = pub;
    return 0;
}

int ex_challenge_lookup(struct ex_state *st, const char *id, const char *provider,
                        struct ex_challenge *c, struct ex_fail *f)
{
    sqlite3_stmt *s;
    char who[CU_ID_LEN + 1] = "";
    int rc;

    memset(c, 0, sizeof *c);
    s = ex_sql_cached(st,
                     "SELECT provider, job, kind, public_json, secret, state, expires_ms "
                     "FROM challenges WHERE id = ?1",
                     "t", id);
    if (!s)
        return ex_fail_db(st, f, "reading the challenge");
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        ex_col_copy(s, 0, who, sizeof who);
        ex_col_copy(s, 1, c->job, sizeof c->job);
        ex_col_copy(s, 2, c->kind, sizeof c->kind);
        ex_col_copy(s, 3, c->public_json, sizeof c->public_json);
        ex_col_copy(s, 4, c->secret, sizeof c->secret);
        ex_col_copy(s, 5, c->state, sizeof c->state);
        c->expires_ms = sqlite3_column_int64(s, 6);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return ex_fail_db(st, f, "reading the challenge");
    if (rc == 0)
        return ex_fail_set(f, 404, "not_found", "no challenge '%.40s'", id);
    if (strcmp(who, provider) != 0)
        return ex_fail_set(f, 403, "forbidden", "challenge '%.40s' was issued to another provider",
                           id);
    return 0;
}

int ex_challenge_verdict(const struct ex_challenge *c, const json_t *answer, int64_t now,
                         char *why, size_t whyn)
{
    json_t *pub;
    int rc;

    if (c->expires_ms <= now) {
        (void)cu_snprintf(why, whyn, "answered after its deadline");
        return -CU_EAUTH;
    }
    pub = json_loads(c->public_json, 0, NULL);
    if (!pub) {
        (void)cu_snprintf(why, whyn, "the stored challenge is unreadable");
        return -CU_EINVAL;
    }
    if (strcmp(c->kind, "factor") == 0) {
        struct cu_factor_chal ch = {0};
        struct cu_factor_answer a = {0};
        const char *ps = json_string_value(json_object_get(answer, "p"));
        const char *qs = json_string_value(json_object_get(answer, "q"));
        const char *ns = json_string_value(json_object_get(pub, "n"));
        char *end = NULL;
        ch.bits = (unsigned)json_integer_value(json_object_get(pub, "bits"));
        ch.n = ns ? strtoull(ns, &end, 10) : 0;
        if (!ps || !qs) {
            (void)cu_snprintf(why, whyn, "fields 'p' and 'q' (decimal strings) are missing");
            rc = -CU_EAUTH;
        } else {
            a.p = strtoull(ps, &end, 10);
            a.q = strtoull(qs, &end, 10);
            rc = cu_chal_factor_check(&ch, &a);
            if (rc)
                (void)cu_snprintf(why, whyn, "%s x %s is not the challenge's number", ps, qs);
        }
    } else {
        struct cu_memory_chal ch = {0};
        unsigned char ans[CU_CHAL_ANSWER_LEN];
        const char *hex = json_string_value(json_object_get(answer, "answer"));
        const char *nonce = json_string_value(json_object_get(pub, "nonce"));
        ch.mib = (unsigned)json_integer_value(json_object_get(pub, "mib"));
        ch.ops = (unsigned)json_integer_value(json_object_get(pub, "ops"));
        if (!hex || cu_hex_decode(hex, ans, sizeof ans) != 0 || !nonce ||
            cu_hex_decode(nonce, ch.nonce, sizeof ch.nonce) != 0) {
            (void)cu_snprintf(why, whyn, "field 'answer' must be 64 hex chars");
            rc = -CU_EAUTH;
        } else {
            /* The exchange pays one hash here (docs/trust.md: the cost of
             * memory challenges); called without mu. */
            rc = cu_chal_memory_check(&ch, ans, NULL);
            if (rc)
                (void)cu_snprintf(why, whyn, "the argon2id answer is wrong");
        }
    }
    json_decref(pub);
    return rc;
}

int ex_challenge_settle(struct ex_state *st, const char *id, const char *provider,
                        const char *job, bool passed, int64_t now)
{
    int rc = ex_sql_run(st, "UPDATE challenges SET state = ?2 WHERE id = ?1 AND state = 'open'",
                        "tt", id, passed ? "passed" : "failed");
    if (rc || passed || sqlite3_changes(st->db.h) == 0)
        return rc;
    return ex_settle_challenge_failed(st, job, provider, id, now);
}

/* ---- heartbeat challenges ------------------------------------------------------- */

void ex_trust_lease_secret(const struct ex_state *st, int64_t replica,
                           unsigned char out[CU_CHAL_KEY_LEN])
{
    unsigned char master[CU_CHAL_KEY_LEN];

    /* The master key is derived from the exchange's own secret key, so
     * nothing per lease is stored and a restart keeps every secret. */
    crypto_generichash(master, sizeof master, (const unsigned char *)"cumulus-lease-master-v1", 23,
                       st->ident.sk, sizeof st->ident.sk);
    cu_chal_lease_secret(master, replica, 0, out);
    sodium_memzero(master, sizeof master);
}

void ex_trust_nonce_make(char out[2 * CU_CHAL_NONCE_LEN + 1])
{
    unsigned char n[CU_CHAL_NONCE_LEN];

    randombytes_buf(n, sizeof n);
    cu_hex_encode(n, sizeof n, out);
}

int ex_trust_new_nonce(struct ex_state *st, int64_t replica, char out[2 * CU_CHAL_NONCE_LEN + 1])
{
    ex_trust_nonce_make(out);
    return ex_sql_run(st, "UPDATE replicas SET hb_nonce = ?2 WHERE id = ?1", "it", replica, out);
}

int ex_trust_check_answer(struct ex_state *st, int64_t replica, const char *answer_hex)
{
    sqlite3_stmt *s;
    unsigned char secret[CU_CHAL_KEY_LEN], nonce[CU_CHAL_NONCE_LEN], ans[CU_CHAL_ANSWER_LEN];
    char nonce_hex[2 * CU_CHAL_NONCE_LEN + 1] = "";
    int rc;

    s = ex_sql_cached(st, "SELECT hb_nonce FROM replicas WHERE id = ?1", "i", replica);
    if (!s)
        return -CU_EDB;
    rc = ex_sql_step(st, s);
    if (rc == 1)
        ex_col_copy(s, 0, nonce_hex, sizeof nonce_hex);
    ex_sql_done(st, s);
    if (rc < 0)
        return rc;
    if (!nonce_hex[0])
        return 0; /* a lease from before heartbeat challenges: nothing to answer */
    if (!answer_hex || cu_hex_decode(answer_hex, ans, sizeof ans) != 0 ||
        cu_hex_decode(nonce_hex, nonce, sizeof nonce) != 0)
        return -CU_EAUTH;
    ex_trust_lease_secret(st, replica, secret);
    rc = cu_chal_heartbeat_check(secret, replica, nonce, ans);
    sodium_memzero(secret, sizeof secret);
    return rc;
}
