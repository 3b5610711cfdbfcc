/*
 * mem.h — allocation of large array buffers (library only).
 *
 * Page faults dominate the cost of filling a freshly allocated multi-GiB
 * array (on the VMs we measured, more than the read itself). Like numpy, we
 * ask for transparent huge pages on large buffers: one fault per 2 MiB
 * instead of per 4 KiB. The memory stays an ordinary malloc() block that
 * free() releases.
 */
#ifndef CKPT_MEM_H
#define CKPT_MEM_H

#include <stddef.h>

/* calloc(1, n), with huge pages advised when n is large. NULL when out of memory. */
void *ckpt_mem_calloc_large(size_t n);
/* malloc(n), with huge pages advised when n is large. */
void *ckpt_mem_malloc_large(size_t n);

#endif
