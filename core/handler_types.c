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
    {CKPT_PYTREE_TYPESTR, ckpt_pytree_handler_new, NULL, 1, NULL},
    {CKPT_STANDARD_TYPESTR, ckpt_standard_handler_new, NULL, 1, NULL},
    {CKPT_JSON_TYPESTR, json_new, &ckpt_json_format, 0, NULL},
    {CKPT_ARRAY_TYPESTR, array_new, &ckpt_array_format, 0, NULL},
    {CKPT_PROTO_TYPESTR, proto_new, &ckpt_proto_format, 0, NULL},
    {CKPT_JAX_KEY_TYPESTR, jax_key_new, &ckpt_jax_key_format, 0, NULL},
    {CKPT_NP_KEY_TYPESTR, np_key_new, &ckpt_np_key_format, 0, NULL},
    {NULL, NULL, NULL, 0, NULL},
};

/* Types registered at run time (ckpt_handler_type_register): a list only ever
 * pushed onto under mu, never freed, so an entry found stays valid. An entry
 * with a check function has its own item format (fmt). */
struct registered {
	handler_type t;
	item_format fmt;
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

static struct registered *find_added(const char *typestr)
{
	struct registered *r;

	pthread_mutex_lock(&mu);
	for (r = added; r && strcmp(r->t.typestr, typestr); r = r->next)
		;
	pthread_mutex_unlock(&mu);
	return r;
}

const handler_type *handler_type_find(const char *typestr)
{
	const handler_type *t = builtin(typestr);
	const struct registered *r;

	if (t || !typestr)
		return t;
	r = find_added(typestr);
	return r ? &r->t : NULL;
}

/* The item format of a registered type: its own checks; a missing one passes. */
static int pass_file(int item_dirfd, const char *name, int fd, const char *what)
{
	return 0;
}

static int pass_dir(int item_dirfd, const char *what)
{
	return 0;
}

int ckpt_handler_type_register_info(const ckpt_handler_type_info *info)
{
	struct registered *r;
	int rc = 0;

	if (!info)
		return ckpt_error_set(CKPT_EINVAL, "ckpt_handler_type_register_info: NULL info");
	CKPT_CHECK_VERSION(info, CKPT_HANDLER_TYPE_INFO_VERSION, "ckpt_handler_type_info");
	if (!info->typestr || !info->typestr[0] || !info->create)
		return ckpt_error_set(CKPT_EINVAL, "ckpt_handler_type_register: %s",
				      info->create ? "no type string" : "no create function");
	if (builtin(info->typestr))
		return ckpt_error_set(CKPT_EEXISTS, "handler type %s is built in", info->typestr);
	if (!(r = calloc(1, sizeof(*r))) || !(r->t.typestr = strdup(info->typestr))) {
		free(r);
		return ckpt_error_nomem();
	}
	r->t.create = info->create;
	r->t.describe = info->describe;
	if (info->check_file || info->check_dir) {
		r->fmt = (item_format){r->t.typestr, info->check_file ? info->check_file : pass_file,
				       info->check_dir ? info->check_dir : pass_dir};
		r->t.format = &r->fmt;
	}
	pthread_mutex_lock(&mu);
	for (const struct registered *o = added; o && rc == 0; o = o->next)
		if (!strcmp(o->t.typestr, info->typestr))
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
				      info->typestr);
	}
	return 0;
}

int ckpt_handler_type_register(const char *typestr, int (*create)(ckpt_handler **out))
{
	const ckpt_handler_type_info info = {CKPT_HANDLER_TYPE_INFO_VERSION, typestr, create,
					     NULL, NULL, NULL};

	return ckpt_handler_type_register_info(&info);
}

int ckpt_item_describe(char **out, ckpt_step *s, const char *item)
{
	const handler_type *t;
	size_t idx;
	int rc;

	*out = NULL;
	if ((rc = ckpt_step_item_find(&idx, s, item)) != 0 || (rc = ckpt_step_load_index(s)))
		return rc;
	t = handler_type_find(ckpt_step_item_typestr(s, idx));
	if (!t || !t->describe)
		return 0;
	rc = t->describe(out, s, item);
	if (rc) {
		free(*out);
		*out = NULL;
		return ckpt_error_wrap(rc, "describe item %s", item);
	}
	return 0;
}

int handler_type_is_tree(const char *typestr)
{
	const handler_type *t = handler_type_find(typestr);

	return typestr == NULL || (t && t->is_tree);
}
