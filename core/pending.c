/*
 * pending.c — pending steps (ckpt/pending.h): steps written file by file
 * into ROOT/<step>.ckpt-tmp-<nonce>/files/ and finalized later.
 *
 * Design: a pending step is a temporary step directory (root.c) that holds
 * the directory files/. Everything that changes one (the daemon writing
 * files, finalize, remove) holds the flock of the temporary directory, the
 * same lock a step writer holds (ckpt_lock_dir). Finalize reads files/
 * leniently and writes the store inside the same directory
 * (ckpt_interchange_save_pending, ckpt_step_writer_open_dir), then renames
 * it to ROOT/<step>.
 *
 * Invariants:
 *   1. ckpt_root_cleanup never removes a directory holding files/ (root.c
 *      invariant 5); files/ is only removed under the lock: by a finalize
 *      after its rename (the step is then finalized) or by remove, which
 *      first renames files/ away so a crash mid-remove leaves an ordinary
 *      abandoned directory, never a half-removed pending step.
 *   2. A failed finalize leaves files/ as it was and removes every store
 *      file it created in the directory: the step stays pending.
 *   (Clone stubs, which pending steps hold, are clone_stub.c.)
 */
#include <assert.h>
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/npy.h"
#include "ckpt/pending.h"
#include "ckpt/pytree.h"
#include "error_private.h"
#include "handler_files.h"
#include "handler_types.h"
#include "item_format.h"
#include "safetensors_private.h"
#include "step_private.h"
#include "interchange_private.h"
#include "npy_private.h"
#include "root_private.h"
#include "fsutil.h"

#define META_MAX  (256u << 20) /* bytes of a _METADATA or _CHECKPOINT_METADATA */
/* What finalize can read (interchange.c reads text files whole; tree_json.c's depth limit;
 * full paths ROOT/<step>.ckpt-tmp-<nonce>/files/<relpath> within PATH_MAX): */
#define TEXT_MAX  (256u << 20) /* bytes of a scalar or string leaf */
#define DEPTH_MAX 128u	       /* names below the item directory */
#define REL_MAX	  3072u	       /* bytes of a path in files/ */

/* ---- the root ---- */

/* The step of a temporary directory name "<step>.ckpt-tmp-<nonce>"; 0 if not one. */
static int tmp_name_step(uint64_t *step, const char *name)
{
	const char *infix = strstr(name, CKPT_TMP_INFIX);
	char num[24];
	size_t n = infix ? (size_t)(infix - name) : 0;

	if (!infix || n == 0 || n >= sizeof(num))
		return 0;
	memcpy(num, name, n);
	num[n] = '\0';
	return ckpt_step_name_parse(step, num);
}

static int cmp_info(const void *a, const void *b)
{
	const ckpt_pending_info *x = a, *y = b;

	if (x->step != y->step)
		return x->step < y->step ? -1 : 1;
	return strcmp(x->dir, y->dir);
}

int ckpt_pending_list(ckpt_pending_info **out, size_t *n, const char *root)
{
	DIR *d = opendir(root);
	ckpt_pending_info *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *e;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return ckpt_error_errno(errno == ENOENT ? CKPT_ENOTFOUND : CKPT_EIO, errno,
					"open root %s", root);
	while ((e = readdir(d)) != NULL) {
		uint64_t step;
		char *dir;

		if (!tmp_name_step(&step, e->d_name))
			continue;
		if (!(dir = ckpt_asprintf("%s/%s", root, e->d_name))) {
			rc = CKPT_ENOMEM;
			break;
		}
		if (!ckpt_dir_is_pending(dir)) {
			free(dir);
			continue;
		}
		if (cnt == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			ckpt_pending_info *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				free(dir);
				rc = ckpt_error_nomem();
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt].step = step;
		v[cnt++].dir = dir;
	}
	closedir(d);
	if (rc) {
		ckpt_pending_list_free(v, cnt);
		return rc;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_info);
	*out = v;
	*n = cnt;
	return 0;
}

void ckpt_pending_list_free(ckpt_pending_info *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i].dir);
	free(list);
}

/* CKPT_EEXISTS if ROOT/<step> exists or a pending step of that number other than `mine`. */
static int step_taken(const char *root, uint64_t step, const char *mine)
{
	ckpt_pending_info *list = NULL;
	size_t n = 0;
	struct stat st;
	char *final = ckpt_asprintf("%s/%" PRIu64, root, step);
	int rc = final ? 0 : CKPT_ENOMEM;

	if (rc == 0 && lstat(final, &st) == 0)
		rc = ckpt_error_set(CKPT_EEXISTS, "step %s already exists", final);
	if (rc == 0)
		rc = ckpt_pending_list(&list, &n, root);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (list[i].step == step && (!mine || strcmp(list[i].dir, mine) != 0))
			rc = ckpt_error_set(CKPT_EEXISTS,
					    "step %" PRIu64 " is already pending in %s", step,
					    list[i].dir);
	ckpt_pending_list_free(list, n);
	free(final);
	return rc;
}

int ckpt_pending_create(char **dir_out, int *lock_fd, const char *root, uint64_t step)
{
	char nonce[17], *dir = NULL, *files = NULL;
	int fd = -1, rc;

	*dir_out = NULL;
	*lock_fd = -1;
	rc = ckpt_mkdir_p(root);
	if (rc == 0)
		rc = step_taken(root, step, NULL);
	/* a cleanup may remove our directory between mkdir and flock: retry with a new name */
	for (int tries = 0; rc == 0 && fd < 0 && tries < 8; tries++) {
		ckpt_nonce(nonce);
		free(dir);
		if (!(dir =
			  ckpt_asprintf("%s/%" PRIu64 "%s%s", root, step, CKPT_TMP_INFIX, nonce)))
			rc = CKPT_ENOMEM;
		else if (mkdir(dir, 0777) != 0)
			rc = ckpt_error_errno(CKPT_EIO, errno, "mkdir %s", dir);
		else if ((rc = ckpt_lock_dir(&fd, dir, 0)) == CKPT_ENOTFOUND || rc == CKPT_EBUSY)
			rc = 0;
	}
	if (rc == 0 && fd < 0)
		rc = ckpt_error_set(CKPT_EBUSY, "could not create a pending step in %s", root);
	if (rc)
		goto done;
	files = ckpt_asprintf("%s/%s", dir, CKPT_PENDING_FILES);
	if (!files)
		rc = CKPT_ENOMEM;
	else if (mkdir(files, 0777) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "mkdir %s", files);
	if (rc == 0) /* a concurrent create or save of the same step: at most one wins */
		rc = step_taken(root, step, dir);
	if (rc == 0)
		rc = ckpt_fsync_dir(dir);
	if (rc == 0)
		rc = ckpt_fsync_dir(root);
	if (rc) {
		ckpt_rmtree(dir);
		goto done;
	}
	*dir_out = dir;
	*lock_fd = fd;
	dir = NULL;
	fd = -1;
done:
	if (fd >= 0)
		close(fd);
	free(files);
	free(dir);
	return rc;
}

/* Lock dir (unless the caller did: *fd >= 0) and check that it is pending. */
static int lock_pending(int *fd, const char *dir)
{
	int rc = 0;

	if (*fd < 0) {
		rc = ckpt_lock_dir(fd, dir, 1);
		if (rc == CKPT_EBUSY)
			return ckpt_error_set(CKPT_EBUSY,
					      "pending step %s is in use by another process (a "
					      "ckptfs mount, or a finalize)",
					      dir);
		if (rc)
			return rc;
	}
	if (!ckpt_dir_is_pending(dir))
		rc = ckpt_error_set(CKPT_ENOTFOUND, "%s is not a pending step (no %s/)", dir,
				    CKPT_PENDING_FILES);
	return rc;
}

int ckpt_pending_lock(int *lock_fd, const char *dir)
{
	int rc;

	*lock_fd = -1;
	rc = lock_pending(lock_fd, dir);
	if (rc && *lock_fd >= 0) {
		close(*lock_fd);
		*lock_fd = -1;
	}
	return rc;
}

/* Split a pending directory path into its root (malloc'd) and step. */
static int split_dir(char **root, uint64_t *step, const char *dir)
{
	size_t len = strlen(dir);
	const char *name;
	char *d;

	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (!(d = strndup(dir, len)))
		return ckpt_error_nomem();
	char *slash = strrchr(d, '/');
	name = slash ? slash + 1 : d;
	if (!tmp_name_step(step, name)) {
		int rc = ckpt_error_set(CKPT_EINVAL,
					"%s is not a pending step directory "
					"(ROOT/<step>" CKPT_TMP_INFIX "<nonce>)",
					dir);
		free(d);
		return rc;
	}
	if (!slash)
		*root = strdup(".");
	else if (slash == d)
		*root = strdup("/");
	else
		*root = strndup(d, (size_t)(slash - d));
	free(d);
	return *root ? 0 : ckpt_error_nomem();
}

int ckpt_pending_finalize(const char *dir, int lock_fd, const ckpt_step_writer_options *opts)
{
	char *root = NULL;
	uint64_t step = 0;
	int fd = lock_fd, rc = split_dir(&root, &step, dir);

	if (rc == 0)
		rc = lock_pending(&fd, dir);
	if (rc == 0)
		rc = ckpt_interchange_save_pending(root, step, dir, fd, opts);
	if (rc && !strstr(ckpt_error_last(), "finalize"))
		ckpt_error_wrap(rc, "finalize %s", dir);
	if (fd >= 0 && fd != lock_fd)
		close(fd);
	free(root);
	return rc;
}

int ckpt_pending_remove(const char *dir, int lock_fd)
{
	char nonce[17], *files = NULL, *gone = NULL;
	int fd = lock_fd, rc = lock_pending(&fd, dir);

	ckpt_nonce(nonce);
	if (rc == 0) {
		files = ckpt_asprintf("%s/%s", dir, CKPT_PENDING_FILES);
		gone = ckpt_asprintf("%s/removed-%s", dir, nonce);
		if (!files || !gone)
			rc = CKPT_ENOMEM;
	}
	/* first make it an ordinary abandoned directory (invariant 1) */
	if (rc == 0 && rename(files, gone) != 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "rename %s", files);
	if (rc == 0)
		rc = ckpt_rmtree(dir);
	if (fd >= 0 && fd != lock_fd)
		close(fd);
	free(files);
	free(gone);
	return rc;
}

/* ---- checks of what the daemon writes ---- */

int ckpt_pending_check_path(const char *relpath, int is_dir)
{
	const char *p = relpath, *slash;
	int rc = 0;

	if (!relpath || !*relpath || *relpath == '/')
		return ckpt_error_set(CKPT_EINVAL, "'%s': not a relative path in a step",
				      relpath ? relpath : "(null)");
	if (strlen(relpath) > REL_MAX)
		return ckpt_error_set(CKPT_EINVAL, "%.64s...: path longer than %u bytes", relpath,
				      REL_MAX);
	for (unsigned depth = 0; rc == 0; depth++, p = slash + 1) {
		slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		int last = !slash, file = last && !is_dir;
		char *comp = strndup(p, len), *key = NULL;
		size_t stem = 0;

		if (!comp)
			return ckpt_error_nomem();
		if (len == 0 || !strcmp(comp, ".") || !strcmp(comp, ".."))
			rc = ckpt_error_set(CKPT_EINVAL, "%s: empty, '.' or '..' component",
					    relpath);
		else if (depth > DEPTH_MAX)
			rc = ckpt_error_set(CKPT_EINVAL, "%s: deeper than %u levels in the item",
					    relpath, DEPTH_MAX);
		else if (depth == 0 && file && !strcmp(comp, CKPT_STEP_METADATA_KEY))
			rc = 0;
		else if (depth == 0 && file && ckpt_convert_kind(comp, &stem)) {
			comp[stem] = '\0'; /* <item>.safetensors, <item>.npz: the item <item> */
			rc = ckpt_item_name_check(comp);
		} else if (depth == 0 && file)
			rc = ckpt_error_set(CKPT_EINVAL,
					    "%s: a step holds only %s, item directories and "
					    "<item>.safetensors or <item>.npz files",
					    relpath, CKPT_STEP_METADATA_KEY);
		else if (depth == 0)
			rc = ckpt_item_name_check(comp);
		else if (depth == 1 && file && !strcmp(comp, CKPT_ITEM_METADATA_NAME))
			rc = 0;
		else if (comp[0] == '_')
			rc = ckpt_error_set(CKPT_EINVAL,
					    "names starting with '_' are reserved (a key "
					    "'%s' is written '%%5F%s')",
					    comp, comp + 1);
		else if (file && len > 4 && !strcmp(comp + len - 4, ".npy")) {
			comp[len - 4] = '\0';
			rc = ckpt_key_unescape(&key, comp, 1);
		} else {
			rc = ckpt_key_unescape(&key, comp, 0);
		}
		free(key);
		free(comp);
		if (rc && rc != CKPT_ENOMEM && !strstr(ckpt_error_last(), relpath))
			ckpt_error_wrap(rc, "%s", relpath);
		if (last)
			break;
	}
	return rc;
}

static int check_step_metadata(const char *json, size_t len, const char *name)
{
	/* JSON as Python's json reads it (UTF-8, nothing after the value), then cJSON's tree. */
	int rc = handler_json_parse(NULL, json, len, name);
	cJSON *cm = rc ? NULL : cJSON_Parse(json);
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(cm, "item_handlers"), *e;

	if (rc)
		;
	else if (!cJSON_IsObject(cm))
		rc = ckpt_error_set(CKPT_EINVAL, "%s: not a JSON object", name);
	else if (h && !cJSON_IsObject(h))
		rc = ckpt_error_set(CKPT_EINVAL, "%s: item_handlers is not an object", name);
	if (rc)
		h = NULL;
	cJSON_ArrayForEach(e, h)
	{
		if (!cJSON_IsString(e)) {
			rc = ckpt_error_set(CKPT_EINVAL, "%s: item_handlers['%s'] is not a string",
					    name, e->string ? e->string : "");
			break;
		}
	}
	cJSON_Delete(cm);
	return rc;
}

/*
 * The handler files/_CHECKPOINT_METADATA names for the item relpath lies in
 * (malloc'd), or NULL: not named (yet), no such file, or out of memory.
 */
static char *item_typestr(int files_fd, const char *relpath)
{
	const char *slash = strchr(relpath, '/');
	char *json = NULL, *item, *typestr = NULL;
	size_t len;
	cJSON *root;

	if (files_fd < 0 || !slash ||
	    item_read_at(&json, &len, files_fd, CKPT_STEP_METADATA_KEY, META_MAX, relpath) != 0) {
		ckpt_error_clear();
		return NULL;
	}
	root = cJSON_ParseWithLength(json, len);
	item = strndup(relpath, (size_t)(slash - relpath));
	if (item) {
		const cJSON *hs = cJSON_GetObjectItemCaseSensitive(root, "item_handlers");
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(hs, item);
		typestr = cJSON_IsString(h) ? strdup(h->valuestring) : NULL;
	}
	free(item);
	cJSON_Delete(root);
	free(json);
	return typestr;
}

/* The format of the item relpath lies in; NULL for PyTree/Standard items,
 * handlers this library does not know and items not named yet. */
static const item_format *item_format_of(int files_fd, const char *relpath)
{
	char *typestr = item_typestr(files_fd, relpath);
	const item_format *f = item_format_find(typestr);

	free(typestr);
	return f;
}

int ckpt_pending_item_is_pytree(int files_fd, const char *relpath)
{
	char *typestr = item_typestr(files_fd, relpath);
	int yes = handler_type_is_tree(typestr);

	free(typestr);
	return yes;
}

/* A file of an item of format f: checked by it; "later" is accepted (finalize checks). */
static int check_item_file(const item_format *f, int files_fd, int fd, const char *relpath)
{
	const char *slash = strchr(relpath, '/');
	char *item = strndup(relpath, (size_t)(slash - relpath));
	int dfd = item ? openat(files_fd, item, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1, rc;

	if (!item)
		rc = ckpt_error_nomem();
	else if (dfd < 0)
		rc = ckpt_error_errno(CKPT_EIO, errno, "open %s", item);
	else if ((rc = f->check_file(dfd, slash + 1, fd, relpath)) == ITEM_CHECK_LATER)
		rc = 0;
	if (dfd >= 0)
		close(dfd);
	free(item);
	return rc;
}

int ckpt_pending_check_file(int files_fd, int fd, const char *relpath)
{
	const item_format *f;
	const char *base = strrchr(relpath, '/');
	size_t len = strlen(relpath);
	ckpt_clone_ref ref = {0};
	ckpt_npy_header h;
	char *text = NULL;
	size_t tlen = 0;
	int rc = ckpt_clone_stub_read(&ref, fd);

	base = base ? base + 1 : relpath;
	if (rc != 0) { /* a stub (parsed) or a malformed one */
		int whole = rc == 1 && ref.path[0] == '\0'; /* of an <item>.safetensors */
		ckpt_clone_ref_clear(&ref);
		if (rc < 0)
			return ckpt_error_wrap(rc, "%s", relpath);
		if (whole && (base != relpath || base[0] == '_' ||
			      ckpt_convert_kind(relpath, NULL) != CKPT_CONVERT_SAFETENSORS))
			return ckpt_error_set(
			    CKPT_EINVAL,
			    "%s: a copy of a step's <item>.safetensors stands "
			    "only for a <name>.safetensors at the top of the step",
			    relpath);
		if (!whole && (base == relpath || base[0] == '_'))
			return ckpt_error_set(CKPT_EINVAL,
					      "%s: a clone stub stands only for a leaf", relpath);
		return 0;
	}
	if ((f = item_format_of(files_fd, relpath))) {
		rc = check_item_file(f, files_fd, fd, relpath);
	} else if (!strchr(relpath, '/') && ckpt_convert_kind(relpath, NULL)) {
		rc = ckpt_convert_check_file(relpath, fd, '.');
	} else if (!strchr(relpath, '/') && !strcmp(relpath, CKPT_STEP_METADATA_KEY)) {
		rc = ckpt_read_fd(&text, &tlen, fd, META_MAX, relpath);
		if (rc == 0)
			rc = check_step_metadata(text, tlen, relpath);
	} else if (!strcmp(base, CKPT_ITEM_METADATA_NAME) && base - relpath > 1 &&
		   !memchr(relpath, '/', (size_t)(base - relpath) - 1)) {
		ckpt_tree *t = NULL;
		rc = ckpt_read_fd(&text, &tlen, fd, META_MAX, relpath);
		if (rc == 0 && (rc = ckpt_tree_metadata_from_json(&t, text, tlen)) != 0)
			ckpt_error_wrap(rc, "%s", relpath);
		ckpt_tree_free(t);
	} else if (strchr(relpath, '/') && len > 4 && !strcmp(relpath + len - 4, ".npy")) {
		rc = ckpt_npy_check_fd(&h, fd, relpath);
		if (rc == CKPT_EUNSUPPORTED)
			rc = CKPT_EINVAL; /* an unknown dtype is bad input here */
	} else {
		struct stat st;
		if (fstat(fd, &st) != 0)
			rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", relpath);
		else if ((uint64_t)st.st_size > TEXT_MAX)
			rc = ckpt_error_set(CKPT_EINVAL,
					    "%s: %lld bytes; a leaf that is not a .npy holds at "
					    "most %u",
					    relpath, (long long)st.st_size, TEXT_MAX);
	}
	free(text);
	return rc;
}
