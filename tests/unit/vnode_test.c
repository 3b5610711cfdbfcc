/*
 * vnode_test.c — the mount's nodes of an open step (fs/vnode.c, included:
 * the daemon's file, without FUSE): ids the same in every open, with and
 * without the step's listing; a node asked for by id after a reopen found
 * through its parent; every allocation failing in turn leaves nothing
 * behind (builds without ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fs/vnode.c"
#include "fault_inject.h"
#include "fsutil.h"
#include "nested_step.h"

void ckptfs_log(const char *fmt, ...)
{
	(void)fmt;
}

static char root[] = "/tmp/ckpt-vnode-test-XXXXXX";
static char dir[600];

static int make_step(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(root));
	save_nested_step(root);
	snprintf(dir, sizeof(dir), "%s/1", root);
	return 0;
}

static int remove_step(void **state)
{
	(void)state;
	ckpt_rmtree(root);
	return 0;
}

static void close_vs(struct vstep *vs)
{
	if (!vs)
		return;
	vnodes_free(vs);
	ckpt_step_free(vs->step);
	pthread_mutex_destroy(&vs->lock);
	pthread_mutex_destroy(&vs->nodes_lock);
	free(vs);
}

/* The step opened as the view opens it (view.c vstep_open), or NULL and *rc. */
static struct vstep *open_vs(int *rc)
{
	struct vstep *vs = calloc(1, sizeof(*vs));

	if (!vs) {
		*rc = CKPT_ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&vs->lock, NULL);
	pthread_mutex_init(&vs->nodes_lock, NULL);
	snprintf(vs->name, sizeof(vs->name), "1");
	if ((*rc = ckpt_step_open_listed(&vs->step, dir, NULL)) || (*rc = vnodes_build(vs))) {
		close_vs(vs);
		return NULL;
	}
	return vs;
}

struct rec {
	char *text; /* "id parent type name\n" of every node, depth first */
	size_t len;
	uint32_t ids[256];
	size_t n;
};

/* Every node below d, listing each directory; 0 or the first error. */
static int walk(struct rec *r, struct vstep *vs, struct vnode *d)
{
	int rc = vnode_is_dir(d) ? view_dir_list(vs, d) : 0;

	for (uint32_t i = 0; rc == 0 && i < d->nkids; i++) {
		struct vnode *c = &d->kids[i];
		char line[300];
		int n = snprintf(line, sizeof(line), "%u %u %d %s\n", c->id, c->parent, c->type,
				 c->name);
		char *p = realloc(r->text, r->len + (size_t)n + 1);
		if (!p)
			return CKPT_ENOMEM;
		memcpy(p + r->len, line, (size_t)n + 1);
		r->text = p;
		r->len += (size_t)n;
		if (r->n < sizeof(r->ids) / sizeof(r->ids[0]))
			r->ids[r->n++] = c->id;
		rc = walk(r, vs, c);
	}
	return rc;
}

static void test_ids(void **state)
{
	struct rec a = {0}, b = {0}, c = {0};
	struct vstep *vs;
	char path[700];
	int rc;

	(void)state;
	assert_non_null(vs = open_vs(&rc));
	assert_int_equal(walk(&a, vs, &vs->top), 0);
	assert_true(vnodes_check(vs));
	close_vs(vs);
	assert_non_null(strstr(a.text, " a%2Fb w.npy\n"));
	assert_null(strstr(a.text, " none\n")); /* None has no file */
	assert_non_null(strstr(a.text, " a_state.safetensors\n"));
	assert_non_null(strstr(a.text, " _METADATA\n"));
	assert_non_null(strstr(a.text, " metadata\n")); /* the Json item's key */
	assert_true(a.n > 30);

	/* reopened: each node asked for by id alone, deepest first, is the same node */
	assert_non_null(vs = open_vs(&rc));
	for (size_t i = a.n; i-- > 0;) {
		struct vnode *n = NULL;
		char want[300];
		assert_int_equal(view_node(&n, vs, a.ids[i]), 0);
		snprintf(want, sizeof(want), "%u %u %d %s\n", n->id, n->parent, n->type, n->name);
		assert_non_null(strstr(a.text, want));
	}
	struct vnode *none = NULL;
	assert_int_equal(view_node(&none, vs, UINT32_MAX / 2), CKPT_ENOTFOUND);
	assert_int_equal(walk(&b, vs, &vs->top), 0);
	assert_string_equal(a.text, b.text);
	assert_true(vnodes_check(vs));
	close_vs(vs);

	/* without the listing: the same ids */
	snprintf(path, sizeof(path), "%s/ckpt.list", dir);
	char *list = NULL;
	size_t len = 0;
	assert_int_equal(ckpt_read_file(&list, &len, path, 1 << 20), 0);
	assert_int_equal(unlink(path), 0);
	assert_non_null(vs = open_vs(&rc));
	assert_int_equal(walk(&c, vs, &vs->top), 0);
	assert_string_equal(a.text, c.text);
	close_vs(vs);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(list, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(list);
	free(a.text);
	free(b.text);
	free(c.text);
}

/* Every allocation of an open, a full walk and a resolve by id failing in turn. */
static void test_enomem(void **state)
{
	struct rec all = {0};
	struct vstep *vs;
	long points = 0;
	int rc;

	(void)state;
	if (!MALLOC_POINTS)
		skip();
	assert_non_null(vs = open_vs(&rc));
	assert_int_equal(walk(&all, vs, &vs->top), 0);
	close_vs(vs);
	mem_pass = 1;
	for (long n = 1;; n++) {
		struct rec r = {0};
		arm(n);
		vs = open_vs(&rc);
		if (vs)
			rc = walk(&r, vs, &vs->top);
		disarm();
		if (!__atomic_load_n(&fired, __ATOMIC_RELAXED)) {
			assert_int_equal(rc, 0);
			free(r.text);
			close_vs(vs);
			points = n - 1;
			break;
		}
		/* Out of memory, or all of it (libc's vasprintf gets by without one
		 * malloc). cJSON cannot tell a failed allocation from bad JSON: the
		 * step's metadata then reads as not JSON, and the open fails. */
		if (rc != CKPT_ENOMEM && !(rc == 0 && r.text && !strcmp(r.text, all.text)) &&
		    !(rc == CKPT_ECORRUPT && !vs &&
		      strstr(ckpt_error_last(), "is not a JSON object")))
			fail_msg("allocation %ld: rc %d (%s)", n, rc, ckpt_error_last());
		free(r.text);
		close_vs(vs);
	}
	for (long n = 1;; n++) { /* a deep node by id alone, in a fresh open */
		struct vnode *node = NULL;
		assert_non_null(vs = open_vs(&rc));
		arm(n);
		rc = view_node(&node, vs, all.ids[all.n - 1]);
		disarm();
		if (!__atomic_load_n(&fired, __ATOMIC_RELAXED)) {
			assert_int_equal(rc, 0);
			close_vs(vs);
			break;
		}
		assert_true(rc == CKPT_ENOMEM || (rc == 0 && node->id == all.ids[all.n - 1]));
		/* and after the failure, the same call succeeds */
		assert_int_equal(view_node(&node, vs, all.ids[all.n - 1]), 0);
		close_vs(vs);
	}
	mem_pass = 0;
	free(all.text);
	print_message("open + walk: %ld allocations, each failed in turn\n", points);
	assert_true(points > 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_enomem),
	};
	return cmocka_run_group_tests(tests, make_step, remove_step);
}
