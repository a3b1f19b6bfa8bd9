/* adaptive.c - solo replicas and audits (see adaptive.h). */
#include "trust/adaptive.h"

#include <string.h>

#include "base/err.h"

#include "base/banned.h"

void cu_adaptive_params_default(struct cu_adaptive_params *p)
{
    p->trust_after = 20;
    p->ramp = 80;
    p->solo_max_ppm = 900000;
    p->audit_ppm = 100000;
}

int cu_adaptive_params_check(const struct cu_adaptive_params *p)
{
    if (p->ramp == 0 || p->solo_max_ppm > CU_PPM || p->audit_ppm > CU_PPM)
        return -CU_EINVAL;
    return 0;
}

uint32_t cu_adaptive_solo_ppm(const struct cu_adaptive_params *p,
                              const struct cu_adaptive_record *r)
{
    uint64_t past;

    if (cu_adaptive_params_check(p) != 0 || r->caught || r->clean < p->trust_after)
        return 0;
    past = r->clean - p->trust_after;
    if (past >= p->ramp)
        return p->solo_max_ppm;
    return (uint32_t)((uint64_t)p->solo_max_ppm * past / p->ramp);
}

bool cu_ppm_draw(uint32_t draw, uint32_t ppm)
{
    return ((uint64_t)draw * CU_PPM >> 32) < ppm;
}

int cu_adaptive_plan(const struct cu_adaptive_params *p, const struct cu_adaptive_record *r,
                     const struct cu_replication *normal, uint64_t rnd,
                     struct cu_adaptive_plan *out)
{
    if (cu_adaptive_params_check(p) != 0 || cu_replication_check(normal) != 0)
        return -CU_EINVAL;
    memset(out, 0, sizeof *out);
    out->solo_ppm = cu_adaptive_solo_ppm(p, r);
    out->solo = cu_ppm_draw((uint32_t)rnd, out->solo_ppm);
    out->audit = out->solo && cu_ppm_draw((uint32_t)(rnd >> 32), p->audit_ppm);
    if (!out->solo) {
        out->policy = *normal;
    } else if (!out->audit) {
        out->policy = (struct cu_replication){.min = 1, .quorum = 1, .max = 1};
    } else {
        out->policy = (struct cu_replication){.min = 2,
                                              .quorum = 2,
                                              .max = normal->max > 2 ? normal->max : 2,
                                              .fail_fast = normal->fail_fast};
    }
    return 0;
}
