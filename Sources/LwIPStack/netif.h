/* The lwIP netif on Miniport (netif.c). Not installed: internal to `miniport stack`. */
#ifndef MINIPORT_LWIP_NETIF_H
#define MINIPORT_LWIP_NETIF_H
#include <lwip/netif.h>
#include <miniport.h>
#include <stdint.h>

#define MP_NETIF_TRACKS 1024

struct rx_pbuf;

struct seq_track {
    uint32_t key, dip, ports, highest;
    int used;
};

struct mp_netif {
    struct netif netif;
    mp_adapter *adapter;
    mp_binding *binding;
    mp_send_pool *pool;
    uint32_t buffer_size;
    struct rx_pbuf *rx;           /* the pbuf_custom wrappers, rx_count of them */
    uint32_t rx_count;
    struct rx_pbuf *free_rx;
    mp_nbl *to_return;            /* NBLs lwIP freed, returned by the poll loop in one call */
    uint16_t last_queue;
    /* counters */
    uint64_t rx_frames, tx_frames, rx_dropped, tx_dropped, tx_failed;
    uint64_t zero_copy, copied, zero_copy_outstanding;
    uint64_t tcp_in, tcp_out, tcp_retransmissions;
    struct seq_track tracks[MP_NETIF_TRACKS];
};

/* Binds to the adapter (callbacks, send pool of tx_buffers, packet filter); rx_pbufs wrappers. */
mp_status mp_netif_open(struct mp_netif *m, mp_adapter *adapter, uint32_t rx_pbufs, uint32_t tx_buffers);
/* Under the core lock: adds the netif, sets it up, link as the adapter says. */
void mp_netif_add(struct mp_netif *m, const ip4_addr_t *ip, const ip4_addr_t *mask, const ip4_addr_t *gw);
/* Under the core lock: gives back the NBLs of the pbufs lwIP freed. */
void mp_netif_return_pending(struct mp_netif *m);
/* Under the core lock: link down, netif down and removed (ARP's queued pbufs freed). */
void mp_netif_remove(struct mp_netif *m);
void mp_netif_free(struct mp_netif *m);
#endif
