/*
 * Direct table access for the charge's fast path (direct.h).
 *
 * What the SPI path's executor would do per statement is done once per
 * backend here: the relations' index lists and IndexInfos, the attribute
 * numbers of the columns (by name: an upgraded install may lay a table out
 * otherwise than a fresh one), the identity sequences, and the checks that
 * the direct path may apply at all. Per charge only the locks are taken and
 * the relations opened. The cache is dropped by a relcache invalidation of
 * any of the tables (or of all relations) and built again at the next
 * charge, before anything is written.
 *
 * The direct path applies when each table
 *  - is a plain table (relkind 'r') and Citus is not installed (on Citus
 *    the tables seen by name are shells: the data lives in shards);
 *  - has no row-level security, no rules, and no trigger that the write
 *    would fire (INSERT triggers on requests and ledger, UPDATE triggers on
 *    the slices; the ledger's append-only triggers fire on UPDATE and DELETE
 *    only, the transition trigger of requests on UPDATE only);
 *  - for an update of requests (a request finished, requests/finish.c): no
 *    UPDATE trigger but the transition trigger, enabled as created, whose
 *    work the caller does itself (request_transition);
 *  - has no CHECK constraint, no stored generated column, and no column
 *    that is not listed below with its type, so that every default is the
 *    one written here.
 * Foreign keys are triggers, so a table with one takes the SPI path too.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "cache.h"
#include "direct.h"
#include "pg_version_compat.h"

typedef struct DirectSpec
{
	const char *relname;
	const TableColumn *columns;
	int			ncolumns;
	int			identity;		/* the identity column, -1 for none */
	CmdType		cmd;			/* what the charge does to it */
	int			nkey;			/* the btree index the direct path scans, or 0 */
	int			key[3];
	const char *stand_in;		/* an UPDATE trigger the caller stands in for */
} DirectSpec;

static const DirectSpec specs[DIRECT_TABLES] = {
	{"account_slices", account_slices_columns, DS_COLUMNS, -1, CMD_UPDATE, 2, {DS_ACCOUNT_ID, DS_SLICE}},
	{"limit_slices", limit_slices_columns, DLS_COLUMNS, -1, CMD_UPDATE, 3,
	{DLS_ACCOUNT_ID, DLS_LIMIT_ID, DLS_SLICE}},
	{"requests", requests_columns, DR_COLUMNS, DR_REQUEST_ID, CMD_INSERT, 1, {DR_REQUEST_ID},
	"requests_transition"},
	{"ledger", ledger_columns, DL_COLUMNS, DL_ENTRY_ID, CMD_INSERT, 0}
};

#define DIRECT_MAX_COLUMNS DR_COLUMNS

typedef struct DirectRel
{
	Oid			relid;
	AttrNumber	attnums[DIRECT_MAX_COLUMNS];
	Oid			identity_seq;
	int			nindexes;
	Oid		   *index_oids;
	ResultRelInfo *rri;			/* its IndexInfos kept; relations set per charge */
	TupleTableSlot *slot;		/* virtual, on a copy of the descriptor */
	int			key;			/* the scanned index's place in index_oids */
	bool		updatable;		/* updates only stand in for spec->stand_in */
	Relation	rel;			/* open during a charge */
} DirectRel;

typedef enum DirectStatus
{
	DIRECT_UNKNOWN,				/* decide (again) at the next charge */
	DIRECT_YES,
	DIRECT_NO
} DirectStatus;

static DirectStatus status = DIRECT_UNKNOWN;
static MemoryContext direct_cxt = NULL;
static EState *estate = NULL;
static DirectRel rels[DIRECT_TABLES];
static bool is_open = false;
static SubTransactionId open_subid;	/* where the relations were opened */

static void
direct_invalidate(Datum arg, Oid relid)
{
	if (!OidIsValid(relid))
		status = DIRECT_UNKNOWN;
	for (int t = 0; t < DIRECT_TABLES; t++)
		if (relid == rels[t].relid)
			status = DIRECT_UNKNOWN;
}

/* Whether rel is as the file header says; fills in d. In direct_cxt. */
static bool
rel_usable(Relation rel, const DirectSpec *spec, DirectRel *d)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;
	int			known = 0;
	List	   *indexes;
	ListCell   *lc;
	int			i = 0;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
		rel->rd_rules != NULL)
		return false;
	if (trig != NULL &&
		(spec->cmd == CMD_INSERT ?
		 (trig->trig_insert_before_row || trig->trig_insert_after_row ||
		  trig->trig_insert_instead_row || trig->trig_insert_before_statement ||
		  trig->trig_insert_after_statement || trig->trig_insert_new_table) :
		 (trig->trig_update_before_row || trig->trig_update_after_row ||
		  trig->trig_update_instead_row || trig->trig_update_before_statement ||
		  trig->trig_update_after_statement || trig->trig_update_old_table ||
		  trig->trig_update_new_table)))
		return false;
	if (desc->constr != NULL && (desc->constr->num_check > 0 || desc->constr->has_generated_stored))
		return false;
	for (int c = 0; c < spec->ncolumns; c++)
		d->attnums[c] = InvalidAttrNumber;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		int			c;

		if (att->attisdropped)
			continue;
		for (c = 0; c < spec->ncolumns; c++)
			if (strcmp(NameStr(att->attname), spec->columns[c].name) == 0)
				break;
		if (c == spec->ncolumns || att->atttypid != spec->columns[c].type)
			return false;
		d->attnums[c] = att->attnum;
		known++;
	}
	if (known != spec->ncolumns)
		return false;
	d->identity_seq = spec->identity < 0 ? InvalidOid :
		getIdentitySequence_compat(rel, d->attnums[spec->identity], true);
	if (spec->identity >= 0 && !OidIsValid(d->identity_seq))
		return false;

	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, rel, 0, NULL, 0);
	indexes = RelationGetIndexList(rel);
	d->nindexes = list_length(indexes);
	d->index_oids = palloc(sizeof(Oid) * Max(d->nindexes, 1));
	d->rri->ri_NumIndices = d->nindexes;
	d->rri->ri_IndexRelationDescs = palloc0(sizeof(Relation) * Max(d->nindexes, 1));
	d->rri->ri_IndexRelationInfo = palloc(sizeof(IndexInfo *) * Max(d->nindexes, 1));
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);

		d->index_oids[i] = lfirst_oid(lc);
		d->rri->ri_IndexRelationInfo[i] = BuildIndexInfo(index);
		index_close(index, NoLock);
		i++;
	}
	d->rri->ri_RelationDesc = NULL;
	d->slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc), &TTSOpsVirtual);
	return true;
}

/*
 * Finds the index the direct path scans: a valid btree on exactly spec->key,
 * without expressions or predicate (for the slices, their primary key); an
 * index that a failed CREATE INDEX CONCURRENTLY left invalid may miss rows.
 */
static bool
key_usable(const DirectSpec *spec, DirectRel *d)
{
	d->key = -1;
	for (int i = 0; i < d->nindexes; i++)
	{
		IndexInfo  *ii = d->rri->ri_IndexRelationInfo[i];
		bool		ok = ii->ii_Am == BTREE_AM_OID && ii->ii_NumIndexKeyAttrs == spec->nkey &&
			ii->ii_Expressions == NIL && ii->ii_Predicate == NIL &&
			get_index_isvalid(d->index_oids[i]);

		for (int k = 0; ok && k < spec->nkey; k++)
			ok = ii->ii_IndexAttrNumbers[k] == d->attnums[spec->key[k]];
		if (ok)
		{
			d->key = i;
			return true;
		}
	}
	return false;
}

/*
 * Whether the only UPDATE trigger of rel is spec->stand_in, as the extension
 * creates it (BEFORE, FOR EACH ROW, enabled on origin, its function of the
 * same name in the table's schema), so that an update that does its work
 * fires nothing else.
 */
static bool
stand_in_only(Relation rel, const DirectSpec *spec)
{
	TriggerDesc *trig = rel->trigdesc;
	int			found = 0;

	if (spec->stand_in == NULL || trig == NULL)
		return false;
	if (trig->trig_update_old_table || trig->trig_update_new_table)
		return false;
	for (int i = 0; i < trig->numtriggers; i++)
	{
		Trigger    *t = &trig->triggers[i];

		if (!TRIGGER_FOR_UPDATE(t->tgtype) || t->tgenabled == TRIGGER_DISABLED)
			continue;
		if (strcmp(t->tgname, spec->stand_in) != 0 || t->tgenabled != TRIGGER_FIRES_ON_ORIGIN ||
			!TRIGGER_FOR_BEFORE(t->tgtype) || !TRIGGER_FOR_ROW(t->tgtype) ||
			t->tgnattr > 0 || t->tgqual != NULL ||
			strcmp(get_func_name(t->tgfoid), spec->stand_in) != 0 ||
			get_func_namespace(t->tgfoid) != RelationGetNamespace(rel))
			return false;
		found++;
	}
	return found == 1;
}

/* Decides whether the direct path applies and builds its cache; in any context. */
static bool
direct_build(void)
{
	static bool registered = false;
	MemoryContext old;
	bool		ok = true;

	if (!registered)
		CacheRegisterRelcacheCallback(direct_invalidate, (Datum) 0);
	registered = true;
	if (direct_cxt == NULL)
		direct_cxt = AllocSetContextCreate(TopMemoryContext, "billing direct access",
										   ALLOCSET_SMALL_SIZES);
	if (estate != NULL)
		FreeExecutorState(estate);
	estate = NULL;
	for (int t = 0; t < DIRECT_TABLES; t++)
		if (rels[t].slot != NULL)
			ExecDropSingleTupleTableSlot(rels[t].slot);
	MemoryContextReset(direct_cxt);
	memset(rels, 0, sizeof(rels));
	status = DIRECT_YES;		/* an invalidation from here on makes it UNKNOWN */
	old = MemoryContextSwitchTo(direct_cxt);
	for (int t = 0; t < DIRECT_TABLES; t++)
		rels[t].relid = cache_relid(specs[t].relname);
	if (OidIsValid(get_extension_oid("citus", true)))
		ok = false;
	for (int t = 0; ok && t < DIRECT_TABLES; t++)
	{
		Relation	rel;
		bool		keyed;

		if (!OidIsValid(rels[t].relid))
		{
			ok = false;
			break;
		}
		rel = table_open(rels[t].relid, RowExclusiveLock);
		ok = rel_usable(rel, &specs[t], &rels[t]);
		keyed = ok && specs[t].nkey > 0 && key_usable(&specs[t], &rels[t]);
		/* the slice takes need their index; requests without theirs are inserted only */
		if (specs[t].nkey > 0 && specs[t].stand_in == NULL)
			ok = keyed;
		rels[t].updatable = keyed && stand_in_only(rel, &specs[t]);
		table_close(rel, NoLock);
	}
	if (ok)
		estate = CreateExecutorState();
	MemoryContextSwitchTo(old);
	if (!ok)
		status = DIRECT_NO;
	return ok;
}

static void
close_all(void)
{
	for (int t = 0; t < DIRECT_TABLES; t++)
	{
		DirectRel  *d = &rels[t];

		for (int i = 0; i < d->nindexes; i++)
			if (d->rri->ri_IndexRelationDescs[i] != NULL)
			{
				/* what the AM kept between inserts (BRIN: a pinned buffer), as ExecCloseIndices */
				index_insert_cleanup(d->rri->ri_IndexRelationDescs[i], d->rri->ri_IndexRelationInfo[i]);
				index_close(d->rri->ri_IndexRelationDescs[i], NoLock);
				d->rri->ri_IndexRelationDescs[i] = NULL;
			}
		if (d->rel != NULL)
			table_close(d->rel, NoLock);
		d->rel = NULL;
		if (d->rri != NULL)
			d->rri->ri_RelationDesc = NULL;
	}
	is_open = false;
}

/* After an error between direct_open() and direct_close(): the abort closed them. */
static void
forget_all(void)
{
	if (!is_open)
		return;
	for (int t = 0; t < DIRECT_TABLES; t++)
	{
		DirectRel  *d = &rels[t];

		for (int i = 0; i < d->nindexes; i++)
			d->rri->ri_IndexRelationDescs[i] = NULL;
		d->rel = NULL;
		if (d->rri != NULL)
			d->rri->ri_RelationDesc = NULL;
	}
	is_open = false;
}

static void
direct_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		forget_all();
}

static void
direct_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && mySubid == open_subid)
		forget_all();
}

bool
direct_open(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(direct_xact_callback, NULL);
		RegisterSubXactCallback(direct_subxact_callback, NULL);
		registered = true;
	}
	Assert(!is_open);
	if (XactReadOnly || IsolationUsesXactSnapshot() || IsInParallelMode())
		return false;
	for (;;)
	{
		if (status == DIRECT_NO)
			return false;
		if (status == DIRECT_UNKNOWN && !direct_build())
			return false;
		/* taking the locks takes in invalidations: the cache holds if none came */
		is_open = true;
		open_subid = GetCurrentSubTransactionId();
		for (int t = 0; t < DIRECT_TABLES; t++)
		{
			DirectRel  *d = &rels[t];

			d->rel = try_table_open(d->relid, RowExclusiveLock);
			if (d->rel == NULL)
				break;
			d->rri->ri_RelationDesc = d->rel;
			for (int i = 0; i < d->nindexes; i++)
			{
				d->rri->ri_IndexRelationDescs[i] = index_open(d->index_oids[i], RowExclusiveLock);
				/* an index AM's cache may hold the relation: one per charge */
				d->rri->ri_IndexRelationInfo[i]->ii_AmCache = NULL;
				d->rri->ri_IndexRelationInfo[i]->ii_Context = CurrentMemoryContext;
			}
		}
		if (status == DIRECT_YES && rels[DIRECT_TABLES - 1].rel != NULL)
			break;
		close_all();
		status = DIRECT_UNKNOWN;
	}
	CheckCmdReplicaIdentity(rels[DIRECT_SLICES].rel, CMD_UPDATE);
	CheckCmdReplicaIdentity(rels[DIRECT_LIMIT_SLICES].rel, CMD_UPDATE);
	return true;
}

bool
direct_is_open(void)
{
	return is_open;
}

void
direct_close(void)
{
	close_all();
}

Relation
direct_relation(DirectTable t)
{
	Assert(is_open);
	return rels[t].rel;
}

Relation
direct_scan_index(DirectTable t)
{
	Assert(is_open && rels[t].key >= 0);
	return rels[t].rri->ri_IndexRelationDescs[rels[t].key];
}

bool
direct_updatable(DirectTable t)
{
	Assert(is_open);
	if (!rels[t].updatable || SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return false;
	CheckCmdReplicaIdentity(rels[t].rel, CMD_UPDATE);
	return true;
}

AttrNumber
direct_attnum(DirectTable t, int column)
{
	return rels[t].attnums[column];
}

int64
direct_next_id(DirectTable t)
{
	Assert(is_open && OidIsValid(rels[t].identity_seq));
	return nextval_internal(rels[t].identity_seq, false);
}

/* The table's slot holding values, every other column null (dropped ones). */
static TupleTableSlot *
fill_slot(DirectRel *d, DirectTable t, const Datum *values, const bool *nulls)
{
	TupleTableSlot *slot = d->slot;

	ExecClearTuple(slot);
	for (int a = 0; a < slot->tts_tupleDescriptor->natts; a++)
	{
		slot->tts_values[a] = (Datum) 0;
		slot->tts_isnull[a] = true;
	}
	for (int c = 0; c < specs[t].ncolumns; c++)
	{
		slot->tts_values[d->attnums[c] - 1] = values[c];
		slot->tts_isnull[d->attnums[c] - 1] = nulls[c];
	}
	return ExecStoreVirtualTuple(slot);
}

void
direct_insert(DirectTable t, const Datum *values, const bool *nulls)
{
	DirectRel  *d = &rels[t];
	TupleTableSlot *slot = fill_slot(d, t, values, nulls);

	Assert(is_open);
	if (d->rel->rd_att->constr != NULL)
		ExecConstraints(d->rri, slot, estate);
	table_tuple_insert(d->rel, slot, GetCurrentCommandId(true), 0, NULL);
	if (d->nindexes > 0)
		ExecInsertIndexTuples_compat(d->rri, slot, estate, false, false, NULL, NIL, false);
	ExecClearTuple(slot);
	ResetPerTupleExprContext(estate);
}

void
direct_update(DirectTable t, ItemPointer otid, const Datum *values, const bool *nulls)
{
	DirectRel  *d = &rels[t];
	TupleTableSlot *slot = fill_slot(d, t, values, nulls);
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TU_UpdateIndexes update_indexes;

	Assert(is_open);
	if (d->rel->rd_att->constr != NULL)
		ExecConstraints(d->rri, slot, estate);
	if (table_tuple_update_compat(d->rel, otid, slot, GetCurrentCommandId(true), InvalidSnapshot,
						   InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes) != TM_Ok)
		elog(ERROR, "could not update a locked row of billing.%s", specs[t].relname);
	if (update_indexes != TU_None && d->nindexes > 0)
		ExecInsertIndexTuples_compat(d->rri, slot, estate, true, false, NULL, NIL,
									 update_indexes == TU_Summarizing);
	ExecClearTuple(slot);
	ResetPerTupleExprContext(estate);
}
