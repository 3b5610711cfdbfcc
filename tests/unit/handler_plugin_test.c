/*
 * handler_plugin_test.c — handler plugins (ckpt/sys/handler.h): the example
 * plugin (docs/examples/handler_plugin.c) loaded from a file, a directory
 * and CKPT_HANDLER_PATH, its handler found by type string for save,
 * restore and ckpt_item_describe; and loads that fail, each with a message
 * naming the file (no init function, another ABI, not a shared object).
 *
 * The plugins are found beside this program: $B/tests/unit/.. ->
 * $B/examples/handler_plugin.so and the .so files of $B/tests/plugins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/composite.h"
#include "ckpt/error.h"
#include "ckpt/json.h"
#include "ckpt/sys/handler.h"
#include "fsutil.h"

#define LINES "example.lines_checkpoint_handler.LinesCheckpointHandler"

static char build[PATH_MAX]; /* $B */

static const char *path_of(const char *rel)
{
	static char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", build, rel);
	return p;
}

static void test_load_errors(void **state)
{
	char bogus[] = "/tmp/ckpt_plugXXXXXX";
	char file[PATH_MAX];
	FILE *f;

	assert_int_equal(ckpt_handler_plugin_load(NULL), CKPT_EINVAL);
	assert_int_equal(ckpt_handler_plugin_load("/nonexistent/x.so"), CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "/nonexistent/x.so"));

	assert_int_equal(ckpt_handler_plugin_load(path_of("tests/plugins/no_init.so")),
			 CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "no_init.so"));
	assert_non_null(strstr(ckpt_error_last(), "ckpt_handler_plugin_init"));

	assert_int_equal(ckpt_handler_plugin_load(path_of("tests/plugins/wrong_abi.so")),
			 CKPT_EVERSION);
	assert_non_null(strstr(ckpt_error_last(), "wrong_abi.so"));
	assert_non_null(strstr(ckpt_error_last(), "built for ABI 2"));

	/* not a shared object: dlerror's message, with the file */
	assert_non_null(mkdtemp(bogus));
	snprintf(file, sizeof(file), "%s/text.so", bogus);
	assert_non_null(f = fopen(file, "w"));
	fputs("not an ELF file\n", f);
	fclose(f);
	assert_int_equal(ckpt_handler_plugin_load(file), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), file));
	/* a directory: its .so files in name order; the first error stops it */
	assert_int_equal(ckpt_handler_plugin_load(bogus), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "text.so"));
	assert_int_equal(ckpt_handler_plugin_load_path("/nonexistent/y.so"), CKPT_ENOTFOUND);
	ckpt_rmtree(bogus);

	/* a type info of a version this library does not know */
	ckpt_handler_type_info info = {99, "x.Y", NULL, NULL, NULL, NULL};
	assert_int_equal(ckpt_handler_type_register_info(&info), CKPT_EINVAL);
}

static void test_example_plugin(void **state)
{
	char root[] = "/tmp/ckpt_plugXXXXXX", dir[PATH_MAX];
	ckpt_registry *r = NULL;
	ckpt_composite_result *res = NULL;
	ckpt_handler *h = NULL;
	ckpt_step *s = NULL;
	char *desc = NULL;
	const char *text = "lr=0.1\n\nname=run 7\n";

	/* unknown before loading */
	assert_int_equal(ckpt_handler_new_default(&h, LINES), CKPT_EUNSUPPORTED);
	/* through CKPT_HANDLER_PATH, with empty entries; loading again is a no-op */
	char list[2 * PATH_MAX];
	snprintf(list, sizeof(list), ":%s:", path_of("examples/handler_plugin.so"));
	setenv("CKPT_HANDLER_PATH", list, 1);
	assert_int_equal(ckpt_handler_plugin_load_path(NULL), 0);
	assert_int_equal(ckpt_handler_plugin_load(path_of("examples/handler_plugin.so")), 0);
	assert_int_equal(ckpt_handler_plugin_load(path_of("examples")), 0);
	unsetenv("CKPT_HANDLER_PATH");
	assert_int_equal(ckpt_handler_new_default(&h, LINES), 0);
	assert_string_equal(ckpt_handler_typestr(h), LINES);
	ckpt_handler_free(h);

	/* save by type string, restore with an empty registry, describe */
	assert_non_null(mkdtemp(root));
	assert_int_equal(ckpt_registry_new(&r), 0);
	ckpt_composite_arg bad = {"notes", LINES, "no equals sign\n"};
	assert_int_equal(ckpt_composite_save_step(root, 1, r, &bad, 1, NULL), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "without '='"));
	ckpt_composite_arg args[] = {{"notes", LINES, text}, {"cfg", CKPT_JSON_TYPESTR, "{}"}};
	assert_int_equal(ckpt_composite_save_step(root, 1, r, args, 2, NULL), 0);
	ckpt_registry_free(r);

	snprintf(dir, sizeof(dir), "%s/1", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_composite_restore(&res, r, s, NULL, 0), 0);
	assert_string_equal(ckpt_composite_result_get(res, "notes"), text);
	assert_string_equal(ckpt_composite_result_get(res, "cfg"), "{}");
	ckpt_composite_result_free(res);
	ckpt_registry_free(r);

	assert_int_equal(ckpt_item_describe(&desc, s, "notes"), 0);
	assert_string_equal(desc, "{\"entries\": 2}");
	free(desc);
	assert_int_equal(ckpt_item_describe(&desc, s, "cfg"), 0); /* built in: nothing */
	assert_null(desc);
	assert_int_equal(ckpt_item_describe(&desc, s, "nope"), CKPT_ENOTFOUND);
	ckpt_step_free(s);
	ckpt_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_example_plugin),
	};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return 1;
	exe[n] = '\0';
	snprintf(build, sizeof(build), "%s/../..", dirname(exe)); /* $B/tests/unit/.. */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
