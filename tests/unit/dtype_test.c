/*
 * dtype_test.c — dtype names and sizes, and ckpt_dtype_cast against values
 * numpy and ml_dtypes give (expected bit patterns written out by hand from
 * the formats' definitions and checked with numpy where it has the type).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ckpt/dtype.h"
#include "ckpt/error.h"

static uint64_t f64b(double d)
{
	uint64_t b;

	memcpy(&b, &d, 8);
	return b;
}

static double f64(uint64_t b)
{
	double d;

	memcpy(&d, &b, 8);
	return d;
}

static uint32_t f32b(float f)
{
	uint32_t b;

	memcpy(&b, &f, 4);
	return b;
}

static float f32(uint32_t b)
{
	float f;

	memcpy(&f, &b, 4);
	return f;
}

/* Cast one float64 to dt; returns the little-endian bits. */
static uint64_t from_f64(ckpt_dtype dt, double x)
{
	unsigned char out[16] = {0};
	uint64_t v = 0;

	assert_int_equal(ckpt_dtype_cast(out, dt, &x, CKPT_DTYPE_FLOAT64, 1), 0);
	for (size_t i = 0; i < ckpt_dtype_size(dt) && i < 8; i++)
		v |= (uint64_t)out[i] << (8 * i);
	return v;
}

static uint64_t from_f32(ckpt_dtype dt, float x)
{
	unsigned char out[16] = {0};
	uint64_t v = 0;

	assert_int_equal(ckpt_dtype_cast(out, dt, &x, CKPT_DTYPE_FLOAT32, 1), 0);
	for (size_t i = 0; i < ckpt_dtype_size(dt) && i < 8; i++)
		v |= (uint64_t)out[i] << (8 * i);
	return v;
}

/* Decode the little-endian bits of one dt element to float64. */
static double to_f64(ckpt_dtype dt, uint64_t bits)
{
	unsigned char in[16] = {0};
	double d;

	for (size_t i = 0; i < ckpt_dtype_size(dt) && i < 8; i++)
		in[i] = (unsigned char)(bits >> (8 * i));
	assert_int_equal(ckpt_dtype_cast(&d, CKPT_DTYPE_FLOAT64, in, dt, 1), 0);
	return d;
}

static void test_names_sizes(void **state)
{
	static const size_t sizes[CKPT_DTYPE_COUNT] = {0, 1, 1, 2, 4, 8,  1, 2, 4,
						       8, 2, 4, 8, 8, 16, 2, 1, 1};
	ckpt_dtype dt;

	for (int t = 0; t < CKPT_DTYPE_COUNT; t++)
		assert_int_equal(ckpt_dtype_size((ckpt_dtype)t), sizes[t]);
	assert_int_equal(ckpt_dtype_size(CKPT_DTYPE_COUNT), 0);
	assert_int_equal(ckpt_dtype_size((ckpt_dtype)-1), 0);
	assert_string_equal(ckpt_dtype_name(CKPT_DTYPE_BFLOAT16), "bfloat16");
	assert_string_equal(ckpt_dtype_name(CKPT_DTYPE_FLOAT8_E4M3FN), "float8_e4m3fn");
	assert_string_equal(ckpt_dtype_name(CKPT_DTYPE_COMPLEX128), "complex128");
	assert_string_equal(ckpt_dtype_name(CKPT_DTYPE_INVALID), "invalid");
	assert_string_equal(ckpt_dtype_name((ckpt_dtype)99), "invalid");
	for (int t = 1; t < CKPT_DTYPE_COUNT; t++) {
		assert_int_equal(ckpt_dtype_from_name(&dt, ckpt_dtype_name((ckpt_dtype)t)), 0);
		assert_int_equal(dt, t);
	}
	assert_int_equal(ckpt_dtype_from_name(&dt, "float128"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "float128"));
	assert_int_equal(ckpt_dtype_from_name(&dt, "invalid"), CKPT_EINVAL);
}

static void test_invalid(void **state)
{
	unsigned char a[16] = {0}, b[16] = {0};

	assert_int_equal(ckpt_dtype_cast(a, CKPT_DTYPE_INVALID, b, CKPT_DTYPE_INT8, 1),
			 CKPT_EINVAL);
	assert_int_equal(ckpt_dtype_cast(a, CKPT_DTYPE_INT8, b, CKPT_DTYPE_COUNT, 1), CKPT_EINVAL);
	assert_int_equal(ckpt_dtype_cast(a, CKPT_DTYPE_INT8, b, CKPT_DTYPE_FLOAT32, 0), 0);
}

static void test_bfloat16(void **state)
{
	const ckpt_dtype t = CKPT_DTYPE_BFLOAT16;

	assert_int_equal(from_f64(t, 1.0), 0x3F80);
	assert_int_equal(from_f64(t, -2.0), 0xC000);
	assert_int_equal(from_f64(t, 0.0), 0x0000);
	assert_int_equal(from_f64(t, -0.0), 0x8000);
	assert_int_equal(from_f64(t, INFINITY), 0x7F80);
	assert_int_equal(from_f64(t, -INFINITY), 0xFF80);
	assert_int_equal(from_f64(t, NAN), 0x7FC0);
	assert_int_equal(from_f64(t, 3.140625), 0x4049);
	/* round half to even on the float32 bits */
	assert_int_equal(from_f32(t, f32(0x3F808000)), 0x3F80);
	assert_int_equal(from_f32(t, f32(0x3F818000)), 0x3F82);
	assert_int_equal(from_f32(t, f32(0x3F808001)), 0x3F81);
	assert_int_equal(from_f32(t, f32(0x3F80FFFF)), 0x3F81);
	/* float32 max rounds up to infinity; the largest bf16 stays */
	assert_int_equal(from_f32(t, f32(0x7F7FFFFF)), 0x7F80);
	assert_int_equal(from_f32(t, f32(0x7F7F0000)), 0x7F7F);
	/* subnormals: float32 denormals keep their top bits */
	assert_int_equal(from_f32(t, f32(0x00010000)), 0x0001);
	assert_int_equal(from_f32(t, f32(0x00008000)), 0x0000); /* tie to even */
	assert_int_equal(from_f32(t, f32(0x00018000)), 0x0002); /* tie to even */
	assert_true(to_f64(t, 0x3F80) == 1.0);
	assert_true(to_f64(t, 0x0001) == ldexp(1.0, -133));
	assert_true(isinf(to_f64(t, 0xFF80)) && to_f64(t, 0xFF80) < 0);
	assert_true(isnan(to_f64(t, 0x7FC1)));
}

static void test_float16(void **state)
{
	const ckpt_dtype t = CKPT_DTYPE_FLOAT16;

	assert_int_equal(from_f64(t, 1.0), 0x3C00);
	assert_int_equal(from_f64(t, -1.5), 0xBE00);
	assert_int_equal(from_f64(t, 65504.0), 0x7BFF);
	assert_int_equal(from_f64(t, 65519.0), 0x7BFF);
	assert_int_equal(from_f64(t, 65520.0), 0x7C00); /* tie rounds to even: inf */
	assert_int_equal(from_f64(t, -1e10), 0xFC00);
	assert_int_equal(from_f64(t, NAN), 0x7E00);
	assert_int_equal(from_f64(t, ldexp(1.0, -14)), 0x0400);
	assert_int_equal(from_f64(t, ldexp(1.0, -24)), 0x0001);
	assert_int_equal(from_f64(t, ldexp(1.0, -25)), 0x0000); /* tie to even: 0 */
	assert_int_equal(from_f64(t, ldexp(1.0, -25) * 1.0000001), 0x0001);
	assert_int_equal(from_f64(t, 3 * ldexp(1.0, -25)), 0x0002); /* tie to even: 2 */
	assert_int_equal(from_f64(t, 1023 * ldexp(1.0, -24)), 0x03FF);
	assert_int_equal(from_f64(t, -ldexp(1.0, -30)), 0x8000);
	assert_int_equal(from_f64(t, 2049.0), 0x6800); /* 2048: tie to even */
	assert_int_equal(from_f64(t, 2051.0), 0x6802); /* 2052 */
	/* numpy: np.float16(0.1).view('u2') == 0x2E66, np.float16(1/3) == 0x3555 */
	assert_int_equal(from_f64(t, 0.1), 0x2E66);
	assert_int_equal(from_f64(t, 1.0 / 3), 0x3555);
	assert_true(to_f64(t, 0x0001) == ldexp(1.0, -24));
	assert_true(to_f64(t, 0x7BFF) == 65504.0);
	assert_true(to_f64(t, 0x8000) == 0 && signbit(to_f64(t, 0x8000)));
}

static void test_float8(void **state)
{
	const ckpt_dtype e4 = CKPT_DTYPE_FLOAT8_E4M3FN, e5 = CKPT_DTYPE_FLOAT8_E5M2;

	assert_int_equal(from_f64(e4, 1.0), 0x38);
	assert_int_equal(from_f64(e4, -1.0), 0xB8);
	assert_int_equal(from_f64(e4, 448.0), 0x7E);
	assert_int_equal(from_f64(e4, 464.0), 0x7E);
	assert_int_equal(from_f64(e4, 1e9), 0x7E); /* saturates */
	assert_int_equal(from_f64(e4, -1e9), 0xFE);
	assert_int_equal(from_f64(e4, INFINITY), 0x7E);
	assert_int_equal(from_f64(e4, -INFINITY), 0xFE);
	assert_int_equal(from_f64(e4, NAN), 0x7F);
	assert_int_equal(from_f64(e4, -NAN), 0xFF);
	assert_int_equal(from_f64(e4, 256.0), 0x78);
	assert_int_equal(from_f64(e4, ldexp(1.0, -6)), 0x08);
	assert_int_equal(from_f64(e4, ldexp(1.0, -9)), 0x01);
	assert_int_equal(from_f64(e4, ldexp(1.0, -10)), 0x00); /* tie to even */
	assert_int_equal(from_f64(e4, 1.0625), 0x38);	       /* tie: 1.0 (even) */
	assert_int_equal(from_f64(e4, 1.1875), 0x3A);	       /* tie: 1.25 (even) */
	assert_int_equal(from_f64(e4, 0.1), 0x1D);
	assert_true(to_f64(e4, 0x7E) == 448.0);
	assert_true(isnan(to_f64(e4, 0x7F)) && isnan(to_f64(e4, 0xFF)));
	assert_true(to_f64(e4, 0x78) == 256.0); /* e4m3fn has no inf: S.1111.000 is finite */
	assert_true(to_f64(e4, 0x01) == ldexp(1.0, -9));

	assert_int_equal(from_f64(e5, 1.0), 0x3C);
	assert_int_equal(from_f64(e5, 57344.0), 0x7B);
	assert_int_equal(from_f64(e5, 61439.0), 0x7B);
	assert_int_equal(from_f64(e5, 61440.0), 0x7C); /* tie to even: inf */
	assert_int_equal(from_f64(e5, INFINITY), 0x7C);
	assert_int_equal(from_f64(e5, -INFINITY), 0xFC);
	assert_int_equal(from_f64(e5, NAN), 0x7E);
	assert_int_equal(from_f64(e5, ldexp(1.0, -16)), 0x01);
	assert_int_equal(from_f64(e5, 0.1), 0x2E);
	assert_true(isinf(to_f64(e5, 0x7C)));
	assert_true(isnan(to_f64(e5, 0x7D)));
	assert_true(to_f64(e5, 0x7B) == 57344.0);
}

/* Every bit pattern of each narrow float survives decode + encode (NaN stays NaN). */
static void test_narrow_roundtrip_all_patterns(void **state)
{
	static const ckpt_dtype narrow[] = {CKPT_DTYPE_FLOAT16, CKPT_DTYPE_BFLOAT16,
					    CKPT_DTYPE_FLOAT8_E4M3FN, CKPT_DTYPE_FLOAT8_E5M2};

	for (size_t k = 0; k < sizeof(narrow) / sizeof(narrow[0]); k++) {
		const ckpt_dtype t = narrow[k];
		const uint32_t n = ckpt_dtype_size(t) == 2 ? 65536 : 256;

		for (uint32_t bits = 0; bits < n; bits++) {
			const double d = to_f64(t, bits);
			float f;
			uint16_t back = 0;

			if (isnan(d)) {
				assert_true(isnan(to_f64(t, from_f64(t, d))));
				continue;
			}
			assert_int_equal(from_f64(t, d), bits);
			/* through float32 as well (exact for all of them) */
			assert_int_equal(ckpt_dtype_cast(&f, CKPT_DTYPE_FLOAT32, &bits, t, 1), 0);
			assert_int_equal(ckpt_dtype_cast(&back, t, &f, CKPT_DTYPE_FLOAT32, 1), 0);
			assert_int_equal(back, bits);
		}
	}
}

static void test_float_to_int(void **state)
{
	assert_int_equal((int32_t)from_f64(CKPT_DTYPE_INT32, 1e10), INT32_MAX);
	assert_int_equal((int32_t)from_f64(CKPT_DTYPE_INT32, -1e10), INT32_MIN);
	assert_int_equal(from_f64(CKPT_DTYPE_INT32, NAN), 0);
	assert_int_equal((int32_t)from_f64(CKPT_DTYPE_INT32, 3.99), 3);
	assert_int_equal((int32_t)from_f64(CKPT_DTYPE_INT32, -3.99), -3);
	assert_int_equal((int8_t)from_f64(CKPT_DTYPE_INT8, -128.5), -128);
	assert_int_equal((int8_t)from_f64(CKPT_DTYPE_INT8, 127.9), 127);
	assert_int_equal((int8_t)from_f64(CKPT_DTYPE_INT8, 128.0), 127);
	assert_int_equal(from_f64(CKPT_DTYPE_UINT8, 300.0), 255);
	assert_int_equal(from_f64(CKPT_DTYPE_UINT8, -5.0), 0);
	assert_int_equal(from_f64(CKPT_DTYPE_UINT8, -0.9), 0);
	assert_int_equal(from_f64(CKPT_DTYPE_UINT64, ldexp(1.0, 64)), UINT64_MAX);
	assert_int_equal(from_f64(CKPT_DTYPE_UINT64, INFINITY), UINT64_MAX);
	assert_int_equal(from_f64(CKPT_DTYPE_UINT64, 18446744073709549568.0),
			 UINT64_C(18446744073709549568));
	assert_int_equal((int64_t)from_f64(CKPT_DTYPE_INT64, 9.3e18), INT64_MAX);
	assert_int_equal((int64_t)from_f64(CKPT_DTYPE_INT64, -INFINITY), INT64_MIN);
	assert_int_equal((int64_t)from_f64(CKPT_DTYPE_INT64, -ldexp(1.0, 63)), INT64_MIN);
	assert_int_equal(from_f64(CKPT_DTYPE_UINT16, NAN), 0);
	assert_int_equal(from_f64(CKPT_DTYPE_BOOL, NAN), 1);
	assert_int_equal(from_f64(CKPT_DTYPE_BOOL, -0.0), 0);
	assert_int_equal(from_f64(CKPT_DTYPE_BOOL, 0.25), 1);
	/* from narrow floats too: e4m3fn 448 -> int8 saturates; bf16 -inf -> uint32 0 */
	{
		uint8_t e4 = 0x7E;
		uint16_t bf = 0xFF80;
		int8_t i8;
		uint32_t u32 = 7;

		assert_int_equal(
		    ckpt_dtype_cast(&i8, CKPT_DTYPE_INT8, &e4, CKPT_DTYPE_FLOAT8_E4M3FN, 1), 0);
		assert_int_equal(i8, 127);
		assert_int_equal(
		    ckpt_dtype_cast(&u32, CKPT_DTYPE_UINT32, &bf, CKPT_DTYPE_BFLOAT16, 1), 0);
		assert_int_equal(u32, 0);
	}
}

static void test_int_casts(void **state)
{
	int16_t i16 = -1;
	uint32_t u32 = 0x12345678;
	int8_t i8 = -1;
	uint64_t u64 = UINT64_MAX, out64;
	int64_t i64 = (INT64_C(1) << 24) + 1, big = (INT64_C(1) << 53) + 1;
	uint8_t u8;
	int16_t o16;
	float f;
	double d;

	assert_int_equal(ckpt_dtype_cast(&u8, CKPT_DTYPE_UINT8, &i16, CKPT_DTYPE_INT16, 1), 0);
	assert_int_equal(u8, 255); /* wraps like numpy */
	assert_int_equal(ckpt_dtype_cast(&o16, CKPT_DTYPE_INT16, &u32, CKPT_DTYPE_UINT32, 1), 0);
	assert_int_equal(o16, 0x5678);
	assert_int_equal(ckpt_dtype_cast(&out64, CKPT_DTYPE_UINT64, &i8, CKPT_DTYPE_INT8, 1), 0);
	assert_int_equal(out64, UINT64_MAX); /* sign-extended */
	assert_int_equal(ckpt_dtype_cast(&out64, CKPT_DTYPE_INT64, &u64, CKPT_DTYPE_UINT64, 1), 0);
	assert_int_equal((int64_t)out64, -1);
	/* int -> float rounds once, to nearest even */
	assert_int_equal(ckpt_dtype_cast(&f, CKPT_DTYPE_FLOAT32, &i64, CKPT_DTYPE_INT64, 1), 0);
	assert_true(f == 16777216.0f);
	assert_int_equal(ckpt_dtype_cast(&d, CKPT_DTYPE_FLOAT64, &big, CKPT_DTYPE_INT64, 1), 0);
	assert_true(d == ldexp(1.0, 53));
	assert_int_equal(ckpt_dtype_cast(&f, CKPT_DTYPE_FLOAT32, &u64, CKPT_DTYPE_UINT64, 1), 0);
	assert_true(f == ldexp(1.0f, 64));
	assert_int_equal(ckpt_dtype_cast(&d, CKPT_DTYPE_FLOAT64, &i8, CKPT_DTYPE_INT8, 1), 0);
	assert_true(d == -1.0);
	/* int -> narrow floats */
	{
		int32_t v = 1000;
		uint16_t h;
		uint8_t e;

		assert_int_equal(ckpt_dtype_cast(&h, CKPT_DTYPE_FLOAT16, &v, CKPT_DTYPE_INT32, 1),
				 0);
		assert_int_equal(h, 0x63D0);
		assert_int_equal(
		    ckpt_dtype_cast(&e, CKPT_DTYPE_FLOAT8_E4M3FN, &v, CKPT_DTYPE_INT32, 1), 0);
		assert_int_equal(e, 0x7E);
	}
}

static void test_complex_bool(void **state)
{
	const float c64[4] = {3.0f, 4.0f, 0.0f, -1.0f};
	const double c128[4] = {0.0, 0.0, 0.0, 2.0};
	double re[2], c[4];
	unsigned char b[2], one = 7;
	float f;

	assert_int_equal(ckpt_dtype_cast(re, CKPT_DTYPE_FLOAT64, c64, CKPT_DTYPE_COMPLEX64, 2), 0);
	assert_true(re[0] == 3.0 && re[1] == 0.0);
	assert_int_equal(ckpt_dtype_cast(b, CKPT_DTYPE_BOOL, c128, CKPT_DTYPE_COMPLEX128, 2), 0);
	assert_int_equal(b[0], 0);
	assert_int_equal(b[1], 1); /* imaginary part alone makes it true */
	assert_int_equal(ckpt_dtype_cast(c, CKPT_DTYPE_COMPLEX128, c64, CKPT_DTYPE_COMPLEX64, 2),
			 0);
	assert_true(c[0] == 3.0 && c[1] == 4.0 && c[2] == 0.0 && c[3] == -1.0);
	assert_int_equal(ckpt_dtype_cast(c, CKPT_DTYPE_COMPLEX128, re, CKPT_DTYPE_FLOAT64, 2), 0);
	assert_true(c[0] == 3.0 && c[1] == 0.0 && c[2] == 0.0 && c[3] == 0.0);
	assert_int_equal(ckpt_dtype_cast(&f, CKPT_DTYPE_FLOAT32, &one, CKPT_DTYPE_BOOL, 1), 0);
	assert_true(f == 1.0f); /* any nonzero byte is True */
	assert_int_equal(f32b(f), 0x3F800000);
	assert_int_equal(f64b(1.0), 0x3FF0000000000000);
	assert_true(f64(0x3FF0000000000000) == 1.0);
}

/* Every pair of dtypes: 0 and 1 survive a -> b -> a (bool is the narrowest). */
static void test_all_pairs_roundtrip(void **state)
{
	for (int a = 1; a < CKPT_DTYPE_COUNT; a++) {
		for (int b = 1; b < CKPT_DTYPE_COUNT; b++) {
			const double vals[2] = {0.0, 1.0};
			unsigned char src[32], mid[32], back[32];

			assert_int_equal(
			    ckpt_dtype_cast(src, (ckpt_dtype)a, vals, CKPT_DTYPE_FLOAT64, 2), 0);
			assert_int_equal(ckpt_dtype_cast(mid, (ckpt_dtype)b, src, (ckpt_dtype)a, 2),
					 0);
			assert_int_equal(
			    ckpt_dtype_cast(back, (ckpt_dtype)a, mid, (ckpt_dtype)b, 2), 0);
			assert_memory_equal(src, back, 2 * ckpt_dtype_size((ckpt_dtype)a));
		}
	}
	/* small integers through every non-bool type and back to float64 */
	for (int a = CKPT_DTYPE_INT8; a < CKPT_DTYPE_COUNT; a++) {
		const double vals[6] = {0, 1, 2, 3, 5, 7};
		unsigned char mid[6 * 16];
		double back[6];

		assert_int_equal(ckpt_dtype_cast(mid, (ckpt_dtype)a, vals, CKPT_DTYPE_FLOAT64, 6),
				 0);
		assert_int_equal(ckpt_dtype_cast(back, CKPT_DTYPE_FLOAT64, mid, (ckpt_dtype)a, 6),
				 0);
		assert_memory_equal(vals, back, sizeof(vals));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_sizes),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_bfloat16),
	    cmocka_unit_test(test_float16),
	    cmocka_unit_test(test_float8),
	    cmocka_unit_test(test_narrow_roundtrip_all_patterns),
	    cmocka_unit_test(test_float_to_int),
	    cmocka_unit_test(test_int_casts),
	    cmocka_unit_test(test_complex_bool),
	    cmocka_unit_test(test_all_pairs_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
