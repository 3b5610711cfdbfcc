/*
 * store_merge.c — several processes writing one store (docs/format.md,
 * "Several processes writing one step"): merging a per-process index into
 * the primary's, and closing tiled keys once every tile is in.
 *
 * Design: each process writes its own index file (ckpt.<i>.db, opened with
 * ckpt_store_open_index) and its own data files in the shared d/ (their names
 * carry a random nonce, so processes never collide). The primary merges each
 * per-process index into its own with ATTACH and INSERT ... SELECT in one
 * transaction: files rows get new ids (shifted past dst's largest), chunk and
 * tile-chunk rows follow them, data files are referenced where they are,
 * never copied. Then ckpt_store_close_tiles checks every tiled key's tiles
 * (store_tiles.c) and writes its kv row.
 *
 * Invariants:
 *  1. A merge is all or nothing: one sqlite transaction, rolled back on any
 *     error; the source index file is only read.
 *  2. No key ends up with two values: a key in both indexes is CKPT_EEXISTS
 *     before anything is inserted; two tiles of one key starting at the same
 *     element are an overlap (CKPT_EINVAL) naming both boxes and index files.
 *  3. Every chunk row of the source names a files row of the source (checked),
 *     so the id shift maps it to the right data file.
 *  4. A merge or close that changes the index clears its checksum, as a
 *     batch commit does (a seal records a new one).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error_private.h"
#include "fsutil.h"
#include "store_private.h"

static int exec_sql(sqlite_index *x, const char *sql, int code, const char *what)
{
	if (sqlite3_exec(x->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, code, what);
	return 0;
}

int ckpt_store_has_tiles_table(sqlite_index *x, const char *schema)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int rc;

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM %s.sqlite_schema WHERE type = 'table' AND"
		 " name IN ('tiles', 'tile_chunks')",
		 schema);
	if (sqlite3_prepare_v2(x->db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading the schema");
	else
		rc = sqlite3_column_int(st, 0) == 2;
	sqlite3_finalize(st);
	return rc;
}

/* Run sql with ?1 bound to a (if used); SQLITE_ROW results are an error of the caller's. */
static int run(sqlite_index *x, const char *sql, int64_t a, const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(x->db, sql, -1, &st, NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, CKPT_ECORRUPT, what);
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, a);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = ckpt_store_sqlerr(x, (sqlite3_errcode(x->db) & 0xff) == SQLITE_CONSTRAINT
					      ? CKPT_EEXISTS
					      : CKPT_EIO,
				       what);
	sqlite3_finalize(st);
	return rc;
}

/* One integer from sql (?1 bound to a); *out = dflt if no row. */
static int query_int(sqlite_index *x, const char *sql, int64_t a, int64_t dflt, int64_t *out,
		     const char *what)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, r;

	*out = dflt;
	if (sqlite3_prepare_v2(x->db, sql, -1, &st, NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, CKPT_ECORRUPT, what);
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(st, 1, a);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER)
		*out = sqlite3_column_int64(st, 0);
	else if (r == SQLITE_ROW)
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: %s: not an integer", x->dbpath, what);
	else if (r != SQLITE_DONE)
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, what);
	sqlite3_finalize(st);
	return rc;
}

/* Does the attached index's chunks table have the blocks column (format 1.2 on)? */
static int src_has_blocks(sqlite_index *x)
{
	sqlite3_stmt *st = NULL;
	int ok = sqlite3_prepare_v2(x->db, "SELECT blocks FROM src.chunks LIMIT 0", -1, &st,
				    NULL) == SQLITE_OK;

	sqlite3_finalize(st);
	return ok;
}

/* The source index's format: CKPT_EVERSION if newer than ours, ECORRUPT if none. */
static int check_src(sqlite_index *x, const char *src, int64_t *major, int64_t *minor)
{
	int rc;

	if ((rc = query_int(x, "SELECT value FROM src.meta WHERE name = 'format_major'", 0, -1,
			    major, "reading the merged index's format")) < 0 ||
	    (rc = query_int(x, "SELECT value FROM src.meta WHERE name = 'format_minor'", 0, -1,
			    minor, "reading the merged index's format")) < 0)
		return ckpt_error_set(CKPT_ECORRUPT, "%s/%s is not a ckpt index: %s", x->dir, src,
				      ckpt_error_last());
	if (*major < 0 || *minor < 0)
		return ckpt_error_set(CKPT_ECORRUPT, "%s/%s is not a ckpt index: no format version",
				      x->dir, src);
	if (*major > CKPT_FORMAT_MAJOR)
		return ckpt_error_set(CKPT_EVERSION,
				      "%s/%s has format version %lld.%lld; this ckpt reads up to %d.x",
				      x->dir, src, (long long)*major, (long long)*minor,
				      CKPT_FORMAT_MAJOR);
	return 0;
}

/* A key of src that dst already has: CKPT_EEXISTS naming it and both indexes. */
static int check_collisions(sqlite_index *x, const char *src)
{
	sqlite3_stmt *st = NULL;
	char kr[160];
	int rc = 0, r;

	if (sqlite3_prepare_v2(x->db,
			       "SELECT s.key FROM src.kv s JOIN main.kv m ON m.key = s.key LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, CKPT_ECORRUPT, "merging");
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		rc = ckpt_error_set(
		    CKPT_EEXISTS, "%s: key '%s' is written by both %s and %s", x->dir,
		    ckpt_store_key_repr(kr, sizeof(kr), sqlite3_column_blob(st, 0),
					(size_t)sqlite3_column_bytes(st, 0)),
		    x->index_name, src);
	else if (r != SQLITE_DONE)
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "merging");
	sqlite3_finalize(st);
	return rc;
}

/* Two tiles of one key at the same first element: an overlap (CKPT_EINVAL). */
static int check_tile_collisions(sqlite_index *x)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, r;

	if (sqlite3_prepare_v2(x->db,
			       "SELECT s.key, s.ndim, s.start, s.shape, s.source, m.ndim, m.start,"
			       " m.shape, m.source FROM src.tiles s JOIN main.tiles m"
			       " ON m.key = s.key AND m.t0 = s.t0 LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, CKPT_ECORRUPT, "merging tiles");
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		rc = ckpt_tile_overlap_error(x->dir, st);
	else if (r != SQLITE_DONE)
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "merging tiles");
	sqlite3_finalize(st);
	return rc;
}

/* Every chunk row of src names a files row of src (invariant 3). */
static int check_dangling(sqlite_index *x, const char *src, const char *table)
{
	char sql[200];
	int64_t n;
	int rc;

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM src.%s WHERE file_id NOT IN (SELECT id FROM src.files)",
		 table);
	if ((rc = query_int(x, sql, 0, 0, &n, "merging")) < 0)
		return rc;
	if (n > 0)
		return ckpt_error_set(CKPT_ECORRUPT,
				      "%s/%s: %lld %s rows name a data file it does not list",
				      x->dir, src, (long long)n, table);
	return 0;
}

/* The inserts of a merge (mu held, transaction open). */
static int merge_rows(sqlite_index *x, const char *src, int64_t gen)
{
	int64_t off, smajor, sminor, dmajor;
	int rc, tiles;
	char sql[2048];

	if ((rc = check_src(x, src, &smajor, &sminor)) < 0 ||
	    (rc = check_collisions(x, src)) < 0 || (rc = check_dangling(x, src, "chunks")) < 0 ||
	    (rc = query_int(x, "SELECT COALESCE(MAX(id), 0) FROM main.files", 0, 0, &off, "merging")) < 0 ||
	    (rc = query_int(x, "SELECT value FROM main.meta WHERE name = 'format_major'", 0, 0,
			    &dmajor, "merging")) < 0 ||
	    (tiles = rc = ckpt_store_has_tiles_table(x, "src")) < 0)
		return rc;
	if (tiles) {
		snprintf(sql, sizeof(sql), STORE_TILES_SCHEMA, "main.", "main.");
		if ((rc = exec_sql(x, sql, CKPT_EIO, "creating the tiles tables")) < 0 ||
		    (rc = check_tile_collisions(x)) < 0 ||
		    (rc = check_dangling(x, src, "tile_chunks")) < 0)
			return rc;
	}
	if ((rc = run(x,
		      "INSERT INTO main.files(id, name, size, generation)"
		      " SELECT id + ?1, name, size, generation FROM src.files",
		      off, "merging the files table")) < 0 ||
	    (rc = run(x,
		      "INSERT INTO main.kv(key, generation, size, crc32c, chunk_size, inline)"
		      " SELECT key, ?1, size, crc32c, chunk_size, inline FROM src.kv",
		      gen, "merging keys")) < 0 ||
	    (rc = run(x,
		      x->has_blocks && src_has_blocks(x)
			  ? "INSERT INTO main.chunks(key, idx, file_id, offset, stored_len, raw_len,"
			    " codec, crc32c, blocks) SELECT key, idx, file_id + ?1, offset,"
			    " stored_len, raw_len, codec, crc32c, blocks FROM src.chunks"
			  : "INSERT INTO main.chunks(key, idx, file_id, offset, stored_len, raw_len,"
			    " codec, crc32c) SELECT key, idx, file_id + ?1, offset, stored_len,"
			    " raw_len, codec, crc32c FROM src.chunks",
		      off, "merging chunks")) < 0)
		return rc;
	if (tiles &&
	    ((rc = run(x,
		       "INSERT INTO main.tiles(key, t0, source, generation, itemsize, ndim,"
		       " global_shape, start, shape, size, crc32c, chunk_size) SELECT key, t0,"
		       " source, ?1, itemsize, ndim, global_shape, start, shape, size, crc32c,"
		       " chunk_size FROM src.tiles",
		       gen, "merging tiles")) < 0 ||
	     (rc = run(x,
		       "INSERT INTO main.tile_chunks(key, t0, idx, file_id, offset, stored_len,"
		       " raw_len, codec, crc32c) SELECT key, t0, idx, file_id + ?1, offset,"
		       " stored_len, raw_len, codec, crc32c FROM src.tile_chunks",
		       off, "merging tile chunks")) < 0))
		return rc;
	if (smajor > dmajor) { /* the source holds what only a newer format describes */
		snprintf(sql, sizeof(sql),
			 "UPDATE main.meta SET value = %lld WHERE name = 'format_major';"
			 "UPDATE main.meta SET value = %lld WHERE name = 'format_minor';",
			 (long long)smajor, (long long)sminor);
		if ((rc = exec_sql(x, sql, CKPT_EIO, "merging the format version")) < 0)
			return rc;
	}
	return run(x, "UPDATE main.meta SET value = ?1 WHERE name = 'generation'", gen,
		   "setting the generation");
}

/* Commit the open transaction as generation gen, clearing the checksum (mu held). */
int ckpt_store_commit_txn(sqlite_index *x, uint64_t gen)
{
	int rc;

	if ((rc = exec_sql(x, "PRAGMA main.application_id = 0", CKPT_EIO,
			   "clearing the index checksum")) < 0 ||
	    (rc = exec_sql(x, "COMMIT", CKPT_EIO, "commit")) < 0)
		return rc;
	__atomic_store_n(&x->generation, gen, __ATOMIC_RELEASE);
	return 0;
}

int ckpt_store_merge_index(ckpt_store *dst, const char *src)
{
	sqlite_index *x = dst->idx;
	sqlite3_stmt *st = NULL;
	char *path = NULL;
	struct stat sb;
	uint64_t gen = 0;
	int rc = 0, attached = 0, in_txn = 0;

	if (x == NULL || (dst->flags & CKPT_STORE_READONLY))
		return ckpt_error_set(CKPT_EREADONLY, "%s: store is read-only", dst->dir);
	if (!ckpt_store_valid_index_name(src) || strcmp(src, x->index_name) == 0)
		return ckpt_error_set(CKPT_EINVAL, "%s: cannot merge '%s' into %s", dst->dir, src,
				      x->index_name);
	if ((path = ckpt_asprintf("%s/%s", x->dir, src)) == NULL)
		return ckpt_error_nomem();
	if (lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		int e = errno;
		rc = lstat(path, &sb) < 0 ? ckpt_error_errno(e == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO,
							   e, "merge %s", path)
					  : ckpt_error_set(CKPT_ECORRUPT,
							   "merge %s: not a regular file", path);
		free(path);
		return rc;
	}
	pthread_mutex_lock(&x->mu);
	if (x->batch) {
		rc = ckpt_error_set(CKPT_EBUSY, "%s: a batch is open", dst->dir);
		goto done;
	}
	if (sqlite3_prepare_v2(x->db, "ATTACH DATABASE ?1 AS src", -1, &st, NULL) != SQLITE_OK) {
		rc = ckpt_store_sqlerr(x, CKPT_EIO, "attach");
		goto done;
	}
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = ckpt_error_set(CKPT_EIO, "%s: attach %s: %s", x->dbpath, path,
				    sqlite3_errmsg(x->db));
		goto done;
	}
	attached = 1;
	if ((rc = exec_sql(x, "BEGIN IMMEDIATE", CKPT_EIO, "begin")) < 0)
		goto done;
	in_txn = 1;
	if ((rc = ckpt_store_read_generation(x, &gen)) < 0 ||
	    (rc = merge_rows(x, src, (int64_t)++gen)) < 0 ||
	    (rc = ckpt_store_commit_txn(x, gen)) < 0)
		goto done;
	in_txn = 0;
done:
	if (in_txn)
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	if (attached)
		sqlite3_exec(x->db, "DETACH DATABASE src", NULL, NULL, NULL);
	pthread_mutex_unlock(&x->mu);
	sqlite3_finalize(st);
	free(path);
	return rc;
}
