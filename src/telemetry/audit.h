/*
 * audit.h - the audit trail: every upstream exchange exactly as sent and received, in
 * append-only, hash-chained files under <data-dir>/audit/.
 *
 * Each record is one JSON line carrying the SHA-256 of the previous record, so changing,
 * inserting or deleting any record breaks the chain at a point `gatehouse audit verify` can
 * name. Worker threads hand exchanges to audit_submit, which copies and queues them; one writer
 * thread redacts secret headers, writes, and fsyncs in batches. Bodies are recorded as bytes
 * (base64 when they are not UTF-8) or, when content recording is off, as their SHA-256.
 */
#ifndef GATEHOUSE_TELEMETRY_AUDIT_H
#define GATEHOUSE_TELEMETRY_AUDIT_H

#include <stdio.h>

#include "config/config.h"
#include "telemetry/telemetry.h"

int audit_start(const config_t *cfg, const char *data_dir);
void audit_stop(void);
/* Queues one exchange. Never blocks. */
void audit_submit(const telemetry_exchange_t *x);

/* `gatehouse audit verify DIR`: checks every file and the chain across them. Prints the first
 * broken record (file, line, sequence number, what is wrong). Returns the exit status: 0 when
 * intact, 1 when broken, 2 when unreadable. */
int audit_verify(const char *dir, FILE *out);
/* `gatehouse audit show REQUEST_ID`: prints the exchanges behind one client request. */
int audit_show(const char *dir, const char *request_id, FILE *out);

#endif
