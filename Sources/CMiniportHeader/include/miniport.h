/*
 * miniport.h: the C API of Miniport (libminiport.so, pkg-config name "miniport").
 *
 * The NDIS shape in C: open an adapter (a NIC by PCI address, or the in-process hardware model),
 * open bindings on it (a protocol driver's receive, send-complete and status callbacks), take and
 * give back NET_BUFFER_LIST chains, send chains, allocate VMQ queues and set filters, set the packet
 * filter, read statistics. Docs/C-API.md documents every function with its ownership and thread rule.
 *
 * Thread rule (the whole API): calls on one adapter - and on its bindings, send pools and the NBLs
 * it indicated - are serialised by the library (a per-adapter lock). Callbacks run on the thread
 * that called mp_adapter_poll, with that lock held: a callback may call any function of this API on
 * the same adapter except mp_adapter_poll and mp_adapter_close. mp_return_nbls may be called from
 * any thread. Different adapters are independent.
 *
 * Every type here is plain C: no Swift type crosses this header. It compiles as C11 and C++17.
 */
#ifndef MINIPORT_H
#define MINIPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MP_API_VERSION 1

/* ---- Handles (opaque) --------------------------------------------------------------------- */

/** An adapter (NDIS: the miniport adapter context as NdisOpenAdapterEx sees it). */
typedef struct mp_adapter mp_adapter;
/** A binding of a protocol driver to an adapter (NDIS: NdisBindingHandle). */
typedef struct mp_binding mp_binding;
/** One NET_BUFFER_LIST; chains are linked through mp_nbl_next / mp_nbl_set_next. */
typedef struct mp_nbl mp_nbl;
/** One NET_BUFFER (each NBL here holds exactly one). */
typedef struct mp_net_buffer mp_net_buffer;
/** NBLs with transmit buffers in the adapter's shared memory, for a binding's sends. */
typedef struct mp_send_pool mp_send_pool;

/* ---- Errors ------------------------------------------------------------------------------- */

/** What a call returns. On anything but MP_OK, mp_last_error() names the device and the fix. */
typedef enum mp_status {
    MP_OK = 0,
    MP_ERR_INVALID_ARGUMENT = 1, /* a NULL or out-of-range argument */
    MP_ERR_BAD_ADDRESS = 2,      /* a PCI address that is not dddd:bb:dd.f */
    MP_ERR_NO_DEVICE = 3,        /* no PCI device at that address */
    MP_ERR_BUSY = 4,             /* another process has the device open */
    MP_ERR_NO_MINIPORT = 5,      /* no miniport in this build drives the device */
    MP_ERR_INVALID_STATE = 6,    /* the adapter, queue or binding is not in a state that allows it */
    MP_ERR_RESOURCES = 7,        /* out of memory, queues, filters or NBLs */
    MP_ERR_NOT_SUPPORTED = 8,    /* the miniport does not offer it */
    MP_ERR_UNKNOWN_QUEUE = 9,
    MP_ERR_UNKNOWN_FILTER = 10,
    MP_ERR_DEVICE_REMOVED = 11,  /* surprise removal: halt the adapter */
    MP_ERR_PENDING = 12,         /* accepted; completes later (queue free waits for returns) */
    MP_ERR_TAP = 13,             /* the Linux TAP device could not be opened or attached */
    MP_ERR_FAILURE = 14          /* anything else (the message says what) */
} mp_status;

/** The message of the last call on this thread that did not return MP_OK (one line, naming the
 *  device and the fix; the same text `miniport` prints). Valid until the next failing call on
 *  this thread. Never NULL ("" when nothing failed). */
const char *mp_last_error(void);
/** A short name for a status ("MP_ERR_BUSY"). Static storage. */
const char *mp_status_name(mp_status status);

/** NDIS_STATUS values carried by NBLs (send completion status). */
typedef enum mp_ndis_status {
    MP_NDIS_STATUS_SUCCESS = 0,
    MP_NDIS_STATUS_PENDING = 0x103,
    MP_NDIS_STATUS_FAILURE = -1,
    MP_NDIS_STATUS_RESOURCES = -2,
    MP_NDIS_STATUS_INVALID_PARAMETER = -3,
    MP_NDIS_STATUS_PAUSED = -4,
    MP_NDIS_STATUS_DEVICE_REMOVED = -5,
    MP_NDIS_STATUS_NOT_ACCEPTED = -6,
    MP_NDIS_STATUS_REQUEST_ABORTED = -7,
    MP_NDIS_STATUS_NOT_SUPPORTED = -8,
    MP_NDIS_STATUS_INVALID_LENGTH = -9
} mp_ndis_status;

/* ---- Adapters ----------------------------------------------------------------------------- */

/** Options for mp_adapter_open_model. Zero-initialise, then set what you need. */
typedef struct mp_model_options {
    /** The model NIC's name ("model0" when NULL); a PCI address here locks like a device. */
    const char *name;
    /** Connect the model's wire to this Linux TAP (an existing persistent TAP of that name, or a
     *  new one). NULL: the wire is the caller's (frames injected with mp_model_inject). */
    const char *tap;
    /** The MAC address (52:54:00:12:34:56 when all zero). */
    uint8_t mac[6];
    uint8_t reserved[2];
} mp_model_options;

/** Opens the NIC at `pci_address` (bound to vfio-pci) with the miniport that drives it, brings it
 *  up (Paused: call mp_adapter_start once bindings, queues and filters are set). Ownership: *out
 *  is yours until mp_adapter_close. */
mp_status mp_adapter_open_device(const char *pci_address, mp_adapter **out);
/** Opens the 82576 hardware model (in this process, no root needed). `options` may be NULL. */
mp_status mp_adapter_open_model(const mp_model_options *options, mp_adapter **out);

/** MiniportRestart: Paused -> Running. An adapter opens Paused (receive off): open your
 *  bindings, set the packet filter, allocate queues and set filters first, then start it, so that
 *  on a busy wire every frame lands on the queue its filters select from the first frame on.
 *  Not from a callback. */
mp_status mp_adapter_start(mp_adapter *adapter);

/** What halt found (NDIS: everything is freed anyway; non-zero counts are bugs of the caller). */
typedef struct mp_halt_report {
    uint64_t outstanding_nbls;     /* NBLs indicated and not returned at halt */
    uint64_t shared_memory_freed;  /* shared memory blocks the framework had to free */
    uint64_t pool_nbls_missing;    /* NBLs missing from the miniport's pools */
    uint64_t bytes_left_mapped;    /* DMA bytes still mapped after halt (0 when clean) */
    uint64_t late_returns;         /* returns of NBLs that were not yours (counted in release builds) */
} mp_halt_report;

/** Halts the adapter (closes every binding, frees every queue and send pool) and releases the
 *  device. `report` may be NULL. The handle, its bindings, pools and NBLs are invalid afterwards.
 *  Give back every NBL first. Not from a callback. */
mp_status mp_adapter_close(mp_adapter *adapter, mp_halt_report *report);

/** Runs receive and transmit-completion work (and, for the model, the model's wire): callbacks
 *  run on this thread, inside this call. Returns the frames handled (0: idle; sleep a little).
 *  One thread at a time per adapter; not from a callback. */
int mp_adapter_poll(mp_adapter *adapter, int budget);

/** The adapter's name: its PCI address or the model's name. Valid until mp_adapter_close. */
const char *mp_adapter_name(const mp_adapter *adapter);
/** Current MAC address (6 bytes) and MTU. */
void mp_adapter_mac(const mp_adapter *adapter, uint8_t mac[6]);
uint32_t mp_adapter_mtu(const mp_adapter *adapter);

typedef struct mp_link_state {
    int up;                 /* nonzero: link up */
    int full_duplex;
    uint64_t speed_bps;
} mp_link_state;
/** OID_GEN_LINK_STATE. */
mp_status mp_adapter_link_state(mp_adapter *adapter, mp_link_state *out);

/** For model adapters without a TAP: put a frame on the model's wire (the NIC receives it at the
 *  next poll) and take what the NIC transmitted. MP_ERR_NOT_SUPPORTED on a device or a TAP. */
mp_status mp_model_inject(mp_adapter *adapter, const void *frame, size_t length);
/** Copies the next transmitted frame into `buffer` (`capacity` bytes); *length gets its size.
 *  MP_ERR_RESOURCES when nothing is waiting. */
mp_status mp_model_take_transmitted(mp_adapter *adapter, void *buffer, size_t capacity, size_t *length);

/* ---- Bindings ----------------------------------------------------------------------------- */

/** Receive flags (NDIS_RECEIVE_FLAGS_*). */
#define MP_RECEIVE_DISPATCH_LEVEL         0x0001u
/** The chain is lent only for the duration of the callback: copy what you keep, never return it. */
#define MP_RECEIVE_RESOURCES              0x0002u
#define MP_RECEIVE_SINGLE_ETHER_TYPE      0x0100u
#define MP_RECEIVE_SINGLE_VLAN            0x0200u
#define MP_RECEIVE_PERFECT_FILTERED       0x0400u
/** Every NBL of the chain came from the one queue given. */
#define MP_RECEIVE_SINGLE_QUEUE           0x0800u
/** The segments carry valid shared memory information (NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID). */
#define MP_RECEIVE_SHARED_MEMORY_INFO_VALID 0x1000u
#define MP_RECEIVE_MORE_NBLS              0x2000u

/** Return flags (NDIS_RETURN_FLAGS_*). */
#define MP_RETURN_DISPATCH_LEVEL          0x0001u
#define MP_RETURN_SINGLE_QUEUE            0x0002u

/** Status indications (ProtocolStatusEx). */
typedef enum mp_status_kind {
    MP_STATUS_LINK_STATE = 1,         /* link: the new state */
    MP_STATUS_QUEUE_DMA_STOPPED = 2,  /* queue: its DMA stopped (a free is under way) */
    MP_STATUS_SURPRISE_REMOVAL = 3,
    MP_STATUS_REQUEST_COMPLETE = 4    /* a pending request completed (queue free), with request_status */
} mp_status_kind;

typedef struct mp_status_indication {
    mp_status_kind kind;
    uint16_t queue;
    uint16_t reserved;
    mp_link_state link;
    int32_t request_status;  /* an mp_ndis_status */
} mp_status_indication;

/** A protocol driver's callbacks. Zero-initialise, then set what you handle. */
typedef struct mp_binding_callbacks {
    /** Passed back to every callback. */
    void *context;
    /** ProtocolReceiveNetBufferLists. Without MP_RECEIVE_RESOURCES in `flags` you own the chain
     *  (`count` NBLs from `head`, linked by mp_nbl_next) and give it back with mp_return_nbls: now or
     *  later, whole or in parts, in any order, from any thread. With MP_RECEIVE_RESOURCES the chain is
     *  valid only during this call: copy what you keep; returning it is a bug (debug builds trap,
     *  release builds count it in mp_halt_report.late_returns). */
    void (*receive)(void *context, mp_binding *binding, mp_nbl *head, uint16_t queue, uint32_t count, uint32_t flags);
    /** ProtocolSendNetBufferListsComplete: your sends, each with its mp_nbl_status. You own the
     *  chain again: free it to its pool (mp_send_pool_free) or send it again. */
    void (*send_complete)(void *context, mp_binding *binding, mp_nbl *head, uint32_t count);
    /** ProtocolStatusEx (may be NULL). */
    void (*status)(void *context, mp_binding *binding, const mp_status_indication *indication);
    /** Nonzero: you take RESOURCES indications (flag MP_RECEIVE_RESOURCES, the chain lent).
     *  Zero: the framework copies such frames and indicates the copies to you as your own. */
    int handles_resources;
} mp_binding_callbacks;

/** NdisOpenAdapterEx. `frame_types` (EtherTypes in host order, `frame_type_count` of them) selects
 *  the frames this binding takes; 0 types: every frame. Callbacks may start at the next poll.
 *  The callbacks struct is copied. Not from a callback. */
mp_status mp_binding_open(mp_adapter *adapter, const mp_binding_callbacks *callbacks,
                          const uint16_t *frame_types, size_t frame_type_count, mp_binding **out);
/** NdisCloseAdapterEx: return every NBL first; the binding's send pools are freed. */
mp_status mp_binding_close(mp_binding *binding);

/** NdisReturnNetBufferLists: gives back NBLs you received (without MP_RECEIVE_RESOURCES): any
 *  subset of any indications, in any order, linked by mp_nbl_next (the last one's next is NULL).
 *  From any thread (from another thread than the polling one it waits for the adapter's lock).
 *  The NBLs are invalid for you afterwards. */
void mp_return_nbls(mp_binding *binding, mp_nbl *head, uint32_t flags);

/* ---- NBLs, NET_BUFFERs, shared memory segments ----------------------------------------------- */

/** The next NBL of a chain (NET_BUFFER_LIST_NEXT_NBL), NULL at its end. */
mp_nbl *mp_nbl_next(const mp_nbl *nbl);
/** Relinks: builds your own chains for mp_return_nbls and mp_send. */
void mp_nbl_set_next(mp_nbl *nbl, mp_nbl *next);
/** The NBL's first (and only) NET_BUFFER (NET_BUFFER_LIST_FIRST_NB). */
mp_net_buffer *mp_nbl_first_nb(const mp_nbl *nbl);
/** The next NET_BUFFER (NET_BUFFER_NEXT_NB): always NULL here, one NET_BUFFER per NBL. */
mp_net_buffer *mp_nb_next(const mp_net_buffer *nb);
/** The NBL's status (NET_BUFFER_LIST_STATUS): an mp_ndis_status; per NBL in send completions. */
int32_t mp_nbl_status(const mp_nbl *nbl);
/** Two words of scratch for the NBL's current owner (ProtocolReserved). */
uint64_t mp_nbl_context(const mp_nbl *nbl);
void mp_nbl_set_context(mp_nbl *nbl, uint64_t value);

/** Per-packet information (NET_BUFFER_LIST_INFO). */
#define MP_CHECKSUM_IPV4_SUCCEEDED 0x0001u
#define MP_CHECKSUM_IPV4_FAILED    0x0002u
#define MP_CHECKSUM_TCP_SUCCEEDED  0x0004u
#define MP_CHECKSUM_TCP_FAILED     0x0008u
#define MP_CHECKSUM_UDP_SUCCEEDED  0x0010u
#define MP_CHECKSUM_UDP_FAILED     0x0020u
#define MP_CHECKSUM_TX_IPV4        0x0100u
#define MP_CHECKSUM_TX_TCP         0x0200u
#define MP_CHECKSUM_TX_UDP         0x0400u

typedef struct mp_nbl_info {
    uint16_t receive_queue_id;   /* NET_BUFFER_LIST_RECEIVE_QUEUE_ID (0: default queue) */
    uint16_t receive_filter_id;  /* NET_BUFFER_LIST_RECEIVE_FILTER_ID */
    uint16_t vlan_id;            /* Ieee8021QNetBufferListInfo (vlan_present) */
    uint8_t user_priority;
    uint8_t vlan_present;
    uint16_t checksum;           /* MP_CHECKSUM_* (TcpIpChecksumNetBufferListInfo) */
    uint16_t frame_type;         /* NetBufferListFrameType: EtherType after any tag, host order */
    uint32_t hash_value;         /* NetBufferListHashValue */
    uint32_t hash_type;          /* NetBufferListHashInfo (NDIS_HASH_* | function) */
} mp_nbl_info;
void mp_nbl_get_info(const mp_nbl *nbl, mp_nbl_info *out);
/** Sets the per-packet information of an NBL you send (checksum requests, VLAN tag). */
void mp_nbl_set_info(mp_nbl *nbl, const mp_nbl_info *info);

/** NET_BUFFER_DATA_LENGTH and NET_BUFFER_DATA_OFFSET. */
uint32_t mp_nb_data_length(const mp_net_buffer *nb);
uint32_t mp_nb_data_offset(const mp_net_buffer *nb);
/** Number of segments (MDLs; NET_BUFFER_SHARED_MEMORY entries); 2 after a lookahead split. */
uint32_t mp_nb_segment_count(const mp_net_buffer *nb);

/** One segment: an MDL and its NET_BUFFER_SHARED_MEMORY entry. */
typedef struct mp_segment {
    void *address;           /* virtual address of the segment's first byte */
    uint64_t iova;           /* its device address */
    uint32_t length;         /* bytes in the segment (MDL ByteCount, counting backfill before the data) */
    uint32_t capacity;       /* bytes the buffer holds from `address` */
    uint32_t shared_memory_handle;  /* NET_BUFFER_SHARED_MEM_HANDLE (0: none) */
    uint32_t shared_memory_offset;  /* NET_BUFFER_SHARED_MEM_OFFSET */
    uint32_t shared_memory_flags;   /* NET_BUFFER_SHARED_MEM_FLAGS (0) */
    uint32_t reserved;
} mp_segment;
/** Segment `index` (NET_BUFFER_FIRST_SHARED_MEM_BUFFER / NET_BUFFER_SHARED_MEM_NEXT_SEGMENT).
 *  MP_ERR_INVALID_ARGUMENT past the last one. */
mp_status mp_nb_segment(const mp_net_buffer *nb, uint32_t index, mp_segment *out);
/** NdisGetDataBuffer: `length` contiguous bytes from the data start, in place when one segment
 *  holds them, else copied into `scratch` (NULL: no copy). NULL when the data is shorter. */
const void *mp_nb_data(const mp_net_buffer *nb, uint32_t length, void *scratch);
/** Copies up to `length` data bytes from `offset` on, across segments. Returns the bytes copied. */
uint32_t mp_nb_copy(const mp_net_buffer *nb, uint32_t offset, void *destination, uint32_t length);

/* ---- Sending ------------------------------------------------------------------------------ */

/** Makes `count` send NBLs with a `buffer_size`-byte buffer each in the adapter's shared memory.
 *  Freed with the binding. Not from a callback of another adapter. */
mp_status mp_send_pool_create(mp_binding *binding, uint32_t count, uint32_t buffer_size, mp_send_pool **out);
/** Takes up to `count` NBLs (a chain; NULL when the pool is empty); *taken gets how many. */
mp_nbl *mp_send_pool_alloc(mp_send_pool *pool, uint32_t count, uint32_t *taken);
/** Gives NBLs (a chain, e.g. a send completion) back to the pool they came from. */
void mp_send_pool_free(mp_binding *binding, mp_nbl *head);
/** The writable buffer of a send NBL and its capacity. */
void *mp_nbl_send_buffer(mp_nbl *nbl, uint32_t *capacity);
/** Sets the frame length of a send NBL whose buffer you filled. MP_ERR_INVALID_ARGUMENT if it
 *  exceeds the capacity. */
mp_status mp_nbl_set_length(mp_nbl *nbl, uint32_t length);
/** NdisSendNetBufferLists: every NBL completes through send_complete with its own status
 *  (a paused or removed adapter completes them at once with MP_NDIS_STATUS_PAUSED / _DEVICE_REMOVED). */
void mp_send(mp_binding *binding, mp_nbl *head, uint32_t flags);

/* ---- Requests: queues, filters, packet filter, statistics ------------------------------------ */

/** OID_RECEIVE_FILTER_ALLOCATE_QUEUE flags. */
#define MP_QUEUE_LOOKAHEAD_SPLIT  0x0002u  /* NDIS_RECEIVE_QUEUE_PARAMETERS_LOOKAHEAD_SPLIT_REQUIRED */

typedef struct mp_queue_parameters {
    uint32_t flags;             /* MP_QUEUE_* */
    uint32_t buffers;           /* receive buffers (0: 256) */
    uint32_t lookahead_size;    /* with MP_QUEUE_LOOKAHEAD_SPLIT: bytes in the first segment at least */
    uint32_t reserved;
    const char *name;           /* may be NULL */
} mp_queue_parameters;
/** OID_RECEIVE_FILTER_ALLOCATE_QUEUE followed by OID_RECEIVE_FILTER_QUEUE_ALLOCATION_COMPLETE.
 *  The queue receives once it has a filter. */
mp_status mp_queue_allocate(mp_binding *binding, const mp_queue_parameters *parameters, uint16_t *queue);
/** OID_RECEIVE_FILTER_FREE_QUEUE: clears its filters, stops its DMA; MP_ERR_PENDING while NBLs of
 *  the queue are out (it completes when the last returns: MP_STATUS_REQUEST_COMPLETE). */
mp_status mp_queue_free(mp_binding *binding, uint16_t queue);

/** OID_RECEIVE_FILTER_SET_FILTER with one field test: a destination MAC (mac != NULL), a VLAN id
 *  (vlan_id != 0), or both (both must match). Gives the filter id. */
mp_status mp_filter_set(mp_binding *binding, uint16_t queue, const uint8_t *mac, uint16_t vlan_id, uint32_t *filter);
/** OID_RECEIVE_FILTER_CLEAR_FILTER. */
mp_status mp_filter_clear(mp_binding *binding, uint32_t filter);

/** OID_GEN_CURRENT_PACKET_FILTER (NDIS_PACKET_TYPE_*). */
#define MP_PACKET_DIRECTED       0x0001u
#define MP_PACKET_MULTICAST      0x0002u
#define MP_PACKET_ALL_MULTICAST  0x0004u
#define MP_PACKET_BROADCAST      0x0008u
#define MP_PACKET_PROMISCUOUS    0x0020u
mp_status mp_packet_filter_set(mp_binding *binding, uint32_t packet_filter);

/** OID_RECEIVE_FILTER_HARDWARE_CAPABILITIES, the parts a protocol decides on. */
typedef struct mp_capabilities {
    uint32_t queues;                 /* VMQ queues besides the default one */
    uint32_t max_mac_filters;
    uint32_t lookahead_split;        /* nonzero: MP_QUEUE_LOOKAHEAD_SPLIT is offered */
    uint32_t min_lookahead_size;
    uint32_t max_lookahead_size;
    uint32_t reserved;
} mp_capabilities;
mp_status mp_adapter_capabilities(mp_adapter *adapter, mp_capabilities *out);

/** OID_GEN_STATISTICS (NDIS_STATISTICS_INFO), 64-bit counters. */
typedef struct mp_statistics {
    uint64_t received_frames, received_bytes, transmitted_frames, transmitted_bytes;
    uint64_t receive_broadcast, receive_multicast, receive_drops, receive_errors, transmit_errors;
    uint64_t framework_drops;   /* frames the framework discarded (no queue, nobody wants them, ...) */
} mp_statistics;
/** Global counters (queue 0xffff) or one queue's (then framework_drops is 0). */
#define MP_ALL_QUEUES 0xffffu
mp_status mp_statistics_get(mp_adapter *adapter, uint16_t queue, mp_statistics *out);

#ifdef __cplusplus
}
#endif
#endif /* MINIPORT_H */
