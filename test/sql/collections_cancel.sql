-- Collections' calls that wait (docs/invoices.md with docs/operations.md's "a failed call
-- fails like any SQL statement"): a void or a credit note waits for a
-- close_period that holds billing.invoices, and mark_overdue for an account
-- row; cancelled by lock_timeout or statement_timeout, each leaves nothing
-- and the session goes on. Timers: not run under libfaketime.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT billing.create_account('cc-ann', 'postpaid') AS ann \gset
SELECT billing.set_credit_limit(:ann, 100000000, 'test');
SELECT regress.usage_at(:ann, 'setup-img', 2000000, '2025-06-10 00:00+00', true) > 0 AS used;
SELECT billing.close_period('2025-06-01') >= 1 AS issued;
SELECT invoice_id AS inv FROM billing.invoices WHERE account_id = :ann AND period_start = '2025-06-01' \gset
SELECT billing.set_overdue_policy(:ann, 0);
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('holder', :'conninfo');
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s entries, %s notes, %s events, %s', (SELECT count(*) FROM billing.ledger),
                  (SELECT count(*) FROM billing.credit_notes), (SELECT count(*) FROM billing.events),
                  (SELECT string_agg(i.status, ',' ORDER BY i.invoice_id) FROM billing.invoices i)) $$;
SELECT pg_temp.state() AS before \gset
-- the holder: billing.invoices as close_period locks it, and the account row
SELECT dblink_exec('holder', 'BEGIN');
SELECT dblink_exec('holder', 'LOCK TABLE billing.invoices IN SHARE ROW EXCLUSIVE MODE');
SELECT * FROM dblink('holder', format('SELECT count(*) FROM (SELECT FROM billing.accounts WHERE account_id = %s FOR UPDATE) s', :ann)) AS t(n bigint);
SET lock_timeout = '200ms';
SELECT regress.try(format($$SELECT billing.void_invoice(%s, 'x')$$, :inv)) AS void,
       regress.try(format($$SELECT billing.issue_credit_note(%s, 10000, 'x')$$, :inv)) AS note,
       regress.try('SELECT billing.mark_overdue()') AS mark;
RESET lock_timeout;
-- (a cancel is no error that PL/pgSQL's WHEN OTHERS catches: one call a statement)
SET statement_timeout = '200ms';
\set VERBOSITY terse
SELECT billing.void_invoice(:inv, 'x');
SELECT billing.issue_credit_note(:inv, 10000, 'x');
SELECT billing.mark_overdue();
\set VERBOSITY default
RESET statement_timeout;
SELECT 1 AS goes_on;
SELECT dblink_exec('holder', 'ROLLBACK');
SELECT pg_temp.state() = :'before' AS nothing_moved;
-- and the calls go through once the holder is gone
SELECT billing.issue_credit_note(:inv, 10000, 'x') ->> 'amount_due_micros' AS due;
SELECT billing.void_invoice(:inv, 'x') ->> 'status' AS status;
SELECT dblink_disconnect('holder');
SELECT * FROM billing.verify(:ann);
