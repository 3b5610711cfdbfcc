/*
 * ocdbt_test.c — the OCDBT reader against real TensorStore/Orbax databases
 * (tests/data/orbax, see its README), compared with an independent reader
 * (tests/ocdbt_dump.py) and with the files the neuroglancer dbs store.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "ckpt/error.h"
#include "crc32c.h"
#include "ocdbt.h"

#define NG "tests/data/orbax/google-neuroglancer/testdata/kvstore/ocdbt/"
#define OX                                                                                         \
	"tests/data/orbax/google-orbax/checkpoint/orbax/checkpoint/experimental/v1/_src/testing/"  \
	"compatibility/checkpoints/"

typedef struct listing {
	char *text;
	size_t len, cap;
	ocdbt_db *db;
} listing;

static void app(listing *l, const char *s)
{
	size_t n = strlen(s);
	if (l->len + n + 1 > l->cap) {
		l->cap = (l->len + n + 1) * 2;
		l->text = realloc(l->text, l->cap);
		assert_non_null(l->text);
	}
	memcpy(l->text + l->len, s, n + 1);
	l->len += n;
}

/* One line per key as ocdbt_dump.py prints it: key, kind, length, head. */
static int list_cb(const unsigned char *key, size_t keylen, uint64_t vlen, void *payload)
{
	listing *l = payload;
	ocdbt_blob b;
	char line[1024], head[40] = "";
	unsigned char buf[16];

	assert_int_equal(ocdbt_get(l->db, key, keylen, &b), 0);
	assert_int_equal(b.len, vlen);
	size_t n = vlen < 8 ? vlen : 8;
	assert_int_equal(ocdbt_blob_pread(l->db, &b, buf, n, 0), 0);
	for (size_t i = 0; i < n; i++)
		sprintf(head + 2 * i, "%02x", buf[i]);
	snprintf(line, sizeof(line), "%.*s %s %llu %s\n", (int)keylen, (const char *)key,
		 b.data ? "inline" : "indirect", (unsigned long long)vlen, head);
	ocdbt_blob_clear(&b);
	app(l, line);
	return 0;
}

/* The same listing from the Python reader. */
static char *oracle(const char *dir)
{
	char cmd[2048], line[8192];
	listing l = {0};
	FILE *p;

	snprintf(
	    cmd, sizeof(cmd),
	    "python3 tests/ocdbt_dump.py '%s' | python3 -c '"
	    "import sys\n"
	    "for ln in sys.stdin:\n"
	    "  if not ln.startswith(\"  \") or ln.startswith(\"  gen=\"): continue\n"
	    "  f = ln.split()\n"
	    "  k, kind, n = f[0], f[1], int(f[2])\n"
	    "  head = f[4][5:] if kind == \"indirect\" else (f[3][:16] if len(f) > 3 else \"\")\n"
	    "  print(k, kind, n, head[:16] if kind == \"indirect\" else head)\n"
	    "'",
	    dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		app(&l, line);
	assert_int_equal(pclose(p), 0);
	return l.text ? l.text : strdup("");
}

/* Compare key/kind/length with the oracle (heads only for binary values). */
static void check_against_oracle(const char *dir)
{
	listing l = {0};
	uint64_t nodes = 0;

	assert_int_equal(ocdbt_open(&l.db, dir, NULL), 0);
	assert_int_equal(ocdbt_list(l.db, "", 0, list_cb, &l), 0);
	assert_int_equal(ocdbt_verify(l.db, &nodes), 0);
	assert_true(nodes >= 1);
	char *want = oracle(dir);
	/* compare the first three fields of each line */
	char *a = l.text ? l.text : strdup(""), *b = want, *sa, *sb;
	char *la = strtok_r(a, "\n", &sa), *lb = strtok_r(b, "\n", &sb);
	size_t lines = 0;
	while (la && lb) {
		char ka[1024], kb[1024], ta[16], tb[16];
		unsigned long long na, nb;
		assert_int_equal(sscanf(la, "%1023s %15s %llu", ka, ta, &na), 3);
		assert_int_equal(sscanf(lb, "%1023s %15s %llu", kb, tb, &nb), 3);
		assert_string_equal(ka, kb);
		assert_string_equal(ta, tb);
		assert_int_equal(na, nb);
		la = strtok_r(NULL, "\n", &sa);
		lb = strtok_r(NULL, "\n", &sb);
		lines++;
	}
	assert_null(la);
	assert_null(lb);
	assert_true(lines > 0 || strstr(dir, "empty"));
	free(a);
	free(want);
	ocdbt_free(l.db);
}

static void test_neuroglancer_dbs(void **state)
{
	check_against_oracle(NG "files_high_arity.ocdbt");
	check_against_oracle(NG "files_min_arity.ocdbt");
	check_against_oracle(NG "multi_version_high_arity.ocdbt");
	check_against_oracle(NG "multi_version_low_arity.ocdbt");
}

/* files_min_arity: B+tree of height 3, indirect values = the source files. */
static void test_values_equal_source_files(void **state)
{
	static const char *keys[] = {"a", "b", "c", "baz/first", "baz/x", "baz/z", "empty", "#"};
	ocdbt_db *db;
	char path[512];

	assert_int_equal(ocdbt_open(&db, NG "files_min_arity.ocdbt", NULL), 0);
	assert_int_equal(ocdbt_num_keys(db), 8);
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		ocdbt_blob b;
		FILE *f;
		char want[64] = "", got[64] = "";
		snprintf(path, sizeof(path),
			 "tests/data/orbax/google-neuroglancer/testdata/kvstore/files/%s", keys[i]);
		f = fopen(path, "rb");
		assert_non_null(f);
		size_t n = fread(want, 1, sizeof(want), f);
		fclose(f);
		assert_int_equal(ocdbt_get(db, keys[i], strlen(keys[i]), &b), 0);
		assert_int_equal(b.len, n);
		assert_int_equal(ocdbt_blob_pread(db, &b, got, n, 0), 0);
		assert_memory_equal(got, want, n);
		ocdbt_blob_clear(&b);
	}
	ocdbt_blob b;
	assert_int_equal(ocdbt_get(db, "baz", 3, &b), CKPT_ENOTFOUND);
	assert_int_equal(ocdbt_get(db, "zzz", 3, &b), CKPT_ENOTFOUND);
	assert_int_equal(ocdbt_get(db, "", 0, &b), CKPT_ENOTFOUND);
	ocdbt_free(db);
}

static int count_cb(const unsigned char *key, size_t keylen, uint64_t vlen, void *payload)
{
	(*(int *)payload)++;
	return 0;
}

static void test_prefix_listing(void **state)
{
	ocdbt_db *db;
	uint64_t bytes = 0;
	int n = 0;

	assert_int_equal(ocdbt_open(&db, NG "files_min_arity.ocdbt", &bytes), 0);
	assert_int_equal(ocdbt_list(db, "baz/", 4, count_cb, &n), 0);
	assert_int_equal(n, 3);
	n = 0;
	assert_int_equal(ocdbt_list(db, "b", 1, count_cb, &n), 0);
	assert_int_equal(n, 4); /* b, baz/first, baz/x, baz/z */
	n = 0;
	assert_int_equal(ocdbt_list(db, "q", 1, count_cb, &n), 0);
	assert_int_equal(n, 0);
	assert_true(bytes > 0);
	ocdbt_free(db);
}

/* Every db of the Orbax compatibility set: the oracle's keys, or a clear error. */
static void walk_orbax(const char *dir, int *ok, int *bad)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	struct stat st;

	assert_non_null(d);
	snprintf(path, sizeof(path), "%s/manifest.ocdbt", dir);
	if (stat(path, &st) == 0) {
		if (strstr(dir, "missing_pytree_data_dir_d") && !strstr(dir, "ocdbt.process")) {
			ocdbt_db *db = NULL;
			int rc = ocdbt_open(&db, dir, NULL);
			if (rc == 0)
				rc = ocdbt_verify(db, NULL);
			assert_int_not_equal(rc, 0);
			assert_non_null(strstr(ckpt_error_last(), "d/"));
			ocdbt_free(db);
			(*bad)++;
		} else {
			check_against_oracle(dir);
			(*ok)++;
		}
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "d") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			walk_orbax(path, ok, bad);
	}
	closedir(d);
}

static void test_orbax_compatibility_dbs(void **state)
{
	int ok = 0, bad = 0;

	walk_orbax(OX, &ok, &bad);
	assert_true(ok >= 70);
	assert_true(bad >= 3);
}

/* Damaged bytes: every flipped byte of a manifest and of a node is refused, never a crash. */
static void test_flipped_bytes(void **state)
{
	char *buf;
	FILE *f = fopen(NG "files_high_arity.ocdbt/manifest.ocdbt", "rb");
	assert_non_null(f);
	buf = malloc(1 << 16);
	size_t n = fread(buf, 1, 1 << 16, f);
	fclose(f);
	assert_int_equal(ocdbt_check_manifest_bytes(buf, n), 0);
	for (size_t i = 0; i < n; i++) {
		buf[i] ^= 0x5a;
		assert_int_not_equal(ocdbt_check_manifest_bytes(buf, n), 0);
		buf[i] ^= 0x5a;
	}
	for (size_t cut = 0; cut < n; cut++)
		assert_int_not_equal(ocdbt_check_manifest_bytes(buf, cut), 0);
	free(buf);
}

/* A data-file path leaving the db directory is refused. */
static void test_escaping_path(void **state)
{
	/* node: height 0, one file "../x", one inline entry */
	unsigned char body[] = {0, 1, 4, 0, '.', '.', '/', 'x', 1, 1, 'k', 1, 0, 'v'};
	unsigned char env[64];
	size_t n = 0;
	/* envelope: magic, length, version 0, compression 0, body, crc */
	env[n++] = 0x0c;
	env[n++] = 0xdb;
	env[n++] = 0x20;
	env[n++] = 0xde;
	size_t total = 4 + 8 + 2 + sizeof(body) + 4;
	for (int i = 0; i < 8; i++)
		env[n++] = (unsigned char)(total >> (8 * i));
	env[n++] = 0;
	env[n++] = 0;
	memcpy(env + n, body, sizeof(body));
	n += sizeof(body);

	uint32_t crc = ckpt_crc32c_update(0, env, n);
	for (int i = 0; i < 4; i++)
		env[n++] = (unsigned char)(crc >> (8 * i));
	assert_int_equal(ocdbt_check_node_bytes(env, n), CKPT_ECORRUPT);
	assert_non_null(strstr(ckpt_error_last(), "../x"));
	/* the same node with "d/x" decodes */
	env[14 + 4] = 'd';
	env[14 + 5] = 'd';
	n -= 4;
	crc = ckpt_crc32c_update(0, env, n);
	for (int i = 0; i < 4; i++)
		env[n++] = (unsigned char)(crc >> (8 * i));
	assert_int_equal(ocdbt_check_node_bytes(env, n), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_neuroglancer_dbs),
	    cmocka_unit_test(test_values_equal_source_files),
	    cmocka_unit_test(test_prefix_listing),
	    cmocka_unit_test(test_orbax_compatibility_dbs),
	    cmocka_unit_test(test_flipped_bytes),
	    cmocka_unit_test(test_escaping_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
