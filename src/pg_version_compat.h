/*
 * The one place for differences between the PostgreSQL majors billing builds
 * against (15, 16, 17, 18). Code elsewhere calls the names below as if every
 * server had the newest API; each is keyed on PG_VERSION_NUM and, on the
 * newest majors, is the server's own function. Read from the 15.x, 17.x
 * and 18.x server headers; 16 is covered by the same conditions.
 *
 * Include after postgres.h.
 */
#ifndef BILLING_PG_VERSION_COMPAT_H
#define BILLING_PG_VERSION_COMPAT_H

#include "access/genam.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "executor/executor.h"
#include "utils/rel.h"

#if PG_VERSION_NUM < 150000
#error "billing needs PostgreSQL 15 or later"
#endif

/*
 * 18 removed pg_attribute_noreturn() (written after a declaration) for
 * pg_noreturn (written before it). GCC and Clang take the attribute before
 * a declaration as well, so older majors spell pg_noreturn with it.
 */
#if PG_VERSION_NUM < 180000 && !defined(pg_noreturn)
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * 16: table_tuple_update() reports which indexes need the new tuple as
 * TU_UpdateIndexes (none, all, or only the summarizing ones: BRIN) where it
 * was a bool (all or none), and ExecInsertIndexTuples() takes
 * onlySummarizing to insert into the summarizing ones only.
 */
#if PG_VERSION_NUM < 160000
typedef enum TU_UpdateIndexes
{
	TU_None,
	TU_All,
	TU_Summarizing
} TU_UpdateIndexes;

static inline TM_Result
table_tuple_update_compat(Relation rel, ItemPointer otid, TupleTableSlot *slot,
						  CommandId cid, Snapshot snapshot, Snapshot crosscheck,
						  bool wait, TM_FailureData *tmfd, LockTupleMode *lockmode,
						  TU_UpdateIndexes *update_indexes)
{
	bool		all;
	TM_Result	result = table_tuple_update(rel, otid, slot, cid, snapshot, crosscheck,
											wait, tmfd, lockmode, &all);

	*update_indexes = all ? TU_All : TU_None;
	return result;
}

/* before 16 no update inserts into some indexes only */
#define ExecInsertIndexTuples_compat(rri, slot, estate, update, noDupErr, specConflict, \
									 arbiterIndexes, onlySummarizing) \
	ExecInsertIndexTuples(rri, slot, estate, update, noDupErr, specConflict, arbiterIndexes)
#else
#define table_tuple_update_compat table_tuple_update
#define ExecInsertIndexTuples_compat ExecInsertIndexTuples
#endif

/* 17: getIdentitySequence() takes the open Relation where it took its Oid */
#if PG_VERSION_NUM < 170000
#define getIdentitySequence_compat(rel, attnum, missing_ok) \
	getIdentitySequence(RelationGetRelid(rel), attnum, missing_ok)
#else
#define getIdentitySequence_compat getIdentitySequence
#endif

/*
 * 17: an index AM may keep state between inserts of one statement in
 * IndexInfo.ii_AmCache (BRIN keeps its revmap buffer pinned there) until
 * index_insert_cleanup(), which the executor calls when it closes the
 * indexes. Whoever inserts with ExecInsertIndexTuples without the executor
 * must call it too. Before 17 each insert released its own.
 */
#if PG_VERSION_NUM < 170000
#define index_insert_cleanup(indexRelation, indexInfo) ((void) 0)
#endif

/* 18: index_beginscan() takes IndexScanInstrumentation (NULL: none) */
#if PG_VERSION_NUM < 180000
#define index_beginscan_compat(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan(heap, index, snapshot, nkeys, norderbys)
#else
#define index_beginscan_compat(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys)
#endif

#endif							/* BILLING_PG_VERSION_COMPAT_H */
