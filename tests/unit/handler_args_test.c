/*
 * handler_args_test.c — Orbax's ArraySaveArgs / ArrayRestoreArgs and
 * JaxRandomKeyRestoreArgs in C: a cast on save (bare leaf and tagged args,
 * also through a copy-mode snapshot), a target shape on restore (strict,
 * pad, truncate, with a cast), the key implementation wrapped, checked or
 * dropped, a batch of keys reshaped; old and bad versions.
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
	ckpt_handler *h;
};

/* The handler a test runs with: its prestate. */
struct maker {
	int (*make)(ckpt_handler **out, const char *name);
};
static struct maker array_h = {ckpt_array_handler_new}, jax_h = {ckpt_jax_key_handler_new};

static int setup(void **state)
{
	const struct maker *m = *state;
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || !(f->root = test_tmpdir()) || m->make(&f->h, NULL))
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

static int save(struct fx *f, uint64_t step, const void *args)
{
	ckpt_item_args it = {"x", f->h, args};

	snprintf(f->dir, sizeof(f->dir), "%s/%llu", f->root, (unsigned long long)step);
	return ckpt_checkpointer_save(f->root, step, &it, 1, NULL);
}

static void *restore(struct fx *f, const void *args, int *rc)
{
	ckpt_item_args it = {"x", f->h, args};
	void *out = NULL;

	*rc = ckpt_checkpointer_restore(&out, f->dir, &it, 1);
	return out;
}

static ckpt_tree *i32_2x3(void)
{
	int32_t v[6] = {1, 2, 3, 4, 5, 6};
	const uint64_t sh[2] = {2, 3};
	ckpt_tree *t = NULL;

	assert_int_equal(ckpt_tree_new_array(&t, CKPT_DTYPE_INT32, 2, sh, v, CKPT_TREE_COPY), 0);
	return t;
}

/* ArraySaveArgs(item, SaveArgs(dtype)): the array is cast before it is written. */
static void test_array_save_args(void **state)
{
	struct fx *f = *state;
	ckpt_array_save_args sa = CKPT_ARRAY_SAVE_ARGS_INIT;
	ckpt_tree *t = i32_2x3(), *r, *s = NULL;
	void *snap = NULL;
	int rc;

	sa.item = t;
	sa.dtype = CKPT_DTYPE_FLOAT64;
	assert_int_equal(save(f, 1, &sa), 0);
	r = restore(f, NULL, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_dtype(r), CKPT_DTYPE_FLOAT64);
	assert_int_equal(ckpt_tree_shape(r)[1], 3);
	assert_true(((const double *)ckpt_tree_data(r))[5] == 6.0);
	ckpt_tree_free(r);

	/* no dtype: as the leaf is; a bare leaf still works */
	sa.dtype = CKPT_DTYPE_INVALID;
	assert_int_equal(save(f, 2, &sa), 0);
	r = restore(f, NULL, &rc);
	assert_int_equal(test_tree_cmp(t, r, "x"), 0);
	ckpt_tree_free(r);
	assert_int_equal(save(f, 3, t), 0);

	/* a copy-mode snapshot keeps the cast */
	sa.dtype = CKPT_DTYPE_INT8;
	assert_int_equal(ckpt_handler_snapshot(&snap, f->h, &sa), 0);
	assert_int_equal(save(f, 4, snap), 0);
	ckpt_handler_snapshot_free(f->h, snap);
	r = restore(f, NULL, &rc);
	assert_int_equal(ckpt_tree_dtype(r), CKPT_DTYPE_INT8);
	assert_int_equal(((const int8_t *)ckpt_tree_data(r))[4], 5);
	ckpt_tree_free(r);
	assert_int_equal(ckpt_handler_snapshot(&snap, f->h, t), 0); /* and of a bare leaf */
	assert_int_equal(save(f, 5, snap), 0);
	ckpt_handler_snapshot_free(f->h, snap);

	/* refused: a dtype on a scalar, a zeroed struct, a newer version */
	assert_int_equal(ckpt_tree_new_float(&s, 0.5), 0);
	sa.item = s;
	sa.dtype = CKPT_DTYPE_FLOAT16;
	assert_int_equal(save(f, 6, &sa), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "a scalar is saved as its text"));
	sa.dtype = CKPT_DTYPE_INVALID;
	assert_int_equal(save(f, 7, &sa), 0);
	ckpt_array_save_args zero;
	memset(&zero, 0, sizeof(zero));
	assert_int_equal(save(f, 8, &zero), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "CKPT_ARRAY_SAVE_ARGS_INIT"));
	sa.version = CKPT_ARRAY_SAVE_ARGS_VERSION + 1;
	assert_int_equal(save(f, 9, &sa), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "newer"));
	ckpt_tree_free(s);
	ckpt_tree_free(t);
}

static void set_shape(ckpt_array_restore_args *a, unsigned nd, uint64_t d0, uint64_t d1)
{
	a->ndim = nd;
	a->shape[0] = d0;
	a->shape[1] = d1;
	a->has_shape = 1;
}

/* ArrayRestoreArgs(global_shape, strict): the target shape of the array. */
static void test_array_restore_shape(void **state)
{
	struct fx *f = *state;
	ckpt_array_restore_args ra = CKPT_ARRAY_RESTORE_ARGS_INIT;
	ckpt_tree *t = i32_2x3(), *r;
	int rc;

	assert_int_equal(save(f, 1, t), 0);
	set_shape(&ra, 2, 2, 3); /* the saved shape: as saved */
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(test_tree_cmp(t, r, "x"), 0);
	ckpt_tree_free(r);

	set_shape(&ra, 2, 3, 2); /* strict (the default): refused */
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_ESHAPE);
	assert_non_null(strstr(ckpt_error_last(), "saved shape (2, 3) differs from target (3, 2)"));

	ra.strict = 0; /* pad with zeros */
	set_shape(&ra, 2, 3, 4);
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	const int32_t padded[12] = {1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0};
	assert_int_equal(ckpt_tree_nelems(r), 12);
	assert_memory_equal(ckpt_tree_data(r), padded, sizeof(padded));
	ckpt_tree_free(r);

	set_shape(&ra, 2, 1, 2); /* truncate, and cast */
	ra.dtype = CKPT_DTYPE_FLOAT32;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(ckpt_tree_dtype(r), CKPT_DTYPE_FLOAT32);
	assert_int_equal(ckpt_tree_nelems(r), 2);
	assert_true(((const float *)ckpt_tree_data(r))[1] == 2.0f);
	ckpt_tree_free(r);

	set_shape(&ra, 1, 6, 0); /* non-strict keeps the number of dimensions */
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_ESHAPE);
	assert_non_null(strstr(ckpt_error_last(), "same number of dimensions"));

	/* a version 1 struct: dtype only, the shape members are not read */
	ra.version = 1;
	ra.dtype = CKPT_DTYPE_INVALID;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(test_tree_cmp(t, r, "x"), 0);
	ckpt_tree_free(r);
	ckpt_tree_free(t);
}

static ckpt_tree *keys(unsigned nd, uint64_t d0, uint64_t d1)
{
	const uint64_t sh[2] = {d0, d1};
	uint32_t v[16];
	ckpt_tree *t = NULL;

	for (unsigned i = 0; i < 16; i++)
		v[i] = 1000 + i;
	assert_int_equal(ckpt_tree_new_array(&t, CKPT_DTYPE_UINT32, nd, sh, v, CKPT_TREE_COPY), 0);
	return t;
}

/* JaxRandomKeyRestoreArgs: the implementation given, checked or dropped. */
static void test_jax_restore_impl(void **state)
{
	struct fx *f = *state;
	ckpt_jax_key_restore_args ra = CKPT_JAX_KEY_RESTORE_ARGS_INIT;
	ckpt_jax_key raw = {NULL, keys(1, 2, 0)}, rbg = {"rbg", keys(1, 4, 0)}, *r;
	int rc;

	assert_int_equal(save(f, 1, &raw), 0);
	ra.impl = "threefry2x32"; /* an untyped key wrapped (wrap_key_data) */
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(r->impl, "threefry2x32");
	assert_int_equal(test_tree_cmp(raw.data, r->data, "key"), 0);
	ckpt_jax_key_free(r);
	ra.impl = "rbg"; /* its data does not fit rbg */
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "rbg key data needs last dimension 4, not 2"));
	ra.impl = "philox";
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "'philox'"));

	assert_int_equal(save(f, 2, &rbg), 0);
	ra.impl = "threefry2x32"; /* a typed key of another implementation */
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "saved as a rbg key, restore asks for threefry2x32"));
	ra.impl = "rbg";
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(r->impl, "rbg");
	ckpt_jax_key_free(r);
	ra.impl = NULL; /* key_data: the raw data */
	ra.untyped = 1;
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_null(r->impl);
	assert_int_equal(test_tree_cmp(rbg.data, r->data, "key"), 0);
	ckpt_jax_key_free(r);

	ra.version = CKPT_JAX_KEY_RESTORE_ARGS_VERSION + 1;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	ckpt_tree_free(raw.data);
	ckpt_tree_free(rbg.data);
}

/* JaxRandomKeyRestoreArgs(restore_args=ArrayRestoreArgs(global_shape, strict)):
 * a batch of keys reshaped; the last dimension must still fit. */
static void test_jax_restore_shape(void **state)
{
	struct fx *f = *state;
	ckpt_jax_key_restore_args ra = CKPT_JAX_KEY_RESTORE_ARGS_INIT;
	ckpt_jax_key batch = {"threefry2x32", keys(2, 3, 2)}, raw = {NULL, keys(2, 3, 2)}, *r;
	int rc;

	assert_int_equal(save(f, 1, &batch), 0);
	ra.ndim = 2;
	ra.shape[0] = 2;
	ra.shape[1] = 2;
	ra.has_shape = 1;
	assert_null(restore(f, &ra, &rc)); /* strict */
	assert_int_equal(rc, CKPT_ESHAPE);
	ra.strict = 0; /* the first two keys */
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(r->impl, "threefry2x32");
	assert_int_equal(ckpt_tree_nelems(r->data), 4);
	assert_memory_equal(ckpt_tree_data(r->data), ckpt_tree_data(batch.data), 16);
	ckpt_jax_key_free(r);
	ra.shape[0] = 3; /* a threefry key is 2 words */
	ra.shape[1] = 4;
	assert_null(restore(f, &ra, &rc));
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "needs last dimension 2, not 4"));

	assert_int_equal(save(f, 2, &raw), 0); /* untyped: 2 or 4 words */
	r = restore(f, &ra, &rc);
	assert_int_equal(rc, 0);
	assert_null(r->impl);
	assert_int_equal(((const uint32_t *)ckpt_tree_data(r->data))[4], 1002);
	assert_int_equal(((const uint32_t *)ckpt_tree_data(r->data))[3], 0);
	ckpt_jax_key_free(r);
	ckpt_tree_free(batch.data);
	ckpt_tree_free(raw.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_prestate_setup_teardown(test_array_save_args, setup, teardown,
						     &array_h),
	    cmocka_unit_test_prestate_setup_teardown(test_array_restore_shape, setup, teardown,
						     &array_h),
	    cmocka_unit_test_prestate_setup_teardown(test_jax_restore_impl, setup, teardown,
						     &jax_h),
	    cmocka_unit_test_prestate_setup_teardown(test_jax_restore_shape, setup, teardown,
						     &jax_h),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
