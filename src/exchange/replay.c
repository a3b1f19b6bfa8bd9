/* replay.c - the in-memory replay window for signed reads (replay.h). */
#include "exchange/replay.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "crypto/hash.h"
#include "crypto/reqsign.h"

#include "base/banned.h"

struct ex_replay_slot {
    uint8_t id[16]; /* the first bytes of BLAKE2b(key NUL nonce) */
    int64_t ts_ms;  /* 0: never used */
};

int ex_replay_init(struct ex_replay *r, int64_t ttl_ms)
{
    memset(r, 0, sizeof *r);
    r->ttl_ms = ttl_ms > 0 ? ttl_ms : 2 * CU_REQSIGN_MAX_SKEW_S * 1000;
    r->cap = EX_REPLAY_MIN;
    r->slot = calloc(r->cap, sizeof *r->slot);
    if (!r->slot)
        return -CU_ENOMEM;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->slot);
        r->slot = NULL;
        return -CU_ENOMEM;
    }
    return 0;
}

void ex_replay_release(struct ex_replay *r)
{
    if (!r->slot)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r->slot);
    r->slot = NULL;
}

static size_t home(const uint8_t id[16], size_t cap)
{
    uint64_t h;

    memcpy(&h, id, sizeof h); /* already a uniform hash */
    return (size_t)h & (cap - 1);
}

static bool live(const struct ex_replay_slot *s, int64_t now_ms, int64_t ttl_ms)
{
    return s->ts_ms != 0 && now_ms - s->ts_ms < ttl_ms;
}

/* Rebuilds the table at cap entries, keeping the live ones (mu held).
 * Returns 0 or -CU_ENOMEM (the old table is kept). */
static int rebuild(struct ex_replay *r, size_t cap, int64_t now_ms)
{
    struct ex_replay_slot *n = calloc(cap, sizeof *n);
    size_t used = 0;

    if (!n)
        return -CU_ENOMEM;
    for (size_t i = 0; i < r->cap; i++) {
        const struct ex_replay_slot *s = &r->slot[i];
        size_t j;

        if (!live(s, now_ms, r->ttl_ms))
            continue;
        for (j = home(s->id, cap); n[j].ts_ms != 0; j = (j + 1) & (cap - 1))
            ;
        n[j] = *s;
        used++;
    }
    free(r->slot);
    r->slot = n;
    r->cap = cap;
    r->used = used;
    return 0;
}

int ex_replay_use(struct ex_replay *r, const char *key, const char *nonce, int64_t now_ms)
{
    struct cu_hasher h;
    struct cu_hash full;
    uint8_t id[16];
    size_t i;
    int rc = 0;

    cu_hasher_init(&h);
    cu_hasher_update(&h, key, strlen(key) + 1);
    cu_hasher_update(&h, nonce, strlen(nonce));
    cu_hasher_final(&h, &full);
    memcpy(id, full.b, sizeof id);
    if (now_ms <= 0)
        now_ms = 1; /* 0 marks a never-used slot */

    pthread_mutex_lock(&r->mu);
    for (i = home(id, r->cap); r->slot[i].ts_ms != 0; i = (i + 1) & (r->cap - 1)) {
        struct ex_replay_slot *s = &r->slot[i];

        if (memcmp(s->id, id, sizeof id) == 0) {
            if (live(s, now_ms, r->ttl_ms)) {
                rc = -CU_EAUTH;
                goto out_unlock;
            }
            s->ts_ms = now_ms; /* the same pair, long expired: its slot again */
            goto out_unlock;
        }
    }
    /* Keep at most half the slots used, so probes stay short: purge the
     * expired entries, and grow only when the live ones need it. */
    if (2 * (r->used + 1) > r->cap) {
        size_t cap = r->cap, nlive = 0;

        for (size_t k = 0; k < r->cap; k++)
            nlive += live(&r->slot[k], now_ms, r->ttl_ms);
        while (8 * (nlive + 1) > 3 * cap && cap < EX_REPLAY_MAX)
            cap *= 2; /* the live entries fill under 3/8 of the new table */
        if (2 * (nlive + 1) > cap || rebuild(r, cap, now_ms) != 0) {
            rc = -CU_EAGAIN; /* never forget a live entry to make room */
            goto out_unlock;
        }
        for (i = home(id, r->cap); r->slot[i].ts_ms != 0; i = (i + 1) & (r->cap - 1))
            ;
    }
    memcpy(r->slot[i].id, id, sizeof id);
    r->slot[i].ts_ms = now_ms;
    r->used++;
out_unlock:
    pthread_mutex_unlock(&r->mu);
    return rc;
}
