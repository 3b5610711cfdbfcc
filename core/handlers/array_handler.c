/*
 * array_handler.c — ArrayCheckpointHandler (ckpt/array.h) and its item format.
 *
 * The item is one file: "<item>/<name>.npy", a complete .npy of an array
 * leaf (handler_files.c writes it streaming, reads it checked), or
 * "<item>/<name>", the ckpt_scalar_format() text of an int, float or bool.
 * Restore tries the .npy key first, then the scalar key; a scalar's kind is
 * read back from its text (ckpt_scalar_parse: int, float, bool). metadata()
 * reads only the .npy header (a metadata-only leaf); for a scalar it reads
 * the few bytes of its text and gives the scalar, value included.
 *
 * Save args are a bare leaf or a ckpt_array_save_args, told apart by their
 * first word (save_args_of); a snapshot is always the latter, owning a
 * clone of the leaf. Restore args cast and shape the array with
 * handler_array_to_target, the same rules as a PyTree leaf's.
 *
 * Invariants:
 *   1. A saved item has exactly one of the two keys.
 *   2. The item directory holds exactly one file, a valid .npy (exact
 *      length) or a text that parses as one of the three scalar kinds.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/array.h"
#include "ckpt/sys/handler.h"
#include "ckpt/npy.h"
#include "error_private.h"
#include "fsutil.h"
#include "handler_files.h"
#include "item_format.h"
#include "npy_private.h"
#include "tree_private.h"

/* A scalar file is a short text; anything longer is not one. */
#define SCALAR_FILE_MAX 4096u

static int is_scalar(const ckpt_tree *t)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(t);

	return k == CKPT_TREE_INT || k == CKPT_TREE_FLOAT || k == CKPT_TREE_BOOL;
}

static const char *array_typestr(const ckpt_handler *h)
{
	return CKPT_ARRAY_TYPESTR;
}

/* args as save args (*a; a bare leaf becomes args with no cast). */
static int save_args_of(ckpt_array_save_args *a, const void *args, const char *item)
{
	const ckpt_array_save_args *sa = args;
	ckpt_array_save_args d = CKPT_ARRAY_SAVE_ARGS_INIT;

	*a = d;
	if (!args)
		return ckpt_error_set(CKPT_EINVAL, "item %s: no array to save", item);
	if (ckpt_tree_starts_as_tree(args)) {
		a->item = args;
		return 0;
	}
	if (sa->tag != CKPT_ARRAY_SAVE_ARGS_TAG)
		return ckpt_error_set(CKPT_EINVAL,
				      "item %s: save args are neither a ckpt_tree nor a "
				      "ckpt_array_save_args (initialise it with "
				      "CKPT_ARRAY_SAVE_ARGS_INIT)",
				      item);
	CKPT_CHECK_VERSION(sa, CKPT_ARRAY_SAVE_ARGS_VERSION, "ckpt_array_save_args");
	*a = *sa;
	return 0;
}

static int array_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	const char *name = named_handler_name(h);
	ckpt_array_save_args a;
	const ckpt_tree *t;
	ckpt_tree *cast = NULL;
	char *key = NULL, txt[64];
	int rc;

	if ((rc = save_args_of(&a, args, item)) != 0)
		return rc;
	t = a.item;
	if (!t ||
	    !((ckpt_tree_get_kind(t) == CKPT_TREE_ARRAY && ckpt_tree_data(t)) || is_scalar(t)))
		return ckpt_error_set(CKPT_EINVAL,
				      "item %s: ArrayCheckpointHandler saves an array with data or "
				      "an int, float or bool scalar",
				      item);
	if (a.dtype != CKPT_DTYPE_INVALID && is_scalar(t))
		return ckpt_error_set(CKPT_EINVAL,
				      "item %s: save dtype %s: a scalar is saved as its text, "
				      "only an array is cast",
				      item, ckpt_dtype_name(a.dtype));
	if (a.dtype != CKPT_DTYPE_INVALID &&
	    (rc = handler_array_to_target(&cast, t, a.dtype, 0, NULL, 1, item)) != 0)
		return rc;
	if (cast)
		t = cast;
	if (!(key = handler_key(item, name, is_scalar(t) ? "" : ".npy"))) {
		ckpt_tree_free(cast);
		return CKPT_ENOMEM;
	}
	if (is_scalar(t)) {
		rc = ckpt_scalar_format(txt, sizeof(txt), t);
		if (rc >= 0)
			rc = ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), txt,
					    (size_t)rc, NULL);
	} else {
		rc = npy_value_put(ckpt_step_writer_batch(w), key, t);
	}
	ckpt_tree_free(cast);
	free(key);
	return rc;
}

/* The snapshot: a ckpt_array_save_args owning a clone of the leaf. */
static int array_snapshot(void **out, ckpt_handler *h, const void *args)
{
	ckpt_array_save_args a, *copy = NULL;
	ckpt_tree *t = NULL;
	int rc;

	*out = NULL;
	if ((rc = save_args_of(&a, args, "(snapshot)")) != 0)
		return rc;
	if (!a.item)
		return ckpt_error_set(CKPT_EINVAL, "array snapshot: no leaf");
	if ((rc = ckpt_tree_clone(&t, a.item)) != 0)
		return rc;
	if (!(copy = malloc(sizeof(*copy)))) {
		ckpt_tree_free(t);
		return ckpt_error_nomem();
	}
	*copy = a;
	copy->item = t;
	*out = copy;
	return 0;
}

static void array_snapshot_free(ckpt_handler *h, void *p)
{
	ckpt_array_save_args *a = p;

	if (a)
		ckpt_tree_free((ckpt_tree *)a->item);
	free(a);
}

static void array_tree_free(ckpt_handler *h, void *t)
{
	ckpt_tree_free(t);
}

/* The array or the scalar of item; meta_only: the .npy header only. */
static int load(ckpt_tree **out, ckpt_handler *h, ckpt_step *s, const char *item, int meta_only)
{
	const char *name = named_handler_name(h);
	char *npy = handler_key(item, name, ".npy"), *key = handler_key(item, name, "");
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (!npy || !key) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	rc = npy_value_get(out, ckpt_step_store(s), npy, meta_only);
	if (rc != CKPT_ENOTFOUND)
		goto done;
	rc = store_get_text(&text, &len, ckpt_step_store(s), key);
	if (rc == CKPT_ENOTFOUND) {
		rc =
		    ckpt_error_set(CKPT_ENOTFOUND, "item %s: no array file '%s.npy' or scalar '%s'",
				   item, name, name);
		goto done;
	}
	if (rc == 0 && (rc = ckpt_scalar_parse(out, text, len, 0)) < 0)
		rc = ckpt_error_wrap(CKPT_ECORRUPT, "%s", key);
done:
	free(npy);
	free(key);
	free(text);
	return rc;
}

/* Restore args: the dtype and shape of the array (ckpt_array_restore_args). */
static int array_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			 const void *args)
{
	const ckpt_array_restore_args *in = args;
	ckpt_array_restore_args a = CKPT_ARRAY_RESTORE_ARGS_INIT;
	ckpt_tree *t = NULL, *c = NULL;
	int rc;

	*out = NULL;
	CKPT_CHECK_VERSION(in, CKPT_ARRAY_RESTORE_ARGS_VERSION, "ckpt_array_restore_args");
	if (in) /* a version 1 struct ends before ndim: the defaults stay */
		memcpy(&a, in,
		       in->version >= 2 ? sizeof(a) : offsetof(ckpt_array_restore_args, ndim));
	if (a.dtype != CKPT_DTYPE_INVALID && ckpt_dtype_size(a.dtype) == 0)
		return ckpt_error_set(CKPT_EINVAL, "item %s: invalid restore dtype", item);
	if ((rc = load(&t, h, s, item, 0)) != 0)
		return rc;
	if (ckpt_tree_get_kind(t) == CKPT_TREE_ARRAY)
		rc = handler_array_to_target(&c, t, a.dtype, a.ndim, a.has_shape ? a.shape : NULL,
					     a.strict, item);
	if (rc == 0 && c) {
		ckpt_tree_free(t);
		t = c;
	}
	if (rc == 0)
		*out = t;
	else
		ckpt_tree_free(t);
	return rc;
}

static int array_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	return load((ckpt_tree **)out, h, s, item, 1);
}

static const ckpt_handler_vtable array_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = array_typestr,
    .save = array_save,
    .snapshot = array_snapshot,
    .snapshot_free = array_snapshot_free,
    .restore = array_restore,
    .metadata = array_metadata,
    .restored_free = array_tree_free,
    .metadata_free = array_tree_free,
    .finalize = NULL,
    .close = named_handler_close,
};

int ckpt_array_handler_new(ckpt_handler **out, const char *checkpoint_name)
{
	return named_handler_new(out, checkpoint_name, CKPT_ARRAY_DEFAULT_NAME, &array_vt,
				 "array handler checkpoint_name");
}

/* ---- the item format ---- */

static int check_file(int item_dirfd, const char *name, int fd, const char *what)
{
	ckpt_npy_header h;
	ckpt_tree *t = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc = item_flat_check(name, what);

	if (rc == 0 && handler_has_suffix(name, ".npy"))
		return ckpt_npy_check_fd(&h, fd, what);
	if (rc == 0)
		rc = ckpt_read_fd(&text, &len, fd, SCALAR_FILE_MAX, what);
	if (rc == 0 && (rc = ckpt_scalar_parse(&t, text, len, 0)) < 0)
		ckpt_error_wrap(rc, "%s", what);
	ckpt_tree_free(t);
	free(text);
	return rc;
}

static int check_dir(int item_dirfd, const char *what)
{
	return item_dir_one_file(item_dirfd, what, "an array item (<name>.npy or a scalar)");
}

const item_format ckpt_array_format = {CKPT_ARRAY_TYPESTR, check_file, check_dir};
