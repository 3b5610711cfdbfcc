/*
 * item_format.h — what the item of one handler looks like as files, for the
 * readers of outside bytes that do not go through the handler: `ckpt save`
 * of an interchange directory, finalize of a pending step, and the mount's
 * check of a file written into a pending step (ckpt_pending_check_file).
 *
 * Every handler but PyTree/Standard stores its item as store keys
 * "<item>/<name>" that are exactly the item's files (the mount shows them,
 * `ckpt restore` writes them, `ckpt save` reads them back); the formats
 * below say which files are valid. An item whose typestr has no format is
 * stored as its files are, unchecked (a handler this library does not know).
 */
#ifndef CKPT_ITEM_FORMAT_H
#define CKPT_ITEM_FORMAT_H

#include <dirent.h>
#include <stddef.h>

/* check_file's "cannot tell yet": the file needs a sibling that is not there
 * (a proto.pbtxt before its descriptor.json). Finalize checks it again. */
#define ITEM_CHECK_LATER 1

typedef struct item_format {
	const char *typestr;
	/*
	 * Check the file `name` (a path inside the item directory, open as fd,
	 * positioned anywhere: use pread). item_dirfd is the item directory,
	 * for sibling files. `what` names the file in messages. Returns 0,
	 * ITEM_CHECK_LATER, or CKPT_EINVAL with a message naming `what` that
	 * says what is wrong (line and column for text). ITEM_CHECK_LATER
	 * also sets a message naming the missing sibling (the caller adds `what`).
	 */
	int (*check_file)(int item_dirfd, const char *name, int fd, const char *what);
	/*
	 * Check the item directory as a whole, once each of its files passed
	 * check_file (which the caller does first): the files that must be
	 * there, and that they agree with each other. `what` names the item.
	 */
	int (*check_dir)(int item_dirfd, const char *what);
} item_format;

extern const item_format ckpt_json_format;
extern const item_format ckpt_array_format;
extern const item_format ckpt_proto_format;
extern const item_format ckpt_jax_key_format;
extern const item_format ckpt_np_key_format;

/* The format of typestr, or NULL (PyTree/Standard, or a handler not known). */
const item_format *item_format_find(const char *typestr);

/* A stream over the directory dirfd from its start (dirfd stays open and
 * the caller's; closedir() the stream). CKPT_EIO naming what. */
int item_opendir(DIR **out, int dirfd, const char *what);

/* ckpt_read_fd (fsutil.h) of the file name inside dirfd; CKPT_ENOTFOUND if it is missing. */
int item_read_at(char **out, size_t *len, int dirfd, const char *name, size_t max,
		 const char *what);

/* The refusal of a clone stub (ckpt/pending.h) found in such an item: its
 * files are bytes, and an array leaf's stored value lacks its .npy header. */
struct ckpt_clone_ref;
int item_stub_error(const char *what, const struct ckpt_clone_ref *ref);

/*
 * Check a whole item directory of an interchange directory or a pending
 * step: every regular file with check_file (ITEM_CHECK_LATER is an error
 * here: the sibling is missing for good; a clone stub too), then check_dir.
 * No format: 0.
 */
int item_format_check_dir(const char *typestr, int item_dirfd, const char *what);

#endif
