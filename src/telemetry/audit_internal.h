/*
 * audit_internal.h - what the three parts of the audit trail share.
 *
 *   audit_record.c  one exchange -> one JSON line: copies, redaction, scrubbing, body encoding;
 *                   SHA-256 and base64 helpers; listing the audit files in chain order
 *   audit_writer.c  audit_start/stop/submit: the queue, the writer thread, files, rotation,
 *                   continuing the chain after a restart or a crash
 *   audit_verify.c  audit_verify and audit_show, for the command line
 *
 * docs/audit.md describes the file format for people; this header is the contract between the
 * parts. Nothing outside src/telemetry/audit_*.c includes it.
 */
#ifndef GATEHOUSE_TELEMETRY_AUDIT_INTERNAL_H
#define GATEHOUSE_TELEMETRY_AUDIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemetry/telemetry.h"
#include "util/buf.h"

#define AUDIT_HASH_HEX 65 /* 64 hex digits and a NUL */
#define AUDIT_FILE_MAX_BYTES (64L * 1024 * 1024)
#define AUDIT_QUEUE_MAX_ENTRIES 10000
#define AUDIT_QUEUE_MAX_BYTES (256L * 1024 * 1024)

/* One record waiting to be written: a private copy of an exchange, or a note of the writer's
 * own (kind "recovery" or "gap") that carries only its text in `error`. The struct and everything
 * it points to are one allocation (audit_entry_free frees it); every pointer may be NULL. The
 * copy still holds the secrets; they are redacted when the line is made, on the writer
 * thread. */
typedef struct audit_entry {
    struct audit_entry *next; /* queue link */
    char *request_id;
    char *kind;
    char *target;
    char *method;
    char *url;
    char **req_headers; /* "Name: value", NULL-terminated */
    char *req_body;     /* req_len bytes and a NUL after them (the bytes may hold NULs too) */
    size_t req_len;
    long status;
    char **resp_headers; /* "name: value", NULL-terminated */
    char *resp_body;     /* resp_len bytes and a NUL after them */
    size_t resp_len;
    double started_unix; /* wall clock, seconds since the epoch */
    double first_byte_s;
    double duration_s;
    char *error;
    bool record_content; /* bodies as bytes (true) or as their SHA-256 */
    size_t bytes;        /* body bytes held, for the queue's bound */
} audit_entry_t;

audit_entry_t *audit_entry_copy(const telemetry_exchange_t *x);
/* A record of the writer's own: kind "recovery" or "gap", stamped now, text in `error`. */
audit_entry_t *audit_entry_note(const char *kind, const char *text);
void audit_entry_free(audit_entry_t *e);

/* The record's JSON line, without a newline, appended to out. Always 0: any bytes can be
 * encoded (text or base64). The same rules as audit_entry_line. */
int audit_entry_format(const audit_entry_t *e, uint64_t seq, const char *prev, buf_t *out);

/* The record's JSON line, without a newline (caller frees), or NULL when it cannot be encoded.
 * Secret headers are redacted, and their values (and secret query parameters) are scrubbed
 * from the URL, every other header value, the bodies and the error. */
char *audit_entry_line(const audit_entry_t *e, uint64_t seq, const char *prev, size_t *len);

/* Lowercase hex SHA-256 of data. */
void audit_sha256_hex(const void *data, size_t len, char out[AUDIT_HASH_HEX]);
/* Standard base64 without line breaks (caller frees). */
char *audit_base64(const void *data, size_t len);
/* Decodes standard base64 (caller frees *out); -1 when the text is not base64. */
int audit_unbase64(const char *text, char **out, size_t *out_len);

/* "audit-YYYYMMDD-N.jsonl" files of a directory, in chain order (by N). */
typedef struct audit_file {
    char *name; /* owned */
    unsigned long number;
} audit_file_t;

/* Returns 0 and the files (possibly none), or -1 with errno set when dir cannot be read. */
int audit_files_list(const char *dir, audit_file_t **files, size_t *n);
void audit_files_free(audit_file_t *files, size_t n);

/* Unit tests only, before audit_start: a smaller rotation size and queue, so rotation and
 * dropping can be seen without writing 64 MiB. 0 restores a default. */
void audit_limits_for_tests(long file_max_bytes, size_t queue_max_entries);

#endif
