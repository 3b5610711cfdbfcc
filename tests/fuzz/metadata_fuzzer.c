/*
 * metadata_fuzzer.c — fuzz target for the _METADATA JSON reader (tree_json.c).
 *
 * Parses the input as _METADATA; when it parses, checks the round trip
 * (to_json of the tree parses back and writes the same bytes), that every
 * node's path resolves back to the node, and that names unescape to keys.
 * Also feeds the input to the scalar parser and the name unescaper, and to
 * both JSON parsers: jdom (what tree_json.c reads with) must accept exactly
 * what cJSON accepts and give the same values (core/util/jdom.h).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ckpt/error.h"
#include "ckpt/tree.h"
#include "jdom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_node(ckpt_tree *node, const char *path, void *payload)
{
	ckpt_tree *root = payload, *found = NULL;
	char *key = NULL;
	ckpt_tree *parent = ckpt_tree_parent(node);

	if (ckpt_tree_lookup(&found, root, path) != 0 || found != node)
		abort();
	if (parent) {
		if (ckpt_tree_find(parent, ckpt_tree_key(node)) != node ||
		    ckpt_tree_find_name(parent, ckpt_tree_name(node)) != node)
			abort();
		if (ckpt_tree_get_kind(node) != CKPT_TREE_ARRAY &&
		    ckpt_key_unescape(&key, ckpt_tree_name(node), 0) == 0 &&
		    strcmp(key, ckpt_tree_key(node)) != 0)
			abort();
		free(key);
	}
	return 0;
}

/*
 * 1 if the jdom node and the cJSON item hold the same value (C strings as cJSON
 * keeps them); with src, also each child's own text (jdom invariant 2), checked
 * once per node (the copy parsed alone is compared without src).
 */
static int same_value(const jdom_node *j, const cJSON *c, int src)
{
	switch (j->type) {
	case JDOM_NULL: return cJSON_IsNull(c);
	case JDOM_FALSE: return cJSON_IsFalse(c);
	case JDOM_TRUE: return cJSON_IsTrue(c);
	case JDOM_NUMBER:
		return cJSON_IsNumber(c) && (j->num == c->valuedouble ||
					     (j->num != j->num && c->valuedouble != c->valuedouble));
	case JDOM_STRING: return cJSON_IsString(c) && strcmp(j->str, c->valuestring) == 0;
	case JDOM_ARRAY:
	case JDOM_OBJECT: break;
	}
	if (j->type == JDOM_ARRAY ? !cJSON_IsArray(c) : !cJSON_IsObject(c))
		return 0;
	unsigned n = 0;
	const cJSON *cc = c->child;
	for (const jdom_node *jc = j->child; jc; jc = jc->next, cc = cc->next, n++) {
		if (!cc || (j->type == JDOM_OBJECT && strcmp(jc->key, cc->string) != 0) ||
		    !same_value(jc, cc, src))
			return 0;
		if (src) {
			cJSON *alone = cJSON_ParseWithLength(jc->src, jc->src_len);
			int same = alone && same_value(jc, alone, 0);
			cJSON_Delete(alone);
			if (!same)
				return 0;
		}
	}
	return !cc && n == j->count;
}

/* jdom and cJSON agree on data: both fail, or both succeed with the same values. */
static void check_jdom(const uint8_t *data, size_t size)
{
	jdom *d = NULL;
	cJSON *c = cJSON_ParseWithLength((const char *)data, size);
	int rc = jdom_parse(&d, (const char *)data, size);

	if ((rc == 0) != (c != NULL) || (rc != 0 && rc != CKPT_EINVAL))
		abort();
	if (rc == 0 && !same_value(jdom_root(d), c, 1))
		abort();
	jdom_free(d);
	cJSON_Delete(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ckpt_tree *t = NULL, *t2 = NULL, *s = NULL;
	char *js = NULL, *js2 = NULL, *name = NULL, *z;

	/* The scalar parser and name unescaper take the raw bytes too. */
	if (ckpt_scalar_parse(&s, (const char *)data, size, 0) == 0) {
		char buf[32];

		if (ckpt_scalar_format(buf, sizeof(buf), s) <= 0)
			abort();
	}
	ckpt_tree_free(s);
	z = malloc(size + 1);
	if (!z)
		return 0;
	memcpy(z, data, size);
	z[size] = '\0';
	if (ckpt_key_unescape(&name, z, size & 1) == 0)
		free(name);
	free(z);
	check_jdom(data, size);

	if (ckpt_tree_metadata_from_json(&t, (const char *)data, size) != 0)
		return 0;
	if (ckpt_tree_metadata_to_json(&js, t) != 0)
		abort();
	if (ckpt_tree_metadata_from_json(&t2, js, strlen(js)) != 0)
		abort();
	if (ckpt_tree_metadata_to_json(&js2, t2) != 0 || strcmp(js, js2) != 0)
		abort();
	if (ckpt_tree_walk(t, check_node, t) != 0)
		abort();
	free(js);
	free(js2);
	ckpt_tree_free(t);
	ckpt_tree_free(t2);
	return 0;
}
