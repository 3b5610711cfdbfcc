/*
 * checkpointer.c — Orbax's Checkpointer: a step of named items, saved
 * atomically through a ckpt_step_writer, restored through ckpt_step_open.
 *
 * Invariant: a save either finalizes the step or aborts the writer (which
 * removes the temporary directory); no path leaves a partial step behind.
 */
#include <stddef.h>
#include <string.h>

#include "ckpt/checkpointer.h"
#include "error_private.h"

int ckpt_checkpointer_save(const char *root, uint64_t step, const ckpt_item_args *items, size_t n,
			   const ckpt_step_writer_options *opts)
{
	ckpt_step_writer *w = NULL;
	size_t i;
	int rc = ckpt_step_writer_open(&w, root, step, opts);

	for (i = 0; rc == 0 && i < n; i++) {
		rc = ckpt_step_writer_add_item(w, items[i].name,
					       ckpt_handler_typestr(items[i].handler));
		if (rc == 0)
			rc = ckpt_handler_save(items[i].handler, w, items[i].name, items[i].args);
		if (rc)
			ckpt_error_wrap(rc, "save item %s", items[i].name);
	}
	for (i = 0; rc == 0 && i < n; i++)
		rc = ckpt_handler_finalize(items[i].handler, w, items[i].name);
	if (rc) {
		ckpt_step_writer_abort(w);
		return rc;
	}
	return ckpt_step_writer_finalize(w);
}

int ckpt_checkpointer_restore(void **outs, const char *step_dir, const ckpt_item_args *items,
			      size_t n)
{
	ckpt_step *s = NULL;
	size_t idx;
	int rc;

	for (size_t i = 0; i < n; i++)
		outs[i] = NULL;
	rc = ckpt_step_open(&s, step_dir, NULL);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = ckpt_step_item_find(&idx, s, items[i].name);
		if (rc == 0)
			rc = ckpt_handler_restore(&outs[i], items[i].handler, s, items[i].name,
						  items[i].args);
		if (rc)
			ckpt_error_wrap(rc, "restore item %s", items[i].name);
	}
	ckpt_step_free(s);
	return rc;
}

int ckpt_composite_item_args(ckpt_item_args *out, ckpt_registry *r,
			     const ckpt_composite_arg *items, size_t n)
{
	int rc = 0;

	if (!out || !r || (n && !items))
		return ckpt_error_set(CKPT_EINVAL, "ckpt_composite_item_args: NULL argument");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		ckpt_handler *h = NULL;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(items[j].item, items[i].item))
				return ckpt_error_set(CKPT_EINVAL, "item '%s' given twice",
						      items[i].item);
		rc = ckpt_registry_resolve(&h, r, items[i].item, items[i].type);
		out[i] = (ckpt_item_args){items[i].item, h, items[i].args};
	}
	return rc;
}
