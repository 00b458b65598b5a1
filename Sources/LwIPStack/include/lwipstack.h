/* lwIP on Miniport: what `miniport stack` runs (Sources/LwIPStack, against miniport.h only). */
#ifndef MINIPORT_LWIPSTACK_H
#define MINIPORT_LWIPSTACK_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lwip_stack_options {
    const char *device;     /* a PCI address; NULL with model */
    int model;              /* nonzero: the hardware model */
    const char *tap;        /* with model: the Linux TAP its wire is connected to (may be NULL) */
    uint32_t ip;            /* IPv4 address, host order */
    uint32_t prefix;        /* prefix length 0-32 */
    uint32_t gateway;       /* host order, 0: none */
    int echo_port;          /* 0: no echo server */
    int discard_port;       /* 0: no discard server */
    int http_port;          /* 0: no HTTP server */
    double seconds;         /* > 0: stop after this long (tests); 0: until SIGINT/SIGTERM */
} lwip_stack_options;

/* Runs lwIP on the adapter until SIGINT or SIGTERM, then prints its statistics and halts.
 * Prints one "ready" line on stdout once it takes traffic; errors: one line on stderr.
 * Returns the process exit code (0 clean, 69 device unavailable, 1 otherwise). */
int lwip_stack_run(const lwip_stack_options *options);

#ifdef __cplusplus
}
#endif
#endif
