/*
 * ckpt/proto.h — ProtoCheckpointHandler: one protobuf message per item,
 * stored with a description of its type so that the checkpoint describes
 * itself.
 *
 * Files of the item:
 *   <item>/<filename>        the message in protobuf text format (default
 *                            filename "proto.pbtxt")
 *   <item>/descriptor.json   its type: the message and every message and
 *                            enum it uses, taken from the protobuf-c
 *                            descriptor (docs/handlers.md gives the schema)
 *
 * save args:    const ProtobufCMessage *            (borrowed)
 * restore args: const ProtobufCMessageDescriptor *  the type to unpack into
 *               (NULL: the handler's type, see ckpt_proto_handler_new_for; with
 *               neither, CKPT_EUNSUPPORTED); its description must match the
 *               stored one (same full name, and every stored field has the same
 *               number, label and type)
 * restore out:  ProtobufCMessage *  (protobuf_c_message_free_unpacked(m, NULL))
 * metadata out: char *              the stored descriptor.json (free())
 */
#ifndef CKPT_PROTO_H
#define CKPT_PROTO_H

#include "ckpt/common.h"

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "ckpt/handler.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKPT_PROTO_TYPESTR "orbax.checkpoint._src.handlers.proto_checkpoint_handler.ProtoCheckpointHandler"
#define CKPT_PROTO_DEFAULT_FILENAME "proto.pbtxt"
#define CKPT_PROTO_DESCRIPTOR_NAME "descriptor.json"

/*
 * filename NULL: "proto.pbtxt". Free with ckpt_handler_free().
 * Returns 0, CKPT_EINVAL (filename is not a plain file name, or is
 * "descriptor.json"), CKPT_ENOMEM.
 */
CKPT_API int ckpt_proto_handler_new(ckpt_handler **out, const char *filename);

/*
 * The same, restoring into type when restore is given no args (type is
 * borrowed: generated descriptors are static).
 * Returns 0, CKPT_EINVAL (filename is not a plain file name, or is
 * "descriptor.json"), CKPT_ENOMEM.
 */
CKPT_API int ckpt_proto_handler_new_for(ckpt_handler **out, const char *filename,
			       const ProtobufCMessageDescriptor *type);

/*
 * The description (JSON text, malloc'd) of message type d.
 * Returns 0, CKPT_EINVAL (d, or a type it uses, is not a protobuf-c
 * descriptor), CKPT_EUNSUPPORTED (a field of a type protobuf-c does not
 * define), CKPT_ENOMEM.
 */
CKPT_API int ckpt_proto_describe(char **out, const ProtobufCMessageDescriptor *d);

/*
 * Render wire-format bytes as text format using a description (*out
 * malloc'd).
 * Returns 0, CKPT_EINVAL (the description is malformed, or the bytes do not
 * match it: the message names the field and the byte offset),
 * CKPT_EVERSION (a description of another format version), CKPT_ENOMEM.
 */
CKPT_API int ckpt_proto_to_text(char **out, const char *desc, size_t desclen, const void *wire,
		       size_t len);

/*
 * Parse text format against a description into wire-format bytes (*out
 * malloc'd, *out_len its length).
 * Returns 0, CKPT_EINVAL (a malformed description, or invalid text: the
 * message is "<what>:<line>:<column>: ..."), CKPT_EVERSION (a description
 * of another format version), CKPT_ENOMEM.
 */
CKPT_API int ckpt_proto_from_text(void **out, size_t *out_len, const char *desc, size_t desclen,
			 const char *text, size_t len, const char *what);

#ifdef __cplusplus
}
#endif
#endif
