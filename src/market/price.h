/* price.h - the arithmetic of prices, pay and fees (pure, integer only).
 *
 * Amounts are base units; CU figures are carried as cu_milli (CU x 1000).
 * Every function checks overflow against CU_AMOUNT_MAX (the ledger's
 * largest amount) and returns -CU_EOVERFLOW rather than wrap. Pay rounds
 * up, so a replica that used any CPU is paid at least one base unit; fees
 * round down, so a fee never exceeds its stated share. The caps below
 * bound every figure, so escrow
 * locked with cu_price_job_max always covers what settlement releases.
 *
 * Terms (docs/api.md "Money"):
 *   bid        the job's price.max_per_cu (base units per CU)
 *   ask        the provider's price_per_cu; a replica goes only where
 *              ask <= bid, and is paid at the ask
 *   max_cu     the most CU one replica is paid for (cu_spec_max_cu)
 *   fee_bps    the exchange fee, in basis points of the provider's pay
 *   escrow_fee a flat fee per job for holding its escrow, charged when
 *              the job's escrow is settled (end, cancel or failure)
 */
#ifndef CU_MARKET_PRICE_H
#define CU_MARKET_PRICE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CU_PRICE_MAX_FEE_BPS 10000 /* at most 100% of the provider's pay */

/* Fee on an amount: floor(amount x fee_bps / 10000). */
int cu_price_fee(uint64_t amount, uint32_t fee_bps, uint64_t *out);

/* The most one replica may cost its job: bid x max_cu for the provider,
 * plus the exchange fee on that. */
int cu_price_replica_max(uint64_t bid, uint64_t max_cu, uint32_t fee_bps, uint64_t *out);

/* What a job locks in escrow at submission: tasks x replication x
 * cu_price_replica_max + escrow_fee. */
int cu_price_job_max(uint64_t bid, uint64_t max_cu, uint64_t tasks, uint64_t replication,
                     uint32_t fee_bps, uint64_t escrow_fee, uint64_t *out);

/* CU of a report, as cu_milli (CU x 1000): ceil(cpu_ms x factor_milli /
 * 1000), rounded up like pay, so a replica that used any CPU time counts at
 * least one milli-CU whatever the provider's factor (docs/decisions.md "CU
 * metering"). -CU_EOVERFLOW past CU_AMOUNT_MAX. */
int cu_price_cu_milli(uint64_t cpu_ms, uint64_t factor_milli, uint64_t *out);

/* A replica's pay: ceil(min(cu_milli, max_cu x 1000) x ask / 1000). The
 * ask must not exceed the bid (the caller matched on it), so the pay is
 * at most bid x max_cu. */
int cu_price_pay(uint64_t cu_milli, uint64_t max_cu, uint64_t ask, uint64_t *out);

/* Median of n prices (sorts v in place); the lower middle for even n; 0
 * when n is 0. The exchange's indicative price over recent trades. */
uint64_t cu_price_median(uint64_t *v, size_t n);

#endif
