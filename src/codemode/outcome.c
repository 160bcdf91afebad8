/*
 * outcome.c - the two translations at the edges of an execution: a tool's CallToolResult into
 * the value a script's call returns, and an execution's outcome into the compact text the
 * model reads (codemode_outcome_format, exec.h; the format is documented in docs/code-mode.md).
 *
 * Both are pure functions of their input, so they are unit tested on their own
 * (tests/unit/test_codemode_exec.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codemode/exec.h"
#include "codemode/exec_internal.h"
#include "mcp/content.h"
#include "util/alloc.h"
#include "util/buf.h"

#define CALL_ERROR_MAX 200 /* bytes of a tool call's error shown in the list of calls */
#define ERROR_MAX 1000     /* bytes of the script's error message */
#define HINT_MAX 300       /* bytes of the hint */

/* ---- CallToolResult -> return frame --------------------------------------------------------- */

/* The text of a result, without the "Error: " prefix content.h puts before a failure's text. */
static char *result_text(const json_t *result, bool *is_error)
{
    char *text = mcp_content_text(result, is_error);
    size_t n = strlen(MCP_CONTENT_ERROR_PREFIX);
    if (*is_error && strncmp(text, MCP_CONTENT_ERROR_PREFIX, n) == 0)
        memmove(text, text + n, strlen(text + n) + 1);
    return text;
}

json_t *codemode_return_frame(long seq, const json_t *result, const char *hub_error,
                              char **error_out)
{
    json_t *frame = json_pack("{s:s, s:I}", "type", "return", "seq", (json_int_t)seq);
    *error_out = NULL;
    if (result == NULL) {
        *error_out = xstrdup(hub_error != NULL ? hub_error : "the tool call failed");
        json_object_set_new(frame, "ok", json_false());
        json_object_set_new(frame, "error", json_string(*error_out));
        return frame;
    }

    bool is_error = false;
    char *text = result_text(result, &is_error);
    const json_t *structured = json_object_get(result, "structuredContent");
    if (is_error) {
        *error_out = text[0] != '\0' ? text : xstrdup("the tool reported an error");
        if (text != *error_out)
            free(text);
        json_object_set_new(frame, "ok", json_false());
        json_object_set_new(frame, "error", json_string(*error_out));
        return frame;
    }

    json_t *value;
    if (structured != NULL && !json_is_null(structured)) {
        value = json_deep_copy(structured);
    } else {
        value = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (value == NULL)
            value = json_string(text);
    }
    free(text);
    if (value == NULL) /* text that is not valid UTF-8 */
        value = json_null();
    json_object_set_new(frame, "ok", json_true());
    json_object_set_new(frame, "value", value);
    return frame;
}

/* ---- done frame -> outcome ------------------------------------------------------------------- */

const char *codemode_done_status(const json_t *done)
{
    static const char *const statuses[] = {"ok", "syntax", "runtime", "tool", "limit"};
    const char *s = json_string_value(json_object_get(done, "status"));
    for (size_t i = 0; s != NULL && i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(s, statuses[i]) == 0)
            return s;
    }
    return NULL;
}

void codemode_outcome_from_done(const json_t *done, long output_bytes, codemode_outcome_t *o,
                                char **output_owned)
{
    const json_t *err = json_object_get(done, "error");
    o->output_truncated = json_is_true(json_object_get(done, "output_truncated"));
    const char *out = json_string_value(json_object_get(done, "output"));
    out = out != NULL ? out : "";
    size_t n = strlen(out);
    size_t max = output_bytes > 0 ? (size_t)output_bytes : 0;
    if (n > max) { /* the child should have cut it; never pass more than the limit on */
        while (max > 0 && (out[max] & 0xC0) == 0x80)
            max--;
        n = max;
        o->output_truncated = true;
    }
    *output_owned = xstrndup(out, n);
    o->output = *output_owned;

    const json_t *result = json_object_get(done, "result");
    o->result = result != NULL && !json_is_null(result) ? result : NULL;
    o->error_type = json_string_value(json_object_get(err, "type"));
    o->error_message = json_string_value(json_object_get(err, "message"));
    json_int_t line = json_integer_value(json_object_get(err, "line"));
    o->error_line = line > 0 && line < 1000000000 ? (int)line : 0;
    o->hint = json_string_value(json_object_get(err, "hint"));
}

/* ---- outcome -> text for the model ---------------------------------------------------------- */

static void append_duration(buf_t *b, double s)
{
    double ms = s * 1000.0;
    if (ms < 10.0)
        buf_appendf(b, "%.1fms", ms);
    else
        buf_appendf(b, "%.0fms", ms);
}

/* One line of at most max bytes: line breaks become spaces; a cut ends with "...". */
static void append_one_line(buf_t *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    size_t take = n > max ? max : n;
    while (take > 0 && take < n && (s[take] & 0xC0) == 0x80) /* not inside a UTF-8 char */
        take--;
    for (size_t i = 0; i < take; i++)
        buf_appendc(b, s[i] == '\n' || s[i] == '\r' ? ' ' : s[i]);
    if (take < n)
        buf_appends(b, "...");
}

static void append_error(buf_t *b, const codemode_outcome_t *o)
{
    buf_appends(b, "error: ");
    if (o->error_type != NULL && o->error_type[0] != '\0')
        buf_appendf(b, "%s: ", o->error_type);
    /* One line each, whatever the messages hold: the format is line-oriented. */
    append_one_line(b, o->error_message != NULL ? o->error_message : "(no message)", ERROR_MAX);
    if (o->error_line > 0)
        buf_appendf(b, " (line %d)", o->error_line);
    buf_appendc(b, '\n');
    if (o->hint != NULL && o->hint[0] != '\0') {
        buf_appends(b, "hint: ");
        append_one_line(b, o->hint, HINT_MAX);
        buf_appendc(b, '\n');
    }
}

static void append_calls(buf_t *b, const codemode_outcome_t *o)
{
    buf_appendf(b, "tool calls: %zu\n", o->n_calls);
    for (size_t i = 0; i < o->n_calls; i++) {
        const codemode_call_record_t *c = &o->calls[i];
        buf_appendf(b, "  %zu. %s.%s ", i + 1, c->server_py, c->tool_py);
        append_duration(b, c->duration_s);
        if (c->ok) {
            buf_appends(b, " ok\n");
            continue;
        }
        buf_appends(b, " error: ");
        append_one_line(b, c->error != NULL ? c->error : "(no message)", CALL_ERROR_MAX);
        buf_appendc(b, '\n');
    }
}

char *codemode_outcome_format(const codemode_outcome_t *o)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, "status: %s (", o->status);
    append_duration(&b, o->duration_s);
    buf_appends(&b, ")\n");
    if (strcmp(o->status, "ok") != 0)
        append_error(&b, o);

    append_calls(&b, o);

    if (o->result != NULL) {
        char *json = json_dumps(o->result, JSON_COMPACT | JSON_ENCODE_ANY);
        buf_appendf(&b, "result: %s\n", json != NULL ? json : "null");
        free(json);
    } else {
        buf_appends(&b, "result: (not set)\n");
    }

    /* The output goes last: it is free text and may hold anything, even lines that look like
     * the fields above, so everything after "output:" is output. */
    const char *out = o->output != NULL ? o->output : "";
    if (out[0] == '\0') {
        buf_appends(&b, o->output_truncated ? "output (cut): (none)\n" : "output: (none)\n");
    } else {
        buf_appends(&b, o->output_truncated ? "output (cut at the limit):\n" : "output:\n");
        buf_appends(&b, out);
        if (out[strlen(out) - 1] != '\n')
            buf_appendc(&b, '\n');
    }
    return buf_release(&b);
}
