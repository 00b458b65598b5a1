/* Malloc interposer and Swift retain/release hooks for the benchmarks.
 *
 * The interposer defines the allocation entry points in the executable, so every call in the
 * process (Swift runtime, Foundation, libc) reaches them first; each one counts and forwards to
 * glibc's own implementation (__libc_malloc and friends), so all memory still comes from one
 * allocator and a free always matches its allocation. Counting is one relaxed atomic add. */
#define _GNU_SOURCE
#include "cbench.h"
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#if defined(__GLIBC__)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
#define MINIPORT_INTERPOSE 1
#endif

static uint64_t counted_mallocs, counted_frees, counted_reallocs;
static uint64_t counted_retains, counted_releases, counted_object_allocs;
static int interposer_seen;

#define BUMP(counter, n) __atomic_fetch_add(&(counter), (n), __ATOMIC_RELAXED)

int miniport_bench_has_cycle_counter(void) {
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

#if MINIPORT_INTERPOSE
void *malloc(size_t size) {
    interposer_seen = 1;
    BUMP(counted_mallocs, 1);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    BUMP(counted_mallocs, 1);
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    if (pointer == NULL) BUMP(counted_mallocs, 1); else BUMP(counted_reallocs, 1);
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    if (pointer != NULL) BUMP(counted_frees, 1);
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size) {
    BUMP(counted_mallocs, 1);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    BUMP(counted_mallocs, 1);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    /* POSIX: the alignment must be a power of two multiple of sizeof(void *). */
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    BUMP(counted_mallocs, 1);
    void *p = __libc_memalign(alignment, size);
    if (p == NULL && size != 0) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t size) {
    BUMP(counted_mallocs, 1);
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    BUMP(counted_mallocs, 1);
    return __libc_pvalloc(size);
}
#endif

int miniport_bench_malloc_interposed(void) {
#if MINIPORT_INTERPOSE
    if (!interposer_seen) {
        /* Any malloc through the PLT sets the flag; make one to find out. */
        void *volatile p = malloc(1);
        free(p);
    }
    return interposer_seen;
#else
    return 0;
#endif
}

/* --- Swift runtime hooks ------------------------------------------------------------------
 * libswiftCore exports function pointers that swift_retain & co. call through when
 * _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly is set (the
 * entry points Instruments uses). Weak references: a runtime without them leaves them NULL. */
typedef void *(*retain_fn)(void *);
typedef void (*release_fn)(void *);
typedef void *(*retain_n_fn)(void *, uint32_t);
typedef void (*release_n_fn)(void *, uint32_t);
typedef void *(*alloc_object_fn)(const void *, size_t, size_t);

extern retain_fn _swift_retain __attribute__((weak));
extern release_fn _swift_release __attribute__((weak));
extern retain_n_fn _swift_retain_n __attribute__((weak));
extern release_n_fn _swift_release_n __attribute__((weak));
extern alloc_object_fn _swift_allocObject __attribute__((weak));
extern bool _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly __attribute__((weak));

static retain_fn original_retain;
static release_fn original_release;
static retain_n_fn original_retain_n;
static release_n_fn original_release_n;
static alloc_object_fn original_alloc_object;
static int hooks_installed;

static void *counting_retain(void *object) {
    BUMP(counted_retains, 1);
    return original_retain(object);
}

static void counting_release(void *object) {
    BUMP(counted_releases, 1);
    original_release(object);
}

static void *counting_retain_n(void *object, uint32_t n) {
    BUMP(counted_retains, n);
    return original_retain_n(object, n);
}

static void counting_release_n(void *object, uint32_t n) {
    BUMP(counted_releases, n);
    original_release_n(object, n);
}

static void *counting_alloc_object(const void *metadata, size_t size, size_t alignMask) {
    BUMP(counted_object_allocs, 1);
    return original_alloc_object(metadata, size, alignMask);
}

int miniport_bench_install_retain_hooks(void) {
    if (hooks_installed) return 1;
    if (&_swift_retain == NULL || &_swift_release == NULL || &_swift_retain_n == NULL ||
        &_swift_release_n == NULL || &_swift_allocObject == NULL ||
        &_swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly == NULL) {
        return 0;
    }
    original_retain = _swift_retain;
    original_release = _swift_release;
    original_retain_n = _swift_retain_n;
    original_release_n = _swift_release_n;
    original_alloc_object = _swift_allocObject;
    _swift_retain = counting_retain;
    _swift_release = counting_release;
    _swift_retain_n = counting_retain_n;
    _swift_release_n = counting_release_n;
    _swift_allocObject = counting_alloc_object;
    __atomic_store_n(&_swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly, true, __ATOMIC_SEQ_CST);
    hooks_installed = 1;
    return 1;
}

int miniport_bench_retain_hooks_installed(void) { return hooks_installed; }

void miniport_bench_read_counts(miniport_bench_counts *out) {
    out->mallocs = __atomic_load_n(&counted_mallocs, __ATOMIC_RELAXED);
    out->frees = __atomic_load_n(&counted_frees, __ATOMIC_RELAXED);
    out->reallocs = __atomic_load_n(&counted_reallocs, __ATOMIC_RELAXED);
    out->retains = __atomic_load_n(&counted_retains, __ATOMIC_RELAXED);
    out->releases = __atomic_load_n(&counted_releases, __ATOMIC_RELAXED);
    out->objectAllocs = __atomic_load_n(&counted_object_allocs, __ATOMIC_RELAXED);
}
