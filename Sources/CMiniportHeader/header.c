/* The C API's header is include/miniport.h. This file holds the one piece kept in C: the
 * per-thread message of the last failing call (mp_last_error), which the Swift side sets. */
#include "miniport.h"
#include "miniport_private.h"
#include <string.h>

static _Thread_local char last_error[1024];

const char *mp_last_error(void) { return last_error; }

void mp_private_set_last_error(const char *message) {
    size_t n = strlen(message);
    if (n >= sizeof last_error) n = sizeof last_error - 1;
    memcpy(last_error, message, n);
    last_error[n] = 0;
}
