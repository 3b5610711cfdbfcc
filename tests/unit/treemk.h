/*
 * treemk.h — building trees in cmocka tests (tree_test.c, tree_json_test.c,
 * tree_bin_test.c): each helper asserts that the library call succeeded.
 * Include after <cmocka.h>.
 */
#ifndef CKPT_TESTS_TREEMK_H
#define CKPT_TESTS_TREEMK_H

#include "ckpt/tree.h"

/* child added to parent under key; returns child. */
static inline ckpt_tree *add(ckpt_tree *parent, const char *key, ckpt_tree *child)
{
	assert_int_equal(ckpt_tree_add(parent, key, child), 0);
	return child;
}

static inline ckpt_tree *mk(ckpt_tree_kind k)
{
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new(&t, k), 0);
	return t;
}

static inline ckpt_tree *mk_int(int64_t v)
{
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new_int(&t, v), 0);
	return t;
}

#endif
