/* trust.c - the provider's side of issue 4 (docs/api.md "Trust"): its
 * stake, capability challenges, the commit of a result, and the test-only
 * misbehaviours of --cheat. The checks themselves live in src/trust (pure)
 * and on the exchange; this file only talks and solves. */
#include "provider/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "trust/challenge.h"

#include "base/banned.h"

#define TRUST_TIMEOUT_MS 30000L
#define TRUST_TRIES 5
/* Pollard-Brent rho needs about 2^(bits/4) steps: 2^16 for 64 bits. This
 * bound is far beyond that and still well under a second of CPU. */
#define FACTOR_MAX_STEPS (1ULL << 26)
#define CHALLENGE_ID_MAX 64

/* ---- cheat modes --------------------------------------------------------- */

static const struct {
    const char *name;
    enum cu_cheat mode;
} cheats[] = {
    {"wrong", CU_CHEAT_WRONG},
    {"wrong-sometimes", CU_CHEAT_WRONG_SOMETIMES},
    {"vanish", CU_CHEAT_VANISH},
    {"no-heartbeat", CU_CHEAT_NO_HEARTBEAT},
    {"bad-answer", CU_CHEAT_BAD_ANSWER},
    {"fail-challenge", CU_CHEAT_FAIL_CHALLENGE},
    {"collude", CU_CHEAT_COLLUDE},
};

int cu_cheat_parse(const char *name, enum cu_cheat *out)
{
    for (size_t i = 0; i < sizeof cheats / sizeof cheats[0]; i++) {
        if (strcmp(name, cheats[i].name) == 0) {
            *out = cheats[i].mode;
            return 0;
        }
    }
    return -CU_EINVAL;
}

const char *cu_cheat_names(void)
{
    /* Written out once, checked against the table by provider_test. */
    return "wrong, wrong-sometimes, vanish, no-heartbeat, bad-answer, fail-challenge, collude";
}

bool cu_cheat_corrupts(enum cu_cheat mode, int64_t replica)
{
    char id[32];
    struct cu_hash h;

    switch (mode) {
    case CU_CHEAT_WRONG:
    case CU_CHEAT_COLLUDE:
        return true;
    case CU_CHEAT_WRONG_SOMETIMES:
        (void)cu_snprintf(id, sizeof id, "%lld", (long long)replica);
        cu_hash_mem(id, strlen(id), &h);
        return (h.b[0] & 1) != 0;
    default:
        return false;
    }
}

int cu_cheat_outputs(enum cu_cheat mode, const char *out_dir, const struct cu_outputs *o)
{
    static const char garbage[] = "\n-- not the task's output (cumulus --cheat wrong) --\n";
    static const char agreed[] = "-- the colluders' agreed wrong output (cumulus --cheat collude) --\n";
    char path[CU_PATH_MAX];

    for (size_t i = 0; i < o->n; i++) {
        const char *text = mode == CU_CHEAT_COLLUDE ? agreed : garbage;
        size_t len = strlen(text);
        int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC |
                    (mode == CU_CHEAT_COLLUDE ? O_TRUNC : O_APPEND);
        int fd;
        ssize_t w;

        if (cu_path_join(path, sizeof path, out_dir, o->v[i].name) != 0)
            return -CU_EIO;
        fd = open(path, flags);
        if (fd < 0)
            return -CU_EIO;
        w = write(fd, text, len);
        if (close(fd) != 0 || w != (ssize_t)len)
            return -CU_EIO;
    }
    return 0;
}

/* ---- commit ---------------------------------------------------------------- */

void cu_trust_commit_hex(const char *provider_id, const struct cu_hash *root,
                         char out[CU_HASH_HEX_LEN + 1])
{
    static const char tag[] = "cumulus-commit-v1\n";
    char root_hex[CU_HASH_HEX_LEN + 1];
    struct cu_hasher h;
    struct cu_hash c;

    cu_hash_to_hex(root, root_hex);
    cu_hasher_init(&h);
    cu_hasher_update(&h, tag, sizeof tag - 1);
    cu_hasher_update(&h, provider_id, strlen(provider_id));
    cu_hasher_update(&h, "\n", 1);
    cu_hasher_update(&h, root_hex, CU_HASH_HEX_LEN);
    cu_hasher_final(&h, &c);
    cu_hash_to_hex(&c, out);
}

/* ---- stake ----------------------------------------------------------------- */

/* One request, retried on transport errors and 5xx. 0 with r holding the
 * answer (any status), or -CU_ENET after TRUST_TRIES failures. */
static int request_retry(struct cu_http_client *c, const char *method, const char *path,
                         const json_t *body, struct cu_http_result *r)
{
    int64_t backoff = 500;
    int rc = -CU_ENET;

    for (int i = 0; i < TRUST_TRIES && !cu_agent_stopping(); i++) {
        rc = body ? cu_http_request_json(c, method, path, body, TRUST_TIMEOUT_MS, r)
                  : cu_http_request(c, method, path, NULL, 0, TRUST_TIMEOUT_MS, r);
        if (rc == 0 && r->status > 0 && r->status < 500)
            return 0;
        rc = -CU_ENET;
        cu_agent_nap(backoff);
        backoff *= 2;
    }
    return rc;
}

int cu_trust_stake(struct cu_agent *a, struct cu_http_client *c, uint64_t want,
                   const char *key_path, struct cu_err *e)
{
    struct cu_http_result r;
    struct cu_err je = {0};
    uint64_t stake = 0, balance = 0, add;
    char desc[700];
    json_t *body = NULL;
    int rc;

    cu_http_result_init(&r);
    rc = request_retry(c, "GET", "/v1/wallet", NULL, &r);
    cu_http_result_describe(&r, desc, sizeof desc);
    if (rc || r.status != 200) {
        rc = cu_err_set(e, rc ? rc : -CU_EPROTO, "--stake: cannot read this provider's wallet: %s",
                        desc);
        goto out_release;
    }
    if (cu_json_get_u64(r.json, "wallet", "stake", true, &stake, &je) ||
        cu_json_get_u64(r.json, "wallet", "balance", true, &balance, &je)) {
        rc = cu_err_set(e, -CU_EPROTO, "--stake: bad wallet answer: %s", je.msg);
        goto out_release;
    }
    if (stake >= want) {
        cu_info("stake %llu already covers --stake %llu", (unsigned long long)stake,
                (unsigned long long)want);
        goto out_release;
    }
    add = want - stake;
    if (balance < add) {
        rc = cu_err_set(e, -CU_ECONFLICT,
                        "--stake %llu: this provider (%s) has a stake of %llu and a balance of "
                        "%llu, short of the %llu to add; fund it first (on a devnet: cumulus "
                        "faucet %llu --key %s)",
                        (unsigned long long)want, a->id.id, (unsigned long long)stake,
                        (unsigned long long)balance, (unsigned long long)add,
                        (unsigned long long)(add - balance), key_path);
        goto out_release;
    }
    body = json_pack("{s:I}", "amount", (json_int_t)add);
    if (!body) {
        rc = cu_err_set(e, -CU_ENOMEM, "out of memory");
        goto out_release;
    }
    rc = request_retry(c, "POST", "/v1/stake", body, &r);
    cu_http_result_describe(&r, desc, sizeof desc);
    if (rc) {
        rc = cu_err_set(e, rc, "--stake: cannot reach the exchange: %s", desc);
    } else if (r.status == 409 && strcmp(r.err_code, "insufficient_funds") == 0) {
        rc = cu_err_set(e, -CU_ECONFLICT,
                        "--stake %llu: the balance of %s is short of %llu: %s; fund it first "
                        "(on a devnet: cumulus faucet %llu --key %s)",
                        (unsigned long long)want, a->id.id, (unsigned long long)add, desc,
                        (unsigned long long)add, key_path);
    } else if (r.status != 200) {
        rc = cu_err_set(e, -CU_EPROTO, "--stake: the exchange refused a stake of %llu: %s",
                        (unsigned long long)add, desc);
    } else {
        uint64_t now = 0;
        (void)cu_json_get_u64(r.json, "stake", "stake", false, &now, &je);
        cu_info("staked %llu more: stake now %llu", (unsigned long long)add,
                (unsigned long long)now);
    }
out_release:
    json_decref(body);
    cu_http_result_release(&r);
    return rc;
}

/* ---- capability challenges --------------------------------------------------- */

/* A decimal string of at most 20 digits that fits 64 bits. */
static int parse_dec_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 20 || strspn(s, "0123456789") != n)
        return -CU_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -CU_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* The answer body for a challenge (new reference in *body), solved or,
 * under fail-challenge, wrong on purpose. */
static int challenge_body(struct cu_slot *s, const json_t *ch, const char *kind, json_t **body,
                          struct cu_err *e)
{
    bool cheat = s->a->cheat == CU_CHEAT_FAIL_CHALLENGE;
    int rc;

    if (strcmp(kind, "factor") == 0) {
        const char *nstr = NULL;
        struct cu_factor_answer ans = {0};
        uint64_t n = 0, steps = 0;
        char p[24], q[24];

        if ((rc = cu_json_get_str(ch, "challenge", "n", true, &nstr, e)) != 0)
            return rc;
        if (parse_dec_u64(nstr, &n) != 0)
            return cu_err_set(e, -CU_EPROTO, "challenge.n: '%.40s' is not a 64-bit number", nstr);
        if (cheat) {
            ans.p = 3;
            ans.q = n / 3 + 1; /* never n's factors: 3 * (n/3 + 1) > n */
        } else {
            rc = cu_chal_factor_solve(n, FACTOR_MAX_STEPS, &ans, &steps);
            if (rc)
                return cu_err_set(e, rc, "cannot factor %llu: %s", (unsigned long long)n,
                                  cu_strerror(rc));
            cu_debug("factored %llu in %llu steps", (unsigned long long)n,
                     (unsigned long long)steps);
        }
        (void)cu_snprintf(p, sizeof p, "%llu", (unsigned long long)ans.p);
        (void)cu_snprintf(q, sizeof q, "%llu", (unsigned long long)ans.q);
        *body = json_pack("{s:s,s:s}", "p", p, "q", q);
    } else if (strcmp(kind, "memory") == 0) {
        struct cu_memory_chal mc = {0};
        const char *nonce = NULL;
        uint64_t mib = 0, ops = 0;
        unsigned char out[CU_CHAL_ANSWER_LEN];
        char hex[2 * CU_CHAL_ANSWER_LEN + 1];

        if ((rc = cu_json_get_u64(ch, "challenge", "mib", true, &mib, e)) != 0 ||
            (rc = cu_json_get_u64(ch, "challenge", "ops", true, &ops, e)) != 0 ||
            (rc = cu_json_get_str(ch, "challenge", "nonce", true, &nonce, e)) != 0)
            return rc;
        if (mib < 1 || mib > CU_CHAL_MEMORY_MAX_MIB || ops < 1 || ops > CU_CHAL_MEMORY_MAX_OPS)
            return cu_err_set(e, -CU_EPROTO, "challenge: mib %llu or ops %llu out of range",
                              (unsigned long long)mib, (unsigned long long)ops);
        if (strlen(nonce) != 2 * CU_CHAL_NONCE_LEN ||
            cu_hex_decode(nonce, mc.nonce, CU_CHAL_NONCE_LEN) != 0)
            return cu_err_set(e, -CU_EPROTO, "challenge.nonce: not %u hex digits",
                              2 * CU_CHAL_NONCE_LEN);
        mc.mib = (unsigned)mib;
        mc.ops = (unsigned)ops;
        if (cheat) {
            memset(out, 0x5a, sizeof out);
        } else if ((rc = cu_chal_memory_solve(&mc, out)) != 0) {
            return cu_err_set(e, rc, "cannot solve the %llu MiB puzzle: %s",
                              (unsigned long long)mib, cu_strerror(rc));
        }
        cu_hex_encode(out, sizeof out, hex);
        *body = json_pack("{s:s}", "answer", hex);
    } else {
        return cu_err_set(e, -CU_EPROTO, "challenge.kind: '%.40s' is not known here", kind);
    }
    return *body ? 0 : cu_err_set(e, -CU_ENOMEM, "out of memory");
}

int cu_trust_challenge(struct cu_slot *s, const json_t *ch)
{
    struct cu_http_result r;
    struct cu_err e = {0};
    const char *id = NULL, *kind = NULL, *job = "?";
    char path[CHALLENGE_ID_MAX + 32], desc[700];
    json_t *body = NULL;
    int64_t t0;
    int rc;

    if (!json_is_object(ch))
        rc = cu_err_set(&e, -CU_EPROTO, "claim answer: 'challenge' is not an object");
    else if ((rc = cu_json_get_str(ch, "challenge", "id", true, &id, &e)) == 0 &&
             (rc = cu_json_get_str(ch, "challenge", "kind", true, &kind, &e)) == 0 &&
             (strlen(id) > CHALLENGE_ID_MAX || !cu_name_is_safe(id)))
        rc = cu_err_set(&e, -CU_EPROTO, "challenge.id: '%.80s' is not a challenge id", id);
    if (rc) {
        cu_error("slot %u: unusable challenge: %s", s->index, e.msg);
        return rc;
    }
    if (json_is_string(json_object_get(ch, "job")))
        job = json_string_value(json_object_get(ch, "job"));
    t0 = cu_mono_ms();
    rc = challenge_body(s, ch, kind, &body, &e);
    if (rc) {
        cu_error("slot %u: challenge %s (job %s): %s", s->index, id, job, e.msg);
        return rc;
    }
    cu_info("slot %u: answering %s challenge %s of job %s (solved in %lld ms%s)", s->index, kind,
            id, job, (long long)(cu_mono_ms() - t0),
            s->a->cheat == CU_CHEAT_FAIL_CHALLENGE ? "; --cheat: answer is wrong" : "");
    (void)cu_snprintf(path, sizeof path, "/v1/challenges/%s", id);
    cu_http_result_init(&r);
    rc = request_retry(s->http, "POST", path, body, &r);
    cu_http_result_describe(&r, desc, sizeof desc);
    if (rc) {
        cu_warn("slot %u: challenge %s answer not delivered: %s", s->index, id, desc);
    } else if (r.status != 200) {
        cu_warn("slot %u: challenge %s answer refused: %s", s->index, id, desc);
        rc = -CU_EPROTO;
    } else if (json_is_true(json_object_get(r.json, "passed"))) {
        cu_info("slot %u: challenge %s passed: job %s may lease here", s->index, id, job);
    } else {
        const char *why = json_string_value(json_object_get(r.json, "reason"));
        cu_warn("slot %u: challenge %s failed: %s (job %s will not lease here)", s->index, id,
                why ? why : "no reason given", job);
    }
    cu_http_result_release(&r);
    json_decref(body);
    return rc;
}
