/*
 * cli_util.h — what the `ckpt` subcommands share.
 *
 * Design: every subcommand is `int cmd_X(int argc, char **argv)` returning the
 * process exit status (0 ok, 1 error, 2 usage). Errors are printed once, as
 * "ckpt: <message>", by the function that gives up (cli_fail / cli_errorf).
 *
 * A path into a checkpoint ("runs/exp1/100/state/params/dense/kernel") is
 * resolved by cli_open_path(): the step directory is the longest leading part
 * that is a directory containing ckpt.db; the next component is the item; the
 * rest is the path inside the item (ckpt_tree_lookup, ".npy" optional).
 *
 * Invariants:
 *  1. Only the public libckpt API is used (<ckpt/ckpt.h>).
 *  2. Every step opened goes through cli_path_free()/cli_step_close(), which
 *     adds the store's bytes read to the --io-stats total.
 *  3. Data goes to stdout, messages and the progress bar to stderr.
 */
#ifndef CKPT_CLI_UTIL_H
#define CKPT_CLI_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include <ckpt/ckpt.h>

/* Global flags (set by main or by any subcommand's option parser). */
extern int cli_json;		      /* --json: machine-readable output */
extern int cli_bytes;		      /* --bytes: exact byte counts even on a TTY */
extern int cli_io_stats;	      /* --io-stats: print rchar and store bytes read at exit */
extern uint64_t cli_store_bytes_read; /* data-file bytes read by the stores closed so far */

/* Print "ckpt: <ckpt_error_last()>" and return 1. */
int cli_fail(void);
/* Print "ckpt: <message>" and return 1. */
int cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "ckpt: <message>" and the command's usage line; return 2. */
int cli_usagef(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Option parsing shared by the subcommands: getopt_long over argv with the
 * common flags (--json, --bytes, --io-stats, --help) handled here. `opts`
 * is a getopt_long table of the command's own options (ending in a zero
 * row), `on_opt` is called for each of them. Returns 0 and sets *first_arg
 * to the index of the first positional argument, or the exit status to
 * return (0 after --help, 2 for a usage error).
 */
struct option;
typedef int (*cli_opt_cb)(int c, const char *arg, void *payload);
int cli_parse(int *first_arg, int argc, char **argv, const char *usage, const char *help,
	      const struct option *opts, cli_opt_cb on_opt, void *payload);

/* Parse an unsigned decimal number (with optional K/M/G suffix if allow_suffix). */
int cli_parse_u64(uint64_t *out, const char *s, int allow_suffix);

/* A size for humans ("1.5 MiB") on a TTY, exact bytes otherwise or with --bytes. */
const char *cli_size(char buf[32], uint64_t n);
/* The same with a unit always: "1.5 MiB" or "1572864 bytes" (for messages). */
const char *cli_size_unit(char buf[40], uint64_t n);

/*
 * The text of the top-level member `key` of the JSON object text js, as
 * written (cJSON would re-print numbers: 2.3000000000000003 as 2.3), or
 * NULL (absent, or out of memory). Keys are matched as written (a key
 * spelled with escapes is not found). js should be valid JSON; any text is
 * read only up to its end. malloc'd.
 */
char *cli_json_member_text(const char *js, const char *key);

/* A tree node kind's name: "dict", "array", "int", ... */
const char *cli_kind_name(ckpt_tree_kind k);
/* An array's shape numpy-style, "(2, 3)", "(5,)", "()", or as JSON "[2, 3]". */
void cli_shape_text(char *buf, size_t cap, const ckpt_tree *t, int json);

/*
 * Write the JSON text js to f indented by two spaces per level, a newline
 * at the end; every token is written as it is (numbers keep their digits).
 */
void cli_json_pretty(FILE *f, const char *js);

/* Write s as a JSON string (quoted, escaped) to f. */
void cli_json_str(FILE *f, const char *s);

/* A resolved path into a checkpoint. */
typedef struct cli_path {
	char *step_dir; /* directory containing ckpt.db */
	char *item;	/* NULL for the whole step */
	char *inner;	/* path inside the item, NULL for the whole item */
	ckpt_step *step;
	const ckpt_tree *tree; /* the item's metadata tree (NULL if not a PyTree item) */
	const ckpt_tree *node; /* the node `inner` names in tree (tree itself if no inner) */
} cli_path;

/*
 * Resolve `arg` and open its step. An item/inner path must name an existing
 * item (and node, in a PyTree item); for items whose tree is unavailable
 * (not PyTrees), tree and node stay NULL and inner is kept for raw-key
 * access. Prints the error and returns 1 on failure (p is then empty).
 */
int cli_open_path(cli_path *p, const char *arg);
/*
 * What a user typed, as a checkpoint path (cli_paths.c): a path inside a
 * ckptfs mount becomes the same path under its ROOT, and `latest` after a
 * root that has no entry of that name becomes its newest finalized step.
 * Returns a malloc'd path, or NULL when out of memory.
 */
char *cli_real_path(const char *arg);
/*
 * A ROOT argument (ls, gc, verify of a root, status): *out the real path
 * (malloc'd). A step, a pending step, a path inside a step or a directory
 * holding neither steps nor temporary directories is refused, naming what
 * it is and what to give instead. Returns 0, or 1 with the message printed.
 */
int cli_root_arg(char **out, const char *arg);
/* Print why the path `path` (typed as arg) holds no step; returns 1. */
int cli_explain_not_step(const char *arg, const char *path);
/* Is dir a step directory (holds ckpt.db)? */
int cli_is_step_dir(const char *dir);
void cli_path_free(cli_path *p);
void cli_step_close(ckpt_step *s);

/* Store key of an item's node: "<item>/<path>" (malloc'd). */
char *cli_key(const char *item, const char *path);
/*
 * A raw key holding a whole .npy file (Array and JAX key items): *out a
 * metadata-only array of its dtype and shape (ckpt_tree_free), *data_off
 * where its data starts. 0 if the key does not end in ".npy" (*out NULL);
 * 1 (message printed) if its header is bad or not C-order little-endian.
 */
int cli_raw_npy(ckpt_tree **out, uint64_t *data_off, ckpt_value *v, const char *key);

/*
 * An array's elements read as doubles (cli_array.c): from a leaf (or a raw
 * .npy value), data starting at byte data_off of its file. Complex dtypes
 * give two doubles (real, imaginary) per element.
 */
typedef struct cli_array {
	ckpt_leaf *leaf;   /* borrowed; or */
	ckpt_value *value; /* borrowed */
	uint64_t data_off;
	ckpt_dtype dt;
	const char *name; /* for messages */
} cli_array;
/* Elements [first, first + count) into out (count or 2 * count doubles). 0 or 1 (printed). */
int cli_array_doubles(const cli_array *a, uint64_t first, size_t count, double *out);

/* Sum of the sizes of regular files under dir (0 if it does not exist). */
uint64_t cli_du(const char *dir);
/* Remove a directory tree. Returns 0 or -errno. */
int cli_rmtree(const char *dir);

/* /proc/self/io counters (0 if unavailable). */
uint64_t cli_proc_io(const char *field);

/*
 * Progress bar on stderr (only if stderr is a TTY): a thread redraws it
 * every 100 ms from the growth of /proc/self/io `field` ("rchar" or
 * "wchar") against `total` bytes. Label is borrowed until cli_progress_end.
 */
void cli_progress_start(const char *label, uint64_t total, const char *field);
/* Stop the bar: completed (ok) or cleared (failure). */
void cli_progress_end(int ok);

/*
 * Before `ckpt save` of dir (cmd_save_check.c): every path must be one a
 * step holds (ckpt_pending_check_path, the mount's rule): the others are an
 * error listing them, or with skip_extra a note; hidden files are left out
 * with a note; _CHECKPOINT_METADATA keys a step does not keep are an error.
 * Returns 0 or 1 (message printed).
 */
int cli_save_check(const char *dir, int skip_extra);
/*
 * The metrics to save: dir/_CHECKPOINT_METADATA's, then the members of json
 * (--metrics), then each "NAME=VALUE" of kv (--metric; VALUE as JSON if it
 * parses, else a string), each as written (every digit kept). *out NULL
 * when no flag was given (the library reads the file's), else malloc'd.
 * Returns 0 or 1 (message printed).
 */
int cli_save_metrics(char **out, const char *dir, const char *json, char *const *kv, size_t nkv);

/* Subcommands. */
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_tree(int argc, char **argv);
int cmd_meta(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_finalize(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
/* `ckpt import` of a directory source, an Orbax step (cmd_import.c). */
int cmd_import_orbax(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_du(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_complete(int argc, char **argv);

/*
 * Preservation policy options shared by `gc` and `ls` (cmd_manage.c):
 * --keep-latest N, --keep-every-steps N, --keep-every-seconds N, --keep-best N
 * --metric NAME [--mode min|max] [--drop-without-metric]. Put
 * CLI_POLICY_OPTIONS in a getopt_long table and pass the option codes
 * CLI_OPT_KEEP_LATEST.. to cli_policy_opt().
 */
typedef struct cli_policy {
	ckpt_preservation p; /* best_metric borrowed from argv */
	int any;	     /* some policy option was given */
} cli_policy;
enum {
	CLI_OPT_KEEP_LATEST = 1100,
	CLI_OPT_KEEP_EVERY_STEPS,
	CLI_OPT_KEEP_EVERY_SECONDS,
	CLI_OPT_KEEP_BEST,
	CLI_OPT_METRIC,
	CLI_OPT_MODE,
	CLI_OPT_DROP_WITHOUT_METRIC,
	CLI_OPT_POLICY_END
};
/* clang-format off */
#define CLI_POLICY_INIT {CKPT_PRESERVATION_INIT, 0}
#define CLI_POLICY_OPTIONS                                                                     \
	{"keep-latest", required_argument, NULL, CLI_OPT_KEEP_LATEST},                         \
	{"keep-every-steps", required_argument, NULL, CLI_OPT_KEEP_EVERY_STEPS},               \
	{"keep-every-seconds", required_argument, NULL, CLI_OPT_KEEP_EVERY_SECONDS},           \
	{"keep-best", required_argument, NULL, CLI_OPT_KEEP_BEST},                             \
	{"metric", required_argument, NULL, CLI_OPT_METRIC},                                   \
	{"mode", required_argument, NULL, CLI_OPT_MODE},                                       \
	{"drop-without-metric", no_argument, NULL, CLI_OPT_DROP_WITHOUT_METRIC}
/* clang-format on */
#define CLI_POLICY_HELP                                                                            \
	"Policy (a step is kept if any given policy keeps it; never the newest step):\n"           \
	"  --keep-latest N          the newest N steps\n"                                          \
	"  --keep-every-steps N     steps divisible by N\n"                                        \
	"  --keep-every-seconds N   the first step of every N seconds of commit time\n"            \
	"  --keep-best N --metric NAME [--mode min|max]\n"                                         \
	"                           the N best steps by metrics.NAME (default mode: min)\n"        \
	"  --drop-without-metric    steps without the metric are left to the other policies\n"     \
	"                           (default: they are kept)\n"
/* Handle one policy option (CLI_OPT_KEEP_LATEST <= c < CLI_OPT_POLICY_END); non-zero: bad value. */
int cli_policy_opt(cli_policy *pol, int c, const char *arg);
/* Check the options once parsed (prints a usage error and returns 2, else 0). */
int cli_policy_check(cli_policy *pol, const char *usage);

/* Per finalized step of a root: what `ls` and `gc` show and decide on. */
typedef struct cli_step_info {
	ckpt_step_summary sum; /* step, commit time, the policy's metric */
	char *metrics;	       /* compact JSON of the step's metrics ("{}" if none; malloc'd) */
	int damaged;	       /* the step's index cannot be opened (warning printed) */
	int keep;	       /* the policy keeps it (1 when no policy is given) */
	int best;	       /* the best step by the policy's metric */
} cli_step_info;
/*
 * Open each of the n finalized steps of root (ckpt_root_step_dirs, ascending)
 * and fill infos[i] (caller frees with cli_step_infos_free), then apply pol
 * (may be NULL or empty: every step kept). Returns 0 or the exit status
 * (message printed).
 */
int cli_step_infos(cli_step_info **out, const char *root, const ckpt_root_step *steps, size_t n,
		   const cli_policy *pol);
void cli_step_infos_free(cli_step_info *infos, size_t n);

#endif
