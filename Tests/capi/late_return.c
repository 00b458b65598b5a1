/* Tests/capi/late_return.c: returns one NBL twice. The second return is not the caller's to make
 * (the same check refuses a RESOURCES chain returned after its callback): a debug build of
 * libminiport traps with a message naming mp_return_nbls; a release build counts it in
 * mp_halt_report.late_returns. Prints "counted N" when it survives. */
#include <miniport.h>
#include <stdio.h>
#include <string.h>

static mp_nbl *kept;

static void on_receive(void *context, mp_binding *binding, mp_nbl *head, uint16_t queue, uint32_t count, uint32_t flags) {
    (void)context; (void)queue; (void)count; (void)flags;
    mp_nbl *rest = mp_nbl_next(head);
    if (rest) mp_return_nbls(binding, rest, 0);
    mp_nbl_set_next(head, NULL);
    kept = head;
}

int main(void) {
    mp_adapter *a;
    mp_binding *b;
    if (mp_adapter_open_model(NULL, &a) != MP_OK) { fprintf(stderr, "%s\n", mp_last_error()); return 2; }
    mp_binding_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.receive = on_receive;
    if (mp_binding_open(a, &cb, NULL, 0, &b) != MP_OK) { fprintf(stderr, "%s\n", mp_last_error()); return 2; }
    if (mp_adapter_start(a) != MP_OK) { fprintf(stderr, "%s\n", mp_last_error()); return 2; }
    uint8_t f[60];
    memset(f, 0xff, 6);
    memset(f + 6, 0, sizeof f - 6);
    mp_model_inject(a, f, sizeof f);
    for (int i = 0; i < 8 && !kept; i++) mp_adapter_poll(a, 64);
    if (!kept) { fprintf(stderr, "late_return: no frame arrived\n"); return 2; }
    mp_return_nbls(b, kept, 0);
    mp_return_nbls(b, kept, 0); /* the bug */
    mp_halt_report r;
    mp_adapter_close(a, &r);
    printf("counted %llu\n", (unsigned long long)r.late_returns);
    return r.late_returns == 1 ? 0 : 1;
}
