/*
 * The column lists of tables.h, and finding them in a relation.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "tables.h"

#define TABLE_COLUMN(slot, name, type) {name, type},

const TableColumn account_slices_columns[DS_COLUMNS] = {ACCOUNT_SLICES_COLUMNS(TABLE_COLUMN)};
const TableColumn limit_slices_columns[DLS_COLUMNS] = {LIMIT_SLICES_COLUMNS(TABLE_COLUMN)};
const TableColumn requests_columns[DR_COLUMNS] = {REQUESTS_COLUMNS(TABLE_COLUMN)};
const TableColumn ledger_columns[DL_COLUMNS] = {LEDGER_COLUMNS(TABLE_COLUMN)};

void
tables_attnums(Relation rel, const TableColumn *columns, int ncolumns, AttrNumber *attnums)
{
	for (int c = 0; c < ncolumns; c++)
	{
		attnums[c] = get_attnum(RelationGetRelid(rel), columns[c].name);
		if (attnums[c] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							columns[c].name, RelationGetRelationName(rel))));
	}
}
