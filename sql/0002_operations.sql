-- docko: no-transaction
-- Operating jobs and queues: cancel requests, each job's error history, paused queues, and an
-- index for listing and counting failed and cancelled jobs.
--
-- Safe on a live table of millions of rows. The new columns are nullable and have no default,
-- which PostgreSQL records in its catalog alone: no row is rewritten. Their ALTER TABLE holds
-- the table's exclusive lock for milliseconds, but a request for it queues every later statement
-- on the table behind any long transaction already using it: lock_timeout bounds that wait, and
-- the migration runner tries the step again a few times. The index is built CONCURRENTLY (without
-- a lock that blocks writes), which is why this file runs outside a transaction, step by step.

SET LOCAL lock_timeout = '2s';
ALTER TABLE docko_jobs
    ADD COLUMN IF NOT EXISTS cancel_requested_at timestamptz,
    ADD COLUMN IF NOT EXISTS cancel_reason       text,
    -- Each failed attempt's {"attempt", "at", "error"}, oldest first, the last 20 kept. Written
    -- only where an attempt fails (retry, fail, lease expiry): a completion costs nothing more.
    ADD COLUMN IF NOT EXISTS errors              jsonb;

-- docko: step
-- A queue's row exists once it was paused or resumed, or served by a daemon.
CREATE TABLE IF NOT EXISTS docko_queues (
    name       text        PRIMARY KEY CHECK (name <> ''),
    paused     boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- docko: step
-- Roles already granted docko_jobs need docko_queues too: a daemon's claim reads the paused flag,
-- so without this an upgrade would stop every daemon running as a role of its own. A role that
-- may read docko_jobs may read docko_queues; one that may update jobs (daemons, operators) may
-- pause and resume queues and record the queues it serves.
DO $$
DECLARE
    granted record;
BEGIN
    FOR granted IN
        SELECT CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END
                   AS role_name,
               bool_or(acl.privilege_type = 'UPDATE') AS updates
        FROM pg_class AS class, aclexplode(class.relacl) AS acl
        WHERE class.oid = 'docko_jobs'::regclass AND acl.grantee <> class.relowner
        GROUP BY acl.grantee
    LOOP
        EXECUTE format('GRANT SELECT%s ON docko_queues TO %s',
                       CASE WHEN granted.updates THEN ', INSERT, UPDATE' ELSE '' END,
                       granted.role_name);
    END LOOP;
END
$$;

-- docko: step
-- A build interrupted half-way leaves an INVALID index that IF NOT EXISTS would keep: drop it
-- first. Nothing depends on the index before this migration is recorded.
DROP INDEX CONCURRENTLY IF EXISTS docko_jobs_stopped_idx;

-- docko: step
-- Failed and cancelled rows only, newest first: lists of them and their counts per queue, with no
-- cost to the jobs that succeed (their writes never touch it).
CREATE INDEX CONCURRENTLY IF NOT EXISTS docko_jobs_stopped_idx
    ON docko_jobs (state, id) INCLUDE (queue_name)
    WHERE state IN ('failed', 'cancelled');
