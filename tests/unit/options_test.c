/*
 * options_test.c — one version rule for every options and args struct
 * (CKPT_CHECK_VERSION): NULL is the defaults, version 0 is a struct nobody
 * initialised, a newer version is refused; both are CKPT_EINVAL naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ckpt/ckpt.h"
#include "fsutil.h"

static char tmp[] = "/tmp/ckpt-options-test.XXXXXX";

static void expect_refused(int rc, const char *name)
{
	assert_int_equal(rc, CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), name));
}

static void test_store_and_put_options(void **state)
{
	ckpt_store_options zero, newer = CKPT_STORE_OPTIONS_INIT;
	ckpt_put_options pz;
	ckpt_store *s;
	ckpt_batch *b;
	char *dir = ckpt_asprintf("%s/s", tmp);

	(void)state;
	memset(&zero, 0, sizeof(zero));
	newer.version = CKPT_STORE_OPTIONS_VERSION + 1;
	expect_refused(ckpt_store_open(&s, dir, CKPT_STORE_CREATE, &zero), "ckpt_store_options");
	assert_non_null(strstr(ckpt_error_last(), "_INIT"));
	expect_refused(ckpt_store_open(&s, dir, CKPT_STORE_CREATE, &newer), "newer");
	assert_int_equal(ckpt_store_open(&s, dir, CKPT_STORE_CREATE, NULL), 0);
	assert_int_equal(ckpt_batch_begin(&b, s), 0);
	memset(&pz, 0, sizeof(pz));
	expect_refused(ckpt_batch_put(b, "k", 1, "v", 1, &pz), "ckpt_put_options");
	ckpt_batch_abort(b);
	ckpt_store_free(s);
	free(dir);
}

static void test_writer_async_manager_options(void **state)
{
	ckpt_step_writer_options wz, wstore = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_async_options az;
	ckpt_manager_options mz;
	ckpt_step_writer *w;
	ckpt_async *a;
	ckpt_manager *m;

	(void)state;
	memset(&wz, 0, sizeof(wz));
	memset(&az, 0, sizeof(az));
	memset(&mz, 0, sizeof(mz));
	wstore.store.version = 0;
	expect_refused(ckpt_step_writer_open(&w, tmp, 1, &wz), "ckpt_step_writer_options");
	expect_refused(ckpt_step_writer_open(&w, tmp, 1, &wstore), "ckpt_step_writer_options.store");
	expect_refused(ckpt_async_new(&a, &az), "ckpt_async_options");
	expect_refused(ckpt_manager_open(&m, tmp, &mz), "ckpt_manager_options");
}

static void test_pytree_args(void **state)
{
	ckpt_pytree_restore_args rz;
	ckpt_pytree_save_args sz;
	ckpt_handler *h;
	void *out;

	(void)state;
	memset(&rz, 0, sizeof(rz));
	memset(&sz, 0, sizeof(sz));
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	/* A zero-initialised restore-args struct no longer means "pad and truncate". */
	expect_refused(ckpt_handler_restore(&out, h, NULL, "state", &rz),
		       "ckpt_pytree_restore_args");
	expect_refused(ckpt_handler_snapshot(&out, h, &sz), "ckpt_pytree_save_args");
	ckpt_handler_free(h);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return ckpt_rmtree(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_store_and_put_options),
	    cmocka_unit_test(test_writer_async_manager_options),
	    cmocka_unit_test(test_pytree_args),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
