/* agent.h - state shared by the provider's slot threads, and the calls
 * between provider.c (start, slots, recovery) and lease.c (one lease).
 * Internal to src/provider. */
#ifndef CU_PROVIDER_AGENT_H
#define CU_PROVIDER_AGENT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/util.h"
#include "crypto/hash.h"
#include "crypto/ident.h"
#include "fabric/cgroup.h"
#include "fabric/gpu.h"
#include "fabric/idle.h"
#include "fabric/sandbox.h"
#include "fabric/warm.h"
#include "net/http_client.h"
#include "provider/collect.h"
#include "provider/provider.h"
#include "provider/pstate.h"
#include "store/blob.h"

#define CU_PROVIDER_VERSION "0.1.0"
#define CU_CLAIM_WAIT_MS 25000
#define CU_CLAIM_TIMEOUT_MS (CU_CLAIM_WAIT_MS + 10000)
#define CU_BLOB_TIMEOUT_MS (30L * 60 * 1000)  /* one blob transfer */
#define CU_SHUTDOWN_REPORT_MS 1000            /* report timeout while stopping */
#define CU_STDIO_CAP (1u << 20)               /* kept of each of stdout, stderr */
#define CU_FIRST_BEAT_MS 250                  /* first heartbeat of a lease, at most */
#define CU_INPUT_MAX (1ULL << 30)             /* the exchange's blob limit */

/* Resources one slot offers in its claims. */
struct cu_free_res {
    unsigned cores;
    uint64_t memory;
    unsigned gpus;
};

/* Everything the slots share; read-only once the slots start, except the
 * state database (its own lock). */
struct cu_agent {
    char exchange[1024];          /* base URL */
    char tasks_dir[CU_PATH_MAX];  /* DATA/tasks */
    char oci_dir[CU_PATH_MAX];    /* DATA/oci: unpacked OCI images by manifest digest */
    char warm_dir[CU_PATH_MAX];   /* DATA/warm: each warm sandbox binds DATA/warm/SLOT-N */
    bool warm;                    /* keep a warm sandbox per slot (not --no-warm-sandbox) */
    struct cu_identity id;
    struct cu_blobstore cache;    /* DATA/blobs: inputs, outputs, logs */
    struct cu_pstate state;       /* DATA/state.db */
    int64_t lease_ms, heartbeat_ms;
    struct cu_free_res slot_free;
    /* Parent group of every task (the provider's caps); version NONE when
     * cgroups are not usable: rlimits only. */
    struct cu_cgroup cg;
    uint64_t slot_disk;               /* bytes each task may use on disk; 0 = no cap */
    unsigned gpu_idx[CU_GPU_MAX];     /* offered GPUs; slot i gets gpus_per_slot from i*that */
    unsigned ngpus;
    struct cu_idle_monitor *idle; /* NULL: claim and run at any time */
    bool idle_pauses;             /* --idle-only: pause tasks while busy */
    char owner[65];                   /* sent in hello; "" = the provider's own id */
    const char *const *allow_images;  /* --allow-image list (borrowed), or NULL */
    uint64_t disk;                    /* disk offered (bytes), sent in hello; 0 = unknown */
    size_t nallow_images;
    enum cu_cheat cheat;              /* test-only misbehaviour */
    /* Delivers reports off the slots' path (reporter.c); NULL: each slot
     * reports itself. Set before the slots start. */
    struct cu_reporter *reporter;
    /* Leases claimed ahead (ahead.c); NULL: one lease per claim. */
    struct cu_ahead *ahead;
    /* Slots running a lease now (provider.c slot_run), and when the last
     * one ended (cu_mono_ms): the keepers do their work once quiet. */
    atomic_int leases_running;
    atomic_llong lease_ended_ms;
};

/* One slot: a thread that claims and runs one replica at a time. Its two
 * clients are its own (curl handles are not shared between threads): http
 * for claims, blobs and reports; hb for the lease keeper's heartbeats. */
struct cu_slot {
    struct cu_agent *a;
    unsigned index;
    struct cu_http_client *http;
    struct cu_http_client *hb;
    pthread_t thread;
    bool started;
    atomic_bool busy;  /* running a lease (shutdown waits for these) */
    /* The slot's warm sandbox (fabric/warm.h), kept between consecutive
     * leases of one job, NULL when none; only the slot's thread uses it.
     * The keeper (warm_slot.c) starts spares and ends sandboxes off the
     * task's path; NULL with --no-warm-sandbox. */
    struct cu_warm *warm;
    struct cu_warm_keeper *keeper;
    unsigned warm_serial; /* names their directories DATA/warm/SLOT-N */
    /* The slot's task directory DATA/tasks/slot-N (taskdir.c), reused by
     * its tasks; only the slot's thread uses these. */
    char dir[CU_PATH_MAX];
    bool dir_ready;   /* exists, with empty work/, out/, in/ */
    bool dir_exposed; /* this task's directories were bound into a sandbox */
    bool dir_moved;   /* a warm sandbox took work/'s and in/'s entries: both empty */
    bool out_empty;   /* the sandbox found out/ empty after the task (cu_sandbox_result) */
    atomic_bool done;  /* the thread has returned */
    /* The slot's heartbeat thread (lease.c), started on its first lease;
     * NULL before. */
    struct cu_beat_worker *beats;
};

/* ---- warm sandboxes (warm_slot.c) ------------------------------------- */

/* Starts the slot's keeper thread (none with --no-warm-sandbox). Call from
 * the slot's own thread. 0 or -CU_ENOMEM. */
int cu_slot_warm_init(struct cu_slot *s);
/* Ends every sandbox of the slot and its keeper. */
void cu_slot_warm_fini(struct cu_slot *s);
/* Makes s->warm the sandbox for a task of job with o: the current one when
 * it fits, else the spare when it fits (*spare set), else a new one; a
 * replaced one is ended by the keeper. 0, or as cu_warm_start (s->warm
 * NULL). */
int cu_slot_warm_take(struct cu_slot *s, const struct cu_sandbox_opts *o, const char *job,
                      bool *spare, struct cu_err *e);
/* s->warm failed: the keeper ends it, the next task gets another. */
void cu_slot_warm_discard(struct cu_slot *s);
/* Says that replica runs in the slot's warm sandbox now: DATA/tasks/
 * slot-N.cgroup gets "REPLICA GROUP" (the sandbox's cgroup name), for
 * `cumulus provider status` (cu_slot_task_cgroup). Advisory: not synced,
 * and a failure is only logged. */
void cu_slot_warm_note_task(struct cu_slot *s, int64_t replica);
/* Reads the group that tasks_dir's slot files say replica runs in into
 * out (n bytes). 0, or -CU_ENOTFOUND when no slot names it. */
int cu_slot_task_cgroup(const char *tasks_dir, int64_t replica, char *out, size_t n);
/* After a lease (a->lease_ended_ms set): the keeper keeps spares of
 * s->warm's shape, started once the provider is quiet. */
void cu_slot_warm_after_lease(struct cu_slot *s);
/* No lease for a while: the slot's job sandbox is ended (by the keeper);
 * its spares, which belong to no job, stay ready. */
void cu_slot_warm_idle(struct cu_slot *s);
/* Paused for the owner: every sandbox of the slot is ended, spares too. */
void cu_slot_warm_release(struct cu_slot *s);
/* True when the slot holds a job's sandbox. */
bool cu_slot_warm_held(struct cu_slot *s);

/* ---- the slot's task directory (taskdir.c) ---------------------------- */

/* Sets s->dir (DATA/tasks/slot-N); creates nothing yet. 0 or -CU_ETOOBIG. */
int cu_slot_dir_init(struct cu_slot *s, struct cu_err *e);
/* Makes s->dir hold empty work/, out/ and in/ for the next task (the
 * stdout/stderr files there, if any, are truncated when opened). Cheap
 * when the last task's cu_slot_dir_done emptied it. 0 or -CU_EIO (e set). */
int cu_slot_dir_prepare(struct cu_slot *s, struct cu_err *e);
/* After a task: empties work/, out/, in/ for the next one (only out/ when
 * s->dir_moved), or removes the whole tree when the task saw the
 * directories themselves (s->dir_exposed: a sandbox of its own) or
 * emptying failed. Never fails (logs). */
void cu_slot_dir_done(struct cu_slot *s);

/* ---- claiming ahead (ahead.c) -------------------------------------------- */

/* Leases claimed ahead, shared by the slots; see ahead.c. */
struct cu_ahead;
/* A queue for nslots slots (at most cu_ahead_held_max(nslots) leases
 * held in all). 0 or -CU_ENOMEM. */
int cu_ahead_new(unsigned nslots, struct cu_ahead **out);
/* The most leases nslots slots ever hold, running and queued: 64, or
 * 2 x nslots when that is more. Also the reporter's bound on pending
 * reports (provider.c). */
unsigned cu_ahead_held_max(unsigned nslots);
/* Frees h and the leases still queued (hand them back first). */
void cu_ahead_free(struct cu_ahead *h);
/* How many leases the next claim asks for (1: no claiming ahead now) and
 * reserves the queue places for them; call cu_ahead_claimed(h, want)
 * once the answer's extra leases are pushed (or none came). */
unsigned cu_ahead_want(struct cu_ahead *h, const struct cu_agent *a);
void cu_ahead_claimed(struct cu_ahead *h, unsigned want);
/* Records every lease of a claim's answer (array) as running in the
 * state, in one transaction, before any is queued or run: a crash from
 * then on reports them abandoned (recover()); cu_lease_run's own record
 * then writes nothing. */
void cu_ahead_record(struct cu_agent *a, const json_t *leases);
/* Queues lease (a reference is taken; recorded by cu_ahead_record). 0,
 * or -CU_EAGAIN when the queue is full (a bug: hand it back). */
int cu_ahead_push(struct cu_ahead *h, json_t *lease);
/* Leases queued now (claimed ahead, not yet taken by a slot). */
unsigned cu_ahead_queued(struct cu_ahead *h);
/* The oldest queued lease (the caller's reference) and how long it has
 * waited, or NULL. */
json_t *cu_ahead_pop(struct cu_ahead *h, int64_t *age_ms);
/* A slot starts (on) or ends (off) running a lease. */
void cu_ahead_running(struct cu_ahead *h, bool on);
/* How long the last lease took, start to end of cu_lease_run. */
void cu_ahead_note(struct cu_ahead *h, int64_t ms);
/* Reports a queued lease "error" with reason without running it (the
 * exchange requeues it) and forgets its row once answered; with
 * shutting_down one short try. Blocks. */
void cu_ahead_hand_back(struct cu_slot *s, const json_t *lease, const char *reason,
                        bool shutting_down);

/* True once SIGINT/SIGTERM arrived (or cu_agent_stop was called). */
bool cu_agent_stopping(void);
void cu_agent_stop(void);
/* Sleeps up to ms, waking early when stopping. */
void cu_agent_nap(int64_t ms);

/* Ends the slot's heartbeat thread (lease.c), if it started one. Call
 * from the slot's thread once no lease runs. */
void cu_slot_beats_fini(struct cu_slot *s);

/* Runs the lease object of a claim answer (borrowed) to its end: fetch,
 * run, heartbeat, collect, upload, report, clean up. Every failure becomes
 * a report (or, when the lease was lost, nothing). Returns 0, or a negative
 * code when the replica failed on the provider's side (reported "error":
 * sandbox setup, disk, download), so the slot can pause. Blocks for the
 * task's lifetime. */
int cu_lease_run(struct cu_slot *s, const json_t *lease);

/* Outcome of delivering a report. */
enum cu_delivery {
    CU_DELIVERED,  /* 200: the exchange has it */
    CU_DROPPED,    /* 409 or another 4xx: final, logged; never resend */
    CU_UNSENT,     /* stopped (or once) before any answer: resend later */
};

/* POSTs body to /v1/replicas/{replica}/report. With once, one try of
 * timeout_ms; otherwise retries transport errors and 5xx with backoff until
 * an answer or cu_agent_stopping(). A 409 missing_blobs uploads the blobs
 * it lists from bs (the provider's cache; NULL: none) once and sends again.
 * Blocks. */
enum cu_delivery cu_report_deliver(struct cu_http_client *c, const struct cu_blobstore *bs,
                                   int64_t replica, const char *body, long timeout_ms,
                                   bool once);

/* Uploads from bs every blob of missing (the "missing" array of a 409
 * missing_blobs answer: hex hashes) that the exchange lacks. 0, or
 * negative (logged) when one cannot be uploaded or missing is malformed. */
int cu_report_upload_missing(struct cu_http_client *c, const struct cu_blobstore *bs,
                             int64_t replica, const json_t *missing);

/* ---- the reporter (reporter.c) ------------------------------------------ */

/* One thread per provider that delivers finished reports while the slots
 * claim their next leases. It stores each report's body in the pstate
 * ('finished', the queued ones together in one transaction) before it
 * sends any, and forgets the row once the exchange answered it, like the
 * synchronous path. */
struct cu_reporter;

/* Starts the reporter with its own HTTP client; at most cap reports are
 * pending (queued or being sent) at once. 0 or negative with e set. */
int cu_reporter_start(struct cu_agent *a, unsigned cap, struct cu_reporter **out,
                      struct cu_err *e);
/* Hands the report of replica (body: malloc'd, not stored yet: the
 * reporter stores it before sending) to the reporter, which then owns
 * body. Waits while
 * cap reports are pending. -CU_ECANCELLED when the reporter has stopped:
 * body stays the caller's, who delivers it itself. */
int cu_reporter_submit(struct cu_reporter *r, int64_t replica, char *body);
/* Drains the queue (while stopping: one short try per report; the unsent
 * stay in the pstate for recovery) and joins the thread; a later submit is
 * refused. Waits up to wait_ms: false when a report is still in flight then
 * (the thread is left running; its rows stay for recovery). Safe to call
 * twice. */
bool cu_reporter_stop(struct cu_reporter *r, int64_t wait_ms);
/* How long the reporter holds nq queued reports (the oldest queued
 * oldest_ms ago) for more to share their request: > 0 only while leases
 * claimed ahead wait (more reports come within a few ms), fewer than
 * CU_REPORT_LINGER_BATCH are queued and the oldest is younger than
 * CU_REPORT_LINGER_MS; 0: send now. Pure (reporter.c). */
#define CU_REPORT_LINGER_MS 10
#define CU_REPORT_LINGER_BATCH 16
int64_t cu_reporter_linger_ms(size_t nq, int64_t oldest_ms, unsigned ahead_queued, bool closing);
/* Tells the reporter that no slot runs a lease now (it writes what its
 * answered reports left pending in the state at once: no task's write
 * will carry it soon). */
void cu_reporter_idle(struct cu_reporter *r);
/* Frees a reporter that cu_reporter_stop joined, once no thread may submit;
 * one it could not join is left alone (the process is exiting). */
void cu_reporter_free(struct cu_reporter *r);

/* Makes sure the exchange holds blob h (HEAD, then PUT of the cached file
 * on 404); one try. 0; -CU_ENET (transport error or 5xx: worth retrying);
 * another negative code for a final refusal. e says why. */
int cu_blob_ensure_remote(struct cu_http_client *c, const struct cu_blobstore *bs,
                          const struct cu_hash *h, long timeout_ms, struct cu_err *e);

/* The body (malloc'd string) of an "error" report with reason: the
 * exchange requeues the replica without blaming the task. Its stdout and
 * stderr are the empty blob, which every exchange holds (nothing to
 * upload). NULL when out of memory. */
char *cu_error_report(const char *reason);

/* ---- trust (trust.c; docs/api.md "Trust (issue 4)") ---------------------- */

/* Tops the provider's stake up to want: GET /v1/wallet, then POST
 * /v1/stake with the difference when the stake is below want. Transport
 * failures are retried a few times. 0, or negative with e naming the
 * shortfall (balance too small: how to fund it) or the refusal. Blocks. */
int cu_trust_stake(struct cu_agent *a, struct cu_http_client *c, uint64_t want,
                   const char *key_path, struct cu_err *e);

/* Answers a capability challenge of a claim answer (borrowed): solves it
 * (factor: bounded Pollard rho; memory: argon2id), or answers wrongly
 * under --cheat fail-challenge, POSTs /v1/challenges/{id} and logs the
 * outcome. 0 when the exchange took the answer (passed or not), negative
 * when it could not be solved or sent (logged). Blocks for the solve. */
int cu_trust_challenge(struct cu_slot *s, const json_t *challenge);

/* The commit of a result: lowercase hex of BLAKE2b-256("cumulus-commit-v1\n"
 * || provider id hex || "\n" || merkle root hex). */
void cu_trust_commit_hex(const char *provider_id, const struct cu_hash *root,
                         char out[CU_HASH_HEX_LEN + 1]);

/* True when the cheat mode corrupts this replica's ok result (wrong,
 * collude: always; wrong-sometimes: by hash of the replica id). */
bool cu_cheat_corrupts(enum cu_cheat mode, int64_t replica);

/* Rewrites the files listed in o (names under out_dir, as collected) the
 * way mode cheats: wrong/wrong-sometimes append garbage, collude replaces
 * each with one fixed content. The caller collects again afterwards. 0 or
 * -CU_EIO. */
int cu_cheat_outputs(enum cu_cheat mode, const char *out_dir, const struct cu_outputs *o);

#endif
