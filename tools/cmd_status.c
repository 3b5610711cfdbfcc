/*
 * cmd_status.c — `ckpt status MNT|ROOT`: where a checkpoint root stands and
 * why the last changes through its mount failed.
 *
 * For a ckptfs mount point it reads what the daemon publishes on the root
 * (user.ckpt.root: ROOT's path; user.ckpt.errors: its last log lines, as
 * MNT/.ckptfs-errors shows them) and on each pending step (user.ckpt.errors:
 * the lines naming that step); for a root, what is on disk. Pending steps
 * are listed with the command that finalizes them: a pending step looks
 * finished in the mount, and `latest` does not move until it is finalized.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "cli_util.h"

#define STATUS_USAGE "ckpt status MNT|ROOT [--json]"

/* An xattr's value, NUL-terminated (malloc'd), or NULL if absent. */
static char *xattr_get(const char *path, const char *name)
{
	ssize_t n = getxattr(path, name, NULL, 0);
	char *buf;
	if (n < 0 || !(buf = malloc((size_t)n + 1)))
		return NULL;
	n = getxattr(path, name, buf, (size_t)n);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Print log lines (one per line) indented, or as a JSON list of strings. */
static void print_lines(const char *text, const char *indent)
{
	const char *p = text ? text : "";
	int first = 1;
	if (cli_json)
		putchar('[');
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (cli_json) {
			char *line = strndup(p, len);
			printf("%s", first ? "" : ", ");
			cli_json_str(stdout, line ? line : "");
			free(line);
		} else {
			printf("%s%.*s\n", indent, (int)len, p);
		}
		first = 0;
		p += len + (nl != NULL);
	}
	if (cli_json)
		putchar(']');
}

int cmd_status(int argc, char **argv)
{
	uint64_t *steps = NULL;
	ckpt_pending_info *pend = NULL;
	size_t nsteps = 0, npend = 0;
	char *root = NULL, *errors = NULL, *log = NULL;
	const char *mnt = NULL;
	int a, rc;

	rc = cli_parse(&a, argc, argv, STATUS_USAGE,
		       "Where a checkpoint root stands: its finalized steps and latest, its\n"
		       "pending steps (with how to finalize them) and, for a ckptfs mount point,\n"
		       "why the last changes through the mount failed (the daemon's last log\n"
		       "lines, also in MNT/.ckptfs-errors).\n",
		       NULL, NULL, NULL);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(STATUS_USAGE, "expected one MNT or ROOT");
	if ((root = xattr_get(argv[a], "user.ckpt.root"))) {
		mnt = argv[a];
		errors = xattr_get(mnt, "user.ckpt.errors");
		log = xattr_get(mnt, "user.ckpt.log");
	} else if ((rc = cli_root_arg(&root, argv[a])) != 0) {
		return rc;
	}
	if (ckpt_root_steps(&steps, &nsteps, root) < 0 ||
	    ckpt_pending_list(&pend, &npend, root) < 0) {
		rc = cli_fail();
		goto done;
	}
	if (cli_json) {
		printf("{\"root\": ");
		cli_json_str(stdout, root);
		printf(", \"mount\": ");
		if (mnt)
			cli_json_str(stdout, mnt);
		else
			printf("null");
		printf(", \"log\": ");
		if (log)
			cli_json_str(stdout, log);
		else
			printf("null");
		printf(", \"steps\": %zu, \"latest\": ", nsteps);
		if (nsteps)
			printf("%llu", (unsigned long long)steps[nsteps - 1]);
		else
			printf("null");
		printf(", \"pending\": [");
	} else {
		printf("root:     %s\n", root);
		if (mnt)
			printf("mount:    %s\nlog:      %s\n", mnt, log ? log : "?");
		printf("steps:    %zu finalized", nsteps);
		if (nsteps)
			printf(", latest %llu", (unsigned long long)steps[nsteps - 1]);
		printf("\n");
	}
	for (size_t i = 0; i < npend; i++) {
		unsigned long long n = (unsigned long long)pend[i].step;
		char path[PATH_MAX];
		char *perr = NULL;
		if (mnt) {
			snprintf(path, sizeof(path), "%s/%llu", mnt, n);
			perr = xattr_get(path, "user.ckpt.errors");
		}
		if (cli_json) {
			printf("%s{\"step\": %llu, \"dir\": ", i ? ", " : "", n);
			cli_json_str(stdout, pend[i].dir);
			printf(", \"errors\": ");
			print_lines(perr, "");
			printf("}");
		} else {
			printf(
			    "pending:  %llu, not finalized (`latest` does not count it); finalize "
			    "it with ",
			    n);
			if (mnt)
				printf("setfattr -n user.ckpt.finalize -v 1 %s/%llu\n", mnt, n);
			else
				printf("ckpt finalize %s/%llu\n", root, n);
			if (perr && perr[0]) {
				printf("          refused changes to it:\n");
				print_lines(perr, "            ");
			}
		}
		free(perr);
	}
	if (cli_json) {
		printf("], \"errors\": ");
		print_lines(errors, "");
		printf("}\n");
	} else if (mnt) {
		if (errors && errors[0]) {
			printf("last errors (also in %s/.ckptfs-errors):\n", mnt);
			print_lines(errors, "  ");
		} else {
			printf("last errors: none\n");
		}
	}
done:
	free(steps);
	ckpt_pending_list_free(pend, npend);
	free(root);
	free(errors);
	free(log);
	return rc;
}
