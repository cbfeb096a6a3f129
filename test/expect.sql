-- What the psql checks of a database filled by test/fill.sql share
-- (\i test/expect.sql, from the repository's root: test/dump.sh,
-- test/upgrade.sh): pg_temp.expect(ok, what), which raises "what" unless ok
-- is true, and :pre and :post, fill.sql's accounts.
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.expect(ok boolean, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION '%', what;
    END IF;
END $$;
SELECT account_id AS pre FROM billing.accounts WHERE external_id = 'fill-pre' \gset
SELECT account_id AS post FROM billing.accounts WHERE external_id = 'fill-post' \gset
