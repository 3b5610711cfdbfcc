/*
 * cli_paths.c — what a user types for a path, made into a checkpoint path.
 *
 * Users point `ckpt` at what they have at hand: a path inside a ckptfs
 * mount (MNT/100/state/w), `latest` in place of a step number, or the wrong
 * level (a root where a step is wanted, a step where a root is). Here:
 *  - cli_real_path maps a path in a mount to the same path under the
 *    mount's ROOT (the daemon answers ROOT's path as the root's
 *    user.ckpt.root xattr) and `latest` after a root to its newest
 *    finalized step;
 *  - cli_root_arg takes a ROOT argument and refuses, naming what it found
 *    and what it expected, a step, a pending step or a directory that is no
 *    root;
 *  - cli_explain_not_step says the same for a path that holds no step.
 * All messages are printed here ("ckpt: ..."), exit status 1.
 */
#include "cli_util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#define ROOT_XATTR "user.ckpt.root"

/* The ROOT a mount's root directory `dir` shows, or NULL (malloc'd). */
static char *mount_root(const char *dir)
{
	char buf[PATH_MAX];
	ssize_t n = getxattr(dir[0] ? dir : "/", ROOT_XATTR, buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

/* s with its part [0, cut) replaced by head (malloc'd). */
static char *splice(const char *head, const char *s, size_t cut)
{
	char *out = NULL;
	if (asprintf(&out, "%s%s", head, s + cut) < 0)
		return NULL;
	return out;
}

/* Map a path in a ckptfs mount to the path under its ROOT; NULL if it is none. */
static char *unmount(const char *path)
{
	char *pre = strdup(path);
	char *out = NULL;
	if (!pre)
		return NULL;
	for (size_t len = strlen(pre);;) {
		char *root = mount_root(pre);
		if (root) {
			out = splice(root, path, len);
			free(root);
			break;
		}
		char *slash = strrchr(pre, '/');
		if (!slash)
			break;
		*slash = '\0';
		len = (size_t)(slash - pre);
	}
	free(pre);
	return out;
}

/* The newest finalized step of root in any naming: 0 and its directory name, or -1. */
static int newest_step(char *name, size_t cap, const char *root)
{
	ckpt_root_step *steps = NULL;
	size_t n = 0;
	int rc = -1;
	if (ckpt_root_step_dirs(&steps, &n, root[0] ? root : ".") == 0 && n > 0) {
		snprintf(name, cap, "%s", steps[n - 1].name);
		rc = 0;
	}
	ckpt_error_clear();
	free(steps);
	return rc;
}

char *cli_real_path(const char *arg)
{
	char *p = unmount(arg);
	if (!p && !(p = strdup(arg)))
		return NULL;
	/* `latest` after a root that has no such entry: its newest finalized step. */
	for (size_t off = 0; strstr(p + off, "latest");) {
		char *c = strstr(p + off, "latest"), num[CKPT_STEP_NAME_MAX], save = c[6];
		struct stat st;
		off = (size_t)(c - p) + 6; /* where to look next unless replaced */
		if ((c != p && c[-1] != '/') || (c[6] && c[6] != '/'))
			continue;
		c[6] = '\0';
		int exists = lstat(p, &st) == 0;
		c[6] = save;
		if (exists)
			continue;
		char *root = strndup(p, c > p ? (size_t)(c - p - 1) : 0);
		int found = root && newest_step(num, sizeof(num), root[0] || c == p ? root : "/") == 0;
		free(root);
		if (!found)
			continue;
		char *q = NULL;
		if (asprintf(&q, "%.*s%s%s", (int)(c - p), p, num, c + 6) < 0) {
			free(p);
			return NULL;
		}
		off = (size_t)(c - p) + strlen(num);
		free(p);
		p = q;
	}
	return p;
}

/* Some step numbers of root, "100, 200, ..., 900" (at most 3 + the newest). */
static void steps_text(char *buf, size_t cap, const ckpt_root_step *steps, size_t n)
{
	size_t pos = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && pos < cap; i++) {
		if (i == 3 && n > 4) {
			pos += (size_t)snprintf(buf + pos, cap - pos, ", ...");
			i = n - 1;
		}
		pos += (size_t)snprintf(buf + pos, cap - pos, "%s%s", i ? ", " : "", steps[i].name);
	}
}

/* The parent directory of path (malloc'd): "." for a bare name. */
static char *parent_of(const char *path)
{
	char *r = realpath(path, NULL);
	char *s = r ? strrchr(r, '/') : NULL;
	if (!s)
		return r;
	if (s == r)
		s[1] = '\0';
	else
		*s = '\0';
	return r;
}

/* A pending step's directory (ROOT/<n>.ckpt-tmp-<nonce>/ holding files/)? */
static int is_pending_dir(const char *dir)
{
	char buf[PATH_MAX];
	struct stat st;
	snprintf(buf, sizeof(buf), "%s/%s", dir, CKPT_PENDING_FILES);
	return strstr(dir, CKPT_TMP_INFIX) && stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A child directory of dir that is a root (has steps), into name; 0 if found. */
static int child_root(char *name, size_t cap, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = -1, seen = 0;
	while (d && found && seen++ < 200 && (e = readdir(d))) {
		char sub[PATH_MAX], newest[CKPT_STEP_NAME_MAX];
		if (e->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (newest_step(newest, sizeof(newest), sub) == 0) {
			snprintf(name, cap, "%s", e->d_name);
			found = 0;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * A prefix of path "ROOT/<n>" naming a pending step n of ROOT (no ROOT/<n>
 * on disk; the mount shows it there): 0 and *step, else -1.
 */
static int pending_on_path(uint64_t *step, const char *path)
{
	char *pre = strdup(path);
	int found = -1;
	for (char *s; found && pre && (s = strrchr(pre, '/'));) {
		ckpt_pending_info *list = NULL;
		size_t n = 0;
		*s = '\0';
		if (cli_parse_u64(step, s + 1, 0) != 0)
			continue;
		if (ckpt_pending_list(&list, &n, pre[0] ? pre : "/") == 0)
			for (size_t i = 0; i < n && found; i++)
				found = list[i].step == *step ? 0 : -1;
		ckpt_pending_list_free(list, n);
	}
	ckpt_error_clear();
	free(pre);
	return found;
}

int cli_explain_not_step(const char *arg, const char *path)
{
	ckpt_root_step *steps = NULL;
	size_t n = 0;
	char list[128], sub[256];
	struct stat st;

	uint64_t pend;
	if (pending_on_path(&pend, path) == 0)
		return cli_errorf(
		    "'%s': step %llu is pending (not finalized yet; `ckpt` reads "
		    "finalized steps): finalize it through the mount with setfattr -n "
		    "user.ckpt.finalize -v 1 MNT/%llu, or unmounted with ckpt finalize "
		    "ROOT/%llu",
		    arg, (unsigned long long)pend, (unsigned long long)pend,
		    (unsigned long long)pend);
	if (stat(path, &st) != 0) {
		/* `latest` left as it is: its root has no finalized step */
		const char *l = strstr(path, "/latest");
		if (l && (l[7] == '\0' || l[7] == '/'))
			return cli_errorf("'%s': no finalized step in %.*s for `latest`", arg,
					  (int)(l - path), path);
		return cli_errorf("%s: %s", arg, strerror(errno));
	}
	if (is_pending_dir(path))
		return cli_errorf("'%s' is a pending step (not finalized yet): finalize it with "
				  "`ckpt finalize %s` (or through its mount: setfattr -n "
				  "user.ckpt.finalize -v 1 MNT/<step>)",
				  arg, arg);
	if (S_ISDIR(st.st_mode) && ckpt_root_step_dirs(&steps, &n, path) == 0 && n > 0) {
		steps_text(list, sizeof(list), steps, n);
		cli_errorf("'%s' is a checkpoint root (steps %s), not a step: give a step, "
			   "e.g. %s/%s or %s/latest",
			   arg, list, arg, steps[n - 1].name, arg);
		free(steps);
		return 1;
	}
	ckpt_error_clear();
	free(steps);
	if (S_ISDIR(st.st_mode) && child_root(sub, sizeof(sub), path) == 0)
		return cli_errorf("'%s' holds checkpoint roots (such as %s), not steps: give a "
				  "step, e.g. %s/%s/latest",
				  arg, sub, arg, sub);
	return cli_errorf("'%s' is not in a checkpoint step (no directory with ckpt.db on the "
			  "path; expected ROOT/STEP[/ITEM[/PATH]])",
			  arg);
}

/*
 * Does dir hold something other than steps, temporary directories and
 * hidden files, and no temporary directory? (An empty directory is a root
 * without steps yet.)
 */
static int holds_no_checkpoint(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int other = 0, tmp = 0;
	while (d && !tmp && (e = readdir(d))) {
		uint64_t v;
		if (e->d_name[0] == '.')
			continue;
		if (strstr(e->d_name, CKPT_TMP_INFIX))
			tmp = 1;
		else if (cli_parse_u64(&v, e->d_name, 0) != 0)
			other = 1;
	}
	if (d)
		closedir(d);
	return other && !tmp;
}

/* The step directory path is inside (a leaf, an item), malloc'd; NULL if none. */
static char *step_above(const char *path)
{
	char *up = strdup(path);
	for (char *s; up && (s = strrchr(up, '/')) && s != up;) {
		*s = '\0';
		if (cli_is_step_dir(up))
			return up;
	}
	free(up);
	return NULL;
}

/* Refuse a step (or pending step) given as a root, naming its root. */
static int not_a_root(const char *arg, const char *path, const char *what)
{
	char *parent = parent_of(path);
	cli_errorf("'%s' is %s, not a checkpoint root: its root is %s", arg, what,
		   parent ? parent : "its parent directory");
	free(parent);
	return 1;
}

int cli_root_arg(char **out, const char *arg)
{
	char *path = cli_real_path(arg), *step = NULL;
	ckpt_root_step *steps = NULL;
	size_t n = 0;
	char sub[256];
	struct stat st;
	int rc = 1;

	*out = NULL;
	if (!path)
		return cli_errorf("out of memory");
	if ((step = step_above(path))) {
		rc = cli_errorf("'%s' is inside step %s, not a checkpoint root", arg, step);
		goto done;
	}
	uint64_t pend;
	if (stat(path, &st) != 0 && strrchr(path, '/') && pending_on_path(&pend, path) == 0) {
		/* a pending step seen in a mount: MNT/<n> has no ROOT/<n> on disk */
		*strrchr(path, '/') = '\0';
		rc = cli_errorf("'%s' is pending step %llu, not a checkpoint root: its root is %s",
				arg, (unsigned long long)pend, path);
		goto done;
	}
	if (stat(path, &st) != 0) {
		rc = cli_errorf("%s: %s", arg,
				errno == ENOENT ? "no such directory" : strerror(errno));
		goto done;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc =
		    cli_errorf("'%s' is a file, not a checkpoint root (a directory of steps)", arg);
		goto done;
	}
	if (cli_is_step_dir(path)) {
		rc = not_a_root(arg, path, "a step");
		goto done;
	}
	if (is_pending_dir(path)) {
		rc = not_a_root(arg, path, "a pending step");
		goto done;
	}
	if (ckpt_root_step_dirs(&steps, &n, path) == 0 && n == 0 && holds_no_checkpoint(path)) {
		if (child_root(sub, sizeof(sub), path) == 0)
			rc = cli_errorf("'%s' holds no steps, but holds checkpoint roots such as "
					"'%s/%s'",
					arg, arg, sub);
		else
			rc = cli_errorf("'%s' holds no steps (a checkpoint root holds step "
					"directories such as 100/ with ckpt.db)",
					arg);
		goto done;
	}
	ckpt_error_clear();
	*out = path;
	path = NULL;
	rc = 0;
done:
	free(step);
	free(steps);
	free(path);
	return rc;
}
