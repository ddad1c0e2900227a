-- test/pgtap/common/preamble.sql
--
-- What every pgTAP file begins with (\ir common/preamble.sql): the two
-- extensions, warnings only, and run_counts(run_id), one run's status and
-- counts in one line, the form the files compare runs in ('idle' for a run
-- that found nothing new, which is counted, not recorded). Each file runs in
-- a fresh database of its own (test/pgtap/run.sh).
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS pg_pipeline;
SET client_min_messages = warning;

CREATE FUNCTION run_counts(bigint) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce(
    (SELECT format('%s read=%s ins=%s upd=%s del=%s unch=%s rej=%s',
                   status, rows_read, rows_inserted, rows_updated, rows_deleted,
                   rows_unchanged, rows_rejected)
       FROM pipeline.runs WHERE run_id = $1),
    -- a run that found nothing new: not recorded, its pipeline's latest idle run
    (SELECT 'idle' FROM pipeline.status
      WHERE last_run_id = $1 AND last_idle_at = last_run_finished_at)) $$;
