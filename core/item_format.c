/*
 * item_format.c — dispatch to the item formats (item_format.h) and the file
 * reading they share.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/array.h"
#include "ckpt/json.h"
#include "ckpt/clone.h"
#include "ckpt/proto.h"
#include "ckpt/random_key.h"
#include "error_private.h"
#include "handler_types.h"
#include "item_format.h"
#include "fsutil.h"

const item_format *item_format_find(const char *typestr)
{
	const handler_type *t = handler_type_find(typestr);

	return t ? t->format : NULL;
}

int item_read_at(char **out, size_t *len, int dirfd, const char *name, size_t max,
		 const char *what)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK), rc;

	*out = NULL;
	*len = 0;
	if (fd < 0 && errno == ENOENT)
		return ckpt_error_set(CKPT_ENOTFOUND, "%s: missing", what);
	if (fd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "open %s", what);
	rc = ckpt_read_fd(out, len, fd, max, what);
	close(fd);
	return rc;
}

int item_stub_error(const char *what, const ckpt_clone_ref *ref)
{
	if (!ref->path[0]) /* (ckpt/clone.h) */
		return ckpt_error_set(CKPT_EINVAL,
				      "%s: a copy of step %" PRIu64 "'s %s.safetensors stands only "
				      "for a <name>.safetensors at the top of the step",
				      what, ref->step, ref->item);
	return ckpt_error_set(CKPT_EINVAL,
			      "%s: a copy of leaf %s/%s of step %" PRIu64 " made in the mount before "
			      "_CHECKPOINT_METADATA named this item's handler; copy it again now "
			      "(or write its bytes)",
			      what, ref->item, ref->path, ref->step);
}

int item_opendir(DIR **out, int dirfd, const char *what)
{
	int dfd = dup(dirfd);

	*out = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!*out) {
		int err = errno;
		if (dfd >= 0)
			close(dfd);
		return ckpt_error_errno(CKPT_EIO, err, "open directory %s", what);
	}
	rewinddir(*out); /* a dup shares the offset of dirfd's earlier reads */
	return 0;
}

/* Check every regular file below dirfd (rel: its path inside the item). */
static int check_files(const item_format *f, int item_dirfd, int dirfd, const char *rel,
		       const char *what)
{
	struct dirent *e;
	DIR *d;
	int rc = item_opendir(&d, dirfd, what);

	if (rc)
		return rc;
	while (rc == 0 && (e = readdir(d))) {
		char *name, *msg;
		struct stat st;
		int fd;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		name = rel ? ckpt_asprintf("%s/%s", rel, e->d_name) : strdup(e->d_name);
		msg = name ? ckpt_asprintf("%s/%s", what, name) : NULL;
		if (!name || !msg) {
			free(name);
			free(msg);
			rc = ckpt_error_nomem();
			break;
		}
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "stat %s", msg);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			rc = sub < 0 ? ckpt_error_errno(CKPT_EIO, errno, "open %s", msg)
				     : check_files(f, item_dirfd, sub, name, what);
			if (sub >= 0)
				close(sub);
		} else if (!S_ISREG(st.st_mode)) {
			rc = ckpt_error_set(CKPT_EINVAL, "%s: not a regular file", msg);
		} else if ((fd = openat(dirfd, e->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
			rc = ckpt_error_errno(CKPT_EIO, errno, "open %s", msg);
		} else {
			ckpt_clone_ref ref = {0};
			rc = ckpt_clone_stub_read(&ref, fd);
			if (rc == 1)
				rc = item_stub_error(msg, &ref);
			else if (rc == 0)
				rc = f->check_file(item_dirfd, name, fd, msg);
			ckpt_clone_ref_clear(&ref);
			if (rc == ITEM_CHECK_LATER) /* the sibling is missing for good */
				rc = ckpt_error_wrap(CKPT_EINVAL, "%s", msg);
			close(fd);
		}
		free(name);
		free(msg);
	}
	closedir(d);
	return rc;
}

int item_format_check_dir(const char *typestr, int item_dirfd, const char *what)
{
	const item_format *f = item_format_find(typestr);
	int rc;

	if (!f)
		return 0;
	rc = check_files(f, item_dirfd, item_dirfd, NULL, what);
	return rc ? rc : f->check_dir(item_dirfd, what);
}
