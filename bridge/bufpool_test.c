/*
 * bufpool_test.c: buffers come back for messages that fit, the pool replaces ones too small,
 * and it never holds more than its bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"

static int teardown(void **state)
{
    (void)state;
    bufpool_drain();
    return 0;
}

static void reuses_the_last_buffer_handed_back(void **state)
{
    (void)state;
    size_t cap = 0;
    char *a = bufpool_get(1000, &cap);
    assert_non_null(a);
    assert_true(cap >= 1000);
    assert_int_equal(cap, malloc_usable_size(a));
    memset(a, 'x', cap); /* all of cap is usable */
    bufpool_put(a);
    assert_int_equal(bufpool_count(), 1);

    size_t cap2 = 0;
    char *b = bufpool_get(500, &cap2);
    assert_ptr_equal(a, b);
    assert_int_equal(cap2, cap);
    assert_int_equal(bufpool_count(), 0);
    bufpool_put(b);
}

static void replaces_a_buffer_too_small(void **state)
{
    (void)state;
    size_t cap = 0;
    bufpool_put(bufpool_get(100, &cap));
    assert_int_equal(bufpool_count(), 1);
    char *big = bufpool_get(10000, &cap);
    assert_true(cap >= 10000);
    assert_int_equal(bufpool_count(), 0); /* the small one went, not kept back */
    memset(big, 'y', cap);
    bufpool_put(big);
    assert_int_equal(bufpool_count(), 1);
}

static void bounded_in_count_and_size(void **state)
{
    (void)state;
    void *bufs[BUFPOOL_MAX_BUFS + 5];
    size_t cap;
    for (size_t i = 0; i < BUFPOOL_MAX_BUFS + 5; i++) {
        bufs[i] = bufpool_get(64, &cap);
    }
    for (size_t i = 0; i < BUFPOOL_MAX_BUFS + 5; i++) {
        bufpool_put(bufs[i]); /* the 5 past the bound are freed (ASan would see a leak) */
    }
    assert_int_equal(bufpool_count(), BUFPOOL_MAX_BUFS);
    bufpool_drain();
    assert_int_equal(bufpool_count(), 0);

    bufpool_put(bufpool_get(BUFPOOL_MAX_BUF_BYTES + 1, &cap));
    assert_int_equal(bufpool_count(), 0);
    bufpool_put(NULL);
    assert_int_equal(bufpool_count(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(reuses_the_last_buffer_handed_back, teardown),
        cmocka_unit_test_teardown(replaces_a_buffer_too_small, teardown),
        cmocka_unit_test_teardown(bounded_in_count_and_size, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
