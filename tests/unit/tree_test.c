/*
 * tree_test.c — the pytree model, names and scalar text (ckpt/tree.h).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckpt/error.h"
#include "ckpt/tree.h"
#include "tree_private.h"
#include "treemk.h"

static ckpt_tree *mk_arr(unsigned ndim, const uint64_t *shape)
{
	ckpt_tree *t = NULL;

	assert_int_equal(
	    ckpt_tree_new_array(&t, CKPT_DTYPE_FLOAT32, ndim, shape, NULL, CKPT_TREE_COPY), 0);
	return t;
}

/* {"params": {"dense": {"kernel": f32[2,3], "bias": f32[3]}}, "step": 7,
 *  "opt": (["mu"], None), "_x/y": "s"} */
static ckpt_tree *sample(void)
{
	uint64_t s23[] = {2, 3}, s3[] = {3};
	ckpt_tree *root = mk(CKPT_TREE_DICT), *params = mk(CKPT_TREE_DICT);
	ckpt_tree *dense = mk(CKPT_TREE_DICT), *opt = mk(CKPT_TREE_TUPLE), *l = mk(CKPT_TREE_LIST);
	ckpt_tree *s = NULL;

	assert_int_equal(ckpt_tree_add(dense, "kernel", mk_arr(2, s23)), 0);
	assert_int_equal(ckpt_tree_add(dense, "bias", mk_arr(1, s3)), 0);
	assert_int_equal(ckpt_tree_add(params, "dense", dense), 0);
	assert_int_equal(ckpt_tree_add(root, "params", params), 0);
	assert_int_equal(ckpt_tree_add(root, "step", mk_int(7)), 0);
	assert_int_equal(ckpt_tree_new_string(&s, "mu", 2), 0);
	assert_int_equal(ckpt_tree_add(l, NULL, s), 0);
	assert_int_equal(ckpt_tree_add(opt, NULL, l), 0);
	assert_int_equal(ckpt_tree_add(opt, NULL, mk(CKPT_TREE_NONE)), 0);
	assert_int_equal(ckpt_tree_add(root, "opt", opt), 0);
	assert_int_equal(ckpt_tree_new_string(&s, "s", 1), 0);
	assert_int_equal(ckpt_tree_add(root, "_x/y", s), 0);
	return root;
}

static void test_construct(void **state)
{
	ckpt_tree *root = sample(), *k = NULL, *t = NULL;
	char *p = NULL;

	assert_int_equal(ckpt_tree_count(root), 4);
	assert_true(ckpt_tree_is_container(root));
	assert_int_equal(ckpt_tree_lookup(&k, root, "params/dense/kernel"), 0);
	assert_string_equal(ckpt_tree_key(k), "kernel");
	assert_string_equal(ckpt_tree_name(k), "kernel.npy");
	assert_int_equal(ckpt_tree_ndim(k), 2);
	assert_int_equal(ckpt_tree_shape(k)[1], 3);
	assert_int_equal(ckpt_tree_nelems(k), 6);
	assert_int_equal(ckpt_tree_nbytes(k), 24);
	assert_null(ckpt_tree_data(k));
	assert_int_equal(ckpt_tree_int(k), 0); /* wrong kind getter */
	assert_int_equal(ckpt_tree_path(&p, k), 0);
	assert_string_equal(p, "params/dense/kernel");
	free(p);
	/* ".npy" optional for arrays, exact names by find_name */
	assert_int_equal(ckpt_tree_lookup(&t, root, "params/dense/kernel.npy"), 0);
	assert_ptr_equal(t, k);
	assert_ptr_equal(ckpt_tree_find_name(ckpt_tree_parent(k), "kernel.npy"), k);
	assert_null(ckpt_tree_find_name(ckpt_tree_parent(k), "kernel"));
	assert_int_equal(ckpt_tree_lookup(&t, root, "params/nope/kernel"), CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "nope"));
	assert_int_equal(ckpt_tree_lookup(&t, root, ""), 0);
	assert_ptr_equal(t, root);
	/* list/tuple children keyed by index */
	assert_int_equal(ckpt_tree_lookup(&t, root, "opt/0/0"), 0);
	assert_int_equal(ckpt_tree_get_kind(t), CKPT_TREE_STRING);
	assert_string_equal(ckpt_tree_string(t, NULL), "mu");
	assert_int_equal(ckpt_tree_lookup(&t, root, "opt/1"), 0);
	assert_int_equal(ckpt_tree_get_kind(t), CKPT_TREE_NONE);
	assert_int_equal(ckpt_tree_lookup(&t, root, "opt/01"), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_tree_lookup(&t, root, "opt/2"), CKPT_ENOTFOUND);
	/* escaped key */
	t = ckpt_tree_find(root, "_x/y");
	assert_non_null(t);
	assert_string_equal(ckpt_tree_name(t), "%5Fx%2Fy");
	assert_ptr_equal(ckpt_tree_find_name(root, "%5Fx%2Fy"), t);
	assert_int_equal(ckpt_tree_path(&p, t), 0);
	assert_string_equal(p, "%5Fx%2Fy");
	free(p);
	/* errors */
	assert_int_equal(ckpt_tree_add(root, "step", mk_int(1)), CKPT_EEXISTS);
	assert_int_equal(ckpt_tree_add(root, NULL, mk_int(1)), CKPT_EINVAL);
	assert_int_equal(ckpt_tree_add(ckpt_tree_find(root, "opt"), "k", mk_int(1)), CKPT_EINVAL);
	assert_int_equal(ckpt_tree_add(ckpt_tree_find(root, "step"), "k", mk_int(1)), CKPT_EINVAL);
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_INT), CKPT_EINVAL);
	/* no cycles; a child of another tree is not taken */
	assert_int_equal(ckpt_tree_add(ckpt_tree_find(root, "params"), "loop", root), CKPT_EINVAL);
	assert_int_equal(ckpt_tree_add(root, "again", ckpt_tree_find(root, "opt")), CKPT_EINVAL);
	assert_int_equal(ckpt_tree_count(root), 4);
	ckpt_tree_free(root);
	ckpt_tree_free(NULL);
}

static void test_ownership(void **state)
{
	uint64_t shape[] = {4};
	float *own = malloc(4 * sizeof(float)), borrow[4] = {1, 2, 3, 4}, copy[4] = {5, 6, 7, 8};
	ckpt_tree *a = NULL, *b = NULL, *c = NULL, *cl = NULL, *d = mk(CKPT_TREE_DICT);
	uint64_t huge[] = {UINT64_MAX / 2, 3};
	void *lost = malloc(16);

	assert_non_null(own);
	memcpy(own, copy, sizeof(copy));
	assert_int_equal(ckpt_tree_new_array(&a, CKPT_DTYPE_FLOAT32, 1, shape, own, CKPT_TREE_OWN),
			 0);
	assert_ptr_equal(ckpt_tree_data(a), own);
	assert_int_equal(
	    ckpt_tree_new_array(&b, CKPT_DTYPE_FLOAT32, 1, shape, borrow, CKPT_TREE_BORROW), 0);
	assert_ptr_equal(ckpt_tree_data(b), borrow);
	assert_int_equal(
	    ckpt_tree_new_array(&c, CKPT_DTYPE_FLOAT32, 1, shape, copy, CKPT_TREE_COPY), 0);
	assert_ptr_not_equal(ckpt_tree_data(c), copy);
	copy[0] = 99;
	assert_true(((const float *)ckpt_tree_data(c))[0] == 5);
	assert_int_equal(ckpt_tree_add(d, "a", a), 0);
	assert_int_equal(ckpt_tree_add(d, "b", b), 0);
	assert_int_equal(ckpt_tree_add(d, "c", c), 0);
	assert_int_equal(ckpt_tree_set_custom_metadata(c, "{\"unit\": \"m\"}"), 0);
	assert_int_equal(ckpt_tree_set_custom_metadata(c, "{bad"), CKPT_EINVAL);
	assert_string_equal(ckpt_tree_custom_metadata(c), "{\"unit\": \"m\"}");
	assert_int_equal(ckpt_tree_clone(&cl, d), 0);
	assert_ptr_not_equal(ckpt_tree_data(ckpt_tree_find(cl, "b")), borrow);
	assert_memory_equal(ckpt_tree_data(ckpt_tree_find(cl, "b")), borrow, sizeof(borrow));
	assert_string_equal(ckpt_tree_custom_metadata(ckpt_tree_find(cl, "c")),
			    "{\"unit\": \"m\"}");
	ckpt_tree_free(d); /* frees own and c's copy; borrow stays ours */
	assert_true(borrow[3] == 4);
	ckpt_tree_free(cl);
	/* overflow and bad args; an OWNed pointer is freed on failure (ASan) */
	assert_int_equal(ckpt_tree_new_array(&a, CKPT_DTYPE_FLOAT64, 2, huge, lost, CKPT_TREE_OWN),
			 CKPT_EINVAL);
	assert_null(a);
	assert_int_equal(ckpt_tree_new_array(&a, CKPT_DTYPE_INVALID, 1, shape, NULL, 0),
			 CKPT_EINVAL);
	assert_int_equal(
	    ckpt_tree_new_array(&a, CKPT_DTYPE_INT8, CKPT_TREE_MAX_NDIM + 1, shape, NULL, 0),
	    CKPT_EINVAL);
	/* 0-d array */
	assert_int_equal(ckpt_tree_new_array(&a, CKPT_DTYPE_INT64, 0, NULL, NULL, 0), 0);
	assert_int_equal(ckpt_tree_nelems(a), 1);
	assert_int_equal(ckpt_tree_nbytes(a), 8);
	assert_non_null(ckpt_tree_shape(a));
	ckpt_tree_free(a);
}

static void test_remove_and_renumber(void **state)
{
	ckpt_tree *l = mk(CKPT_TREE_LIST), *r, *d = mk(CKPT_TREE_DICT);
	char key[16];

	for (int i = 0; i < 5; i++)
		assert_int_equal(ckpt_tree_add(l, NULL, mk_int(i)), 0);
	r = ckpt_tree_remove(l, 1);
	assert_non_null(r);
	assert_null(ckpt_tree_parent(r));
	assert_string_equal(ckpt_tree_key(r), "");
	assert_int_equal(ckpt_tree_int(r), 1);
	ckpt_tree_free(r);
	assert_int_equal(ckpt_tree_count(l), 4);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(l, "1")), 2);
	assert_string_equal(ckpt_tree_key(ckpt_tree_child(l, 3)), "3");
	assert_null(ckpt_tree_remove(l, 4));
	assert_true(ckpt_tree_check(l));
	/* dict with an index: remove keeps finds right */
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(ckpt_tree_add(d, key, mk_int(i)), 0);
	}
	ckpt_tree_free(ckpt_tree_remove(d, 0));
	ckpt_tree_free(ckpt_tree_remove(d, 10));
	assert_null(ckpt_tree_find(d, "k0"));
	assert_null(ckpt_tree_find(d, "k11"));
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(d, "k39")), 39);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find_name(d, "k12")), 12);
	assert_int_equal(ckpt_tree_add(d, "k0", mk_int(100)), 0);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(d, "k0")), 100);
	assert_true(ckpt_tree_check(d));
	ckpt_tree_free(l);
	ckpt_tree_free(d);
}

static void test_find_many(void **state)
{
	enum { N = 20000 };
	ckpt_tree *d = mk(CKPT_TREE_DICT), *t;
	char key[32], name[40];
	uint64_t s1[] = {1};

	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), i % 3 ? "layer_%d" : "_p%d", i);
		assert_int_equal(ckpt_tree_add(d, key, i % 2 ? mk_int(i) : mk_arr(1, s1)), 0);
	}
	assert_int_equal(ckpt_tree_count(d), N);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), i % 3 ? "layer_%d" : "_p%d", i);
		t = ckpt_tree_find(d, key);
		assert_non_null(t);
		assert_ptr_equal(ckpt_tree_child(d, (size_t)i), t);
		snprintf(name, sizeof(name), "%s%s", ckpt_tree_name(t), "");
		assert_ptr_equal(ckpt_tree_find_name(d, name), t);
		assert_int_equal(ckpt_tree_lookup(&t, d, name), 0);
	}
	assert_null(ckpt_tree_find(d, "layer_20000"));
	assert_null(ckpt_tree_find_name(d, "_p0.npy")); /* unescaped name does not exist */
	assert_non_null(ckpt_tree_find_name(d, "%5Fp0.npy"));
	assert_null(ckpt_tree_find_name(d, "%5Fp0")); /* array without .npy: not its name */
	assert_int_equal(ckpt_tree_lookup(&t, d, "%5Fp0"), 0); /* but lookup accepts it */
	assert_int_equal(ckpt_tree_add(d, "layer_7", mk_int(0)), CKPT_EEXISTS);
	assert_true(ckpt_tree_check(d));
	ckpt_tree_free(d);
}

struct visit {
	char log[512];
};

static int visit_cb(ckpt_tree *node, const char *path, void *payload)
{
	struct visit *v = payload;
	size_t n = strlen(v->log);

	snprintf(v->log + n, sizeof(v->log) - n, "[%s]", path);
	return strcmp(path, "opt/0") == 0 && ckpt_tree_count(node) == 99 ? 42 : 0;
}

static int stop_cb(ckpt_tree *node, const char *path, void *payload)
{
	(*(int *)payload)++;
	return strcmp(path, "step") == 0 ? 42 : 0;
}

static void test_walk(void **state)
{
	ckpt_tree *root = sample(), *sub;
	struct visit v = {{0}};
	int n = 0;

	assert_int_equal(ckpt_tree_walk(root, visit_cb, &v), 0);
	assert_string_equal(v.log,
			    "[][params][params/dense][params/dense/kernel]"
			    "[params/dense/bias][step][opt][opt/0][opt/0/0][opt/1][%5Fx%2Fy]");
	assert_int_equal(ckpt_tree_walk(root, stop_cb, &n), 42);
	assert_int_equal(n, 6);
	/* a subtree walks with paths from the root */
	v.log[0] = '\0';
	sub = ckpt_tree_find(root, "opt");
	assert_int_equal(ckpt_tree_walk(sub, visit_cb, &v), 0);
	assert_string_equal(v.log, "[opt][opt/0][opt/0/0][opt/1]");
	ckpt_tree_free(root);
}

/* ---- names --------------------------------------------------------------- */

static void check_roundtrip(const char *key, int is_array)
{
	char *name = NULL, *back = NULL;

	assert_int_equal(ckpt_key_escape(&name, key, is_array), 0);
	assert_true(name[0] != '\0' && name[0] != '_' && name[0] != '.');
	assert_null(strchr(name, '/'));
	if (!is_array)
		assert_false(strlen(name) >= 4 && strcmp(name + strlen(name) - 4, ".npy") == 0);
	assert_int_equal(ckpt_key_unescape(&back, name, is_array), 0);
	assert_string_equal(back, key);
	free(name);
	free(back);
}

static void check_escape(const char *key, int is_array, const char *want)
{
	char *name = NULL;

	assert_int_equal(ckpt_key_escape(&name, key, is_array), 0);
	assert_string_equal(name, want);
	free(name);
	check_roundtrip(key, is_array);
}

static void test_escape(void **state)
{
	static const char *bad[] = {"%",  "%2", "%2f", "%00x", "a%00", "%61",  "_x",
				    ".x", ".",	"..",  "",     "a%zz", "x.npy"};
	char *out = NULL, key[24];

	check_escape("params", 0, "params");
	check_escape("kernel", 1, "kernel");
	check_escape("0", 0, "0");
	check_escape("layer.1", 0, "layer.1");
	check_escape("héllo wörld", 0, "héllo wörld");
	check_escape("", 0, "%00");
	check_escape(".", 0, "%2E");
	check_escape("..", 0, "%2E.");
	check_escape("a/b", 0, "a%2Fb");
	check_escape("50%", 0, "50%25");
	check_escape("_METADATA", 0, "%5FMETADATA");
	check_escape("a_b", 0, "a_b");
	check_escape("x.npy", 0, "x%2Enpy");
	check_escape("x.npy", 1, "x.npy");
	check_escape(".npy", 0, "%2Enpy");
	check_escape("tab\there", 0, "tab%09here");
	check_escape("%00", 0, "%2500");
	/* non-canonical or malformed names are rejected */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ckpt_key_unescape(&out, bad[i], 0), CKPT_EINVAL);
		assert_null(out);
	}
	/* random byte strings */
	srand(12345);
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rand() % 20);

		for (size_t j = 0; j < n; j++) {
			int c = rand() % 255 + 1;

			/* bias towards the interesting bytes */
			if (rand() % 3 == 0)
				c = "%/_.npy"[rand() % 7];
			key[j] = (char)c;
		}
		key[n] = '\0';
		check_roundtrip(key, i & 1);
	}
	/* distinct keys give distinct names (injective on a tricky set) */
	{
		static const char *keys[] = {"",    "%00",   "%",	"%25", ".",  "%2E", "_",
					     "%5F", "a.npy", "a%2Enpy", "a",   "a/", "a%2F"};
		char *names[13];

		for (size_t i = 0; i < 13; i++)
			assert_int_equal(ckpt_key_escape(&names[i], keys[i], 0), 0);
		for (size_t i = 0; i < 13; i++)
			for (size_t j = i + 1; j < 13; j++)
				assert_string_not_equal(names[i], names[j]);
		for (size_t i = 0; i < 13; i++)
			free(names[i]);
	}
}

/* ---- scalars ------------------------------------------------------------- */

static void check_float(double v, const char *want)
{
	char buf[32];
	ckpt_tree *t = NULL, *back = NULL;

	assert_int_equal(ckpt_tree_new_float(&t, v), 0);
	assert_int_equal(ckpt_scalar_format(buf, sizeof(buf), t), (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(ckpt_scalar_parse(&back, buf, strlen(buf), CKPT_TREE_FLOAT), 0);
	if (isnan(v))
		assert_true(isnan(ckpt_tree_float(back)));
	else
		assert_memory_equal(&v, &(double){ckpt_tree_float(back)}, sizeof(v));
	ckpt_tree_free(t);
	ckpt_tree_free(back);
}

static void test_scalar_format(void **state)
{
	char buf[32];
	ckpt_tree *t = NULL;

	check_float(0.1, "0.1");
	check_float(1e20, "1e+20");
	check_float(1e-5, "1e-05");
	check_float(1e-4, "0.0001");
	check_float(3.0, "3.0");
	check_float(-0.0, "-0.0");
	check_float(0.0, "0.0");
	check_float(INFINITY, "inf");
	check_float(-INFINITY, "-inf");
	check_float(NAN, "nan");
	check_float(1e16, "1e+16");
	check_float(1e15, "1000000000000000.0");
	check_float(123.456, "123.456");
	check_float(1.0 / 3, "0.3333333333333333");
	check_float(2.0 / 3, "0.6666666666666666");
	check_float(5e-324, "5e-324");
	check_float(1.7976931348623157e308, "1.7976931348623157e+308");
	check_float(-1.5e-7, "-1.5e-07");
	check_float(123456789012345678.0, "1.2345678901234568e+17");
	assert_int_equal(ckpt_tree_new_int(&t, INT64_MAX), 0);
	assert_int_equal(ckpt_scalar_format(buf, sizeof(buf), t), 19);
	assert_string_equal(buf, "9223372036854775807");
	assert_int_equal(ckpt_scalar_format(buf, 5, t), CKPT_EINVAL);
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_new_bool(&t, 7), 0);
	assert_int_equal(ckpt_scalar_format(buf, sizeof(buf), t), 4);
	assert_string_equal(buf, "True");
	ckpt_tree_free(t);
	assert_int_equal(ckpt_tree_new_string(&t, "x", 1), 0);
	assert_int_equal(ckpt_scalar_format(buf, sizeof(buf), t), CKPT_EINVAL);
	ckpt_tree_free(t);
	/* random doubles round-trip through the shortest repr */
	srand(7);
	for (int i = 0; i < 20000; i++) {
		uint64_t bits =
		    ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
		double v, w;
		ckpt_tree *back = NULL;

		memcpy(&v, &bits, sizeof(v));
		if (isnan(v))
			continue;
		assert_int_equal(ckpt_tree_new_float(&t, v), 0);
		assert_true(ckpt_scalar_format(buf, sizeof(buf), t) > 0);
		assert_int_equal(ckpt_scalar_parse(&back, buf, strlen(buf), 0), 0);
		assert_int_equal(ckpt_tree_get_kind(back), CKPT_TREE_FLOAT); /* never looks int */
		w = ckpt_tree_float(back);
		assert_memory_equal(&v, &w, sizeof(v));
		ckpt_tree_free(t);
		ckpt_tree_free(back);
	}
}

static void check_parse(const char *text, ckpt_tree_kind force, int rc, ckpt_tree_kind kind,
			const char *formatted)
{
	ckpt_tree *t = NULL;
	char buf[32];

	assert_int_equal(ckpt_scalar_parse(&t, text, strlen(text), force), rc);
	if (rc < 0) {
		assert_null(t);
		return;
	}
	assert_int_equal(ckpt_tree_get_kind(t), kind);
	assert_true(ckpt_scalar_format(buf, sizeof(buf), t) > 0);
	assert_string_equal(buf, formatted);
	ckpt_tree_free(t);
}

static void test_scalar_parse(void **state)
{
	check_parse("42", 0, 0, CKPT_TREE_INT, "42");
	check_parse("  -7\n", 0, 0, CKPT_TREE_INT, "-7");
	check_parse("+007", 0, 0, CKPT_TREE_INT, "7");
	check_parse("9223372036854775807", 0, 0, CKPT_TREE_INT, "9223372036854775807");
	check_parse("-9223372036854775808", 0, 0, CKPT_TREE_INT, "-9223372036854775808");
	check_parse("9223372036854775808", 0, CKPT_EINVAL, 0, NULL);
	check_parse("9223372036854775808", CKPT_TREE_INT, CKPT_EINVAL, 0, NULL);
	check_parse("9223372036854775808", CKPT_TREE_FLOAT, 0, CKPT_TREE_FLOAT,
		    "9.223372036854776e+18");
	check_parse("0.1", 0, 0, CKPT_TREE_FLOAT, "0.1");
	check_parse("1e3", 0, 0, CKPT_TREE_FLOAT, "1000.0");
	check_parse("1E-5", 0, 0, CKPT_TREE_FLOAT, "1e-05");
	check_parse(".5", 0, 0, CKPT_TREE_FLOAT, "0.5");
	check_parse("5.", 0, 0, CKPT_TREE_FLOAT, "5.0");
	check_parse("3", CKPT_TREE_FLOAT, 0, CKPT_TREE_FLOAT, "3.0");
	check_parse("inf", 0, 0, CKPT_TREE_FLOAT, "inf");
	check_parse("-Infinity", 0, 0, CKPT_TREE_FLOAT, "-inf");
	check_parse("NaN", 0, 0, CKPT_TREE_FLOAT, "nan");
	check_parse("1e999", 0, 0, CKPT_TREE_FLOAT, "inf");
	check_parse("True", 0, 0, CKPT_TREE_BOOL, "True");
	check_parse("false", 0, 0, CKPT_TREE_BOOL, "False");
	check_parse(" True ", CKPT_TREE_BOOL, 0, CKPT_TREE_BOOL, "True");
	check_parse("1_000", 0, CKPT_EINVAL, 0, NULL);
	check_parse("0x10", 0, CKPT_EINVAL, 0, NULL);
	check_parse("1e", 0, CKPT_EINVAL, 0, NULL);
	check_parse(".", 0, CKPT_EINVAL, 0, NULL);
	check_parse("-", 0, CKPT_EINVAL, 0, NULL);
	check_parse("", 0, CKPT_EINVAL, 0, NULL);
	check_parse("nan(1)", 0, CKPT_EINVAL, 0, NULL);
	check_parse("TRUE", 0, CKPT_EINVAL, 0, NULL);
	check_parse("hello", 0, CKPT_EINVAL, 0, NULL);
	check_parse("1 2", 0, CKPT_EINVAL, 0, NULL);
	check_parse("1.5", CKPT_TREE_INT, CKPT_EINVAL, 0, NULL);
	check_parse("1", CKPT_TREE_BOOL, CKPT_EINVAL, 0, NULL);
	check_parse("1", CKPT_TREE_STRING, CKPT_EINVAL, 0, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_construct),
	    cmocka_unit_test(test_ownership),
	    cmocka_unit_test(test_remove_and_renumber),
	    cmocka_unit_test(test_find_many),
	    cmocka_unit_test(test_walk),
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_scalar_format),
	    cmocka_unit_test(test_scalar_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
