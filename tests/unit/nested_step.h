/*
 * nested_step.h — one step for the tests of listing a tree without building
 * it (step_test.c, vnode_test.c): a header of one static function.
 */
#ifndef CKPT_TESTS_NESTED_STEP_H
#define CKPT_TESTS_NESTED_STEP_H

#include "ckpt/ckpt.h"

/*
 * Save step 1 in root: item "a_state", a PyTree {params: {layers: 12 x {"a/b w":
 * f32[2], none: None}, step: 7}} (nested, a list, None, a key to escape),
 * then five Json items m1..m4 and z_meta (items 1-5): the step directory
 * holds nine entries, enough for a name index.
 */
static void save_nested_step(const char *root)
{
	static const float v[2] = {1, 2};
	static const uint64_t shape[1] = {2};
	ckpt_tree *t = NULL, *d = NULL, *l = NULL, *x = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_handler *h = NULL, *jh = NULL;

	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new(&d, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new(&l, CKPT_TREE_LIST), 0);
	for (int i = 0; i < 12; i++) {
		ckpt_tree *e = NULL, *w = NULL, *n = NULL;
		assert_int_equal(ckpt_tree_new(&e, CKPT_TREE_DICT), 0);
		assert_int_equal(ckpt_tree_new_array(&w, CKPT_DTYPE_FLOAT32, 1, shape, (void *)v,
						     CKPT_TREE_BORROW),
				 0);
		assert_int_equal(ckpt_tree_add(e, "a/b w", w), 0);
		assert_int_equal(ckpt_tree_new(&n, CKPT_TREE_NONE), 0);
		assert_int_equal(ckpt_tree_add(e, "none", n), 0);
		assert_int_equal(ckpt_tree_add(l, NULL, e), 0);
	}
	assert_int_equal(ckpt_tree_add(d, "layers", l), 0);
	assert_int_equal(ckpt_tree_new_int(&x, 7), 0);
	assert_int_equal(ckpt_tree_add(d, "step", x), 0);
	assert_int_equal(ckpt_tree_add(t, "params", d), 0);
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	assert_int_equal(ckpt_json_handler_new(&jh, NULL), 0);
	sa.item = t;
	ckpt_item_args items[6] = {{"a_state", h, &sa}, {"m1", jh, "1"},
				   {"m2", jh, "2"},	{"m3", jh, "3"},
				   {"m4", jh, "4"},	{"z_meta", jh, "{\"k\": {\"j\": 1}}"}};
	assert_int_equal(ckpt_checkpointer_save(root, 1, items, 6, NULL), 0);
	ckpt_handler_free(h);
	ckpt_handler_free(jh);
	ckpt_tree_free(t);
}

#endif
