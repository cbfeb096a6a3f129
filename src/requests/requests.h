/* Requests: lifecycle, response metadata, settlement. */
#ifndef BILLING_REQUESTS_H
#define BILLING_REQUESTS_H

#include "postgres.h"
#include "lib/stringinfo.h"

/* What the "metadata" object of an API response shows of a request. */
typedef struct RequestView
{
	int64		request_id;
	const char *status;
	const char *model;
	const char *currency;
	const char *provider;
	const char *provider_name;
	const char *executed_model;
	const char *upstream_id;
	int64		cost_estimate;
	int64		cost;			/* shown once the request is finished */
	bool		finished;
} RequestView;

extern void metadata_append(StringInfo buf, const RequestView *r);

/* Loads the view of a request; PB404 when unknown. Inside SPI. */
extern void request_view_load(int64 request_id, RequestView *r);

/*
 * Settles a request reaching its final state: the hold goes back to the
 * available amount, cost is charged (a usage ledger entry). Inside SPI.
 */
extern void request_settle(int64 account_id, int64 request_id, int64 hold, int64 cost);

#endif
