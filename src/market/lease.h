/* lease.h - the replica state machine and lease arithmetic (pure).
 *
 * A replica is one execution of a task on one provider (DESIGN.md §5):
 *
 *   queued ──► leased ──► running ──► reported ──► accepted | rejected
 *                 │          │
 *                 └──────────┴──► expired      (lease missed, provider error)
 *   any state that is not final ──► cancelled
 *
 * A lease is held until an absolute wall-clock time (unix ms) so that it
 * survives a restart of the exchange: a live provider keeps renewing it, a
 * dead one lets it run out. Time is passed in; nothing here reads a clock. */
#ifndef CU_MARKET_LEASE_H
#define CU_MARKET_LEASE_H

#include <stdbool.h>
#include <stdint.h>

enum cu_replica_state {
    CU_REPLICA_QUEUED,
    CU_REPLICA_LEASED,
    CU_REPLICA_RUNNING,
    CU_REPLICA_REPORTED,
    CU_REPLICA_ACCEPTED,
    CU_REPLICA_REJECTED,
    CU_REPLICA_EXPIRED,
    CU_REPLICA_CANCELLED,
    CU_REPLICA_NSTATES
};

/* "queued", "leased", ... (the wire and database names); "?" outside the
 * enum. */
const char *cu_replica_state_name(enum cu_replica_state s);
/* Inverse of cu_replica_state_name: 0, or -CU_EINVAL for an unknown name. */
int cu_replica_state_parse(const char *name, enum cu_replica_state *out);

/* True when the state machine allows from -> to. Staying in a state is not
 * a transition (false). */
bool cu_replica_can_transition(enum cu_replica_state from, enum cu_replica_state to);
/* accepted, rejected, expired, cancelled: nothing follows. */
bool cu_replica_state_final(enum cu_replica_state s);
/* leased or running: held under a lease that must be renewed. */
bool cu_replica_state_held(enum cu_replica_state s);
/* leased, running, reported or accepted: the provider holds (or produced a
 * standing result for) the task, so it may not take another replica of it. */
bool cu_replica_state_live(enum cu_replica_state s);

/* Lease length bounds accepted by the exchange. */
#define CU_LEASE_MIN_MS 300ULL
#define CU_LEASE_MAX_MS (24ULL * 3600 * 1000)

/* Expiry of a lease granted at now_ms for lease_ms: 0, or -CU_EOVERFLOW
 * (nothing written) when it does not fit in an int64. */
int cu_lease_expiry(int64_t now_ms, uint64_t lease_ms, int64_t *expires_ms);
/* A lease is lost once its expiry lies strictly in the past. */
bool cu_lease_expired(int64_t expires_ms, int64_t now_ms);
/* Renewal at now_ms: 0 and *next = max(expires_ms, now_ms + lease_ms), or
 * -CU_ECONFLICT when the lease had already expired (a lost lease is never
 * revived), -CU_EOVERFLOW. */
int cu_lease_renew(int64_t expires_ms, int64_t now_ms, uint64_t lease_ms, int64_t *next);
/* How often a holder should heartbeat: a third of the lease, at least 1. */
uint64_t cu_lease_heartbeat_ms(uint64_t lease_ms);

#endif
