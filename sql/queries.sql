-- Every statement docko-worker runs, by name. Loaded by docko_worker/statements.py.
-- A "-- fragment:" block is text that "{{name}}" pastes into later statements.
-- Payloads travel as JSON text both ways ($n::text::json in, payload::text out), so the
-- statements behave the same on a caller's connection whatever JSON codec it has set.

-- fragment: job_columns
-- Timestamps travel as float8 seconds since the Unix epoch. asyncpg builds each timestamptz
-- through timedelta arithmetic, the larger part of decoding a claimed row; from floats the
-- decoder builds each distinct value once per batch, and a batch's rows mostly share their
-- values (one claim's now(), one enqueue's now()). See Job.from_records for the precision.
id, queue_name, job_type, payload::text AS payload, state::text AS state, attempt, max_attempts,
priority, date_part('epoch', run_at) AS run_at, date_part('epoch', created_at) AS created_at,
date_part('epoch', updated_at) AS updated_at, last_error, dedupe_key, worker_id,
date_part('epoch', lease_expires_at) AS lease_expires_at,
date_part('epoch', finished_at) AS finished_at, headers::text AS headers

-- fragment: still_running
-- The guard of every write to a running job, found by id. Compared as text on purpose: the
-- planner cannot then serve it from docko_jobs_lease_idx, which it would otherwise pick (and
-- join every running row against the id array) whenever statistics show few running jobs, as
-- they do on a table holding a long history. The primary key lookup stays the only plan.
jobs.state::text = 'running'

-- name: migration_lock
-- Serializes migrations across replicas that start together; released at commit.
SELECT pg_advisory_xact_lock(hashtext('docko_worker:migrate'))

-- name: migration_table_exists
-- Read-only, so a daemon without CREATE rights can see that the schema is current.
SELECT to_regclass('docko_schema_migrations') IS NOT NULL

-- name: create_migration_table
CREATE TABLE IF NOT EXISTS docko_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_migrations
SELECT version, name, applied_at FROM docko_schema_migrations ORDER BY version

-- name: record_migration
INSERT INTO docko_schema_migrations (version, name) VALUES ($1, $2)

-- name: enqueue_job
-- One job; with a dedupe key matching an unfinished job nothing is inserted and no row returns.
-- NOTIFY is delivered when the surrounding transaction commits, never on rollback. $10: the
-- headers as JSON text, or NULL.
WITH inserted AS (
    INSERT INTO docko_jobs (id, queue_name, job_type, payload, priority, max_attempts, run_at, dedupe_key,
                            headers)
    VALUES (gen_random_uuid(), $1, $2, $3::text::json, $4, $5,
            COALESCE($6::timestamptz, now()) + make_interval(secs => $7::float8), $8, $10::text::json)
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND state IN ('available', 'running')
    DO NOTHING
    RETURNING *
), notified AS (
    SELECT count(pg_notify($9, inserted.queue_name)) AS notifications FROM inserted
)
SELECT {{job_columns}} FROM inserted, notified

-- name: enqueue_jobs
-- Many jobs in one statement (parallel arrays; a NULL run_at means now), each due $8 seconds
-- after its run_at, all with the headers $9 (JSON text, or NULL). One NOTIFY per queue, not per job.
WITH inserted AS (
    INSERT INTO docko_jobs (id, queue_name, job_type, payload, priority, max_attempts, run_at, headers)
    SELECT gen_random_uuid(), item.queue_name, item.job_type, item.payload::json, item.priority,
           item.max_attempts, COALESCE(item.run_at, now()) + make_interval(secs => $8::float8),
           $9::text::json
    FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::integer[], $6::timestamptz[])
         WITH ORDINALITY AS item(queue_name, job_type, payload, priority, max_attempts, run_at, position)
    ORDER BY item.position
    RETURNING id, queue_name
), notified AS (
    SELECT count(pg_notify($7, queues.queue_name)) AS notifications
    FROM (SELECT DISTINCT queue_name FROM inserted) AS queues
)
SELECT inserted.id FROM inserted, notified

-- name: notify_queue
-- Wakes idle workers of queue $2 once the surrounding transaction commits (after a COPY).
SELECT pg_notify($1, $2)

-- name: find_unfinished_by_dedupe_key
SELECT {{job_columns}} FROM docko_jobs
WHERE dedupe_key = $1 AND state IN ('available', 'running')

-- name: get_job
SELECT {{job_columns}} FROM docko_jobs WHERE id = $1

-- name: claim_jobs
-- Due jobs of the given queues and job types, best priority (lowest number) first, then oldest
-- run_at. The MATERIALIZED CTE is a fence: the planner cannot lock or update more than $3 rows.
-- The update finds the rows it locked by their ctid (a TID scan): the physical address of a row
-- version cannot change while this transaction holds its lock. Joined by id instead, the generic
-- plan hashes a sequential scan of the whole table whenever statistics show it small, tens of
-- thousands of rows, which cost more than the claim itself. A row whose lock landed on a version
-- newer than the statement's snapshot is not updated: it stays available for the next claim.
WITH candidates AS MATERIALIZED (
    SELECT picked.ctid AS claim_ctid
    FROM unnest($1::text[]) AS served(queue_name)
    CROSS JOIN LATERAL (
        SELECT jobs.ctid, jobs.priority, jobs.run_at, jobs.id
        FROM docko_jobs AS jobs
        WHERE jobs.state = 'available'
          AND jobs.queue_name = served.queue_name
          AND jobs.job_type = ANY($2::text[])
          AND jobs.run_at <= now()
        ORDER BY jobs.priority, jobs.run_at, jobs.id
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    ) AS picked
    ORDER BY picked.priority, picked.run_at, picked.id
    LIMIT $3
), claimed AS (
    UPDATE docko_jobs
    SET state = 'running',
        attempt = attempt + 1,
        worker_id = $4,
        lease_expires_at = now() + make_interval(secs => $5::float8),
        updated_at = now()
    WHERE docko_jobs.ctid = ANY(ARRAY(SELECT claim_ctid FROM candidates))
    RETURNING docko_jobs.*
)
SELECT {{job_columns}} FROM claimed ORDER BY claimed.priority, claimed.run_at, claimed.id

-- name: complete_jobs
-- Guarded by the attempt each job was claimed with; returns the ids actually completed.
UPDATE docko_jobs AS jobs
SET state = 'completed', finished_at = now(), updated_at = now(), lease_expires_at = NULL
FROM unnest($1::uuid[], $2::integer[]) AS done(job_id, attempt)
WHERE jobs.id = done.job_id AND jobs.attempt = done.attempt AND {{still_running}}
RETURNING jobs.id

-- name: delete_completed_jobs
-- The completion for completed_retention = 0: the row goes at once.
DELETE FROM docko_jobs AS jobs
USING unnest($1::uuid[], $2::integer[]) AS done(job_id, attempt)
WHERE jobs.id = done.job_id AND jobs.attempt = done.attempt AND {{still_running}}
RETURNING jobs.id

-- name: retry_jobs
-- Back to available after a failed attempt, due after the given delay in seconds.
UPDATE docko_jobs AS jobs
SET state = 'available', run_at = now() + make_interval(secs => retry.delay), last_error = retry.error,
    lease_expires_at = NULL, worker_id = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::integer[], $3::float8[], $4::text[]) AS retry(job_id, attempt, delay, error)
WHERE jobs.id = retry.job_id AND jobs.attempt = retry.attempt AND {{still_running}}
RETURNING jobs.id

-- name: fail_jobs
UPDATE docko_jobs AS jobs
SET state = 'failed', last_error = failure.error, finished_at = now(), lease_expires_at = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::integer[], $3::text[]) AS failure(job_id, attempt, error)
WHERE jobs.id = failure.job_id AND jobs.attempt = failure.attempt AND {{still_running}}
RETURNING jobs.id

-- name: release_jobs
-- Hands jobs back at shutdown without spending the attempt they were claimed with.
UPDATE docko_jobs AS jobs
SET state = 'available', attempt = jobs.attempt - 1, lease_expires_at = NULL, worker_id = NULL,
    updated_at = now()
FROM unnest($1::uuid[], $2::integer[]) AS released(job_id, attempt)
WHERE jobs.id = released.job_id AND jobs.attempt = released.attempt AND {{still_running}}
RETURNING jobs.id

-- name: extend_leases
-- The heartbeat: pushes the lease of jobs this worker still holds; returns the ids it held.
UPDATE docko_jobs AS jobs
SET lease_expires_at = now() + make_interval(secs => $4::float8)
FROM unnest($1::uuid[], $2::integer[]) AS held(job_id, attempt)
WHERE jobs.id = held.job_id AND jobs.attempt = held.attempt AND {{still_running}}
  AND jobs.worker_id = $3
RETURNING jobs.id

-- name: rescue_expired_jobs
-- Running jobs whose lease expired (their worker died): claimable again, or failed when that was
-- their last attempt. Found again by ctid, as in claim_jobs.
WITH expired AS MATERIALIZED (
    SELECT ctid AS expired_ctid FROM docko_jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE docko_jobs AS jobs
SET state = CASE WHEN jobs.attempt >= jobs.max_attempts
                 THEN 'failed'::docko_job_state ELSE 'available'::docko_job_state END,
    finished_at = CASE WHEN jobs.attempt >= jobs.max_attempts THEN now() END,
    last_error = 'LeaseExpired: the lease of worker ' || COALESCE(jobs.worker_id, 'unknown')
                 || ' expired during attempt ' || jobs.attempt,
    run_at = now(), lease_expires_at = NULL, worker_id = NULL, updated_at = now()
WHERE jobs.ctid = ANY(ARRAY(SELECT expired_ctid FROM expired))
RETURNING jobs.id, jobs.queue_name, jobs.job_type, jobs.attempt, jobs.state::text AS state

-- name: prune_finished_jobs
-- Deletes up to $3 jobs in state $1 finished more than $2 seconds ago; found again by ctid, as in
-- claim_jobs.
WITH doomed AS MATERIALIZED (
    SELECT ctid AS doomed_ctid FROM docko_jobs
    WHERE state = $1::text::docko_job_state AND finished_at IS NOT NULL
      AND finished_at < now() - make_interval(secs => $2::float8)
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
DELETE FROM docko_jobs AS jobs WHERE jobs.ctid = ANY(ARRAY(SELECT doomed_ctid FROM doomed))

-- name: job_counts
SELECT queue_name, job_type, state::text AS state, count(*) AS jobs
FROM docko_jobs
GROUP BY queue_name, job_type, state
ORDER BY queue_name, job_type, state

-- name: ping
-- Liveness check for idle connections (the LISTEN connection, health checks).
SELECT 1

-- name: use_generic_plans
-- Run once on each of the daemon's pooled connections. PostgreSQL would plan the claim afresh on
-- every execution (its generic plan is estimated dearer, as it cannot see the array and LIMIT
-- arguments), which costs more than executing it on a small table, and it would give the first
-- five outcome writes of each connection custom plans that scan a never-analyzed table whole.
-- Every statement the daemon runs is checked under generic plans on a million-row table
-- (tests/integration/test_query_plans.py).
SELECT set_config('plan_cache_mode', 'force_generic_plan', false)

-- name: drop_demo_database
-- `docko-worker demo` starts each run from a fresh database of this fixed name (an identifier
-- cannot be a parameter). Runs outside a transaction block; fails while another session is
-- connected to it (another demo still running), which the demo reports.
DROP DATABASE IF EXISTS docko_demo

-- name: create_demo_database
CREATE DATABASE docko_demo

-- name: waiting_unknown_types
-- Due jobs of the served queues $1 whose type is none of $2 and which have waited at least $3
-- seconds, counted by queue and type, among the first $4 due jobs of each queue in claim order:
-- jobs no handler here takes gather at the head of that order, and the look stays a bounded
-- walk of the claim index however long the backlog of other types.
SELECT head.queue_name, head.job_type, count(*) AS waiting,
       date_part('epoch', now() - min(head.run_at)) AS oldest_wait
FROM unnest($1::text[]) AS served(queue_name)
CROSS JOIN LATERAL (
    SELECT jobs.queue_name, jobs.job_type, jobs.run_at
    FROM docko_jobs AS jobs
    WHERE jobs.state = 'available'
      AND jobs.queue_name = served.queue_name
      AND jobs.run_at <= now()
    ORDER BY jobs.priority, jobs.run_at, jobs.id
    LIMIT $4
) AS head
WHERE head.job_type <> ALL($2::text[])
  AND head.run_at <= now() - make_interval(secs => $3::float8)
GROUP BY head.queue_name, head.job_type
ORDER BY head.queue_name, head.job_type

-- name: sample_queues
-- The HTTP endpoint's look at the jobs table, every DOCKO_METRICS_SAMPLE_INTERVAL seconds, for
-- each served queue $1: its available and running jobs, each counted up to $2 (a bounded walk
-- of the claim index, and of the running rows' index, however long the backlog or the history);
-- the age of its oldest due job, found by a loose scan of the claim index that visits one entry
-- per distinct priority (up to $3 of them), so it costs a few index probes on any table; and the
-- schema version, for readiness.
SELECT served.queue_name,
       (SELECT count(*) FROM (
            SELECT 1 FROM docko_jobs AS jobs
            WHERE jobs.state = 'available' AND jobs.queue_name = served.queue_name
            ORDER BY jobs.priority, jobs.run_at, jobs.id
            LIMIT $2) AS capped) AS available,
       (SELECT count(*) FROM (
            SELECT 1 FROM docko_jobs AS jobs
            WHERE jobs.state = 'running' AND jobs.queue_name = served.queue_name
            ORDER BY jobs.lease_expires_at
            LIMIT $2) AS capped) AS running,
       (WITH RECURSIVE heads AS (
            (SELECT jobs.priority, jobs.run_at, 1 AS depth FROM docko_jobs AS jobs
             WHERE jobs.state = 'available' AND jobs.queue_name = served.queue_name
             ORDER BY jobs.priority, jobs.run_at
             LIMIT 1)
            UNION ALL
            SELECT next.priority, next.run_at, heads.depth + 1
            FROM heads CROSS JOIN LATERAL (
                SELECT jobs.priority, jobs.run_at FROM docko_jobs AS jobs
                WHERE jobs.state = 'available' AND jobs.queue_name = served.queue_name
                  AND jobs.priority > heads.priority
                ORDER BY jobs.priority, jobs.run_at
                LIMIT 1) AS next
            WHERE heads.depth < $3)
        SELECT date_part('epoch', now() - min(heads.run_at)) FROM heads
        WHERE heads.run_at <= now()) AS oldest_due_age,
       (SELECT max(version) FROM docko_schema_migrations) AS schema_version
FROM unnest($1::text[]) AS served(queue_name)
ORDER BY served.queue_name
