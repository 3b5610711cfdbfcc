/*
 * cmd_show.c — commands that describe a checkpoint: tree and meta.
 *
 * tree walks each item's metadata tree (ckpt_step_item_tree) and asks the
 * store for each leaf's raw and stored size (ckpt_store_stat); items that
 * are not PyTrees are listed by their store keys. Nothing reads leaf data.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

/* Short handler name: the last dotted component of the typestr. */
static const char *short_type(const char *typestr)
{
	const char *dot = typestr ? strrchr(typestr, '.') : NULL;
	return dot ? dot + 1 : typestr ? typestr : "?";
}

typedef struct tree_ctx {
	ckpt_step *step;
	const char *item;
} tree_ctx;

static int json_first = 1; /* no JSON row printed yet */

static void json_sep(void)
{
	printf("%s\n  ", json_first ? "" : ",");
	json_first = 0;
}

/*
 * What tree shows: rows filtered by --depth and --match, kept until the end
 * so that the PATH column is as wide as the longest path, then a total.
 */
typedef struct tree_row {
	char *path, *kind, *dtype, *shape;
	int has_sizes;
	uint64_t size, stored;
} tree_row;

static struct {
	unsigned depth;	   /* --depth N: paths of at most N components (0: all) */
	const char *match; /* --match GLOB on the full path, or NULL */
	tree_row *rows;
	size_t n, cap;
	uint64_t size, stored, leaves; /* totals of the rows shown */
	int oom;
} tv;

/* Is the row of full path shown (--depth, --match)? */
static int shown_row(const char *full)
{
	unsigned comps = 1;
	for (const char *q = full; *q; q++)
		comps += *q == '/';
	if (tv.depth && comps > tv.depth)
		return 0;
	return !tv.match || fnmatch(tv.match, full, 0) == 0;
}

static void keep_row(const char *full, const char *kind, const char *dtype, const char *shape,
		     int has_sizes, uint64_t size, uint64_t stored)
{
	if (tv.n == tv.cap) {
		size_t cap = tv.cap ? 2 * tv.cap : 64;
		tree_row *r = realloc(tv.rows, cap * sizeof(*r));
		if (!r) {
			tv.oom = 1;
			return;
		}
		tv.rows = r;
		tv.cap = cap;
	}
	tree_row *r = &tv.rows[tv.n];
	r->path = strdup(full);
	r->kind = strdup(kind);
	r->dtype = strdup(dtype ? dtype : "");
	r->shape = strdup(shape ? shape : "");
	r->has_sizes = has_sizes;
	r->size = size;
	r->stored = stored;
	if (!r->path || !r->kind || !r->dtype || !r->shape) {
		free(r->path), free(r->kind), free(r->dtype), free(r->shape);
		tv.oom = 1;
		return;
	}
	tv.n++;
}

static void row(tree_ctx *c, const char *path, const char *kind, const char *dtype,
		const char *shape, const char *json_shape, int has_sizes, uint64_t size,
		uint64_t stored)
{
	char full[4096];

	snprintf(full, sizeof(full), "%s%s%s", c->item, path[0] ? "/" : "", path);
	if (!shown_row(full))
		return;
	if (has_sizes) {
		tv.size += size;
		tv.stored += stored;
		tv.leaves++;
	}
	if (cli_json) {
		json_sep();
		printf("{\"path\": ");
		cli_json_str(stdout, full);
		printf(", \"kind\": \"%s\"", kind);
		if (dtype)
			printf(", \"dtype\": \"%s\", \"shape\": %s", dtype, json_shape);
		if (has_sizes)
			printf(", \"size\": %llu, \"stored_size\": %llu", (unsigned long long)size,
			       (unsigned long long)stored);
		printf("}");
		return;
	}
	keep_row(full, kind, dtype, shape, has_sizes, size, stored);
}

/* Print the kept rows with the PATH column as wide as the longest path, and the total. */
static void print_rows(void)
{
	int w = 40;
	char a[32], b[32];
	for (size_t i = 0; i < tv.n; i++)
		if ((int)strlen(tv.rows[i].path) > w)
			w = (int)strlen(tv.rows[i].path);
	printf("%-*s %-10s %-14s %-16s %12s %12s\n", w, "PATH", "KIND", "DTYPE", "SHAPE", "SIZE",
	       "STORED");
	for (size_t i = 0; i < tv.n; i++) {
		const tree_row *r = &tv.rows[i];
		if (r->has_sizes)
			printf("%-*s %-10s %-14s %-16s %12s %12s\n", w, r->path, r->kind, r->dtype,
			       r->shape, cli_size(a, r->size), cli_size(b, r->stored));
		else if (r->dtype[0]) /* an item and its handler */
			printf("%-*s %-10s %s\n", w, r->path, r->kind, r->dtype);
		else
			printf("%-*s %s\n", w, r->path, r->kind);
	}
	printf("%-*s %-10s %-14s %-16s %12s %12s\n", w, "total", "", "", "", cli_size(a, tv.size),
	       cli_size(b, tv.stored));
}

static void free_rows(void)
{
	for (size_t i = 0; i < tv.n; i++) {
		free(tv.rows[i].path);
		free(tv.rows[i].kind);
		free(tv.rows[i].dtype);
		free(tv.rows[i].shape);
	}
	free(tv.rows);
	memset(&tv, 0, sizeof(tv));
}

static int tree_cb(ckpt_tree *node, const char *path, void *payload)
{
	tree_ctx *c = payload;
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	ckpt_value_info info;
	char shape[CKPT_NPY_MAX_NDIM * 22 + 8], jshape[CKPT_NPY_MAX_NDIM * 22 + 8], *key;
	int has = 0;

	if (ckpt_tree_is_container(node) || k == CKPT_TREE_NONE) {
		if (path[0]) /* the item's root is printed by the caller */
			row(c, path, cli_kind_name(k), NULL, NULL, NULL, 0, 0, 0);
		return 0;
	}
	key = cli_key(c->item, path);
	if (key && ckpt_store_stat(&info, ckpt_step_store(c->step), key, strlen(key)) == 0)
		has = 1;
	free(key);
	if (k == CKPT_TREE_ARRAY) {
		cli_shape_text(shape, sizeof(shape), node, 0);
		cli_shape_text(jshape, sizeof(jshape), node, 1);
		row(c, path, "array", ckpt_dtype_name(ckpt_tree_dtype(node)), shape, jshape, has,
		    has ? info.size : 0, has ? info.stored_size : 0);
	} else {
		row(c, path, cli_kind_name(k), NULL, NULL, NULL, has, has ? info.size : 0,
		    has ? info.stored_size : 0);
	}
	return 0;
}

typedef struct raw_ctx {
	tree_ctx *c;
	ckpt_store *st;
	const char *prefix;
	int bad; /* a .npy key's header was bad (said on stderr): exit 1 */
} raw_ctx;

static int raw_cb(const void *name, size_t namelen, int is_prefix, void *payload)
{
	raw_ctx *r = payload;
	ckpt_value_info info;
	char key[4096], path[4096];
	size_t pl = strlen(r->prefix);

	if (pl + namelen >= sizeof(key))
		return 0;
	memcpy(key, r->prefix, pl);
	memcpy(key + pl, name, namelen);
	key[pl + namelen] = '\0';
	snprintf(path, sizeof(path), "%.*s", (int)namelen, (const char *)name);
	if (ckpt_store_stat(&info, r->st, key, strlen(key)) != 0)
		return 0;
	/* A whole .npy (Array, JAX key items): shown as the array it holds. */
	ckpt_value *v = NULL;
	ckpt_tree *arr = NULL;
	uint64_t off;
	int bad = ckpt_value_open(&v, r->st, key, strlen(key)) != 0 ? cli_fail()
									: cli_raw_npy(&arr, &off, v, key);
	r->bad |= bad != 0;
	if (arr) {
		char shape[CKPT_NPY_MAX_NDIM * 22 + 8], jshape[CKPT_NPY_MAX_NDIM * 22 + 8];
		cli_shape_text(shape, sizeof(shape), arr, 0);
		cli_shape_text(jshape, sizeof(jshape), arr, 1);
		row(r->c, path, "array", ckpt_dtype_name(ckpt_tree_dtype(arr)), shape, jshape, 1,
		    info.size, info.stored_size);
	} else {
		row(r->c, path, "value", NULL, NULL, NULL, 1, info.size, info.stored_size);
	}
	ckpt_tree_free(arr);
	ckpt_value_free(v);
	return 0;
}

static int tree_item(cli_path *p, const char *item, const ckpt_tree *start)
{
	tree_ctx c = {p->step, item};
	const ckpt_tree *t = start;
	size_t idx = 0;
	int rc = 0;

	if (ckpt_step_item_find(&idx, p->step, item) < 0)
		return cli_fail();
	if (!start) {
		if (ckpt_step_item_tree(&t, p->step, item) < 0)
			t = NULL;
	}
	if (start == NULL || start == t) {
		if (cli_json && shown_row(item)) {
			json_sep();
			printf("{\"path\": ");
			cli_json_str(stdout, item);
			printf(", \"kind\": \"item\", \"handler\": ");
			cli_json_str(stdout, ckpt_step_item_typestr(p->step, idx));
			printf("}");
		} else if (shown_row(item)) {
			keep_row(item, "item", short_type(ckpt_step_item_typestr(p->step, idx)),
				 NULL, 0, 0, 0);
		}
	}
	if (t) {
		rc = ckpt_tree_walk((ckpt_tree *)t, tree_cb, &c);
	} else {
		size_t pl = strlen(item) + 1;
		char *prefix = malloc(pl + 1);
		raw_ctx r = {&c, ckpt_step_store(p->step), prefix, 0};
		ckpt_error_clear();
		if (!prefix)
			return cli_errorf("out of memory");
		snprintf(prefix, pl + 1, "%s/", item);
		rc = ckpt_store_list(r.st, prefix, pl, -1, raw_cb, &r);
		free(prefix);
		if (rc == 0 && r.bad)
			return 1;
	}
	return rc < 0 ? cli_fail() : 0;
}

#define TREE_USAGE "ckpt tree PATH [--depth N] [--match GLOB] [--json] [--bytes]"

enum { OPT_DEPTH = 1300, OPT_MATCH };

static int tree_opt(int c, const char *arg, void *payload)
{
	uint64_t v;
	if (c == OPT_DEPTH) {
		if (cli_parse_u64(&v, arg, 0) < 0 || v == 0 || v > 1000)
			return -1;
		tv.depth = (unsigned)v;
		return 0;
	}
	if (c == OPT_MATCH) {
		tv.match = arg;
		return 0;
	}
	return -1;
}

int cmd_tree(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"depth", required_argument, NULL, OPT_DEPTH},
	    {"match", required_argument, NULL, OPT_MATCH},
	    {0},
	};
	cli_path p;
	int a, rc;

	rc = cli_parse(&a, argc, argv, TREE_USAGE,
		       "List the items of a step (or the nodes of an item or subtree): path,\n"
		       "kind, dtype, shape, raw size and stored (compressed) size, like h5ls -r,\n"
		       "and the total of the leaves listed.\n"
		       "  --depth N      only paths of at most N components (state/params: 2)\n"
		       "  --match GLOB   only paths matching GLOB ('*' crosses '/': '*kernel*')\n",
		       opts, tree_opt, NULL);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(TREE_USAGE, "expected one PATH");
	if (cli_open_path(&p, argv[a]))
		return 1;
	if (cli_json)
		printf("[");
	if (p.item) {
		rc = tree_item(&p, p.item, p.node);
	} else {
		size_t n = ckpt_step_item_count(p.step);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = tree_item(&p, ckpt_step_item_name(p.step, i), NULL);
	}
	if (cli_json)
		printf("\n]\n");
	else if (tv.oom)
		rc = cli_errorf("out of memory");
	else if (rc == 0)
		print_rows();
	free_rows();
	cli_path_free(&p);
	return rc;
}

/* ---- meta ---- */

/* A raw key's metadata as a JSON object (no newline at the end), each line
 * indented by ind: sizes, checksum, and a whole .npy's dtype and shape. */
static int print_raw_meta(ckpt_store *st, const char *key, const char *ind)
{
	ckpt_value *v = NULL;
	ckpt_tree *arr = NULL;
	uint64_t off;
	char shape[CKPT_NPY_MAX_NDIM * 22 + 8];
	int rc;

	if (ckpt_value_open(&v, st, key, strlen(key)) < 0) {
		printf("{}");
		return cli_fail();
	}
	const ckpt_value_info *info = ckpt_value_get_info(v);
	printf("{\n%s  \"key\": ", ind);
	cli_json_str(stdout, key);
	printf(",\n%s  \"size\": %llu,\n%s  \"stored_size\": %llu,\n%s  \"crc32c\": \"%08x\"",
	       ind, (unsigned long long)info->size, ind, (unsigned long long)info->stored_size, ind,
	       info->crc32c);
	if ((rc = cli_raw_npy(&arr, &off, v, key)) == 0 && arr) {
		cli_shape_text(shape, sizeof(shape), arr, 1);
		printf(",\n%s  \"dtype\": \"%s\",\n%s  \"shape\": %s", ind,
		       ckpt_dtype_name(ckpt_tree_dtype(arr)), ind, shape);
	}
	printf("\n%s}", ind);
	ckpt_tree_free(arr);
	ckpt_value_free(v);
	return rc;
}

typedef struct raw_meta {
	ckpt_store *st;
	const char *prefix;
	int first;
	int bad; /* some file's metadata could not be read (said on stderr) */
} raw_meta;

static int raw_meta_cb(const void *name, size_t namelen, int is_prefix, void *payload)
{
	raw_meta *m = payload;
	char *key = NULL, *file = strndup(name, namelen);

	if (file && asprintf(&key, "%s%s", m->prefix, file) >= 0) {
		printf("%s\n    ", m->first ? "" : ",");
		m->first = 0;
		cli_json_str(stdout, file);
		printf(": ");
		m->bad |= print_raw_meta(m->st, key, "    ") != 0;
		free(key);
	}
	free(file);
	return 0;
}

static void print_leaf_meta(cli_path *p, const ckpt_tree *node, const char *path)
{
	ckpt_tree_kind k = ckpt_tree_get_kind(node);
	ckpt_leaf *l = NULL;
	const char *cm = ckpt_tree_custom_metadata(node);
	char shape[CKPT_NPY_MAX_NDIM * 22 + 8];

	printf("{\n  \"item\": ");
	cli_json_str(stdout, p->item);
	printf(",\n  \"path\": ");
	cli_json_str(stdout, path);
	printf(",\n  \"name\": ");
	cli_json_str(stdout, ckpt_tree_name(node));
	printf(",\n  \"kind\": \"%s\"", cli_kind_name(k));
	if (k == CKPT_TREE_NAMEDTUPLE) {
		printf(",\n  \"namedtuple_type\": ");
		cli_json_str(stdout, ckpt_tree_namedtuple_type(node));
	}
	if (ckpt_tree_is_container(node)) {
		printf(",\n  \"children\": [");
		for (size_t i = 0; i < ckpt_tree_count(node); i++) {
			printf("%s", i ? ", " : "");
			cli_json_str(stdout, ckpt_tree_name(ckpt_tree_child(node, i)));
		}
		printf("]");
	}
	if (k == CKPT_TREE_ARRAY) {
		cli_shape_text(shape, sizeof(shape), node, 1);
		printf(",\n  \"dtype\": \"%s\",\n  \"shape\": %s",
		       ckpt_dtype_name(ckpt_tree_dtype(node)), shape);
	}
	if (!ckpt_tree_is_container(node) && k != CKPT_TREE_NONE &&
	    ckpt_leaf_open(&l, p->step, p->item, node) == 0) {
		const ckpt_value_info *vi = ckpt_leaf_value_info(l);
		printf(",\n  \"key\": ");
		cli_json_str(stdout, ckpt_leaf_key(l));
		printf(",\n  \"file_size\": %llu", (unsigned long long)ckpt_leaf_file_size(l));
		if (vi)
			printf(
			    ",\n  \"size\": %llu,\n  \"stored_size\": %llu,\n  \"codec\": \"%s\","
			    "\n  \"inline\": %s,\n  \"chunks\": %u,\n  \"chunk_size\": %u,"
			    "\n  \"crc32c\": \"%08x\",\n  \"generation\": %llu",
			    (unsigned long long)vi->size, (unsigned long long)vi->stored_size,
			    vi->codec == CKPT_CODEC_ZSTD ? "zstd" : "raw",
			    vi->is_inline ? "true" : "false", vi->nchunks, vi->chunk_size,
			    vi->crc32c, (unsigned long long)vi->generation);
		ckpt_leaf_free(l);
	}
	printf(",\n  \"custom_metadata\": %s\n}\n", cm ? cm : "null");
}

#define META_USAGE "ckpt meta PATH"

int cmd_meta(int argc, char **argv)
{
	cli_path p;
	const char *json;
	char *path = NULL;
	int a, rc;

	rc = cli_parse(&a, argc, argv, META_USAGE,
		       "Print JSON metadata: of a step its _CHECKPOINT_METADATA, of an item its\n"
		       "_METADATA, of a leaf its kind, dtype, shape, sizes, codec, checksum and\n"
		       "custom metadata.\n",
		       NULL, NULL, NULL);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(META_USAGE, "expected one PATH");
	if (cli_open_path(&p, argv[a]))
		return 1;
	if (!p.item) {
		json = ckpt_step_metadata_json(p.step);
		cli_json_pretty(stdout, json ? json : "{}");
	} else if (p.node && p.node != p.tree) {
		if (ckpt_tree_path(&path, p.node) < 0)
			rc = cli_fail();
		else
			print_leaf_meta(&p, p.node, path);
	} else if (ckpt_step_item_metadata_json(&json, p.step, p.item) == 0) {
		cli_json_pretty(stdout, json);
	} else if (!p.inner || !p.inner[0]) {
		/* An item of another handler: the handler and its files. */
		size_t idx = 0;
		char *prefix = NULL;
		if (asprintf(&prefix, "%s/", p.item) < 0)
			prefix = NULL;
		raw_meta m = {ckpt_step_store(p.step), prefix, 1, 0};
		ckpt_step_item_find(&idx, p.step, p.item);
		char *desc = NULL; /* what a handler plugin says of it (docs/handlers.md) */
		if (ckpt_item_describe(&desc, p.step, p.item) != 0)
			rc = cli_fail();
		printf("{\n  \"handler\": ");
		cli_json_str(stdout, ckpt_step_item_typestr(p.step, idx));
		if (desc)
			printf(",\n  \"metadata\": %s", desc);
		free(desc);
		printf(",\n  \"files\": {");
		if (!prefix || ckpt_store_list(m.st, prefix, strlen(prefix), -1, raw_meta_cb, &m) < 0)
			rc = prefix ? cli_fail() : cli_errorf("out of memory");
		printf("%s}\n}\n", m.first ? "" : "\n  ");
		rc = rc ? rc : m.bad;
		free(prefix);
	} else {
		/* A file of such an item. */
		char *key = cli_key(p.item, p.inner);
		ckpt_value_info info;
		if (!key)
			rc = cli_errorf("out of memory");
		else if (ckpt_store_stat(&info, ckpt_step_store(p.step), key, strlen(key)) != 0)
			rc = cli_errorf("no metadata for '%s' (not a PyTree item nor a key)",
					argv[a]);
		else
			rc = print_raw_meta(ckpt_step_store(p.step), key, "") ? 1 : 0;
		printf("%s", rc ? "" : "\n");
		free(key);
	}
	free(path);
	cli_path_free(&p);
	return rc;
}
