/*
 * tree_private.h — helpers of the tree module shared by tree.c, tree_json.c
 * and tree_bin.c.
 */
#ifndef CKPT_TREE_PRIVATE_H
#define CKPT_TREE_PRIVATE_H

#include <stdint.h>

#include "ckpt/tree.h"

/*
 * Limits of a metadata tree, shared by its two readers (tree_json.c for
 * _METADATA, tree_bin.c for the compact form) so that they refuse the same
 * trees: key paths at most CKPT_TREE_MAX_DEPTH deep, dims at most 2^53
 * (exact in a JSON number).
 */
#define CKPT_TREE_MAX_DEPTH 128
#define CKPT_TREE_MAX_DIM   (UINT64_C(1) << 53)

/*
 * Change a container's kind within its family: DICT <-> NAMEDTUPLE (keyed
 * children), LIST <-> TUPLE (positional children). type_name is required
 * for NAMEDTUPLE and copied. CKPT_EINVAL across families.
 */
int ckpt_tree_retype(ckpt_tree *t, ckpt_tree_kind kind, const char *type_name);

/*
 * Detach every child of container t at once (O(children), where removing
 * them one by one with ckpt_tree_remove costs an index rebuild each): *kids
 * (malloc'd, caller frees the array and owns each child) gets them in
 * order, *n their count. Unlike ckpt_tree_remove, each child keeps its key
 * until it is added somewhere else. t is left empty. Returns 0,
 * CKPT_EINVAL (t not a container), CKPT_ENOMEM (nothing changed).
 */
int ckpt_tree_detach_all(ckpt_tree ***kids, size_t *n, ckpt_tree *t);

/*
 * Give node c, which has no parent, its key key[0, len) (no NUL byte) before
 * ckpt_tree_adopt() makes it the child of a dict or namedtuple (a
 * ckpt_tree_add under the same key keeps it too). Returns 0, CKPT_EINVAL (a
 * NULL argument, c has a parent), CKPT_ENOMEM.
 */
int ckpt_tree_set_key(ckpt_tree *c, const char *key, size_t len);

/*
 * Make kids[0, n) the children of t, an empty container, in one go (O(n),
 * where n ckpt_tree_add calls search each key and rebuild the index as it
 * grows). Each child has no parent; a dict's or namedtuple's children carry
 * their keys already (ckpt_tree_set_key), list and tuple children get their
 * positions here. On success t owns kids (a malloc'd array of n entries,
 * which becomes t's) and every child. On failure nothing changes but the
 * keys of list/tuple children, and the caller keeps kids and the children.
 * Returns 0, CKPT_EEXISTS (two children share a key: *dup is the later one's
 * position), CKPT_EINVAL (t not an empty container, kids NULL, too many
 * children), CKPT_ENOMEM.
 */
int ckpt_tree_adopt(ckpt_tree *t, ckpt_tree **kids, size_t n, size_t *dup);

/*
 * The compact binary form of a metadata tree (docs/format.md, "Compact
 * tree"): what _METADATA carries -- every node kind, keys, namedtuple type
 * names, custom metadata, dtypes and shapes -- plus scalar and string values,
 * in a fraction of the bytes and of the time to read.
 *
 * ckpt_tree_encode: *out malloc'd (the caller frees it), *len its length.
 * Array data is not written (a metadata tree has none); a sharded array is
 * written as the plain array of its global shape, as _METADATA records it.
 * Returns 0, CKPT_EINVAL (t NULL, or a tree _METADATA cannot carry either:
 * deeper than 128 levels, a dimension above 2^53, custom metadata nested
 * too deep to read back), CKPT_ENOMEM.
 *
 * ckpt_tree_decode: *out a new metadata-only tree (ckpt_tree_free). Every
 * byte is checked against the limits the _METADATA reader enforces (depth,
 * unique keys, dtypes, ndim and dimensions, sizes that do not overflow,
 * custom metadata that is JSON); it never reads past len, and its work and
 * memory are linear in len. decode(encode(t)) answers every accessor of
 * ckpt/tree.h as t does (but array data and shards), and encode(decode(b))
 * == b for every b it accepts.
 * Returns 0, CKPT_ECORRUPT (malformed: the message names the problem and
 * its byte offset), CKPT_EVERSION (a newer form than this reader's),
 * CKPT_EINVAL (buf NULL with len > 0), CKPT_ENOMEM.
 */
int ckpt_tree_encode(unsigned char **out, size_t *len, const ckpt_tree *t);
int ckpt_tree_decode(ckpt_tree **out, const void *buf, size_t len);

/*
 * Listing a compact tree without building it (the mount lists a directory of
 * a big step this way; ckpt_step_item_children). A node is named by `at`, the
 * offset of its tag byte: 1 for the root.
 *
 * ckpt_tree_bin_children calls cb for each child of the container at `at`,
 * in order: its offset, position, kind and (dict, namedtuple) key bytes,
 * borrowed from buf. Each child is skipped with the decoder's bound checks
 * (never past len, at most 128 levels), not the checks that need the whole
 * tree (duplicate keys, custom metadata): ckpt_tree_decode makes those.
 * Returns 0, cb's first nonzero return, CKPT_ECORRUPT (malformed bytes:
 * the message names the offset), CKPT_EVERSION (a newer form), CKPT_EINVAL
 * (no container at `at`). `at` must be 1 or an offset this listed: another
 * offset may parse as a container and list what is not there.
 *
 * ckpt_tree_bin_parent: *parent = the offset of the container that holds
 * the node at `at`, found in one pass over the bytes before it.
 * Returns 0, CKPT_ENOTFOUND (no node starts at `at`, or it is the root),
 * CKPT_ECORRUPT, CKPT_EVERSION, CKPT_EINVAL.
 */
struct tree_bin_child {
	size_t at;  /* its tag's offset */
	size_t pos; /* its position among the container's children */
	ckpt_tree_kind kind;
	const char *key; /* dict, namedtuple: keylen bytes (no NUL); else NULL */
	size_t keylen;
};
typedef int (*ckpt_tree_bin_cb)(const struct tree_bin_child *c, void *payload);
int ckpt_tree_bin_children(const void *buf, size_t len, size_t at, ckpt_tree_bin_cb cb,
			   void *payload);
int ckpt_tree_bin_parent(size_t *parent, const void *buf, size_t len, size_t at);

/*
 * ckpt_key_escape() of key[0, len) written to buf (no NUL added; buf NULL:
 * only counted). Returns the escaped length.
 */
size_t ckpt_key_escape_into(char *buf, const char *key, size_t len, int is_array);

/*
 * Assert every invariant of tree.c on t and all below it (O(nodes)), as
 * SQLite's assert_pager_state: `assert(ckpt_tree_check(t))`. Returns 1.
 */
int ckpt_tree_check(const ckpt_tree *t);

/*
 * 1 if the memory at p starts as a ckpt_tree does (its first member, the
 * kind, holds a valid kind), else 0: how a handler whose save args are a
 * bare tree or a tagged struct (ckpt_array_save_args) tells them apart. p
 * must point to at least sizeof(unsigned) readable bytes.
 */
int ckpt_tree_starts_as_tree(const void *p);

/* shape as Python prints a tuple ("(2, 3)", "(4,)", "()") into buf, cut at cap. */
void ckpt_tree_shape_str(char *buf, size_t cap, unsigned nd, const uint64_t *shape);

#endif
