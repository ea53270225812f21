/*
 * yaml.c: libyaml events → the yml_node tree of yaml.h, with 1-based positions on every node.
 * The only file that includes libyaml's <yaml.h>. Knows nothing about configs or flows.
 */
#include "yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "util.h"

#define STR_OF_(x) #x
#define STR_OF(x) STR_OF_(x)

/*
 * bridge/yaml.h has the same name as libyaml's header. If the build puts bridge/ on the <> search
 * path (meson's implicit include directories), <yaml.h> above finds our own header and every
 * libyaml name below is missing: say so instead of printing a hundred unrelated errors.
 */
#ifndef YAML_H
#error                                                                                             \
    "<yaml.h> resolved to bridge/yaml.h: build bridge_lib with implicit_include_directories: false"
#endif

struct anchor {
    char *name;
    const struct yml_node *node;
    size_t nodes; /* nodes in the anchored subtree, for the expansion budget */
    size_t bytes; /* scalar bytes in it */
};

struct builder {
    yaml_parser_t parser;
    const char *file;
    const char *text;
    size_t len;
    struct diag_list *dl;
    struct anchor *anchors;
    size_t nanchors;
    size_t anchors_cap;
    size_t nodes;        /* nodes created so far, alias copies included */
    size_t bytes;        /* scalar bytes created so far, alias copies included */
    size_t copied_bytes; /* the part of bytes that came from alias copies */
};

/* ==== Errors ==== */

static void error_at(struct builder *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void error_at(struct builder *b, int line, int col, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_add(b->dl, b->file, line, col, "%s", msg);
}

static void error_mark(struct builder *b, yaml_mark_t m, const char *what)
{
    error_at(b, (int)m.line + 1, (int)m.column + 1, "%s", what);
}

/*
 * Reader errors (bad UTF-8, control characters) carry a byte offset instead of a mark. Turn it
 * into a line and a column counted in characters, as libyaml counts them for its marks.
 */
static yaml_mark_t mark_at_offset(const struct builder *b, size_t off)
{
    yaml_mark_t m = {0, 0, 0};
    for (size_t i = 0; i < off && i < b->len; i++) {
        unsigned char c = (unsigned char)b->text[i];
        if (c == '\n') {
            m.line++;
            m.column = 0;
        } else if ((c & 0xC0) != 0x80) {
            m.column++;
        }
    }
    return m;
}

static void report_parser_error(struct builder *b)
{
    const yaml_parser_t *p = &b->parser;
    if (p->error == YAML_MEMORY_ERROR) {
        error_at(b, 0, 0, "out of memory while parsing YAML");
        return;
    }
    const char *problem = p->problem ? p->problem : "cannot parse YAML";
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t m = mark_at_offset(b, p->problem_offset);
        error_at(b, (int)m.line + 1, (int)m.column + 1, "%s", problem);
        return;
    }
    yaml_mark_t m = p->problem_mark;
    if (p->context) {
        error_at(b, (int)m.line + 1, (int)m.column + 1, "%s (%s at line %d, column %d)", problem,
                 p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    } else {
        error_at(b, (int)m.line + 1, (int)m.column + 1, "%s", problem);
    }
}

static bool next_event(struct builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev)) {
        report_parser_error(b);
        return false;
    }
    return true;
}

/* ==== Nodes ==== */

static void node_free(struct yml_node *n)
{
    if (!n) {
        return;
    }
    xfree(n->str);
    for (size_t i = 0; i < n->nitems; i++) {
        node_free(n->items[i]);
    }
    xfree(n->items);
    for (size_t i = 0; i < n->npairs; i++) {
        node_free(n->pairs[i].key);
        node_free(n->pairs[i].value);
    }
    xfree(n->pairs);
    xfree(n);
}

/* Every node counts against YML_MAX_NODES, so alias expansion and huge files stop early. */
static struct yml_node *node_new(struct builder *b, enum yml_kind kind, yaml_mark_t m)
{
    if (b->nodes >= YML_MAX_NODES) {
        error_mark(b, m, "document has more than " STR_OF(YML_MAX_NODES) " nodes");
        return NULL;
    }
    b->nodes++;
    struct yml_node *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->line = (int)m.line + 1;
    n->col = (int)m.column + 1;
    return n;
}

/* Copies are made only after the budget check in build_alias, so they cannot fail. */
static struct yml_node *node_copy(const struct yml_node *src)
{
    struct yml_node *n = xcalloc(1, sizeof(*n));
    *n = *src;
    if (src->str) {
        n->str = xmalloc(src->len + 1);
        memcpy(n->str, src->str, src->len + 1);
    }
    if (src->nitems) {
        n->items = xcalloc(src->nitems, sizeof(*n->items));
        for (size_t i = 0; i < src->nitems; i++) {
            n->items[i] = node_copy(src->items[i]);
        }
    }
    if (src->npairs) {
        n->pairs = xcalloc(src->npairs, sizeof(*n->pairs));
        for (size_t i = 0; i < src->npairs; i++) {
            n->pairs[i].key = node_copy(src->pairs[i].key);
            n->pairs[i].value = node_copy(src->pairs[i].value);
        }
    }
    return n;
}

/* ==== Anchors and aliases ==== */

static void anchor_add(struct builder *b, const yaml_char_t *name, const struct yml_node *n,
                       size_t nodes_before, size_t bytes_before)
{
    if (!name) {
        return;
    }
    if (b->nanchors == b->anchors_cap) {
        b->anchors_cap = b->anchors_cap ? b->anchors_cap * 2 : 8;
        b->anchors = xrealloc(b->anchors, b->anchors_cap * sizeof(*b->anchors));
    }
    struct anchor *a = &b->anchors[b->nanchors++];
    a->name = xstrdup((const char *)name);
    a->node = n;
    a->nodes = b->nodes - nodes_before;
    a->bytes = b->bytes - bytes_before;
}

/*
 * An anchor is registered only once its node is complete, so "&a [*a]" finds no anchor and
 * cycles cannot be built. A later anchor with the same name shadows the earlier one (YAML 1.2).
 */
static const struct anchor *anchor_find(const struct builder *b, const char *name)
{
    for (size_t i = b->nanchors; i > 0; i--) {
        if (strcmp(b->anchors[i - 1].name, name) == 0) {
            return &b->anchors[i - 1];
        }
    }
    return NULL;
}

/*
 * Aliases become deep copies, so the tree stays a tree and every consumer can ignore anchors.
 * The copy is charged in full against the node and byte budgets first: ten nested levels of ten
 * aliases each (the "billion laughs") fail here instead of exhausting memory.
 */
static struct yml_node *build_alias(struct builder *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const struct anchor *a = anchor_find(b, name);
    if (!a) {
        error_mark(b, ev->start_mark, "alias refers to an unknown anchor");
        return NULL;
    }
    if (a->nodes > YML_MAX_NODES - b->nodes || a->bytes > YML_MAX_ALIAS_BYTES - b->copied_bytes) {
        error_mark(b, ev->start_mark,
                   "alias expansion too large (more than " STR_OF(
                       YML_MAX_NODES) " nodes or " STR_OF(YML_MAX_ALIAS_BYTES) " bytes)");
        return NULL;
    }
    b->nodes += a->nodes;
    b->bytes += a->bytes;
    b->copied_bytes += a->bytes;
    struct yml_node *n = node_copy(a->node);
    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
    return n;
}

/* ==== Building the tree ==== */

static struct yml_node *build_node(struct builder *b, const yaml_event_t *ev, int depth);

static struct yml_node *build_scalar(struct builder *b, const yaml_event_t *ev)
{
    size_t nodes_before = b->nodes;
    size_t bytes_before = b->bytes;
    struct yml_node *n = node_new(b, YML_SCALAR, ev->start_mark);
    if (!n) {
        return NULL;
    }
    n->len = ev->data.scalar.length;
    n->str = xmalloc(n->len + 1);
    memcpy(n->str, ev->data.scalar.value, n->len);
    n->str[n->len] = '\0';
    /* plain_implicit: plain style and no tag, so "!!str 12" is not a number. */
    n->plain = ev->data.scalar.plain_implicit;
    b->bytes += n->len;
    anchor_add(b, ev->data.scalar.anchor, n, nodes_before, bytes_before);
    return n;
}

static struct yml_node *build_seq(struct builder *b, const yaml_event_t *start, int depth)
{
    int rc = -EINVAL;
    size_t nodes_before = b->nodes;
    size_t bytes_before = b->bytes;
    size_t cap = 0;
    struct yml_node *n = node_new(b, YML_SEQ, start->start_mark);
    if (!n) {
        goto out;
    }
    for (;;) {
        yaml_event_t ev;
        if (!next_event(b, &ev)) {
            goto out;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        struct yml_node *item = build_node(b, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!item) {
            goto out;
        }
        if (n->nitems == cap) {
            cap = cap ? cap * 2 : 4;
            n->items = xrealloc(n->items, cap * sizeof(*n->items));
        }
        n->items[n->nitems++] = item;
    }
    anchor_add(b, start->data.sequence_start.anchor, n, nodes_before, bytes_before);
    rc = 0;
out:
    if (rc != 0) {
        node_free(n);
        n = NULL;
    }
    return n;
}

static int cmp_pair_key(const void *pa, const void *pb)
{
    const struct yml_node *a = (*(const struct yml_pair *const *)pa)->key;
    const struct yml_node *b = (*(const struct yml_pair *const *)pb)->key;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, n);
    if (c != 0) {
        return c;
    }
    if (a->len != b->len) {
        return a->len < b->len ? -1 : 1;
    }
    return a->line != b->line ? a->line - b->line : a->col - b->col;
}

/*
 * Kestra reads flows with Jackson's strict duplicate detection, and for the config a repeated
 * key is always a mistake, so both are errors here, at the later key. Sorting keeps this
 * O(n log n) for hostile maps with many keys.
 */
static bool check_duplicate_keys(struct builder *b, const struct yml_node *map)
{
    if (map->npairs < 2) {
        return true;
    }
    const struct yml_pair **v = xcalloc(map->npairs, sizeof(*v));
    for (size_t i = 0; i < map->npairs; i++) {
        v[i] = &map->pairs[i];
    }
    qsort(v, map->npairs, sizeof(*v), cmp_pair_key);
    bool ok = true;
    for (size_t i = 1; i < map->npairs && ok; i++) {
        const struct yml_node *a = v[i - 1]->key;
        const struct yml_node *k = v[i]->key;
        if (a->len == k->len && memcmp(a->str, k->str, k->len) == 0) {
            error_at(b, k->line, k->col, "duplicate key '%.*s' (first at line %d, column %d)",
                     k->len > 64 ? 64 : (int)k->len, k->str, a->line, a->col);
            ok = false;
        }
    }
    xfree(v);
    return ok;
}

/* Reads one key and its value; returns 1 on the end of the map, 0 for a pair, -1 on error. */
static int build_pair(struct builder *b, int depth, struct yml_pair *pair)
{
    yaml_event_t ev;
    if (!next_event(b, &ev)) {
        return -1;
    }
    if (ev.type == YAML_MAPPING_END_EVENT) {
        yaml_event_delete(&ev);
        return 1;
    }
    pair->key = build_node(b, &ev, depth + 1);
    yaml_mark_t key_end = ev.end_mark;
    yaml_event_delete(&ev);
    if (!pair->key) {
        return -1;
    }
    if (pair->key->kind != YML_SCALAR) {
        error_at(b, pair->key->line, pair->key->col, "a map key must be a scalar, not %s",
                 yml_kind_name(pair->key));
        return -1;
    }
    if (!next_event(b, &ev)) {
        return -1;
    }
    pair->value = build_node(b, &ev, depth + 1);
    yaml_event_delete(&ev);
    if (!pair->value) {
        return -1;
    }
    /*
     * libyaml places an empty value ("key:" then a new line) at the next token, often on the next
     * line; errors about it read better just after its key's colon.
     */
    struct yml_node *v = pair->value;
    if (v->kind == YML_SCALAR && v->len == 0 && v->plain && v->line != (int)key_end.line + 1) {
        v->line = (int)key_end.line + 1;
        v->col = (int)key_end.column + 2;
    }
    return 0;
}

static struct yml_node *build_map(struct builder *b, const yaml_event_t *start, int depth)
{
    int rc = -EINVAL;
    size_t nodes_before = b->nodes;
    size_t bytes_before = b->bytes;
    size_t cap = 0;
    struct yml_node *n = node_new(b, YML_MAP, start->start_mark);
    if (!n) {
        goto out;
    }
    for (;;) {
        struct yml_pair pair = {NULL, NULL};
        int r = build_pair(b, depth, &pair);
        if (r != 0) {
            node_free(pair.key);
            if (r < 0) {
                goto out;
            }
            break;
        }
        if (n->npairs == cap) {
            cap = cap ? cap * 2 : 4;
            n->pairs = xrealloc(n->pairs, cap * sizeof(*n->pairs));
        }
        n->pairs[n->npairs++] = pair;
    }
    if (!check_duplicate_keys(b, n)) {
        goto out;
    }
    anchor_add(b, start->data.mapping_start.anchor, n, nodes_before, bytes_before);
    rc = 0;
out:
    if (rc != 0) {
        node_free(n);
        n = NULL;
    }
    return n;
}

/*
 * One small recursive builder over events. Depth is bounded so that a file of nested "[[[[..."
 * cannot exhaust the stack; libyaml itself keeps its own stack on the heap.
 */
static struct yml_node *build_node(struct builder *b, const yaml_event_t *ev, int depth)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return build_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return build_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (depth > YML_MAX_DEPTH) {
            error_mark(b, ev->start_mark, "nesting deeper than " STR_OF(YML_MAX_DEPTH) " levels");
            return NULL;
        }
        if (ev->type == YAML_SEQUENCE_START_EVENT) {
            return build_seq(b, ev, depth);
        }
        return build_map(b, ev, depth);
    default:
        error_mark(b, ev->start_mark, "unexpected YAML event");
        return NULL;
    }
}

/* ==== Documents ==== */

/* Expects `type` next; anything else was already reported by libyaml or is a bug. */
static bool expect_event(struct builder *b, yaml_event_type_t type, yaml_event_t *ev)
{
    if (!next_event(b, ev)) {
        return false;
    }
    if (ev->type != type) {
        error_mark(b, ev->start_mark, "unexpected YAML event");
        yaml_event_delete(ev);
        return false;
    }
    return true;
}

/* The stream: STREAM-START, at most one document, STREAM-END. */
static int build_stream(struct builder *b, struct yml_node **root)
{
    yaml_event_t ev;
    if (!expect_event(b, YAML_STREAM_START_EVENT, &ev)) {
        return -EINVAL;
    }
    yaml_event_delete(&ev);
    if (!next_event(b, &ev)) {
        return -EINVAL;
    }
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return 0;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if (!next_event(b, &ev)) {
        return -EINVAL;
    }
    *root = build_node(b, &ev, 1);
    yaml_event_delete(&ev);
    if (!*root || !expect_event(b, YAML_DOCUMENT_END_EVENT, &ev)) {
        return -EINVAL;
    }
    yaml_event_delete(&ev);
    if (!next_event(b, &ev)) {
        return -EINVAL;
    }
    bool more = ev.type != YAML_STREAM_END_EVENT;
    if (more) {
        error_mark(b, ev.start_mark, "a file must hold one YAML document, found a second one");
    }
    yaml_event_delete(&ev);
    return more ? -EINVAL : 0;
}

/* Takes ownership of text (len bytes plus a NUL). */
static struct yml_doc *load_take(const char *name, char *text, size_t len, struct diag_list *dl)
{
    int rc = -EINVAL;
    struct yml_doc *doc = xcalloc(1, sizeof(*doc));
    doc->file = xstrdup(name);
    doc->text = text;
    struct builder b;
    memset(&b, 0, sizeof(b));
    b.file = doc->file;
    b.text = text;
    b.len = len;
    b.dl = dl;
    if (!yaml_parser_initialize(&b.parser)) {
        diag_add(dl, name, 0, 0, "cannot initialise the YAML parser");
        goto out;
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    rc = build_stream(&b, &doc->root);
    yaml_parser_delete(&b.parser);
out:
    for (size_t i = 0; i < b.nanchors; i++) {
        xfree(b.anchors[i].name);
    }
    xfree(b.anchors);
    if (rc != 0) {
        yml_doc_free(doc);
        doc = NULL;
    }
    return doc;
}

struct yml_doc *yml_load_string(const char *name, const char *text, size_t len,
                                struct diag_list *dl)
{
    return load_take(name, xstrndup(text, len), len, dl);
}

/* Reads a whole file; NULL with errno set on failure or when it exceeds YML_MAX_FILE_BYTES. */
static char *read_file(const char *path, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    size_t cap = 0;
    int err = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = xrealloc(buf, cap + 1);
        }
        errno = 0;
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n > YML_MAX_FILE_BYTES) {
            err = EFBIG;
            break;
        }
        if (r == 0) {
            err = ferror(f) ? (errno ? errno : EIO) : 0;
            break;
        }
    }
    fclose(f);
    if (err) {
        xfree(buf);
        errno = err;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct yml_doc *yml_load_file(const char *path, struct diag_list *dl)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text) {
        if (errno == EFBIG) {
            diag_add(dl, path, 0, 0, "file is larger than %d bytes", YML_MAX_FILE_BYTES);
        } else {
            diag_add(dl, path, 0, 0, "cannot read: %s", strerror(errno));
        }
        return NULL;
    }
    return load_take(path, text, len, dl);
}

void yml_doc_free(struct yml_doc *doc)
{
    if (!doc) {
        return;
    }
    node_free(doc->root);
    xfree(doc->file);
    xfree(doc->text);
    xfree(doc);
}

/* ==== Accessors ==== */

struct yml_node *yml_map_get(const struct yml_node *node, const char *key)
{
    if (!node || node->kind != YML_MAP) {
        return NULL;
    }
    size_t klen = strlen(key);
    for (size_t i = 0; i < node->npairs; i++) {
        const struct yml_node *k = node->pairs[i].key;
        if (k->len == klen && memcmp(k->str, key, klen) == 0) {
            return node->pairs[i].value;
        }
    }
    return NULL;
}

bool yml_is_null(const struct yml_node *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    if (!node || node->kind != YML_SCALAR || !node->plain) {
        return false;
    }
    for (size_t i = 0; i < ARRAY_LEN(nulls); i++) {
        if (strcmp(node->str, nulls[i]) == 0) {
            return true;
        }
    }
    return false;
}

int yml_bool(const struct yml_node *node)
{
    static const char *const words[] = {"false", "False", "FALSE", "true", "True", "TRUE"};
    if (!node || node->kind != YML_SCALAR || node->len != strlen(node->str)) {
        return -1;
    }
    for (size_t i = 0; i < ARRAY_LEN(words); i++) {
        if (strcmp(node->str, words[i]) == 0) {
            return i >= 3;
        }
    }
    return -1;
}

const char *yml_kind_name(const struct yml_node *node)
{
    if (!node || yml_is_null(node)) {
        return "null";
    }
    switch (node->kind) {
    case YML_SEQ:
        return "a list";
    case YML_MAP:
        return "a map";
    default:
        return "a string";
    }
}

const char *yml_line_text(const struct yml_doc *doc, int line, size_t *len)
{
    if (!doc || !doc->text || line < 1) {
        return NULL;
    }
    const char *p = doc->text;
    for (int i = 1; i < line; i++) {
        p = strchr(p, '\n');
        if (!p) {
            return NULL;
        }
        p++;
    }
    *len = strcspn(p, "\r\n");
    return p;
}
