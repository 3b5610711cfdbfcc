/*
 * handler_plugin.c — loading handler plugins (ckpt/sys/handler.h): shared
 * objects whose ckpt_handler_plugin_init registers handler types in the
 * table of handler_types.c.
 *
 * Design: dlopen(RTLD_NOW | RTLD_LOCAL) resolves the plugin's calls into
 * libckpt against the program (which exports the API) at once, so a plugin
 * built for another library fails to load instead of failing later. The
 * init is called with CKPT_HANDLER_PLUGIN_ABI; the plugin checks it.
 *
 * Invariants:
 *   1. A plugin whose init was called is never dlclose()d: the types it
 *      registered point into it. One that failed before (no init function)
 *      is closed.
 *   2. A file is initialised at most once per process: its real path is
 *      remembered once init succeeded (under mu, held across the whole
 *      load, so two threads loading one file do not both run its init).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt/sys/handler.h"
#include "error_private.h"
#include "fsutil.h"

struct loaded {
	char *path; /* realpath */
	struct loaded *next;
};
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct loaded *loaded; /* mu; never freed */

static int is_loaded(const char *real)
{
	for (const struct loaded *l = loaded; l; l = l->next)
		if (!strcmp(l->path, real))
			return 1;
	return 0;
}

/* Load one shared object (mu held). */
static int load_file(const char *path)
{
	char real[PATH_MAX];
	ckpt_handler_plugin_init_fn init;
	struct loaded *l;
	void *dl;
	int rc;

	if (!realpath(path, real))
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"handler plugin %s", path);
	if (is_loaded(real))
		return 0;
	dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		return ckpt_error_set(CKPT_EINVAL, "handler plugin %s: %s", path, dlerror());
	dlerror();
	*(void **)&init = dlsym(dl, CKPT_HANDLER_PLUGIN_INIT_NAME);
	if (!init) {
		const char *why = dlerror();
		rc = ckpt_error_set(CKPT_EINVAL, "handler plugin %s: no function %s (%s)", path,
				    CKPT_HANDLER_PLUGIN_INIT_NAME, why ? why : "NULL");
		dlclose(dl); /* invariant 1: no init called */
		return rc;
	}
	ckpt_error_clear();
	rc = init(CKPT_HANDLER_PLUGIN_ABI);
	if (rc) {
		char *msg = strdup(ckpt_error_last()); /* the next set overwrites it */
		rc = ckpt_error_set(rc < 0 ? rc : CKPT_ERROR,
				    "handler plugin %s: %s failed (ABI version %u): %s", path,
				    CKPT_HANDLER_PLUGIN_INIT_NAME, CKPT_HANDLER_PLUGIN_ABI,
				    msg && msg[0] ? msg : ckpt_error_name(rc));
		free(msg);
		return rc;
	}
	if (!(l = malloc(sizeof(*l))) || !(l->path = strdup(real))) {
		free(l);
		return ckpt_error_nomem();
	}
	l->next = loaded;
	loaded = l;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.so file of dir, in name order (mu held). */
static int load_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d)
		return ckpt_error_errno(CKPT_EIO, errno, "handler plugin directory %s", dir);
	while (rc == 0 && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len <= 3 || strcmp(e->d_name + len - 3, ".so"))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? 2 * cap : 8) * sizeof(*nn));
			if (!nn) {
				rc = ckpt_error_nomem();
				break;
			}
			names = nn;
		}
		if (!(names[n] = ckpt_asprintf("%s/%s", dir, e->d_name)))
			rc = ckpt_error_nomem();
		else
			n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0)
			rc = load_file(names[i]);
		free(names[i]);
	}
	free(names);
	return rc;
}

int ckpt_handler_plugin_load(const char *path)
{
	struct stat st;
	int rc;

	if (!path || !path[0])
		return ckpt_error_set(CKPT_EINVAL, "handler plugin: no path");
	if (stat(path, &st) != 0)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"handler plugin %s", path);
	pthread_mutex_lock(&mu); /* invariant 2 */
	rc = S_ISDIR(st.st_mode) ? load_dir(path) : load_file(path);
	pthread_mutex_unlock(&mu);
	return rc;
}

int ckpt_handler_plugin_load_path(const char *list)
{
	char *copy, *save = NULL;
	int rc = 0;

	if (!list)
		list = getenv("CKPT_HANDLER_PATH");
	if (!list || !list[0])
		return 0;
	if (!(copy = strdup(list)))
		return ckpt_error_nomem();
	for (char *p = strtok_r(copy, ":", &save); rc == 0 && p; p = strtok_r(NULL, ":", &save))
		rc = ckpt_handler_plugin_load(p);
	free(copy);
	return rc;
}
