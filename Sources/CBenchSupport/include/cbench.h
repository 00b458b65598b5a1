#ifndef MINIPORT_CBENCH_H
#define MINIPORT_CBENCH_H
/* Measurement support for the benchmarks: the time-stamp counter, malloc and retain counters,
 * and callgrind client requests. Linked into the benchmark library only. */
#include <stdint.h>
#include <time.h>

/* Reads the time-stamp counter. The lfence keeps earlier instructions from drifting past the read
 * (Intel SDM vol. 2, RDTSC; AMD: lfence is dispatch-serialising when MSR C001_1029[1] is set, as
 * Linux does). Other architectures read the generic timer or fall back to CLOCK_MONOTONIC ns. */
static inline uint64_t miniport_bench_rdtsc(void) {
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(v) : : "memory");
    return v;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* 1 when the counter above is a real cycle counter (TSC or the ARM generic timer). */
int miniport_bench_has_cycle_counter(void);

/* Process-wide counts since start. Allocation counts come from the malloc interposer in this
 * target; retain counts only after miniport_bench_install_retain_hooks() succeeded. */
typedef struct {
    uint64_t mallocs;        /* malloc, calloc, realloc(NULL or growing), aligned allocations */
    uint64_t frees;          /* free of a non-NULL pointer */
    uint64_t reallocs;       /* realloc of a non-NULL pointer */
    uint64_t retains;        /* swift_retain + swift_retain_n (n counted as n) */
    uint64_t releases;       /* swift_release + swift_release_n */
    uint64_t objectAllocs;   /* swift_allocObject */
} miniport_bench_counts;

void miniport_bench_read_counts(miniport_bench_counts *out);

/* 1 when the malloc interposer is active in this process (its malloc was called at least once). */
int miniport_bench_malloc_interposed(void);

/* Routes swift_retain/swift_release/swift_allocObject through counting hooks (the runtime's
 * instrumentation entry points). Returns 1 on success, 0 if the runtime has no such hooks. */
int miniport_bench_install_retain_hooks(void);
int miniport_bench_retain_hooks_installed(void);
/* Turns the hooks' path on or off (off: swift_retain takes its fast path again, uncounted). */
void miniport_bench_retain_counting(int on);

/* Callgrind client requests; no-ops (a few instructions) outside valgrind. */
int miniport_bench_running_on_valgrind(void);
void miniport_bench_callgrind_zero_stats(void);
void miniport_bench_callgrind_toggle_collect(void);
void miniport_bench_callgrind_dump(const char *name);

/* The C API benchmark's protocol driver (capi_bench.c). */
#include <miniport.h>
struct capi_bench_counters { uint64_t received, completed, failed; };
mp_binding_callbacks capi_bench_callbacks(struct capi_bench_counters *counters);

#endif
