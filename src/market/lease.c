/* lease.c - the replica state machine and lease arithmetic. */
#include "market/lease.h"

#include <string.h>

#include "base/err.h"

#include "base/banned.h"

static const char *const state_names[CU_REPLICA_NSTATES] = {
    [CU_REPLICA_QUEUED] = "queued",     [CU_REPLICA_LEASED] = "leased",
    [CU_REPLICA_RUNNING] = "running",   [CU_REPLICA_REPORTED] = "reported",
    [CU_REPLICA_ACCEPTED] = "accepted", [CU_REPLICA_REJECTED] = "rejected",
    [CU_REPLICA_EXPIRED] = "expired",   [CU_REPLICA_CANCELLED] = "cancelled",
};

#define BIT(s) (1u << (s))

/* allowed[from] = the set of states reachable in one step. */
static const unsigned allowed[CU_REPLICA_NSTATES] = {
    [CU_REPLICA_QUEUED] = BIT(CU_REPLICA_LEASED) | BIT(CU_REPLICA_CANCELLED),
    [CU_REPLICA_LEASED] = BIT(CU_REPLICA_RUNNING) | BIT(CU_REPLICA_REPORTED) |
                          BIT(CU_REPLICA_EXPIRED) | BIT(CU_REPLICA_CANCELLED),
    [CU_REPLICA_RUNNING] =
        BIT(CU_REPLICA_REPORTED) | BIT(CU_REPLICA_EXPIRED) | BIT(CU_REPLICA_CANCELLED),
    [CU_REPLICA_REPORTED] =
        BIT(CU_REPLICA_ACCEPTED) | BIT(CU_REPLICA_REJECTED) | BIT(CU_REPLICA_CANCELLED),
    [CU_REPLICA_ACCEPTED] = 0,
    [CU_REPLICA_REJECTED] = 0,
    [CU_REPLICA_EXPIRED] = 0,
    [CU_REPLICA_CANCELLED] = 0,
};

static bool valid(enum cu_replica_state s)
{
    return (unsigned)s < CU_REPLICA_NSTATES;
}

const char *cu_replica_state_name(enum cu_replica_state s)
{
    return valid(s) ? state_names[s] : "?";
}

int cu_replica_state_parse(const char *name, enum cu_replica_state *out)
{
    for (unsigned i = 0; name && i < CU_REPLICA_NSTATES; i++) {
        if (strcmp(state_names[i], name) == 0) {
            *out = (enum cu_replica_state)i;
            return 0;
        }
    }
    return -CU_EINVAL;
}

bool cu_replica_can_transition(enum cu_replica_state from, enum cu_replica_state to)
{
    return valid(from) && valid(to) && (allowed[from] & BIT(to)) != 0;
}

bool cu_replica_state_final(enum cu_replica_state s)
{
    return valid(s) && allowed[s] == 0;
}

bool cu_replica_state_held(enum cu_replica_state s)
{
    return s == CU_REPLICA_LEASED || s == CU_REPLICA_RUNNING;
}

bool cu_replica_state_live(enum cu_replica_state s)
{
    return s == CU_REPLICA_LEASED || s == CU_REPLICA_RUNNING || s == CU_REPLICA_REPORTED ||
           s == CU_REPLICA_ACCEPTED;
}

int cu_lease_expiry(int64_t now_ms, uint64_t lease_ms, int64_t *expires_ms)
{
    if (lease_ms > (uint64_t)INT64_MAX || now_ms > INT64_MAX - (int64_t)lease_ms)
        return -CU_EOVERFLOW;
    *expires_ms = now_ms + (int64_t)lease_ms;
    return 0;
}

bool cu_lease_expired(int64_t expires_ms, int64_t now_ms)
{
    return expires_ms < now_ms;
}

int cu_lease_renew(int64_t expires_ms, int64_t now_ms, uint64_t lease_ms, int64_t *next)
{
    int64_t t;
    int rc;

    if (cu_lease_expired(expires_ms, now_ms))
        return -CU_ECONFLICT;
    rc = cu_lease_expiry(now_ms, lease_ms, &t);
    if (rc)
        return rc;
    /* A renewal never shortens a lease (clocks may step back). */
    *next = t > expires_ms ? t : expires_ms;
    return 0;
}

uint64_t cu_lease_heartbeat_ms(uint64_t lease_ms)
{
    uint64_t h = lease_ms / 3;
    return h ? h : 1;
}
