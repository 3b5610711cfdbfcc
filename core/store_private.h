/*
 * store_private.h — what store.c (reads) and store_write.c (batches) share.
 *
 * Locking: `mu` guards the sqlite connection and its statements, the file
 * table (`files`) and `batch`. A store_file never moves or changes once
 * published (its fd is set before it is added), so a ckpt_value may read
 * through its file pointers without the lock. `generation` and `bytes_read`
 * are atomics.
 */
#ifndef CKPT_STORE_PRIVATE_H
#define CKPT_STORE_PRIVATE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "chunk_cache.h"
#include "ckpt/store.h"

/* Limits a reader enforces on what it finds in an index (docs/format.md). */
#define STORE_MAX_CHUNK_SIZE (256u << 20)
#define STORE_MIN_CHUNK_SIZE 4096u
#define STORE_MAX_KEY	     65535u
#define STORE_MAX_FILE_NAME  128u

typedef struct store_file {
	int64_t id;
	char *name;    /* file name inside d/ (validated: [0-9A-Za-z_.-], no leading '.') */
	uint64_t size; /* committed size recorded in the files table */
	int fd;	       /* O_RDONLY, kept open until the store is freed */
} store_file;

/* One chunk of an opened value, as loaded from the chunks table (validated). */
typedef struct value_chunk {
	store_file *file;
	uint64_t off;	 /* offset in the data file */
	uint32_t stored; /* bytes in the data file */
	uint32_t raw;	 /* bytes after decoding */
	uint32_t crc;	 /* CRC32C of the stored bytes */
	int codec;
} value_chunk;

struct ckpt_store {
	pthread_mutex_t mu;
	char *dir;    /* the store directory as given */
	char *dbpath; /* dir/ckpt.db */
	int ddirfd;   /* dir/d, O_DIRECTORY; -1 if absent (read-only, no chunks) */
	unsigned flags;
	ckpt_store_options opts; /* resolved: no zeros left */
	sqlite3 *db;		 /* guarded by mu */
	sqlite3_stmt *st_kv;	 /* SELECT a kv row by key */
	sqlite3_stmt *st_chunks; /* SELECT a key's chunks in idx order */
	sqlite3_stmt *st_file;	 /* SELECT a files row by id */
	sqlite3_stmt *st_seek;	 /* first key >= ?1 */
	store_file **files;	 /* guarded by mu; entries immutable once added */
	size_t nfiles, capfiles;
	ckpt_chunk_cache *cache; /* NULL without cache_size */
	uint64_t generation;	 /* atomic: last committed generation */
	uint64_t bytes_read;	 /* atomic */
	ckpt_batch *batch;	 /* guarded by mu: the open batch or NULL */
};

/* Write key as printable text into buf (non-printable bytes as \xHH, "..." if cut). */
const char *ckpt_store_key_repr(char *buf, size_t cap, const void *key, size_t keylen);

/* Set a message "<dbpath>: <what>: <sqlite message>" and return code. */
int ckpt_store_sqlerr(ckpt_store *s, int code, const char *what);

/* Read the generation from the meta table (mu held). */
int ckpt_store_read_generation(ckpt_store *s, uint64_t *out);

/*
 * The chunk table of an opened value: ckpt_value_get_info(v)->nchunks entries
 * in index order (NULL for an inline value). Borrowed from v; the files it
 * points to live as long as the store.
 */
const value_chunk *ckpt_value_chunk_table(const ckpt_value *v);

/* Called by ckpt_store_free() with mu not held. */
void ckpt_store_batch_release(ckpt_store *s);

/*
 * Fault injection for tests: when > 0, decremented at every data-file write,
 * fsync and commit step of a batch; the step that brings it to 0 fails with
 * EIO as if the disk had. Not thread-safe; tests only.
 */
extern int ckpt_store_fault_countdown;
int ckpt_store_fault_hit(void);

#endif
