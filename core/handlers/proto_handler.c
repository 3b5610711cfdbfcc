/*
 * proto_handler.c — ProtoCheckpointHandler (ckpt/proto.h) and its item format.
 *
 * The item is two files, i.e. two store keys:
 *   "<item>/<filename>"      the message in text format (proto_text.c), what
 *                            the mount shows and `ckpt restore` writes
 *   "<item>/descriptor.json" the description of its type (proto_desc.c)
 * Save packs the message, renders the wire bytes as text through the
 * description (so the text is exactly what the description can parse) and
 * puts both. Restore parses the text against the stored description back
 * into wire bytes and unpacks them with the caller's descriptor, after
 * checking that the two descriptions agree field by field.
 *
 * Invariants:
 *   1. Only a text that parses against its stored description is stored
 *      (save renders it from that description; the item format checks files
 *      written into a pending step or read by `ckpt save`).
 *   2. The item directory holds exactly the text file and descriptor.json.
 */
#include <stdlib.h>
#include <string.h>

#include "ckpt/proto.h"
#include "ckpt/sys/handler.h"
#include "error_private.h"
#include "handler_files.h"
#include "item_format.h"
#include "proto_private.h"
#include "fsutil.h"

struct proto_handler {
	ckpt_handler base;
	char *filename;
	const ProtobufCMessageDescriptor *type; /* restore's default, or NULL */
};

static const char *proto_typestr(const ckpt_handler *h)
{
	return CKPT_PROTO_TYPESTR;
}

static int check_message(const ProtobufCMessage *m, const char *item)
{
	if (!m || !m->descriptor || m->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
		return ckpt_error_set(CKPT_EINVAL, "item %s: no protobuf-c message to save", item);
	return 0;
}

/* The wire bytes of m, malloc'd. */
static int pack(uint8_t **out, size_t *len, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (!(*out = malloc(n ? n : 1)))
		return ckpt_error_nomem();
	*len = protobuf_c_message_pack(m, *out);
	return 0;
}

static int proto_save(ckpt_handler *h, ckpt_step_writer *w, const char *item, const void *args)
{
	const char *fn = ((struct proto_handler *)h)->filename;
	const ProtobufCMessage *m = args;
	char *desc = NULL, *text = NULL, *tkey = NULL, *dkey = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;
	int rc = check_message(m, item);

	if (rc == 0)
		rc = pack(&wire, &len, m);
	if (rc == 0)
		rc = ckpt_proto_describe(&desc, m->descriptor);
	if (rc == 0 && (rc = ckpt_proto_to_text(&text, desc, strlen(desc), wire, len)) != 0)
		rc = ckpt_error_wrap(rc, "item %s: %s", item, m->descriptor->name);
	if (rc == 0 && (!(tkey = handler_key(item, fn, "")) ||
			!(dkey = handler_key(item, CKPT_PROTO_DESCRIPTOR_NAME, ""))))
		rc = CKPT_ENOMEM;
	if (rc == 0)
		rc = ckpt_batch_put(ckpt_step_writer_batch(w), dkey, strlen(dkey), desc,
				    strlen(desc), NULL);
	if (rc == 0)
		rc = ckpt_batch_put(ckpt_step_writer_batch(w), tkey, strlen(tkey), text,
				    strlen(text), NULL);
	free(wire);
	free(desc);
	free(text);
	free(tkey);
	free(dkey);
	return rc;
}

/* Copy mode of async saves: a deep copy (packed, then unpacked). */
static int proto_snapshot(void **out, ckpt_handler *h, const void *args)
{
	const ProtobufCMessage *m = args;
	uint8_t *wire = NULL;
	size_t len = 0;
	int rc = check_message(m, "snapshot");

	*out = NULL;
	if (rc == 0)
		rc = pack(&wire, &len, m);
	if (rc == 0 && !(*out = protobuf_c_message_unpack(m->descriptor, NULL, len, wire)))
		rc = ckpt_error_set(CKPT_EINVAL, "snapshot: the message does not unpack as %s "
						 "(a required field missing?)",
				    m->descriptor->name);
	free(wire);
	return rc;
}

static void message_free(ckpt_handler *h, void *m)
{
	protobuf_c_message_free_unpacked(m, NULL);
}

static int read_key(char **out, size_t *len, ckpt_step *s, const char *item, const char *name)
{
	char *key = handler_key(item, name, "");
	int rc;

	*out = NULL;
	if (!key)
		return CKPT_ENOMEM;
	rc = store_get_text(out, len, ckpt_step_store(s), key);
	if (rc == CKPT_ENOTFOUND)
		rc = ckpt_error_set(CKPT_ENOTFOUND, "item %s: no file '%s'", item, name);
	free(key);
	return rc;
}

static int proto_restore(void **out, ckpt_handler *h, ckpt_step *s, const char *item,
			 const void *args)
{
	const char *fn = ((struct proto_handler *)h)->filename;
	const ProtobufCMessageDescriptor *md = args ? args : ((struct proto_handler *)h)->type;
	struct pdesc *stored = NULL, *want = NULL;
	char *desc = NULL, *text = NULL, *mine = NULL, *what = NULL;
	size_t desclen = 0, textlen = 0, len = 0;
	void *wire = NULL;
	int rc = 0;

	*out = NULL;
	if (!md)
		return ckpt_error_set(CKPT_EUNSUPPORTED,
				      "item %s: restoring a proto needs the message type (restore "
				      "args, or a handler of ckpt_proto_handler_new_for)",
				      item);
	if (md->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
		return ckpt_error_set(CKPT_EINVAL, "item %s: not a message descriptor", item);
	if ((rc = read_key(&desc, &desclen, s, item, CKPT_PROTO_DESCRIPTOR_NAME)) != 0 ||
	    (rc = read_key(&text, &textlen, s, item, fn)) != 0)
		goto done;
	if ((rc = proto_desc_parse(&stored, desc, desclen)) != 0) {
		rc = ckpt_error_wrap(rc, "item %s: %s", item, CKPT_PROTO_DESCRIPTOR_NAME);
		goto done;
	}
	if ((rc = ckpt_proto_describe(&mine, md)) != 0 ||
	    (rc = proto_desc_parse(&want, mine, strlen(mine))) != 0)
		goto done;
	if ((rc = proto_desc_check_match(stored, want)) != 0) {
		rc = ckpt_error_wrap(rc, "item %s", item);
		goto done;
	}
	if (!(what = ckpt_asprintf("%s/%s", item, fn))) {
		rc = CKPT_ENOMEM;
		goto done;
	}
	if ((rc = proto_text_parse(&wire, &len, stored, text, textlen, what)) != 0)
		goto done;
	if (!(*out = protobuf_c_message_unpack(md, NULL, len, wire)))
		rc = ckpt_error_set(CKPT_EINVAL, "item %s: %s does not unpack as %s", item, fn,
				    md->name);
done:
	proto_desc_free(stored);
	proto_desc_free(want);
	free(desc);
	free(text);
	free(mine);
	free(what);
	free(wire);
	return rc;
}

static int proto_metadata(void **out, ckpt_handler *h, ckpt_step *s, const char *item)
{
	return read_key((char **)out, NULL, s, item, CKPT_PROTO_DESCRIPTOR_NAME);
}

static void proto_close(ckpt_handler *h)
{
	free(((struct proto_handler *)h)->filename);
	free(h);
}

static const ckpt_handler_vtable proto_vt = {
    .version = CKPT_HANDLER_VTABLE_VERSION,
    .typestr = proto_typestr,
    .save = proto_save,
    .snapshot = proto_snapshot,
    .snapshot_free = message_free,
    .restore = proto_restore,
    .metadata = proto_metadata,
    .restored_free = message_free,
    .metadata_free = NULL, /* free() */
    .finalize = NULL,
    .close = proto_close,
};

int ckpt_proto_handler_new(ckpt_handler **out, const char *filename)
{
	return ckpt_proto_handler_new_for(out, filename, NULL);
}

int ckpt_proto_handler_new_for(ckpt_handler **out, const char *filename,
			       const ProtobufCMessageDescriptor *type)
{
	struct proto_handler *h;
	int rc;

	*out = NULL;
	if (!filename)
		filename = CKPT_PROTO_DEFAULT_FILENAME;
	if ((rc = handler_name_check(filename, "proto handler filename")) < 0)
		return rc;
	if (!strcmp(filename, CKPT_PROTO_DESCRIPTOR_NAME))
		return ckpt_error_set(CKPT_EINVAL, "proto handler filename: '%s' is reserved",
				      filename);
	if (!(h = calloc(1, sizeof(*h))) || !(h->filename = strdup(filename))) {
		free(h);
		return ckpt_error_nomem();
	}
	h->base.vt = &proto_vt;
	h->type = type;
	*out = &h->base;
	return 0;
}

/* ---- the item format ---- */

static int check_file(int item_dirfd, const char *name, int fd, const char *what)
{
	char *text = NULL, *desc = NULL;
	size_t len = 0, desclen = 0;
	void *wire = NULL;
	int rc = item_flat_check(name, what);

	if (rc == 0 && !strcmp(name, CKPT_PROTO_DESCRIPTOR_NAME)) {
		struct pdesc *d = NULL;

		rc = ckpt_read_fd(&desc, &desclen, fd, PROTO_MAX_DESC_SIZE, what);
		if (rc == 0 && (rc = proto_desc_parse(&d, desc, desclen)) != 0)
			rc = ckpt_error_wrap(rc, "%s", what);
		proto_desc_free(d);
		free(desc);
		return rc;
	}
	if (rc == 0) {
		rc = item_read_at(&desc, &desclen, item_dirfd, CKPT_PROTO_DESCRIPTOR_NAME,
				  PROTO_MAX_DESC_SIZE, CKPT_PROTO_DESCRIPTOR_NAME);
		if (rc == CKPT_ENOTFOUND) {
			ckpt_error_set(CKPT_EINVAL, "%s missing", CKPT_PROTO_DESCRIPTOR_NAME);
			return ITEM_CHECK_LATER;
		}
	}
	if (rc == 0)
		rc = ckpt_read_fd(&text, &len, fd, PROTO_MAX_TEXT_SIZE, what);
	if (rc == 0)
		rc = ckpt_proto_from_text(&wire, &len, desc, desclen, text, len, what);
	if (rc && strncmp(ckpt_error_last(), "description:", 12) == 0)
		rc = ckpt_error_wrap(rc, "%s", CKPT_PROTO_DESCRIPTOR_NAME);
	free(text);
	free(desc);
	free(wire);
	return rc;
}

static int check_dir(int item_dirfd, const char *what)
{
	char *names[3] = {NULL, NULL, NULL};
	size_t n = 0;
	int rc = item_dir_list(names, 3, &n, item_dirfd, what), has_desc = 0;

	for (size_t i = 0; rc == 0 && i < n && i < 3; i++)
		has_desc |= !strcmp(names[i], CKPT_PROTO_DESCRIPTOR_NAME);
	if (rc == 0 && (n != 2 || !has_desc))
		rc = ckpt_error_set(CKPT_EINVAL,
				    "%s: a proto item holds its text file (e.g. %s) and %s only; "
				    "found %zu file%s%s%s%s%s%s",
				    what, CKPT_PROTO_DEFAULT_FILENAME, CKPT_PROTO_DESCRIPTOR_NAME,
				    n, n == 1 ? "" : "s", n ? " ('" : "", n ? names[0] : "",
				    n > 1 ? "', '" : "", n > 1 ? names[1] : "",
				    n > 2 ? "', ...)"
				    : n	  ? "')"
					  : "");
	handler_names_free(names, n < 3 ? n : 3);
	return rc;
}

const item_format ckpt_proto_format = {CKPT_PROTO_TYPESTR, check_file, check_dir};
