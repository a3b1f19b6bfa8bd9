/* explain.c - "why is my job waiting?": the reason no provider takes a
 * running job's queued tasks, from what the exchange knows of its online
 * providers (see explain.h). */
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "exchange/explain.h"
#include "exchange/settle.h"
#include "exchange/sql.h"
#include "market/price.h"

#include "base/banned.h"

struct need {
    int64_t cores, memory, gpus, bid, replication, replica_max, escrow_fee, queued, output;
};

static json_t *answer(int64_t queued, const char *code, const char *msg)
{
    return json_pack("{s:I,s:s,s:s}", "queued", (json_int_t)queued, "code", code, "message", msg);
}

json_t *ex_job_waiting(struct ex_state *st, const char *job, int64_t now_ms)
{
    struct need n = {0};
    char msg[CU_ERR_MSG_MAX], state[16] = "";
    int64_t online = 0, fit = 0, priced = 0, max_cores = 0, max_mem = 0, max_gpus = 0;
    int64_t low_ask = -1, slots = 0, small_disk = 0;
    sqlite3_stmt *s;
    bool ok = true;
    int rc;

    s = ex_sql_cached(st,
                     "SELECT state, cores, memory, gpus, bid, replication, replica_max, escrow_fee, "
                     "(SELECT c.queued FROM job_counts c WHERE c.job_id = j.id), "
                     "input_bytes "
                     "FROM jobs j WHERE id = ?1",
                     "t", job);
    if (!s)
        return NULL;
    rc = ex_sql_step(st, s);
    if (rc == 1) {
        ex_col_copy(s, 0, state, sizeof state);
        n.cores = sqlite3_column_int64(s, 1);
        n.memory = sqlite3_column_int64(s, 2);
        n.gpus = sqlite3_column_int64(s, 3);
        n.bid = sqlite3_column_int64(s, 4);
        n.replication = sqlite3_column_int64(s, 5);
        n.replica_max = sqlite3_column_int64(s, 6);
        n.escrow_fee = sqlite3_column_int64(s, 7);
        n.queued = sqlite3_column_int64(s, 8);
        n.output = sqlite3_column_int64(s, 9);
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return NULL;
    if (rc == 0 || strcmp(state, "running") != 0 || n.queued == 0)
        return json_null();

    if (ex_settle_can_lease(st, job, -1, (uint64_t)n.replica_max, (uint64_t)n.escrow_fee, &ok) != 0)
        return NULL;
    if (!ok) {
        snprintf(msg, sizeof msg,
                 "the job's escrow (%llu left) cannot cover another replica (up to %lld each) "
                 "beside those running; it takes no new leases",
                 (unsigned long long)cu_ledger_locked(ex_ledger_view(st), job),
                 (long long)n.replica_max);
        return answer(n.queued, "escrow_exhausted", msg);
    }

    s = ex_sql_cached(st,
                     "SELECT cores, memory, gpus, price_per_cu, slots, "
                     "CASE WHEN disk > 0 AND slots > 0 THEN disk / slots ELSE 0 END FROM providers "
                     "WHERE last_seen_ms >= ?1",
                     "i", now_ms - EX_ONLINE_MS);
    if (!s)
        return NULL;
    while ((rc = ex_sql_step(st, s)) == 1) {
        int64_t c = sqlite3_column_int64(s, 0), m = sqlite3_column_int64(s, 1),
                g = sqlite3_column_int64(s, 2), ask = sqlite3_column_int64(s, 3);
        online++;
        max_cores = c > max_cores ? c : max_cores;
        max_mem = m > max_mem ? m : max_mem;
        max_gpus = g > max_gpus ? g : max_gpus;
        int64_t dk = sqlite3_column_int64(s, 5);
        if (dk > 0 && dk < n.output)
            small_disk++;
        if (c < n.cores || m < n.memory || g < n.gpus || (dk > 0 && dk < n.output))
            continue;
        fit++;
        if (low_ask < 0 || ask < low_ask)
            low_ask = ask;
        if (n.bid == 0 || ask <= n.bid) {
            priced++;
            slots += sqlite3_column_int64(s, 4);
        }
    }
    ex_sql_done(st, s);
    if (rc < 0)
        return NULL;

    if (online == 0) {
        snprintf(msg, sizeof msg, "no provider is online (none seen in the last %d s)",
                 EX_ONLINE_MS / 1000);
        return answer(n.queued, "no_provider", msg);
    }
    if (fit == 0) {
        const char *what = n.gpus > max_gpus     ? "GPUs"
                           : n.cores > max_cores ? "cores"
                           : n.memory > max_mem  ? "memory"
                           : small_disk          ? "disk for the job's inputs"
                                                 : "cores, memory and disk together";
        snprintf(msg, sizeof msg,
                 "no online provider has enough %s: the job needs %lld cores, %lld MiB, %lld GPUs "
                 "per task; the largest offer is %lld cores, %lld MiB, %lld GPUs (%lld online)",
                 what, (long long)n.cores, (long long)(n.memory >> 20), (long long)n.gpus,
                 (long long)max_cores, (long long)(max_mem >> 20), (long long)max_gpus,
                 (long long)online);
        return answer(n.queued, "no_fit", msg);
    }
    if (priced == 0) {
        snprintf(msg, sizeof msg,
                 "the bid of %lld per CU is below every ask: the lowest ask of a provider that "
                 "fits is %lld per CU",
                 (long long)n.bid, (long long)low_ask);
        return answer(n.queued, "bid_below_asks", msg);
    }
    if (priced < n.replication) {
        snprintf(msg, sizeof msg,
                 "replication %lld needs that many distinct providers; only %lld online "
                 "provider(s) fit and accept the bid",
                 (long long)n.replication, (long long)priced);
        return answer(n.queued, "too_few_providers", msg);
    }
    snprintf(msg, sizeof msg,
             "%lld provider(s) fit and accept the bid (%lld slots); all are busy, the tasks "
             "run as slots free up",
             (long long)priced, (long long)slots);
    return answer(n.queued, "providers_busy", msg);
}

/* ---- the market view ---------------------------------------------------------- */

#define MARKET_TRADES_MEDIAN 100 /* trades behind the indicative price */

/* A search of index replicas_trades (migration 21), read backwards. */
const char ex_market_trades_sql[] =
    "SELECT reported_ms, price_per_cu, cu_milli, paid FROM replicas "
    "WHERE paid IS NOT NULL ORDER BY reported_ms DESC, id DESC LIMIT ?1";
#define MARKET_TRADES_SHOWN 20
#define MARKET_LIST_MAX 50

json_t *ex_market(struct ex_state *st, int64_t now_ms, struct ex_fail *f)
{
    uint64_t prices[MARKET_TRADES_MEDIAN];
    size_t np = 0;
    json_t *j = NULL, *trades = json_array(), *bids = json_array(), *asks = json_array();
    sqlite3_stmt *s;
    int rc;

    if (!trades || !bids || !asks)
        goto out_nomem;
    pthread_mutex_lock(&st->mu);
    s = ex_sql_cached(st, ex_market_trades_sql, "i", (int64_t)MARKET_TRADES_MEDIAN);
    if (!s)
        goto out_db;
    while ((rc = ex_sql_step(st, s)) == 1) {
        prices[np] = (uint64_t)sqlite3_column_int64(s, 1);
        if (np < MARKET_TRADES_SHOWN)
            json_array_append_new(
                trades, json_pack("{s:I,s:I,s:I,s:I}", "time_ms",
                                  (json_int_t)sqlite3_column_int64(s, 0), "price_per_cu",
                                  (json_int_t)prices[np], "cu_milli",
                                  (json_int_t)sqlite3_column_int64(s, 2), "amount",
                                  (json_int_t)sqlite3_column_int64(s, 3)));
        np++;
    }
    ex_sql_done(st, s);
    if (rc < 0)
        goto out_db;
    /* Open bids: running jobs with queued replicas, best bid first. */
    s = ex_sql_cached(st,
                     "SELECT j.bid, j.cores, j.memory, j.gpus, COUNT(r.id) FROM jobs j "
                     "JOIN replicas r ON r.job_id = j.id AND r.state = 'queued' "
                     "WHERE j.state = 'running' GROUP BY j.id ORDER BY j.bid DESC, j.created_ms "
                     "LIMIT ?1",
                     "i", (int64_t)MARKET_LIST_MAX);
    if (!s)
        goto out_db;
    while ((rc = ex_sql_step(st, s)) == 1)
        json_array_append_new(
            bids, json_pack("{s:I,s:I,s:I,s:I,s:I}", "max_per_cu",
                            (json_int_t)sqlite3_column_int64(s, 0), "cores",
                            (json_int_t)sqlite3_column_int64(s, 1), "memory",
                            (json_int_t)sqlite3_column_int64(s, 2), "gpus",
                            (json_int_t)sqlite3_column_int64(s, 3), "queued_replicas",
                            (json_int_t)sqlite3_column_int64(s, 4)));
    ex_sql_done(st, s);
    if (rc < 0)
        goto out_db;
    /* Asks of online providers, cheapest first. */
    s = ex_sql_cached(st,
                     "SELECT id, price_per_cu, slots, cores, memory, gpus, cu_factor_milli "
                     "FROM providers WHERE last_seen_ms >= ?1 ORDER BY price_per_cu, first_seen_ms "
                     "LIMIT ?2",
                     "ii", now_ms - EX_ONLINE_MS, (int64_t)MARKET_LIST_MAX);
    if (!s)
        goto out_db;
    while ((rc = ex_sql_step(st, s)) == 1)
        json_array_append_new(
            asks, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "provider", ex_col_text(s, 0),
                            "price_per_cu", (json_int_t)sqlite3_column_int64(s, 1), "slots",
                            (json_int_t)sqlite3_column_int64(s, 2), "cores",
                            (json_int_t)sqlite3_column_int64(s, 3), "memory",
                            (json_int_t)sqlite3_column_int64(s, 4), "gpus",
                            (json_int_t)sqlite3_column_int64(s, 5), "cu_factor_milli",
                            (json_int_t)sqlite3_column_int64(s, 6)));
    ex_sql_done(st, s);
    if (rc < 0)
        goto out_db;
    j = json_pack("{s:I,s:I,s:{s:I,s:I},s:s,s:o,s:o,s:o}", "indicative_price_per_cu",
                  (json_int_t)cu_price_median(prices, np), "trades_in_price", (json_int_t)np,
                  "fees", "exchange_fee_bps", (json_int_t)st->fee_bps, "escrow_fee",
                  (json_int_t)st->escrow_fee, "exchange", st->ident.id, "recent_trades", trades,
                  "bids", bids, "asks", asks);
    pthread_mutex_unlock(&st->mu);
    if (!j)
        ex_fail_set(f, 500, "internal", "out of memory");
    return j;

out_db:
    ex_fail_db(st, f, "reading the market");
    pthread_mutex_unlock(&st->mu);
    json_decref(trades);
    json_decref(bids);
    json_decref(asks);
    return NULL;
out_nomem:
    json_decref(trades);
    json_decref(bids);
    json_decref(asks);
    ex_fail_set(f, 500, "internal", "out of memory");
    return NULL;
}
