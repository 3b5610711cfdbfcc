/*
 * composite_test.c — CompositeCheckpointHandler: the registry's rules,
 * saving items resolved from their args, restoring all or a subset (reading
 * only the chosen items' data), StepMetadata of finalized and in-progress
 * saves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "example.pb-c.h"
#include "unit/treecmp.h"
#include "fsutil.h"

#define BIG_ELEMS (1u << 20) /* 4 MiB of float32 */

/* {"w": float32[BIG_ELEMS], "step": 7} */
static ckpt_tree *big_tree(void)
{
	ckpt_tree *t = NULL, *w = NULL, *step = NULL;
	uint64_t shape[1] = {BIG_ELEMS};
	float *data = malloc(BIG_ELEMS * sizeof(float));

	assert_non_null(data);
	uint32_t x = 2463534242u; /* xorshift: data that does not compress */
	for (uint32_t i = 0; i < BIG_ELEMS; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		data[i] = (float)x;
	}
	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new_array(&w, CKPT_DTYPE_FLOAT32, 1, shape, data, CKPT_TREE_OWN),
			 0);
	assert_int_equal(ckpt_tree_add(t, "w", w), 0);
	assert_int_equal(ckpt_tree_new_int(&step, 7), 0);
	assert_int_equal(ckpt_tree_add(t, "step", step), 0);
	return t;
}

static void test_registry_rules(void **state)
{
	ckpt_registry *r = NULL;
	ckpt_handler *h = NULL, *got = NULL;

	(void)state;
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_pytree_handler_new(&h), 0);
	assert_int_equal(ckpt_registry_add(r, "state", h), 0);
	assert_ptr_equal(ckpt_registry_get(r, "state"), h);
	/* a second handler for the item: refused, naming both; the registry frees it */
	assert_int_equal(ckpt_json_handler_new(&h, NULL), 0);
	assert_int_equal(ckpt_registry_add(r, "state", h), CKPT_EEXISTS);
	assert_non_null(strstr(ckpt_error_last(), "PyTreeCheckpointHandler"));
	assert_non_null(strstr(ckpt_error_last(), "JsonCheckpointHandler"));
	/* args of another type for a registered item: refused, naming both */
	assert_int_equal(ckpt_registry_resolve(&got, r, "state", CKPT_JSON_TYPESTR), CKPT_EINVAL);
	assert_null(got);
	assert_non_null(strstr(ckpt_error_last(), "PyTreeCheckpointHandler"));
	assert_non_null(strstr(ckpt_error_last(), "JsonCheckpointHandler"));
	/* not registered, no type: not found; unknown type: unsupported */
	assert_int_equal(ckpt_registry_resolve(&got, r, "meta", NULL), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_registry_resolve(&got, r, "meta", "my.Handler"), CKPT_EUNSUPPORTED);
	assert_null(ckpt_registry_get(r, "meta"));
	/* resolved from the type: made once and kept */
	assert_int_equal(ckpt_registry_resolve(&got, r, "meta", CKPT_JSON_TYPESTR), 0);
	assert_string_equal(ckpt_handler_typestr(got), CKPT_JSON_TYPESTR);
	assert_ptr_equal(ckpt_registry_get(r, "meta"), got);
	/* every kind has a default handler */
	const char *kinds[] = {CKPT_PYTREE_TYPESTR, CKPT_STANDARD_TYPESTR, CKPT_JSON_TYPESTR,
			       CKPT_ARRAY_TYPESTR,  CKPT_PROTO_TYPESTR,    CKPT_JAX_KEY_TYPESTR,
			       CKPT_NP_KEY_TYPESTR};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		assert_int_equal(ckpt_handler_new_default(&h, kinds[i]), 0);
		assert_string_equal(ckpt_handler_typestr(h), kinds[i]);
		ckpt_handler_free(h);
	}
	ckpt_registry_free(r);
}

static void test_save_restore_subset(void **state)
{
	char *root = test_tmpdir(), dir[512];
	ckpt_tree *t = big_tree();
	ckpt_registry *r = NULL, *r2 = NULL;
	ckpt_handler *py = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_composite_result *res = NULL;
	ckpt_step *s = NULL;
	const char *meta = "{\"lr\": 0.001, \"big\": 123456789012345678901234567890}";

	(void)state;
	sa.item = t;
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_pytree_handler_new(&py), 0);
	assert_int_equal(ckpt_registry_add(r, "state", py), 0);
	ckpt_composite_arg items[] = {
	    {"state", NULL, &sa},		/* registered */
	    {"meta", CKPT_JSON_TYPESTR, meta},	/* resolved from its args */
	    {"notes", CKPT_JSON_TYPESTR, "[1, 2]"},
	};
	/* the same item twice in one save */
	ckpt_composite_arg twice[] = {items[1], items[1]};
	assert_int_equal(ckpt_composite_save_step(root, 1, r, twice, 2, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "meta"));
	/* args of another type for a registered item: nothing saved */
	ckpt_composite_arg wrong = {"state", CKPT_JSON_TYPESTR, "{}"};
	assert_int_equal(ckpt_composite_save_step(root, 1, r, &wrong, 1, NULL), CKPT_EINVAL);
	snprintf(dir, sizeof(dir), "%s/1", root);
	struct stat st;
	assert_int_not_equal(stat(dir, &st), 0);

	assert_int_equal(ckpt_composite_save_step(root, 1, r, items, 3, NULL), 0);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);

	/* all items, with a fresh registry: handlers made from the step's typestrs */
	assert_int_equal(ckpt_registry_new(&r2), 0);
	assert_int_equal(ckpt_composite_restore(&res, r2, s, NULL, 0), 0);
	assert_int_equal(ckpt_composite_result_count(res), 3);
	assert_string_equal(ckpt_composite_result_item(res, 0), "meta");
	assert_string_equal(ckpt_composite_result_typestr(res, 0), CKPT_JSON_TYPESTR);
	assert_string_equal(ckpt_composite_result_get(res, "meta"), meta);
	assert_string_equal(ckpt_composite_result_get(res, "notes"), "[1, 2]");
	assert_int_equal(test_tree_cmp(t, ckpt_composite_result_get(res, "state"), "state"), 0);
	assert_true(ckpt_store_bytes_read(ckpt_step_store(s)) >= BIG_ELEMS * sizeof(float) / 2);
	ckpt_composite_result_free(res);
	ckpt_step_free(s);

	/* a subset: the others NULL, and the big item's data never read */
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	ckpt_composite_arg pick = {"meta", NULL, NULL};
	assert_int_equal(ckpt_composite_restore(&res, r2, s, &pick, 1), 0);
	assert_string_equal(ckpt_composite_result_get(res, "meta"), meta);
	assert_null(ckpt_composite_result_get(res, "state"));
	assert_null(ckpt_composite_result_get(res, "notes"));
	assert_true(ckpt_store_bytes_read(ckpt_step_store(s)) < 64 * 1024);
	ckpt_composite_result_free(res);

	/* a chosen item not in the step; args of a handler the item was not saved by */
	ckpt_composite_arg missing = {"nope", NULL, NULL};
	assert_int_equal(ckpt_composite_restore(&res, r2, s, &missing, 1), CKPT_ENOTFOUND);
	assert_null(res);
	ckpt_composite_arg other = {"notes", CKPT_ARRAY_TYPESTR, NULL};
	ckpt_registry *r3 = NULL;
	assert_int_equal(ckpt_registry_new(&r3), 0);
	assert_int_equal(ckpt_composite_restore(&res, r3, s, &other, 1), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "JsonCheckpointHandler"));
	assert_non_null(strstr(ckpt_error_last(), "ArrayCheckpointHandler"));
	ckpt_registry_free(r3);
	ckpt_step_free(s);

	ckpt_registry_free(r);
	ckpt_registry_free(r2);
	ckpt_tree_free(t);
	ckpt_rmtree(root);
	free(root);
}

static void test_step_metadata(void **state)
{
	char *root = test_tmpdir(), dir[512];
	ckpt_tree *t = big_tree();
	ckpt_registry *r = NULL;
	ckpt_step_writer *w = NULL;
	ckpt_step_metadata *m = NULL;
	ckpt_step *s = NULL;
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	struct stat st;

	(void)state;
	sa.item = t;
	o.metrics = "{\"loss\": 0.25}";
	o.custom_metadata = "{\"run\": \"a\"}";
	assert_int_equal(ckpt_registry_new(&r), 0);
	ckpt_composite_arg items[] = {{"state", CKPT_STANDARD_TYPESTR, &sa},
				      {"meta", CKPT_JSON_TYPESTR, "{\"a\": 1}"}};

	/* a save in progress, seen from its temporary directory */
	assert_int_equal(ckpt_step_writer_open(&w, root, 3, &o), 0);
	assert_int_equal(ckpt_composite_save(r, w, items, 2), 0);
	/* saving an item again with another handler: refused, naming both */
	ckpt_composite_arg again = {"meta", CKPT_PYTREE_TYPESTR, &sa};
	ckpt_registry *r2 = NULL;
	assert_int_equal(ckpt_registry_new(&r2), 0);
	assert_int_equal(ckpt_composite_save(r2, w, &again, 1), CKPT_EEXISTS);
	assert_non_null(strstr(ckpt_error_last(), "JsonCheckpointHandler"));
	assert_non_null(strstr(ckpt_error_last(), "PyTreeCheckpointHandler"));
	ckpt_registry_free(r2);
	assert_int_equal(
	    ckpt_composite_metadata_from_temporary_paths(&m, r, ckpt_step_writer_dir(w)), 0);
	assert_int_equal(m->nitems, 2);
	assert_string_equal(m->items[0], "meta");
	assert_string_equal(m->item_handlers[1], CKPT_STANDARD_TYPESTR);
	assert_null(m->item_metadata[1]);
	assert_true(m->init_timestamp_nsecs > 0);
	assert_int_equal(m->commit_timestamp_nsecs, 0);
	assert_non_null(strstr(m->metrics, "loss"));
	ckpt_step_metadata_free(m);
	assert_int_equal(ckpt_step_writer_finalize(w), 0);

	/* the finalized step: item metadata without the data, and no stray file */
	snprintf(dir, sizeof(dir), "%s/3/_CHECKPOINT_METADATA", root);
	assert_int_not_equal(stat(dir, &st), 0);
	snprintf(dir, sizeof(dir), "%s/3", root);
	assert_int_equal(ckpt_composite_metadata_from_temporary_paths(&m, r, dir), CKPT_ENOTFOUND);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_composite_metadata(&m, r, s), 0);
	assert_int_equal(m->nitems, 2);
	assert_string_equal(m->items[1], "state");
	const ckpt_tree *meta = m->item_metadata[1], *w0 = NULL;
	assert_non_null(meta);
	assert_int_equal(ckpt_tree_lookup((ckpt_tree **)&w0, meta, "w"), 0);
	assert_int_equal(ckpt_tree_shape(w0)[0], BIG_ELEMS);
	assert_null(ckpt_tree_data(w0));
	assert_true(m->commit_timestamp_nsecs >= m->init_timestamp_nsecs);
	assert_true(m->init_timestamp_nsecs > 0);
	assert_non_null(strstr(m->custom_metadata, "\"run\""));
	assert_true(ckpt_store_bytes_read(ckpt_step_store(s)) < 64 * 1024);
	ckpt_step_metadata_free(m);
	ckpt_step_free(s);

	ckpt_registry_free(r);
	ckpt_tree_free(t);
	ckpt_rmtree(root);
	free(root);
}

/* A failed restore registers nothing; restoring all items of a step with a
 * proto item needs its type, else that item alone comes back NULL. */
static void test_restore_retry_and_proto(void **state)
{
	char *root = test_tmpdir(), dir[512];
	Example__Config cfg = EXAMPLE__CONFIG__INIT;
	ckpt_registry *r = NULL;
	ckpt_composite_result *res = NULL;
	ckpt_handler *ph = NULL;
	ckpt_step *s = NULL;

	(void)state;
	cfg.name = "run-7";
	cfg.step = -42;
	assert_int_equal(ckpt_registry_new(&r), 0);
	ckpt_composite_arg items[] = {{"meta", CKPT_JSON_TYPESTR, "{\"a\": 1}"},
				      {"cfg", CKPT_PROTO_TYPESTR, &cfg}};
	assert_int_equal(ckpt_composite_save_step(root, 1, r, items, 2, NULL), 0);
	ckpt_registry_free(r);
	snprintf(dir, sizeof(dir), "%s/1", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);

	/* args of the wrong type, then of the right one: the first registered nothing */
	assert_int_equal(ckpt_registry_new(&r), 0);
	ckpt_composite_arg wrong = {"meta", CKPT_ARRAY_TYPESTR, NULL};
	assert_int_equal(ckpt_composite_restore(&res, r, s, &wrong, 1), CKPT_EINVAL);
	assert_null(ckpt_registry_get(r, "meta"));
	/* a good item then a bad one: checked before anything is registered or read */
	ckpt_composite_arg two[] = {{"meta", CKPT_JSON_TYPESTR, NULL},
				    {"cfg", CKPT_ARRAY_TYPESTR, NULL}};
	assert_int_equal(ckpt_composite_restore(&res, r, s, two, 2), CKPT_EINVAL);
	assert_null(res);
	assert_null(ckpt_registry_get(r, "meta"));
	assert_int_equal(ckpt_store_bytes_read(ckpt_step_store(s)), 0);
	ckpt_composite_arg right = {"meta", CKPT_JSON_TYPESTR, NULL};
	assert_int_equal(ckpt_composite_restore(&res, r, s, &right, 1), 0);
	assert_string_equal(ckpt_composite_result_get(res, "meta"), "{\"a\": 1}");
	ckpt_composite_result_free(res);

	/* all items, no proto type known: cfg alone is left out */
	assert_int_equal(ckpt_composite_restore(&res, r, s, NULL, 0), 0);
	assert_non_null(ckpt_composite_result_get(res, "meta"));
	assert_null(ckpt_composite_result_get(res, "cfg"));
	ckpt_composite_result_free(res);
	ckpt_registry_free(r);

	/* all items with a proto handler that knows its type */
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_proto_handler_new_for(&ph, NULL, &example__config__descriptor), 0);
	assert_int_equal(ckpt_registry_add(r, "cfg", ph), 0);
	assert_int_equal(ckpt_composite_restore(&res, r, s, NULL, 0), 0);
	const Example__Config *got = ckpt_composite_result_get(res, "cfg");
	assert_non_null(got);
	assert_string_equal(got->name, "run-7");
	assert_int_equal(got->step, -42);
	ckpt_composite_result_free(res);
	ckpt_registry_free(r);

	ckpt_step_free(s);
	ckpt_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_registry_rules),
	    cmocka_unit_test(test_save_restore_subset),
	    cmocka_unit_test(test_step_metadata),
	    cmocka_unit_test(test_restore_retry_and_proto),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
