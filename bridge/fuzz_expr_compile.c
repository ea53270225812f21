/*
 * fuzz_expr_compile.c: libFuzzer target for expr compilation. Any bytes must either compile or
 * fail with an offset inside the text and a message; a compiled program must render without a
 * crash (only -EINVAL or -E2BIG as failures), and error reporting must cope with any text.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "util.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_expr_compile: check failed at line %d: %s\n", __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Reports the error as flow loading would: inside a fake YAML file holding the template. */
static void report(const struct expr_error *err, const char *text, size_t len)
{
    struct diag_list dl;
    diag_list_init(&dl);
    expr_error_report(err, text, len, "f.yaml", NULL, &dl);
    char *file = xasprintf("expression: %.*s\n", (int)len, text);
    struct expr_src src = {.line = 1, .col = 13, .file_text = file};
    expr_error_report(err, text, len, "f.yaml", &src, &dl);
    src.style = EXPR_SRC_LITERAL;
    expr_error_report(err, text, len, "f.yaml", &src, &dl);
    CHECK(dl.n == 3);
    for (size_t i = 0; i < dl.n; i++) {
        CHECK(dl.v[i].line >= 1 && dl.v[i].col >= 1);
    }
    xfree(file);
    diag_list_deinit(&dl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    for (int compat = 1; compat <= 2; compat++) {
        struct expr_error err;
        struct expr_prog *prog = expr_compile(text, size, compat, &err);
        if (!prog) {
            CHECK(err.offset <= size);
            CHECK(err.msg[0] != '\0');
            if (compat == 1) {
                report(&err, text, size);
            }
            continue;
        }
        size_t len;
        CHECK(expr_text(prog, &len) != NULL && len == size);
        struct expr_env env = {.now = {1714990530, 0}, .compat = compat};
        struct sbuf out;
        sbuf_init(&out);
        char why[128];
        int rc = expr_render(prog, &env, &out, why, sizeof(why));
        CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG);
        CHECK(rc == 0 || why[0] != '\0');
        CHECK(out.len <= EXPR_MAX_OUTPUT + EXPR_MAX_STRING);
        if (rc == 0) {
            (void)expr_kestra_true(out.data, out.len);
            (void)expr_when_true(out.data, out.len);
        }
        sbuf_deinit(&out);
        expr_free(prog);
    }
    return 0;
}
