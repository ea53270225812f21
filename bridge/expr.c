/*
 * expr.c: the expression API around the parser (expr_parse.c) and the evaluator (expr_eval.c):
 * arenas, rendering a template, Kestra's truth rules, and mapping compile errors back to the
 * YAML file. No I/O: diagnostics go into the caller's diag_list.
 */
#include "expr_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Arenas ==== */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    max_align_t data[];
};

#define ALIGN_UP(n) (((n) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

void arena_init(struct arena *ar, void *buf, size_t size, size_t limit)
{
    ar->head = NULL;
    ar->cur = buf;
    ar->end = buf ? (char *)buf + size : NULL;
    ar->total = 0;
    ar->limit = limit;
}

void arena_deinit(struct arena *ar)
{
    struct arena_chunk *c = ar->head;
    while (c) {
        struct arena_chunk *next = c->next;
        xfree(c);
        c = next;
    }
    arena_init(ar, NULL, 0, 0);
}

void *arena_alloc(struct arena *ar, size_t n)
{
    n = ALIGN_UP(n ? n : 1);
    if (ar->limit && (n > ar->limit || ar->total > ar->limit - n)) {
        return NULL;
    }
    if (!ar->cur || (size_t)(ar->end - ar->cur) < n) {
        size_t size = 4096;
        if (ar->head && ar->head->size < 1024 * 1024) {
            size = ar->head->size * 2;
        }
        if (size < n) {
            size = n;
        }
        struct arena_chunk *c = xmalloc(sizeof(*c) + size);
        c->next = ar->head;
        c->size = size;
        ar->head = c;
        ar->cur = (char *)c->data;
        ar->end = ar->cur + size;
    }
    void *p = ar->cur;
    ar->cur += n;
    ar->total += n;
    return p;
}

void *arena_xalloc(struct arena *ar, size_t n)
{
    void *p = arena_alloc(ar, n);
    if (!p) {
        abort();
    }
    return p;
}

/* ==== Errors as values ==== */

struct ev ev_err(struct ectx *cx, bool undef, const char *fmt, ...)
{
    static const char fallback[] = "evaluation error (no memory left for the message)";
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    char *msg = arena_alloc(&cx->ar, len + 1);
    struct ev v = {.kind = EV_ERR, .undef = undef, .s = fallback};
    if (msg) {
        memcpy(msg, buf, len);
        msg[len] = '\0';
        v.s = msg;
    }
    return v;
}

struct ev ev_limit(struct ectx *cx)
{
    static const char msg[] = "evaluation limit reached (string size or memory)";
    (void)cx;
    struct ev v = {.kind = EV_ERR, .len = 1, .s = msg}; /* len 1 marks a limit */
    return v;
}

const char *node_text(struct ectx *cx, const struct node *n)
{
    size_t len = n->end > n->start ? n->end - n->start : 0;
    const char *s = cx->src + n->start;
    if (len > 48) {
        char *t = arena_alloc(&cx->ar, 52);
        if (!t) {
            return "...";
        }
        memcpy(t, s, 45);
        memcpy(t + 45, "...", 4);
        return t;
    }
    char *t = arena_alloc(&cx->ar, len + 1);
    if (!t) {
        return "...";
    }
    memcpy(t, s, len);
    t[len] = '\0';
    return t;
}

/* ==== Rendering ==== */

static int render_seq(struct ectx *cx, const struct node *seq, struct sbuf *out, bool *wrote,
                      char *why, size_t whysz);

static int fail_with(struct ev v, char *why, size_t whysz)
{
    if (whysz) {
        snprintf(why, whysz, "%s", v.s);
    }
    return v.len == 1 ? -E2BIG : -EINVAL;
}

/* IfNode: booleans, numbers and strings only; null is an error under strict variables. */
static struct ev if_truth(struct ectx *cx, const struct node *cond)
{
    struct ev v = expr_eval(cx, cond);
    if (v.kind == EV_NULL) {
        return ev_err(cx, false, "null value given to if statement (%s)", node_text(cx, cond));
    }
    return ev_truth(cx, cond, v, "if statement");
}

static int render_if(struct ectx *cx, const struct node *n, struct sbuf *out, bool *wrote,
                     char *why, size_t whysz)
{
    size_t i = 0;
    for (; i + 1 < n->nargs; i += 2) {
        struct ev t = if_truth(cx, n->args[i]);
        if (t.kind == EV_ERR) {
            return fail_with(t, why, whysz);
        }
        if (t.b) {
            return render_seq(cx, n->args[i + 1], out, wrote, why, whysz);
        }
    }
    if (i < n->nargs) {
        return render_seq(cx, n->args[i], out, wrote, why, whysz);
    }
    return 0;
}

static int render_seq(struct ectx *cx, const struct node *seq, struct sbuf *out, bool *wrote,
                      char *why, size_t whysz)
{
    for (size_t i = 0; i < seq->nargs; i++) {
        const struct node *part = seq->args[i];
        int rc = 0;
        if (part->kind == N_TEXT) {
            sbuf_append(out, part->lit.s, part->lit.len);
            *wrote = true;
        } else if (part->kind == N_PRINT) {
            struct ev v = expr_eval(cx, part->a);
            if (v.kind == EV_ERR) {
                return fail_with(v, why, whysz);
            }
            if (v.kind != EV_NULL) {
                *wrote = true;
            }
            if (!append_print(cx, out, v)) {
                return fail_with(ev_limit(cx), why, whysz);
            }
        } else {
            rc = render_if(cx, part, out, wrote, why, whysz);
        }
        if (rc < 0) {
            return rc;
        }
        if (out->len > EXPR_MAX_OUTPUT) {
            return fail_with(ev_limit(cx), why, whysz);
        }
    }
    return 0;
}

int expr_render_ex(const struct expr_prog *prog, const struct expr_env *env, struct sbuf *out,
                   bool *wrote, char *why, size_t whysz)
{
    alignas(max_align_t) char first[8192];
    struct ectx cx = {.env = env, .src = prog->text};
    cx.compat = env->compat ? env->compat : prog->compat;
    if (env->now.tv_sec == 0 && env->now.tv_nsec == 0) {
        clock_gettime(CLOCK_REALTIME, &cx.now);
    } else {
        cx.now = env->now;
    }
    arena_init(&cx.ar, first, sizeof(first), EXPR_MAX_MEMORY);
    if (whysz) {
        why[0] = '\0';
    }
    bool any = false;
    sbuf_reserve(out, 0); /* out->data is a C string even when nothing is written */
    out->data[out->len] = '\0';
    int rc = render_seq(&cx, prog->root, out, &any, why, whysz);
    arena_deinit(&cx.ar);
    if (wrote) {
        *wrote = any;
    }
    return rc;
}

int expr_render(const struct expr_prog *prog, const struct expr_env *env, struct sbuf *out,
                char *why, size_t whysz)
{
    return expr_render_ex(prog, env, out, NULL, why, whysz);
}

/* ==== Truth rules ==== */

/* Java String.trim(): every char <= U+0020 at either end. */
static void java_trim(const char **s, size_t *len)
{
    const unsigned char *p = (const unsigned char *)*s;
    size_t a = 0, b = *len;
    while (a < b && p[a] <= ' ') {
        a++;
    }
    while (b > a && p[b - 1] <= ' ') {
        b--;
    }
    *s += a;
    *len = b - a;
}

static bool java_blank(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp = utf8_next(s, len, &i);
        if (!java_is_whitespace(cp)) {
            return false;
        }
    }
    return true;
}

bool expr_kestra_true(const char *text, size_t len)
{
    if (java_blank(text, len)) {
        return false;
    }
    java_trim(&text, &len);
    return !(len == 5 && memcmp(text, "false", 5) == 0);
}

bool expr_when_true(const char *text, size_t len)
{
    static const char *const FALSY[] = {"false", "0", "-0", ""};
    java_trim(&text, &len);
    for (size_t i = 0; i < ARRAY_LEN(FALSY); i++) {
        if (len == strlen(FALSY[i]) && memcmp(text, FALSY[i], len) == 0) {
            return false;
        }
    }
    return true;
}

/* ==== Error positions ==== */

/* Characters (not bytes) in s[0..n): columns count characters, as libyaml's marks do. */
static int chars(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++) {
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return c;
}

/* Byte offset of (line, col) in the file text, or -1. */
static long file_offset(const char *f, int line, int col)
{
    long p = 0;
    for (int l = 1; l < line; l++) {
        const char *nl = strchr(f + p, '\n');
        if (!nl) {
            return -1;
        }
        p = nl - f + 1;
    }
    for (int c = 1; c < col; c++) {
        if (f[p] == '\0' || f[p] == '\n') {
            return -1;
        }
        p++;
        while (((unsigned char)f[p] & 0xC0) == 0x80) {
            p++;
        }
    }
    return p;
}

static enum expr_src_style detect_style(const struct expr_src *src, long at)
{
    if (src->style != EXPR_SRC_AUTO) {
        return src->style;
    }
    if (!src->file_text || at < 0) {
        return EXPR_SRC_PLAIN;
    }
    switch (src->file_text[at]) {
    case '\'':
        return EXPR_SRC_SINGLE;
    case '"':
        return EXPR_SRC_DOUBLE;
    case '|':
        return EXPR_SRC_LITERAL;
    case '>':
        return EXPR_SRC_FOLDED;
    default:
        return EXPR_SRC_PLAIN;
    }
}

/* Bytes that the double-quoted escape at f[p] ('\\') produces, and its source length. */
static bool dq_escape(const char *f, long p, size_t *produced, size_t *consumed)
{
    static const char SIMPLE[] = "0abtnvfre \"/\\N_LP\t";
    char c = f[p + 1];
    int hex = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (hex) {
        unsigned long cp = 0;
        for (int i = 0; i < hex; i++) {
            char h = f[p + 2 + i];
            int d = (h >= '0' && h <= '9')   ? h - '0'
                    : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                    : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                             : -1;
            if (d < 0) {
                return false;
            }
            cp = cp * 16 + (unsigned long)d;
        }
        *produced = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        *consumed = (size_t)(2 + hex);
        return true;
    }
    if (c == '\0' || !strchr(SIMPLE, c)) {
        return false;
    }
    *produced = (c == 'N' || c == '_') ? 2 : (c == 'L' || c == 'P') ? 3 : 1;
    *consumed = 2;
    return true;
}

/* Skips a line break and the next line's indentation (line folding inside flow scalars). */
static long skip_fold(const char *f, long p)
{
    while (f[p] == ' ' || f[p] == '\t' || f[p] == '\r' || f[p] == '\n') {
        p++;
    }
    return p;
}

static int block_indent(const char *f, long p)
{
    for (;;) {
        int n = 0;
        while (f[p + n] == ' ') {
            n++;
        }
        if (f[p + n] != '\n') {
            return n;
        }
        p += n + 1;
    }
}

/*
 * Walks the file from the scalar's start in step with the value, so that offset `off` of the
 * value maps to a byte of the file. Returns that byte's offset, or -1 when the walk loses step.
 */
static long walk(const char *f, long p, enum expr_src_style st, const char *v, size_t off)
{
    bool block = st == EXPR_SRC_LITERAL || st == EXPR_SRC_FOLDED;
    int indent = 0;
    if (st == EXPR_SRC_SINGLE || st == EXPR_SRC_DOUBLE) {
        p++;
    } else if (block) {
        const char *nl = strchr(f + p, '\n');
        if (!nl) {
            return -1;
        }
        p = nl - f + 1;
        indent = block_indent(f, p);
        p += indent;
    }
    size_t i = 0;
    while (i < off) {
        char c = v[i];
        if (f[p] == '\0') {
            return -1;
        }
        if (block && f[p] == '\n' && (c == '\n' || (st == EXPR_SRC_FOLDED && c == ' '))) {
            p++;
            for (int k = 0; k < indent && f[p] == ' '; k++) {
                p++;
            }
            i++;
            continue;
        }
        if (st == EXPR_SRC_DOUBLE && f[p] == '\\') {
            size_t produced, consumed;
            if (!dq_escape(f, p, &produced, &consumed)) {
                return -1;
            }
            p += (long)consumed;
            i += produced;
            continue;
        }
        if (st == EXPR_SRC_SINGLE && f[p] == '\'' && f[p + 1] == '\'' && c == '\'') {
            p += 2;
            i++;
            continue;
        }
        if (f[p] == c) {
            p++;
            i++;
            continue;
        }
        if (!block && c == ' ' && (f[p] == '\n' || f[p] == '\r')) {
            p = skip_fold(f, p);
            i++;
            continue;
        }
        return -1;
    }
    return p;
}

bool expr_error_locate(const struct expr_error *err, const char *text, size_t len,
                       const struct expr_src *src, int *line, int *col)
{
    size_t off = err->offset <= len ? err->offset : len;
    struct expr_src none = {.line = 1, .col = 1, .style = EXPR_SRC_PLAIN};
    if (!src) {
        src = &none;
    }
    long start = src->file_text ? file_offset(src->file_text, src->line, src->col) : -1;
    enum expr_src_style st = detect_style(src, start);
    if (start >= 0) {
        long p = walk(src->file_text, start, st, text, off);
        if (p >= 0) {
            const char *f = src->file_text;
            int l = 1;
            long bol = 0;
            for (long k = 0; k < p; k++) {
                if (f[k] == '\n') {
                    l++;
                    bol = k + 1;
                }
            }
            *line = l;
            *col = chars(f + bol, (size_t)(p - bol)) + 1;
            return true;
        }
    }
    if (src == &none) {
        /* No file: the position inside the template itself. */
        int l = 1;
        size_t bol = 0;
        for (size_t k = 0; k < off; k++) {
            if (text[k] == '\n') {
                l++;
                bol = k + 1;
            }
        }
        *line = l;
        *col = chars(text + bol, off - bol) + 1;
        return true;
    }
    /* Approximate: the scalar's own position plus the offset on its first line. */
    bool first_line = memchr(text, '\n', off) == NULL;
    bool block = st == EXPR_SRC_LITERAL || st == EXPR_SRC_FOLDED;
    int quote = (st == EXPR_SRC_SINGLE || st == EXPR_SRC_DOUBLE) ? 1 : 0;
    *line = src->line;
    *col = first_line && !block ? src->col + quote + chars(text, off) : src->col;
    return false;
}

void expr_error_report(const struct expr_error *err, const char *text, size_t len, const char *file,
                       const struct expr_src *src, struct diag_list *dl)
{
    int line, col;
    bool exact = expr_error_locate(err, text, len, src, &line, &col);
    diag_add(dl, file, line, col, "%s", err->msg);
    if (exact && src && src->file_text) {
        long bol = file_offset(src->file_text, line, 1);
        if (bol >= 0) {
            diag_set_snippet(dl, src->file_text + bol, col);
            return;
        }
    }
    /* The template line holding the offset, with the caret under the offending character. */
    size_t off = err->offset <= len ? err->offset : len;
    size_t bol = off;
    while (bol > 0 && text[bol - 1] != '\n') {
        bol--;
    }
    size_t eol = off;
    while (eol < len && text[eol] != '\n') {
        eol++;
    }
    char *copy = xstrndup(text + bol, eol - bol);
    diag_set_snippet(dl, copy, chars(text + bol, off - bol) + 1);
    xfree(copy);
}
