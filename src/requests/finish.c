/*
 * Finishing a request: complete_request, fail_request and cancel_request.
 * Each moves the request to its final state through request_transition
 * (trigger.c), which refuses an illegal move and settles: directly while
 * the direct path applies (direct.h: the row found by request_id, locked
 * and updated through the table AM, as the charge writes its rows), else
 * by one UPDATE of billing.requests, whose transition trigger calls it.
 * A call that finds the request already in its target state changes
 * nothing and answers as the first did; another final state is PB409.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "args.h"
#include "direct.h"
#include "errors.h"
#include "jsonout.h"
#include "pg_version_compat.h"
#include "requests/requests.h"
#include "spi_plan.h"
#include "tables.h"

/*
 * One way of finishing: the final status, and the columns the call sets
 * besides it (routing is merged: routing || the value). The SPI path's
 * UPDATE is built from them once: $1 the request, $2 its account, then the
 * columns.
 */
typedef struct FinishCall
{
	const char *target;
	int			ncolumns;
	RequestColumn columns[2];
	char	   *sql;
	SPIPlanPtr	plan;
} FinishCall;

static void
refuse_finished(int64 request_id, const char *status)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_CONFLICT),
			 errmsg("request " INT64_FORMAT " is already %s", request_id, status),
			 errdetail("A finished request never changes state.")));
}

static void
refuse_unknown(int64 request_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_BILLING_NOT_FOUND),
			 errmsg("request " INT64_FORMAT " does not exist", request_id)));
}

/* The UPDATE of call (see FinishCall), with its argument types. */
static void
finish_sql(FinishCall *call, Oid *types)
{
	types[0] = types[1] = INT8OID;
	for (int i = 0; i < call->ncolumns; i++)
		types[2 + i] = requests_columns[call->columns[i]].type;
	if (call->sql == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfo(&buf, "UPDATE billing.requests SET status = '%s'", call->target);
		for (int i = 0; i < call->ncolumns; i++)
		{
			const char *name = requests_columns[call->columns[i]].name;

			if (call->columns[i] == DR_ROUTING)
				appendStringInfo(&buf, ", %s = %s || $%d", name, name, 3 + i);
			else
				appendStringInfo(&buf, ", %s = $%d", name, 3 + i);
		}
		appendStringInfoString(&buf, " WHERE account_id = $2 AND request_id = $1");
		call->sql = buf.data;
		MemoryContextSwitchTo(old);
	}
}

/*
 * The SPI path: the row locked (FOR UPDATE), then the UPDATE unless it is
 * finished. Returns the request's account.
 */
static int64
finish_spi(int64 request_id, FinishCall *call, const Datum *values, const bool *nulls)
{
	static SPIPlanPtr lock_plan;
	int64		account_id = request_account(request_id);
	char	   *status;

	plan_exec(&lock_plan,
			  "SELECT status FROM billing.requests WHERE account_id = $2 AND request_id = $1 FOR UPDATE",
			  2, (Oid[]) {INT8OID, INT8OID},
			  (Datum[]) {Int64GetDatum(request_id), Int64GetDatum(account_id)}, NULL, false, 0);
	status = spi_text(1);
	if (request_stage(status) == REQUEST_FINISHED && strcmp(status, call->target) != 0)
		refuse_finished(request_id, status);
	if (request_stage(status) != REQUEST_FINISHED)
	{
		Oid			types[4];
		Datum		v[4] = {Int64GetDatum(request_id), Int64GetDatum(account_id)};
		char		n[4] = {' ', ' '};

		finish_sql(call, types);
		for (int i = 0; i < call->ncolumns; i++)
		{
			v[2 + i] = values[i];
			n[2 + i] = nulls[i] ? 'n' : ' ';
		}
		plan_exec(&call->plan, call->sql, 2 + call->ncolumns, types, v, n, false, 0);
	}
	return account_id;
}

/*
 * The direct path, while direct_open() holds and requests may be updated
 * directly: the row found by request_id and locked as FOR UPDATE does in
 * READ COMMITTED (waiting, then its latest version), the transition done
 * here, the row updated. Returns its metadata, built from the row.
 */
static Datum
finish_direct(int64 request_id, FinishCall *call, const Datum *values, const bool *nulls,
			  MemoryContext upper)
{
	Relation	rel = direct_relation(DIRECT_REQUESTS);
	TupleTableSlot *found = table_slot_create(rel, NULL);
	TupleTableSlot *locked = table_slot_create(rel, NULL);
	Snapshot	snap;
	ScanKeyData key;
	IndexScanDesc scan;
	TM_FailureData tmfd;
	TM_Result	res = TM_Deleted;
	RequestRow	o,
				n;
	char	   *status;
	Datum		result;

	CommandCounterIncrement();
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(request_id));
	scan = index_beginscan_compat(rel, direct_scan_index(DIRECT_REQUESTS), snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, found))
		res = table_tuple_lock(rel, &found->tts_tid, snap, locked, GetCurrentCommandId(true),
							   LockTupleExclusive, LockWaitBlock,
							   TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
	index_endscan(scan);
	UnregisterSnapshot(snap);
	if (res == TM_Deleted)
		refuse_unknown(request_id);
	if (res != TM_Ok)
		elog(ERROR, "could not lock request " INT64_FORMAT, request_id);

	for (int c = 0; c < DR_COLUMNS; c++)
		o.v[c] = slot_getattr(locked, direct_attnum(DIRECT_REQUESTS, c), &o.n[c]);
	status = TextDatumGetCString(o.v[DR_STATUS]);
	if (request_stage(status) == REQUEST_FINISHED && strcmp(status, call->target) != 0)
		refuse_finished(request_id, status);
	n = o;
	if (request_stage(status) != REQUEST_FINISHED)
	{
		n.v[DR_STATUS] = CStringGetTextDatum(call->target);
		for (int i = 0; i < call->ncolumns; i++)
		{
			RequestColumn c = call->columns[i];

			n.v[c] = c == DR_ROUTING ?
				DirectFunctionCall2(jsonb_concat, o.v[c], values[i]) : values[i];
			n.n[c] = nulls[i];
		}
		request_transition(&o, &n, false);
		direct_update(DIRECT_REQUESTS, &locked->tts_tid, n.v, n.n);
	}
	result = request_row_metadata(&n, false, upper);
	ExecDropSingleTupleTableSlot(found);
	ExecDropSingleTupleTableSlot(locked);
	return result;
}

/* Finishes request_id as call says, with the values of its columns; its metadata. */
static Datum
request_finish(int64 request_id, FinishCall *call, const Datum *values, const bool *nulls)
{
	MemoryContext upper = CurrentMemoryContext;
	Datum		result;

	SPI_connect();
	if (direct_open() && !direct_updatable(DIRECT_REQUESTS))
		direct_close();
	if (direct_is_open())
	{
		result = finish_direct(request_id, call, values, nulls, upper);
		direct_close();
	}
	else
		result = request_metadata(finish_spi(request_id, call, values, nulls), request_id,
								  false, false, upper);
	SPI_finish();
	return jsonb_from_text(DatumGetPointer(result));
}

PG_FUNCTION_INFO_V1(billing_complete_request);
Datum
billing_complete_request(PG_FUNCTION_ARGS)
{
	static FinishCall call = {"completed", 2, {DR_OUTPUTS, DR_ROUTING}};

	args_require(fcinfo, 3);
	json_require_object(PG_GETARG_DATUM(1), "outputs");
	json_require_object(PG_GETARG_DATUM(2), "routing");
	PG_RETURN_DATUM(request_finish(PG_GETARG_INT64(0), &call,
								   (Datum[]) {PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)},
								   (bool[]) {false, false}));
}

PG_FUNCTION_INFO_V1(billing_fail_request);
Datum
billing_fail_request(PG_FUNCTION_ARGS)
{
	static FinishCall call = {"failed", 2, {DR_FAILURE_REASON, DR_COST}};

	args_require(fcinfo, 1);
	if (PG_ARGISNULL(2) || PG_GETARG_INT64(2) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("charge_micros must be zero or positive"),
				 errdetail("A failed request may be charged from zero up to its estimate.")));
	PG_RETURN_DATUM(request_finish(PG_GETARG_INT64(0), &call,
								   (Datum[]) {PG_GETARG_DATUM(1), PG_GETARG_DATUM(2)},
								   (bool[]) {PG_ARGISNULL(1), false}));
}

PG_FUNCTION_INFO_V1(billing_cancel_request);
Datum
billing_cancel_request(PG_FUNCTION_ARGS)
{
	static FinishCall call = {"cancelled", 0};

	args_require(fcinfo, 1);
	PG_RETURN_DATUM(request_finish(PG_GETARG_INT64(0), &call, NULL, NULL));
}
