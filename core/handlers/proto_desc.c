/*
 * proto_desc.c — the self-description of a proto item: descriptor.json.
 *
 * protobuf-c keeps no .proto file at run time, only the generated
 * descriptors; ckpt_proto_describe() walks them (the message, then every
 * message and enum its fields reach) and writes this JSON, which is all the
 * text renderer and parser (proto_text.c) need:
 *
 *   {"format": 1,
 *    "message": "<full name of the saved message>",
 *    "messages": {
 *      "<full name>": {
 *        "fields": [{"name": "<identifier>", "number": 1..2^29-1,
 *                    "label": "optional|required|repeated|none",
 *                    "type": "int32|sint32|sfixed32|int64|sint64|sfixed64|uint32|
 *                             fixed32|uint64|fixed64|float|double|bool|enum|
 *                             string|bytes|message",
 *                    "type_name": "<full name>",   enum and message fields only
 *                    "packed": true,               optional, repeated scalars only
 *                    "oneof": "<name>"}],          optional: fields of one oneof
 *                                                  share it (protobuf-c keeps no
 *                                                  oneof names: the name of the
 *                                                  oneof's first field)
 *        "map_entry": true}},                      optional: the generated entry
 *                                                  type of a map field
 *    "enums": {"<full name>": {"values": [{"name": "<identifier>", "number": n}]}}}
 *
 * Label "none" is proto3's field without presence. A map<K,V> field is a
 * repeated message field whose type is a nested "<Name>Entry" message with
 * fields key = 1 and value = 2 (protobuf-c has no map flag: an entry is
 * recognised by that shape, and marked map_entry).
 *
 * A description read back is outside bytes: proto_desc_parse() checks every
 * member (types, labels, identifiers, number ranges, duplicates, dangling
 * type names, map entry shape) and establishes the invariants listed in
 * proto_private.h. Unknown members are ignored (a newer minor writer).
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "ckpt/proto.h"
#include "error_private.h"
#include "proto_private.h"

const char *const proto_type_names[PT_COUNT] = {
    "int32",   "sint32", "sfixed32", "int64", "sint64", "sfixed64", "uint32", "fixed32", "uint64",
    "fixed64", "float",	 "double",   "bool",  "enum",	"string",   "bytes",  "message",
};
const char *const proto_label_names[PL_COUNT] = {"optional", "required", "repeated", "none"};

_Static_assert((int)PT_INT32 == (int)PROTOBUF_C_TYPE_INT32 &&
		   (int)PT_MESSAGE == (int)PROTOBUF_C_TYPE_MESSAGE &&
		   (int)PT_BYTES == (int)PROTOBUF_C_TYPE_BYTES,
	       "ptype follows ProtobufCType");

#define DESC_FORMAT 1

/* ---- describe ---- */

struct walk {
	const ProtobufCMessageDescriptor **msgs;
	unsigned char *map_entry;
	size_t nmsgs, msgcap;
	const ProtobufCEnumDescriptor **enums;
	size_t nenums, enumcap;
};

static int add_ptr(const void ***arr, size_t *n, size_t *cap, const void *p)
{
	for (size_t i = 0; i < *n; i++)
		if ((*arr)[i] == p)
			return 0;
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		const void **na = realloc(*arr, nc * sizeof(*na));
		if (!na)
			return ckpt_error_nomem();
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = p;
	return 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/* Whether e is the map entry type of message m (nested in m, named *Entry,
 * fields key = 1 and value = 2 only, neither repeated, a key type maps allow:
 * what check_map_entry accepts back). */
static int is_map_entry(const ProtobufCMessageDescriptor *m, const ProtobufCMessageDescriptor *e)
{
	size_t n = strlen(m->name);

	if (!ends_with(e->short_name, "Entry") || e->n_fields != 2 ||
	    strncmp(e->name, m->name, n) || e->name[n] != '.' ||
	    strcmp(e->name + n + 1, e->short_name))
		return 0;
	const ProtobufCFieldDescriptor *k = &e->fields[0], *v = &e->fields[1];
	return k->id == 1 && !strcmp(k->name, "key") && v->id == 2 && !strcmp(v->name, "value") &&
	       k->label != PROTOBUF_C_LABEL_REPEATED && v->label != PROTOBUF_C_LABEL_REPEATED &&
	       k->type != PROTOBUF_C_TYPE_FLOAT && k->type != PROTOBUF_C_TYPE_DOUBLE &&
	       k->type != PROTOBUF_C_TYPE_BYTES && k->type != PROTOBUF_C_TYPE_MESSAGE &&
	       k->type != PROTOBUF_C_TYPE_ENUM;
}

static const char *oneof_name(const ProtobufCMessageDescriptor *m,
			      const ProtobufCFieldDescriptor *f)
{
	for (unsigned i = 0; i < m->n_fields; i++)
		if ((m->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    m->fields[i].quantifier_offset == f->quantifier_offset)
			return m->fields[i].name;
	return f->name;
}

static cJSON *describe_field(const ProtobufCMessageDescriptor *m, const ProtobufCFieldDescriptor *f)
{
	cJSON *o = cJSON_CreateObject();
	const char *label = f->label == PROTOBUF_C_LABEL_REQUIRED   ? "required"
			    : f->label == PROTOBUF_C_LABEL_REPEATED ? "repeated"
			    : f->label == PROTOBUF_C_LABEL_NONE	    ? "none"
								    : "optional";

	if (!o || !cJSON_AddStringToObject(o, "name", f->name) ||
	    !cJSON_AddNumberToObject(o, "number", f->id) ||
	    !cJSON_AddStringToObject(o, "label", label) ||
	    !cJSON_AddStringToObject(o, "type", proto_type_names[f->type]))
		goto fail;
	if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
	    !cJSON_AddStringToObject(o, "type_name",
				     ((const ProtobufCMessageDescriptor *)f->descriptor)->name))
		goto fail;
	if (f->type == PROTOBUF_C_TYPE_ENUM &&
	    !cJSON_AddStringToObject(o, "type_name",
				     ((const ProtobufCEnumDescriptor *)f->descriptor)->name))
		goto fail;
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) && !cJSON_AddTrueToObject(o, "packed"))
		goto fail;
	if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    !cJSON_AddStringToObject(o, "oneof", oneof_name(m, f)))
		goto fail;
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* Collect every message and enum reachable from w->msgs[0]. */
static int walk_types(struct walk *w)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < w->nmsgs; i++) {
		const ProtobufCMessageDescriptor *m = w->msgs[i];

		if (m->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
			return ckpt_error_set(CKPT_EINVAL, "describe: not a message descriptor");
		for (unsigned j = 0; rc == 0 && j < m->n_fields; j++) {
			const ProtobufCFieldDescriptor *f = &m->fields[j];

			if ((unsigned)f->type > PROTOBUF_C_TYPE_MESSAGE)
				return ckpt_error_set(CKPT_EUNSUPPORTED,
						      "describe %s: field %s has unknown type %d",
						      m->name, f->name, (int)f->type);
			if (f->type == PROTOBUF_C_TYPE_ENUM)
				rc = add_ptr((const void ***)&w->enums, &w->nenums, &w->enumcap,
					     f->descriptor);
			if (f->type != PROTOBUF_C_TYPE_MESSAGE)
				continue;
			size_t cap = w->msgcap;
			rc =
			    add_ptr((const void ***)&w->msgs, &w->nmsgs, &w->msgcap, f->descriptor);
			if (rc == 0 && cap != w->msgcap) {
				unsigned char *nm = realloc(w->map_entry, w->msgcap);
				if (!nm)
					return ckpt_error_nomem();
				memset(nm + cap, 0, w->msgcap - cap);
				w->map_entry = nm;
			}
			if (rc == 0 && f->label == PROTOBUF_C_LABEL_REPEATED &&
			    is_map_entry(m, f->descriptor))
				for (size_t k = 0; k < w->nmsgs; k++)
					if (w->msgs[k] == f->descriptor)
						w->map_entry[k] = 1;
		}
	}
	return rc;
}

static cJSON *describe_json(const struct walk *w)
{
	cJSON *root = cJSON_CreateObject(), *msgs, *enums;

	if (!root || !cJSON_AddNumberToObject(root, "format", DESC_FORMAT) ||
	    !cJSON_AddStringToObject(root, "message", w->msgs[0]->name) ||
	    !(msgs = cJSON_AddObjectToObject(root, "messages")) ||
	    !(enums = cJSON_AddObjectToObject(root, "enums")))
		goto fail;
	for (size_t i = 0; i < w->nmsgs; i++) {
		const ProtobufCMessageDescriptor *m = w->msgs[i];
		cJSON *o = cJSON_AddObjectToObject(msgs, m->name), *fields;

		if (!o || !(fields = cJSON_AddArrayToObject(o, "fields")))
			goto fail;
		/* protobuf-c lists fields by number already; keep that order. */
		for (unsigned j = 0; j < m->n_fields; j++) {
			cJSON *f = describe_field(m, &m->fields[j]);
			if (!f || !cJSON_AddItemToArray(fields, f)) {
				cJSON_Delete(f);
				goto fail;
			}
		}
		if (w->map_entry[i] && !cJSON_AddTrueToObject(o, "map_entry"))
			goto fail;
	}
	for (size_t i = 0; i < w->nenums; i++) {
		const ProtobufCEnumDescriptor *e = w->enums[i];
		cJSON *o = cJSON_AddObjectToObject(enums, e->name), *vals;

		if (!o || !(vals = cJSON_AddArrayToObject(o, "values")))
			goto fail;
		for (unsigned j = 0; j < e->n_values; j++) {
			cJSON *v = cJSON_CreateObject();
			if (!v || !cJSON_AddItemToArray(vals, v) ||
			    !cJSON_AddStringToObject(v, "name", e->values[j].name) ||
			    !cJSON_AddNumberToObject(v, "number", e->values[j].value))
				goto fail;
		}
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

/* Pretty-print with one line per field and enum value (objects deeper than
 * `flat` on one line): readable in the mount, and diffs well. Keys are
 * protobuf names (identifiers and dots), printed as they are. */
static void print_json(FILE *f, const cJSON *j, int depth, int flat)
{
	char *s;

	if (depth >= flat || !(cJSON_IsObject(j) || cJSON_IsArray(j)) || !j->child) {
		if ((s = cJSON_PrintUnformatted(j)))
			fputs(s, f);
		free(s);
		return;
	}
	fputc(cJSON_IsArray(j) ? '[' : '{', f);
	for (const cJSON *c = j->child; c; c = c->next) {
		fprintf(f, "\n%*s", 2 * (depth + 1), "");
		if (cJSON_IsObject(j))
			fprintf(f, "\"%s\": ", c->string);
		print_json(f, c, depth + 1, flat);
		if (c->next)
			fputc(',', f);
	}
	fprintf(f, "\n%*s%c", 2 * depth, "", cJSON_IsArray(j) ? ']' : '}');
}

static char *print_desc(const cJSON *root)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	print_json(f, root, 0, 4);
	fputc('\n', f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int ckpt_proto_describe(char **out, const ProtobufCMessageDescriptor *d)
{
	struct walk w = {0};
	cJSON *json = NULL;
	int rc;

	*out = NULL;
	if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
		return ckpt_error_set(CKPT_EINVAL, "describe: not a protobuf-c message descriptor");
	rc = add_ptr((const void ***)&w.msgs, &w.nmsgs, &w.msgcap, d);
	if (rc == 0 && !(w.map_entry = calloc(w.msgcap, 1)))
		rc = ckpt_error_nomem();
	if (rc == 0)
		rc = walk_types(&w);
	if (rc == 0 && !(json = describe_json(&w)))
		rc = ckpt_error_nomem();
	if (rc == 0 && !(*out = print_desc(json)))
		rc = ckpt_error_nomem();
	cJSON_Delete(json);
	free(w.msgs);
	free(w.map_entry);
	free(w.enums);
	return rc;
}

/* ---- parse and validate ---- */

static int is_ident(const char *s)
{
	if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return 0;
	for (s++; *s; s++)
		if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9')))
			return 0;
	return 1;
}

/* A full name: identifiers joined by '.'. */
static int is_full_name(const char *s)
{
	const char *p = s;

	if (!s || !*s)
		return 0;
	while (1) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		char part[256];

		if (n == 0 || n >= sizeof(part))
			return 0;
		memcpy(part, p, n);
		part[n] = '\0';
		if (!is_ident(part))
			return 0;
		if (!dot)
			return 1;
		p = dot + 1;
	}
}

static int lookup_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], s))
			return (int)i;
	return -1;
}

/* The integer value of a JSON number in [lo, hi], or an error. */
static int json_int(int64_t *out, const cJSON *v, int64_t lo, int64_t hi)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
		return -1;
	*out = (int64_t)d;
	return 0;
}

void proto_desc_free(struct pdesc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nmsgs; i++) {
		for (size_t j = 0; j < d->msgs[i].nfields; j++) {
			free(d->msgs[i].fields[j].name);
			free(d->msgs[i].fields[j].type_name);
			free(d->msgs[i].fields[j].oneof);
		}
		free(d->msgs[i].fields);
		free(d->msgs[i].name);
	}
	for (size_t i = 0; i < d->nenums; i++) {
		for (size_t j = 0; j < d->enums[i].nvalues; j++)
			free(d->enums[i].values[j].name);
		free(d->enums[i].values);
		free(d->enums[i].name);
	}
	free(d->msgs);
	free(d->enums);
	free(d);
}

#define BAD(...) ckpt_error_set(CKPT_EINVAL, "description: " __VA_ARGS__)

static int parse_field(struct pfield *f, const cJSON *o, const char *mname, size_t idx)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
	const cJSON *num = cJSON_GetObjectItemCaseSensitive(o, "number");
	const cJSON *label = cJSON_GetObjectItemCaseSensitive(o, "label");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *tname = cJSON_GetObjectItemCaseSensitive(o, "type_name");
	const cJSON *packed = cJSON_GetObjectItemCaseSensitive(o, "packed");
	const cJSON *oneof = cJSON_GetObjectItemCaseSensitive(o, "oneof");
	int64_t n;
	int l, t;

	if (!cJSON_IsObject(o))
		return BAD("%s: field %zu is not an object", mname, idx);
	if (!cJSON_IsString(name) || !is_ident(name->valuestring))
		return BAD("%s: field %zu has no valid \"name\"", mname, idx);
	if (!(f->name = strdup(name->valuestring)))
		return ckpt_error_nomem();
	if (json_int(&n, num, 1, PROTO_MAX_FIELD_NUMBER) != 0)
		return BAD("%s.%s: \"number\" must be an integer in 1..%u", mname, f->name,
			   PROTO_MAX_FIELD_NUMBER);
	f->number = (uint32_t)n;
	if (!cJSON_IsString(label) ||
	    (l = lookup_index(proto_label_names, PL_COUNT, label->valuestring)) < 0)
		return BAD("%s.%s: unknown \"label\"", mname, f->name);
	f->label = (enum plabel)l;
	if (!cJSON_IsString(type) ||
	    (t = lookup_index(proto_type_names, PT_COUNT, type->valuestring)) < 0)
		return BAD("%s.%s: unknown \"type\"%s%s", mname, f->name,
			   cJSON_IsString(type) ? " " : "",
			   cJSON_IsString(type) ? type->valuestring : "");
	f->type = (enum ptype)t;
	if (f->type == PT_ENUM || f->type == PT_MESSAGE) {
		if (!cJSON_IsString(tname) || !is_full_name(tname->valuestring))
			return BAD("%s.%s: %s field without a valid \"type_name\"", mname, f->name,
				   proto_type_names[t]);
		if (!(f->type_name = strdup(tname->valuestring)))
			return ckpt_error_nomem();
	} else if (tname) {
		return BAD("%s.%s: \"type_name\" on a %s field", mname, f->name,
			   proto_type_names[t]);
	}
	if (packed && !cJSON_IsBool(packed))
		return BAD("%s.%s: \"packed\" must be true or false", mname, f->name);
	f->packed = cJSON_IsTrue(packed);
	if (f->packed && (f->label != PL_REPEATED || f->type == PT_STRING || f->type == PT_BYTES ||
			  f->type == PT_MESSAGE))
		return BAD("%s.%s: only repeated scalar fields can be packed", mname, f->name);
	if (oneof && (!cJSON_IsString(oneof) || !is_ident(oneof->valuestring)))
		return BAD("%s.%s: \"oneof\" must be a name", mname, f->name);
	if (oneof && f->label == PL_REPEATED)
		return BAD("%s.%s: a repeated field cannot be in a oneof", mname, f->name);
	if (oneof && !(f->oneof = strdup(oneof->valuestring)))
		return ckpt_error_nomem();
	return 0;
}

static int cmp_field_number(const void *a, const void *b)
{
	const struct pfield *x = a, *y = b;
	return x->number < y->number ? -1 : x->number > y->number;
}

static int cmp_field_name(const void *a, const void *b)
{
	return strcmp((*(const struct pfield *const *)a)->name,
		      (*(const struct pfield *const *)b)->name);
}

static int check_map_entry(const struct pmsg *m)
{
	if (m->nfields != 2)
		return BAD("%s: a map_entry has exactly the fields key = 1 and value = 2", m->name);
	const struct pfield *k = m->fields, *v = m->fields + 1;
	if (k->number != 1 || strcmp(k->name, "key") || v->number != 2 || strcmp(v->name, "value"))
		return BAD("%s: a map_entry has exactly the fields key = 1 and value = 2", m->name);
	if (k->label == PL_REPEATED || v->label == PL_REPEATED || k->type == PT_FLOAT ||
	    k->type == PT_DOUBLE || k->type == PT_BYTES || k->type == PT_MESSAGE ||
	    k->type == PT_ENUM)
		return BAD("%s: invalid map key or value", m->name);
	return 0;
}

static int parse_msg(struct pmsg *m, const cJSON *o)
{
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(o, "fields"), *f;
	const cJSON *me = cJSON_GetObjectItemCaseSensitive(o, "map_entry");
	struct pfield **byname = NULL;
	size_t i = 0;
	int rc = 0;

	if (!cJSON_IsObject(o) || !cJSON_IsArray(fields))
		return BAD("message %s has no \"fields\" array", m->name);
	if (me && !cJSON_IsBool(me))
		return BAD("%s: \"map_entry\" must be true or false", m->name);
	m->map_entry = cJSON_IsTrue(me);
	m->nfields = (size_t)cJSON_GetArraySize(fields);
	if (m->nfields && !(m->fields = calloc(m->nfields, sizeof(*m->fields))))
		return ckpt_error_nomem();
	cJSON_ArrayForEach(f, fields)
	{
		if ((rc = parse_field(&m->fields[i], f, m->name, i)) != 0)
			return rc;
		i++;
	}
	assert(i == m->nfields);
	if (m->nfields < 2)
		return m->map_entry ? check_map_entry(m) : 0;
	qsort(m->fields, m->nfields, sizeof(*m->fields), cmp_field_number);
	for (i = 1; i < m->nfields; i++)
		if (m->fields[i].number == m->fields[i - 1].number)
			return BAD("%s: fields %s and %s both have number %u", m->name,
				   m->fields[i - 1].name, m->fields[i].name, m->fields[i].number);
	if (!(byname = malloc(m->nfields * sizeof(*byname))))
		return ckpt_error_nomem();
	for (i = 0; i < m->nfields; i++)
		byname[i] = &m->fields[i];
	qsort(byname, m->nfields, sizeof(*byname), cmp_field_name);
	for (i = 1; rc == 0 && i < m->nfields; i++)
		if (!strcmp(byname[i]->name, byname[i - 1]->name))
			rc = BAD("%s: two fields named %s", m->name, byname[i]->name);
	free(byname);
	return rc == 0 && m->map_entry ? check_map_entry(m) : rc;
}

static int parse_enum(struct penum *e, const cJSON *o)
{
	const cJSON *vals = cJSON_GetObjectItemCaseSensitive(o, "values"), *v;
	size_t i = 0;

	if (!cJSON_IsObject(o) || !cJSON_IsArray(vals))
		return BAD("enum %s has no \"values\" array", e->name);
	e->nvalues = (size_t)cJSON_GetArraySize(vals);
	if (e->nvalues && !(e->values = calloc(e->nvalues, sizeof(*e->values))))
		return ckpt_error_nomem();
	cJSON_ArrayForEach(v, vals)
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(v, "name");
		int64_t n;

		if (!cJSON_IsString(name) || !is_ident(name->valuestring))
			return BAD("enum %s: value %zu has no valid \"name\"", e->name, i);
		if (json_int(&n, cJSON_GetObjectItemCaseSensitive(v, "number"), INT32_MIN,
			     INT32_MAX) != 0)
			return BAD("enum %s: value %s needs a 32-bit integer \"number\"", e->name,
				   name->valuestring);
		if (!(e->values[i].name = strdup(name->valuestring)))
			return ckpt_error_nomem();
		e->values[i].number = (int32_t)n;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(e->values[j].name, e->values[i].name))
				return BAD("enum %s: two values named %s", e->name,
					   e->values[i].name);
		i++;
	}
	return 0;
}

static int cmp_msg(const void *a, const void *b)
{
	return strcmp(((const struct pmsg *)a)->name, ((const struct pmsg *)b)->name);
}

static int cmp_enum(const void *a, const void *b)
{
	return strcmp(((const struct penum *)a)->name, ((const struct penum *)b)->name);
}

static const struct pmsg *find_msg(const struct pdesc *d, const char *name)
{
	struct pmsg key = {.name = (char *)name};
	return d->nmsgs ? bsearch(&key, d->msgs, d->nmsgs, sizeof(key), cmp_msg) : NULL;
}

static const struct penum *find_enum(const struct pdesc *d, const char *name)
{
	struct penum key = {.name = (char *)name};
	return d->nenums ? bsearch(&key, d->enums, d->nenums, sizeof(key), cmp_enum) : NULL;
}

/* Names are sorted; adjacent equal names are duplicates (cJSON keeps them). */
static int resolve(struct pdesc *d, const char *root)
{
	for (size_t i = 1; i < d->nmsgs; i++)
		if (!strcmp(d->msgs[i].name, d->msgs[i - 1].name))
			return BAD("message %s is described twice", d->msgs[i].name);
	for (size_t i = 1; i < d->nenums; i++)
		if (!strcmp(d->enums[i].name, d->enums[i - 1].name))
			return BAD("enum %s is described twice", d->enums[i].name);
	if (!(d->root = find_msg(d, root)))
		return BAD("the message %s is not described", root);
	for (size_t i = 0; i < d->nmsgs; i++)
		for (size_t j = 0; j < d->msgs[i].nfields; j++) {
			struct pfield *f = &d->msgs[i].fields[j];

			if (f->type == PT_MESSAGE && !(f->msg = find_msg(d, f->type_name)))
				return BAD("%s.%s: message type %s is not described",
					   d->msgs[i].name, f->name, f->type_name);
			if (f->type == PT_ENUM && !(f->en = find_enum(d, f->type_name)))
				return BAD("%s.%s: enum type %s is not described", d->msgs[i].name,
					   f->name, f->type_name);
		}
	return 0;
}

static int parse_all(struct pdesc *d, const cJSON *root)
{
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
	const cJSON *enums = cJSON_GetObjectItemCaseSensitive(root, "enums"), *o;
	int64_t version;
	size_t i = 0;
	int rc;

	if (!cJSON_IsObject(root))
		return BAD("not a JSON object");
	if (json_int(&version, fmt, 1, INT32_MAX) != 0)
		return BAD("no valid \"format\"");
	if (version != DESC_FORMAT)
		return ckpt_error_set(CKPT_EVERSION,
				      "description: format %lld; this reader knows %d",
				      (long long)version, DESC_FORMAT);
	if (!cJSON_IsString(msg) || !is_full_name(msg->valuestring))
		return BAD("no valid \"message\"");
	if (!cJSON_IsObject(msgs))
		return BAD("no \"messages\" object");
	if (enums && !cJSON_IsObject(enums))
		return BAD("\"enums\" is not an object");
	d->nmsgs = (size_t)cJSON_GetArraySize(msgs);
	d->nenums = enums ? (size_t)cJSON_GetArraySize(enums) : 0;
	if ((d->nmsgs && !(d->msgs = calloc(d->nmsgs, sizeof(*d->msgs)))) ||
	    (d->nenums && !(d->enums = calloc(d->nenums, sizeof(*d->enums)))))
		return ckpt_error_nomem();
	cJSON_ArrayForEach(o, msgs)
	{
		if (!is_full_name(o->string))
			return BAD("invalid message name \"%.100s\"", o->string ? o->string : "");
		if (!(d->msgs[i].name = strdup(o->string)))
			return ckpt_error_nomem();
		if ((rc = parse_msg(&d->msgs[i++], o)) != 0)
			return rc;
	}
	i = 0;
	if (enums)
		cJSON_ArrayForEach(o, enums)
		{
			if (!is_full_name(o->string))
				return BAD("invalid enum name \"%.100s\"",
					   o->string ? o->string : "");
			if (!(d->enums[i].name = strdup(o->string)))
				return ckpt_error_nomem();
			if ((rc = parse_enum(&d->enums[i++], o)) != 0)
				return rc;
		}
	if (d->nmsgs > 1)
		qsort(d->msgs, d->nmsgs, sizeof(*d->msgs), cmp_msg);
	if (d->nenums > 1)
		qsort(d->enums, d->nenums, sizeof(*d->enums), cmp_enum);
	return resolve(d, msg->valuestring);
}

int proto_desc_parse(struct pdesc **out, const char *json, size_t len)
{
	struct pdesc *d = NULL;
	cJSON *root = NULL;
	int rc;

	*out = NULL;
	if (len > PROTO_MAX_DESC_SIZE)
		return BAD("%zu bytes; at most %u allowed", len, PROTO_MAX_DESC_SIZE);
	if (!(root = cJSON_ParseWithLength(json, len)))
		return BAD("not valid JSON");
	if (!(d = calloc(1, sizeof(*d))))
		rc = ckpt_error_nomem();
	else
		rc = parse_all(d, root);
	cJSON_Delete(root);
	if (rc) {
		proto_desc_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

const struct pfield *proto_field_by_number(const struct pmsg *m, uint32_t number)
{
	struct pfield key = {.number = number};
	return m->nfields ? bsearch(&key, m->fields, m->nfields, sizeof(key), cmp_field_number)
			  : NULL;
}

const struct pfield *proto_field_by_name(const struct pmsg *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->nfields; i++)
		if (strlen(m->fields[i].name) == len && !memcmp(m->fields[i].name, name, len))
			return &m->fields[i];
	return NULL;
}

/* ---- matching a stored description against the caller's type ---- */

int proto_desc_check_match(const struct pdesc *stored, const struct pdesc *want)
{
	const struct pmsg **todo = NULL;
	unsigned char *seen = NULL;
	size_t n = 0;
	int rc = 0;

	if (strcmp(stored->root->name, want->root->name))
		return ckpt_error_set(CKPT_EINVAL, "stored description is of %s, not %s",
				      stored->root->name, want->root->name);
	if (!(todo = malloc(stored->nmsgs * sizeof(*todo))) || !(seen = calloc(stored->nmsgs, 1))) {
		free(todo);
		return ckpt_error_nomem();
	}
	todo[n++] = stored->root;
	seen[stored->root - stored->msgs] = 1;
	while (rc == 0 && n > 0) {
		const struct pmsg *s = todo[--n], *w = find_msg(want, s->name);

		if (!w) {
			rc = ckpt_error_set(CKPT_EINVAL,
					    "stored description does not match %s: no message %s",
					    want->root->name, s->name);
			break;
		}
		for (size_t i = 0; rc == 0 && i < s->nfields; i++) {
			const struct pfield *sf = &s->fields[i];
			const struct pfield *wf =
			    proto_field_by_name(w, sf->name, strlen(sf->name));
			const char *why = NULL;

			if (!wf)
				why = "does not exist";
			else if (wf->number != sf->number)
				why = "has another number";
			else if (wf->label != sf->label)
				why = "has another label";
			else if (wf->type != sf->type ||
				 (sf->type_name && strcmp(sf->type_name, wf->type_name)))
				why = "has another type";
			if (why) {
				rc = ckpt_error_set(
				    CKPT_EINVAL,
				    "stored description does not match %s: field %s.%s (%s %s%s%s "
				    "= %u) %s in %s",
				    want->root->name, s->name, sf->name,
				    proto_label_names[sf->label], proto_type_names[sf->type],
				    sf->type_name ? " " : "", sf->type_name ? sf->type_name : "",
				    sf->number, why, w->name);
				break;
			}
			if (sf->msg && !seen[sf->msg - stored->msgs]) {
				seen[sf->msg - stored->msgs] = 1;
				todo[n++] = sf->msg;
			}
		}
	}
	free(todo);
	free(seen);
	return rc;
}
