/*
 * handler_types.c — the table of handler types (handler_types.h).
 *
 * Invariant: typestrs are unique, and a built-in entry has a format exactly
 * when it is not a tree (asserted by handler_types_test). Types registered
 * at run time (ckpt/sys/handler.h) are neither trees nor have a format:
 * their items are stored as their files, unchecked.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/array.h"
#include "ckpt/json.h"
#include "ckpt/proto.h"
#include "ckpt/pytree.h"
#include "ckpt/random_key.h"
#include "ckpt/sys/handler.h"
#include "error_private.h"
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

/* Types registered at run time (ckpt_handler_type_register): a list only ever
 * pushed onto under mu, never freed, so an entry found stays valid. */
struct registered {
	handler_type t;
	struct registered *next;
};
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct registered *added;

static const handler_type *builtin(const char *typestr)
{
	for (const handler_type *t = TYPES; typestr && t->typestr; t++)
		if (!strcmp(t->typestr, typestr))
			return t;
	return NULL;
}

const handler_type *handler_type_find(const char *typestr)
{
	const handler_type *t = builtin(typestr);

	if (t || !typestr)
		return t;
	pthread_mutex_lock(&mu);
	for (const struct registered *r = added; r && !t; r = r->next)
		if (!strcmp(r->t.typestr, typestr))
			t = &r->t;
	pthread_mutex_unlock(&mu);
	return t;
}

int ckpt_handler_type_register(const char *typestr, int (*create)(ckpt_handler **out))
{
	struct registered *r;
	int rc = 0;

	if (!typestr || !typestr[0] || !create)
		return ckpt_error_set(CKPT_EINVAL, "ckpt_handler_type_register: %s",
				      create ? "no type string" : "no create function");
	if (builtin(typestr))
		return ckpt_error_set(CKPT_EEXISTS, "handler type %s is built in", typestr);
	if (!(r = calloc(1, sizeof(*r))) || !(r->t.typestr = strdup(typestr))) {
		free(r);
		return ckpt_error_nomem();
	}
	r->t.create = create;
	pthread_mutex_lock(&mu);
	for (const struct registered *o = added; o && rc == 0; o = o->next)
		if (!strcmp(o->t.typestr, typestr))
			rc = CKPT_EEXISTS;
	if (rc == 0) {
		r->next = added;
		added = r;
	}
	pthread_mutex_unlock(&mu);
	if (rc) {
		free((char *)r->t.typestr);
		free(r);
		return ckpt_error_set(CKPT_EEXISTS, "handler type %s is already registered",
				      typestr);
	}
	return 0;
}

int handler_type_is_tree(const char *typestr)
{
	const handler_type *t = handler_type_find(typestr);

	return typestr == NULL || (t && t->is_tree);
}
