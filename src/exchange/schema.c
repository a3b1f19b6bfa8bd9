/* schema.c - the exchange database schema, as ordered migrations.
 *
 * Never edit a released migration: add a new one. Times are unix ms;
 * states are the names of docs/api.md (replica states: market/lease.h). */
#include <stddef.h>

#include "exchange/state.h"

#include "base/banned.h"

/* One column per line reads better than reflowed SQL. */
/* clang-format off */
static const struct cu_migration migrations[] = {
    {1,
     "CREATE TABLE jobs ("
     "  id TEXT PRIMARY KEY,"
     "  owner TEXT NOT NULL,"
     "  name TEXT NOT NULL,"
     "  state TEXT NOT NULL,"            /* running | done | failed | cancelled */
     "  reason TEXT,"
     "  spec_json TEXT NOT NULL,"        /* canonical spec */
     "  submit_body BLOB NOT NULL,"      /* the verbatim signed request body */
     "  submit_sig_json TEXT NOT NULL,"  /* its five signature headers */
     "  task_count INTEGER NOT NULL,"
     "  replication INTEGER NOT NULL,"
     "  cores INTEGER NOT NULL,"         /* per task, copied from the spec for claims */
     "  memory INTEGER NOT NULL,"
     "  gpus INTEGER NOT NULL,"
     "  output_limit INTEGER NOT NULL,"
     "  created_ms INTEGER NOT NULL,"
     "  finished_ms INTEGER"
     ");"
     "CREATE INDEX jobs_owner ON jobs(owner, created_ms);"
     "CREATE INDEX jobs_state ON jobs(state, created_ms);"
     "CREATE TABLE tasks ("
     "  job_id TEXT NOT NULL REFERENCES jobs(id),"
     "  idx INTEGER NOT NULL,"
     "  state TEXT NOT NULL,"            /* queued | running | done | failed | cancelled */
     "  arg TEXT,"
     "  attempts INTEGER NOT NULL DEFAULT 0," /* leases granted */
     "  errors INTEGER NOT NULL DEFAULT 0,"   /* replicas lost: provider error, lease expiry */
     "  reason TEXT,"
     "  result_replica INTEGER,"
     "  finished_ms INTEGER,"
     "  PRIMARY KEY (job_id, idx)"
     ");"
     "CREATE TABLE replicas ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  job_id TEXT NOT NULL,"
     "  task_idx INTEGER NOT NULL,"
     "  provider TEXT,"
     "  state TEXT NOT NULL,"
     "  status TEXT,"                    /* the report's sandbox outcome */
     "  exit_code INTEGER,"
     "  reason TEXT,"
     "  cpu_ms INTEGER,"
     "  wall_ms INTEGER,"
     "  merkle_root TEXT,"
     "  outputs_json TEXT,"
     "  stdout_hash TEXT,"
     "  stderr_hash TEXT,"
     "  report_body BLOB,"
     "  leased_ms INTEGER,"
     "  lease_expires_ms INTEGER,"
     "  reported_ms INTEGER,"
     "  created_ms INTEGER NOT NULL,"
     "  FOREIGN KEY (job_id, task_idx) REFERENCES tasks(job_id, idx)"
     ");"
     "CREATE INDEX replicas_claim ON replicas(job_id, state, task_idx);"
     "CREATE INDEX replicas_task ON replicas(job_id, task_idx);"
     "CREATE INDEX replicas_lease ON replicas(state, lease_expires_ms);"
     "CREATE TABLE providers ("
     "  id TEXT PRIMARY KEY,"
     "  first_seen_ms INTEGER NOT NULL,"
     "  last_seen_ms INTEGER NOT NULL,"
     "  slots INTEGER NOT NULL DEFAULT 0,"
     "  cores INTEGER NOT NULL DEFAULT 0,"
     "  memory INTEGER NOT NULL DEFAULT 0,"
     "  gpus INTEGER NOT NULL DEFAULT 0,"
     "  version TEXT"
     ");"
     "CREATE TABLE nonces ("
     "  key TEXT NOT NULL,"
     "  nonce TEXT NOT NULL,"
     "  ts_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (key, nonce)"
     ") WITHOUT ROWID;"
     "CREATE INDEX nonces_ts ON nonces(ts_ms);"},
    /* The money issue: the ledger (blocks and a transaction index for
     * wallet history) and provider asks and CU. */
    {2,
     "CREATE TABLE ledger_blocks ("
     "  height INTEGER PRIMARY KEY,"
     "  hash TEXT NOT NULL,"               /* block hash, hex */
     "  time_ms INTEGER NOT NULL,"
     "  tx_count INTEGER NOT NULL,"
     "  line TEXT NOT NULL"                /* canonical export line, without \n */
     ");"
     "CREATE TABLE ledger_txs ("
     "  txid TEXT NOT NULL,"
     "  height INTEGER NOT NULL REFERENCES ledger_blocks(height),"
     "  idx INTEGER NOT NULL,"             /* index within the block */
     "  seq INTEGER NOT NULL UNIQUE,"
     "  type TEXT NOT NULL,"
     "  from_id TEXT,"
     "  to_id TEXT,"
     "  job TEXT,"
     "  amount INTEGER,"
     "  time_ms INTEGER NOT NULL,"
     "  PRIMARY KEY (height, idx)"
     ");"
     "CREATE INDEX ledger_txs_from ON ledger_txs(from_id, seq);"
     "CREATE INDEX ledger_txs_to ON ledger_txs(to_id, seq);"
     "CREATE INDEX ledger_txs_txid ON ledger_txs(txid);"
     "ALTER TABLE providers ADD COLUMN price_per_cu INTEGER NOT NULL DEFAULT 1;"
     "ALTER TABLE providers ADD COLUMN cu_factor_milli INTEGER NOT NULL DEFAULT 1000;"
     "ALTER TABLE replicas ADD COLUMN price_per_cu INTEGER;"
     "ALTER TABLE replicas ADD COLUMN cu_milli INTEGER;"},
    /* Escrow (issue 3): a job's terms are fixed at submission (bid, the
     * CU cap per replica, the fees in force then, what was locked); a
     * replica records what it was paid, so a restart never pays twice. */
    {3,
     "ALTER TABLE jobs ADD COLUMN bid INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN max_cu INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN fee_bps INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN escrow_fee INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN replica_max INTEGER NOT NULL DEFAULT 0;" /* pay + fee cap */
     "ALTER TABLE jobs ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;"      /* at submission */
     "ALTER TABLE jobs ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;"     /* escrow closed */
     "ALTER TABLE replicas ADD COLUMN paid INTEGER;"                       /* NULL: not paid */
     "ALTER TABLE replicas ADD COLUMN fee INTEGER;"
     "ALTER TABLE replicas ADD COLUMN recorded INTEGER NOT NULL DEFAULT 0;" /* task_record written */
     "CREATE INDEX replicas_paid ON replicas(provider, paid);"},
    /* Trust (issue 4): replication policies, owners, reputation records,
     * capability challenges, heartbeat nonces, commit-then-reveal. */
    {4,
     "ALTER TABLE jobs ADD COLUMN quorum INTEGER NOT NULL DEFAULT 0;"     /* 0: legacy policy */
     "ALTER TABLE jobs ADD COLUMN max_replicas INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN min_reputation INTEGER NOT NULL DEFAULT 0;" /* thousandths */
     "ALTER TABLE jobs ADD COLUMN challenge TEXT;"                        /* canonical JSON */
     "ALTER TABLE providers ADD COLUMN owner TEXT;"                       /* NULL: itself */
     "ALTER TABLE providers ADD COLUMN score INTEGER NOT NULL DEFAULT 0;" /* thousandths, cached */
     "ALTER TABLE replicas ADD COLUMN commit_hash TEXT;"
     "ALTER TABLE replicas ADD COLUMN hb_nonce TEXT;"                     /* the open heartbeat nonce */
     "ALTER TABLE replicas ADD COLUMN slashed INTEGER;"
     "CREATE TABLE rep_records ("
     "  provider TEXT NOT NULL,"
     "  time_ms INTEGER NOT NULL,"
     "  outcome TEXT NOT NULL,"          /* cu_rep_outcome names */
     "  job TEXT,"
     "  replica INTEGER"
     ");"
     "CREATE INDEX rep_records_provider ON rep_records(provider, time_ms);"
     "CREATE TABLE challenges ("
     "  id TEXT PRIMARY KEY,"
     "  provider TEXT NOT NULL,"
     "  job TEXT NOT NULL,"
     "  kind TEXT NOT NULL,"             /* factor | memory */
     "  public_json TEXT NOT NULL,"      /* what the provider is sent */
     "  secret TEXT,"                    /* factor: \"p q\" */
     "  state TEXT NOT NULL,"            /* open | passed | failed */
     "  created_ms INTEGER NOT NULL,"
     "  expires_ms INTEGER NOT NULL"
     ");"
     "CREATE INDEX challenges_provider_job ON challenges(provider, job);"},
    /* No query looks transactions up by id, and inserting random 64-hex
     * keys into that index was most of the append cost (bench/ledger:
     * 10.4k -> 23.7k tx/s without it). */
    {5, "DROP INDEX ledger_txs_txid;"},
    /* Adaptive replication: a task's own policy once its first replica
     * is leased (NULL: the job's). */
    {6,
     "ALTER TABLE jobs ADD COLUMN adaptive INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE tasks ADD COLUMN plan TEXT;"          /* solo | audit | normal */
     "ALTER TABLE tasks ADD COLUMN policy_min INTEGER;"
     "ALTER TABLE tasks ADD COLUMN policy_quorum INTEGER;"
     "ALTER TABLE tasks ADD COLUMN policy_max INTEGER;"},
    /* Providers that run only some OCI images (--allow-image). */
    {7, "ALTER TABLE providers ADD COLUMN allow_images TEXT;"}, /* JSON array, NULL = any */
    /* Whether a job still has open tasks is asked after every report
     * (job_refresh): with this index it is a seek, not a count of the
     * job's tasks (bench/dispatch, see docs/performance.md). */
    {8, "CREATE INDEX tasks_state ON tasks(job_id, state);"},
    /* Validator commands: a reported result waits for its comparison
     * (validating) and then votes with the root it agrees with. */
    {9,
     "ALTER TABLE replicas ADD COLUMN validating INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE replicas ADD COLUMN vote_root TEXT;"},
    /* The OCI image's content hash, so claims match --allow-image without
     * parsing every job's spec (bench/scale: claim p99 182 ms with
     * json_extract per running job). */
    {10,
     "ALTER TABLE jobs ADD COLUMN image_hash TEXT;"
     "UPDATE jobs SET image_hash = json_extract(spec_json, '$.image.oci.hash');"},
    /* Disk offered by a provider (bytes; 0 = not said). */
    {11,
     "ALTER TABLE providers ADD COLUMN disk INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN input_bytes INTEGER NOT NULL DEFAULT 0;"}, /* inputs + image */
    /* A replica told it may reveal keeps that right: the task's other
     * replica may be leased (uncommitted) after the answer went out. */
    {12, "ALTER TABLE replicas ADD COLUMN revealed INTEGER NOT NULL DEFAULT 0;"},
    /* The validator thread looks for waiting results ten times a second:
     * a partial index keeps that a seek, not a scan of every replica
     * under the state lock. */
    {13, "CREATE INDEX replicas_validating ON replicas(id) WHERE validating = 1;"},
    /* The escrow check of every claim (ex_settle_can_lease) needs how
     * many replicas of the job may still be paid: per task the held
     * replicas (leased, running, reported) up to the job's quorum. It was
     * a GROUP BY over every replica of the job under the state lock (43 %
     * of the exchange's time in bench/dispatch at 6,000 tasks); triggers
     * now keep tasks.held and jobs.payable in the same transaction as
     * every state change, so a rollback or a crash cannot part them. */
    {14,
     "ALTER TABLE tasks ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN payable INTEGER NOT NULL DEFAULT 0;"
     /* A provider's score is recomputed lazily (trust.c): score_at is the
      * time of the record that made it stale, NULL when fresh. */
     "ALTER TABLE providers ADD COLUMN score_at INTEGER;"
     /* Batched reports (POST /v1/reports): the signed body is kept once
      * per batch, and each replica it reports points at it. */
     "CREATE TABLE report_batches ("
     "  id INTEGER PRIMARY KEY,"
     "  provider TEXT NOT NULL,"
     "  body BLOB NOT NULL,"             /* the verbatim signed request body */
     "  time_ms INTEGER NOT NULL"
     ");"
     "ALTER TABLE replicas ADD COLUMN report_batch INTEGER;"
     /* A score reads a provider's newest records: with the outcome in the
      * index that is an index-only scan, not a row lookup per record. */
     "DROP INDEX rep_records_provider;"
     "CREATE INDEX rep_records_provider ON rep_records(provider, time_ms, outcome);"
     "UPDATE tasks SET held = (SELECT COUNT(*) FROM replicas r WHERE r.job_id = tasks.job_id "
     "  AND r.task_idx = tasks.idx AND r.state IN ('leased','running','reported'));"
     "UPDATE jobs SET payable = (SELECT COALESCE(SUM(MIN(t.held, "
     "  CASE WHEN jobs.quorum > 0 THEN jobs.quorum ELSE jobs.replication END)), 0) "
     "  FROM tasks t WHERE t.job_id = jobs.id);"
     /* (ORs, not IN lists: SQLite builds an ephemeral table for an IN
      * list each time a trigger runs.) A replica becomes held: it counts for the job while its task's
      * held replicas were fewer than the quorum. */
     "CREATE TRIGGER replicas_held_up AFTER UPDATE OF state ON replicas "
     "  WHEN (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "  AND NOT (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "BEGIN "
     "  UPDATE jobs SET payable = payable + 1 WHERE id = NEW.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = NEW.job_id AND idx = NEW.task_idx) "
     "      < CASE WHEN quorum > 0 THEN quorum ELSE replication END;"
     "  UPDATE tasks SET held = held + 1 WHERE job_id = NEW.job_id AND idx = NEW.task_idx;"
     "END;"
     "CREATE TRIGGER replicas_held_down AFTER UPDATE OF state ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "  AND NOT (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx;"
     "  UPDATE jobs SET payable = payable - 1 WHERE id = OLD.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = OLD.job_id AND idx = OLD.task_idx) "
     "      < CASE WHEN quorum > 0 THEN quorum ELSE replication END;"
     "END;"
     /* Replicas are inserted queued and never deleted; should one ever be
      * inserted held, or deleted held, the counts still follow. */
     "CREATE TRIGGER replicas_held_new AFTER INSERT ON replicas "
     "  WHEN (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "BEGIN "
     "  UPDATE jobs SET payable = payable + 1 WHERE id = NEW.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = NEW.job_id AND idx = NEW.task_idx) "
     "      < CASE WHEN quorum > 0 THEN quorum ELSE replication END;"
     "  UPDATE tasks SET held = held + 1 WHERE job_id = NEW.job_id AND idx = NEW.task_idx;"
     "END;"
     "CREATE TRIGGER replicas_held_gone AFTER DELETE ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx;"
     "  UPDATE jobs SET payable = payable - 1 WHERE id = OLD.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = OLD.job_id AND idx = OLD.task_idx) "
     "      < CASE WHEN quorum > 0 THEN quorum ELSE replication END;"
     "END;"},
    /* A job's summary (GET /v1/jobs, polled by `cumulus wait`, the web UI
     * and the benchmarks every few ms) counted its tasks by state and
     * summed its accepted replicas' CU on every read: 21 % of the
     * exchange's time in e2e_trivial at 4,000 tasks, growing with the job.
     * Triggers keep the counts in the same transaction as every state
     * change (a rollback or a crash cannot part them), in a narrow table
     * of their own: a jobs row carries the spec and the signed body, too
     * wide to rewrite on every task's move. */
    {15,
     "CREATE TABLE job_counts ("
     "  job_id TEXT PRIMARY KEY,"
     "  queued INTEGER NOT NULL DEFAULT 0,"     /* tasks per state */
     "  running INTEGER NOT NULL DEFAULT 0,"
     "  done INTEGER NOT NULL DEFAULT 0,"
     "  failed INTEGER NOT NULL DEFAULT 0,"
     "  cancelled INTEGER NOT NULL DEFAULT 0,"
     "  cu_milli INTEGER NOT NULL DEFAULT 0"    /* sum over accepted replicas */
     ") WITHOUT ROWID;"
     "INSERT INTO job_counts (job_id, queued, running, done, failed, cancelled, cu_milli) "
     "  SELECT j.id,"
     "  (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'queued'),"
     "  (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'running'),"
     "  (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'done'),"
     "  (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'failed'),"
     "  (SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.id AND t.state = 'cancelled'),"
     "  (SELECT COALESCE(SUM(r.cu_milli), 0) FROM replicas r "
     "     WHERE r.job_id = j.id AND r.state = 'accepted') "
     "  FROM jobs j;"
     "CREATE TRIGGER jobs_counts_new AFTER INSERT ON jobs "
     "BEGIN INSERT OR IGNORE INTO job_counts (job_id) VALUES (NEW.id); END;"
     "CREATE TRIGGER jobs_counts_gone AFTER DELETE ON jobs "
     "BEGIN DELETE FROM job_counts WHERE job_id = OLD.id; END;"
     /* (A comparison is 0 or 1 in SQLite: one UPDATE moves a task from its
      * old state's count to its new one's.) */
     "CREATE TRIGGER tasks_counts_new AFTER INSERT ON tasks "
     "BEGIN "
     "  UPDATE job_counts SET queued = queued + (NEW.state = 'queued'), "
     "    running = running + (NEW.state = 'running'), done = done + (NEW.state = 'done'), "
     "    failed = failed + (NEW.state = 'failed'), "
     "    cancelled = cancelled + (NEW.state = 'cancelled') "
     "  WHERE job_id = NEW.job_id;"
     "END;"
     "CREATE TRIGGER tasks_counts_move AFTER UPDATE OF state ON tasks "
     "  WHEN NEW.state IS NOT OLD.state "
     "BEGIN "
     "  UPDATE job_counts SET "
     "    queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'), "
     "    running = running + (NEW.state = 'running') - (OLD.state = 'running'), "
     "    done = done + (NEW.state = 'done') - (OLD.state = 'done'), "
     "    failed = failed + (NEW.state = 'failed') - (OLD.state = 'failed'), "
     "    cancelled = cancelled + (NEW.state = 'cancelled') - (OLD.state = 'cancelled') "
     "  WHERE job_id = NEW.job_id;"
     "END;"
     "CREATE TRIGGER tasks_counts_gone AFTER DELETE ON tasks "
     "BEGIN "
     "  UPDATE job_counts SET queued = queued - (OLD.state = 'queued'), "
     "    running = running - (OLD.state = 'running'), done = done - (OLD.state = 'done'), "
     "    failed = failed - (OLD.state = 'failed'), "
     "    cancelled = cancelled - (OLD.state = 'cancelled') "
     "  WHERE job_id = OLD.job_id;"
     "END;"
     /* Settlement rewrites an accepted replica's cu_milli (the lowest
      * agreeing claim is paid): the sum follows that too. */
     "CREATE TRIGGER replicas_cu_move AFTER UPDATE OF state, cu_milli ON replicas "
     "  WHEN (NEW.state = 'accepted' OR OLD.state = 'accepted') "
     "  AND (NEW.state IS NOT OLD.state OR NEW.cu_milli IS NOT OLD.cu_milli) "
     "BEGIN "
     "  UPDATE job_counts SET cu_milli = cu_milli "
     "    + CASE WHEN NEW.state = 'accepted' THEN COALESCE(NEW.cu_milli, 0) ELSE 0 END "
     "    - CASE WHEN OLD.state = 'accepted' THEN COALESCE(OLD.cu_milli, 0) ELSE 0 END "
     "  WHERE job_id = NEW.job_id;"
     "END;"
     "CREATE TRIGGER replicas_cu_new AFTER INSERT ON replicas WHEN NEW.state = 'accepted' "
     "BEGIN "
     "  UPDATE job_counts SET cu_milli = cu_milli + COALESCE(NEW.cu_milli, 0) "
     "  WHERE job_id = NEW.job_id;"
     "END;"
     "CREATE TRIGGER replicas_cu_gone AFTER DELETE ON replicas WHEN OLD.state = 'accepted' "
     "BEGIN "
     "  UPDATE job_counts SET cu_milli = cu_milli - COALESCE(OLD.cu_milli, 0) "
     "  WHERE job_id = OLD.job_id;"
     "END;"},
    /* The score a claim reads is recomputed from up to 1,000 records
     * after every new record: with one record per report, once per claim
     * (10 % of the exchange's time in e2e_trivial). Accepted records now
     * leave it provisional for a while (trust.c, ex_trust_score):
     * score_lag is set when a record other than accepted came since,
     * score_ms is the record time it was computed at. A claim computes it exactly
     * whenever a running job has a reputation floor; the partial index
     * makes asking that a seek. */
    {16,
     "ALTER TABLE providers ADD COLUMN score_lag INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE providers ADD COLUMN score_ms INTEGER;"
     "CREATE INDEX jobs_min_reputation ON jobs(state) WHERE min_reputation > 0;"},
    /* Fewer pages per commit (each dirty page is a WAL frame). The job's
     * payable count (14) lived on the wide jobs row, so every claim and
     * every settled replica rewrote a page of the jobs table: it moves to
     * the narrow job_counts row, which the same commits write anyway (the
     * task counts). A report asked the job's spec JSON whether it ships a
     * validator command: that flag is set once, when the job is created.
     * The values are carried over, not recounted. */
    {17,
     "DROP TRIGGER IF EXISTS replicas_held_up;"
     "DROP TRIGGER IF EXISTS replicas_held_down;"
     "DROP TRIGGER IF EXISTS replicas_held_new;"
     "DROP TRIGGER IF EXISTS replicas_held_gone;"
     "ALTER TABLE job_counts ADD COLUMN payable INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE job_counts ADD COLUMN validator INTEGER NOT NULL DEFAULT 0;"
     "UPDATE job_counts SET "
     "  payable = (SELECT j.payable FROM jobs j WHERE j.id = job_counts.job_id), "
     "  validator = (SELECT json_extract(j.spec_json, '$.validator.command') IS NOT NULL "
     "    FROM jobs j WHERE j.id = job_counts.job_id);"
     "ALTER TABLE jobs DROP COLUMN payable;"
     "DROP TRIGGER jobs_counts_new;"
     "CREATE TRIGGER jobs_counts_new AFTER INSERT ON jobs "
     "BEGIN INSERT OR IGNORE INTO job_counts (job_id, validator) VALUES (NEW.id, "
     "  json_extract(NEW.spec_json, '$.validator.command') IS NOT NULL); END;"
     /* The same rules as 14's triggers: a replica counts for the job while
      * its task's held replicas were fewer than the quorum. */
     "CREATE TRIGGER replicas_held_up AFTER UPDATE OF state ON replicas "
     "  WHEN (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "  AND NOT (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "BEGIN "
     "  UPDATE job_counts SET payable = payable + 1 WHERE job_id = NEW.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = NEW.job_id AND idx = NEW.task_idx) "
     "      < (SELECT CASE WHEN quorum > 0 THEN quorum ELSE replication END "
     "         FROM jobs WHERE id = NEW.job_id);"
     "  UPDATE tasks SET held = held + 1 WHERE job_id = NEW.job_id AND idx = NEW.task_idx;"
     "END;"
     "CREATE TRIGGER replicas_held_down AFTER UPDATE OF state ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "  AND NOT (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx;"
     "  UPDATE job_counts SET payable = payable - 1 WHERE job_id = OLD.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = OLD.job_id AND idx = OLD.task_idx) "
     "      < (SELECT CASE WHEN quorum > 0 THEN quorum ELSE replication END "
     "         FROM jobs WHERE id = OLD.job_id);"
     "END;"
     "CREATE TRIGGER replicas_held_new AFTER INSERT ON replicas "
     "  WHEN (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "BEGIN "
     "  UPDATE job_counts SET payable = payable + 1 WHERE job_id = NEW.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = NEW.job_id AND idx = NEW.task_idx) "
     "      < (SELECT CASE WHEN quorum > 0 THEN quorum ELSE replication END "
     "         FROM jobs WHERE id = NEW.job_id);"
     "  UPDATE tasks SET held = held + 1 WHERE job_id = NEW.job_id AND idx = NEW.task_idx;"
     "END;"
     "CREATE TRIGGER replicas_held_gone AFTER DELETE ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx;"
     "  UPDATE job_counts SET payable = payable - 1 WHERE job_id = OLD.job_id "
     "    AND (SELECT held FROM tasks WHERE job_id = OLD.job_id AND idx = OLD.task_idx) "
     "      < (SELECT CASE WHEN quorum > 0 THEN quorum ELSE replication END "
     "         FROM jobs WHERE id = OLD.job_id);"
     "END;"},
    /* A write's nonce was keyed (key, nonce), random, plus an index by
     * arrival time: every commit touched a random page of one and the end
     * of the other. Nonces are now keyed by the signed timestamp first,
     * so inserts append to one tree. A replay carries the same signed
     * timestamp (the signature covers it), so it is found the same way;
     * one older than EX_NONCE_TTL_MS is refused as stale anyway, so
     * pruning by it forgets nothing still needed. The old table keeps
     * the nonces written before this migration, by arrival time: it is
     * still asked until the reaper has emptied it (state.c). */
    {18,
     "CREATE TABLE nonces_signed ("
     "  ts_ms INTEGER NOT NULL,"   /* the request's signed timestamp */
     "  key TEXT NOT NULL,"
     "  nonce TEXT NOT NULL,"
     "  PRIMARY KEY (ts_ms, key, nonce)"
     ") WITHOUT ROWID;"},
    /* A claim looks for a job's queued replicas; nothing else asks
     * replicas_claim for a state, yet every move of a replica (leased,
     * reported, accepted...) deleted and inserted its entry there. Only
     * queued replicas are in this one: a replica enters it when queued
     * and leaves it once, when leased or cancelled (bench/dispatch,
     * docs/performance.md). Other queries by job go through replicas_task.
     * Likewise no query seeks replicas by (provider, paid): by provider
     * alone, so paying a replica no longer moves its entry. */
    {19,
     "DROP INDEX IF EXISTS replicas_claim;"
     "CREATE INDEX replicas_queued ON replicas(job_id, task_idx) WHERE state = 'queued';"
     "DROP INDEX IF EXISTS replicas_paid;"
     "CREATE INDEX replicas_provider ON replicas(provider);"},
    /* Fewer row writes and index entries per replica (bench/dispatch,
     * docs/performance.md). A lease wrote its task's row and the job's
     * counts twice each: once through 17's trigger (held, payable), once
     * for the task's move to running (attempts, state, task counts). Now
     * a replica's trigger writes only its task's row, and that row's
     * trigger writes the job's counts once, payable included: payable is
     * the sum over the job's tasks of MIN(held, quorum), so a change of
     * held moves it by MIN(new, q) - MIN(old, q), the same steps 17's
     * triggers took (q: the job's quorum, kept on job_counts). The lease's other writes of the task ride on the
     * same UPDATE: a queued task with a held replica is running (the rule
     * of task_refresh, state.c) and a lease granted is an attempt. */
    {20,
     /* The job's quorum (what payable counts per task, never changed
      * after submission) on the row the triggers write anyway: no read
      * of the jobs row per change. */
     "ALTER TABLE job_counts ADD COLUMN quorum INTEGER NOT NULL DEFAULT 1;"
     "UPDATE job_counts SET quorum = COALESCE((SELECT CASE WHEN j.quorum > 0 THEN j.quorum "
     "  ELSE j.replication END FROM jobs j WHERE j.id = job_counts.job_id), 1);"
     "DROP TRIGGER IF EXISTS jobs_counts_new;"
     "CREATE TRIGGER jobs_counts_new AFTER INSERT ON jobs "
     "BEGIN INSERT OR IGNORE INTO job_counts (job_id, validator, quorum) VALUES (NEW.id, "
     "  json_extract(NEW.spec_json, '$.validator.command') IS NOT NULL, "
     "  CASE WHEN NEW.quorum > 0 THEN NEW.quorum ELSE NEW.replication END); END;"
     "DROP TRIGGER IF EXISTS replicas_held_up;"
     "DROP TRIGGER IF EXISTS replicas_held_down;"
     "DROP TRIGGER IF EXISTS replicas_held_new;"
     "DROP TRIGGER IF EXISTS replicas_held_gone;"
     "DROP TRIGGER IF EXISTS tasks_counts_new;"
     "DROP TRIGGER IF EXISTS tasks_counts_move;"
     "DROP TRIGGER IF EXISTS tasks_counts_gone;"
     "CREATE TRIGGER replicas_held_up AFTER UPDATE OF state ON replicas "
     "  WHEN (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "  AND NOT (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held + 1, "
     "    attempts = attempts + (OLD.state = 'queued' AND NEW.state = 'leased'), "
     "    state = CASE WHEN state = 'queued' THEN 'running' ELSE state END "
     "  WHERE job_id = NEW.job_id AND idx = NEW.task_idx;"
     "END;"
     "CREATE TRIGGER replicas_held_down AFTER UPDATE OF state ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "  AND NOT (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx;"
     "END;"
     "CREATE TRIGGER replicas_held_new AFTER INSERT ON replicas "
     "  WHEN (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held + 1, attempts = attempts + (NEW.state = 'leased'), "
     "    state = CASE WHEN state = 'queued' THEN 'running' ELSE state END "
     "  WHERE job_id = NEW.job_id AND idx = NEW.task_idx;"
     "END;"
     "CREATE TRIGGER replicas_held_gone AFTER DELETE ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx;"
     "END;"
     "CREATE TRIGGER tasks_counts_new AFTER INSERT ON tasks "
     "BEGIN "
     "  UPDATE job_counts SET queued = queued + (NEW.state = 'queued'), "
     "    running = running + (NEW.state = 'running'), done = done + (NEW.state = 'done'), "
     "    failed = failed + (NEW.state = 'failed'), "
     "    cancelled = cancelled + (NEW.state = 'cancelled'), "
     "    payable = payable + MIN(NEW.held, quorum) "
     "  WHERE job_id = NEW.job_id;"
     "END;"
     "CREATE TRIGGER tasks_counts_move AFTER UPDATE OF state, held ON tasks "
     "  WHEN NEW.state IS NOT OLD.state OR NEW.held IS NOT OLD.held "
     "BEGIN "
     "  UPDATE job_counts SET "
     "    queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'), "
     "    running = running + (NEW.state = 'running') - (OLD.state = 'running'), "
     "    done = done + (NEW.state = 'done') - (OLD.state = 'done'), "
     "    failed = failed + (NEW.state = 'failed') - (OLD.state = 'failed'), "
     "    cancelled = cancelled + (NEW.state = 'cancelled') - (OLD.state = 'cancelled'), "
     "    payable = payable + MIN(NEW.held, quorum) - MIN(OLD.held, quorum) "
     "  WHERE job_id = NEW.job_id;"
     "END;"
     "CREATE TRIGGER tasks_counts_gone AFTER DELETE ON tasks "
     "BEGIN "
     "  UPDATE job_counts SET queued = queued - (OLD.state = 'queued'), "
     "    running = running - (OLD.state = 'running'), done = done - (OLD.state = 'done'), "
     "    failed = failed - (OLD.state = 'failed'), "
     "    cancelled = cancelled - (OLD.state = 'cancelled'), "
     "    payable = payable - MIN(OLD.held, quorum) "
     "  WHERE job_id = OLD.job_id;"
     "END;"
     /* Nothing hot asks tasks by (job, state) since the job's counts are
      * kept (15): the index only moved twice per task. */
     "DROP INDEX IF EXISTS tasks_state;"
     /* Queued replicas have no provider: they need no entry. */
     "DROP INDEX IF EXISTS replicas_provider;"
     "CREATE INDEX replicas_provider ON replicas(provider) WHERE provider IS NOT NULL;"
     /* The wallet history's table: five trees per transaction (rows, the
      * (height, idx) key, seq, from, to), most entries of from and to
      * NULL (a task record has neither). seq becomes the row id and the
      * two account indexes hold only the accounts named. */
     "CREATE TABLE ledger_txs_20 ("
     "  seq INTEGER PRIMARY KEY,"
     "  txid TEXT NOT NULL,"
     "  height INTEGER NOT NULL REFERENCES ledger_blocks(height),"
     "  idx INTEGER NOT NULL,"             /* index within the block */
     "  type TEXT NOT NULL,"
     "  from_id TEXT,"
     "  to_id TEXT,"
     "  job TEXT,"
     "  amount INTEGER,"
     "  time_ms INTEGER NOT NULL"
     ");"
     "INSERT INTO ledger_txs_20 (seq, txid, height, idx, type, from_id, to_id, job, amount, "
     "  time_ms) SELECT seq, txid, height, idx, type, from_id, to_id, job, amount, time_ms "
     "  FROM ledger_txs;"
     "DROP TABLE ledger_txs;"
     "ALTER TABLE ledger_txs_20 RENAME TO ledger_txs;"
     "CREATE INDEX ledger_txs_from ON ledger_txs(from_id) WHERE from_id IS NOT NULL;"
     "CREATE INDEX ledger_txs_to ON ledger_txs(to_id) WHERE to_id IS NOT NULL;"},
    /* GET /v1/market's recent trades (explain.c): the newest paid
     * replicas. Without an index the query scanned every replica under
     * the state mutex: ~130 ms at 1,000,000 replicas, while every claim
     * and report waited. Only paid replicas are in it, entered once, at
     * the payment, near its right edge (reported_ms grows). */
    {21, "CREATE INDEX replicas_trades ON replicas(reported_ms, id) WHERE paid IS NOT NULL;"},
    /* A wallet's history through a chain per account instead of an index
     * of ledger_txs by each side (src/exchange/ledger.c, "the accounts'
     * chains"): the two indexes were most of a block's writes at
     * 1,000,000 transactions (bench/ledger, docs/performance.md). The
     * links of the transactions already there come from the order of
     * each account's own (LAG over its seqs; an account on both sides
     * of one transaction counts it once). */
    {22,
     "CREATE TABLE ledger_accounts ("
     "  id TEXT PRIMARY KEY,"
     "  last_seq INTEGER NOT NULL,"          /* its newest transaction */
     "  earned INTEGER NOT NULL DEFAULT 0"   /* what escrow releases paid it */
     ") WITHOUT ROWID;"
     "ALTER TABLE ledger_txs ADD COLUMN from_prev INTEGER;" /* from_id's previous seq */
     "ALTER TABLE ledger_txs ADD COLUMN to_prev INTEGER;"   /* to_id's previous seq */
     "CREATE TEMP TABLE ledger_chain AS SELECT acct, seq, "
     "  LAG(seq) OVER (PARTITION BY acct ORDER BY seq) AS prev FROM ("
     "  SELECT from_id AS acct, seq FROM ledger_txs WHERE from_id IS NOT NULL UNION "
     "  SELECT to_id AS acct, seq FROM ledger_txs WHERE to_id IS NOT NULL);"
     "CREATE INDEX temp.ledger_chain_key ON ledger_chain(acct, seq);"
     "UPDATE ledger_txs SET from_prev = c.prev FROM ledger_chain c "
     "  WHERE c.acct = ledger_txs.from_id AND c.seq = ledger_txs.seq;"
     "UPDATE ledger_txs SET to_prev = c.prev FROM ledger_chain c "
     "  WHERE c.acct = ledger_txs.to_id AND c.seq = ledger_txs.seq;"
     "INSERT INTO ledger_accounts (id, last_seq) SELECT acct, MAX(seq) FROM ledger_chain "
     "  GROUP BY acct;"
     "UPDATE ledger_accounts SET earned = (SELECT COALESCE(SUM(amount), 0) FROM ledger_txs "
     "  WHERE to_id = ledger_accounts.id AND type = 'escrow_release');"
     "DROP TABLE ledger_chain;"
     "DROP INDEX ledger_txs_from;"
     "DROP INDEX ledger_txs_to;"},
    /* A claim walks the running jobs oldest first, ties by id: with id in
     * the index the walk is the order, where SQLite sorted the ties in a
     * temporary b-tree on every claim. */
    {23, "DROP INDEX jobs_state;"
     "CREATE INDEX jobs_state ON jobs(state, created_ms, id);"},
    /* Only ex_holds_lease asks replicas by provider, and only for held
     * ones: an index of every replica ever leased took an insert per
     * lease into a tree as large as the history (two pages of every
     * claim's and report's commit); this one holds the few replicas out
     * now, and a report takes its entry out again. */
    {24, "DROP INDEX replicas_provider;"
     "CREATE INDEX replicas_held_by ON replicas(provider) WHERE state IN ('leased','running');"},
    /* A finished task (done, failed, cancelled) holds nothing that may
     * still be paid, so its held count is 0: the statement that finishes
     * it sets that (state.c), and a replica leaving its held states
     * afterwards writes nothing. Before, each accepted replica wrote its
     * finished task's row once more (held - 1), and through it the job's
     * counts (payable), ~40 k instructions of the ~820 k a dispatch
     * replica cost under the state mutex. The WHERE keeps the seek and
     * drops the write. A lease never comes to a finished task (its queued
     * replicas are cancelled with it), so the triggers that count up stay
     * as they are. Finished tasks that still count held replicas drop
     * them now; the job's payable follows through tasks_counts_move. */
    {25,
     "DROP TRIGGER IF EXISTS replicas_held_down;"
     "DROP TRIGGER IF EXISTS replicas_held_gone;"
     "CREATE TRIGGER replicas_held_down AFTER UPDATE OF state ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "  AND NOT (NEW.state = 'leased' OR NEW.state = 'running' OR NEW.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx "
     "    AND (state = 'queued' OR state = 'running');"
     "END;"
     "CREATE TRIGGER replicas_held_gone AFTER DELETE ON replicas "
     "  WHEN (OLD.state = 'leased' OR OLD.state = 'running' OR OLD.state = 'reported') "
     "BEGIN "
     "  UPDATE tasks SET held = held - 1 WHERE job_id = OLD.job_id AND idx = OLD.task_idx "
     "    AND (state = 'queued' OR state = 'running');"
     "END;"
     "UPDATE tasks SET held = 0 WHERE held != 0 AND state != 'queued' AND state != 'running';"},
};
/* clang-format on */

const struct cu_migration *ex_schema(size_t *n)
{
    *n = sizeof migrations / sizeof migrations[0];
    return migrations;
}
