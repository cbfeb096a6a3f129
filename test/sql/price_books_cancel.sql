-- Contract prices' writers cancelled while they wait (docs/operations.md, "A
-- failed call fails like any SQL statement"): set_discount and end_discount
-- wait for their book's row, assign_price_book for its account's, set_price
-- of a book for the book's; ended by lock_timeout, statement_timeout or
-- pg_cancel_backend(), each leaves nothing and its session goes on.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT regress.image_model('pbc-img', 1000);
SELECT billing.create_price_book('pbc-book');
SELECT billing.set_discount('pbc-book', 900000, 'pbc-img', NULL, now() - interval '1 day') AS discount_id \gset
SELECT billing.create_account('pbc-a') AS a \gset
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT dblink_connect('pbc_victim', :'conninfo'), dblink_connect('pbc_holder', :'conninfo');
SELECT pid AS victim_pid FROM dblink('pbc_victim', 'SELECT pg_backend_pid()') AS t(pid integer) \gset
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s discounts %s, %s assignments, %s prices',
                  (SELECT count(*) FROM billing.discounts),
                  (SELECT string_agg(COALESCE(effective_until::text, 'open'), ',') FROM billing.discounts),
                  (SELECT count(*) FROM billing.price_book_assignments),
                  (SELECT count(*) FROM billing.prices)) $$;
SELECT pg_temp.state() AS before \gset

-- The victim's call, ended by how while the holder holds the book's and the
-- account's rows; its SQLSTATE, then whether its next statement ran.
CREATE FUNCTION pg_temp.cancelled(how text, call text, pid integer, acct bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    PERFORM dblink_exec('pbc_holder', 'BEGIN');
    PERFORM * FROM dblink('pbc_holder', format(
        'SELECT 1 FROM billing.price_books WHERE price_book = ''pbc-book'' FOR UPDATE;'
        ' SELECT 1 FROM billing.accounts WHERE account_id = %s FOR UPDATE', acct)) AS t(x integer);
    PERFORM dblink_exec('pbc_victim', CASE how WHEN 'cancel' THEN 'RESET lock_timeout'
                                              ELSE format('SET %s = ''200ms''', how) END);
    PERFORM dblink_send_query('pbc_victim', call);
    IF how = 'cancel' THEN
        FOR i IN 1 .. 2000 LOOP
            EXIT WHEN EXISTS (SELECT FROM pg_stat_activity s WHERE s.pid = cancelled.pid
                                                             AND s.wait_event_type = 'Lock');
            PERFORM pg_sleep(0.005);
        END LOOP;
        PERFORM pg_cancel_backend(pid);
    END IF;
    BEGIN
        SELECT 'ok' INTO result FROM dblink_get_result('pbc_victim') AS t(r text);
        PERFORM * FROM dblink_get_result('pbc_victim') AS t(r text);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        result := SQLSTATE || ': ' || SQLERRM;
        PERFORM * FROM dblink_get_result('pbc_victim', false) AS t(r text);
    END;
    IF how <> 'cancel' THEN
        PERFORM dblink_exec('pbc_victim', format('RESET %s', how));
    END IF;
    PERFORM dblink_exec('pbc_holder', 'ROLLBACK');
    RETURN result || ' / ' || (SELECT r FROM dblink('pbc_victim', 'SELECT ''the next statement ran''') AS t(r text));
END $$;

SELECT how, regexp_replace(call, '\(\d+', '(N') AS call, pg_temp.cancelled(how, call, :victim_pid, :a) AS outcome
  FROM unnest(ARRAY['lock_timeout', 'statement_timeout', 'cancel']) how,
       unnest(ARRAY[
           'SELECT billing.set_discount(''pbc-book'', 800000)',
           format('SELECT billing.end_discount(%s)', :discount_id),
           format('SELECT billing.assign_price_book(%s, ''pbc-book'')', :a),
           'SELECT billing.set_price(''pbc-img'', ''[{"type":"output","metric":"image","unit_price_micros":1}]'', NULL, now(), ''pbc-book'')']) call
 ORDER BY how, call;
SELECT pg_temp.state() = :'before' AS nothing_written;
-- and the calls work again
SELECT r AS assigned FROM dblink('pbc_victim', format('SELECT billing.assign_price_book(%s, ''pbc-book'')::text', :a)) AS t(r text);
SELECT billing.estimate('pbc-img', '{"n":1}', :a) ->> 'total_cost_micros' AS estimate;
SELECT dblink_disconnect('pbc_victim'), dblink_disconnect('pbc_holder');
SELECT * FROM billing.verify();
