/*
 * async_options_test.c — Orbax's AsyncOptions in the async checkpointer and
 * the manager: timeout_secs (a save that takes longer fails with
 * CKPT_ETIMEDOUT and leaves no step), post_finalization (called once per
 * save, after the step is visible, before its future completes), and the
 * performance_metrics the async save records in _CHECKPOINT_METADATA.
 *
 * A "sleep" item's save sleeps the milliseconds its args give: a save with a
 * timeout shorter than that sleep cannot finish in time, on any machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt/async.h"
#include "ckpt/composite.h"
#include "ckpt/error.h"
#include "ckpt/manager.h"
#include "ckpt/sys/handler.h"
#include "fsutil.h"

static const char *s_typestr(const ckpt_handler *h)
{
	(void)h;
	return "test.SleepHandler";
}

static int s_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	long ms = *(const long *)args;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	char key[64];

	while (nanosleep(&ts, &ts) != 0)
		;
	snprintf(key, sizeof(key), "%s/x", item);
	return ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), "1", 1, NULL);
}

static int s_snapshot(void **out, ckpt_handler *h, const void *args)
{
	long *c = malloc(sizeof(*c));
	if (!c)
		return CKPT_ENOMEM;
	*c = *(const long *)args;
	*out = c;
	return 0;
}

static void s_snapshot_free(ckpt_handler *h, void *snap)
{
	free(snap);
}

static const ckpt_handler_vtable sleep_vt = {.version = CKPT_HANDLER_VTABLE_VERSION,
					     .typestr = s_typestr,
					     .save = s_save,
					     .snapshot = s_snapshot,
					     .snapshot_free = s_snapshot_free};
static ckpt_handler sleeper = {&sleep_vt};

/* What post_finalization saw. */
struct seen {
	char root[128];
	int calls;
	uint64_t step;
	int status;
	int step_visible; /* ROOT/<step> existed when it was called */
};

static void on_final(uint64_t step, int status, void *payload)
{
	struct seen *s = payload;
	char dir[160];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/%llu", s->root, (unsigned long long)step);
	s->calls++;
	s->step = step;
	s->status = status;
	s->step_visible = stat(dir, &st) == 0;
}

static int step_exists(const char *root, uint64_t step)
{
	char dir[160];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/%llu", root, (unsigned long long)step);
	return stat(dir, &st) == 0;
}

static void test_timeout(void **state)
{
	char root[] = "/tmp/ckpt_aoptXXXXXX";
	struct seen seen = {0};
	ckpt_async_options o = CKPT_ASYNC_OPTIONS_INIT;
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;
	long ms = 300;
	ckpt_item_args it = {"slow", &sleeper, &ms};

	assert_non_null(mkdtemp(root));
	snprintf(seen.root, sizeof(seen.root), "%s", root);
	o.timeout_secs = 0.05;
	o.post_finalization = on_final;
	o.post_finalization_payload = &seen;
	assert_int_equal(ckpt_async_new(&a, &o), 0);
	assert_int_equal(ckpt_async_save(a, &f, root, 1, &it, 1, NULL, NULL), 0);
	assert_int_equal(ckpt_future_wait(f), CKPT_ETIMEDOUT);
	assert_non_null(strstr(ckpt_error_last(), "timeout"));
	assert_int_equal(seen.calls, 1); /* before the future completed */
	assert_int_equal(seen.status, CKPT_ETIMEDOUT);
	assert_int_equal(seen.step, 1);
	assert_false(seen.step_visible);
	assert_false(step_exists(root, 1));
	ckpt_future_free(f);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0); /* reported by the future */
	ckpt_async_free(a);
	assert_int_equal(seen.calls, 1);

	/* a negative timeout is refused */
	o.timeout_secs = -1;
	assert_int_equal(ckpt_async_new(&a, &o), CKPT_EINVAL);
	ckpt_rmtree(root);
}

static void test_callback_and_metrics(void **state)
{
	char root[] = "/tmp/ckpt_aoptXXXXXX";
	struct seen seen = {0};
	ckpt_async_options o = CKPT_ASYNC_OPTIONS_INIT;
	ckpt_async *a = NULL;
	ckpt_future *f = NULL;
	ckpt_step *s = NULL;
	ckpt_step_metadata *md = NULL;
	ckpt_registry *r = NULL;
	long ms = 1;
	ckpt_item_args it = {"fast", &sleeper, &ms};
	char dir[160];

	assert_non_null(mkdtemp(root));
	snprintf(seen.root, sizeof(seen.root), "%s", root);
	o.timeout_secs = 3600;
	o.post_finalization = on_final;
	o.post_finalization_payload = &seen;
	assert_int_equal(ckpt_async_new(&a, &o), 0);
	assert_int_equal(ckpt_async_save(a, &f, root, 7, &it, 1, NULL, NULL), 0);
	assert_int_equal(ckpt_future_wait(f), 0);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.status, 0);
	assert_int_equal(seen.step, 7);
	assert_true(seen.step_visible); /* called after the rename */
	ckpt_future_free(f);
	ckpt_async_free(a);
	assert_int_equal(seen.calls, 1);

	/* performance_metrics: Orbax's SaveStepStatistics names */
	snprintf(dir, sizeof(dir), "%s/7", root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	cJSON *m = cJSON_Parse(ckpt_step_metadata_json(s));
	const cJSON *pm = cJSON_GetObjectItemCaseSensitive(m, "performance_metrics");
	assert_true(cJSON_IsObject(pm));
	const char *nums[] = {"step", "wait_for_prev_start_time", "wait_for_prev_duration_secs",
			      "checkpointer_blocking_start_time",
			      "checkpointer_blocking_duration_secs"};
	for (size_t i = 0; i < sizeof(nums) / sizeof(*nums); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(pm, nums[i]);
		assert_true(cJSON_IsNumber(v));
		assert_true(v->valuedouble >= 0);
	}
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(pm, "step")->valuedouble, 7);
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(pm, "synchronous")));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(pm, "event_type")->valuestring,
			    "save");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(pm, "directory")->valuestring, root);
	cJSON_Delete(m);
	assert_int_equal(ckpt_registry_new(&r), 0);
	assert_int_equal(ckpt_composite_metadata(&md, r, s), 0);
	assert_non_null(md->performance_metrics);
	assert_non_null(strstr(md->performance_metrics, "checkpointer_blocking_duration_secs"));
	ckpt_step_metadata_free(md);
	ckpt_registry_free(r);
	ckpt_step_free(s);
	ckpt_rmtree(root);
}

/* A version 1 struct (no timeout, no callback, a version 1 writer) still works. */
static void test_version1(void **state)
{
	char root[] = "/tmp/ckpt_aoptXXXXXX";
	ckpt_async_options o = CKPT_ASYNC_OPTIONS_INIT;
	ckpt_async *a = NULL;
	long ms = 0;
	ckpt_item_args it = {"x", &sleeper, &ms};

	assert_non_null(mkdtemp(root));
	o.version = 1;
	o.writer.version = 1;
	o.timeout_secs = 1e-9; /* beyond a version 1 struct: unread */
	assert_int_equal(ckpt_async_new(&a, &o), 0);
	assert_int_equal(ckpt_async_save(a, NULL, root, 1, &it, 1, NULL, NULL), 0);
	assert_int_equal(ckpt_async_wait_until_finished(a), 0);
	ckpt_async_free(a);
	assert_true(step_exists(root, 1));
	ckpt_rmtree(root);
}

static void test_manager(void **state)
{
	char root[] = "/tmp/ckpt_aoptXXXXXX";
	struct seen seen = {0};
	ckpt_manager_options mo = CKPT_MANAGER_OPTIONS_INIT;
	ckpt_manager *m = NULL;
	long slow = 300, fast = 0;
	ckpt_item_args it = {"x", &sleeper, &fast};

	assert_non_null(mkdtemp(root));
	snprintf(seen.root, sizeof(seen.root), "%s", root);
	mo.async.post_finalization = on_final;
	mo.async.post_finalization_payload = &seen;
	/* asynchronous: the callback runs once per save, after it is visible */
	assert_int_equal(ckpt_manager_open(&m, root, &mo), 0);
	assert_int_equal(ckpt_manager_save(m, 1, &it, 1, NULL, NULL, 0), 0);
	assert_int_equal(ckpt_manager_wait_until_finished(m), 0);
	assert_int_equal(seen.calls, 1);
	assert_true(seen.step_visible);
	ckpt_manager_free(m);

	/* synchronous with a timeout: CKPT_ETIMEDOUT, no step, the callback told */
	mo.enable_async = 0;
	mo.async.timeout_secs = 0.05;
	it.args = &slow;
	assert_int_equal(ckpt_manager_open(&m, root, &mo), 0);
	assert_int_equal(ckpt_manager_save(m, 2, &it, 1, NULL, NULL, 0), CKPT_ETIMEDOUT);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.status, CKPT_ETIMEDOUT);
	assert_false(step_exists(root, 2));
	ckpt_manager_free(m);
	ckpt_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_callback_and_metrics),
	    cmocka_unit_test(test_version1),
	    cmocka_unit_test(test_manager),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
