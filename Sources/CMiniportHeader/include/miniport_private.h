/* Not installed: what the Swift implementation of miniport.h needs from C. */
#ifndef MINIPORT_PRIVATE_H
#define MINIPORT_PRIVATE_H
#include <pthread.h>
void mp_private_set_last_error(const char *message);
#endif
