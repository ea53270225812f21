/*
 * diag.h: errors a user must fix, each with a position ("flows/x.yaml:12:9: message").
 * Config, flow and expression loading append to a diag_list; main.c prints it. No other I/O.
 */
#ifndef BRIDGE_DIAG_H
#define BRIDGE_DIAG_H

#include <stddef.h>
#include <stdio.h>

struct diag {
    char *file;    /* owned; may be NULL when the error has no file */
    int line;      /* 1-based; 0 when unknown */
    int col;       /* 1-based; 0 when unknown */
    char *msg;     /* owned */
    char *snippet; /* owned, optional: the source line and a caret line under the column */
};

/** A list of diagnostics in the order they were found. Owns every entry. */
struct diag_list {
    struct diag *v;
    size_t n;
    size_t cap;
};

void diag_list_init(struct diag_list *dl);
void diag_list_deinit(struct diag_list *dl);

/** Appends one diagnostic; `file` may be NULL, line/col 0 when unknown. */
void diag_add(struct diag_list *dl, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** Sets the snippet (source line plus caret) of the last diagnostic; the strings are copied. */
void diag_set_snippet(struct diag_list *dl, const char *source_line, int col);

/** Prints each diagnostic as "file:line:col: msg" (plus its snippet) followed by a newline. */
void diag_print(const struct diag_list *dl, FILE *out);

/** Formats diagnostic i as "file:line:col: msg" into a newly allocated string. */
char *diag_format(const struct diag *d);

#endif
