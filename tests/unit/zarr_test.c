/*
 * zarr_test.c — zarr v2 arrays written by python3-zarr (tests/zarr_make.py:
 * dtypes, N-d edge chunks, both separators, no compressor, big-endian,
 * missing chunks, 0-d, empty) and the zarr2/zarr3 arrays inside real Orbax
 * OCDBT checkpoints (tests/data/orbax), against their expected contents;
 * partial reads decode only the chunks they overlap; bad metadata is refused.
 */
#include <fcntl.h>
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
#include "crc32c.h"
#include "ocdbt.h"
#include "zarr.h"

#define OX                                                                                         \
	"tests/data/orbax/google-orbax/checkpoint/orbax/checkpoint/experimental/v1/_src/testing/"  \
	"compatibility/checkpoints/"

static char tmp[256];

static int setup(void **state)
{
	char cmd[512];
	snprintf(tmp, sizeof(tmp), "/tmp/zarr_test.%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/zarr_make.py %s", tmp);
	return system(cmd);
}

static int teardown(void **state)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	return system(cmd);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void check_dir_array(const char *name, ckpt_chunk_cache *cache, uint64_t id)
{
	char path[512];
	size_t mlen, nlen;
	zarr_array *a;
	uint64_t bytes = 0, units = 0;

	snprintf(path, sizeof(path), "%s/%s/.zarray", tmp, name);
	char *meta = slurp(path, &mlen);
	assert_int_equal(zarr_parse(&a, meta, mlen, 0, name), 0);
	snprintf(path, sizeof(path), "%s/%s.npy", tmp, name);
	char *npy = slurp(path, &nlen);
	uint64_t nb = zarr_nbytes(a);
	assert_true(nb <= nlen);
	const char *want = npy + nlen - nb; /* np.save: header, then the data */
	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	zarr_dir d = {open(path, O_RDONLY | O_DIRECTORY), &bytes};
	zarr_source src = zarr_dir_source(&d);
	char *got = malloc(nb + 1);
	assert_int_equal(zarr_read(a, &src, cache, id, got, nb, 0, &units), 0);
	if (memcmp(got, want, nb))
		fprintf(stderr, "array %s differs\n", name);
	assert_memory_equal(got, want, nb);
	assert_int_equal(zarr_verify(a, &src), 0);
	/* every range of a few sizes, at odd offsets */
	for (uint64_t off = 0; off < nb; off += 7)
		for (uint64_t len = 1; len < 40 && off + len <= nb; len += 13) {
			memset(got, 0xee, len);
			assert_int_equal(zarr_read(a, &src, cache, id, got, len, off, NULL), 0);
			assert_memory_equal(got, want + off, len);
		}
	close(d.dirfd);
	free(got);
	free(meta);
	free(npy);
	zarr_free(a);
}

static void test_python_zarr_arrays(void **state)
{
	static const char *names[] = {"i32",
				      "f32_2d_edges",
				      "f64_3d_slash_raw",
				      "i32_big_endian",
				      "u8",
				      "i16",
				      "bool",
				      "c8",
				      "c16_big",
				      "f2",
				      "u64",
				      "scalar",
				      "empty",
				      "missing_chunks",
				      "big"};
	ckpt_chunk_cache *cache;

	assert_int_equal(ckpt_chunk_cache_new(&cache, 1 << 20), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		check_dir_array(names[i], NULL, 0);
		check_dir_array(names[i], cache, i); /* the cache id is per array */
	}
	ckpt_chunk_cache_free(cache);
}

/* A 4 KiB read inside one chunk decodes that chunk only; a row across the
 * 2-D chunking decodes the chunks of that row only. */
static void test_partial_reads_are_lazy(void **state)
{
	char path[512];
	size_t mlen;
	zarr_array *a;
	uint64_t bytes = 0, units = 0;

	snprintf(path, sizeof(path), "%s/big/.zarray", tmp);
	char *meta = slurp(path, &mlen);
	assert_int_equal(zarr_parse(&a, meta, mlen, 0, "big"), 0);
	snprintf(path, sizeof(path), "%s/big", tmp);
	zarr_dir d = {open(path, O_RDONLY | O_DIRECTORY), &bytes};
	zarr_source src = zarr_dir_source(&d);
	char buf[4096];
	/* row 40 (of 512 floats = 2 KiB), columns 0..127: one chunk */
	assert_int_equal(zarr_read(a, &src, NULL, 1, buf, 512, 40 * 2048, &units), 0);
	assert_int_equal(units, 1);
	/* two full rows: 4 chunks across x 1 chunk down; each decoded once with a cache */
	ckpt_chunk_cache *cache;
	assert_int_equal(ckpt_chunk_cache_new(&cache, 1 << 20), 0);
	units = 0;
	assert_int_equal(zarr_read(a, &src, cache, 1, buf, 4096, 40 * 2048, &units), 0);
	assert_int_equal(units, 4);
	ckpt_chunk_cache_free(cache);
	assert_true(bytes < 6 * 16384 + 4096); /* never the whole 512 KiB array */
	close(d.dirfd);
	free(meta);
	zarr_free(a);
}

/* An OCDBT db with a prefix as a source. */
typedef struct osrc {
	ocdbt_db *db;
	const char *prefix;
} osrc;

static int o_size(void *ctx, const char *key, uint64_t *len)
{
	osrc *o = ctx;
	char k[512];
	ocdbt_blob b;
	snprintf(k, sizeof(k), "%s/%s", o->prefix, key);
	int rc = ocdbt_get(o->db, k, strlen(k), &b);
	if (rc == 0)
		*len = b.len;
	ocdbt_blob_clear(&b);
	return rc;
}

static int o_pread(void *ctx, const char *key, void *buf, size_t len, uint64_t off)
{
	osrc *o = ctx;
	char k[512];
	ocdbt_blob b;
	snprintf(k, sizeof(k), "%s/%s", o->prefix, key);
	int rc = ocdbt_get(o->db, k, strlen(k), &b);
	if (rc == 0)
		rc = ocdbt_blob_pread(o->db, &b, buf, len, off);
	ocdbt_blob_clear(&b);
	return rc;
}

static void check_orbax_state(const char *dir, int v3)
{
	ocdbt_db *db;
	static const int32_t want_a[8] = {0, 1, 2, 3, 4, 5, 6, 7}, want_bc[3] = {1, 2, 3};
	const char *params[] = {"a", "b.c"};
	const int32_t *wants[] = {want_a, want_bc};

	assert_int_equal(ocdbt_open(&db, dir, NULL), 0);
	for (int i = 0; i < 2; i++) {
		char k[64];
		ocdbt_blob b;
		zarr_array *a;
		snprintf(k, sizeof(k), "%s/%s", params[i], v3 ? "zarr.json" : ".zarray");
		assert_int_equal(ocdbt_get(db, k, strlen(k), &b), 0);
		assert_int_equal(zarr_parse(&a, (const char *)b.data, b.len, v3, k), 0);
		ocdbt_blob_clear(&b);
		assert_int_equal(zarr_dtype(a), CKPT_DTYPE_INT32);
		osrc o = {db, params[i]};
		zarr_source src = {o_size, o_pread, &o};
		int32_t got[8];
		assert_int_equal(zarr_read(a, &src, NULL, 0, got, zarr_nbytes(a), 0, NULL), 0);
		assert_memory_equal(got, wants[i], zarr_nbytes(a));
		assert_int_equal(zarr_verify(a, &src), 0);
		assert_string_equal(zarr_codec_name(a), v3 ? "sharding_indexed+zstd" : "zstd");
		zarr_free(a);
	}
	ocdbt_free(db);
}

static void test_orbax_ocdbt_arrays(void **state)
{
	check_orbax_state(OX "v0_checkpoints/composite_checkpoint/checkpoint_metadata_present/"
			     "pytree_checkpointable_has_metadata/state",
			  0);
	check_orbax_state(OX "v1_checkpoints/composite_checkpoint/checkpoint_metadata_present/"
			     "pytree_checkpointable_has_metadata/state",
			  1);
	check_orbax_state(OX "v0_checkpoints/direct_checkpoint/checkpoint_metadata_present/"
			     "pytree_checkpointable_has_metadata",
			  0);
}

static void test_bad_metadata(void **state)
{
	static const struct {
		const char *json;
		int v3, rc;
		const char *msg;
	} cases[] = {
	    {"{}", 0, CKPT_EINVAL, "zarr_format"},
	    {"[1]", 0, CKPT_EINVAL, "not a JSON object"},
	    {"{\"zarr_format\":2,\"shape\":[4],\"chunks\":[2],\"dtype\":\"<i4\","
	     "\"compressor\":{\"id\":\"blosc\"}}",
	     0, CKPT_EUNSUPPORTED, "blosc"},
	    {"{\"zarr_format\":2,\"shape\":[4],\"chunks\":[2],\"dtype\":\"<U4\"}", 0,
	     CKPT_EUNSUPPORTED, "<U4"},
	    {"{\"zarr_format\":2,\"shape\":[4],\"chunks\":[2],\"dtype\":\"int4\"}", 0,
	     CKPT_EUNSUPPORTED, "int4"},
	    {"{\"zarr_format\":2,\"shape\":[4],\"chunks\":[0],\"dtype\":\"<i4\"}", 0, CKPT_EINVAL,
	     "zero"},
	    {"{\"zarr_format\":2,\"shape\":[4],\"chunks\":[2],\"dtype\":\"<i4\",\"order\":\"F\"}",
	     0, CKPT_EUNSUPPORTED, "order"},
	    {"{\"zarr_format\":2,\"shape\":[1000000000000,1000000000],\"chunks\":[2,2],\"dtype\":"
	     "\"<i4\"}",
	     0, CKPT_EINVAL, "large"},
	    {"{\"zarr_format\":3,\"shape\":[4],\"data_type\":\"int32\",\"chunk_grid\":{\"name\":"
	     "\"regular\",\"configuration\":{\"chunk_shape\":[2]}},\"chunk_key_encoding\":{"
	     "\"name\":"
	     "\"default\"},\"codecs\":[{\"name\":\"transpose\"},{\"name\":\"bytes\"}]}",
	     1, CKPT_EUNSUPPORTED, "transpose"},
	    {"{\"zarr_format\":3,\"shape\":[4],\"data_type\":\"string\",\"chunk_grid\":{\"name\":"
	     "\"regular\",\"configuration\":{\"chunk_shape\":[2]}},\"chunk_key_encoding\":{"
	     "\"name\":"
	     "\"default\"},\"codecs\":[{\"name\":\"bytes\"}]}",
	     1, CKPT_EUNSUPPORTED, "string"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		zarr_array *a = NULL;
		assert_int_equal(
		    zarr_parse(&a, cases[i].json, strlen(cases[i].json), cases[i].v3, "leaf/x"),
		    cases[i].rc);
		assert_null(a);
		if (!strstr(ckpt_error_last(), cases[i].msg))
			fprintf(stderr, "case %zu: %s\n", i, ckpt_error_last());
		assert_non_null(strstr(ckpt_error_last(), "leaf/x"));
		assert_non_null(strstr(ckpt_error_last(), cases[i].msg));
	}
}

/* A damaged chunk and a damaged shard index give errors naming the chunk. */
static void test_damaged_chunks(void **state)
{
	char path[512], cmd[2048];
	size_t mlen;
	zarr_array *a;

	snprintf(
	    cmd, sizeof(cmd),
	    "cp -r %s/f32_2d_edges %s/bad && printf xxxx | dd of=%s/bad/1.1 "
	    "bs=1 seek=5 conv=notrunc status=none && head -c 3 %s/f32_2d_edges/0.0 > %s/bad/0.0",
	    tmp, tmp, tmp, tmp, tmp);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/bad/.zarray", tmp);
	char *meta = slurp(path, &mlen);
	assert_int_equal(zarr_parse(&a, meta, mlen, 0, "bad"), 0);
	snprintf(path, sizeof(path), "%s/bad", tmp);
	zarr_dir d = {open(path, O_RDONLY | O_DIRECTORY), NULL};
	zarr_source src = zarr_dir_source(&d);
	float buf[4];
	assert_int_equal(zarr_read(a, &src, NULL, 0, buf, 4, 0, NULL), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "chunk 0.0"));
	assert_int_not_equal(zarr_verify(a, &src), 0);
	close(d.dirfd);
	free(meta);
	zarr_free(a);

	/* shard index: flipping any byte of the index or its crc is caught */
	unsigned char idx[20] = {0};
	idx[8] = 10; /* offset 0, length 10 */

	uint32_t c = ckpt_crc32c_update(0, idx, 16);
	for (int i = 0; i < 4; i++)
		idx[16 + i] = (unsigned char)(c >> (8 * i));
	assert_int_equal(zarr_shard_index_check(idx, 20, 1, 1, 30), 0);
	assert_int_equal(zarr_shard_index_check(idx, 20, 1, 1, 9), CKPT_ECORRUPT);
	for (int i = 0; i < 20; i++) {
		idx[i] ^= 1;
		assert_int_equal(zarr_shard_index_check(idx, 20, 1, 1, 30), CKPT_ECORRUPT);
		idx[i] ^= 1;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_python_zarr_arrays),
	    cmocka_unit_test(test_partial_reads_are_lazy),
	    cmocka_unit_test(test_orbax_ocdbt_arrays),
	    cmocka_unit_test(test_bad_metadata),
	    cmocka_unit_test(test_damaged_chunks),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
