/*
 * cmd_io.c — commands that move data: save, restore, get, verify.
 *
 * save/restore are thin wrappers of ckpt_interchange_save/_restore with a
 * progress bar (driven by /proc/self/io, since the library reports none).
 * get copies one leaf through ckpt_leaf_pread (reading only that leaf) or
 * a subtree through ckpt_interchange_restore. verify opens every key the
 * store lists under the path and runs ckpt_value_verify on it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"

/* ---- keys under a prefix ---- */

typedef struct keylist {
	const char *prefix; /* keys equal to it or below prefix + "/" ("" = all) */
	size_t plen;
	char **keys;
	size_t n, cap;
} keylist;

static int keylist_cb(const void *name, size_t namelen, int is_prefix, void *payload)
{
	keylist *kl = payload;
	char *k;

	if (kl->plen && namelen > 0 && ((const char *)name)[0] != '/')
		return 0; /* "state2" is not under "state" */
	if (kl->n == kl->cap) {
		size_t cap = kl->cap ? 2 * kl->cap : 64;
		char **nk = realloc(kl->keys, cap * sizeof(*nk));
		if (!nk)
			return CKPT_ENOMEM;
		kl->keys = nk;
		kl->cap = cap;
	}
	k = malloc(kl->plen + namelen + 1);
	if (!k)
		return CKPT_ENOMEM;
	memcpy(k, kl->prefix, kl->plen);
	memcpy(k + kl->plen, name, namelen);
	k[kl->plen + namelen] = '\0';
	kl->keys[kl->n++] = k;
	return 0;
}

static void keylist_free(keylist *kl)
{
	for (size_t i = 0; i < kl->n; i++)
		free(kl->keys[i]);
	free(kl->keys);
}

static int keylist_load(keylist *kl, ckpt_store *st, const char *prefix)
{
	int rc;

	memset(kl, 0, sizeof(*kl));
	kl->prefix = prefix;
	kl->plen = strlen(prefix);
	rc = ckpt_store_list(st, prefix, kl->plen, -1, keylist_cb, kl);
	if (rc == CKPT_ENOMEM)
		return cli_errorf("out of memory");
	if (rc < 0)
		return cli_fail();
	return 0;
}

/* The store-key prefix a resolved path covers ("" for a whole step). */
static char *path_prefix(const cli_path *p)
{
	char *path = NULL, *k;

	if (!p->item)
		return strdup("");
	if (p->node && p->node != p->tree) {
		if (ckpt_tree_path(&path, p->node) < 0)
			return NULL;
	} else if (!p->tree && p->inner) {
		path = strdup(p->inner);
	}
	k = cli_key(p->item, path);
	free(path);
	return k;
}

static uint64_t sum_sizes(ckpt_store *st, const keylist *kl, int stored)
{
	uint64_t total = 0;
	ckpt_value_info info;

	for (size_t i = 0; i < kl->n; i++)
		if (ckpt_store_stat(&info, st, kl->keys[i], strlen(kl->keys[i])) == 0)
			total += stored ? info.stored_size : info.size;
	return total;
}

/* ---- save ---- */

#define SAVE_USAGE                                                                                 \
	"ckpt save ROOT STEP DIR [--force] [--no-compress] [--level N] [--chunk-size N]\n"        \
	"                 [--metric NAME=VALUE]... [--metrics JSON] [--skip-extra]"

enum { OPT_METRIC = 1200, OPT_METRICS, OPT_SKIP_EXTRA };

struct save_args {
	ckpt_step_writer_options o;
	const char *metrics;	/* --metrics JSON */
	char *kv[64];		/* --metric NAME=VALUE (borrowed from argv) */
	size_t nkv;
	int skip_extra;
};

static int save_opt(int c, const char *arg, void *payload)
{
	struct save_args *sa = payload;
	ckpt_step_writer_options *o = &sa->o;
	uint64_t v;

	switch (c) {
	case 'f': o->force = 1; return 0;
	case 'n': o->store.compression_level = 0; return 0;
	case 'l':
		if (cli_parse_u64(&v, arg, 0) < 0 || v < 1 || v > 19)
			return -1;
		o->store.compression_level = (int)v;
		return 0;
	case 'c':
		if (cli_parse_u64(&v, arg, 1) < 0 || v == 0 || v > (1u << 30))
			return -1;
		o->store.chunk_size = (uint32_t)v;
		return 0;
	case OPT_METRIC:
		if (sa->nkv == sizeof(sa->kv) / sizeof(sa->kv[0]) || !strchr(arg, '='))
			return -1;
		sa->kv[sa->nkv++] = (char *)arg;
		return 0;
	case OPT_METRICS: sa->metrics = arg; return 0;
	case OPT_SKIP_EXTRA: sa->skip_extra = 1; return 0;
	}
	return -1;
}

int cmd_save(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"force", no_argument, NULL, 'f'},
	    {"no-compress", no_argument, NULL, 'n'},
	    {"level", required_argument, NULL, 'l'},
	    {"chunk-size", required_argument, NULL, 'c'},
	    {"metric", required_argument, NULL, OPT_METRIC},
	    {"metrics", required_argument, NULL, OPT_METRICS},
	    {"skip-extra", no_argument, NULL, OPT_SKIP_EXTRA},
	    {0},
	};
	struct save_args sa = {.o = CKPT_STEP_WRITER_OPTIONS_INIT};
	char *metrics = NULL;
	uint64_t step;
	struct stat st;
	char sz[40];
	int a, rc;

	rc = cli_parse(&a, argc, argv, SAVE_USAGE,
		       "Save the interchange directory DIR (item directories of .npy, scalar and\n"
		       "string files, optional _METADATA / _CHECKPOINT_METADATA) as ROOT/STEP.\n"
		       "A path a step cannot hold (a top-level file, a name starting with '_')\n"
		       "fails the save, listed; hidden files (.DS_Store) are left out with a note.\n"
		       "  -f, --force           replace an existing step\n"
		       "  -n, --no-compress     store chunks raw\n"
		       "  -l, --level N         zstd level 1..19 (default 1)\n"
		       "  -c, --chunk-size N    raw bytes per chunk (K/M/G suffix; default 256K)\n"
		       "  --metric NAME=VALUE   a metric (repeatable; VALUE as written: 0.1 keeps\n"
		       "                        its digits), added to _CHECKPOINT_METADATA's\n"
		       "  --metrics JSON        metrics as a JSON object, the same way\n"
		       "  --skip-extra          save without the paths a step cannot hold (a note\n"
		       "                        lists them) instead of failing\n",
		       opts, save_opt, &sa);
	if (rc)
		return rc;
	if (argc - a != 3)
		return cli_usagef(SAVE_USAGE, "expected ROOT STEP DIR");
	if (cli_parse_u64(&step, argv[a + 1], 0) < 0)
		return cli_usagef(SAVE_USAGE, "STEP must be a non-negative integer, not '%s'",
				  argv[a + 1]);
	if (stat(argv[a + 2], &st) < 0 || !S_ISDIR(st.st_mode))
		return cli_errorf("%s: not a directory", argv[a + 2]);
	if ((rc = cli_save_check(argv[a + 2], sa.skip_extra)) ||
	    (rc = cli_save_metrics(&metrics, argv[a + 2], sa.metrics, sa.kv, sa.nkv)))
		return rc;
	sa.o.metrics = metrics;
	cli_progress_start("save", cli_du(argv[a + 2]), "rchar");
	rc = ckpt_interchange_save(argv[a], step, argv[a + 2], &sa.o);
	cli_progress_end(rc == 0);
	free(metrics);
	if (rc < 0) {
		if (rc == CKPT_EEXISTS)
			return cli_errorf("%s (--force replaces it)", ckpt_error_last());
		return cli_fail();
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%llu", argv[a], (unsigned long long)step);
	if (cli_json) {
		printf("{\"step\": %llu, \"path\": ", (unsigned long long)step);
		cli_json_str(stdout, dir);
		printf(", \"size\": %llu}\n", (unsigned long long)cli_du(dir));
	} else {
		printf("saved step %llu: %s (%s on disk)\n", (unsigned long long)step, dir,
		       cli_size_unit(sz, cli_du(dir)));
	}
	return 0;
}

/* ---- restore ---- */

/*
 * Output that exists is replaced only with --force: a file, or a directory
 * that is not empty (a restore replaces the files it writes there).
 * Returns 0 or 1 (message printed).
 */
static int refuse_existing(const char *path, int force)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int empty = 1;

	if (force || stat(path, &st) != 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return cli_errorf("%s exists (--force overwrites it)", path);
	if ((d = opendir(path))) {
		while (empty && (e = readdir(d)))
			empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
		closedir(d);
	}
	return empty ? 0
		     : cli_errorf("%s exists and is not empty (--force writes into it, replacing "
				  "the files of the same names)",
				  path);
}

#define RESTORE_USAGE \
	"ckpt restore ROOT/STEP[/ITEM[/PATH]] DIR [--force] [--map OLD=NEW]... "       \
	"[--map-regex RE=NEW]... [--drop-unmapped]"

/* --map / --map-regex rules, in the order given (the first match wins). */
struct maps {
	ckpt_restore_transform *t;
	char **own;
	size_t n;
	int drop_unmapped;
	int force; /* --force: write into a DIR that is not empty */
};

static int restore_opt(int c, const char *arg, void *payload)
{
	struct maps *m = payload;
	const char *eq;

	if (c == 'd' || c == 'f') {
		*(c == 'd' ? &m->drop_unmapped : &m->force) = 1;
		return 0;
	}
	if (!arg || !(eq = strchr(arg, '=')) || eq == arg)
		return -1; /* cli_parse says: bad value for --map */
	ckpt_restore_transform *t = realloc(m->t, (m->n + 1) * sizeof(*t));
	char **own = t ? realloc(m->own, (m->n + 1) * sizeof(*own)) : NULL;
	if (t)
		m->t = t;
	if (own)
		m->own = own;
	if (!t || !own || !(m->own[m->n] = strdup(arg)))
		return -1;
	char *from = m->own[m->n];
	from[eq - arg] = '\0';
	m->t[m->n++] = (ckpt_restore_transform){from, from + (eq - arg) + 1, c == 'r'};
	return 0;
}

int cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"map", required_argument, NULL, 'm'},
	    {"map-regex", required_argument, NULL, 'r'},
	    {"drop-unmapped", no_argument, NULL, 'd'},
	    {"force", no_argument, NULL, 'f'},
	    {0},
	};
	struct maps maps = {NULL, NULL, 0, 0, 0};
	cli_path p;
	keylist kl = {0};
	char *prefix = NULL;
	int a, rc;

	rc = cli_parse(&a, argc, argv, RESTORE_USAGE,
		       "Write a step (or one item, or a subtree or leaf of it) to DIR as plain\n"
		       "files: .npy arrays, scalars as text, strings as bytes. DIR must not\n"
		       "exist or be empty:\n"
		       "  -f, --force          write into a DIR that is not empty (replacing files)\n"
		       "  --map OLD=NEW        an item's leaf (or subtree) OLD is written as NEW;\n"
		       "                       NEW empty leaves it out (repeatable; first match wins)\n"
		       "  --map-regex RE=NEW   the same for every leaf path RE matches whole; NEW may\n"
		       "                       use \\1..\\9 (POSIX extended regex)\n"
		       "  --drop-unmapped      leave out leaves no rule matches (default: kept)\n",
		       opts, restore_opt, &maps);
	if (rc)
		goto done_maps;
	if (argc - a != 2) {
		rc = cli_usagef(RESTORE_USAGE, "expected a step path and DIR");
		goto done_maps;
	}
	if (refuse_existing(argv[a + 1], maps.force) || cli_open_path(&p, argv[a])) {
		rc = 1;
		goto done_maps;
	}
	if (maps.n || maps.drop_unmapped) {
		if (!p.item || (p.node && p.node != p.tree) || (!p.tree && p.inner))
			rc = cli_errorf("--map applies to a whole PyTree item: ROOT/STEP/ITEM");
		else if (!maps.n)
			rc = cli_errorf("--drop-unmapped needs a --map or --map-regex");
		else if (ckpt_interchange_restore_mapped(p.step, p.item, maps.t, maps.n,
							 !maps.drop_unmapped, argv[a + 1]) < 0)
			rc = cli_fail();
		goto done;
	}
	prefix = path_prefix(&p);
	if (!prefix) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	if (isatty(STDERR_FILENO)) {
		if ((rc = keylist_load(&kl, ckpt_step_store(p.step), prefix)) != 0)
			goto done;
		cli_progress_start("restore", sum_sizes(ckpt_step_store(p.step), &kl, 0), "wchar");
	}
	rc = ckpt_interchange_restore(
	    p.step, p.item, p.node && p.node != p.tree ? prefix + strlen(p.item) + 1 : p.inner,
	    argv[a + 1]);
	cli_progress_end(rc == 0);
	rc = rc < 0 ? cli_fail() : 0;
done:
	keylist_free(&kl);
	free(prefix);
	cli_path_free(&p);
done_maps:
	for (size_t i = 0; i < maps.n; i++)
		free(maps.own[i]);
	free(maps.own);
	free(maps.t);
	return rc;
}

/* ---- get ---- */

#define GET_USAGE "ckpt get PATH [-o FILE|DIR|-] [--force] [--io-stats]"

struct get_opts {
	const char *out;
	int force;
};

static int get_opt(int c, const char *arg, void *payload)
{
	struct get_opts *o = payload;
	if (c == 'f')
		o->force = 1;
	else
		o->out = arg;
	return 0;
}

/* Copy n bytes from a leaf or a raw value to fd. */
static int copy_out(int fd, ckpt_leaf *l, ckpt_value *v, uint64_t n, const char *dest)
{
	size_t cap = 1u << 20;
	char *buf = malloc(cap);
	uint64_t off = 0;
	int rc = 0;

	if (!buf)
		return cli_errorf("out of memory");
	while (off < n) {
		size_t got = 0, want = n - off < cap ? (size_t)(n - off) : cap;
		int e = l ? ckpt_leaf_pread(&got, l, buf, want, off)
			  : ckpt_value_pread(&got, v, buf, want, off);
		if (e < 0) {
			rc = cli_fail();
			break;
		}
		if (got == 0) {
			rc = cli_errorf("%s: unexpected end of value at byte %llu", dest,
					(unsigned long long)off);
			break;
		}
		for (size_t w = 0; w < got;) {
			ssize_t k = write(fd, buf + w, got - w);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				rc = cli_errorf("write %s: %s", dest, strerror(errno));
				goto done;
			}
			w += (size_t)k;
		}
		off += got;
	}
done:
	free(buf);
	return rc;
}

static int get_leaf(cli_path *p, const char *out, int force)
{
	ckpt_leaf *l = NULL;
	ckpt_value *v = NULL;
	char *key = NULL, *dest = NULL;
	const char *name;
	uint64_t n;
	struct stat st;
	int fd = -1, rc;

	if (p->node) {
		if (ckpt_leaf_open(&l, p->step, p->item, p->node) < 0)
			return cli_fail();
		n = ckpt_leaf_file_size(l);
		name = ckpt_tree_name(p->node);
	} else {
		key = cli_key(p->item, p->inner);
		if (!key)
			return cli_errorf("out of memory");
		if (ckpt_value_open(&v, ckpt_step_store(p->step), key, strlen(key)) < 0) {
			rc = cli_fail();
			goto done;
		}
		n = ckpt_value_get_info(v)->size;
		name = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
	}
	if (out && !strcmp(out, "-")) {
		rc = copy_out(STDOUT_FILENO, l, v, n, "stdout");
		goto done;
	}
	if (!out)
		out = name;
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
		size_t len = strlen(out) + strlen(name) + 2;
		dest = malloc(len);
		if (!dest) {
			rc = cli_errorf("out of memory");
			goto done;
		}
		snprintf(dest, len, "%s/%s", out, name);
		out = dest;
	}
	if ((rc = refuse_existing(out, force)))
		goto done;
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = cli_errorf("create %s: %s", out, strerror(errno));
		goto done;
	}
	rc = copy_out(fd, l, v, n, out);
	if (close(fd) < 0 && rc == 0)
		rc = cli_errorf("close %s: %s", out, strerror(errno));
	if (rc)
		unlink(out); /* nothing half-written stays behind */
done:
	ckpt_leaf_free(l);
	ckpt_value_free(v);
	free(key);
	free(dest);
	return rc;
}

int cmd_get(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"force", no_argument, NULL, 'f'},
	    {0},
	};
	struct get_opts o = {NULL, 0};
	const char *out;
	cli_path p;
	char *prefix = NULL;
	const char *dflt;
	int a, rc;

	rc = cli_parse(&a, argc, argv, GET_USAGE,
		       "Copy one leaf to a file (.npy for arrays, text for scalars, bytes for\n"
		       "strings) named after the leaf in the current directory, or a step, item\n"
		       "or subtree to a directory.\n"
		       "  -o, --output F   file or directory to write ('-' = stdout for a leaf)\n"
		       "  -f, --force      replace an existing file (write into a directory\n"
		       "                   that is not empty)\n"
		       "  --io-stats       print rchar and store bytes read to stderr at exit\n",
		       opts, get_opt, &o);
	if (rc)
		return rc;
	out = o.out;
	if (argc - a != 1)
		return cli_usagef(GET_USAGE, "expected one PATH");
	if (cli_open_path(&p, argv[a]))
		return 1;
	if (p.item &&
	    ((p.node && !ckpt_tree_is_container(p.node)) || (!p.tree && p.inner && p.inner[0]))) {
		rc = get_leaf(&p, out, o.force);
		goto done;
	}
	if (out && !strcmp(out, "-")) {
		rc = cli_errorf("'-o -' needs a leaf; %s is a directory", argv[a]);
		goto done;
	}
	prefix = path_prefix(&p);
	if (!prefix) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	if (!p.item)
		dflt = strrchr(p.step_dir, '/') ? strrchr(p.step_dir, '/') + 1 : p.step_dir;
	else
		dflt = strrchr(prefix, '/') ? strrchr(prefix, '/') + 1 : prefix;
	if ((rc = refuse_existing(out ? out : dflt, o.force)))
		goto done;
	rc = ckpt_interchange_restore(
	    p.step, p.item, p.node && p.node != p.tree ? prefix + strlen(p.item) + 1 : NULL,
	    out ? out : dflt);
	rc = rc < 0 ? cli_fail() : 0;
done:
	free(prefix);
	cli_path_free(&p);
	return rc;
}

/* ---- verify ---- */

#define VERIFY_USAGE "ckpt verify PATH|ROOT [--json]"

typedef struct {
	const char *step_dir;
	uint64_t *nbad;
} verify_ctx;

static void verify_problem(const char *message, void *payload)
{
	verify_ctx *c = payload;

	(*c->nbad)++;
	fprintf(cli_json ? stderr : stdout, "BAD %s: %s\n", c->step_dir, message);
	fflush(stdout);
}

static int verify_one(const char *arg, uint64_t *nbad, uint64_t *nvals, uint64_t *nbytes,
		      uint64_t *nunchecked)
{
	const char *fmt;
	cli_path p;
	keylist kl = {0};
	char *prefix = NULL;
	ckpt_store *st;
	int rc = 0;

	if (cli_open_path(&p, arg))
		return 1;
	st = ckpt_step_store(p.step);
	prefix = path_prefix(&p);
	if (!prefix) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	if ((rc = keylist_load(&kl, st, prefix)) != 0)
		goto done;
	cli_progress_start("verify", sum_sizes(st, &kl, 1), "rchar");
	for (size_t i = 0; i < kl.n; i++) {
		ckpt_value *v = NULL;
		int e = ckpt_value_open(&v, st, kl.keys[i], strlen(kl.keys[i]));
		if (e == 0) {
			*nbytes += ckpt_value_get_info(v)->size;
			e = ckpt_value_verify(v);
		}
		ckpt_value_free(v);
		(*nvals)++;
		if (e < 0) {
			(*nbad)++;
			cli_progress_end(0);
			fprintf(cli_json ? stderr : stdout, "BAD %s/%s: %s\n", p.step_dir,
				kl.keys[i], ckpt_error_last());
			fflush(stdout);
		}
	}
	cli_progress_end(1);
	if (!p.item) { /* the whole step: do its keys and items agree? */
		verify_ctx c = {p.step_dir, nbad};
		if (ckpt_step_check_keys(p.step, verify_problem, &c, NULL) < 0)
			verify_problem(ckpt_error_last(), &c);
	}
	fmt = ckpt_step_dir_format(p.step_dir); /* an Orbax step checks what OCDBT records */
	if (fmt && strcmp(fmt, "ckpt") == 0 && !ckpt_store_index_checked(st)) {
		(*nunchecked)++;
		fprintf(stderr, "note: %s: index unchecked (written by format 1.0 or never sealed: "
				"no index checksum)\n",
			p.step_dir);
	}
done:
	keylist_free(&kl);
	free(prefix);
	cli_path_free(&p);
	return rc;
}

int cmd_verify(int argc, char **argv)
{
	uint64_t nbad = 0, nvals = 0, nbytes = 0, nunchecked = 0, *steps = NULL;
	size_t nsteps = 0;
	char sz[40];
	int a, rc;

	rc = cli_parse(&a, argc, argv, VERIFY_USAGE,
		       "Read every value of a step (or an item, subtree or leaf of it; or every\n"
		       "step of a ROOT) and check every chunk and value checksum, the index\n"
		       "checksum, and (for a whole step) that every leaf of every item has its\n"
		       "value and every value belongs to an item. Prints each bad leaf as\n"
		       "'BAD <step>/<key>: <reason>' and each disagreement as 'BAD <step>: ...';\n"
		       "exit 1 if any. An index without a checksum (format 1.0) is noted.\n",
		       NULL, NULL, NULL);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(VERIFY_USAGE, "expected one PATH");
	if (!cli_is_step_dir(argv[a]) && ckpt_root_steps(&steps, &nsteps, argv[a]) == 0 &&
	    nsteps > 0) {
		for (size_t i = 0; i < nsteps; i++) { /* a damaged step does not stop the rest */
			char dir[4096];
			snprintf(dir, sizeof(dir), "%s/%llu", argv[a],
				 (unsigned long long)steps[i]);
			if (verify_one(dir, &nbad, &nvals, &nbytes, &nunchecked) != 0)
				rc = 1;
		}
	} else {
		rc = verify_one(argv[a], &nbad, &nvals, &nbytes, &nunchecked);
	}
	free(steps);
	if (rc)
		return rc;
	if (cli_json)
		printf("{\"ok\": %s, \"values\": %llu, \"bad\": %llu, \"bytes\": %llu, "
		       "\"index_unchecked\": %llu}\n",
		       nbad ? "false" : "true", (unsigned long long)nvals, (unsigned long long)nbad,
		       (unsigned long long)nbytes, (unsigned long long)nunchecked);
	if (nbad)
		return cli_errorf("%llu problems (in %llu values) failed verification",
				  (unsigned long long)nbad, (unsigned long long)nvals);
	if (!cli_json)
		printf("ok: %llu values, %s verified\n", (unsigned long long)nvals,
		       cli_size_unit(sz, nbytes));
	return 0;
}
