/* replay.h - the replay window for signed reads (GET and HEAD).
 *
 * A signed request carries a nonce so that a captured request cannot be
 * sent again. For requests that change state the nonce is made durable
 * with the change (state.h, ex_nonce_use), because a replayed write after
 * a restart could move tokens. A read changes nothing: its replay can only
 * fetch again what the original fetched. So reads are checked against this
 * in-memory window instead, which costs no SQLite write and no fsync per
 * poll; after a restart the window is empty, and a read captured before it
 * could be answered once more, which discloses nothing the original
 * answer did not.
 *
 * The window remembers a read's (key, nonce) as long as its timestamp can
 * pass the freshness check (twice CU_REQSIGN_MAX_SKEW_S). It grows to
 * EX_REPLAY_MAX entries; when that is full, ex_replay_use answers
 * -CU_EAGAIN and the caller falls back to the durable nonce path, so a
 * flood of reads is slowed, never let through twice. Thread-safe. */
#ifndef CU_EXCHANGE_REPLAY_H
#define CU_EXCHANGE_REPLAY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define EX_REPLAY_MIN (1u << 12)
#define EX_REPLAY_MAX (1u << 20) /* entries: 24 MiB at most */

struct ex_replay_slot;

struct ex_replay {
    pthread_mutex_t mu;
    struct ex_replay_slot *slot; /* open addressing, cap a power of two */
    size_t cap;
    size_t used;                 /* slots holding an entry, expired or not */
    int64_t ttl_ms;
};

/* ttl_ms: how long an entry is remembered (0: 2 * CU_REQSIGN_MAX_SKEW_S).
 * Returns 0 or -CU_ENOMEM. */
int ex_replay_init(struct ex_replay *r, int64_t ttl_ms);
void ex_replay_release(struct ex_replay *r);

/* Records (key, nonce) seen at now_ms. Returns 0 when it was not in the
 * window, -CU_EAUTH when it was (a replay), -CU_EAGAIN when the window is
 * full (the caller must use the durable path instead). Never blocks on I/O. */
int ex_replay_use(struct ex_replay *r, const char *key, const char *nonce, int64_t now_ms);

#endif
