/*
 * treecmp.h — helpers shared by the step/pytree/checkpointer/interchange
 * unit tests: a tree with every kind of node, deep comparison, temp dirs.
 */
#ifndef CKPT_TEST_TREECMP_H
#define CKPT_TEST_TREECMP_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt.h"

static inline char *test_tmpdir(void)
{
	char tmpl[] = "/tmp/ckpt-unit-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static inline int test_add_array(ckpt_tree *parent, const char *key, ckpt_dtype dt, unsigned nd,
				 const uint64_t *shape, unsigned seed)
{
	uint64_t n = 1;
	size_t sz = ckpt_dtype_size(dt);
	for (unsigned i = 0; i < nd; i++)
		n *= shape[i];
	unsigned char *d = malloc(n * sz + 1);
	if (!d)
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		if (dt == CKPT_DTYPE_FLOAT32) {
			float f = (float)(i * 0.25 + seed);
			memcpy(d + i * sz, &f, sz);
		} else if (dt == CKPT_DTYPE_FLOAT64) {
			double f = (double)i * 0.5 - seed;
			memcpy(d + i * sz, &f, sz);
		} else {
			for (size_t b = 0; b < sz; b++)
				d[i * sz + b] = (unsigned char)(i * 7 + b + seed);
		}
	}
	ckpt_tree *a = NULL;
	int rc = ckpt_tree_new_array(&a, dt, nd, shape, d, CKPT_TREE_OWN);
	return rc ? rc : ckpt_tree_add(parent, key, a);
}

/* {params: {dense: {kernel f32[64,32], bias f32[32]}}, step 1000, lr 0.1, flag True,
 *  name "hello", "a/b": 3, "_x": f64[] , opt: [(i32[5], None), ScaleState(count=i64[], mu={})],
 *  empty: [] } */
static inline ckpt_tree *test_tree_every_kind(int with_string)
{
	ckpt_tree *t = NULL, *params = NULL, *dense = NULL, *opt = NULL, *tup = NULL, *nt = NULL,
		  *x = NULL;
	uint64_t ks[2] = {64, 32}, bs[1] = {32}, is[1] = {5};
	int rc = 0;

	rc |= ckpt_tree_new(&t, CKPT_TREE_DICT);
	rc |= ckpt_tree_new(&params, CKPT_TREE_DICT);
	rc |= ckpt_tree_new(&dense, CKPT_TREE_DICT);
	rc |= test_add_array(dense, "kernel", CKPT_DTYPE_FLOAT32, 2, ks, 1);
	rc |= test_add_array(dense, "bias", CKPT_DTYPE_FLOAT32, 1, bs, 2);
	rc |= ckpt_tree_add(params, "dense", dense);
	rc |= ckpt_tree_add(t, "params", params);
	rc |= ckpt_tree_new_int(&x, 1000);
	rc |= ckpt_tree_add(t, "step", x);
	rc |= ckpt_tree_new_float(&x, 0.1);
	rc |= ckpt_tree_add(t, "lr", x);
	rc |= ckpt_tree_new_bool(&x, 1);
	rc |= ckpt_tree_add(t, "flag", x);
	if (with_string) {
		rc |= ckpt_tree_new_string(&x, "hello", 5);
		rc |= ckpt_tree_add(t, "name", x);
	}
	rc |= ckpt_tree_new_int(&x, 3);
	rc |= ckpt_tree_add(t, "a/b", x);
	rc |= test_add_array(t, "_x", CKPT_DTYPE_FLOAT64, 0, NULL, 3);
	rc |= ckpt_tree_new(&opt, CKPT_TREE_LIST);
	rc |= ckpt_tree_new(&tup, CKPT_TREE_TUPLE);
	rc |= test_add_array(tup, NULL, CKPT_DTYPE_INT32, 1, is, 4);
	rc |= ckpt_tree_new(&x, CKPT_TREE_NONE);
	rc |= ckpt_tree_add(tup, NULL, x);
	rc |= ckpt_tree_add(opt, NULL, tup);
	rc |= ckpt_tree_new_namedtuple(&nt, "ScaleState");
	rc |= test_add_array(nt, "count", CKPT_DTYPE_INT64, 0, NULL, 5);
	rc |= ckpt_tree_new(&x, CKPT_TREE_DICT);
	rc |= ckpt_tree_add(nt, "mu", x);
	rc |= ckpt_tree_add(opt, NULL, nt);
	rc |= ckpt_tree_add(t, "opt", opt);
	rc |= ckpt_tree_new(&x, CKPT_TREE_LIST);
	rc |= ckpt_tree_add(t, "empty", x);
	if (rc) {
		ckpt_tree_free(t);
		return NULL;
	}
	return t;
}

/* 0 if equal (structure, keys, kinds, dtypes, shapes, values); else prints why. */
static inline int test_tree_cmp(const ckpt_tree *a, const ckpt_tree *b, const char *where)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(a);
	if (k != ckpt_tree_get_kind(b)) {
		fprintf(stderr, "%s: kind %d vs %d\n", where, (int)k, (int)ckpt_tree_get_kind(b));
		return 1;
	}
	if (ckpt_tree_count(a) != ckpt_tree_count(b)) {
		fprintf(stderr, "%s: %zu vs %zu children\n", where, ckpt_tree_count(a),
			ckpt_tree_count(b));
		return 1;
	}
	if (k == CKPT_TREE_NAMEDTUPLE &&
	    strcmp(ckpt_tree_namedtuple_type(a), ckpt_tree_namedtuple_type(b))) {
		fprintf(stderr, "%s: namedtuple type differs\n", where);
		return 1;
	}
	for (size_t i = 0; i < ckpt_tree_count(a); i++) {
		const ckpt_tree *ca = ckpt_tree_child(a, i);
		const ckpt_tree *cb = k == CKPT_TREE_DICT ? ckpt_tree_find(b, ckpt_tree_key(ca))
							  : ckpt_tree_child(b, i);
		if (!cb || strcmp(ckpt_tree_key(ca), ckpt_tree_key(cb))) {
			fprintf(stderr, "%s: missing key '%s'\n", where, ckpt_tree_key(ca));
			return 1;
		}
		if (test_tree_cmp(ca, cb, ckpt_tree_key(ca)))
			return 1;
	}
	switch (k) {
	case CKPT_TREE_ARRAY:
		if (ckpt_tree_dtype(a) != ckpt_tree_dtype(b) ||
		    ckpt_tree_ndim(a) != ckpt_tree_ndim(b) ||
		    memcmp(ckpt_tree_shape(a), ckpt_tree_shape(b),
			   ckpt_tree_ndim(a) * sizeof(uint64_t)) ||
		    (ckpt_tree_data(a) && ckpt_tree_data(b) &&
		     memcmp(ckpt_tree_data(a), ckpt_tree_data(b), ckpt_tree_nbytes(a)))) {
			fprintf(stderr, "%s: arrays differ\n", where);
			return 1;
		}
		return 0;
	case CKPT_TREE_INT: return ckpt_tree_int(a) != ckpt_tree_int(b);
	case CKPT_TREE_BOOL: return !ckpt_tree_bool(a) != !ckpt_tree_bool(b);
	case CKPT_TREE_FLOAT: return ckpt_tree_float(a) != ckpt_tree_float(b);
	case CKPT_TREE_STRING: {
		size_t la = 0, lb = 0;
		const char *sa = ckpt_tree_string(a, &la), *sb = ckpt_tree_string(b, &lb);
		return la != lb || memcmp(sa, sb, la);
	}
	default: return 0;
	}
}

#endif
