/*
 * diag.c: the positioned error list used by every loader. Formatting only; no policy.
 */
#include "diag.h"

#include <stdarg.h>
#include <string.h>

#include "util.h"

void diag_list_init(struct diag_list *dl)
{
    dl->v = NULL;
    dl->n = 0;
    dl->cap = 0;
}

void diag_list_deinit(struct diag_list *dl)
{
    for (size_t i = 0; i < dl->n; i++) {
        xfree(dl->v[i].file);
        xfree(dl->v[i].msg);
        xfree(dl->v[i].snippet);
    }
    xfree(dl->v);
    diag_list_init(dl);
}

void diag_add(struct diag_list *dl, const char *file, int line, int col, const char *fmt, ...)
{
    if (dl->n == dl->cap) {
        dl->cap = dl->cap ? dl->cap * 2 : 8;
        dl->v = xrealloc(dl->v, dl->cap * sizeof(*dl->v));
    }
    struct diag *d = &dl->v[dl->n++];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    d->msg = xmalloc(n > 0 ? (size_t)n + 1 : 1);
    d->msg[0] = '\0';
    if (n > 0) {
        va_start(ap, fmt);
        vsnprintf(d->msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    d->file = file ? xstrdup(file) : NULL;
    d->line = line;
    d->col = col;
    d->snippet = NULL;
}

void diag_set_snippet(struct diag_list *dl, const char *source_line, int col)
{
    if (dl->n == 0 || !source_line) {
        return;
    }
    struct diag *d = &dl->v[dl->n - 1];
    struct sbuf b;
    sbuf_init(&b);
    size_t len = strcspn(source_line, "\n");
    sbuf_append(&b, "    ", 4);
    sbuf_append(&b, source_line, len);
    sbuf_append(&b, "\n    ", 5);
    for (int i = 1; i < col && (size_t)i <= len; i++) {
        sbuf_append(&b, source_line[i - 1] == '\t' ? "\t" : " ", 1);
    }
    sbuf_append(&b, "^", 1);
    xfree(d->snippet);
    d->snippet = b.data;
}

char *diag_format(const struct diag *d)
{
    if (!d->file) {
        return xstrdup(d->msg);
    }
    if (d->line <= 0) {
        return xasprintf("%s: %s", d->file, d->msg);
    }
    return xasprintf("%s:%d:%d: %s", d->file, d->line, d->col > 0 ? d->col : 1, d->msg);
}

void diag_print(const struct diag_list *dl, FILE *out)
{
    for (size_t i = 0; i < dl->n; i++) {
        char *s = diag_format(&dl->v[i]);
        fprintf(out, "%s\n", s);
        if (dl->v[i].snippet) {
            fprintf(out, "%s\n", dl->v[i].snippet);
        }
        xfree(s);
    }
}
