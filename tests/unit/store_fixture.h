/*
 * store_fixture.h — the scratch directory of the store tests (store_test.c,
 * index_check_test.c, tiles_test.c): one temporary root per test program,
 * removed at the end, and a fresh store directory under it per call.
 * Define FIXTURE_NAME (the program's name) before including it, after
 * cmocka.h and ckpt/store.h.
 */
#ifndef STORE_FIXTURE_H
#define STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char root[64];
static int ndir;

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/%s.XXXXXX", FIXTURE_NAME);
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd);
}

/* A new directory name under the root (not created); static storage. */
static const char *newdir(void)
{
	static char d[128];
	snprintf(d, sizeof(d), "%s/s%d", root, ndir++);
	return d;
}

/* n bytes of a linear congruential sequence (incompressible enough), malloc'd. */
static inline unsigned char *random_bytes(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n ? n : 1);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
	return p;
}

/* Put one value in a batch of its own. */
static inline void put1(ckpt_store *s, const char *key, const void *v, size_t n)
{
	ckpt_batch *b;
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	assert_int_equal(ckpt_batch_put(b, key, strlen(key), v, n, NULL), 0);
	assert_int_equal(ckpt_batch_commit(b, NULL), 0);
}

#endif
