/*
 * exec_internal.h - pieces of the executor shared by its files and unit tests; not for other
 * modules (they use exec.h).
 */
#ifndef GATEHOUSE_CODEMODE_EXEC_INTERNAL_H
#define GATEHOUSE_CODEMODE_EXEC_INTERNAL_H

#include <jansson.h>

/* The execution socket's answer to call number seq: {"type":"return","seq":seq,"ok":true,
 * "value":...} built from a CallToolResult (structuredContent if present, else the parsed JSON
 * of its text when the text is JSON, else the text), or {"ok":false,"error":...} when the
 * result has isError or result is NULL (hub_error says why). *error_out is set to a malloc'd
 * copy of the error, or NULL when ok. New reference. */
json_t *codemode_return_frame(long seq, const json_t *result, const char *hub_error,
                              char **error_out);

#endif
