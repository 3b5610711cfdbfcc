/*
 * composite_orbax_test.c — CompositeCheckpointHandler as Orbax's reference
 * describes it: an empty Composite() restores everything, items of unknown
 * handlers are left out of a restore of everything, a Proto item without a
 * type is None (NULL), async_save through the registry (async checkpointer
 * and manager), and handler types registered from outside the library
 * (ckpt_handler_type_register) found by the type string a step records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ckpt/sys/handler.h"
#include "ckpt/sys/error.h"
#include "example.pb-c.h"
#include "unit/treecmp.h"
#include "fsutil.h"

/* ---- a handler written outside the library: one integer as text ---- */

#define COUNTER_TYPESTR "example.handlers.CounterCheckpointHandler"

struct counter {
	ckpt_handler base;
	int restores;
};

static int counter_made;

static const char *counter_typestr(const ckpt_handler *h)
{
	(void)h;
	return COUNTER_TYPESTR;
}

static int counter_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	char key[256], txt[32];
	int n = snprintf(txt, sizeof(txt), "%lld", (long long)*(const int64_t *)args);

	(void)h;
	snprintf(key, sizeof(key), "%s/count", item);
	return ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), txt, (size_t)n, NULL);
}

static int counter_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			   const void *args)
{
	char key[256];
	void *v = NULL;
	size_t len = 0;
	int64_t *x = malloc(sizeof(*x));
	int rc;

	(void)args;
	*out = NULL;
	snprintf(key, sizeof(key), "%s/count", item);
	if (!x)
		return CKPT_ENOMEM;
	rc = ckpt_store_get(&v, &len, ckpt_step_store(s), key, strlen(key));
	if (rc) {
		free(x);
		return rc;
	}
	char buf[32] = {0};
	memcpy(buf, v, len < 31 ? len : 31);
	free(v);
	*x = strtoll(buf, NULL, 10);
	((struct counter *)h)->restores++;
	*out = x;
	return 0;
}

static int counter_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	(void)h;
	(void)s;
	(void)item;
	*out = strdup("counter");
	return *out ? 0 : CKPT_ENOMEM;
}

static void counter_close(ckpt_handler *h)
{
	free(h);
}

static const ckpt_handler_vtable counter_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = counter_typestr,
    .save = counter_save,
    .restore = counter_restore,
    .metadata = counter_metadata,
    .close = counter_close,
};

static int counter_new(ckpt_handler **out)
{
	struct counter *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return CKPT_ENOMEM;
	c->base.vt = &counter_vt;
	counter_made++;
	*out = &c->base;
	return 0;
}

/* ---- tests ---- */

static void test_register_type(void **state)
{
	char *root = test_tmpdir(), dir[512];
	ckpt_registry *r = NULL;
	ckpt_composite_result *res = NULL;
	ckpt_step_metadata *m = NULL;
	ckpt_step *s = NULL;
	int64_t count = 1234;

	(void)state;
	/* before registration the type is unknown */
	assert_int_equal(ckpt_registry_new(&r), 0);
	ckpt_composite_arg items[] = {{"counter", COUNTER_TYPESTR, &count},
				      {"meta", CKPT_JSON_TYPESTR, "{\"a\": 1}"}};
	assert_int_equal(ckpt_composite_save_step(root, 1, r, items, 2, NULL), CKPT_EUNSUPPORTED);
	ckpt_registry_free(r);

	assert_int_equal(ckpt_handler_type_register(COUNTER_TYPESTR, counter_new), 0);
	assert_int_equal(ckpt_handler_type_register(COUNTER_TYPESTR, counter_new), CKPT_EEXISTS);
	assert_int_equal(ckpt_handler_type_register(CKPT_JSON_TYPESTR, counter_new), CKPT_EEXISTS);
	assert_int_equal(ckpt_handler_type_register("", counter_new), CKPT_EINVAL);
	assert_int_equal(ckpt_handler_type_register("x.Y", NULL), CKPT_EINVAL);

	/* saved by type string alone, through the registry */
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_composite_save_step(root, 1, r, items, 2, NULL), 0);
	ckpt_registry_free(r);

	/* restored with an empty registry: the handler is made from what the step records */
	snprintf(dir, sizeof(dir), "%s/1", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_string_equal(ckpt_step_item_typestr(s, 0), COUNTER_TYPESTR);
	int made = counter_made;
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_composite_restore(&res, r, s, NULL, 0), 0);
	const int64_t *got = ckpt_composite_result_get(res, "counter");
	assert_non_null(got);
	assert_int_equal(*got, 1234);
	assert_int_equal(counter_made, made + 1);
	ckpt_composite_result_free(res);
	/* and listed: its item metadata comes from its own metadata slot */
	assert_int_equal(ckpt_composite_metadata(&m, r, s), 0);
	assert_int_equal(m->nitems, 2);
	assert_string_equal(m->items[0], "counter");
	assert_string_equal(m->item_handlers[0], COUNTER_TYPESTR);
	assert_string_equal(m->item_metadata[0], "counter");
	ckpt_step_metadata_free(m);
	ckpt_registry_free(r);
	/* the library's default handler of that type */
	ckpt_handler *h = NULL;
	assert_int_equal(ckpt_handler_new_default(&h, COUNTER_TYPESTR), 0);
	assert_string_equal(ckpt_handler_typestr(h), COUNTER_TYPESTR);
	ckpt_handler_free(h);
	ckpt_step_free(s);
	ckpt_rmtree(root);
	free(root);
}

/* Unknown handlers left out of restore-all; an empty Composite() is everything;
 * a proto without type is NULL, chosen or not. */
static void test_restore_edges(void **state)
{
	char *root = test_tmpdir(), dir[512], md[600];
	Example__Config cfg = EXAMPLE__CONFIG__INIT;
	ckpt_registry *r = NULL;
	ckpt_composite_result *res = NULL;
	ckpt_step *s = NULL;
	ckpt_composite_arg none[1];

	(void)state;
	cfg.name = "x";
	assert_int_equal(ckpt_registry_new(&r), 0);
	ckpt_composite_arg items[] = {{"meta", CKPT_JSON_TYPESTR, "[1, 2]"},
				      {"cfg", CKPT_PROTO_TYPESTR, &cfg}};
	assert_int_equal(ckpt_composite_save_step(root, 1, r, items, 2, NULL), 0);
	ckpt_registry_free(r);
	snprintf(dir, sizeof(dir), "%s/1", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);

	/* n = 0 with a non-NULL array: everything, as Orbax's empty Composite() */
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_composite_restore(&res, r, s, none, 0), 0);
	assert_string_equal(ckpt_composite_result_get(res, "meta"), "[1, 2]");
	assert_null(ckpt_composite_result_get(res, "cfg")); /* no message type: None */
	ckpt_composite_result_free(res);
	/* the proto chosen without args or type: None too, not an error */
	ckpt_composite_arg cfg_only = {"cfg", NULL, NULL};
	assert_int_equal(ckpt_composite_restore(&res, r, s, &cfg_only, 1), 0);
	assert_int_equal(ckpt_composite_result_count(res), 2);
	assert_null(ckpt_composite_result_get(res, "cfg"));
	ckpt_composite_result_free(res);
	ckpt_registry_free(r);
	ckpt_step_free(s);

	/* a step recording a handler this library does not know: left out of restore-all,
	 * an error when chosen */
	snprintf(md, sizeof(md), "%s/2", root);
	ckpt_step_writer *w = NULL;
	assert_int_equal(ckpt_step_writer_open(&w, root, 2, NULL), 0);
	assert_int_equal(ckpt_step_writer_add_item(w, "odd", "their.lib.OddHandler"), 0);
	assert_int_equal(ckpt_batch_put(ckpt_step_writer_batch(w), "odd/x", 5, "1", 1, NULL), 0);
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_composite_save(r, w, items, 1), 0);
	assert_int_equal(ckpt_step_writer_finalize(w), 0);
	assert_int_equal(ckpt_step_open(&s, md, NULL), 0);
	assert_int_equal(ckpt_composite_restore(&res, r, s, NULL, 0), 0);
	assert_int_equal(ckpt_composite_result_count(res), 2);
	assert_string_equal(ckpt_composite_result_get(res, "meta"), "[1, 2]");
	assert_null(ckpt_composite_result_get(res, "odd"));
	ckpt_composite_result_free(res);
	ckpt_composite_arg odd = {"odd", NULL, NULL};
	assert_int_equal(ckpt_composite_restore(&res, r, s, &odd, 1), CKPT_EUNSUPPORTED);
	assert_non_null(strstr(ckpt_error_last(), "OddHandler"));
	ckpt_registry_free(r);
	ckpt_step_free(s);
	ckpt_rmtree(root);
	free(root);
}

/* Composite async_save: the async checkpointer and the manager through a registry. */
static void test_async_composite(void **state)
{
	char *root = test_tmpdir(), dir[512];
	ckpt_registry *r = NULL;
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_tree *t = test_tree_every_kind(1);
	ckpt_composite_result *res = NULL;
	ckpt_step *s = NULL;

	(void)state;
	sa.item = t;
	assert_int_equal(ckpt_registry_new(&r), 0);
	ckpt_composite_arg items[] = {{"state", CKPT_PYTREE_TYPESTR, &sa},
				      {"meta", CKPT_JSON_TYPESTR, "{\"lr\": 0.1}"}};
	assert_int_equal(ckpt_async_new(&a, NULL), 0);
	assert_int_equal(ckpt_composite_async_save(a, &f, root, 5, r, items, 2, NULL, NULL), 0);
	/* copy mode: the caller may free its tree at once */
	ckpt_tree *keep = NULL;
	assert_int_equal(ckpt_tree_clone(&keep, t), 0);
	ckpt_tree_free(t);
	assert_int_equal(ckpt_future_wait(f), 0);
	ckpt_future_free(f);
	/* an item given twice, and an unknown type: refused before anything starts */
	ckpt_composite_arg twice[] = {items[1], items[1]};
	assert_int_equal(ckpt_composite_async_save(a, &f, root, 6, r, twice, 2, NULL, NULL),
			 CKPT_EINVAL);
	assert_null(f);
	ckpt_composite_arg unknown = {"x", "no.such.Handler", NULL};
	assert_int_equal(ckpt_composite_async_save(a, NULL, root, 6, r, &unknown, 1, NULL, NULL),
			 CKPT_EUNSUPPORTED);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	ckpt_async_free(a);

	snprintf(dir, sizeof(dir), "%s/5", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_composite_restore(&res, r, s, NULL, 0), 0);
	assert_int_equal(test_tree_cmp(keep, ckpt_composite_result_get(res, "state"), "root"), 0);
	assert_string_equal(ckpt_composite_result_get(res, "meta"), "{\"lr\": 0.1}");
	ckpt_composite_result_free(res);
	ckpt_step_free(s);

	/* the manager, with the registry's handlers */
	ckpt_manager *m = NULL;
	ckpt_item_args ia[2];
	sa.item = keep;
	assert_int_equal(ckpt_composite_item_args(ia, r, items, 2), 0);
	assert_ptr_equal(ia[0].handler, ckpt_registry_get(r, "state"));
	char mroot[600];
	snprintf(mroot, sizeof(mroot), "%s/mgr", root);
	assert_int_equal(ckpt_manager_open(&m, mroot, NULL), 0);
	assert_int_equal(ckpt_manager_save(m, 7, ia, 2, NULL, NULL, 1), 0);
	assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
	void *outs[2] = {NULL, NULL};
	ia[0].args = ia[1].args = NULL; /* restore args now: everything as saved */
	int mr = ckpt_manager_restore(outs, m, 7, ia, 2);
	if (mr)
		fprintf(stderr, "manager restore: %s\n", ckpt_error_last());
	assert_int_equal(mr, 0);
	assert_int_equal(test_tree_cmp(keep, outs[0], "root"), 0);
	ckpt_handler_restored_free(ia[0].handler, outs[0]);
	ckpt_handler_restored_free(ia[1].handler, outs[1]);
	ckpt_manager_free(m);
	ckpt_registry_free(r);
	ckpt_tree_free(keep);
	ckpt_rmtree(root);
	free(root);
}

/* ArrayRestoreArgs(restore_args=RestoreArgs(dtype=...)): a cast on restore. */
static void test_array_restore_cast(void **state)
{
	char *root = test_tmpdir(), dir[512];
	float v[3] = {1.5f, 2.5f, -3.0f};
	uint64_t sh[1] = {3};
	ckpt_tree *a = NULL;
	ckpt_handler *h = NULL;
	void *out = NULL;

	(void)state;
	assert_int_equal(ckpt_tree_new_array(&a, CKPT_DTYPE_FLOAT32, 1, sh, v, CKPT_TREE_COPY), 0);
	assert_int_equal(ckpt_array_handler_new(&h, NULL), 0);
	ckpt_item_args it = {"w", h, a};
	assert_int_equal(ckpt_checkpointer_save(root, 1, &it, 1, NULL), 0);
	snprintf(dir, sizeof(dir), "%s/1", root);

	ckpt_array_restore_args ra = CKPT_ARRAY_RESTORE_ARGS_INIT;
	ra.dtype = CKPT_DTYPE_FLOAT64;
	ckpt_item_args ri = {"w", h, &ra};
	assert_int_equal(ckpt_checkpointer_restore(&out, dir, &ri, 1), 0);
	assert_int_equal(ckpt_tree_dtype(out), CKPT_DTYPE_FLOAT64);
	assert_true(((const double *)ckpt_tree_data(out))[2] == -3.0);
	ckpt_tree_free(out);
	ra.dtype = CKPT_DTYPE_INT32; /* as numpy's astype: toward zero */
	assert_int_equal(ckpt_checkpointer_restore(&out, dir, &ri, 1), 0);
	assert_int_equal(ckpt_tree_dtype(out), CKPT_DTYPE_INT32);
	assert_int_equal(((const int32_t *)ckpt_tree_data(out))[1], 2);
	ckpt_tree_free(out);
	ri.args = NULL; /* as saved */
	assert_int_equal(ckpt_checkpointer_restore(&out, dir, &ri, 1), 0);
	assert_int_equal(ckpt_tree_dtype(out), CKPT_DTYPE_FLOAT32);
	ckpt_tree_free(out);
	ckpt_array_restore_args zero;
	memset(&zero, 0, sizeof(zero));
	ri.args = &zero;
	assert_int_equal(ckpt_checkpointer_restore(&out, dir, &ri, 1), CKPT_EINVAL);
	ckpt_tree_free(out);
	ckpt_handler_free(h);
	ckpt_tree_free(a);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_type),
	    cmocka_unit_test(test_restore_edges),
	    cmocka_unit_test(test_async_composite),
	    cmocka_unit_test(test_array_restore_cast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
