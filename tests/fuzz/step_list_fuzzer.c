/*
 * step_list_fuzzer.c — fuzz target for the step listing, ckpt.list
 * (core/step_list.c, docs/format.md "Step listing").
 *
 * Input: the bytes of a ckpt.list. The target parses them (step_list_parse),
 * decodes each listed tree and lists each item's keys under a few prefixes;
 * then puts them beside a real step (made once, with a PyTree item and a Json
 * item) and opens that step listed, lists every item's tree without
 * building it (ckpt_step_item_children, each child's parent checked), reads
 * every item's tree and _METADATA size, lists the items' keys, loads the index and checks the
 * listing against it (ckpt verify's check). An empty input stands for the step's own listing, so
 * that the corpus reaches the paths of a listing that matches. Nothing may crash, leak or hang;
 * every error must come with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt.h"
#include "fsutil.h"
#include "step_list.h"
#include "step_private.h"
#include "tree_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void says_why(int rc)
{
	if (rc < 0 && !*ckpt_error_last())
		abort();
}

static int count_cb(const void *name, size_t len, int is_prefix, void *payload)
{
	(*(size_t *)payload) += len + (size_t)is_prefix;
	return 0;
}

struct walk {
	ckpt_step *s;
	size_t item;
	uint64_t id;
	unsigned depth;
};

/* Each child: a file name, and its parent is the node listed; containers are walked. */
static int walk_cb(const ckpt_tree_entry *e, void *payload)
{
	const struct walk *w = payload;
	uint64_t parent = 1;

	if (!*e->name || strchr(e->name, '/') || e->id <= w->id)
		abort();
	if (ckpt_step_item_parent(&parent, w->s, w->item, e->id) != 0 || parent != w->id)
		abort();
	if (e->kind == CKPT_TREE_DICT || e->kind == CKPT_TREE_LIST || e->kind == CKPT_TREE_TUPLE ||
	    e->kind == CKPT_TREE_NAMEDTUPLE) {
		struct walk sub = {w->s, w->item, e->id, w->depth + 1};
		if (sub.depth > 200)
			abort();
		says_why(ckpt_step_item_children(w->s, w->item, e->id, walk_cb, &sub));
	}
	return 0;
}

static char root[] = "/tmp/step-list-fuzz.XXXXXX";
static char *own_list; /* the step's own ckpt.list */
static size_t own_len;

static void remove_step(void)
{
	ckpt_rmtree(root);
	free(own_list);
}

/* A finalized step with items "state" (PyTree) and "meta" (Json), made once. */
static const char *the_step(void)
{
	static char dir[64];
	char path[96];
	ckpt_step_writer *w = NULL;
	ckpt_tree *t = NULL, *leaf = NULL;
	char *json = NULL;
	uint64_t shape[1] = {3};

	if (dir[0])
		return dir;
	if (!mkdtemp(root) || ckpt_step_writer_open(&w, root, 1, NULL) ||
	    ckpt_step_writer_add_item(w, "state",
				      "orbax.checkpoint._src.handlers."
				      "pytree_checkpoint_handler.PyTreeCheckpointHandler") ||
	    ckpt_step_writer_add_item(w, "meta",
				      "orbax.checkpoint._src.handlers."
				      "json_checkpoint_handler.JsonCheckpointHandler") ||
	    ckpt_tree_new(&t, CKPT_TREE_DICT) ||
	    ckpt_tree_new_array(&leaf, CKPT_DTYPE_FLOAT32, 1, shape, NULL, CKPT_TREE_BORROW) ||
	    ckpt_tree_add(t, "w", leaf) || ckpt_tree_metadata_to_json(&json, t) ||
	    ckpt_batch_put(ckpt_step_writer_batch(w), "state/_METADATA", 15, json, strlen(json),
			   NULL) ||
	    ckpt_batch_put(ckpt_step_writer_batch(w), "state/w", 7, "0123456789ab", 12, NULL) ||
	    ckpt_batch_put(ckpt_step_writer_batch(w), "meta/metadata", 13, "{}", 2, NULL) ||
	    ckpt_step_writer_finalize(w)) {
		fprintf(stderr, "step_list_fuzzer: making the step: %s\n", ckpt_error_last());
		abort();
	}
	ckpt_tree_free(t);
	free(json);
	atexit(remove_step);
	snprintf(dir, sizeof(dir), "%s/1", root);
	snprintf(path, sizeof(path), "%s/ckpt.list", dir);
	if (ckpt_read_file(&own_list, &own_len, path, 1 << 20))
		abort();
	return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct step_list l;
	const char *dir = the_step();
	char path[96];
	size_t sum = 0;
	ckpt_step *s = NULL;
	FILE *f;

	if (size == 0) {
		data = (const uint8_t *)own_list;
		size = own_len;
	}
	unsigned char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	int rc = step_list_parse(&l, copy, size, "fuzz"); /* takes copy */
	says_why(rc);
	for (size_t i = 0; rc == 0 && i < l.nitems; i++) {
		const struct step_list_item *it = &l.items[i];
		ckpt_tree *t = NULL;
		if (it->has_metadata) {
			says_why(ckpt_tree_decode(&t, it->tree, it->tree_len));
			ckpt_tree_free(t);
		}
		says_why(step_list_keys(it, "", 0, '/', count_cb, &sum));
		says_why(step_list_keys(it, "", 0, -1, count_cb, &sum));
		says_why(step_list_keys(it, "a/", 2, '/', count_cb, &sum));
	}
	if (rc == 0)
		step_list_clear(&l);

	snprintf(path, sizeof(path), "%s/ckpt.list", dir);
	if (!(f = fopen(path, "wb")) || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	rc = ckpt_step_open_listed(&s, dir, NULL);
	says_why(rc);
	for (size_t i = 0; rc == 0 && i < ckpt_step_item_count(s); i++) {
		const char *item = ckpt_step_item_name(s, i);
		const ckpt_tree *t = NULL;
		uint64_t n = 0;
		char prefix[64];
		struct walk w = {s, i, 0, 0};
		if (ckpt_step_item_id_limit(&n, s, i) == 0)
			says_why(ckpt_step_item_children(s, i, 0, walk_cb, &w));
		says_why(ckpt_step_item_tree(&t, s, item));
		says_why(ckpt_step_item_metadata_size(&n, s, item));
		snprintf(prefix, sizeof(prefix), "%s/", item);
		says_why(ckpt_step_list(s, prefix, strlen(prefix), '/', count_cb, &sum));
	}
	if (rc == 0) {
		says_why(ckpt_step_load_index(s));
		says_why(ckpt_step_check_listing(s));
	}
	ckpt_step_free(s);
	unlink(path);
	return 0;
}
