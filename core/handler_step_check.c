/*
 * handler_step_check.c — do a step's keys and its items agree?
 * (ckpt_step_check_keys, ckpt/handler.h). A renamed or lost key passes every
 * checksum of the values; only comparing the keys with what the items say
 * they hold finds it (an item's leaf without a value, a value of nothing).
 *
 * Design: list every key once (sorted, memcmp order), mark the keys each item
 * accounts for (binary search), report the leaves whose key is missing, then
 * every key left unmarked. Which items are trees comes from the one table of
 * handler types (handler_types.h).
 *
 * Invariants:
 *   1. Every key is reported at most once, and only when nothing claims it.
 *   2. Only the index is read (keys, _METADATA), never a value's data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/handler.h"
#include "ckpt/tree.h"
#include "error_private.h"
#include "step_private.h"
#include "fsutil.h"
#include "handler_types.h"

typedef struct {
	char **k;	/* NUL-terminated copies (keys with a NUL byte never match a leaf) */
	size_t *len;
	unsigned char *used;
	size_t n, cap;
} keyset;

typedef struct {
	keyset *ks;
	ckpt_step_problem_cb cb;
	void *payload;
	size_t nproblems;
} checker;

static int add_key(const void *name, size_t len, int is_prefix, void *payload)
{
	keyset *ks = payload;

	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? 2 * ks->cap : 64;
		char **k = realloc(ks->k, cap * sizeof(*k));
		size_t *l = k ? realloc(ks->len, cap * sizeof(*l)) : NULL;
		if (k)
			ks->k = k;
		if (l)
			ks->len = l;
		if (!k || !l)
			return ckpt_error_nomem();
		ks->cap = cap;
	}
	if ((ks->k[ks->n] = malloc(len + 1)) == NULL)
		return ckpt_error_nomem();
	if (len)
		memcpy(ks->k[ks->n], name, len);
	ks->k[ks->n][len] = '\0';
	ks->len[ks->n++] = len;
	(void)is_prefix; /* no delimiter: every name is a key */
	return 0;
}

static int cmp_mem(const void *a, size_t an, const void *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

/* Index of key in the sorted set, or -1. */
static long find(const keyset *ks, const char *key)
{
	size_t lo = 0, hi = ks->n, n = strlen(key);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_mem(ks->k[mid], ks->len[mid], key, n);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void problem(checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(checker *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->nproblems++;
	if (c->cb)
		c->cb(msg, c->payload);
}

/* Mark the key of every leaf with data under node; report the missing ones. */
static int walk(checker *c, const char *item, const ckpt_tree *node)
{
	ckpt_tree_kind kind = ckpt_tree_get_kind(node);
	char *path = NULL, *key = NULL;
	long i;
	int rc;

	if (ckpt_tree_is_container(node)) {
		for (size_t j = 0; j < ckpt_tree_count(node); j++)
			if ((rc = walk(c, item, ckpt_tree_child(node, j))) < 0)
				return rc;
		return 0;
	}
	if (kind == CKPT_TREE_NONE)
		return 0; /* no value */
	if ((rc = ckpt_tree_path(&path, node)) < 0)
		return rc;
	if ((key = ckpt_asprintf("%s/%s", item, path)) == NULL) {
		free(path);
		return CKPT_ENOMEM;
	}
	if ((i = find(c->ks, key)) >= 0)
		c->ks->used[i] = 1;
	else
		problem(c, "item %s: leaf '%s' has no value", item, path);
	free(key);
	free(path);
	return 0;
}

int ckpt_step_check_keys(ckpt_step *s, ckpt_step_problem_cb cb, void *payload, size_t *nproblems)
{
	keyset ks = {0};
	checker c = {.ks = &ks, .cb = cb, .payload = payload};
	char *key = NULL;
	int rc;

	if (nproblems)
		*nproblems = 0;
	if ((rc = ckpt_step_load_index(s)) ||
	    (rc = ckpt_store_list(ckpt_step_store(s), "", 0, -1, add_key, &ks)) < 0)
		goto done;
	if ((ks.used = calloc(ks.n ? ks.n : 1, 1)) == NULL) {
		rc = ckpt_error_nomem();
		goto done;
	}
	for (size_t i = 1; i < ks.n; i++) /* the listing is sorted: find() relies on it */
		if (cmp_mem(ks.k[i - 1], ks.len[i - 1], ks.k[i], ks.len[i]) >= 0) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: keys listed out of order",
					    ckpt_step_dir(s));
			goto done;
		}
	long m = find(&ks, "_CHECKPOINT_METADATA");
	if (m >= 0)
		ks.used[m] = 1;
	for (size_t it = 0; it < ckpt_step_item_count(s); it++) {
		const char *item = ckpt_step_item_name(s, it);
		const ckpt_tree *tree = NULL;
		size_t plen = strlen(item);

		if (!handler_type_is_tree(ckpt_step_item_typestr(s, it))) {
			/* another handler: every key under <item>/ is its own */
			for (size_t i = 0; i < ks.n; i++)
				if (ks.len[i] > plen && memcmp(ks.k[i], item, plen) == 0 &&
				    ks.k[i][plen] == '/')
					ks.used[i] = 1;
			continue;
		}
		free(key);
		if ((key = ckpt_asprintf("%s/_METADATA", item)) == NULL) {
			rc = CKPT_ENOMEM;
			goto done;
		}
		if ((m = find(&ks, key)) < 0) {
			problem(&c, "item %s: no %s/_METADATA (a tree item without its tree)", item,
				item);
			continue;
		}
		ks.used[m] = 1;
		if ((rc = ckpt_step_item_tree(&tree, s, item)) < 0)
			goto done;
		if ((rc = walk(&c, item, tree)) < 0)
			goto done;
	}
	for (size_t i = 0; i < ks.n; i++)
		if (!ks.used[i]) {
			char kr[512];
			size_t n = 0;
			for (size_t j = 0; j < ks.len[i] && n + 5 < sizeof(kr); j++) {
				unsigned char ch = (unsigned char)ks.k[i][j];
				if (ch >= 0x20 && ch < 0x7f && ch != '\\')
					kr[n++] = (char)ch;
				else
					n += (size_t)snprintf(kr + n, sizeof(kr) - n, "\\x%02x", ch);
			}
			kr[n] = '\0';
			problem(&c, "key '%s' belongs to no item or leaf", kr);
		}
	if (ckpt_step_check_listing(s) < 0) /* and its listing agrees with its store */
		problem(&c, "%s", ckpt_error_last());
	rc = 0;
done:
	if (nproblems)
		*nproblems = c.nproblems;
	for (size_t i = 0; i < ks.n; i++)
		free(ks.k[i]);
	free(ks.k);
	free(ks.len);
	free(ks.used);
	free(key);
	return rc;
}
