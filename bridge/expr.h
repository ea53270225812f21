/*
 * expr.h: the Pebble subset Kestra flows use in trigger conditions. A template is compiled once,
 * when flows load, and rendered per request against the message being published. No I/O: the
 * evaluator reads the msgpack message in place and writes only into the caller's buffer.
 */
#ifndef BRIDGE_EXPR_H
#define BRIDGE_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <msgpack.h>

#include "diag.h"
#include "util.h"

/**
 * Compatibility modes (config `kestra_compat`). EXPR_COMPAT_DEFAULT (also 0) is Kestra 0.20-1.x:
 * `??`, `???` and `isIn` bind at Pebble precedence 120 (tighter than `|`, `~`, arithmetic and
 * comparisons), `<` `>` `<=` `>=` compare numbers only, `-` `*` `/` `%` refuse strings, and null
 * map entries are printed. EXPR_COMPAT_2 is Kestra 2.0: those operators bind at 30 (level with
 * `==`), two strings compare lexicographically by UTF-16 code units, numeric strings take part in
 * `-` `*` `/` `%` (Pebble 4.1), null map entries are left out of printed JSON, and DateTimeBetween
 * bounds are inclusive.
 */
#define EXPR_COMPAT_DEFAULT 1
#define EXPR_COMPAT_2 2

/*
 * What differs from Kestra, on purpose (see reference/kestra-webhook.md for the rules we follow):
 * - Numbers compare by value everywhere: `==`, `contains`, list and map equality (Kestra's
 *   Integer-vs-Long mismatch makes `ids contains 1` false); two integers compare exactly (Pebble
 *   goes through doubles, so 2^53 + 1 == 2^53 there).
 * - Unknown filters, tests, functions and tags fail at compile time, so at flow load, not per
 *   request. Not provided, hence compile errors: functions that reach outside the request
 *   (secret, kv, read, render, http, encrypt, ...), random ones (uuid, randomInt, ...), and the
 *   filters jq, yaml, dateAdd, timestamp*, chunk, flatten, indent, escapeChar, numberFormat,
 *   abbreviate. Regular expressions are not supported (replace with regexp=true, split on a
 *   pattern; split on literal text or an escaped character works), nor date's existingFormat.
 * - Time zones are UTC (Kestra's default zone on a UTC server) or fixed offsets ("+02:00");
 *   region names such as Europe/Paris are an evaluation error.
 * - `first`/`last` of a string give a one-character string (Java gives a Character, which never
 *   equals a string); `slice` on a string counts characters, not UTF-16 units.
 * - lower/upper/capitalize/title map ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (and
 *   ß → SS); other scripts are left as they are.
 * - Map literals and `replace` pairs keep their written order (Pebble uses a HashMap).
 * - `number` returns longs and doubles only (no Float/BigDecimal/BigInteger objects).
 * - On a string, only the members length, empty/isEmpty, blank/isBlank and toString answer.
 */

/* Limits. Compilation refuses larger or deeper templates; evaluation fails (an error, never a
 * crash) when a limit is reached. There are no loops, so every render is bounded by these. */
#define EXPR_MAX_TEXT (256 * 1024)         /* bytes of template text */
#define EXPR_MAX_DEPTH 64                  /* nesting of brackets, operators, tags */
#define EXPR_MAX_STRING (1024 * 1024)      /* one string built during evaluation */
#define EXPR_MAX_OUTPUT (4 * 1024 * 1024)  /* rendered output of one template */
#define EXPR_MAX_MEMORY (16 * 1024 * 1024) /* all temporary values of one render */
#define EXPR_MAX_RANGE 10000               /* elements made by `a..b` or range() */

/** A compile error: where (byte offset into the template text) and what. */
struct expr_error {
    size_t offset;
    char msg[192];
};

/** A compiled template. Immutable once built, so one program may be rendered from any thread. */
struct expr_prog;

/**
 * What a template can read. Every pointer is borrowed for the duration of one render.
 *
 * - `trigger` is the message's trigger.variables map (keys `headers`, `parameters` and, when the
 *   request had a body, `body`); header and parameter values are arrays of strings. NULL makes
 *   `trigger` undefined. A missing `body` key makes `trigger.body` undefined (strict variables:
 *   reading it is an error unless guarded by `is defined`, `??`, `???` or `default`).
 * - `flow_id`, `ns`, `tenant` become `flow.id`, `flow.namespace`, `flow.tenantId` (tenantId is
 *   undefined when tenant.ptr is NULL); `execution_id` becomes `execution.id`.
 * - `labels` is a msgpack map of the execution's labels, or NULL for none (`labels` is then `{}`).
 * - `now` is what now() and execution.startDate return; {0, 0} means "read CLOCK_REALTIME".
 *   Tests pass a fixed time so results are reproducible. Times are printed in UTC.
 * - `compat` selects run-time rules (string comparison, null printing, arithmetic on strings):
 *   0 means "the mode the program was compiled with"; 1 or 2 overrides it. Pass the same value
 *   you compiled with.
 */
struct expr_env {
    const msgpack_object *trigger;
    struct strv flow_id;
    struct strv ns;
    struct strv tenant;
    struct strv execution_id;
    const msgpack_object *labels;
    struct timespec now;
    int compat;
    /*
     * Optional: when set, `execution` is this map instead of {id, startDate} (a webhook's
     * responseCode is rendered against the finished execution: id, state, outputs, ...).
     */
    const msgpack_object *execution;
};

/**
 * Compiles `len` bytes of template text: literal text with `{{ expression }}` print segments,
 * `{% if %}` / `{% elseif %}` / `{% else %}` / `{% endif %}` tags (Pebble's spelling; `elif` is
 * an error that says so) and `{# comments #}`, with Pebble's `{{-` / `-}}` whitespace control.
 * String literals take either quote; as in Pebble only `\'`, `\"` and `\\` are escapes, and
 * `"#{ expr }"` interpolates. `text` need not be NUL-terminated and is copied. `compat` is
 * EXPR_COMPAT_DEFAULT (or 0) or EXPR_COMPAT_2 and fixes operator precedence.
 *
 * Unknown filters, tests, functions and tags, wrong argument counts, integer literals beyond 64
 * bits and unsupported Pebble features (method calls, `for`, `set`, macros) are compile errors,
 * so a flow that cannot work is rejected at load time.
 *
 * Returns a new program (free with expr_free), or NULL with *err filled (err may be NULL).
 */
struct expr_prog *expr_compile(const char *text, size_t len, int compat, struct expr_error *err);

/** Frees a program; NULL is a no-op. */
void expr_free(struct expr_prog *prog);

/** The template text the program was compiled from (NUL-terminated copy, borrowed). */
const char *expr_text(const struct expr_prog *prog, size_t *len);

/** True when the template has no `{{ }}` or `{% %}` segment: it always renders to its own text. */
bool expr_is_constant(const struct expr_prog *prog);

/**
 * Renders prog against env, appending the text to `out` (which the caller owns and may reuse).
 * Printing follows Kestra: null prints nothing, lists and maps print as compact JSON, decimals as
 * Java's Double.toString, booleans as true/false.
 *
 * Returns 0 on success. On failure returns -EINVAL (an evaluation error: an undefined variable in
 * strict mode, a type error, ...) or -E2BIG (a limit from the list above), writes a one-line
 * reason into `why` (whysz bytes, may be 0) and leaves whatever was rendered so far in `out`.
 * The reason quotes parts of the template and the keys that were looked up, not message values.
 */
int expr_render(const struct expr_prog *prog, const struct expr_env *env, struct sbuf *out,
                char *why, size_t whysz);

/**
 * Same as expr_render, and sets *wrote (optional) to false when the template wrote nothing at all:
 * no literal text and only null values. Kestra 2.0 renders such a template to null rather than
 * to "", which matters for the `when` rule (expr_when_true).
 */
int expr_render_ex(const struct expr_prog *prog, const struct expr_env *env, struct sbuf *out,
                   bool *wrote, char *why, size_t whysz);

struct prune_paths;

/**
 * Adds to `reads` (prune.h) what rendering prog can read of `trigger` (env->trigger), so that
 * the caller may unpack only that part of the message. A chain of constant string member
 * accesses from `trigger` (`trigger.body.ref`, `trigger.headers['X-GitHub-Event']`) adds its
 * path, read whole at its end; before a step with a dynamic or non-string key
 * (`trigger.body[x]`, `trigger.body[0]`) the path so far is read whole; `trigger` used in any
 * other way (printed, filtered, compared) marks the root of `reads` whole: everything. A
 * template that never names `trigger` adds nothing. Runs at load; never called per request.
 */
void expr_trigger_reads(const struct expr_prog *prog, struct prune_paths *reads);

/**
 * Kestra's truth rule for the Expression condition: false only when the rendered text is blank
 * (Java isBlank: only white space) or trims (Java trim) to exactly "false". "False", "0", "null"
 * and "no" are true.
 */
bool expr_kestra_true(const char *text, size_t len);

/**
 * Kestra 2.0's truth rule for a trigger's `when`: false when the rendered text trims to "false",
 * "0", "-0" or "" (case-sensitive); anything else is true. A template that rendered to null
 * (expr_render_ex set *wrote to false) is not falsy; the caller handles that case.
 */
bool expr_when_true(const char *text, size_t len);

/* ==== Dates, as java.time reads them (shared with the date conditions in cond.c) ==== */

/** An instant with the UTC offset it was written with. */
struct expr_time {
    int64_t secs;   /* seconds since 1970-01-01T00:00:00Z */
    int32_t nanos;  /* 0..999999999 */
    int32_t offset; /* seconds east of UTC */
};

/**
 * ZonedDateTime.parse: "2024-05-06T10:15:30+02:00", "…Z", an optional fraction of up to nine
 * digits, optional seconds, and an optional "[Region/City]" suffix that is accepted but not
 * interpreted (the offset decides). Dates are checked (2023-02-29 fails). Returns false when the
 * text is not in that form.
 */
bool expr_parse_datetime(const char *s, size_t len, struct expr_time *t);

/** Kestra's DateUtils.parseLocalDate: "2024-05-06", or a zoned date-time's date in its own
 * offset. Sets *days to the days since 1970-01-01. */
bool expr_parse_local_date(const char *s, size_t len, int64_t *days);

/** OffsetTime.parse ("16:00:00+02:00"): *nanos_utc is the time's place on the UTC line within
 * a day (possibly negative or past 24 h), which is what OffsetTime.isAfter/isBefore compare. */
bool expr_parse_offset_time(const char *s, size_t len, int64_t *nanos_utc);

/** ISO day of week of a day number: 1 = Monday ... 7 = Sunday. */
int expr_weekday(int64_t days);

/** "MONDAY".."SUNDAY" (any case) → 1..7; 0 for anything else. */
int expr_day_of_week(const char *s, size_t len);

/** "FIRST".."FOURTH" → 1..4, "LAST" → 5 (any case); 0 for anything else. */
int expr_day_in_month(const char *s, size_t len);

/** DayWeekInMonth: is `days` the pos-th (1..4, 5 = last) weekday `dow` (1..7) of its month? */
bool expr_is_day_week_in_month(int64_t days, int dow, int pos);

/** How a YAML scalar holding a template was written, for mapping offsets to columns. */
enum expr_src_style {
    EXPR_SRC_AUTO = 0, /* look at the file text at (line, col); plain when it is unavailable */
    EXPR_SRC_PLAIN,
    EXPR_SRC_SINGLE,  /* '...' */
    EXPR_SRC_DOUBLE,  /* "..." */
    EXPR_SRC_LITERAL, /* | block */
    EXPR_SRC_FOLDED,  /* > block */
};

/** Where a template's text sits in its YAML file. */
struct expr_src {
    int line; /* 1-based line of the scalar node (struct yml_node line) */
    int col;  /* 1-based column of the scalar node, in characters */
    enum expr_src_style style;
    const char *file_text; /* optional: the whole file, NUL-terminated (struct yml_doc text) */
};

/**
 * Maps err->offset in the template `text` (len bytes: the scalar's value) to a 1-based line and
 * column (in characters) of the YAML file. With src->file_text the source is walked in step with
 * the value, undoing quoting, escapes, line folding and block indentation, so the position is
 * exact for plain, quoted and literal scalars. Without the file text, or where the walk loses
 * step (unusual escapes, folded blocks with more-indented lines), the result is approximate:
 * the scalar's line and its column plus the offset. Returns true when the position is exact.
 */
bool expr_error_locate(const struct expr_error *err, const char *text, size_t len,
                       const struct expr_src *src, int *line, int *col);

/**
 * Appends err to dl as "file:line:col: message" (position from expr_error_locate) with a snippet:
 * the source line with a caret under the offending character when src->file_text is given,
 * otherwise the template line with the caret. `file` and `src` may be NULL (then the position
 * is the offset within the template, on line 1).
 */
void expr_error_report(const struct expr_error *err, const char *text, size_t len, const char *file,
                       const struct expr_src *src, struct diag_list *dl);

#endif
