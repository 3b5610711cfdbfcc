/*
 * zarr.c — zarr v2/v3 metadata and chunk decoding (design and invariants in zarr.h).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "crc32c.h"
#include "error_private.h"
#include "zarr.h"

enum { CODEC_NONE = 0, CODEC_ZSTD = 1 };

struct zarr_array {
	char *name;
	int v3;
	unsigned ndim;
	uint64_t shape[ZARR_MAX_NDIM];
	uint64_t chunk[ZARR_MAX_NDIM]; /* outer chunk (= shard) shape */
	uint64_t unit[ZARR_MAX_NDIM];  /* decoded unit: chunk, or inner chunk of a shard */
	uint64_t grid[ZARR_MAX_NDIM];  /* units per dimension over the whole array */
	uint64_t per_shard[ZARR_MAX_NDIM];
	uint64_t inner_per_shard;
	int sharded, index_crc, index_at_start;
	int codec;    /* of a unit */
	int unit_crc; /* a crc32c codec after the unit's bytes */
	ckpt_dtype dt;
	size_t isz;
	int bswap;
	char sep;	 /* chunk key separator */
	int key_default; /* zarr3 "default" encoding: "c" prefix */
	unsigned char fill[16];
	uint64_t nbytes, unit_nbytes;
	const char *codec_name;
};

void zarr_free(zarr_array *a)
{
	if (!a)
		return;
	free(a->name);
	free(a);
}

zarr_array *zarr_clone(const zarr_array *a, const char *name)
{
	zarr_array *c = malloc(sizeof(*c));

	if (!c || !(memcpy(c, a, sizeof(*c)), c->name = strdup(name))) {
		free(c);
		ckpt_error_nomem();
		return NULL;
	}
	return c;
}

ckpt_dtype zarr_dtype(const zarr_array *a)
{
	return a->dt;
}

unsigned zarr_ndim(const zarr_array *a)
{
	return a->ndim;
}

const uint64_t *zarr_shape(const zarr_array *a)
{
	return a->shape;
}

const uint64_t *zarr_chunk_shape(const zarr_array *a)
{
	return a->unit;
}

uint64_t zarr_nbytes(const zarr_array *a)
{
	return a->nbytes;
}

const char *zarr_codec_name(const zarr_array *a)
{
	return a->codec_name;
}

static cJSON *uint_array(const uint64_t *v, unsigned n)
{
	cJSON *arr = cJSON_CreateArray();

	for (unsigned i = 0; arr && i < n; i++)
		if (!cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v[i]))) {
			cJSON_Delete(arr);
			return NULL;
		}
	return arr;
}

int zarr_describe(cJSON *obj, const zarr_array *a)
{
	char codec[96];
	const char *c = a->codec == CODEC_ZSTD ? "zstd" : NULL;
	cJSON *cs = uint_array(a->chunk, a->ndim);

	if (!a->v3)
		snprintf(codec, sizeof(codec), "%s", c ? c : "none");
	else if (!a->sharded)
		snprintf(codec, sizeof(codec), "bytes%s%s%s", c ? "," : "", c ? c : "",
			 a->unit_crc ? ",crc32c" : "");
	else
		snprintf(codec, sizeof(codec), "sharding_indexed(bytes%s%s%s)%s", c ? "," : "",
			 c ? c : "", a->unit_crc ? ",crc32c" : "",
			 a->index_crc ? ",crc32c-index" : "");
	if (!cs || !cJSON_AddItemToObject(obj, "chunk_shape", cs)) {
		cJSON_Delete(cs);
		return ckpt_error_nomem();
	}
	if (!cJSON_AddStringToObject(obj, "format", a->v3 ? "zarr3" : "zarr2") ||
	    !cJSON_AddStringToObject(obj, "codec", codec))
		return ckpt_error_nomem();
	if (a->sharded) {
		cJSON *in = uint_array(a->unit, a->ndim);
		if (!in || !cJSON_AddItemToObject(obj, "inner_chunk_shape", in)) {
			cJSON_Delete(in);
			return ckpt_error_nomem();
		}
	}
	return 0;
}

/* ---- metadata ---- */

static int bad(const zarr_array *a, const char *what)
{
	return ckpt_error_set(CKPT_EINVAL, "%s: %s", a->name, what);
}

static int uint_list(uint64_t *out, unsigned *n, const cJSON *j, unsigned max)
{
	const cJSON *e;
	unsigned i = 0;

	if (!cJSON_IsArray(j))
		return -1;
	cJSON_ArrayForEach(e, j)
	{
		if (i >= max || !cJSON_IsNumber(e) || e->valuedouble < 0 ||
		    e->valuedouble > 9007199254740992.0 || e->valuedouble != floor(e->valuedouble))
			return -1;
		out[i++] = (uint64_t)e->valuedouble;
	}
	*n = i;
	return 0;
}

/* zarr2 dtype: "<f4", ">i8", "|b1", or a bare ml_dtypes name. */
static int dtype_v2(zarr_array *a, const char *s)
{
	static const struct {
		const char *code;
		ckpt_dtype dt;
	} codes[] = {
	    {"b1", CKPT_DTYPE_BOOL},	  {"i1", CKPT_DTYPE_INT8},	 {"i2", CKPT_DTYPE_INT16},
	    {"i4", CKPT_DTYPE_INT32},	  {"i8", CKPT_DTYPE_INT64},	 {"u1", CKPT_DTYPE_UINT8},
	    {"u2", CKPT_DTYPE_UINT16},	  {"u4", CKPT_DTYPE_UINT32},	 {"u8", CKPT_DTYPE_UINT64},
	    {"f2", CKPT_DTYPE_FLOAT16},	  {"f4", CKPT_DTYPE_FLOAT32},	 {"f8", CKPT_DTYPE_FLOAT64},
	    {"c8", CKPT_DTYPE_COMPLEX64}, {"c16", CKPT_DTYPE_COMPLEX128}};

	if (s[0] == '<' || s[0] == '>' || s[0] == '|') {
		for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++)
			if (strcmp(s + 1, codes[i].code) == 0) {
				a->dt = codes[i].dt;
				a->bswap = s[0] == '>' && ckpt_dtype_size(a->dt) > 1;
				return 0;
			}
	} else if (ckpt_dtype_from_name(&a->dt, s) == 0) {
		return 0;
	}
	return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported dtype '%s'", a->name, s);
}

/* The fill value as isz little-endian bytes. */
static int parse_fill(zarr_array *a, const cJSON *f)
{
	double d = 0;
	int64_t iv = 0;
	int is_int = 0;

	memset(a->fill, 0, sizeof(a->fill));
	if (!f || cJSON_IsNull(f))
		return 0;
	if (cJSON_IsBool(f)) {
		iv = cJSON_IsTrue(f);
		is_int = 1;
	} else if (cJSON_IsNumber(f)) {
		d = f->valuedouble;
		if (d == floor(d) && fabs(d) < 9.2e18) {
			iv = (int64_t)d;
			is_int = 1;
		}
	} else if (cJSON_IsString(f)) {
		const char *s = f->valuestring;
		if (strcmp(s, "NaN") == 0)
			d = NAN;
		else if (strcmp(s, "Infinity") == 0)
			d = INFINITY;
		else if (strcmp(s, "-Infinity") == 0)
			d = -INFINITY;
		else if (s[0] == '0' && s[1] == 'x' && strlen(s) <= 2 + 2 * a->isz && a->isz <= 8) {
			char *end;
			unsigned long long bits = strtoull(s + 2, &end, 16);
			if (*end)
				return bad(a, "bad hex fill_value");
			for (size_t i = 0; i < a->isz; i++)
				a->fill[i] = (unsigned char)(bits >> (8 * i));
			return 0;
		} else {
			return bad(a, "bad fill_value");
		}
	} else if (cJSON_IsArray(f) && cJSON_GetArraySize(f) == 2 &&
		   (a->dt == CKPT_DTYPE_COMPLEX64 || a->dt == CKPT_DTYPE_COMPLEX128)) {
		double c[2];
		for (int i = 0; i < 2; i++) {
			const cJSON *e = cJSON_GetArrayItem(f, i);
			if (!cJSON_IsNumber(e))
				return bad(a, "bad complex fill_value");
			c[i] = e->valuedouble;
		}
		return ckpt_dtype_cast(a->fill, a->dt, c, CKPT_DTYPE_COMPLEX128, 1);
	} else {
		return bad(a, "bad fill_value");
	}
	if (is_int && a->dt != CKPT_DTYPE_FLOAT16 && a->dt != CKPT_DTYPE_FLOAT32 &&
	    a->dt != CKPT_DTYPE_FLOAT64 && a->dt != CKPT_DTYPE_BFLOAT16)
		return ckpt_dtype_cast(a->fill, a->dt, &iv, CKPT_DTYPE_INT64, 1);
	return ckpt_dtype_cast(a->fill, a->dt, &d, CKPT_DTYPE_FLOAT64, 1);
}

static int parse_v2(zarr_array *a, const cJSON *root)
{
	const cJSON *comp = cJSON_GetObjectItemCaseSensitive(root, "compressor");
	const cJSON *filt = cJSON_GetObjectItemCaseSensitive(root, "filters");
	const cJSON *order = cJSON_GetObjectItemCaseSensitive(root, "order");
	const cJSON *sep = cJSON_GetObjectItemCaseSensitive(root, "dimension_separator");
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "zarr_format");
	unsigned n1 = 0, n2 = 0;
	int rc;

	if (!cJSON_IsNumber(fmt) || fmt->valuedouble != 2)
		return bad(a, "zarr_format is not 2");
	if (uint_list(a->shape, &n1, cJSON_GetObjectItemCaseSensitive(root, "shape"),
		      ZARR_MAX_NDIM) ||
	    uint_list(a->chunk, &n2, cJSON_GetObjectItemCaseSensitive(root, "chunks"),
		      ZARR_MAX_NDIM) ||
	    n1 != n2)
		return bad(a, "bad shape or chunks");
	a->ndim = n1;
	if (!cJSON_IsString(dt))
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported (structured) dtype",
				      a->name);
	if ((rc = dtype_v2(a, dt->valuestring)))
		return rc;
	if (order && (!cJSON_IsString(order) || strcmp(order->valuestring, "C") != 0))
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported order (only \"C\")",
				      a->name);
	if (filt && !cJSON_IsNull(filt) && !(cJSON_IsArray(filt) && cJSON_GetArraySize(filt) == 0))
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported filters", a->name);
	a->codec = CODEC_NONE;
	a->codec_name = "none";
	if (comp && !cJSON_IsNull(comp)) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(comp, "id");
		if (!cJSON_IsString(id))
			return bad(a, "bad compressor");
		if (strcmp(id->valuestring, "zstd") != 0)
			return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported compressor '%s'",
					      a->name, id->valuestring);
		a->codec = CODEC_ZSTD;
		a->codec_name = "zstd";
	}
	a->sep = '.';
	if (sep) {
		if (!cJSON_IsString(sep) ||
		    (strcmp(sep->valuestring, ".") && strcmp(sep->valuestring, "/")))
			return bad(a, "bad dimension_separator");
		a->sep = sep->valuestring[0];
	}
	a->isz = ckpt_dtype_size(a->dt);
	memcpy(a->unit, a->chunk, sizeof(a->unit));
	return parse_fill(a, cJSON_GetObjectItemCaseSensitive(root, "fill_value"));
}

static const char *codec_id(const cJSON *c)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
	return cJSON_IsString(n) ? n->valuestring : NULL;
}

static const cJSON *codec_conf(const cJSON *c, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(c, "configuration"), key);
}

/* A chain "bytes" [, "zstd"] [, "crc32c"]: sets endianness, codec and crc. */
static int parse_chain(zarr_array *a, const cJSON *codecs, int *codec, int *crc, int *big)
{
	const cJSON *c;
	int pos = 0;

	*codec = CODEC_NONE;
	*crc = 0;
	*big = 0;
	if (!cJSON_IsArray(codecs))
		return bad(a, "bad codecs");
	cJSON_ArrayForEach(c, codecs)
	{
		const char *id = codec_id(c);
		if (!id)
			return bad(a, "bad codec");
		if (pos == 0 && strcmp(id, "bytes") == 0) {
			const cJSON *e = codec_conf(c, "endian");
			*big = cJSON_IsString(e) && strcmp(e->valuestring, "big") == 0;
			pos = 1;
		} else if (pos == 1 && strcmp(id, "zstd") == 0 && *codec == CODEC_NONE && !*crc) {
			*codec = CODEC_ZSTD;
		} else if (pos == 1 && strcmp(id, "crc32c") == 0 && !*crc) {
			*crc = 1;
		} else {
			return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported codec '%s'",
					      a->name, id);
		}
	}
	if (pos == 0)
		return bad(a, "no bytes codec");
	return 0;
}

static int parse_v3(zarr_array *a, const cJSON *root)
{
	const cJSON *grid = cJSON_GetObjectItemCaseSensitive(root, "chunk_grid");
	const cJSON *kenc = cJSON_GetObjectItemCaseSensitive(root, "chunk_key_encoding");
	const cJSON *codecs = cJSON_GetObjectItemCaseSensitive(root, "codecs");
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "data_type");
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "zarr_format");
	unsigned n1 = 0, n2 = 0;
	int rc, big = 0, dummy;

	if (!cJSON_IsNumber(fmt) || fmt->valuedouble != 3)
		return bad(a, "zarr_format is not 3");
	const char *gname = codec_id(grid);
	if (!gname || strcmp(gname, "regular") != 0)
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported chunk grid", a->name);
	if (uint_list(a->shape, &n1, cJSON_GetObjectItemCaseSensitive(root, "shape"),
		      ZARR_MAX_NDIM) ||
	    uint_list(a->chunk, &n2, codec_conf(grid, "chunk_shape"), ZARR_MAX_NDIM) || n1 != n2)
		return bad(a, "bad shape or chunk_shape");
	a->ndim = n1;
	if (!cJSON_IsString(dt) || ckpt_dtype_from_name(&a->dt, dt->valuestring) != 0)
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported data_type %s", a->name,
				      cJSON_IsString(dt) ? dt->valuestring : "(not a string)");
	a->isz = ckpt_dtype_size(a->dt);
	const char *kname = codec_id(kenc);
	const cJSON *ksep = codec_conf(kenc, "separator");
	if (!kname || (strcmp(kname, "default") && strcmp(kname, "v2")))
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported chunk_key_encoding",
				      a->name);
	a->key_default = strcmp(kname, "default") == 0;
	a->sep = a->key_default ? '/' : '.';
	if (ksep) {
		if (!cJSON_IsString(ksep) ||
		    (strcmp(ksep->valuestring, ".") && strcmp(ksep->valuestring, "/")))
			return bad(a, "bad chunk key separator");
		a->sep = ksep->valuestring[0];
	}
	if (!cJSON_IsArray(codecs) || cJSON_GetArraySize(codecs) < 1)
		return bad(a, "bad codecs");
	const cJSON *first = cJSON_GetArrayItem(codecs, 0);
	const char *fid = codec_id(first);
	memcpy(a->unit, a->chunk, sizeof(a->unit));
	if (fid && strcmp(fid, "sharding_indexed") == 0) {
		unsigned n3 = 0;
		if (cJSON_GetArraySize(codecs) != 1)
			return ckpt_error_set(CKPT_EUNSUPPORTED,
					      "%s: unsupported codec after sharding_indexed",
					      a->name);
		a->sharded = 1;
		if (uint_list(a->unit, &n3, codec_conf(first, "chunk_shape"), ZARR_MAX_NDIM) ||
		    n3 != a->ndim)
			return bad(a, "bad sharding chunk_shape");
		if ((rc = parse_chain(a, codec_conf(first, "codecs"), &a->codec, &a->unit_crc,
				      &big)))
			return rc;
		int icodec, ibig;
		if ((rc = parse_chain(a, codec_conf(first, "index_codecs"), &icodec, &a->index_crc,
				      &ibig)))
			return rc;
		if (icodec != CODEC_NONE || ibig)
			return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported index_codecs",
					      a->name);
		const cJSON *loc = codec_conf(first, "index_location");
		if (loc && (!cJSON_IsString(loc) ||
			    (strcmp(loc->valuestring, "start") && strcmp(loc->valuestring, "end"))))
			return bad(a, "bad index_location");
		a->index_at_start = loc && strcmp(loc->valuestring, "start") == 0;
		a->codec_name =
		    a->codec == CODEC_ZSTD ? "sharding_indexed+zstd" : "sharding_indexed";
	} else {
		if ((rc = parse_chain(a, codecs, &a->codec, &a->unit_crc, &big)))
			return rc;
		a->codec_name = a->codec == CODEC_ZSTD ? "zstd" : "none";
	}
	(void)dummy;
	a->bswap = big && a->isz > 1;
	return parse_fill(a, cJSON_GetObjectItemCaseSensitive(root, "fill_value"));
}

/* Check sizes (invariant 2) and derive grids. */
static int derive(zarr_array *a)
{
	uint64_t n = a->isz, u = a->isz;

	a->inner_per_shard = 1;
	for (unsigned d = 0; d < a->ndim; d++) {
		if (a->chunk[d] == 0 || a->unit[d] == 0 || a->chunk[d] % a->unit[d])
			return bad(
			    a, "chunk shape is zero or not a multiple of the inner chunk shape");
		if (a->shape[d] && n > (UINT64_MAX >> 1) / a->shape[d])
			return bad(a, "array too large");
		n *= a->shape[d];
		if (u > ZARR_MAX_UNIT_BYTES / a->unit[d])
			return ckpt_error_set(CKPT_EUNSUPPORTED,
					      "%s: chunks larger than %llu bytes", a->name,
					      (unsigned long long)ZARR_MAX_UNIT_BYTES);
		u *= a->unit[d];
		a->grid[d] = a->shape[d] / a->unit[d] + (a->shape[d] % a->unit[d] != 0);
		a->per_shard[d] = a->chunk[d] / a->unit[d];
		if (a->inner_per_shard > (1ull << 40) / a->per_shard[d])
			return bad(a, "too many inner chunks per shard");
		a->inner_per_shard *= a->per_shard[d];
	}
	a->nbytes = n;
	a->unit_nbytes = u;
	return 0;
}

int zarr_parse(zarr_array **out, const char *json, size_t len, int v3, const char *name)
{
	zarr_array *a = calloc(1, sizeof(*a));
	cJSON *root = NULL;
	int rc;

	*out = NULL;
	if (!a || !(a->name = strdup(name))) {
		free(a);
		return ckpt_error_nomem();
	}
	a->v3 = v3;
	if (len > ZARR_MAX_META_BYTES) {
		rc = bad(a, "metadata too large");
		goto done;
	}
	root = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(root)) {
		rc = bad(a, v3 ? "zarr.json is not a JSON object" : ".zarray is not a JSON object");
		goto done;
	}
	rc = v3 ? parse_v3(a, root) : parse_v2(a, root);
	if (rc == 0 && a->isz == 0)
		rc = ckpt_error_set(CKPT_EUNSUPPORTED, "%s: unsupported dtype", a->name);
	if (rc == 0)
		rc = derive(a);
	if (rc == 0) {
		*out = a;
		a = NULL;
	}
done:
	cJSON_Delete(root);
	zarr_free(a);
	return rc;
}

/* ---- chunk keys and decoding ---- */

/* Key of the stored value holding unit coordinates c (scaled to chunks already). */
static void chunk_key(char *buf, size_t cap, const zarr_array *a, const uint64_t *c)
{
	size_t n = 0;

	if (a->v3 && a->key_default)
		n += (size_t)snprintf(buf + n, cap - n, "c");
	if (a->ndim == 0 && !(a->v3 && a->key_default))
		n += (size_t)snprintf(buf + n, cap - n, "0");
	for (unsigned d = 0; d < a->ndim && n < cap; d++) {
		if (d > 0 || (a->v3 && a->key_default))
			buf[n++] = a->sep;
		n += (size_t)snprintf(buf + n, cap - n, "%llu", (unsigned long long)c[d]);
	}
	if (n >= cap)
		n = cap - 1;
	buf[n] = '\0';
}

static int zstd_exact(unsigned char *dst, size_t dlen, const unsigned char *src, size_t slen,
		      const char *what)
{
	ZSTD_DCtx *z = ZSTD_createDCtx();
	int rc = 0;

	if (!z)
		return ckpt_error_nomem();
	ZSTD_inBuffer in = {src, slen, 0};
	ZSTD_outBuffer ob = {dst, dlen, 0};
	size_t r = 1;
	while (r != 0) {
		size_t before_in = in.pos, before_out = ob.pos;
		r = ZSTD_decompressStream(z, &ob, &in);
		if (ZSTD_isError(r)) {
			rc = ckpt_error_set(CKPT_ECORRUPT, "%s: zstd: %s", what,
					    ZSTD_getErrorName(r));
			goto done;
		}
		if (r != 0 && in.pos == before_in && ob.pos == before_out) {
			rc = ckpt_error_set(CKPT_ECORRUPT,
					    "%s: zstd frame truncated or larger than %zu bytes",
					    what, dlen);
			goto done;
		}
		if (r != 0 && ob.pos == dlen) {
			unsigned char extra;
			ZSTD_outBuffer eb = {&extra, 1, 0};
			r = ZSTD_decompressStream(z, &eb, &in);
			if (ZSTD_isError(r) || eb.pos) {
				rc = ckpt_error_set(CKPT_ECORRUPT,
						    "%s: decodes to more than %zu bytes", what,
						    dlen);
				goto done;
			}
			if (r != 0 && in.pos == in.size) {
				rc =
				    ckpt_error_set(CKPT_ECORRUPT, "%s: truncated zstd frame", what);
				goto done;
			}
		}
	}
	if (ob.pos != dlen || in.pos != in.size)
		rc = ckpt_error_set(CKPT_ECORRUPT, "%s: decodes to %zu bytes, expected %zu%s", what,
				    ob.pos, dlen, in.pos != in.size ? " (trailing bytes)" : "");
done:
	ZSTD_freeDCtx(z);
	return rc;
}

static void byteswap(unsigned char *p, size_t n, size_t isz, ckpt_dtype dt)
{
	size_t w = (dt == CKPT_DTYPE_COMPLEX64 || dt == CKPT_DTYPE_COMPLEX128) ? isz / 2 : isz;
	for (size_t i = 0; i + w <= n; i += w)
		for (size_t j = 0; j < w / 2; j++) {
			unsigned char t = p[i + j];
			p[i + j] = p[i + w - 1 - j];
			p[i + w - 1 - j] = t;
		}
}

static void fill_unit(const zarr_array *a, unsigned char *p)
{
	for (uint64_t i = 0; i < a->unit_nbytes; i += a->isz)
		memcpy(p + i, a->fill, a->isz);
}

/* Decode stored bytes of one unit into out (unit_nbytes). */
static int decode_unit(const zarr_array *a, unsigned char *out, const unsigned char *in,
		       size_t inlen, const char *what)
{
	if (a->unit_crc) {
		if (inlen < 4)
			return ckpt_error_set(CKPT_ECORRUPT, "%s: too short for its crc32c", what);
		inlen -= 4;
		uint32_t want = (uint32_t)in[inlen] | (uint32_t)in[inlen + 1] << 8 |
				(uint32_t)in[inlen + 2] << 16 | (uint32_t)in[inlen + 3] << 24;
		if (ckpt_crc32c_update(0, in, inlen) != want)
			return ckpt_error_set(CKPT_ECORRUPT, "%s: crc32c mismatch", what);
	}
	if (a->codec == CODEC_NONE) {
		if (inlen != a->unit_nbytes)
			return ckpt_error_set(CKPT_ECORRUPT, "%s: %zu bytes, expected %llu", what,
					      inlen, (unsigned long long)a->unit_nbytes);
		memcpy(out, in, inlen);
	} else {
		int rc = zstd_exact(out, a->unit_nbytes, in, inlen, what);
		if (rc)
			return rc;
	}
	if (a->bswap)
		byteswap(out, a->unit_nbytes, a->isz, a->dt);
	return 0;
}

int zarr_shard_index_check(const unsigned char *idx, size_t idxlen, uint64_t n, int crc,
			   uint64_t shard_len)
{
	if (n > (SIZE_MAX - 4) / 16 || idxlen != n * 16 + (crc ? 4 : 0))
		return ckpt_error_set(CKPT_ECORRUPT, "shard index: %zu bytes for %llu chunks",
				      idxlen, (unsigned long long)n);
	if (crc) {
		const unsigned char *c = idx + n * 16;
		uint32_t want = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 |
				(uint32_t)c[3] << 24;
		if (ckpt_crc32c_update(0, idx, n * 16) != want)
			return ckpt_error_set(CKPT_ECORRUPT, "shard index: crc32c mismatch");
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = 0, len = 0;
		for (int b = 7; b >= 0; b--) {
			off = off << 8 | idx[16 * i + (size_t)b];
			len = len << 8 | idx[16 * i + 8 + (size_t)b];
		}
		if (off == UINT64_MAX && len == UINT64_MAX)
			continue;
		if (off > shard_len || len > shard_len - off)
			return ckpt_error_set(
			    CKPT_ECORRUPT,
			    "shard index: chunk %llu at %llu+%llu is outside the %llu-byte shard",
			    (unsigned long long)i, (unsigned long long)off, (unsigned long long)len,
			    (unsigned long long)shard_len);
	}
	return 0;
}

/* Load the stored bytes of unit u (grid coordinates); *in = NULL if missing (fill). */
static int load_stored(const zarr_array *a, const zarr_source *src, const uint64_t *u,
		       unsigned char **in, size_t *inlen, char *what, size_t wcap)
{
	uint64_t sc[ZARR_MAX_NDIM], inner = 0, slen = 0;
	char key[ZARR_MAX_NDIM * 21 + 8];
	int rc;

	*in = NULL;
	*inlen = 0;
	for (unsigned d = 0; d < a->ndim; d++) {
		sc[d] = u[d] / a->per_shard[d];
		inner = inner * a->per_shard[d] + u[d] % a->per_shard[d];
	}
	chunk_key(key, sizeof(key), a, sc);
	snprintf(what, wcap, "%s: chunk %s", a->name, key);
	rc = src->size(src->ctx, key, &slen);
	if (rc == CKPT_ENOTFOUND)
		return 0;
	if (rc)
		return ckpt_error_wrap(rc, "%s", what);
	uint64_t off = 0, len = slen;
	if (a->sharded) {
		uint64_t n = a->inner_per_shard;
		size_t ilen = (size_t)(n * 16 + (a->index_crc ? 4 : 0));
		unsigned char *idx;
		if (ilen > slen)
			return ckpt_error_set(CKPT_ECORRUPT,
					      "%s: shard of %llu bytes has no room for its index",
					      what, (unsigned long long)slen);
		if (!(idx = malloc(ilen)))
			return ckpt_error_nomem();
		rc = src->pread(src->ctx, key, idx, ilen, a->index_at_start ? 0 : slen - ilen);
		if (rc == 0)
			rc = zarr_shard_index_check(idx, ilen, n, a->index_crc, slen);
		if (rc == 0) {
			off = len = 0;
			for (int b = 7; b >= 0; b--) {
				off = off << 8 | idx[16 * inner + (size_t)b];
				len = len << 8 | idx[16 * inner + 8 + (size_t)b];
			}
		}
		free(idx);
		if (rc)
			return ckpt_error_wrap(rc, "%s", what);
		if (off == UINT64_MAX && len == UINT64_MAX)
			return 0;
		snprintf(what + strlen(what), wcap - strlen(what), " inner chunk %llu",
			 (unsigned long long)inner);
	}
	/* stored bytes are bounded by what zstd could make of a unit (invariant 2) */
	if (len > ZSTD_compressBound((size_t)a->unit_nbytes) + 4096)
		return ckpt_error_set(CKPT_ECORRUPT, "%s: %llu stored bytes for a %llu-byte chunk",
				      what, (unsigned long long)len,
				      (unsigned long long)a->unit_nbytes);
	*in = malloc(len ? len : 1);
	if (!*in)
		return ckpt_error_nomem();
	rc = src->pread(src->ctx, key, *in, (size_t)len, off);
	if (rc) {
		free(*in);
		*in = NULL;
		return ckpt_error_wrap(rc, "%s", what);
	}
	*inlen = (size_t)len;
	return 0;
}

static int make_unit(unsigned char **out, const zarr_array *a, const zarr_source *src,
		     const uint64_t *u)
{
	unsigned char *in = NULL, *dec;
	size_t inlen = 0;
	char what[1024];
	int rc;

	*out = NULL;
	dec = malloc(a->unit_nbytes ? a->unit_nbytes : 1);
	if (!dec)
		return ckpt_error_nomem();
	rc = load_stored(a, src, u, &in, &inlen, what, sizeof(what));
	if (rc == 0) {
		if (in)
			rc = decode_unit(a, dec, in, inlen, what);
		else
			fill_unit(a, dec);
	}
	free(in);
	if (rc) {
		free(dec);
		return rc;
	}
	*out = dec;
	return 0;
}

/*
 * Decodes of one unit by concurrent readers (the mount serves a file with
 * several threads) are serialised on a stripe of locks keyed by the unit, so
 * the second reader finds the first one's result in the cache instead of
 * decoding it again.
 */
#define DECODE_STRIPES 64
static pthread_mutex_t decode_mu[DECODE_STRIPES] = {[0 ... DECODE_STRIPES - 1] =
							PTHREAD_MUTEX_INITIALIZER};

static const ckpt_cached_chunk *cached_unit(int *rc, const zarr_array *a, const zarr_source *src,
					    ckpt_chunk_cache *cache, uint64_t cache_id, uint64_t id,
					    const uint64_t *u, uint64_t *units)
{
	const ckpt_cached_chunk *c = ckpt_chunk_cache_get(cache, cache_id, id);
	pthread_mutex_t *mu = &decode_mu[(cache_id * 0x9e3779b97f4a7c15ull + id) % DECODE_STRIPES];
	unsigned char *dec;

	*rc = 0;
	if (c)
		return c;
	pthread_mutex_lock(mu);
	c = ckpt_chunk_cache_get(cache, cache_id, id);
	if (!c) {
		*rc = make_unit(&dec, a, src, u);
		if (*rc == 0) {
			if (units)
				(*units)++;
			c = ckpt_chunk_cache_put(cache, cache_id, id, dec, (size_t)a->unit_nbytes);
			if (!c)
				*rc = ckpt_error_nomem();
		}
	}
	pthread_mutex_unlock(mu);
	return c;
}

int zarr_read(const zarr_array *a, const zarr_source *src, ckpt_chunk_cache *cache,
	      uint64_t cache_id, void *buf, size_t len, uint64_t off, uint64_t *units)
{
	const ckpt_cached_chunk *held = NULL;
	unsigned char *own = NULL;
	uint64_t held_id = UINT64_MAX, b = off, end;
	const unsigned char *data = NULL;
	int rc = 0;

	if (off > a->nbytes || len > a->nbytes - off)
		return ckpt_error_set(CKPT_EINVAL, "%s: read past the end", a->name);
	end = off + len;
	while (b < end) {
		uint64_t e = b / a->isz, rem = e, coord[ZARR_MAX_NDIM], u[ZARR_MAX_NDIM];
		uint64_t id = 0, within = 0, run = 1;
		for (int d = (int)a->ndim - 1; d >= 0; d--) {
			coord[d] = rem % a->shape[d];
			rem /= a->shape[d];
		}
		for (unsigned d = 0; d < a->ndim; d++) {
			u[d] = coord[d] / a->unit[d];
			id = id * a->grid[d] + u[d];
			within = within * a->unit[d] + coord[d] % a->unit[d];
		}
		if (a->ndim) {
			unsigned l = a->ndim - 1;
			uint64_t w = coord[l] % a->unit[l];
			run = a->unit[l] - w;
			if (run > a->shape[l] - coord[l])
				run = a->shape[l] - coord[l];
		}
		if (id != held_id) {
			ckpt_chunk_cache_release(cache, held);
			held = NULL;
			free(own);
			own = NULL;
			held_id = UINT64_MAX;
			if (cache) {
				held = cached_unit(&rc, a, src, cache, cache_id, id, u, units);
				if (rc)
					goto done;
			} else {
				rc = make_unit(&own, a, src, u);
				if (rc)
					goto done;
				if (units)
					(*units)++;
			}
			data = held ? held->data : own;
			held_id = id;
		}
		uint64_t skip = b - e * a->isz;
		uint64_t n = run * a->isz - skip;
		if (n > end - b)
			n = end - b;
		memcpy((unsigned char *)buf + (b - off), data + within * a->isz + skip, (size_t)n);
		b += n;
	}
done:
	ckpt_chunk_cache_release(cache, held);
	free(own);
	return rc;
}

uint64_t zarr_unit_at(const zarr_array *a, uint64_t off)
{
	uint64_t rem = off / a->isz, coord[ZARR_MAX_NDIM], id = 0;

	for (int d = (int)a->ndim - 1; d >= 0; d--) {
		coord[d] = rem % a->shape[d];
		rem /= a->shape[d];
	}
	for (unsigned d = 0; d < a->ndim; d++)
		id = id * a->grid[d] + coord[d] / a->unit[d];
	return id;
}

uint64_t zarr_unit_count(const zarr_array *a)
{
	uint64_t n = 1;
	for (unsigned d = 0; d < a->ndim; d++)
		n *= a->grid[d];
	return n;
}

int zarr_prefetch(const zarr_array *a, const zarr_source *src, ckpt_chunk_cache *cache,
		  uint64_t cache_id, uint64_t id)
{
	uint64_t u[ZARR_MAX_NDIM], rem = id;
	int rc;

	for (int d = (int)a->ndim - 1; d >= 0; d--) {
		if (a->grid[d] == 0)
			return 0;
		u[d] = rem % a->grid[d];
		rem /= a->grid[d];
	}
	if (rem)
		return ckpt_error_set(CKPT_EINVAL, "%s: no unit %llu", a->name,
				      (unsigned long long)id);
	ckpt_chunk_cache_release(cache, cached_unit(&rc, a, src, cache, cache_id, id, u, NULL));
	return rc;
}

int zarr_verify(const zarr_array *a, const zarr_source *src)
{
	uint64_t u[ZARR_MAX_NDIM] = {0};
	int rc = 0;

	for (unsigned d = 0; d < a->ndim; d++)
		if (a->grid[d] == 0)
			return 0;
	for (;;) {
		unsigned char *dec;
		rc = make_unit(&dec, a, src, u);
		free(dec);
		if (rc)
			return rc;
		int d = (int)a->ndim - 1;
		while (d >= 0 && ++u[d] == a->grid[d])
			u[d--] = 0;
		if (d < 0)
			return 0;
	}
}

/* ---- directory source ---- */

static int dir_size(void *ctx, const char *key, uint64_t *len)
{
	zarr_dir *d = ctx;
	struct stat st;

	if (fstatat(d->dirfd, key, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? CKPT_ENOTFOUND
				       : ckpt_error_errno(CKPT_EIO, errno, "stat chunk %s", key);
	if (!S_ISREG(st.st_mode))
		return ckpt_error_set(CKPT_ECORRUPT, "chunk %s is not a regular file", key);
	*len = (uint64_t)st.st_size;
	return 0;
}

static int dir_pread(void *ctx, const char *key, void *buf, size_t len, uint64_t off)
{
	zarr_dir *d = ctx;
	int fd = openat(d->dirfd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	size_t done = 0;
	int rc = 0;

	if (fd < 0)
		return ckpt_error_errno(CKPT_EIO, errno, "open chunk %s", key);
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? ckpt_error_errno(CKPT_EIO, errno, "read chunk %s", key)
				   : ckpt_error_set(CKPT_ECORRUPT,
						    "chunk %s is shorter than expected", key);
			break;
		}
		done += (size_t)n;
	}
	close(fd);
	if (d->bytes_read)
		__atomic_fetch_add(d->bytes_read, done, __ATOMIC_RELAXED);
	return rc;
}

zarr_source zarr_dir_source(zarr_dir *d)
{
	zarr_source s = {dir_size, dir_pread, d};
	return s;
}
