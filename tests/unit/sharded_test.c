/*
 * sharded_test.c — PyTree leaves given as shards of a global array
 * (ckpt_tree_new_sharded_array, ckpt_tree_add_shard): only replica 0 is
 * written, as tiles; _METADATA and restore see an ordinary array; a slice of
 * it restores alone (ckpt_leaf_restore_args has_box); a gap fails the save.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "unit/treecmp.h"
#include "fsutil.h"

#define R 6
#define C 10

static float ref[R][C];

/* The C-order bytes of ref[r0:r0+nr, c0:c0+nc], malloc'd. */
static float *box_of(uint64_t r0, uint64_t nr, uint64_t c0, uint64_t nc)
{
	float *b = malloc(nr * nc * sizeof(float)), *p = b;
	for (uint64_t r = 0; r < nr; r++)
		for (uint64_t c = 0; c < nc; c++)
			*p++ = ref[r0 + r][c0 + c];
	return b;
}

struct shard {
	uint64_t start[2], shape[2];
	unsigned replica;
	float *data;
};

static ckpt_tree *sharded_tree(struct shard *sh, size_t n)
{
	const uint64_t g[2] = {R, C};
	ckpt_tree *t, *leaf;
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new_sharded_array(&leaf, CKPT_DTYPE_FLOAT32, 2, g), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(
		    ckpt_tree_add_shard(leaf, sh[i].start, sh[i].shape, sh[i].replica, sh[i].data), 0);
	assert_int_equal(ckpt_tree_add(t, "w", leaf), 0);
	assert_int_equal(ckpt_tree_add_shard(leaf, (uint64_t[]){0, 0}, (uint64_t[]){7, 1}, 0,
					     sh[0].data),
			 CKPT_EINVAL);
	ckpt_tree *s;
	assert_int_equal(ckpt_tree_new_int(&s, 7), 0);
	assert_int_equal(ckpt_tree_add(t, "step", s), 0);
	return t;
}

static int cast_f64(ckpt_leaf_save_args *out, const char *path, const ckpt_tree *leaf, void *p)
{
	(void)leaf;
	(void)p;
	if (strcmp(path, "w") == 0)
		out->dtype = CKPT_DTYPE_FLOAT64;
	return 0;
}

static const uint64_t *want_box;

static int slice(ckpt_leaf_restore_args *out, const char *path, const ckpt_tree *meta, void *p)
{
	(void)meta;
	(void)p;
	if (strcmp(path, "w") == 0 && want_box) {
		out->has_box = 1;
		memcpy(out->box_start, want_box, 2 * sizeof(uint64_t));
		memcpy(out->box_shape, want_box + 2, 2 * sizeof(uint64_t));
	}
	return 0;
}

static ckpt_tree *restore(const char *dir, ckpt_handler *h, const uint64_t *box)
{
	ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
	ckpt_item_args ri = {"state", h, &ra};
	void *out = NULL;
	want_box = box;
	ra.leaf_args = slice;
	if (ckpt_checkpointer_restore(&out, dir, &ri, 1) != 0)
		fail_msg("restore: %s", ckpt_error_last());
	return out;
}

static void test_sharded_save_and_slices(void **state)
{
	char *root = test_tmpdir(), dir[600];
	ckpt_handler *h;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args it = {"state", NULL, &sa};
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	float *wrong = calloc(4 * 3, sizeof(float));
	struct shard sh[] = {
	    {{0, 0}, {4, 3}, 0, box_of(0, 4, 0, 3)},
	    {{0, 0}, {4, 3}, 1, wrong}, /* a replica: never written */
	    {{0, 3}, {4, 7}, 0, box_of(0, 4, 3, 7)},
	    {{4, 0}, {2, 10}, 0, box_of(4, 2, 0, 10)},
	};
	ckpt_tree *t, *out;

	(void)state;
	for (int r = 0; r < R; r++)
		for (int c = 0; c < C; c++)
			ref[r][c] = (float)(r * 100 + c) + 0.25f;
	for (size_t i = 0; i < 4; i++) /* refresh after ref is set */
		if (sh[i].data != wrong) {
			free(sh[i].data);
			sh[i].data = box_of(sh[i].start[0], sh[i].shape[0], sh[i].start[1],
					    sh[i].shape[1]);
		}
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	it.handler = h;
	t = sharded_tree(sh, 4);
	assert_int_equal(ckpt_tree_is_sharded(ckpt_tree_find(t, "w")), 1);
	assert_int_equal(ckpt_tree_nshards(ckpt_tree_find(t, "w")), 4);
	sa.item = t;
	o.store.chunk_size = 4096;
	if (ckpt_checkpointer_save(root, 1, &it, 1, &o) != 0)
		fail_msg("save: %s", ckpt_error_last());
	snprintf(dir, sizeof(dir), "%s/1", root);
	/* Whole: an ordinary array, bit-exact, replica 1's bytes nowhere. */
	out = restore(dir, h, NULL);
	ckpt_tree *w = ckpt_tree_find(out, "w");
	assert_non_null(w);
	assert_int_equal(ckpt_tree_is_sharded(w), 0);
	assert_int_equal(ckpt_tree_ndim(w), 2);
	assert_int_equal(ckpt_tree_shape(w)[0], R);
	assert_int_equal(ckpt_tree_shape(w)[1], C);
	assert_memory_equal(ckpt_tree_data(w), ref, sizeof(ref));
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(out, "step")), 7);
	ckpt_tree_free(out);
	/* Slices across tile boundaries, and inside one. */
	const uint64_t boxes[][4] = {{1, 2, 4, 5}, {0, 0, 6, 10}, {5, 9, 1, 1}, {0, 4, 3, 2}};
	for (size_t i = 0; i < 4; i++) {
		const uint64_t *b = boxes[i];
		float *want = box_of(b[0], b[2], b[1], b[3]);
		out = restore(dir, h, b);
		w = ckpt_tree_find(out, "w");
		assert_int_equal(ckpt_tree_shape(w)[0], b[2]);
		assert_int_equal(ckpt_tree_shape(w)[1], b[3]);
		assert_memory_equal(ckpt_tree_data(w), want, b[2] * b[3] * sizeof(float));
		ckpt_tree_free(out);
		free(want);
	}
	/* A box outside the array is refused. */
	{
		ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
		ckpt_item_args ri = {"state", h, &ra};
		void *o2 = NULL;
		const uint64_t bad[4] = {5, 0, 2, 1};
		want_box = bad;
		ra.leaf_args = slice;
		assert_int_equal(ckpt_checkpointer_restore(&o2, dir, &ri, 1), CKPT_EINVAL);
	}
	/* Saved as float64 (a cast per tile): a slice comes back float64. */
	sa.leaf_args = cast_f64;
	assert_int_equal(ckpt_checkpointer_save(root, 2, &it, 1, &o), 0);
	snprintf(dir, sizeof(dir), "%s/2", root);
	out = restore(dir, h, boxes[0]);
	w = ckpt_tree_find(out, "w");
	assert_int_equal(ckpt_tree_dtype(w), CKPT_DTYPE_FLOAT64);
	{
		const double *d = ckpt_tree_data(w);
		for (uint64_t r = 0; r < boxes[0][2]; r++)
			for (uint64_t c = 0; c < boxes[0][3]; c++)
				assert_true(d[r * boxes[0][3] + c] ==
					    (double)ref[boxes[0][0] + r][boxes[0][1] + c]);
	}
	ckpt_tree_free(out);
	/* A copy-mode snapshot copies the replica-0 shards: later changes do not reach it. */
	{
		void *snap = NULL;
		ckpt_item_args si = {"state", h, NULL};
		float *keep[4];
		sa.leaf_args = NULL;
		assert_int_equal(ckpt_handler_snapshot(&snap, h, &sa), 0);
		for (size_t i = 0; i < 4; i++) {
			keep[i] = sh[i].data;
			if (sh[i].replica == 0) {
				uint64_t n = sh[i].shape[0] * sh[i].shape[1];
				sh[i].data = malloc(n * sizeof(float));
				memcpy(sh[i].data, keep[i], n * sizeof(float));
				memset(keep[i], 0xff, n * sizeof(float)); /* the caller moves on */
			}
		}
		si.args = snap;
		assert_int_equal(ckpt_checkpointer_save(root, 4, &si, 1, &o), 0);
		ckpt_handler_snapshot_free(h, snap);
		for (size_t i = 0; i < 4; i++)
			if (sh[i].replica == 0)
				free(keep[i]);
		snprintf(dir, sizeof(dir), "%s/4", root);
		out = restore(dir, h, NULL);
		assert_memory_equal(ckpt_tree_data(ckpt_tree_find(out, "w")), ref, sizeof(ref));
		ckpt_tree_free(out);
	}
	ckpt_tree_free(t);
	/* A missing box fails the save, naming the leaf and the box; no step 3. */
	sa.leaf_args = NULL;
	t = sharded_tree(sh, 3); /* without [4:6, 0:10] */
	sa.item = t;
	assert_int_equal(ckpt_checkpointer_save(root, 3, &it, 1, &o), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "state/w: box [4:6, 0:10] is written by no process"));
	snprintf(dir, sizeof(dir), "%s/3", root);
	assert_int_equal(access(dir, F_OK), -1);
	ckpt_tree_free(t);
	for (size_t i = 0; i < 4; i++)
		free(sh[i].data);
	ckpt_handler_free(h);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sharded_save_and_slices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
