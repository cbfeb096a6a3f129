/* The durable event log (docs/events.md). */
#ifndef BILLING_EVENTS_H
#define BILLING_EVENTS_H

#include "postgres.h"

/*
 * Appends an event to billing.events in the current transaction through
 * billing._event, the one definition of the insert (it also sends NOTIFY
 * billing_events, delivered at commit). payload_json is a JSON object.
 * Runs inside an SPI connection; returns the event's id.
 */
extern int64 event_emit(int64 account_id, const char *type, const char *payload_json);

#endif
