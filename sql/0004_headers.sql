-- Job headers: string metadata stored with a job (a trace context, a request id), a JSON object.
-- Nullable and without a default, so adding it changes only the catalog: no table rewrite, and
-- the brief lock it takes does not wait on the table's size. Rows written before it read NULL
-- (no headers); so do jobs enqueued without headers.
ALTER TABLE docko_jobs ADD COLUMN IF NOT EXISTS headers json;
