/*
 * log.h: leveled logging to stderr. One JSON object per line (level, time, msg, then fields), or
 * plain text when stderr is a terminal. Never pass a webhook key or a secret as a field.
 */
#ifndef BRIDGE_LOG_H
#define BRIDGE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/** Sets the minimum level printed and the output format (json=false: plain text). */
void log_setup(enum log_level min, bool json);

/** Changes the minimum level printed, keeping the format (a reload of log_level). */
void log_set_level(enum log_level min);

/** Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *s);

bool log_enabled(enum log_level lvl);

/**
 * Logs `msg` with extra fields given as a NULL-terminated list of key, value string pairs:
 * log_kv(LOG_INFO, "listening", "addr", "127.0.0.1:8080", NULL). Values are JSON-escaped.
 */
void log_kv(enum log_level lvl, const char *msg, ...) __attribute__((sentinel));

/** printf-style convenience with no extra fields. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
