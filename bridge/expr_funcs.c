/*
 * expr_funcs.c: the test table (`is defined`, `is empty`, ...) and the function table (now(),
 * fromJson(), the 2.0 date helpers, ...). Same row-per-entry rule as expr_filters.c. Functions
 * that need the outside world (secret(), kv(), read(), render()) are deliberately absent: a
 * template calling them fails to compile. No I/O.
 */
#include "expr_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define F(name)                                                                                    \
    static struct ev name(struct ectx *cx, const struct node *n, struct ev in,                     \
                          const struct ev *args)

/* ==== Tests ==== */

/* DefinedTest, caught as PositiveTestExpression does: false for a missing name and for null. */
F(t_defined)
{
    (void)cx, (void)n, (void)args;
    return ev_bool(in.kind != EV_ERR && in.kind != EV_NULL);
}

F(t_null)
{
    (void)cx, (void)n, (void)args;
    return ev_bool(in.kind == EV_NULL);
}

F(t_empty)
{
    (void)cx, (void)n, (void)args;
    return ev_bool(ev_empty(in));
}

/* EvenTest/OddTest cast to Integer or Long: decimals and other types fail. */
F(t_even)
{
    (void)args;
    bool odd = n->fn->name[0] == 'o';
    if (in.kind == EV_INT) {
        return ev_bool(((in.i % 2) != 0) == odd);
    }
    if (in.kind == EV_UINT) {
        return ev_bool((in.u % 2 != 0) == odd);
    }
    return ev_err(cx, false, "test '%s' needs an integer, got %s (%s)", n->fn->name,
                  ev_type_name(in), node_text(cx, n->a));
}

F(t_iterable)
{
    (void)cx, (void)n, (void)args;
    return ev_bool(in.kind == EV_LIST);
}

F(t_map)
{
    (void)cx, (void)n, (void)args;
    return ev_bool(in.kind == EV_MAP);
}

/* Kestra's JsonTest: does the text parse as JSON? */
F(t_json)
{
    (void)n, (void)args;
    if (in.kind == EV_NULL) {
        return ev_bool(false);
    }
    struct ev s = ev_tostring(cx, in);
    if (s.kind == EV_ERR) {
        return s;
    }
    struct ev v = expr_json_parse(cx, s.s, s.len);
    return ev_bool(v.kind != EV_ERR);
}

static const struct expr_fn TESTS[] = {
    {"defined", 0, 0, FN_CATCH_UNDEF | FN_NULL_IN_OK, {0}, t_defined, NULL},
    {"empty", 0, 0, FN_NULL_IN_OK, {0}, t_empty, NULL},
    {"even", 0, 0, 0, {0}, t_even, NULL},
    {"iterable", 0, 0, FN_NULL_IN_OK, {0}, t_iterable, NULL},
    {"json", 0, 0, FN_NULL_IN_OK, {0}, t_json, NULL},
    {"map", 0, 0, FN_NULL_IN_OK, {0}, t_map, NULL},
    {"null", 0, 0, FN_NULL_IN_OK, {0}, t_null, NULL},
    {"odd", 0, 0, 0, {0}, t_even, NULL},
};

/* ==== Dates ==== */

/* "H", "HH", "H:MM" or "HH:MM" as seconds. */
static bool parse_hhmm(const char *s, size_t len, int32_t *secs)
{
    const char *colon = memchr(s, ':', len);
    size_t hl = colon ? (size_t)(colon - s) : len;
    size_t ml = colon ? len - hl - 1 : 0;
    if (hl < 1 || hl > 2 || (colon && ml != 2)) {
        return false;
    }
    int h = 0, m = 0;
    for (size_t i = 0; i < len; i++) {
        if (s + i == colon) {
            continue;
        }
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        if (i < hl) {
            h = h * 10 + (s[i] - '0');
        } else {
            m = m * 10 + (s[i] - '0');
        }
    }
    *secs = h * 3600 + m * 60;
    return h <= 18 && m <= 59;
}

struct ev expr_zone_offset(struct ectx *cx, struct ev tz, int32_t *offset)
{
    if (tz.kind != EV_STR) {
        return ev_err(cx, false, "timeZone must be a string");
    }
    struct strv z = {tz.s, tz.len};
    static const char *const UTC[] = {"UTC", "GMT", "Z", "Etc/UTC", "Etc/GMT", "UT"};
    for (size_t i = 0; i < ARRAY_LEN(UTC); i++) {
        if (strv_eq_cstr(z, UTC[i])) {
            *offset = 0;
            return ev_bool(true);
        }
    }
    size_t skip = (z.len > 3 && (!memcmp(z.ptr, "UTC", 3) || !memcmp(z.ptr, "GMT", 3))) ? 3 : 0;
    int32_t secs;
    if (z.len > skip + 1 && (z.ptr[skip] == '+' || z.ptr[skip] == '-') &&
        parse_hhmm(z.ptr + skip + 1, z.len - skip - 1, &secs)) {
        *offset = z.ptr[skip] == '-' ? -secs : secs;
        return ev_bool(true);
    }
    return ev_err(cx, false, "time zone '%.*s' is not supported: use UTC or an offset like +02:00",
                  (int)(tz.len > 40 ? 40 : tz.len), tz.s);
}

/* DateUtils.parseLocalDate on the argument's text. */
static struct ev local_days(struct ectx *cx, struct ev v, const char *fname, int64_t *days)
{
    v = ev_tostring(cx, v);
    if (v.kind == EV_ERR) {
        return v;
    }
    if (!expr_parse_local_date(v.s, v.len, days)) {
        return ev_err(cx, false, "%s() could not parse its date (ISO-8601 date or date-time)",
                      fname);
    }
    return ev_bool(true);
}

F(fn_now)
{
    (void)in, (void)n;
    struct expr_time tm = {.secs = cx->now.tv_sec, .nanos = (int32_t)cx->now.tv_nsec};
    if (ARG_GIVEN(args[1])) {
        struct ev ok = expr_zone_offset(cx, args[1], &tm.offset);
        if (ok.kind == EV_ERR) {
            return ok;
        }
    }
    struct ev fmt = ARG_GIVEN(args[0]) ? ev_tostring(cx, args[0]) : ev_str("iso", 3);
    return fmt.kind == EV_ERR ? fmt : expr_format_date(cx, &tm, fmt.s, fmt.len);
}

static const char *const DAY_NAMES[] = {"MONDAY", "TUESDAY",  "WEDNESDAY", "THURSDAY",
                                        "FRIDAY", "SATURDAY", "SUNDAY"};

/* dayOfWeek, dayOfMonth, monthOfYear, isWeekend (Kestra 2.0 helpers). */
F(fn_date_part)
{
    (void)in;
    int64_t days;
    const char *name = n->fn->name;
    struct ev ok = local_days(cx, args[0], name, &days);
    if (ok.kind == EV_ERR) {
        return ok;
    }
    int y, m, d, wd = expr_weekday(days);
    expr_civil(days, &y, &m, &d);
    if (!strcmp(name, "dayOfWeek")) {
        return ev_str(DAY_NAMES[wd - 1], strlen(DAY_NAMES[wd - 1]));
    }
    if (!strcmp(name, "dayOfMonth")) {
        return ev_int(d);
    }
    if (!strcmp(name, "monthOfYear")) {
        return ev_int(m);
    }
    return ev_bool(wd >= 6);
}

F(fn_hour_of_day)
{
    (void)in, (void)n;
    struct expr_time tm;
    struct ev s = ev_tostring(cx, args[0]);
    if (s.kind == EV_ERR) {
        return s;
    }
    if (!expr_parse_datetime(s.s, s.len, &tm) && !expr_parse_local_datetime(s.s, s.len, &tm)) {
        return ev_err(cx, false, "hourOfDay() could not parse its date-time");
    }
    int64_t local = tm.secs + tm.offset;
    int64_t sod = ((local % 86400) + 86400) % 86400;
    return ev_int(sod / 3600);
}

/* 1..7 for MONDAY..SUNDAY (any case), 0 otherwise. */
int expr_day_of_week(const char *s, size_t len)
{
    for (int i = 0; i < 7; i++) {
        if (len == strlen(DAY_NAMES[i]) && !strncasecmp(s, DAY_NAMES[i], len)) {
            return i + 1;
        }
    }
    return 0;
}

/* 1..4 for FIRST..FOURTH, 5 for LAST, 0 otherwise. */
int expr_day_in_month(const char *s, size_t len)
{
    static const char *const POS[] = {"FIRST", "SECOND", "THIRD", "FOURTH", "LAST"};
    for (int i = 0; i < 5; i++) {
        if (len == strlen(POS[i]) && !strncasecmp(s, POS[i], len)) {
            return i + 1;
        }
    }
    return 0;
}

/* The TemporalAdjusters arithmetic of DayWeekInMonth: is `days` the pos-th `dow` of its month? */
bool expr_is_day_week_in_month(int64_t days, int dow, int pos)
{
    int y, m, d;
    expr_civil(days, &y, &m, &d);
    if (expr_weekday(days) != dow) {
        return false;
    }
    if (pos == 5) {
        int y2, m2, d2;
        expr_civil(days + 7, &y2, &m2, &d2);
        return m2 != m;
    }
    return (d - 1) / 7 + 1 == pos;
}

F(fn_is_day_week_in_month)
{
    (void)in, (void)n;
    int64_t days;
    struct ev ok = local_days(cx, args[0], "isDayWeekInMonth", &days);
    if (ok.kind == EV_ERR) {
        return ok;
    }
    struct ev dw = ev_tostring(cx, args[1]), pos = ev_tostring(cx, args[2]);
    if (dw.kind == EV_ERR || pos.kind == EV_ERR) {
        return dw.kind == EV_ERR ? dw : pos;
    }
    int dow = expr_day_of_week(dw.s, dw.len), p = expr_day_in_month(pos.s, pos.len);
    if (!dow || !p) {
        return ev_err(cx, false, "isDayWeekInMonth(): invalid %s",
                      dow ? "position (FIRST, SECOND, THIRD, FOURTH, LAST)"
                          : "dayOfWeek (MONDAY ... SUNDAY)");
    }
    return ev_bool(expr_is_day_week_in_month(days, dow, p));
}

/* ==== Other functions ==== */

F(fn_from_json)
{
    (void)in;
    if (args[0].kind == EV_NULL) {
        return args[0];
    }
    if (args[0].kind != EV_STR) {
        return ev_err(cx, false, "function '%s' expects a string, got %s", n->fn->name,
                      ev_type_name(args[0]));
    }
    return expr_json_parse(cx, args[0].s, args[0].len);
}

/* Pebble's max()/min(): numbers compared by value. */
F(fn_max)
{
    (void)in;
    bool want_max = n->fn->name[1] == 'a';
    struct ev best = ev_absent();
    for (size_t i = 0; i < EXPR_MAX_ARGS && ARG_GIVEN(args[i]); i++) {
        if (!ev_is_num(args[i])) {
            return ev_err(cx, false, "function '%s' compares numbers, got %s", n->fn->name,
                          ev_type_name(args[i]));
        }
        int c = ARG_GIVEN(best) ? ev_cmp_num(args[i], best) : 0;
        if (!ARG_GIVEN(best) || (want_max ? c > 0 : c < 0)) {
            best = args[i];
        }
    }
    return best;
}

F(fn_range)
{
    (void)in, (void)n;
    int64_t step = 1;
    if (args[0].kind != EV_INT || args[1].kind != EV_INT ||
        (ARG_GIVEN(args[2]) && args[2].kind != EV_INT)) {
        return ev_err(cx, false, "range() needs integers");
    }
    if (ARG_GIVEN(args[2])) {
        step = args[2].i;
    }
    if (step == 0) {
        return ev_err(cx, false, "range(): the increment cannot be 0");
    }
    int64_t from = args[0].i, to = args[1].i;
    double count = step > 0 ? floor(((double)to - (double)from) / (double)step) + 1
                            : floor(((double)from - (double)to) / (double)-step) + 1;
    if (count < 0) {
        count = 0;
    }
    if (count > EXPR_MAX_RANGE) {
        return ev_err(cx, false, "range() of more than %d elements", EXPR_MAX_RANGE);
    }
    msgpack_object *items;
    struct ev r = ev_new_list(cx, (size_t)count, &items);
    for (size_t i = 0; r.kind != EV_ERR && i < (size_t)count; i++) {
        ev_to_obj(ev_int(from + (int64_t)i * step), &items[i]);
    }
    return r;
}

static const struct expr_fn FUNCTIONS[] = {
    {"dayOfMonth", 1, 1, 0, {"date"}, fn_date_part, NULL},
    {"dayOfWeek", 1, 1, 0, {"date"}, fn_date_part, NULL},
    {"fromJson", 1, 1, 0, {"json"}, fn_from_json, NULL},
    {"hourOfDay", 1, 1, 0, {"date"}, fn_hour_of_day, NULL},
    {"isDayWeekInMonth", 3, 3, 0, {"date", "dayOfWeek", "position"}, fn_is_day_week_in_month, NULL},
    {"isWeekend", 1, 1, 0, {"date"}, fn_date_part, NULL},
    {"json", 1, 1, 0, {"json"}, fn_from_json, NULL},
    {"max", 1, 4, 0, {0}, fn_max, NULL},
    {"min", 1, 4, 0, {0}, fn_max, NULL},
    {"monthOfYear", 1, 1, 0, {"date"}, fn_date_part, NULL},
    {"now", 0, 2, 0, {"format", "timeZone"}, fn_now, NULL},
    {"range", 2, 3, 0, {"start", "end", "increment"}, fn_range, NULL},
};

static const struct expr_fn *find(const struct expr_fn *t, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0) {
            return &t[i];
        }
    }
    return NULL;
}

const struct expr_fn *expr_find_test(const char *name, size_t len)
{
    return find(TESTS, ARRAY_LEN(TESTS), name, len);
}

const struct expr_fn *expr_find_function(const char *name, size_t len)
{
    return find(FUNCTIONS, ARRAY_LEN(FUNCTIONS), name, len);
}
