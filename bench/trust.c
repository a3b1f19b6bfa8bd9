/* trust.c - simulated tasks through the real quorum, reputation and
 * adaptive-replication code (src/trust), and the costs of the challenges.
 *
 *   build/bench/trust [--tasks N] [--providers P] [--seed S] [--solves K] [--mib M]
 *                     (default 20000 tasks, 100 providers, seed 1, 40 solves, 256 MiB)
 *
 * Population: P providers, each its own owner; a share c of them cheat and
 * collude (they all return the same wrong root, the worst case for a
 * quorum); a cheater returns the wrong root on each replica with
 * probability r (cheat rate). A task's replicas go to distinct random
 * providers; each decision is cu_quorum_decide_policy's, replicas issued
 * as it asks until DONE or FAILED. Winners get an `accepted` record,
 * losers a `wrong_result` record (cu_rep_*); adaptive plans use each
 * provider's record (clean streak, caught), and a caught cheater comes
 * back under a fresh id (the worst case: re-registering is free).
 *
 * For every policy x share x rate: the share of tasks whose accepted result
 * is wrong, replicas per task, and the prediction from docs/trust.md
 * (exact for the fixed policies with independent draws; for adaptive the
 * fixed-policy figure weighted by the measured share of solo tasks, plus
 * solo cheats escaping the audit). Monte Carlo with a fixed seed:
 * the same arguments print the same figures. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchlib.h"
#include "trust/adaptive.h"
#include "trust/challenge.h"
#include "trust/quorum.h"
#include "trust/reputation.h"

#include "base/banned.h"

#define MAX_PROVIDERS 4096
#define MAX_REPLICAS 64
#define TASK_MS 60000 /* one task a minute: the clock of the records */

static uint64_t rng = 1;

/* splitmix64: small, fast, good enough for a simulation. */
static uint64_t rnd64(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd01(void)
{
    return (double)(rnd64() >> 11) / 9007199254740992.0;
}

struct prov {
    bool cheater;
    uint64_t clean; /* accepted since the last wrong result (this id) */
    bool caught;
    uint32_t gen; /* re-registrations */
};

struct rec {
    uint32_t prov, gen;
    struct cu_rep_record r;
};

struct sim {
    size_t np;
    struct prov p[MAX_PROVIDERS];
    struct rec *recs;
    size_t nrec, caprec;
};

static void add_rec(struct sim *s, uint32_t i, enum cu_rep_outcome o, int64_t t)
{
    if (s->nrec == s->caprec) {
        s->caprec = s->caprec ? 2 * s->caprec : 1 << 16;
        s->recs = realloc(s->recs, s->caprec * sizeof *s->recs);
        if (!s->recs)
            bl_die("out of memory");
    }
    s->recs[s->nrec++] = (struct rec){i, s->p[i].gen, {o, t}};
}

struct cell {
    const char *policy;
    double share, rate;
    uint64_t tasks, wrong, failed, replicas, solo, solo_cheater, honest_caught, cheater_caught;
    double predicted, honest_score, cheater_score;
};

/* Exact P(wrong accepted) and E[replicas] for a fixed policy when each
 * replica is wrong (one colluding root) with probability p independently:
 * draws until one side has q; at least min replicas. Valid for max >=
 * 2q - 1 (then max is never reached with two outcomes). */
static void predict_fixed(const struct cu_replication *r, double p, double *wrong, double *reps)
{
    unsigned q = r->quorum;
    double w = 0, e = 0;

    /* Wrong wins at draw q + j with j right answers before: C(q-1+j, j) p^q (1-p)^j. */
    for (unsigned j = 0; j < q; j++) {
        double c = 1;
        for (unsigned i = 1; i <= j; i++)
            c = c * (double)(q - 1 + i) / i;
        double pw = c * pow(p, q) * pow(1 - p, j), pr = c * pow(1 - p, q) * pow(p, j);
        unsigned n = q + j < r->min ? r->min : q + j;
        w += pw;
        e += (pw + pr) * n;
    }
    *wrong = w;
    *reps = e;
}

/* Runs one task. first: provider of the first replica (SIZE_MAX: random).
 * Returns replicas used; *wrong, *failed set. */
static unsigned run_task(struct sim *s, const struct cu_replication *pol, size_t first, double rate,
                         int64_t now, bool *wrong, bool *failed)
{
    struct cu_vote v[MAX_REPLICAS];
    enum cu_vote_outcome out[MAX_REPLICAS];
    uint32_t who[MAX_REPLICAS];
    static char names[MAX_PROVIDERS][24];
    struct cu_quorum_decision d;
    struct cu_hash right, bad;
    size_t n = 0;

    memset(&right, 0x11, sizeof right);
    memset(&bad, 0xee, sizeof bad);
    *wrong = *failed = false;
    for (;;) {
        if (cu_quorum_decide_policy(v, n, pol, out, &d) != 0)
            bl_die("quorum refused a policy");
        if (d.verdict == CU_QUORUM_DONE || d.verdict == CU_QUORUM_FAILED)
            break;
        if (d.verdict != CU_QUORUM_NEED_MORE || n + d.more > MAX_REPLICAS || n + d.more > s->np)
            bl_die("unexpected verdict %d", d.verdict);
        for (unsigned k = 0; k < d.more; k++) {
            size_t i;
            bool dup;
            do { /* distinct providers */
                i = n == 0 && first != SIZE_MAX ? first : rnd64() % s->np;
                dup = false;
                for (size_t j = 0; j < n; j++)
                    dup |= who[j] == i;
            } while (dup);
            if (!names[i][0])
                snprintf(names[i], sizeof names[i], "p%zu", i);
            who[n] = (uint32_t)i;
            memset(&v[n], 0, sizeof v[n]);
            v[n].kind = CU_VOTE_RESULT;
            v[n].provider = names[i];
            v[n].root = s->p[i].cheater && rnd01() < rate ? bad : right;
            n++;
        }
    }
    if (d.verdict == CU_QUORUM_DONE)
        *wrong = cu_hash_eq(&d.root, &bad);
    else
        *failed = true;
    for (size_t j = 0; j < n; j++) {
        struct prov *pr = &s->p[who[j]];
        if (out[j] == CU_OUTCOME_ACCEPT) {
            add_rec(s, who[j], CU_REP_ACCEPTED, now);
            pr->clean++;
        } else if (out[j] == CU_OUTCOME_REJECT) {
            add_rec(s, who[j], CU_REP_WRONG_RESULT, now);
            pr->caught = true;
            pr->clean = 0;
        }
    }
    return (unsigned)n;
}

static void run_cell(struct cell *c, size_t np, uint64_t tasks, const struct cu_replication *fixed,
                     bool adaptive)
{
    static struct sim s;
    struct cu_adaptive_params ap;
    struct cu_replication normal = {2, 2, 5, false};
    size_t ncheat = (size_t)llround(c->share * (double)np);
    double fw, fr;

    free(s.recs);
    memset(&s, 0, sizeof s);
    s.np = np;
    for (size_t i = 0; i < np; i++)
        s.p[i].cheater = i < ncheat;
    cu_adaptive_params_default(&ap);
    c->tasks = tasks;
    for (uint64_t t = 0; t < tasks; t++) {
        int64_t now = (int64_t)t * TASK_MS;
        struct cu_replication pol = adaptive ? normal : *fixed;
        size_t first = SIZE_MAX;
        bool wrong, failed;
        if (adaptive) {
            struct cu_adaptive_plan plan;
            struct cu_adaptive_record r;
            first = rnd64() % np;
            r.clean = s.p[first].clean;
            r.caught = s.p[first].caught;
            if (cu_adaptive_plan(&ap, &r, &normal, rnd64(), &plan) != 0)
                bl_die("adaptive plan refused");
            pol = plan.policy;
            if (plan.solo && !plan.audit) {
                c->solo++;
                c->solo_cheater += s.p[first].cheater;
            }
        }
        c->replicas += run_task(&s, &pol, first, c->rate, now, &wrong, &failed);
        c->wrong += wrong;
        c->failed += failed;
        /* A caught cheater re-registers: a fresh id, an empty record. */
        for (size_t i = 0; i < ncheat; i++)
            if (s.p[i].caught) {
                s.p[i].caught = false;
                s.p[i].clean = 0;
                s.p[i].gen++;
                c->cheater_caught++;
            }
    }
    /* Honest providers wrongly caught (outvoted by colluders) and the
     * reputation each side ends with (current ids), from the records. */
    struct cu_rep_params rp;
    cu_rep_params_default(&rp);
    double hs = 0, cs = 0;
    struct cu_rep_record *buf = malloc((s.nrec + 1) * sizeof *buf);
    if (!buf)
        bl_die("out of memory");
    for (size_t i = 0; i < np; i++) {
        size_t m = 0;
        uint32_t score;
        for (size_t k = 0; k < s.nrec; k++)
            if (s.recs[k].prov == i && s.recs[k].gen == s.p[i].gen)
                buf[m++] = s.recs[k].r;
        if (cu_rep_score(buf, m, &rp, (int64_t)tasks * TASK_MS, &score, NULL) != 0)
            bl_die("reputation refused its records");
        if (s.p[i].cheater)
            cs += score;
        else {
            hs += score;
            c->honest_caught += s.p[i].caught;
        }
    }
    free(buf);
    c->honest_score = np > ncheat ? hs / (double)(np - ncheat) / 1000 : 0;
    c->cheater_score = ncheat ? cs / (double)ncheat / 1000 : 0;

    /* Prediction: p = share * rate per replica. */
    double p = c->share * c->rate;
    if (!adaptive) {
        predict_fixed(fixed, p, &fw, &fr);
        c->predicted = fw;
    } else {
        double solo = (double)c->solo / (double)tasks;
        double solo_cheat = (double)c->solo_cheater / (double)tasks;
        predict_fixed(&normal, p, &fw, &fr);
        /* Replicated tasks as the normal policy; unaudited solo tasks by a
         * cheater are wrong with probability r (audited ones are caught
         * or replicated: counted in the normal term). */
        c->predicted = (1 - solo) * fw + solo_cheat * c->rate;
    }
}

static json_t *cell_json(const struct cell *c)
{
    double t = (double)c->tasks;
    return json_pack("{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:f,s:f}", "policy", c->policy,
                     "cheater_share", c->share, "cheat_rate", c->rate, "wrong_accepted",
                     (double)c->wrong / t, "predicted", c->predicted, "replicas_per_task",
                     (double)c->replicas / t, "failed", (double)c->failed / t, "solo",
                     (double)c->solo / t, "honest_caught", (json_int_t)c->honest_caught,
                     "cheater_ids_burnt", (json_int_t)c->cheater_caught, "honest_score",
                     c->honest_score, "cheater_score", c->cheater_score);
}

/* Mean solve time of k factor challenges of `bits` bits, in ms; *steps_out
 * gets the mean rho steps. */
static double time_factor(unsigned bits, unsigned k, double *steps_out)
{
    double total = 0, steps = 0;
    for (unsigned i = 0; i < k; i++) {
        unsigned char seed[32];
        struct cu_factor_chal c;
        struct cu_factor_answer a;
        uint64_t st;
        for (size_t j = 0; j < sizeof seed; j++)
            seed[j] = (unsigned char)rnd64();
        if (cu_chal_factor_make(seed, sizeof seed, bits, &c, NULL) != 0)
            bl_die("factor challenge of %u bits", bits);
        double t0 = bl_now_ms();
        if (cu_chal_factor_solve(c.n, UINT64_MAX, &a, &st) != 0 || cu_chal_factor_check(&c, &a))
            bl_die("factor solve of %u bits failed", bits);
        total += bl_now_ms() - t0;
        steps += (double)st;
    }
    *steps_out = steps / k;
    return total / k;
}

int main(int argc, char **argv)
{
    uint64_t tasks = bl_opt_u64(argc, argv, "--tasks", 20000);
    uint64_t np = bl_opt_u64(argc, argv, "--providers", 100);
    uint64_t seed = bl_opt_u64(argc, argv, "--seed", 1);
    uint64_t solves = bl_opt_u64(argc, argv, "--solves", 40);
    uint64_t mib = bl_opt_u64(argc, argv, "--mib", 256);
    static const double shares[] = {0.10, 0.30, 0.49}, rates[] = {1.0, 0.1};
    static const struct {
        const char *name;
        struct cu_replication r;
        bool adaptive;
    } pols[] = {
        {"solo{1,1,1}", {1, 1, 1, false}, false},    {"{2,2,5}", {2, 2, 5, false}, false},
        {"{3,2,5}", {3, 2, 5, false}, false},        {"{3,3,7}", {3, 3, 7, false}, false},
        {"adaptive{2,2,5}", {2, 2, 5, false}, true},
    };
    json_t *cells, *out;
    char *line;

    bl_init("trust");
    if (tasks < 1 || np < 8 || np > MAX_PROVIDERS || solves < 1 || mib < 1 ||
        mib > CU_CHAL_MEMORY_MAX_MIB)
        bl_die("--tasks >= 1, --providers 8..%d, --solves >= 1, --mib 1..%u", MAX_PROVIDERS,
               CU_CHAL_MEMORY_MAX_MIB);
    rng = seed;
    cells = json_array();
    struct cell worst = {0};
    double sim_t0 = bl_now_ms();
    for (size_t pi = 0; pi < sizeof pols / sizeof pols[0]; pi++)
        for (size_t ri = 0; ri < sizeof rates / sizeof rates[0]; ri++)
            for (size_t si = 0; si < sizeof shares / sizeof shares[0]; si++) {
                struct cell c = {.policy = pols[pi].name, .share = shares[si], .rate = rates[ri]};
                run_cell(&c, (size_t)np, tasks, &pols[pi].r, pols[pi].adaptive);
                json_array_append_new(cells, cell_json(&c));
                if (pols[pi].adaptive && c.share == 0.30 && c.rate == 1.0)
                    worst = c;
            }
    double sim_ms = bl_now_ms() - sim_t0;

    double st32, st48, st64;
    unsigned k = (unsigned)solves;
    double f32 = time_factor(32, k, &st32), f48 = time_factor(48, k, &st48),
           f64 = time_factor(64, k, &st64);
    /* Memory puzzle: one solve (= one check by recomputation). */
    unsigned char nonce[CU_CHAL_NONCE_LEN], ans[CU_CHAL_ANSWER_LEN];
    struct cu_memory_chal mc;
    for (size_t j = 0; j < sizeof nonce; j++)
        nonce[j] = (unsigned char)rnd64();
    if (cu_chal_memory_make(nonce, (unsigned)mib, 1, &mc) != 0)
        bl_die("memory challenge");
    double t0 = bl_now_ms();
    if (cu_chal_memory_solve(&mc, ans) != 0)
        bl_die("memory challenge of %llu MiB failed", (unsigned long long)mib);
    double mem_ms = bl_now_ms() - t0;
    t0 = bl_now_ms();
    if (cu_chal_memory_check(&mc, ans, ans) != 0)
        bl_die("memory check");
    double memchk_ms = bl_now_ms() - t0;

    out = json_pack("{s:s,s:I,s:I,s:I,s:o,s:f,s:{s:f,s:f,s:f,s:f,s:f,s:f,s:I},"
                    "s:{s:I,s:f,s:f}}",
                    "bench", "trust", "tasks", (json_int_t)tasks, "providers", (json_int_t)np,
                    "seed", (json_int_t)seed, "cells", cells, "sim_ms", sim_ms, "factor",
                    "solve32_ms", f32, "solve48_ms", f48, "solve64_ms", f64, "steps32", st32,
                    "steps48", st48, "steps64", st64, "solves", (json_int_t)k, "memory", "mib",
                    (json_int_t)mib, "solve_ms", mem_ms, "check_precomputed_ms", memchk_ms);
    if (!out)
        bl_die("out of memory");
    line = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (!line)
        bl_die("out of memory");
    printf("%s\n", line);
    free(line);
    json_decref(out);
    fprintf(stderr,
            "trust: %llu tasks x 30 settings in %.1f s; adaptive, 30%% colluding cheaters: "
            "%.4f wrong accepted (predicted %.4f), %.2f replicas/task; factor 32/48/64 bits "
            "%.3f/%.3f/%.3f ms; argon2id %llu MiB %.0f ms\n",
            (unsigned long long)tasks, sim_ms / 1e3, (double)worst.wrong / (double)tasks,
            worst.predicted, (double)worst.replicas / (double)tasks, f32, f48, f64,
            (unsigned long long)mib, mem_ms);
    return 0;
}
