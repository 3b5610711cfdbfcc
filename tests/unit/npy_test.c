/*
 * npy_test.c — .npy headers byte for byte against numpy 1.24, the tolerant
 * parser, every refusal, byte order / Fortran order conversion, files.
 *
 * With CKPT_NPY_DIR set, runs only test_numpy_dir (driven by
 * tests/e2e/npy_numpy.sh): for each X.npy there, reads it, checks the data
 * against X.raw (numpy's C-order little-endian bytes), checks each
 * X.cast-DTYPE.raw against ckpt_dtype_cast of the data, and writes
 * X.out.npy for numpy to compare.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ckpt/error.h"
#include "ckpt/npy.h"

/* Headers as numpy 1.24.2 np.save writes them (dict text and total length). */
static const struct {
	ckpt_dtype dt;
	unsigned ndim;
	uint64_t shape[32];
	size_t total;
	const char *dict;
} numpy_headers[] = {
    {CKPT_DTYPE_FLOAT32, 0, {0}, 128, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"},
    {CKPT_DTYPE_FLOAT32, 1, {3}, 128, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"},
    {CKPT_DTYPE_INT64,
     3,
     {2, 3, 4},
     128,
     "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3, 4), }"},
    {CKPT_DTYPE_BOOL,
     2,
     {0, 3},
     128,
     "{'descr': '|b1', 'fortran_order': False, 'shape': (0, 3), }"},
    {CKPT_DTYPE_UINT8,
     2,
     {123456789012, 1},
     128,
     "{'descr': '|u1', 'fortran_order': False, 'shape': (123456789012, 1), }"},
    {CKPT_DTYPE_COMPLEX128,
     1,
     {5},
     128,
     "{'descr': '<c16', 'fortran_order': False, 'shape': (5,), }"},
    {CKPT_DTYPE_FLOAT16,
     32,
     {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
     192,
     "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
     "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), }"},
    {CKPT_DTYPE_INT8,
     2,
     {1000000000000000000, 0},
     128,
     "{'descr': '|i1', 'fortran_order': False, 'shape': (1000000000000000000, 0), }"},
    {CKPT_DTYPE_UINT16,
     1,
     {9223372036854775807},
     128,
     "{'descr': '<u2', 'fortran_order': False, 'shape': (9223372036854775807,), }"},
    {CKPT_DTYPE_BFLOAT16,
     2,
     {2, 2},
     128,
     "{'descr': [('bfloat16', '<u2')], 'fortran_order': False, 'shape': (2, 2), }"},
    {CKPT_DTYPE_FLOAT8_E4M3FN,
     1,
     {7},
     128,
     "{'descr': [('float8_e4m3fn', '|u1')], 'fortran_order': False, 'shape': (7,), }"},
    {CKPT_DTYPE_FLOAT8_E5M2,
     0,
     {0},
     128,
     "{'descr': [('float8_e5m2', '|u1')], 'fortran_order': False, 'shape': (), }"},
    {CKPT_DTYPE_COMPLEX64,
     23,
     {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23},
     192,
     "{'descr': '<c8', 'fortran_order': False, 'shape': (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, "
     "13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23), }"},
    {CKPT_DTYPE_FLOAT64,
     1,
     {12345678},
     128,
     "{'descr': '<f8', 'fortran_order': False, 'shape': (12345678,), }"},
    /* already aligned without padding: numpy still adds 64 spaces */
    {CKPT_DTYPE_FLOAT32,
     14,
     {1, 777, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
     192,
     "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 777, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
     "1, 1), }"},
};

static void test_format_matches_numpy(void **state)
{
	for (size_t i = 0; i < sizeof(numpy_headers) / sizeof(numpy_headers[0]); i++) {
		unsigned char got[512], want[512];
		const size_t dl = strlen(numpy_headers[i].dict), total = numpy_headers[i].total;
		size_t len = 0;
		ckpt_npy_header h;

		memcpy(want, "\x93NUMPY\x01\x00", 8);
		want[8] = (unsigned char)((total - 10) & 0xff);
		want[9] = (unsigned char)((total - 10) >> 8);
		memcpy(want + 10, numpy_headers[i].dict, dl);
		memset(want + 10 + dl, ' ', total - 11 - dl);
		want[total - 1] = '\n';
		assert_int_equal(ckpt_npy_header_len(numpy_headers[i].dt, numpy_headers[i].ndim,
						     numpy_headers[i].shape),
				 total);
		assert_int_equal(ckpt_npy_format_header(got, sizeof(got), &len, numpy_headers[i].dt,
							numpy_headers[i].ndim,
							numpy_headers[i].shape),
				 0);
		assert_int_equal(len, total);
		assert_memory_equal(got, want, total);
		/* and it parses back, unless its byte size overflows (1 * 2 * ... * 23) */
		if (numpy_headers[i].ndim == 23) {
			assert_int_equal(ckpt_npy_parse_header(&h, got, len), CKPT_EINVAL);
			continue;
		}
		if (ckpt_npy_parse_header(&h, got, len) != 0)
			fail_msg("case %zu: %s", i, ckpt_error_last());
		assert_int_equal(h.dtype, numpy_headers[i].dt);
		assert_int_equal(h.ndim, numpy_headers[i].ndim);
		assert_memory_equal(h.shape, numpy_headers[i].shape, h.ndim * sizeof(uint64_t));
		assert_int_equal(h.header_len, total);
		assert_int_equal(h.major, 1);
		assert_false(h.big_endian || h.fortran_order);
	}
}

static void test_format_refuses(void **state)
{
	unsigned char buf[512];
	const uint64_t shape[2] = {2, 3}, huge[1] = {UINT64_MAX};
	size_t len;

	assert_int_equal(ckpt_npy_header_len(CKPT_DTYPE_INVALID, 0, NULL), 0);
	assert_int_equal(ckpt_npy_header_len(CKPT_DTYPE_INT8, 33, shape), 0);
	assert_int_equal(ckpt_npy_header_len(CKPT_DTYPE_INT8, 1, huge), 0);
	assert_int_equal(ckpt_npy_format_header(buf, sizeof(buf), &len, CKPT_DTYPE_COUNT, 2, shape),
			 CKPT_EINVAL);
	assert_int_equal(ckpt_npy_format_header(buf, 100, &len, CKPT_DTYPE_INT8, 2, shape),
			 CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "128"));
}

/* Build a header of the given version around a dict (numpy-style padding). */
static size_t make(unsigned char *buf, unsigned major, const char *dict)
{
	const size_t prefix = major == 1 ? 10 : 12, dl = strlen(dict);
	size_t total = prefix + dl + 1;

	total += (64 - total % 64) % 64;
	memcpy(buf, "\x93NUMPY", 6);
	buf[6] = (unsigned char)major;
	buf[7] = 0;
	for (size_t i = 0; i < prefix - 8; i++)
		buf[8 + i] = (unsigned char)((total - prefix) >> (8 * i));
	memcpy(buf + prefix, dict, dl);
	memset(buf + prefix + dl, ' ', total - prefix - dl - 1);
	buf[total - 1] = '\n';
	return total;
}

static int parse(ckpt_npy_header *h, unsigned major, const char *dict)
{
	unsigned char buf[4096];
	const size_t n = make(buf, major, dict);

	return ckpt_npy_parse_header(h, buf, n);
}

static void test_parse_tolerant(void **state)
{
	ckpt_npy_header h;

	assert_int_equal(parse(&h, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
			 0);
	assert_int_equal(h.major, 2);
	assert_int_equal(h.header_len, 128);
	assert_int_equal(h.data_len, 12);
	assert_int_equal(
	    parse(&h, 3, "{\"shape\":(2,3,),\"fortran_order\":True,\"descr\":\">f8\"}"), 0);
	assert_int_equal(h.major, 3);
	assert_int_equal(h.dtype, CKPT_DTYPE_FLOAT64);
	assert_true(h.big_endian && h.fortran_order);
	assert_int_equal(h.ndim, 2);
	assert_int_equal(h.shape[1], 3);
	assert_int_equal(h.nelems, 6);
	assert_int_equal(h.data_len, 48);
	assert_int_equal(parse(&h, 1,
			       "{\n\t'fortran_order' : False ,\n 'shape' : ( 4L , 5l ) ,"
			       "'descr':'=i2',\n}"),
			 0);
	assert_int_equal(h.dtype, CKPT_DTYPE_INT16);
	assert_false(h.big_endian);
	assert_int_equal(h.shape[0], 4);
	assert_int_equal(h.shape[1], 5);
	assert_int_equal(parse(&h, 1, "{'descr': '>u1', 'fortran_order': False, 'shape': ()}"), 0);
	assert_int_equal(h.dtype, CKPT_DTYPE_UINT8);
	assert_false(h.big_endian); /* meaningless for one byte */
	assert_int_equal(h.ndim, 0);
	assert_int_equal(h.nelems, 1);
	assert_int_equal(parse(&h, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (0, 7)}"),
			 0);
	assert_int_equal(h.nelems, 0);
	assert_int_equal(h.data_len, 0);
	assert_int_equal(parse(&h, 1, "{'descr': '>c8', 'fortran_order': False, 'shape': (1,)}"),
			 0);
	assert_true(h.dtype == CKPT_DTYPE_COMPLEX64 && h.big_endian);
	assert_int_equal(
	    parse(&h, 1, "{'descr': 'float32', 'fortran_order': False, 'shape': (1,)}"), 0);
	assert_int_equal(h.dtype, CKPT_DTYPE_FLOAT32);
	/* the ML structured descrs, either byte order, trailing commas */
	assert_int_equal(parse(&h, 1,
			       "{'descr': [('bfloat16', '>u2')], 'fortran_order': False, "
			       "'shape': (2,)}"),
			 0);
	assert_true(h.dtype == CKPT_DTYPE_BFLOAT16 && h.big_endian);
	assert_int_equal(parse(&h, 1,
			       "{'descr': [ ( \"float8_e5m2\" , 'u1' , ) , ] , "
			       "'fortran_order': False, 'shape': (2,)}"),
			 0);
	assert_int_equal(h.dtype, CKPT_DTYPE_FLOAT8_E5M2);
	assert_int_equal(parse(&h, 1,
			       "{'descr': [('float8_e4m3fn', '|u1')], 'fortran_order': False, "
			       "'shape': (2,)}"),
			 0);
	assert_int_equal(h.dtype, CKPT_DTYPE_FLOAT8_E4M3FN);
	/* ignores bytes after the header (the data) */
	{
		unsigned char buf[256];
		size_t n = make(buf, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1,)}");
		size_t hs;

		memset(buf + n, 0xAB, 4);
		assert_int_equal(ckpt_npy_header_size(&hs, buf, 10), 0);
		assert_int_equal(hs, n);
		assert_int_equal(ckpt_npy_parse_header(&h, buf, n + 4), 0);
		assert_int_equal(h.header_len, n);
	}
}

/* Each malformed or unsupported header: its code and a word of its message. */
static void test_parse_refuses(void **state)
{
	static const struct {
		int code;
		const char *dict, *msg;
	} bad[] = {
	    {CKPT_EINVAL, "{'descr': '<f4', 'shape': (3,)}", "missing key 'fortran_order'"},
	    {CKPT_EINVAL, "{'fortran_order': False, 'shape': (3,)}", "missing key 'descr'"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}",
	     "duplicate key 'descr'"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}",
	     "unexpected key 'x'"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}", "fortran_order"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': 'False', 'shape': ()}",
	     "fortran_order"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': ()}",
	     "fortran_order"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "negative"},
	    {CKPT_EINVAL,
	     "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775808,)}",
	     "too large"},
	    {CKPT_EINVAL,
	     "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
	     "too large"},
	    {CKPT_EINVAL,
	     "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
	     "overflow"},
	    {CKPT_EINVAL,
	     "{'descr': '<f8', 'fortran_order': False, 'shape': (3037000500, 3037000500)}",
	     "overflow"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", "tuple"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': [3]}", "tuple"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,,)}", "integer"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4}", "shape"},
	    {CKPT_EINVAL,
	     "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
	     "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1)}",
	     "more than 32"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': (), '}", "in string"},
	    {CKPT_EINVAL, "{'descr': '<f4' 'fortran_order': False, 'shape': ()}", "expected"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': ()} x", "trailing"},
	    {CKPT_EINVAL, "['descr', '<f4']", "expected '{'"},
	    {CKPT_EINVAL, "", "expected '{'"},
	    {CKPT_EINVAL, "{'descr': '<f4', 'fortran_order': False, 'shape': ()", "expected"},
	    {CKPT_EINVAL,
	     "{'descr': [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]"
	     "]]]]]]]]]]]]]]]]]]]]]]]]]]], 'fortran_order': False, 'shape': ()}",
	     "too deep"},
	    {CKPT_EUNSUPPORTED, "{'descr': '|O', 'fortran_order': False, 'shape': ()}", "object"},
	    {CKPT_EUNSUPPORTED, "{'descr': '<U5', 'fortran_order': False, 'shape': ()}", "'<U5'"},
	    {CKPT_EUNSUPPORTED, "{'descr': '|S3', 'fortran_order': False, 'shape': ()}", "'|S3'"},
	    {CKPT_EUNSUPPORTED, "{'descr': '|V2', 'fortran_order': False, 'shape': ()}", "void"},
	    {CKPT_EUNSUPPORTED, "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': ()}",
	     "datetime"},
	    {CKPT_EUNSUPPORTED, "{'descr': '<m8[s]', 'fortran_order': False, 'shape': ()}",
	     "timedelta"},
	    {CKPT_EUNSUPPORTED, "{'descr': '<f16', 'fortran_order': False, 'shape': ()}", "'<f16'"},
	    {CKPT_EUNSUPPORTED, "{'descr': '<c32', 'fortran_order': False, 'shape': ()}", "'<c32'"},
	    {CKPT_EUNSUPPORTED, "{'descr': 'xyz', 'fortran_order': False, 'shape': ()}", "'xyz'"},
	    {CKPT_EUNSUPPORTED, "{'descr': '', 'fortran_order': False, 'shape': ()}", "dtype ''"},
	    {CKPT_EUNSUPPORTED, "{'descr': 'bfloat16', 'fortran_order': False, 'shape': ()}",
	     "bfloat16"},
	    {CKPT_EUNSUPPORTED,
	     "{'descr': [('a', '<f4'), ('b', '<i8')], 'fortran_order': False, 'shape': ()}",
	     "structured"},
	    {CKPT_EUNSUPPORTED,
	     "{'descr': [('bfloat16', '<u4')], 'fortran_order': False, 'shape': ()}", "structured"},
	    {CKPT_EUNSUPPORTED,
	     "{'descr': [('bfloat16', '<u2', (2,))], 'fortran_order': False, 'shape': ()}",
	     "bfloat16"},
	    {CKPT_EUNSUPPORTED, "{'descr': 5, 'fortran_order': False, 'shape': ()}", "descr 5"},
	};
	ckpt_npy_header h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const int rc = parse(&h, 1, bad[i].dict);

		if (rc != bad[i].code || !strstr(ckpt_error_last(), bad[i].msg))
			fail_msg("case %zu: %s\n  got %s '%s', want %s '%s'", i, bad[i].dict,
				 ckpt_error_name(rc), ckpt_error_last(),
				 ckpt_error_name(bad[i].code), bad[i].msg);
	}
}

static void test_prefix_refuses(void **state)
{
	unsigned char buf[256];
	const size_t n = make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}");
	ckpt_npy_header h;
	size_t hs;

	assert_int_equal(ckpt_npy_header_size(&hs, buf, 9), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "truncated"));
	assert_int_equal(ckpt_npy_parse_header(&h, buf, 5), CKPT_EINVAL);
	assert_int_equal(ckpt_npy_parse_header(&h, buf, n - 1), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "truncated"));
	buf[8] = 0xff; /* header length beyond the buffer */
	assert_int_equal(ckpt_npy_parse_header(&h, buf, n), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "longer than"));
	make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}");
	buf[0] = 0x92;
	assert_int_equal(ckpt_npy_parse_header(&h, buf, n), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "magic"));
	buf[0] = 0x93;
	buf[6] = 4;
	assert_int_equal(ckpt_npy_header_size(&hs, buf, n), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "version 4.0"));
	buf[6] = 1;
	buf[7] = 1;
	assert_int_equal(ckpt_npy_parse_header(&h, buf, n), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "version 1.1"));
	make(buf, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}");
	assert_int_equal(ckpt_npy_header_size(&hs, buf, 11), CKPT_EINVAL); /* v2 needs 12 */
	assert_int_equal(ckpt_npy_header_size(&hs, buf, 12), 0);
	buf[11] = 0x7f; /* a 2 GB header is refused before anyone buffers it */
	assert_int_equal(ckpt_npy_header_size(&hs, buf, 12), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "exceeds"));
}

/* Fill n elements of esz bytes with distinct byte patterns. */
static void fill(unsigned char *p, size_t n, size_t esz)
{
	for (size_t i = 0; i < n * esz; i++)
		p[i] = (unsigned char)(i * 7 + i / 251);
}

/* Fortran and/or big-endian data against a naive conversion. */
static void check_convert(ckpt_dtype dt, unsigned ndim, const uint64_t *shape, int fortran, int big)
{
	const size_t esz = ckpt_dtype_size(dt);
	const size_t unit =
	    dt == CKPT_DTYPE_COMPLEX64 || dt == CKPT_DTYPE_COMPLEX128 ? esz / 2 : esz;
	ckpt_npy_header h = {0};
	size_t n = 1, idx[CKPT_NPY_MAX_NDIM] = {0};
	unsigned char *src, *want, *got;

	for (unsigned i = 0; i < ndim; i++)
		n *= shape[i];
	h.dtype = dt;
	h.ndim = ndim;
	if (ndim > 0)
		memcpy(h.shape, shape, ndim * sizeof(uint64_t));
	h.fortran_order = fortran;
	h.big_endian = big;
	h.nelems = n;
	h.data_len = n * esz;
	src = malloc(n * esz + 1);
	want = malloc(n * esz + 1);
	got = malloc(n * esz + 1);
	assert_true(src && want && got);
	fill(src, n, esz);
	for (size_t c = 0; c < n; c++) { /* c: C-order index; idx its multi-index */
		size_t f = 0, stride = 1;

		for (unsigned k = 0; k < ndim; k++) {
			f += idx[k] * stride;
			stride *= shape[k];
		}
		if (!fortran)
			f = c;
		for (size_t b = 0; b < esz; b++) {
			const size_t u = b / unit * unit, ub = b % unit;

			want[c * esz + b] = src[f * esz + u + (big ? unit - 1 - ub : ub)];
		}
		for (int k = (int)ndim - 1; k >= 0; k--) {
			if (++idx[k] < shape[k])
				break;
			idx[k] = 0;
		}
	}
	assert_int_equal(ckpt_npy_to_c_le(got, src, &h), 0);
	assert_memory_equal(got, want, n * esz);
	free(src);
	free(want);
	free(got);
}

static void test_to_c_le(void **state)
{
	const uint64_t s2[2] = {37, 45}, s3[3] = {3, 70, 5}, s4[4] = {2, 3, 4, 5};
	const uint64_t s5[5] = {1, 2, 1, 3, 1}, s0[2] = {0, 5}, s1[1] = {100};
	const ckpt_dtype all[] = {CKPT_DTYPE_UINT8, CKPT_DTYPE_BFLOAT16,  CKPT_DTYPE_FLOAT32,
				  CKPT_DTYPE_INT64, CKPT_DTYPE_COMPLEX64, CKPT_DTYPE_COMPLEX128};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		for (int f = 0; f < 2; f++) {
			for (int b = 0; b < 2; b++) {
				check_convert(all[i], 2, s2, f, b);
				check_convert(all[i], 3, s3, f, b);
				check_convert(all[i], 4, s4, f, b);
				check_convert(all[i], 5, s5, f, b);
				check_convert(all[i], 2, s0, f, b);
				check_convert(all[i], 1, s1, f, b);
				check_convert(all[i], 0, NULL, f, b);
			}
		}
	}
	/* big 2-D: crosses many tiles, not a multiple of the tile size */
	{
		const uint64_t big[2] = {1000, 333};

		check_convert(CKPT_DTYPE_FLOAT32, 2, big, 1, 1);
	}
	/* a header whose data_len disagrees with its shape is refused */
	{
		ckpt_npy_header h = {.dtype = CKPT_DTYPE_INT32,
				     .ndim = 1,
				     .shape = {4},
				     .nelems = 4,
				     .data_len = 15};
		unsigned char a[16] = {0}, b[16];

		assert_int_equal(ckpt_npy_to_c_le(b, a, &h), CKPT_EINVAL);
	}
}

static char tmpdir[] = "/tmp/npy_test.XXXXXX";

static void path_of(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void test_files(void **state)
{
	char path[256];
	const uint64_t shape[2] = {2, 3};
	const int32_t vals[6] = {1, -2, 3, -4, 5, 0x7fffffff};
	unsigned char raw[512];
	ckpt_npy_header h;
	void *data;
	FILE *f;
	size_t n;

	assert_non_null(mkdtemp(tmpdir));
	path_of(path, sizeof(path), "a.npy");
	assert_int_equal(ckpt_npy_write_file(path, CKPT_DTYPE_INT32, 2, shape, vals), 0);
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), 0);
	assert_int_equal(h.dtype, CKPT_DTYPE_INT32);
	assert_int_equal(h.data_len, sizeof(vals));
	assert_memory_equal(data, vals, sizeof(vals));
	free(data);
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(raw, 1, sizeof(raw), f);
	fclose(f);
	assert_int_equal(n, 128 + sizeof(vals));

	/* truncated and trailing: both numbers in the message */
	path_of(path, sizeof(path), "short.npy");
	write_bytes(path, raw, n - 1);
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), CKPT_EINVAL);
	assert_null(data);
	assert_non_null(strstr(ckpt_error_last(), "short.npy"));
	assert_non_null(strstr(ckpt_error_last(), "24"));
	assert_non_null(strstr(ckpt_error_last(), "23"));
	raw[n] = 0;
	path_of(path, sizeof(path), "long.npy");
	write_bytes(path, raw, n + 1);
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "25"));
	assert_non_null(strstr(ckpt_error_last(), "trailing"));
	path_of(path, sizeof(path), "hdr.npy"); /* cut inside the header */
	write_bytes(path, raw, 60);
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "hdr.npy"));
	write_bytes(path, raw, 3);
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), CKPT_EINVAL);
	path_of(path, sizeof(path), "missing.npy");
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), CKPT_ENOTFOUND);
	assert_non_null(strstr(ckpt_error_last(), "missing.npy"));
	/* unsupported dtype names the file and the dtype */
	n = make(raw, 1, "{'descr': '|O', 'fortran_order': False, 'shape': ()}");
	path_of(path, sizeof(path), "obj.npy");
	write_bytes(path, raw, n + 8);
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), CKPT_EUNSUPPORTED);
	assert_non_null(strstr(ckpt_error_last(), "obj.npy"));
	assert_non_null(strstr(ckpt_error_last(), "'|O'"));

	/* big-endian Fortran int16 2x3 is converted on read */
	n = make(raw, 1, "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }");
	for (int c = 0; c < 3; c++) {
		for (int r = 0; r < 2; r++) { /* element (r, c) = 10r + c, column-major */
			raw[n + 2 * (c * 2 + r)] = 0;
			raw[n + 2 * (c * 2 + r) + 1] = (unsigned char)(10 * r + c);
		}
	}
	path_of(path, sizeof(path), "bef.npy");
	write_bytes(path, raw, n + 12);
	assert_int_equal(ckpt_npy_read_file(&h, &data, path), 0);
	assert_false(h.big_endian || h.fortran_order);
	{
		const int16_t want[6] = {0, 1, 2, 10, 11, 12};

		assert_memory_equal(data, want, sizeof(want));
	}
	free(data);
	/* 0-d and empty */
	path_of(path, sizeof(path), "empty.npy");
	{
		const uint64_t e[2] = {0, 3};

		assert_int_equal(ckpt_npy_write_file(path, CKPT_DTYPE_FLOAT64, 2, e, NULL), 0);
		assert_int_equal(ckpt_npy_read_file(&h, &data, path), 0);
		assert_non_null(data);
		assert_int_equal(h.data_len, 0);
		free(data);
	}
	path_of(path, sizeof(path), "nodir/x.npy");
	assert_int_equal(ckpt_npy_write_file(path, CKPT_DTYPE_INT32, 2, shape, vals), CKPT_EIO);
	assert_non_null(strstr(ckpt_error_last(), "nodir/x.npy"));
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		assert_int_equal(system(cmd), 0);
	}
}

/* ---- CKPT_NPY_DIR: files numpy wrote (tests/e2e/npy_numpy.sh) ---- */

static void *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p = NULL;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (p = malloc((size_t)len + 1)) && fread(p, 1, (size_t)len, f) == (size_t)len)
		*n = (size_t)len;
	else if (p) {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

static void check_numpy_file(const char *dir, const char *name)
{
	char path[1024], other[1024], stem[512];
	ckpt_npy_header h;
	void *data, *expect;
	size_t n, casts = 0;
	DIR *d;
	struct dirent *e;

	snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(name) - 4), name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (ckpt_npy_read_file(&h, &data, path) != 0)
		fail_msg("%s: %s", path, ckpt_error_last());
	snprintf(other, sizeof(other), "%s/%s.raw", dir, stem);
	expect = slurp(other, &n);
	assert_non_null(expect);
	if (n != h.data_len || memcmp(expect, data, n) != 0)
		fail_msg("%s: data differs from %s", path, other);
	free(expect);
	/* every X.cast-DTYPE.raw: our cast of the data must equal numpy's */
	assert_non_null(d = opendir(dir));
	while ((e = readdir(d))) {
		const size_t sl = strlen(stem);
		ckpt_dtype dt;
		unsigned char *out;
		char dtname[64];

		if (strncmp(e->d_name, stem, sl) != 0 || strncmp(e->d_name + sl, ".cast-", 6) != 0)
			continue;
		snprintf(dtname, sizeof(dtname), "%.*s", (int)(strlen(e->d_name) - sl - 10),
			 e->d_name + sl + 6);
		assert_int_equal(ckpt_dtype_from_name(&dt, dtname), 0);
		snprintf(other, sizeof(other), "%s/%s", dir, e->d_name);
		assert_non_null(expect = slurp(other, &n));
		assert_int_equal(n, h.nelems * ckpt_dtype_size(dt));
		assert_non_null(out = malloc(n + 1));
		assert_int_equal(ckpt_dtype_cast(out, dt, data, h.dtype, h.nelems), 0);
		for (size_t i = 0; i < h.nelems; i++) {
			const size_t sz = ckpt_dtype_size(dt);

			if (memcmp(out + i * sz, (unsigned char *)expect + i * sz, sz) != 0)
				fail_msg("%s: element %zu cast %s -> %s differs from numpy", path,
					 i, ckpt_dtype_name(h.dtype), dtname);
		}
		casts++;
		free(out);
		free(expect);
	}
	closedir(d);
	snprintf(other, sizeof(other), "%s/%s.out.npy", dir, stem);
	if (ckpt_npy_write_file(other, h.dtype, h.ndim, h.shape, data) != 0)
		fail_msg("%s", ckpt_error_last());
	printf("ok %s (%s, ndim %u, %zu casts)\n", name, ckpt_dtype_name(h.dtype), h.ndim, casts);
	free(data);
}

static void test_numpy_dir(void **state)
{
	const char *dir = getenv("CKPT_NPY_DIR");
	DIR *d;
	struct dirent *e;
	int count = 0;

	if (!dir)
		skip();
	assert_non_null(d = opendir(dir));
	while ((e = readdir(d))) {
		const size_t len = strlen(e->d_name);

		if (len > 4 && strcmp(e->d_name + len - 4, ".npy") == 0 &&
		    !(len > 8 && strcmp(e->d_name + len - 8, ".out.npy") == 0)) {
			check_numpy_file(dir, e->d_name);
			count++;
		}
	}
	closedir(d);
	assert_true(count > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_matches_numpy),
	    cmocka_unit_test(test_format_refuses),
	    cmocka_unit_test(test_parse_tolerant),
	    cmocka_unit_test(test_parse_refuses),
	    cmocka_unit_test(test_prefix_refuses),
	    cmocka_unit_test(test_to_c_le),
	    cmocka_unit_test(test_files),
	};
	const struct CMUnitTest numpy_tests[] = {
	    cmocka_unit_test(test_numpy_dir),
	};

	if (getenv("CKPT_NPY_DIR"))
		return cmocka_run_group_tests(numpy_tests, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
