/*
 * ckpt/safetensors.h — PyTree items as safetensors files, both ways.
 *
 * The format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON, then the tensor data. The
 * JSON object maps tensor names to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the data start) and may hold
 * "__metadata__", an object of string values. Data is little-endian, C order.
 *
 * Writing (ckpt_safetensors_open, _export) is byte for byte what the
 * reference writer (safetensors 0.4, Rust serde_json) produces: tensors
 * sorted by dtype (U64, I64, F64, F32, U32, I32, BF16, F16, U16, I16,
 * F8_E4M3, F8_E5M2, I8, U8, BOOL) then by name, their data back to back in
 * that order, "__metadata__" first, compact JSON, the header padded with
 * spaces to a multiple of 8 bytes. Names are the keys from the item's root
 * to the leaf joined with opts.sep ('.' by default). docs/convert.md says
 * which leaves are left out and what "__metadata__" holds.
 *
 * Reading (ckpt_safetensors_parse) is strict, as the reference reader: the
 * header at most CKPT_SAFETENSORS_MAX_HEADER bytes of UTF-8 JSON starting
 * with '{', every tensor with a known dtype, a shape whose size matches its
 * offsets, the tensors tiling the data exactly (no overlap, no gap, the last
 * one ending at the end of the file), names unique. Anything else is
 * CKPT_EINVAL (CKPT_EUNSUPPORTED for a dtype libckpt does not have) with a
 * message naming the tensor.
 */
#ifndef CKPT_SAFETENSORS_H
#define CKPT_SAFETENSORS_H
#include "ckpt/common.h"
#include <stddef.h>
#include <stdint.h>
#include "ckpt/dtype.h"
#include "ckpt/step.h"
#include "ckpt/tree.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Bound on the JSON header (the reference reader's). */
#define CKPT_SAFETENSORS_MAX_HEADER 100000000u

/* The safetensors name of a dtype ("F32", "BF16", "F8_E4M3"), or NULL if the
 * format has none (complex). Static. */
CKPT_API const char *ckpt_safetensors_dtype_name(ckpt_dtype dt);

/* ---- parsing ---- */

typedef struct ckpt_safetensors_tensor {
	char *name; /* malloc'd */
	ckpt_dtype dtype;
	unsigned ndim;
	uint64_t shape[CKPT_TREE_MAX_NDIM];
	uint64_t begin, end; /* data_offsets: bytes [data_start + begin, data_start + end) */
} ckpt_safetensors_tensor;

typedef struct ckpt_safetensors_header {
	uint64_t data_start; /* 8 + the header length */
	uint64_t data_len;   /* bytes of tensor data: the file is data_start + data_len */
	size_t ntensors;
	ckpt_safetensors_tensor *tensors; /* in the header's order */
	char *metadata; /* "__metadata__" as compact JSON (an object of strings), or NULL */
} ckpt_safetensors_header;

/*
 * The total header size (8 + N) from the first 8 bytes of a file: lets a
 * reader know how much to read before ckpt_safetensors_parse.
 * Returns 0, or CKPT_EINVAL if len < 8 or N is 0 or above
 * CKPT_SAFETENSORS_MAX_HEADER.
 */
CKPT_API int ckpt_safetensors_header_size(uint64_t *out, const void *buf, size_t len);

/*
 * Parse and check the header in buf (at least the 8 + N header bytes; more
 * is ignored) of a file of file_size bytes. *out is malloc'd: free with
 * ckpt_safetensors_header_free. Returns 0, CKPT_EINVAL or CKPT_EUNSUPPORTED
 * (message set), CKPT_ENOMEM.
 */
CKPT_API int ckpt_safetensors_parse(ckpt_safetensors_header **out, const void *buf, size_t len,
				    uint64_t file_size);
/* Read and parse the header of the open file fd (its size from fstat);
 * messages name `what`. Returns the same codes as ckpt_safetensors_parse, and
 * CKPT_EIO. */
CKPT_API int ckpt_safetensors_read_header(ckpt_safetensors_header **out, int fd, const char *what);
CKPT_API void ckpt_safetensors_header_free(ckpt_safetensors_header *h);

/*
 * The PyTree of a parsed file: a metadata-only tree (arrays without data)
 * whose dicts come from splitting each name at sep (sep 0: one flat dict),
 * in the header's order. The root's custom metadata records the file's
 * "__metadata__" ({"safetensors_metadata": {...} or null}) so that an export
 * writes it back unchanged. CKPT_EINVAL if a name is both a tensor and a
 * prefix of another ("a" and "a.b"), or has an empty component.
 * Returns 0, CKPT_EINVAL (message naming the tensor), CKPT_ENOMEM.
 */
CKPT_API int ckpt_safetensors_tree(ckpt_tree **out, const ckpt_safetensors_header *h, char sep);

/* ---- an item as a safetensors file ---- */

#define CKPT_SAFETENSORS_OPTIONS_VERSION 1
typedef struct ckpt_safetensors_options {
	unsigned version;
	char sep; /* joins (export) or splits (import) names; '.' by default, 0: no split */
} ckpt_safetensors_options;
#define CKPT_SAFETENSORS_OPTIONS_INIT {CKPT_SAFETENSORS_OPTIONS_VERSION, '.'}

typedef struct ckpt_safetensors ckpt_safetensors;

/*
 * The PyTree item `item` of step s as a safetensors file, computed from the
 * item's metadata tree alone (no array data is read). Reads of it read only
 * the leaves they overlap (ckpt_leaf_pread, through the step's chunk cache).
 * s is borrowed and must outlive *out. opts may be NULL.
 * Returns 0, CKPT_ENOTFOUND if s has no such PyTree item, CKPT_EINVAL if two
 * leaves join to the same name, CKPT_ENOMEM.
 */
CKPT_API int ckpt_safetensors_open(ckpt_safetensors **out, ckpt_step *s, const char *item,
				   const ckpt_safetensors_options *opts);
CKPT_API uint64_t ckpt_safetensors_size(const ckpt_safetensors *f);
/* Tensors in the file, and leaves of the item left out (listed in __metadata__). */
CKPT_API size_t ckpt_safetensors_tensor_count(const ckpt_safetensors *f);
CKPT_API size_t ckpt_safetensors_left_out_count(const ckpt_safetensors *f);
/* The JSON header (without the 8-byte length and padding); borrowed. */
CKPT_API const char *ckpt_safetensors_header_json(const ckpt_safetensors *f);
/* Read bytes [off, off+len) of the file. Thread-safe. *out_n < len only at the end.
 * Returns 0 or the code of the leaf read that failed (CKPT_ECORRUPT, CKPT_EIO, ...). */
CKPT_API int ckpt_safetensors_pread(size_t *out_n, ckpt_safetensors *f, void *buf, size_t len,
				    uint64_t off);
CKPT_API void ckpt_safetensors_free(ckpt_safetensors *f);

/* ---- conversions ---- */

/*
 * Write the item of s as the safetensors file `path`, atomically (a
 * temporary file beside it, fsync, rename; an existing file is replaced).
 * opts may be NULL. Returns 0 or the code of ckpt_safetensors_open, of a
 * leaf read, or CKPT_EIO for the output file (which is then left untouched).
 */
CKPT_API int ckpt_safetensors_export(ckpt_step *s, const char *item, const char *path,
				     const ckpt_safetensors_options *opts);

/*
 * Save the safetensors file `file` as step `step` of root, with one PyTree
 * item named `item`, atomically like ckpt_interchange_save: the header is
 * checked before the step is started, and nothing is left on failure.
 * opts and wopts may be NULL. Returns 0, CKPT_EINVAL/CKPT_EUNSUPPORTED (bad
 * file or item name, message naming it), CKPT_ENOTFOUND (no such file),
 * CKPT_EEXISTS (the step exists and !wopts->force), CKPT_EIO, CKPT_ENOMEM.
 */
CKPT_API int ckpt_safetensors_import(const char *root, uint64_t step, const char *item,
				     const char *file, const ckpt_safetensors_options *opts,
				     const ckpt_step_writer_options *wopts);

#ifdef __cplusplus
}
#endif
#endif
