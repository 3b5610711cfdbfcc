/*
 * bench_restore — "restore" as users mean it: every array leaf of every PyTree
 * item of a finalized step read into memory through the library
 * (ckpt_step_open + ckpt_pytree_handler_new + ckpt_checkpointer_restore).
 *
 * Usage: bench_restore STEP_DIR [target|rename]
 *   target  each item restored with its own metadata tree as the target
 *           (Orbax's `item`: the result shaped by the target)
 *   rename  each item restored with the transform "(.*)" -> "moved/\1" (a regex
 *           rule on every leaf path, the result rebuilt at the new paths)
 * Prints the line peers.py prints: "elapsed=<s> bytes=<n> leaves=<n> sum=<n>",
 * timed from before the step is opened until every leaf is in memory; the sum
 * (data as uint32 words, mod 2^64) is computed after the timer. Exit 1 on error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ckpt/ckpt.h>

struct tally {
	uint64_t bytes, leaves, sum;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int count_leaf(ckpt_tree *node, const char *path, void *payload)
{
	struct tally *t = payload;
	const unsigned char *p = ckpt_tree_data(node);
	uint64_t n = ckpt_tree_nbytes(node);
	uint32_t w;

	(void)path;
	if (ckpt_tree_get_kind(node) != CKPT_TREE_ARRAY || !p)
		return 0;
	t->bytes += n;
	t->leaves++;
	for (uint64_t i = 0; i + 4 <= n; i += 4) {
		memcpy(&w, p + i, 4);
		t->sum += w;
	}
	if (n % 4) {
		w = 0;
		memcpy(&w, p + n - n % 4, n % 4);
		t->sum += w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	ckpt_step *step = NULL;
	ckpt_handler *pytree = NULL, *standard = NULL;
	ckpt_item_args *items = NULL;
	void **outs = NULL;
	size_t n = 0, nitems = 0;
	struct tally t = {0, 0, 0};
	int rc = 1;
	double t0, t1;

	const char *mode = argc == 3 ? argv[2] : "";
	static const ckpt_restore_transform rename_all = {"(.*)", "moved/\\1", 1};
	ckpt_pytree_restore_args *ras = NULL;

	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(mode, "target") && strcmp(mode, "rename"))) {
		fprintf(stderr, "usage: bench_restore STEP_DIR [target|rename]\n");
		return 2;
	}
	if (ckpt_pytree_handler_new(&pytree) < 0 || ckpt_standard_handler_new(&standard) < 0)
		goto fail;
	t0 = now();
	if (ckpt_step_open(&step, argv[1], NULL) < 0)
		goto fail;
	nitems = ckpt_step_item_count(step);
	items = calloc(nitems ? nitems : 1, sizeof(*items));
	outs = calloc(nitems ? nitems : 1, sizeof(*outs));
	ras = calloc(nitems ? nitems : 1, sizeof(*ras));
	if (!items || !outs || !ras)
		goto fail;
	for (size_t i = 0; i < nitems; i++) {
		const char *ts = ckpt_step_item_typestr(step, i);
		ckpt_handler *h = NULL;

		if (ts && !strcmp(ts, CKPT_PYTREE_TYPESTR))
			h = pytree;
		else if (ts && !strcmp(ts, CKPT_STANDARD_TYPESTR))
			h = standard;
		if (!h)
			continue; /* JSON, proto, ... items hold no arrays worth timing */
		items[n].name = ckpt_step_item_name(step, i);
		items[n].handler = h;
		items[n].args = NULL;
		if (*mode) {
			const ckpt_tree *meta = NULL;
			ras[n] = (ckpt_pytree_restore_args)CKPT_PYTREE_RESTORE_ARGS_INIT;
			if (!strcmp(mode, "target")) {
				if (ckpt_step_item_tree(&meta, step, items[n].name) < 0)
					goto fail;
				ras[n].item = meta;
			} else {
				ras[n].transforms = &rename_all;
				ras[n].ntransforms = 1;
			}
			items[n].args = &ras[n];
		}
		n++;
	}
	if (ckpt_checkpointer_restore(outs, argv[1], items, n) < 0)
		goto fail;
	t1 = now();
	for (size_t i = 0; i < n; i++)
		ckpt_tree_walk(outs[i], count_leaf, &t);
	printf("elapsed=%.6f bytes=%" PRIu64 " leaves=%" PRIu64 " sum=%" PRIu64 "\n", t1 - t0,
	       t.bytes, t.leaves, t.sum);
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "bench_restore: %s: %s\n", argv[1], ckpt_error_last());
done:
	for (size_t i = 0; outs && i < n; i++)
		ckpt_tree_free(outs[i]);
	free(outs);
	free(items);
	free(ras);
	ckpt_step_free(step);
	ckpt_handler_free(pytree);
	ckpt_handler_free(standard);
	return rc;
}
