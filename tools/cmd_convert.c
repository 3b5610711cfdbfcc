/*
 * cmd_convert.c — conversions by copying: `ckpt export` and `ckpt import`.
 *
 *   ckpt export ROOT/STEP[/ITEM] OUT.safetensors|OUT.npz [--format F] [--sep C]
 *   ckpt import FILE ROOT STEP [--item NAME] [--sep C|none] [--format F] ...
 *
 * Both are thin wrappers of the library (ckpt/safetensors.h, ckpt/npz.h),
 * which writes atomically; the format comes from the file name's suffix
 * unless --format says. `ckpt import` picks by source: a directory is an
 * Orbax step (cmd_import_orbax, cmd_import.c), a file is imported here.
 * Progress bars follow /proc/self/io (cli_progress).
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"

enum fmt { FMT_NONE = 0, FMT_SAFETENSORS, FMT_NPZ };

static enum fmt fmt_parse(const char *s)
{
	if (!strcmp(s, "safetensors"))
		return FMT_SAFETENSORS;
	if (!strcmp(s, "npz"))
		return FMT_NPZ;
	return FMT_NONE;
}

static int has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n > k && !strcmp(s + n - k, suf);
}

static enum fmt fmt_of_name(const char *path)
{
	if (has_suffix(path, ".safetensors"))
		return FMT_SAFETENSORS;
	if (has_suffix(path, ".npz"))
		return FMT_NPZ;
	return FMT_NONE;
}

struct conv_opts {
	enum fmt fmt;
	const char *item;
	ckpt_safetensors_options st;
	ckpt_step_writer_options w;
};

static int conv_opt(int c, const char *arg, void *payload)
{
	struct conv_opts *o = payload;
	switch (c) {
	case 'F':
		return (o->fmt = fmt_parse(arg)) == FMT_NONE ? -1 : 0;
	case 's':
		if (!strcmp(arg, "none"))
			o->st.sep = 0;
		else if (strlen(arg) == 1)
			o->st.sep = arg[0];
		else
			return -1;
		return 0;
	case 'i': o->item = arg; return 0;
	case 'f': o->w.force = 1; return 0;
	case 'n': o->w.store.compression_level = 0; return 0;
	}
	return -1;
}

/* ---- export ---- */

#define EXPORT_USAGE "ckpt export ROOT/STEP[/ITEM] OUT.safetensors|OUT.npz [--format F] [--sep C]"

/* The item to export: the one named, else the step's only PyTree item. */
static const char *export_item(const cli_path *p)
{
	const char *found = NULL;
	size_t n = 0;
	if (p->item)
		return p->item;
	for (size_t i = 0; i < ckpt_step_item_count(p->step); i++) {
		const ckpt_tree *t;
		const char *name = ckpt_step_item_name(p->step, i);
		if (ckpt_step_item_tree(&t, p->step, name) == 0) {
			found = name;
			n++;
		}
	}
	ckpt_error_clear();
	if (n == 1)
		return found;
	cli_errorf("%s: %s; name one: %s/ITEM", p->step_dir,
		   n ? "the step has several PyTree items" : "the step has no PyTree item",
		   p->step_dir);
	return NULL;
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'F'},
	    {"sep", required_argument, NULL, 's'},
	    {0},
	};
	struct conv_opts o = {.st = CKPT_SAFETENSORS_OPTIONS_INIT};
	cli_path p;
	int a, rc;

	rc = cli_parse(&a, argc, argv, EXPORT_USAGE,
		       "Write a PyTree item of a step as one safetensors or .npz file (atomically).\n"
		       "Without ITEM the step must hold exactly one PyTree item.\n"
		       "  --format F   safetensors or npz (default: from OUT's suffix)\n"
		       "  --sep C      joins the keys of a leaf's path into its tensor name\n"
		       "               (default '.', as Hugging Face checkpoints)\n"
		       "Leaves the format cannot hold are listed in the file (docs/convert.md).\n",
		       opts, conv_opt, &o);
	if (rc)
		return rc;
	if (argc - a != 2)
		return cli_usagef(EXPORT_USAGE, "expected a step or item path and OUT");
	const char *out = argv[a + 1];
	if (o.fmt == FMT_NONE && (o.fmt = fmt_of_name(out)) == FMT_NONE)
		return cli_usagef(EXPORT_USAGE, "%s: name ends in neither .safetensors nor .npz; "
				  "give --format", out);
	if (cli_open_path(&p, argv[a]))
		return 1;
	const char *item = export_item(&p);
	if (!item) {
		rc = 1;
		goto done;
	}
	if (p.inner) {
		rc = cli_usagef(EXPORT_USAGE, "export takes a whole item, not a path inside it");
		goto done;
	}
	ckpt_safetensors *f = NULL;
	uint64_t total = 0;
	size_t left = 0;
	if (ckpt_safetensors_open(&f, p.step, item, &o.st) == 0)
		total = ckpt_safetensors_size(f);
	ckpt_safetensors_free(f);
	ckpt_error_clear();
	cli_progress_start("export", total, "wchar");
	if (o.fmt == FMT_SAFETENSORS)
		rc = ckpt_safetensors_export(p.step, item, out, &o.st);
	else
		rc = ckpt_npz_export(p.step, item, out, &o.st, &left);
	cli_progress_end(rc == 0);
	if (rc == 0 && left)
		fprintf(stderr, "ckpt: %s: %zu scalar or string leaves left out (.npz holds arrays)\n",
			out, left);
	rc = rc < 0 ? cli_fail() : 0;
done:
	cli_path_free(&p);
	return rc;
}

/* ---- import ---- */

#define IMPORT_USAGE                                                                               \
	"ckpt import FILE.safetensors|FILE.npz ROOT STEP [--item NAME] [--sep C|none] "            \
	"[--format F] [--force] [--no-compress]\n"                                                 \
	"       ckpt import ORBAX_STEP ROOT STEP [--force] [--no-compress] [--level N]"

/* The item's default name: the file's base name without its suffix. */
static char *default_item(const char *file)
{
	const char *b = strrchr(file, '/');
	b = b ? b + 1 : file;
	const char *dot = strrchr(b, '.');
	return strndup(b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
}

static int import_file(const char *file, const char *root, uint64_t step, struct conv_opts *o)
{
	char *item = o->item ? strdup(o->item) : default_item(file);
	struct stat st;
	int rc;

	if (!item)
		return cli_errorf("out of memory");
	if (o->fmt == FMT_NONE && (o->fmt = fmt_of_name(file)) == FMT_NONE) {
		free(item);
		return cli_usagef(IMPORT_USAGE, "%s: name ends in neither .safetensors nor .npz; "
				  "give --format", file);
	}
	cli_progress_start("import", stat(file, &st) == 0 ? (uint64_t)st.st_size : 0, "rchar");
	if (o->fmt == FMT_SAFETENSORS)
		rc = ckpt_safetensors_import(root, step, item, file, &o->st, &o->w);
	else
		rc = ckpt_npz_import(root, step, item, file, &o->st, &o->w);
	cli_progress_end(rc == 0);
	if (rc == 0)
		printf("imported %s as item %s of step %s/%llu\n", file, item, root,
		       (unsigned long long)step);
	free(item);
	return rc < 0 ? cli_fail() : 0;
}

/*
 * The source argument: the first argument that is neither an option nor the
 * value of one (options with a value: --item, --sep, --format, --level, -l).
 */
static const char *source_arg(int argc, char **argv)
{
	static const char *const with_value[] = {"--item", "--sep", "--format", "--level", "-l"};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (argv[i][0] != '-' || !argv[i][1])
			return argv[i];
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			if (!strcmp(argv[i], with_value[k]))
				i++;
	}
	return NULL;
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'F'},
	    {"sep", required_argument, NULL, 's'},
	    {"item", required_argument, NULL, 'i'},
	    {"force", no_argument, NULL, 'f'},
	    {"no-compress", no_argument, NULL, 'n'},
	    {0},
	};
	struct conv_opts o = {.st = CKPT_SAFETENSORS_OPTIONS_INIT,
			      .w = CKPT_STEP_WRITER_OPTIONS_INIT};
	const char *src = source_arg(argc, argv);
	uint64_t step;
	struct stat st;
	int a, rc;

	/* a directory source is an Orbax step: its own command (cmd_import.c) */
	if (src && stat(src, &st) == 0 && S_ISDIR(st.st_mode))
		return cmd_import_orbax(argc, argv);
	rc = cli_parse(&a, argc, argv, IMPORT_USAGE,
		       "Save a safetensors or .npz file as step STEP of ROOT with one PyTree item\n"
		       "(atomically, like `ckpt save`). A directory source is an Orbax step\n"
		       "(see `ckpt import ORBAX_STEP --help`, docs/cli.md).\n"
		       "  --item NAME     the item's name (default: FILE's name without suffix)\n"
		       "  --sep C|none    splits tensor names into the tree's keys: with '.',\n"
		       "                  a.b.c becomes a/b/c (default '.'; none: flat)\n"
		       "  --format F      safetensors or npz (default: from FILE's suffix)\n"
		       "  -f, --force     replace an existing step\n"
		       "  -n, --no-compress  store chunks raw\n",
		       opts, conv_opt, &o);
	if (rc)
		return rc;
	if (argc - a != 3)
		return cli_usagef(IMPORT_USAGE, "expected FILE ROOT STEP");
	if (cli_parse_u64(&step, argv[a + 2], 0) < 0)
		return cli_usagef(IMPORT_USAGE, "STEP must be a non-negative integer, not '%s'",
				  argv[a + 2]);
	if (stat(argv[a], &st) != 0)
		return cli_errorf("%s: no such file", argv[a]);
	return import_file(argv[a], argv[a + 1], step, &o);
}
