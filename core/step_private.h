/*
 * step_private.h — helpers shared by the step writer, the step reader, the
 * root functions and the interchange module (library only).
 */
#ifndef CKPT_STEP_PRIVATE_H
#define CKPT_STEP_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/step.h"

/* Key of the step metadata inside the store. */
#define CKPT_STEP_METADATA_KEY "_CHECKPOINT_METADATA"
/* Name of an item's tree metadata (key "<item>/_METADATA"). */
#define CKPT_ITEM_METADATA_NAME "_METADATA"

/* Remove path and everything below it (no error if it, or any part, does not exist). */
int ckpt_fs_rmtree(const char *path);
/*
 * Open directory path and flock(LOCK_EX) it (LOCK_NB if nonblock): the lock of
 * a temporary step directory (root.c invariant 2). *fd receives the descriptor;
 * closing it releases the lock. CKPT_ENOTFOUND if path does not exist (also
 * when it vanished while waiting), CKPT_EBUSY if nonblock and the lock is held,
 * or if path names another inode once locked.
 */
int ckpt_fs_lock_dir(int *fd, const char *path, int nonblock);
/* 1 if dir holds the directory files/ (a pending step, ckpt/pending.h), else 0. */
int ckpt_fs_is_pending(const char *dir);
/* fsync a directory. */
int ckpt_fs_fsync_dir(const char *path);
/* A relative path of len bytes: non-empty components other than "." and "..", no NUL. */
int ckpt_fs_relpath_ok(const char *p, size_t len);
/* mkdir -p. */
int ckpt_fs_mkdir_p(const char *path);
/* malloc'd printf; NULL when out of memory (message set). */
char *ckpt_fs_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole file (at most max bytes) into a malloc'd NUL-terminated buffer. */
int ckpt_fs_read_file(char **out, size_t *out_len, const char *path, size_t max);
/* Write a whole file (create or truncate). */
int ckpt_fs_write_file(const char *path, const void *data, size_t len);

/*
 * Parse a step directory name: decimal digits, no leading zero unless the
 * name is "0", fits in uint64. Returns 1 if it is a step name, else 0.
 */
int ckpt_step_name_parse(uint64_t *out, const char *name);

/*
 * Step directory names with a prefix and zero padding (ckpt/manager.h):
 * "<prefix>_<step>" with the step printed in at least `width` digits, or
 * just the (padded) step when prefix is NULL or "". prefix NULL and width 0
 * give the plain names above. _name and _path return malloc'd strings (NULL
 * when out of memory, message set). _parse accepts only the canonical
 * spelling (what _name would print) and returns 1 if name is a step, else 0.
 */
char *ckpt_step_dir_name(uint64_t step, const char *prefix, unsigned width);
char *ckpt_step_dir_path(const char *root, uint64_t step, const char *prefix, unsigned width);
int ckpt_step_dir_name_parse(uint64_t *out, const char *name, const char *prefix, unsigned width);
/* ckpt_root_steps and ckpt_root_delete_step for such names. */
int ckpt_root_steps_named(uint64_t **out, size_t *n, const char *root, const char *prefix,
			  unsigned width);
int ckpt_root_delete_step_named(const char *root, uint64_t step, const char *prefix,
				unsigned width);

/* 16 hex digits of randomness for temporary names; buf holds 17 bytes. */
void ckpt_fs_nonce(char buf[17]);

/* Item names are directory names: non-empty, no '/', not starting with '_' or '.'. */
int ckpt_item_name_check(const char *item);

/*
 * Check the .npy file open as fd (named name in messages): a valid header
 * and exactly the length it announces ("x.npy: header says float32 (3, 4) =
 * 48 data bytes but the file has 40"). Reads with pread (the offset stays).
 */
struct ckpt_npy_header;
int ckpt_npy_check_fd(struct ckpt_npy_header *h, int fd, const char *name);

/* The store options the writer was opened with (borrowed). */
const ckpt_store_options *ckpt_step_writer_store_options(const ckpt_step_writer *w);

/*
 * Open a writer on the existing directory dir (ROOT/<step>.ckpt-tmp-<nonce>,
 * a pending step) whose flock the caller holds as lockfd (borrowed: the
 * caller closes it after the writer is gone). Everything in dir except the
 * entry `keep` is removed first (leftovers of an earlier attempt) and the
 * store is created in dir. Abort and failed finalizes remove what the writer
 * created and leave `keep` untouched; a successful finalize renames dir to
 * ROOT/<step> (never replacing a step: CKPT_EEXISTS) and then removes
 * ROOT/<step>/<keep>.
 */
int ckpt_step_writer_open_dir(ckpt_step_writer **out, const char *root, uint64_t step,
			      const char *dir, int lockfd, const char *keep,
			      const ckpt_step_writer_options *opts);
/*
 * The body of ckpt_pending_finalize (interchange.c): read dir/files/
 * leniently, write the store inside dir with a writer of
 * ckpt_step_writer_open_dir (lockfd held by the caller) and finalize it.
 */
int ckpt_interchange_save_pending(const char *root, uint64_t step, const char *dir, int lockfd,
				  const ckpt_step_writer_options *opts);
/* A non-negative integer member of the top-level object of the JSON text js,
 * exactly (cJSON's doubles round nanoseconds); 0 if absent or not one. */
int64_t ckpt_json_top_int(const char *js, const char *key);

/* Set the init timestamp written at finalize (default: the time of open). */
void ckpt_step_writer_set_init_time(ckpt_step_writer *w, int64_t ns);

#endif
