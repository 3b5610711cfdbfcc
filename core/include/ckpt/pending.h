/*
 * ckpt/pending.h — pending steps: steps written file by file (the write side
 * of the mount, docs/fs.md, "Writing: pending steps") and finalized later,
 * possibly by another process (`ckpt finalize`).
 *
 * A pending step is a temporary step directory that holds `files/`, the
 * step's interchange directory (ckpt/interchange.h) as it is being written:
 *
 *   ROOT/<step>.ckpt-tmp-<nonce>/files/_CHECKPOINT_METADATA   optional
 *   ROOT/<step>.ckpt-tmp-<nonce>/files/<item>/_METADATA       optional
 *   ROOT/<step>.ckpt-tmp-<nonce>/files/<item>/<path>.npy      array leaves
 *   ROOT/<step>.ckpt-tmp-<nonce>/files/<item>/<path>          scalar/string leaves
 *
 * Unlike an abandoned save, a pending step survives ckpt_root_cleanup(): it
 * ends with ckpt_pending_finalize() or ckpt_pending_remove(). A process that
 * works on a pending step holds the flock of its temporary directory
 * (ckpt_lock_dir), so two processes never change one pending step.
 *
 * Finalizing reads files/ leniently: the files are the truth for what exists
 * (a leaf removed or renamed in files/ is removed or renamed in the step);
 * _METADATA and _CHECKPOINT_METADATA, when present, only add what files
 * cannot say: list/tuple/namedtuple containers (list children are renumbered
 * in index order), None leaves and empty containers (kept when their parent
 * exists), scalar kinds and strings, custom metadata, item handlers and
 * step custom metadata/metrics. A node whose file disagrees with _METADATA
 * (a dict where a list was, a .npy with another dtype) takes the file's
 * word. Big little-endian C-order .npy files are not copied: the file
 * becomes a data file of the step (ckpt_batch_put_file).
 *
 * Clone stubs. A leaf file may be a *clone stub*: a regular file with the
 * mode bit S_ISVTX whose content is the text
 *     CKPT_CLONE_MAGIC "<step>\n<item>\n<path>\n"
 * (path as in ckpt/tree.h: the leaf's tree path, ".npy" left out) and which
 * stands for the whole file of that leaf of the finalized step ROOT/<step>.
 * Finalizing shares the source's stored chunks (ckpt_batch_put_clone)
 * instead of copying bytes. A reader of files/ must serve a stub's bytes
 * from the source leaf (ckpt_leaf_open); a writer must first replace the
 * stub by the source's bytes (or truncate it) and clear S_ISVTX. A stub
 * with an empty path stands for the source item's <item>.safetensors
 * (ckpt/clone.h): only as a top-level "<name>.safetensors"; its bytes are
 * ckpt_safetensors_open's, and finalizing imports them through the source
 * step (stored anew, not shared) unless a directory <name>/ is beside it.
 */
#ifndef CKPT_PENDING_H
#define CKPT_PENDING_H

#include "ckpt/common.h"

#include <stddef.h>
#include <stdint.h>

#include "ckpt/clone.h"
#include "ckpt/step.h"

#ifdef __cplusplus
extern "C" {
#endif


/* One pending step of a root. */
typedef struct ckpt_pending_info {
	uint64_t step;
	char *dir; /* ROOT/<step>.ckpt-tmp-<nonce> (malloc'd) */
} ckpt_pending_info;

/*
 * Pending steps of root, ascending by step (several directories may hold the
 * same step number: each is listed). *out malloc'd; free with
 * ckpt_pending_list_free.
 * Returns 0, CKPT_ENOTFOUND (no root), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_pending_list(ckpt_pending_info **out, size_t *n, const char *root);
CKPT_API void ckpt_pending_list_free(ckpt_pending_info *list, size_t n);

/*
 * Start pending step `step` of root: creates ROOT/<step>.ckpt-tmp-<nonce>/files/
 * and locks the temporary directory. *dir_out (malloc'd) is the temporary
 * directory, *lock_fd its lock (the caller keeps it open while it works on
 * the step, and closes it to release).
 * Returns 0, CKPT_EEXISTS (the step exists, finalized or pending),
 * CKPT_EBUSY (no temporary directory could be made and locked: other
 * processes keep removing them), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_pending_create(char **dir_out, int *lock_fd, const char *root, uint64_t step);

/*
 * Lock the pending step directory dir without waiting: *lock_fd receives the
 * lock (close it to release).
 * Returns 0, CKPT_EBUSY (another process holds it), CKPT_ENOTFOUND (dir is
 * gone, or is not a pending step: no files/), CKPT_EIO.
 */
CKPT_API int ckpt_pending_lock(int *lock_fd, const char *dir);

/*
 * Check one path of files/ (relative, '/'-separated, no leading '/') before
 * it is created: is_dir says whether it is to be a directory. Allowed:
 * "_CHECKPOINT_METADATA" (file); "<item>" (directory, ckpt_item_name_check);
 * "<item>.safetensors" and "<item>.npz" (files: the PyTree item <item>,
 * docs/convert.md);
 * "<item>/_METADATA" (file); below an item, directories and files whose
 * names ckpt_key_unescape accepts (files ending in ".npy" as arrays), at most
 * 128 names deep below the item and 3072 bytes in all.
 * Returns 0, CKPT_EINVAL (anything else; the message names the path and the
 * rule), CKPT_ENOMEM.
 */
CKPT_API int ckpt_pending_check_path(const char *relpath, int is_dir);

/*
 * Check the content of the file at relpath (open as fd) once it is written.
 * files_fd is the pending step's files/ directory (or -1): a file of an item
 * whose handler files/_CHECKPOINT_METADATA names, other than PyTree/Standard,
 * is checked as that handler stores its files (invalid JSON, proto text that
 * does not parse against the item's descriptor.json, a random key of the
 * wrong dtype or shape: docs/handlers.md); a check that needs a file not
 * written yet is left to finalize. A top-level "<item>.safetensors" or
 * "<item>.npz" must be a valid file of its format (headers, offsets and
 * lengths; an .npz's entries are read through for their CRC-32s), or a
 * "<name>.safetensors" a clone stub of one (empty path, ckpt/clone.h).
 * Otherwise (PyTree items):
 * a .npy leaf must have a valid header (a dtype of ckpt/dtype.h) and exactly
 * the length it announces; _METADATA must parse as tree metadata and
 * _CHECKPOINT_METADATA as a JSON object whose item_handlers, if present,
 * maps names to strings. Clone stubs must parse (and never stand for a
 * metadata file; a leaf's stub never lies on top of the step, a stub of an
 * <item>.safetensors only there). Scalar and string leaves are valid up to 256 MiB (what
 * finalize reads whole).
 * Returns 0, CKPT_EINVAL (the file is not valid; the message says what is
 * wrong), CKPT_EUNSUPPORTED (a .npy of an Array or JAX key item of a dtype
 * ckpt/dtype.h lacks), CKPT_EVERSION (a _METADATA or description of a newer
 * format), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_pending_check_file(int files_fd, int fd, const char *relpath);

/*
 * Whether the file at relpath of a pending step (files_fd: its files/) lies
 * in a PyTree/Standard item, as files/_CHECKPOINT_METADATA says; an item it
 * does not name (yet) counts as one. Only files of such items may be clone
 * stubs of leaves: an item of another handler holds its files' bytes.
 * Returns 1 if it does, else 0 (never an error: an unreadable
 * _CHECKPOINT_METADATA names no item).
 */
CKPT_API int ckpt_pending_item_is_pytree(int files_fd, const char *relpath);


/*
 * Finalize the pending step in directory dir (ROOT/<step>.ckpt-tmp-<nonce>):
 * build its store from files/ (lenient reading, see above; clones shared,
 * big .npy files adopted), commit with _CHECKPOINT_METADATA (commit time
 * now), seal, rename to ROOT/<step> (the commit point), fsync ROOT, remove
 * files/ (a crash in between leaves a complete step with a stray files/
 * that readers ignore, never a lost pending step; docs/api.md). lock_fd is
 * the caller's lock of dir, or -1 to take it here (CKPT_EBUSY if another
 * process holds it). On failure the pending step is left as it was (any
 * partial store inside dir is removed) and the message says why, naming
 * the file.
 * Returns 0, CKPT_EEXISTS (ROOT/<step> exists), CKPT_EBUSY (another process
 * holds the lock), CKPT_ENOTFOUND (dir is gone or not a pending step; the
 * source step or leaf of a clone stub is missing), CKPT_EINVAL (dir is not
 * named ROOT/<step>.ckpt-tmp-<nonce>; an invalid file), CKPT_EUNSUPPORTED
 * (a .npy of a dtype ckpt/dtype.h lacks, a string leaf in a Standard item),
 * CKPT_EVERSION (a _METADATA of a newer format), CKPT_ECORRUPT (the source
 * step of a clone stub is damaged), CKPT_ERROR (compression threads did not
 * start), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_pending_finalize(const char *dir, int lock_fd, const ckpt_step_writer_options *opts);

/*
 * Remove the pending step in directory dir (lock_fd as above).
 * Returns 0, CKPT_EBUSY (another process holds the lock), CKPT_ENOTFOUND
 * (dir is gone or not a pending step), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_pending_remove(const char *dir, int lock_fd);

#ifdef __cplusplus
}
#endif
#endif
