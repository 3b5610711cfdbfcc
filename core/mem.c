/*
 * mem.c — large array buffers with transparent huge pages (see mem.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "mem.h"

#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN ((size_t)4 << 20)

/* Advise huge pages on the 2 MiB-aligned interior of [p, p+n); best effort. */
static void advise_huge(void *p, size_t n)
{
	uintptr_t start = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE_PAGE - 1);

	if (n >= HUGE_MIN && end > start)
		(void)madvise((void *)start, end - start, MADV_HUGEPAGE);
}

void *ckpt_mem_calloc_large(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (p)
		advise_huge(p, n);
	return p;
}

void *ckpt_mem_malloc_large(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p)
		advise_huge(p, n);
	return p;
}
