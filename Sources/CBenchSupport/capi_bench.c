/* The C API benchmark's protocol driver (MiniportBench CAPISubject): a receive callback that
 * counts and returns every chain, and a send-complete callback that frees to the pool, written
 * against miniport.h as a C stack would. */
#include "cbench.h"

static void capi_bench_receive(void *context, mp_binding *binding, mp_nbl *head, uint16_t queue, uint32_t count, uint32_t flags) {
    (void)queue; (void)flags;
    ((struct capi_bench_counters *)context)->received += count;
    mp_return_nbls(binding, head, 0);
}

static void capi_bench_send_complete(void *context, mp_binding *binding, mp_nbl *head, uint32_t count) {
    struct capi_bench_counters *c = (struct capi_bench_counters *)context;
    c->completed += count;
    for (mp_nbl *n = head; n; n = mp_nbl_next(n))
        if (mp_nbl_status(n) != MP_NDIS_STATUS_SUCCESS) c->failed++;
    mp_send_pool_free(binding, head);
}

mp_binding_callbacks capi_bench_callbacks(struct capi_bench_counters *counters) {
    mp_binding_callbacks cb = {0};
    cb.context = counters;
    cb.receive = capi_bench_receive;
    cb.send_complete = capi_bench_send_complete;
    return cb;
}
