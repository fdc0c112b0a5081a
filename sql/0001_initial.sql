-- The jobs table and the indexes the claim, rescue, prune and dedupe statements rely on.

CREATE TYPE docko_job_state AS ENUM ('available', 'running', 'completed', 'failed', 'cancelled');

CREATE TABLE docko_jobs (
    id               uuid            PRIMARY KEY,
    created_at       timestamptz     NOT NULL DEFAULT now(),
    updated_at       timestamptz     NOT NULL DEFAULT now(),
    run_at           timestamptz     NOT NULL DEFAULT now(),
    lease_expires_at timestamptz,
    finished_at      timestamptz,
    state            docko_job_state NOT NULL DEFAULT 'available',
    attempt          integer         NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer         NOT NULL CHECK (max_attempts >= 1),
    priority         integer         NOT NULL DEFAULT 0,
    queue_name       text            NOT NULL CHECK (queue_name <> ''),
    job_type         text            NOT NULL CHECK (job_type <> ''),
    worker_id        text,
    dedupe_key       text,
    last_error       text,
    -- json, not jsonb: the payload comes back exactly as it was written (jsonb would turn 1e16
    -- into an integer and cannot hold a NUL character), and json is cheaper to write and read.
    payload          json            NOT NULL
);

-- Claimable rows only: finished history and running jobs never slow a claim.
CREATE INDEX docko_jobs_claim_idx
    ON docko_jobs (queue_name, priority, run_at, id)
    WHERE state = 'available';

-- Running rows only, for the sweep that reclaims expired leases.
CREATE INDEX docko_jobs_lease_idx
    ON docko_jobs (lease_expires_at)
    WHERE state = 'running';

-- Finished rows only, for pruning past retention.
CREATE INDEX docko_jobs_finished_idx
    ON docko_jobs (state, finished_at)
    WHERE finished_at IS NOT NULL;

-- One unfinished job per dedupe key.
CREATE UNIQUE INDEX docko_jobs_dedupe_idx
    ON docko_jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('available', 'running');
