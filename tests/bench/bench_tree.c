/*
 * bench_tree.c — reading an item's _METADATA into its tree (make bench, section meta).
 *
 *   bench_tree STEP ITEM [RUNS]
 *
 * Opens the step, takes the item's _METADATA text, and times, best of RUNS
 * (default 9), in CPU time of the thread (a shared machine preempts wall
 * time, not this): ckpt_tree_metadata_from_json (the tree a mount lists from)
 * against cJSON_ParseWithLength + cJSON_Delete of the same text alone, the
 * parser the library read it with until issue 15 (the baseline: no tree is
 * built); and the tree the way a mount gets it since the step listing
 * (ckpt.list): ckpt_step_open_listed + ckpt_step_item_tree + ckpt_step_free
 * (-1 without a listing). Prints "bytes=N leaves=N ours=S cjson=S listed=S".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ckpt/error.h"
#include "ckpt/step.h"
#include "ckpt/tree.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int count_leaf(ckpt_tree *node, const char *path, void *payload)
{
	(void)path;
	if (!ckpt_tree_is_container(node))
		++*(size_t *)payload;
	return 0;
}

int main(int argc, char **argv)
{
	ckpt_store_options so = CKPT_STORE_OPTIONS_INIT;
	ckpt_step *s = NULL;
	const char *json = NULL;
	double ours = 1e9, base = 1e9, listed = 1e9;
	size_t leaves = 0;
	int runs = argc > 3 ? atoi(argv[3]) : 9;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_tree STEP ITEM [RUNS]\n");
		return 2;
	}
	if (ckpt_step_open(&s, argv[1], &so) || ckpt_step_item_metadata_json(&json, s, argv[2]) ||
	    !json) {
		fprintf(stderr, "bench_tree: %s\n", ckpt_error_last());
		return 1;
	}
	size_t len = strlen(json);
	/* First, before the JSON runs' frees fragment the heap (malloc_consolidate). */
	for (int r = 0; r < runs; r++) {
		ckpt_step *ls = NULL;
		const ckpt_tree *lt = NULL;
		double t0 = now();
		int lrc = ckpt_step_open_listed(&ls, argv[1], &so);
		if (lrc == 0)
			lrc = ckpt_step_item_tree(&lt, ls, argv[2]);
		ckpt_step_free(ls);
		double t1 = now();
		if (lrc) {
			fprintf(stderr, "bench_tree: %s\n", ckpt_error_last());
			return 1;
		}
		listed = t1 - t0 < listed ? t1 - t0 : listed;
	}
	for (int r = 0; r < runs; r++) {
		ckpt_tree *t = NULL;
		double t0 = now();
		if (ckpt_tree_metadata_from_json(&t, json, len)) {
			fprintf(stderr, "bench_tree: %s\n", ckpt_error_last());
			return 1;
		}
		double t1 = now();
		if (r == 0)
			ckpt_tree_walk(t, count_leaf, &leaves);
		ckpt_tree_free(t);
		double t2 = now();
		cJSON *c = cJSON_ParseWithLength(json, len);
		cJSON_Delete(c);
		double t3 = now();
		if (!c)
			return 1;
		ours = t1 - t0 < ours ? t1 - t0 : ours;
		base = t3 - t2 < base ? t3 - t2 : base;
	}
	printf("bytes=%zu leaves=%zu ours=%.6f cjson=%.6f listed=%.6f\n", len, leaves, ours, base,
	       listed);
	ckpt_step_free(s);
	return 0;
}
