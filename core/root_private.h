/*
 * root_private.h — step directory names and the root's listing (root.c;
 * library only). The public root functions are in ckpt/root.h.
 */
#ifndef CKPT_ROOT_PRIVATE_H
#define CKPT_ROOT_PRIVATE_H

#include <stddef.h>
#include <stdint.h>

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

/* 1 if dir holds the directory files/ (a pending step, ckpt/pending.h), else 0. */
int ckpt_dir_is_pending(const char *dir);

/* Item names are directory names: non-empty, no '/', not starting with '_' or '.'. */
int ckpt_item_name_check(const char *item);

#endif
