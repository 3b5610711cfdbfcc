/*
 * ckpt/handler.h — the checkpoint handler interface (Orbax's CheckpointHandler).
 *
 * A handler saves one item of a step into the step's store under the prefix
 * "<item>/" and restores it from there. Handlers are objects behind a
 * versioned vtable; to write one, see ckpt/sys/handler.h. The meaning of
 * `args` and of the restored/metadata objects is handler-specific
 * (documented by each handler's header, e.g. ckpt/pytree.h).
 *
 * Every dispatch helper below refuses a handler whose vtable version this
 * library does not know: CKPT_EVERSION (int returns), "(unknown handler
 * version)" (typestr), nothing done (void returns).
 */
#ifndef CKPT_HANDLER_H
#define CKPT_HANDLER_H

#include "ckpt/common.h"

#include "ckpt/step.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckpt_handler ckpt_handler;

/*
 * Dispatch helpers. Each int helper returns what the handler's slot returns
 * (the codes its header documents), CKPT_EUNSUPPORTED when the slot is NULL
 * (unless said otherwise) and CKPT_EVERSION for an unknown vtable version.
 */
CKPT_API const char *ckpt_handler_typestr(const ckpt_handler *h);
/*
 * Save item into the step being written.
 * Returns 0, CKPT_EUNSUPPORTED (no save slot), CKPT_EVERSION (unknown vtable
 * version), or another CKPT_E* code from the handler's save.
 */
CKPT_API int ckpt_handler_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args);
/*
 * A copy-mode snapshot of args (ckpt/async.h); free with
 * ckpt_handler_snapshot_free().
 * Returns 0, CKPT_EUNSUPPORTED (no snapshot slot), CKPT_EVERSION (unknown
 * vtable version), or another CKPT_E* code from the handler's snapshot.
 */
CKPT_API int ckpt_handler_snapshot(void **out, ckpt_handler *h, const void *args);
/* snapshot_free(); accepts a NULL snap. */
CKPT_API void ckpt_handler_snapshot_free(ckpt_handler *h, void *snap);
/*
 * snapshot_reserve(), or nothing to get ready when the slot is NULL.
 * Returns 0, CKPT_EVERSION (unknown vtable version), or another CKPT_E*
 * code from the handler's snapshot_reserve.
 */
CKPT_API int ckpt_handler_snapshot_reserve(ckpt_handler *h, const void *args);
/*
 * Restore item of s; *out is handler-specific and owned by the caller
 * (ckpt_handler_restored_free).
 * Returns 0, CKPT_EUNSUPPORTED (no restore slot), CKPT_EVERSION (unknown
 * vtable version), or another CKPT_E* code from the handler's restore.
 */
CKPT_API int ckpt_handler_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			 const void *args);
/*
 * Describe item of s without reading its data; *out owned by the caller
 * (ckpt_handler_metadata_free).
 * Returns 0, CKPT_EUNSUPPORTED (no metadata slot), CKPT_EVERSION (unknown
 * vtable version), or another CKPT_E* code from the handler's metadata.
 */
CKPT_API int ckpt_handler_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item);
/* restored_free() / metadata_free(), or free() when the slot is NULL; accept NULL. */
CKPT_API void ckpt_handler_restored_free(ckpt_handler *h, void *out);
CKPT_API void ckpt_handler_metadata_free(ckpt_handler *h, void *meta);
/*
 * Called once all items are saved, before the step is finalized; nothing to
 * do when the slot is NULL.
 * Returns 0, CKPT_EVERSION (unknown vtable version), or another CKPT_E*
 * code from the handler's finalize.
 */
CKPT_API int ckpt_handler_finalize(ckpt_handler *h, ckpt_step_writer *w, const char *item);
/* close(); accepts NULL. */
CKPT_API void ckpt_handler_free(ckpt_handler *h);

/*
 * What generic readers (`ckpt meta`) show of an item whose handler is not
 * a tree: the metadata its handler type describes (the describe function
 * of ckpt_handler_type_register_info, ckpt/sys/handler.h), as JSON text in
 * *out (malloc'd), or *out NULL when its type describes nothing (built-in
 * types, types registered without describe, types this process does not
 * know).
 * Returns 0, CKPT_ENOTFOUND (no such item), or the describe function's code.
 */
CKPT_API int ckpt_item_describe(char **out, ckpt_step *s, const char *item);

/* One disagreement found by ckpt_step_check_keys: a message naming the key or leaf. */
typedef void (*ckpt_step_problem_cb)(const char *message, void *payload);

/*
 * Check that a step's keys and its items agree (what `ckpt verify` adds to
 * the checksums; handler_step_check.c): every item of a tree type (PyTree,
 * Standard) has its <item>/_METADATA and every leaf with data of its tree has
 * its value <item>/<path>; and every key belongs to something:
 * _CHECKPOINT_METADATA, an item's _METADATA, a leaf of its tree, or any key
 * under an item of another handler type. problem (may be NULL) is called once
 * per disagreement; *nproblems (may be NULL) receives their count. Reads the
 * index only, never a value's data.
 * Returns 0 (whatever was found), CKPT_ECORRUPT (a _METADATA that does not
 * parse, a damaged index), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_step_check_keys(ckpt_step *s, ckpt_step_problem_cb problem, void *payload,
				  size_t *nproblems);

#ifdef __cplusplus
}
#endif
#endif
