/*
 * queue_counter.c: a per-queue frame counter on Miniport's hardware model, through the C API.
 *
 *   cc queue_counter.c $(pkg-config --cflags --libs miniport) -o queue_counter && ./queue_counter
 *
 * Opens the 82576 model, binds, allocates two VMQ queues with MAC filters, puts frames for each
 * MAC, broadcasts and unknown unicasts on the model's wire, and counts what arrives on each queue
 * (returning every NBL, some at once and some a poll later, in reverse order). Exits 0 only when
 * each queue got exactly its frames and the halt is clean.
 */
#include <miniport.h>
#include <stdio.h>
#include <string.h>

enum { QUEUES = 3, ROUNDS = 50 };

struct counter {
    uint64_t frames[QUEUES];    /* per queue: 0 = default, 1 and 2 = the two VMQ queues */
    uint64_t bytes[QUEUES];
    uint64_t by_mac[QUEUES][3];  /* per queue: frames to mac1, mac2, broadcast */
    uint16_t queue_ids[QUEUES];
    mp_nbl *held;               /* NBLs kept until the next poll (returned later, reversed) */
};

static int slot(const struct counter *c, uint16_t queue) {
    for (int i = 0; i < QUEUES; i++)
        if (c->queue_ids[i] == queue) return i;
    return -1;
}

/* ProtocolReceiveNetBufferLists: count each NBL; give back odd ones now, keep even ones. */
static void on_receive(void *context, mp_binding *binding, mp_nbl *head, uint16_t queue, uint32_t count, uint32_t flags) {
    struct counter *c = (struct counter *)context;
    int s = slot(c, queue);
    mp_nbl *now = NULL;
    uint32_t i = 0;
    (void)count;
    for (mp_nbl *nbl = head, *next; nbl; nbl = next, i++) {
        next = mp_nbl_next(nbl);
        if (s >= 0) {
            c->frames[s]++;
            mp_net_buffer *nb = mp_nbl_first_nb(nbl);
            uint8_t scratch[6];
            const uint8_t *dst = (const uint8_t *)mp_nb_data(nb, 6, scratch);
            c->bytes[s] += mp_nb_data_length(nb);
            if (dst && dst[0] == 0xff) c->by_mac[s][2]++;
            else if (dst && dst[0] == 0x52 && dst[3] == 0xaa && dst[5] >= 1 && dst[5] <= 2) c->by_mac[s][dst[5] - 1]++;
        }
        if (flags & MP_RECEIVE_RESOURCES) continue; /* lent: never returned */
        if (i % 2) { mp_nbl_set_next(nbl, now); now = nbl; }
        else { mp_nbl_set_next(nbl, c->held); c->held = nbl; }
    }
    if (now) mp_return_nbls(binding, now, 0);
}

static void frame(uint8_t *f, const uint8_t dst[6], uint16_t len) {
    static const uint8_t src[6] = {0x52, 0x54, 0x00, 0xbb, 0x00, 0x01};
    memset(f, 0, len);
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = 0x88; f[13] = 0xb5; /* local experimental EtherType */
}

static int fail(const char *what, mp_status s) {
    fprintf(stderr, "queue_counter: %s: %s (%s)\n", what, mp_last_error(), mp_status_name(s));
    return 1;
}

int main(void) {
    static const uint8_t mac1[6] = {0x52, 0x54, 0x00, 0xaa, 0x00, 0x01};
    static const uint8_t mac2[6] = {0x52, 0x54, 0x00, 0xaa, 0x00, 0x02};
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t stranger[6] = {0x52, 0x54, 0x00, 0xcc, 0x00, 0x99};
    struct counter c;
    memset(&c, 0, sizeof c);
    mp_adapter *adapter;
    mp_binding *binding;
    mp_status s = mp_adapter_open_model(NULL, &adapter);
    if (s != MP_OK) return fail("opening the model", s);
    mp_binding_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.context = &c;
    cb.receive = on_receive;
    if ((s = mp_binding_open(adapter, &cb, NULL, 0, &binding)) != MP_OK) return fail("binding", s);
    if ((s = mp_packet_filter_set(binding, MP_PACKET_DIRECTED | MP_PACKET_BROADCAST)) != MP_OK) return fail("packet filter", s);
    mp_queue_parameters qp;
    memset(&qp, 0, sizeof qp);
    qp.buffers = 128;
    uint32_t filter;
    for (int q = 1; q < QUEUES; q++) {
        if ((s = mp_queue_allocate(binding, &qp, &c.queue_ids[q])) != MP_OK) return fail("allocating a queue", s);
        if ((s = mp_filter_set(binding, c.queue_ids[q], q == 1 ? mac1 : mac2, 0, &filter)) != MP_OK) return fail("setting a filter", s);
    }
    if ((s = mp_adapter_start(adapter)) != MP_OK) return fail("starting", s);
    uint8_t f[1514];
    for (int r = 0; r < ROUNDS; r++) {
        frame(f, mac1, 60);       mp_model_inject(adapter, f, 60);
        frame(f, mac2, 128);      mp_model_inject(adapter, f, 128);
        frame(f, mac2, 1514);     mp_model_inject(adapter, f, 1514);
        frame(f, bcast, 60);      mp_model_inject(adapter, f, 60);
        frame(f, stranger, 60);   mp_model_inject(adapter, f, 60);
        while (mp_adapter_poll(adapter, 64) > 0) {}
        if (c.held) { mp_return_nbls(binding, c.held, 0); c.held = NULL; }
    }
    for (int i = 0; i < 4; i++) mp_adapter_poll(adapter, 64);
    if (c.held) { mp_return_nbls(binding, c.held, 0); c.held = NULL; }
    for (int q = 0; q < QUEUES; q++)
        printf("queue %u: %llu frames, %llu bytes\n", (unsigned)c.queue_ids[q], (unsigned long long)c.frames[q], (unsigned long long)c.bytes[q]);
    mp_statistics st;
    if ((s = mp_statistics_get(adapter, MP_ALL_QUEUES, &st)) != MP_OK) return fail("statistics", s);
    printf("adapter: %llu frames received, %llu dropped by the framework\n",
           (unsigned long long)st.received_frames, (unsigned long long)st.framework_drops);
    for (int q = 1; q < QUEUES; q++) mp_queue_free(binding, c.queue_ids[q]);
    mp_halt_report report;
    s = mp_adapter_close(adapter, &report);
    printf("halt: %llu NBLs outstanding, %llu bytes left mapped\n",
           (unsigned long long)report.outstanding_nbls, (unsigned long long)report.bytes_left_mapped);
    if (s != MP_OK) return fail("closing", s);
    /* Queue 1 gets every frame to mac1 and queue 2 every frame to mac2, and no other queue does;
     * broadcasts reach the default queue (and each queue whose filters accept them). */
    int ok = c.by_mac[1][0] == ROUNDS && c.by_mac[2][1] == 2 * ROUNDS && c.by_mac[0][2] == ROUNDS
        && c.by_mac[0][0] == 0 && c.by_mac[0][1] == 0 && c.by_mac[2][0] == 0 && c.by_mac[1][1] == 0;
    if (!ok) {
        fprintf(stderr, "queue_counter: frames to mac1 on queues 0/1/2: %llu/%llu/%llu (want 0/%d/0), to mac2: %llu/%llu/%llu (want 0/0/%d), broadcasts on the default queue: %llu (want %d)\n",
                (unsigned long long)c.by_mac[0][0], (unsigned long long)c.by_mac[1][0], (unsigned long long)c.by_mac[2][0], ROUNDS,
                (unsigned long long)c.by_mac[0][1], (unsigned long long)c.by_mac[1][1], (unsigned long long)c.by_mac[2][1], 2 * ROUNDS,
                (unsigned long long)c.by_mac[0][2], ROUNDS);
        return 1;
    }
    printf("ok\n");
    return 0;
}
