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
	char *dbpath;		 /* dir/<index_name> */
	char *index_name;	 /* "ckpt.db", or a per-process index "ckpt.3.db" */
	int ddirfd;		 /* dir/d, O_DIRECTORY; -1 if absent (read-only, no chunks) */
	unsigned flags;
	sqlite3 *db;		 /* guarded by mu */
	sqlite3_stmt *st_kv;	 /* SELECT a kv row by key */
	sqlite3_stmt *st_chunks; /* SELECT a key's chunks in idx order */
	int has_blocks;		 /* chunks has the blocks column (format 1.2) */
	sqlite3_stmt *st_file;	 /* SELECT a files row by id */
	sqlite3_stmt *st_seek;	 /* first key >= ?1 */
	ckpt_store_file **files; /* guarded by mu; entries immutable once added */
	size_t nfiles, capfiles;
	uint64_t generation;	 /* atomic: last committed generation */
	ckpt_batch *batch;	 /* guarded by mu: the open batch or NULL */
	int index_checked;	 /* ckpt.db's checksum matched at open (format 1.1) */
	uint32_t index_crc;	 /* that checksum, when index_checked */
	sqlite3_stmt *st_tiles;	     /* SELECT a key's tiles; prepared on first use */
	sqlite3_stmt *st_tile_chunks; /* SELECT a tile's chunks; prepared on first use */
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

/*
 * The tables of tiled values (docs/format.md, "Tiles"), created in an index
 * only when it first receives a tile, so that stores without tiles stay
 * exactly what format 1.2 writes. A tile is identified by (key, t0): t0 is
 * the C-order index of its first element in the global array, which no two
 * non-overlapping tiles share.
 */
#define STORE_TILES_SCHEMA                                                                         \
	"CREATE TABLE IF NOT EXISTS %stiles(key BLOB NOT NULL, t0 INTEGER NOT NULL,"               \
	" source TEXT NOT NULL, generation INTEGER NOT NULL, itemsize INTEGER NOT NULL,"           \
	" ndim INTEGER NOT NULL, global_shape BLOB NOT NULL, start BLOB NOT NULL,"                 \
	" shape BLOB NOT NULL, size INTEGER NOT NULL, crc32c INTEGER NOT NULL,"                    \
	" chunk_size INTEGER NOT NULL, PRIMARY KEY(key, t0)) WITHOUT ROWID;"                       \
	"CREATE TABLE IF NOT EXISTS %stile_chunks(key BLOB NOT NULL, t0 INTEGER NOT NULL,"         \
	" idx INTEGER NOT NULL, file_id INTEGER NOT NULL, offset INTEGER NOT NULL,"                \
	" stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL, codec INTEGER NOT NULL,"          \
	" crc32c INTEGER NOT NULL, PRIMARY KEY(key, t0, idx)) WITHOUT ROWID;"

/* The format a store is created with (1.2: block CRCs); a tiled value raises it
 * to 2.1 (close_tiles). */
#define STORE_FORMAT_BASE_MAJOR 1
#define STORE_FORMAT_BASE_MINOR 2
#define STORE_FORMAT_TILES_MAJOR 2
#define STORE_FORMAT_TILES_MINOR 1
/* Largest element a tile row may declare. */
#define STORE_MAX_ITEMSIZE (1u << 20)

/* One tile of a tiled value, as loaded from the index (store_tiles.c). */
typedef struct store_tile {
	uint64_t start[CKPT_TILE_MAX_NDIM], shape[CKPT_TILE_MAX_NDIM];
	uint64_t t0;		  /* C-order index of its first element */
	char source[STORE_MAX_FILE_NAME + 1]; /* index file that wrote it */
	ckpt_value_info info;	  /* size, crc32c, chunk_size, nchunks */
	ckpt_store_chunk *chunks; /* owned until bound, then the value's */
	ckpt_value *v;		  /* once bound (ckpt_tiles_bind) */
} store_tile;

/* A tiled value: its global array and tiles (ordered by t0). */
typedef struct store_tiled {
	size_t itemsize;
	unsigned ndim;
	uint64_t global_shape[CKPT_TILE_MAX_NDIM];
	store_tile *tiles;
	uint32_t ntiles, cap;
} store_tiled;

/* The reader of tiled values (store_tiles.c); a value whose reader is this is tiled. */
extern const ckpt_value_reader ckpt_tiles_reader;

void ckpt_tiled_free(store_tiled *t);

/*
 * Load key's tile rows (with their chunk tables if with_chunks) into a new
 * *out, each row checked against every bound of docs/format.md; mu held.
 * Returns 0, CKPT_ENOTFOUND (no tiles), CKPT_ECORRUPT, CKPT_ENOMEM.
 */
int ckpt_tiles_load(store_tiled **out, sqlite_index *x, const void *key, size_t keylen,
		    int with_chunks);

/*
 * Check that t's tiles cover its global array exactly once; a gap or an
 * overlap is `code` with a message naming key, the box(es) and their
 * index files.
 */
int ckpt_tiles_check(const store_tiled *t, const char *where, const void *key, size_t keylen,
		     int code);

/* CKPT_EINVAL for the overlap in row st: key, then (ndim, start, shape, source) twice. */
int ckpt_tile_overlap_error(const char *where, sqlite3_stmt *st);

/*
 * Load the chunk rows of the statement st (already bound, rows in idx
 * order: idx, file_id, offset, stored_len, raw_len, codec, crc32c, and
 * optionally blocks) as the chunk table of in (size, chunk_size, nchunks
 * set); *out malloc'd. With blocks non-NULL and an eighth column, the rows'
 * block CRCs go to *blocks (malloc'd as ckpt_value_source.block_crcs, NULL
 * if no row has any). mu held.
 */
int ckpt_sqlite_load_chunks(sqlite_index *x, sqlite3_stmt *st, const void *key, size_t keylen,
			    const ckpt_value_info *in, ckpt_store_chunk **out, uint32_t **blocks);

/* Blocks of CKPT_CRC_BLOCK bytes in n bytes: a chunk's block CRCs, and the
 * stride (for n = chunk_size) of the arrays that hold a value's. */
#define STORE_NBLOCKS(n) (((n) + CKPT_CRC_BLOCK - 1) / CKPT_CRC_BLOCK)

/* Chunk i's block CRCs in a value's array of them (all: the layout of
 * ckpt_value_source.block_crcs, STORE_NBLOCKS(chunk_size) per chunk). */
static inline uint32_t *store_chunk_blocks(uint32_t *all, uint32_t i, uint32_t chunk_size)
{
	return all + (size_t)i * STORE_NBLOCKS(chunk_size);
}

/* Block CRCs as stored in chunks.blocks: 4 bytes each, little-endian. */
void ckpt_blocks_encode(unsigned char *out, const uint32_t *crcs, uint32_t n);

/* A chunked value of s around chunks (owned, also on failure), checked (store_read.c). */
int ckpt_value_from_chunks(ckpt_value **out, ckpt_store *s, const void *key, size_t keylen,
			   const ckpt_value_info *in, ckpt_store_chunk *chunks);

/* Make each tile of t a value of s (called by ckpt_value_open for a tiled value). */
int ckpt_tiles_bind(store_tiled *t, ckpt_store *s, const void *key, size_t keylen,
		    ckpt_value_info *info);

/* The tiles of v if it is a tiled value, else NULL (borrowed). */
store_tiled *ckpt_value_tiled(const ckpt_value *v);

/* Commit the open transaction as generation gen, clearing the checksum (mu held). */
int ckpt_store_commit_txn(sqlite_index *x, uint64_t gen);

/* Does schema ("main" or an attached name) hold the tiles table? 1, 0, or < 0 on error. */
int ckpt_store_has_tiles_table(sqlite_index *x, const char *schema);

/* The index checksum in ckpt.db's header (docs/format.md, "Index checksum"). */
#define STORE_SEAL_MAGIC   0x434b5031u /* "CKP1" as the header's application id */
#define STORE_SEAL_CRC_OFF 60	       /* the header's user version: the CRC-32C */
#define STORE_SEAL_ID_OFF  68	       /* the header's application id: the magic */

/*
 * The sqlite index dir/<index_name> (a plain file name), as a backend
 * (store_sqlite.c); *out freed by its free.
 */
int ckpt_sqlite_index_open(sqlite_index **out, const char *dir, const char *index_name,
			   unsigned flags);

/*
 * The index checksum the store checked when it opened ckpt.db, or recorded
 * when it sealed it (docs/format.md "Index checksum"); 0 when
 * ckpt_store_index_checked is 0.
 */
uint32_t ckpt_store_index_crc(const ckpt_store *s);

/*
 * Open (creating) a store whose index file is `index_name` (e.g. "ckpt.3.db",
 * a per-process index of docs/format.md "Several processes writing one
 * step") in dir; data files in dir/d/ as usual (names random, so processes
 * never collide). Everything else as ckpt_store_open; ckpt_store_open is this
 * with "ckpt.db".
 * Returns what ckpt_store_open returns; CKPT_EINVAL also for an index_name
 * that is not a plain file name ([A-Za-z0-9._-], not starting with '.').
 */
int ckpt_store_open_index(ckpt_store **out, const char *dir, const char *index_name,
			  unsigned flags, const ckpt_store_options *opts);

/*
 * Merge the per-process index file dir/<src_index_name> into the open,
 * writable store dst (same directory): its files rows under new ids, its kv
 * rows, chunk rows and tile rows, data files referenced not copied, in one
 * sqlite transaction (ATTACH + INSERT ... SELECT). The merge is one new
 * generation of dst and clears dst's index checksum (seal afterwards). Does
 * not delete the source file (the caller does, after the merge committed).
 * Returns 0, CKPT_EEXISTS (a key present in both indexes: the message names
 * the key and both index files), CKPT_EINVAL (two tiles of one key start at
 * the same element: an overlap, naming both boxes and index files; src is
 * dst's own index), CKPT_ENOTFOUND (no such index file), CKPT_EVERSION (its
 * format is newer), CKPT_ECORRUPT (not a ckpt index, or a chunk row naming a
 * data file it does not list), CKPT_EREADONLY, CKPT_EBUSY (a batch is open),
 * CKPT_EIO, CKPT_ENOMEM.
 */
int ckpt_store_merge_index(ckpt_store *dst, const char *src_index_name);

/*
 * After all tiles are in dst: for every tiled key, check that its tiles tile
 * the global array exactly once and agree on itemsize and global shape, and
 * write the key's kv row (docs/format.md, "Tiles"), in one transaction. A
 * store without tiles is left untouched. Called by the step writer's finalize
 * for every store (single-process too), after any merges, before the seal.
 * Returns 0, CKPT_EINVAL (a gap: "<key>: box [0:4, 8:16] is written by no
 * process"; an overlap: "<key>: boxes [0:4, 0:8] (ckpt.1.db) and [2:6, 0:8]
 * (ckpt.2.db) overlap"; a key written both whole and as tiles), CKPT_EREADONLY, CKPT_EBUSY (a batch is open), CKPT_ECORRUPT (a bad
 * tile row, or tiles of one key that disagree on element size or global
 * shape: "key '<key>': bad tile row <n>"), CKPT_EIO, CKPT_ENOMEM.
 */
int ckpt_store_close_tiles(ckpt_store *dst);

/* Is n a plain file name for an index or data file ([A-Za-z0-9._-], not ".x")? */
int ckpt_store_valid_index_name(const char *n);

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

/* Chunk i's block CRCs (CKPT_CRC_BLOCK bytes each), or NULL; borrowed from v. */
const uint32_t *ckpt_value_chunk_blocks(const ckpt_value *v, uint32_t i);

/*
 * Assert every invariant of an open batch (store_write.c) in one call, as
 * SQLite's assert_pager_state: `assert(ckpt_batch_check(b))`. Returns 1.
 */
int ckpt_batch_check(const ckpt_batch *b);

/*
 * Make b the batch of a non-primary process of a multi-process save
 * (ckpt/multiprocess.h): only tiles are written; every other put
 * (ckpt_batch_put, put_file, put_clone, delete, a plain value writer) is
 * accepted and skipped, so handlers need not know their role. Call before
 * the first put.
 */
void ckpt_batch_set_tiles_only(ckpt_batch *b, int on);

/* Called by the sqlite index's free with mu not held. */
void ckpt_store_batch_release(sqlite_index *x);

#endif
