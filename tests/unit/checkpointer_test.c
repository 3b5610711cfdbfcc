/*
 * checkpointer_test.c — multi-item saves, overwrite rules, failures that
 * must leave neither a step nor a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include "ckpt/sys/handler.h"
#include "unit/treecmp.h"
#include "fsutil.h"

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* A handler whose save writes a key and then fails (or, with fail_finalize, finalize fails). */
struct failing {
	ckpt_handler base;
	int fail_finalize;
};

static const char *f_typestr(const ckpt_handler *h)
{
	(void)h;
	return "test.FailingHandler";
}

static int f_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	char key[64];
	(void)args;
	snprintf(key, sizeof(key), "%s/x", item);
	int rc = ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), "1", 1, NULL);
	if (rc)
		return rc;
	return ((struct failing *)h)->fail_finalize ? 0 : CKPT_EIO;
}

static int f_finalize(ckpt_handler *h, ckpt_step_writer *w, const char *item)
{
	(void)w;
	(void)item;
	return ((struct failing *)h)->fail_finalize ? CKPT_EBUSY : 0;
}

static const ckpt_handler_vtable failing_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = f_typestr, .save = f_save, .finalize = f_finalize};

static void test_items_and_failures(void **state)
{
	char *root = test_tmpdir();
	ckpt_tree *t = test_tree_every_kind(1), *t2 = test_tree_every_kind(0);
	ckpt_handler *py = NULL, *st = NULL;
	ckpt_pytree_save_args a1 = CKPT_PYTREE_SAVE_ARGS_INIT, a2 = CKPT_PYTREE_SAVE_ARGS_INIT;
	struct failing fh = {{&failing_vt}, 0};
	void *outs[2] = {NULL, NULL};
	char dir[512];

	(void)state;
	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	assert_int_equal(ckpt_standard_handler_new(&st), 0);
	a1.item = t;
	a2.item = t2;
	ckpt_item_args items[3] = {{"state", py, &a1}, {"model", st, &a2}, {"bad", &fh.base, NULL}};

	/* a handler failing in save: no step, no tmp dir */
	assert_int_equal(ckpt_checkpointer_save(root, 1, items, 3, NULL), CKPT_EIO);
	assert_non_null(strstr(ckpt_error_last(), "bad"));
	assert_int_equal(count_entries(root), 0);
	/* failing in finalize: same */
	fh.fail_finalize = 1;
	assert_int_equal(ckpt_checkpointer_save(root, 1, items, 3, NULL), CKPT_EBUSY);
	assert_int_equal(count_entries(root), 0);
	/* a bad item name */
	ckpt_item_args badname = {"../x", py, &a1};
	assert_int_equal(ckpt_checkpointer_save(root, 1, &badname, 1, NULL), CKPT_EINVAL);
	assert_int_equal(count_entries(root), 0);

	/* two items */
	assert_int_equal(ckpt_checkpointer_save(root, 1, items, 2, NULL), 0);
	assert_int_equal(count_entries(root), 1);
	snprintf(dir, sizeof(dir), "%s/1", root);
	ckpt_item_args r[2] = {{"model", st, NULL}, {"state", py, NULL}};
	assert_int_equal(ckpt_checkpointer_restore(outs, dir, r, 2), 0);
	assert_int_equal(test_tree_cmp(t2, outs[0], "model"), 0);
	assert_int_equal(test_tree_cmp(t, outs[1], "state"), 0);
	ckpt_tree_free(outs[0]);
	ckpt_tree_free(outs[1]);
	ckpt_step *s = NULL;
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_step_item_count(s), 2);
	assert_string_equal(ckpt_step_item_name(s, 0), "model");
	assert_string_equal(ckpt_step_item_typestr(s, 0), CKPT_STANDARD_TYPESTR);
	assert_string_equal(ckpt_step_item_name(s, 1), "state");
	ckpt_step_free(s);

	/* restoring a missing item */
	ckpt_item_args miss = {"nope", py, NULL};
	assert_int_equal(ckpt_checkpointer_restore(outs, dir, &miss, 1), CKPT_ENOTFOUND);
	assert_null(outs[0]);

	/* overwrite refused, failing forced save keeps the old step, forced save replaces */
	assert_int_equal(ckpt_checkpointer_save(root, 1, items, 1, NULL), CKPT_EEXISTS);
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	o.force = 1;
	fh.fail_finalize = 0;
	assert_int_equal(ckpt_checkpointer_save(root, 1, &items[2], 1, &o), CKPT_EIO);
	assert_int_equal(count_entries(root), 1);
	assert_int_equal(ckpt_checkpointer_restore(outs, dir, r, 2), 0);
	ckpt_tree_free(outs[0]);
	ckpt_tree_free(outs[1]);
	assert_int_equal(ckpt_checkpointer_save(root, 1, items, 1, &o), 0);
	assert_int_equal(count_entries(root), 1);
	assert_int_equal(ckpt_checkpointer_restore(outs, dir, r, 2), CKPT_ENOTFOUND);
	assert_null(outs[0]);

	/* bad options: metrics must be an object */
	o.metrics = "[1]";
	assert_int_equal(ckpt_checkpointer_save(root, 2, items, 1, &o), CKPT_EINVAL);
	assert_int_equal(count_entries(root), 1);

	ckpt_handler_free(py);
	ckpt_handler_free(st);
	ckpt_tree_free(t);
	ckpt_tree_free(t2);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_items_and_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
