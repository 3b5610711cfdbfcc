/*
 * bench_tiles.c — the data-path figures of the `multiprocess` bench section
 * (tests/bench/bench_tiles.sh, docs/bench.md):
 *
 *   bench_tiles merge DIR NPROC NKEYS
 *       writes NPROC per-process indexes DIR/ckpt.<i>.db of NKEYS keys each
 *       (one chunk per value, as small array leaves), then times merging them
 *       all into DIR/ckpt.db (ckpt_store_merge_index each, then
 *       ckpt_store_close_tiles) and prints "elapsed=<s> keys=<n>".
 *   bench_tiles box-write DIR ROWS COLS
 *       writes a ROWS x COLS float32 global array as 2 x 2 tiles (four
 *       processes' indexes, merged and closed) of incompressible bytes.
 *   bench_tiles box-read DIR ROWS COLS
 *       restores rows [ROWS/4, ROWS/2) x all columns — a quarter of the array
 *       in another sharding than the saved one — with ckpt_value_pread_box,
 *       checks it, and prints "bytes_read=<n> stored=<n> elapsed=<s>"
 *       (bytes_read: the store's counter of data-file bytes read).
 *
 * Built by bench_tiles.sh against the library of the build (private headers:
 * the per-process index functions are not public).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt/error.h"
#include "ckpt/store.h"
#include "store_private.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
	fprintf(stderr, "bench_tiles: %s: %s\n", what, ckpt_error_last());
	exit(1);
}

/* The float at (r, c): an LCG of its position, so any box can be checked. */
static uint32_t cell(uint64_t r, uint64_t c, uint64_t cols)
{
	uint64_t x = (r * cols + c) * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(x >> 32);
}

static int merge(const char *dir, int nproc, int nkeys)
{
	ckpt_store_options o = CKPT_STORE_OPTIONS_INIT;
	ckpt_store *s;
	char name[64], key[64];
	unsigned char val[1024];
	double t0;

	o.inline_max = 256; /* values of 1 KiB: one chunk each, like small array leaves */
	o.chunk_size = 4096;
	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (unsigned char)(i * 7);
	for (int p = 1; p <= nproc; p++) {
		ckpt_batch *b;
		snprintf(name, sizeof(name), "ckpt.%d.db", p);
		if (ckpt_store_open_index(&s, dir, name, CKPT_STORE_CREATE, &o) ||
		    ckpt_batch_begin(&b, s))
			die(name);
		for (int k = 0; k < nkeys; k++) {
			snprintf(key, sizeof(key), "p%d/params/layer%05d/w", p, k);
			if (ckpt_batch_put(b, key, strlen(key), val, sizeof(val), NULL))
				die(key);
		}
		if (ckpt_batch_commit(b, NULL) || ckpt_store_seal(s))
			die(name);
		ckpt_store_free(s);
	}
	if (ckpt_store_open_index(&s, dir, "ckpt.db", CKPT_STORE_CREATE, &o))
		die("ckpt.db");
	t0 = now();
	for (int p = 1; p <= nproc; p++) {
		snprintf(name, sizeof(name), "ckpt.%d.db", p);
		if (ckpt_store_merge_index(s, name))
			die(name);
	}
	if (ckpt_store_close_tiles(s))
		die("close tiles");
	printf("elapsed=%.6f keys=%d\n", now() - t0, nproc * nkeys);
	ckpt_store_free(s);
	return 0;
}

static int box_write(const char *dir, uint64_t rows, uint64_t cols)
{
	const uint64_t g[2] = {rows, cols}, h = rows / 2, w = cols / 2;
	uint32_t *buf = malloc(w * sizeof(uint32_t));
	ckpt_store *main_s = NULL;

	for (int p = 0; p < 4; p++) { /* process p writes quadrant p into ckpt.<p>.db */
		const uint64_t start[2] = {p / 2 ? h : 0, p % 2 ? w : 0};
		const uint64_t shape[2] = {p / 2 ? rows - h : h, p % 2 ? cols - w : w};
		ckpt_tile t = {4, 2, g, start, shape};
		ckpt_value_writer *vw;
		ckpt_batch *b;
		ckpt_store *s;
		char name[32];
		snprintf(name, sizeof(name), p ? "ckpt.%d.db" : "ckpt.db", p);
		if (ckpt_store_open_index(&s, dir, name, CKPT_STORE_CREATE, NULL) ||
		    ckpt_batch_begin(&b, s) ||
		    ckpt_value_writer_open_tile(&vw, b, "state/w", 7, &t, NULL))
			die(name);
		for (uint64_t r = 0; r < shape[0]; r++) {
			for (uint64_t c = 0; c < shape[1]; c++)
				buf[c] = cell(start[0] + r, start[1] + c, cols);
			if (ckpt_value_writer_write(vw, buf, shape[1] * 4))
				die("write");
		}
		if (ckpt_value_writer_close(vw) || ckpt_batch_commit(b, NULL))
			die("commit");
		if (p == 0) {
			main_s = s;
			continue;
		}
		if (ckpt_store_seal(s))
			die("seal");
		ckpt_store_free(s);
		if (ckpt_store_merge_index(main_s, name))
			die("merge");
	}
	if (ckpt_store_close_tiles(main_s) || ckpt_store_seal(main_s))
		die("close");
	ckpt_store_free(main_s);
	free(buf);
	return 0;
}

static int box_read(const char *dir, uint64_t rows, uint64_t cols)
{
	const uint64_t g[2] = {rows, cols}, start[2] = {rows / 4, 0},
		       shape[2] = {rows / 2 - rows / 4, cols};
	uint32_t *box = malloc(shape[0] * shape[1] * sizeof(uint32_t));
	ckpt_store *s;
	ckpt_value *v;
	double t0;

	if (ckpt_store_open(&s, dir, CKPT_STORE_IMMUTABLE, NULL) ||
	    ckpt_value_open(&v, s, "state/w", 7))
		die(dir);
	t0 = now();
	if (ckpt_value_pread_box(v, 4, 2, g, start, shape, box))
		die("box read");
	t0 = now() - t0;
	for (uint64_t r = 0; r < shape[0]; r += 97)
		for (uint64_t c = 0; c < cols; c += 89)
			if (box[r * cols + c] != cell(start[0] + r, c, cols)) {
				fprintf(stderr, "bench_tiles: wrong data at (%llu, %llu)\n",
					(unsigned long long)(start[0] + r), (unsigned long long)c);
				return 1;
			}
	printf("bytes_read=%llu stored=%llu elapsed=%.6f\n",
	       (unsigned long long)ckpt_store_bytes_read(s),
	       (unsigned long long)ckpt_value_get_info(v)->stored_size, t0);
	ckpt_value_free(v);
	ckpt_store_free(s);
	free(box);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "merge") == 0)
		return merge(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && strcmp(argv[1], "box-write") == 0)
		return box_write(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "box-read") == 0)
		return box_read(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	fprintf(stderr, "usage: bench_tiles merge DIR NPROC NKEYS | box-write|box-read DIR ROWS COLS\n");
	return 2;
}
