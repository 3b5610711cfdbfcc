/*
 * bench_mp.c — the writers' rows of the `multiprocess` bench section
 * (tests/bench/run.sh, docs/bench.md): N processes saving one step of a
 * global float32 array, each its slab of rows as a sharded PyTree leaf, vs
 * one process saving the same array as a plain leaf. Both timings run from
 * the start of the save to the step renamed into place (merge included);
 * the data is generated (incompressible) before the clock starts.
 *
 *   bench_mp multi ROOT MIB N    N writer processes, MIB MiB in all
 *   bench_mp single ROOT MIB     one process, MIB MiB
 * Prints "elapsed=S max_hwm_mib=M shard_mib=X" (max_hwm_mib: the largest
 * VmHWM of the writers, read from /proc/self/status after the save).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/ckpt.h"

#define COLS 16384 /* floats per row: 64 KiB */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long hwm_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static float *gen(uint64_t n, uint64_t seed)
{
	float *p = malloc(n * sizeof(float));
	uint32_t x = (uint32_t)(seed * 2654435761u + 1);
	for (uint64_t i = 0; p && i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (float)x / 4294967296.0f;
	}
	return p;
}

/* Save rows [r0, r1) of a rows x COLS array as item "state" {w}: sharded with mp, else plain. */
static int save(const char *root, uint64_t rows, uint64_t r0, uint64_t r1, float *data,
		const ckpt_multiprocess_options *mp)
{
	ckpt_tree *t = NULL, *w = NULL;
	ckpt_handler *h = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_step_writer_options wo = CKPT_STEP_WRITER_OPTIONS_INIT;
	uint64_t global[2] = {rows, COLS}, start[2] = {r0, 0}, shape[2] = {r1 - r0, COLS};
	int rc = ckpt_tree_new(&t, CKPT_TREE_DICT);

	if (rc == 0 && mp) {
		rc = ckpt_tree_new_sharded_array(&w, CKPT_DTYPE_FLOAT32, 2, global);
		if (rc == 0 && r1 > r0)
			rc = ckpt_tree_add_shard(w, start, shape, 0, data);
	} else if (rc == 0) {
		rc = ckpt_tree_new_array(&w, CKPT_DTYPE_FLOAT32, 2, global, data, CKPT_TREE_BORROW);
	}
	if (rc == 0 && (rc = ckpt_tree_add(t, "w", w)) == 0)
		w = NULL;
	if (rc == 0)
		rc = ckpt_pytree_handler_new(&h);
	sa.item = t;
	wo.multiprocess = mp;
	ckpt_item_args item = {"state", h, &sa};
	if (rc == 0)
		rc = ckpt_checkpointer_save(root, 1, &item, 1, &wo);
	if (rc)
		fprintf(stderr, "bench_mp: %s\n", ckpt_error_last());
	ckpt_tree_free(w);
	ckpt_tree_free(t);
	ckpt_handler_free(h);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	const char *root = argv[2];
	uint64_t mib = strtoull(argv[3], NULL, 10);
	uint64_t rows = mib * (1 << 20) / (COLS * sizeof(float));
	int pfd[2];

	if (!strcmp(argv[1], "single")) {
		float *d = gen(rows * COLS, 1);
		if (!d)
			return 1;
		double t0 = now();
		int rc = save(root, rows, 0, rows, d, NULL);
		double t1 = now();
		printf("elapsed=%.3f max_hwm_mib=%ld shard_mib=%" PRIu64 "\n", t1 - t0,
		       hwm_kib() >> 10, mib);
		free(d);
		return rc ? 1 : 0;
	}
	if (strcmp(argv[1], "multi") || argc < 5)
		return 2;
	unsigned n = (unsigned)atoi(argv[4]);
	pid_t pids[64];
	if (n == 0 || n > 64 || pipe(pfd) != 0)
		return 2;
	/* each child generates its slab, says it is ready, then waits for the start signal */
	int go[2], ready[2];
	if (pipe(go) != 0 || pipe(ready) != 0)
		return 2;
	for (unsigned i = 0; i < n; i++) {
		if ((pids[i] = fork()) < 0)
			return 1;
		if (pids[i] == 0) {
			uint64_t r0 = rows * i / n, r1 = rows * (i + 1) / n;
			float *d = gen((r1 - r0) * COLS + 1, 1 + i);
			char c;
			ckpt_multiprocess_options mp = CKPT_MULTIPROCESS_OPTIONS_INIT;
			mp.process_index = i;
			mp.process_count = n;
			mp.primary_host = 0;
			mp.barrier_timeout_ms = 600000;
			if (!d || write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(1);
			int rc = save(root, rows, r0, r1, d, &mp);
			long kib = hwm_kib();
			if (write(pfd[1], &kib, sizeof(kib)) != (ssize_t)sizeof(kib))
				rc = 1;
			_exit(rc ? 1 : 0);
		}
	}
	for (unsigned i = 0; i < n; i++) { /* every slab generated: start the clock */
		char c;
		if (read(ready[0], &c, 1) != 1)
			return 1;
	}
	double t0 = now();
	for (unsigned i = 0; i < n; i++)
		if (write(go[1], "g", 1) != 1)
			return 1;
	int bad = 0;
	for (unsigned i = 0; i < n; i++) {
		int st = 0;
		waitpid(pids[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	double t1 = now();
	long max = 0, kib;
	for (unsigned i = 0; i < n; i++)
		if (read(pfd[0], &kib, sizeof(kib)) == (ssize_t)sizeof(kib) && kib > max)
			max = kib;
	printf("elapsed=%.3f max_hwm_mib=%ld shard_mib=%" PRIu64 "\n", t1 - t0, max >> 10, mib / n);
	return bad;
}
