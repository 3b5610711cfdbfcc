/*
 * mp_harness.h — several processes writing one step, for tests
 * (tests/unit/multiprocess_test.c, tests/tools/mp_tool.c): deterministic
 * global arrays and random shardings from a seed, a writer process and a
 * reader that checks random boxes bit-exactly. Public headers only.
 *
 * A case (seed) holds MP_ARRAYS global arrays of 4-byte elements, element e
 * of array a being mp_elem(seed, a, e):
 *   array 0: 1-D, cut at random points into uneven boxes;
 *   array 1: 2-D, a random grid of uneven row and column cuts;
 *   array 2: 2-D, whole rows blocks, every box replicated on two processes
 *            (only the first holder writes it: replica 0);
 * boxes are dealt to the active processes at random (a process may get
 * none, or several). Keys: "arr0" .. "arr2".
 */
#ifndef MP_HARNESS_H
#define MP_HARNESS_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt.h"

#define MP_ARRAYS    3
#define MP_MAX_BOXES 64

typedef struct mp_box {
	uint64_t start[2], shape[2];
	unsigned owner[2]; /* process indexes holding it: owner[0] writes it (replica 0) */
	unsigned nowners;
} mp_box;

typedef struct mp_array {
	unsigned ndim;
	uint64_t shape[2];
	mp_box boxes[MP_MAX_BOXES];
	unsigned nboxes;
} mp_array;

typedef struct mp_case {
	uint64_t seed;
	unsigned count;	 /* processes */
	unsigned active[8];
	unsigned nactive;
	mp_array arrays[MP_ARRAYS];
} mp_case;

static uint64_t mp_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static uint32_t mp_elem(uint64_t seed, unsigned a, uint64_t e)
{
	return (uint32_t)mp_mix(seed * 1000003u + a * 7919u + e * 0x9e3779b97f4a7c15ull);
}

/* A small random generator (the case must be the same in every process). */
static uint64_t mp_next(uint64_t *st)
{
	*st += 0x9e3779b97f4a7c15ull;
	return mp_mix(*st);
}

/* Sorted distinct cuts of [0, n) into at most k pieces: cuts[0] = 0, cuts[m] = n. */
static unsigned mp_cuts(uint64_t *cuts, uint64_t n, unsigned k, uint64_t *st)
{
	unsigned m = 1;
	cuts[0] = 0;
	for (unsigned i = 1; i < k; i++) {
		uint64_t c = 1 + mp_next(st) % (n - 1);
		int dup = 0;
		for (unsigned j = 0; j < m; j++)
			dup |= cuts[j] == c;
		if (!dup)
			cuts[m++] = c;
	}
	for (unsigned i = 1; i < m; i++) /* insertion sort */
		for (unsigned j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			uint64_t t = cuts[j];
			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}
	cuts[m] = n;
	return m;
}

/*
 * The case of `seed` for `count` processes; with subset, a random subset of
 * them (always holding process 0, the primary) is active.
 */
static void mp_case_make(mp_case *c, uint64_t seed, unsigned count, int subset)
{
	uint64_t st = seed, cr[9], cc[9];

	memset(c, 0, sizeof(*c));
	c->seed = seed;
	c->count = count;
	for (unsigned i = 0; i < count; i++) { /* one draw each: the arrays never depend on subset */
		int drop = mp_next(&st) % 3 == 0;
		if (i == 0 || !subset || !drop)
			c->active[c->nactive++] = i;
	}
	for (unsigned a = 0; a < MP_ARRAYS; a++) {
		mp_array *x = &c->arrays[a];
		x->ndim = a == 0 ? 1 : 2;
		x->shape[0] = a == 0 ? 1000 + mp_next(&st) % 40000 : 8 + mp_next(&st) % 300;
		x->shape[1] = a == 0 ? 1 : 8 + mp_next(&st) % 300;
		unsigned mr = mp_cuts(cr, x->shape[0], 2 + (unsigned)(mp_next(&st) % 7), &st);
		unsigned mc = a == 1 ? mp_cuts(cc, x->shape[1], 2 + (unsigned)(mp_next(&st) % 4), &st)
				     : 1;
		if (a != 1) {
			cc[0] = 0;
			cc[1] = x->shape[1];
		}
		for (unsigned i = 0; i < mr; i++)
			for (unsigned j = 0; j < mc; j++) {
				mp_box *b = &x->boxes[x->nboxes++];
				b->start[0] = cr[i];
				b->shape[0] = cr[i + 1] - cr[i];
				b->start[1] = cc[j];
				b->shape[1] = cc[j + 1] - cc[j];
				b->owner[0] = c->active[mp_next(&st) % c->nactive];
				b->nowners = 1;
				if (a == 2 && c->nactive > 1) { /* replicated: a second holder */
					unsigned o = c->active[mp_next(&st) % c->nactive];
					if (o != b->owner[0])
						b->owner[b->nowners++] = o;
				}
			}
	}
}

static uint64_t mp_nelem(unsigned ndim, const uint64_t *shape)
{
	uint64_t n = 1;
	for (unsigned d = 0; d < ndim; d++)
		n *= shape[d];
	return n;
}

/* The box [start, start+shape) of array a in C order. */
static void mp_fill_box(uint32_t *out, const mp_case *c, unsigned a, const uint64_t *start,
			const uint64_t *shape)
{
	const mp_array *x = &c->arrays[a];
	uint64_t k = 0;
	for (uint64_t r = 0; r < shape[0]; r++)
		for (uint64_t q = 0; q < (x->ndim == 2 ? shape[1] : 1); q++) {
			uint64_t e = x->ndim == 2 ? (start[0] + r) * x->shape[1] + start[1] + q
						  : start[0] + r;
			out[k++] = mp_elem(c->seed, a, e);
		}
}

/*
 * Write this process's replica-0 boxes of every array into the writer's
 * batch as tiles, and a plain key "who" that only the primary's batch keeps.
 * Returns 0 or a CKPT_E* code.
 */
static inline int mp_write_boxes(ckpt_step_writer *w, const mp_case *c, unsigned me)
{
	ckpt_batch *b = ckpt_step_writer_batch(w);
	char who[32];
	int rc;

	snprintf(who, sizeof(who), "process %u", me);
	if ((rc = ckpt_batch_put(b, "who", 3, who, strlen(who), NULL)) < 0)
		return rc;
	for (unsigned a = 0; a < MP_ARRAYS; a++) {
		const mp_array *x = &c->arrays[a];
		char key[8];
		snprintf(key, sizeof(key), "arr%u", a);
		for (unsigned i = 0; i < x->nboxes; i++) {
			const mp_box *bx = &x->boxes[i];
			if (bx->owner[0] != me)
				continue; /* another process holds replica 0 */
			uint64_t n = mp_nelem(x->ndim, bx->shape);
			uint32_t *buf = malloc(n * 4);
			ckpt_tile t = {4, x->ndim, x->shape, bx->start, bx->shape};
			ckpt_value_writer *vw = NULL;
			if (!buf)
				return CKPT_ENOMEM;
			mp_fill_box(buf, c, a, bx->start, bx->shape);
			rc = ckpt_value_writer_open_tile(&vw, b, key, strlen(key), &t, NULL);
			if (rc == 0 && (rc = ckpt_value_writer_write(vw, buf, n * 4)) < 0)
				ckpt_value_writer_abort(vw);
			else if (rc == 0)
				rc = ckpt_value_writer_close(vw);
			free(buf);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* Options of process me for the case (active subset, primary 0). */
static void mp_options(ckpt_multiprocess_options *o, const mp_case *c, unsigned me,
		       uint64_t timeout_ms, const char *prefix)
{
	ckpt_multiprocess_options def = CKPT_MULTIPROCESS_OPTIONS_INIT;
	*o = def;
	o->process_index = me;
	o->process_count = c->count;
	o->primary_host = 0;
	o->active_processes = c->active;
	o->nactive = c->nactive;
	o->barrier_sync_key_prefix = prefix;
	o->barrier_timeout_ms = timeout_ms;
}

/* One writer process: open, write its boxes, finalize. Returns 0 or a CKPT_E* code. */
static inline int mp_save(const char *root, uint64_t step, const mp_case *c, unsigned me,
		   uint64_t timeout_ms)
{
	ckpt_multiprocess_options o;
	ckpt_step_writer_options wo = CKPT_STEP_WRITER_OPTIONS_INIT;
	ckpt_step_writer *w = NULL;
	int rc;

	mp_options(&o, c, me, timeout_ms, "t");
	wo.multiprocess = &o;
	wo.store.chunk_size = 4096; /* many chunks per box */
	rc = ckpt_step_writer_open(&w, root, step, &wo);
	if (rc == 0)
		rc = mp_write_boxes(w, c, me);
	if (rc) {
		ckpt_step_writer_abort(w);
		return rc;
	}
	return ckpt_step_writer_finalize(w);
}

/*
 * Check the step in dir: every array whole, then `nboxes` random boxes of
 * each (random from rseed) with ckpt_value_pread_box. Returns 0, 1 on a
 * mismatch (printed), or a CKPT_E* code.
 */
static inline int mp_check(const char *dir, const mp_case *c, uint64_t rseed, unsigned nboxes)
{
	ckpt_step *s = NULL;
	uint64_t st = rseed;
	int rc = ckpt_step_open(&s, dir, NULL);

	for (unsigned a = 0; rc == 0 && a < MP_ARRAYS; a++) {
		const mp_array *x = &c->arrays[a];
		char key[8];
		ckpt_value *v = NULL;
		uint64_t n = mp_nelem(x->ndim, x->shape);
		uint32_t *got = malloc(n * 4), *want = malloc(n * 4);
		uint64_t zero[2] = {0, 0};
		size_t nr = 0;
		snprintf(key, sizeof(key), "arr%u", a);
		if (!got || !want)
			rc = CKPT_ENOMEM;
		if (rc == 0)
			rc = ckpt_value_open(&v, ckpt_step_store(s), key, strlen(key));
		if (rc == 0)
			rc = ckpt_value_pread(&nr, v, got, n * 4, 0);
		if (rc == 0) {
			mp_fill_box(want, c, a, zero, x->shape);
			if (nr != n * 4 || memcmp(got, want, n * 4) != 0) {
				fprintf(stderr, "%s: arr%u differs (read %zu of %" PRIu64 " bytes)\n",
					dir, a, nr, n * 4);
				rc = 1;
			}
		}
		for (unsigned k = 0; rc == 0 && k < nboxes; k++) {
			uint64_t bs[2] = {0, 0}, bh[2] = {1, 1};
			for (unsigned d = 0; d < x->ndim; d++) {
				bs[d] = mp_next(&st) % x->shape[d];
				bh[d] = 1 + mp_next(&st) % (x->shape[d] - bs[d]);
			}
			uint64_t m = mp_nelem(x->ndim, bh);
			rc = ckpt_value_pread_box(v, 4, x->ndim, x->shape, bs, bh, got);
			if (rc == 0) {
				mp_fill_box(want, c, a, bs, bh);
				if (memcmp(got, want, m * 4) != 0) {
					fprintf(stderr, "%s: arr%u box at [%" PRIu64 ", %" PRIu64
							"] differs\n",
						dir, a, bs[0], bs[1]);
					rc = 1;
				}
			}
		}
		ckpt_value_free(v);
		free(got);
		free(want);
	}
	ckpt_step_free(s);
	return rc;
}

#endif
