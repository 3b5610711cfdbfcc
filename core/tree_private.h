/*
 * tree_private.h — helpers of the tree module shared by tree.c and tree_json.c.
 */
#ifndef CKPT_TREE_PRIVATE_H
#define CKPT_TREE_PRIVATE_H

#include "ckpt/tree.h"

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
