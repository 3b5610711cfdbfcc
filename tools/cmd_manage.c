/*
 * cmd_manage.c — what a CheckpointManager decides, from the command line:
 * `gc` (delete the steps a preservation policy does not keep), `wait` (for
 * a step newer than a given one), and the policy options and per-step
 * summaries that `gc` and `ls` share (cli_util.h).
 *
 * The decision is ckpt_preservation_apply(), the very function the manager
 * runs after each save, over summaries read from each step's
 * _CHECKPOINT_METADATA (commit time, metrics). Deletion is
 * ckpt_root_delete_step() (renamed away, then removed). The metadata comes
 * from the public API as JSON text; the metrics are read out of it with
 * cJSON, the JSON library libckpt itself links.
 *
 * Invariants:
 *  1. The newest finalized step is never deleted (as the manager does).
 *  2. Without a policy option nothing is deleted: gc refuses to run and ls
 *     marks nothing to delete.
 *  3. --dry-run deletes nothing and prints exactly what gc would delete.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli_util.h"

/* ---- policy options ---- */

static int parse_positive(uint64_t *out, const char *arg)
{
	return cli_parse_u64(out, arg, 0) < 0 || *out == 0 ? -1 : 0;
}

int cli_policy_opt(cli_policy *pol, int c, const char *arg)
{
	ckpt_preservation *p = &pol->p;
	uint64_t v = 0;

	switch (c) {
	case CLI_OPT_KEEP_LATEST:
		if (parse_positive(&v, arg) < 0 || v > UINT_MAX)
			return -1;
		p->latest_n = (unsigned)v;
		break;
	case CLI_OPT_KEEP_EVERY_STEPS:
		if (parse_positive(&v, arg) < 0)
			return -1;
		p->every_n_steps = v;
		break;
	case CLI_OPT_KEEP_EVERY_SECONDS:
		if (parse_positive(&v, arg) < 0 || v > INT64_MAX / 1000000000)
			return -1;
		p->every_n_seconds = (int64_t)v;
		break;
	case CLI_OPT_KEEP_BEST:
		if (parse_positive(&v, arg) < 0 || v > UINT_MAX)
			return -1;
		p->best_n = (unsigned)v;
		break;
	case CLI_OPT_METRIC:
		if (!arg[0])
			return -1;
		p->best_metric = arg;
		return 0;
	case CLI_OPT_MODE:
		if (strcmp(arg, "min") != 0 && strcmp(arg, "max") != 0)
			return -1;
		p->best_mode = arg[1] == 'a' ? CKPT_BEST_MAX : CKPT_BEST_MIN;
		return 0;
	case CLI_OPT_DROP_WITHOUT_METRIC: p->keep_without_metrics = 0; return 0;
	default: return -1;
	}
	pol->any = 1;
	return 0;
}

int cli_policy_check(cli_policy *pol, const char *usage)
{
	const ckpt_preservation *p = &pol->p;
	static const ckpt_preservation defaults = CKPT_PRESERVATION_INIT;

	if (p->best_n && !p->best_metric)
		return cli_usagef(usage, "--keep-best needs --metric NAME");
	if (!p->best_metric && (p->best_mode != defaults.best_mode ||
				p->keep_without_metrics != defaults.keep_without_metrics))
		return cli_usagef(usage, "--mode and --drop-without-metric need --metric NAME");
	return 0;
}

/* ---- per-step summaries ---- */

/* The step's metrics as JSON, as stored (for display; "{}" if none). */
static int read_metrics(cli_step_info *info, const char *meta_json)
{
	cJSON *meta = cJSON_Parse(meta_json ? meta_json : "{}");
	const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(meta, "metrics");

	info->metrics = cJSON_IsObject(metrics) ? cli_json_member_text(meta_json, "metrics") : NULL;
	if (!info->metrics)
		info->metrics = strdup("{}");
	cJSON_Delete(meta);
	return info->metrics ? 0 : cli_errorf("out of memory");
}

int cli_step_infos(cli_step_info **out, const char *root, const ckpt_root_step *steps, size_t n,
		   const cli_policy *pol)
{
	const char *metric = pol ? pol->p.best_metric : NULL;
	cli_step_info *infos = calloc(n ? n : 1, sizeof(*infos));
	ckpt_step_summary *sums = calloc(n ? n : 1, sizeof(*sums));
	int *keep = calloc(n ? n : 1, sizeof(*keep));
	char path[PATH_MAX];
	size_t best;
	int rc = 0, e;

	*out = NULL;
	if (!infos || !sums || !keep) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		ckpt_step *s = NULL;
		infos[i].sum.step = steps[i].step;
		infos[i].keep = 1;
		snprintf(path, sizeof(path), "%s/%s", root, steps[i].name);
		if (ckpt_step_open(&s, path, NULL) < 0) {
			fprintf(stderr, "ckpt: warning: %s\n", ckpt_error_last());
			infos[i].damaged = 1;
			rc = read_metrics(&infos[i], NULL);
		} else {
			ckpt_step_summarize(&infos[i].sum, s, steps[i].step, metric);
			rc = read_metrics(&infos[i], ckpt_step_metadata_json(s));
		}
		cli_step_close(s);
		sums[i] = infos[i].sum;
	}
	if (rc)
		goto done;
	if (pol && pol->any && n) {
		if (ckpt_preservation_apply(keep, sums, n, &pol->p) < 0) {
			rc = cli_fail();
			goto done;
		}
		for (size_t i = 0; i < n; i++)
			infos[i].keep = keep[i] || steps[i].step == steps[n - 1].step; /* invariant 1 */
	}
	if (metric && n) {
		size_t with = 0;
		for (size_t i = 0; i < n; i++)
			with += sums[i].has_metric != 0;
		if (!with) /* a typo (--metric los) would silently mark nothing best */
			fprintf(stderr,
				"ckpt: warning: no step has a number named '%s' in its metrics "
				"(the newest step's metrics: %s)\n",
				metric, infos[n - 1].metrics);
		e = ckpt_preservation_best(&best, sums, n, &pol->p);
		if (e == 0 && best < n)
			infos[best].best = 1;
		else if (e < 0 && e != CKPT_ENOTFOUND) {
			rc = cli_fail();
			goto done;
		}
	}
	*out = infos;
	infos = NULL;
done:
	cli_step_infos_free(infos, n);
	free(sums);
	free(keep);
	return rc;
}

void cli_step_infos_free(cli_step_info *infos, size_t n)
{
	if (!infos)
		return;
	for (size_t i = 0; i < n; i++)
		free(infos[i].metrics);
	free(infos);
}

/* ---- gc ---- */

#define GC_USAGE "ckpt gc ROOT POLICY... [--dry-run] [--json]"

typedef struct gc_opts {
	cli_policy pol;
	int dry_run;
} gc_opts;

enum { OPT_DRY_RUN = 'n', OPT_AFTER = 'a', OPT_TIMEOUT = 't' };

static int gc_opt(int c, const char *arg, void *payload)
{
	gc_opts *o = payload;

	if (c == OPT_DRY_RUN) {
		o->dry_run = 1;
		return 0;
	}
	return cli_policy_opt(&o->pol, c, arg);
}

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
	    CLI_POLICY_OPTIONS,
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {NULL, 0, NULL, 0},
	};
	gc_opts o = {CLI_POLICY_INIT, 0};
	cli_step_info *infos = NULL;
	ckpt_root_step *dirs = NULL;
	size_t n = 0, ndel = 0, removed = 0;
	char *root = NULL;
	int a, rc;

	rc = cli_parse(&a, argc, argv, GC_USAGE,
		       "Delete the finalized steps of ROOT that no given policy keeps (as a\n"
		       "CheckpointManager does after each save), then remove the temporary\n"
		       "directories of abandoned saves. The newest step is always kept.\n"
		       "Pending steps (ckptfs mkdir) are never touched.\n"
		       "  -n, --dry-run            print what would be deleted, delete nothing\n"
		       "  --json                   {\"deleted\": [...], \"kept\": [...], "
		       "\"dry_run\": ...}\n" CLI_POLICY_HELP,
		       opts, gc_opt, &o);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(GC_USAGE, "expected one ROOT");
	if ((rc = cli_policy_check(&o.pol, GC_USAGE)) != 0)
		return rc;
	if (!o.pol.any)
		return cli_usagef(GC_USAGE, "no policy given (--keep-latest, --keep-best, ...)");
	if ((rc = cli_root_arg(&root, argv[a])) != 0)
		return rc;
	/* every naming: plain, zero-padded, "<prefix>_<n>" (Orbax's step_prefix) */
	if (ckpt_root_step_dirs(&dirs, &n, root) < 0) {
		rc = cli_fail();
		goto done;
	}
	if ((rc = cli_step_infos(&infos, root, dirs, n, &o.pol)) != 0)
		goto done;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (infos[i].keep)
			continue;
		if (!o.dry_run && ckpt_root_delete_step_dir(root, dirs[i].name) < 0) {
			rc = cli_fail();
			break;
		}
		ndel++;
		if (!cli_json)
			printf("%s step %s\n", o.dry_run ? "would delete" : "deleted", dirs[i].name);
	}
	if (rc == 0 && !o.dry_run && ckpt_root_cleanup(root, &removed) < 0)
		rc = cli_fail();
	if (rc)
		goto done;
	if (cli_json) {
		for (int kept = 0; kept <= 1; kept++) {
			int first = 1;
			printf("%s\"%s\": [", kept ? ", " : "{", kept ? "kept" : "deleted");
			for (size_t i = 0; i < n; i++) {
				if (infos[i].keep != kept)
					continue;
				printf("%s%llu", first ? "" : ", ", (unsigned long long)dirs[i].step);
				first = 0;
			}
			printf("]");
		}
		printf(", \"dry_run\": %s, \"removed_tmp\": %zu}\n", o.dry_run ? "true" : "false",
		       removed);
	} else {
		printf("%s %zu of %zu steps", o.dry_run ? "would keep" : "kept", n - ndel, n);
		if (removed)
			printf("; removed %zu abandoned temporary director%s", removed,
			       removed == 1 ? "y" : "ies");
		printf("\n");
	}
done:
	cli_step_infos_free(infos, n);
	free(dirs);
	free(root);
	return rc;
}

/* ---- wait ---- */

#define WAIT_USAGE "ckpt wait ROOT [--after STEP] [--timeout SECONDS] [--json]"

typedef struct wait_opts {
	int64_t after;
	int timeout_ms;
} wait_opts;

static int wait_opt(int c, const char *arg, void *payload)
{
	wait_opts *o = payload;
	uint64_t v;
	char *end;
	double s;

	if (c == OPT_AFTER) {
		if (cli_parse_u64(&v, arg, 0) < 0 || v > INT64_MAX)
			return -1;
		o->after = (int64_t)v;
		return 0;
	}
	errno = 0;
	s = strtod(arg, &end);
	if (errno || end == arg || *end || !(s >= 0) || s > INT_MAX / 1000)
		return -1;
	o->timeout_ms = (int)(s * 1000);
	return 0;
}

int cmd_wait(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"after", required_argument, NULL, OPT_AFTER},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {NULL, 0, NULL, 0},
	};
	wait_opts o = {-1, -1};
	uint64_t step;
	int a, rc;

	rc = cli_parse(
	    &a, argc, argv, WAIT_USAGE,
	    "Wait until ROOT has a finalized step newer than STEP (any step without\n"
	    "--after) and print the newest step. For evaluators that follow a\n"
	    "training run: inotify on ROOT, polling where inotify is unavailable.\n"
	    "  -a, --after STEP         a step newer than this one\n"
	    "  -t, --timeout SECONDS    give up after this long (exit 1; default: never)\n",
	    opts, wait_opt, &o);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(WAIT_USAGE, "expected one ROOT");
	rc = ckpt_root_wait_for_step(&step, argv[a], o.after, o.timeout_ms);
	if (rc == CKPT_EBUSY && o.after >= 0)
		return cli_errorf("timeout: no step newer than %lld in %s after %.3g s",
				  (long long)o.after, argv[a], o.timeout_ms / 1000.0);
	if (rc == CKPT_EBUSY)
		return cli_errorf("timeout: no step in %s after %.3g s", argv[a],
				  o.timeout_ms / 1000.0);
	if (rc < 0)
		return cli_fail();
	if (cli_json)
		printf("{\"step\": %llu}\n", (unsigned long long)step);
	else
		printf("%llu\n", (unsigned long long)step);
	return 0;
}
