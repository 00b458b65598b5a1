/* Malloc interposer and Swift retain/release hooks for the benchmarks.
 *
 * The interposer defines the allocation entry points in the executable, so every call in the
 * process (Swift runtime, Foundation, libc) reaches them first; each one counts and forwards to
 * glibc's own implementation (__libc_malloc and friends), so all memory still comes from one
 * allocator and a free always matches its allocation. Counting is one relaxed atomic add. */
#define _GNU_SOURCE
#include <pthread.h>
#include "cbench.h"
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdbool.h>
#include <stddef.h>

/* Under a sanitizer the runtime owns malloc: an interposer would hide the heap from ASan, and TSan's
 * start-up calls malloc (through dlsym) before it can run instrumented code, so an interposer built
 * with -sanitize=thread segfaults every process at start (Docs/TESTBED.md "Sanitizers"). */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define MINIPORT_SANITIZED 1
#endif
#endif

#if defined(__GLIBC__) && !defined(MINIPORT_SANITIZED)
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
 * libswiftCore exports function pointers that swift_release, swift_retain_n and swift_release_n
 * call through when _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly
 * is set (the entry points Instruments uses). swift_retain is different: it jumps through a
 * file-local pointer (`_swift_retain_adapter`) to an adapter that clears the top byte of the value
 * before calling `_swift_retain`. Compiled code hands swift_retain bridge-object bits (small and
 * immortal strings have the top bit set, and swift_retain's own fast path returns at once for
 * them); the adapter's masking turns such a value into a bogus positive pointer, and the original
 * retain then crashes on it. So the retain hook replaces the adapter pointer itself, found in
 * libswiftCore's ELF symbol table, and skips non-pointers exactly as the fast path does. */
typedef void *(*retain_fn)(void *);
typedef void (*release_fn)(void *);
typedef void *(*retain_n_fn)(void *, uint32_t);
typedef void (*release_n_fn)(void *, uint32_t);
typedef void *(*alloc_object_fn)(const void *, size_t, size_t);

extern void *swift_retain(void *) __attribute__((weak));
extern retain_fn _swift_retain __attribute__((weak));
extern release_fn _swift_release __attribute__((weak));
extern retain_n_fn _swift_retain_n __attribute__((weak));
extern release_n_fn _swift_release_n __attribute__((weak));
extern alloc_object_fn _swift_allocObject __attribute__((weak));
extern bool _swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly __attribute__((weak));

static retain_fn *retain_adapter_slot;
static retain_fn original_retain_adapter;
static release_fn original_release;
static retain_n_fn original_retain_n;
static release_n_fn original_release_n;
static alloc_object_fn original_alloc_object;
static int hooks_installed;

static void *counting_retain(void *object) {
    if ((intptr_t)object <= 0) return object;   /* not a native object: swift_retain's fast path does nothing */
    BUMP(counted_retains, 1);
    return original_retain_adapter(object);
}

static void counting_release(void *object) {
    if ((intptr_t)object > 0) BUMP(counted_releases, 1);
    original_release(object);
}

static void *counting_retain_n(void *object, uint32_t n) {
    if ((intptr_t)object > 0) BUMP(counted_retains, n);
    return original_retain_n(object, n);
}

static void counting_release_n(void *object, uint32_t n) {
    if ((intptr_t)object > 0) BUMP(counted_releases, n);
    original_release_n(object, n);
}

static void *counting_alloc_object(const void *metadata, size_t size, size_t alignMask) {
    BUMP(counted_object_allocs, 1);
    return original_alloc_object(metadata, size, alignMask);
}

/* Looks up local (file-scope) symbols in the .symtab of the ELF file at `path`. Fills values[i]
 * with st_value of names[i] (0 if absent). Returns 1 if the file could be read. */
static int elf_local_symbols(const char *path, const char *const *names, uint64_t *values, int count) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) { close(fd); return 0; }
    size_t size = (size_t)st.st_size;
    const unsigned char *file = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (file == MAP_FAILED) return 0;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
    int ok = memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
             eh->e_shoff != 0 && eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) <= size;
    if (ok) {
        const Elf64_Shdr *sh = (const Elf64_Shdr *)(file + eh->e_shoff);
        for (int i = 0; i < eh->e_shnum; i++) {
            if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum) continue;
            const Elf64_Shdr *strtab = &sh[sh[i].sh_link];
            if (sh[i].sh_offset + sh[i].sh_size > size || strtab->sh_offset + strtab->sh_size > size) continue;
            const Elf64_Sym *syms = (const Elf64_Sym *)(file + sh[i].sh_offset);
            size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
            const char *strings = (const char *)(file + strtab->sh_offset);
            for (size_t k = 0; k < n; k++) {
                if (syms[k].st_name >= strtab->sh_size) continue;
                const char *name = strings + syms[k].st_name;
                for (int j = 0; j < count; j++) {
                    if (strcmp(name, names[j]) == 0) values[j] = syms[k].st_value;
                }
            }
        }
    }
    munmap((void *)file, size);
    return ok;
}

/* Finds `_swift_retain_adapter` and checks it: it must currently point at the runtime's adapter
 * implementation, and the symbol table must place `_swift_retain` where the dynamic linker did. */
static retain_fn *find_retain_adapter_slot(void) {
    if (&swift_retain == NULL) return NULL;
    Dl_info info;
    struct link_map *map = NULL;
    if (dladdr1((void *)swift_retain, &info, (void **)&map, RTLD_DL_LINKMAP) == 0 || map == NULL || info.dli_fname == NULL) return NULL;
    static const char *const names[3] = {
        "_ZL21_swift_retain_adapter",
        "_ZL25_swift_retain_adapterImplPN5swift10HeapObjectE",
        "_swift_retain",
    };
    uint64_t values[3] = {0, 0, 0};
    if (!elf_local_symbols(info.dli_fname, names, values, 3)) return NULL;
    if (values[0] == 0 || values[1] == 0 || values[2] == 0) return NULL;
    if ((uintptr_t)map->l_addr + values[2] != (uintptr_t)&_swift_retain) return NULL;
    retain_fn *slot = (retain_fn *)((uintptr_t)map->l_addr + values[0]);
    if ((uintptr_t)*slot != (uintptr_t)map->l_addr + values[1]) return NULL;
    return slot;
}

/* Two threads installing at once would see each other's swapped slot and fail the check: serialise. */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int install_retain_hooks_locked(void);

int miniport_bench_install_retain_hooks(void) {
    pthread_mutex_lock(&install_lock);
    int ok = install_retain_hooks_locked();
    pthread_mutex_unlock(&install_lock);
    return ok;
}

static int install_retain_hooks_locked(void) {
    if (hooks_installed) return 1;
    if (&_swift_retain == NULL || &_swift_release == NULL || &_swift_retain_n == NULL ||
        &_swift_release_n == NULL || &_swift_allocObject == NULL ||
        &_swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly == NULL) {
        return 0;
    }
    retain_fn *slot = find_retain_adapter_slot();
    if (slot == NULL) return 0;
    retain_adapter_slot = slot;
    original_retain_adapter = *slot;
    original_release = _swift_release;
    original_retain_n = _swift_retain_n;
    original_release_n = _swift_release_n;
    original_alloc_object = _swift_allocObject;
    *slot = counting_retain;
    _swift_release = counting_release;
    _swift_retain_n = counting_retain_n;
    _swift_release_n = counting_release_n;
    _swift_allocObject = counting_alloc_object;
    __atomic_store_n(&_swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly, true, __ATOMIC_SEQ_CST);
    hooks_installed = 1;
    return 1;
}

int miniport_bench_retain_hooks_installed(void) { return hooks_installed; }

void miniport_bench_retain_counting(int on) {
    if (!hooks_installed) return;
    __atomic_store_n(&_swift_enableSwizzlingOfAllocationAndRefCountingFunctions_forInstrumentsOnly, on ? true : false, __ATOMIC_SEQ_CST);
}

void miniport_bench_read_counts(miniport_bench_counts *out) {
    out->mallocs = __atomic_load_n(&counted_mallocs, __ATOMIC_RELAXED);
    out->frees = __atomic_load_n(&counted_frees, __ATOMIC_RELAXED);
    out->reallocs = __atomic_load_n(&counted_reallocs, __ATOMIC_RELAXED);
    out->retains = __atomic_load_n(&counted_retains, __ATOMIC_RELAXED);
    out->releases = __atomic_load_n(&counted_releases, __ATOMIC_RELAXED);
    out->objectAllocs = __atomic_load_n(&counted_object_allocs, __ATOMIC_RELAXED);
}
