/*
 * The columns of the tables that billing's C code reads and writes by slot
 * (pg_cron's cron_job.h, Citus's pg_dist_partition.h): the one declaration
 * of each, from which the slots (the indexes of values and nulls arrays),
 * the names and the types all come. The direct path (direct.c), the
 * request trigger (trigger.c) and the SPI writer of requests (requests.c)
 * use these. Columns are found by name, never by position: an upgraded
 * install may lay a table out otherwise than a fresh one.
 */
#ifndef BILLING_TABLES_H
#define BILLING_TABLES_H

#include "postgres.h"

#include "utils/relcache.h"

typedef struct TableColumn
{
	const char *name;
	Oid			type;
} TableColumn;

#define TABLE_SLOT(slot, name, type) slot,

/* billing.account_slices */
#define ACCOUNT_SLICES_COLUMNS(C) \
	C(DS_ACCOUNT_ID, "account_id", INT8OID) \
	C(DS_SLICE, "slice", INT4OID) \
	C(DS_AVAILABLE, "available_micros", INT8OID) \
	C(DS_FAST, "fast_micros", INT8OID)
typedef enum SliceColumn
{
	ACCOUNT_SLICES_COLUMNS(TABLE_SLOT) DS_COLUMNS
} SliceColumn;

/* billing.limit_slices */
#define LIMIT_SLICES_COLUMNS(C) \
	C(DLS_ACCOUNT_ID, "account_id", INT8OID) \
	C(DLS_LIMIT_ID, "limit_id", INT8OID) \
	C(DLS_SLICE, "slice", INT4OID) \
	C(DLS_AVAILABLE, "available_micros", INT8OID) \
	C(DLS_FAST, "fast_micros", INT8OID) \
	C(DLS_PERIOD_START, "period_start", TIMESTAMPTZOID) \
	C(DLS_PERIOD_END, "period_end", TIMESTAMPTZOID)
typedef enum LimitSliceColumn
{
	LIMIT_SLICES_COLUMNS(TABLE_SLOT) DLS_COLUMNS
} LimitSliceColumn;

/* billing.requests */
#define REQUESTS_COLUMNS(C) \
	C(DR_ACCOUNT_ID, "account_id", INT8OID) \
	C(DR_REQUEST_ID, "request_id", INT8OID) \
	C(DR_MODEL, "model", TEXTOID) \
	C(DR_PROVIDER, "provider", TEXTOID) \
	C(DR_STATUS, "status", TEXTOID) \
	C(DR_PARAMS, "params", JSONBOID) \
	C(DR_OUTPUTS, "outputs", JSONBOID) \
	C(DR_ROUTING, "routing", JSONBOID) \
	C(DR_COST_ESTIMATE, "cost_estimate_micros", INT8OID) \
	C(DR_COST, "cost_micros", INT8OID) \
	C(DR_HOLD, "hold_micros", INT8OID) \
	C(DR_CURRENCY, "currency", TEXTOID) \
	C(DR_POSTPAID, "postpaid", BOOLOID) \
	C(DR_IDEMPOTENCY_KEY, "idempotency_key", TEXTOID) \
	C(DR_FAILURE_REASON, "failure_reason", TEXTOID) \
	C(DR_CREATED_AT, "created_at", TIMESTAMPTZOID) \
	C(DR_COMPLETED_AT, "completed_at", TIMESTAMPTZOID) \
	C(DR_PRICE_ID, "price_id", INT8OID) \
	C(DR_SCOPE, "scope", TEXTOID) \
	C(DR_PRICE_BOOK, "price_book", TEXTOID) \
	C(DR_DISCOUNT_ID, "discount_id", INT8OID) \
	C(DR_PROVIDER_COST, "provider_cost_micros", INT8OID)
typedef enum RequestColumn
{
	REQUESTS_COLUMNS(TABLE_SLOT) DR_COLUMNS
} RequestColumn;

/* billing.ledger */
#define LEDGER_COLUMNS(C) \
	C(DL_ACCOUNT_ID, "account_id", INT8OID) \
	C(DL_ENTRY_ID, "entry_id", INT8OID) \
	C(DL_KIND, "kind", TEXTOID) \
	C(DL_AMOUNT, "amount_micros", INT8OID) \
	C(DL_POSTPAID, "postpaid", BOOLOID) \
	C(DL_REQUEST_ID, "request_id", INT8OID) \
	C(DL_TOPUP_ID, "topup_id", INT8OID) \
	C(DL_INVOICE_ID, "invoice_id", INT8OID) \
	C(DL_IDEMPOTENCY_KEY, "idempotency_key", TEXTOID) \
	C(DL_REFERENCE, "reference", TEXTOID) \
	C(DL_CREATED_AT, "created_at", TIMESTAMPTZOID) \
	C(DL_GRANT_ID, "grant_id", INT8OID) \
	C(DL_CREATED_BY, "created_by", TEXTOID)
typedef enum LedgerColumn
{
	LEDGER_COLUMNS(TABLE_SLOT) DL_COLUMNS
} LedgerColumn;

extern const TableColumn account_slices_columns[DS_COLUMNS];
extern const TableColumn limit_slices_columns[DLS_COLUMNS];
extern const TableColumn requests_columns[DR_COLUMNS];
extern const TableColumn ledger_columns[DL_COLUMNS];

/*
 * The attribute numbers of columns in rel, by name; an error (XX000) when
 * one is missing, which only a damaged install can cause.
 */
extern void tables_attnums(Relation rel, const TableColumn *columns, int ncolumns,
						   AttrNumber *attnums);

#endif
