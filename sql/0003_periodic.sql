-- Periodic jobs: one row per schedule name, the guard that makes each slot enqueue exactly once.
-- A new table only: safe to apply while daemons of the previous version run.
--
-- decided_slot: the latest slot some daemon has decided (enqueued, or skipped because its previous
-- job still ran), or, for a schedule first seen or just changed, its latest slot at that moment.
-- A daemon enqueues slot S only through an UPDATE guarded by decided_slot < S, in the statement
-- that inserts the job; concurrent daemons wait on the row lock and find the guard false.

CREATE TABLE docko_periodic (
    name          text        PRIMARY KEY CHECK (name <> ''),
    -- The cron expression, or '@every <n>us' for an interval, as the daemon that last started
    -- with this schedule declared it; with timezone, what decides its slots.
    schedule      text        NOT NULL,
    timezone      text        NOT NULL,
    decided_slot  timestamptz NOT NULL,
    last_slot     timestamptz,
    last_job_id   uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- When a running daemon last had this schedule (touched about once a minute).
    seen_at       timestamptz NOT NULL DEFAULT now()
);
