/*
 * tree_json.c — the _METADATA JSON of a pytree item (docs/format-pytree.md).
 *
 * Writing: one pre-order walk. Every leaf, None and empty container gets a
 * "tree_metadata" entry (Orbax's InternalTreeMetadata: key_metadata +
 * value_metadata), in tree order; every container gets a "containers"
 * entry with its kind (and namedtuple type name, custom metadata), which is
 * what Orbax loses.
 *
 * Reading: key_metadata is the source of truth (the tuple-repr member name
 * is only a label). Entries are replayed in order: missing containers along
 * the key path are created (dict for key_type 2, list for key_type 1), then
 * the "containers" section retypes them (list -> tuple, dict -> namedtuple).
 * Because the entries come in pre-order, children are created in their
 * original order. Every malformed input is CKPT_EINVAL with the member and
 * the problem in the message; nothing is trusted (lengths, depths, types).
 *
 * Invariants:
 *  1. from_json(to_json(t)) has the same structure, kinds, keys, namedtuple
 *     types, dtypes, shapes and custom metadata as t (values are not kept).
 *  2. A list/tuple child's key equals its position: entries giving indices
 *     out of order are rejected.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ckpt/tree.h"
#include "error_private.h"
#include "jdom.h"
#include "tree_private.h"

#define METADATA_VERSION 1

/* ---- writing ------------------------------------------------------------- */

struct wr {
	const ckpt_tree **stack; /* the node path from the root, for key paths */
	size_t depth, cap;
	cJSON *leaves, *containers;
};

/* Append Python repr(s) to buf. */
static int repr_str(char **buf, size_t *len, size_t *cap, const char *s)
{
	char q = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
	size_t need = *len + 4 * strlen(s) + 8; /* quotes, ", ", ")", NUL */

	if (need > *cap) {
		size_t nc = need * 2;
		char *b = realloc(*buf, nc);

		if (!b)
			return ckpt_error_nomem();
		*buf = b;
		*cap = nc;
	}
	char *w = *buf + *len;

	*w++ = q;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\\' || *p == (unsigned char)q) {
			*w++ = '\\';
			*w++ = (char)*p;
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			*w++ = '\\';
			*w++ = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
		} else if (*p < 0x20 || *p == 0x7F) {
			w += sprintf(w, "\\x%02x", *p);
		} else {
			*w++ = (char)*p;
		}
	}
	*w++ = q;
	*w = '\0';
	*len = (size_t)(w - *buf);
	return 0;
}

/* Python str(tuple(keys)) of the current stack: "()", "('a',)", "('a', '0')". */
static int key_repr(char **out, const struct wr *w)
{
	size_t len = 1, cap = 64;
	char *buf = malloc(cap);
	int rc = 0;

	*out = NULL;
	if (!buf)
		return ckpt_error_nomem();
	buf[0] = '(';
	for (size_t i = 1; i < w->depth && rc == 0; i++) {
		rc = repr_str(&buf, &len, &cap, ckpt_tree_key(w->stack[i]));
		if (rc == 0 && (i + 1 < w->depth || w->depth == 2)) {
			/* repr_str left room for ", " and ")" (+3 per call). */
			buf[len++] = ',';
			if (i + 1 < w->depth)
				buf[len++] = ' ';
		}
	}
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[len++] = ')';
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* Add item (may be NULL: a failed build) to obj under name; item is owned either way. 1 if added. */
static int add_owned(cJSON *obj, const char *name, cJSON *item)
{
	if (item && cJSON_AddItemToObject(obj, name, item))
		return 1;
	cJSON_Delete(item);
	return 0;
}

static cJSON *key_metadata(const struct wr *w)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 1; arr && i < w->depth; i++) {
		ckpt_tree_kind pk = ckpt_tree_get_kind(w->stack[i - 1]);
		int seq = pk == CKPT_TREE_LIST || pk == CKPT_TREE_TUPLE;
		cJSON *e = cJSON_CreateObject();

		if (!e || !cJSON_AddStringToObject(e, "key", ckpt_tree_key(w->stack[i])) ||
		    !cJSON_AddNumberToObject(e, "key_type", seq ? 1 : 2)) {
			cJSON_Delete(e);
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, e);
	}
	return arr;
}

/* Add "custom_metadata": <parsed json or null> to obj. */
static int add_custom(cJSON *obj, const ckpt_tree *t)
{
	const char *cm = ckpt_tree_custom_metadata(t);
	cJSON *v = cm ? cJSON_Parse(cm) : cJSON_CreateNull();

	if (!v)
		return ckpt_error_nomem(); /* set_custom_metadata validated it */
	if (!cJSON_AddItemToObject(obj, "custom_metadata", v)) { /* its key's copy failed */
		cJSON_Delete(v);
		return ckpt_error_nomem();
	}
	return 0;
}

static const char *container_type(ckpt_tree_kind k)
{
	switch (k) {
	case CKPT_TREE_DICT: return "dict";
	case CKPT_TREE_LIST: return "list";
	case CKPT_TREE_TUPLE: return "tuple";
	case CKPT_TREE_NAMEDTUPLE: return "namedtuple";
	default: return NULL;
	}
}

static const char *value_type(ckpt_tree_kind k)
{
	switch (k) {
	case CKPT_TREE_DICT: return "Dict";
	case CKPT_TREE_LIST: return "List";
	case CKPT_TREE_TUPLE: return "Tuple";
	case CKPT_TREE_NAMEDTUPLE: return "NamedTuple";
	case CKPT_TREE_NONE: return "None";
	case CKPT_TREE_ARRAY: return "np.ndarray";
	case CKPT_TREE_STRING: return "string";
	default: return "scalar";
	}
}

static cJSON *value_metadata(const ckpt_tree *t)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(t);
	cJSON *v = cJSON_CreateObject();
	int ok = v && cJSON_AddStringToObject(v, "value_type", value_type(k)) &&
		 cJSON_AddBoolToObject(v, "skip_deserialize",
				       ckpt_tree_is_container(t) || k == CKPT_TREE_NONE);

	if (ok && k == CKPT_TREE_ARRAY) {
		cJSON *shape = NULL;

		ok = cJSON_AddStringToObject(v, "dtype", ckpt_dtype_name(ckpt_tree_dtype(t))) &&
		     (shape = cJSON_AddArrayToObject(v, "shape"));
		for (unsigned i = 0; ok && i < ckpt_tree_ndim(t); i++) {
			cJSON *d = cJSON_CreateNumber((double)ckpt_tree_shape(t)[i]);

			ok = d != NULL;
			cJSON_AddItemToArray(shape, d);
		}
	} else if (ok && (k == CKPT_TREE_INT || k == CKPT_TREE_FLOAT || k == CKPT_TREE_BOOL)) {
		ok = cJSON_AddStringToObject(v, "scalar_type",
					     k == CKPT_TREE_INT	    ? "int"
					     : k == CKPT_TREE_FLOAT ? "float"
								    : "bool") != NULL;
	}
	if (ok && add_custom(v, t) < 0)
		ok = 0;
	if (!ok) {
		cJSON_Delete(v);
		return NULL;
	}
	return v;
}

static int write_node(struct wr *w, const ckpt_tree *t)
{
	cJSON *entry = NULL;
	char *repr = NULL;
	int rc = 0;

	if (w->depth == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		const ckpt_tree **s = realloc(w->stack, cap * sizeof(*s));

		if (!s)
			return ckpt_error_nomem();
		w->stack = s;
		w->cap = cap;
	}
	w->stack[w->depth++] = t;
	if (w->depth > CKPT_TREE_MAX_DEPTH + 1) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: tree deeper than %d", CKPT_TREE_MAX_DEPTH);
		goto done;
	}
	rc = key_repr(&repr, w);
	if (rc < 0)
		goto done;
	if (ckpt_tree_is_container(t)) {
		entry = cJSON_CreateObject();
		if (!entry ||
		    !cJSON_AddStringToObject(entry, "type",
					     container_type(ckpt_tree_get_kind(t))) ||
		    !add_owned(entry, "key_metadata", key_metadata(w)) ||
		    (ckpt_tree_namedtuple_type(t) &&
		     !cJSON_AddStringToObject(entry, "namedtuple_type",
					      ckpt_tree_namedtuple_type(t))) ||
		    (w->depth > 1 && add_custom(entry, t) < 0)) {
			rc = ckpt_error_nomem();
			goto done;
		}
		if (!cJSON_AddItemToObject(w->containers, repr, entry)) {
			rc = ckpt_error_nomem();
			goto done;
		}
		entry = NULL;
	}
	if (!ckpt_tree_is_container(t) || ckpt_tree_count(t) == 0) {
		cJSON *km = key_metadata(w), *vm = value_metadata(t);

		entry = cJSON_CreateObject();
		if (!entry || !km || !vm) {
			cJSON_Delete(km);
			cJSON_Delete(vm);
			rc = ckpt_error_nomem();
			goto done;
		}
		/* Every add is checked: a lost member would be a complete-looking, wrong _METADATA. */
		if (!add_owned(entry, "key_metadata", km) || !add_owned(entry, "value_metadata", vm) ||
		    !cJSON_AddItemToObject(w->leaves, repr, entry)) {
			rc = ckpt_error_nomem();
			goto done;
		}
		entry = NULL;
	}
	for (size_t i = 0; rc == 0 && i < ckpt_tree_count(t); i++)
		rc = write_node(w, ckpt_tree_child(t, i));
done:
	w->depth--;
	cJSON_Delete(entry);
	free(repr);
	return rc;
}

int ckpt_tree_metadata_to_json(char **out, const ckpt_tree *root)
{
	struct wr w = {0};
	cJSON *doc = cJSON_CreateObject();
	int rc = 0;

	*out = NULL;
	if (!root) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: NULL tree");
		goto done;
	}
	w.leaves = cJSON_AddObjectToObject(doc, "tree_metadata");
	w.containers = cJSON_AddObjectToObject(doc, "containers");
	if (!doc || !w.leaves || !w.containers ||
	    !cJSON_AddNumberToObject(doc, "ckptfs_metadata_version", METADATA_VERSION) ||
	    !cJSON_AddFalseToObject(doc, "use_zarr3")) {
		rc = ckpt_error_nomem();
		goto done;
	}
	rc = write_node(&w, root);
	if (rc < 0)
		goto done;
	/* The root's custom metadata is the tree's (Orbax's top-level member). */
	if ((rc = add_custom(doc, ckpt_tree_is_container(root) ? root : NULL)) < 0)
		goto done;
	*out = cJSON_PrintUnformatted(doc);
	if (!*out)
		rc = ckpt_error_nomem();
done:
	cJSON_Delete(doc);
	free(w.stack);
	return rc;
}

/* ---- reading ------------------------------------------------------------- */

/* Error helper: "_METADATA: <section>[<member>]: <what>". */
#define BAD(sec, member, ...)                                                                      \
	ckpt_error_wrap(ckpt_error_set(CKPT_EINVAL, __VA_ARGS__), "_METADATA: %s[%s]", sec, member)

typedef jdom_node jnode;

static const jnode *member(const jnode *obj, const char *name)
{
	return jdom_member(obj, name);
}

static int is_obj(const jnode *n)
{
	return n && n->type == JDOM_OBJECT;
}

static int is_arr(const jnode *n)
{
	return n && n->type == JDOM_ARRAY;
}

static int is_str(const jnode *n)
{
	return n && n->type == JDOM_STRING;
}

static int is_num(const jnode *n)
{
	return n && n->type == JDOM_NUMBER;
}

/* A member's text as cJSON_PrintUnformatted prints it (custom metadata: rare, often null). */
static char *print_compact(const jnode *n)
{
	cJSON *v = cJSON_ParseWithLength(n->src, n->src_len);
	char *text = v ? cJSON_PrintUnformatted(v) : NULL;

	cJSON_Delete(v);
	return text;
}

/* Parse custom_metadata member (absent or null: none) onto t. */
static int read_custom(ckpt_tree *t, const jnode *obj, const char *sec, const char *name)
{
	const jnode *cm = member(obj, "custom_metadata");
	char *text;
	int rc;

	if (!cm || cm->type == JDOM_NULL)
		return 0;
	text = print_compact(cm);
	if (!text)
		return ckpt_error_nomem();
	rc = ckpt_tree_set_custom_metadata(t, text);
	free(text);
	return rc < 0 ? BAD(sec, name, "custom_metadata") : 0;
}

/* One entry of key_metadata, validated: its key and key_type (1 or 2). */
struct keyent {
	const char *key;
	int type;
};

/* Validate key_metadata into keys[0, *n) (CKPT_TREE_MAX_DEPTH of them at most). */
static int check_keys(const jnode *km, struct keyent *keys, size_t *n, const char *sec,
		      const char *name)
{
	size_t i = 0;

	if (!is_arr(km))
		return BAD(sec, name, "key_metadata missing or not a list");
	for (const jnode *e = km->child; e; e = e->next) {
		const jnode *k = member(e, "key"), *kt = member(e, "key_type");

		if (!is_obj(e) || !is_str(k) || !is_num(kt) || (kt->num != 1 && kt->num != 2))
			return BAD(sec, name,
				   "key_metadata[%zu] is not {\"key\": string, "
				   "\"key_type\": 1 or 2}",
				   i);
		if (i == CKPT_TREE_MAX_DEPTH)
			return BAD(sec, name, "key path deeper than %d", CKPT_TREE_MAX_DEPTH);
		keys[i].key = k->str;
		keys[i++].type = (int)kt->num;
	}
	*n = i;
	return 0;
}

/* Add child under parent at key entry e (validated by check_keys). */
static int add_at(ckpt_tree *parent, const struct keyent *e, ckpt_tree *child, const char *name)
{
	const char *key = e->key;
	int seq = e->type == 1, keyed = ckpt_tree_get_kind(parent) == CKPT_TREE_DICT ||
					ckpt_tree_get_kind(parent) == CKPT_TREE_NAMEDTUPLE;
	char pos[24];
	int rc;

	if (keyed == seq) {
		ckpt_tree_free(child);
		return BAD("tree_metadata", name, "key '%s' has key_type %d but its parent is a %s",
			   key, e->type, keyed ? "dict" : "sequence");
	}
	if (seq) {
		snprintf(pos, sizeof(pos), "%zu", ckpt_tree_count(parent));
		if (strcmp(pos, key) != 0) {
			ckpt_tree_free(child);
			return BAD("tree_metadata", name,
				   "sequence index '%s' out of order "
				   "(expected %s)",
				   key, pos);
		}
	}
	rc = ckpt_tree_add(parent, seq ? NULL : key, child);
	if (rc == CKPT_EEXISTS)
		return BAD("tree_metadata", name, "duplicate path");
	return rc;
}

static int new_leaf(ckpt_tree **out, const jnode *vm, const char *name)
{
	const jnode *vt = member(vm, "value_type");
	const char *s;

	*out = NULL;
	if (!is_obj(vm) || !is_str(vt))
		return BAD("tree_metadata", name, "value_metadata.value_type missing");
	s = vt->str;
	if (strcmp(s, "np.ndarray") == 0 || strcmp(s, "jax.Array") == 0) {
		const jnode *dt = member(vm, "dtype"), *shape = member(vm, "shape");
		uint64_t dims[CKPT_TREE_MAX_NDIM];
		unsigned nd = 0;
		ckpt_dtype dtype;

		if (!is_str(dt) || ckpt_dtype_from_name(&dtype, dt->str) < 0)
			return BAD("tree_metadata", name, "bad or missing dtype");
		if (!is_arr(shape))
			return BAD("tree_metadata", name, "shape missing or not a list");
		for (const jnode *d = shape->child; d; d = d->next) {
			if (nd == CKPT_TREE_MAX_NDIM)
				return BAD("tree_metadata", name, "more than %d dimensions",
					   CKPT_TREE_MAX_NDIM);
			if (!is_num(d) || !(d->num >= 0) || d->num > (double)CKPT_TREE_MAX_DIM ||
			    d->num != floor(d->num))
				return BAD("tree_metadata", name,
					   "shape[%u] is not a "
					   "non-negative integer",
					   nd);
			dims[nd++] = (uint64_t)d->num;
		}
		if (ckpt_tree_new_array(out, dtype, nd, dims, NULL, CKPT_TREE_BORROW) < 0)
			return BAD("tree_metadata", name, "%s", "array too large");
		return 0;
	}
	if (strcmp(s, "scalar") == 0) {
		const jnode *st = member(vm, "scalar_type");
		const char *t = is_str(st) ? st->str : "float";

		if (strcmp(t, "int") == 0)
			return ckpt_tree_new_int(out, 0);
		if (strcmp(t, "float") == 0)
			return ckpt_tree_new_float(out, 0);
		if (strcmp(t, "bool") == 0)
			return ckpt_tree_new_bool(out, 0);
		return BAD("tree_metadata", name, "bad scalar_type '%s'", t);
	}
	if (strcmp(s, "string") == 0)
		return ckpt_tree_new_string(out, "", 0);
	if (strcmp(s, "None") == 0)
		return ckpt_tree_new(out, CKPT_TREE_NONE);
	if (strcmp(s, "Dict") == 0 || strcmp(s, "NamedTuple") == 0)
		return ckpt_tree_new(out, CKPT_TREE_DICT); /* retyped from containers */
	if (strcmp(s, "List") == 0)
		return ckpt_tree_new(out, CKPT_TREE_LIST);
	if (strcmp(s, "Tuple") == 0)
		return ckpt_tree_new(out, CKPT_TREE_TUPLE);
	return BAD("tree_metadata", name, "unknown value_type '%s'", s);
}

struct rd {
	ckpt_tree *root;
	int root_entry; /* root came from an entry with an empty key path */
};

/* Replay one tree_metadata entry into r->root (created on the first entry). */
static int read_leaf(struct rd *r, const jnode *entry)
{
	const char *name = entry->key;
	const jnode *km = member(entry, "key_metadata"), *vm = member(entry, "value_metadata");
	ckpt_tree *cur, *leaf = NULL;
	struct keyent keys[CKPT_TREE_MAX_DEPTH];
	size_t n;
	int rc;

	if (!is_obj(entry))
		return BAD("tree_metadata", name, "not an object");
	if ((rc = check_keys(km, keys, &n, "tree_metadata", name)) < 0)
		return rc;
	if (r->root_entry || (n == 0 && r->root))
		return BAD("tree_metadata", name, "the root entry () must be the only entry");
	if ((rc = new_leaf(&leaf, vm, name)) < 0)
		return rc;
	if ((rc = read_custom(leaf, vm, "tree_metadata", name)) < 0)
		goto fail;
	if (n == 0) { /* the whole tree is this one node */
		r->root = leaf;
		r->root_entry = 1;
		return 0;
	}
	if (!r->root) {
		rc = ckpt_tree_new(&r->root,
				   keys[0].type == 1 ? CKPT_TREE_LIST : CKPT_TREE_DICT);
		if (rc < 0)
			goto fail;
	}
	cur = r->root;
	for (size_t i = 0; i < n; i++) {
		const struct keyent *e = &keys[i];
		const char *key = e->key;
		ckpt_tree_kind k = ckpt_tree_get_kind(cur);
		ckpt_tree *next;

		if ((k == CKPT_TREE_DICT || k == CKPT_TREE_NAMEDTUPLE) != (e->type == 2)) {
			rc = BAD("tree_metadata", name,
				 "key '%s' has key_type %d but its parent "
				 "is a %s",
				 key, e->type, e->type == 1 ? "dict" : "sequence");
			goto fail;
		}
		if (i + 1 == n)
			return add_at(cur, e, leaf, name);
		next = ckpt_tree_find(cur, key);
		if (next && (!ckpt_tree_is_container(next) || ckpt_tree_count(next) == 0)) {
			/* Containers made here always get a child at once: an empty
			 * one was declared empty by an entry of its own. */
			rc = BAD("tree_metadata", name,
				 "path goes through '%s', a leaf or an "
				 "empty container",
				 key);
			goto fail;
		}
		if (!next) {
			if ((rc = ckpt_tree_new(&next, e[1].type == 1 ? CKPT_TREE_LIST
								      : CKPT_TREE_DICT)) < 0 ||
			    (rc = add_at(cur, e, next, name)) < 0)
				goto fail;
		}
		cur = next;
	}
	assert(0);
	rc = ckpt_error_set(CKPT_ERROR, "unreachable");
fail:
	ckpt_tree_free(leaf);
	return rc;
}

/* Apply one "containers" entry to the built tree. */
static int read_container(ckpt_tree *root, const jnode *entry)
{
	const char *name = entry->key;
	const jnode *km = member(entry, "key_metadata"), *ty = member(entry, "type");
	const jnode *tn = member(entry, "namedtuple_type");
	ckpt_tree *cur = root;
	ckpt_tree_kind kind;
	struct keyent keys[CKPT_TREE_MAX_DEPTH];
	size_t n;
	int rc;

	if (!is_obj(entry))
		return BAD("containers", name, "not an object");
	if ((rc = check_keys(km, keys, &n, "containers", name)) < 0)
		return rc;
	if (!is_str(ty))
		return BAD("containers", name, "type missing");
	if (strcmp(ty->str, "dict") == 0)
		kind = CKPT_TREE_DICT;
	else if (strcmp(ty->str, "list") == 0)
		kind = CKPT_TREE_LIST;
	else if (strcmp(ty->str, "tuple") == 0)
		kind = CKPT_TREE_TUPLE;
	else if (strcmp(ty->str, "namedtuple") == 0)
		kind = CKPT_TREE_NAMEDTUPLE;
	else
		return BAD("containers", name, "unknown type '%s'", ty->str);
	if (kind == CKPT_TREE_NAMEDTUPLE && !is_str(tn))
		return BAD("containers", name, "namedtuple_type missing");
	for (size_t i = 0; i < n; i++) {
		cur = ckpt_tree_find(cur, keys[i].key);
		if (!cur)
			return BAD("containers", name, "no such path in tree_metadata");
	}
	if (!ckpt_tree_is_container(cur))
		return BAD("containers", name, "is not a container in tree_metadata");
	if ((rc = ckpt_tree_retype(cur, kind, is_str(tn) ? tn->str : NULL)) < 0)
		return BAD("containers", name, "type '%s' does not fit its children", ty->str);
	return n ? read_custom(cur, entry, "containers", name) : 0;
}

/* 1 if the JSON text has a NUL byte (but a final one) or a \u0000 escape:
 * keys and custom metadata are C strings, a NUL would cut them silently. */
static int has_nul_bytewise(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] == '\0')
			return 1;
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
			return 1;
		i++; /* skip the escaped character */
	}
	return 0;
}

/* As has_nul_bytewise, by memchr: without NUL bytes only the escapes matter. */
static int has_nul(const char *s, size_t len)
{
	const char *end = s + (len ? len - 1 : 0), *p = s; /* [s, end): all but the last byte */

	if (len && memchr(s, '\0', len - 1))
		return has_nul_bytewise(s, len); /* a NUL right after a '\\' is not one */
	while (p < end && (p = memchr(p, '\\', (size_t)(end - p)))) {
		size_t i = (size_t)(p - s);
		if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
			return 1;
		p += 2; /* skip the escaped character */
	}
	return 0;
}

int ckpt_tree_metadata_from_json(ckpt_tree **out, const char *json, size_t len)
{
	jdom *dom = NULL;
	const jnode *doc, *tm, *cs, *ver, *e;
	struct rd r = {0};
	ckpt_tree *root = NULL;
	int rc = 0;

	*out = NULL;
	if (!json) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: no data");
		goto done;
	}
	if (has_nul(json, len)) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: contains a NUL character");
		goto done;
	}
	rc = jdom_parse(&dom, json, len);
	if (rc == CKPT_ENOMEM) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (rc) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: not valid JSON");
		goto done;
	}
	doc = jdom_root(dom);
	tm = member(doc, "tree_metadata");
	cs = member(doc, "containers");
	ver = member(doc, "ckptfs_metadata_version");
	if (!is_obj(doc) || !is_obj(tm)) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: no \"tree_metadata\" object");
		goto done;
	}
	if (ver && (!is_num(ver) || ver->num < 1)) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: bad ckptfs_metadata_version");
		goto done;
	}
	if (ver && ver->num > METADATA_VERSION) {
		rc = ckpt_error_set(CKPT_EVERSION, "_METADATA: version %g is newer than %d",
				    ver->num, METADATA_VERSION);
		goto done;
	}
	if (cs && !is_obj(cs)) {
		rc = ckpt_error_set(CKPT_EINVAL, "_METADATA: \"containers\" is not an object");
		goto done;
	}
	for (e = tm->child; e; e = e->next) {
		rc = read_leaf(&r, e);
		root = r.root;
		if (rc < 0)
			goto done;
	}
	if (!root && (rc = ckpt_tree_new(&root, CKPT_TREE_DICT)) < 0)
		goto done;
	for (e = cs ? cs->child : NULL; e; e = e->next) {
		if ((rc = read_container(root, e)) < 0)
			goto done;
	}
	if (ckpt_tree_is_container(root) && (rc = read_custom(root, doc, "top", "level")) < 0)
		goto done;
	*out = root;
	root = NULL;
done:
	ckpt_tree_free(root);
	jdom_free(dom);
	return rc;
}
