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

static char root[64];
static int ndir;

static int setup(void **state)
{
	(void)state;
	strcpy(root, "/tmp/tiles_test.XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd);
}

static const char *newdir(void)
{
	static char d[128];
	snprintf(d, sizeof(d), "%s/s%d", root, ndir++);
	return d;
}

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

static unsigned char *pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
	return p;
}

static void put(ckpt_store *s, const char *key, const void *v, size_t n)
{
	ckpt_batch *b;
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, key, strlen(key), v, n, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
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
	unsigned char *big = pattern(10 * CS + 7, 1), *small = pattern(50, 2);

	(void)state;
	strcpy(dir, d);
	p0 = open_idx(dir, "ckpt.db");
	p1 = open_idx(dir, "ckpt.1.db");
	p2 = open_idx(dir, "ckpt.2.db");
	put(p0, "a/big", big, 10 * CS + 7);
	put(p1, "b/big", big + 3, 10 * CS);
	put(p1, "b/small", small, 50);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "c/%02d", i);
		put(p2, key, big + i, CS + (size_t)i);
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
	unsigned char *big = pattern(4 * CS, 3);

	(void)state;
	strcpy(dir, d);
	p0 = open_idx(dir, "ckpt.db");
	p1 = open_idx(dir, "ckpt.1.db");
	put(p1, "x", big, 4 * CS);
	ckpt_store_free(p1);
	sql(dir, "ckpt.1.db", "UPDATE chunks SET file_id = 77 WHERE idx = 1");
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "ckpt.1.db"));
	sql(dir, "ckpt.1.db", "UPDATE meta SET value = 9 WHERE name = 'format_major'");
	assert_int_equal(ckpt_store_merge_index(p0, "ckpt.1.db"), CKPT_EVERSION);
	ckpt_store_free(p0);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_indexes),
	    cmocka_unit_test(test_merge_dangling_chunk),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
