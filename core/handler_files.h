/*
 * handler_files.h — helpers shared by the handlers whose item is a few
 * files stored as keys "<item>/<file>" (Json, Array, JaxRandomKey,
 * NumpyRandomKey; library only): file-name checks, .npy values in the
 * store, an array cast and shaped as a restore target asks, JSON texts with
 * line:column errors, and listing an item directory
 * for the item formats (item_format.h).
 */
#ifndef CKPT_HANDLER_FILES_H
#define CKPT_HANDLER_FILES_H

#include <stddef.h>

#include <cJSON.h>

#include "ckpt/handler.h"
#include "ckpt/sys/handler.h"
#include "ckpt/store.h"
#include "ckpt/tree.h"

/* Cap on a JSON file of an item (item formats and restore). */
#define HANDLER_JSON_MAX (64u << 20)

/*
 * The handler objects of these handlers: a vtable and the name of the
 * item's file. named_handler_new checks name (NULL: def) with
 * handler_name_check; named_handler_close is the vtable's close.
 */
int named_handler_new(ckpt_handler **out, const char *name, const char *def,
		      const ckpt_handler_vtable *vt, const char *what);
void named_handler_close(ckpt_handler *h);
/* The vtable's metadata of a handler with none beyond StepMetadata: *out NULL. */
int named_handler_no_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item);
/* The name of the item's file (borrowed). */
const char *named_handler_name(const ckpt_handler *h);

/*
 * name is a plain file name: not empty, no '/', not "." or "..", not
 * starting with '_' (reserved: _METADATA, _CHECKPOINT_METADATA). CKPT_EINVAL
 * naming `what` (e.g. "json handler filename") otherwise.
 */
int handler_name_check(const char *name, const char *what);

/* 1 if s ends with suffix (and is longer than it), else 0. */
int handler_has_suffix(const char *s, const char *suffix);

/* "<item>/<name><suffix>", malloc'd; NULL when out of memory (message set). */
char *handler_key(const char *item, const char *name, const char *suffix);

/*
 * Put the array leaf arr (with data) as a complete .npy value (np.save's
 * header, then the little-endian C-order data, streamed) under key.
 */
int npy_value_put(ckpt_batch *b, const char *key, const ckpt_tree *arr);

/*
 * Read the .npy value of key into a new array leaf (*out, ckpt_tree_free):
 * header checked and data length exact (CKPT_ECORRUPT naming the key
 * otherwise), data converted to little-endian C order. meta_only: read only
 * the header and return a metadata-only leaf (data NULL).
 * CKPT_ENOTFOUND if key is absent.
 */
int npy_value_get(ckpt_tree **out, ckpt_store *s, const char *key, int meta_only);

/*
 * Array leaf t (with data) as a restore target asks (Orbax's RestoreArgs.dtype
 * and ArrayRestoreArgs.global_shape / strict): cast to dt (INVALID keeps
 * t's) and, with shape non-NULL, shaped as (ndim, shape). A shape that
 * differs from t's is CKPT_ESHAPE when strict; otherwise (same number of
 * dimensions) the box common to both is copied and the rest of a larger
 * target is zero, as the PyTree leaf restore does. *out: the new leaf
 * (ckpt_tree_free), or NULL when t already has that dtype and shape. Errors
 * name `what`.
 */
int handler_array_to_target(ckpt_tree **out, const ckpt_tree *t, ckpt_dtype dt, unsigned ndim,
			    const uint64_t *shape, int strict, const char *what);

/* The whole value of key as a NUL-terminated malloc'd text (*len: its length,
 * may be NULL). CKPT_ENOTFOUND if absent. */
int store_get_text(char **out, size_t *len, ckpt_store *s, const char *key);

/*
 * Parse text[0..len) as exactly one JSON value (whitespace around it, no
 * NUL bytes, UTF-8, RFC 8259 numbers and strings, and NaN, Infinity and
 * -Infinity, which Python's json writes: what Python's json reads; those
 * three are 0 in the tree). *out receives the tree
 * (cJSON_Delete), or pass out NULL to only check. CKPT_EINVAL "<what>:<line>:<column>: invalid
 * JSON" otherwise.
 */
int handler_json_parse(cJSON **out, const char *text, size_t len, const char *what);

/*
 * The entries of directory dirfd other than "." and "..": *n receives
 * their count and names[0..min(n, max)) their malloc'd names (free with
 * handler_names_free). CKPT_EINVAL naming `what` for an entry that is not
 * a regular file (these items hold no directories).
 */
int item_dir_list(char **names, size_t max, size_t *n, int dirfd, const char *what);
void handler_names_free(char **names, size_t n);

/* check_dir of an item of exactly one file; kind names the item in messages
 * ("a JSON item holds one file; found 2 (a, b)"). */
int item_dir_one_file(int dirfd, const char *what, const char *kind);

/* CKPT_EINVAL if name (a path inside the item, from check_file) has a '/'. */
int item_flat_check(const char *name, const char *what);

#endif
