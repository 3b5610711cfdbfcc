/*
 * cmd_du.c — `ckpt du ROOT|STEP`: sizes once steps share data.
 *
 * A step made by copying another through a mount (cp -r MNT/100 MNT/101)
 * or finalized from clone stubs shares the other step's data files (hard
 * links): `ckpt ls` and du(1) count them in both. For each step this
 * prints its raw size (the values' bytes), its stored size (its files on
 * disk), and how much of that is unique to it (files no other step links)
 * vs shared; the total counts each file once.
 *
 * Files are told apart by (device, inode): a file is shared when another
 * step of the root holds the same inode, or when it has more links than
 * the root's steps account for (linked from elsewhere).
 */
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"

typedef struct du_file {
	dev_t dev;
	ino_t ino;
	uint64_t size;
	nlink_t nlink;
	size_t step; /* index into the steps */
} du_file;

static struct {
	du_file *f;
	size_t n, cap;
	size_t step;
	int oom;
} dw;

static int du_walk(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type != FTW_F)
		return 0;
	if (dw.n == dw.cap) {
		size_t cap = dw.cap ? 2 * dw.cap : 256;
		du_file *f = realloc(dw.f, cap * sizeof(*f));
		if (!f) {
			dw.oom = 1;
			return 1;
		}
		dw.f = f;
		dw.cap = cap;
	}
	dw.f[dw.n++] =
	    (du_file){st->st_dev, st->st_ino, (uint64_t)st->st_size, st->st_nlink, dw.step};
	return 0;
}

static int by_inode(const void *a, const void *b)
{
	const du_file *x = a, *y = b;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->step < y->step ? -1 : x->step > y->step;
}

typedef struct du_row {
	uint64_t step, raw, stored, unique;
} du_row;

static int raw_cb(const void *name, size_t len, int is_prefix, void *payload)
{
	void **ctx = payload; /* {store, total} */
	ckpt_value_info info;
	if (ckpt_store_stat(&info, ctx[0], name, len) == 0)
		*(uint64_t *)ctx[1] += info.size;
	return 0;
}

/* The raw bytes of every value of the step dir. */
static int raw_size(uint64_t *out, const char *dir)
{
	ckpt_step *s = NULL;
	*out = 0;
	if (ckpt_step_open(&s, dir, NULL) < 0)
		return cli_fail();
	void *ctx[2] = {ckpt_step_store(s), out};
	int rc = ckpt_store_list(ctx[0], "", 0, -1, raw_cb, ctx);
	cli_step_close(s);
	return rc < 0 ? cli_fail() : 0;
}

#define DU_USAGE "ckpt du ROOT|STEP [--json] [--bytes]"

int cmd_du(int argc, char **argv)
{
	uint64_t *steps = NULL, only = 0, total_raw = 0, on_disk = 0;
	size_t n = 0;
	du_row *rows = NULL;
	char *root = NULL, dir[4096];
	int a, rc, one = 0;

	rc = cli_parse(&a, argc, argv, DU_USAGE,
		       "Sizes of the steps of a root (or of one step): raw (the values' bytes),\n"
		       "stored (its files on disk), unique to the step and shared with other\n"
		       "steps (data files a copied step links instead of copying); the total\n"
		       "counts each file once.\n",
		       NULL, NULL, NULL);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(DU_USAGE, "expected one ROOT or STEP");
	char *real = cli_real_path(argv[a]);
	if (!real)
		return cli_errorf("out of memory");
	if (cli_is_step_dir(real)) { /* one step: its root's other steps decide what is shared */
		char *slash = strrchr(real, '/');
		one = 1;
		if (cli_parse_u64(&only, slash ? slash + 1 : real, 0) < 0) {
			free(real);
			return cli_errorf("'%s' is a step directory not named by its number",
					  argv[a]);
		}
		if (slash)
			*slash = '\0';
		root = strdup(slash ? (real[0] ? real : "/") : ".");
		free(real);
		if (!root)
			return cli_errorf("out of memory");
	} else {
		free(real);
		if ((rc = cli_root_arg(&root, argv[a])) != 0)
			return rc;
	}
	if (ckpt_root_steps(&steps, &n, root) < 0) {
		rc = cli_fail();
		goto done;
	}
	if (!(rows = calloc(n ? n : 1, sizeof(*rows)))) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	memset(&dw, 0, sizeof(dw));
	for (size_t i = 0; i < n && rc == 0; i++) {
		snprintf(dir, sizeof(dir), "%s/%llu", root, (unsigned long long)steps[i]);
		rows[i].step = steps[i];
		dw.step = i;
		if (nftw(dir, du_walk, 16, FTW_PHYS) != 0 && dw.oom)
			rc = cli_errorf("out of memory");
		else if (!one || steps[i] == only)
			rc = raw_size(&rows[i].raw, dir);
	}
	if (rc)
		goto done;
	qsort(dw.f, dw.n, sizeof(*dw.f), by_inode);
	for (size_t i = 0, j; i < dw.n; i = j) {
		size_t nsteps = 0;
		for (j = i; j < dw.n && dw.f[j].dev == dw.f[i].dev && dw.f[j].ino == dw.f[i].ino;
		     j++)
			nsteps += j == i || dw.f[j].step != dw.f[j - 1].step;
		int shared = nsteps > 1 || dw.f[i].nlink > (nlink_t)(j - i);
		on_disk += dw.f[i].size;
		for (size_t k = i; k < j; k++) {
			rows[dw.f[k].step].stored += dw.f[k].size;
			if (!shared)
				rows[dw.f[k].step].unique += dw.f[k].size;
		}
	}
	if (one)
		on_disk = 0;
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		char r[32], s[32], u[32], sh[32];
		if (one && rows[i].step != only)
			continue;
		total_raw += rows[i].raw;
		if (one)
			on_disk += rows[i].stored;
		if (cli_json) {
			printf(
			    "%s{\"step\": %llu, \"raw\": %llu, \"stored\": %llu, \"unique\": %llu, "
			    "\"shared\": %llu}",
			    shown ? ",\n  " : "{\"steps\": [\n  ", (unsigned long long)rows[i].step,
			    (unsigned long long)rows[i].raw, (unsigned long long)rows[i].stored,
			    (unsigned long long)rows[i].unique,
			    (unsigned long long)(rows[i].stored - rows[i].unique));
		} else {
			if (!shown)
				printf("%-12s %12s %12s %12s %12s\n", "STEP", "RAW", "STORED",
				       "UNIQUE", "SHARED");
			printf("%-12llu %12s %12s %12s %12s\n", (unsigned long long)rows[i].step,
			       cli_size(r, rows[i].raw), cli_size(s, rows[i].stored),
			       cli_size(u, rows[i].unique),
			       cli_size(sh, rows[i].stored - rows[i].unique));
		}
		shown++;
	}
	if (one && !shown) {
		rc = cli_errorf("step %llu is not a finalized step of %s", (unsigned long long)only,
				root);
		goto done;
	}
	if (cli_json) {
		printf("%s], \"raw\": %llu, \"on_disk\": %llu}\n", shown ? "\n" : "{\"steps\": [",
		       (unsigned long long)total_raw, (unsigned long long)on_disk);
	} else if (!one) {
		char r[32], d[32];
		printf("%-12s %12s %12s   (%zu steps; shared files counted once)\n", "total",
		       cli_size(r, total_raw), cli_size(d, on_disk), n);
	}
done:
	free(dw.f);
	memset(&dw, 0, sizeof(dw));
	free(rows);
	free(steps);
	free(root);
	return rc;
}
