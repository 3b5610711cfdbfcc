/*
 * handler_types.c — the table of handler types (handler_types.h).
 *
 * Invariant: typestrs are unique, and an entry has a format exactly when it
 * is not a tree (asserted by handler_types_test).
 */
#include <string.h>

#include "ckpt/array.h"
#include "ckpt/json.h"
#include "ckpt/proto.h"
#include "ckpt/pytree.h"
#include "ckpt/random_key.h"
#include "handler_types.h"

static int json_new(ckpt_handler **out)
{
	return ckpt_json_handler_new(out, NULL);
}

static int array_new(ckpt_handler **out)
{
	return ckpt_array_handler_new(out, NULL);
}

static int proto_new(ckpt_handler **out)
{
	return ckpt_proto_handler_new(out, NULL);
}

static int jax_key_new(ckpt_handler **out)
{
	return ckpt_jax_key_handler_new(out, NULL);
}

static int np_key_new(ckpt_handler **out)
{
	return ckpt_np_key_handler_new(out, NULL);
}

static const handler_type TYPES[] = {
    {CKPT_PYTREE_TYPESTR, ckpt_pytree_handler_new, NULL, 1},
    {CKPT_STANDARD_TYPESTR, ckpt_standard_handler_new, NULL, 1},
    {CKPT_JSON_TYPESTR, json_new, &ckpt_json_format, 0},
    {CKPT_ARRAY_TYPESTR, array_new, &ckpt_array_format, 0},
    {CKPT_PROTO_TYPESTR, proto_new, &ckpt_proto_format, 0},
    {CKPT_JAX_KEY_TYPESTR, jax_key_new, &ckpt_jax_key_format, 0},
    {CKPT_NP_KEY_TYPESTR, np_key_new, &ckpt_np_key_format, 0},
    {NULL, NULL, NULL, 0},
};

const handler_type *handler_type_find(const char *typestr)
{
	for (const handler_type *t = TYPES; typestr && t->typestr; t++)
		if (!strcmp(t->typestr, typestr))
			return t;
	return NULL;
}

int handler_type_is_tree(const char *typestr)
{
	const handler_type *t = handler_type_find(typestr);

	return typestr == NULL || (t && t->is_tree);
}
