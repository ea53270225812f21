/*
 * bufpool.c: the per-thread pool of message buffers (see bufpool.h for why).
 */
#include "bufpool.h"

#include <malloc.h>
#include <stdlib.h>

#include "util.h"

static _Thread_local void *pool[BUFPOOL_MAX_BUFS];
static _Thread_local size_t npool;

void *bufpool_get(size_t need, size_t *cap)
{
    void *buf = npool > 0 ? pool[--npool] : NULL;
    if (!buf || malloc_usable_size(buf) < need) {
        /* Too small: replaced, so the pool follows the sizes of the messages of the moment. */
        free(buf);
        buf = xmalloc(need);
    }
    *cap = malloc_usable_size(buf);
    return buf;
}

void bufpool_put(void *buf)
{
    if (!buf) {
        return;
    }
    if (npool == BUFPOOL_MAX_BUFS || malloc_usable_size(buf) > BUFPOOL_MAX_BUF_BYTES) {
        free(buf);
        return;
    }
    pool[npool++] = buf;
}

void bufpool_drain(void)
{
    while (npool > 0) {
        free(pool[--npool]);
    }
}

size_t bufpool_count(void)
{
    return npool;
}
