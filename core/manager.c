/*
 * manager.c — the CheckpointManager (ckpt/manager.h). Skeleton: filled in by its owner.
 */
#include "error_private.h"
#include "ckpt/manager.h"

int ckpt_preservation_apply(int *keep, const ckpt_step_summary *steps, size_t n,
			    const ckpt_preservation *p)
{
	(void)keep;
	(void)steps;
	(void)n;
	(void)p;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_preservation_apply: not built yet");
}

int ckpt_preservation_best(size_t *out, const ckpt_step_summary *steps, size_t n,
			   const ckpt_preservation *p)
{
	(void)out;
	(void)steps;
	(void)n;
	(void)p;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_preservation_best: not built yet");
}

int ckpt_manager_open(ckpt_manager **out, const char *root, const ckpt_manager_options *opts)
{
	(void)out;
	(void)root;
	(void)opts;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_open: not built yet");
}

void ckpt_manager_close(ckpt_manager *m)
{
	(void)m;
}

int ckpt_manager_should_save(ckpt_manager *m, uint64_t step)
{
	(void)m;
	(void)step;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_should_save: not built yet");
}

int ckpt_manager_save(ckpt_manager *m, uint64_t step, const ckpt_item_args *items, size_t n,
		      const char *metrics, const char *custom_metadata, int force)
{
	(void)m;
	(void)step;
	(void)items;
	(void)n;
	(void)metrics;
	(void)custom_metadata;
	(void)force;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_save: not built yet");
}

int ckpt_manager_restore(void **outs, ckpt_manager *m, int64_t step, const ckpt_item_args *items,
			 size_t n)
{
	(void)outs;
	(void)m;
	(void)step;
	(void)items;
	(void)n;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_restore: not built yet");
}

int ckpt_manager_latest_step(uint64_t *out, ckpt_manager *m)
{
	(void)out;
	(void)m;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_latest_step: not built yet");
}

int ckpt_manager_best_step(uint64_t *out, ckpt_manager *m)
{
	(void)out;
	(void)m;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_best_step: not built yet");
}

int ckpt_manager_all_steps(uint64_t **out, size_t *n, ckpt_manager *m)
{
	(void)out;
	(void)n;
	(void)m;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_all_steps: not built yet");
}

int ckpt_manager_metrics(char **out, ckpt_manager *m, uint64_t step)
{
	(void)out;
	(void)m;
	(void)step;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_metrics: not built yet");
}

int ckpt_manager_metadata(char **out, ckpt_manager *m, uint64_t step)
{
	(void)out;
	(void)m;
	(void)step;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_metadata: not built yet");
}

int ckpt_manager_set_root_metadata(ckpt_manager *m, const char *json)
{
	(void)m;
	(void)json;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_set_root_metadata: not built yet");
}

int ckpt_manager_root_metadata(char **out, ckpt_manager *m)
{
	(void)out;
	(void)m;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_root_metadata: not built yet");
}

int ckpt_manager_delete(ckpt_manager *m, uint64_t step)
{
	(void)m;
	(void)step;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_delete: not built yet");
}

int ckpt_manager_reload(ckpt_manager *m)
{
	(void)m;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_reload: not built yet");
}

int ckpt_manager_wait_until_finished(ckpt_manager *m)
{
	(void)m;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_wait_until_finished: not built yet");
}

int ckpt_manager_check_for_errors(ckpt_manager *m)
{
	(void)m;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_manager_check_for_errors: not built yet");
}

int ckpt_root_wait_for_step(uint64_t *out, const char *root, int64_t after, int timeout_ms)
{
	(void)out;
	(void)root;
	(void)after;
	(void)timeout_ms;
	return ckpt_error_set(CKPT_EUNSUPPORTED, "ckpt_root_wait_for_step: not built yet");
}
