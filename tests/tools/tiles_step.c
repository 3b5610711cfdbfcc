/*
 * tiles_step.c — save a step whose array leaves are sharded (tiles), for the
 * end-to-end tests (tests/e2e/fs_tiles.sh). Public headers only.
 *
 * Usage: tiles_step ROOT STEP
 * Writes item "state": "w" float32 (300, 500) in six uneven boxes, "v" int16
 * (1000,) in three pieces plus a replica of one (never written), "step" 7.
 * w[r, c] = r * 1000 + c, v[i] = 3 * i - 7, as tests/e2e/fs_tiles.sh expects.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ckpt/ckpt.h"

static int die(const char *what)
{
	fprintf(stderr, "tiles_step: %s: %s\n", what, ckpt_error_last());
	return 1;
}

int main(int argc, char **argv)
{
	static const uint64_t rows[] = {0, 100, 300}, cols[] = {0, 123, 380, 500};
	static const uint64_t vcut[][2] = {{0, 400}, {400, 250}, {650, 350}, {400, 250}};
	const uint64_t gw[2] = {300, 500}, gv[1] = {1000};
	float *w[6];
	int16_t *v[4];
	ckpt_tree *t, *lw, *lv, *s;
	ckpt_handler *h;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args it = {"state", NULL, &sa};
	int k = 0;

	if (argc != 3)
		return fprintf(stderr, "usage: tiles_step ROOT STEP\n"), 2;
	if (ckpt_tree_new(&t, CKPT_TREE_DICT) ||
	    ckpt_tree_new_sharded_array(&lw, CKPT_DTYPE_FLOAT32, 2, gw) ||
	    ckpt_tree_new_sharded_array(&lv, CKPT_DTYPE_INT16, 1, gv))
		return die("tree");
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++, k++) {
			uint64_t st[2] = {rows[i], cols[j]};
			uint64_t sh[2] = {rows[i + 1] - rows[i], cols[j + 1] - cols[j]};
			float *p = w[k] = malloc(sh[0] * sh[1] * sizeof(float));
			for (uint64_t r = 0; r < sh[0]; r++)
				for (uint64_t c = 0; c < sh[1]; c++)
					*p++ = (float)((st[0] + r) * 1000 + st[1] + c);
			if (ckpt_tree_add_shard(lw, st, sh, 0, w[k]))
				return die("shard");
		}
	for (int i = 0; i < 4; i++) {
		v[i] = malloc(vcut[i][1] * sizeof(int16_t));
		for (uint64_t e = 0; e < vcut[i][1]; e++)
			v[i][e] = (int16_t)(i == 3 ? -1 : 3 * (int)(vcut[i][0] + e) - 7);
		if (ckpt_tree_add_shard(lv, &vcut[i][0], &vcut[i][1], i == 3 ? 1 : 0, v[i]))
			return die("shard");
	}
	if (ckpt_tree_add(t, "w", lw) || ckpt_tree_add(t, "v", lv) || ckpt_tree_new_int(&s, 7) ||
	    ckpt_tree_add(t, "step", s) || ckpt_pytree_handler_new(&h))
		return die("tree");
	sa.item = t;
	it.handler = h;
	if (ckpt_checkpointer_save(argv[1], strtoull(argv[2], NULL, 10), &it, 1, NULL))
		return die("save");
	ckpt_tree_free(t);
	ckpt_handler_free(h);
	for (int i = 0; i < 6; i++)
		free(w[i]);
	for (int i = 0; i < 4; i++)
		free(v[i]);
	return 0;
}
