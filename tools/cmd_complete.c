/*
 * cmd_complete.c — `ckpt complete WORD` (not listed in the help): the shell
 * completion's source of paths inside a step (tools/ckpt-completion.bash).
 *
 * WORD is a partial path. When the part before its last '/' is a step
 * (ROOT/100, ROOT/latest, MNT/100) or an item or container node inside
 * one, prints each item or child whose name starts with the rest, one per
 * line, as WORD's directory part + name, with '/' after containers (arrays
 * without ".npy", as the CLI takes them). Anything else prints nothing, and
 * the shell falls back to file names. Never prints an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

/* Is some leading part of the real path of dir a step directory? */
static int under_step(const char *dir)
{
	char *p = cli_real_path(dir);
	int found = 0;
	for (char *s; p && !found;) {
		found = cli_is_step_dir(p);
		if (!(s = strrchr(p, '/')))
			break;
		*s = '\0';
	}
	free(p);
	return found;
}

static void emit(const char *dir, const char *name, size_t strip, int container)
{
	printf("%s/%.*s%s\n", dir, (int)(strlen(name) - strip), name, container ? "/" : "");
}

int cmd_complete(int argc, char **argv)
{
	cli_path p;
	const char *word = argc > 1 && strcmp(argv[1], "--") ? argv[1] : argc > 2 ? argv[2] : "";
	const char *slash = strrchr(word, '/');
	if (!slash || slash == word)
		return 0;
	char *dir = strndup(word, (size_t)(slash - word));
	const char *base = slash + 1;
	size_t blen = strlen(base);
	if (!dir || !under_step(dir) || !freopen("/dev/null", "w", stderr) ||
	    cli_open_path(&p, dir) != 0) {
		free(dir);
		return 0;
	}
	if (!p.item) {
		for (size_t i = 0; i < ckpt_step_item_count(p.step); i++) {
			const char *n = ckpt_step_item_name(p.step, i);
			if (!strncmp(n, base, blen))
				emit(dir, n, 0, 1);
		}
	} else if (p.node && ckpt_tree_is_container(p.node)) {
		for (size_t i = 0; i < ckpt_tree_count(p.node); i++) {
			const ckpt_tree *c = ckpt_tree_child(p.node, i);
			const char *n = ckpt_tree_name(c);
			size_t nl = strlen(n);
			int array = ckpt_tree_get_kind(c) == CKPT_TREE_ARRAY;
			size_t strip = array && nl > 4 && !strcmp(n + nl - 4, ".npy") ? 4 : 0;
			if (!strncmp(n, base, blen) && (nl - strip) >= blen)
				emit(dir, n, strip, ckpt_tree_is_container(c));
		}
	}
	cli_path_free(&p);
	free(dir);
	return 0;
}
