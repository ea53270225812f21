/*
 * bufpool.h: message buffers handed back once delivered (or never published), for the next
 * requests' messages.
 *
 * Every accepted request packs its Kafka message into one malloc'd buffer that librdkafka
 * sends without copying and that lives until the delivery report. At a few KB that is a
 * "large" request for glibc's malloc, which first merges every small chunk freed since the last
 * one (malloc_consolidate): evhttp frees a dozen header strings a request, so perf put that
 * malloc at 2.6 % of the loop's time on 243 B requests. Reusing the buffers of delivered
 * messages skips it.
 *
 * The pool is per thread (the loop's: delivery reports are served by rd_kafka_poll there) and
 * bounded: at most BUFPOOL_MAX_BUFS buffers of at most BUFPOOL_MAX_BUF_BYTES each, so what it
 * holds back from the allocator stays small. Buffers are plain malloc blocks: free() is always
 * a correct way to let one go.
 */
#ifndef BRIDGE_BUFPOOL_H
#define BRIDGE_BUFPOOL_H

#include <stddef.h>

#define BUFPOOL_MAX_BUFS 128
#define BUFPOOL_MAX_BUF_BYTES (64u * 1024u)

/**
 * A buffer of at least `need` bytes (need > 0): a pooled one when the last buffer handed back
 * is big enough, else a new one. *cap gets its usable size. Never NULL (aborts out of memory).
 */
void *bufpool_get(size_t need, size_t *cap);

/** Hands a buffer back (or frees it when the pool is full or it is too big). NULL: nothing. */
void bufpool_put(void *buf);

/** Frees every pooled buffer of this thread (at exit, so leak checkers see a clean heap). */
void bufpool_drain(void);

/** How many buffers this thread's pool holds (tests and metrics). */
size_t bufpool_count(void);

#endif
