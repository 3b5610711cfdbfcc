/*
 * ckpt.c — the `ckpt` command line: global flags and subcommand dispatch.
 *
 *   ckpt [--json] [--bytes] [--io-stats] COMMAND [ARGS...]
 *
 * Exit status: 0 ok, 1 error ("ckpt: <message>" on stderr), 2 usage.
 * --io-stats prints, at exit, the process's /proc/self/io rchar and the
 * bytes read from data files by every store the command opened.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli_util.h"

#include <ckpt/sys/handler.h>

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
    {"save", cmd_save, "save an interchange directory as a new step"},
    {"restore", cmd_restore, "write a step, item or subtree as an interchange directory"},
    {"ls", cmd_ls, "list the steps of a root (finalized and pending)"},
    {"tree", cmd_tree, "items and leaves with dtype, shape and sizes"},
    {"meta", cmd_meta, "JSON metadata of a step, item or leaf"},
    {"cat", cmd_cat, "print a leaf's value (arrays numpy-style, summarised)"},
    {"get", cmd_get, "copy one leaf to a .npy/text file, or a subtree to a directory"},
    {"verify", cmd_verify, "read every value of a step and check every checksum"},
    {"finalize", cmd_finalize, "finalize a pending step"},
    {"rm", cmd_rm, "delete a step (or a pending temporary directory)"},
    {"gc", cmd_gc, "delete the steps a preservation policy does not keep"},
    {"wait", cmd_wait, "wait for a step newer than a given one (evaluators)"},
    {"export", cmd_export, "write a PyTree item as one .safetensors or .npz file"},
    {"mount", cmd_mount, "mount a root with ckptfs (same arguments as ckptfs)"},
    {"import", cmd_import, "save a .safetensors/.npz file or an Orbax step as a native step"},
    {"diff", cmd_diff, "compare two steps leaf by leaf (added, removed, changed, max diff)"},
    {"du", cmd_du, "sizes of steps: raw, stored, unique and shared with other steps"},
    {"status", cmd_status, "pending steps and the last errors of a mount (or a root)"},
    {"complete", cmd_complete, NULL}, /* for the shell's completion; not listed */
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: ckpt [--json] [--bytes] [--io-stats] [--handler-plugin LIB]... COMMAND [ARGS...]\n"
		   "       ckpt help COMMAND | ckpt COMMAND --help | ckpt --help | ckpt --version\n"
		   "\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (commands[i].summary)
			fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nA PATH is a step directory followed by an item and a path inside it,\n"
		   "e.g. runs/exp1/100/state/params/dense/kernel. See docs/cli.md.\n"
		   "\nHandler plugins (docs/handlers.md): --handler-plugin LIB (a .so file or a\n"
		   "directory of them) and the colon-separated list in $CKPT_HANDLER_PATH make\n"
		   "handlers written outside the library known by their type string.\n");
}

int main(int argc, char **argv)
{
	int i = 1, rc;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			printf("ckpt %s (format %d.%d)\n", CKPT_VERSION, CKPT_FORMAT_MAJOR,
			       CKPT_FORMAT_MINOR);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			cli_json = 1;
		} else if (!strcmp(argv[i], "--bytes")) {
			cli_bytes = 1;
		} else if (!strcmp(argv[i], "--io-stats")) {
			cli_io_stats = 1;
		} else if (!strcmp(argv[i], "--handler-plugin") ||
			   !strncmp(argv[i], "--handler-plugin=", 17)) {
			const char *lib = argv[i][16] == '=' ? argv[i] + 17
					  : i + 1 < argc   ? argv[++i]
							   : NULL;
			if (!lib) {
				fprintf(stderr, "ckpt: --handler-plugin needs a LIB\n");
				return 2;
			}
			if (ckpt_handler_plugin_load(lib) != 0)
				return cli_fail();
		} else {
			fprintf(stderr, "ckpt: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (ckpt_handler_plugin_load_path(NULL) != 0) {
		cli_errorf("CKPT_HANDLER_PATH: %s", ckpt_error_last());
		return 1;
	}
	if (i >= argc) {
		fprintf(stderr, "ckpt: no command given\n");
		usage(stderr);
		return 2;
	}
	/* `ckpt help [CMD]`: what `ckpt CMD --help` / `ckpt --help` print */
	char *help_argv[] = {argv[i + 1 < argc ? i + 1 : i], "--help", NULL};
	if (!strcmp(argv[i], "help")) {
		if (i + 1 >= argc) {
			usage(stdout);
			return 0;
		}
		argc = i + 2;
		argv = help_argv;
		i = 0;
	}
	for (size_t c = 0; c < NCOMMANDS; c++) {
		if (strcmp(argv[i], commands[c].name) != 0)
			continue;
		rc = commands[c].fn(argc - i, argv + i);
		if (rc < 0) /* --help */
			rc = 0;
		if (fflush(stdout) != 0 && rc == 0)
			rc = cli_errorf("writing output: %s", strerror(errno));
		if (cli_io_stats)
			fprintf(stderr, "io-stats: rchar=%llu bytes_read=%llu\n",
				(unsigned long long)cli_proc_io("rchar"),
				(unsigned long long)cli_store_bytes_read);
		return rc;
	}
	fprintf(stderr, "ckpt: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return 2;
}
