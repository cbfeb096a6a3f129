-- Shared by every regress test that follows: the extension and a helper
-- that shows the SQLSTATE and message of a refusal.
CREATE EXTENSION billing;
CREATE SCHEMA regress;
CREATE FUNCTION regress.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT regress.try('SELECT 1/0');
