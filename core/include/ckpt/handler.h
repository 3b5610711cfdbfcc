/*
 * ckpt/handler.h — the checkpoint handler interface (Orbax's CheckpointHandler).
 *
 * A handler saves one item of a step into the step's store under the prefix
 * "<item>/" and restores it from there. Handlers are objects: a struct whose
 * first member is `ckpt_handler` with a vtable. The meaning of `args` and of
 * the restored/metadata objects is handler-specific (documented by each
 * handler's header, e.g. ckpt/pytree.h).
 */
#ifndef CKPT_HANDLER_H
#define CKPT_HANDLER_H

#include "ckpt/common.h"

#include "ckpt/step.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_handler ckpt_handler;

typedef struct ckpt_handler_vtable {
	/* Orbax-style type string recorded in _CHECKPOINT_METADATA item_handlers. */
	const char *(*typestr)(const ckpt_handler *h);
	/* Write item into the step being saved. */
	int (*save)(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args);
	/*
	 * Copy mode of asynchronous saves (ckpt/async.h): set *out to a snapshot
	 * of args that save() accepts later, on another thread, and that borrows
	 * nothing of the caller's (a PyTree is deep-copied, its per-leaf args
	 * evaluated now). Freed with snapshot_free. Both NULL: the handler saves
	 * asynchronously only in borrow mode.
	 */
	int (*snapshot)(void **out, ckpt_handler *h, const void *args);
	void (*snapshot_free)(ckpt_handler *h, void *snap);
	/* Read item back; *out is handler-specific and owned by the caller. */
	int (*restore)(void **out, ckpt_handler *h, ckpt_step *s, const char *item, const void *args);
	/* Describe item without reading its data; *out owned by the caller. */
	int (*metadata)(void **out, ckpt_handler *h, ckpt_step *s, const char *item);
	/* Free what restore (restored_free) or metadata (metadata_free) returned.
	 * NULL: free(). Never called with NULL. */
	void (*restored_free)(ckpt_handler *h, void *out);
	void (*metadata_free)(ckpt_handler *h, void *meta);
	/* Called once all items are saved, before the step is finalized. May be NULL. */
	int (*finalize)(ckpt_handler *h, ckpt_step_writer *w, const char *item);
	/* Release the handler. */
	void (*close)(ckpt_handler *h);
	/*
	 * Optional, for copy mode: get the memory snapshots of args like these
	 * need ready in the background (allocated and written once), so that
	 * the first snapshot does not pay for fresh memory. args is read during
	 * the call only. Returns at once; the next snapshot stops the work
	 * within a few MiB and takes what is ready.
	 */
	int (*snapshot_reserve)(ckpt_handler *h, const void *args);
} ckpt_handler_vtable;

struct ckpt_handler {
	const ckpt_handler_vtable *vt;
};

/* Dispatch helpers (CKPT_EUNSUPPORTED when the slot is NULL, unless said otherwise). */
CKPT_API const char *ckpt_handler_typestr(const ckpt_handler *h);
CKPT_API int ckpt_handler_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args);
CKPT_API int ckpt_handler_snapshot(void **out, ckpt_handler *h, const void *args);
/* snapshot_free(); accepts a NULL snap. */
CKPT_API void ckpt_handler_snapshot_free(ckpt_handler *h, void *snap);
/* snapshot_reserve(), or 0 (nothing to get ready) when the slot is NULL. */
CKPT_API int ckpt_handler_snapshot_reserve(ckpt_handler *h, const void *args);
CKPT_API int ckpt_handler_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			 const void *args);
CKPT_API int ckpt_handler_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item);
/* restored_free() / metadata_free(), or free() when the slot is NULL; accept NULL. */
CKPT_API void ckpt_handler_restored_free(ckpt_handler *h, void *out);
CKPT_API void ckpt_handler_metadata_free(ckpt_handler *h, void *meta);
CKPT_API int ckpt_handler_finalize(ckpt_handler *h, ckpt_step_writer *w, const char *item);
/* close(); accepts NULL. */
CKPT_API void ckpt_handler_free(ckpt_handler *h);

#ifdef __cplusplus
}
#endif
#endif
