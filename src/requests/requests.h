/* Requests: the settlement shared by the lifecycle functions and the trigger. */
#ifndef BILLING_REQUESTS_H
#define BILLING_REQUESTS_H

#include "postgres.h"

/*
 * Settles a request reaching its final state: the hold goes back to the
 * available amount and to the spend limits of its scope, cost is charged
 * (a usage ledger entry). Inside SPI.
 */
extern void request_settle(int64 account_id, int64 request_id, const char *scope, int64 hold,
						   int64 cost);
extern int64 request_account(int64 request_id);

/*
 * The stage of a request's status: queued and in_progress are unfinished
 * (their holds are held), completed, failed and cancelled finished. The one
 * definition for C (trigger.c); SQL's is billing._request_open and
 * billing._request_finished (requests.sql), and regress `requests` checks that
 * the two agree.
 */
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

#endif
