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

static void follows_the_lateness(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct loopdelay *ld = loopdelay_new(base);
    struct blocker b = {.block_ms = 60};
    b.ev = evtimer_new(base, on_block, &b);
    loopdelay_set_limit(ld, 20 * 1000);

    /* A loop on time refuses nothing. */
    run_for(base, 200);
    assert_true(loopdelay_us(ld) < 20 * 1000);
    assert_true(loopdelay_share(ld) == 0.0);
    assert_int_equal(refused_of(ld, 1000), 0);

    /* Every turn 60 ms long: every tick is late, the share climbs to all. */
    struct timeval now = {0, 0};
    evtimer_add(b.ev, &now);
    run_for(base, 1500);
    assert_true(loopdelay_us(ld) > 20 * 1000);
    assert_true(loopdelay_share(ld) >= 0.99);
    assert_int_equal(refused_of(ld, 1000), 1000);

    /* On time again: it falls back to nothing (0.05 a tick: 1 to 0 in 20 ticks, 200 ms). */
    b.block_ms = 0;
    run_for(base, 1000);
    assert_true(loopdelay_share(ld) == 0.0);
    assert_int_equal(refused_of(ld, 1000), 0);

    event_free(b.ev);
    loopdelay_free(ld);
    event_base_free(base);
}

static void one_long_turn_is_not_overload(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct loopdelay *ld = loopdelay_new(base);
    struct blocker b = {.block_ms = 300};
    b.ev = evtimer_new(base, on_block, &b);
    loopdelay_set_limit(ld, 20 * 1000);
    run_for(base, 50);
    /* One turn of 300 ms (a reload, a big body), then the tick that saw it. */
    b.once = true;
    struct timeval now = {0, 0};
    evtimer_add(b.ev, &now);
    run_for(base, 5);
    assert_true(loopdelay_us(ld) > 200 * 1000);
    assert_true(loopdelay_share(ld) == 0.0);
    assert_int_equal(refused_of(ld, 1000), 0);
    run_for(base, 100);
    assert_true(loopdelay_share(ld) == 0.0);
    event_free(b.ev);
    loopdelay_free(ld);
    event_base_free(base);
}

static void limit_zero_never_refuses(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct loopdelay *ld = loopdelay_new(base);
    struct blocker b = {.block_ms = 40};
    b.ev = evtimer_new(base, on_block, &b);
    loopdelay_set_limit(ld, 0);
    struct timeval now = {0, 0};
    evtimer_add(b.ev, &now);
    run_for(base, 600);
    assert_true(loopdelay_us(ld) > 20 * 1000); /* still measured, for the metrics */
    assert_true(loopdelay_share(ld) == 0.0);
    assert_int_equal(refused_of(ld, 1000), 0);
    b.block_ms = 0;
    run_for(base, 100);
    event_free(b.ev);
    loopdelay_free(ld);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(follows_the_lateness),
        cmocka_unit_test(one_long_turn_is_not_overload),
        cmocka_unit_test(limit_zero_never_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
