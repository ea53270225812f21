/*
 * expr_parse.c: tokens (expr_lex.c) → AST, as Pebble's ExpressionParser does it: recursive
 * descent with precedence climbing for expressions, and the if/elseif/else tags around them.
 * The AST lives in the program's arena. No evaluation, no I/O.
 */
#include "expr_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Parser ==== */

struct parser {
    const struct tok *t;
    size_t i;
    const char *s;
    struct expr_prog *prog;
    int compat;
    int depth;
    struct expr_error *err;
    bool failed;
};

#define PREC_FILTER 100
#define PREC_UNARY 500

/* Binary operator precedence: Pebble's CoreExtension table plus Kestra's operators, whose level
 * moved from 120 to 30 in 2.0 (PR #16127). */
static const struct {
    uint8_t op;
    uint8_t prec;
    uint8_t prec2;
} BINOPS[] = {
    {OP_OR, 10, 10},
    {OP_AND, 15, 15},
    {OP_IS, 20, 20},
    {OP_CONTAINS, 20, 20},
    {OP_EQ, 30, 30},
    {OP_NE, 30, 30},
    {OP_LT, 30, 30},
    {OP_GT, 30, 30},
    {OP_LE, 30, 30},
    {OP_GE, 30, 30},
    {OP_ADD, 40, 40},
    {OP_SUB, 40, 40},
    {OP_MUL, 60, 60},
    {OP_DIV, 60, 60},
    {OP_MOD, 60, 60},
    {OP_CONCAT, 110, 110},
    {OP_RANGE, 120, 120},
    {OP_COALESCE, 120, 30},
    {OP_UNDEF_COALESCE, 120, 30},
    {OP_ISIN, 120, 30},
};

__attribute__((format(printf, 3, 4))) static void *fail(struct parser *p, size_t off,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    expr_set_error(p->err, &p->failed, off, fmt, ap);
    va_end(ap);
    return NULL;
}

static const struct tok *cur(const struct parser *p)
{
    return &p->t[p->i];
}

static const struct tok *next(struct parser *p)
{
    const struct tok *t = &p->t[p->i];
    if (t->kind != TK_EOF) {
        p->i++;
    }
    return t;
}

static bool is_punct(const struct tok *t, char ch)
{
    return t->kind == TK_PUNCT && t->ch == ch;
}

static bool is_name(const struct parser *p, const struct tok *t, const char *name)
{
    return t->kind == TK_NAME && t->len == strlen(name) && memcmp(p->s + t->off, name, t->len) == 0;
}

/* A short description of a token for "expected X, found Y" messages. */
static const char *tok_desc(const struct parser *p, const struct tok *t, char *buf, size_t bufsz)
{
    switch (t->kind) {
    case TK_EOF:
        return "end of template";
    case TK_PRINT_CLOSE:
        return "'}}'";
    case TK_TAG_CLOSE:
        return "'%}'";
    case TK_STR:
        return "a string";
    case TK_TEXT:
        return "text";
    default:
        snprintf(buf, bufsz, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), p->s + t->off);
        return buf;
    }
}

static void *unexpected(struct parser *p, const char *wanted)
{
    char buf[64];
    const struct tok *t = cur(p);
    return fail(p, t->off, "expected %s, found %s", wanted, tok_desc(p, t, buf, sizeof(buf)));
}

static bool expect_punct(struct parser *p, char ch)
{
    if (!is_punct(cur(p), ch)) {
        char want[8] = {'\'', ch, '\'', 0};
        unexpected(p, want);
        return false;
    }
    next(p);
    return true;
}

static struct node *new_node(struct parser *p, int kind, const struct tok *t)
{
    struct node *n = arena_xalloc(&p->prog->ar, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = (uint8_t)kind;
    n->off = n->start = t->off;
    n->end = t->off + t->len;
    return n;
}

static void set_args(struct parser *p, struct node *n, struct node **args, size_t nargs)
{
    n->nargs = (uint16_t)nargs;
    if (nargs) {
        n->args = arena_xalloc(&p->prog->ar, nargs * sizeof(*args));
        memcpy(n->args, args, nargs * sizeof(*args));
    }
}

/* Pebble unescapes only the quote character and the backslash; "\n" stays two characters. */
static struct ev unescape(struct parser *p, const struct tok *t, char quote)
{
    const char *s = p->s + t->off;
    char *out = arena_xalloc(&p->prog->ar, t->len + 1);
    size_t o = 0;
    for (size_t i = 0; i < t->len; i++) {
        if (!t->op && s[i] == '\\' && i + 1 < t->len && (s[i + 1] == quote || s[i + 1] == '\\')) {
            i++;
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    return ev_str(out, o);
}

static struct node *parse_expr(struct parser *p, int min_prec);

static struct node *parse_literal(struct parser *p)
{
    const struct tok *t = next(p);
    struct node *n = new_node(p, N_LIT, t);
    const char *s = p->s + t->off;
    if (t->kind == TK_STR) {
        char quote = t->op ? '"' : s[-1];
        n->lit = unescape(p, t, quote);
        n->start = t->off - 1;
        n->end = t->off + t->len + 1;
    } else if (t->kind == TK_INT) {
        uint64_t v = 0;
        for (size_t i = 0; i < t->len; i++) {
            if (v > (uint64_t)(INT64_MAX - (s[i] - '0')) / 10) {
                return fail(p, t->off, "integer literal %.*s does not fit in 64 bits", (int)t->len,
                            s);
            }
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        n->lit = ev_int((int64_t)v);
    } else {
        char buf[64];
        size_t l = t->len < sizeof(buf) - 1 ? t->len : sizeof(buf) - 1;
        memcpy(buf, s, l);
        buf[l] = '\0';
        n->lit = ev_float(strtod(buf, NULL));
    }
    return n;
}

static const struct expr_fn *lookup_fn(struct parser *p, const struct tok *t, const char *what)
{
    const char *s = p->s + t->off;
    const struct expr_fn *fn = what[0] == 'f' && what[1] == 'i' ? expr_find_filter(s, t->len)
                               : what[0] == 't'                 ? expr_find_test(s, t->len)
                                                                : expr_find_function(s, t->len);
    if (!fn) {
        fail(p, t->off, "unknown %s '%.*s'", what, (int)t->len, s);
    }
    return fn;
}

/* `( [name =] expr, ... )`: positional arguments fill slots in order, named ones by name. */
static bool parse_args(struct parser *p, struct node *n, const char *what)
{
    const struct expr_fn *fn = n->fn;
    struct node *slots[EXPR_MAX_ARGS] = {0};
    size_t given = 0, pos = 0;
    if (is_punct(cur(p), '(')) {
        next(p);
        while (!p->failed && !is_punct(cur(p), ')')) {
            if (pos > 0 && !expect_punct(p, ',')) {
                return false;
            }
            const struct tok *t = cur(p);
            size_t slot = pos;
            if (t->kind == TK_NAME && is_punct(&p->t[p->i + 1], '=')) {
                for (slot = 0; slot < fn->max_args; slot++) {
                    if (fn->params[slot] && is_name(p, t, fn->params[slot])) {
                        break;
                    }
                }
                if (slot == fn->max_args) {
                    return fail(p, t->off, "%s '%s' has no argument '%.*s'", what, fn->name,
                                (int)t->len, p->s + t->off);
                }
                next(p);
                next(p);
            }
            if (slot >= fn->max_args) {
                return fail(p, t->off, "%s '%s' takes at most %d argument%s", what, fn->name,
                            fn->max_args, fn->max_args == 1 ? "" : "s");
            }
            if (slots[slot]) {
                return fail(p, t->off, "argument %zu of '%s' given twice", slot + 1, fn->name);
            }
            if (!(slots[slot] = parse_expr(p, 0))) {
                return false;
            }
            given++;
            pos++;
        }
        n->end = cur(p)->off + 1;
        if (!expect_punct(p, ')')) {
            return false;
        }
    }
    for (size_t i = 0; i < fn->min_args; i++) {
        if (!slots[i]) {
            return fail(p, n->off, "%s '%s' needs %d argument%s", what, fn->name, fn->min_args,
                        fn->min_args == 1 ? "" : "s");
        }
    }
    (void)given;
    set_args(p, n, slots, fn->max_args);
    if (fn->check) {
        const char *msg = fn->check(n);
        if (msg) {
            return fail(p, n->off, "%s", msg);
        }
    }
    return true;
}

static struct node *parse_call(struct parser *p)
{
    const struct tok *t = next(p);
    struct node *n = new_node(p, N_CALL, t);
    if (!(n->fn = lookup_fn(p, t, "function"))) {
        return NULL;
    }
    return parse_args(p, n, "function") ? n : NULL;
}

static struct node *parse_list(struct parser *p)
{
    struct node *n = new_node(p, N_LIST, next(p));
    struct node **items = NULL;
    size_t count = 0, cap = 0;
    while (!p->failed && !is_punct(cur(p), ']')) {
        if (count > 0 && !expect_punct(p, ',')) {
            break;
        }
        struct node *item = parse_expr(p, 0);
        if (!item) {
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            items = xrealloc(items, cap * sizeof(*items));
        }
        items[count++] = item;
    }
    if (!p->failed) {
        n->end = cur(p)->off + 1;
        next(p);
        set_args(p, n, items, count);
    }
    xfree(items);
    return p->failed ? NULL : n;
}

static struct node *parse_map(struct parser *p)
{
    struct node *n = new_node(p, N_MAP, next(p));
    struct node **items = NULL;
    size_t count = 0, cap = 0;
    while (!p->failed && !is_punct(cur(p), '}')) {
        if (count > 0 && !expect_punct(p, ',')) {
            break;
        }
        struct node *k = parse_expr(p, 0);
        if (!k || !expect_punct(p, ':')) {
            break;
        }
        struct node *v = parse_expr(p, 0);
        if (!v) {
            break;
        }
        if (count + 2 > cap) {
            cap = cap ? cap * 2 : 8;
            items = xrealloc(items, cap * sizeof(*items));
        }
        items[count++] = k;
        items[count++] = v;
    }
    if (!p->failed) {
        n->end = cur(p)->off + 1;
        next(p);
        set_args(p, n, items, count);
    }
    xfree(items);
    return p->failed ? NULL : n;
}

static struct node *parse_postfix(struct parser *p, struct node *n)
{
    while (n && !p->failed) {
        const struct tok *t = cur(p);
        if (is_punct(t, '.')) {
            next(p);
            const struct tok *name = next(p);
            struct node *a = new_node(p, N_ATTR, name);
            a->a = n;
            a->start = n->start;
            if (name->kind == TK_NAME) {
                a->name = p->s + name->off;
                a->name_len = name->len;
            } else if (name->kind == TK_INT) {
                p->i--;
                struct node *lit = parse_literal(p);
                if (!lit) {
                    return NULL;
                }
                a->lit = lit->lit;
            } else {
                p->i--;
                return unexpected(p, "a name after '.'");
            }
            if (is_punct(cur(p), '(')) {
                return fail(p, cur(p)->off, "method calls are not supported");
            }
            n = a;
        } else if (is_punct(t, '[')) {
            next(p);
            struct node *a = new_node(p, N_INDEX, t);
            a->a = n;
            a->start = n->start;
            if (!(a->b = parse_expr(p, 0))) {
                return NULL;
            }
            a->end = cur(p)->off + 1;
            if (!expect_punct(p, ']')) {
                return NULL;
            }
            n = a;
        } else {
            break;
        }
    }
    return n;
}

static struct node *parse_name(struct parser *p)
{
    static const char *const TRUES[] = {"true", "TRUE"};
    static const char *const FALSES[] = {"false", "FALSE"};
    static const char *const NULLS[] = {"null", "NULL", "none", "NONE"};
    const struct tok *t = cur(p);
    for (size_t i = 0; i < 2; i++) {
        if (is_name(p, t, TRUES[i]) || is_name(p, t, FALSES[i])) {
            struct node *n = new_node(p, N_LIT, next(p));
            n->lit = ev_bool(is_name(p, t, TRUES[i]));
            return n;
        }
    }
    for (size_t i = 0; i < ARRAY_LEN(NULLS); i++) {
        if (is_name(p, t, NULLS[i])) {
            struct node *n = new_node(p, N_LIT, next(p));
            n->lit = ev_null();
            return n;
        }
    }
    if (is_punct(&p->t[p->i + 1], '(')) {
        return parse_call(p);
    }
    static const char *const ROOTS[] = {[ROOT_TRIGGER] = "trigger",
                                        [ROOT_FLOW] = "flow",
                                        [ROOT_EXECUTION] = "execution",
                                        [ROOT_LABELS] = "labels"};
    struct node *n = new_node(p, N_VAR, next(p));
    n->name = p->s + t->off;
    n->name_len = t->len;
    for (size_t i = 1; i < ARRAY_LEN(ROOTS); i++) {
        if (is_name(p, t, ROOTS[i])) {
            n->op = (uint8_t)i;
        }
    }
    return n;
}

static struct node *parse_primary(struct parser *p)
{
    const struct tok *t = cur(p);
    struct node *n;
    switch (t->kind) {
    case TK_STR:
    case TK_INT:
    case TK_FLOAT:
        n = parse_literal(p);
        break;
    case TK_NAME:
        n = parse_name(p);
        break;
    case TK_PUNCT:
        if (t->ch == '[') {
            n = parse_list(p);
        } else if (t->ch == '{') {
            n = parse_map(p);
        } else if (t->ch == '(') {
            next(p);
            n = parse_expr(p, 0);
            if (n) {
                n->start = t->off;
                n->end = cur(p)->off + 1;
            }
            if (n && !expect_punct(p, ')')) {
                return NULL;
            }
        } else {
            return unexpected(p, "an expression");
        }
        break;
    default:
        return unexpected(p, "an expression");
    }
    return parse_postfix(p, n);
}

static struct node *parse_filter(struct parser *p, struct node *in)
{
    const struct tok *t = cur(p);
    if (t->kind != TK_NAME) {
        return unexpected(p, "a filter name after '|'");
    }
    next(p);
    struct node *n = new_node(p, N_FILTER, t);
    n->a = in;
    n->start = in->start;
    if (!(n->fn = lookup_fn(p, t, "filter")) || !parse_args(p, n, "filter")) {
        return NULL;
    }
    return n;
}

/* After `is` / `is not`: a test name, which may be a keyword (`null`) or an operator word. */
static struct node *parse_test(struct parser *p, struct node *in, bool neg)
{
    const struct tok *t = cur(p);
    if (t->kind != TK_NAME) {
        return unexpected(p, "a test name after 'is'");
    }
    next(p);
    struct node *n = new_node(p, N_TEST, t);
    n->a = in;
    n->op = neg;
    n->start = in->start;
    if (!(n->fn = lookup_fn(p, t, "test")) || !parse_args(p, n, "test")) {
        return NULL;
    }
    return n;
}

static int binop_prec(const struct parser *p, const struct tok *t)
{
    if (is_punct(t, '|')) {
        return PREC_FILTER;
    }
    if (t->kind != TK_OP) {
        return -1;
    }
    for (size_t i = 0; i < ARRAY_LEN(BINOPS); i++) {
        if (BINOPS[i].op == t->op) {
            return p->compat == EXPR_COMPAT_2 ? BINOPS[i].prec2 : BINOPS[i].prec;
        }
    }
    return -1; /* `not` is unary only */
}

static struct node *parse_ternary(struct parser *p, struct node *cond)
{
    const struct tok *t = cur(p);
    if (!is_punct(t, '?')) {
        return cond;
    }
    next(p);
    struct node *n = new_node(p, N_TERNARY, t);
    n->a = cond;
    n->start = cond->start;
    if (!(n->b = parse_expr(p, 0)) || !expect_punct(p, ':') || !(n->c = parse_expr(p, 0))) {
        return NULL;
    }
    n->end = n->c->end;
    return n;
}

static struct node *parse_unary(struct parser *p)
{
    const struct tok *t = next(p);
    struct node *n = new_node(p, N_UNARY, t);
    n->op = t->op;
    if (!(n->a = parse_expr(p, PREC_UNARY))) {
        return NULL;
    }
    n->end = n->a->end;
    return n;
}

/* Precedence climbing (ExpressionParser.parseExpression): every operator is left-associative. */
static struct node *parse_expr(struct parser *p, int min_prec)
{
    if (++p->depth > EXPR_MAX_DEPTH) {
        return fail(p, cur(p)->off, "expression nested too deeply");
    }
    const struct tok *t = cur(p);
    struct node *left;
    if (t->kind == TK_OP && (t->op == OP_NOT || t->op == OP_SUB || t->op == OP_ADD)) {
        left = parse_unary(p);
    } else {
        left = parse_primary(p);
    }
    while (left && !p->failed) {
        t = cur(p);
        int prec = binop_prec(p, t);
        if (prec < 0 || prec < min_prec) {
            break;
        }
        next(p);
        if (is_punct(t, '|')) {
            left = parse_filter(p, left);
        } else if (t->op == OP_IS) {
            bool neg = cur(p)->kind == TK_OP && cur(p)->op == OP_NOT;
            if (neg) {
                next(p);
            }
            left = parse_test(p, left, neg);
        } else {
            struct node *n = new_node(p, N_BINARY, t);
            n->op = t->op;
            n->a = left;
            n->start = left->start;
            if (!(n->b = parse_expr(p, prec + 1))) {
                return NULL;
            }
            n->end = n->b->end;
            left = n;
        }
    }
    if (left && !p->failed && min_prec == 0) {
        left = parse_ternary(p, left);
    }
    p->depth--;
    return p->failed ? NULL : left;
}

/* ==== Templates ==== */

static struct node *parse_body(struct parser *p, bool in_if);

static bool expect_kind(struct parser *p, int kind, const char *what)
{
    if (cur(p)->kind != kind) {
        unexpected(p, what);
        return false;
    }
    next(p);
    return true;
}

/* {% if c %} ... {% elseif c %} ... {% else %} ... {% endif %} (Pebble spells it elseif). */
static struct node *parse_if(struct parser *p, const struct tok *open)
{
    struct node *n = new_node(p, N_IF, open);
    struct node *parts[2 * 64 + 1];
    size_t count = 0;
    for (;;) {
        if (count + 3 > ARRAY_LEN(parts)) {
            return fail(p, cur(p)->off, "too many elseif branches");
        }
        struct node *cond = parse_expr(p, 0);
        if (!cond || !expect_kind(p, TK_TAG_CLOSE, "'%}'")) {
            return NULL;
        }
        struct node *body = parse_body(p, true);
        if (!body) {
            return NULL;
        }
        parts[count++] = cond;
        parts[count++] = body;
        /* parse_body stopped on {% elseif|else|endif */
        const struct tok *tag = next(p);
        if (is_name(p, tag, "elseif")) {
            continue;
        }
        if (is_name(p, tag, "else")) {
            if (!expect_kind(p, TK_TAG_CLOSE, "'%}'") || !(body = parse_body(p, true))) {
                return NULL;
            }
            parts[count++] = body;
            tag = next(p);
            if (!is_name(p, tag, "endif")) {
                return fail(p, tag->off, "expected {%% endif %%}");
            }
        }
        if (!expect_kind(p, TK_TAG_CLOSE, "'%}'")) {
            return NULL;
        }
        break;
    }
    set_args(p, n, parts, count);
    return n;
}

static struct node *parse_tag(struct parser *p, const struct tok *open)
{
    const struct tok *t = cur(p);
    if (t->kind != TK_NAME) {
        return unexpected(p, "a tag name");
    }
    if (is_name(p, t, "if")) {
        next(p);
        return parse_if(p, open);
    }
    if (is_name(p, t, "elif")) {
        return fail(p, t->off, "unknown tag 'elif' (Pebble spells it 'elseif')");
    }
    if (is_name(p, t, "elseif") || is_name(p, t, "else") || is_name(p, t, "endif")) {
        return fail(p, t->off, "'%.*s' without an open {%% if %%}", (int)t->len, p->s + t->off);
    }
    return fail(p, t->off, "tag '%.*s' is not supported (only if/elseif/else/endif)", (int)t->len,
                p->s + t->off);
}

static bool at_branch_end(const struct parser *p)
{
    const struct tok *t = cur(p);
    const struct tok *name = t + 1;
    return t->kind == TK_TAG_OPEN &&
           (is_name(p, name, "elseif") || is_name(p, name, "else") || is_name(p, name, "endif"));
}

static struct node *parse_part(struct parser *p)
{
    const struct tok *t = next(p);
    struct node *n;
    if (t->kind == TK_TEXT) {
        n = new_node(p, N_TEXT, t);
        n->lit = ev_str(p->s + t->off, t->len);
        return n;
    }
    if (t->kind == TK_PRINT_OPEN) {
        n = new_node(p, N_PRINT, t);
        if (cur(p)->kind == TK_PRINT_CLOSE) {
            return fail(p, cur(p)->off, "empty {{ }}");
        }
        if (!(n->a = parse_expr(p, 0)) || !expect_kind(p, TK_PRINT_CLOSE, "'}}'")) {
            return NULL;
        }
        return n;
    }
    if (t->kind == TK_TAG_OPEN) {
        return parse_tag(p, t);
    }
    p->i--;
    return unexpected(p, "text, '{{' or '{%'");
}

static struct node *parse_body(struct parser *p, bool in_if)
{
    if (++p->depth > EXPR_MAX_DEPTH) {
        return fail(p, cur(p)->off, "tags nested too deeply");
    }
    struct node *seq = new_node(p, N_SEQ, cur(p));
    struct node **parts = NULL;
    size_t count = 0, cap = 0;
    while (!p->failed) {
        if (cur(p)->kind == TK_EOF) {
            if (in_if) {
                fail(p, cur(p)->off, "missing {%% endif %%}");
            }
            break;
        }
        if (in_if && at_branch_end(p)) {
            next(p); /* the TAG_OPEN; parse_if reads the name */
            break;
        }
        struct node *part = parse_part(p);
        if (!part) {
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            parts = xrealloc(parts, cap * sizeof(*parts));
        }
        parts[count++] = part;
    }
    if (!p->failed) {
        set_args(p, seq, parts, count);
    }
    xfree(parts);
    p->depth--;
    return p->failed ? NULL : seq;
}

/* ==== Entry point ==== */

struct expr_prog *expr_compile(const char *text, size_t len, int compat, struct expr_error *err)
{
    struct expr_error scratch;
    if (!err) {
        err = &scratch;
    }
    err->offset = 0;
    err->msg[0] = '\0';
    if (len > EXPR_MAX_TEXT) {
        snprintf(err->msg, sizeof(err->msg), "template longer than %d bytes", EXPR_MAX_TEXT);
        return NULL;
    }
    struct expr_prog *prog = xcalloc(1, sizeof(*prog));
    arena_init(&prog->ar, NULL, 0, 0);
    prog->text = xstrndup(text ? text : "", len);
    prog->len = len;
    prog->compat = compat == EXPR_COMPAT_2 ? EXPR_COMPAT_2 : EXPR_COMPAT_DEFAULT;

    struct expr_tokens toks;
    if (expr_lex(prog->text, len, &toks, err)) {
        struct parser p = {
            .t = toks.v, .s = prog->text, .prog = prog, .compat = prog->compat, .err = err};
        prog->root = parse_body(&p, false);
        prog->constant = true;
        for (size_t i = 0; i < toks.n; i++) {
            if (toks.v[i].kind == TK_PRINT_OPEN || toks.v[i].kind == TK_TAG_OPEN) {
                prog->constant = false;
            }
        }
        xfree(toks.v);
    }
    if (!prog->root) {
        expr_free(prog);
        return NULL;
    }
    return prog;
}

void expr_free(struct expr_prog *prog)
{
    if (!prog) {
        return;
    }
    arena_deinit(&prog->ar);
    xfree(prog->text);
    xfree(prog);
}

const char *expr_text(const struct expr_prog *prog, size_t *len)
{
    if (len) {
        *len = prog->len;
    }
    return prog->text;
}

bool expr_is_constant(const struct expr_prog *prog)
{
    return prog->constant;
}
