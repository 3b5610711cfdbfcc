/*
 * composite.c — CompositeCheckpointHandler (ckpt/composite.h): the handler
 * registry, saving and restoring a step's items each with its own handler,
 * and StepMetadata.
 *
 * The registry is an array of (item, handler) pairs it owns; a step has few
 * items, so lookups are linear. It is not thread-safe: one registry per
 * thread, or the caller's lock.
 *
 * Invariants:
 *   1. A registry entry's handler is never replaced: registering an item
 *      twice is an error, and resolve only adds.
 *   2. A result's values are freed by the handler that restored them, which
 *      the registry owns: a result must be freed before its registry.
 *   3. PyTree and Standard handlers share one storage, so an item saved by
 *      either restores with either; every other mismatch between the
 *      handler and the step's recorded typestr is an error naming both.
 */
#include <assert.h>
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/array.h"
#include "ckpt/composite.h"
#include "ckpt/json.h"
#include "ckpt/root.h"
#include "ckpt/proto.h"
#include "ckpt/pytree.h"
#include "ckpt/random_key.h"
#include "error_private.h"
#include "handler_types.h"
#include "step_private.h"
#include "root_private.h"
#include "fsutil.h"

int ckpt_handler_new_default(ckpt_handler **out, const char *typestr)
{
	const handler_type *t = handler_type_find(typestr);

	*out = NULL;
	if (t == NULL)
		return ckpt_error_set(CKPT_EUNSUPPORTED, "no handler known for type %s", typestr);
	return t->create(out);
}

/* ---- the registry ---- */

struct entry {
	char *item;
	ckpt_handler *h;
};

struct ckpt_registry {
	struct entry *e;
	size_t n, cap;
};

int ckpt_registry_new(ckpt_registry **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ckpt_error_nomem();
}

void ckpt_registry_free(ckpt_registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->e[i].item);
		ckpt_handler_free(r->e[i].h);
	}
	free(r->e);
	free(r);
}

ckpt_handler *ckpt_registry_get(const ckpt_registry *r, const char *item)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->e[i].item, item))
			return r->e[i].h;
	return NULL;
}

int ckpt_registry_add(ckpt_registry *r, const char *item, ckpt_handler *h)
{
	ckpt_handler *old = ckpt_registry_get(r, item);
	char *name = NULL;
	int rc;

	if (old) {
		rc = ckpt_error_set(CKPT_EEXISTS, "item '%s' is already registered with %s, not %s",
				    item, ckpt_handler_typestr(old), ckpt_handler_typestr(h));
		goto fail;
	}
	if ((rc = ckpt_item_name_check(item)))
		goto fail;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 8;
		struct entry *e = realloc(r->e, cap * sizeof(*e));
		if (!e)
			goto nomem;
		r->e = e;
		r->cap = cap;
	}
	if (!(name = strdup(item)))
		goto nomem;
	r->e[r->n++] = (struct entry){name, h};
	return 0;
nomem:
	rc = ckpt_error_nomem();
fail:
	ckpt_handler_free(h);
	return rc;
}

/* Whether a handler of type have can read or write an item of type want (invariant 3). */
static int same_storage(const char *have, const char *want)
{
	return handler_type_is_tree(have) && handler_type_is_tree(want) ? 1 : !strcmp(have, want);
}

int ckpt_registry_resolve(ckpt_handler **out, ckpt_registry *r, const char *item,
			  const char *typestr)
{
	ckpt_handler *h = ckpt_registry_get(r, item);
	int rc;

	*out = NULL;
	if (h) {
		if (typestr && strcmp(ckpt_handler_typestr(h), typestr) != 0)
			return ckpt_error_set(CKPT_EINVAL,
					      "item '%s': args for %s given, but the item is "
					      "registered with %s",
					      item, typestr, ckpt_handler_typestr(h));
		*out = h;
		return 0;
	}
	if (!typestr)
		return ckpt_error_set(CKPT_ENOTFOUND,
				      "item '%s': no handler registered and no args type given", item);
	if ((rc = ckpt_handler_new_default(&h, typestr)) != 0)
		return ckpt_error_wrap(rc, "item '%s'", item);
	if ((rc = ckpt_registry_add(r, item, h)) != 0)
		return rc;
	*out = h;
	return 0;
}

/* ---- save ---- */

int ckpt_composite_save(ckpt_registry *r, ckpt_step_writer *w, const ckpt_composite_arg *items,
			size_t n)
{
	ckpt_handler **hs = calloc(n ? n : 1, sizeof(*hs));
	int rc = hs ? 0 : ckpt_error_nomem();

	for (size_t i = 0; rc == 0 && i < n; i++) {
		for (size_t j = 0; j < i; j++)
			if (!strcmp(items[j].item, items[i].item))
				rc = ckpt_error_set(CKPT_EINVAL, "item '%s' given twice",
						    items[i].item);
		if (rc == 0)
			rc = ckpt_registry_resolve(&hs[i], r, items[i].item, items[i].type);
		if (rc == 0)
			rc = ckpt_step_writer_add_item(w, items[i].item,
						       ckpt_handler_typestr(hs[i]));
		if (rc == 0 && (rc = ckpt_handler_save(hs[i], w, items[i].item, items[i].args)))
			ckpt_error_wrap(rc, "item '%s'", items[i].item);
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = ckpt_handler_finalize(hs[i], w, items[i].item);
	free(hs);
	return rc;
}

int ckpt_composite_save_step(const char *root, uint64_t step, ckpt_registry *r,
			     const ckpt_composite_arg *items, size_t n,
			     const ckpt_step_writer_options *opts)
{
	ckpt_step_writer *w = NULL;
	int rc = ckpt_step_writer_open(&w, root, step, opts);

	if (rc == 0)
		rc = ckpt_composite_save(r, w, items, n);
	if (rc == 0)
		return ckpt_step_writer_finalize(w);
	ckpt_step_writer_abort(w);
	return rc;
}

/* ---- restore ---- */

struct res_item {
	char *item;
	char *typestr;
	ckpt_handler *h; /* borrowed from the registry (invariant 2); NULL: not restored */
	void *value;
	int chosen;	  /* while restoring: to be restored, */
	const char *type; /* with a handler of this type */
	const void *args; /* and these args */
};

struct ckpt_composite_result {
	struct res_item *it;
	size_t n;
};

/*
 * The type of handler for item i of s given args of type `type` (NULL: the
 * registered handler's, else the type the step records): refused if it
 * cannot read what the step holds, or differs from the registered one.
 * Registers nothing.
 */
static int item_type(const char **out, const ckpt_registry *r, ckpt_step *s, size_t i,
		     const char *type)
{
	const char *item = ckpt_step_item_name(s, i), *saved = ckpt_step_item_typestr(s, i);
	const ckpt_handler *have = ckpt_registry_get(r, item);
	const char *use = type ? type : have ? ckpt_handler_typestr(have) : saved;

	*out = NULL;
	if (have && strcmp(ckpt_handler_typestr(have), use) != 0)
		return ckpt_error_set(CKPT_EINVAL,
				      "item '%s': args for %s given, but the item is registered "
				      "with %s",
				      item, use, ckpt_handler_typestr(have));
	if (!same_storage(use, saved))
		return ckpt_error_set(CKPT_EINVAL, "item '%s' was saved by %s, not %s", item,
				      saved, use);
	*out = use;
	return 0;
}

/* The handler for item i of s (item_type first): the registered one, or a new one. */
static int step_handler(ckpt_handler **out, ckpt_registry *r, ckpt_step *s, size_t i,
			const char *type)
{
	const char *use;
	int rc = item_type(&use, r, s, i, type);

	*out = NULL;
	return rc ? rc : ckpt_registry_resolve(out, r, ckpt_step_item_name(s, i), use);
}

int ckpt_composite_restore(ckpt_composite_result **out, ckpt_registry *r, ckpt_step *s,
			   const ckpt_composite_arg *items, size_t n)
{
	size_t count = ckpt_step_item_count(s);
	ckpt_composite_result *res = calloc(1, sizeof(*res));
	int rc = 0;

	*out = NULL;
	if (items && n == 0)
		items = NULL; /* Orbax: an empty Composite() restores everything */
	if (!res || !(res->it = calloc(count ? count : 1, sizeof(*res->it)))) {
		free(res);
		return ckpt_error_nomem();
	}
	res->n = count;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		res->it[i].item = strdup(ckpt_step_item_name(s, i));
		res->it[i].typestr = strdup(ckpt_step_item_typestr(s, i));
		if (!res->it[i].item || !res->it[i].typestr)
			rc = ckpt_error_nomem();
	}
	/* Which items, with which args: all (items NULL) or the chosen ones. All are
	 * checked before anything is registered or read. */
	for (size_t k = 0; rc == 0 && k < (items ? n : count); k++) {
		size_t i = k;
		if (items && (rc = ckpt_step_item_find(&i, s, items[k].item)) != 0) {
			rc = ckpt_error_set(CKPT_ENOTFOUND, "item '%s' is not in step %s",
					    items[k].item, ckpt_step_dir(s));
			break;
		}
		struct res_item *it = &res->it[i];
		if (it->chosen) {
			rc = ckpt_error_set(CKPT_EINVAL, "item '%s' given twice", it->item);
			break;
		}
		it->chosen = 1;
		it->type = items ? items[k].type : NULL;
		it->args = items ? items[k].args : NULL;
		rc = item_type(&it->type, r, s, i, it->type);
	}
	for (size_t i = 0; rc == 0 && i < count; i++) {
		struct res_item *it = &res->it[i];
		if (!it->chosen)
			continue;
		rc = step_handler(&it->h, r, s, i, it->type);
		if (rc == CKPT_EUNSUPPORTED && !items) {
			ckpt_error_clear(); /* restoring all: a handler we do not know, left out */
			rc = 0;
			continue;
		}
		if (rc)
			continue;
		rc = ckpt_handler_restore(&it->value, it->h, s, it->item, it->args);
		if (rc == CKPT_EUNSUPPORTED && !it->args &&
		    !strcmp(ckpt_handler_typestr(it->h), CKPT_PROTO_TYPESTR)) {
			ckpt_error_clear(); /* no message type to restore into: None, as Orbax */
			it->h = NULL;
			rc = 0;
		}
	}
	if (rc) {
		ckpt_composite_result_free(res);
		return rc;
	}
	*out = res;
	return 0;
}

size_t ckpt_composite_result_count(const ckpt_composite_result *res)
{
	return res->n;
}

const char *ckpt_composite_result_item(const ckpt_composite_result *res, size_t i)
{
	return i < res->n ? res->it[i].item : NULL;
}

const char *ckpt_composite_result_typestr(const ckpt_composite_result *res, size_t i)
{
	return i < res->n ? res->it[i].typestr : NULL;
}

void *ckpt_composite_result_value(const ckpt_composite_result *res, size_t i)
{
	return i < res->n ? res->it[i].value : NULL;
}

void *ckpt_composite_result_get(const ckpt_composite_result *res, const char *item)
{
	for (size_t i = 0; i < res->n; i++)
		if (!strcmp(res->it[i].item, item))
			return res->it[i].value;
	return NULL;
}

void ckpt_composite_result_free(ckpt_composite_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n; i++) {
		if (res->it[i].value) {
			assert(res->it[i].h);
			ckpt_handler_restored_free(res->it[i].h, res->it[i].value);
		}
		free(res->it[i].item);
		free(res->it[i].typestr);
	}
	free(res->it);
	free(res);
}

/* ---- StepMetadata ---- */

void ckpt_step_metadata_free(ckpt_step_metadata *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nitems; i++) {
		ckpt_handler *h = m->item_metadata[i] && m->registry
				      ? ckpt_registry_get(m->registry, m->items[i])
				      : NULL;
		if (h)
			ckpt_handler_metadata_free(h, m->item_metadata[i]);
		free(m->items[i]);
		free(m->item_handlers[i]);
	}
	free(m->items);
	free(m->item_handlers);
	free(m->item_metadata);
	free(m->metrics);
	free(m->custom_metadata);
	free(m->performance_metrics);
	free(m);
}

/* A member of object o printed, if it is a JSON object; else NULL. */
static int print_object(char **out, const cJSON *root, const char *name)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, name);

	*out = NULL;
	if (!cJSON_IsObject(o))
		return 0;
	return (*out = cJSON_PrintUnformatted(o)) ? 0 : ckpt_error_nomem();
}

/*
 * m from the JSON text of a _CHECKPOINT_METADATA (what: where it came from):
 * items and handlers from item_handlers (sorted by name), metrics, custom
 * metadata, timestamps. Item metadata left NULL.
 */
static int metadata_from_json(ckpt_step_metadata **out, const char *json, const char *what)
{
	ckpt_step_metadata *m = calloc(1, sizeof(*m));
	cJSON *root = cJSON_Parse(json);
	const cJSON *hs = cJSON_GetObjectItemCaseSensitive(root, "item_handlers"), *e;
	size_t n = 0;
	int rc = 0;

	*out = NULL;
	if (!m) {
		rc = ckpt_error_nomem();
		goto done;
	}
	if (!cJSON_IsObject(root) || (hs && !cJSON_IsObject(hs))) {
		rc = ckpt_error_set(CKPT_EINVAL, "%s: not step metadata (a JSON object whose "
						 "item_handlers is an object)",
				    what);
		goto done;
	}
	cJSON_ArrayForEach(e, hs) n++;
	m->items = calloc(n ? n : 1, sizeof(*m->items));
	m->item_handlers = calloc(n ? n : 1, sizeof(*m->item_handlers));
	m->item_metadata = calloc(n ? n : 1, sizeof(*m->item_metadata));
	if (!m->items || !m->item_handlers || !m->item_metadata) {
		rc = ckpt_error_nomem();
		goto done;
	}
	cJSON_ArrayForEach(e, hs)
	{
		if (!cJSON_IsString(e)) {
			rc = ckpt_error_set(CKPT_EINVAL, "%s: handler of item '%s' is not a string",
					    what, e->string);
			goto done;
		}
		size_t i = m->nitems;
		while (i > 0 && strcmp(m->items[i - 1], e->string) > 0) { /* insertion sort */
			m->items[i] = m->items[i - 1];
			m->item_handlers[i] = m->item_handlers[i - 1];
			i--;
		}
		m->items[i] = strdup(e->string);
		m->item_handlers[i] = strdup(e->valuestring);
		m->nitems++;
		if (!m->items[i] || !m->item_handlers[i]) {
			rc = ckpt_error_nomem();
			goto done;
		}
	}
	if ((rc = print_object(&m->metrics, root, "metrics")) == 0)
		rc = print_object(&m->custom_metadata, root, "custom_metadata");
	if (rc == 0)
		rc = print_object(&m->performance_metrics, root, "performance_metrics");
	m->init_timestamp_nsecs = ckpt_json_top_int(json, "init_timestamp_nsecs");
	m->commit_timestamp_nsecs = ckpt_json_top_int(json, "commit_timestamp_nsecs");
done:
	cJSON_Delete(root);
	if (rc)
		ckpt_step_metadata_free(m);
	else
		*out = m;
	return rc;
}

int ckpt_composite_metadata(ckpt_step_metadata **out, ckpt_registry *r, ckpt_step *s)
{
	ckpt_step_metadata *m = NULL;
	int rc = metadata_from_json(&m, ckpt_step_metadata_json(s), ckpt_step_dir(s));

	*out = NULL;
	if (rc)
		return rc;
	m->registry = r;
	for (size_t i = 0; rc == 0 && i < m->nitems; i++) {
		size_t idx;
		ckpt_handler *h = NULL;
		if ((rc = ckpt_step_item_find(&idx, s, m->items[i])) != 0)
			break;
		rc = step_handler(&h, r, s, idx, NULL);
		if (rc == CKPT_EUNSUPPORTED) { /* a handler we do not know: no item metadata */
			ckpt_error_clear();
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = ckpt_handler_metadata(&m->item_metadata[i], h, s, m->items[i]);
		if (rc)
			ckpt_error_wrap(rc, "item '%s'", m->items[i]);
	}
	if (rc)
		ckpt_step_metadata_free(m);
	else
		*out = m;
	return rc;
}

int ckpt_composite_metadata_from_temporary_paths(ckpt_step_metadata **out, ckpt_registry *r,
						 const char *tmp_dir)
{
	/* A library save keeps the file beside its store; a pending step in files/. */
	static const char *const where[] = {"", CKPT_PENDING_FILES "/"};
	char *json = NULL, *path = NULL;
	int rc = CKPT_ENOTFOUND;

	*out = NULL;
	for (size_t i = 0; rc == CKPT_ENOTFOUND && i < 2; i++) {
		free(path);
		if (!(path = ckpt_asprintf("%s/%s%s", tmp_dir, where[i], CKPT_STEP_METADATA_KEY)))
			return ckpt_error_nomem();
		rc = ckpt_read_file(&json, NULL, path, 64u << 20);
	}
	if (rc == CKPT_ENOTFOUND)
		rc = ckpt_error_set(CKPT_ENOTFOUND, "%s: no %s (not a save in progress)", tmp_dir,
				    CKPT_STEP_METADATA_KEY);
	if (rc == 0 && (rc = metadata_from_json(out, json, path)) == 0)
		(*out)->registry = r;
	free(json);
	free(path);
	return rc;
}
