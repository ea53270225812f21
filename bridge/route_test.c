/*
 * route_test.c: the digest table: both URL parts must match, first declared key wins, tenants
 * are separate, lengths cannot be shifted between parts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "route.h"

static struct flow flows[3];
static struct flow_trigger trigs[4];
static struct flow_set fs = {flows, 3, 1, 1};

static void set_trigger(struct flow_trigger *t, struct flow *fl, const char *id, const char *key)
{
    t->id = (char *)id;
    t->key = (char *)key;
    t->key_len = strlen(key);
    t->flow = fl;
}

static int setup(void **state)
{
    (void)state;
    memset(flows, 0, sizeof(flows));
    flows[0] = (struct flow){.id = "a", .ns = "n.b", .triggers = &trigs[0], .ntriggers = 2};
    flows[1] = (struct flow){.id = "b.a", .ns = "n", .triggers = &trigs[2], .ntriggers = 1};
    flows[2] = (struct flow){.id = "c", .ns = "n", .triggers = &trigs[3], .ntriggers = 1};
    set_trigger(&trigs[0], &flows[0], "first", "k1");
    set_trigger(&trigs[1], &flows[0], "dup", "k1");
    set_trigger(&trigs[2], &flows[1], "other", "k1");
    set_trigger(&trigs[3], &flows[2], "second", "k2");
    return 0;
}

static const struct flow_trigger *find(const struct route_table *rt, const char *tenant,
                                       const char *ns, const char *id, const char *key)
{
    return route_lookup(rt, strv_of(tenant), strv_of(ns), strv_of(id), strv_of(key));
}

static void lookups(void **state)
{
    (void)state;
    struct route_table *rt = route_table_new(&fs, "main");
    assert_int_equal(route_table_size(rt), 3); /* the duplicate key is not a route */
    assert_ptr_equal(find(rt, "main", "n.b", "a", "k1"), &trigs[0]);
    assert_ptr_equal(find(rt, "main", "n", "b.a", "k1"), &trigs[2]);
    assert_ptr_equal(find(rt, "main", "n", "c", "k2"), &trigs[3]);
    assert_null(find(rt, "main", "n", "c", "k1"));
    assert_null(find(rt, "main", "n", "c", "k2 "));
    assert_null(find(rt, "main", "n", "c", "K2"));
    assert_null(find(rt, "other", "n", "c", "k2"));
    assert_null(find(rt, "main", "n", "x", "k2"));
    assert_null(find(rt, "main", "", "", ""));
    route_table_free(rt);
}

/* "n.b"+"a" and "n"+"b.a" must not be confused even though the concatenations look alike. */
static void no_length_shifting(void **state)
{
    (void)state;
    struct route_table *rt = route_table_new(&fs, "main");
    assert_null(find(rt, "main", "n.b.a", "", "k1"));
    assert_null(find(rt, "main", "n.", "ba", "k1"));
    assert_ptr_equal(find(rt, "main", "n.b", "a", "k1")->flow, &flows[0]);
    assert_ptr_equal(find(rt, "main", "n", "b.a", "k1")->flow, &flows[1]);
    route_table_free(rt);
}

static void many_routes(void **state)
{
    (void)state;
    enum { N = 2000 };
    static struct flow many[N];
    static struct flow_trigger mt[N];
    static char names[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "f%d", i);
        many[i] = (struct flow){.id = names[i], .ns = "ns", .triggers = &mt[i], .ntriggers = 1};
        set_trigger(&mt[i], &many[i], "t", names[i]);
    }
    struct flow_set big = {many, N, 1, 1};
    struct route_table *rt = route_table_new(&big, "main");
    assert_int_equal(route_table_size(rt), N);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(find(rt, "main", "ns", names[i], names[i]), &mt[i]);
        assert_null(find(rt, "main", "ns", names[i], names[(i + 1) % N]));
    }
    route_table_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(lookups, setup),
        cmocka_unit_test_setup(no_length_shifting, setup),
        cmocka_unit_test(many_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
