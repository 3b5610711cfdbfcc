/*
 * handler.c — dispatch through a handler's vtable (ckpt/handler.h).
 *
 * Invariant: a NULL slot is CKPT_EUNSUPPORTED naming the handler, except
 * finalize and snapshot_reserve, whose NULL means "nothing to do".
 */
#include <stddef.h>
#include <stdlib.h>

#include "ckpt/handler.h"
#include "error_private.h"

static int unsupported(const ckpt_handler *h, const char *op)
{
	return ckpt_error_set(CKPT_EUNSUPPORTED, "%s does not support %s", ckpt_handler_typestr(h),
			      op);
}

const char *ckpt_handler_typestr(const ckpt_handler *h)
{
	return h->vt->typestr ? h->vt->typestr(h) : "(unnamed handler)";
}

int ckpt_handler_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	return h->vt->save ? h->vt->save(h, w, item, args) : unsupported(h, "save");
}

int ckpt_handler_snapshot(void **out, ckpt_handler *h, const void *args)
{
	*out = NULL;
	return h->vt->snapshot ? h->vt->snapshot(out, h, args)
			       : unsupported(h, "copy-mode snapshots");
}

int ckpt_handler_snapshot_reserve(ckpt_handler *h, const void *args)
{
	return h->vt->snapshot_reserve ? h->vt->snapshot_reserve(h, args) : 0;
}

void ckpt_handler_snapshot_free(ckpt_handler *h, void *snap)
{
	if (snap && h->vt->snapshot_free)
		h->vt->snapshot_free(h, snap);
}

int ckpt_handler_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			 const void *args)
{
	*out = NULL;
	return h->vt->restore ? h->vt->restore(out, h, s, item, args) : unsupported(h, "restore");
}

int ckpt_handler_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	*out = NULL;
	return h->vt->metadata ? h->vt->metadata(out, h, s, item) : unsupported(h, "metadata");
}

void ckpt_handler_restored_free(ckpt_handler *h, void *out)
{
	if (out && h->vt->restored_free)
		h->vt->restored_free(h, out);
	else
		free(out);
}

void ckpt_handler_metadata_free(ckpt_handler *h, void *meta)
{
	if (meta && h->vt->metadata_free)
		h->vt->metadata_free(h, meta);
	else
		free(meta);
}

int ckpt_handler_finalize(ckpt_handler *h, ckpt_step_writer *w, const char *item)
{
	return h->vt->finalize ? h->vt->finalize(h, w, item) : 0;
}

void ckpt_handler_free(ckpt_handler *h)
{
	if (h && h->vt->close)
		h->vt->close(h);
}
