/* price.c - prices, pay and fees (see price.h). */
#include <stdlib.h>

#include "base/util.h"
#include "ledger/tx.h" /* CU_AMOUNT_MAX */
#include "market/price.h"

#include "base/banned.h"

/* a x b / d rounded up, in 128 bits; -CU_EOVERFLOW past CU_AMOUNT_MAX. */
static int muldiv_ceil(uint64_t a, uint64_t b, uint64_t d, uint64_t *out)
{
    unsigned __int128 p = (unsigned __int128)a * b;
    unsigned __int128 q = (p + d - 1) / d;

    if (q > CU_AMOUNT_MAX)
        return -CU_EOVERFLOW;
    *out = (uint64_t)q;
    return 0;
}

int cu_price_fee(uint64_t amount, uint32_t fee_bps, uint64_t *out)
{
    if (fee_bps > CU_PRICE_MAX_FEE_BPS)
        return -CU_EINVAL;
    /* Rounded down: a fee never exceeds its stated share. amount <=
     * CU_AMOUNT_MAX and bps <= 10000, so the product fits 128 bits. */
    *out = (uint64_t)((unsigned __int128)amount * fee_bps / 10000);
    return 0;
}

int cu_price_replica_max(uint64_t bid, uint64_t max_cu, uint32_t fee_bps, uint64_t *out)
{
    uint64_t pay, fee, sum;
    int rc;

    if (cu_mul_u64(bid, max_cu, &pay) != 0 || pay > CU_AMOUNT_MAX)
        return -CU_EOVERFLOW;
    rc = cu_price_fee(pay, fee_bps, &fee);
    if (rc)
        return rc;
    if (cu_add_u64(pay, fee, &sum) != 0 || sum > CU_AMOUNT_MAX)
        return -CU_EOVERFLOW;
    *out = sum;
    return 0;
}

int cu_price_job_max(uint64_t bid, uint64_t max_cu, uint64_t tasks, uint64_t replication,
                     uint32_t fee_bps, uint64_t escrow_fee, uint64_t *out)
{
    uint64_t per, n, sum;
    int rc;

    rc = cu_price_replica_max(bid, max_cu, fee_bps, &per);
    if (rc)
        return rc;
    if (cu_mul_u64(tasks, replication, &n) != 0 || cu_mul_u64(per, n, &sum) != 0 ||
        cu_add_u64(sum, escrow_fee, &sum) != 0 || sum > CU_AMOUNT_MAX)
        return -CU_EOVERFLOW;
    *out = sum;
    return 0;
}

int cu_price_cu_milli(uint64_t cpu_ms, uint64_t factor_milli, uint64_t *out)
{
    return muldiv_ceil(cpu_ms, factor_milli, 1000, out);
}

int cu_price_pay(uint64_t cu_milli, uint64_t max_cu, uint64_t ask, uint64_t *out)
{
    uint64_t cap;

    if (cu_mul_u64(max_cu, 1000, &cap) != 0)
        cap = UINT64_MAX;
    if (cu_milli > cap)
        cu_milli = cap;
    return muldiv_ceil(cu_milli, ask, 1000, out);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t cu_price_median(uint64_t *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    return v[(n - 1) / 2];
}
