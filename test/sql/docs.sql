-- docs: docs/reference.md's table of tables has a row for every table of
-- billing, and names its columns in the table's order (no rows: they agree)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS billing;
RESET client_min_messages;
\set reference `cat docs/reference.md`

WITH rows AS (
    SELECT m[1] AS relname, m[2] AS line
      FROM regexp_matches(:'reference', E'\\n\\| `([a-z_]+)`[^|]*\\|([^\\n]*)', 'g') AS m
), tables AS (
    SELECT c.oid, c.relname
      FROM pg_class c
     WHERE c.relnamespace = 'billing'::regnamespace AND c.relkind IN ('r', 'p')
), documented AS (
    -- the row's backquoted names that are columns of the table, first mention
    SELECT t.relname, string_agg(a.attname, ', ' ORDER BY n.first) AS columns
      FROM tables t
      JOIN rows r USING (relname)
      JOIN LATERAL (SELECT w[1] AS word, min(o) AS first
                      FROM regexp_matches(r.line, '`([a-z_]+)`', 'g') WITH ORDINALITY AS x(w, o)
                     GROUP BY 1) n ON true
      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname = n.word
                         AND a.attnum > 0 AND NOT a.attisdropped
     GROUP BY 1
), actual AS (
    SELECT t.relname, string_agg(a.attname, ', ' ORDER BY a.attnum) AS columns
      FROM tables t
      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
     GROUP BY 1
)
SELECT relname AS table_differs_from_docs, a.columns AS actual, d.columns AS documented
  FROM actual a LEFT JOIN documented d USING (relname)
 WHERE d.columns IS DISTINCT FROM a.columns
 ORDER BY 1;

-- and each table has one row only
SELECT m[1] AS documented_twice, count(*)
  FROM regexp_matches(:'reference', E'\\n\\| `([a-z_]+)` \\|', 'g') AS m
 GROUP BY 1 HAVING count(*) > 1;
