/*
 * yaml.h: a YAML file as a small tree whose every node carries its line and column (the h2o yoml
 * idea). The only file that includes <yaml.h> is yaml.c.
 */
#ifndef BRIDGE_YAML_H
#define BRIDGE_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

/* Limits that keep hostile files from exhausting the stack or memory; each is an error past it. */
#define YML_MAX_DEPTH 64             /* nested lists and maps */
#define YML_MAX_NODES 100000         /* nodes in one document, alias copies included */
#define YML_MAX_ALIAS_BYTES 16777216 /* scalar bytes created by alias copies */
#define YML_MAX_FILE_BYTES 16777216  /* size of a file read by yml_load_file */

enum yml_kind { YML_SCALAR, YML_SEQ, YML_MAP };

struct yml_node;

struct yml_pair {
    struct yml_node *key; /* always a scalar */
    struct yml_node *value;
};

struct yml_node {
    enum yml_kind kind;
    int line; /* 1-based */
    int col;  /* 1-based */
    /* YML_SCALAR: the text, NUL-terminated (it may contain NULs; len is exact) */
    char *str;
    size_t len;
    bool plain; /* a plain (unquoted) scalar: only these can be null/bool/number */
    /* YML_SEQ */
    struct yml_node **items;
    size_t nitems;
    /* YML_MAP, in document order */
    struct yml_pair *pairs;
    size_t npairs;
};

/** A parsed file. Owns the whole tree; nodes are borrowed from it. */
struct yml_doc {
    char *file;            /* path as given */
    struct yml_node *root; /* NULL for an empty file */
    char *text;            /* whole file contents, NUL-terminated (for snippets) */
};

/**
 * Parses `path`. On error returns NULL and appends "file:line:col: message" to dl (libyaml's
 * problem text at its problem mark). Aliases are resolved by deep copy, bounded by YML_MAX_NODES
 * and YML_MAX_ALIAS_BYTES; an alias to an unknown (or not yet closed) anchor is an error. Also
 * errors: more than one document, nesting deeper than YML_MAX_DEPTH, a key that is a list or a
 * map, and a key repeated in one map (Kestra reads flows with strict duplicate detection).
 * An empty file (or only comments) gives a doc whose root is NULL; "---" alone gives a null
 * scalar root (yml_is_null). The caller owns the result.
 */
struct yml_doc *yml_load_file(const char *path, struct diag_list *dl);

/**
 * Same for `len` bytes of text in memory (need not be NUL-terminated); `name` is used as the
 * file name in errors. For tests and fuzzers.
 */
struct yml_doc *yml_load_string(const char *name, const char *text, size_t len,
                                struct diag_list *dl);

/** Frees the document and every node; NULL is a no-op. */
void yml_doc_free(struct yml_doc *doc);

/** The value of `key` in a map node, or NULL (also NULL when node is not a map). Borrowed. */
struct yml_node *yml_map_get(const struct yml_node *node, const char *key);

/** True for a plain scalar that YAML core reads as null: "", "~", "null", "Null", "NULL". */
bool yml_is_null(const struct yml_node *node);

/**
 * Parses a scalar as a boolean: 1 for true/True/TRUE, 0 for false/False/FALSE (YAML core), -1 for
 * anything else. Quoted "true" is accepted too, as Jackson coerces it for Kestra's boolean fields.
 */
int yml_bool(const struct yml_node *node);

/**
 * A short name for the node's kind for error messages: "a string", "a list", "a map", or "null"
 * for a null scalar (and for node == NULL).
 */
const char *yml_kind_name(const struct yml_node *node);

/**
 * The source line `line` (1-based) without its newline, borrowed from doc->text, with its length
 * in *len; NULL when there is no such line. For snippets: callers must not show lines that may
 * hold a webhook key or a password.
 */
const char *yml_line_text(const struct yml_doc *doc, int line, size_t *len);

#endif
