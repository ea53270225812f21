/*
 * prune.h: constant paths into a msgpack value, and an unpack that builds only what those paths
 * reach. Conditions use it to read a few fields of the message without unpacking all of it.
 * No I/O.
 */
#ifndef BRIDGE_PRUNE_H
#define BRIDGE_PRUNE_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "util.h"

/**
 * A set of paths, kept as a trie: each node is a value reached by a chain of map keys from the
 * root. A node is either read whole (everything below it may be read), or read only through the
 * keys of its children (possibly none). Built once, when flows load; immutable afterwards, so it
 * may be shared between threads. Keys are copied.
 */
struct prune_paths;

/** A new set that reads nothing (the root has no child and is not whole). Free with prune_free. */
struct prune_paths *prune_new(void);

/** Frees p and every node below it; NULL is a no-op. Only a root from prune_new may be freed. */
void prune_free(struct prune_paths *p);

/**
 * The child of p for map key `key` (len bytes, any bytes), added when missing. When p is read
 * whole its children are already covered: p itself is returned (so marking the result whole
 * changes nothing). The result is borrowed from p's root.
 */
struct prune_paths *prune_child(struct prune_paths *p, const char *key, size_t len);

/** The child of p for `key` (len bytes), or NULL when p has none (always NULL when p is whole). */
const struct prune_paths *prune_find(const struct prune_paths *p, const char *key, size_t len);

/** Marks p as read whole, dropping the children it had. */
void prune_set_whole(struct prune_paths *p);

/** True when p is read whole. */
bool prune_is_whole(const struct prune_paths *p);

/** Adds every path of src to dst (the union of both sets). */
void prune_merge(struct prune_paths *dst, const struct prune_paths *src);

/**
 * Appends a compact description of p to out, for tests and logs: `*` for a whole node, `{}` for
 * a node that reads nothing, `{a:*,b:{c:*}}` otherwise (children in insertion order).
 */
void prune_format(const struct prune_paths *p, struct sbuf *out);

/**
 * Unpacks the msgpack value in data[0..len) into zone, keeping only what p reaches below the
 * keys `prefix[0]`, ..., `prefix[nprefix - 1]` (NUL-terminated; nprefix may be 0): along the
 * prefix and then along p, a map keeps only its entries whose key is a string equal to one of
 * the node's child keys (all of them when duplicated, in their order), and the value at a whole
 * node is unpacked whole, as is any value along a path that is not a non-empty map (an array, a
 * string, ...). A lookup by string key on the result therefore finds what it would find on the
 * full unpack, and a whole node's value is identical to it.
 *
 * The whole input is still checked: the call succeeds exactly when msgpack_unpack would return
 * MSGPACK_UNPACK_SUCCESS on it (one complete value, no byte left over, containers nested at most
 * 32 deep as msgpack-c allows), zone memory permitting. Objects borrow strings from data, as
 * msgpack_unpack's do. Allocates only from zone.
 *
 * Returns 0 with *out set, -EBADMSG when data is not one well-formed msgpack value, -ENOMEM
 * when the zone could not grow. On failure the zone may hold partial results; clear it.
 */
int prune_unpack(const struct prune_paths *p, const char *const *prefix, size_t nprefix,
                 const char *data, size_t len, msgpack_zone *zone, msgpack_object *out);

/**
 * prune_unpack, trusting the containers in known[0..nknown): byte offsets into data, sorted by
 * start, each holding exactly one map or array (as pack_extents gives them for the body the
 * caller packed itself). Where the walk would skip a container that starts at a known start, it
 * checks that container's own depth and jumps to its end without reading or checking what it
 * holds; a value unpacked whole is still checked by msgpack_unpack. With known ranges that are
 * not what they claim the result is undefined (though never a read outside data): pass only
 * ranges of bytes this process wrote. The answer is otherwise prune_unpack's; nknown 0 is
 * prune_unpack. Allocates only from zone.
 */
int prune_unpack_known(const struct prune_paths *p, const char *const *prefix, size_t nprefix,
                       const char *data, size_t len, const struct byte_range *known,
                       size_t nknown, msgpack_zone *zone, msgpack_object *out);

#endif
