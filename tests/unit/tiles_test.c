/*
 * tiles_test.c — several processes writing one store: per-process indexes
 * (ckpt_store_open_index), merging them (ckpt_store_merge_index), tiled
 * values (ckpt_value_writer_open_tile, ckpt_store_close_tiles), global and
 * box reads (ckpt_value_pread, ckpt_value_pread_box), hostile tile rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "ckpt/error.h"
#include "ckpt/store.h"
#include "store_private.h"

#define CS 4096u /* the smallest chunks: tiles of a few KiB still have several */

#define FIXTURE_NAME "tiles_test"
#include "unit/store_fixture.h"

static ckpt_store_options opts_cs(void)
{
	ckpt_store_options o = CKPT_STORE_OPTIONS_INIT;
	o.chunk_size = CS;
	o.inline_max = 100;
	o.threads = 2;
	return o;
}

static ckpt_store *open_idx(const char *dir, const char *name)
{
	ckpt_store_options o = opts_cs();
	ckpt_store *s = NULL;
	if (ckpt_store_open_index(&s, dir, name, CKPT_STORE_CREATE, &o) != 0)
		fail_msg("open %s/%s: %s", dir, name, ckpt_error_last());
	return s;
}

static void check_get(ckpt_store *s, const char *key, const void *want, size_t n)
{
	void *got;
	size_t len;
	if (ckpt_store_get(&got, &len, s, key, strlen(key)) != 0)
		fail_msg("get %s: %s", key, ckpt_error_last());
	assert_int_equal(len, n);
	assert_memory_equal(got, want, n);
	free(got);
}

static void sql(const char *dir, const char *name, const char *q)
{
	char path[256];
	sqlite3 *db;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static long long sql_int(const char *dir, const char *name, const char *q)
{
	char path[256];
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Three processes' indexes in one directory, merged into ckpt.db. */
static void test_merge_indexes(void **state)
{
	const char *d = newdir();
	char dir[128], key[32];
	ckpt_store *p0, *p1, *p2, *ro;
	unsigned char *big = random_bytes(10 * CS + 7, 1), *small = random_bytes(50, 2);

	(void)state;
	strcpy(dir, d);
	p0 = open_idx(dir, "ckpt.db");
	p1 = open_idx(dir, "ckpt.1.db");
	p2 = open_idx(dir, "ckpt.2.db");
	put1(p0, "a/big", big, 10 * CS + 7);
	put1(p1, "b/big", big + 3, 10 * CS);
	put1(p1, "b/small", small, 50);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "c/%02d", i);
		put1(p2, key, big + i, CS + (size_t)i);
	}
	assert_int_equal(ckpt_store_seal(p1), 0);
	assert_int_equal(ckpt_store_seal(p2), 0);
	ckpt_store_free(p1);
	ckpt_store_free(p2);
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), 0);
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.2.db"), 0);
	assert_int_equal(ckpt_store_generation(p0), 3);
	/* The same keys again: a collision names the key and both indexes. */
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), CKPT_EEXISTS);
	assert_non_null(strstr(ckpt_error_last(), "'b/big'"));
	assert_non_null(strstr(ckpt_error_last(), "ckpt.db"));
	assert_non_null(strstr(ckpt_error_last(), "ckpt.1.db"));
	assert_int_equal(ckpt_store_generation(p0), 3); /* nothing changed */
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.9.db"), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.db"), CKPT_EINVAL);
	assert_int_equal(ckpt_store_merge_index(p0, "../x.db"), CKPT_EINVAL);
	assert_int_equal(ckpt_store_close_tiles(p0), 0); /* no tiles: nothing */
	assert_int_equal(ckpt_store_generation(p0), 3);
	assert_int_equal(ckpt_store_seal(p0), 0);
	ckpt_store_free(p0);
	assert_int_equal(sql_int(dir, "ckpt.db", "SELECT value FROM meta WHERE name='format_major'"),
			 1);
	assert_int_equal(
	    sql_int(dir, "ckpt.db", "SELECT count(*) FROM sqlite_schema WHERE name = 'tiles'"), 0);
	/* The per-process indexes go; the merged store reads alone, checked. */
	char path[256];
	snprintf(path, sizeof(path), "%s/ckpt.1.db", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ckpt.2.db", dir);
	unlink(path);
	assert_int_equal(ckpt_store_open(&ro, dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	assert_int_equal(ckpt_store_index_checked(ro), 1);
	check_get(ro, "a/big", big, 10 * CS + 7);
	check_get(ro, "b/big", big + 3, 10 * CS);
	check_get(ro, "b/small", small, 50);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "c/%02d", i);
		check_get(ro, key, big + i, CS + (size_t)i);
	}
	ckpt_store_free(ro);
	free(big);
	free(small);
}

/* A chunk row naming a data file its index does not list is refused. */
static void test_merge_dangling_chunk(void **state)
{
	const char *d = newdir();
	char dir[128];
	ckpt_store *p0, *p1;
	unsigned char *big = random_bytes(4 * CS, 3);

	(void)state;
	strcpy(dir, d);
	p0 = open_idx(dir, "ckpt.db");
	p1 = open_idx(dir, "ckpt.2.db");
	put1(p1, "y", big, 4 * CS);
	ckpt_store_free(p1);
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.2.db"), 0); /* into an empty store */
	check_get(p0, "y", big, 4 * CS);
	p1 = open_idx(dir, "ckpt.1.db");
	put1(p1, "x", big, 4 * CS);
	ckpt_store_free(p1);
	sql(dir, "ckpt.1.db", "UPDATE chunks SET file_id = 77 WHERE idx = 1");
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "ckpt.1.db"));
	sql(dir, "ckpt.1.db", "UPDATE meta SET value = 9 WHERE name = 'format_major'");
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), CKPT_EVERSION);
	ckpt_store_free(p0);
	free(big);
}

/* ---- tiles ----------------------------------------------------------- */

/* The box [start, start + shape) of ref (C order, shape g) copied out, element by element. */
static unsigned char *extract(const unsigned char *ref, size_t is, unsigned nd, const uint64_t *g,
			      const uint64_t *start, const uint64_t *shape, size_t *out_n)
{
	uint64_t n = 1, idx[8] = {0};
	for (unsigned d = 0; d < nd; d++)
		n *= shape[d];
	unsigned char *out = malloc(n * is + 1), *p = out;
	assert_non_null(out);
	for (uint64_t e = 0; e < n; e++) {
		uint64_t lin = 0;
		for (unsigned d = 0; d < nd; d++)
			lin = lin * g[d] + start[d] + idx[d];
		memcpy(p, ref + lin * is, is);
		p += is;
		for (unsigned d = nd; d-- > 0;) {
			if (++idx[d] < shape[d])
				break;
			idx[d] = 0;
		}
	}
	*out_n = (size_t)(n * is);
	return out;
}

static void write_tile(ckpt_store *s, const char *key, const unsigned char *ref, size_t is,
		       unsigned nd, const uint64_t *g, const uint64_t *start, const uint64_t *shape)
{
	ckpt_tile t = {is, nd, g, start, shape};
	ckpt_value_writer *w;
	ckpt_batch *b;
	size_t n;
	unsigned char *box = extract(ref, is, nd, g, start, shape, &n);

	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	if (ckpt_value_writer_open_tile(&w, b, key, strlen(key), &t, NULL) != 0)
		fail_msg("open tile: %s", ckpt_error_last());
	/* In two writes, so a write boundary falls inside a chunk. */
	assert_int_equal(ckpt_value_writer_write(w, box, n / 3), 0);
	assert_int_equal(ckpt_value_writer_write(w, box + n / 3, n - n / 3), 0);
	assert_int_equal(ckpt_value_writer_close(w), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
	free(box);
}

static uint64_t rnd(unsigned *seed, uint64_t n)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 8) % n;
}

/* Random boxes and byte ranges of key read against ref. */
static void check_reads(ckpt_store *s, const char *key, const unsigned char *ref, size_t is,
			unsigned nd, const uint64_t *g, unsigned seed)
{
	ckpt_value *v;
	uint64_t total = is;
	for (unsigned d = 0; d < nd; d++)
		total *= g[d];
	check_get(s, key, ref, (size_t)total);
	if (ckpt_value_open(&v, s, key, strlen(key)) != 0)
		fail_msg("open %s: %s", key, ckpt_error_last());
	assert_int_equal(ckpt_value_get_info(v)->size, total);
	assert_int_equal(ckpt_value_verify(v), 0);
	for (int i = 0; i < 60; i++) {
		uint64_t off = rnd(&seed, total), len = 1 + rnd(&seed, total - off);
		unsigned char *buf = malloc(len);
		size_t n;
		assert_int_equal(ckpt_value_pread(&n, v, buf, len, off), 0);
		assert_int_equal(n, len);
		assert_memory_equal(buf, ref + off, len);
		free(buf);
	}
	for (int i = 0; i < 60; i++) {
		uint64_t start[8], shape[8];
		size_t n;
		for (unsigned d = 0; d < nd; d++) {
			start[d] = rnd(&seed, g[d]);
			shape[d] = 1 + rnd(&seed, g[d] - start[d]);
		}
		unsigned char *want = extract(ref, is, nd, g, start, shape, &n);
		unsigned char *got = malloc(n + 1);
		if (ckpt_value_pread_box(v, is, nd, g, start, shape, got) != 0)
			fail_msg("box: %s", ckpt_error_last());
		assert_memory_equal(got, want, n);
		free(got);
		free(want);
	}
	ckpt_value_free(v);
}

/* A 1-D array from two processes, a 2-D one in uneven boxes from three. */
static void test_tiles_merged(void **state)
{
	const char *d = newdir();
	char dir[128];
	ckpt_store *p0, *p1, *p2, *ro;
	const uint64_t g1[1] = {10000}, g2[2] = {37, 530};
	unsigned char *r1 = random_bytes(40000, 5), *r2 = random_bytes(37 * 530 * 8, 6);

	(void)state;
	strcpy(dir, d);
	p0 = open_idx(dir, "ckpt.db");
	p1 = open_idx(dir, "ckpt.1.db");
	p2 = open_idx(dir, "ckpt.2.db");
	put1(p0, "plain", r1, 5000);
	write_tile(p0, "a", r1, 4, 1, g1, (uint64_t[]){0}, (uint64_t[]){3001});
	write_tile(p1, "a", r1, 4, 1, g1, (uint64_t[]){3001}, (uint64_t[]){6999});
	/* rows 0:10 in three column blocks, rows 10:37 in two */
	write_tile(p0, "b", r2, 8, 2, g2, (uint64_t[]){0, 0}, (uint64_t[]){10, 100});
	write_tile(p1, "b", r2, 8, 2, g2, (uint64_t[]){0, 100}, (uint64_t[]){10, 331});
	write_tile(p2, "b", r2, 8, 2, g2, (uint64_t[]){0, 431}, (uint64_t[]){10, 99});
	write_tile(p2, "b", r2, 8, 2, g2, (uint64_t[]){10, 0}, (uint64_t[]){27, 1});
	write_tile(p1, "b", r2, 8, 2, g2, (uint64_t[]){10, 1}, (uint64_t[]){27, 529});
	/* A key is not readable before close_tiles. */
	ckpt_value *v;
	assert_int_equal(ckpt_value_open(&v, p1, "a", 1), CKPT_ENOTFOUND);
	ckpt_store_free(p1);
	ckpt_store_free(p2);
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), 0);
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.2.db"), 0);
	if (ckpt_store_close_tiles(p0) != 0)
		fail_msg("close: %s", ckpt_error_last());
	check_reads(p0, "a", r1, 4, 1, g1, 11);
	check_reads(p0, "b", r2, 8, 2, g2, 12);
	check_get(p0, "plain", r1, 5000);
	assert_int_equal(ckpt_store_seal(p0), 0);
	ckpt_store_free(p0);
	/* Format 2.0: only now that the store holds tiles. */
	assert_int_equal(sql_int(dir, "ckpt.db", "SELECT value FROM meta WHERE name='format_major'"),
			 2);
	assert_int_equal(ckpt_store_open(&ro, dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	assert_int_equal(ckpt_store_index_checked(ro), 1);
	check_reads(ro, "b", r2, 8, 2, g2, 13);
	/* A box read touches only the tile it lies in. */
	{
		uint64_t before = ckpt_store_bytes_read(ro), st[2] = {12, 300}, sh[2] = {20, 200};
		unsigned char *buf = malloc(20 * 200 * 8);
		assert_int_equal(ckpt_value_open(&v, ro, "b", 1), 0);
		assert_int_equal(ckpt_value_pread_box(v, 8, 2, g2, st, sh, buf), 0);
		assert_true(ckpt_store_bytes_read(ro) - before <= 27 * 529 * 8 + 2 * CS);
		uint64_t wrong[2] = {37, 531};
		assert_int_equal(ckpt_value_pread_box(v, 8, 2, wrong, st, sh, buf), CKPT_EINVAL);
		assert_int_equal(ckpt_value_pread_box(v, 4, 2, g2, st, sh, buf), CKPT_EINVAL);
		ckpt_value_free(v);
		free(buf);
	}
	/* A tiled value is copied, not cloned: its tiles are no one chunk table. */
	{
		ckpt_store *cs = open_idx(newdir(), "ckpt.db");
		ckpt_batch *b;
		assert_int_equal(ckpt_batch_begin(&b, cs), 0);
		assert_int_equal(ckpt_batch_put_clone(b, "c", 1, ro, "b", 1), CKPT_EUNSUPPORTED);
		assert_int_equal(ckpt_batch_put_clone(b, "p", 1, ro, "plain", 5), 0);
		assert_int_equal(ckpt_batch_commit(b, NULL), 0);
		check_get(cs, "p", r1, 5000);
		ckpt_store_free(cs);
	}
	ckpt_store_free(ro);
	free(r1);
	free(r2);
}

/* Box reads of ordinary values: only the chunks the box overlaps. */
static void test_box_plain(void **state)
{
	const char *d = newdir();
	char dir[128];
	ckpt_store *s, *ro;
	const uint64_t g[3] = {16, 32, 64};
	unsigned char *r = random_bytes(16 * 32 * 64 * 2, 7);
	ckpt_value *v;

	(void)state;
	strcpy(dir, d);
	s = open_idx(dir, "ckpt.db");
	put1(s, "x", r, 16 * 32 * 64 * 2);
	put1(s, "small", r, 64);
	assert_int_equal(ckpt_store_seal(s), 0);
	ckpt_store_free(s);
	assert_int_equal(ckpt_store_open(&ro, dir, CKPT_STORE_IMMUTABLE, NULL), 0);
	check_reads(ro, "x", r, 2, 3, g, 21);
	check_reads(ro, "small", r, 4, 2, (uint64_t[]){4, 4}, 22);
	/* One plane of 4 KiB = one chunk; rows of it read with one pread. */
	uint64_t before = ckpt_store_bytes_read(ro), st[3] = {5, 0, 0}, sh[3] = {1, 32, 64};
	unsigned char buf[32 * 64 * 2];
	assert_int_equal(ckpt_value_open(&v, ro, "x", 1), 0);
	assert_int_equal(ckpt_value_pread_box(v, 2, 3, g, st, sh, buf), 0);
	assert_int_equal(ckpt_store_bytes_read(ro) - before, 32 * 64 * 2);
	/* A column of every plane: every chunk once, no more. */
	before = ckpt_store_bytes_read(ro);
	uint64_t st2[3] = {0, 0, 3}, sh2[3] = {16, 32, 1};
	assert_int_equal(ckpt_value_pread_box(v, 2, 3, g, st2, sh2, buf), 0);
	assert_int_equal(ckpt_store_bytes_read(ro) - before, 16 * 32 * 64 * 2);
	assert_int_equal(ckpt_value_pread_box(v, 2, 3, (uint64_t[]){16, 32, 65}, st, sh, buf),
			 CKPT_EINVAL);
	assert_int_equal(ckpt_value_pread_box(v, 2, 3, g, (uint64_t[]){16, 0, 0}, sh, buf),
			 CKPT_EINVAL);
	ckpt_value_free(v);
	ckpt_store_free(ro);
	free(r);
}

/* Gaps and overlaps name the array, the boxes and the index files. */
static void test_tiling_errors(void **state)
{
	const char *d = newdir();
	char dir[128];
	ckpt_store *p0, *p1;
	const uint64_t g[2] = {8, 16};
	unsigned char *r = random_bytes(8 * 17, 8);

	(void)state;
	strcpy(dir, d);
	p0 = open_idx(dir, "ckpt.db");
	p1 = open_idx(dir, "ckpt.1.db");
	/* gap: [4:8, 8:16] */
	write_tile(p0, "gap", r, 1, 2, g, (uint64_t[]){0, 0}, (uint64_t[]){8, 8});
	write_tile(p0, "gap", r, 1, 2, g, (uint64_t[]){0, 8}, (uint64_t[]){4, 8});
	assert_int_equal(ckpt_store_close_tiles(p0), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "gap: box [4:8, 8:16] is written by no process"));
	write_tile(p0, "gap", r, 1, 2, g, (uint64_t[]){4, 8}, (uint64_t[]){4, 8});
	assert_int_equal(ckpt_store_close_tiles(p0), 0);
	/* overlap across two indexes */
	write_tile(p0, "ov", r, 1, 2, g, (uint64_t[]){0, 0}, (uint64_t[]){4, 16});
	write_tile(p1, "ov", r, 1, 2, g, (uint64_t[]){2, 0}, (uint64_t[]){6, 16});
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), 0);
	assert_int_equal(ckpt_store_close_tiles(p0), CKPT_EINVAL);
	assert_non_null(
	    strstr(ckpt_error_last(), "ov: boxes [0:4, 0:16] (ckpt.db) and [2:8, 0:16] (ckpt.1.db) overlap"));
	ckpt_store_free(p1);
	/* the same start twice: refused by the merge */
	p1 = open_idx(dir, "ckpt.2.db");
	write_tile(p1, "gap", r, 1, 2, g, (uint64_t[]){0, 0}, (uint64_t[]){8, 8});
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.2.db"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "(ckpt.db) and [0:8, 0:8] (ckpt.2.db) overlap"));
	ckpt_store_free(p1);
	/* another global shape for the same key */
	p1 = open_idx(dir, "ckpt.3.db");
	write_tile(p1, "ov", r, 1, 2, (uint64_t[]){8, 17}, (uint64_t[]){4, 0}, (uint64_t[]){4, 16});
	ckpt_store_free(p1);
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.3.db"), 0);
	assert_int_equal(ckpt_store_close_tiles(p0), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "key 'ov': bad tile row"));
	ckpt_store_free(p0);
	/* written whole and as tiles; a tile of the wrong size */
	p0 = open_idx(newdir(), "ckpt.db");
	write_tile(p0, "w", r, 1, 1, (uint64_t[]){8}, (uint64_t[]){0}, (uint64_t[]){8});
	put1(p0, "w2", r, 8);
	write_tile(p0, "w2", r, 1, 1, (uint64_t[]){8}, (uint64_t[]){0}, (uint64_t[]){8});
	assert_int_equal(ckpt_store_close_tiles(p0), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "'w2' is written both whole and as tiles"));
	put1(p0, "w2", r, 8); /* a put replaces the key's tiles */
	assert_int_equal(ckpt_store_close_tiles(p0), 0);
	check_get(p0, "w", r, 8);
	check_get(p0, "w2", r, 8);
	{
		ckpt_batch *b;
		ckpt_value_writer *w;
		ckpt_tile t = {1, 1, (uint64_t[]){8}, (uint64_t[]){2}, (uint64_t[]){4}};
		ckpt_tile bad = {1, 1, (uint64_t[]){8}, (uint64_t[]){6}, (uint64_t[]){4}};
		assert_int_equal(ckpt_batch_begin(&b, p0), 0);
		assert_int_equal(ckpt_value_writer_open_tile(&w, b, "t", 1, &bad, NULL), CKPT_EINVAL);
		assert_int_equal(ckpt_value_writer_open_tile(&w, b, "t", 1, &t, NULL), 0);
		assert_int_equal(ckpt_value_writer_write(w, r, 3), 0);
		assert_int_equal(ckpt_value_writer_close(w), CKPT_EINVAL);
		ckpt_batch_abort(b);
	}
	ckpt_store_free(p0);
	free(r);
}

/* Lying tile rows are CKPT_ECORRUPT at open, never a crash or unwritten bytes. */
static void test_hostile_tile_rows(void **state)
{
	static const char *const lies[] = {
	    "UPDATE tiles SET ndim = 40",
	    "UPDATE tiles SET ndim = 1",
	    "UPDATE tiles SET start = x'0100000000000000' WHERE t0 = 0",
	    "UPDATE tiles SET t0 = 5 WHERE t0 = 0",
	    "UPDATE tiles SET shape = x'05000000000000000800000000000000' WHERE t0 = 0",
	    "UPDATE tiles SET shape = x'03000000000000000800000000000000' WHERE t0 = 0",
	    "UPDATE tiles SET global_shape = x'08000000000000001100000000000000' WHERE t0 = 0",
	    "UPDATE tiles SET itemsize = 0",
	    "UPDATE tiles SET size = 7 WHERE t0 = 0",
	    "UPDATE tiles SET chunk_size = 0",
	    "UPDATE tiles SET source = x'00'",
	    "DELETE FROM tiles WHERE t0 = 0",
	    "DELETE FROM tiles",
	    "DROP TABLE tiles",
	    "DELETE FROM tile_chunks WHERE idx = 0",
	    "UPDATE tile_chunks SET raw_len = 5",
	    "UPDATE tile_chunks SET file_id = 99",
	    "UPDATE kv SET size = 5 WHERE key = x'6b'",
	};
	const uint64_t g[2] = {8, 16};
	unsigned char *r = random_bytes(8 * 16 * 4, 9);

	(void)state;
	for (size_t i = 0; i < sizeof(lies) / sizeof(*lies); i++) {
		char dir[128];
		ckpt_store *s;
		ckpt_value *v;
		strcpy(dir, newdir());
		s = open_idx(dir, "ckpt.db");
		write_tile(s, "k", r, 4, 2, g, (uint64_t[]){0, 0}, (uint64_t[]){4, 16});
		write_tile(s, "k", r, 4, 2, g, (uint64_t[]){4, 0}, (uint64_t[]){4, 16});
		assert_int_equal(ckpt_store_close_tiles(s), 0);
		ckpt_store_free(s);
		sql(dir, "ckpt.db", lies[i]);
		assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_READONLY, NULL), 0);
		int rc = ckpt_value_open(&v, s, "k", 1);
		if (rc != CKPT_ECORRUPT)
			fail_msg("%s: open gave %d (%s)", lies[i], rc, ckpt_error_last());
		ckpt_store_free(s);
	}
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_indexes),
	    cmocka_unit_test(test_merge_dangling_chunk),
	    cmocka_unit_test(test_tiles_merged),
	    cmocka_unit_test(test_box_plain),
	    cmocka_unit_test(test_tiling_errors),
	    cmocka_unit_test(test_hostile_tile_rows),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
