-- billing: the schema changes from 0.1.0 to 0.2.0, the first part of the
-- upgrade script billing--0.1.0--0.2.0.sql. The Makefile appends every
-- function, view, trigger and grant part of the install script, re-applied
-- with CREATE OR REPLACE, so changed function bodies need nothing here.
--
-- What goes here: what src/schema.sql creates (tables, columns, indexes,
-- constraints), and the functions and views that are dropped, or change
-- their arguments, result type or view columns (CREATE OR REPLACE cannot).
-- It runs before the functions are defined again, so their bodies find the
-- new columns.
--
-- Each statement must be safe to run again and where the object already
-- exists (on Citus a node may have it): IF NOT EXISTS / IF EXISTS, or a
-- catalog check in a DO block (ADD CONSTRAINT has no IF NOT EXISTS). The
-- upgraded schema must equal a fresh install's, so a new column goes last in
-- its CREATE TABLE in src/schema.sql too; test/upgrade.sh compares the two and
-- runs the script twice.
\echo Use "ALTER EXTENSION billing UPDATE" to load this file. \quit

-- Tables and columns.

-- Indexes and constraints.

-- Dropped and re-signed functions.
