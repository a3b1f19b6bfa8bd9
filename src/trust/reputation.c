/* reputation.c - reputation scores from records (see reputation.h). */
#include "trust/reputation.h"

#include <string.h>

#include "base/err.h"

#include "base/banned.h"

#define PPM 1000000u
#define MAX_PENALTY 1000u

static const char *const outcome_names[] = {
#define CU_X_REPNAME(e, name, pen) name,
    CU_REP_OUTCOMES(CU_X_REPNAME)
#undef CU_X_REPNAME
};

static const uint32_t default_penalty[] = {
#define CU_X_REPPEN(e, name, pen) pen,
    CU_REP_OUTCOMES(CU_X_REPPEN)
#undef CU_X_REPPEN
};

void cu_rep_params_default(struct cu_rep_params *p)
{
    memset(p, 0, sizeof *p);
    p->half_life_ms = 30LL * 24 * 3600 * 1000;
    p->prior = 10;
    memcpy(p->penalty, default_penalty, sizeof p->penalty);
}

int cu_rep_params_check(const struct cu_rep_params *p)
{
    if (p->half_life_ms <= 0 || p->prior == 0)
        return -CU_EINVAL;
    for (size_t i = 0; i < CU_REP_NOUTCOMES; i++)
        if (p->penalty[i] > MAX_PENALTY)
            return -CU_EINVAL;
    return 0;
}

const char *cu_rep_outcome_name(enum cu_rep_outcome o)
{
    if ((unsigned)o >= CU_REP_NOUTCOMES)
        return NULL;
    return outcome_names[o];
}

int cu_rep_outcome_parse(const char *name, enum cu_rep_outcome *out)
{
    for (size_t i = 0; i < CU_REP_NOUTCOMES; i++)
        if (strcmp(name, outcome_names[i]) == 0) {
            *out = (enum cu_rep_outcome)i;
            return 0;
        }
    /* The ledger's task_record statuses as they are today. */
    if (strcmp(name, "success") == 0) {
        *out = CU_REP_ACCEPTED;
        return 0;
    }
    if (strcmp(name, "timeout") == 0) {
        *out = CU_REP_LEASE_EXPIRED;
        return 0;
    }
    return -CU_EINVAL;
}

void cu_rep_tally_init(struct cu_rep_tally *t)
{
    memset(t, 0, sizeof *t);
    t->last_bad_ms = INT64_MIN;
}

uint32_t cu_rep_decay_ppm(int64_t age_ms, int64_t half_life_ms)
{
    int64_t halvings, rest;
    uint64_t w;

    if (half_life_ms <= 0)
        return 0;
    if (age_ms < 0)
        age_ms = 0;
    halvings = age_ms / half_life_ms;
    rest = age_ms % half_life_ms;
    if (halvings >= 20) /* below 1 ppm */
        return 0;
    /* Linear between the halvings: 1 at the start, 1/2 at the end. The
     * product below stays under 2^63: rest < H, PPM < 2^20, H < 2^63 only
     * through int128. */
    w = PPM -
        (uint64_t)((unsigned __int128)PPM * (uint64_t)rest / (2 * (unsigned __int128)half_life_ms));
    return (uint32_t)(w >> halvings);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int cu_rep_tally_add(struct cu_rep_tally *t, const struct cu_rep_params *p,
                     const struct cu_rep_record *r, int64_t now_ms)
{
    uint64_t w;

    if ((unsigned)r->outcome >= CU_REP_NOUTCOMES || cu_rep_params_check(p) != 0)
        return -CU_EINVAL;
    /* Clock skew: a record from the future counts as new (age 0). */
    w = cu_rep_decay_ppm(r->time_ms > now_ms ? 0 : now_ms - r->time_ms, p->half_life_ms);
    t->count[r->outcome] = sat_add(t->count[r->outcome], 1);
    switch (r->outcome) {
    case CU_REP_ACCEPTED:
        t->good_ppm = sat_add(t->good_ppm, w);
        break;
    case CU_REP_WRONG_RESULT:
    case CU_REP_CHALLENGE_FAILED:
        if (r->time_ms > t->last_bad_ms)
            t->last_bad_ms = r->time_ms;
        /* fall through */
    default:
        t->bad_ppm = sat_add(t->bad_ppm, w * p->penalty[r->outcome]);
        break;
    }
    return 0;
}

uint32_t cu_rep_score_milli(const struct cu_rep_tally *t, const struct cu_rep_params *p)
{
    unsigned __int128 den =
        (unsigned __int128)t->good_ppm + t->bad_ppm + (unsigned __int128)p->prior * PPM;

    if (den == 0)
        return 0;
    return (uint32_t)((unsigned __int128)1000 * t->good_ppm / den);
}

int cu_rep_score(const struct cu_rep_record *records, size_t n, const struct cu_rep_params *p,
                 int64_t now_ms, uint32_t *score_milli, struct cu_rep_tally *t)
{
    struct cu_rep_tally local;
    int rc;

    if (cu_rep_params_check(p) != 0)
        return -CU_EINVAL;
    cu_rep_tally_init(&local);
    for (size_t i = 0; i < n; i++) {
        rc = cu_rep_tally_add(&local, p, &records[i], now_ms);
        if (rc)
            return rc;
    }
    /* The clean streak needs the last bad time, known only now. */
    for (size_t i = 0; i < n; i++)
        if (records[i].outcome == CU_REP_ACCEPTED && records[i].time_ms > local.last_bad_ms)
            local.clean_streak++;
    *score_milli = cu_rep_score_milli(&local, p);
    if (t)
        *t = local;
    return 0;
}

int cu_rep_min_parse(const char *s, uint32_t *milli)
{
    uint32_t v = 0, scale = 1000;
    size_t i = 0;

    if (s[0] != '0' && s[0] != '1')
        return -CU_EINVAL;
    v = (uint32_t)(s[0] - '0') * 1000;
    i = 1;
    if (s[i] == '.') {
        i++;
        if (s[i] == '\0')
            return -CU_EINVAL;
        for (; s[i] >= '0' && s[i] <= '9'; i++) {
            if (scale == 1)
                return -CU_EINVAL; /* more than three decimals */
            scale /= 10;
            v += (uint32_t)(s[i] - '0') * scale;
        }
    }
    if (s[i] != '\0' || v > 1000)
        return -CU_EINVAL;
    *milli = v;
    return 0;
}

bool cu_rep_eligible(uint32_t score_milli, uint32_t min_milli)
{
    return score_milli >= min_milli;
}
