/*
 * ckpt/sys/store_backend.h — implementing a store: the vtable behind ckpt_store.
 *
 * For implementers only; programs that read and write checkpoints include
 * <ckpt/store.h>. Published the way libgit2 publishes git_odb_backend: the
 * struct's first field is its version, CKPT_STORE_BACKEND_INIT or
 * ckpt_store_backend_init() fills it, and a library that finds a version it
 * does not know refuses the backend instead of calling past the end of it.
 * New slots are only ever appended, with a version bump. Version 2 added
 * describe; version 3 the block CRCs of a chunked value (has_blocks,
 * block_crcs: read only from backends of version 3 or later).
 *
 * A backend answers three questions about its keys: which exist below a
 * prefix (list), what a value is (open_value: its size and where its bytes
 * are), and which generation it shows. Everything else — range reads, the
 * chunk cache, checksum checks, whole-value reads, verification — is done
 * once, by the library, for every backend (core/store_read.c). The built-in
 * backend is the sqlite index of docs/format.md (core/store_sqlite.c); only
 * it can be written: on a store opened with any other backend, batches and
 * sealing return CKPT_EREADONLY.
 *
 * A value is described in one of three ways (ckpt_value_source):
 *  - inline: its bytes, in memory;
 *  - chunked: a table of chunks, each a byte range of a data file (RAW or one
 *    zstd frame, with or without a CRC-32C of the stored bytes), chunk i
 *    holding raw bytes [i * chunk_size, min(size, (i + 1) * chunk_size));
 *  - computed: a reader with its own pread (a value assembled from others,
 *    e.g. a whole array decoded from zarr chunks).
 *
 * Threads: list and open_value may be called from several threads at once;
 * a backend serialises them itself if it must. A reader's pread must be
 * safe to call concurrently.
 */
#ifndef CKPT_SYS_STORE_BACKEND_H
#define CKPT_SYS_STORE_BACKEND_H

#include <stdint.h>

#include "ckpt/common.h"
#include "ckpt/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A data file a backend opened. Owned by the backend; it must stay open and
 * unchanged until the backend's free (values borrow it). `id` is unique
 * within the backend: the chunk cache keys decoded chunks by (id, offset).
 */
typedef struct ckpt_store_file {
	int fd;           /* open for reading */
	uint64_t id;      /* unique within the backend */
	uint64_t size;    /* bytes a chunk may reference: offset + stored <= size */
	const char *path; /* relative to the store directory, for messages */
} ckpt_store_file;

/* One chunk of a chunked value. */
typedef struct ckpt_store_chunk {
	const ckpt_store_file *file;
	uint64_t off;     /* of the stored bytes in file */
	uint32_t stored;  /* bytes in the file */
	uint32_t raw;     /* bytes after decoding */
	uint32_t crc32c;  /* of the stored bytes, when has_crc */
	uint8_t codec;    /* CKPT_CODEC_RAW or CKPT_CODEC_ZSTD (the frame may lack a content size) */
	uint8_t has_crc;  /* 0: nothing records a checksum of these bytes (OCDBT values) */
	/* Version 3 on (read only then): a RAW chunk whose block CRCs are in the
	 * source's block_crcs, so that part of it can be read and checked alone. */
	uint8_t has_blocks;
} ckpt_store_chunk;

/* Bytes per block of a chunk's block CRCs (docs/format.md, "Block checksums"). */
#define CKPT_CRC_BLOCK 8192u

/* A value computed by the backend. ctx belongs to the value; free releases it. */
typedef struct ckpt_value_reader {
	/* Fill buf with exactly len bytes at off; off + len <= the value's size. */
	int (*pread)(void *ctx, void *buf, size_t len, uint64_t off);
	/* Check whatever the backend records about the value (NULL: read it all). */
	int (*verify)(void *ctx);
	void (*free)(void *ctx);
} ckpt_value_reader;

/*
 * What open_value fills. The backend sets info.size, and exactly one of
 * inline_data (with info.is_inline = 1), chunks (with info.nchunks and
 * info.chunk_size) or reader; the library computes info.stored_size and
 * info.codec of a chunked value. On success, the library owns inline_data
 * and chunks (free()d) and the reader's ctx (reader->free). On failure the
 * backend frees what it allocated.
 */
typedef struct ckpt_value_source {
	ckpt_value_info info;
	int has_value_crc;           /* info.crc32c is the CRC-32C of all raw bytes */
	void *inline_data;           /* malloc'd: info.size bytes, already verified */
	ckpt_store_chunk *chunks;    /* malloc'd: info.nchunks entries */
	const ckpt_value_reader *reader;
	void *reader_ctx;
	/* Version 3 on. NULL, or malloc'd: the CRC-32C of each CKPT_CRC_BLOCK bytes
	 * of the chunks with has_blocks (the last block of a chunk may be short);
	 * chunk i's block j at [i * ceil(chunk_size / CKPT_CRC_BLOCK) + j]. Owned
	 * like chunks. */
	uint32_t *block_crcs;
} ckpt_value_source;

#define CKPT_STORE_BACKEND_VERSION 3

typedef struct ckpt_store_backend ckpt_store_backend;
struct ckpt_store_backend {
	unsigned version; /* CKPT_STORE_BACKEND_VERSION */

	/* Describe key's value in *out (zeroed by the caller); CKPT_ENOTFOUND if absent. */
	int (*open_value)(ckpt_value_source *out, ckpt_store_backend *be, const void *key,
			  size_t keylen);

	/* ckpt_store_list's contract (ckpt/store.h): children in memcmp order. */
	int (*list)(ckpt_store_backend *be, const void *prefix, size_t prefixlen, int delimiter,
		    ckpt_store_list_cb cb, void *payload);

	/* The generation shown; NULL: 0. */
	uint64_t (*generation)(const ckpt_store_backend *be);

	/* Bytes the backend read from disk itself (index, nodes, computed values); NULL: 0. */
	uint64_t (*bytes_read)(const ckpt_store_backend *be);

	/* Release everything; the library calls it exactly once. */
	void (*free)(ckpt_store_backend *be);

	/* Version 2 on. Where key's bytes come from, for people: *out a malloc'd JSON
	 * object text (ckpt_store_describe, ckpt/store.h), or NULL with nothing to
	 * add to the value's info; NULL slot: nothing, for every key. */
	int (*describe)(char **out, ckpt_store_backend *be, const void *key, size_t keylen);
};

#define CKPT_STORE_BACKEND_INIT {CKPT_STORE_BACKEND_VERSION}
/* The oldest version still accepted (version 1 lacks describe). */
#define CKPT_STORE_BACKEND_VERSION_MIN 1

/*
 * Zero *be and set its version. Returns 0, or CKPT_EVERSION if version is not
 * one this library knows (a backend built against a newer header).
 */
CKPT_API int ckpt_store_backend_init(ckpt_store_backend *be, unsigned version);

/*
 * Wrap a backend in a ckpt_store: every read function of ckpt/store.h then
 * works on it (the cache comes from opts->cache_size; opts may be NULL), and
 * every write returns CKPT_EREADONLY. The store takes ownership of be, also
 * when this fails (be->free is called). `dir` names the store in messages.
 * Returns 0, CKPT_EVERSION for a backend version this library does not know,
 * CKPT_EINVAL for a missing slot or bad options, CKPT_ENOMEM.
 */
CKPT_API int ckpt_store_open_backend(ckpt_store **out, ckpt_store_backend *be, const char *dir,
				     const ckpt_store_options *opts);

#ifdef __cplusplus
}
#endif
#endif
