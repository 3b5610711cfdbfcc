/*
 * pytree_test.c — PyTree/Standard handlers: round trip of every kind,
 * partial restore, target shapes (strict and not), casts, metadata.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/treecmp.h"
#include "fsutil.h"

struct fx {
	char *root;
	char dir[512];
	ckpt_tree *t;
	ckpt_handler *h;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args it;

	f->root = test_tmpdir();
	f->t = test_tree_every_kind(1);
	if (!f->root || !f->t || ckpt_pytree_handler_new(&f->h))
		return -1;
	sa.item = f->t;
	it = (ckpt_item_args){"state", f->h, &sa};
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	o.store.inline_max = 1024;     /* the kernel (8 KiB) goes to a data file */
	o.store.compression_level = 0; /* bytes read == raw bytes */
	o.store.chunk_size = 4096;
	if (ckpt_checkpointer_save(f->root, 10, &it, 1, &o)) {
		fprintf(stderr, "save: %s\n", ckpt_error_last());
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/10", f->root);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	ckpt_rmtree(f->root);
	free(f->root);
	ckpt_tree_free(f->t);
	ckpt_handler_free(f->h);
	free(f);
	return 0;
}

static ckpt_tree *restore(struct fx *f, const ckpt_pytree_restore_args *a, int *rc,
			  uint64_t *bytes_read)
{
	ckpt_step *s = NULL;
	void *out = NULL;

	*rc = ckpt_step_open(&s, f->dir, NULL);
	if (*rc == 0)
		*rc = ckpt_handler_restore(&out, f->h, s, "state", a);
	if (bytes_read)
		*bytes_read = s ? ckpt_store_bytes_read(ckpt_step_store(s)) : 0;
	ckpt_step_free(s);
	return out;
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	ckpt_step *s = NULL;
	void *md = NULL;
	int rc;
	ckpt_tree *r = restore(f, NULL, &rc, NULL);

	assert_int_equal(rc, 0);
	assert_int_equal(test_tree_cmp(f->t, r, "root"), 0);
	ckpt_tree_free(r);

	/* metadata: same structure, arrays without data */
	assert_int_equal(ckpt_step_open(&s, f->dir, NULL), 0);
	assert_string_equal(ckpt_step_item_typestr(s, 0), CKPT_PYTREE_TYPESTR);
	assert_int_equal(ckpt_handler_metadata(&md, f->h, s, "state"), 0);
	ckpt_tree *k = NULL;
	assert_int_equal(ckpt_tree_lookup(&k, md, "params/dense/kernel"), 0);
	assert_null(ckpt_tree_data(k));
	assert_int_equal(ckpt_tree_shape(k)[0], 64);
	assert_int_equal(ckpt_tree_count(md), ckpt_tree_count(f->t));
	assert_true(ckpt_store_bytes_read(ckpt_step_store(s)) < 64 * 32 * 4);
	ckpt_tree_free(md);
	ckpt_step_free(s);
}

static void test_partial_paths(void **state)
{
	struct fx *f = *state;
	const char *paths[] = {"params/dense/bias", "opt/1"};
	ckpt_pytree_restore_args a = CKPT_PYTREE_RESTORE_ARGS_INIT;
	uint64_t br = 0, all = 0;
	ckpt_tree *x = NULL;
	int rc;

	ckpt_tree_free(restore(f, NULL, &rc, &all));
	assert_int_equal(rc, 0);
	a.paths = paths;
	a.npaths = 2;
	ckpt_tree *r = restore(f, &a, &rc, &br);
	assert_int_equal(rc, 0);
	/* the kernel (8 KiB) was not read: only bias (128 B) and count */
	assert_true(all >= 64 * 32 * 4);
	assert_true(br < 4096);
	assert_int_equal(ckpt_tree_lookup(&x, r, "params/dense/bias"), 0);
	assert_int_equal(ckpt_tree_lookup(&x, r, "params/dense/kernel"), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_tree_lookup(&x, r, "step"), CKPT_ENOTFOUND);
	/* list indices kept: opt/0 became None */
	assert_int_equal(ckpt_tree_lookup(&x, r, "opt/0"), 0);
	assert_int_equal(ckpt_tree_get_kind(x), CKPT_TREE_NONE);
	assert_int_equal(ckpt_tree_lookup(&x, r, "opt/1/count"), 0);
	ckpt_tree_free(r);

	const char *bad[] = {"params/nope"};
	a.paths = bad;
	a.npaths = 1;
	assert_null(restore(f, &a, &rc, NULL));
	assert_int_equal(rc, CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "nope"));
}

static void test_partial_target(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_restore_args a = CKPT_PYTREE_RESTORE_ARGS_INIT;
	ckpt_tree *tgt = NULL, *x = NULL;
	uint64_t br = 0;
	int rc;

	assert_int_equal(ckpt_tree_new(&tgt, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new_int(&x, 0), 0);
	assert_int_equal(ckpt_tree_add(tgt, "step", x), 0);
	a.item = tgt;
	/* without partial_restore the target must match the saved structure */
	assert_null(restore(f, &a, &rc, NULL));
	assert_int_equal(rc, CKPT_EINVAL);
	a.partial_restore = 1;
	ckpt_tree *r = restore(f, &a, &rc, &br);
	assert_int_equal(rc, 0);
	assert_true(br < 64 * 32 * 4); /* the kernel was not read */
	assert_int_equal(ckpt_tree_count(r), 1);
	assert_int_equal(ckpt_tree_int(ckpt_tree_find(r, "step")), 1000);
	ckpt_tree_free(r);
	/* a target leaf the checkpoint lacks */
	assert_int_equal(ckpt_tree_new_int(&x, 0), 0);
	assert_int_equal(ckpt_tree_add(tgt, "missing", x), 0);
	assert_null(restore(f, &a, &rc, NULL));
	assert_int_equal(rc, CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "missing"));
	ckpt_tree_free(tgt);
}

/* leaf_args: the kernel to shape (70, 30) / dtype float64 */
struct la_payload {
	unsigned nd;
	uint64_t shape[2];
	ckpt_dtype dt;
};

static int kernel_args(ckpt_leaf_restore_args *out, const char *path, const ckpt_tree *meta,
		       void *payload)
{
	const struct la_payload *p = payload;
	(void)meta;
	if (strcmp(path, "params/dense/kernel") != 0)
		return 0;
	out->dtype = p->dt;
	if (p->nd) {
		out->has_shape = 1;
		out->ndim = p->nd;
		memcpy(out->shape, p->shape, sizeof(p->shape));
	}
	return 0;
}

static void test_shapes_and_casts(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_restore_args a = CKPT_PYTREE_RESTORE_ARGS_INIT;
	struct la_payload p = {2, {70, 30}, CKPT_DTYPE_INVALID};
	const ckpt_tree *orig = NULL;
	ckpt_tree *k = NULL;
	int rc;

	assert_int_equal(ckpt_tree_lookup((ckpt_tree **)&orig, f->t, "params/dense/kernel"), 0);
	const float *od = ckpt_tree_data(orig);
	a.leaf_args = kernel_args;
	a.payload = &p;
	/* strict: error naming the leaf and both shapes */
	assert_null(restore(f, &a, &rc, NULL));
	assert_int_equal(rc, CKPT_ESHAPE);
	assert_non_null(strstr(ckpt_error_last(), "params/dense/kernel"));
	assert_non_null(strstr(ckpt_error_last(), "(64, 32)"));
	assert_non_null(strstr(ckpt_error_last(), "(70, 30)"));

	/* non-strict: pad rows with zeros, truncate columns; small in-flight cap */
	a.strict = 0;
	a.restore_concurrent_bytes = 12;
	ckpt_tree *r = restore(f, &a, &rc, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_lookup(&k, r, "params/dense/kernel"), 0);
	assert_int_equal(ckpt_tree_shape(k)[0], 70);
	assert_int_equal(ckpt_tree_shape(k)[1], 30);
	const float *d = ckpt_tree_data(k);
	for (int i = 0; i < 70; i++)
		for (int j = 0; j < 30; j++)
			assert_true(d[i * 30 + j] == (i < 64 ? od[i * 32 + j] : 0.0f));
	ckpt_tree_free(r);

	/* non-strict with a different rank is refused */
	p.nd = 1;
	p.shape[0] = 2048;
	assert_null(restore(f, &a, &rc, NULL));
	assert_int_equal(rc, CKPT_ESHAPE);

	/* cast on restore: float32 -> float64, exact for these values */
	p.nd = 0;
	p.dt = CKPT_DTYPE_FLOAT64;
	r = restore(f, &a, &rc, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_lookup(&k, r, "params/dense/kernel"), 0);
	assert_int_equal(ckpt_tree_dtype(k), CKPT_DTYPE_FLOAT64);
	const double *dd = ckpt_tree_data(k);
	for (int i = 0; i < 64 * 32; i++)
		assert_true(dd[i] == (double)od[i]);
	ckpt_tree_free(r);
}

/* save args: kernel cast to float16 with custom metadata, bias uncompressed */
static int save_args(ckpt_leaf_save_args *out, const char *path, const ckpt_tree *leaf,
		     void *payload)
{
	(void)leaf;
	(void)payload;
	if (!strcmp(path, "params/dense/kernel")) {
		out->dtype = CKPT_DTYPE_FLOAT16;
		out->custom_metadata = "{\"note\": \"half\"}";
	}
	if (!strcmp(path, "params/dense/bias"))
		out->compression = 0;
	return 0;
}

static void test_save_cast(void **state)
{
	struct fx *f = *state;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args it = {"state", f->h, &sa};
	ckpt_step *s = NULL;
	const ckpt_tree *meta = NULL;
	ckpt_tree *k = NULL, *orig = NULL;
	void *out = NULL;
	char dir[600];

	sa.item = f->t;
	sa.leaf_args = save_args;
	sa.save_concurrent_bytes = 100; /* many slices */
	assert_int_equal(ckpt_checkpointer_save(f->root, 11, &it, 1, NULL), 0);
	snprintf(dir, sizeof(dir), "%s/11", f->root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_tree(&meta, s, "state"), 0);
	assert_int_equal(ckpt_tree_lookup(&k, meta, "params/dense/kernel"), 0);
	assert_int_equal(ckpt_tree_dtype(k), CKPT_DTYPE_FLOAT16);
	assert_non_null(ckpt_tree_custom_metadata(k));
	assert_non_null(strstr(ckpt_tree_custom_metadata(k), "half"));
	assert_int_equal(ckpt_handler_restore(&out, f->h, s, "state", NULL), 0);
	assert_int_equal(ckpt_tree_lookup(&k, out, "params/dense/kernel"), 0);
	assert_int_equal(ckpt_tree_lookup(&orig, f->t, "params/dense/kernel"), 0);
	/* values i*0.25+1 up to 512.75 are exact in float16 up to 512 and rounded above */
	float ref[64 * 32];
	assert_int_equal(ckpt_dtype_cast(ref, CKPT_DTYPE_FLOAT32, ckpt_tree_data(k),
					 CKPT_DTYPE_FLOAT16, 64 * 32),
			 0);
	const float *od = ckpt_tree_data(orig);
	for (int i = 0; i < 64 * 32; i++)
		assert_true(fabsf(ref[i] - od[i]) <= 0.5f);
	assert_true(ref[10] == od[10]);
	ckpt_tree_free(out);
	ckpt_step_free(s);
}

/* Store level 0 (ckpt save --no-compress) stores array chunks raw; a leaf can still ask. */
static void test_store_level_0_raw(void **state)
{
	struct fx *f = *state;
	ckpt_step *s = NULL;
	ckpt_value_info vi;
	static const char key[] = "state/params/dense/kernel";

	assert_int_equal(ckpt_step_open(&s, f->dir, NULL), 0);
	assert_int_equal(ckpt_store_stat(&vi, ckpt_step_store(s), key, sizeof(key) - 1), 0);
	assert_true(vi.nchunks > 0);
	assert_int_equal(vi.codec, CKPT_CODEC_RAW);
	ckpt_step_free(s);
}

static void test_standard(void **state)
{
	struct fx *f = *state;
	ckpt_handler *st = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args it = {"state", NULL, &sa};
	ckpt_tree *t = test_tree_every_kind(0);
	void *out = NULL;
	int rc;

	assert_int_equal(ckpt_standard_handler_new(&st), 0);
	it.handler = st;
	assert_string_equal(ckpt_handler_typestr(st), CKPT_STANDARD_TYPESTR);
	sa.item = f->t; /* has a string leaf */
	assert_int_equal(ckpt_checkpointer_save(f->root, 12, &it, 1, NULL), CKPT_EUNSUPPORTED);
	assert_non_null(strstr(ckpt_error_last(), "name"));
	assert_non_null(strstr(ckpt_error_last(), "string"));
	sa.item = t;
	assert_int_equal(ckpt_checkpointer_save(f->root, 12, &it, 1, NULL), 0);
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/12", f->root);
	ckpt_item_args ri = {"state", st, NULL};
	rc = ckpt_checkpointer_restore(&out, dir, &ri, 1);
	assert_int_equal(rc, 0);
	assert_int_equal(test_tree_cmp(t, out, "root"), 0);
	ckpt_tree_free(out);
	ckpt_tree_free(t);
	ckpt_handler_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_paths, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shapes_and_casts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_save_cast, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_level_0_raw, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_standard, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
