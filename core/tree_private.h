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
 * Assert every invariant of tree.c on t and all below it (O(nodes)), as
 * SQLite's assert_pager_state: `assert(ckpt_tree_check(t))`. Returns 1.
 */
int ckpt_tree_check(const ckpt_tree *t);

#endif
