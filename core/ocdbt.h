/*
 * ocdbt.h — a read-only reader of TensorStore OCDBT databases (library only).
 *
 * OCDBT is the key-value store Orbax writes checkpoints into: a manifest
 * (manifest.ocdbt) names the latest generation's B+tree root; B+tree nodes,
 * version-tree nodes and indirect values are byte ranges of log-structured
 * data files (d/<hex>, possibly in other directories of the db such as
 * ocdbt.process_<i>/d/ of a merged Orbax checkpoint). docs/format.md
 * ("Orbax checkpoints") describes the bytes and what this reader checks.
 *
 * Design: ocdbt_open() reads and checks only the manifest. B+tree nodes are
 * read on the way to the keys asked for, decoded once and kept (up to
 * OCDBT_NODE_CACHE_BYTES of decoded nodes; past that a node is decoded for
 * each use). Data files are opened on first use and kept open. Every node
 * and the manifest has its envelope (magic, length, CRC-32C) checked.
 *
 * Invariants:
 *   1. Every data-file path is relative, without "." or ".." components, and
 *      is opened below the db directory with O_NOFOLLOW on its last
 *      component: a path escaping the db is refused (CKPT_ECORRUPT).
 *   2. Every count, length and offset read from a file is checked against
 *      the bytes that remain or the limits below before anything is
 *      allocated from it.
 *   3. files[] only grows; an entry never changes once added (its fd is set
 *      before it is published), so blobs may point at it without the lock.
 *
 * Thread-safety: an ocdbt_db may be used from many threads (one mutex guards
 * the file table and node cache).
 */
#ifndef CKPT_OCDBT_H
#define CKPT_OCDBT_H

#include <stddef.h>
#include <stdint.h>

#define OCDBT_MAX_NODE_BYTES   (256u << 20)   /* decoded node / manifest safety limit */
#define OCDBT_MAX_ENTRIES      (1u << 20)     /* entries per node (the spec's limit) */
#define OCDBT_MAX_KEY	       65535u	      /* key and path length (the spec's) */
#define OCDBT_NODE_CACHE_BYTES (256ull << 20) /* decoded nodes kept per db */
#define OCDBT_MAX_HEIGHT       64u

typedef struct ocdbt_db ocdbt_db;

/* Where a value's bytes are: inline (data, len) or a range of a data file. */
typedef struct ocdbt_blob {
	const unsigned char *data; /* inline bytes (owned by the blob: ocdbt_blob_clear), or NULL */
	int fd;			   /* indirect: the data file (owned by the db), else -1 */
	const char *file;	   /* indirect: its path in the db (for messages) */
	uint64_t off, len;	   /* indirect range; len is the value length either way */
} ocdbt_blob;

/* Open the OCDBT db in directory dir: read and check manifest.ocdbt.
 * CKPT_ENOTFOUND without a manifest; CKPT_ECORRUPT/CKPT_EUNSUPPORTED name the
 * manifest and what is wrong. *bytes_read (may be NULL) is incremented
 * atomically by every byte read from the db's files. Free with ocdbt_free. */
int ocdbt_open(ocdbt_db **out, const char *dir, uint64_t *bytes_read);
void ocdbt_free(ocdbt_db *db);
/* The directory (borrowed). */
const char *ocdbt_dir(const ocdbt_db *db);
/* Generation of the version read (the latest), and its number of keys. */
uint64_t ocdbt_generation(const ocdbt_db *db);
uint64_t ocdbt_num_keys(const ocdbt_db *db);

/* Look key up. CKPT_ENOTFOUND if absent. *out must be cleared with ocdbt_blob_clear. */
int ocdbt_get(ocdbt_db *db, const void *key, size_t keylen, ocdbt_blob *out);
void ocdbt_blob_clear(ocdbt_blob *b);
/* Read [off, off+len) of a blob into buf (exactly: CKPT_ECORRUPT if the file is short). */
int ocdbt_blob_pread(ocdbt_db *db, const ocdbt_blob *b, void *buf, size_t len, uint64_t off);

/* Every key starting with prefix, in memcmp order: cb(key, keylen, value
 * length, payload); a non-zero return stops the listing and is returned.
 * Only the nodes whose key range meets the prefix are read. */
typedef int (*ocdbt_list_cb)(const unsigned char *key, size_t keylen, uint64_t vlen, void *payload);
int ocdbt_list(ocdbt_db *db, const void *prefix, size_t prefixlen, ocdbt_list_cb cb, void *payload);

/* Read every node of the version tree and of the latest B+tree, checking
 * envelopes and that every indirect value lies inside its data file.
 * *nodes (may be NULL) receives the number of nodes checked. */
int ocdbt_verify(ocdbt_db *db, uint64_t *nodes);

/* ---- pure decoders (also the fuzz targets' entry points) ---- */

/* Check an envelope (magic, length, version, CRC) and return its body,
 * decompressed if needed: *body is malloc'd (caller frees), *bodylen its size. */
int ocdbt_envelope_decode(unsigned char **body, size_t *bodylen, const void *buf, size_t len,
			  uint32_t magic, const char *what);
#define OCDBT_MAGIC_MANIFEST 0x0cdb3a2au
#define OCDBT_MAGIC_VERSION  0x0cdb1234u
#define OCDBT_MAGIC_BTREE    0x0cdb20deu

/* Decode a whole manifest file / B+tree node file range (envelope included)
 * and free the result: returns 0 or the error a reader would report. */
int ocdbt_check_manifest_bytes(const void *buf, size_t len);
int ocdbt_check_node_bytes(const void *buf, size_t len);

#endif
