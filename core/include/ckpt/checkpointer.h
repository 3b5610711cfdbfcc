/*
 * ckpt/checkpointer.h — Orbax's Checkpointer: save a step of named items
 * atomically, restore it.
 */
#ifndef CKPT_CHECKPOINTER_H
#define CKPT_CHECKPOINTER_H

#include "ckpt/common.h"

#include "ckpt/composite.h"
#include "ckpt/handler.h"
#include "ckpt/step.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One item of a step: its name, the handler that saves it, and its args. */
typedef struct ckpt_item_args {
	const char *name;
	ckpt_handler *handler; /* borrowed */
	const void *args;      /* handler-specific save or restore args */
} ckpt_item_args;

/*
 * Save items as ROOT/<step>: temporary directory, every handler's save and
 * finalize, then ckpt_step_writer_finalize(). On any failure the temporary
 * directory is removed and the error returned; nothing appears. opts may be
 * NULL.
 * Returns 0, CKPT_EEXISTS (the step exists and !opts->force, or an item is
 * given twice with different handlers), CKPT_EINVAL (a bad item name; bad
 * opts: a version this library does not know, custom_metadata or metrics not
 * a JSON object, store options out of range), CKPT_EIO, CKPT_ENOMEM, or another CKPT_E* code from a handler's
 * save or finalize (see the handler's header).
 */
CKPT_API int ckpt_checkpointer_save(const char *root, uint64_t step, const ckpt_item_args *items, size_t n,
			   const ckpt_step_writer_options *opts);

/*
 * Restore items from the finalized step directory step_dir: outs[i]
 * receives what items[i].handler's restore returns (caller owns each). On
 * failure the outs[i] already restored stay set and owned by the caller;
 * the others are NULL.
 * Returns 0, CKPT_ENOTFOUND (step_dir holds no store, or the step has no
 * such item), CKPT_ECORRUPT (damaged step), CKPT_EVERSION (a newer format),
 * CKPT_EIO, CKPT_ENOMEM, or another CKPT_E* code from a handler's restore
 * (see the handler's header).
 */
CKPT_API int ckpt_checkpointer_restore(void **outs, const char *step_dir, const ckpt_item_args *items,
			      size_t n);

/*
 * The Composite registry as explicit handlers: out[i] = {items[i].item, the
 * handler r resolves for it (ckpt_registry_resolve: the registered one, or
 * a default one of items[i].type, registered), items[i].args}. So
 * ckpt_checkpointer_save, ckpt_async_save (see ckpt_composite_async_save)
 * and ckpt_manager_save save what ckpt_composite_save would. The handlers
 * are borrowed from r, which must outlive the saves that use them.
 * Returns 0, CKPT_EINVAL (out, r or items NULL; an item given twice; args
 * of another type than the item's registered handler; a bad item name),
 * CKPT_ENOTFOUND (an item neither registered nor given a type),
 * CKPT_EUNSUPPORTED (no handler of the type given), CKPT_ENOMEM.
 */
CKPT_API int ckpt_composite_item_args(ckpt_item_args *out, ckpt_registry *r,
				      const ckpt_composite_arg *items, size_t n);

#ifdef __cplusplus
}
#endif
#endif
