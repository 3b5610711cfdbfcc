/* handler_types_test.c — the table of handler types keeps its invariant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "ckpt/ckpt.h"
#include "ckpt/sys/handler.h"
#include "handler_types.h"

static const char *const KNOWN[] = {
    CKPT_PYTREE_TYPESTR, CKPT_STANDARD_TYPESTR, CKPT_JSON_TYPESTR,   CKPT_ARRAY_TYPESTR,
    CKPT_PROTO_TYPESTR,  CKPT_JAX_KEY_TYPESTR,  CKPT_NP_KEY_TYPESTR,
};

static void test_every_type_creates_its_own_handler(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(KNOWN) / sizeof(*KNOWN); i++) {
		const handler_type *t = handler_type_find(KNOWN[i]);
		ckpt_handler *h;
		assert_non_null(t);
		assert_ptr_equal(t, handler_type_find(t->typestr)); /* unique */
		assert_int_equal(t->format == NULL, t->is_tree);    /* format iff not a tree */
		if (t->format)
			assert_string_equal(t->format->typestr, t->typestr);
		assert_int_equal(ckpt_handler_new_default(&h, KNOWN[i]), 0);
		assert_string_equal(ckpt_handler_typestr(h), KNOWN[i]);
		ckpt_handler_free(h);
	}
}

static void test_trees_and_unknown_types(void **state)
{
	ckpt_handler *h;

	(void)state;
	assert_true(handler_type_is_tree(NULL)); /* no handler recorded: the default PyTree */
	assert_true(handler_type_is_tree(CKPT_STANDARD_TYPESTR));
	assert_false(handler_type_is_tree(CKPT_JSON_TYPESTR));
	assert_false(handler_type_is_tree("my.CustomHandler"));
	assert_null(handler_type_find("my.CustomHandler"));
	assert_int_equal(ckpt_handler_new_default(&h, "my.CustomHandler"), CKPT_EUNSUPPORTED);
}

static const char *future_typestr(const ckpt_handler *h)
{
	(void)h;
	return "future";
}

static void test_unknown_vtable_version_is_refused(void **state)
{
	/* A handler built against a newer header: no slot of its table is read. */
	static const ckpt_handler_vtable future = {.version = CKPT_HANDLER_VTABLE_VERSION + 1,
						   .typestr = future_typestr};
	ckpt_handler h = {&future};
	ckpt_handler_vtable vt;
	void *out;

	(void)state;
	assert_int_equal(ckpt_handler_save(&h, NULL, "x", NULL), CKPT_EVERSION);
	assert_non_null(strstr(ckpt_error_last(), "version"));
	assert_int_equal(ckpt_handler_restore(&out, &h, NULL, "x", NULL), CKPT_EVERSION);
	assert_string_equal(ckpt_handler_typestr(&h), "(unknown handler version)");
	ckpt_handler_free(&h);
	assert_int_equal(ckpt_handler_vtable_init(&vt, CKPT_HANDLER_VTABLE_VERSION), 0);
	assert_int_equal(vt.version, CKPT_HANDLER_VTABLE_VERSION);
	assert_null(vt.save);
	assert_int_equal(ckpt_handler_vtable_init(&vt, 99), CKPT_EVERSION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_type_creates_its_own_handler),
	    cmocka_unit_test(test_trees_and_unknown_types),
	    cmocka_unit_test(test_unknown_vtable_version_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
