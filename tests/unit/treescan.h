/*
 * treescan.h — the lazy listing of a compact tree (ckpt_tree_bin_children,
 * ckpt_tree_bin_parent; tree_private.h) against the tree decoded from the
 * same bytes. For tree_bin_test.c and tree_bin_fuzzer.c: a header of static
 * functions, so each test links its own.
 */
#ifndef CKPT_TESTS_TREESCAN_H
#define CKPT_TESTS_TREESCAN_H

#include <string.h>

#include "ckpt/tree.h"
#include "tree_private.h"

struct treescan {
	const unsigned char *b;
	size_t len, at;	    /* the container listed */
	const ckpt_tree *t; /* the same container, decoded */
	size_t n;
	int ok;
};

static int treescan_at(const unsigned char *b, size_t len, const ckpt_tree *t, size_t at);

static int treescan_cb(const struct tree_bin_child *c, void *payload)
{
	struct treescan *s = payload;
	const ckpt_tree *child = ckpt_tree_child(s->t, c->pos);
	ckpt_tree_kind k = ckpt_tree_get_kind(s->t);
	int keyed = k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE;
	size_t parent = 0;

	if (c->pos != s->n++ || !child || ckpt_tree_get_kind(child) != c->kind || c->at <= s->at ||
	    c->at >= s->len || (c->key != NULL) != keyed)
		s->ok = 0;
	else if (keyed && (strlen(ckpt_tree_key(child)) != c->keylen ||
			   memcmp(ckpt_tree_key(child), c->key, c->keylen) != 0))
		s->ok = 0;
	else if (ckpt_tree_bin_parent(&parent, s->b, s->len, c->at) != 0 || parent != s->at)
		s->ok = 0;
	else if (ckpt_tree_is_container(child) && !treescan_at(s->b, s->len, child, c->at))
		s->ok = 0;
	return 0;
}

/* 1 if listing the container at byte `at` of b gives t's children (t = that container decoded). */
static int treescan_at(const unsigned char *b, size_t len, const ckpt_tree *t, size_t at)
{
	struct treescan s = {b, len, at, t, 0, 1};

	return ckpt_tree_bin_children(b, len, at, treescan_cb, &s) == 0 && s.ok &&
	       s.n == ckpt_tree_count(t);
}

/* 1 if the lazy listing of b (an encoded tree) agrees with t = decode(b) everywhere. */
static int treescan_agrees(const unsigned char *b, size_t len, const ckpt_tree *t)
{
	size_t parent = 0;

	if (!ckpt_tree_is_container(t))
		return ckpt_tree_bin_children(b, len, 1, treescan_cb, NULL) == CKPT_EINVAL;
	return treescan_at(b, len, t, 1) &&
	       ckpt_tree_bin_parent(&parent, b, len, 1) == CKPT_ENOTFOUND;
}

#endif
