/*
 * `miniport stack`: lwIP 2.1 (NO_SYS=0, its tcpip thread, core locking) on a Miniport adapter,
 * with a TCP echo server, a TCP discard server (RFC 863) and a small HTTP/1.1 server on lwIP's raw
 * API. The poll loop runs on the calling thread: it takes lwIP's core lock, polls the adapter (whose
 * callbacks feed ethernet_input), returns the NBLs lwIP freed, and lets go of the lock.
 */
#include "lwipstack.h"
#include "netif.h"

#include <lwip/init.h>
#include <lwip/ip4_addr.h>
#include <lwip/tcp.h>
#include <lwip/tcpip.h>
#include <lwip/timeouts.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

enum conn_kind { CONN_ECHO, CONN_DISCARD, CONN_HTTP };

struct stack;

struct conn {
    struct tcp_pcb *pcb;
    enum conn_kind kind;
    struct stack *stack;
    struct pbuf *pending;      /* echo: received, not yet written back */
    int closing;               /* the peer closed (echo: close once pending is written) */
    char request[2048];        /* http: the request so far */
    size_t request_len;
    struct conn *prev, *next;
};

struct stack {
    struct mp_netif netif;
    const lwip_stack_options *options;
    const char *device;
    struct conn *conns;
    struct tcp_pcb *listeners[3];
    uint64_t echo_conns, echo_bytes, discard_conns, discard_bytes, http_requests, conns_completed;
};

static void conn_unlink(struct conn *c) {
    struct stack *s = c->stack;
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
}

static void conn_free(struct conn *c) {
    if (c->pending) pbuf_free(c->pending);
    conn_unlink(c);
    free(c);
}

static void conn_close(struct conn *c) {
    struct tcp_pcb *pcb = c->pcb;
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_err(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
    c->stack->conns_completed++;
    conn_free(c);
    if (tcp_close(pcb) != ERR_OK) tcp_abort(pcb);
}

static void on_err(void *arg, err_t err) {
    (void)err;
    struct conn *c = (struct conn *)arg;
    if (c) conn_free(c);   /* lwIP already freed the pcb */
}

/* Echo: writes back as much of `pending` as the send buffer takes; acknowledges what it wrote. */
static void echo_flush(struct conn *c) {
    while (c->pending) {
        u16_t room = tcp_sndbuf(c->pcb);
        if (room == 0) break;
        u16_t n = c->pending->len < room ? c->pending->len : room;
        if (n == 0) { c->pending = pbuf_free_header(c->pending, 0); break; }
        if (tcp_write(c->pcb, c->pending->payload, n, TCP_WRITE_FLAG_COPY) != ERR_OK) break;
        c->stack->echo_bytes += n;
        c->pending = pbuf_free_header(c->pending, n);
        tcp_recved(c->pcb, n);
    }
    tcp_output(c->pcb);
    if (c->closing && !c->pending) conn_close(c);
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len) {
    (void)pcb; (void)len;
    struct conn *c = (struct conn *)arg;
    if (c && c->kind == CONN_ECHO) echo_flush(c);
    return ERR_OK;
}

static void http_respond(struct conn *c) {
    struct stack *s = c->stack;
    char body[1024];
    int blen = snprintf(body, sizeof body,
        "<!DOCTYPE html>\n<html><head><title>Miniport lwIP stack</title></head><body>\n"
        "<h1>lwIP %s on Miniport</h1>\n"
        "<p>device %s, queue %u%s</p>\n"
        "<p>frames received %llu, sent %llu; TCP segments received %llu, sent %llu</p>\n"
        "</body></html>\n",
        LWIP_VERSION_STRING, s->device, (unsigned)s->netif.last_queue, s->netif.last_queue == 0 ? " (default)" : "",
        (unsigned long long)s->netif.rx_frames, (unsigned long long)s->netif.tx_frames,
        (unsigned long long)s->netif.tcp_in, (unsigned long long)s->netif.tcp_out);
    int head_only = strncmp(c->request, "HEAD ", 5) == 0;
    int ok = strncmp(c->request, "GET ", 4) == 0 || head_only;
    char head[256];
    int hlen = snprintf(head, sizeof head,
        "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\nServer: miniport-lwip\r\n\r\n",
        ok ? "200 OK" : "405 Method Not Allowed", ok ? "text/html; charset=utf-8" : "text/plain", ok ? blen : 19);
    tcp_write(c->pcb, head, (u16_t)hlen, TCP_WRITE_FLAG_COPY);
    if (!ok) tcp_write(c->pcb, "use GET or HEAD.\r\n\r\n", 19, TCP_WRITE_FLAG_COPY);
    else if (!head_only) tcp_write(c->pcb, body, (u16_t)blen, TCP_WRITE_FLAG_COPY);
    tcp_output(c->pcb);
    s->http_requests++;
    conn_close(c);   /* the FIN follows the queued response */
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    struct conn *c = (struct conn *)arg;
    (void)err;
    if (!c) { if (p) pbuf_free(p); return ERR_OK; }
    if (!p) {
        /* The peer closed its side. */
        if (c->kind == CONN_ECHO && c->pending) { c->closing = 1; echo_flush(c); }
        else conn_close(c);
        return ERR_OK;
    }
    switch (c->kind) {
    case CONN_DISCARD:
        c->stack->discard_bytes += p->tot_len;
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
        break;
    case CONN_ECHO:
        if (c->pending) pbuf_cat(c->pending, p); else c->pending = p;
        echo_flush(c);
        break;
    case CONN_HTTP: {
        size_t room = sizeof c->request - 1 - c->request_len;
        u16_t n = pbuf_copy_partial(p, c->request + c->request_len, (u16_t)(p->tot_len < room ? p->tot_len : room), 0);
        c->request_len += n;
        c->request[c->request_len] = 0;
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
        if (strstr(c->request, "\r\n\r\n") || c->request_len >= sizeof c->request - 1) http_respond(c);
        break;
    }
    }
    return ERR_OK;
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
    struct stack *s = (struct stack *)arg;
    if (err != ERR_OK || !pcb) return ERR_VAL;
    struct conn *c = (struct conn *)calloc(1, sizeof *c);
    if (!c) return ERR_MEM;
    c->pcb = pcb;
    c->stack = s;
    u16_t port = pcb->local_port;
    c->kind = port == s->options->echo_port ? CONN_ECHO : port == s->options->discard_port ? CONN_DISCARD : CONN_HTTP;
    if (c->kind == CONN_ECHO) s->echo_conns++;
    if (c->kind == CONN_DISCARD) s->discard_conns++;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    tcp_arg(pcb, c);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_nagle_disable(pcb);
    return ERR_OK;
}

static int listen_on(struct stack *s, int slot, int port) {
    if (port <= 0) return 0;
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
    if (!pcb) return -1;
    if (tcp_bind(pcb, IP_ANY_TYPE, (u16_t)port) != ERR_OK) { tcp_close(pcb); return -1; }
    struct tcp_pcb *l = tcp_listen_with_backlog(pcb, 255);
    if (!l) { tcp_close(pcb); return -1; }
    tcp_arg(l, s);
    tcp_accept(l, on_accept);
    s->listeners[slot] = l;
    return 0;
}

static void tcpip_ready(void *arg) {
    sys_sem_signal((sys_sem_t *)arg);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exit_code_for(mp_status s) {
    switch (s) {
    case MP_ERR_INVALID_ARGUMENT: case MP_ERR_BAD_ADDRESS: return 64;
    case MP_ERR_NO_DEVICE: case MP_ERR_BUSY: case MP_ERR_NO_MINIPORT: case MP_ERR_TAP: return 69;
    default: return 1;
    }
}

static void ip_text(uint32_t ip, char *out, size_t n) {
    snprintf(out, n, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

int lwip_stack_run(const lwip_stack_options *o) {
    static struct stack s;   /* large (the netif's tracking table); one stack per process */
    memset(&s, 0, sizeof s);
    s.options = o;
    mp_adapter *adapter = NULL;
    mp_status st;
    if (o->model) {
        mp_model_options mo;
        memset(&mo, 0, sizeof mo);
        mo.name = o->device;
        mo.tap = o->tap;
        st = mp_adapter_open_model(&mo, &adapter);
    } else {
        st = mp_adapter_open_device(o->device, &adapter);
    }
    if (st != MP_OK) {
        fprintf(stderr, "miniport stack: %s\n", mp_last_error());
        return exit_code_for(st);
    }
    s.device = mp_adapter_name(adapter);
    if ((st = mp_netif_open(&s.netif, adapter, 4096, 1024)) != MP_OK) {
        fprintf(stderr, "miniport stack: %s\n", mp_last_error());
        mp_adapter_close(adapter, NULL);
        return exit_code_for(st);
    }

    sys_sem_t ready;
    sys_sem_new(&ready, 0);
    tcpip_init(tcpip_ready, &ready);
    sys_sem_wait(&ready);
    sys_sem_free(&ready);

    ip4_addr_t ip, mask, gw;
    ip4_addr_set_u32(&ip, lwip_htonl(o->ip));
    ip4_addr_set_u32(&mask, lwip_htonl(o->prefix == 0 ? 0 : 0xffffffffu << (32 - o->prefix)));
    ip4_addr_set_u32(&gw, lwip_htonl(o->gateway));
    int listen_failed = 0;
    LOCK_TCPIP_CORE();
    mp_netif_add(&s.netif, &ip, &mask, &gw);
    if (listen_on(&s, 0, o->echo_port) || listen_on(&s, 1, o->discard_port) || listen_on(&s, 2, o->http_port)) listen_failed = 1;
    UNLOCK_TCPIP_CORE();
    if (listen_failed) {
        fprintf(stderr, "miniport stack: lwIP could not listen on the ports given (--echo %d, --discard %d, --http %d): give each a different port\n",
                o->echo_port, o->discard_port, o->http_port);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    if ((st = mp_adapter_start(adapter)) != MP_OK) {
        fprintf(stderr, "miniport stack: %s\n", mp_last_error());
        listen_failed = 1;
    }
    if (!listen_failed) {
        uint8_t mac[6];
        char ipt[16];
        mp_adapter_mac(adapter, mac);
        ip_text(o->ip, ipt, sizeof ipt);
        printf("stack: lwIP %s on %s%s%s (MAC %02x:%02x:%02x:%02x:%02x:%02x), %s/%u",
               LWIP_VERSION_STRING, s.device, o->tap ? " via TAP " : "", o->tap ? o->tap : "",
               mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], ipt, (unsigned)o->prefix);
        if (o->echo_port) printf(", echo %d", o->echo_port);
        if (o->discard_port) printf(", discard %d", o->discard_port);
        if (o->http_port) printf(", http %d", o->http_port);
        printf(": ready\n");
        fflush(stdout);
    }

    double deadline = o->seconds > 0 ? now_seconds() + o->seconds : 0;
    unsigned idle = 0;
    while (!listen_failed && !stop_requested) {
        if (deadline > 0 && now_seconds() >= deadline) break;
        LOCK_TCPIP_CORE();
        int n = mp_adapter_poll(adapter, 64);
        mp_netif_return_pending(&s.netif);
        UNLOCK_TCPIP_CORE();
        if (n > 0) { idle = 0; continue; }
        /* Idle: back off from a spin to 200 us sleeps (the tcpip thread runs lwIP's timers). */
        if (++idle > 64) usleep(idle > 4096 ? 200 : 20);
        else sched_yield();
    }

    /* Stop: close every connection and listener, take the netif down, then give back what lwIP
     * still holds, let the last sends complete, and halt. */
    LOCK_TCPIP_CORE();
    while (s.conns) {
        struct conn *c = s.conns;
        struct tcp_pcb *pcb = c->pcb;
        tcp_arg(pcb, NULL);
        tcp_err(pcb, NULL);
        conn_free(c);
        tcp_abort(pcb);
    }
    for (int i = 0; i < 3; i++) if (s.listeners[i]) tcp_close(s.listeners[i]);
    mp_netif_remove(&s.netif);
    mp_netif_return_pending(&s.netif);
    UNLOCK_TCPIP_CORE();
    for (int i = 0; i < 16; i++) {
        LOCK_TCPIP_CORE();
        mp_adapter_poll(adapter, 64);
        mp_netif_return_pending(&s.netif);
        UNLOCK_TCPIP_CORE();
    }
    struct mp_netif *m = &s.netif;
    printf("stack: frames received %llu (zero-copy %llu, copied %llu, dropped %llu), sent %llu (dropped %llu, failed %llu)\n",
           (unsigned long long)m->rx_frames, (unsigned long long)m->zero_copy, (unsigned long long)m->copied,
           (unsigned long long)m->rx_dropped, (unsigned long long)m->tx_frames, (unsigned long long)m->tx_dropped,
           (unsigned long long)m->tx_failed);
    printf("stack: TCP segments received %llu, sent %llu, retransmitted %llu\n",
           (unsigned long long)m->tcp_in, (unsigned long long)m->tcp_out, (unsigned long long)m->tcp_retransmissions);
    printf("stack: echo %llu connection(s) %llu bytes, discard %llu connection(s) %llu bytes, http %llu request(s), %llu connection(s) closed\n",
           (unsigned long long)s.echo_conns, (unsigned long long)s.echo_bytes, (unsigned long long)s.discard_conns,
           (unsigned long long)s.discard_bytes, (unsigned long long)s.http_requests, (unsigned long long)s.conns_completed);
    unsigned long long held = (unsigned long long)m->zero_copy_outstanding;
    mp_halt_report r;
    memset(&r, 0, sizeof r);
    mp_status cs = mp_adapter_close(adapter, &r);
    mp_netif_free(m);
    printf("stack: halted: %llu NBL(s) outstanding (%llu held by lwIP), %llu shared memory block(s) freed by the framework, %llu bytes left mapped\n",
           (unsigned long long)r.outstanding_nbls, held, (unsigned long long)r.shared_memory_freed, (unsigned long long)r.bytes_left_mapped);
    fflush(stdout);
    if (listen_failed) return 1;
    return cs == MP_OK ? 0 : 1;
}
