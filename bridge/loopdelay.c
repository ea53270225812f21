/*
 * loopdelay.c: a timer that measures how late it runs, and the refusal share it drives
 * (see loopdelay.h).
 */
#include "loopdelay.h"

#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "util.h"

struct loopdelay {
    struct event *timer;
    long long due_us;   /* when the timer should run next */
    long long late_us;  /* how late it ran last time */
    long long limit_us; /* 0: never refuse */
    int late_ticks;     /* ticks in a row later than the limit */
    double share;       /* of new requests to refuse, 0 to 1 */
    uint64_t rng;       /* xorshift64 state: which requests, not a secret */
};

static void arm(struct loopdelay *ld, long long now_us)
{
    struct timeval tv = {0, LOOPDELAY_PERIOD_MS * 1000};
    ld->due_us = now_us + LOOPDELAY_PERIOD_MS * 1000;
    evtimer_add(ld->timer, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct loopdelay *ld = arg;
    long long now = util_now_us();
    (void)fd;
    (void)what;
    ld->late_us = now > ld->due_us ? now - ld->due_us : 0;
    if (ld->limit_us > 0 && ld->late_us > ld->limit_us) {
        if (++ld->late_ticks >= 2) {
            ld->share = ld->share + LOOPDELAY_STEP_UP > 1.0 ? 1.0 : ld->share + LOOPDELAY_STEP_UP;
        }
    } else {
        ld->late_ticks = 0;
        ld->share = ld->share - LOOPDELAY_STEP_DOWN < 0.0 ? 0.0 : ld->share - LOOPDELAY_STEP_DOWN;
    }
    arm(ld, now);
}

struct loopdelay *loopdelay_new(struct event_base *base)
{
    struct loopdelay *ld = xcalloc(1, sizeof(*ld));
    ld->timer = evtimer_new(base, on_tick, ld);
    if (!ld->timer) {
        abort(); /* allocation failures abort everywhere else too (util.h) */
    }
    ld->rng = (uint64_t)util_now_us() | 1;
    arm(ld, util_now_us());
    return ld;
}

void loopdelay_free(struct loopdelay *ld)
{
    if (!ld) {
        return;
    }
    event_free(ld->timer);
    xfree(ld);
}

void loopdelay_set_limit(struct loopdelay *ld, long long limit_us)
{
    ld->limit_us = limit_us;
    if (limit_us <= 0) {
        ld->share = 0.0;
        ld->late_ticks = 0;
    }
}

bool loopdelay_refuse(struct loopdelay *ld)
{
    if (ld->share <= 0.0) {
        return false;
    }
    ld->rng ^= ld->rng << 13;
    ld->rng ^= ld->rng >> 7;
    ld->rng ^= ld->rng << 17;
    return (double)(ld->rng >> 11) * (1.0 / 9007199254740992.0) < ld->share;
}

long long loopdelay_us(const struct loopdelay *ld)
{
    return ld->late_us;
}

double loopdelay_share(const struct loopdelay *ld)
{
    return ld->share;
}
