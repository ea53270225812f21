/*
 * log.c: formats log lines. Writes whole lines with one write(2) so lines from several processes
 * sharing a pipe never interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static enum log_level min_level = LOG_INFO;
static bool json_lines = true;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level min, bool json)
{
    min_level = min;
    json_lines = json;
}

void log_set_level(enum log_level min)
{
    min_level = min;
}

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

bool log_enabled(enum log_level lvl)
{
    return lvl >= min_level;
}

static void emit(enum log_level lvl, const char *msg, va_list kv)
{
    char ts[25];
    struct sbuf b;
    sbuf_init(&b);
    util_rfc3339_now(ts);
    if (json_lines) {
        sbuf_appendf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[lvl]);
        sbuf_append_json_str(&b, msg, strlen(msg));
    } else {
        sbuf_appendf(&b, "%s %-5s %s", ts, level_names[lvl], msg);
    }
    for (;;) {
        const char *k = va_arg(kv, const char *);
        if (!k) {
            break;
        }
        const char *v = va_arg(kv, const char *);
        if (!v) {
            v = "";
        }
        if (json_lines) {
            sbuf_append(&b, ",", 1);
            sbuf_append_json_str(&b, k, strlen(k));
            sbuf_append(&b, ":", 1);
            sbuf_append_json_str(&b, v, strlen(v));
        } else {
            sbuf_appendf(&b, " %s=%s", k, v);
        }
    }
    sbuf_append(&b, json_lines ? "}\n" : "\n", json_lines ? 2 : 1);
    ssize_t off = 0;
    while ((size_t)off < b.len) {
        ssize_t w = write(STDERR_FILENO, b.data + off, b.len - (size_t)off);
        if (w <= 0) {
            break;
        }
        off += w;
    }
    sbuf_deinit(&b);
}

void log_kv(enum log_level lvl, const char *msg, ...)
{
    if (!log_enabled(lvl)) {
        return;
    }
    va_list ap;
    va_start(ap, msg);
    emit(lvl, msg, ap);
    va_end(ap);
}

static void emit_plain(enum log_level lvl, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    emit(lvl, msg, ap);
    va_end(ap);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (!log_enabled(lvl)) {
        return;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emit_plain(lvl, buf, (const char *)NULL);
}
