/*
 * ckpt/store.h — the key-value store under every step (docs/format.md,
 * "Store").
 *
 * One store = one directory holding `ckpt.db` (sqlite index) and `d/`
 * (append-only data files). Keys are byte strings ordered by memcmp, with
 * '/' as the usual component separator. Small values live inline in sqlite;
 * large values are split into chunks of `chunk_size` raw bytes, each chunk
 * compressed on its own with zstd (or stored raw when compression does not
 * pay) and appended to a data file. Every chunk and every inline value has a
 * CRC32C that is verified on every read.
 *
 * Writes go through a batch: all puts of a batch become visible atomically
 * at ckpt_batch_commit(), which assigns the next generation number. Data files
 * are fsynced before the index that references them is committed.
 *
 * Reads: ckpt_value_open() loads a value's chunk table into memory once;
 * ckpt_value_pread() then reads any byte range, touching only the chunks it
 * overlaps, and is safe to call from many threads at once. All other
 * functions on one ckpt_store serialise internally (one sqlite connection
 * guarded by a mutex), so a store may be shared between threads.
 *
 * Ownership: ckpt_store owns its sqlite connection, files and chunk cache.
 * A ckpt_value or ckpt_batch borrows its store: free it before the store.
 */
#ifndef CKPT_STORE_H
#define CKPT_STORE_H

#include "ckpt/common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_store ckpt_store;
typedef struct ckpt_batch ckpt_batch;
typedef struct ckpt_value ckpt_value;
typedef struct ckpt_value_writer ckpt_value_writer;

/*
 * Newest format version this library reads and writes; readers refuse a
 * newer major. 1.1: the sealed index checksum; 1.2: block CRCs inside raw
 * chunks; 2.0: tiled values (docs/format.md, "Tiles"); 2.1: 2.0 with block
 * CRCs. A store is written as 1.2 unless it holds a tiled value, so that
 * readers of 1.x read every store without tiles.
 */
#define CKPT_FORMAT_MAJOR 2
#define CKPT_FORMAT_MINOR 1

/* Chunk codecs, as recorded per chunk. */
enum { CKPT_CODEC_RAW = 0, CKPT_CODEC_ZSTD = 1 };

/* Open flags. */
#define CKPT_STORE_READONLY 0x1u  /* never write; the default is read-write */
#define CKPT_STORE_CREATE 0x2u    /* create the directory and an empty store */
#define CKPT_STORE_IMMUTABLE 0x4u /* finalized: no locking, sqlite immutable=1 */

#define CKPT_STORE_OPTIONS_VERSION 1
typedef struct ckpt_store_options {
	unsigned version;
	int compression_level;          /* zstd level 1..19; 0 = never compress */
	uint32_t chunk_size;            /* raw bytes per chunk; 0 = default */
	uint32_t inline_max;            /* values up to this size stay inline; 0 = default */
	uint64_t target_data_file_size; /* start a new data file past this; 0 = default */
	unsigned threads;               /* compression workers; 0 = online CPUs */
	uint64_t max_bytes_in_flight;   /* cap on raw bytes queued for compression/write; 0 = default */
	uint64_t cache_size;            /* bytes of decompressed chunks cached for reads; 0 = none */
} ckpt_store_options;

#define CKPT_STORE_OPTIONS_INIT {CKPT_STORE_OPTIONS_VERSION, 1, 0, 0, 0, 0, 0, 0}

/* Defaults chosen by benchmark; the reasons are in docs/format.md. */
#define CKPT_DEFAULT_CHUNK_SIZE (256u << 10)
#define CKPT_DEFAULT_INLINE_MAX 4096u
#define CKPT_DEFAULT_TARGET_DATA_FILE_SIZE (1ull << 30)
#define CKPT_DEFAULT_MAX_BYTES_IN_FLIGHT (64ull << 20)

/*
 * Open (or with CKPT_STORE_CREATE create) the store in directory `dir`.
 * `opts` may be NULL for defaults; options affect writes and the read cache.
 * The caller frees *out with ckpt_store_free().
 * Returns 0, CKPT_ENOTFOUND (no store: no ckpt.db), CKPT_ECORRUPT (ckpt.db
 * is not a valid index), CKPT_EVERSION (its format major is newer than
 * ours), CKPT_EINVAL (bad opts: an unknown version, values out of range;
 * CREATE with READONLY), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_store_open(ckpt_store **out, const char *dir, unsigned flags,
		    const ckpt_store_options *opts);

/* Close the store. Accepts NULL. Any open batch is aborted. */
CKPT_API void ckpt_store_free(ckpt_store *s);

/* Generation of the last committed batch (0 for an empty store). */
CKPT_API uint64_t ckpt_store_generation(const ckpt_store *s);

/* Bytes read from data files so far (for tests and benchmarks). */
CKPT_API uint64_t ckpt_store_bytes_read(const ckpt_store *s);

/* What is known about a value without reading it. */
typedef struct ckpt_value_info {
	uint64_t size;        /* raw (logical) bytes */
	uint64_t stored_size; /* bytes on disk (compressed) */
	uint32_t nchunks;     /* 0 for an inline value */
	uint32_t chunk_size;  /* raw bytes per chunk (last may be shorter) */
	int is_inline;
	int codec;            /* CKPT_CODEC_ZSTD if any chunk is compressed, else RAW */
	uint32_t crc32c;      /* CRC32C of the whole raw value */
	uint64_t generation;  /* batch that wrote it */
} ckpt_value_info;

/*
 * Info of `key`.
 * Returns 0, CKPT_ENOTFOUND (no such key), CKPT_ECORRUPT (damaged index),
 * CKPT_EIO, CKPT_ENOMEM, or another CKPT_E* code from the store's backend
 * (ckpt/sys/store_backend.h).
 */
CKPT_API int ckpt_store_stat(ckpt_value_info *out, ckpt_store *s, const void *key, size_t keylen);

/*
 * Read the whole value of `key` into a malloc'd buffer (caller free()s
 * *out; *out_len receives its length; a zero-length value gives a non-NULL
 * buffer). Verifies checksums.
 * Returns 0, CKPT_ENOTFOUND (no such key), CKPT_ECORRUPT (damaged index or
 * data: a checksum mismatch), CKPT_EIO, CKPT_ENOMEM, or another CKPT_E*
 * code from the store's backend (ckpt/sys/store_backend.h).
 */
CKPT_API int ckpt_store_get(void **out, size_t *out_len, ckpt_store *s, const void *key, size_t keylen);

/*
 * Listing, S3-style. Calls cb once per child of `prefix`: the bytes after
 * the prefix up to (not including) the next `delimiter` byte. is_prefix is 1
 * for a common prefix (keys exist below name + delimiter) and 0 for a key
 * equal to prefix + name; a name can be reported both ways. With
 * delimiter < 0 every key under the prefix is reported (is_prefix 0).
 * Children come in memcmp order, one index seek each. A non-zero return
 * from cb stops the listing and is returned.
 * Returns 0, cb's non-zero return, CKPT_EINVAL (delimiter > 255),
 * CKPT_ECORRUPT (damaged index), CKPT_ENOMEM, or another CKPT_E* code from
 * the store's backend (ckpt/sys/store_backend.h).
 */
typedef int (*ckpt_store_list_cb)(const void *name, size_t namelen, int is_prefix, void *payload);
CKPT_API int ckpt_store_list(ckpt_store *s, const void *prefix, size_t prefixlen, int delimiter,
		    ckpt_store_list_cb cb, void *payload);

/*
 * Open `key` for reading. Loads the chunk table; afterwards reads do not
 * touch sqlite. The value stays readable after the store's files are
 * unlinked on disk (data files are kept open by the store). Free with
 * ckpt_value_free() before freeing the store.
 * Returns 0, CKPT_ENOTFOUND (no such key), CKPT_ECORRUPT (damaged index:
 * a bad row or chunk table, a missing or truncated data file), CKPT_EIO,
 * CKPT_ENOMEM, or another CKPT_E* code from the store's backend
 * (ckpt/sys/store_backend.h).
 */
CKPT_API int ckpt_value_open(ckpt_value **out, ckpt_store *s, const void *key, size_t keylen);
CKPT_API const ckpt_value_info *ckpt_value_get_info(const ckpt_value *v);

/*
 * Where a value's bytes come from, beyond ckpt_value_info, as a JSON object
 * text in a malloc'd string the caller free()s; *out is NULL when the store's
 * backend has nothing to add (native stores). The Orbax backend
 * (docs/format.md) says e.g. {"chunk_shape":[8],"format":"zarr3",
 * "codec":"sharding_indexed(bytes,zstd),crc32c-index","inner_chunk_shape":[4]}
 * for a zarr array; members may be added later, so parse it.
 * Returns 0, CKPT_ENOMEM, or another CKPT_E* code from the store's backend
 * (ckpt/sys/store_backend.h).
 */
CKPT_API int ckpt_value_describe(char **out, const ckpt_value *v);

/*
 * Read up to `len` bytes at `off` into buf; *out_n receives the count (short
 * only at the end of the value). Reads and decompresses only overlapping
 * chunks (through the store's cache if enabled), verifying each chunk's
 * CRC32C. Thread-safe.
 * Returns 0, CKPT_ECORRUPT (a CRC32C mismatch, a chunk that does not
 * decompress, a data file that ends early), CKPT_EIO, CKPT_ENOMEM, or
 * another CKPT_E* code from the store's backend (ckpt/sys/store_backend.h).
 */
CKPT_API int ckpt_value_pread(size_t *out_n, ckpt_value *v, void *buf, size_t len, uint64_t off);

/*
 * Read every chunk and check the chunk CRCs and the whole-value CRC.
 * Returns 0, CKPT_ECORRUPT (a mismatch, or damaged data), CKPT_EIO,
 * CKPT_ENOMEM, or another CKPT_E* code from the store's backend
 * (ckpt/sys/store_backend.h).
 */
CKPT_API int ckpt_value_verify(ckpt_value *v);

CKPT_API void ckpt_value_free(ckpt_value *v);

/*
 * Start a batch. At most one batch is open per store. The batch owns any
 * data file it appends to until commit or abort.
 * Returns 0, CKPT_EREADONLY (a read-only store, or one whose backend
 * cannot be written), CKPT_EBUSY (a batch is already open), CKPT_ECORRUPT
 * (damaged index), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_batch_begin(ckpt_batch **out, ckpt_store *s);

/* Per-value write options; NULL means the store's. */
#define CKPT_PUT_OPTIONS_VERSION 1
typedef struct ckpt_put_options {
	unsigned version;
	int compression_level; /* -1 = store default, 0 = raw, else zstd level */
} ckpt_put_options;
#define CKPT_PUT_OPTIONS_INIT {CKPT_PUT_OPTIONS_VERSION, -1}

/*
 * Put a whole value (copied). Replaces an earlier value of the same key.
 * Returns 0, CKPT_EINVAL (key too long; bad opts: an unknown version, a
 * compression level out of range), CKPT_EBUSY (a value writer is open),
 * CKPT_ERROR (compression threads did not start), CKPT_EIO, CKPT_ENOMEM, or
 * the error of an earlier failure of the batch (which then commits nothing).
 */
CKPT_API int ckpt_batch_put(ckpt_batch *b, const void *key, size_t keylen, const void *val, size_t len,
		   const ckpt_put_options *opts);

/*
 * Stream a value of any size: open, write any number of times, close.
 * One writer is open per batch at a time. Memory stays bounded by
 * max_bytes_in_flight whatever the value size. ckpt_value_writer_close()
 * frees the writer even when it fails; ckpt_value_writer_abort() drops it
 * and its value.
 * Returns 0, CKPT_EBUSY (another writer is open), CKPT_EINVAL (key too long,
 * bad opts as for ckpt_batch_put), CKPT_ENOMEM, or the error of an earlier
 * failure of the batch.
 */
CKPT_API int ckpt_value_writer_open(ckpt_value_writer **out, ckpt_batch *b, const void *key,
			   size_t keylen, const ckpt_put_options *opts);
/*
 * Append buf[0..len) to the value. After a failure the writer only closes
 * or aborts.
 * Returns 0, CKPT_EIO, CKPT_ERROR (compression threads did not start),
 * CKPT_ENOMEM, or the error of an earlier failure of the writer or batch.
 */
CKPT_API int ckpt_value_writer_write(ckpt_value_writer *w, const void *buf, size_t len);
/*
 * Finish the value (visible at commit) and free w, whatever the result.
 * Returns 0, CKPT_EIO, CKPT_ERROR (compression threads did not start),
 * CKPT_ENOMEM, or the error of an earlier failure of the writer or batch.
 */
CKPT_API int ckpt_value_writer_close(ckpt_value_writer *w);
CKPT_API void ckpt_value_writer_abort(ckpt_value_writer *w);

/* Most dimensions of a tiled value or a box read. */
#define CKPT_TILE_MAX_NDIM 32

/*
 * One tile of a global array (docs/format.md, "Tiles"): the box
 * [start[d], start[d] + shape[d]) of an array of global_shape, elements of
 * itemsize bytes. The arrays are borrowed (ndim entries each).
 */
typedef struct ckpt_tile {
	size_t itemsize;
	unsigned ndim; /* 0..CKPT_TILE_MAX_NDIM */
	const uint64_t *global_shape;
	const uint64_t *start;
	const uint64_t *shape; /* every entry >= 1 */
} ckpt_tile;

/*
 * Stream one tile of `key`: write exactly its C-order bytes (the product of
 * shape times itemsize) with ckpt_value_writer_write, then close. The tile
 * is chunked on its own (chunks never cross tiles, so any tile reads alone).
 * A batch may write several tiles of one key; a tile with the same start as
 * an earlier one of the same key replaces it. The key has no value until
 * ckpt_store_close_tiles (after every process's tiles are merged) checks
 * that its tiles cover the global array exactly once and writes it; from
 * then on it reads as an ordinary value of the whole array in C order.
 * Returns 0, CKPT_EINVAL (a bad tile: ndim too large, an empty or
 * out-of-bounds box, an array too large; key too long, bad opts as for
 * ckpt_batch_put), CKPT_EBUSY (another writer is open), CKPT_ENOMEM, or the
 * error of an earlier failure of the batch. ckpt_value_writer_close returns
 * CKPT_EINVAL when the bytes written are not the tile's size.
 */
CKPT_API int ckpt_value_writer_open_tile(ckpt_value_writer **out, ckpt_batch *b, const void *key,
					 size_t keylen, const ckpt_tile *t,
					 const ckpt_put_options *opts);

/*
 * Read the box [start, start + shape) of v, seen as a C-order array of
 * global_shape with elements of itemsize bytes, into buf (the box in C
 * order: product(shape) * itemsize bytes). Reads only the chunks that
 * overlap the box: a tiled value tile by tile, any other value by its
 * contiguous C-order runs (grouped so no chunk is read twice). Thread-safe.
 * Returns 0, CKPT_EINVAL (the box is not inside global_shape, ndim too
 * large, or global_shape and itemsize do not describe v: another size, or
 * another shape than a tiled value's), CKPT_ECORRUPT, CKPT_EIO, CKPT_ENOMEM,
 * or another CKPT_E* code from the store's backend.
 */
CKPT_API int ckpt_value_pread_box(ckpt_value *v, size_t itemsize, unsigned ndim,
				  const uint64_t *global_shape, const uint64_t *start,
				  const uint64_t *shape, void *buf);

/*
 * Put `key` as bytes [off, off + len) of the file `name` in directory dirfd
 * without copying them when that pays: the file is hard-linked into d/ as a
 * data file of the batch and the value is raw chunks pointing into it (their
 * CRCs computed by reading the range once). The caller must not change the
 * file afterwards: it now belongs to the store. When the file cannot be
 * linked (another filesystem) or compression pays (a sample of the range
 * shrinks at the value's compression level), the bytes are copied through a
 * value writer instead; the value is the same either way.
 * Returns 0, CKPT_ENOTFOUND (no file `name`), CKPT_EINVAL (not a regular
 * file of at least off + len bytes, a value too large, key too long,
 * bad opts as for ckpt_batch_put), CKPT_EBUSY (a value writer is open),
 * CKPT_ERROR (compression threads did not start), CKPT_EIO, CKPT_ENOMEM,
 * or the error of an earlier failure of the batch.
 */
CKPT_API int ckpt_batch_put_file(ckpt_batch *b, const void *key, size_t keylen, int dirfd, const char *name,
			uint64_t off, uint64_t len, const ckpt_put_options *opts);

/*
 * Put `key` as a copy of the value `src_key` of store `src`, sharing its
 * stored chunks: the data files holding them are hard-linked into this
 * store's d/ (never copied) and the chunk table is copied; inline values are
 * copied. src must be open with CKPT_STORE_IMMUTABLE (its data files never
 * change).
 * Returns 0, CKPT_ENOTFOUND (src has no such key), CKPT_EUNSUPPORTED (the
 * files cannot be linked: another filesystem, or src is not a ckpt index;
 * the caller may copy bytes), CKPT_EINVAL (src not open immutable, key too
 * long), CKPT_EBUSY (a value writer is open), CKPT_ECORRUPT (src is
 * damaged), CKPT_ERROR (compression threads did not start: a large inline
 * value is copied), CKPT_EIO, CKPT_ENOMEM, or the error of an earlier
 * failure of the batch.
 */
CKPT_API int ckpt_batch_put_clone(ckpt_batch *b, const void *key, size_t keylen, ckpt_store *src,
			 const void *src_key, size_t src_keylen);

/*
 * Delete a key in this batch (no error if absent).
 * Returns 0, CKPT_EINVAL (key too long), CKPT_ENOMEM.
 */
CKPT_API int ckpt_batch_delete(ckpt_batch *b, const void *key, size_t keylen);

/*
 * Make the batch durable and visible: fsync data files, then commit the
 * index in one sqlite transaction. Frees the batch whatever the result;
 * on failure nothing of the batch is visible. *out_generation may be NULL.
 * Returns 0, CKPT_EINVAL (a value writer is still open), CKPT_EIO (a write,
 * fsync or the sqlite commit failed), CKPT_ECORRUPT (damaged index),
 * or the error of an earlier failure of the batch.
 */
CKPT_API int ckpt_batch_commit(ckpt_batch *b, uint64_t *out_generation);

/* Drop the batch and everything it wrote. Accepts NULL. */
CKPT_API void ckpt_batch_abort(ckpt_batch *b);

/*
 * Prepare a committed store to become immutable: checkpoint and remove any
 * sqlite journal/WAL, record the index checksum in ckpt.db's header
 * (docs/format.md, "Index checksum"), fsync ckpt.db, d/ and the directory.
 * After this the store can be opened with CKPT_STORE_IMMUTABLE from a copy of
 * its directory, and every open checks the whole of ckpt.db against the
 * checksum. A later batch clears the checksum; seal again to restore it.
 * Returns 0, CKPT_EREADONLY (a read-only store), CKPT_EBUSY (a batch is
 * open), CKPT_EIO, CKPT_ECORRUPT (damaged index).
 */
CKPT_API int ckpt_store_seal(ckpt_store *s);

/*
 * Whether the store's index was checked when it was opened (a mismatch fails
 * the open instead). Returns 1 if ckpt.db carried the index checksum of
 * format 1.1 and it matched, 0 if it carried none (written by format 1.0, or
 * never sealed: only the values' own checksums protect it), and 0 for a
 * store of another backend (it checks what its format records).
 */
CKPT_API int ckpt_store_index_checked(const ckpt_store *s);

#ifdef __cplusplus
}
#endif
#endif
