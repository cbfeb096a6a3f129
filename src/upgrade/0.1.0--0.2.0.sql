-- billing: the schema changes from 0.1.0 to 0.2.0, the first part of the
-- upgrade script billing--0.1.0--0.2.0.sql. The Makefile appends every
-- function, view, trigger and grant part of the install script, re-applied
-- with CREATE OR REPLACE, so changed function bodies need nothing here.
--
-- What goes here: what src/schema.sql creates (tables, columns, indexes,
-- constraints) and functions that are dropped or change their signature.
-- Each statement must be safe to run again and where the object already
-- exists (on Citus a node may have it): IF NOT EXISTS / IF EXISTS, or a
-- catalog check in a DO block. After this file the upgraded schema must equal
-- a fresh install's (test/upgrade.sh compares the two).
\echo Use "ALTER EXTENSION billing UPDATE" to load this file. \quit

-- Tables and columns.

-- Indexes and constraints.

-- Dropped and re-signed functions.
