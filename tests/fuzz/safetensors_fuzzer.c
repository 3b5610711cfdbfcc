/*
 * safetensors_fuzzer.c — fuzz target for the safetensors header parser.
 *
 * Parses the input as a whole safetensors file (its length is the file
 * size); when it parses, checks invariant 3 of safetensors.c (the tensors
 * tile the data, each spanning its dtype and shape) and builds the PyTree
 * with '.' and with no separator.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "ckpt/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ckpt_safetensors_header *h = NULL;
	ckpt_tree *t = NULL;
	uint64_t covered = 0;

	if (ckpt_safetensors_parse(&h, data, size, size) != 0)
		return 0;
	assert(h->data_start + h->data_len == size);
	for (size_t i = 0; i < h->ntensors; i++) {
		const ckpt_safetensors_tensor *x = &h->tensors[i];
		uint64_t n = ckpt_dtype_size(x->dtype);
		for (unsigned d = 0; d < x->ndim; d++)
			n *= x->shape[d];
		assert(x->begin <= x->end && x->end <= h->data_len && x->end - x->begin == n);
		covered += x->end - x->begin;
	}
	assert(covered == h->data_len);
	if (ckpt_safetensors_tree(&t, h, '.') == 0)
		ckpt_tree_free(t);
	t = NULL;
	if (ckpt_safetensors_tree(&t, h, 0) == 0)
		ckpt_tree_free(t);
	ckpt_safetensors_header_free(h);
	return 0;
}
