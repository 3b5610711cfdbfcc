/*
 * cmd_diff.c — `ckpt diff A B [PATH]`: what changed between two steps.
 *
 * Leaves of the PyTree items (or of PATH in both) are matched by path:
 * added, removed, changed (kind, dtype or shape differ), equal (same size
 * and CRC32C of the raw value: nothing is read), or differing. Differing
 * arrays are read a piece at a time (cli_array_doubles) and compared
 * element by element: how many differ, the largest absolute difference
 * |a - b| and the largest relative one |a - b| / |b| (infinite where b is
 * 0); NaN equals NaN. Differing scalars show both values. Values of items
 * of other handlers are compared by size and CRC32C.
 *
 * Exit status 0 (as git diff), or with --exit-code 1 when anything differs.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#define PIECE (64u << 10) /* elements compared at a time */

typedef struct dleaf {
	char *path;	       /* item/path */
	char *item;	       /* borrowed from the step */
	const ckpt_tree *node; /* NULL for a raw key */
	ckpt_value_info info;
	int has_info;
} dleaf;

typedef struct dside {
	cli_path p;
	dleaf *l;
	size_t n, cap;
	const char *item;	/* during a walk */
	const char *raw_prefix; /* a raw item's inner path + "/", or "" */
	int oom;
} dside;

static void add_leaf(dside *d, const char *item, const char *path, const ckpt_tree *node)
{
	dleaf *e;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 64;
		if (!(e = realloc(d->l, cap * sizeof(*e)))) {
			d->oom = 1;
			return;
		}
		d->l = e;
		d->cap = cap;
	}
	e = &d->l[d->n];
	memset(e, 0, sizeof(*e));
	e->path = cli_key(item, path);
	e->item = (char *)item;
	e->node = node;
	if (!e->path) {
		d->oom = 1;
		return;
	}
	e->has_info =
	    ckpt_store_stat(&e->info, ckpt_step_store(d->p.step), e->path, strlen(e->path)) == 0;
	ckpt_error_clear();
	d->n++;
}

static int walk_cb(ckpt_tree *node, const char *path, void *payload)
{
	dside *d = payload;
	if (!ckpt_tree_is_container(node))
		add_leaf(d, d->item, path, node);
	return 0;
}

static int raw_cb(const void *name, size_t len, int is_prefix, void *payload)
{
	dside *d = payload;
	char *path = NULL;
	if (asprintf(&path, "%s%.*s", d->raw_prefix, (int)len, (const char *)name) < 0)
		return CKPT_ENOMEM;
	add_leaf(d, d->item, path, NULL);
	free(path);
	return 0;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const dleaf *)a)->path, ((const dleaf *)b)->path);
}

/* The leaves under the resolved path of one side (all items for a step). */
static int collect(dside *d)
{
	size_t n = d->p.item ? 1 : ckpt_step_item_count(d->p.step);
	for (size_t i = 0; i < n && !d->oom; i++) {
		const char *item = d->p.item ? d->p.item : ckpt_step_item_name(d->p.step, i);
		const ckpt_tree *t = d->p.item ? d->p.node : NULL;
		size_t idx;
		if (ckpt_step_item_find(&idx, d->p.step, item) < 0)
			return cli_fail();
		item = ckpt_step_item_name(d->p.step, idx); /* lives as long as the step */
		d->item = item;
		if (!t && ckpt_step_item_tree(&t, d->p.step, item) < 0)
			t = NULL;
		ckpt_error_clear();
		if (t) {
			if (ckpt_tree_walk((ckpt_tree *)t, walk_cb, d) < 0)
				return cli_fail();
		} else {
			char *prefix = NULL;
			if (asprintf(&prefix, "%s/%s%s", item, d->p.inner ? d->p.inner : "",
				     d->p.inner ? "/" : "") < 0)
				return cli_errorf("out of memory");
			d->raw_prefix = prefix + strlen(item) + 1; /* raw_cb gets names after it */
			int rc = ckpt_store_list(ckpt_step_store(d->p.step), prefix, strlen(prefix),
						 -1, raw_cb, d);
			free(prefix);
			if (rc < 0)
				return cli_fail();
		}
	}
	if (d->oom)
		return cli_errorf("out of memory");
	qsort(d->l, d->n, sizeof(*d->l), by_path);
	return 0;
}

/* "float32 (3, 4)", "int", "string" */
static void describe(char *buf, size_t cap, const dleaf *e)
{
	char sh[256];
	if (!e->node) {
		snprintf(buf, cap, "value");
	} else if (ckpt_tree_get_kind(e->node) == CKPT_TREE_ARRAY) {
		cli_shape_text(sh, sizeof(sh), e->node, 0);
		snprintf(buf, cap, "%s %s", ckpt_dtype_name(ckpt_tree_dtype(e->node)), sh);
	} else {
		snprintf(buf, cap, "%s", cli_kind_name(ckpt_tree_get_kind(e->node)));
	}
}

typedef struct cmp_result {
	uint64_t differing, total;
	double max_abs, max_rel;
} cmp_result;

/* Compare two arrays of one dtype and shape element by element. */
static int compare_arrays(cmp_result *r, dside *a, const dleaf *ea, dside *b, const dleaf *eb)
{
	ckpt_leaf *la = NULL, *lb = NULL;
	double *x = NULL, *y = NULL;
	ckpt_dtype dt = ckpt_tree_dtype(ea->node);
	int cplx = dt == CKPT_DTYPE_COMPLEX64 || dt == CKPT_DTYPE_COMPLEX128, rc = 0;
	uint64_t n = ckpt_tree_nelems(ea->node);

	memset(r, 0, sizeof(*r));
	r->total = n;
	if (ckpt_leaf_open(&la, a->p.step, ea->item, ea->node) < 0 ||
	    ckpt_leaf_open(&lb, b->p.step, eb->item, eb->node) < 0) {
		rc = cli_fail();
		goto done;
	}
	cli_array ca = {la, NULL, ckpt_leaf_file_size(la) - ckpt_tree_nbytes(ea->node), dt,
			ea->path};
	cli_array cb = {lb, NULL, ckpt_leaf_file_size(lb) - ckpt_tree_nbytes(eb->node), dt,
			eb->path};
	x = malloc(PIECE * 2 * sizeof(double));
	y = malloc(PIECE * 2 * sizeof(double));
	if (!x || !y) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	for (uint64_t first = 0; first < n && rc == 0; first += PIECE) {
		size_t cnt = n - first < PIECE ? (size_t)(n - first) : PIECE;
		if ((rc = cli_array_doubles(&ca, first, cnt, x)) ||
		    (rc = cli_array_doubles(&cb, first, cnt, y)))
			break;
		for (size_t k = 0; k < cnt; k++) {
			double d, m;
			if (cplx) {
				double dr = x[2 * k] - y[2 * k], di = x[2 * k + 1] - y[2 * k + 1];
				int nan = isnan(x[2 * k]) || isnan(x[2 * k + 1]) ||
					  isnan(y[2 * k]) || isnan(y[2 * k + 1]);
				if (nan) {
					d = (isnan(x[2 * k]) == isnan(y[2 * k]) &&
					     isnan(x[2 * k + 1]) == isnan(y[2 * k + 1]))
						? 0
						: NAN;
				} else {
					d = x[2 * k] == y[2 * k] && x[2 * k + 1] == y[2 * k + 1]
						? 0
						: hypot(dr, di);
				}
				m = hypot(y[2 * k], y[2 * k + 1]);
			} else {
				if (isnan(x[k]) || isnan(y[k]))
					d = isnan(x[k]) && isnan(y[k]) ? 0 : NAN;
				else
					d = x[k] == y[k] ? 0 : fabs(x[k] - y[k]);
				m = fabs(y[k]);
			}
			if (d == 0)
				continue;
			r->differing++;
			if (isnan(d) || d > r->max_abs || isnan(r->max_abs))
				r->max_abs = isnan(d) || isnan(r->max_abs) ? NAN : d;
			double rel = m > 0 ? d / m : INFINITY;
			if (isnan(rel) || rel > r->max_rel)
				r->max_rel = rel;
		}
	}
done:
	free(x);
	free(y);
	ckpt_leaf_free(la);
	ckpt_leaf_free(lb);
	return rc;
}

/* A scalar or string leaf's text, shortened (for "differs: 1 -> 2"). */
static void value_text(char *buf, size_t cap, dside *d, const dleaf *e)
{
	ckpt_leaf *l = NULL;
	size_t got = 0;
	buf[0] = '\0';
	if (!e->node || ckpt_leaf_open(&l, d->p.step, e->item, e->node) < 0 ||
	    ckpt_leaf_pread(&got, l, buf, cap - 1, 0) < 0)
		got = 0;
	if (got && got < cap - 1 && buf[got - 1] == '\n' &&
	    ckpt_tree_get_kind(e->node) != CKPT_TREE_STRING)
		got--; /* a scalar file's newline */
	buf[got] = '\0';
	for (char *q = buf; *q; q++)
		if (*q == '\n')
			*q = ' ';
	if (got == cap - 1 && cap > 4)
		strcpy(buf + cap - 4, "...");
	ckpt_leaf_free(l);
	ckpt_error_clear();
}

static int emitted;

static void out_row(const char *status, const char *path, const char *detail, const char *json)
{
	if (cli_json) {
		printf("%s{\"path\": ", emitted++ ? ",\n  " : "\n  ");
		cli_json_str(stdout, path);
		printf(", \"status\": \"%s\"%s}", status, json ? json : "");
	} else {
		printf("%-9s %s%s%s\n", status, path, detail && detail[0] ? ": " : "",
		       detail ? detail : "");
	}
}

#define DIFF_USAGE "ckpt diff A B [PATH] [--json] [--exit-code]"

enum { OPT_EXIT_CODE = 1400, OPT_ALL };

struct diff_opts {
	int exit_code, all;
};

static int diff_opt(int c, const char *arg, void *payload)
{
	struct diff_opts *o = payload;
	if (c == OPT_EXIT_CODE)
		o->exit_code = 1;
	else if (c == OPT_ALL)
		o->all = 1;
	else
		return -1;
	return 0;
}

int cmd_diff(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"exit-code", no_argument, NULL, OPT_EXIT_CODE},
	    {"all", no_argument, NULL, OPT_ALL},
	    {0},
	};
	struct diff_opts o = {0};
	dside s[2];
	size_t cnt[5] = {0}; /* equal, differs, changed, added, removed */
	char *arg[2] = {NULL, NULL};
	int a, rc;

	memset(s, 0, sizeof(s));
	rc = cli_parse(&a, argc, argv, DIFF_USAGE,
		       "Compare two steps (or PATH in both: an item, subtree or leaf). Each leaf\n"
		       "is added, removed, changed (kind, dtype or shape), differs, or equal\n"
		       "(same size and CRC32C: not read). A differing array is read piece by\n"
		       "piece: elements that differ, max |a-b| and max |a-b|/|b| (NaN = NaN).\n"
		       "  --all         list equal leaves too\n"
		       "  --exit-code   exit 1 when anything differs (default: 0, as git diff)\n"
		       "  --json        {\"leaves\": [...], \"equal\": N, \"differs\": N, ...}\n",
		       opts, diff_opt, &o);
	if (rc)
		return rc;
	if (argc - a != 2 && argc - a != 3)
		return cli_usagef(DIFF_USAGE, "expected two steps and an optional PATH");
	for (int i = 0; i < 2; i++) {
		const char *path = argc - a == 3 ? argv[a + 2] : NULL;
		if (asprintf(&arg[i], "%s%s%s", argv[a + i], path ? "/" : "", path ? path : "") <
		    0) {
			rc = cli_errorf("out of memory");
			goto done;
		}
		if ((rc = cli_open_path(&s[i].p, arg[i])) || (rc = collect(&s[i])))
			goto done;
	}
	if (cli_json)
		printf("{\"leaves\": [");
	for (size_t i = 0, j = 0; i < s[0].n || j < s[1].n;) {
		int c = i == s[0].n ? 1 : j == s[1].n ? -1 : strcmp(s[0].l[i].path, s[1].l[j].path);
		char da[300], db[300], detail[700], json[900];
		/* descriptions hold no characters JSON would escape: dtype names, digits */
		if (c < 0) {
			describe(da, sizeof(da), &s[0].l[i]);
			snprintf(json, sizeof(json), ", \"a\": \"%s\"", da);
			out_row("removed", s[0].l[i++].path, da, json);
			cnt[4]++;
			continue;
		}
		if (c > 0) {
			describe(db, sizeof(db), &s[1].l[j]);
			snprintf(json, sizeof(json), ", \"b\": \"%s\"", db);
			out_row("added", s[1].l[j++].path, db, json);
			cnt[3]++;
			continue;
		}
		const dleaf *ea = &s[0].l[i++], *eb = &s[1].l[j++];
		describe(da, sizeof(da), ea);
		describe(db, sizeof(db), eb);
		if (strcmp(da, db) != 0) {
			snprintf(detail, sizeof(detail), "%s -> %s", da, db);
			snprintf(json, sizeof(json), ", \"a\": \"%s\", \"b\": \"%s\"", da, db);
			out_row("changed", ea->path, detail, json);
			cnt[2]++;
			continue;
		}
		if (ea->has_info && eb->has_info && ea->info.size == eb->info.size &&
		    ea->info.crc32c == eb->info.crc32c) {
			cnt[0]++;
			if (o.all)
				out_row("equal", ea->path, da, NULL);
			continue;
		}
		cnt[1]++;
		if (ea->node && ckpt_tree_get_kind(ea->node) == CKPT_TREE_ARRAY) {
			cmp_result r;
			if ((rc = compare_arrays(&r, &s[0], ea, &s[1], eb)))
				goto done;
			snprintf(detail, sizeof(detail),
				 "%llu of %llu elements differ, max abs %.9g, max rel %.9g",
				 (unsigned long long)r.differing, (unsigned long long)r.total,
				 r.max_abs, r.max_rel);
			char ma[32] = "null", mr[32] = "null";
			if (isfinite(r.max_abs))
				snprintf(ma, sizeof(ma), "%.17g", r.max_abs);
			if (isfinite(r.max_rel))
				snprintf(mr, sizeof(mr), "%.17g", r.max_rel);
			snprintf(json, sizeof(json),
				 ", \"differing\": %llu, \"elements\": %llu, \"max_abs\": %s, "
				 "\"max_rel\": %s",
				 (unsigned long long)r.differing, (unsigned long long)r.total, ma,
				 mr);
			out_row("differs", ea->path, detail, json);
		} else {
			char va[120], vb[120];
			value_text(va, sizeof(va), &s[0], ea);
			value_text(vb, sizeof(vb), &s[1], eb);
			snprintf(detail, sizeof(detail), "%s -> %s", va, vb);
			out_row("differs", ea->path, ea->node ? detail : "", NULL);
		}
	}
	if (cli_json)
		printf("%s], \"equal\": %zu, \"differs\": %zu, \"changed\": %zu, \"added\": %zu, "
		       "\"removed\": %zu}\n",
		       emitted ? "\n" : "", cnt[0], cnt[1], cnt[2], cnt[3], cnt[4]);
	else
		printf("%zu equal, %zu differ, %zu changed, %zu added, %zu removed\n", cnt[0],
		       cnt[1], cnt[2], cnt[3], cnt[4]);
	if (o.exit_code && cnt[1] + cnt[2] + cnt[3] + cnt[4])
		rc = 1;
done:
	for (int i = 0; i < 2; i++) {
		for (size_t k = 0; k < s[i].n; k++)
			free(s[i].l[k].path);
		free(s[i].l);
		cli_path_free(&s[i].p);
		free(arg[i]);
	}
	return rc;
}
