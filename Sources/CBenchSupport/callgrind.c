/* Callgrind client requests (valgrind's own header, included from the system). Outside valgrind
 * each request is a short no-op instruction sequence. */
#include "cbench.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define MINIPORT_HAVE_VALGRIND 1
#endif
#endif

int miniport_bench_running_on_valgrind(void) {
#if MINIPORT_HAVE_VALGRIND
    return RUNNING_ON_VALGRIND ? 1 : 0;
#else
    return 0;
#endif
}

void miniport_bench_callgrind_zero_stats(void) {
#if MINIPORT_HAVE_VALGRIND
    CALLGRIND_ZERO_STATS;
#endif
}

void miniport_bench_callgrind_toggle_collect(void) {
#if MINIPORT_HAVE_VALGRIND
    CALLGRIND_TOGGLE_COLLECT;
#endif
}

void miniport_bench_callgrind_dump(const char *name) {
#if MINIPORT_HAVE_VALGRIND
    CALLGRIND_DUMP_STATS_AT(name);
#else
    (void)name;
#endif
}
