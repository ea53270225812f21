/*
 * expr_int.h: what the expr_*.c files share: operators, AST nodes, values, the evaluation
 * context and the function tables. Not an API: only expr_*.c include it.
 */
#ifndef BRIDGE_EXPR_INT_H
#define BRIDGE_EXPR_INT_H

#include <stdarg.h>
#include <stdint.h>

#include "expr.h"

/* ==== Arenas ==== */

/* Bump allocator in chunks. The program's arena holds the AST; a render's arena holds every
 * temporary value and is dropped in one go. `limit` (0: none) caps the bytes handed out. */
struct arena_chunk;
struct arena {
    struct arena_chunk *head;
    char *cur;
    char *end;
    size_t total;
    size_t limit;
};

void arena_init(struct arena *ar, void *buf, size_t size, size_t limit);
void arena_deinit(struct arena *ar);
/** Returns n bytes aligned for any type, or NULL when the limit would be passed. */
void *arena_alloc(struct arena *ar, size_t n);
/** Aborting variant for compile time (no limit). */
void *arena_xalloc(struct arena *ar, size_t n);

/* ==== Tokens (expr_lex.c) ==== */

enum tok_kind {
    TK_EOF,
    TK_TEXT,
    TK_PRINT_OPEN,
    TK_PRINT_CLOSE,
    TK_TAG_OPEN,
    TK_TAG_CLOSE,
    TK_NAME,
    TK_INT,
    TK_FLOAT,
    TK_STR,
    TK_OP,
    TK_PUNCT,
};

struct tok {
    uint8_t kind;
    uint8_t op;   /* TK_OP: enum expr_op; TK_STR: 1 when the text is taken raw (no unescaping) */
    char ch;      /* TK_PUNCT */
    uint32_t off; /* TK_STR: offset of the content, after the quote */
    uint32_t len;
};

struct expr_tokens {
    struct tok *v; /* owned (xfree); the last one is TK_EOF */
    size_t n;
};

/** Tokenizes a whole template; false with *err set on a lexical error. */
bool expr_lex(const char *s, size_t len, struct expr_tokens *out, struct expr_error *err);

/** Fills *err once (the first error wins) and sets *failed. */
void expr_set_error(struct expr_error *err, bool *failed, size_t off, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* ==== Operators ==== */

enum expr_op {
    OP_NONE = 0,
    OP_OR,
    OP_AND,
    OP_NOT,
    OP_IS,
    OP_CONTAINS,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_GT,
    OP_LE,
    OP_GE,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_MOD,
    OP_CONCAT,
    OP_RANGE,
    OP_COALESCE,
    OP_UNDEF_COALESCE,
    OP_ISIN,
    OP_COUNT
};

/* ==== Values ==== */

enum ev_kind { EV_ERR, EV_NULL, EV_BOOL, EV_INT, EV_UINT, EV_FLOAT, EV_STR, EV_LIST, EV_MAP };

/*
 * A value, passed by value (the jq jv idea). Strings and containers are borrowed: from the
 * message, from the program, or from the render's arena. Containers are always msgpack_objects
 * (ARRAY or MAP), whether they come from the message or were built during evaluation.
 * EV_UINT holds integers above INT64_MAX (Jackson's BigInteger). EV_ERR carries a message;
 * `undef` marks a failed lookup (Pebble's AttributeNotFoundException), the only error that
 * `default`, `??`, `???` and `is defined` catch.
 */
struct ev {
    uint8_t kind;
    bool undef;
    size_t len;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        const char *s;
        const msgpack_object *o;
    };
};

/* ==== AST ==== */

/* The variables a template can read (N_VAR's op); anything else is undefined. */
enum expr_root { ROOT_UNKNOWN = 0, ROOT_TRIGGER, ROOT_FLOW, ROOT_EXECUTION, ROOT_LABELS };

enum node_kind {
    N_SEQ,     /* args: template parts */
    N_TEXT,    /* lit: literal text */
    N_PRINT,   /* a: expression */
    N_IF,      /* args: cond, body, cond, body, ..., [else body]; nargs odd when there is else */
    N_LIT,     /* lit */
    N_VAR,     /* name; op: enum expr_root */
    N_ATTR,    /* a.name (name) or a.0 (lit EV_INT) */
    N_INDEX,   /* a[b] */
    N_UNARY,   /* op a */
    N_BINARY,  /* a op b */
    N_FILTER,  /* a | fn(args) */
    N_TEST,    /* a is [not] fn(args); op = 1 when negated */
    N_CALL,    /* fn(args) */
    N_LIST,    /* [args] */
    N_MAP,     /* {args[0]: args[1], ...} */
    N_TERNARY, /* a ? b : c */
};

struct expr_fn;
struct ectx;

struct node {
    uint8_t kind;
    uint8_t op;
    uint16_t nargs;
    uint32_t off;        /* where the node's operator or name starts (error positions) */
    uint32_t start, end; /* source slice of the whole node, for messages */
    struct node *a, *b, *c;
    struct node **args;
    const struct expr_fn *fn;
    const char *name;
    uint32_t name_len;
    struct ev lit;
};

/* ==== Filters, tests and functions ==== */

/*
 * One signature for all three: `in` is the filter input or the tested value (unused for
 * functions); `args` holds fn->max_args values, EV_NULL with undef=true for an argument that was
 * not given (see ARG_GIVEN). Returns a value or an error value.
 */
typedef struct ev (*expr_filter_fn)(struct ectx *cx, const struct node *n, struct ev in,
                                    const struct ev *args);

/* Compile-time check of literal arguments; returns an error message or NULL. */
typedef const char *(*expr_check_fn)(const struct node *n);

#define FN_CATCH_UNDEF 1 /* receives an undefined input instead of failing (default, defined) */
#define FN_NULL_IN_OK 2  /* tests: a null input is passed on instead of being an error */

struct expr_fn {
    const char *name;
    uint8_t min_args;
    uint8_t max_args;
    uint8_t flags;
    const char *params[4];
    expr_filter_fn fn;
    expr_check_fn check;
};

#define EXPR_MAX_ARGS 4
#define ARG_GIVEN(v) (!((v).kind == EV_NULL && (v).undef))

const struct expr_fn *expr_find_filter(const char *name, size_t len);
const struct expr_fn *expr_find_convert_filter(const char *name, size_t len);
const struct expr_fn *expr_find_test(const char *name, size_t len);
const struct expr_fn *expr_find_function(const char *name, size_t len);

/* ==== Programs ==== */

struct expr_prog {
    struct arena ar; /* every node and literal */
    char *text;      /* NUL-terminated copy of the template */
    size_t len;
    struct node *root; /* N_SEQ */
    int compat;
    bool constant;
};

/* ==== Evaluation ==== */

struct ectx {
    const struct expr_env *env;
    const char *src; /* the program text, for messages quoting the template */
    int compat;
    int depth;
    struct arena ar;
    struct timespec now;
    msgpack_object flow; /* built on first use */
    msgpack_object execution;
    msgpack_object labels_empty;
    bool have_flow, have_execution;
};

struct ev expr_eval(struct ectx *cx, const struct node *n);

/* Value constructors. */
static inline struct ev ev_null(void)
{
    struct ev v = {.kind = EV_NULL};
    return v;
}
static inline struct ev ev_bool(bool b)
{
    struct ev v = {.kind = EV_BOOL, .b = b};
    return v;
}
static inline struct ev ev_int(int64_t i)
{
    struct ev v = {.kind = EV_INT, .i = i};
    return v;
}
static inline struct ev ev_float(double d)
{
    struct ev v = {.kind = EV_FLOAT, .d = d};
    return v;
}
static inline struct ev ev_str(const char *s, size_t len)
{
    struct ev v = {.kind = EV_STR, .len = len, .s = s};
    return v;
}
static inline struct ev ev_absent(void)
{
    struct ev v = {.kind = EV_NULL, .undef = true};
    return v;
}
static inline bool ev_is_num(struct ev v)
{
    return v.kind == EV_INT || v.kind == EV_UINT || v.kind == EV_FLOAT;
}

/** An error value whose message is formatted into the arena. */
struct ev ev_err(struct ectx *cx, bool undef, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** The error for a reached size limit. */
struct ev ev_limit(struct ectx *cx);
/** "trigger.body"-style quote of a node's source text (in the arena; shortened). */
const char *node_text(struct ectx *cx, const struct node *n);

/* expr_val.c: conversions, comparison, printing. */
struct ev ev_from_obj(const msgpack_object *o);
void ev_to_obj(struct ev v, msgpack_object *o);
double ev_num(struct ev v);
const char *ev_type_name(struct ev v);
bool ev_equal(struct ev a, struct ev b);
int ev_cmp_num(struct ev a, struct ev b);
int utf16_cmp(const char *a, size_t alen, const char *b, size_t blen);
size_t utf16_len(const char *s, size_t len);
bool ev_empty(struct ev v);
struct ev ev_map_get(const msgpack_object *map, const char *key, size_t klen, bool *found);
const msgpack_object *ev_map_dedupe(struct ectx *cx, const msgpack_object *map);
struct ev ev_new_list(struct ectx *cx, size_t n, msgpack_object **items);
struct ev ev_new_map(struct ectx *cx, size_t n, msgpack_object_kv **kvs);
struct ev ev_sbuf_str(struct ectx *cx, struct sbuf *b);
void java_double(double d, char out[32]);
/* Java String.valueOf / toString forms (null as "null"). Return false at the size limit. */
bool append_java(struct ectx *cx, struct sbuf *b, struct ev v);
/* Jackson's compact JSON; keep_nulls false leaves null map entries out. */
bool append_json(struct ectx *cx, struct sbuf *b, struct ev v, bool keep_nulls);
/* The `{{ }}` form: nothing for null, JSON for containers, Java text for the rest. */
bool append_print(struct ectx *cx, struct sbuf *b, struct ev v);
struct ev ev_tostring(struct ectx *cx, struct ev v);
/* Pebble's compatibleCast to Boolean for and/or/not/if; an error for null and containers. */
struct ev ev_truth(struct ectx *cx, const struct node *n, struct ev v, const char *where);
struct ev ev_arith(struct ectx *cx, const struct node *n, int op, struct ev a, struct ev b);
struct ev ev_contains(struct ectx *cx, const struct node *n, struct ev a, struct ev b);
size_t case_map(const char *s, size_t len, char *out, bool upper);
bool java_is_whitespace(uint32_t cp);
uint32_t utf8_next(const char *s, size_t len, size_t *i);
void utf8_put(struct sbuf *b, uint32_t cp);

/* expr_time.c: dates (the parsing part is in expr.h for the date conditions). */
bool expr_parse_local_datetime(const char *s, size_t len, struct expr_time *tm);
bool expr_parse_date_only(const char *s, size_t len, struct expr_time *tm);
void expr_civil(int64_t days, int *y, int *m, int *d);
struct ev expr_format_date(struct ectx *cx, const struct expr_time *tm, const char *fmt,
                           size_t flen);
struct ev expr_instant_str(struct ectx *cx, const struct timespec *ts);
/* A timeZone argument: UTC/GMT/Z or a fixed offset ("+02:00", "UTC+2"). */
struct ev expr_zone_offset(struct ectx *cx, struct ev tz, int32_t *offset);
struct ev expr_to_tm(struct ectx *cx, struct ev v, const char *fname, struct expr_time *tm);

/* Filter implementations (expr_filters.c, expr_convert.c) share one signature and two helpers. */
#define F(name)                                                                                    \
    static struct ev name(struct ectx *cx, const struct node *n, struct ev in,                     \
                          const struct ev *args)
/* The error of a filter applied to a value of the wrong type. */
struct ev filter_wrong_type(struct ectx *cx, const struct node *n, struct ev in, const char *want);
/* The string built in b, as a value; b is released. */
struct ev filter_finish(struct ectx *cx, struct sbuf *b);

/* expr_json.c: JSON text → values in the arena. */
struct ev expr_json_parse(struct ectx *cx, const char *s, size_t len);

#endif
