/*
 * Direct table access for the charge's fast path (direct.c): the account
 * and limit slices, the requests and the ledger written with the table AM
 * and ExecInsertIndexTuples, without the executor, planner or SPI.
 *
 * Only when those tables are plain local tables that this file knows
 * whole: no Citus, no row triggers or rules the path would skip, no column,
 * CHECK constraint or generated column it does not write itself (direct.c
 * lists what it checks). Otherwise direct_open() says no and the caller
 * takes its SPI path, which does the same in SQL. The decision is made once
 * per backend and made again after any change to the tables' definitions
 * (a relcache invalidation of one of them: ALTER TABLE, CREATE INDEX, the
 * extension re-created; citus_setup(), which distributes them, sends one
 * too, so a backend that decided before Citus was installed decides again).
 */
#ifndef BILLING_DIRECT_H
#define BILLING_DIRECT_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "utils/relcache.h"

#include "tables.h"

typedef enum DirectTable
{
	DIRECT_SLICES,				/* billing.account_slices */
	DIRECT_LIMIT_SLICES,		/* billing.limit_slices */
	DIRECT_REQUESTS,			/* billing.requests */
	DIRECT_LEDGER,				/* billing.ledger */
	DIRECT_TABLES
} DirectTable;

/* the values of direct_insert() are indexed by the slots of tables.h */

/*
 * Opens the tables and their indexes (RowExclusiveLock, held to commit) for
 * one charge, before it writes anything, so that every invalidation that
 * the locks take in is seen first; false, with nothing opened, when the
 * direct path does not apply: the tables are not as above, or the
 * transaction is read only, in parallel mode, or REPEATABLE READ or
 * SERIALIZABLE (whose snapshot rules the SPI path keeps). direct_close()
 * when done; an error in between needs nothing (the relations are closed by
 * the abort, and the next direct_open() forgets them).
 */
extern bool direct_open(void);
extern bool direct_is_open(void);
extern void direct_close(void);

/*
 * While open: a table; the btree index the direct path scans (for the slice
 * tables, their primary key: the key before the slice column, then slice,
 * all bigint but the integer slice; for requests, the one on request_id);
 * the attribute number of one of its columns.
 */
extern Relation direct_relation(DirectTable t);
extern Relation direct_scan_index(DirectTable t);
extern AttrNumber direct_attnum(DirectTable t, int column);

/*
 * While open: whether the table may be updated directly by a caller that
 * does the work of its one UPDATE trigger itself (requests: the transition
 * trigger, request_transition() in requests.h), because that trigger would
 * fire (not with session_replication_role = replica) and no other would.
 */
extern bool direct_updatable(DirectTable t);

/* While open: the next value of the table's identity column (requests, ledger). */
extern int64 direct_next_id(DirectTable t);

/*
 * While open: inserts a row (values and nulls indexed by the table's
 * columns above) as an INSERT would: NOT NULL checked, TOASTed, every index
 * (partial ones by their predicate, unique ones checked).
 */
extern void direct_insert(DirectTable t, const Datum *values, const bool *nulls);

/*
 * While open: replaces the row at otid, which the caller has locked, with
 * values (indexed by the table's columns); new index entries when the update
 * is not HOT.
 */
extern void direct_update(DirectTable t, ItemPointer otid, const Datum *values, const bool *nulls);

#endif
