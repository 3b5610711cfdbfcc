/*
 * handler_types.h — the one table of handler types this library knows
 * (handler_types.c). Every place that asks "what is an item of type T?"
 * consults it: the default handler of a type (the Composite registry, the
 * CLI and the mount), how its item looks as files (item_format.h), whether it
 * is stored as a tree of leaves (PyTree/Standard). Adding a handler is one
 * entry here plus its own files.
 */
#ifndef CKPT_HANDLER_TYPES_H
#define CKPT_HANDLER_TYPES_H

#include "ckpt/handler.h"
#include "ckpt/step.h"
#include "item_format.h"

typedef struct handler_type {
	const char *typestr;
	/* A handler of this type with default options; the caller frees it. */
	int (*create)(ckpt_handler **out);
	/* Its item as files (checked by ckpt save, finalize, the mount); NULL for trees. */
	const item_format *format;
	/* Stored as a PyTree: _METADATA and one key per leaf (docs/format-pytree.md). */
	int is_tree;
	/* Registered types only (ckpt_handler_type_register_info): or NULL. */
	int (*describe)(char **out, ckpt_step *s, const char *item);
} handler_type;

/* The entry of typestr (built in, or registered with
 * ckpt_handler_type_register), or NULL when this library does not know it. */
const handler_type *handler_type_find(const char *typestr);

/*
 * Whether an item of this type is stored as a tree of leaves. NULL (no
 * handler recorded) means the default item, a PyTree. An unknown type is not.
 */
int handler_type_is_tree(const char *typestr);

#endif
