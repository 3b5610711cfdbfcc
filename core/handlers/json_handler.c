/*
 * json_handler.c — JsonCheckpointHandler (ckpt/json.h) and its item format.
 *
 * The item is one file, "<item>/<filename>", holding the JSON text exactly
 * as the caller gave it: it is validated with cJSON but never re-printed,
 * so integers beyond double precision keep every digit.
 *
 * Invariants:
 *   1. Only text that ckpt_json_check() accepts is stored (save, and the
 *      item format for `ckpt save` / finalize / the mount).
 *   2. The item directory holds exactly one file.
 */
#include <stdlib.h>
#include <string.h>

#include "ckpt/json.h"
#include "ckpt/sys/handler.h"
#include "error_private.h"
#include "handler_files.h"
#include "item_format.h"
#include "fsutil.h"

int ckpt_json_check(const char *text, size_t len, const char *what)
{
	if (!text)
		return ckpt_error_set(CKPT_EINVAL, "%s: no JSON text", what);
	return handler_json_parse(NULL, text, len, what);
}

static const char *json_typestr(const ckpt_handler *h)
{
	return CKPT_JSON_TYPESTR;
}

static int json_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	const char *fn = named_handler_name(h), *text = args;
	char *key, *what;
	int rc;

	if (!(what = ckpt_asprintf("item %s: %s", item, fn)))
		return CKPT_ENOMEM;
	rc = ckpt_json_check(text, text ? strlen(text) : 0, what);
	free(what);
	if (rc)
		return rc;
	if (!(key = handler_key(item, fn, "")))
		return CKPT_ENOMEM;
	rc = ckpt_batch_put(ckpt_step_writer_batch(w), key, strlen(key), text, strlen(text), NULL);
	free(key);
	return rc;
}

static int json_snapshot(void **out, ckpt_handler *h, const void *args)
{
	*out = NULL;
	if (!args)
		return ckpt_error_set(CKPT_EINVAL, "json snapshot: no JSON text");
	if (!(*out = strdup(args)))
		return ckpt_error_nomem();
	return 0;
}

static void json_snapshot_free(ckpt_handler *h, void *snap)
{
	free(snap);
}

static int json_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			const void *args)
{
	const char *fn = named_handler_name(h);
	char *key = handler_key(item, fn, ""), *text = NULL;
	int rc;

	*out = NULL;
	if (!key)
		return CKPT_ENOMEM;
	rc = store_get_text(&text, NULL, ckpt_step_store(s), key);
	if (rc == CKPT_ENOTFOUND)
		rc = ckpt_error_set(CKPT_ENOTFOUND, "item %s: no JSON file '%s'", item, fn);
	free(key);
	*out = text;
	return rc;
}

static const ckpt_handler_vtable json_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = json_typestr,
    .save = json_save,
    .snapshot = json_snapshot,
    .snapshot_free = json_snapshot_free,
    .restore = json_restore,
    .metadata = named_handler_no_metadata,
    .restored_free = NULL, /* free() */
    .metadata_free = NULL,
    .finalize = NULL,
    .close = named_handler_close,
};

int ckpt_json_handler_new(ckpt_handler **out, const char *filename)
{
	return named_handler_new(out, filename, CKPT_JSON_DEFAULT_FILENAME, &json_vt,
				 "json handler filename");
}

/* ---- the item format ---- */

static int check_file(int item_dirfd, const char *name, int fd, const char *what)
{
	char *text = NULL;
	size_t len = 0;
	int rc = item_flat_check(name, what);

	if (rc == 0)
		rc = ckpt_read_fd(&text, &len, fd, HANDLER_JSON_MAX, what);
	if (rc == 0)
		rc = ckpt_json_check(text, len, what);
	free(text);
	return rc;
}

static int check_dir(int item_dirfd, const char *what)
{
	return item_dir_one_file(item_dirfd, what, "a JSON item");
}

const item_format ckpt_json_format = {CKPT_JSON_TYPESTR, check_file, check_dir};
