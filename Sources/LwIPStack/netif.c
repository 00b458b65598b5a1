/*
 * An lwIP netif on Miniport, written against miniport.h only: the porting guide for any C stack.
 *
 * Receive: the binding's receive callback runs inside mp_adapter_poll, which the stack's poll loop
 * calls holding lwIP's core lock (LOCK_TCPIP_CORE), so it feeds ethernet_input directly. Each frame
 * becomes a zero-copy pbuf_custom over the NBL's buffer; lwIP's pbuf_free of it queues the NBL, and
 * the poll loop gives queued NBLs back with one mp_return_nbls per batch. RESOURCES indications
 * (lent only for the callback) and frames in more than one segment (lookahead split) are copied into
 * a PBUF_POOL pbuf and their NBLs returned at once.
 * Transmit: linkoutput copies the pbuf chain into a send NBL of the binding's send pool and sends it;
 * the send-complete callback gives NBLs back to the pool (counting failures by their status).
 * Link: the status callback's link state drives netif_set_link_up/down.
 * Locks: lwIP's core lock first, then (inside the API) the adapter's: never the other way round.
 */
#include "netif.h"

#include <lwip/etharp.h>
#include <lwip/ethip6.h>
#include <lwip/pbuf.h>
#include <lwip/tcpip.h>
#include <netif/ethernet.h>
#include <stdlib.h>
#include <string.h>

/* One receive pbuf: the pbuf_custom lwIP sees, and the NBL behind its payload. */
struct rx_pbuf {
    struct pbuf_custom custom;   /* first: lwIP's free hands us this address */
    mp_nbl *nbl;
    struct mp_netif *owner;
    struct rx_pbuf *next_free;
};

static void rx_pbuf_free(struct pbuf *p) {
    struct rx_pbuf *rx = (struct rx_pbuf *)(void *)p;
    struct mp_netif *m = rx->owner;
    /* Under the core lock (lwIP frees pbufs only in its own context): queue the NBL for the poll
     * loop's next batched return, and recycle the wrapper. */
    mp_nbl_set_next(rx->nbl, m->to_return);
    m->to_return = rx->nbl;
    rx->nbl = NULL;
    rx->next_free = m->free_rx;
    m->free_rx = rx;
    m->zero_copy_outstanding--;
}

static uint16_t be16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }
static uint32_t be32(const uint8_t *b) { return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }

/* An IPv4 TCP segment's header fields, from an Ethernet frame (no VLAN tag: the miniport strips it). */
static int tcp_fields(const uint8_t *f, size_t len, uint32_t *seq, uint32_t *payload, uint16_t *sport, uint16_t *dport, uint32_t *dip, uint8_t *flags) {
    if (len < 14 + 20 + 20 || be16(f + 12) != 0x0800 || f[23] != 6) return 0;
    size_t ihl = (size_t)(f[14] & 0x0f) * 4;
    size_t total = be16(f + 16);
    if (ihl < 20 || 14 + ihl + 20 > len || total < ihl + 20) return 0;
    const uint8_t *t = f + 14 + ihl;
    size_t doff = (size_t)(t[12] >> 4) * 4;
    if (doff < 20 || total < ihl + doff) return 0;
    *sport = be16(t);
    *dport = be16(t + 2);
    *seq = be32(t + 4);
    *flags = t[13];
    *payload = (uint32_t)(total - ihl - doff);
    *dip = be32(f + 30);
    return 1;
}

/* Counts TCP segments sent, and retransmissions: a segment whose data (or SYN/FIN) ends at or before
 * the highest sequence number already sent on its connection. */
static void count_tcp_out(struct mp_netif *m, const uint8_t *f, size_t len) {
    uint32_t seq, payload, dip;
    uint16_t sport, dport;
    uint8_t flags;
    if (!tcp_fields(f, len, &seq, &payload, &sport, &dport, &dip, &flags)) return;
    m->tcp_out++;
    uint32_t span = payload + ((flags & 0x02) ? 1u : 0u) + ((flags & 0x01) ? 1u : 0u);
    if (span == 0 || (flags & 0x04)) return;
    uint32_t key = (uint32_t)sport << 16 ^ dport ^ dip * 2654435761u;
    struct seq_track *t = &m->tracks[key % MP_NETIF_TRACKS];
    uint32_t end = seq + span;
    if (t->used && t->key == key && t->dip == dip && t->ports == ((uint32_t)sport << 16 | dport)) {
        if ((int32_t)(end - t->highest) <= 0) m->tcp_retransmissions++;
        else t->highest = end;
        if (flags & 0x02) t->highest = end;   /* a new SYN restarts the connection's sequence */
    } else {
        t->used = 1;
        t->key = key;
        t->dip = dip;
        t->ports = (uint32_t)sport << 16 | dport;
        t->highest = end;
    }
}

static err_t linkoutput(struct netif *netif, struct pbuf *p) {
    struct mp_netif *m = (struct mp_netif *)netif->state;
    if (p->tot_len > m->buffer_size) { m->tx_dropped++; return ERR_BUF; }
    uint32_t taken = 0;
    mp_nbl *nbl = mp_send_pool_alloc(m->pool, 1, &taken);
    if (!nbl) { m->tx_dropped++; return ERR_MEM; }
    uint32_t capacity = 0;
    uint8_t *buffer = (uint8_t *)mp_nbl_send_buffer(nbl, &capacity);
    uint16_t n = pbuf_copy_partial(p, buffer, p->tot_len, 0);
    uint32_t len = n < 60 ? 60 : n;   /* Ethernet minimum (the pad is zero) */
    if (n < 60) memset(buffer + n, 0, 60 - n);
    mp_nbl_set_length(nbl, len);
    count_tcp_out(m, buffer, n);
    m->tx_frames++;
    mp_send(m->binding, nbl, 0);
    return ERR_OK;
}

static void count_tcp_in(struct mp_netif *m, const uint8_t *f, size_t len) {
    if (len >= 24 && be16(f + 12) == 0x0800 && f[23] == 6) m->tcp_in++;
}

static void on_receive(void *context, mp_binding *binding, mp_nbl *head, uint16_t queue, uint32_t count, uint32_t flags) {
    struct mp_netif *m = (struct mp_netif *)context;
    mp_nbl *now = NULL;   /* NBLs whose frames were copied: back at once */
    (void)count;
    m->last_queue = queue;
    for (mp_nbl *nbl = head, *next; nbl; nbl = next) {
        next = mp_nbl_next(nbl);
        mp_net_buffer *nb = mp_nbl_first_nb(nbl);
        uint32_t len = mp_nb_data_length(nb);
        m->rx_frames++;
        if (len == 0 || len > 0xffff) {
            if (!(flags & MP_RECEIVE_RESOURCES)) { mp_nbl_set_next(nbl, now); now = nbl; }
            continue;
        }
        const uint8_t *data = (const uint8_t *)mp_nb_data(nb, len, NULL);  /* in place, or NULL if split */
        struct rx_pbuf *rx = m->free_rx;
        struct pbuf *p;
        if (!(flags & MP_RECEIVE_RESOURCES) && data && rx) {
            m->free_rx = rx->next_free;
            rx->nbl = nbl;
            rx->custom.custom_free_function = rx_pbuf_free;
            p = pbuf_alloced_custom(PBUF_RAW, (u16_t)len, PBUF_REF, &rx->custom, (void *)data, (u16_t)len);
            m->zero_copy++;
            m->zero_copy_outstanding++;
        } else {
            p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
            if (p) {
                /* Copy across segments, pbuf by pbuf. */
                uint32_t off = 0;
                for (struct pbuf *q = p; q && off < len; q = q->next) off += mp_nb_copy(nb, off, q->payload, q->len);
            }
            m->copied++;
            if (!(flags & MP_RECEIVE_RESOURCES)) { mp_nbl_set_next(nbl, now); now = nbl; }
        }
        if (!p) { m->rx_dropped++; continue; }
        count_tcp_in(m, (const uint8_t *)p->payload, p->len);
        if (m->netif.input(p, &m->netif) != ERR_OK) { m->rx_dropped++; pbuf_free(p); }
    }
    if (now) mp_return_nbls(binding, now, 0);
}

static void on_send_complete(void *context, mp_binding *binding, mp_nbl *head, uint32_t count) {
    struct mp_netif *m = (struct mp_netif *)context;
    (void)count;
    for (mp_nbl *nbl = head; nbl; nbl = mp_nbl_next(nbl))
        if (mp_nbl_status(nbl) != MP_NDIS_STATUS_SUCCESS) m->tx_failed++;
    mp_send_pool_free(binding, head);
}

static void on_status(void *context, mp_binding *binding, const mp_status_indication *s) {
    struct mp_netif *m = (struct mp_netif *)context;
    (void)binding;
    if (s->kind != MP_STATUS_LINK_STATE) return;
    /* Inside mp_adapter_poll, so under the core lock. */
    if (s->link.up) netif_set_link_up(&m->netif); else netif_set_link_down(&m->netif);
}

static err_t mp_netif_init(struct netif *netif) {
    struct mp_netif *m = (struct mp_netif *)netif->state;
    netif->name[0] = 'm';
    netif->name[1] = 'p';
    netif->hwaddr_len = ETH_HWADDR_LEN;
    mp_adapter_mac(m->adapter, netif->hwaddr);
    netif->mtu = (u16_t)mp_adapter_mtu(m->adapter);
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP | NETIF_FLAG_MLD6;
    netif->output = etharp_output;
#if LWIP_IPV6
    netif->output_ip6 = ethip6_output;
#endif
    netif->linkoutput = linkoutput;
    return ERR_OK;
}

mp_status mp_netif_open(struct mp_netif *m, mp_adapter *adapter, uint32_t rx_pbufs, uint32_t tx_buffers) {
    memset(m, 0, sizeof *m);
    m->adapter = adapter;
    m->buffer_size = 1536;
    m->rx = (struct rx_pbuf *)calloc(rx_pbufs, sizeof *m->rx);
    if (!m->rx) return MP_ERR_RESOURCES;
    m->rx_count = rx_pbufs;
    for (uint32_t i = 0; i < rx_pbufs; i++) {
        m->rx[i].owner = m;
        m->rx[i].next_free = m->free_rx;
        m->free_rx = &m->rx[i];
    }
    mp_binding_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.context = m;
    cb.receive = on_receive;
    cb.send_complete = on_send_complete;
    cb.status = on_status;
    cb.handles_resources = 1;   /* we copy RESOURCES frames ourselves */
    mp_status s = mp_binding_open(adapter, &cb, NULL, 0, &m->binding);
    if (s != MP_OK) return s;
    if ((s = mp_send_pool_create(m->binding, tx_buffers, m->buffer_size, &m->pool)) != MP_OK) return s;
    return mp_packet_filter_set(m->binding, MP_PACKET_DIRECTED | MP_PACKET_BROADCAST | MP_PACKET_MULTICAST);
}

void mp_netif_add(struct mp_netif *m, const ip4_addr_t *ip, const ip4_addr_t *mask, const ip4_addr_t *gw) {
    netif_add(&m->netif, ip, mask, gw, m, mp_netif_init, ethernet_input);
    netif_set_default(&m->netif);
    netif_set_up(&m->netif);
    mp_link_state link;
    if (mp_adapter_link_state(m->adapter, &link) == MP_OK && link.up) netif_set_link_up(&m->netif);
}

void mp_netif_return_pending(struct mp_netif *m) {
    if (m->to_return) {
        mp_return_nbls(m->binding, m->to_return, 0);
        m->to_return = NULL;
    }
}

void mp_netif_remove(struct mp_netif *m) {
    netif_set_link_down(&m->netif);
    netif_set_down(&m->netif);
    netif_remove(&m->netif);
}

void mp_netif_free(struct mp_netif *m) {
    free(m->rx);
    m->rx = NULL;
}
