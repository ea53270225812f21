/*
 * yaml_test.c: the yml_ tree: positions, scalars, aliases and their limits, one document per
 * file, nesting depth, and libyaml's errors as "file:line:col: message".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"
#include "yaml.h"

/* ==== Helpers ==== */

static struct yml_doc *load(const char *text, struct diag_list *dl)
{
    diag_list_init(dl);
    return yml_load_string("t.yaml", text, strlen(text), dl);
}

/* Loads text that must fail and checks the one formatted error. */
static void expect_error(const char *text, const char *want)
{
    struct diag_list dl;
    struct yml_doc *doc = load(text, &dl);
    assert_null(doc);
    assert_int_equal(dl.n, 1);
    char *got = diag_format(&dl.v[0]);
    assert_string_equal(got, want);
    xfree(got);
    diag_list_deinit(&dl);
}

static void assert_pos(const struct yml_node *n, int line, int col)
{
    assert_non_null(n);
    assert_int_equal(n->line, line);
    assert_int_equal(n->col, col);
}

/* ==== Positions and scalars ==== */

static void positions(void **state)
{
    (void)state;
    const char *text = "# comment\n"
                       "id: hello\n"
                       "list:\n"
                       "    - one\n"
                       "    -   two\n"
                       "flow: {a: 1, b: [x, y]}\n"
                       "block: |\n"
                       "    line\n";
    struct diag_list dl;
    struct yml_doc *doc = load(text, &dl);
    assert_non_null(doc);
    assert_int_equal(dl.n, 0);
    assert_pos(doc->root, 2, 1);
    assert_int_equal(doc->root->npairs, 4);
    assert_pos(doc->root->pairs[0].key, 2, 1);
    assert_pos(yml_map_get(doc->root, "id"), 2, 5);
    const struct yml_node *list = yml_map_get(doc->root, "list");
    assert_int_equal(list->kind, YML_SEQ);
    assert_pos(list, 4, 5);
    assert_pos(list->items[0], 4, 7);
    assert_pos(list->items[1], 5, 9);
    const struct yml_node *flow = yml_map_get(doc->root, "flow");
    assert_pos(flow, 6, 7);
    assert_pos(yml_map_get(flow, "b"), 6, 17);
    assert_pos(yml_map_get(flow, "b")->items[1], 6, 21);
    const struct yml_node *block = yml_map_get(doc->root, "block");
    assert_pos(block, 7, 8);
    assert_string_equal(block->str, "line\n");
    size_t len = 0;
    const char *line = yml_line_text(doc, 6, &len);
    assert_int_equal(len, strlen("flow: {a: 1, b: [x, y]}"));
    assert_memory_equal(line, "flow: {a: 1, b: [x, y]}", len);
    assert_null(yml_line_text(doc, 99, &len));
    yml_doc_free(doc);
    diag_list_deinit(&dl);
}

/* libyaml puts an empty value at the next token; we put it after its key's colon. */
static void empty_value_position(void **state)
{
    (void)state;
    struct diag_list dl;
    struct yml_doc *doc = load("a:\nb: 1\nc:\n", &dl);
    assert_non_null(doc);
    assert_pos(yml_map_get(doc->root, "a"), 1, 3);
    assert_true(yml_is_null(yml_map_get(doc->root, "a")));
    assert_pos(yml_map_get(doc->root, "c"), 3, 3);
    yml_doc_free(doc);
    diag_list_deinit(&dl);
}

static void scalars(void **state)
{
    (void)state;
    const char *text = "plain: 1\n"
                       "quoted: \"1\"\n"
                       "tagged: !!str 1\n"
                       "nul: \"a\\0b\"\n"
                       "tilde: ~\n"
                       "null_word: null\n"
                       "quoted_null: 'null'\n"
                       "t: True\n"
                       "f: FALSE\n"
                       "qt: \"true\"\n"
                       "yes: yes\n"
                       "list: []\n"
                       "map: {}\n";
    struct diag_list dl;
    struct yml_doc *doc = load(text, &dl);
    assert_non_null(doc);
    const struct yml_node *r = doc->root;
    assert_true(yml_map_get(r, "plain")->plain);
    assert_false(yml_map_get(r, "quoted")->plain);
    assert_false(yml_map_get(r, "tagged")->plain);
    assert_int_equal(yml_map_get(r, "nul")->len, 3);
    assert_memory_equal(yml_map_get(r, "nul")->str, "a\0b", 3);
    assert_true(yml_is_null(yml_map_get(r, "tilde")));
    assert_true(yml_is_null(yml_map_get(r, "null_word")));
    assert_false(yml_is_null(yml_map_get(r, "quoted_null")));
    assert_int_equal(yml_bool(yml_map_get(r, "t")), 1);
    assert_int_equal(yml_bool(yml_map_get(r, "f")), 0);
    assert_int_equal(yml_bool(yml_map_get(r, "qt")), 1);
    assert_int_equal(yml_bool(yml_map_get(r, "yes")), -1);
    assert_int_equal(yml_bool(yml_map_get(r, "list")), -1);
    assert_string_equal(yml_kind_name(yml_map_get(r, "plain")), "a string");
    assert_string_equal(yml_kind_name(yml_map_get(r, "tilde")), "null");
    assert_string_equal(yml_kind_name(yml_map_get(r, "list")), "a list");
    assert_string_equal(yml_kind_name(yml_map_get(r, "map")), "a map");
    assert_string_equal(yml_kind_name(NULL), "null");
    assert_null(yml_map_get(r, "missing"));
    assert_null(yml_map_get(yml_map_get(r, "plain"), "x"));
    yml_doc_free(doc);
    diag_list_deinit(&dl);
}

static void empty_documents(void **state)
{
    (void)state;
    const char *texts[] = {"", "# only a comment\n", "---\n...\n"};
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        struct diag_list dl;
        struct yml_doc *doc = load(texts[i], &dl);
        assert_non_null(doc);
        assert_int_equal(dl.n, 0);
        assert_true(doc->root == NULL || yml_is_null(doc->root));
        yml_doc_free(doc);
        diag_list_deinit(&dl);
    }
}

/* ==== Aliases ==== */

static void aliases_copy(void **state)
{
    (void)state;
    const char *text = "base: &b {k: v, list: [1, 2]}\n"
                       "copy: *b\n"
                       "word: &w hello\n"
                       "again: *w\n"
                       "nested: {inner: *b}\n";
    struct diag_list dl;
    struct yml_doc *doc = load(text, &dl);
    assert_non_null(doc);
    const struct yml_node *base = yml_map_get(doc->root, "base");
    const struct yml_node *copy = yml_map_get(doc->root, "copy");
    assert_ptr_not_equal(base, copy);
    assert_int_equal(copy->kind, YML_MAP);
    assert_pos(copy, 2, 7); /* the alias, not the anchor */
    assert_string_equal(yml_map_get(copy, "k")->str, "v");
    assert_pos(yml_map_get(copy, "k"), 1, 14); /* inner nodes keep their source */
    assert_int_equal(yml_map_get(copy, "list")->nitems, 2);
    assert_string_equal(yml_map_get(doc->root, "again")->str, "hello");
    const struct yml_node *inner = yml_map_get(yml_map_get(doc->root, "nested"), "inner");
    assert_string_equal(yml_map_get(inner, "k")->str, "v");
    yml_doc_free(doc);
    diag_list_deinit(&dl);
}

static void alias_errors(void **state)
{
    (void)state;
    expect_error("a: *nope\n", "t.yaml:1:4: alias refers to an unknown anchor");
    /* An anchor is usable only once its node is complete, so no cycle can be built. */
    expect_error("a: &x [1, *x]\n", "t.yaml:1:11: alias refers to an unknown anchor");
    expect_error("? &k [a]\n: 1\nb: *k\n", "t.yaml:1:3: a map key must be a scalar, not a list");
}

/* The classic "billion laughs": ten levels of ten aliases each. */
static void billion_laughs(void **state)
{
    (void)state;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i < 10; i++) {
        sbuf_appendf(&b, "l%d: &l%d [", i, i);
        for (int j = 0; j < 10; j++) {
            sbuf_appendf(&b, "%s*l%d", j ? ", " : "", i - 1);
        }
        sbuf_append_cstr(&b, "]\n");
    }
    struct diag_list dl;
    long long t0 = util_now_us();
    struct yml_doc *doc = load(b.data, &dl);
    assert_null(doc);
    assert_int_equal(dl.n, 1);
    assert_non_null(strstr(dl.v[0].msg, "alias expansion too large"));
    assert_true(util_now_us() - t0 < 5000000);
    sbuf_deinit(&b);
    diag_list_deinit(&dl);
}

/* Large scalars copied many times hit the byte budget before the node budget. */
static void alias_bytes_limit(void **state)
{
    (void)state;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "big: &big \"");
    for (int i = 0; i < 1 << 20; i++) {
        sbuf_append(&b, "x", 1);
    }
    sbuf_append_cstr(&b, "\"\ncopies: [");
    for (int i = 0; i < 20; i++) {
        sbuf_append_cstr(&b, i ? ", *big" : "*big");
    }
    sbuf_append_cstr(&b, "]\n");
    struct diag_list dl;
    struct yml_doc *doc = load(b.data, &dl);
    assert_null(doc);
    assert_int_equal(dl.n, 1);
    assert_non_null(strstr(dl.v[0].msg, "alias expansion too large"));
    assert_int_equal(dl.v[0].line, 2);
    sbuf_deinit(&b);
    diag_list_deinit(&dl);
}

static void node_limit(void **state)
{
    (void)state;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_append_cstr(&b, "[");
    for (int i = 0; i < YML_MAX_NODES; i++) {
        sbuf_append_cstr(&b, i ? ",1" : "1");
    }
    sbuf_append_cstr(&b, "]");
    struct diag_list dl;
    struct yml_doc *doc = load(b.data, &dl);
    assert_null(doc);
    assert_int_equal(dl.n, 1);
    assert_string_equal(dl.v[0].msg, "document has more than 100000 nodes");
    sbuf_deinit(&b);
    diag_list_deinit(&dl);
}

/* ==== Structure errors ==== */

static void multiple_documents(void **state)
{
    (void)state;
    expect_error("a: 1\n---\nb: 2\n",
                 "t.yaml:2:1: a file must hold one YAML document, found a second one");
    expect_error("--- 1\n--- 2\n",
                 "t.yaml:2:1: a file must hold one YAML document, found a second one");
}

static char *nested(int levels)
{
    char *s = xmalloc((size_t)levels * 2 + 1);
    for (int i = 0; i < levels; i++) {
        s[i] = '[';
        s[levels + i] = ']';
    }
    s[levels * 2] = '\0';
    return s;
}

static void depth_limit(void **state)
{
    (void)state;
    struct diag_list dl;
    char *ok = nested(YML_MAX_DEPTH);
    struct yml_doc *doc = load(ok, &dl);
    assert_non_null(doc);
    yml_doc_free(doc);
    diag_list_deinit(&dl);
    char *deep = nested(YML_MAX_DEPTH + 1);
    expect_error(deep, "t.yaml:1:65: nesting deeper than 64 levels");
    /* Far deeper input must fail just as cleanly, without using the stack for every level. */
    char *hostile = nested(100000);
    expect_error(hostile, "t.yaml:1:65: nesting deeper than 64 levels");
    xfree(ok);
    xfree(deep);
    xfree(hostile);
}

static void duplicate_keys(void **state)
{
    (void)state;
    expect_error("a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key 'a' (first at line 1, column 1)");
    expect_error("m: {x: 1, y: 2, x: 3}\n",
                 "t.yaml:1:17: duplicate key 'x' (first at line 1, column 5)");
}

/* libyaml's problem text at its problem mark, with the context when it gives one. */
static void syntax_errors(void **state)
{
    (void)state;
    expect_error("a: b: c\n", "t.yaml:1:5: mapping values are not allowed in this context");
    expect_error("a: 1\n b: 2\n", "t.yaml:2:3: mapping values are not allowed in this context");
    expect_error("a:\n  - x\n y: 1\n", "t.yaml:3:2: did not find expected key (while parsing a "
                                       "block mapping at line 1, column 1)");
    expect_error("a: \"open\n", "t.yaml:2:1: found unexpected end of stream (while scanning a "
                                "quoted scalar at line 1, column 4)");
    expect_error("a: [1, 2\n", "t.yaml:2:1: did not find expected ',' or ']' (while parsing a "
                               "flow sequence at line 1, column 4)");
    expect_error("a:\n\tb: 1\n", "t.yaml:2:1: found character that cannot start any token "
                                 "(while scanning for the next token at line 2, column 1)");
    expect_error("a: 1\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet");
}

static void files(void **state)
{
    (void)state;
    struct diag_list dl;
    diag_list_init(&dl);
    assert_null(yml_load_file("testdata/no-such-file.yaml", &dl));
    assert_null(yml_load_file("testdata", &dl));
    assert_int_equal(dl.n, 2);
    char *a = diag_format(&dl.v[0]);
    char *b = diag_format(&dl.v[1]);
    assert_string_equal(a, "testdata/no-such-file.yaml: cannot read: No such file or directory");
    assert_string_equal(b, "testdata: cannot read: Is a directory");
    xfree(a);
    xfree(b);
    struct yml_doc *doc = yml_load_file("../configs/bridge.yaml", &dl);
    assert_non_null(doc);
    assert_string_equal(doc->file, "../configs/bridge.yaml");
    assert_non_null(yml_map_get(doc->root, "kafka"));
    yml_doc_free(doc);
    yml_doc_free(NULL);
    diag_list_deinit(&dl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(positions),      cmocka_unit_test(empty_value_position),
        cmocka_unit_test(scalars),        cmocka_unit_test(empty_documents),
        cmocka_unit_test(aliases_copy),   cmocka_unit_test(alias_errors),
        cmocka_unit_test(billion_laughs), cmocka_unit_test(alias_bytes_limit),
        cmocka_unit_test(node_limit),     cmocka_unit_test(multiple_documents),
        cmocka_unit_test(depth_limit),    cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(syntax_errors),  cmocka_unit_test(files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
