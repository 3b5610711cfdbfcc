/*
 * ckpt/composite.h — CompositeCheckpointHandler: a step made of several
 * named items, each saved and restored by its own handler, and the handler
 * registry that says which handler an item uses.
 *
 * The registry maps an item name to a handler. An item not registered is
 * resolved from the args given with it: each ckpt_composite_arg names the
 * handler type its args are for (Orbax's args classes, registered with their
 * handler), and the registry makes a handler of that type with default
 * options (ckpt_handler_new_default) and keeps it for the item. Giving args
 * of one type for an item registered with another is CKPT_EINVAL naming
 * both; saving an item a second time with another handler is CKPT_EEXISTS
 * naming both (ckpt_step_writer_add_item).
 *
 * Restore reads all items of the step, or only the chosen ones: an item not
 * chosen comes back with value NULL, not as an error, and none of its data
 * is read. A handler for an item not registered is made from the typestr the
 * step records for it. Restoring all items (items NULL, or n 0: Orbax's
 * empty Composite()) gives each handler no restore args, and leaves out
 * (value NULL) an item whose handler type this library does not know and
 * that is not registered. A Proto item restored without args whose handler
 * has no message type to unpack into (ckpt_proto_handler_new_for) comes
 * back NULL too (Orbax: None).
 */
#ifndef CKPT_COMPOSITE_H
#define CKPT_COMPOSITE_H

#include "ckpt/common.h"

#include <stddef.h>
#include <stdint.h>

#include "ckpt/handler.h"
#include "ckpt/step.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_COMPOSITE_TYPESTR \
	"orbax.checkpoint._src.handlers.composite_checkpoint_handler.CompositeCheckpointHandler"

/*
 * A handler of type typestr with default options: the PyTree, Standard,
 * Json, Array, Proto, JaxRandomKey and NumpyRandomKey handlers, and types
 * registered with ckpt_handler_type_register (ckpt/sys/handler.h). Free
 * with ckpt_handler_free().
 * Returns 0, CKPT_EUNSUPPORTED (any other typestr), CKPT_ENOMEM, or what a
 * registered type's create returns.
 */
CKPT_API int ckpt_handler_new_default(ckpt_handler **out, const char *typestr);

typedef struct ckpt_registry ckpt_registry;

/* An empty registry. Free with ckpt_registry_free(). Returns 0, CKPT_ENOMEM. */
CKPT_API int ckpt_registry_new(ckpt_registry **out);
/* Frees the registry and every handler it holds. Accepts NULL. */
CKPT_API void ckpt_registry_free(ckpt_registry *r);
/*
 * Register h for item (the registry takes h, also on failure).
 * Returns 0, CKPT_EEXISTS (item already has a handler; the message names
 * both), CKPT_EINVAL (a bad item name: empty, with '/', or starting with '_'
 * or '.'), CKPT_ENOMEM.
 */
CKPT_API int ckpt_registry_add(ckpt_registry *r, const char *item, ckpt_handler *h);
/* The handler of item, or NULL (borrowed). */
CKPT_API ckpt_handler *ckpt_registry_get(const ckpt_registry *r, const char *item);
/*
 * The handler for item given args of type typestr (NULL: "whatever is
 * registered"): the registered one if its typestr matches, else a new
 * default one, registered. *out is borrowed from the registry.
 * Returns 0, CKPT_EINVAL (typestr differs from the registered handler's; the
 * message names both; or a bad item name), CKPT_ENOTFOUND (item is not
 * registered and typestr is NULL), CKPT_EUNSUPPORTED (no default handler of
 * type typestr), CKPT_ENOMEM.
 */
CKPT_API int ckpt_registry_resolve(ckpt_handler **out, ckpt_registry *r, const char *item,
			  const char *typestr);

/* One item's args: Orbax's Composite(item=SomeArgs(...)). */
typedef struct ckpt_composite_arg {
	const char *item;
	const char *type; /* the typestr of the handler these args are for; NULL: registered */
	const void *args; /* save args, or restore args (may be NULL) */
} ckpt_composite_arg;

/*
 * Save items into the step being written: resolve each handler, register the
 * item in the step, run save and then finalize of every handler.
 * Returns 0, CKPT_EINVAL (an item given twice, args of another type than the
 * item's registered handler, a bad item name), CKPT_ENOTFOUND (an item
 * neither registered nor given a type), CKPT_EUNSUPPORTED (no handler of the
 * type given), CKPT_EEXISTS (the item is already in the step with another
 * handler), CKPT_EIO, CKPT_ENOMEM, or another CKPT_E* code from a handler's
 * save or finalize.
 */
CKPT_API int ckpt_composite_save(ckpt_registry *r, ckpt_step_writer *w, const ckpt_composite_arg *items,
			size_t n);

/*
 * Save a whole step: ckpt_step_writer_open, ckpt_composite_save, finalize
 * (the step appears only if everything succeeded).
 * Returns 0, CKPT_EEXISTS (the step exists and !opts->force), CKPT_EINVAL
 * (bad opts: a version this library does not know, custom_metadata or
 * metrics not a JSON object, store options out of range; an item given twice, args of another type than the item's
 * registered handler, a bad item name), CKPT_ENOTFOUND (an item neither
 * registered nor given a type), CKPT_EUNSUPPORTED (no handler of the type
 * given), CKPT_EIO, CKPT_ENOMEM, or another CKPT_E* code from a handler's
 * save or finalize.
 */
CKPT_API int ckpt_composite_save_step(const char *root, uint64_t step, ckpt_registry *r,
			     const ckpt_composite_arg *items, size_t n,
			     const ckpt_step_writer_options *opts);

/* What restore returns: every item of the step, in the step's order. */
typedef struct ckpt_composite_result ckpt_composite_result;

/*
 * Restore the items of s: all of them (items NULL or n 0; items of unknown
 * handler types are left out), or the chosen ones (items[0..n), with their
 * restore args; the others come back with value NULL and none of their data
 * read). Free *out with ckpt_composite_result_free().
 * Returns 0, CKPT_ENOTFOUND (an item chosen but not in the step),
 * CKPT_EINVAL (an item chosen twice; args of another type than the item's
 * registered handler, or of a handler that cannot read what the step
 * holds), CKPT_EUNSUPPORTED (no handler known for a chosen item's type),
 * CKPT_ENOMEM, or another CKPT_E* code from a handler's restore (damaged
 * data: CKPT_ECORRUPT; CKPT_EIO).
 */
CKPT_API int ckpt_composite_restore(ckpt_composite_result **out, ckpt_registry *r, ckpt_step *s,
			   const ckpt_composite_arg *items, size_t n);
CKPT_API size_t ckpt_composite_result_count(const ckpt_composite_result *res);
CKPT_API const char *ckpt_composite_result_item(const ckpt_composite_result *res, size_t i);
CKPT_API const char *ckpt_composite_result_typestr(const ckpt_composite_result *res, size_t i);
/* The restored value of item i (borrowed; NULL if not chosen). */
CKPT_API void *ckpt_composite_result_value(const ckpt_composite_result *res, size_t i);
/* The restored value of the item named item, or NULL (borrowed). */
CKPT_API void *ckpt_composite_result_get(const ckpt_composite_result *res, const char *item);
/* Frees every value (with its handler's restored_free) and res. Accepts NULL. */
CKPT_API void ckpt_composite_result_free(ckpt_composite_result *res);

/* Orbax's StepMetadata. */
typedef struct ckpt_step_metadata {
	size_t nitems;
	char **items;            /* item names */
	char **item_handlers;    /* their typestrs */
	void **item_metadata;    /* each handler's metadata (NULL when it has none
				    or, for a save in progress, not yet) */
	char *metrics;           /* JSON object or NULL */
	char *custom_metadata;   /* JSON object or NULL */
	int64_t init_timestamp_nsecs;   /* 0 if unknown */
	int64_t commit_timestamp_nsecs; /* 0 while not finalized */
	ckpt_registry *registry; /* the handlers that made item_metadata (borrowed) */
	/* JSON object or NULL: Orbax's SaveStepStatistics of the save
	 * (ckpt/async.h records them; docs/api.md). Made by the library only,
	 * so members are appended here. */
	char *performance_metrics;
} ckpt_step_metadata;

/*
 * The step metadata of a finalized step, reading no item data (each
 * handler's metadata: for a PyTree item its _METADATA only). An item of a
 * handler this library does not know gets no item metadata. Free with
 * ckpt_step_metadata_free().
 * Returns 0, CKPT_EINVAL (an item registered with a handler that cannot read
 * what the step holds), CKPT_ENOMEM, or another CKPT_E* code from a
 * handler's metadata (a missing or damaged _METADATA: CKPT_ENOTFOUND,
 * CKPT_ECORRUPT; CKPT_EIO).
 */
CKPT_API int ckpt_composite_metadata(ckpt_step_metadata **out, ckpt_registry *r, ckpt_step *s);
/*
 * The step metadata of a save not yet finalized, from its temporary
 * directory: a library save in progress (ROOT/<step>.ckpt-tmp-<nonce>, whose
 * writer keeps a _CHECKPOINT_METADATA file beside the store up to date as
 * items are added) or a pending step of the mount (its files/). Item
 * metadata is NULL; commit_timestamp_nsecs is 0.
 * Returns 0, CKPT_ENOTFOUND (no _CHECKPOINT_METADATA in either place: not a
 * save in progress), CKPT_EINVAL (it is not step metadata, or not a regular
 * file of at most 64 MiB), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_composite_metadata_from_temporary_paths(ckpt_step_metadata **out, ckpt_registry *r,
						 const char *tmp_dir);
CKPT_API void ckpt_step_metadata_free(ckpt_step_metadata *m);

#ifdef __cplusplus
}
#endif
#endif
