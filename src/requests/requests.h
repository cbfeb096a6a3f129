/*
 * Requests: what the lifecycle functions (requests.c, finish.c) and the
 * transition (trigger.c) share.
 */
#ifndef BILLING_REQUESTS_H
#define BILLING_REQUESTS_H

#include "postgres.h"

#include "tables.h"

/* A row of billing.requests by the slots of tables.h. */
typedef struct RequestRow
{
	Datum		v[DR_COLUMNS];
	bool		n[DR_COLUMNS];
} RequestRow;

/*
 * The move of a request from row o to row n, as an UPDATE makes it (the
 * transition trigger's work, trigger.c): refuses an illegal one; when n is
 * final, prices and settles the request (request_settle) and sets n's hold,
 * cost, completed_at and provider cost. replay: n repeats every column of o
 * (a retried UPDATE, which a finished o accepts and nothing moves). Returns
 * whether it settled (n reached its final state now).
 */
extern bool request_transition(const RequestRow *o, RequestRow *n, bool replay);

/*
 * Settles a request reaching its final state: the hold goes back to the
 * available amount and to the spend limits of its scope, cost is charged
 * (a usage ledger entry, direct while the direct path is open). Inside SPI.
 */
extern void request_settle(int64 account_id, int64 request_id, const char *scope, int64 hold,
						   int64 cost);
extern int64 request_account(int64 request_id);

/*
 * The stage of a request's status: queued and in_progress are unfinished
 * (their holds are held), completed, failed and cancelled finished. The one
 * definition for C (request_stage, requests.c); SQL's is billing._request_open and
 * billing._request_finished (requests.sql), and regress `requests` checks that
 * the two agree.
 */
/* the hint of a refused status */
#define REQUEST_STATUS_HINT "A request is queued, in_progress, completed, failed or cancelled."

typedef enum RequestStage
{
	REQUEST_QUEUED,
	REQUEST_IN_PROGRESS,
	REQUEST_FINISHED
} RequestStage;

/* status's stage; refuses (22023) a status that is none of the five */
extern RequestStage request_stage(const char *status);

/* What request_id of account_id has had back in refunds (billing.refunds). */
extern int64 request_refunded(int64 account_id, int64 request_id);

/*
 * Metadata of request_id of account_id as jsonb text, built in the context
 * "upper" (with_envelope: inside {"request_id","status","metadata"};
 * with_refunds: what it has had back). Inside SPI; PB404 when unknown.
 */
extern Datum request_metadata(int64 account_id, int64 request_id, bool with_envelope,
							  bool with_refunds, MemoryContext upper);
/* request_metadata() of a row at hand (tables.h's slots), without refunds. */
extern Datum request_row_metadata(const RequestRow *row, bool with_envelope,
								  MemoryContext upper);

#endif
