/*
 * cli_util.c — option parsing, path resolution, sizes, JSON strings and the
 * progress bar shared by the `ckpt` subcommands (see cli_util.h).
 */
#include "cli_util.h"

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_json;
int cli_bytes;
int cli_io_stats;
uint64_t cli_store_bytes_read;

int cli_fail(void)
{
	const char *m = ckpt_error_last();
	fprintf(stderr, "ckpt: %s\n", m[0] ? m : "unknown error");
	return 1;
}

int cli_errorf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ckpt: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return 1;
}

int cli_usagef(const char *usage, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ckpt: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	va_end(ap);
	return 2;
}

enum { OPT_JSON = 1001, OPT_BYTES, OPT_IO_STATS };

int cli_parse(int *first_arg, int argc, char **argv, const char *usage, const char *help,
	      const struct option *opts, cli_opt_cb on_opt, void *payload)
{
	static const struct option common[] = {
	    {"json", no_argument, NULL, OPT_JSON},
	    {"bytes", no_argument, NULL, OPT_BYTES},
	    {"io-stats", no_argument, NULL, OPT_IO_STATS},
	    {"help", no_argument, NULL, 'h'},
	};
	struct option all[32];
	char shorts[64] = "h";
	size_t n = 0, ns = 1;

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		all[n++] = common[i];
	for (size_t i = 0; opts && opts[i].name && n + 1 < sizeof(all) / sizeof(all[0]); i++) {
		all[n++] = opts[i];
		if (opts[i].val > 0 && opts[i].val < 128 && isalpha(opts[i].val) &&
		    ns + 3 < sizeof(shorts)) {
			shorts[ns++] = (char)opts[i].val;
			if (opts[i].has_arg == required_argument)
				shorts[ns++] = ':';
		}
	}
	memset(&all[n], 0, sizeof(all[n]));
	shorts[ns] = '\0';

	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, shorts, all, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_JSON: cli_json = 1; break;
		case OPT_BYTES: cli_bytes = 1; break;
		case OPT_IO_STATS: cli_io_stats = 1; break;
		case 'h': printf("usage: %s\n%s", usage, help); return -1;
		case '?':
		case ':':
			if (optopt)
				return cli_usagef(usage, "bad or incomplete option '-%c'", optopt);
			return cli_usagef(usage, "bad or incomplete option '%s'", argv[optind - 1]);
		default:
			if (on_opt(c, optarg, payload) != 0) {
				const char *name = "?";
				for (size_t i = 0; i < n; i++)
					if (all[i].val == c)
						name = all[i].name;
				return cli_usagef(usage, "bad value '%s' for option --%s",
						  optarg ? optarg : "", name);
			}
		}
	}
	*first_arg = optind;
	return 0;
}

int cli_parse_u64(uint64_t *out, const char *s, int allow_suffix)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (allow_suffix && *end) {
		unsigned shift = 0;
		switch (toupper((unsigned char)*end)) {
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		default: return -1;
		}
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (v > (UINT64_MAX >> shift))
			return -1;
		v <<= shift;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

const char *cli_size(char buf[32], uint64_t n)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	unsigned u = 0;

	if (cli_bytes || !isatty(STDOUT_FILENO) || n < 1024) {
		snprintf(buf, 32, "%llu", (unsigned long long)n);
		return buf;
	}
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, 32, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

const char *cli_size_unit(char buf[40], uint64_t n)
{
	char tmp[32];
	const char *s = cli_size(tmp, n);

	snprintf(buf, 40, "%s%s", s, strchr(s, ' ') ? "" : " bytes");
	return buf;
}




/* ---- trees ---- */

const char *cli_kind_name(ckpt_tree_kind k)
{
	switch (k) {
	case CKPT_TREE_DICT: return "dict";
	case CKPT_TREE_LIST: return "list";
	case CKPT_TREE_TUPLE: return "tuple";
	case CKPT_TREE_NAMEDTUPLE: return "namedtuple";
	case CKPT_TREE_NONE: return "none";
	case CKPT_TREE_ARRAY: return "array";
	case CKPT_TREE_INT: return "int";
	case CKPT_TREE_FLOAT: return "float";
	case CKPT_TREE_BOOL: return "bool";
	case CKPT_TREE_STRING: return "string";
	}
	return "?";
}

/* numpy-style shape "(2, 3)", "(5,)", "()". */
void cli_shape_text(char *buf, size_t cap, const ckpt_tree *t, int json)
{
	unsigned nd = ckpt_tree_ndim(t);
	const uint64_t *sh = ckpt_tree_shape(t);
	size_t n = (size_t)snprintf(buf, cap, "%s", json ? "[" : "(");

	for (unsigned i = 0; i < nd && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? ", " : "",
				      (unsigned long long)sh[i]);
	if (n < cap)
		snprintf(buf + n, cap - n, "%s%s", !json && nd == 1 ? "," : "", json ? "]" : ")");
}

/* ---- paths ---- */

int cli_is_step_dir(const char *dir)
{
	char buf[4096];
	struct stat st;

	if (snprintf(buf, sizeof(buf), "%s/ckpt.db", dir[0] ? dir : ".") >= (int)sizeof(buf))
		return 0;
	return (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) || ckpt_step_dir_format(dir[0] ? dir : ".") != NULL;
}

char *cli_key(const char *item, const char *path)
{
	size_t n = strlen(item) + (path ? strlen(path) : 0) + 2;
	char *k = malloc(n);

	if (!k)
		return NULL;
	if (path && path[0])
		snprintf(k, n, "%s/%s", item, path);
	else
		snprintf(k, n, "%s", item);
	return k;
}

void cli_step_close(ckpt_step *s)
{
	if (!s)
		return;
	cli_store_bytes_read += ckpt_store_bytes_read(ckpt_step_store(s));
	ckpt_step_free(s);
}

void cli_path_free(cli_path *p)
{
	cli_step_close(p->step);
	free(p->step_dir);
	free(p->item);
	free(p->inner);
	memset(p, 0, sizeof(*p));
}

/* cli_open_path of arg, the real path of what the user typed (shown, for messages). */
static int open_path(cli_path *p, const char *shown, const char *arg)
{
	char *dir = NULL, *rest = NULL;
	size_t len = strlen(arg);
	size_t idx;
	int rc;

	memset(p, 0, sizeof(*p));
	while (len > 1 && arg[len - 1] == '/')
		len--;
	dir = strndup(arg, len);
	if (!dir)
		return cli_errorf("out of memory");
	/* Longest leading part that is a step directory. */
	for (;;) {
		char *slash;
		if (cli_is_step_dir(dir))
			break;
		slash = strrchr(dir, '/');
		if (!slash || slash == dir) {
			free(dir);
			return cli_explain_not_step(shown, arg);
		}
		*slash = '\0';
	}
	p->step_dir = dir;
	if (strlen(dir) < len) {
		const char *r = arg + strlen(dir);
		while (*r == '/')
			r++;
		rest = strndup(r, (size_t)(arg + len - r));
		if (!rest)
			goto nomem;
		char *slash = strchr(rest, '/');
		if (slash) {
			*slash = '\0';
			p->inner = strdup(slash + 1);
			if (!p->inner)
				goto nomem;
		}
		p->item = rest;
		rest = NULL;
	}
	rc = ckpt_step_open(&p->step, p->step_dir, NULL);
	if (rc < 0) {
		cli_fail();
		goto fail;
	}
	if (!p->item)
		return 0;
	if (ckpt_step_item_find(&idx, p->step, p->item) < 0) {
		cli_errorf("no item '%s' in step %s", p->item, p->step_dir);
		goto fail;
	}
	if (ckpt_step_item_tree(&p->tree, p->step, p->item) < 0) {
		/* Not a PyTree item: raw keys only. */
		p->tree = NULL;
		ckpt_error_clear();
		return 0;
	}
	p->node = p->tree;
	if (p->inner && p->inner[0]) {
		ckpt_tree *node;
		if (ckpt_tree_lookup(&node, p->tree, p->inner) < 0) {
			/* The library's message adds something only below the item's top. */
			if (strchr(p->inner, '/'))
				cli_errorf("no '%s' in item '%s' of step %s: %s", p->inner, p->item,
					   p->step_dir, ckpt_error_last());
			else
				cli_errorf("no '%s' in item '%s' of step %s", p->inner, p->item,
					   p->step_dir);
			goto fail;
		}
		p->node = node;
	}
	return 0;
nomem:
	cli_errorf("out of memory");
fail:
	free(rest);
	cli_path_free(p);
	return 1;
}

int cli_open_path(cli_path *p, const char *arg)
{
	char *real = cli_real_path(arg);
	int rc;
	if (!real) {
		memset(p, 0, sizeof(*p));
		return cli_errorf("out of memory");
	}
	rc = open_path(p, arg, real);
	free(real);
	return rc;
}

/* ---- files ---- */

static uint64_t du_total;

static int du_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_F)
		du_total += (uint64_t)st->st_size;
	return 0;
}

uint64_t cli_du(const char *dir)
{
	du_total = 0;
	nftw(dir, du_cb, 16, FTW_PHYS);
	return du_total;
}

static int rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
	return rc < 0 ? -errno : 0;
}

int cli_rmtree(const char *dir)
{
	int rc = nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return rc > 0 ? -rc : (rc < 0 ? -errno : 0);
}

uint64_t cli_proc_io(const char *field)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	size_t n = strlen(field);
	uint64_t v = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtoull(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* ---- progress bar ---- */

static struct {
	pthread_t thread;
	int running;
	atomic_int stop;
	const char *label;
	const char *field;
	uint64_t total, base;
} prog;

static void progress_draw(int final)
{
	uint64_t done = cli_proc_io(prog.field) - prog.base;
	char a[32], b[32];
	int width = 30, filled;
	double frac;

	if (final || done > prog.total)
		done = prog.total;
	frac = prog.total ? (double)done / (double)prog.total : 1.0;
	if (!final && frac > 0.99)
		frac = 0.99;
	filled = (int)(frac * width);
	snprintf(a, sizeof(a), "%.1f", (double)done / (1 << 20));
	snprintf(b, sizeof(b), "%.1f", (double)prog.total / (1 << 20));
	fprintf(stderr, "\r%s [%.*s%*s] %3d%% %s/%s MiB%s", prog.label, filled,
		"##############################", width - filled, "", (int)(frac * 100), a, b,
		final ? "\n" : "");
	fflush(stderr);
}

static void *progress_main(void *arg)
{
	struct timespec ts = {0, 100 * 1000 * 1000};

	while (!atomic_load(&prog.stop)) {
		progress_draw(0);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

void cli_progress_start(const char *label, uint64_t total, const char *field)
{
	if (prog.running || !isatty(STDERR_FILENO))
		return;
	prog.label = label;
	prog.field = field;
	prog.total = total;
	prog.base = cli_proc_io(field);
	atomic_store(&prog.stop, 0);
	if (pthread_create(&prog.thread, NULL, progress_main, NULL) == 0)
		prog.running = 1;
}

void cli_progress_end(int ok)
{
	if (!prog.running)
		return;
	atomic_store(&prog.stop, 1);
	pthread_join(prog.thread, NULL);
	prog.running = 0;
	if (ok)
		progress_draw(1);
	else
		fputs("\r\033[K", stderr);
}

int cli_raw_npy(ckpt_tree **out, uint64_t *data_off, ckpt_value *v, const char *key)
{
	ckpt_npy_header h;
	size_t klen = strlen(key);

	*out = NULL;
	*data_off = 0;
	if (klen < 4 || strcmp(key + klen - 4, ".npy") != 0)
		return 0;
	if (ckpt_array_value_header(&h, v, key) < 0)
		return cli_fail();
	if (h.fortran_order || h.big_endian)
		return cli_errorf("%s: a Fortran-order or big-endian .npy; read it with np.load",
				  key);
	if (ckpt_tree_new_array(out, h.dtype, h.ndim, h.shape, NULL, CKPT_TREE_BORROW) < 0)
		return cli_fail();
	*data_off = h.header_len;
	return 0;
}
