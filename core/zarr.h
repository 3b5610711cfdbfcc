/*
 * zarr.h — zarr v2 / v3 arrays as written by TensorStore for Orbax (library only).
 *
 * An array is its metadata (.zarray or zarr.json) plus chunk values found
 * through a zarr_source (an OCDBT db, or a directory of chunk files). A read
 * of any byte range of the array's little-endian C-order bytes decodes only
 * the chunks (for sharded arrays: the inner chunks) that the range overlaps,
 * through an optional bounded chunk cache. docs/format.md ("Orbax
 * checkpoints") lists what is supported; anything else is CKPT_EUNSUPPORTED
 * with a message naming the array and the codec or dtype, never wrong bytes.
 *
 * Invariants:
 *   1. A decoded unit (chunk or inner chunk) is exactly unit_nbytes long, in
 *      little-endian element order, or the read fails (CKPT_ECORRUPT).
 *   2. Shapes, chunk shapes and their products are checked against overflow
 *      at parse time: prod(shape) * itemsize fits in 63 bits; a unit holds at
 *      most ZARR_MAX_UNIT_BYTES.
 */
#ifndef CKPT_ZARR_H
#define CKPT_ZARR_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "chunk_cache.h"
#include "ckpt/dtype.h"

#define ZARR_MAX_NDIM	    32
#define ZARR_MAX_UNIT_BYTES (1ull << 31)
#define ZARR_MAX_META_BYTES (1u << 20)

typedef struct zarr_array zarr_array;

/* Where chunk values are: keys relative to the array ("0.0", "c/0/1"). */
typedef struct zarr_source {
	/* *len = size of the stored value of key; CKPT_ENOTFOUND if there is none. */
	int (*size)(void *ctx, const char *key, uint64_t *len);
	/* Read exactly len bytes at off of the value of key. */
	int (*pread)(void *ctx, const char *key, void *buf, size_t len, uint64_t off);
	void *ctx;
} zarr_source;

/* Parse .zarray (v3 == 0) or zarr.json (v3 == 1) text; `name` prefixes messages. */
int zarr_parse(zarr_array **out, const char *json, size_t len, int v3, const char *name);
void zarr_free(zarr_array *a);
/* A copy of a named name (arrays with the same metadata text). NULL when out of memory. */
zarr_array *zarr_clone(const zarr_array *a, const char *name);

ckpt_dtype zarr_dtype(const zarr_array *a);
unsigned zarr_ndim(const zarr_array *a);
const uint64_t *zarr_shape(const zarr_array *a);
const uint64_t *zarr_chunk_shape(const zarr_array *a); /* the decoded unit's shape */
uint64_t zarr_nbytes(const zarr_array *a);	       /* prod(shape) * itemsize */
/* "zstd", "none", "sharding_indexed+zstd", ... (static) */
const char *zarr_codec_name(const zarr_array *a);
/*
 * Add what the array's metadata says about its bytes to the JSON object
 * `obj`: "format" ("zarr2"/"zarr3"), "codec" (the chain, e.g. "zstd",
 * "bytes,zstd", "sharding_indexed(bytes,zstd),crc32c-index"), "chunk_shape" (the
 * chunk grid's; a shard's for a sharded array) and, when sharded,
 * "inner_chunk_shape". Returns 0 or CKPT_ENOMEM.
 */
int zarr_describe(cJSON *obj, const zarr_array *a);

/*
 * Read bytes [off, off+len) of the array (little-endian C order) into buf.
 * Missing chunks read as the fill value. cache may be NULL; cache_id must be
 * unique per array among the users of the cache. *units (may be NULL) is
 * incremented by the number of units decoded (cache misses).
 */
int zarr_read(const zarr_array *a, const zarr_source *src, ckpt_chunk_cache *cache,
	      uint64_t cache_id, void *buf, size_t len, uint64_t off, uint64_t *units);

/* The linear index of the unit (chunk, or inner chunk) holding byte off; off < nbytes. */
uint64_t zarr_unit_at(const zarr_array *a, uint64_t off);
/* Number of units (product of the unit grid). */
uint64_t zarr_unit_count(const zarr_array *a);
/* Decode unit id into cache unless it is there already (read-ahead). */
int zarr_prefetch(const zarr_array *a, const zarr_source *src, ckpt_chunk_cache *cache,
		  uint64_t cache_id, uint64_t id);

/* Decode every stored unit (checking sizes and shard-index CRCs). */
int zarr_verify(const zarr_array *a, const zarr_source *src);

/* Fuzz entry: check a shard index of n inner chunks (with or without its
 * crc32c) against a shard of shard_len bytes. */
int zarr_shard_index_check(const unsigned char *idx, size_t idxlen, uint64_t n, int crc,
			   uint64_t shard_len);

/* ---- a directory of chunk files as a source (the use_ocdbt=False layout) ---- */
typedef struct zarr_dir {
	int dirfd;	      /* the array's directory (borrowed) */
	uint64_t *bytes_read; /* incremented atomically by what is read; may be NULL */
} zarr_dir;
/* A source reading chunk files below d->dirfd (d borrowed for the source's life). */
zarr_source zarr_dir_source(zarr_dir *d);
#endif
