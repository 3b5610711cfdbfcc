/*
 * handler.c — dispatch through a handler's vtable (ckpt/handler.h).
 *
 * Invariants:
 *  1. A NULL slot is CKPT_EUNSUPPORTED naming the handler, except finalize
 *     and snapshot_reserve, whose NULL means "nothing to do".
 *  2. No slot of a vtable whose version this library does not know is ever
 *     read (known() guards every dispatch).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/handler.h"
#include "ckpt/sys/handler.h"
#include "error_private.h"

static int known(const ckpt_handler *h)
{
	return h->vt->version == CKPT_HANDLER_VTABLE_VERSION;
}

static int bad_version(const ckpt_handler *h)
{
	return ckpt_error_set(CKPT_EVERSION,
			      "a handler's vtable has version %u; this library knows version %d",
			      h->vt->version, CKPT_HANDLER_VTABLE_VERSION);
}

int ckpt_handler_vtable_init(ckpt_handler_vtable *vt, unsigned version)
{
	memset(vt, 0, sizeof(*vt));
	if (version != CKPT_HANDLER_VTABLE_VERSION)
		return ckpt_error_set(CKPT_EVERSION,
				      "handler vtable version %u; this library knows version %d",
				      version, CKPT_HANDLER_VTABLE_VERSION);
	vt->version = version;
	return 0;
}

static int unsupported(const ckpt_handler *h, const char *op)
{
	return ckpt_error_set(CKPT_EUNSUPPORTED, "%s does not support %s", ckpt_handler_typestr(h),
			      op);
}

const char *ckpt_handler_typestr(const ckpt_handler *h)
{
	if (!known(h))
		return "(unknown handler version)";
	return h->vt->typestr ? h->vt->typestr(h) : "(unnamed handler)";
}

int ckpt_handler_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	if (!known(h))
		return bad_version(h);
	return h->vt->save ? h->vt->save(h, w, item, args) : unsupported(h, "save");
}

int ckpt_handler_snapshot(void **out, ckpt_handler *h, const void *args)
{
	*out = NULL;
	if (!known(h))
		return bad_version(h);
	return h->vt->snapshot ? h->vt->snapshot(out, h, args)
			       : unsupported(h, "copy-mode snapshots");
}

int ckpt_handler_snapshot_reserve(ckpt_handler *h, const void *args)
{
	if (!known(h))
		return bad_version(h);
	return h->vt->snapshot_reserve ? h->vt->snapshot_reserve(h, args) : 0;
}

void ckpt_handler_snapshot_free(ckpt_handler *h, void *snap)
{
	if (snap && known(h) && h->vt->snapshot_free)
		h->vt->snapshot_free(h, snap);
}

int ckpt_handler_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			 const void *args)
{
	int rc;

	*out = NULL;
	if (!known(h))
		return bad_version(h);
	/* A step opened listed reads its index now (s may be NULL: the handler refuses args). */
	if (s && (rc = ckpt_step_load_index(s)))
		return rc;
	return h->vt->restore ? h->vt->restore(out, h, s, item, args) : unsupported(h, "restore");
}

int ckpt_handler_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	int rc;

	*out = NULL;
	if (!known(h))
		return bad_version(h);
	if (s && (rc = ckpt_step_load_index(s)))
		return rc;
	return h->vt->metadata ? h->vt->metadata(out, h, s, item) : unsupported(h, "metadata");
}

/* What restore or metadata returned: only a handler of a known version returned anything. */
void ckpt_handler_restored_free(ckpt_handler *h, void *out)
{
	if (out && known(h) && h->vt->restored_free)
		h->vt->restored_free(h, out);
	else
		free(out);
}

void ckpt_handler_metadata_free(ckpt_handler *h, void *meta)
{
	if (meta && known(h) && h->vt->metadata_free)
		h->vt->metadata_free(h, meta);
	else
		free(meta);
}

int ckpt_handler_finalize(ckpt_handler *h, ckpt_step_writer *w, const char *item)
{
	if (!known(h))
		return bad_version(h);
	return h->vt->finalize ? h->vt->finalize(h, w, item) : 0;
}

void ckpt_handler_free(ckpt_handler *h)
{
	if (h && known(h) && h->vt->close)
		h->vt->close(h);
}
