/*
 * ckpt/manager.h — Orbax's CheckpointManager over a checkpoint root: when to
 * save, saving (asynchronously by default), which steps to keep, restoring
 * the latest or a chosen step, and waiting for new steps (evaluators).
 *
 * Step directories are named by ckpt_manager_options.step_prefix and
 * step_format_fixed_length as Orbax does: "<prefix>_<step>" with the step
 * zero-padded to that width ("ckpt_00000100"); without them, the plain step
 * number that `ckpt` and `ckptfs` use.
 *
 * Preservation: a finalized step is kept if any enabled policy of
 * ckpt_preservation keeps it (Orbax's AnyPreservationPolicy); with none
 * enabled every step is kept. After each save finalizes, the manager deletes
 * the steps no policy keeps (never the newest step, never in read_only).
 */
#ifndef CKPT_MANAGER_H
#define CKPT_MANAGER_H

#include "ckpt/common.h"

#include <stddef.h>
#include <stdint.h>

#include "ckpt/async.h"
#include "ckpt/root.h"
#include "ckpt/checkpointer.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CKPT_BEST_MIN = 0, CKPT_BEST_MAX = 1 };

typedef struct ckpt_preservation {
	unsigned latest_n;         /* keep the newest N steps (0: off) */
	uint64_t every_n_steps;    /* keep steps divisible by N (Orbax keep_period; 0: off) */
	int64_t every_n_seconds;   /* keep the first step of every N seconds of commit time (0: off) */
	const char *best_metric;   /* keep the best_n best steps by this key of their metrics (NULL: off) */
	int best_mode;             /* CKPT_BEST_MIN or CKPT_BEST_MAX */
	unsigned best_n;
	int keep_without_metrics;  /* a step without the metric: 1 kept, 0 left to the other policies */
} ckpt_preservation;
#define CKPT_PRESERVATION_INIT {0, 0, 0, NULL, CKPT_BEST_MIN, 0, 1}

/* What the policies look at, one per finalized step. */
typedef struct ckpt_step_summary {
	uint64_t step;
	int64_t commit_time_ns;
	int has_metric; /* metrics[best_metric] exists and is a number */
	double metric;
} ckpt_step_summary;

/*
 * Decide which steps p keeps: keep[i] = 1 or 0 for steps[i] (any order).
 * Pure function: used by the manager, `ckpt gc` and `ckpt ls`.
 * Returns 0, CKPT_EINVAL (a NULL argument, best_mode neither min nor max,
 * every_n_seconds < 0), CKPT_ENOMEM.
 */
CKPT_API int ckpt_preservation_apply(int *keep, const ckpt_step_summary *steps, size_t n,
			    const ckpt_preservation *p);
/*
 * What the policies see of the finalized step s (number `step`): its commit
 * time and, when metric is not NULL and its metrics hold a number (not NaN)
 * under that name, the metric. Used by the manager and by `ckpt gc`/`ckpt ls`.
 */
CKPT_API void ckpt_step_summarize(ckpt_step_summary *out, ckpt_step *s, uint64_t step, const char *metric);
/*
 * Index in steps of the best step by p's metric.
 * Returns 0, CKPT_ENOTFOUND (p sets no best_metric, or no step has it),
 * CKPT_EINVAL (a NULL argument, best_mode neither min nor max,
 * every_n_seconds < 0), CKPT_ENOMEM.
 */
CKPT_API int ckpt_preservation_best(size_t *out, const ckpt_step_summary *steps, size_t n,
			   const ckpt_preservation *p);

#define CKPT_MANAGER_OPTIONS_VERSION 1
typedef struct ckpt_manager_options {
	unsigned version;
	uint64_t save_interval_steps;  /* should_save every N steps (0 or 1: every step) */
	const uint64_t *save_on_steps; /* and on these steps (may be NULL) */
	size_t n_save_on_steps;
	ckpt_preservation preservation;
	const char *step_prefix;            /* NULL: no prefix */
	unsigned step_format_fixed_length;  /* 0: no padding */
	int read_only;                      /* never write, delete or clean up */
	int enable_async;                   /* default 1 */
	ckpt_async_options async;           /* borrow mode, writer and store options */
} ckpt_manager_options;
#define CKPT_MANAGER_OPTIONS_INIT                                                              \
	{CKPT_MANAGER_OPTIONS_VERSION, 0, NULL, 0, CKPT_PRESERVATION_INIT, NULL, 0, 0, 1,       \
	 CKPT_ASYNC_OPTIONS_INIT}

typedef struct ckpt_manager ckpt_manager;

/*
 * Open the manager of root (created unless read_only). Removes temporary
 * directories of abandoned saves (not in read_only) and reads the steps.
 * opts may be NULL. Free with ckpt_manager_free().
 * Returns 0, CKPT_EINVAL (no root; bad options: unknown version, a
 * step_prefix with '/', a step_format_fixed_length too long, save_on_steps
 * NULL, a bad preservation policy, unknown async options version),
 * CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_open(ckpt_manager **out, const char *root, const ckpt_manager_options *opts);
/* Wait for a running save, then free (Orbax: close()). Accepts NULL. */
CKPT_API void ckpt_manager_free(ckpt_manager *m);

/*
 * Returns 1 if step should be saved (interval, save_on_steps, and newer than
 * the latest), else 0 (always 0 in read_only).
 */
CKPT_API int ckpt_manager_should_save(ckpt_manager *m, uint64_t step);
/*
 * Save items as step (asynchronously if enabled: returns once the caller
 * may change its data). metrics, custom_metadata: JSON objects or NULL.
 * When the save is finalized, steps no policy keeps are deleted. Reports
 * the error of an earlier failed background save (and then saves nothing).
 * A step not due (ckpt_manager_should_save) without force is not saved: 0.
 * Asynchronous saves report their own errors later (the next save,
 * ckpt_manager_wait_until_finished, ckpt_manager_check_for_errors).
 * Returns 0, CKPT_EREADONLY (read_only), CKPT_EINVAL (items NULL, an item
 * without name or handler, a bad item name, metrics or custom_metadata not
 * a JSON object), CKPT_EEXISTS (synchronous: the step exists and the writer
 * options do not set force), CKPT_EUNSUPPORTED (copy mode: a handler without a snapshot slot),
 * CKPT_ERROR (the background thread did not start), CKPT_EIO, CKPT_ENOMEM,
 * the error of an earlier failed background save, or another CKPT_E* code
 * from a handler's snapshot, save or finalize.
 */
CKPT_API int ckpt_manager_save(ckpt_manager *m, uint64_t step, const ckpt_item_args *items, size_t n,
		      const char *metrics, const char *custom_metadata, int force);
/*
 * ckpt_async_reserve() for the manager's asynchronous saves: get the first
 * save's snapshot memory ready in the background. Nothing to get ready
 * when saves are synchronous or the manager is read-only.
 * Returns 0, CKPT_EINVAL (items NULL, an item without a handler, a PyTree
 * item without a tree), CKPT_ERROR (a reserve thread did not start),
 * CKPT_ENOMEM, or another CKPT_E* code from a handler's snapshot_reserve.
 */
CKPT_API int ckpt_manager_reserve(ckpt_manager *m, const ckpt_item_args *items, size_t n);
/*
 * Restore items (a subset of the step's items is fine) of step, or of the
 * latest step when step < 0; outs as ckpt_checkpointer_restore. Waits for a
 * running save first.
 * Returns 0, CKPT_ENOTFOUND (no such step, no step at all when step < 0, or
 * no such item), CKPT_ECORRUPT (damaged step), CKPT_EVERSION (a newer
 * format), CKPT_EIO, CKPT_ENOMEM, or another CKPT_E* code from a handler's
 * restore.
 */
CKPT_API int ckpt_manager_restore(void **outs, ckpt_manager *m, int64_t step, const ckpt_item_args *items,
			 size_t n);

/* The newest finalized step. Returns 0, CKPT_ENOTFOUND (no finalized step). */
CKPT_API int ckpt_manager_latest_step(uint64_t *out, ckpt_manager *m); /* CKPT_ENOTFOUND if none */
/*
 * The best finalized step by the preservation policy's best_metric.
 * Returns 0, CKPT_ENOTFOUND (no best_metric set, or no step has it),
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_best_step(uint64_t *out, ckpt_manager *m);   /* CKPT_ENOTFOUND if none */
/*
 * Finalized steps, ascending: *out malloc'd (caller free()s), *n their count.
 * Returns 0, CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_all_steps(uint64_t **out, size_t *n, ckpt_manager *m);
/*
 * The step's metrics / whole _CHECKPOINT_METADATA as JSON text (malloc'd;
 * "{}" if none).
 * Returns 0, CKPT_ENOTFOUND (no such step), CKPT_ECORRUPT (damaged step),
 * CKPT_EVERSION (a newer format), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_metrics(char **out, ckpt_manager *m, uint64_t step);
CKPT_API int ckpt_manager_metadata(char **out, ckpt_manager *m, uint64_t step);
/*
 * Root metadata: a JSON object kept in ROOT/_ROOT_METADATA (set once; read any time).
 * Returns 0, CKPT_EREADONLY (read_only), CKPT_EINVAL (json is not a JSON
 * object), CKPT_EEXISTS (root metadata is already set), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_set_root_metadata(ckpt_manager *m, const char *json);
/*
 * The root metadata as JSON text (malloc'd; "{}" if none).
 * Returns 0, CKPT_ECORRUPT (ROOT/_ROOT_METADATA is not a JSON object),
 * CKPT_EINVAL (it is not a regular file, or too large), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_root_metadata(char **out, ckpt_manager *m); /* "{}" if none */
/*
 * Delete a finalized step (rename to a temporary name, then remove).
 * Returns 0, CKPT_EREADONLY (read_only), CKPT_ENOTFOUND (no such step),
 * CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_delete(ckpt_manager *m, uint64_t step);
/*
 * Re-read the steps of root (another process may have saved or deleted).
 * Returns 0, CKPT_ENOTFOUND (root is gone; not in read_only), CKPT_EIO,
 * CKPT_ENOMEM.
 */
CKPT_API int ckpt_manager_reload(ckpt_manager *m);
/*
 * Block until no background save runs; without blocking (check_for_errors):
 * look at a save that has finished only.
 * Returns 0, or the error of a failed background save not yet reported
 * (message set on this thread): CKPT_EEXISTS (the step exists), CKPT_EINVAL,
 * CKPT_EIO, CKPT_ENOMEM (also from deleting the steps no policy keeps after
 * it), or another CKPT_E* code from a handler's save or finalize.
 */
CKPT_API int ckpt_manager_wait_until_finished(ckpt_manager *m);
CKPT_API int ckpt_manager_check_for_errors(ckpt_manager *m);

#ifdef __cplusplus
}
#endif
#endif
