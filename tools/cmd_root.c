/*
 * cmd_root.c — commands on a checkpoint root: ls, rm, finalize, mount.
 *
 * A root holds finalized steps (ROOT/<n>) and temporary directories
 * ROOT/<n>.ckpt-tmp-<nonce>: pending steps (holding files/, ckpt/pending.h:
 * written through a mount, waiting for finalize) and saves in progress or
 * abandoned ("saving"; cleanup removes the abandoned ones). ls shows all
 * three; rm deletes a finalized step with ckpt_root_delete_step, a pending
 * step with ckpt_pending_remove, and an abandoned save's directory itself;
 * finalize finalizes a pending step (ckpt_pending_finalize). ls also shows
 * each step's metrics and, given a preservation policy (the options of
 * `ckpt gc`, cmd_manage.c), the best step and the steps gc would delete.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"

enum { FINAL = 0, PENDING = 1, SAVING = 2 };

static const char *state_name(int pending, int damaged)
{
	return pending == PENDING ? "pending"
	       : pending	  ? "saving"
	       : damaged	  ? "damaged"
				  : "finalized";
}

typedef struct ls_row {
	uint64_t step;
	int pending; /* a temporary directory: PENDING (files/) or SAVING */
	int damaged;
	int64_t time_ns; /* commit time (finalized) or directory mtime (pending) */
	uint64_t size;
	const cli_step_info *info; /* finalized steps: metrics, best, keep (borrowed) */
	char name[256];
} ls_row;

static int row_cmp(const void *a, const void *b)
{
	const ls_row *x = a, *y = b;

	if (x->step != y->step)
		return x->step < y->step ? -1 : 1;
	if (x->pending != y->pending)
		return x->pending - y->pending;
	return strcmp(x->name, y->name); /* two namings of one step ("7", "ckpt_7") */
}

static void fmt_time(char *buf, size_t cap, int64_t ns, int utc)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (ns <= 0) {
		snprintf(buf, cap, "-");
		return;
	}
	if (utc)
		gmtime_r(&t, &tm);
	else
		localtime_r(&t, &tm);
	strftime(buf, cap, utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm);
}

/* "123.ckpt-tmp-xyz" -> 123; -1 if the name is not a temporary directory. */
static int parse_tmp_name(uint64_t *step, const char *name)
{
	const char *infix = strstr(name, CKPT_TMP_INFIX);
	char num[32];
	size_t n;

	if (!infix || infix == name || (n = (size_t)(infix - name)) >= sizeof(num))
		return -1;
	memcpy(num, name, n);
	num[n] = '\0';
	return cli_parse_u64(step, num, 0);
}

#define LS_USAGE "ckpt ls ROOT [POLICY...] [--json] [--bytes]"

static int ls_opt(int c, const char *arg, void *payload)
{
	return cli_policy_opt(payload, c, arg);
}

int cmd_ls(int argc, char **argv)
{
	ckpt_root_step *dirs = NULL;
	ckpt_pending_info *pend = NULL;
	size_t nsteps = 0, npend = 0, nrows = 0, cap = 0;
	ls_row *rows = NULL;
	static const struct option opts[] = {CLI_POLICY_OPTIONS, {NULL, 0, NULL, 0}};
	cli_policy pol = CLI_POLICY_INIT;
	cli_step_info *infos = NULL;
	DIR *d = NULL;
	struct dirent *de;
	char *root = NULL;
	char path[PATH_MAX];
	int a, rc;

	rc = cli_parse(
	    &a, argc, argv, LS_USAGE,
	    "List the steps of a checkpoint root: step, state (finalized; pending:\n"
	    "written through a mount, waiting for `ckpt finalize`; saving: a save in\n"
	    "progress or abandoned), commit time, size on disk, and the step's metrics\n"
	    "(compact JSON). With --metric the best step is marked `best`; with a policy\n"
	    "the steps `ckpt gc` would delete are marked `to-delete`.\n" CLI_POLICY_HELP,
	    opts, ls_opt, &pol);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(LS_USAGE, "expected one ROOT");
	if ((rc = cli_policy_check(&pol, LS_USAGE)) != 0)
		return rc;
	if ((rc = cli_root_arg(&root, argv[a])) != 0)
		return rc;
	/* every naming: plain, zero-padded, "<prefix>_<n>" (Orbax's step_prefix) */
	if (ckpt_root_step_dirs(&dirs, &nsteps, root) < 0 ||
	    ckpt_pending_list(&pend, &npend, root) < 0) {
		rc = cli_fail();
		goto done;
	}
	if ((rc = cli_step_infos(&infos, root, dirs, nsteps, &pol)) != 0)
		goto done;
	d = opendir(root);
	if (!d) {
		rc = cli_errorf("%s: %s", root, strerror(errno));
		goto done;
	}
	for (size_t i = 0;; i++) {
		ls_row r = {0};
		if (i < nsteps) {
			r.step = dirs[i].step;
			r.info = &infos[i];
			r.damaged = infos[i].damaged;
			r.time_ns = infos[i].sum.commit_time_ns;
			snprintf(r.name, sizeof(r.name), "%s", dirs[i].name);
			snprintf(path, sizeof(path), "%s/%s", root, r.name);
		} else {
			struct stat st;
			if (!(de = readdir(d)))
				break;
			if (parse_tmp_name(&r.step, de->d_name) < 0)
				continue;
			snprintf(r.name, sizeof(r.name), "%s", de->d_name);
			snprintf(path, sizeof(path), "%s/%s", root, r.name);
			if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			r.pending = SAVING;
			for (size_t j = 0; j < npend; j++)
				if (strcmp(pend[j].dir, path) == 0)
					r.pending = PENDING;
			r.time_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		}
		r.size = cli_du(path);
		if (nrows == cap) {
			ls_row *nr = realloc(rows, (cap = cap ? 2 * cap : 16) * sizeof(*rows));
			if (!nr) {
				rc = cli_errorf("out of memory");
				goto done;
			}
			rows = nr;
		}
		rows[nrows++] = r;
	}
	if (nrows) /* qsort(NULL, 0) is undefined */
		qsort(rows, nrows, sizeof(*rows), row_cmp);
	if (cli_json) {
		printf("[");
		for (size_t i = 0; i < nrows; i++) {
			char t[64];
			fmt_time(t, sizeof(t), rows[i].time_ns, 1);
			printf("%s\n  {\"step\": %llu, \"state\": \"%s\", \"name\": ", i ? "," : "",
			       (unsigned long long)rows[i].step,
			       state_name(rows[i].pending, rows[i].damaged));
			cli_json_str(stdout, rows[i].name);
			printf(", \"%s\": %lld, \"time\": \"%s\", \"size\": %llu",
			       rows[i].pending ? "mtime_ns" : "commit_time_ns",
			       (long long)rows[i].time_ns, t, (unsigned long long)rows[i].size);
			if (rows[i].info)
				printf(", \"metrics\": %s, \"best\": %s, \"to_delete\": %s",
				       rows[i].info->metrics, rows[i].info->best ? "true" : "false",
				       rows[i].info->keep ? "false" : "true");
			printf("}");
		}
		printf("%s]\n", nrows ? "\n" : "");
		goto done;
	}
	/* the last column: metrics of a step, the directory name of a temporary directory */
	printf("%-12s %-10s %-20s %12s  %s%s\n", "STEP", "STATE", "COMMITTED", "SIZE",
	       pol.any || pol.p.best_metric ? "MARK       " : "", "METRICS");
	for (size_t i = 0; i < nrows; i++) {
		const cli_step_info *info = rows[i].info;
		const char *mark = !info	 ? ""
				   : !info->keep ? "to-delete"
				   : info->best	 ? "best"
						 : "";
		char t[64], sz[32], step[32];
		fmt_time(t, sizeof(t), rows[i].pending ? 0 : rows[i].time_ns, 0);
		snprintf(step, sizeof(step), "%llu", (unsigned long long)rows[i].step);
		/* a finalized step by its directory's name: "7", or Orbax's "ckpt_0000007" */
		printf("%-12s %-10s %-20s %12s  ", rows[i].pending ? step : rows[i].name,
		       state_name(rows[i].pending, rows[i].damaged), t, cli_size(sz, rows[i].size));
		if (pol.any || pol.p.best_metric)
			printf("%-11s", mark);
		printf("%s\n", info ? info->metrics : rows[i].name);
	}
done:
	if (d)
		closedir(d);
	free(rows);
	cli_step_infos_free(infos, nsteps);
	free(dirs);
	ckpt_pending_list_free(pend, npend);
	free(root);
	return rc;
}

/* Split "ROOT/NAME" into root and last component (both into caller buffers). */
static int split_step_path(char *root, char *name, const char *arg)
{
	size_t len = strlen(arg);
	const char *slash;

	while (len > 1 && arg[len - 1] == '/')
		len--;
	if (len == 0 || len >= PATH_MAX)
		return -1;
	memcpy(root, arg, len);
	root[len] = '\0';
	slash = strrchr(root, '/');
	if (!slash) {
		snprintf(name, 256, "%s", root);
		strcpy(root, ".");
	} else {
		if (strlen(slash + 1) >= 256)
			return -1;
		snprintf(name, 256, "%s", slash + 1);
		if (slash == root)
			root[1] = '\0';
		else
			root[slash - root] = '\0';
	}
	return name[0] ? 0 : -1;
}

/* Is path one of the pending steps of root? (-1 on error, message printed) */
static int is_pending(const char *root, const char *path)
{
	ckpt_pending_info *pend = NULL;
	size_t n = 0;
	int found = 0;

	if (ckpt_pending_list(&pend, &n, root) < 0)
		return -cli_fail();
	for (size_t i = 0; i < n && !found; i++)
		found = strcmp(pend[i].dir, path) == 0;
	ckpt_pending_list_free(pend, n);
	return found;
}

/*
 * Remove the temporary directories of `step` (only the one named `only` if
 * not NULL): pending steps with ckpt_pending_remove (refused while a mount
 * or a finalize holds them), abandoned saves directly.
 */
static int rm_tmp(const char *root, const char *only, uint64_t step, int *count)
{
	DIR *d = opendir(root);
	struct dirent *de;
	char path[PATH_MAX];
	uint64_t s;
	int rc = 0;

	*count = 0;
	if (!d)
		return cli_errorf("%s: %s", root, strerror(errno));
	while (rc == 0 && (de = readdir(d))) {
		if (parse_tmp_name(&s, de->d_name) < 0 || s != step)
			continue;
		if (only && strcmp(only, de->d_name) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
		int pending = is_pending(root, path), e;
		if (pending < 0)
			rc = 1;
		else if (pending && ckpt_pending_remove(path, -1) < 0)
			rc = cli_fail();
		else if (!pending && (e = cli_rmtree(path)) < 0)
			rc = cli_errorf("remove %s: %s", path, strerror(-e));
		else
			(*count)++;
	}
	closedir(d);
	return rc;
}

#define RM_USAGE "ckpt rm ROOT/STEP | ROOT/STEP.ckpt-tmp-NONCE"

int cmd_rm(int argc, char **argv)
{
	char root[PATH_MAX], name[256], path[PATH_MAX + 256];
	uint64_t step;
	struct stat st;
	int a, rc, count = 0;

	rc = cli_parse(&a, argc, argv, RM_USAGE,
		       "Delete a finalized step (atomically: renamed away, then removed), a\n"
		       "pending step (refused while a ckptfs mount or a finalize uses it), or an\n"
		       "abandoned save's temporary directory. ROOT/STEP of a step that is not\n"
		       "finalized removes its pending and temporary directories.\n",
		       NULL, NULL, NULL);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(RM_USAGE, "expected one ROOT/STEP");
	if (split_step_path(root, name, argv[a]) < 0)
		return cli_usagef(RM_USAGE, "bad step path '%s'", argv[a]);
	if (parse_tmp_name(&step, name) == 0) {
		snprintf(path, sizeof(path), "%s/%s", root, name);
		if (lstat(path, &st) < 0)
			return cli_errorf("%s: %s", path, strerror(errno));
		return rm_tmp(root, name, step, &count);
	}
	/* any naming: "7", "0000007", "ckpt_7" (Orbax's step_prefix) */
	if (!ckpt_step_dir_name_any(&step, name))
		return cli_errorf("'%s' is not a step (ROOT/<number> or ROOT/<prefix>_<number>)",
				  argv[a]);
	snprintf(path, sizeof(path), "%s/%s", root, name);
	if (lstat(path, &st) == 0)
		return ckpt_root_delete_step_dir(root, name) < 0 ? cli_fail() : 0;
	if ((rc = rm_tmp(root, NULL, step, &count)) != 0)
		return rc;
	if (count == 0)
		return cli_errorf("no step %s in %s", name, root);
	return 0;
}

#define FINALIZE_USAGE "ckpt finalize ROOT/STEP | ROOT/STEP.ckpt-tmp-NONCE"

int cmd_finalize(int argc, char **argv)
{
	char root[PATH_MAX], name[256], path[PATH_MAX + 256];
	ckpt_pending_info *pend = NULL;
	const char *dir = NULL;
	size_t n = 0, found = 0;
	uint64_t step;
	struct stat st;
	int a, rc, named;

	rc = cli_parse(&a, argc, argv, FINALIZE_USAGE,
		       "Finalize a pending step (one started by mkdir on a ckptfs mount, or\n"
		       "left pending by an unmount): its files become the step ROOT/STEP.\n"
		       "A file that does not parse fails the finalize and the step stays\n"
		       "pending: fix the file (e.g. on the mount) and finalize again.\n",
		       NULL, NULL, NULL);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(FINALIZE_USAGE, "expected one ROOT/STEP");
	if (split_step_path(root, name, argv[a]) < 0)
		return cli_usagef(FINALIZE_USAGE, "bad step path '%s'", argv[a]);
	named = parse_tmp_name(&step, name) == 0;
	if (!named && cli_parse_u64(&step, name, 0) < 0)
		return cli_usagef(FINALIZE_USAGE, "bad step path '%s'", argv[a]);
	snprintf(path, sizeof(path), "%s/%llu", root, (unsigned long long)step);
	if (!named && stat(path, &st) == 0 && cli_is_step_dir(path)) {
		printf("step %llu is already finalized\n", (unsigned long long)step);
		return 0;
	}
	if (ckpt_pending_list(&pend, &n, root) < 0)
		return cli_fail();
	snprintf(path, sizeof(path), "%s/%s", root, name);
	for (size_t i = 0; i < n; i++) {
		if (pend[i].step != step || (named && strcmp(pend[i].dir, path) != 0))
			continue;
		dir = pend[i].dir;
		found++;
	}
	if (found == 0)
		rc = cli_errorf("no pending step %s in %s", name, root);
	else if (found > 1)
		rc = cli_errorf("step %llu has %zu pending directories in %s: name one "
				"(ROOT/STEP.ckpt-tmp-NONCE, see ckpt ls)",
				(unsigned long long)step, found, root);
	else if ((rc = ckpt_pending_finalize(dir, -1, NULL)) == CKPT_EBUSY)
		rc = cli_errorf("%s; if a ckptfs mount holds it, finalize it there: setfattr -n "
				"user.ckpt.finalize -v 1 MNT/%llu (or unmount, then run this again)",
				ckpt_error_last(), (unsigned long long)step);
	else if (rc < 0)
		rc = cli_fail();
	else
		printf("finalized step %llu\n", (unsigned long long)step);
	ckpt_pending_list_free(pend, n);
	return rc;
}

int cmd_mount(int argc, char **argv)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 8);

	argv[0] = "ckptfs";
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			strcpy(slash + 1, "ckptfs");
			if (access(exe, X_OK) == 0) {
				execv(exe, argv);
				return cli_errorf("exec %s: %s", exe, strerror(errno));
			}
		}
	}
	execvp("ckptfs", argv);
	return cli_errorf("exec ckptfs: %s (not next to ckpt, nor on PATH)", strerror(errno));
}
