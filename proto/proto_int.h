/*
 * proto_int.h: what proto.c shares with proto_state.c: the bounded reader's checks. Internal to
 * proto/ (names end in '_'); other folders include proto.h only.
 */
#ifndef PROTO_INT_H
#define PROTO_INT_H

#include <stdbool.h>
#include <stddef.h>

/**
 * Checks the msgpack value at the start of buf as proto_decode's framing step does (lengths,
 * UTF-8, nesting), counting `depth` enclosing maps or arrays; stores its size in *used.
 */
int proto_check_value_(const void *buf, size_t len, unsigned depth, size_t *used);

/** An execution id: PROTO_ID_LEN base62 characters. */
bool proto_id_valid_(const char *s, size_t n);

/** A time in receivedAt's format naming a real UTC time. */
bool proto_time_valid_(const char *s, size_t n);

/** Valid UTF-8 (RFC 3629). */
bool proto_utf8_valid_(const char *s, size_t n);

/**
 * Finds the value of the first root-map entry whose key is the str `key` in an input that
 * proto_check_value_ accepted; stores its byte range [*start, *end). False when absent.
 */
bool proto_root_value_(const void *buf, size_t len, const char *key, size_t *start, size_t *end);

#endif
