/*
 * metadata_fuzzer.c — fuzz target for the _METADATA JSON reader (tree_json.c).
 *
 * Parses the input as _METADATA; when it parses, checks the round trip
 * (to_json of the tree parses back and writes the same bytes), that every
 * node's path resolves back to the node, and that names unescape to keys.
 * Also feeds the input to the scalar parser and the name unescaper.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/tree.h"

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
