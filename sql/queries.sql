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
date_part('epoch', finished_at) AS finished_at,
date_part('epoch', cancel_requested_at) AS cancel_requested_at, cancel_reason, errors::text AS errors,
headers::text AS headers

-- fragment: still_running
-- The guard of every write to a running job, found by id. Compared as text on purpose: the
-- planner cannot then serve it from docko_jobs_lease_idx, which it would otherwise pick (and
-- join every running row against the id array) whenever statistics show few running jobs, as
-- they do on a table holding a long history. The primary key lookup stays the only plan.
jobs.state::text = 'running'

-- fragment: cancelled_error
-- The last_error of a job ended by a cancel request: 'Cancelled', or 'Cancelled: <reason>'.
'Cancelled' || COALESCE(': ' || jobs.cancel_reason, '')

-- fragment: error_at
-- When an attempt failed, as ISO 8601 text in UTC, for the errors history.
to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')

-- fragment: kept_errors
-- The jsonpath keeping the last 20 entries of the errors history (lax: a shorter one whole).
'lax $[last-19 to last]'

-- fragment: append_error
-- The errors history with outcome.error appended as this attempt's entry (none when NULL). Each
-- entry keeps the first 4,000 characters of its error; last_error keeps the whole latest one.
CASE WHEN outcome.error IS NULL THEN jobs.errors
     ELSE jsonb_path_query_array(
         COALESCE(jobs.errors, '[]'::jsonb)
         || jsonb_build_object('attempt', jobs.attempt, 'at', {{error_at}},
                               'error', left(outcome.error, 4000)),
         {{kept_errors}})
END

-- fragment: lease_expired_error
'LeaseExpired: the lease of worker ' || COALESCE(jobs.worker_id, 'unknown')
|| ' expired during attempt ' || jobs.attempt

-- fragment: new_job_id
-- A time-ordered UUID (version 7, RFC 9562): the server clock's milliseconds over the first 48
-- bits of a random UUID, whose version bits become 7. Ids ascend with time like those a bulk
-- enqueue makes in the client (job.py), so newest first is descending id order.
encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
    placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
    FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid

-- name: migration_try_lock
-- Serializes migrations across replicas that start together (and with earlier versions, which
-- take this key as a transaction lock). Session-level, as a migration may run outside a
-- transaction; false when another session holds it.
SELECT pg_try_advisory_lock(hashtext('docko_worker:migrate'))

-- name: migration_unlock
SELECT pg_advisory_unlock(hashtext('docko_worker:migrate'))

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

-- fragment: wake_payload
-- The notification of queue `queue_name` whose earliest new job is due at `due`, with `job_types`
-- (text[]) the types of its new jobs and `best_priority` the best (lowest) of their priorities:
-- {"queue": ..., "run_at": epoch seconds, "due_now": bool, "priority": n, "job_types": [...]}.
-- The due time and priority tell a daemon whether new jobs sit before where its claims start
-- (docko_worker/lanes.py). An idle daemon that handles none of the types is not woken by it (jobs of
-- a type it cannot run would only cost it an empty claim); one that does claims at once, or sets
-- an alarm for the due time instead of waiting for its next poll. The types are left out (null:
-- every daemon of the queue wakes) past 4,000 bytes, well inside NOTIFY's payload limit. Daemons
-- of an earlier version read the queue and run_at, and wake at the due time.
jsonb_build_object(
    'queue', queue_name, 'run_at', date_part('epoch', due), 'due_now', due <= now(),
    'priority', best_priority,
    'job_types', CASE WHEN octet_length(array_to_json(job_types)::text) <= 4000
                      THEN array_to_json(job_types) END)::text

-- name: enqueue_job
-- One job; with a dedupe key matching an unfinished job nothing is inserted and no row returns.
-- NOTIFY is delivered when the surrounding transaction commits, never on rollback. $10: the
-- headers as JSON text, or NULL.
WITH inserted AS (
    INSERT INTO docko_jobs (id, queue_name, job_type, payload, priority, max_attempts, run_at, dedupe_key,
                            headers)
    VALUES ({{new_job_id}}, $1, $2, $3::text::json, $4, $5,
            COALESCE($6::timestamptz, now()) + make_interval(secs => $7::float8), $8, $10::text::json)
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND state IN ('available', 'running')
    DO NOTHING
    RETURNING *
), notified AS (
    SELECT count(pg_notify($9, {{wake_payload}})) AS notifications
    FROM (SELECT queue_name, run_at AS due, ARRAY[job_type] AS job_types, priority AS best_priority
          FROM inserted) AS job
)
SELECT {{job_columns}} FROM inserted, notified

-- name: enqueue_jobs
-- Many jobs in one statement (parallel arrays; a NULL run_at means now), each due $8 seconds
-- after its run_at, all with the headers $9 (JSON text, or NULL). One NOTIFY per queue, not per
-- job, naming the earliest due time and the job types.
WITH inserted AS (
    INSERT INTO docko_jobs (id, queue_name, job_type, payload, priority, max_attempts, run_at, headers)
    SELECT {{new_job_id}}, item.queue_name, item.job_type, item.payload::json, item.priority,
           item.max_attempts, COALESCE(item.run_at, now()) + make_interval(secs => $8::float8),
           $9::text::json
    FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::integer[], $6::timestamptz[])
         WITH ORDINALITY AS item(queue_name, job_type, payload, priority, max_attempts, run_at, position)
    ORDER BY item.position
    RETURNING id, queue_name, job_type, run_at, priority
), notified AS (
    SELECT count(pg_notify($7, {{wake_payload}})) AS notifications
    FROM (SELECT queue_name, min(run_at) AS due, array_agg(DISTINCT job_type) AS job_types,
                 min(priority) AS best_priority
          FROM inserted GROUP BY queue_name) AS queues
)
SELECT inserted.id FROM inserted, notified

-- name: copy_jobs
-- The bulk enqueue's binary COPY on a psycopg connection (asyncpg builds the same from its
-- arguments); the columns are copy_format.COPY_COLUMNS, in order.
COPY docko_jobs (id, queue_name, job_type, payload, priority, max_attempts, headers) FROM STDIN (FORMAT binary)

-- name: notify_queue
-- Wakes idle workers of queue $2 that handle job type $3 once the surrounding transaction
-- commits (after a COPY, whose jobs are due now, at priority $4).
SELECT pg_notify($1, {{wake_payload}})
FROM (SELECT $2::text AS queue_name, now() AS due, ARRAY[$3::text] AS job_types,
             $4::integer AS best_priority) AS copied

-- name: find_unfinished_by_dedupe_key
SELECT {{job_columns}} FROM docko_jobs
WHERE dedupe_key = $1 AND state IN ('available', 'running')

-- name: get_job
SELECT {{job_columns}} FROM docko_jobs WHERE id = $1

-- fragment: claim_lanes
-- The lanes a claim reads, as parallel arrays: queue $1, job type $2, and where the lane's
-- claimable jobs begin as far as the daemon knows, priority $6 and due time $7 (epoch seconds;
-- the lowest integer and -Infinity: from the lane's start; see docko_worker/lanes.py). A lane of
-- a paused queue is left out: one look-up in docko_queues per lane, none per job, made before
-- any job row is locked. docko_jobs_lane_idx orders each lane's jobs as the claim takes them.
lanes AS MATERIALIZED (
    SELECT lane.queue_name, lane.job_type, lane.after_priority,
           to_timestamp(lane.after_run_at) AS after_run_at
    FROM unnest($1::text[], $2::text[], $6::integer[], $7::float8[])
         AS lane(queue_name, job_type, after_priority, after_run_at)
    WHERE NOT EXISTS (
        SELECT 1 FROM docko_queues AS queues WHERE queues.name = lane.queue_name AND queues.paused
    )
)

-- fragment: lane_head
-- The first due jobs of one lane from where it begins, in claim order: best priority (lowest
-- number), then oldest run_at, then id. The bound starts the index scan there, past the entries
-- of jobs claimed before, which a transaction holding an old snapshot keeps vacuum (and the
-- index's own clean-up) from removing.
SELECT jobs.ctid, jobs.priority, jobs.run_at, jobs.id
FROM docko_jobs AS jobs
WHERE jobs.state = 'available'
  AND jobs.queue_name = lanes.queue_name
  AND jobs.job_type = lanes.job_type
  AND (jobs.priority, jobs.run_at) >= (lanes.after_priority, lanes.after_run_at)
  AND jobs.run_at <= now()
ORDER BY jobs.priority, jobs.run_at, jobs.id
LIMIT $3

-- fragment: claim_update
-- Takes the locked rows (claim_ctid of candidates) by their ctid (a TID scan): the physical
-- address of a row version cannot change while this transaction holds its lock. Joined by id
-- instead, the generic plan hashes a sequential scan of the whole table whenever statistics show
-- it small, tens of thousands of rows, which cost more than the claim itself. A row whose lock
-- landed on a version newer than the statement's snapshot is not updated: it stays available for
-- the next claim.
claimed AS (
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

-- name: claim_jobs
-- Up to $3 due jobs of the lanes (see claim_lanes), best priority first, then oldest run_at,
-- for a daemon reading a few lanes (JobStore.claim_jobs picks this or
-- claim_jobs_merged). Each lane's head is locked as it is read (FOR UPDATE SKIP LOCKED: another
-- daemon's claim in flight is stepped over), up to $3 rows per lane; the best $3 of them are
-- claimed and the other locks end with the statement. The MATERIALIZED CTE is a fence: the
-- planner cannot lock or update more than that.
WITH {{claim_lanes}}, candidates AS MATERIALIZED (
    SELECT picked.ctid AS claim_ctid
    FROM lanes
    CROSS JOIN LATERAL ({{lane_head}} FOR UPDATE SKIP LOCKED) AS picked
    ORDER BY picked.priority, picked.run_at, picked.id
    LIMIT $3
), {{claim_update}}

-- name: claim_jobs_merged
-- claim_jobs for a daemon reading many lanes (many queues, or many job types), where locking the
-- head of every lane would lock many times the rows claimed, each lock a write. The heads are
-- read without locks and merged; the best 2 x $3 rows of the merge are locked in claim order,
-- stepping over those another daemon's claim holds (SKIP LOCKED), until $3 are locked. The
-- surplus lets two daemons claiming at once each fill their batch. A row claimed and committed
-- by another daemon since this statement's snapshot fails the lock's re-check (its ctid and
-- state changed) and is skipped.
WITH {{claim_lanes}}, heads AS MATERIALIZED (
    SELECT picked.ctid AS head_ctid
    FROM lanes
    CROSS JOIN LATERAL ({{lane_head}}) AS picked
    ORDER BY picked.priority, picked.run_at, picked.id
    LIMIT $3 * 2
), candidates AS MATERIALIZED (
    SELECT jobs.ctid AS claim_ctid
    FROM docko_jobs AS jobs
    WHERE jobs.ctid = ANY(ARRAY(SELECT head_ctid FROM heads))
      AND jobs.state = 'available' AND jobs.run_at <= now()
    ORDER BY jobs.priority, jobs.run_at, jobs.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), {{claim_update}}

-- name: complete_jobs
-- Guarded by the attempt each job was claimed with; returns the ids actually completed. A cancel
-- requested meanwhile changes nothing: the handler finished first, and its outcome stands.
UPDATE docko_jobs AS jobs
SET state = 'completed', finished_at = now(), updated_at = now(), lease_expires_at = NULL
FROM unnest($1::uuid[], $2::integer[]) AS done(job_id, attempt)
WHERE jobs.id = done.job_id AND jobs.attempt = done.attempt AND {{still_running}}
RETURNING jobs.id

-- name: complete_job
-- Transactional completion, on the caller's connection inside the caller's transaction: only
-- while the attempt that ran the handler, on the daemon that claimed it, still holds the job.
-- No row returned means the lease was lost (or the job already finished).
UPDATE docko_jobs AS jobs
SET state = 'completed', finished_at = now(), updated_at = now(), lease_expires_at = NULL
WHERE jobs.id = $1 AND jobs.attempt = $2 AND jobs.worker_id = $3 AND {{still_running}}
RETURNING jobs.id

-- name: delete_completed_jobs
-- The completion for completed_retention = 0: the row goes at once.
DELETE FROM docko_jobs AS jobs
USING unnest($1::uuid[], $2::integer[]) AS done(job_id, attempt)
WHERE jobs.id = done.job_id AND jobs.attempt = done.attempt AND {{still_running}}
RETURNING jobs.id

-- name: retry_jobs
-- Back to available after a failed attempt, due after the given delay in seconds; the error joins
-- the job's history. A job asked to stop meanwhile ends cancelled instead, not retried.
UPDATE docko_jobs AS jobs
SET state = (CASE WHEN jobs.cancel_requested_at IS NULL THEN 'available' ELSE 'cancelled' END)::docko_job_state,
    run_at = CASE WHEN jobs.cancel_requested_at IS NULL
                  THEN now() + make_interval(secs => outcome.delay) ELSE jobs.run_at END,
    finished_at = CASE WHEN jobs.cancel_requested_at IS NOT NULL THEN now() END,
    last_error = CASE WHEN jobs.cancel_requested_at IS NULL THEN outcome.error ELSE {{cancelled_error}} END,
    errors = {{append_error}},
    worker_id = CASE WHEN jobs.cancel_requested_at IS NOT NULL THEN jobs.worker_id END,
    lease_expires_at = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::integer[], $3::float8[], $4::text[]) AS outcome(job_id, attempt, delay, error)
WHERE jobs.id = outcome.job_id AND jobs.attempt = outcome.attempt AND {{still_running}}
RETURNING jobs.id

-- name: fail_jobs
-- The error joins the job's history. A job asked to stop meanwhile ends cancelled instead.
UPDATE docko_jobs AS jobs
SET state = (CASE WHEN jobs.cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END)::docko_job_state,
    last_error = CASE WHEN jobs.cancel_requested_at IS NULL THEN outcome.error ELSE {{cancelled_error}} END,
    errors = {{append_error}},
    finished_at = now(), lease_expires_at = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::integer[], $3::text[]) AS outcome(job_id, attempt, error)
WHERE jobs.id = outcome.job_id AND jobs.attempt = outcome.attempt AND {{still_running}}
RETURNING jobs.id

-- name: cancel_running_jobs
-- Jobs whose handler the daemon cancelled on request: cancelled, not retried, the attempt spent.
-- A given error (how the attempt ended) joins the history; NULL adds nothing.
UPDATE docko_jobs AS jobs
SET state = 'cancelled', last_error = {{cancelled_error}}, errors = {{append_error}},
    finished_at = now(), lease_expires_at = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::integer[], $3::text[]) AS outcome(job_id, attempt, error)
WHERE jobs.id = outcome.job_id AND jobs.attempt = outcome.attempt AND {{still_running}}
RETURNING jobs.id

-- fragment: announce_available
-- The jobs of `changed` that a statement made available again, announced on the channel of
-- `announce_to` as an enqueue announces new ones (one NOTIFY per queue; see wake_payload): idle
-- daemons claim them at once instead of at their next poll, and a daemon whose lane cursor is
-- past them (jobs handed back keep their due time; rescued ones may be of a better priority)
-- reads that lane from its start.
notified AS (
    SELECT count(pg_notify((SELECT announce_to.channel FROM announce_to), {{wake_payload}}))
           AS notifications
    FROM (SELECT changed.queue_name, min(changed.run_at) AS due,
                 array_agg(DISTINCT changed.job_type) AS job_types,
                 min(changed.priority) AS best_priority
          FROM changed WHERE changed.state = 'available'
          GROUP BY changed.queue_name) AS queues
)

-- name: release_jobs
-- Hands jobs back at shutdown without spending the attempt they were claimed with, announced on
-- channel $3 (announce_available). A job asked to stop meanwhile ends cancelled instead, its
-- attempt spent.
WITH announce_to AS (SELECT $3::text AS channel), changed AS (
UPDATE docko_jobs AS jobs
SET state = (CASE WHEN jobs.cancel_requested_at IS NULL THEN 'available' ELSE 'cancelled' END)::docko_job_state,
    attempt = CASE WHEN jobs.cancel_requested_at IS NULL THEN jobs.attempt - 1 ELSE jobs.attempt END,
    finished_at = CASE WHEN jobs.cancel_requested_at IS NOT NULL THEN now() END,
    last_error = CASE WHEN jobs.cancel_requested_at IS NULL THEN jobs.last_error ELSE {{cancelled_error}} END,
    worker_id = CASE WHEN jobs.cancel_requested_at IS NOT NULL THEN jobs.worker_id END,
    lease_expires_at = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::integer[]) AS released(job_id, attempt)
WHERE jobs.id = released.job_id AND jobs.attempt = released.attempt AND {{still_running}}
RETURNING jobs.id, jobs.queue_name, jobs.job_type, jobs.run_at, jobs.priority, jobs.state
), {{announce_available}}
SELECT changed.id FROM changed, notified

-- name: extend_leases
-- The heartbeat: pushes the lease of jobs this worker still holds; returns the ids it held, each
-- with whether it was asked to stop (the fallback for a missed control notification).
UPDATE docko_jobs AS jobs
SET lease_expires_at = now() + make_interval(secs => $4::float8)
FROM unnest($1::uuid[], $2::integer[]) AS held(job_id, attempt)
WHERE jobs.id = held.job_id AND jobs.attempt = held.attempt AND {{still_running}}
  AND jobs.worker_id = $3
RETURNING jobs.id, jobs.cancel_requested_at IS NOT NULL AS cancel_requested

-- name: rescue_expired_jobs
-- Running jobs whose lease expired (their worker died): claimable again, or failed when that was
-- their last attempt, or cancelled when asked to stop; the expiry joins each one's errors history.
-- Those claimable again are announced on channel $2 (announce_available). Found again by ctid,
-- as in claim_jobs.
WITH announce_to AS (SELECT $2::text AS channel), expired AS MATERIALIZED (
    SELECT ctid AS expired_ctid FROM docko_jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), changed AS (
UPDATE docko_jobs AS jobs
SET state = CASE WHEN jobs.cancel_requested_at IS NOT NULL THEN 'cancelled'::docko_job_state
                 WHEN jobs.attempt >= jobs.max_attempts THEN 'failed'::docko_job_state
                 ELSE 'available'::docko_job_state END,
    finished_at = CASE WHEN jobs.cancel_requested_at IS NOT NULL
                         OR jobs.attempt >= jobs.max_attempts THEN now() END,
    last_error = CASE WHEN jobs.cancel_requested_at IS NOT NULL THEN {{cancelled_error}}
                      ELSE {{lease_expired_error}} END,
    errors = jsonb_path_query_array(
        COALESCE(jobs.errors, '[]'::jsonb)
        || jsonb_build_object('attempt', jobs.attempt, 'at', {{error_at}}, 'error', {{lease_expired_error}}),
        {{kept_errors}}),
    run_at = now(), lease_expires_at = NULL, worker_id = NULL, updated_at = now()
WHERE jobs.ctid = ANY(ARRAY(SELECT expired_ctid FROM expired))
RETURNING jobs.id, jobs.queue_name, jobs.job_type, jobs.attempt, jobs.state, jobs.run_at,
          jobs.priority
), {{announce_available}}
SELECT changed.id, changed.queue_name, changed.job_type, changed.attempt,
       changed.state::text AS state
FROM changed, notified

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

-- name: cancel_jobs
-- An operator's cancel of jobs by id ($2: the reason, or NULL). An available job ends cancelled
-- at once; a running one is marked as asked to stop, and the daemon holding it is told on the
-- control channel $3 (delivered at commit); the outcome writes and the lease sweep end it. Jobs in
-- other states are left alone. Returns the jobs changed. State compared as text, as in
-- still_running, so the primary key stays the only plan.
WITH changed AS (
    UPDATE docko_jobs AS jobs
    SET state = (CASE WHEN jobs.state::text = 'available' THEN 'cancelled' ELSE jobs.state::text END)::docko_job_state,
        finished_at = CASE WHEN jobs.state::text = 'available' THEN now() ELSE jobs.finished_at END,
        last_error = CASE WHEN jobs.state::text = 'available' THEN 'Cancelled' || COALESCE(': ' || $2, '')
                          ELSE jobs.last_error END,
        cancel_requested_at = COALESCE(jobs.cancel_requested_at, now()),
        cancel_reason = CASE WHEN jobs.cancel_requested_at IS NULL THEN $2 ELSE jobs.cancel_reason END,
        updated_at = now()
    FROM unnest($1::uuid[]) AS target(job_id)
    WHERE jobs.id = target.job_id AND jobs.state::text IN ('available', 'running')
    RETURNING jobs.*
), notified AS (
    SELECT count(pg_notify($3, jsonb_build_object('cancel', changed.id, 'worker_id', changed.worker_id)::text))
           AS notifications
    FROM changed WHERE changed.state = 'running'
)
SELECT {{job_columns}} FROM changed, notified

-- name: requeue_jobs
-- An operator's retry of failed or cancelled jobs by id: available and due now, with one more
-- attempt when theirs are spent, cancel request cleared; one NOTIFY per queue on channel $2. A job
-- whose dedupe key an unfinished job holds is left alone (a race with an enqueue of that key, or
-- two given jobs sharing a key, ends in a unique violation instead). Returns the jobs changed.
WITH changed AS (
    UPDATE docko_jobs AS jobs
    SET state = 'available', run_at = now(), finished_at = NULL,
        max_attempts = GREATEST(jobs.max_attempts, jobs.attempt + 1),
        cancel_requested_at = NULL, cancel_reason = NULL, lease_expires_at = NULL, worker_id = NULL,
        updated_at = now()
    FROM unnest($1::uuid[]) AS target(job_id)
    WHERE jobs.id = target.job_id AND jobs.state::text IN ('failed', 'cancelled')
      AND (jobs.dedupe_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM docko_jobs AS holder
          WHERE holder.dedupe_key = jobs.dedupe_key AND holder.state IN ('available', 'running')))
    RETURNING jobs.*
), notified AS (
    SELECT count(pg_notify($2, queues.queue_name)) AS notifications
    FROM (SELECT DISTINCT changed.queue_name FROM changed) AS queues
)
SELECT {{job_columns}} FROM changed, notified

-- fragment: job_filter
-- The filters of list_jobs and list_job_ids, each NULL when not given: $1 queue, $2 job type,
-- $3 state; $4 the last id of the previous page (NULL: the first page). Run with custom plans
-- (use_custom_plans), so the planner sees which filters are given and their values: a state
-- selects its partial index, and every finished row has a finished_at, which lets
-- docko_jobs_finished_idx serve a finished state too. Through the primary key newest first, the
-- page's start is a bound of the index scan, so a page costs the same however deep it is.
($1::text IS NULL OR jobs.queue_name = $1)
AND ($2::text IS NULL OR jobs.job_type = $2)
AND ($3::docko_job_state IS NULL OR jobs.state = $3::docko_job_state)
AND ($3::docko_job_state IS NULL OR $3::docko_job_state NOT IN ('completed', 'failed', 'cancelled')
     OR jobs.finished_at IS NOT NULL)
AND jobs.id < COALESCE($4::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)

-- name: list_jobs
-- Newest first (ids are time-ordered), $5 at most; see job_filter.
SELECT {{job_columns}} FROM docko_jobs AS jobs
WHERE {{job_filter}}
ORDER BY jobs.id DESC
LIMIT $5

-- name: list_job_ids
-- The ids list_jobs would return, for the bulk cancel and retry.
SELECT jobs.id FROM docko_jobs AS jobs
WHERE {{job_filter}}
ORDER BY jobs.id DESC
LIMIT $5

-- name: count_jobs
-- How many jobs list_jobs would page through (no page bound: $4 is NULL), for the dashboard's
-- confirmation of a bulk cancel or retry. Reads the index list_jobs would: a state's partial
-- index when a state is given, so its cost follows that state's jobs, not the history.
SELECT count(*) FROM docko_jobs AS jobs
WHERE {{job_filter}}

-- name: use_custom_plans
-- For the rest of the transaction, plan each statement for its arguments (list_jobs).
SELECT set_config('plan_cache_mode', 'force_custom_plan', true)

-- name: queue_overview
-- Per queue: paused, counts of available, running, failed and cancelled jobs, and the age in
-- seconds of the oldest due available job (NULL when none is due). Every count reads a partial
-- index alone (available: docko_jobs_lane_idx, running: docko_jobs_lease_idx, failed and
-- cancelled: docko_jobs_stopped_idx), so the completed history, however long, is never read: it
-- is not counted (job_counts counts everything, at the cost of reading it all). A queue is listed
-- once it has a row in docko_queues or an unfinished, failed or cancelled job.
WITH available AS (
    SELECT jobs.queue_name, count(*) AS jobs,
           min(jobs.run_at) FILTER (WHERE jobs.run_at <= now()) AS oldest_due
    FROM docko_jobs AS jobs WHERE jobs.state = 'available'
    GROUP BY jobs.queue_name
), running AS (
    SELECT jobs.queue_name, count(*) AS jobs
    FROM docko_jobs AS jobs WHERE jobs.state = 'running'
    GROUP BY jobs.queue_name
), stopped AS (
    SELECT jobs.queue_name,
           count(*) FILTER (WHERE jobs.state = 'failed') AS failed,
           count(*) FILTER (WHERE jobs.state = 'cancelled') AS cancelled
    FROM docko_jobs AS jobs WHERE jobs.state IN ('failed', 'cancelled')
    GROUP BY jobs.queue_name
), names AS (
    SELECT queue_name FROM available
    UNION SELECT queue_name FROM running
    UNION SELECT queue_name FROM stopped
    UNION SELECT name FROM docko_queues
)
SELECT names.queue_name AS name, COALESCE(queues.paused, false) AS paused,
       COALESCE(available.jobs, 0) AS available, COALESCE(running.jobs, 0) AS running,
       COALESCE(stopped.failed, 0) AS failed, COALESCE(stopped.cancelled, 0) AS cancelled,
       date_part('epoch', now() - available.oldest_due) AS oldest_available_age
FROM names
LEFT JOIN docko_queues AS queues ON queues.name = names.queue_name
LEFT JOIN available ON available.queue_name = names.queue_name
LEFT JOIN running ON running.queue_name = names.queue_name
LEFT JOIN stopped ON stopped.queue_name = names.queue_name
ORDER BY names.queue_name

-- name: pause_queue
-- No daemon claims from queue $1 from the next claim on (the claim reads the flag); running jobs
-- finish. The daemons are told on the control channel $2 at commit.
WITH paused AS (
    INSERT INTO docko_queues AS queues (name, paused) VALUES ($1, true)
    ON CONFLICT (name) DO UPDATE SET paused = true, updated_at = now()
    RETURNING queues.name
)
SELECT pg_notify($2, jsonb_build_object('pause', paused.name)::text) FROM paused

-- name: resume_queue
-- Claims from queue $1 again; a queue never paused has no row to change, and stays without one.
WITH resumed AS (
    UPDATE docko_queues AS queues SET paused = false, updated_at = now()
    WHERE queues.name = $1
    RETURNING queues.name
)
SELECT pg_notify($2, jsonb_build_object('resume', $1::text)::text)

-- name: register_queues
-- The queues a daemon serves, recorded when it starts, so that queue_overview lists a queue even
-- once all its jobs have completed.
INSERT INTO docko_queues (name)
SELECT DISTINCT served.name FROM unnest($1::text[]) AS served(name)
ORDER BY served.name  -- the same order in every daemon: racing inserts cannot deadlock
ON CONFLICT (name) DO NOTHING

-- name: ping
-- Liveness check for idle connections (the LISTEN connection, health checks).
SELECT 1

-- name: use_generic_plans
-- Run once on each of the daemon's pooled connections. PostgreSQL would plan the claim afresh on
-- every execution (its generic plan is estimated dearer, as it cannot see the array and LIMIT
-- arguments), which costs more than executing it on a small table, and it would give the first
-- five outcome writes of each connection custom plans that scan a never-analyzed table whole.
-- Every statement the daemon runs is checked under generic plans on a million-row table
-- (tests/integration/test_query_plans.py). JIT compilation is off: a generic plan cannot see its
-- arguments, so its estimates on a large table (a long backlog, say) exceed jit_above_cost, and
-- compiling then took 20 ms of a claim that runs in a fraction of one. Sequential scans are off:
-- every statement here finds its rows through an index, and a plan made while the table is
-- nearly empty (a daemon started on a new table) would otherwise scan it whole, and go on
-- scanning it as it grows until an ANALYZE makes PostgreSQL plan again.
SELECT set_config('plan_cache_mode', 'force_generic_plan', false), set_config('jit', 'off', false),
       set_config('enable_seqscan', 'off', false)

-- name: drop_demo_database
-- `docko-worker demo` starts each run from a fresh database of this fixed name (an identifier
-- cannot be a parameter). Runs outside a transaction block; fails while another session is
-- connected to it (another demo still running), which the demo reports.
DROP DATABASE IF EXISTS docko_demo

-- name: create_demo_database
CREATE DATABASE docko_demo

-- name: waiting_unknown_types
-- Due jobs of the served queues $1 whose type is none of $2 and which have waited at least $3
-- seconds, counted by queue and type among the first $4 due jobs of each such lane in claim
-- order, with the oldest wait among those: a loose scan for the queued types, then a bounded walk
-- of each unknown type's lane, however long the backlog of any type.
-- queued_types: the job types with available jobs in each served queue $1, found by a loose
-- scan of docko_jobs_lane_idx (one probe per type, however many jobs each has).
WITH RECURSIVE queued_types AS (
    SELECT served.queue_name, first.job_type
    FROM unnest($1::text[]) AS served(queue_name)
    CROSS JOIN LATERAL (
        SELECT jobs.job_type FROM docko_jobs AS jobs
        WHERE jobs.state = 'available' AND jobs.queue_name = served.queue_name
        ORDER BY jobs.job_type
        LIMIT 1
    ) AS first
    UNION ALL
    SELECT queued_types.queue_name, next.job_type
    FROM queued_types
    CROSS JOIN LATERAL (
        SELECT jobs.job_type FROM docko_jobs AS jobs
        WHERE jobs.state = 'available' AND jobs.queue_name = queued_types.queue_name
          AND jobs.job_type > queued_types.job_type
        ORDER BY jobs.job_type
        LIMIT 1
    ) AS next
)
SELECT queued_types.queue_name, queued_types.job_type, head.waiting,
       date_part('epoch', now() - head.oldest) AS oldest_wait
FROM queued_types
CROSS JOIN LATERAL (
    SELECT count(*) AS waiting, min(lane.run_at) AS oldest
    FROM (
        SELECT jobs.run_at FROM docko_jobs AS jobs
        WHERE jobs.state = 'available'
          AND jobs.queue_name = queued_types.queue_name
          AND jobs.job_type = queued_types.job_type
          AND jobs.run_at <= now()
        ORDER BY jobs.priority, jobs.run_at, jobs.id
        LIMIT $4
    ) AS lane
    WHERE lane.run_at <= now() - make_interval(secs => $3::float8)
) AS head
WHERE queued_types.job_type <> ALL($2::text[]) AND head.waiting > 0
ORDER BY queued_types.queue_name, queued_types.job_type

-- name: next_due_in
-- Seconds until the earliest job not yet due in the served queues $1, of the job types $2, falls
-- due, by the database's clock (NULL when there is none). Run when a daemon starts, when its LISTEN
-- connection (re)connects (announcements may have been missed) and when an alarm found nothing
-- due (the daemon's clock ran ahead of the database's): it reads every waiting job of those
-- queues, so never per claim.
SELECT date_part('epoch', min(jobs.run_at) - now())
FROM docko_jobs AS jobs
WHERE jobs.state = 'available'
  AND jobs.queue_name = ANY($1::text[])
  AND jobs.job_type = ANY($2::text[])
  AND jobs.run_at > now()

-- Periodic jobs (docko_worker/periodic.py, scheduler.py; table docko_periodic, sql/0003).

-- name: database_now
-- The database's clock: every daemon computes its periodic slots from it, not from its host's.
SELECT now()

-- name: register_periodic
-- Declares the schedules a daemon runs (parallel arrays: name, schedule, time zone, and the
-- latest slot at or before now). A new schedule starts from that slot, so it first fires at the
-- next one; so does a changed expression or time zone (it takes effect at its next slot). An
-- unchanged schedule keeps its decided slot: a fleet that was down enqueues the latest missed slot
-- once. Returns every declared row.
INSERT INTO docko_periodic AS periodic (name, schedule, timezone, decided_slot)
SELECT declared.name, declared.schedule, declared.timezone, declared.latest_slot
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
     AS declared(name, schedule, timezone, latest_slot)
ON CONFLICT (name) DO UPDATE
SET decided_slot = CASE
        WHEN (periodic.schedule, periodic.timezone)
             IS DISTINCT FROM (excluded.schedule, excluded.timezone)
        THEN GREATEST(periodic.decided_slot, excluded.decided_slot)
        ELSE periodic.decided_slot END,
    schedule = excluded.schedule,
    timezone = excluded.timezone,
    updated_at = now(),
    seen_at = now()
RETURNING periodic.name, periodic.schedule, periodic.timezone, periodic.decided_slot,
          periodic.last_slot, periodic.last_job_id, periodic.seen_at

-- name: enqueue_periodic_slot
-- Slot $2 of schedule $1, in one statement: whichever daemon's UPDATE takes the row first moves
-- decided_slot to $2 and inserts the job ($5, due at the slot); the others wait for its row lock,
-- find decided_slot < $2 false, and change nothing. The slot must be due by the database's clock,
-- and the row must hold the schedule this daemon runs ($3, $4): after a change, daemons still on
-- the old expression enqueue nothing. With $11 (skip_if_running), a slot whose previous job is
-- still available or running is decided without a job. Returns one row (enqueued: whether a job
-- went in) when this call decided the slot, none otherwise.
WITH previous AS (
    SELECT periodic.name,
           $11::boolean AND EXISTS (
               SELECT 1 FROM docko_jobs AS jobs
               WHERE jobs.id = periodic.last_job_id AND jobs.state IN ('available', 'running')
           ) AS busy
    FROM docko_periodic AS periodic
    WHERE periodic.name = $1
), decided AS (
    UPDATE docko_periodic AS periodic
    SET decided_slot = $2,
        last_slot = CASE WHEN previous.busy THEN periodic.last_slot ELSE $2 END,
        last_job_id = CASE WHEN previous.busy THEN periodic.last_job_id ELSE $5 END,
        updated_at = now(),
        seen_at = now()
    FROM previous
    WHERE periodic.name = previous.name
      AND periodic.decided_slot < $2::timestamptz
      AND $2::timestamptz <= now()
      AND periodic.schedule = $3 AND periodic.timezone = $4
    RETURNING NOT previous.busy AS enqueued
), inserted AS (
    INSERT INTO docko_jobs (id, queue_name, job_type, payload, priority, max_attempts, run_at)
    SELECT $5, $6, $7, $8::text::json, $9, $10, $2 FROM decided WHERE decided.enqueued
    RETURNING queue_name
), notified AS (
    SELECT count(pg_notify($12, inserted.queue_name)) AS notifications FROM inserted
)
SELECT decided.enqueued FROM decided, notified

-- name: get_periodic
SELECT name, schedule, timezone, decided_slot, last_slot, last_job_id, seen_at
FROM docko_periodic WHERE name = $1

-- name: list_periodic
SELECT name, schedule, timezone, decided_slot, last_slot, last_job_id, seen_at
FROM docko_periodic ORDER BY name

-- name: touch_periodic
-- A running daemon still has these schedules (shown by `docko-worker periodic`).
UPDATE docko_periodic SET seen_at = now() WHERE name = ANY($1::text[])

-- name: sample_queues
-- The HTTP endpoint's look at the jobs table, every DOCKO_METRICS_SAMPLE_INTERVAL seconds, for
-- each served queue $1: its available and running jobs, each counted up to $2 (a bounded walk
-- of the lanes' index, and of the running rows' index, however long the backlog or the history);
-- the age of its oldest due job, found by a loose scan of docko_jobs_lane_idx that visits one
-- entry per distinct job type and priority (up to $3 of them), so it costs a few index probes on
-- any table; the schema version, for readiness; and whether the queue is paused (one primary-key
-- probe).
SELECT served.queue_name,
       (SELECT count(*) FROM (
            SELECT 1 FROM docko_jobs AS jobs
            WHERE jobs.state = 'available' AND jobs.queue_name = served.queue_name
            ORDER BY jobs.job_type, jobs.priority, jobs.run_at, jobs.id
            LIMIT $2) AS capped) AS available,
       (SELECT count(*) FROM (
            SELECT 1 FROM docko_jobs AS jobs
            WHERE jobs.state = 'running' AND jobs.queue_name = served.queue_name
            ORDER BY jobs.lease_expires_at
            LIMIT $2) AS capped) AS running,
       (WITH RECURSIVE heads AS (
            (SELECT jobs.job_type, jobs.priority, jobs.run_at, 1 AS depth FROM docko_jobs AS jobs
             WHERE jobs.state = 'available' AND jobs.queue_name = served.queue_name
             ORDER BY jobs.job_type, jobs.priority, jobs.run_at
             LIMIT 1)
            UNION ALL
            SELECT next.job_type, next.priority, next.run_at, heads.depth + 1
            FROM heads CROSS JOIN LATERAL (
                SELECT jobs.job_type, jobs.priority, jobs.run_at FROM docko_jobs AS jobs
                WHERE jobs.state = 'available' AND jobs.queue_name = served.queue_name
                  AND (jobs.job_type, jobs.priority) > (heads.job_type, heads.priority)
                ORDER BY jobs.job_type, jobs.priority, jobs.run_at
                LIMIT 1) AS next
            WHERE heads.depth < $3)
        SELECT date_part('epoch', now() - min(heads.run_at)) FROM heads
        WHERE heads.run_at <= now()) AS oldest_due_age,
       (SELECT max(version) FROM docko_schema_migrations) AS schema_version,
       COALESCE((SELECT queues.paused FROM docko_queues AS queues
                 WHERE queues.name = served.queue_name), false) AS paused
FROM unnest($1::text[]) AS served(queue_name)
ORDER BY served.queue_name

-- fragment: recently_finished
-- The newest $1 jobs of each outcome (completed, failed) that finished in the last $2 seconds:
-- docko_jobs_finished_idx read backwards from now, one bounded range per outcome, so however
-- long the kept history and however busy the hour, at most 2 x $1 rows are read.
(SELECT jobs.queue_name, jobs.worker_id, jobs.state, jobs.finished_at FROM docko_jobs AS jobs
 WHERE jobs.state = 'completed' AND jobs.finished_at IS NOT NULL
   AND jobs.finished_at > now() - make_interval(secs => $2::float8)
 ORDER BY jobs.finished_at DESC LIMIT $1)
UNION ALL
(SELECT jobs.queue_name, jobs.worker_id, jobs.state, jobs.finished_at FROM docko_jobs AS jobs
 WHERE jobs.state = 'failed' AND jobs.finished_at IS NOT NULL
   AND jobs.finished_at > now() - make_interval(secs => $2::float8)
 ORDER BY jobs.finished_at DESC LIMIT $1)

-- name: recent_finishes
-- The dashboard's throughput: per queue and minute ago (0: the last 60 seconds), the jobs
-- completed and failed among recently_finished.
WITH recent AS ({{recently_finished}})
SELECT recent.queue_name,
       floor(date_part('epoch', now() - recent.finished_at) / 60)::int AS minute,
       count(*) FILTER (WHERE recent.state = 'completed') AS completed,
       count(*) FILTER (WHERE recent.state = 'failed') AS failed
FROM recent
GROUP BY 1, 2
ORDER BY 1, 2

-- name: recent_workers
-- The daemons seen lately, by worker id: those holding a running job now (running rows only,
-- through docko_jobs_lease_idx) and those that finished one of recently_finished. A daemon that
-- ran nothing in that time leaves no trace in the jobs table, and is not listed.
WITH seen AS (
    SELECT jobs.worker_id, jobs.queue_name, now() AS seen_at, 1 AS running
    FROM docko_jobs AS jobs WHERE jobs.state = 'running'
    UNION ALL
    SELECT recent.worker_id, recent.queue_name, recent.finished_at, 0
    FROM ({{recently_finished}}) AS recent
)
SELECT seen.worker_id, max(seen.seen_at) AS seen_at, sum(seen.running)::int AS running,
       array_agg(DISTINCT seen.queue_name ORDER BY seen.queue_name) AS queues
FROM seen
WHERE seen.worker_id IS NOT NULL
GROUP BY seen.worker_id
ORDER BY seen.worker_id
