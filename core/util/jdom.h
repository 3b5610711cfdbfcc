/*
 * jdom.h — a read-only JSON document parsed into one arena (library only).
 *
 * For big documents read once: an item's _METADATA is 280 bytes of JSON per
 * leaf, 14 MB for 50,000 leaves, and cJSON spent 1.2 G instructions parsing
 * and freeing it (two mallocs per value, a strtod per number) where the tree
 * built from it needs a fraction of that. Here values are nodes of a few
 * large blocks, strings are unescaped into one buffer, integers skip strtod,
 * and jdom_free() releases everything at once.
 *
 * Accepts exactly what cJSON_ParseWithLength (cJSON 1.7.15) accepts, so that
 * a reader moving from cJSON changes no verdict: the value after an optional
 * UTF-8 BOM, white space being any byte <= 0x20, content after the value
 * ignored, numbers as cJSON reads them (the whole run of [0-9+-.eE], however
 * long, given to strtod: Debian's 1.7.15 carries the fix of that limit),
 * \u escapes with its surrogate rules, nesting at most 1000 deep; a string's
 * NUL (from \u0000) ends its C string as in cJSON. tests/fuzz/metadata_fuzzer
 * compares the two on every input.
 *
 * Invariants:
 *   1. A node's children are in document order, `count` of them, linked by
 *      `next`; members of an object carry their name in `key`, elements of an
 *      array and the root have key NULL.
 *   2. [src, src + src_len) is the value's own text in the input, so a caller
 *      may hand a subtree to another parser unchanged.
 */
#ifndef CKPT_JDOM_H
#define CKPT_JDOM_H

#include <stddef.h>

/* Arrays and objects nest at most this deep (cJSON's CJSON_NESTING_LIMIT). */
#define JDOM_MAX_NESTING 1000

typedef enum { JDOM_NULL, JDOM_FALSE, JDOM_TRUE, JDOM_NUMBER, JDOM_STRING, JDOM_ARRAY, JDOM_OBJECT } jdom_type;

typedef struct jdom_node {
	const char *key;	/* member name (NUL-terminated), NULL if none */
	struct jdom_node *next; /* next sibling, NULL at the end */
	struct jdom_node *child; /* first child of an array or object */
	const char *str;	/* a string's value (NUL-terminated) */
	double num;		/* a number's value */
	const char *src;	/* the value's text in the input (invariant 2) */
	size_t src_len;
	unsigned count;		/* children of an array or object */
	jdom_type type;
} jdom_node;

typedef struct jdom jdom;

/*
 * Parse json[0, len). *out owns every node and string; free with jdom_free.
 * The input must outlive the document only for jdom_node.src.
 * Returns 0, CKPT_EINVAL (not valid JSON, no message set: the caller says
 * where), CKPT_ENOMEM.
 */
int jdom_parse(jdom **out, const char *json, size_t len);
const jdom_node *jdom_root(const jdom *d);
void jdom_free(jdom *d);

/* The first member of obj named name, or NULL (also when obj is not an object). */
const jdom_node *jdom_member(const jdom_node *obj, const char *name);

#endif
