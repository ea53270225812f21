/*
 * expr_lex.c: template text → tokens with byte offsets, as Pebble's LexerImpl does it: a data
 * mode for the text around `{{ }}`, `{% %}` and `{# #}` (with `-` whitespace control), and an
 * expression mode for what is inside. No parsing, no I/O.
 */
#include "expr_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The lexer's state while it walks one template. */
struct lexer {
    const char *s;
    size_t len;
    size_t pos;
    struct tok *v;
    size_t n, cap;
    bool trim_next; /* a `-}}` asks to left-trim the next text */
    int depth;
    struct expr_error *err;
    bool failed;
};

void expr_set_error(struct expr_error *err, bool *failed, size_t off, const char *fmt, va_list ap)
{
    if (*failed) {
        return;
    }
    *failed = true;
    if (err) {
        err->offset = off;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
}

/* Symbol operators, longest first: Pebble sorts its operator list by length before matching. */
static const struct {
    const char *sym;
    uint8_t op;
} SYM_OPS[] = {
    {"???", OP_UNDEF_COALESCE},
    {"??", OP_COALESCE},
    {"..", OP_RANGE},
    {"==", OP_EQ},
    {"!=", OP_NE},
    {"<=", OP_LE},
    {">=", OP_GE},
    {"<", OP_LT},
    {">", OP_GT},
    {"+", OP_ADD},
    {"-", OP_SUB},
    {"*", OP_MUL},
    {"/", OP_DIV},
    {"%", OP_MOD},
    {"~", OP_CONCAT},
};

/* Word operators match only when no letter, digit or '_' follows ("organization" is a name). */
static const struct {
    const char *word;
    uint8_t op;
} WORD_OPS[] = {
    {"contains", OP_CONTAINS}, {"equals", OP_EQ}, {"isIn", OP_ISIN}, {"and", OP_AND},
    {"not", OP_NOT},           {"or", OP_OR},     {"is", OP_IS},
};

__attribute__((format(printf, 3, 4))) static void lex_fail(struct lexer *lx, size_t off,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    expr_set_error(lx->err, &lx->failed, off, fmt, ap);
    va_end(ap);
}

static struct tok *push(struct lexer *lx, int kind, size_t off, size_t len)
{
    if (lx->n == lx->cap) {
        lx->cap = lx->cap ? lx->cap * 2 : 64;
        lx->v = xrealloc(lx->v, lx->cap * sizeof(*lx->v));
    }
    struct tok *t = &lx->v[lx->n++];
    memset(t, 0, sizeof(*t));
    t->kind = (uint8_t)kind;
    t->off = (uint32_t)off;
    t->len = (uint32_t)len;
    return t;
}

static void push_punct(struct lexer *lx, char ch, size_t off)
{
    push(lx, TK_PUNCT, off, 1)->ch = ch;
}

static bool is_java_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_char(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool at(const struct lexer *lx, size_t pos, const char *lit)
{
    size_t n = strlen(lit);
    return pos + n <= lx->len && memcmp(lx->s + pos, lit, n) == 0;
}

/* ==== Lexer: expressions ==== */

static void lex_code(struct lexer *lx, const char *close, size_t open_off);

static bool lex_operator(struct lexer *lx)
{
    for (size_t i = 0; i < ARRAY_LEN(WORD_OPS); i++) {
        size_t n = strlen(WORD_OPS[i].word);
        if (at(lx, lx->pos, WORD_OPS[i].word) &&
            (lx->pos + n == lx->len || !is_ident_char((unsigned char)lx->s[lx->pos + n]))) {
            push(lx, TK_OP, lx->pos, n)->op = WORD_OPS[i].op;
            lx->pos += n;
            return true;
        }
    }
    for (size_t i = 0; i < ARRAY_LEN(SYM_OPS); i++) {
        if (at(lx, lx->pos, SYM_OPS[i].sym)) {
            size_t n = strlen(SYM_OPS[i].sym);
            push(lx, TK_OP, lx->pos, n)->op = SYM_OPS[i].op;
            lx->pos += n;
            return true;
        }
    }
    return false;
}

/* Digits right after a '.' are an index (`items.0`), never a decimal (`a.0.5`). */
static void lex_number(struct lexer *lx)
{
    size_t p = lx->pos;
    while (p < lx->len && is_digit(lx->s[p])) {
        p++;
    }
    bool after_dot = lx->n > 0 && lx->v[lx->n - 1].kind == TK_PUNCT && lx->v[lx->n - 1].ch == '.';
    int kind = TK_INT;
    if (p < lx->len && lx->s[p] == 'L') {
        push(lx, TK_INT, lx->pos, p - lx->pos); /* Pebble's long suffix */
        lx->pos = p + 1;
        return;
    }
    if (!after_dot && p + 1 < lx->len && lx->s[p] == '.' && is_digit(lx->s[p + 1])) {
        p++;
        while (p < lx->len && is_digit(lx->s[p])) {
            p++;
        }
        kind = TK_FLOAT;
    }
    push(lx, kind, lx->pos, p - lx->pos);
    lx->pos = p;
}

/*
 * A double-quoted string holding `#{ expr }` is Pebble string interpolation; it is turned into
 * the concatenation it means: ( "part" ~ ( expr ) ~ "part" ). Pebble takes such strings (any with
 * a '#') without unescaping, so their parts are marked raw.
 */
static void lex_interpolated(struct lexer *lx, size_t q)
{
    push_punct(lx, '(', q);
    size_t p = q + 1;
    size_t part = p;
    bool first = true;
    while (!lx->failed) {
        if (p >= lx->len) {
            lex_fail(lx, q, "unclosed string");
            return;
        }
        char c = lx->s[p];
        if (c == '\\' && p + 1 < lx->len) {
            p += 2;
            continue;
        }
        if (c != '"' && !(c == '#' && p + 1 < lx->len && lx->s[p + 1] == '{')) {
            p++;
            continue;
        }
        if (!first) {
            push(lx, TK_OP, part, 0)->op = OP_CONCAT;
        }
        first = false;
        push(lx, TK_STR, part, p - part)->op = 1;
        if (c == '"') {
            lx->pos = p + 1;
            push_punct(lx, ')', p);
            return;
        }
        push(lx, TK_OP, p, 2)->op = OP_CONCAT;
        push_punct(lx, '(', p);
        lx->pos = p + 2;
        lex_code(lx, "}", p);
        push_punct(lx, ')', lx->pos - 1);
        p = part = lx->pos;
    }
}

static void lex_string(struct lexer *lx)
{
    size_t q = lx->pos;
    char quote = lx->s[q];
    size_t p = q + 1;
    bool hash = false;
    while (p < lx->len && lx->s[p] != quote) {
        if (lx->s[p] == '\\' && p + 1 < lx->len) {
            p++;
        } else if (lx->s[p] == '#') {
            hash = true;
        }
        p++;
    }
    if (p >= lx->len) {
        lex_fail(lx, q, "unclosed string");
        return;
    }
    if (quote == '"' && hash) {
        lex_interpolated(lx, q);
        return;
    }
    push(lx, TK_STR, q + 1, p - q - 1);
    lx->pos = p + 1;
}

static void lex_punct(struct lexer *lx, char *stack, int *sp)
{
    char c = lx->s[lx->pos];
    if (c == '(' || c == '[' || c == '{') {
        if (*sp >= EXPR_MAX_DEPTH) {
            lex_fail(lx, lx->pos, "brackets nested too deeply");
            return;
        }
        stack[(*sp)++] = c;
    } else if (c == ')' || c == ']' || c == '}') {
        char want = c == ')' ? '(' : c == ']' ? '[' : '{';
        if (*sp == 0) {
            lex_fail(lx, lx->pos, "unexpected '%c'", c);
            return;
        }
        if (stack[*sp - 1] != want) {
            char open = stack[*sp - 1];
            lex_fail(lx, lx->pos, "expected '%c' to close '%c', found '%c'",
                     open == '('   ? ')'
                     : open == '[' ? ']'
                                   : '}',
                     open, c);
            return;
        }
        (*sp)--;
    }
    push_punct(lx, c, lx->pos);
    lx->pos++;
}

/* Tokens up to `close` ("}}", "%}" or, inside an interpolation, "}") at bracket depth 0. */
static void lex_code(struct lexer *lx, const char *close, size_t open_off)
{
    char stack[EXPR_MAX_DEPTH];
    int sp = 0;
    if (++lx->depth > EXPR_MAX_DEPTH) {
        lex_fail(lx, open_off, "string interpolation nested too deeply");
        return;
    }
    size_t clen = strlen(close);
    while (!lx->failed) {
        while (lx->pos < lx->len && is_java_space(lx->s[lx->pos])) {
            lx->pos++;
        }
        if (lx->pos >= lx->len) {
            lex_fail(lx, open_off, "unclosed '%s'",
                     clen == 2 ? (close[0] == '}' ? "{{" : "{%") : "#{");
            break;
        }
        if (sp == 0 && clen == 2 && lx->s[lx->pos] == '-' && at(lx, lx->pos + 1, close)) {
            lx->trim_next = true;
            push(lx, close[0] == '}' ? TK_PRINT_CLOSE : TK_TAG_CLOSE, lx->pos, 3);
            lx->pos += 3;
            break;
        }
        if (sp == 0 && at(lx, lx->pos, close)) {
            if (clen == 2) {
                push(lx, close[0] == '}' ? TK_PRINT_CLOSE : TK_TAG_CLOSE, lx->pos, 2);
            }
            lx->pos += clen;
            break;
        }
        unsigned char c = (unsigned char)lx->s[lx->pos];
        if (lex_operator(lx)) {
            continue;
        }
        if (is_ident_start(c)) {
            size_t p = lx->pos;
            while (p < lx->len && is_ident_char((unsigned char)lx->s[p])) {
                p++;
            }
            push(lx, TK_NAME, lx->pos, p - lx->pos);
            lx->pos = p;
        } else if (is_digit((char)c)) {
            lex_number(lx);
        } else if (strchr("()[]{}?:.,|=", c) && c != 0) {
            lex_punct(lx, stack, &sp);
        } else if (c == '\'' || c == '"') {
            lex_string(lx);
        } else {
            lex_fail(lx, lx->pos,
                     c >= 0x20 && c < 0x7f ? "unexpected character '%c'" : "unexpected byte 0x%02x",
                     c);
        }
    }
    lx->depth--;
}

/* ==== Lexer: template text ==== */

static void push_text(struct lexer *lx, size_t from, size_t to, bool rtrim)
{
    if (lx->trim_next) {
        while (from < to && is_java_space(lx->s[from])) {
            from++;
        }
        lx->trim_next = false;
    }
    if (rtrim) {
        while (to > from && is_java_space(lx->s[to - 1])) {
            to--;
        }
    }
    if (to > from) {
        push(lx, TK_TEXT, from, to - from);
    }
}

static const char *find_open(const struct lexer *lx, size_t from)
{
    for (size_t i = from; i + 1 < lx->len; i++) {
        if (lx->s[i] == '{' &&
            (lx->s[i + 1] == '{' || lx->s[i + 1] == '%' || lx->s[i + 1] == '#')) {
            return lx->s + i;
        }
    }
    return NULL;
}

static void lex_comment(struct lexer *lx, size_t start, size_t body)
{
    for (size_t i = body; i + 1 < lx->len; i++) {
        if (lx->s[i] == '#' && lx->s[i + 1] == '}') {
            lx->trim_next = i > body && lx->s[i - 1] == '-';
            lx->pos = i + 2;
            return;
        }
    }
    lex_fail(lx, start, "unclosed comment");
}

static void lex_template(struct lexer *lx)
{
    while (!lx->failed && lx->pos < lx->len) {
        const char *open = find_open(lx, lx->pos);
        if (!open) {
            push_text(lx, lx->pos, lx->len, false);
            lx->pos = lx->len;
            break;
        }
        size_t start = (size_t)(open - lx->s);
        char kind = open[1];
        size_t body = start + 2;
        bool rtrim = body < lx->len && lx->s[body] == '-';
        push_text(lx, lx->pos, start, rtrim);
        if (rtrim) {
            body++;
        }
        if (kind == '#') {
            lex_comment(lx, start, body);
            continue;
        }
        push(lx, kind == '{' ? TK_PRINT_OPEN : TK_TAG_OPEN, start, body - start);
        lx->pos = body;
        lex_code(lx, kind == '{' ? "}}" : "%}", start);
    }
    push(lx, TK_EOF, lx->len, 0);
}

bool expr_lex(const char *s, size_t len, struct expr_tokens *out, struct expr_error *err)
{
    struct lexer lx = {.s = s, .len = len, .err = err};
    lex_template(&lx);
    out->v = lx.v;
    out->n = lx.n;
    if (lx.failed) {
        xfree(lx.v);
        out->v = NULL;
        out->n = 0;
    }
    return !lx.failed;
}
