/* lwIP 2.1.3 (Debian liblwip-dev; pkg-config lwip adds -I/usr/include/lwip). */
#include <lwip/opt.h>
