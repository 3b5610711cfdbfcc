/*
 * safetensors_test.c — conversions: an item seen as a safetensors file
 * (layout, header parsing back, every byte range against the leaves), the
 * strict parser, name collisions, .npz export read back by the zip reader,
 * and import round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "fsutil.h"
#include "unit/treecmp.h"

struct fx {
	char *root;
	char dir[512];
	ckpt_tree *t;
	ckpt_handler *h;
	ckpt_step *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args it;
	uint64_t sh[2] = {3, 7};

	f->root = test_tmpdir();
	f->t = test_tree_every_kind(1);
	if (!f->root || !f->t || ckpt_pytree_handler_new(&f->h))
		return -1;
	/* every safetensors dtype, so that the sort by dtype is exercised */
	for (int dt = CKPT_DTYPE_BOOL; dt < CKPT_DTYPE_COUNT; dt++) {
		char key[32];
		snprintf(key, sizeof(key), "d%d", dt);
		if (test_add_array(f->t, key, (ckpt_dtype)dt, 2, sh, dt))
			return -1;
	}
	sa.item = f->t;
	it = (ckpt_item_args){"state", f->h, &sa};
	ckpt_step_writer_options o = CKPT_STEP_WRITER_OPTIONS_INIT;
	o.store.chunk_size = 4096;
	if (ckpt_checkpointer_save(f->root, 10, &it, 1, &o))
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/10", f->root);
	if (ckpt_step_open(&f->s, f->dir, NULL))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	ckpt_step_free(f->s);
	ckpt_rmtree(f->root);
	free(f->root);
	ckpt_tree_free(f->t);
	ckpt_handler_free(f->h);
	free(f);
	return 0;
}

/* The node whose keys joined with '.' are name (keys hold no '.' here). */
static const ckpt_tree *by_keys(const ckpt_tree *t, const char *name)
{
	char *copy = strdup(name), *save = NULL;
	for (char *k = strtok_r(copy, ".", &save); k && t; k = strtok_r(NULL, ".", &save))
		t = ckpt_tree_find(t, k);
	free(copy);
	return t;
}

static unsigned char *read_all(ckpt_safetensors *st, uint64_t *size)
{
	*size = ckpt_safetensors_size(st);
	unsigned char *b = malloc(*size + 1);
	size_t got = 0;
	assert_int_equal(ckpt_safetensors_pread(&got, st, b, *size + 100, 0), 0);
	assert_int_equal(got, *size);
	return b;
}

/* The file parses back with our strict parser; every tensor's bytes are its leaf's. */
static void test_layout(void **state)
{
	struct fx *f = *state;
	ckpt_safetensors *st = NULL;
	ckpt_safetensors_header *h = NULL;
	uint64_t size;

	assert_int_equal(ckpt_safetensors_open(&st, f->s, "state", NULL), 0);
	unsigned char *b = read_all(st, &size);
	assert_int_equal(ckpt_safetensors_parse(&h, b, size, size), 0);
	assert_int_equal(h->data_start % 8, 0);
	assert_int_equal(h->ntensors, ckpt_safetensors_tensor_count(st));
	/* left out: step, lr, flag, name, a/b (scalars and a string), complex64/128 */
	assert_int_equal(ckpt_safetensors_left_out_count(st), 7);
	assert_non_null(strstr(h->metadata, "\"ckpt.item\":\"state\""));
	assert_non_null(strstr(h->metadata, "\"ckpt.step\":\"10\""));
	uint64_t prev_end = 0;
	size_t prev_esz = 16;
	for (size_t i = 0; i < h->ntensors; i++) {
		const ckpt_safetensors_tensor *t = &h->tensors[i];
		const ckpt_tree *leaf = by_keys(f->t, t->name);
		/* header order is file order, element sizes never grow */
		assert_int_equal(t->begin, prev_end);
		assert_true(ckpt_dtype_size(t->dtype) <= prev_esz);
		assert_int_equal((h->data_start + t->begin) % ckpt_dtype_size(t->dtype), 0);
		prev_end = t->end;
		prev_esz = ckpt_dtype_size(t->dtype);
		assert_non_null(leaf);
		assert_int_equal(ckpt_tree_nbytes(leaf), t->end - t->begin);
		assert_memory_equal(ckpt_tree_data(leaf), b + h->data_start + t->begin,
				    t->end - t->begin);
	}
	/* any range equals the same bytes of the whole */
	for (uint64_t off = 0; off < size; off += 97) {
		unsigned char buf[300];
		size_t got = 0;
		assert_int_equal(ckpt_safetensors_pread(&got, st, buf, sizeof(buf), off), 0);
		assert_int_equal(got, size - off < sizeof(buf) ? size - off : sizeof(buf));
		assert_memory_equal(buf, b + off, got);
	}
	ckpt_safetensors_header_free(h);
	free(b);
	ckpt_safetensors_free(st);
}

static int parse_err(const char *json, const void *data, size_t dlen)
{
	size_t jl = strlen(json), n = 8 + jl + dlen;
	unsigned char *b = malloc(n);
	ckpt_safetensors_header *h = NULL;
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)jl >> (8 * i));
	memcpy(b + 8, json, jl);
	memcpy(b + 8 + jl, data, dlen);
	int rc = ckpt_safetensors_parse(&h, b, n, n);
	ckpt_safetensors_header_free(h);
	free(b);
	return rc;
}

static void test_parse_bad(void **state)
{
	static const unsigned char z[16] = {0};
	(void)state;
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8), 0);
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", z, 8), 0);
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 9),
			 CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "cover 8 bytes"));
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", z, 8),
			 CKPT_EUNSUPPORTED);
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
				   "\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]}}", z, 8),
			 CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "named twice"));
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
				   "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", z, 8),
			 CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "overlaps"));
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,8]}}", z, 8),
			 CKPT_EINVAL);
	assert_int_equal(parse_err("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[8,0]}}", z, 8),
			 CKPT_EINVAL);
	assert_int_equal(parse_err("{\"__metadata__\":{\"k\":1}}", z, 0), CKPT_EINVAL);
	assert_int_equal(parse_err("[1]", z, 0), CKPT_EINVAL);
	assert_int_equal(parse_err("{} x", z, 0), CKPT_EINVAL);
	assert_int_equal(parse_err("{\"\xff\":1}", z, 0), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "UTF-8"));
}

/* Keys joined without a separator collide: an error naming the name, not a lost leaf. */
static void test_collision(void **state)
{
	struct fx *f = *state;
	ckpt_safetensors *st = NULL;
	ckpt_safetensors_options o = CKPT_SAFETENSORS_OPTIONS_INIT;
	ckpt_tree *t = NULL, *a = NULL;
	uint64_t sh[1] = {2};
	ckpt_pytree_save_args sa = CKPT_PYTREE_SAVE_ARGS_INIT;
	ckpt_item_args it = {"c", f->h, &sa};
	ckpt_step *s = NULL;
	char dir[600];

	assert_int_equal(ckpt_tree_new(&t, CKPT_TREE_DICT), 0);
	assert_int_equal(ckpt_tree_new(&a, CKPT_TREE_DICT), 0);
	assert_int_equal(test_add_array(a, "b", CKPT_DTYPE_INT8, 1, sh, 1), 0);
	assert_int_equal(ckpt_tree_add(t, "a", a), 0);
	assert_int_equal(test_add_array(t, "ab", CKPT_DTYPE_INT8, 1, sh, 2), 0);
	sa.item = t;
	assert_int_equal(ckpt_checkpointer_save(f->root, 11, &it, 1, NULL), 0);
	snprintf(dir, sizeof(dir), "%s/11", f->root);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	o.sep = 0;
	assert_int_equal(ckpt_safetensors_open(&st, s, "c", &o), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "'ab'"));
	o.sep = '.';
	assert_int_equal(ckpt_safetensors_open(&st, s, "c", &o), 0);
	assert_int_equal(ckpt_safetensors_tensor_count(st), 2);
	ckpt_safetensors_free(st);
	ckpt_step_free(s);
	ckpt_tree_free(t);
}

/* export -> import -> export is byte-identical; .npz export reads back entry by entry. */
static void test_round_trips(void **state)
{
	struct fx *f = *state;
	char *a = ckpt_asprintf("%s/a.safetensors", f->root), *b = ckpt_asprintf("%s/b.safetensors", f->root),
	     *z = ckpt_asprintf("%s/c.npz", f->root), *dir = ckpt_asprintf("%s/20", f->root);
	char *x = NULL, *y = NULL;
	size_t xl = 0, yl = 0, left = 0;
	ckpt_step *s = NULL;
	ckpt_npz *npz = NULL;

	assert_int_equal(ckpt_safetensors_export(f->s, "state", a, NULL), 0);
	assert_int_equal(ckpt_safetensors_import(f->root, 20, "state", a, NULL, NULL), 0);
	assert_int_equal(ckpt_step_open(&s, dir, NULL), 0);
	assert_int_equal(ckpt_safetensors_export(s, "state", b, NULL), 0);
	assert_int_equal(ckpt_read_file(&x, &xl, a, 1 << 26), 0);
	assert_int_equal(ckpt_read_file(&y, &yl, b, 1 << 26), 0);
	assert_int_equal(xl, yl);
	assert_memory_equal(x, y, xl);
	/* an existing step is refused, nothing changes */
	assert_int_equal(ckpt_safetensors_import(f->root, 20, "state", a, NULL, NULL), CKPT_EEXISTS);

	assert_int_equal(ckpt_npz_export(f->s, "state", z, NULL, &left), 0);
	assert_int_equal(left, 5); /* complex arrays are kept in .npz */
	int fd = open(z, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(ckpt_npz_open(&npz, fd, z), 0);
	for (size_t i = 0; i < npz->n; i++) {
		ckpt_npy_header h;
		void *d = NULL;
		char name[256];
		assert_int_equal(ckpt_npz_read_entry(&h, &d, npz, i, fd, NULL, 0, 1 << 26), 0);
		snprintf(name, sizeof(name), "%.*s", (int)strlen(npz->entries[i].name) - 4,
			 npz->entries[i].name);
		const ckpt_tree *leaf = by_keys(f->t, name);
		assert_non_null(leaf);
		assert_int_equal(h.data_len, ckpt_tree_nbytes(leaf));
		assert_memory_equal(d, ckpt_tree_data(leaf), h.data_len);
		free(d);
	}
	close(fd);
	ckpt_npz_free(npz);
	ckpt_step_free(s);
	free(x);
	free(y);
	free(a);
	free(b);
	free(z);
	free(dir);
}

/* A pending step takes <item>.safetensors / <item>.npz at its top, checked at close. */
static void test_pending_files(void **state)
{
	struct fx *f = *state;
	char *good = ckpt_asprintf("%s/model.safetensors", f->root);
	char *bad = ckpt_asprintf("%s/bad.safetensors", f->root);
	static const char junk[] = "\x10\0\0\0\0\0\0\0{\"a\":1}        ";
	int fd;

	assert_int_equal(ckpt_pending_check_path("model.safetensors", 0), 0);
	assert_int_equal(ckpt_pending_check_path("w.npz", 0), 0);
	assert_int_equal(ckpt_pending_check_path("_x.safetensors", 0), CKPT_EINVAL);
	assert_int_equal(ckpt_pending_check_path("notes.txt", 0), CKPT_EINVAL);
	assert_int_equal(ckpt_safetensors_export(f->s, "state", good, NULL), 0);
	assert_int_equal(ckpt_write_file(bad, junk, sizeof(junk) - 1), 0);
	assert_true((fd = open(good, O_RDONLY)) >= 0);
	assert_int_equal(ckpt_pending_check_file(-1, fd, "model.safetensors"), 0);
	close(fd);
	assert_true((fd = open(bad, O_RDONLY)) >= 0);
	assert_int_equal(ckpt_pending_check_file(-1, fd, "bad.safetensors"), CKPT_EINVAL);
	assert_non_null(strstr(ckpt_error_last(), "bad.safetensors"));
	close(fd);
	free(good);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test_setup_teardown(test_collision, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pending_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
