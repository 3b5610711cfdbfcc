/*
 * fs/view.h — the mounted view of a checkpoint root: steps, nodes, inode numbers.
 *
 * Design. The view knows ROOT's finalized steps (re-read by view_rescan when
 * ROOT's mtime changes) and opens a step only when something inside it is
 * looked up. Each step that has ever been seen while mounted gets a *slot*
 * (never reused); an opened step is a `vstep` holding the ckpt_step and its
 * nodes (fs/vnode.c). Inode numbers are computed, not stored:
 *
 *   1                      the mount root
 *   2                      the `latest` symlink
 *   (slot + 1) << 32 | id  node `id` of the step in `slot` (id 0: the step dir)
 *   1 << 63 | ...          inside pending steps (passthrough.h; never a view number)
 *
 * Node ids. A step of a million leaves must list its top directory without
 * building a node per leaf, so a node's id is what it is in the step, not
 * where a table put it:
 *
 *   0                       the step directory
 *   1                       _CHECKPOINT_METADATA
 *   2 + 3k, 3 + 3k, 4 + 3k  item k's directory, its _METADATA, <item>.safetensors
 *   tree0 + base_k + t      node t of item k's tree: its id in the item
 *                           (ckpt_step_item_children: its offset in the compact
 *                           tree), base_k the sum of the earlier items' id limits
 *   raw0 + i                the i-th key of the items without a tree, breadth-first
 *
 * so the same file keeps its number while mounted, even when its step is
 * closed by the LRU and opened again. The step's own entries and the raw
 * items' keys (few) are made at open; a tree directory's children are made
 * when it is first listed or looked in (view_dir_list), and a node asked
 * for by number before its directory was listed in this open is found
 * through its parent (ckpt_step_item_parent). Nodes live until the vstep is
 * freed, so pointers to them stay valid while a reference is held.
 *
 * Invariants:
 *  1. A slot's (step number, directory dev/ino) never changes; a step deleted
 *     and re-created gets a new slot, so kernel-cached attributes of the old
 *     one can never describe the new one.
 *  2. vstep.refs counts the slot's reference (while installed) plus one per
 *     user (a request in flight, an open file). A vstep is freed at 0 refs,
 *     never while an open file uses it: readers of a deleted step keep reading.
 *  3. At most view_config.max_open_steps vsteps are installed in slots beyond
 *     those in use by open files (least recently used ones are closed).
 *  4. Every node made is in vstep.map under its id, once; a node's fields
 *     never change after it is made, but for the lazily opened tree and
 *     leaf/value handles (under vstep.lock) and a directory's children, set
 *     once under vstep.nodes_lock and then published by `listed` (release
 *     store, acquire load). A listed directory's children are contiguous,
 *     each with parent == the directory's id, names unique.
 */
#ifndef CKPTFS_VIEW_H
#define CKPTFS_VIEW_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include <ckpt/ckpt.h>

#define VIEW_ROOT_INO 1u
#define VIEW_LATEST_INO 2u

enum vnode_type {
	VN_STEP = 1, /* the step directory */
	VN_STEPMETA, /* <step>/_CHECKPOINT_METADATA */
	VN_ITEM,     /* <step>/<item>/ */
	VN_ITEMMETA, /* <item>/_METADATA */
	VN_DIR,      /* a container node of an item's tree */
	VN_LEAF,     /* a leaf node of an item's tree */
	VN_RAWDIR,   /* a key prefix of an item without a tree */
	VN_RAW,      /* a key of an item without a tree: its value's bytes */
	VN_SAFETENSORS, /* <step>/<item>.safetensors: a PyTree item as one file (read-only) */
};

struct vnode {
	const char *name;      /* borrowed from the step, its directory's names, or owned_name */
	char *owned_name;      /* VN_RAW/VN_RAWDIR/VN_SAFETENSORS names (malloc'd) */
	char *key;	       /* VN_RAW: the store key; VN_RAWDIR: the prefix (malloc'd) */
	uint32_t id;	       /* view_ino(slot, id) (view.h "Node ids") */
	uint32_t parent;       /* id of the parent (0 for the step dir itself) */
	uint32_t item;         /* item index for everything below VN_ITEM */
	uint32_t pos;	       /* VN_DIR, VN_LEAF: position in the parent's tree node */
	uint8_t type;          /* enum vnode_type */
	uint8_t kids_owned;    /* kids (and names) were allocated for this directory */
	int listed;	       /* directories: kids are set (invariant 4) */
	int item_err;          /* VN_ITEM: CKPT_E* if its tree could not be read */
	/* Directories, once listed: */
	struct vnode *kids; /* nkids children, contiguous */
	uint32_t nkids;
	uint32_t *index; /* NULL, or by name: kid position + 1, open addressing */
	uint32_t index_mask;
	char *names; /* the kids' names (tree directories) */
	/* Made on first need, under vstep.lock: */
	const ckpt_tree *tree; /* VN_ITEM, VN_DIR, VN_LEAF */
	ckpt_leaf *leaf;   /* VN_LEAF */
	ckpt_value *value; /* VN_RAW */
	ckpt_safetensors *st; /* VN_SAFETENSORS */
};

#define VIEW_ID_STEPMETA 1u
#define VIEW_ID_ITEM(k)	 (2u + 3u * (k))
#define VIEW_ID_META(k)	 (3u + 3u * (k))
#define VIEW_ID_ST(k)	 (4u + 3u * (k))

/* An item's ids (view.h "Node ids"). */
struct view_item {
	uint32_t base;	/* tree node t has id base + t (t >= 2: the root is the item dir) */
	uint32_t limit; /* tree ids are below it (0 without a tree) */
	int raw;	/* no tree: its keys are files (made at open) */
	int err;	/* CKPT_E* if its tree cannot be read */
};

/* A step directory's name: "7", or Orbax's "ckpt_0000007" (ckpt_root_step_dirs). */
#define VIEW_NAME_LEN CKPT_STEP_NAME_MAX

struct vstep {
	unsigned refs; /* under view.lock (invariant 2) */
	uint32_t slot;
	uint64_t number;
	char name[VIEW_NAME_LEN]; /* the directory's real name */
	ckpt_step *step;
	struct vnode top; /* the step directory (id 0) */
	struct view_item *items;
	uint32_t nitems;
	uint32_t tree0, raw0; /* first tree id, first raw id */
	struct vnode *raw;    /* the raw items' keys (ids raw0...), made at open */
	uint32_t nraw;
	pthread_mutex_t nodes_lock; /* map, and listing directories (invariant 4) */
	struct vnode **map;	    /* id -> node, open addressing */
	uint32_t map_cap, map_n;
	struct timespec time;  /* commit time (or the directory's mtime) */
	char *custom_metadata; /* compact JSON of StepMetadata.custom_metadata, or NULL */
	pthread_mutex_t lock;  /* lazily made trees and leaf/value handles */
	uint64_t last_use;     /* under view.lock: LRU tick */
	char st_sep;           /* view_config.st_sep, for VN_SAFETENSORS */
};

struct view_config {
	uint64_t cache_size;     /* bytes of decompressed chunks, all steps together */
	unsigned max_open_steps; /* LRU bound on open steps (invariant 3) */
	char st_sep;             /* joins keys into safetensors tensor names ('.' default) */
};

struct view;

/* One root entry for readdir: a step's name and inode number. */
struct view_entry {
	char name[VIEW_NAME_LEN];
	uint64_t ino;
};

int view_new(struct view **out, const char *root, const struct view_config *cfg);
void view_free(struct view *v);
const char *view_root_path(const struct view *v);
/* Bytes the mount's steps have read from their data files (the store's counter), for
 * `user.ckpt.bytes_read` on the mount root: what reads asked of the disk, without the
 * kernel's read-ahead below the daemon. */
uint64_t view_bytes_read(struct view *v);

/*
 * Re-read ROOT's steps if its mtime changed since the last scan (always with
 * force). Calls changed(name) for every root entry that appeared or went away
 * (including "latest" when its target changes), after the view is updated and
 * with no lock held. Returns 0 or a CKPT_E* code.
 */
int view_rescan(struct view *v, int force, void (*changed)(const char *name, void *p), void *p);

/* ROOT's mtime at the last scan. */
struct timespec view_root_mtime(struct view *v);

/* Name of the newest step into buf (VIEW_NAME_LEN bytes); CKPT_ENOTFOUND if there is none. */
int view_latest(char *buf, struct view *v);

/* Snapshot of the root's steps, ascending: *out malloc'd (caller free()s). */
int view_list(struct view_entry **out, size_t *n, struct view *v);

/* Slot of the step named `name` in the root; CKPT_ENOTFOUND if none. */
int view_find(uint32_t *slot, struct view *v, const char *name);

/*
 * Acquire the open step of `slot` (opening it if needed): *out holds a
 * reference released with view_put(). CKPT_ENOTFOUND if the slot's step is
 * gone; other codes when the step cannot be opened.
 */
int view_get(struct vstep **out, struct view *v, uint32_t slot);
void view_put(struct view *v, struct vstep *vs);

/* fs/vnode.c: */

/* Make the step's own entries and the raw items' keys (at open). */
int vnodes_build(struct vstep *vs);
void vnodes_free(struct vstep *vs);
/* Assert the node invariants (view.h 4) of what is made so far; returns 1. */
int vnodes_check(const struct vstep *vs);

/* Node `id` of the step, made now if needed; CKPT_ENOTFOUND if the step has none. */
int view_node(struct vnode **out, struct vstep *vs, uint32_t id);

/* Make directory d's children if not yet; its item's error for a broken item. */
int view_dir_list(struct vstep *vs, struct vnode *d);

/* Child of directory d named name (listing d first); CKPT_ENOTFOUND if none. */
int view_child(struct vnode **out, struct vstep *vs, struct vnode *d, const char *name);

/* The tree node of n (VN_ITEM, VN_DIR, VN_LEAF), built on first need. */
int view_node_tree(const ckpt_tree **out, struct vstep *vs, struct vnode *n);

/*
 * Open the leaf/value/safetensors handle of n if needed (VN_LEAF, VN_RAW,
 * VN_SAFETENSORS), or read an item's _METADATA (VN_ITEMMETA); the step's
 * index is loaded first if it is not yet (the view lists from the step's
 * listing alone). Returns 0 or CKPT_E*; the handle then stays valid until
 * the vstep is freed.
 */
int view_node_open(struct vstep *vs, struct vnode *n);

/* File size of a file node (opens the node if needed). */
int view_node_size(uint64_t *out, struct vstep *vs, struct vnode *n);

/* Log a line to stderr (foreground) or syslog (daemon); defined in errmap.c. */
void ckptfs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int ckptfs_foreground;

static inline int vnode_is_dir(const struct vnode *n)
{
	return n->type == VN_STEP || n->type == VN_ITEM || n->type == VN_DIR ||
	       n->type == VN_RAWDIR;
}

static inline uint64_t view_ino(uint32_t slot, uint32_t node)
{
	return ((uint64_t)slot + 1) << 32 | node;
}

#endif
