/*
 * store_tiles.c — tiled values (docs/format.md, "Tiles"): a global array
 * stored as boxes written by several processes, each box its own chunked
 * value; loading and checking tile rows, reading global C-order byte ranges
 * and boxes, and closing tiled keys (ckpt_store_close_tiles).
 *
 * Design: a tiled key's kv row has chunk_size 0 and no inline bytes (format
 * 2.0; readers of 1.x refuse the store by its major version, and would take
 * such a row as damage). Its tiles are rows of the tiles table, each with the
 * chunk table of its C-order bytes in tile_chunks. The sqlite backend hands a
 * tiled value to the library as a computed value whose reader is
 * ckpt_tiles_reader; ckpt_value_open then binds every tile as a chunked
 * ckpt_value of the store, so tiles are read by the library's chunk path
 * (CRC checks, cache, bytes_read) like any value. A global byte range is cut
 * into boxes that are contiguous in C order, and each box into the parts of
 * the tiles it meets; a part is read as runs of its tile, and runs close
 * together are read with one pread (never skipping over a whole chunk), so
 * every chunk read overlaps what was asked.
 *
 * Invariants:
 *  1. Nothing in a tile row is trusted: ndim, itemsize, the shapes' blob
 *     lengths, every box inside the global array, sizes without overflow,
 *     t0 equal to the C-order index of the start, the chunk table (as any
 *     value's).
 *  2. A tiled value is readable only if its tiles cover the global array
 *     exactly once (checked at open: no byte of a read is left unwritten).
 *  3. A box read reads only chunks that overlap the box.
 *  4. ckpt_store_close_tiles changes nothing in a store without tiles, and
 *     writes every tiled key's kv row and format 2.0 in one transaction.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error_private.h"
#include "store_private.h"

/* Bytes read at once when runs of a box are gathered (see read_runs). */
#define RUN_WINDOW (4u << 20)
#define MAX_RUNS   4096u

/* ---- boxes ---------------------------------------------------------- */

/* "[0:4, 8:16]" */
static const char *box_str(char *buf, size_t cap, unsigned ndim, const uint64_t *start,
			   const uint64_t *shape)
{
	size_t n = 0;

	n += (size_t)snprintf(buf + n, cap - n, "[");
	for (unsigned d = 0; d < ndim && n < cap; d++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%llu:%llu", d ? ", " : "",
				      (unsigned long long)start[d],
				      (unsigned long long)(start[d] + shape[d]));
	if (n < cap)
		snprintf(buf + n, cap - n, "]");
	return buf;
}

/* dims from a blob of ndim little-endian uint64s; 0 if it is not one. */
static int blob_dims(sqlite3_stmt *st, int col, unsigned ndim, uint64_t *out)
{
	const unsigned char *b = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	if ((sqlite3_column_type(st, col) != SQLITE_BLOB && !(ndim == 0 && n == 0)) ||
	    n != (int)(8 * ndim))
		return 0;
	for (unsigned d = 0; d < ndim; d++)
		out[d] = ckpt_get_le64(b + 8 * d);
	return 1;
}

int ckpt_tile_overlap_error(const char *where, sqlite3_stmt *st)
{
	uint64_t a0[CKPT_TILE_MAX_NDIM], a1[CKPT_TILE_MAX_NDIM], b0[CKPT_TILE_MAX_NDIM],
	    b1[CKPT_TILE_MAX_NDIM];
	char kr[160], ba[400], bb[400];
	int na = sqlite3_column_int(st, 1), nb = sqlite3_column_int(st, 5);

	if (na < 0 || na > CKPT_TILE_MAX_NDIM || na != nb || !blob_dims(st, 2, (unsigned)na, a0) ||
	    !blob_dims(st, 3, (unsigned)na, a1) || !blob_dims(st, 6, (unsigned)na, b0) ||
	    !blob_dims(st, 7, (unsigned)na, b1))
		return ckpt_error_set(CKPT_ECORRUPT, "%s: bad tile rows for key '%s'", where,
				      ckpt_store_key_repr(kr, sizeof(kr), sqlite3_column_blob(st, 0),
							  (size_t)sqlite3_column_bytes(st, 0)));
	return ckpt_error_set(CKPT_EINVAL, "%s: boxes %s (%s) and %s (%s) overlap",
			      ckpt_store_key_repr(kr, sizeof(kr), sqlite3_column_blob(st, 0),
						  (size_t)sqlite3_column_bytes(st, 0)),
			      box_str(bb, sizeof(bb), (unsigned)na, b0, b1),
			      (const char *)sqlite3_column_text(st, 8),
			      box_str(ba, sizeof(ba), (unsigned)na, a0, a1),
			      (const char *)sqlite3_column_text(st, 4));
}

/* ---- loading tile rows ------------------------------------------------ */

void ckpt_tiled_free(store_tiled *t)
{
	if (t == NULL)
		return;
	for (uint32_t i = 0; i < t->ntiles; i++) {
		free(t->tiles[i].chunks);
		ckpt_value_free(t->tiles[i].v);
	}
	free(t->tiles);
	free(t);
}

static int prepare_tiles(sqlite_index *x)
{
	if (x->st_tiles && x->st_tile_chunks)
		return 0;
	if (sqlite3_prepare_v2(x->db,
			       "SELECT t0, source, itemsize, ndim, global_shape, start, shape, size,"
			       " crc32c, chunk_size FROM tiles WHERE key = ?1 ORDER BY t0",
			       -1, &x->st_tiles, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(x->db,
			       "SELECT idx, file_id, offset, stored_len, raw_len, codec, crc32c"
			       " FROM tile_chunks WHERE key = ?1 AND t0 = ?2 ORDER BY idx",
			       -1, &x->st_tile_chunks, NULL) != SQLITE_OK) {
		int rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading tiles");
		/* Both or neither: a statement left prepared would be prepared again (and
		 * leaked) by the next call, and would keep sqlite3_close from closing. */
		sqlite3_finalize(x->st_tiles);
		sqlite3_finalize(x->st_tile_chunks);
		x->st_tiles = x->st_tile_chunks = NULL;
		return rc;
	}
	return 0;
}

static int col_in(sqlite3_stmt *st, int col, int64_t lo, int64_t hi, int64_t *out)
{
	if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
		return 0;
	*out = sqlite3_column_int64(st, col);
	return *out >= lo && *out <= hi;
}

/* Check and store one row of st_tiles as tile i of t (invariant 1). */
static int tile_row(store_tiled *t, sqlite3_stmt *st, store_tile *tl, int first)
{
	int64_t t0, itemsize, ndim, size, crc, cs;
	uint64_t global[CKPT_TILE_MAX_NDIM], vol = 1, gvol = 1, lin = 0;
	const unsigned char *src = sqlite3_column_text(st, 1);
	int nsrc = sqlite3_column_bytes(st, 1);

	if (!col_in(st, 0, 0, INT64_MAX, &t0) || !col_in(st, 2, 1, STORE_MAX_ITEMSIZE, &itemsize) ||
	    !col_in(st, 3, 0, CKPT_TILE_MAX_NDIM, &ndim) || !col_in(st, 7, 1, INT64_MAX / 2, &size) ||
	    !col_in(st, 8, 0, UINT32_MAX, &crc) || !col_in(st, 9, 1, STORE_MAX_CHUNK_SIZE, &cs) ||
	    !blob_dims(st, 4, (unsigned)ndim, global) || !blob_dims(st, 5, (unsigned)ndim, tl->start) ||
	    !blob_dims(st, 6, (unsigned)ndim, tl->shape) ||
	    sqlite3_column_type(st, 1) != SQLITE_TEXT || src == NULL || nsrc < 1 ||
	    nsrc > (int)STORE_MAX_FILE_NAME || (int)strlen((const char *)src) != nsrc)
		return 0;
	if (first) {
		t->itemsize = (size_t)itemsize;
		t->ndim = (unsigned)ndim;
		memcpy(t->global_shape, global, sizeof(uint64_t) * (size_t)ndim);
	} else if (t->itemsize != (size_t)itemsize || t->ndim != (unsigned)ndim ||
		   memcmp(t->global_shape, global, sizeof(uint64_t) * (size_t)ndim) != 0) {
		return 0;
	}
	for (unsigned d = 0; d < t->ndim; d++) {
		if (global[d] == 0 || global[d] > (uint64_t)INT64_MAX / 2 / gvol || tl->shape[d] == 0 ||
		    tl->start[d] >= global[d] || tl->shape[d] > global[d] - tl->start[d])
			return 0;
		gvol *= global[d];
		vol *= tl->shape[d];
		lin = lin * global[d] + tl->start[d];
	}
	if (gvol > (uint64_t)INT64_MAX / 2 / (uint64_t)itemsize ||
	    vol * (uint64_t)itemsize != (uint64_t)size || lin != (uint64_t)t0)
		return 0;
	memcpy(tl->source, src, (size_t)nsrc + 1);
	tl->t0 = (uint64_t)t0;
	tl->info.size = (uint64_t)size;
	tl->info.crc32c = (uint32_t)crc;
	tl->info.chunk_size = (uint32_t)cs;
	tl->info.nchunks = (uint32_t)((tl->info.size + (uint64_t)cs - 1) / (uint64_t)cs);
	return tl->info.nchunks <= UINT32_MAX / 2;
}

int ckpt_tiles_load(store_tiled **out, sqlite_index *x, const void *key, size_t keylen,
		    int with_chunks)
{
	store_tiled *t;
	char kr[160];
	int rc;

	*out = NULL;
	if ((rc = prepare_tiles(x)) < 0)
		return rc;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return ckpt_error_nomem();
	sqlite3_bind_blob(x->st_tiles, 1, key, (int)keylen, SQLITE_STATIC);
	while ((rc = sqlite3_step(x->st_tiles)) == SQLITE_ROW) {
		store_tile *tl;
		if (t->ntiles == t->cap) {
			uint32_t cap = t->cap ? 2 * t->cap : 4;
			store_tile *nt = cap > (1u << 24) ? NULL : realloc(t->tiles, cap * sizeof(*nt));
			if (nt == NULL) {
				rc = ckpt_error_nomem();
				goto done;
			}
			t->tiles = nt;
			t->cap = cap;
		}
		tl = &t->tiles[t->ntiles];
		memset(tl, 0, sizeof(*tl));
		if (!tile_row(t, x->st_tiles, tl, t->ntiles == 0)) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: key '%s': bad tile row %u", x->dbpath,
					    ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
					    t->ntiles);
			goto done;
		}
		t->ntiles++;
	}
	if (rc != SQLITE_DONE) {
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "reading tiles");
		goto done;
	}
	rc = t->ntiles ? 0 : CKPT_ENOTFOUND;
	for (uint32_t i = 0; i < t->ntiles && with_chunks && rc == 0; i++) {
		sqlite3_bind_blob(x->st_tile_chunks, 1, key, (int)keylen, SQLITE_STATIC);
		sqlite3_bind_int64(x->st_tile_chunks, 2, (int64_t)t->tiles[i].t0);
		rc = ckpt_sqlite_load_chunks(x, x->st_tile_chunks, key, keylen, &t->tiles[i].info,
					     &t->tiles[i].chunks, NULL);
	}
done:
	sqlite3_reset(x->st_tiles);
	sqlite3_clear_bindings(x->st_tiles);
	if (rc < 0 || rc == CKPT_ENOTFOUND) {
		ckpt_tiled_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

/* ---- the tiling check -------------------------------------------------- */

static int overlaps(unsigned ndim, const store_tile *a, const store_tile *b)
{
	for (unsigned d = 0; d < ndim; d++)
		if (a->start[d] >= b->start[d] + b->shape[d] ||
		    b->start[d] >= a->start[d] + a->shape[d])
			return 0;
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * A box no tile covers (t is known not to cover its array): the first cell,
 * in C order, of the grid cut by every tile's edges that no tile meets.
 * Returns 1 with start/shape set, 0 if the search gives up (too many cells).
 */
static int find_gap(const store_tiled *t, uint64_t *start, uint64_t *shape)
{
	uint64_t *cuts[CKPT_TILE_MAX_NDIM] = {0};
	size_t ncuts[CKPT_TILE_MAX_NDIM], pos[CKPT_TILE_MAX_NDIM] = {0};
	uint64_t budget = 1u << 22;
	int found = 0;

	for (unsigned d = 0; d < t->ndim; d++) {
		size_t n = 0;
		if ((cuts[d] = malloc((2 * (size_t)t->ntiles + 2) * sizeof(uint64_t))) == NULL)
			goto done;
		cuts[d][n++] = 0;
		cuts[d][n++] = t->global_shape[d];
		for (uint32_t i = 0; i < t->ntiles; i++) {
			cuts[d][n++] = t->tiles[i].start[d];
			cuts[d][n++] = t->tiles[i].start[d] + t->tiles[i].shape[d];
		}
		qsort(cuts[d], n, sizeof(uint64_t), cmp_u64);
		ncuts[d] = 0;
		for (size_t i = 0; i < n; i++)
			if (ncuts[d] == 0 || cuts[d][ncuts[d] - 1] != cuts[d][i])
				cuts[d][ncuts[d]++] = cuts[d][i];
	}
	for (;;) { /* odometer over cells */
		store_tile cell;
		int covered = 0;
		for (unsigned d = 0; d < t->ndim; d++) {
			cell.start[d] = cuts[d][pos[d]];
			cell.shape[d] = cuts[d][pos[d] + 1] - cuts[d][pos[d]];
		}
		for (uint32_t i = 0; i < t->ntiles && !covered; i++)
			covered = overlaps(t->ndim, &cell, &t->tiles[i]);
		if (!covered) { /* grow it, inner dimension first, while no tile meets it */
			for (unsigned d = t->ndim; d-- > 0;)
				for (size_t k = pos[d] + 2; k < ncuts[d]; k++) {
					uint64_t was = cell.shape[d];
					cell.shape[d] = cuts[d][k] - cell.start[d];
					for (uint32_t i = 0; i < t->ntiles && !covered; i++)
						covered = overlaps(t->ndim, &cell, &t->tiles[i]);
					if (covered) {
						cell.shape[d] = was;
						covered = 0;
						break;
					}
				}
			memcpy(start, cell.start, sizeof(uint64_t) * t->ndim);
			memcpy(shape, cell.shape, sizeof(uint64_t) * t->ndim);
			found = 1;
			break;
		}
		if (budget <= t->ntiles)
			break;
		budget -= t->ntiles;
		unsigned d = t->ndim;
		while (d > 0 && ++pos[d - 1] + 1 >= ncuts[d - 1])
			pos[--d] = 0;
		if (d == 0)
			break;
	}
done:
	for (unsigned d = 0; d < t->ndim; d++)
		free(cuts[d]);
	return found;
}

static int by_start0(const void *a, const void *b)
{
	const store_tile *x = *(store_tile *const *)a, *y = *(store_tile *const *)b;
	return x->start[0] < y->start[0] ? -1 : x->start[0] > y->start[0];
}

int ckpt_tiles_check(const store_tiled *t, const char *where, const void *key, size_t keylen,
		     int code)
{
	const store_tile **by = NULL;
	uint64_t total = 1, sum = 0;
	uint64_t gs[CKPT_TILE_MAX_NDIM], gz[CKPT_TILE_MAX_NDIM];
	char kr[160], ba[400], bb[400];
	int rc = 0;

	(void)where;
	for (unsigned d = 0; d < t->ndim; d++)
		total *= t->global_shape[d];
	if (t->ndim == 0) { /* a scalar: one tile, or two that overlap */
		if (t->ntiles > 1)
			return ckpt_error_set(code, "%s: boxes [] (%s) and [] (%s) overlap",
					      ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
					      t->tiles[0].source, t->tiles[1].source);
		return 0;
	}
	if ((by = malloc(t->ntiles * sizeof(*by))) == NULL)
		return ckpt_error_nomem();
	for (uint32_t i = 0; i < t->ntiles; i++)
		by[i] = &t->tiles[i];
	qsort(by, t->ntiles, sizeof(*by), by_start0);
	for (uint32_t i = 0; i < t->ntiles; i++) {
		uint64_t vol = 1;
		for (unsigned d = 0; d < t->ndim; d++)
			vol *= by[i]->shape[d];
		sum += vol;
		for (uint32_t j = i + 1;
		     j < t->ntiles && by[j]->start[0] < by[i]->start[0] + by[i]->shape[0]; j++)
			if (overlaps(t->ndim, by[i], by[j])) {
				rc = ckpt_error_set(
				    code, "%s: boxes %s (%s) and %s (%s) overlap",
				    ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
				    box_str(ba, sizeof(ba), t->ndim, by[i]->start, by[i]->shape),
				    by[i]->source,
				    box_str(bb, sizeof(bb), t->ndim, by[j]->start, by[j]->shape),
				    by[j]->source);
				goto done;
			}
	}
	if (sum != total) { /* disjoint boxes inside the array, fewer elements: a gap */
		if (find_gap(t, gs, gz))
			rc = ckpt_error_set(code, "%s: box %s is written by no process",
					    ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
					    box_str(ba, sizeof(ba), t->ndim, gs, gz));
		else
			rc = ckpt_error_set(code, "%s: %llu of %llu elements are written by no process",
					    ckpt_store_key_repr(kr, sizeof(kr), key, keylen),
					    (unsigned long long)(total - sum),
					    (unsigned long long)total);
	}
done:
	free(by);
	return rc;
}

/* ---- reading ---------------------------------------------------------- */

int ckpt_tiles_bind(store_tiled *t, ckpt_store *s, const void *key, size_t keylen,
		    ckpt_value_info *info)
{
	int rc;

	info->stored_size = 0;
	info->codec = CKPT_CODEC_RAW;
	for (uint32_t i = 0; i < t->ntiles; i++) {
		store_tile *tl = &t->tiles[i];
		rc = ckpt_value_from_chunks(&tl->v, s, key, keylen, &tl->info, tl->chunks);
		tl->chunks = NULL; /* the value's now, also on failure */
		if (rc < 0)
			return rc;
		info->stored_size += ckpt_value_get_info(tl->v)->stored_size;
		if (ckpt_value_get_info(tl->v)->codec == CKPT_CODEC_ZSTD)
			info->codec = CKPT_CODEC_ZSTD;
	}
	return 0;
}

/* Runs of a box gathered for one read: [src, src + len) of the value to dst. */
typedef struct runs {
	ckpt_value *v;
	size_t len;	/* bytes per run */
	uint64_t gap;	/* start a new read past a gap this large */
	uint64_t *src;	/* MAX_RUNS offsets in the value */
	char **dst;
	unsigned n;
	char *tmp; /* cap bytes, grown to the largest window read (<= RUN_WINDOW) */
	size_t cap;
} runs;

static int pread_exact(ckpt_value *v, void *buf, size_t len, uint64_t off)
{
	size_t n;
	int rc = ckpt_value_pread(&n, v, buf, len, off);

	if (rc == 0 && n != len)
		rc = ckpt_error_set(CKPT_ECORRUPT, "value ends at %llu, before %llu",
				    (unsigned long long)(off + n), (unsigned long long)(off + len));
	return rc;
}

static int flush_runs(runs *r)
{
	uint64_t a, b;
	int rc;

	if (r->n == 0)
		return 0;
	a = r->src[0];
	b = r->src[r->n - 1] + r->len;
	if (r->n > 1 && r->cap < b - a) {
		char *t = realloc(r->tmp, (size_t)(b - a));
		if (t == NULL)
			return ckpt_error_nomem();
		r->tmp = t;
		r->cap = (size_t)(b - a);
	}
	if (r->n == 1) {
		rc = pread_exact(r->v, r->dst[0], r->len, a);
	} else if ((rc = pread_exact(r->v, r->tmp, (size_t)(b - a), a)) == 0) {
		for (unsigned i = 0; i < r->n; i++)
			memcpy(r->dst[i], r->tmp + (r->src[i] - a), r->len);
	}
	r->n = 0;
	return rc;
}

static int add_run(runs *r, uint64_t src, char *dst)
{
	int rc;

	if (r->len >= RUN_WINDOW / 2) { /* large: straight into place */
		if ((rc = flush_runs(r)) < 0)
			return rc;
		return pread_exact(r->v, dst, r->len, src);
	}
	if (r->n > 0 &&
	    (r->n == MAX_RUNS || src + r->len - r->src[0] > RUN_WINDOW ||
	     src - (r->src[r->n - 1] + r->len) >= r->gap) &&
	    (rc = flush_runs(r)) < 0)
		return rc;
	r->src[r->n] = src;
	r->dst[r->n++] = dst;
	return 0;
}

/*
 * Copy the box [sstart, sstart + cnt) of v, a C-order array of sshape, into
 * dst, a C-order array of dshape, at dstart.
 */
static int copy_box(ckpt_value *v, size_t itemsize, unsigned ndim, const uint64_t *sshape,
		    const uint64_t *sstart, const uint64_t *cnt, char *dst, const uint64_t *dshape,
		    const uint64_t *dstart)
{
	uint64_t sstride[CKPT_TILE_MAX_NDIM + 1], dstride[CKPT_TILE_MAX_NDIM + 1];
	uint64_t idx[CKPT_TILE_MAX_NDIM] = {0};
	const ckpt_value_info *in = ckpt_value_get_info(v);
	unsigned k = ndim; /* runs cover dims k-1 .. ndim-1 (k == 0: one run) */
	runs r = {.v = v};
	int rc = 0;

	sstride[ndim] = dstride[ndim] = itemsize;
	for (unsigned d = ndim; d-- > 0;) {
		sstride[d] = sstride[d + 1] * sshape[d];
		dstride[d] = dstride[d + 1] * dshape[d];
	}
	/* Merge trailing dimensions that the box covers whole in both arrays. */
	while (k > 0 && (k == ndim || (cnt[k] == sshape[k] && cnt[k] == dshape[k])))
		k--;
	/* Now dims k+1.. are whole; dim k (if any) is partial: a run is cnt[k] of stride k+1. */
	r.len = (size_t)(ndim == 0 ? itemsize : cnt[k] * sstride[k + 1]);
	r.gap = in->is_inline ? UINT64_MAX : in->chunk_size ? in->chunk_size : RUN_WINDOW;
	if (r.len < RUN_WINDOW / 2 &&
	    ((r.src = malloc(MAX_RUNS * sizeof(*r.src))) == NULL ||
	     (r.dst = malloc(MAX_RUNS * sizeof(*r.dst))) == NULL)) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (;;) {
		uint64_t so = 0, dof = 0;
		for (unsigned d = 0; d < ndim; d++) {
			uint64_t i = d < k ? idx[d] : 0;
			so += (sstart[d] + i) * sstride[d + 1];
			dof += (dstart[d] + i) * dstride[d + 1];
		}
		if ((rc = add_run(&r, so, dst + dof)) < 0)
			goto done;
		unsigned d = k;
		while (d > 0 && ++idx[d - 1] == cnt[d - 1])
			idx[--d] = 0;
		if (d == 0)
			break;
	}
	rc = flush_runs(&r);
done:
	free(r.src);
	free(r.dst);
	free(r.tmp);
	return rc;
}

/* Read the box [start, start + shape) of a tiled value into dst (C order). */
static int tiled_box(const store_tiled *t, const uint64_t *start, const uint64_t *shape, char *dst)
{
	uint64_t cnt[CKPT_TILE_MAX_NDIM], ts[CKPT_TILE_MAX_NDIM], ds[CKPT_TILE_MAX_NDIM];
	int rc;

	for (uint32_t i = 0; i < t->ntiles; i++) {
		const store_tile *tl = &t->tiles[i];
		unsigned d;
		for (d = 0; d < t->ndim; d++) {
			uint64_t a = start[d] > tl->start[d] ? start[d] : tl->start[d];
			uint64_t ea = start[d] + shape[d], eb = tl->start[d] + tl->shape[d];
			uint64_t b = ea < eb ? ea : eb;
			if (a >= b)
				break;
			cnt[d] = b - a;
			ts[d] = a - tl->start[d];
			ds[d] = a - start[d];
		}
		if (d < t->ndim)
			continue;
		if ((rc = copy_box(tl->v, t->itemsize, t->ndim, tl->shape, ts, cnt, dst, shape, ds)) <
		    0)
			return rc;
	}
	return 0;
}

/*
 * Read elements [e0, e1) of a tiled value in C order into dst: the range is
 * cut into boxes each contiguous in C order (at most 2 * ndim of them).
 */
static int tiled_elements(const store_tiled *t, uint64_t e0, uint64_t e1, char *dst)
{
	uint64_t stride[CKPT_TILE_MAX_NDIM + 1], start[CKPT_TILE_MAX_NDIM], shape[CKPT_TILE_MAX_NDIM];
	int rc;

	if (t->ndim == 0) /* a scalar: one element, one tile */
		return e1 > e0 ? copy_box(t->tiles[0].v, t->itemsize, 0, NULL, NULL, NULL, dst, NULL,
					  NULL)
			       : 0;
	stride[t->ndim] = 1;
	for (unsigned d = t->ndim; d-- > 0;)
		stride[d] = stride[d + 1] * t->global_shape[d];
	for (uint64_t e = e0; e < e1;) {
		unsigned d = 0;
		uint64_t n = 0;
		while (e % stride[d + 1] != 0)
			d++; /* never past ndim - 1: stride[ndim] == 1 */
		/* e is aligned to dims d+1..: take whole sub-arrays along d, or go inward. */
		for (;; d++) {
			uint64_t at = e / stride[d + 1] % t->global_shape[d];
			n = (e1 - e) / stride[d + 1];
			if (n > t->global_shape[d] - at)
				n = t->global_shape[d] - at;
			if (n > 0)
				break;
		}
		for (unsigned k = 0; k < t->ndim; k++) {
			start[k] = k <= d ? e / stride[k + 1] % t->global_shape[k] : 0;
			shape[k] = k < d ? 1 : k == d ? n : t->global_shape[k];
		}
		if ((rc = tiled_box(t, start, shape, dst + (e - e0) * t->itemsize)) < 0)
			return rc;
		e += n * stride[d + 1];
	}
	return 0;
}

static int tiles_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	const store_tiled *t = ctx;
	size_t is = t->itemsize;
	uint64_t e0 = (off + is - 1) / is, e1 = (off + len) / is;
	char *p = buf, el[64], *tmp = is <= sizeof(el) ? el : NULL;
	int rc = 0;

	if (off % is || (off + len) % is) { /* parts of elements at the ends */
		if (tmp == NULL && (tmp = malloc(is)) == NULL)
			return ckpt_error_nomem();
		if (off % is && (rc = tiled_elements(t, off / is, off / is + 1, tmp)) == 0) {
			size_t n = is - off % is < len ? is - off % is : len;
			memcpy(p, tmp + off % is, n);
		}
		if (rc == 0 && (off + len) % is && e1 >= e0 &&
		    (rc = tiled_elements(t, e1, e1 + 1, tmp)) == 0)
			memcpy(p + (len - (off + len) % is), tmp, (off + len) % is);
	}
	if (rc == 0 && e1 > e0)
		rc = tiled_elements(t, e0, e1, p + (e0 * is - off));
	if (tmp != el)
		free(tmp);
	return rc;
}

static int tiles_verify(void *ctx)
{
	const store_tiled *t = ctx;
	int rc = 0;

	for (uint32_t i = 0; i < t->ntiles && rc == 0; i++)
		rc = ckpt_value_verify(t->tiles[i].v);
	return rc;
}

static void tiles_free(void *ctx)
{
	ckpt_tiled_free(ctx);
}

const ckpt_value_reader ckpt_tiles_reader = {tiles_pread, tiles_verify, tiles_free};

int ckpt_value_pread_box(ckpt_value *v, size_t itemsize, unsigned ndim,
			 const uint64_t *global_shape, const uint64_t *start, const uint64_t *shape,
			 void *buf)
{
	const store_tiled *t = ckpt_value_tiled(v);
	uint64_t total = itemsize, zero[CKPT_TILE_MAX_NDIM] = {0};

	if (ndim > CKPT_TILE_MAX_NDIM || itemsize == 0)
		return ckpt_error_set(CKPT_EINVAL, "box read: ndim %u or itemsize %zu out of range",
				      ndim, itemsize);
	for (unsigned d = 0; d < ndim; d++) {
		if (start[d] > global_shape[d] || shape[d] > global_shape[d] - start[d])
			return ckpt_error_set(CKPT_EINVAL,
					      "box read: dimension %u: [%llu:%llu] is outside 0:%llu",
					      d, (unsigned long long)start[d],
					      (unsigned long long)(start[d] + shape[d]),
					      (unsigned long long)global_shape[d]);
		if (shape[d] == 0)
			return 0;
		if (global_shape[d] > UINT64_MAX / total)
			return ckpt_error_set(CKPT_EINVAL, "box read: the array is too large");
		total *= global_shape[d];
	}
	if (t) {
		if (t->itemsize != itemsize || t->ndim != ndim ||
		    memcmp(t->global_shape, global_shape, ndim * sizeof(uint64_t)) != 0)
			return ckpt_error_set(CKPT_EINVAL,
					      "box read: the value is an array of another shape or "
					      "element size");
		return tiled_box(t, start, shape, buf);
	}
	if (total != ckpt_value_get_info(v)->size)
		return ckpt_error_set(CKPT_EINVAL,
				      "box read: the value has %llu bytes, the array %llu",
				      (unsigned long long)ckpt_value_get_info(v)->size,
				      (unsigned long long)total);
	return copy_box(v, itemsize, ndim, global_shape, start, shape, buf, shape, zero);
}

/* ---- closing tiled keys ------------------------------------------------ */

typedef struct keylist {
	unsigned char **k;
	size_t *len, n, cap;
} keylist;

static int close_key(sqlite_index *x, const void *key, size_t keylen, int64_t gen,
		     sqlite3_stmt *kvget, sqlite3_stmt *kvput)
{
	store_tiled *t = NULL;
	uint64_t size;
	char kr[160];
	int rc, r;

	if ((rc = ckpt_tiles_load(&t, x, key, keylen, 0)) < 0 ||
	    (rc = ckpt_tiles_check(t, x->dbpath, key, keylen, CKPT_EINVAL)) < 0)
		goto done;
	size = t->itemsize;
	for (unsigned d = 0; d < t->ndim; d++)
		size *= t->global_shape[d];
	sqlite3_bind_blob(kvget, 1, key, (int)keylen, SQLITE_STATIC);
	r = sqlite3_step(kvget);
	if (r == SQLITE_ROW && !(sqlite3_column_type(kvget, 0) == SQLITE_INTEGER &&
				 sqlite3_column_int64(kvget, 0) == 0 &&
				 sqlite3_column_type(kvget, 1) == SQLITE_NULL)) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: '%s' is written both whole and as tiles",
				    x->dir, ckpt_store_key_repr(kr, sizeof(kr), key, keylen));
		goto done;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE) {
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "closing tiles");
		goto done;
	}
	sqlite3_bind_blob(kvput, 1, key, (int)keylen, SQLITE_STATIC);
	sqlite3_bind_int64(kvput, 2, gen);
	sqlite3_bind_int64(kvput, 3, (int64_t)size);
	if (sqlite3_step(kvput) != SQLITE_DONE)
		rc = ckpt_store_sqlerr(x, CKPT_EIO, "writing a tiled key");
done:
	sqlite3_reset(kvget);
	sqlite3_reset(kvput);
	ckpt_tiled_free(t);
	return rc;
}

/* Every distinct tiled key of x, in order (mu held). */
static int tiled_keys(sqlite_index *x, keylist *kl)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(x->db, "SELECT DISTINCT key FROM tiles ORDER BY key", -1, &st,
			       NULL) != SQLITE_OK)
		return ckpt_store_sqlerr(x, CKPT_ECORRUPT, "listing tiled keys");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (kl->n == kl->cap) {
			size_t cap = kl->cap ? 2 * kl->cap : 16;
			unsigned char **nk = realloc(kl->k, cap * sizeof(*nk));
			size_t *nl = nk ? realloc(kl->len, cap * sizeof(*nl)) : NULL;
			if (nk)
				kl->k = nk;
			if (nl == NULL) {
				sqlite3_finalize(st);
				return ckpt_error_nomem();
			}
			kl->len = nl;
			kl->cap = cap;
		}
		if ((kl->k[kl->n] = malloc(n ? n : 1)) == NULL) {
			sqlite3_finalize(st);
			return ckpt_error_nomem();
		}
		if (n)
			memcpy(kl->k[kl->n], sqlite3_column_blob(st, 0), n);
		kl->len[kl->n++] = n;
	}
	rc = rc == SQLITE_DONE ? 0 : ckpt_store_sqlerr(x, CKPT_ECORRUPT, "listing tiled keys");
	sqlite3_finalize(st);
	return rc;
}

int ckpt_store_close_tiles(ckpt_store *dst)
{
	sqlite_index *x = dst->idx;
	sqlite3_stmt *kvget = NULL, *kvput = NULL;
	keylist kl = {0};
	uint64_t gen = 0;
	int rc, in_txn = 0;
	char sql[256];

	if (x == NULL || (dst->flags & CKPT_STORE_READONLY))
		return ckpt_error_set(CKPT_EREADONLY, "%s: store is read-only", dst->dir);
	pthread_mutex_lock(&x->mu);
	if (x->batch) {
		rc = ckpt_error_set(CKPT_EBUSY, "%s: a batch is open", dst->dir);
		goto done;
	}
	if ((rc = ckpt_store_has_tiles_table(x, "main")) <= 0)
		goto done; /* no tiles: nothing to do (invariant 4) */
	if (sqlite3_exec(x->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = ckpt_store_sqlerr(x, CKPT_EIO, "begin");
		goto done;
	}
	in_txn = 1;
	if ((rc = tiled_keys(x, &kl)) < 0 || kl.n == 0)
		goto done;
	if ((rc = ckpt_store_read_generation(x, &gen)) < 0)
		goto done;
	gen++;
	if (sqlite3_prepare_v2(x->db, "SELECT chunk_size, inline FROM kv WHERE key = ?1", -1,
			       &kvget, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(x->db,
			       "INSERT OR REPLACE INTO kv(key, generation, size, crc32c, chunk_size,"
			       " inline) VALUES(?1, ?2, ?3, 0, 0, NULL)",
			       -1, &kvput, NULL) != SQLITE_OK) {
		rc = ckpt_store_sqlerr(x, CKPT_ECORRUPT, "closing tiles");
		goto done;
	}
	for (size_t i = 0; i < kl.n && rc == 0; i++)
		rc = close_key(x, kl.k[i], kl.len[i], (int64_t)gen, kvget, kvput);
	snprintf(sql, sizeof(sql),
		 "UPDATE meta SET value = %d WHERE name = 'format_major';"
		 "UPDATE meta SET value = %d WHERE name = 'format_minor';"
		 "UPDATE meta SET value = %lld WHERE name = 'generation';",
		 STORE_FORMAT_TILES_MAJOR, STORE_FORMAT_TILES_MINOR, (long long)gen);
	if (rc < 0)
		goto done;
	if (sqlite3_exec(x->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		rc = ckpt_store_sqlerr(x, CKPT_EIO, "closing tiles");
		goto done;
	}
	if ((rc = ckpt_store_commit_txn(x, gen)) == 0)
		in_txn = 0;
done:
	if (in_txn)
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&x->mu);
	sqlite3_finalize(kvget);
	sqlite3_finalize(kvput);
	for (size_t i = 0; i < kl.n; i++)
		free(kl.k[i]);
	free(kl.k);
	free(kl.len);
	return rc < 0 ? rc : 0;
}
