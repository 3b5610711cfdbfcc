/*
 * async.c — asynchronous saves (ckpt/async.h). Skeleton: filled in by its owner.
 */
#include "error_private.h"
#include "ckpt/async.h"

int ckpt_async_new(ckpt_async **out, const ckpt_async_options *opts)
{
	(void)out;
	(void)opts;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_async_new: not built yet");
}

void ckpt_async_free(ckpt_async *a)
{
	(void)a;
}

int ckpt_async_save(ckpt_async *a, ckpt_future **future, const char *root, uint64_t step,
		    const ckpt_item_args *items, size_t n, const char *custom_metadata,
		    const char *metrics)
{
	(void)a;
	(void)future;
	(void)root;
	(void)step;
	(void)items;
	(void)n;
	(void)custom_metadata;
	(void)metrics;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_async_save: not built yet");
}

int ckpt_async_wait_until_finished(ckpt_async *a)
{
	(void)a;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_async_wait_until_finished: not built yet");
}

int ckpt_async_check_for_errors(ckpt_async *a)
{
	(void)a;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_async_check_for_errors: not built yet");
}

int ckpt_future_wait(ckpt_future *f)
{
	(void)f;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_future_wait: not built yet");
}

int ckpt_future_done(const ckpt_future *f)
{
	(void)f;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_future_done: not built yet");
}

void ckpt_future_free(ckpt_future *f)
{
	(void)f;
}
