/*
 * store_private.h — what store.c, store_sqlite.c, store_read.c and store_write.c share.
 *
 * Locking: the sqlite index's `mu` guards its connection and statements, its
 * file table (`files`) and `batch`. A ckpt_store_file never moves or changes
 * once published (its fd is set before it is added), so a ckpt_value may read
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
#include "ckpt/sys/store_backend.h"

/* Limits a reader enforces on what it finds in an index (docs/format.md). */
#define STORE_MAX_CHUNK_SIZE (256u << 20)
#define STORE_MIN_CHUNK_SIZE 4096u
#define STORE_MAX_KEY	     65535u
#define STORE_MAX_FILE_NAME  128u

/*
 * The sqlite index of docs/format.md: the built-in backend (store_sqlite.c),
 * and the only one batches write (store_write.c). Data files are
 * ckpt_store_files whose path is "d/<name>" (native_file_name gives <name>).
 */
typedef struct sqlite_index {
	ckpt_store_backend base; /* first: the vtable */
	pthread_mutex_t mu;
	char *dir;		 /* the store directory as given */
	char *dbpath;		 /* dir/ckpt.db */
	int ddirfd;		 /* dir/d, O_DIRECTORY; -1 if absent (read-only, no chunks) */
	unsigned flags;
	sqlite3 *db;		 /* guarded by mu */
	sqlite3_stmt *st_kv;	 /* SELECT a kv row by key */
	sqlite3_stmt *st_chunks; /* SELECT a key's chunks in idx order */
	sqlite3_stmt *st_file;	 /* SELECT a files row by id */
	sqlite3_stmt *st_seek;	 /* first key >= ?1 */
	ckpt_store_file **files; /* guarded by mu; entries immutable once added */
	size_t nfiles, capfiles;
	uint64_t generation;	 /* atomic: last committed generation */
	ckpt_batch *batch;	 /* guarded by mu: the open batch or NULL */
	int index_checked;	 /* ckpt.db's checksum matched at open (format 1.1) */
} sqlite_index;

/*
 * A store: a backend, and what the library does for every backend (the read
 * path of store_read.c, the chunk cache). `idx` is the backend when it is the
 * sqlite index (so batches can write it), NULL otherwise.
 */
struct ckpt_store {
	ckpt_store_backend *be;	 /* owned: every read goes through it */
	sqlite_index *idx;	 /* == be for a native store, else NULL */
	char *dir;		 /* for messages */
	unsigned flags;
	ckpt_store_options opts; /* resolved: no zeros left */
	ckpt_chunk_cache *cache; /* NULL without cache_size */
	uint64_t bytes_read;	 /* atomic: bytes of data files read by the library */
};

/* The index checksum in ckpt.db's header (docs/format.md, "Index checksum"). */
#define STORE_SEAL_MAGIC   0x434b5031u /* "CKP1" as the header's application id */
#define STORE_SEAL_CRC_OFF 60	       /* the header's user version: the CRC-32C */
#define STORE_SEAL_ID_OFF  68	       /* the header's application id: the magic */

/* The sqlite index in directory dir, as a backend (store_sqlite.c); *out freed by its free. */
int ckpt_sqlite_index_open(sqlite_index **out, const char *dir, unsigned flags);

/* <name> of a native data file, whose path is "d/<name>". */
static inline const char *native_file_name(const ckpt_store_file *f)
{
	return f->path + 2;
}

/* Check options and fill in defaults (CKPT_EINVAL naming the bad one). */
int ckpt_store_resolve_options(ckpt_store_options *o, const ckpt_store_options *in);

/* Write key as printable text into buf (non-printable bytes as \xHH, "..." if cut). */
const char *ckpt_store_key_repr(char *buf, size_t cap, const void *key, size_t keylen);

/* Set a message "<dbpath>: <what>: <sqlite message>" and return code. */
int ckpt_store_sqlerr(sqlite_index *x, int code, const char *what);

/* Read the generation from the meta table (mu held). */
int ckpt_store_read_generation(sqlite_index *x, uint64_t *out);

/*
 * The chunk table of an opened value: ckpt_value_get_info(v)->nchunks entries
 * in index order (NULL for an inline or computed value). Borrowed from v; the
 * files it points to live as long as the store.
 */
const ckpt_store_chunk *ckpt_value_chunk_table(const ckpt_value *v);

/*
 * Assert every invariant of an open batch (store_write.c) in one call, as
 * SQLite's assert_pager_state: `assert(ckpt_batch_check(b))`. Returns 1.
 */
int ckpt_batch_check(const ckpt_batch *b);

/* Called by the sqlite index's free with mu not held. */
void ckpt_store_batch_release(sqlite_index *x);

#endif
