/*
 * proto_private.h — the parsed type description shared by proto_desc.c
 * (describe a protobuf-c descriptor, parse and validate a description),
 * proto_text.c (render wire bytes as text format, parse text format into
 * wire bytes) and proto_handler.c (the handler and its item format).
 *
 * A description (struct pdesc) is built only by proto_desc_parse(), which
 * guarantees:
 *   1. every message's fields are sorted by number, numbers are unique and in
 *      1..PROTO_MAX_FIELD_NUMBER, names unique and identifiers;
 *   2. every enum or message field points at its resolved type (f->msg or
 *      f->en, never dangling);
 *   3. `packed` is set only on repeated scalar (non string/bytes/message)
 *      fields.
 * Messages may refer to themselves (recursion); walkers cap the nesting
 * depth at PROTO_MAX_DEPTH.
 */
#ifndef CKPT_PROTO_PRIVATE_H
#define CKPT_PROTO_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define PROTO_MAX_FIELD_NUMBER 536870911u /* 2^29 - 1 */
#define PROTO_MAX_DEPTH	       100
#define PROTO_MAX_DESC_SIZE    (16u << 20)  /* bytes of descriptor.json read */
#define PROTO_MAX_TEXT_SIZE    (256u << 20) /* bytes of text format read */

/* Field types, in the order of their names in proto_type_names. */
enum ptype {
	PT_INT32,
	PT_SINT32,
	PT_SFIXED32,
	PT_INT64,
	PT_SINT64,
	PT_SFIXED64,
	PT_UINT32,
	PT_FIXED32,
	PT_UINT64,
	PT_FIXED64,
	PT_FLOAT,
	PT_DOUBLE,
	PT_BOOL,
	PT_ENUM,
	PT_STRING,
	PT_BYTES,
	PT_MESSAGE,
	PT_COUNT
};
enum plabel { PL_OPTIONAL, PL_REQUIRED, PL_REPEATED, PL_NONE, PL_COUNT };

extern const char *const proto_type_names[PT_COUNT];
extern const char *const proto_label_names[PL_COUNT];

struct pmsg;
struct penum;

struct pfield {
	char *name;
	uint32_t number;
	enum plabel label;
	enum ptype type;
	char *type_name; /* enum or message types only */
	int packed;
	char *oneof;		/* NULL if not in a oneof */
	const struct pmsg *msg; /* PT_MESSAGE: resolved type_name */
	const struct penum *en; /* PT_ENUM: resolved type_name */
};

struct pmsg {
	char *name;	       /* full name, e.g. "example.Config" */
	struct pfield *fields; /* sorted by number */
	size_t nfields;
	int map_entry;
};

struct penum_value {
	char *name;
	int32_t number;
};

struct penum {
	char *name;
	struct penum_value *values;
	size_t nvalues;
};

struct pdesc {
	const struct pmsg *root;
	struct pmsg *msgs;
	size_t nmsgs;
	struct penum *enums;
	size_t nenums;
};

/* Parse and validate description JSON (see proto_desc.c). CKPT_EINVAL with
 * a message starting "description: " for anything malformed. */
int proto_desc_parse(struct pdesc **out, const char *json, size_t len);
void proto_desc_free(struct pdesc *d);

/* The field of m with this number / name, or NULL. */
const struct pfield *proto_field_by_number(const struct pmsg *m, uint32_t number);
const struct pfield *proto_field_by_name(const struct pmsg *m, const char *name, size_t len);

/* Whether the stored description `stored` can be unpacked as `want` (the
 * caller's type): same root name; every stored field exists in want with
 * the same number, label and type, recursively. CKPT_EINVAL naming the field. */
int proto_desc_check_match(const struct pdesc *stored, const struct pdesc *want);

/* Render / parse with a parsed description (ckpt_proto_to_text / _from_text). */
int proto_text_render(char **out, const struct pdesc *d, const void *wire, size_t len);
int proto_text_parse(void **out, size_t *out_len, const struct pdesc *d, const char *text,
		     size_t len, const char *what);

#endif
