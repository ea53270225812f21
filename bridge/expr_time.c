/*
 * expr_time.c: the dates conditions and templates need: ISO-8601 parsing as java.time does it
 * (ZonedDateTime.parse, LocalDate.parse, OffsetTime.parse), civil-calendar arithmetic, and a
 * subset of DateTimeFormatter patterns for now() and the `date` filter. Time zones are UTC or
 * fixed offsets (no tz database). No I/O.
 */
#include "expr_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Calendar ==== */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void expr_civil(int64_t days, int *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

int expr_weekday(int64_t days)
{
    return (int)(((days % 7) + 7 + 3) % 7) + 1; /* 1970-01-01 was a Thursday (4) */
}

static int days_in_month(int64_t y, int m)
{
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : DAYS[m - 1];
}

/* ==== Parsing ==== */

struct cursor {
    const char *s;
    size_t len, i;
};

static bool digits(struct cursor *c, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        if (c->i >= c->len || c->s[c->i] < '0' || c->s[c->i] > '9') {
            return false;
        }
        v = v * 10 + (c->s[c->i++] - '0');
    }
    *out = v;
    return true;
}

static bool lit(struct cursor *c, char ch)
{
    if (c->i < c->len && c->s[c->i] == ch) {
        c->i++;
        return true;
    }
    return false;
}

static bool parse_date(struct cursor *c, int64_t *days)
{
    int y, m, d;
    if (!digits(c, 4, &y) || !lit(c, '-') || !digits(c, 2, &m) || !lit(c, '-') ||
        !digits(c, 2, &d) || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) {
        return false;
    }
    *days = days_from_civil(y, m, d);
    return true;
}

/* HH:mm[:ss[.fraction]] (ISO_LOCAL_TIME) */
static bool parse_time(struct cursor *c, int64_t *secs, int32_t *nanos)
{
    int h, mi, s = 0;
    *nanos = 0;
    if (!digits(c, 2, &h) || !lit(c, ':') || !digits(c, 2, &mi) || h > 23 || mi > 59) {
        return false;
    }
    if (lit(c, ':')) {
        if (!digits(c, 2, &s) || s > 59) {
            return false;
        }
        if (lit(c, '.')) {
            int n = 0;
            int32_t f = 0;
            while (c->i < c->len && c->s[c->i] >= '0' && c->s[c->i] <= '9' && n < 9) {
                f = f * 10 + (c->s[c->i++] - '0');
                n++;
            }
            for (int k = n; k < 9; k++) {
                f *= 10;
            }
            *nanos = f;
        }
    }
    *secs = h * 3600 + mi * 60 + s;
    return true;
}

/* Z, or +HH:MM[:SS] / -HH:MM[:SS] (appendOffsetId). */
static bool parse_offset(struct cursor *c, int32_t *offset)
{
    if (lit(c, 'Z')) {
        *offset = 0;
        return true;
    }
    int sign = lit(c, '+') ? 1 : lit(c, '-') ? -1 : 0;
    int h, m, s = 0;
    if (!sign || !digits(c, 2, &h) || !lit(c, ':') || !digits(c, 2, &m) || h > 18 || m > 59) {
        return false;
    }
    if (lit(c, ':') && (!digits(c, 2, &s) || s > 59)) {
        return false;
    }
    *offset = sign * (h * 3600 + m * 60 + s);
    return true;
}

static bool parse_dt(const char *s, size_t len, struct expr_time *tm, bool zoned)
{
    struct cursor c = {s, len, 0};
    int64_t days, secs;
    tm->offset = 0;
    if (!parse_date(&c, &days) || !(lit(&c, 'T') || lit(&c, 't')) ||
        !parse_time(&c, &secs, &tm->nanos) || (zoned && !parse_offset(&c, &tm->offset))) {
        return false;
    }
    if (zoned && lit(&c, '[')) {
        const char *close = memchr(s + c.i, ']', len - c.i);
        if (!close || close == s + c.i) {
            return false;
        }
        c.i = (size_t)(close - s) + 1;
    }
    tm->secs = days * 86400 + secs - tm->offset;
    return c.i == len;
}

/* ZonedDateTime.parse: ISO offset date-time with an optional [Region] that is not interpreted. */
bool expr_parse_datetime(const char *s, size_t len, struct expr_time *tm)
{
    return parse_dt(s, len, tm, true);
}

/* LocalDateTime.parse: no offset; the result is taken as UTC. */
bool expr_parse_local_datetime(const char *s, size_t len, struct expr_time *tm)
{
    return parse_dt(s, len, tm, false);
}

bool expr_parse_date_only(const char *s, size_t len, struct expr_time *tm)
{
    struct cursor c = {s, len, 0};
    int64_t days;
    if (!parse_date(&c, &days) || c.i != len) {
        return false;
    }
    tm->secs = days * 86400;
    tm->nanos = 0;
    tm->offset = 0;
    return true;
}

bool expr_parse_local_date(const char *s, size_t len, int64_t *days)
{
    struct expr_time tm;
    if (!expr_parse_date_only(s, len, &tm) && !expr_parse_datetime(s, len, &tm)) {
        return false;
    }
    int64_t local = tm.secs + tm.offset;
    *days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    return true;
}

/* OffsetTime.parse; returns the time's position on the UTC time line within a day (may be
 * negative or past a day), which is what OffsetTime.isAfter and isBefore compare. */
bool expr_parse_offset_time(const char *s, size_t len, int64_t *nanos_utc)
{
    struct cursor c = {s, len, 0};
    int64_t secs;
    int32_t nanos, offset;
    if (!parse_time(&c, &secs, &nanos) || !parse_offset(&c, &offset) || c.i != len) {
        return false;
    }
    *nanos_utc = (secs - offset) * 1000000000LL + nanos;
    return true;
}

/* ==== Formatting ==== */

static const char *const MONTHS[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};
static const char *const DAYS[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                   "Friday", "Saturday", "Sunday"};

struct fields {
    int64_t days;
    int y, mo, d, h, mi, s, dow;
    int32_t nanos, offset;
};

static void split_fields(const struct expr_time *tm, struct fields *f)
{
    int64_t local = tm->secs + tm->offset;
    int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int64_t sod = local - days * 86400;
    f->days = days;
    expr_civil(days, &f->y, &f->mo, &f->d);
    f->h = (int)(sod / 3600);
    f->mi = (int)(sod / 60 % 60);
    f->s = (int)(sod % 60);
    f->dow = expr_weekday(days);
    f->nanos = tm->nanos;
    f->offset = tm->offset;
}

static void put_offset(struct sbuf *b, int32_t off, int width, bool z_for_zero)
{
    if (off == 0 && z_for_zero) {
        sbuf_append(b, "Z", 1);
        return;
    }
    int a = off < 0 ? -off : off;
    sbuf_appendf(b, "%c%02d", off < 0 ? '-' : '+', a / 3600);
    if (width == 1 && a % 3600 == 0) {
        return;
    }
    sbuf_appendf(b, width == 3 ? ":%02d" : "%02d", a / 60 % 60);
}

/* One run of `n` pattern letters `ch`; false for a letter this subset does not know. */
static bool put_field(struct sbuf *b, const struct fields *f, char ch, int n)
{
    switch (ch) {
    case 'y':
    case 'u':
        if (n == 2) {
            sbuf_appendf(b, "%02d", ((f->y % 100) + 100) % 100);
        } else {
            sbuf_appendf(b, "%0*d", n, f->y);
        }
        return true;
    case 'M':
        if (n >= 3) {
            sbuf_appendf(b, "%.*s", n == 3 ? 3 : 16, MONTHS[f->mo - 1]);
        } else {
            sbuf_appendf(b, "%0*d", n, f->mo);
        }
        return true;
    case 'd':
        sbuf_appendf(b, "%0*d", n, f->d);
        return true;
    case 'D':
        sbuf_appendf(b, "%0*d", n, (int)(f->days - days_from_civil(f->y, 1, 1)) + 1);
        return true;
    case 'E':
        sbuf_appendf(b, "%.*s", n >= 4 ? 16 : 3, DAYS[f->dow - 1]);
        return true;
    case 'H':
        sbuf_appendf(b, "%0*d", n, f->h);
        return true;
    case 'h':
        sbuf_appendf(b, "%0*d", n, f->h % 12 == 0 ? 12 : f->h % 12);
        return true;
    case 'a':
        sbuf_append_cstr(b, f->h < 12 ? "AM" : "PM");
        return true;
    case 'm':
        sbuf_appendf(b, "%0*d", n, f->mi);
        return true;
    case 's':
        sbuf_appendf(b, "%0*d", n, f->s);
        return true;
    case 'S': {
        char frac[10];
        snprintf(frac, sizeof(frac), "%09d", (int)f->nanos);
        sbuf_append(b, frac, (size_t)(n > 9 ? 9 : n));
        return true;
    }
    case 'X':
    case 'x':
        put_offset(b, f->offset, n >= 3 ? 3 : n, ch == 'X');
        return true;
    case 'Z':
        put_offset(b, f->offset, n == 5 ? 3 : 2, n == 5);
        return true;
    default:
        return false;
    }
}

static bool is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static const char *named_format(const char *fmt, size_t flen)
{
    static const struct {
        const char *name;
        const char *pattern;
    } NAMED[] = {
        {"iso", "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"},
        {"iso_sec", "yyyy-MM-dd'T'HH:mm:ssXXX"},
        {"sql", "yyyy-MM-dd HH:mm:ss.SSSSSS"},
        {"sql_seq", "yyyy-MM-dd HH:mm:ss"},
        {"iso_local_date", "yyyy-MM-dd"},
        {"iso_local_date_time", "yyyy-MM-dd'T'HH:mm:ss"},
        {"iso_local_time", "HH:mm:ss"},
        {"iso_offset_date_time", "yyyy-MM-dd'T'HH:mm:ssXXX"},
        {"iso_date_time", "yyyy-MM-dd'T'HH:mm:ssXXX"},
        {"iso_zoned_date_time", "yyyy-MM-dd'T'HH:mm:ssXXX"},
        {"iso_date", "yyyy-MM-ddXXX"},
    };
    for (size_t i = 0; i < ARRAY_LEN(NAMED); i++) {
        if (strlen(NAMED[i].name) == flen && memcmp(NAMED[i].name, fmt, flen) == 0) {
            return NAMED[i].pattern;
        }
    }
    return NULL;
}

/* Formats like DateTimeFormatter.ofPattern (English names; the subset of letters above). */
struct ev expr_format_date(struct ectx *cx, const struct expr_time *tm, const char *fmt,
                           size_t flen)
{
    const char *named = named_format(fmt, flen);
    if (named) {
        fmt = named;
        flen = strlen(named);
    }
    struct fields f;
    split_fields(tm, &f);
    struct sbuf b;
    sbuf_init(&b);
    struct ev r = ev_null();
    for (size_t i = 0; i < flen && r.kind != EV_ERR;) {
        char ch = fmt[i];
        if (ch == '\'') {
            size_t j = i + 1;
            if (j < flen && fmt[j] == '\'') {
                sbuf_append(&b, "'", 1);
                i += 2;
                continue;
            }
            while (j < flen && fmt[j] != '\'') {
                j++;
            }
            sbuf_append(&b, fmt + i + 1, j - i - 1);
            i = j + 1;
        } else if (is_letter(ch)) {
            size_t j = i;
            while (j < flen && fmt[j] == ch) {
                j++;
            }
            if (!put_field(&b, &f, ch, (int)(j - i))) {
                r = ev_err(cx, false, "date pattern letter '%c' is not supported", ch);
            }
            i = j;
        } else {
            sbuf_append(&b, &ch, 1);
            i++;
        }
    }
    if (r.kind != EV_ERR) {
        r = ev_sbuf_str(cx, &b);
    }
    sbuf_deinit(&b);
    return r;
}

/* Instant.toString: UTC, with the fraction in groups of three digits when there is one. */
struct ev expr_instant_str(struct ectx *cx, const struct timespec *ts)
{
    struct expr_time tm = {.secs = ts->tv_sec, .nanos = (int32_t)ts->tv_nsec, .offset = 0};
    const char *fmt = tm.nanos == 0             ? "yyyy-MM-dd'T'HH:mm:ss'Z'"
                      : tm.nanos % 1000000 == 0 ? "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
                      : tm.nanos % 1000 == 0    ? "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
                                                : "yyyy-MM-dd'T'HH:mm:ss.SSSSSSSSS'Z'";
    return expr_format_date(cx, &tm, fmt, strlen(fmt));
}

/* AbstractDate.convert: a Long is epoch seconds, a string an ISO zoned date-time. */
struct ev expr_to_tm(struct ectx *cx, struct ev v, const char *fname, struct expr_time *tm)
{
    if (v.kind == EV_INT) {
        tm->secs = v.i;
        tm->nanos = 0;
        tm->offset = 0;
        return ev_bool(true);
    }
    if (v.kind == EV_STR && expr_parse_datetime(v.s, v.len, tm)) {
        return ev_bool(true);
    }
    if (v.kind == EV_STR) {
        /* The text itself is not quoted: it may come from the request. */
        return ev_err(cx, false, "%s: the string is not an ISO-8601 date-time with an offset",
                      fname);
    }
    return ev_err(cx, false, "%s: cannot read a date from %s", fname, ev_type_name(v));
}
