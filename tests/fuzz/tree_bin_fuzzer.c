/*
 * tree_bin_fuzzer.c — fuzz target for the compact tree decoder (tree_bin.c).
 *
 * Decodes the input; when it decodes, the tree must pass ckpt_tree_check,
 * encode back to exactly the input (the form is canonical), and write
 * _METADATA that the JSON reader takes back (where _METADATA can carry the
 * tree), and list without building (ckpt_tree_bin_children, _parent: the
 * mount's lazy listing) exactly as it decoded. When it does not, the error is
 * CKPT_ECORRUPT (CKPT_EVERSION for a newer version byte) with a message, and
 * nothing is left allocated; listing it anyway (at the first 64 offsets and
 * 16 more) stays in bounds and fails with a message or lists what it can.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/error.h"
#include "ckpt/tree.h"
#include "tree_private.h"
#include "../unit/treescan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_cb(const struct tree_bin_child *c, void *payload)
{
	(void)c;
	++*(size_t *)payload;
	return 0;
}

/* Listing bytes that do not decode: any answer, but a clear one, and in bounds. */
static void scan_any(const uint8_t *data, size_t size)
{
	size_t n = 0, parent;

	for (size_t at = 0; at <= size; at += at < 64 ? 1 : size / 16 + 1) {
		int rc = ckpt_tree_bin_children(data, size, at, count_cb, &n);
		if (rc != 0 && ((rc != CKPT_ECORRUPT && rc != CKPT_EVERSION && rc != CKPT_EINVAL) ||
				!*ckpt_error_last()))
			abort();
		rc = ckpt_tree_bin_parent(&parent, data, size, at);
		if (rc != 0 && ((rc != CKPT_ECORRUPT && rc != CKPT_EVERSION && rc != CKPT_EINVAL &&
				 rc != CKPT_ENOTFOUND) ||
				!*ckpt_error_last()))
			abort();
		if (rc == 0 && (parent >= at || parent < 1))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ckpt_tree *t = NULL, *back = NULL;
	unsigned char *again = NULL;
	char *json = NULL;
	size_t len = 0;
	int rc = ckpt_tree_decode(&t, data, size);

	if (rc != 0) {
		const char *m = ckpt_error_last();

		if (t || (rc != CKPT_ECORRUPT && rc != CKPT_EVERSION && rc != CKPT_ENOMEM) || !m ||
		    !*m)
			abort();
		scan_any(data, size);
		return 0;
	}
	if (!ckpt_tree_check(t) || !treescan_agrees(data, size, t))
		abort();
	if (ckpt_tree_encode(&again, &len, t) != 0 || len != size || memcmp(again, data, size) != 0)
		abort();
	/* _METADATA carries the same tree; scalar and string values aside, it reads back
	 * to the same encoding only when they are zero, so compare the JSON instead. */
	if (ckpt_tree_metadata_to_json(&json, t) == 0) {
		char *json2 = NULL;

		if (ckpt_tree_metadata_from_json(&back, json, strlen(json)) != 0 ||
		    ckpt_tree_metadata_to_json(&json2, back) != 0 || strcmp(json, json2) != 0)
			abort();
		free(json2);
	}
	free(json);
	free(again);
	ckpt_tree_free(back);
	ckpt_tree_free(t);
	return 0;
}
