/*
 * mem.c — large array buffers with transparent huge pages (see mem.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "mem.h"

#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN  ((size_t)4 << 20)

void *ckpt_mem_malloc_large(size_t n)
{
	size_t whole = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	void *p = NULL;

	if (n < HUGE_MIN)
		return malloc(n ? n : 1);
	if (n > SIZE_MAX - HUGE_PAGE || posix_memalign(&p, HUGE_PAGE, whole) != 0)
		return NULL;
	(void)madvise(p, whole, MADV_HUGEPAGE); /* best effort */
	return p;
}
