/*
 * fault_inject.h — the test-only switch of fault injection (fault_test.c,
 * store_test.c; include it in one file of a test program). It defines the
 * libc calls below; the library (linked statically) and sqlite (whose
 * references the executable's definitions satisfy) call them, and they pass
 * through to the next definition (libc, or the sanitizer's) unless armed.
 * Armed with arm(n), the n-th injection point fails (EIO; ENOSPC for writes;
 * ENOMEM for memory); `calls` counts the points passed, `fired` says whether
 * one failed. mem_pass selects the class: I/O (0) or malloc/calloc/realloc
 * (1, only without AddressSanitizer: MALLOC_POINTS). Nothing in the library
 * changes for testing.
 */
#ifndef CKPT_TEST_FAULT_INJECT_H
#define CKPT_TEST_FAULT_INJECT_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static long armed;	   /* atomic: 1 while an operation runs under injection */
static long countdown;	   /* atomic: the call that brings it to 0 fails */
static long calls;	   /* atomic: injection points passed while armed */
static long fired;	   /* atomic: a fault was injected */
static int mem_pass;	   /* this pass injects into malloc/calloc/realloc, not I/O */

/* An injection point of class mem (1: memory, 0: I/O). */
static int fault_of(int mem)
{
	if (!__atomic_load_n(&armed, __ATOMIC_RELAXED) || mem != mem_pass)
		return 0;
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	if (__atomic_sub_fetch(&countdown, 1, __ATOMIC_RELAXED) == 0) {
		__atomic_store_n(&fired, 1, __ATOMIC_RELAXED);
		return 1;
	}
	return 0;
}

static int fault(void)
{
	return fault_of(0);
}

#define REAL(name)                                                                     \
	static __typeof__(&name) real_##name;                                              \
	if (!real_##name)                                                                  \
	real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

#define OPEN_BODY(name)                                                                  \
	mode_t mode = 0;                                                                 \
	if (flags & (O_CREAT | O_TMPFILE)) {                                             \
		va_list ap;                                                              \
		va_start(ap, flags);                                                     \
		mode = (mode_t)va_arg(ap, int);                                          \
		va_end(ap);                                                              \
	}                                                                                \
	if (fault()) {                                                                   \
		errno = EIO;                                                             \
		return -1;                                                               \
	}

int open(const char *path, int flags, ...)
{
	REAL(open);
	OPEN_BODY(open);
	return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	REAL(open64);
	OPEN_BODY(open64);
	return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	REAL(openat);
	OPEN_BODY(openat);
	return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	REAL(openat64);
	OPEN_BODY(openat64);
	return real_openat64(dirfd, path, flags, mode);
}

#define PASS(name, err, ...)                                                              \
	REAL(name);                                                                \
	if (fault()) {                                                                   \
		errno = err;                                                             \
		return -1;                                                               \
	}                                                                                \
	return real_##name(__VA_ARGS__)

ssize_t write(int fd, const void *b, size_t n)
{
	PASS(write, ENOSPC, fd, b, n);
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t o)
{
	PASS(pwrite, ENOSPC, fd, b, n, o);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o)
{
	PASS(pwrite64, ENOSPC, fd, b, n, o);
}
int fsync(int fd)
{
	PASS(fsync, EIO, fd);
}
int fdatasync(int fd)
{
	PASS(fdatasync, EIO, fd);
}
int rename(const char *a, const char *b)
{
	PASS(rename, EIO, a, b);
}
int renameat(int da, const char *a, int db, const char *b)
{
	PASS(renameat, EIO, da, a, db, b);
}
int link(const char *a, const char *b)
{
	PASS(link, EIO, a, b);
}
int linkat(int da, const char *a, int db, const char *b, int f)
{
	PASS(linkat, EIO, da, a, db, b, f);
}
int mkdir(const char *p, mode_t m)
{
	PASS(mkdir, EIO, p, m);
}
int unlink(const char *p)
{
	PASS(unlink, EIO, p);
}
int unlinkat(int d, const char *p, int f)
{
	PASS(unlinkat, EIO, d, p, f);
}
int rmdir(const char *p)
{
	PASS(rmdir, EIO, p);
}
int ftruncate(int fd, off_t n)
{
	PASS(ftruncate, EIO, fd, n);
}

/*
 * Memory: only without AddressSanitizer, whose allocator must see every
 * allocation itself (its malloc is not reached through RTLD_NEXT early
 * enough); the ASan build still checks that the I/O failure paths leak
 * nothing.
 */
#ifndef __SANITIZE_ADDRESS__
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
#define MALLOC_POINTS 1
void *malloc(size_t n)
{
	if (fault_of(1)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
	if (fault_of(1)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
	if (n && fault_of(1)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, n);
}
#else
#define MALLOC_POINTS 0
#endif

static void arm(long n)
{
	__atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fired, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&countdown, n, __ATOMIC_RELAXED);
	__atomic_store_n(&armed, 1, __ATOMIC_SEQ_CST);
}

static void disarm(void)
{
	__atomic_store_n(&armed, 0, __ATOMIC_SEQ_CST);
}

#endif
