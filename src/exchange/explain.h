/* explain.h - why a job's queued tasks are not taken (explain.c).
 * Internal to src/exchange/. */
#ifndef CU_EXCHANGE_EXPLAIN_H
#define CU_EXCHANGE_EXPLAIN_H

#include <jansson.h>
#include <stdint.h>

#include "exchange/state.h"

/* A provider counts as online when seen this recently (a claim long-poll
 * lasts at most EX_MAX_WAIT_MS). */
#define EX_ONLINE_MS (2 * EX_MAX_WAIT_MS)

/* mu held. For a running job with queued tasks: {"queued":N,"code":C,
 * "message":M}, C one of escrow_exhausted, no_provider, no_fit,
 * bid_below_asks, too_few_providers, providers_busy (the first that
 * applies, in that order; reputation floors join with the trust issue);
 * json null otherwise; NULL on a database error or out of memory. */
json_t *ex_job_waiting(struct ex_state *st, const char *job, int64_t now_ms);

/* GET /v1/market: {"indicative_price_per_cu" (median ask of the last 100
 * paid replicas; 0 before any), "trades_in_price", "fees":{
 * "exchange_fee_bps","escrow_fee"}, "exchange" (the fee account),
 * "recent_trades":[...], "bids":[...], "asks":[...]}. Takes mu. NULL with
 * f set on failure. */
json_t *ex_market(struct ex_state *st, int64_t now_ms, struct ex_fail *f);
/* Its recent trades: the newest paid replicas (?1: how many). */
extern const char ex_market_trades_sql[];

#endif
