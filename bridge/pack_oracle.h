/*
 * pack_oracle.h: the previous, jsmn-based implementation of pack_body and pack_json, as a test
 * oracle: pack_test.c and fuzz_pack.c check that pack.c writes the same bytes for every input.
 * Linked into tests, fuzzers and pack-bench only, never into the bridge.
 */
#ifndef BRIDGE_PACK_ORACLE_H
#define BRIDGE_PACK_ORACLE_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "pack.h"

/**
 * The oracle's parser state: jsmn's token buffer and a C locale. pack_oracle_new() never returns
 * NULL (aborts when out of memory); pack_oracle_free(NULL) is a no-op.
 */
struct pack_oracle;

struct pack_oracle *pack_oracle_new(void);
void pack_oracle_free(struct pack_oracle *pp);

/** Bytes of token buffer the oracle keeps between calls. */
size_t pack_oracle_retained(const struct pack_oracle *pp);

/** pack_body as it was: the same contract (pack.h), the bytes pack_body must reproduce. */
enum pack_body_kind pack_oracle_body(struct pack_oracle *pp, const char *text, size_t len,
                                     msgpack_sbuffer *sb);

/** pack_json as it was (pack.h). */
bool pack_oracle_json(struct pack_oracle *pp, const char *text, size_t len, msgpack_sbuffer *sb);

#endif
