/*
 * loopdelay_test.c: the refusal share follows the loop's lateness. A real event base; "busy"
 * is a callback that blocks the loop, as a flood of requests would. Margins are wide (a loaded
 * machine only makes the loop later): the test checks the direction, not a speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "loopdelay.h"

struct blocker {
    struct event *ev;
    long block_ms; /* each run blocks the loop this long; 0: stop */
    bool once;     /* block once, do not run again */
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void on_block(evutil_socket_t fd, short what, void *arg)
{
    struct blocker *b = arg;
    (void)fd;
    (void)what;
    if (b->block_ms > 0) {
        sleep_ms(b->block_ms);
        if (!b->once) {
            struct timeval tv = {0, 1000};
            evtimer_add(b->ev, &tv);
        }
    }
}

static void run_for(struct event_base *base, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static int refused_of(struct loopdelay *ld, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        k += loopdelay_refuse(ld);
    }
    return k;
}

/* A loop with a loopdelay refusing past 20 ms and a blocker, not yet armed. */
struct fixture {
    struct event_base *base;
    struct loopdelay *ld;
    struct blocker b;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->ld = loopdelay_new(f->base);
    f->b.ev = evtimer_new(f->base, on_block, &f->b);
    loopdelay_set_limit(f->ld, 20 * 1000);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    event_free(f->b.ev);
    loopdelay_free(f->ld);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Every turn of the loop blocks block_ms from now on (0: none); once: only the next one. */
static void block(struct fixture *f, long block_ms, bool once)
{
    struct timeval now = {0, 0};
    f->b.block_ms = block_ms;
    f->b.once = once;
    evtimer_add(f->b.ev, &now);
}

static void follows_the_lateness(void **state)
{
    struct fixture *f = *state;

    /* A loop on time refuses nothing. */
    run_for(f->base, 200);
    assert_true(loopdelay_us(f->ld) < 20 * 1000);
    assert_true(loopdelay_share(f->ld) == 0.0);
    assert_int_equal(refused_of(f->ld, 1000), 0);

    /* Every turn 60 ms long: every tick is late, the share climbs to all. */
    block(f, 60, false);
    run_for(f->base, 1500);
    assert_true(loopdelay_us(f->ld) > 20 * 1000);
    assert_true(loopdelay_share(f->ld) >= 0.99);
    assert_int_equal(refused_of(f->ld, 1000), 1000);

    /* On time again: it falls back to nothing (0.05 a tick: 1 to 0 in 20 ticks, 200 ms). */
    f->b.block_ms = 0;
    run_for(f->base, 1000);
    assert_true(loopdelay_share(f->ld) == 0.0);
    assert_int_equal(refused_of(f->ld, 1000), 0);
}

static void one_long_turn_is_not_overload(void **state)
{
    struct fixture *f = *state;
    run_for(f->base, 50);
    /* One turn of 300 ms (a reload, a big body), then the tick that saw it. */
    block(f, 300, true);
    run_for(f->base, 5);
    assert_true(loopdelay_us(f->ld) > 200 * 1000);
    assert_true(loopdelay_share(f->ld) == 0.0);
    assert_int_equal(refused_of(f->ld, 1000), 0);
    run_for(f->base, 100);
    assert_true(loopdelay_share(f->ld) == 0.0);
}

static void limit_zero_never_refuses(void **state)
{
    struct fixture *f = *state;
    loopdelay_set_limit(f->ld, 0);
    block(f, 40, false);
    run_for(f->base, 600);
    assert_true(loopdelay_us(f->ld) > 20 * 1000); /* still measured, for the metrics */
    assert_true(loopdelay_share(f->ld) == 0.0);
    assert_int_equal(refused_of(f->ld, 1000), 0);
    f->b.block_ms = 0;
    run_for(f->base, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(follows_the_lateness, setup, teardown),
        cmocka_unit_test_setup_teardown(one_long_turn_is_not_overload, setup, teardown),
        cmocka_unit_test_setup_teardown(limit_zero_never_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
