/*
 * mem.h — allocation of large array buffers (library only).
 *
 * Page faults dominate the cost of filling a freshly allocated multi-GiB
 * array (on the VMs we measured, more than the read itself). Like numpy, we
 * ask for transparent huge pages on large buffers: one fault per 2 MiB
 * instead of per 4 KiB. A large buffer is 2 MiB-aligned and rounded up to
 * whole huge pages, so that all of it can be huge pages: numpy's unaligned
 * buffers keep up to 4 MiB of small pages at their ends, and a small page
 * costs about as much to fault in as a huge one (33k faults against 1k for
 * a 1 GiB restore in 64 leaves). The memory stays an ordinary block that
 * free() releases.
 */
#ifndef CKPT_MEM_H
#define CKPT_MEM_H

#include <stddef.h>

/* malloc(n), with huge pages when n is large (see above). NULL when out of memory. */
void *ckpt_mem_malloc_large(size_t n);

#endif
