/*
 * ckpt/async.h — asynchronous saves (Orbax's AsyncCheckpointer and commit
 * futures).
 *
 * ckpt_async_save() returns as soon as the caller may change its data again
 * and leaves writing, compression and finalization to a background thread.
 * Two modes (ckpt_async_options.borrow):
 *   copy (default)  the items are snapshotted before the call returns
 *                   (handler-specific: a PyTree is deep-copied, array data
 *                   included), so the caller may change or free them at once;
 *   borrow          nothing is copied: the caller keeps the items alive and
 *                   unchanged until the save's future completes (no copy, no
 *                   extra memory; Orbax's behaviour for host arrays it does
 *                   not own).
 * One save runs at a time per checkpointer: a new save first waits for the
 * previous one. A failed background save is never lost: its error is
 * returned by its future, by ckpt_async_check_for_errors(),
 * ckpt_async_wait_until_finished() and by the next ckpt_async_save(), until
 * one of them has reported it.
 *
 * Memory: the background save's bytes in flight are capped by
 * opts.writer.store.max_bytes_in_flight (Orbax's save_concurrent_gb).
 * Thread safety: one thread drives a checkpointer; futures may be waited on
 * from any thread.
 */
#ifndef CKPT_ASYNC_H
#define CKPT_ASYNC_H

#include "ckpt/common.h"

#include "ckpt/checkpointer.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How much nicer than the caller the background threads run (the save's,
 * the compression threads it starts, ckpt_async_reserve's): they use the
 * cores the caller's threads leave idle and yield the others.
 */
#define CKPT_ASYNC_NICE 10

typedef struct ckpt_async ckpt_async;
typedef struct ckpt_future ckpt_future;

/*
 * Called once per save (post_finalization, Orbax's AsyncOptions
 * post_finalization_callback): after the step is visible (status 0), or
 * after the save failed and nothing became visible (status: its error code;
 * ckpt_error_last() on this thread gives its message). It runs on the
 * background thread before the save's future completes, so a wait on the
 * future or ckpt_async_wait_until_finished() returns after it. It must not
 * call the ckpt_async (or the manager) that runs it.
 */
typedef void (*ckpt_post_finalization_fn)(uint64_t step, int status, void *payload);

/*
 * Version 2 added timeout_secs and post_finalization (Orbax's AsyncOptions);
 * a version 1 struct (without them, with a version 1 writer) is still
 * accepted.
 */
#define CKPT_ASYNC_OPTIONS_VERSION 2
typedef struct ckpt_async_options {
	unsigned version;
	int borrow;                       /* 0: copy the items (default); 1: borrow them */
	ckpt_step_writer_options writer;  /* force, store options, metadata */
	/* > 0: a save whose background work (from the moment it is handed to the
	 * background thread) takes longer fails with CKPT_ETIMEDOUT, checked
	 * just before the rename: nothing becomes visible (writer.timeout_secs,
	 * when set, wins). */
	double timeout_secs;
	ckpt_post_finalization_fn post_finalization; /* or NULL */
	void *post_finalization_payload;
} ckpt_async_options;
#define CKPT_ASYNC_OPTIONS_INIT \
	{CKPT_ASYNC_OPTIONS_VERSION, 0, CKPT_STEP_WRITER_OPTIONS_INIT, 0, NULL, NULL}

/*
 * A checkpointer with one background thread (started by the first save).
 * opts may be NULL. Free with ckpt_async_free().
 * Returns 0, CKPT_EINVAL (opts->version unknown, timeout_secs negative or
 * NaN), CKPT_ENOMEM.
 */
CKPT_API int ckpt_async_new(ckpt_async **out, const ckpt_async_options *opts);
/* Wait for the running save, then free. Accepts NULL. */
CKPT_API void ckpt_async_free(ckpt_async *a);

/*
 * Start saving items as ROOT/<step> (same meaning as ckpt_checkpointer_save;
 * custom_metadata and metrics: JSON objects or NULL, override opts). Waits
 * for the previous save first; returns its error if it failed (and then
 * starts nothing). Items are snapshotted (copy mode) with their handler's
 * snapshot slot (ckpt/handler.h); a handler without one is CKPT_EUNSUPPORTED. *future (if
 * future is not NULL) completes when the step is finalized or the save
 * failed; free it with ckpt_future_free. Errors of the save itself
 * (ckpt_checkpointer_save's) come later, from the future and the calls above.
 * Returns 0 (the save started), the unreported error of the previous save,
 * CKPT_EINVAL (a, root or items NULL; an item without name or handler),
 * CKPT_EUNSUPPORTED (copy mode: a handler without a snapshot slot),
 * CKPT_ERROR (the background thread did not start), CKPT_ENOMEM, or another
 * CKPT_E* code from a handler's snapshot.
 */
CKPT_API int ckpt_async_save(ckpt_async *a, ckpt_future **future, const char *root, uint64_t step,
		    const ckpt_item_args *items, size_t n, const char *custom_metadata,
		    const char *metrics);

/*
 * Orbax's CompositeCheckpointHandler.async_save: ckpt_async_save of the
 * items a Composite registry resolves (ckpt_composite_item_args): each
 * item's handler is the one registered for it or a default one of the type
 * its args name, registered in r. r must outlive the save (its handlers
 * do the background work): wait for the future, or
 * ckpt_async_wait_until_finished, before ckpt_registry_free.
 * Returns 0 (the save started), or what ckpt_composite_item_args or
 * ckpt_async_save return.
 */
CKPT_API int ckpt_composite_async_save(ckpt_async *a, ckpt_future **future, const char *root,
				       uint64_t step, ckpt_registry *r,
				       const ckpt_composite_arg *items, size_t n,
				       const char *custom_metadata, const char *metrics);

/*
 * Copy mode: get the memory that snapshots of items like these need ready
 * in the background, so that the first ckpt_async_save() copies into
 * memory already written once instead of paying for fresh memory while the
 * caller waits (0.5-1 s per 256 MiB on the VMs we measured, more than the
 * copy itself). Returns at once (after stopping an earlier reserve of the
 * same handler); call it when the state exists, before the training loop
 * (after initializing or restoring the state). Use one handler per item:
 * buffers belong to the handler.
 * The save stops the reserve (within a few MiB), takes what is ready and
 * allocates the rest. Only the items' shapes are read, during the call.
 * Handlers without a snapshot_reserve slot, borrow mode, and a handler whose
 * snapshot is still being saved (its buffers go to the next one) have
 * nothing to get ready (0). On an error, reserves already started for
 * earlier items go on.
 * Returns 0, CKPT_EINVAL (a or items NULL, an item without a handler, a
 * PyTree item without a tree), CKPT_ERROR (a reserve thread did not start),
 * CKPT_ENOMEM, or another CKPT_E* code from a handler's snapshot_reserve.
 */
CKPT_API int ckpt_async_reserve(ckpt_async *a, const ckpt_item_args *items, size_t n);

/*
 * Block until no save runs.
 * Returns 0, or the error of a failed save not yet reported (a code
 * ckpt_checkpointer_save returns; message set on this thread).
 */
CKPT_API int ckpt_async_wait_until_finished(ckpt_async *a);
/*
 * The same without blocking: a save still running is not looked at.
 * Returns 0, or the error of a finished failed save not yet reported (a code
 * ckpt_checkpointer_save returns; message set on this thread).
 */
CKPT_API int ckpt_async_check_for_errors(ckpt_async *a);

/*
 * Block until the save is finished.
 * Returns 0, CKPT_EINVAL (f is NULL), or the save's error (a code
 * ckpt_checkpointer_save returns; message set on this thread), every time
 * it is called.
 */
CKPT_API int ckpt_future_wait(ckpt_future *f);
/* Returns 1 if the save is finished (successfully or not), else 0 (also for NULL). */
CKPT_API int ckpt_future_done(const ckpt_future *f);
/* Accepts NULL; does not wait (the save goes on). */
CKPT_API void ckpt_future_free(ckpt_future *f);

#ifdef __cplusplus
}
#endif
#endif
