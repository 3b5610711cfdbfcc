/*
 * pytree_args_test.c — what Orbax's PyTree handler reference promises of its
 * args: custom metadata kept (root, containers, leaves, None, item level),
 * restore shaped by the target (structure, scalar kinds), transforms
 * (exact and regex renames, default_to_original), computed leaves (value
 * transforms), old args versions,
 * options that are refused rather than ignored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ckpt/sys/error.h"
#include "unit/treecmp.h"
#include "fsutil.h"

struct fx {
	char *root;
	char dir[512];
	ckpt_handler *h;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || !(f->root = test_tmpdir()) || ckpt_pytree_handler_new(&f->h))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ckpt_rmtree(f->root);
	free(f->root);
	ckpt_handler_free(f->h);
	free(f);
	return 0;
}

static int save(struct fx *f, uint64_t step, const ckpt_pytree_save_args *sa)
{
	ckpt_item_args it = {"state", f->h, sa};
	int rc = ckpt_checkpointer_save(f->root, step, &it, 1, NULL);

	snprintf(f->dir, sizeof(f->dir), "%s/%llu", f->root, (unsigned long long)step);
	return rc;
}

static ckpt_tree *restore(struct fx *f, const ckpt_pytree_restore_args *a, int *rc)
{
	ckpt_step *s = NULL;
	void *out = NULL;

	*rc = ckpt_step_open(&s, f->dir, NULL);
	if (*rc == 0)
		*rc = ckpt_handler_restore(&out, f->h, s, "state", a);
	ckpt_step_free(s);
	return out;
}

static ckpt_tree *metadata(struct fx *f)
{
	ckpt_step *s = NULL;
	void *out = NULL;

	assert_int_equal(ckpt_step_open(&s, f->dir, NULL), 0);
	assert_int_equal(ckpt_handler_metadata(&out, f->h, s, "state"), 0);
	ckpt_step_free(s);
	return out;
}

static const char *cm_at(const ckpt_tree *t, const char *path)
{
	ckpt_tree *n = NULL;

	assert_int_equal(ckpt_tree_lookup(&n, t, path), 0);
	return ckpt_tree_custom_metadata(n);
}

/* 1. Custom metadata set on the tree survives save, metadata and restore. */
static void test_custom_metadata_kept(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_tree *t = test_tree_every_kind(1), *x = NULL;
	int rc;

	assert_non_null(t);
	assert_int_equal(ckpt_tree_set_custom_metadata(t, "{\"model\": \"mlp\"}"), 0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "params"), 0);
	assert_int_equal(ckpt_tree_set_custom_metadata(x, "{\"frozen\": true}"), 0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "params/dense/kernel"), 0);
	assert_int_equal(ckpt_tree_set_custom_metadata(x, "{\"init\": \"lecun\"}"), 0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "opt/0/1"), 0); /* None */
	assert_int_equal(ckpt_tree_set_custom_metadata(x, "[1, 2]"), 0);
	assert_int_equal(ckpt_tree_lookup(&x, t, "empty"), 0); /* empty list */
	assert_int_equal(ckpt_tree_set_custom_metadata(x, "\"e\""), 0);
	sa.item = t;
	assert_int_equal(save(f, 1, &sa), 0);

	ckpt_tree *m = metadata(f);
	assert_string_equal(ckpt_tree_custom_metadata(m), "{\"model\":\"mlp\"}");
	assert_string_equal(cm_at(m, "params"), "{\"frozen\":true}");
	assert_string_equal(cm_at(m, "params/dense/kernel"), "{\"init\":\"lecun\"}");
	assert_string_equal(cm_at(m, "opt/0/1"), "[1,2]");
	assert_string_equal(cm_at(m, "empty"), "\"e\"");
	assert_null(cm_at(m, "params/dense"));
	ckpt_tree_free(m);

	ckpt_tree *r = restore(f, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(test_tree_cmp(t, r, "root"), 0);
	assert_non_null(ckpt_tree_custom_metadata(r));
	assert_non_null(strstr(cm_at(r, "params"), "frozen"));
	assert_non_null(strstr(cm_at(r, "params/dense/kernel"), "lecun"));

	/* what a restore gives back saves again with the same metadata (ckpt restore -> save) */
	sa.item = r;
	assert_int_equal(save(f, 2, &sa), 0);
	m = metadata(f);
	assert_string_equal(ckpt_tree_custom_metadata(m), "{\"model\":\"mlp\"}");
	assert_string_equal(cm_at(m, "params"), "{\"frozen\":true}");
	assert_string_equal(cm_at(m, "empty"), "\"e\"");
	ckpt_tree_free(m);
	ckpt_tree_free(r);
	ckpt_tree_free(t);
}

/* 1. PyTreeSaveArgs.custom_metadata: the item's, replacing the root's. */
static void test_item_custom_metadata(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_tree *t = test_tree_every_kind(1);
	int rc;

	assert_int_equal(ckpt_tree_set_custom_metadata(t, "{\"root\": 1}"), 0);
	sa.item = t;
	sa.custom_metadata = "{\"run\": \"r7\", \"lr\": 0.5}";
	assert_int_equal(save(f, 1, &sa), 0);
	ckpt_tree *m = metadata(f);
	assert_string_equal(ckpt_tree_custom_metadata(m), "{\"run\":\"r7\",\"lr\":0.5}");
	ckpt_tree_free(m);
	/* _METADATA holds it at the top level, as Orbax writes it */
	ckpt_step *s = NULL;
	void *raw = NULL;
	size_t len = 0;
	assert_int_equal(ckpt_step_open(&s, f->dir, NULL), 0);
	assert_int_equal(ckpt_store_get(&raw, &len, ckpt_step_store(s), "state/_METADATA", 15), 0);
	char *txt = strndup(raw, len);
	assert_non_null(strstr(txt, "\"custom_metadata\":{\"run\":\"r7\""));
	free(txt);
	free(raw);
	ckpt_step_free(s);

	/* not JSON: refused, no step */
	sa.custom_metadata = "{run";
	assert_int_equal(save(f, 2, &sa), CKPT_EINVAL);
	assert_int_equal(ckpt_step_open(&s, f->dir, NULL), CKPT_ENOTFOUND);

	/* a version 1 struct (before custom_metadata) is accepted, that member unread */
	struct v1 {
		unsigned version;
		const ckpt_tree *item;
		void *leaf_args, *payload;
		int use_compression;
		uint64_t target_data_file_size, save_concurrent_bytes;
	} old = {1, t, NULL, NULL, 1, 0, 0};
	assert_int_equal(sizeof(old), offsetof(ckpt_pytree_save_args, custom_metadata));
	ckpt_item_args it = {"state", f->h, &old};
	assert_int_equal(ckpt_checkpointer_save(f->root, 3, &it, 1, NULL), 0);
	snprintf(f->dir, sizeof(f->dir), "%s/3", f->root);
	m = metadata(f);
	assert_string_equal(ckpt_tree_custom_metadata(m), "{\"root\":1}");
	ckpt_tree_free(m);
	ckpt_tree *r = restore(f, NULL, &rc);
	assert_int_equal(rc, 0);
	ckpt_tree_free(r);
	ckpt_tree_free(t);
}

/* 4. Options that used to be accepted and ignored. */
static void test_options_not_ignored(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_pytree_restore_args zero;
	ckpt_tree *t = test_tree_every_kind(1);
	int rc;

	sa.item = t;
	sa.target_data_file_size = 4096; /* the writer's is the default */
	assert_int_equal(save(f, 1, &sa), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "target_data_file_size"));
	sa.target_data_file_size = CKPT_DEFAULT_TARGET_DATA_FILE_SIZE; /* agrees: fine */
	assert_int_equal(save(f, 1, &sa), 0);

	/* a zeroed restore-args struct no longer means "strict 0": it is refused */
	memset(&zero, 0, sizeof(zero));
	assert_null(restore(f, &zero, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "_INIT"));
	ckpt_pytree_restore_args a = CKPT_PYTREE_RESTORE_ARGS_INIT;
	assert_int_equal(a.strict, 1);
	assert_int_equal(a.transforms_default_to_original, 1);
	ckpt_tree_free(t);
}

/* {"w": f32[4], "n": 3 (int), "lr": 0.5 (float), "pair": [1, 2.5], "flag": True,
 *  "meta": {"a": 1, "b": 2}} */
static ckpt_tree *small_tree(void)
{
	ckpt_tree *t = NULL, *x = NULL, *l = NULL, *d = NULL;
	uint64_t sh[1] = {4};
	int rc = ckpt_tree_new(&t, CKPT_TREE_DICT);

	rc |= test_add_array(t, "w", CKPT_DTYPE_FLOAT32, 1, sh, 1);
	rc |= ckpt_tree_new_int(&x, 3) | ckpt_tree_add(t, "n", x);
	rc |= ckpt_tree_new_float(&x, 0.5) | ckpt_tree_add(t, "lr", x);
	rc |= ckpt_tree_new(&l, CKPT_TREE_LIST);
	rc |= ckpt_tree_new_int(&x, 1) | ckpt_tree_add(l, NULL, x);
	rc |= ckpt_tree_new_float(&x, 2.5) | ckpt_tree_add(l, NULL, x);
	rc |= ckpt_tree_add(t, "pair", l);
	rc |= ckpt_tree_new_bool(&x, 1) | ckpt_tree_add(t, "flag", x);
	rc |= ckpt_tree_new(&d, CKPT_TREE_DICT);
	rc |= ckpt_tree_new_int(&x, 1) | ckpt_tree_add(d, "a", x);
	rc |= ckpt_tree_new_int(&x, 2) | ckpt_tree_add(d, "b", x);
	rc |= ckpt_tree_add(t, "meta", d);
	return rc ? NULL : t;
}

/* 2. The result has the target's structure and scalar kinds. */
static void test_restore_follows_target(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
	ckpt_tree *t = small_tree(), *tgt = NULL, *x = NULL, *y = NULL;
	uint64_t sh[1] = {4};
	int rc;

	sa.item = t;
	assert_int_equal(save(f, 1, &sa), 0);
	/* target: a tuple for the list, a namedtuple for meta with its keys reversed,
	 * n as a float, lr as... a float too, flag as an int, keys in another order */
	assert_int_equal(ckpt_tree_new(&tgt, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new_int(&x, 0), 0);
	assert_int_equal(ckpt_tree_add(tgt, "flag", x), 0);
	assert_int_equal(ckpt_tree_new_namedtuple(&y, "Meta"), 0);
	assert_int_equal(ckpt_tree_new_int(&x, 0) | ckpt_tree_add(y, "b", x), 0);
	assert_int_equal(ckpt_tree_new_int(&x, 0) | ckpt_tree_add(y, "a", x), 0);
	assert_int_equal(ckpt_tree_add(tgt, "meta", y), 0);
	assert_int_equal(ckpt_tree_new_float(&x, 0) | ckpt_tree_add(tgt, "n", x), 0);
	assert_int_equal(ckpt_tree_new_float(&x, 0) | ckpt_tree_add(tgt, "lr", x), 0);
	assert_int_equal(ckpt_tree_new(&y, CKPT_TREE_TUPLE), 0);
	assert_int_equal(ckpt_tree_new_float(&x, 0) | ckpt_tree_add(y, NULL, x), 0);
	assert_int_equal(ckpt_tree_new_float(&x, 0) | ckpt_tree_add(y, NULL, x), 0);
	assert_int_equal(ckpt_tree_add(tgt, "pair", y), 0);
	assert_int_equal(ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT64, 1, sh, NULL, 0), 0);
	assert_int_equal(ckpt_tree_add(tgt, "w", x), 0);
	ra.item = tgt;
	ckpt_tree *r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	/* key order and kinds are the target's */
	assert_string_equal(ckpt_tree_key(ckpt_tree_child(r, 0)), "flag");
	assert_string_equal(ckpt_tree_key(ckpt_tree_child(r, 4)), "pair");
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(r, "flag")), CKPT_TREE_INT);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(r, "flag")), 1);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(r, "n")), CKPT_TREE_FLOAT);
	assert_true(ckpt_tree_float(ckpt_tree_find(r, "n")) == 3.0);
	x = ckpt_tree_find(r, "meta");
	assert_int_equal(ckpt_tree_get_kind(x), CKPT_TREE_NAMEDTUPLE);
	assert_string_equal(ckpt_tree_namedtuple_type(x), "Meta");
	assert_string_equal(ckpt_tree_key(ckpt_tree_child(x, 0)), "b");
	assert_int_equal(ckpt_tree_int(ckpt_tree_child(x, 0)), 2);
	x = ckpt_tree_find(r, "pair");
	assert_int_equal(ckpt_tree_get_kind(x), CKPT_TREE_TUPLE);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_child(x, 0)), CKPT_TREE_FLOAT);
	assert_true(ckpt_tree_float(ckpt_tree_child(x, 1)) == 2.5);
	x = ckpt_tree_find(r, "w");
	assert_int_equal(ckpt_tree_dtype(x), CKPT_DTYPE_FLOAT64);
	assert_true(((const double *)ckpt_tree_data(x))[1] == 1.25);
	ckpt_tree_free(r);

	/* a float that is not integral into an int target: refused, naming the leaf */
	assert_int_equal(ckpt_tree_lookup(&x, tgt, "pair"), 0);
	y = ckpt_tree_remove(x, 1);
	ckpt_tree_free(y);
	assert_int_equal(ckpt_tree_new_int(&y, 0) | ckpt_tree_add(x, NULL, y), 0);
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "pair/1"));

	/* partial restore into a target with a subset: only that, in its shape */
	ckpt_tree_free(tgt);
	assert_int_equal(ckpt_tree_new(&tgt, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new(&y, CKPT_TREE_TUPLE), 0);
	assert_int_equal(ckpt_tree_new_float(&x, 0) | ckpt_tree_add(y, NULL, x), 0);
	assert_int_equal(ckpt_tree_add(tgt, "pair", y), 0);
	ra.item = tgt;
	ra.partial_restore = 1;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_count(r), 1);
	x = ckpt_tree_find(r, "pair");
	assert_int_equal(ckpt_tree_get_kind(x), CKPT_TREE_TUPLE);
	assert_int_equal(ckpt_tree_count(x), 1);
	assert_true(ckpt_tree_float(ckpt_tree_child(x, 0)) == 1.0);
	ckpt_tree_free(r);
	ckpt_tree_free(tgt);
	ckpt_tree_free(t);
}

/* A model saved as {layers_0: {w, b}, layers_1: {w, b}, head: {kernel}, step} */
static ckpt_tree *old_model(void)
{
	ckpt_tree *t = NULL, *l = NULL, *x = NULL;
	uint64_t sh[1] = {3};
	int rc = ckpt_tree_new(&t, CKPT_TREE_DICT);

	for (int i = 0; i < 2; i++) {
		char k[16];
		snprintf(k, sizeof(k), "layers_%d", i);
		rc |= ckpt_tree_new(&l, CKPT_TREE_DICT);
		rc |= test_add_array(l, "w", CKPT_DTYPE_FLOAT32, 1, sh, (unsigned)(10 * i + 1));
		rc |= test_add_array(l, "b", CKPT_DTYPE_FLOAT32, 1, sh, (unsigned)(10 * i + 2));
		rc |= ckpt_tree_add(t, k, l);
	}
	rc |= ckpt_tree_new(&l, CKPT_TREE_DICT);
	rc |= test_add_array(l, "kernel", CKPT_DTYPE_FLOAT32, 1, sh, 7);
	rc |= ckpt_tree_add(t, "head", l);
	rc |= ckpt_tree_new_int(&x, 42) | ckpt_tree_add(t, "step", x);
	return rc ? NULL : t;
}

static void assert_same_array(const ckpt_tree *a, const char *pa, const ckpt_tree *b,
			      const char *pb)
{
	ckpt_tree *x = NULL, *y = NULL;

	assert_int_equal(ckpt_tree_lookup(&x, a, pa), 0);
	assert_int_equal(ckpt_tree_lookup(&y, b, pb), 0);
	assert_int_equal(ckpt_tree_nbytes(x), ckpt_tree_nbytes(y));
	assert_memory_equal(ckpt_tree_data(x), ckpt_tree_data(y), ckpt_tree_nbytes(x));
}

/* 5. Transforms: a renamed and regrouped model. */
static void test_transforms(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
	ckpt_tree *t = old_model(), *x = NULL;
	int rc;

	sa.item = t;
	assert_int_equal(save(f, 1, &sa), 0);
	const ckpt_restore_transform rules[] = {
	    {"layers_([0-9]+)/(w|b)", "blocks/\\1/\\2", 1}, /* regroup, with captures */
	    {"head/kernel", "output/w", 0},		      /* exact rename */
	};
	ra.transforms = rules;
	ra.ntransforms = 2;
	ckpt_tree *r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_same_array(t, "layers_0/w", r, "blocks/0/w");
	assert_same_array(t, "layers_1/b", r, "blocks/1/b");
	assert_same_array(t, "head/kernel", r, "output/w");
	assert_int_equal(ckpt_tree_lookup(&x, r, "step"), 0); /* unmatched: kept (default) */
	assert_int_equal(ckpt_tree_int(x), 42);
	assert_int_equal(ckpt_tree_lookup(&x, r, "layers_0"), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_tree_lookup(&x, r, "head"), CKPT_ENOTFOUND);
	ckpt_tree_free(r);

	/* not default_to_original: unmatched leaves are left out */
	ra.transforms_default_to_original = 0;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_lookup(&x, r, "step"), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_tree_lookup(&x, r, "output/w"), 0);
	ckpt_tree_free(r);

	/* with a target: the new model, a list of blocks, a new leaf "scale" taken from
	 * the target (not default_to_original), "step" a float */
	ckpt_tree *tgt = NULL, *blocks = NULL, *b = NULL, *o = NULL;
	uint64_t sh[1] = {3};
	float ones[3] = {1, 1, 1};
	assert_int_equal(ckpt_tree_new(&tgt, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new(&blocks, CKPT_TREE_LIST), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ckpt_tree_new(&b, CKPT_TREE_DICT), 0);
		assert_int_equal(ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT32, 1, sh, NULL, 0) |
				     ckpt_tree_add(b, "w", x),
				 0);
		assert_int_equal(ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT32, 1, sh, NULL, 0) |
				     ckpt_tree_add(b, "b", x),
				 0);
		assert_int_equal(ckpt_tree_add(blocks, NULL, b), 0);
	}
	assert_int_equal(ckpt_tree_add(tgt, "blocks", blocks), 0);
	assert_int_equal(ckpt_tree_new(&o, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT32, 1, sh, NULL, 0) |
			     ckpt_tree_add(o, "w", x),
			 0);
	assert_int_equal(ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT32, 1, sh, ones, 0) |
			     ckpt_tree_add(o, "scale", x),
			 0);
	assert_int_equal(ckpt_tree_add(tgt, "output", o), 0);
	ra.item = tgt;
	r = restore(f, &ra, &rc); /* not default_to_original: step is dropped, scale from target */
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(r, "blocks")), CKPT_TREE_LIST);
	assert_same_array(t, "layers_1/w", r, "blocks/1/w");
	assert_same_array(tgt, "output/scale", r, "output/scale");
	assert_int_equal(ckpt_tree_lookup(&x, r, "step"), CKPT_ENOTFOUND);
	ckpt_tree_free(r);

	/* default_to_original with a target leaf nothing lands on: refused before reading */
	ra.transforms_default_to_original = 1;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "output/scale"));
	ckpt_tree_free(tgt);
	ra.item = NULL;

	/* two leaves onto one path; a bad regex; a rule dropping a leaf */
	const ckpt_restore_transform clash[] = {{"layers_[0-9]+/w", "w", 1}};
	ra.transforms = clash;
	ra.ntransforms = 1;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EEXISTS);
	assert_non_null(strstr(ckpt_error_last(), "'w'"));
	const ckpt_restore_transform bad[] = {{"layers_(", "x", 1}};
	ra.transforms = bad;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "regex"));
	const ckpt_restore_transform drop[] = {{"layers_.*", NULL, 1}, {"head/kernel", "", 0}};
	ra.transforms = drop;
	ra.ntransforms = 2;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_count(r), 1);
	assert_int_equal(ckpt_tree_lookup(&x, r, "step"), 0);
	ckpt_tree_free(r);
	/* a leaf moved below another leaf */
	const ckpt_restore_transform under[] = {{"head/kernel", "step/k", 0}};
	ra.transforms = under;
	ra.ntransforms = 1;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EEXISTS);
	ckpt_tree_free(t);
}

/* value fn: the float32 inputs joined end to end (1-d) */
static int concat_fn(ckpt_tree **out, const ckpt_tree *const *in, size_t n, void *payload)
{
	uint64_t total = 0, off = 0;
	float *d;

	for (size_t i = 0; i < n; i++)
		total += ckpt_tree_nelems(in[i]);
	if (!(d = malloc(total * sizeof(float) + 1)))
		return CKPT_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy(d + off, ckpt_tree_data(in[i]), ckpt_tree_nbytes(in[i]));
		off += ckpt_tree_nelems(in[i]);
	}
	return ckpt_tree_new_array(out, CKPT_DTYPE_FLOAT32, 1, &total, d, CKPT_TREE_OWN);
}

/* value fn: the one float32 input times *(float *)payload */
static int scale_fn(ckpt_tree **out, const ckpt_tree *const *in, size_t n, void *payload)
{
	ckpt_tree *c = NULL;
	int rc = ckpt_tree_clone(&c, in[0]);

	for (uint64_t i = 0; rc == 0 && i < ckpt_tree_nelems(c); i++)
		((float *)ckpt_tree_data(c))[i] *= *(float *)payload;
	*out = c;
	return rc;
}

static int fail_fn(ckpt_tree **out, const ckpt_tree *const *in, size_t n, void *payload)
{
	return ckpt_error_set_str(CKPT_ESHAPE, "the inputs do not line up");
}

/* 6. Value transforms: computed leaves from saved ones. */
static void test_value_transforms(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_pytree_restore_args ra = CKPT_PYTREE_RESTORE_ARGS_INIT;
	ckpt_tree *t = old_model(), *x = NULL, *w0 = NULL, *w1 = NULL;
	const char *both[] = {"layers_0/w", "layers_1/w"}, *kern[] = {"head/kernel"};
	float two = 2;
	int rc;

	sa.item = t;
	assert_int_equal(save(f, 1, &sa), 0);
	assert_int_equal(ckpt_tree_lookup(&w0, t, "layers_0/w"), 0);
	assert_int_equal(ckpt_tree_lookup(&w1, t, "layers_1/w"), 0);

	/* two saved leaves concatenated into one; a leaf scaled; the inputs dropped by
	 * rename rules, the rest kept */
	const ckpt_restore_value_transform vt[] = {{"w_all", both, 2, concat_fn, NULL},
						   {"head/kernel2", kern, 1, scale_fn, &two}};
	const ckpt_restore_transform drop[] = {{"layers_[0-9]+/w", NULL, 1}};
	ra.value_transforms = vt;
	ra.nvalue_transforms = 2;
	ra.transforms = drop;
	ra.ntransforms = 1;
	ckpt_tree *r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_lookup(&x, r, "w_all"), 0);
	assert_int_equal(ckpt_tree_nelems(x), 6);
	assert_memory_equal(ckpt_tree_data(x), ckpt_tree_data(w0), 3 * sizeof(float));
	assert_memory_equal((float *)ckpt_tree_data(x) + 3, ckpt_tree_data(w1), 3 * sizeof(float));
	assert_int_equal(ckpt_tree_lookup(&x, r, "head/kernel2"), 0);
	assert_true(((float *)ckpt_tree_data(x))[1] == 2 * (1 * 0.25f + 7));
	assert_same_array(t, "head/kernel", r, "head/kernel"); /* kept, by default */
	assert_int_equal(ckpt_tree_lookup(&x, r, "layers_0/w"), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_tree_lookup(&x, r, "layers_0/b"), 0);
	ckpt_tree_free(r);

	/* with paths: only the selection, plus the computed leaf */
	const char *step[] = {"step"};
	ra.paths = step;
	ra.npaths = 1;
	ra.transforms = NULL;
	ra.ntransforms = 0;
	ra.nvalue_transforms = 1;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_count(r), 2);
	assert_int_equal(ckpt_tree_lookup(&x, r, "w_all"), 0);
	ckpt_tree_free(r);
	ra.paths = NULL;
	ra.npaths = 0;

	/* a target with the computed leaf: satisfied by it */
	ckpt_tree *tgt = NULL;
	uint64_t six = 6;
	assert_int_equal(ckpt_tree_new(&tgt, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new_array(&x, CKPT_DTYPE_FLOAT32, 1, &six, NULL, 0) |
			     ckpt_tree_add(tgt, "w_all", x),
			 0);
	assert_int_equal(ckpt_tree_new_float(&x, 0) | ckpt_tree_add(tgt, "step", x), 0);
	ra.item = tgt;
	ra.partial_restore = 1;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_count(r), 2);
	assert_int_equal(ckpt_tree_get_kind(ckpt_tree_find(r, "step")), CKPT_TREE_FLOAT);
	assert_int_equal(ckpt_tree_nelems(ckpt_tree_find(r, "w_all")), 6);
	ckpt_tree_free(r);
	ckpt_tree_free(tgt);
	ra.item = NULL;
	ra.partial_restore = 0;

	/* fn's error comes back with its code and message */
	const ckpt_restore_value_transform bad[] = {{"w_all", both, 2, fail_fn, NULL}};
	ra.value_transforms = bad;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_ESHAPE);
	assert_non_null(strstr(ckpt_error_last(), "the inputs do not line up"));
	assert_non_null(strstr(ckpt_error_last(), "w_all"));

	/* inputs missing: CKPT_ENOTFOUND naming every one */
	const char *gone[] = {"layers_0/w", "nope/a", "layers_9/w"};
	const ckpt_restore_value_transform miss[] = {{"w_all", gone, 3, concat_fn, NULL}};
	ra.value_transforms = miss;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "'nope/a', 'layers_9/w'"));
	assert_null(strstr(ckpt_error_last(), "'layers_0/w'"));

	/* `to` is a leaf the restore gives already */
	const ckpt_restore_value_transform clash[] = {{"step", kern, 1, scale_fn, &two}};
	ra.value_transforms = clash;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EEXISTS);

	/* a version 2 struct: the value transforms are not read */
	ra.version = 2;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_lookup(&x, r, "step"), 0);
	ckpt_tree_free(r);
	ckpt_tree_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_custom_metadata_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_item_custom_metadata, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_options_not_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restore_follows_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transforms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_value_transforms, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
