/*
 * cmd_import.c — `ckpt import ORBAX_STEP ROOT STEP`: convert a step Orbax
 * wrote (OCDBT + zarr, or zarr directories) into a native step, atomically.
 *
 * The Orbax step is opened like any step (the library reads it through its
 * Orbax backend, docs/format.md "Orbax checkpoints"), and every value of it is
 * streamed into a new step with the step writer: the same keys, items and
 * handlers, so the result is the step a native save of the same tree would
 * have made. The writer's temporary directory and rename make it atomic.
 *
 * `ckpt import` itself is cmd_import() in cmd_convert.c: it picks by source
 * and hands a directory to cmd_import_orbax() here (files such as
 * .safetensors/.npz it imports itself).
 */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt.h"
#include "cli_util.h"

#define IMPORT_USAGE "ckpt import ORBAX_STEP ROOT STEP [--force] [--no-compress] [--level N]"
#define IMPORT_BUF   (4u << 20)

struct keys {
	char **v;
	size_t n, cap;
};

static int key_cb(const void *name, size_t namelen, int is_prefix, void *payload)
{
	struct keys *k = payload;
	if (k->n == k->cap) {
		size_t ncap = k->cap ? 2 * k->cap : 64;
		char **t = realloc(k->v, ncap * sizeof(*t));
		if (!t)
			return CKPT_ENOMEM;
		k->v = t;
		k->cap = ncap;
	}
	k->v[k->n] = strndup(name, namelen);
	return k->v[k->n++] ? 0 : CKPT_ENOMEM;
}

/* Stream the value of key from store src into batch b under the same key. */
static int copy_value(ckpt_batch *b, ckpt_store *src, const char *key, char *buf)
{
	ckpt_value *v = NULL;
	ckpt_value_writer *w = NULL;
	int rc = ckpt_value_open(&v, src, key, strlen(key));

	if (rc == 0)
		rc = ckpt_value_writer_open(&w, b, key, strlen(key), NULL);
	uint64_t size = rc ? 0 : ckpt_value_get_info(v)->size;
	for (uint64_t off = 0; rc == 0 && off < size;) {
		size_t got = 0;
		rc = ckpt_value_pread(&got, v, buf, IMPORT_BUF, off);
		if (rc == 0 && got == 0)
			rc = CKPT_ERROR;
		if (rc == 0)
			rc = ckpt_value_writer_write(w, buf, got);
		off += got;
	}
	if (w && rc == 0) {
		rc = ckpt_value_writer_close(w);
	} else if (w) {
		ckpt_value_writer_abort(w);
	}
	ckpt_value_free(v);
	return rc;
}

/* JSON text of a top-level member of js (malloc'd), or NULL. */
static char *member_json(const char *js, const char *name)
{
	cJSON *root = cJSON_Parse(js);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, name);
	char *out = cJSON_IsObject(m) ? cJSON_PrintUnformatted(m) : NULL;
	cJSON_Delete(root);
	return out;
}

static int import_orbax_step(const char *src, const char *root, uint64_t step,
			     ckpt_step_writer_options *o)
{
	ckpt_step *s = NULL;
	ckpt_step_writer *w = NULL;
	struct keys k = {0};
	char *buf = malloc(IMPORT_BUF), *custom = NULL, *metrics = NULL;
	int rc = buf ? ckpt_step_open(&s, src, NULL) : CKPT_ENOMEM;

	if (rc)
		goto done;
	custom = member_json(ckpt_step_metadata_json(s), "custom_metadata");
	metrics = member_json(ckpt_step_metadata_json(s), "metrics");
	o->custom_metadata = custom;
	o->metrics = metrics;
	rc = ckpt_step_writer_open(&w, root, step, o);
	for (size_t i = 0; rc == 0 && i < ckpt_step_item_count(s); i++) {
		const char *item = ckpt_step_item_name(s, i);
		char *prefix = malloc(strlen(item) + 2);
		if (!prefix) {
			rc = CKPT_ENOMEM;
			break;
		}
		sprintf(prefix, "%s/", item);
		rc = ckpt_step_writer_add_item(w, item, ckpt_step_item_typestr(s, i));
		size_t first = k.n;
		if (rc == 0)
			rc = ckpt_store_list(ckpt_step_store(s), prefix, strlen(prefix), -1, key_cb,
					     &k);
		for (size_t j = first; rc == 0 && j < k.n; j++) {
			char *key = malloc(strlen(prefix) + strlen(k.v[j]) + 1);
			if (!key) {
				rc = CKPT_ENOMEM;
				break;
			}
			sprintf(key, "%s%s", prefix, k.v[j]);
			rc = copy_value(ckpt_step_writer_batch(w), ckpt_step_store(s), key, buf);
			free(key);
		}
		free(prefix);
	}
	if (rc == 0) {
		rc = ckpt_step_writer_finalize(w);
		w = NULL;
	}
done:
	ckpt_step_writer_abort(w);
	ckpt_step_free(s);
	for (size_t j = 0; j < k.n; j++)
		free(k.v[j]);
	free(k.v);
	free(custom);
	free(metrics);
	free(buf);
	return rc;
}

static int import_opt(int c, const char *arg, void *payload)
{
	ckpt_step_writer_options *o = payload;
	uint64_t v;

	switch (c) {
	case 'f': o->force = 1; return 0;
	case 'n': o->store.compression_level = 0; return 0;
	case 'l':
		if (cli_parse_u64(&v, arg, 0) < 0 || v < 1 || v > 19)
			return cli_usagef(IMPORT_USAGE, "--level must be 1..19, not '%s'", arg);
		o->store.compression_level = (int)v;
		return 0;
	}
	return 2;
}

int cmd_import_orbax(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"force", no_argument, NULL, 'f'},
	    {"no-compress", no_argument, NULL, 'n'},
	    {"level", required_argument, NULL, 'l'},
	    {0},
	};
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	uint64_t step;
	int a, rc;

	rc = cli_parse(&a, argc, argv, IMPORT_USAGE,
		       "Convert the step ORBAX_STEP that Orbax wrote (OCDBT + zarr, or zarr\n"
		       "directories) into the native step ROOT/STEP, atomically.\n"
		       "  -f, --force         replace an existing step\n"
		       "  -n, --no-compress   store chunks raw\n"
		       "  -l, --level N       zstd level 1..19 (default 1)\n",
		       opts, import_opt, &o);
	if (rc)
		return rc;
	if (argc - a != 3)
		return cli_usagef(IMPORT_USAGE, "expected ORBAX_STEP ROOT STEP");
	if (cli_parse_u64(&step, argv[a + 2], 0) < 0)
		return cli_usagef(IMPORT_USAGE, "STEP must be a non-negative integer, not '%s'",
				  argv[a + 2]);
	const char *fmt = ckpt_step_dir_format(argv[a]);
	if (!fmt || strcmp(fmt, "orbax") != 0)
		return cli_errorf("%s: not a step Orbax wrote (%s)", argv[a],
				  fmt ? "it is already a native step" : "no Orbax metadata found");
	rc = import_orbax_step(argv[a], argv[a + 1], step, &o);
	if (rc < 0)
		return cli_fail();
	if (cli_json)
		printf("{\"step\": %llu}\n", (unsigned long long)step);
	else
		printf("imported %s as step %llu of %s\n", argv[a], (unsigned long long)step,
		       argv[a + 1]);
	return 0;
}
