/*
 * chunk_cache.h — a thread-safe LRU cache of decompressed chunks, bounded in
 * bytes (the store's read cache, ckpt_store_options.cache_size).
 *
 * Entries are keyed by two integers (the store uses data file id and chunk
 * offset, unique within one store because data files are append-only) and
 * reference-counted: a reader holds an entry from _get/_put until _release,
 * so eviction never frees bytes that a reader is copying from.
 *
 * Invariants:
 *  1. The sum of len over entries in the table is <= capacity.
 *  2. An entry is freed exactly when it is out of the table and its last
 *     reference is released.
 *  3. At most one entry per key is in the table.
 */
#ifndef CKPT_CHUNK_CACHE_H
#define CKPT_CHUNK_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ckpt_chunk_cache ckpt_chunk_cache;

typedef struct ckpt_cached_chunk {
	const void *data; /* read-only while referenced */
	size_t len;
} ckpt_cached_chunk;

/* A cache holding at most `capacity` bytes. Free with ckpt_chunk_cache_free(). */
int ckpt_chunk_cache_new(ckpt_chunk_cache **out, uint64_t capacity);

/* Free the cache. Accepts NULL. All entries must have been released. */
void ckpt_chunk_cache_free(ckpt_chunk_cache *c);

/* The entry for (k1, k2) with a new reference, or NULL on a miss. */
const ckpt_cached_chunk *ckpt_chunk_cache_get(ckpt_chunk_cache *c, uint64_t k1, uint64_t k2);

/*
 * Insert malloc'd `data` of `len` bytes under (k1, k2), taking ownership of
 * data whatever happens, and return the entry with a reference. If the key is
 * already present, data is freed and the existing entry returned. An entry
 * larger than the capacity is returned detached (freed on release). NULL
 * only when out of memory (data is freed).
 */
const ckpt_cached_chunk *ckpt_chunk_cache_put(ckpt_chunk_cache *c, uint64_t k1, uint64_t k2,
					      void *data, size_t len);

/* Drop a reference returned by _get or _put. Accepts NULL. */
void ckpt_chunk_cache_release(ckpt_chunk_cache *c, const ckpt_cached_chunk *e);

/* Bytes currently held in the table (for tests). */
uint64_t ckpt_chunk_cache_bytes(ckpt_chunk_cache *c);

#endif
