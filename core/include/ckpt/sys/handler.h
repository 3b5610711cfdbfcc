/*
 * ckpt/sys/handler.h — implementing a checkpoint handler (Orbax's
 * CheckpointHandler): the vtable behind ckpt_handler.
 *
 * For implementers only; programs that use handlers include <ckpt/handler.h>.
 * As with ckpt/sys/store_backend.h, the vtable's first field is its version
 * (CKPT_HANDLER_VTABLE_VERSION, or CKPT_HANDLER_VTABLE_INIT / ckpt_handler_
 * vtable_init): a library that meets a version it does not know refuses the
 * handler (CKPT_EVERSION) instead of reading past the end of the table. New
 * slots are only appended, with a version bump; a slot left NULL means
 * "not supported" (see ckpt/handler.h for each slot's NULL meaning).
 *
 * A handler is a struct whose first member is `ckpt_handler`, pointing at a
 * static vtable:
 *
 *	static const ckpt_handler_vtable my_vt = {
 *		.version = CKPT_HANDLER_VTABLE_VERSION,
 *		.typestr = my_typestr, .save = my_save, .restore = my_restore,
 *		.close = my_close,
 *	};
 *
 * Errors: set the message with ckpt_error_set_str (ckpt/sys/error.h).
 */
#ifndef CKPT_SYS_HANDLER_H
#define CKPT_SYS_HANDLER_H

#include "ckpt/common.h"
#include "ckpt/handler.h"
#include "ckpt/step.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_HANDLER_VTABLE_VERSION 1

typedef struct ckpt_handler_vtable {
	unsigned version; /* CKPT_HANDLER_VTABLE_VERSION */
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

#define CKPT_HANDLER_VTABLE_INIT {CKPT_HANDLER_VTABLE_VERSION}

/*
 * Zero *vt and set its version. Returns 0, or CKPT_EVERSION if version is
 * not one this library knows.
 */
CKPT_API int ckpt_handler_vtable_init(ckpt_handler_vtable *vt, unsigned version);

/*
 * The registry of handler types (Orbax's handler registry /
 * register_with_handler): make handlers of type `typestr`, written outside
 * this library, known to it by that type string, so that where the library
 * makes a handler for what a step records — ckpt_handler_new_default, a
 * Composite registry resolving an item's args or a step's item
 * (ckpt_composite_restore, ckpt_composite_metadata) — it finds `create`,
 * which returns a handler with default options (caller frees it).
 * Process-wide and thread-safe; a registration lasts until the process
 * ends. Items of such a type are stored and shown as their files (the
 * mount, ckpt save/restore, docs/handlers.md); the library checks nothing
 * of their bytes.
 * Returns 0, CKPT_EINVAL (typestr empty or NULL, create NULL), CKPT_EEXISTS
 * (typestr is a built-in type or already registered), CKPT_ENOMEM.
 */
CKPT_API int ckpt_handler_type_register(const char *typestr, int (*create)(ckpt_handler **out));

/*
 * The same with what generic readers use of the type (version 1 of this
 * struct; every function but create may be NULL):
 *   check_file, check_dir  check the bytes of an item of this type that come
 *       from outside, as the built-in handlers' items are checked: `ckpt
 *       save DIR`, finalize of a pending step, and a file closed in a
 *       pending step of the mount (docs/handlers.md). check_file gets one
 *       file (name: its path inside the item; fd open on it, use pread;
 *       item_dirfd: the item directory, for siblings); check_dir the item
 *       as a whole once every file passed. `what` names the file or item
 *       for messages. Return 0, or CKPT_EINVAL with a message
 *       (ckpt_error_set_str) that says what is wrong.
 *   describe  the item's metadata as a JSON value (malloc'd text in *out)
 *       without reading its data, for `ckpt meta` (ckpt_item_describe).
 *       Return 0 or a CKPT_E* code.
 * Returns what ckpt_handler_type_register returns (CKPT_EINVAL also for
 * info NULL or of a version this library does not know).
 */
#define CKPT_HANDLER_TYPE_INFO_VERSION 1
typedef struct ckpt_handler_type_info {
	unsigned version; /* CKPT_HANDLER_TYPE_INFO_VERSION */
	const char *typestr;
	int (*create)(ckpt_handler **out);
	int (*check_file)(int item_dirfd, const char *name, int fd, const char *what);
	int (*check_dir)(int item_dirfd, const char *what);
	int (*describe)(char **out, ckpt_step *s, const char *item);
} ckpt_handler_type_info;
/* Returns as described above the struct. */
CKPT_API int ckpt_handler_type_register_info(const ckpt_handler_type_info *info);

/*
 * Handler plugins: shared objects that register handler types, so that
 * programs built without them (`ckpt`, `ckptfs`, any program using this
 * library) know their items. A plugin exports one function,
 *
 *	int ckpt_handler_plugin_init(unsigned abi_version);
 *
 * (CKPT_HANDLER_PLUGIN_INIT_NAME, type ckpt_handler_plugin_init_fn), which
 * registers its types with ckpt_handler_type_register(_info) and returns 0;
 * called with an abi_version other than the CKPT_HANDLER_PLUGIN_ABI it was
 * built with, it must register nothing and return CKPT_EVERSION. It calls
 * back into the library of the program that loads it, so it is linked
 * without libckpt (`cc -shared -fPIC`), and programs linking libckpt
 * statically export its API (`-rdynamic`, Makefile). A plugin stays loaded
 * until the process ends.
 */
#define CKPT_HANDLER_PLUGIN_ABI 1
#define CKPT_HANDLER_PLUGIN_INIT_NAME "ckpt_handler_plugin_init"
typedef int (*ckpt_handler_plugin_init_fn)(unsigned abi_version);

/*
 * Load the plugin at path, or every "*.so" file of the directory path (in
 * name order). A file already loaded (same real path) is not loaded again.
 * Errors name the file: dlopen's message (dlerror), a missing init
 * function, or the init's own error.
 * Returns 0, CKPT_EINVAL (path NULL or empty; not a shared object, or
 * without ckpt_handler_plugin_init), CKPT_ENOTFOUND (no such file or
 * directory), CKPT_EVERSION (the plugin refused this ABI version), CKPT_EIO,
 * CKPT_ENOMEM, or the code the init returned.
 */
CKPT_API int ckpt_handler_plugin_load(const char *path);
/*
 * ckpt_handler_plugin_load of each entry of a colon-separated list (empty
 * entries skipped); list NULL: the environment variable CKPT_HANDLER_PATH
 * (unset: nothing to load). Stops at the first error.
 * Returns 0, or what ckpt_handler_plugin_load returns.
 */
CKPT_API int ckpt_handler_plugin_load_path(const char *list);

#ifdef __cplusplus
}
#endif
#endif
