/*
 * dtype.c — element types and conversions between them (see ckpt/dtype.h).
 *
 * Design. A cast decodes each source element into a small intermediate value
 * (a signed or unsigned 64-bit integer, or a complex double) and encodes it
 * into the target type. Integers stay integers until they meet a float type,
 * so int64 <-> uint64 casts are exact and int -> float32 rounds once. Every
 * narrow float (float16, bfloat16, float8) is decoded to double exactly and
 * encoded from double by one integer routine with round-to-nearest-even, so
 * a float64 value is rounded once, whatever the target.
 *
 * Semantics (numpy "unsafe" casting, with every case defined):
 *   int -> int          wraps modulo 2^bits (two's complement), like numpy
 *   float -> int        truncates toward zero, saturates at the target's
 *                       range, NaN gives 0 (numpy leaves these undefined)
 *   complex -> real     drops the imaginary part
 *   anything -> bool    != 0 (NaN is true; a complex is true if either part is)
 *   bool -> anything    0 or 1
 *   -> float16/bfloat16/float8: round to nearest even; float16, bfloat16 and
 *                       float8_e5m2 overflow to infinity; float8_e4m3fn has
 *                       no infinity and saturates (infinities too) to +-448
 *   NaN                 stays NaN, sign kept, payload not: f16 0x7E00,
 *                       bf16 0x7FC0, e5m2 0x7E, e4m3fn 0x7F
 *
 * Invariants:
 *   1. Every float -> integer C conversion is done on a value already known
 *      to be in range (no UB, UBSan-clean).
 *   2. All data is little-endian in memory; loads and stores go through
 *      ld()/st(), never through a cast pointer (no alignment assumptions).
 *   3. types[] is indexed by every ckpt_dtype in (INVALID, COUNT).
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ckpt/dtype.h"
#include "error_private.h"

enum kind { K_BOOL, K_INT, K_UINT, K_FLOAT, K_COMPLEX, K_MINI };

/* A narrow float format: exponent bits, mantissa bits, and its quirks. */
typedef struct mini {
	unsigned ebits, mbits;
	int has_inf; /* IEEE-like: all-ones exponent is inf/NaN */
} mini;

static const mini MINI_F16 = {5, 10, 1};
static const mini MINI_BF16 = {8, 7, 1};
static const mini MINI_E4M3FN = {4, 3, 0}; /* only S.1111.111 is NaN; no inf */
static const mini MINI_E5M2 = {5, 2, 1};

static const struct {
	const char *name;
	size_t size;
	enum kind kind;
	const mini *mini;
} types[CKPT_DTYPE_COUNT] = {
    [CKPT_DTYPE_INVALID] = {"invalid", 0, K_BOOL, NULL},
    [CKPT_DTYPE_BOOL] = {"bool", 1, K_BOOL, NULL},
    [CKPT_DTYPE_INT8] = {"int8", 1, K_INT, NULL},
    [CKPT_DTYPE_INT16] = {"int16", 2, K_INT, NULL},
    [CKPT_DTYPE_INT32] = {"int32", 4, K_INT, NULL},
    [CKPT_DTYPE_INT64] = {"int64", 8, K_INT, NULL},
    [CKPT_DTYPE_UINT8] = {"uint8", 1, K_UINT, NULL},
    [CKPT_DTYPE_UINT16] = {"uint16", 2, K_UINT, NULL},
    [CKPT_DTYPE_UINT32] = {"uint32", 4, K_UINT, NULL},
    [CKPT_DTYPE_UINT64] = {"uint64", 8, K_UINT, NULL},
    [CKPT_DTYPE_FLOAT16] = {"float16", 2, K_MINI, &MINI_F16},
    [CKPT_DTYPE_FLOAT32] = {"float32", 4, K_FLOAT, NULL},
    [CKPT_DTYPE_FLOAT64] = {"float64", 8, K_FLOAT, NULL},
    [CKPT_DTYPE_COMPLEX64] = {"complex64", 8, K_COMPLEX, NULL},
    [CKPT_DTYPE_COMPLEX128] = {"complex128", 16, K_COMPLEX, NULL},
    [CKPT_DTYPE_BFLOAT16] = {"bfloat16", 2, K_MINI, &MINI_BF16},
    [CKPT_DTYPE_FLOAT8_E4M3FN] = {"float8_e4m3fn", 1, K_MINI, &MINI_E4M3FN},
    [CKPT_DTYPE_FLOAT8_E5M2] = {"float8_e5m2", 1, K_MINI, &MINI_E5M2},
};

static int valid(ckpt_dtype dt)
{
	return dt > CKPT_DTYPE_INVALID && dt < CKPT_DTYPE_COUNT;
}

size_t ckpt_dtype_size(ckpt_dtype dt)
{
	return valid(dt) ? types[dt].size : 0;
}

const char *ckpt_dtype_name(ckpt_dtype dt)
{
	return valid(dt) ? types[dt].name : "invalid";
}

int ckpt_dtype_from_name(ckpt_dtype *out, const char *name)
{
	for (int dt = CKPT_DTYPE_INVALID + 1; dt < CKPT_DTYPE_COUNT; dt++) {
		/* the first letter first: once per array of a big _METADATA */
		if (name && name[0] == types[dt].name[0] && strcmp(name, types[dt].name) == 0) {
			*out = (ckpt_dtype)dt;
			return 0;
		}
	}
	return ckpt_error_set(CKPT_EINVAL, "unknown dtype '%s'", name ? name : "(null)");
}

/* Little-endian load/store of 1..8 bytes (invariant 2). */
static uint64_t ld(const unsigned char *p, size_t size)
{
	uint64_t v = 0;

	for (size_t i = 0; i < size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void st(unsigned char *p, size_t size, uint64_t v)
{
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static double f64_from_bits(uint64_t b)
{
	double d;

	memcpy(&d, &b, sizeof(d));
	return d;
}

static uint64_t f64_bits(double d)
{
	uint64_t b;

	memcpy(&b, &d, sizeof(b));
	return b;
}

static float f32_from_bits(uint32_t b)
{
	float f;

	memcpy(&f, &b, sizeof(f));
	return f;
}

static uint32_t f32_bits(float f)
{
	uint32_t b;

	memcpy(&b, &f, sizeof(b));
	return b;
}

/* Decode a narrow float exactly (built from bits: every value fits a double). */
static inline double mini_decode(const mini *m, uint32_t bits)
{
	const uint32_t emax = (1u << m->ebits) - 1, mmask = (1u << m->mbits) - 1;
	const int bias = (int)(emax >> 1);
	const uint32_t e = (bits >> m->mbits) & emax, f = bits & mmask;
	const uint64_t sign = (uint64_t)((bits >> (m->ebits + m->mbits)) & 1) << 63;
	/* 2^(1 - bias - mbits), the value of the smallest subnormal */
	const double tiny = f64_from_bits((uint64_t)(1023 + 1 - bias - (int)m->mbits) << 52);

	if ((m->has_inf && e == emax) || (!m->has_inf && e == emax && f == mmask))
		return f64_from_bits(sign | (UINT64_C(0x7FF) << 52) |
				     (m->has_inf && !f ? 0 : UINT64_C(1) << 51));
	if (e == 0)
		return f64_from_bits(sign | f64_bits((double)f * tiny));
	return f64_from_bits(sign | (uint64_t)((int)e - bias + 1023) << 52 |
			     (uint64_t)f << (52 - m->mbits));
}

/* Encode a double with one round-to-nearest-even (see the module comment). */
static inline uint32_t mini_encode(const mini *m, double x)
{
	const uint32_t emax = (1u << m->ebits) - 1;
	const int bias = (int)(emax >> 1);
	const uint64_t b = f64_bits(x);
	const uint32_t sign = (uint32_t)(b >> 63) << (m->ebits + m->mbits);
	const int e64 = (int)((b >> 52) & 0x7FF);
	/* Largest finite encoding: e4m3fn gives up only its all-ones pattern. */
	const uint32_t maxfin =
	    m->has_inf ? (emax << m->mbits) - 1 : (emax << m->mbits) + (1u << m->mbits) - 2;
	const uint32_t inf = m->has_inf ? emax << m->mbits : maxfin;
	uint64_t sig, mant, rem, half;
	uint32_t bits;
	int e, shift;

	if (isnan(x))
		return sign | (emax << m->mbits) |
		       (m->has_inf ? 1u << (m->mbits - 1) : (1u << m->mbits) - 1);
	if (isinf(x))
		return sign | inf;
	if (e64 == 0) /* zero or double subnormal: far below every target's range */
		return sign;
	e = e64 - 1023;
	if (e + bias > (int)emax) /* beyond every finite value even before rounding */
		return sign | inf;
	sig = (b & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
	shift = 52 - (int)m->mbits;
	if (e < 1 - bias) /* target subnormal */
		shift += 1 - bias - e;
	if (shift > 60)
		return sign;
	mant = sig >> shift;
	rem = sig & ((UINT64_C(1) << shift) - 1);
	half = UINT64_C(1) << (shift - 1);
	if (e >= 1 - bias) /* normal: exponent field, implicit bit dropped */
		bits = ((uint32_t)(e + bias) << m->mbits) +
		       (uint32_t)(mant - (UINT64_C(1) << m->mbits));
	else
		bits = (uint32_t)mant;
	if (rem > half || (rem == half && (mant & 1)))
		bits++; /* a carry into the exponent field is the right answer */
	if (bits > maxfin)
		bits = inf;
	return sign | bits;
}

/* The intermediate value of one element. */
typedef struct val {
	enum { V_INT, V_UINT, V_FLOAT } kind;
	int64_t i;
	uint64_t u;
	double re, im;
} val;

static inline __attribute__((always_inline)) val decode(ckpt_dtype dt, const unsigned char *p)
{
	const size_t size = types[dt].size;
	val v = {V_FLOAT, 0, 0, 0.0, 0.0};
	uint64_t raw;

	switch (types[dt].kind) {
	case K_BOOL:
		v.kind = V_UINT;
		v.u = p[0] != 0;
		break;
	case K_INT:
		raw = ld(p, size);
		if (size < 8 && (raw >> (8 * size - 1)) & 1) /* sign-extend */
			raw |= ~UINT64_C(0) << (8 * size);
		v.kind = V_INT;
		memcpy(&v.i, &raw, sizeof(v.i));
		break;
	case K_UINT:
		v.kind = V_UINT;
		v.u = ld(p, size);
		break;
	case K_FLOAT:
		v.re =
		    size == 4 ? (double)f32_from_bits((uint32_t)ld(p, 4)) : f64_from_bits(ld(p, 8));
		break;
	case K_COMPLEX:
		if (size == 8) {
			v.re = f32_from_bits((uint32_t)ld(p, 4));
			v.im = f32_from_bits((uint32_t)ld(p + 4, 4));
		} else {
			v.re = f64_from_bits(ld(p, 8));
			v.im = f64_from_bits(ld(p + 8, 8));
		}
		break;
	case K_MINI: v.re = mini_decode(types[dt].mini, (uint32_t)ld(p, size)); break;
	}
	return v;
}

/* Saturating double -> integer bits of the given width (invariant 1). */
static uint64_t float_to_int_bits(double d, size_t size, int is_signed)
{
	const int bits = (int)(8 * size);

	if (isnan(d))
		return 0;
	if (is_signed) {
		const double lim =
		    f64_from_bits((uint64_t)(1023 + bits - 1) << 52); /* 2^(bits-1) */
		int64_t r;

		if (d >= lim)
			r = (int64_t)((UINT64_C(1) << (bits - 1)) - 1);
		else if (d <= -lim)
			r = -(int64_t)((UINT64_C(1) << (bits - 1)) - 1) - 1;
		else
			r = (int64_t)d;
		return (uint64_t)r;
	}
	if (d >= f64_from_bits((uint64_t)(1023 + bits) << 52)) /* 2^bits */
		return bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
	if (!(d > -1.0))
		return 0;
	return (uint64_t)d;
}

static double val_to_double(const val *v)
{
	return v->kind == V_INT ? (double)v->i : v->kind == V_UINT ? (double)v->u : v->re;
}

static float val_to_float(const val *v)
{
	return v->kind == V_INT ? (float)v->i : v->kind == V_UINT ? (float)v->u : (float)v->re;
}

static inline __attribute__((always_inline)) void encode(ckpt_dtype dt, unsigned char *p,
							 const val *v)
{
	const size_t size = types[dt].size;

	switch (types[dt].kind) {
	case K_BOOL:
		p[0] = v->kind == V_INT	   ? v->i != 0
		       : v->kind == V_UINT ? v->u != 0
					   : (v->re != 0 || v->im != 0);
		break;
	case K_INT:
	case K_UINT:
		if (v->kind == V_INT)
			st(p, size, (uint64_t)v->i); /* wraps (modular) */
		else if (v->kind == V_UINT)
			st(p, size, v->u);
		else
			st(p, size, float_to_int_bits(v->re, size, types[dt].kind == K_INT));
		break;
	case K_FLOAT:
		if (size == 4)
			st(p, 4, f32_bits(val_to_float(v)));
		else
			st(p, 8, f64_bits(val_to_double(v)));
		break;
	case K_COMPLEX:
		if (size == 8) {
			st(p, 4, f32_bits(val_to_float(v)));
			st(p + 4, 4, f32_bits((float)v->im));
		} else {
			st(p, 8, f64_bits(val_to_double(v)));
			st(p + 8, 8, f64_bits(v->im));
		}
		break;
	case K_MINI: st(p, size, mini_encode(types[dt].mini, val_to_double(v))); break;
	}
}

/*
 * The loops run block by block through an array of val, each with the dtype
 * a constant (one case per dtype), so that decode() and encode() inline into
 * tight per-type loops instead of switching on the type for every element.
 */
#define BLOCK 256
#define CASE(T, stmt)                                                                              \
	case T: {                                                                                  \
		const ckpt_dtype t_ = T;                                                           \
		for (size_t i = 0; i < n; i++)                                                     \
			stmt;                                                                      \
		break;                                                                             \
	}
#define EACH_DTYPE(stmt)                                                                           \
	CASE(CKPT_DTYPE_BOOL, stmt)                                                                \
	CASE(CKPT_DTYPE_INT8, stmt)                                                                \
	CASE(CKPT_DTYPE_INT16, stmt)                                                               \
	CASE(CKPT_DTYPE_INT32, stmt)                                                               \
	CASE(CKPT_DTYPE_INT64, stmt)                                                               \
	CASE(CKPT_DTYPE_UINT8, stmt)                                                               \
	CASE(CKPT_DTYPE_UINT16, stmt)                                                              \
	CASE(CKPT_DTYPE_UINT32, stmt)                                                              \
	CASE(CKPT_DTYPE_UINT64, stmt)                                                              \
	CASE(CKPT_DTYPE_FLOAT16, stmt)                                                             \
	CASE(CKPT_DTYPE_FLOAT32, stmt)                                                             \
	CASE(CKPT_DTYPE_FLOAT64, stmt)                                                             \
	CASE(CKPT_DTYPE_COMPLEX64, stmt)                                                           \
	CASE(CKPT_DTYPE_COMPLEX128, stmt)                                                          \
	CASE(CKPT_DTYPE_BFLOAT16, stmt)                                                            \
	CASE(CKPT_DTYPE_FLOAT8_E4M3FN, stmt)                                                       \
	CASE(CKPT_DTYPE_FLOAT8_E5M2, stmt)

static void decode_block(val *v, ckpt_dtype dt, const unsigned char *p, size_t n)
{
	switch (dt) {
		EACH_DTYPE(v[i] = decode(t_, p + i * types[t_].size))
	default: assert(0);
	}
}

static void encode_block(unsigned char *p, ckpt_dtype dt, const val *v, size_t n)
{
	switch (dt) {
		EACH_DTYPE(encode(t_, p + i * types[t_].size, &v[i]))
	default: assert(0);
	}
}

int ckpt_dtype_cast(void *dst, ckpt_dtype dt, const void *src, ckpt_dtype sdt, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	size_t dsize, ssize;
	val v[BLOCK];

	if (!valid(dt) || !valid(sdt))
		return ckpt_error_set(CKPT_EINVAL, "cast from dtype %d to dtype %d: invalid dtype",
				      (int)sdt, (int)dt);
	dsize = types[dt].size;
	ssize = types[sdt].size;
	if (n == 0)
		return 0;
	if (dt == sdt) {
		memmove(dst, src, n * dsize);
		return 0;
	}
	assert((uintptr_t)d + n * dsize <= (uintptr_t)s ||
	       (uintptr_t)s + n * ssize <= (uintptr_t)d);
	for (size_t off = 0; off < n; off += BLOCK) {
		const size_t m = n - off < BLOCK ? n - off : BLOCK;

		decode_block(v, sdt, s + off * ssize, m);
		encode_block(d + off * dsize, dt, v, m);
	}
	return 0;
}
