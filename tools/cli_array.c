/*
 * cli_array.c — an array leaf's elements as doubles, read a piece at a time
 * (for `ckpt diff` and `ckpt cat --stats`): only ckpt_leaf_pread /
 * ckpt_value_pread and ckpt_dtype_cast, so memory stays at one piece
 * whatever the array's size.
 */
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

int cli_array_doubles(const cli_array *a, uint64_t first, size_t count, double *out)
{
	size_t esz = ckpt_dtype_size(a->dt), bytes = count * esz, got = 0;
	int cplx = a->dt == CKPT_DTYPE_COMPLEX64 || a->dt == CKPT_DTYPE_COMPLEX128;
	unsigned char *raw = malloc(bytes ? bytes : 1);
	int rc = 0;

	if (!raw)
		return cli_errorf("out of memory");
	while (got < bytes) {
		size_t n = 0;
		uint64_t off = a->data_off + first * esz + got;
		if ((a->leaf ? ckpt_leaf_pread(&n, a->leaf, raw + got, bytes - got, off)
			     : ckpt_value_pread(&n, a->value, raw + got, bytes - got, off)) < 0) {
			rc = cli_fail();
			goto done;
		}
		if (n == 0) {
			rc = cli_errorf("%s: shorter than its shape", a->name);
			goto done;
		}
		got += n;
	}
	if (ckpt_dtype_cast(out, cplx ? CKPT_DTYPE_COMPLEX128 : CKPT_DTYPE_FLOAT64, raw, a->dt,
			    count) < 0)
		rc = cli_fail();
done:
	free(raw);
	return rc;
}
