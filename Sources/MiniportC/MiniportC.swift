// The C API (miniport.h): @_cdecl functions over the NDIS framework and MiniportHost.
// Docs/C-API.md is the contract; every function here has its ownership and thread rule there.
#if canImport(Glibc)
import Glibc
#endif
import CMiniportHeader
import Logging
import MiniportRegistry
import NDIS

// MARK: - Handles

/// An adapter opened through the C API: the opened adapter, its lock, its C bindings.
final class CAdapter {
    let opened: OpenedAdapter
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let cName: UnsafeMutablePointer<CChar>
    var bindings: [CBinding] = []
    var lateReturns: UInt64 = 0
    var transmitted: [[UInt8]] = []
    var closed = false
    /// The adapter, unretained (`opened` keeps it), and whether `poll` can go to it directly (no
    /// model wire or TAP to step): the datapath calls take no reference.
    let adapterRef: Unmanaged<Adapter>
    let pollsDirect: Bool

    init(_ opened: OpenedAdapter) {
        self.opened = opened
        adapterRef = Unmanaged.passUnretained(opened.adapter)
        pollsDirect = opened.wire == nil && opened.tap == nil
        mutex = .allocate(capacity: 1)
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        // Callbacks run with the lock held and may call back into the API on the same adapter.
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(mutex, &attr)
        pthread_mutexattr_destroy(&attr)
        cName = strdup(opened.address)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        free(cName)
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }

    var handle: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    @inline(__always) static func from(_ p: OpaquePointer) -> CAdapter { Unmanaged<CAdapter>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue() }
}

/// A C protocol driver: its callbacks, behind the Swift ProtocolDriver protocol.
final class CBinding: ProtocolDriver {
    let callbacks: mp_binding_callbacks
    unowned(unsafe) let owner: CAdapter
    var binding: Binding? {
        didSet { bindingRef = binding.map { Unmanaged.passUnretained($0) } }
    }
    /// `binding`, unretained, for the datapath (returns take no reference).
    private(set) var bindingRef: Unmanaged<Binding>?
    /// The send pools made for it (the binding frees their memory when it closes).
    var pools: [CSendPool] = []

    init(callbacks: mp_binding_callbacks, owner: CAdapter) {
        self.callbacks = callbacks
        self.owner = owner
    }

    var handle: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }
    @inline(__always) static func from(_ p: OpaquePointer) -> CBinding { Unmanaged<CBinding>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue() }

    var handlesResourcesIndications: Bool { callbacks.handles_resources != 0 }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        guard let receive = callbacks.receive else {
            binding.returnNetBufferLists(chain)
            return
        }
        // The chain's ownership moves to C with its head.
        let head = chain.releaseToUnsafeHandle()
        receive(callbacks.context, handle, head.map(OpaquePointer.init), queue.rawValue, UInt32(truncatingIfNeeded: count), flags.rawValue)
    }

    func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        guard let receive = callbacks.receive else { return }
        // Lent for the call only (MP_RECEIVE_RESOURCES): a return of these NBLs is refused later.
        receive(callbacks.context, handle, chain.unsafeHeadHandle.map(OpaquePointer.init), queue.rawValue,
                UInt32(truncatingIfNeeded: count), flags.union(.resources).rawValue)
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        guard let complete = callbacks.send_complete else {
            binding.freeSendNetBufferLists(chain)
            return
        }
        let n = UInt32(truncatingIfNeeded: chain.count)
        let head = chain.releaseToUnsafeHandle()
        complete(callbacks.context, handle, head.map(OpaquePointer.init), n)
    }

    func status(_ indication: StatusIndication, binding: Binding) {
        guard let status = callbacks.status else { return }
        var s = mp_status_indication()
        switch indication {
        case let .linkState(l):
            s.kind = MP_STATUS_LINK_STATE
            s.link = mp_link_state(up: l.up ? 1 : 0, full_duplex: l.fullDuplex ? 1 : 0, speed_bps: l.speedBitsPerSecond)
        case let .receiveQueueDMAStopped(q):
            s.kind = MP_STATUS_QUEUE_DMA_STOPPED
            s.queue = q.rawValue
        case .surpriseRemoval:
            s.kind = MP_STATUS_SURPRISE_REMOVAL
        case let .requestComplete(_, st):
            s.kind = MP_STATUS_REQUEST_COMPLETE
            s.request_status = st.rawValue
        }
        status(callbacks.context, handle, &s)
    }
}

/// A send pool made through the C API, with the binding whose lock guards it.
final class CSendPool {
    let pool: SendPool
    /// `pool`, unretained, for the datapath.
    let poolRef: Unmanaged<NetBufferListPool>
    unowned(unsafe) let binding: CBinding
    var owner: CAdapter { binding.owner }
    init(pool: SendPool, binding: CBinding) {
        self.pool = pool
        poolRef = Unmanaged.passUnretained(pool.pool)
        self.binding = binding
    }
    @inline(__always) static func from(_ p: OpaquePointer) -> CSendPool { Unmanaged<CSendPool>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue() }
}

// MARK: - Errors

enum CAPI {
    static let logger = Logger(label: "miniport")

    static func fail(_ status: mp_status, _ message: String) -> mp_status {
        message.withCString { mp_private_set_last_error($0) }
        return status
    }

    static func status(of error: OpenError) -> mp_status {
        switch error {
        case .badAddress: MP_ERR_BAD_ADDRESS
        case .unknownDevice: MP_ERR_NO_DEVICE
        case .busy: MP_ERR_BUSY
        case .noMiniport, .refused: MP_ERR_NO_MINIPORT
        case .unknownModel: MP_ERR_INVALID_ARGUMENT
        case let .adapter(_, e): status(of: e)
        case .tap: MP_ERR_TAP
        case .failed: MP_ERR_FAILURE
        }
    }

    static func status(of error: NDISError) -> mp_status {
        switch error {
        case .invalidParameter, .unknownAllocation: MP_ERR_INVALID_ARGUMENT
        case .invalidState, .memoryInUse: MP_ERR_INVALID_STATE
        case .resources: MP_ERR_RESOURCES
        case .notSupported: MP_ERR_NOT_SUPPORTED
        case .unknownQueue: MP_ERR_UNKNOWN_QUEUE
        case .unknownFilter: MP_ERR_UNKNOWN_FILTER
        case .deviceRemoved: MP_ERR_DEVICE_REMOVED
        case .requestPending: MP_ERR_PENDING
        case .miniportFailure: MP_ERR_FAILURE
        }
    }

    /// An NDIS error of a request on `adapter`, as the CLI words it ("what on DEVICE: why").
    static func fail(_ error: NDISError, _ what: String, on adapter: CAdapter) -> mp_status {
        fail(status(of: error), OpenError.adapter("\(what) on \(adapter.opened.address)", error).description)
    }

    static func open(_ body: () throws(OpenError) -> OpenedAdapter, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mp_status {
        guard let out else { return fail(MP_ERR_INVALID_ARGUMENT, "mp_adapter_open: the out pointer is NULL; pass the address of an mp_adapter *") }
        out.pointee = nil
        do {
            let opened = try body()
            let a = CAdapter(opened)
            out.pointee = OpaquePointer(Unmanaged.passRetained(a).toOpaque())
            return MP_OK
        } catch {
            return fail(status(of: error), error.description)
        }
    }
}

@_cdecl("mp_status_name")
public func mpStatusName(_ status: mp_status) -> UnsafePointer<CChar>? {
    let names: [UInt32: StaticString] = [
        0: "MP_OK", 1: "MP_ERR_INVALID_ARGUMENT", 2: "MP_ERR_BAD_ADDRESS", 3: "MP_ERR_NO_DEVICE", 4: "MP_ERR_BUSY",
        5: "MP_ERR_NO_MINIPORT", 6: "MP_ERR_INVALID_STATE", 7: "MP_ERR_RESOURCES", 8: "MP_ERR_NOT_SUPPORTED",
        9: "MP_ERR_UNKNOWN_QUEUE", 10: "MP_ERR_UNKNOWN_FILTER", 11: "MP_ERR_DEVICE_REMOVED", 12: "MP_ERR_PENDING",
        13: "MP_ERR_TAP", 14: "MP_ERR_FAILURE",
    ]
    let s: StaticString = names[UInt32(status.rawValue)] ?? "MP_ERR_UNKNOWN_STATUS"
    return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

// MARK: - Adapters

@_cdecl("mp_adapter_open_device")
public func mpAdapterOpenDevice(_ address: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mp_status {
    guard let address else {
        return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_adapter_open_device: the PCI address is NULL; pass one like \"0000:03:00.0\" (see miniport list)")
    }
    let text = String(cString: address)
    return CAPI.open({ () throws(OpenError) in try AdapterOpener.openDevice(text, logger: CAPI.logger) }, out)
}

@_cdecl("mp_adapter_open_model")
public func mpAdapterOpenModel(_ options: UnsafePointer<mp_model_options>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mp_status {
    let o = options?.pointee ?? mp_model_options()
    let name = o.name.map { String(cString: $0) }
    let tap = o.tap.map { String(cString: $0) }
    let m = o.mac
    let mac = (m.0 | m.1 | m.2 | m.3 | m.4 | m.5) == 0 ? AdapterOpener.modelMAC : MACAddress(m.0, m.1, m.2, m.3, m.4, m.5)
    return CAPI.open({ () throws(OpenError) in
        // A model named after a PCI address is locked under it, as the CLI does.
        let address = name.flatMap { try? PCIAddressText.normalize($0) }
        return try AdapterOpener.openModel(name: address ?? name ?? "model0", lockName: address, macAddress: mac, logger: CAPI.logger, tap: tap)
    }, out)
}

@_cdecl("mp_adapter_close")
public func mpAdapterClose(_ handle: OpaquePointer?, _ report: UnsafeMutablePointer<mp_halt_report>?) -> mp_status {
    guard let handle else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_adapter_close: the adapter is NULL") }
    let a = CAdapter.from(handle)
    a.lock()
    let (halt, mapped) = a.opened.close()
    a.closed = true
    for b in a.bindings { b.binding = nil }
    a.bindings.removeAll()
    let late = a.lateReturns
    a.unlock()
    report?.pointee = mp_halt_report(outstanding_nbls: UInt64(halt.outstandingNBLs), shared_memory_freed: UInt64(halt.sharedMemoryFreedByFramework),
                                     pool_nbls_missing: UInt64(halt.poolNBLsMissing), bytes_left_mapped: UInt64(mapped), late_returns: late)
    Unmanaged<CAdapter>.fromOpaque(UnsafeRawPointer(handle)).release()
    if !halt.isClean || mapped != 0 {
        return CAPI.fail(MP_ERR_INVALID_STATE, "\(a.opened.address) halted with \(halt); \(mapped) bytes left mapped: return every NBL before mp_adapter_close")
    }
    return MP_OK
}

@_cdecl("mp_adapter_start")
public func mpAdapterStart(_ handle: OpaquePointer?) -> mp_status {
    guard let handle else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_adapter_start: the adapter is NULL") }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    do throws(OpenError) {
        try a.opened.start()
        return MP_OK
    } catch {
        return CAPI.fail(CAPI.status(of: error), error.description)
    }
}

@_cdecl("mp_adapter_poll")
public func mpAdapterPoll(_ handle: OpaquePointer?, _ budget: Int32) -> Int32 {
    guard let handle else { return 0 }
    return Unmanaged<CAdapter>.fromOpaque(UnsafeRawPointer(handle))._withUnsafeGuaranteedRef { a in
        a.lock()
        defer { a.unlock() }
        if a.closed { return 0 }
        let b = budget > 0 ? Int(budget) : 64
        if a.pollsDirect { return Int32(truncatingIfNeeded: a.adapterRef._withUnsafeGuaranteedRef { $0.poll(budget: b) }) }
        return Int32(truncatingIfNeeded: a.opened.poll(budget: b))
    }
}

@_cdecl("mp_adapter_name")
public func mpAdapterName(_ handle: OpaquePointer?) -> UnsafePointer<CChar>? {
    guard let handle else { return nil }
    return UnsafePointer(CAdapter.from(handle).cName)
}

@_cdecl("mp_adapter_mac")
public func mpAdapterMAC(_ handle: OpaquePointer?, _ mac: UnsafeMutablePointer<UInt8>?) {
    guard let handle, let mac else { return }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    let bytes = a.opened.adapter.attributes?.currentAddress.array ?? [0, 0, 0, 0, 0, 0]
    for i in 0..<6 { mac[i] = bytes[i] }
}

@_cdecl("mp_adapter_mtu")
public func mpAdapterMTU(_ handle: OpaquePointer?) -> UInt32 {
    guard let handle else { return 0 }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    return UInt32(a.opened.adapter.attributes?.mtu ?? 1500)
}

@_cdecl("mp_adapter_link_state")
public func mpAdapterLinkState(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<mp_link_state>?) -> mp_status {
    guard let handle, let out else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_adapter_link_state: NULL adapter or out pointer") }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    do {
        guard case let .linkState(l) = try a.opened.adapter.request(.linkState) else {
            return CAPI.fail(MP_ERR_FAILURE, "\(a.opened.address): OID_GEN_LINK_STATE answered without a link state")
        }
        out.pointee = mp_link_state(up: l.up ? 1 : 0, full_duplex: l.fullDuplex ? 1 : 0, speed_bps: l.speedBitsPerSecond)
        return MP_OK
    } catch {
        return CAPI.fail(error, "querying the link state", on: a)
    }
}

@_cdecl("mp_model_inject")
public func mpModelInject(_ handle: OpaquePointer?, _ frame: UnsafeRawPointer?, _ length: Int) -> mp_status {
    guard let handle, let frame, length > 0 else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_model_inject: NULL adapter or frame, or length 0") }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    guard let wire = a.opened.wire else {
        return CAPI.fail(MP_ERR_NOT_SUPPORTED, "\(a.opened.address) has no model wire of yours (a device, or a model on a TAP): frames arrive from its cable")
    }
    wire.inject(Array(UnsafeRawBufferPointer(start: frame, count: length)))
    return MP_OK
}

@_cdecl("mp_model_take_transmitted")
public func mpModelTakeTransmitted(_ handle: OpaquePointer?, _ buffer: UnsafeMutableRawPointer?, _ capacity: Int,
                                   _ length: UnsafeMutablePointer<Int>?) -> mp_status {
    guard let handle else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_model_take_transmitted: the adapter is NULL") }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    guard let wire = a.opened.wire else {
        return CAPI.fail(MP_ERR_NOT_SUPPORTED, "\(a.opened.address) has no model wire of yours (a device, or a model on a TAP): what it sends leaves on its cable")
    }
    if a.transmitted.isEmpty { a.transmitted = wire.takeTransmitted().reversed() }
    guard let frame = a.transmitted.popLast() else { return CAPI.fail(MP_ERR_RESOURCES, "\(a.opened.address): no transmitted frame is waiting") }
    length?.pointee = frame.count
    guard let buffer, capacity >= frame.count else {
        a.transmitted.append(frame)
        return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "\(a.opened.address): the next transmitted frame has \(frame.count) bytes; give a buffer that large")
    }
    frame.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
    return MP_OK
}

// MARK: - Bindings

@_cdecl("mp_binding_open")
public func mpBindingOpen(_ handle: OpaquePointer?, _ callbacks: UnsafePointer<mp_binding_callbacks>?, _ types: UnsafePointer<UInt16>?,
                          _ typeCount: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mp_status {
    guard let handle, let callbacks, let out else {
        return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_binding_open: NULL adapter, callbacks or out pointer")
    }
    out.pointee = nil
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    var frameTypes = Set<UInt16>()
    if typeCount > 0 {
        guard let types else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_binding_open: \(typeCount) frame types but a NULL array") }
        for i in 0..<typeCount { frameTypes.insert(types[i]) }
    }
    let c = CBinding(callbacks: callbacks.pointee, owner: a)
    do {
        c.binding = try a.opened.adapter.openBinding(c, frameTypes: frameTypes)
    } catch {
        return CAPI.fail(error, "opening a binding", on: a)
    }
    a.bindings.append(c)
    out.pointee = c.handle
    return MP_OK
}

@_cdecl("mp_binding_close")
public func mpBindingClose(_ handle: OpaquePointer?) -> mp_status {
    guard let handle else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_binding_close: the binding is NULL") }
    let c = CBinding.from(handle)
    let a = c.owner
    a.lock()
    defer { a.unlock() }
    c.binding?.close()
    c.binding = nil
    c.pools.removeAll()
    a.bindings.removeAll { $0 === c }
    return MP_OK
}

@_cdecl("mp_return_nbls")
public func mpReturnNBLs(_ handle: OpaquePointer?, _ head: OpaquePointer?, _ flags: UInt32) {
    guard let handle, let head else { return }
    Unmanaged<CBinding>.fromOpaque(UnsafeRawPointer(handle))._withUnsafeGuaranteedRef { c in returnNBLs(c, head, flags) }
}

@inline(__always)
func returnNBLs(_ c: CBinding, _ head: OpaquePointer, _ flags: UInt32) {
    let a = c.owner
    a.lock()
    defer { a.unlock() }
    var rejected = 0
    let chain = NetBufferListChain(unsafeReturnedFrom: UnsafeMutableRawPointer(head), rejected: &rejected)
    if _slowPath(rejected > 0) {
        #if DEBUG
        fatalError("mp_return_nbls on \(a.opened.address): \(rejected) NBL(s) were not yours to return (lent by a RESOURCES indication, already returned, or a send NBL); a RESOURCES chain is valid only during the receive callback")
        #else
        a.lateReturns &+= UInt64(rejected)
        #endif
    }
    guard let binding = c.bindingRef else {
        a.opened.adapter.returnNetBufferLists(chain, flags: ReturnFlags(rawValue: flags))
        return
    }
    var pending = chain
    binding._withUnsafeGuaranteedRef { b in
        var mine = NetBufferListChain()
        swap(&mine, &pending)
        b.returnNetBufferLists(mine, flags: ReturnFlags(rawValue: flags))
    }
}

// MARK: - NBL accessors (no lock: they read and write the NBL you hold)

@inline(__always) func nbl(_ p: OpaquePointer) -> NetBufferList { NetBufferList(unsafeHandle: UnsafeMutableRawPointer(p)) }

@_cdecl("mp_nbl_next")
public func mpNBLNext(_ p: OpaquePointer?) -> OpaquePointer? {
    guard let p else { return nil }
    return nbl(p).unsafeNext.map(OpaquePointer.init)
}

@_cdecl("mp_nbl_set_next")
public func mpNBLSetNext(_ p: OpaquePointer?, _ next: OpaquePointer?) {
    guard let p else { return }
    nbl(p).unsafeNext = next.map(UnsafeMutableRawPointer.init)
}

/// Each NBL holds exactly one NET_BUFFER: its handle is the NBL's.
@_cdecl("mp_nbl_first_nb")
public func mpNBLFirstNB(_ p: OpaquePointer?) -> OpaquePointer? { p }

@_cdecl("mp_nb_next")
public func mpNBNext(_ p: OpaquePointer?) -> OpaquePointer? { nil }

@_cdecl("mp_nbl_status")
public func mpNBLStatus(_ p: OpaquePointer?) -> Int32 {
    guard let p else { return NDISStatus.invalidParameter.rawValue }
    return nbl(p).status.rawValue
}

@_cdecl("mp_nbl_context")
public func mpNBLContext(_ p: OpaquePointer?) -> UInt64 {
    guard let p else { return 0 }
    return nbl(p).protocolReserved.0
}

@_cdecl("mp_nbl_set_context")
public func mpNBLSetContext(_ p: OpaquePointer?, _ value: UInt64) {
    guard let p else { return }
    let n = nbl(p)
    n.protocolReserved = (value, n.protocolReserved.1)
}

@_cdecl("mp_nbl_get_info")
public func mpNBLGetInfo(_ p: OpaquePointer?, _ out: UnsafeMutablePointer<mp_nbl_info>?) {
    guard let p, let out else { return }
    let i = nbl(p).info
    out.pointee = mp_nbl_info(receive_queue_id: i.receiveQueueID, receive_filter_id: i.receiveFilterID, vlan_id: i.vlanID,
                              user_priority: i.userPriority, vlan_present: i.vlanPresent ? 1 : 0, checksum: i.checksum.rawValue,
                              frame_type: i.frameType, hash_value: i.hashValue, hash_type: i.hashType.rawValue)
}

@_cdecl("mp_nbl_set_info")
public func mpNBLSetInfo(_ p: OpaquePointer?, _ info: UnsafePointer<mp_nbl_info>?) {
    guard let p, let info else { return }
    let c = info.pointee
    var i = NetBufferListInfo()
    i.receiveQueueID = c.receive_queue_id
    i.receiveFilterID = c.receive_filter_id
    i.vlanID = c.vlan_id
    i.userPriority = c.user_priority
    i.vlanPresent = c.vlan_present != 0
    i.checksum = ChecksumInfo(rawValue: c.checksum)
    i.frameType = c.frame_type
    i.hashValue = c.hash_value
    i.hashType = HashType(rawValue: c.hash_type)
    nbl(p).info = i
}

@_cdecl("mp_nb_data_length")
public func mpNBDataLength(_ p: OpaquePointer?) -> UInt32 {
    guard let p else { return 0 }
    return UInt32(truncatingIfNeeded: nbl(p).dataLength)
}

@_cdecl("mp_nb_data_offset")
public func mpNBDataOffset(_ p: OpaquePointer?) -> UInt32 {
    guard let p else { return 0 }
    return UInt32(truncatingIfNeeded: nbl(p).dataOffset)
}

@_cdecl("mp_nb_segment_count")
public func mpNBSegmentCount(_ p: OpaquePointer?) -> UInt32 {
    guard let p else { return 0 }
    return UInt32(truncatingIfNeeded: nbl(p).segmentCount)
}

@_cdecl("mp_nb_segment")
public func mpNBSegment(_ p: OpaquePointer?, _ index: UInt32, _ out: UnsafeMutablePointer<mp_segment>?) -> mp_status {
    guard let p, let out else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_nb_segment: NULL NET_BUFFER or out pointer") }
    let n = nbl(p)
    guard Int(index) < n.segmentCount else {
        return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_nb_segment: segment \(index) of a NET_BUFFER with \(n.segmentCount); ask mp_nb_segment_count first")
    }
    let s = n.segment(Int(index))
    let valid = n.sharedMemoryInfoValid
    out.pointee = mp_segment(address: s.address, iova: s.iova, length: s.length, capacity: s.capacity,
                             shared_memory_handle: valid ? s.sharedMemory.rawValue : 0, shared_memory_offset: valid ? s.sharedMemoryOffset : 0,
                             shared_memory_flags: s.sharedMemoryFlags, reserved: 0)
    return MP_OK
}

@_cdecl("mp_nb_data")
public func mpNBData(_ p: OpaquePointer?, _ length: UInt32, _ scratch: UnsafeMutableRawPointer?) -> UnsafeRawPointer? {
    guard let p else { return nil }
    let n = nbl(p)
    let scratchBuffer = scratch.map { UnsafeMutableRawBufferPointer(start: $0, count: Int(length)) }
    return n.withContiguousData(length: Int(length), scratch: scratchBuffer) { $0?.baseAddress } ?? nil
}

@_cdecl("mp_nb_copy")
public func mpNBCopy(_ p: OpaquePointer?, _ offset: UInt32, _ destination: UnsafeMutableRawPointer?, _ length: UInt32) -> UInt32 {
    guard let p, let destination else { return 0 }
    let n = nbl(p).copyData(into: UnsafeMutableRawBufferPointer(start: destination, count: Int(length)), from: Int(offset))
    return UInt32(truncatingIfNeeded: n)
}

// MARK: - Sending

@_cdecl("mp_send_pool_create")
public func mpSendPoolCreate(_ handle: OpaquePointer?, _ count: UInt32, _ bufferSize: UInt32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> mp_status {
    guard let handle, let out else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_send_pool_create: NULL binding or out pointer") }
    out.pointee = nil
    let c = CBinding.from(handle)
    let a = c.owner
    a.lock()
    defer { a.unlock() }
    guard let b = c.binding else { return CAPI.fail(MP_ERR_INVALID_STATE, "mp_send_pool_create on \(a.opened.address): the binding is closed") }
    do {
        let pool = CSendPool(pool: try b.makeSendPool(count: Int(count), bufferSize: Int(bufferSize)), binding: c)
        c.pools.append(pool)
        out.pointee = OpaquePointer(Unmanaged.passUnretained(pool).toOpaque())
        return MP_OK
    } catch {
        return CAPI.fail(error, "making a send pool of \(count) × \(bufferSize) bytes", on: a)
    }
}

@_cdecl("mp_send_pool_alloc")
public func mpSendPoolAlloc(_ handle: OpaquePointer?, _ count: UInt32, _ taken: UnsafeMutablePointer<UInt32>?) -> OpaquePointer? {
    taken?.pointee = 0
    guard let handle else { return nil }
    return Unmanaged<CSendPool>.fromOpaque(UnsafeRawPointer(handle))._withUnsafeGuaranteedRef { p in
        let a = p.owner
        a.lock()
        defer { a.unlock() }
        guard p.binding.bindingRef != nil else { return nil }
        return p.poolRef._withUnsafeGuaranteedRef { pool -> OpaquePointer? in
            let chain = pool.allocate(count: Int(count))
            taken?.pointee = UInt32(truncatingIfNeeded: chain.count)
            return chain.releaseToUnsafeHandle().map(OpaquePointer.init)
        }
    }
}

@_cdecl("mp_send_pool_free")
public func mpSendPoolFree(_ handle: OpaquePointer?, _ head: OpaquePointer?) {
    guard let handle, let head else { return }
    Unmanaged<CBinding>.fromOpaque(UnsafeRawPointer(handle))._withUnsafeGuaranteedRef { c in
        let a = c.owner
        a.lock()
        defer { a.unlock() }
        var chain = NetBufferListChain(unsafeLinkedFrom: UnsafeMutableRawPointer(head))
        guard let b = c.bindingRef else { NDIS.returnNetBufferLists(chain); return }
        b._withUnsafeGuaranteedRef { b in
            var mine = NetBufferListChain()
            swap(&mine, &chain)
            b.freeSendNetBufferLists(mine)
        }
    }
}

@_cdecl("mp_nbl_send_buffer")
public func mpNBLSendBuffer(_ p: OpaquePointer?, _ capacity: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    guard let p else { return nil }
    let n = nbl(p)
    guard n.segmentCount > 0 else { capacity?.pointee = 0; return nil }
    let s = n.segment(0)
    capacity?.pointee = s.capacity
    return s.address
}

@_cdecl("mp_nbl_set_length")
public func mpNBLSetLength(_ p: OpaquePointer?, _ length: UInt32) -> mp_status {
    guard let p else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_nbl_set_length: the NBL is NULL") }
    let n = nbl(p)
    guard n.segmentCount > 0 else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_nbl_set_length: the NBL has no buffer (not from a send pool)") }
    var s = n.segment(0)
    guard length <= s.capacity else {
        return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_nbl_set_length: \(length) bytes do not fit the \(s.capacity)-byte send buffer; make the pool's buffers larger")
    }
    s.length = length
    n.truncateSegments(to: 1)
    n.setSegment(0, s)
    n.setData(offset: 0, length: Int(length))
    return MP_OK
}

@_cdecl("mp_send")
public func mpSend(_ handle: OpaquePointer?, _ head: OpaquePointer?, _ flags: UInt32) {
    guard let handle, let head else { return }
    Unmanaged<CBinding>.fromOpaque(UnsafeRawPointer(handle))._withUnsafeGuaranteedRef { c in send(c, handle, head, flags) }
}

@inline(__always)
func send(_ c: CBinding, _ handle: OpaquePointer, _ head: OpaquePointer, _ flags: UInt32) {
    let a = c.owner
    a.lock()
    defer { a.unlock() }
    var chain = NetBufferListChain(unsafeLinkedFrom: UnsafeMutableRawPointer(head))
    guard let bref = c.bindingRef else {
        // A closed binding sends nothing: each NBL completes at once, not accepted.
        chain.forEach { $0.status = .notAccepted }
        let n = UInt32(truncatingIfNeeded: chain.count)
        let h = chain.releaseToUnsafeHandle()
        c.callbacks.send_complete?(c.callbacks.context, handle, h.map(OpaquePointer.init), n)
        return
    }
    bref._withUnsafeGuaranteedRef { b in
        var mine = NetBufferListChain()
        swap(&mine, &chain)
        b.send(mine, flags: SendFlags(rawValue: flags))
    }
}

// MARK: - Requests

func withBinding(_ handle: OpaquePointer?, _ what: String, _ body: (CAdapter, Binding) -> mp_status) -> mp_status {
    guard let handle else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "\(what): the binding is NULL") }
    let c = CBinding.from(handle)
    let a = c.owner
    a.lock()
    defer { a.unlock() }
    guard let b = c.binding else { return CAPI.fail(MP_ERR_INVALID_STATE, "\(what) on \(a.opened.address): the binding is closed") }
    return body(a, b)
}

@_cdecl("mp_queue_allocate")
public func mpQueueAllocate(_ handle: OpaquePointer?, _ parameters: UnsafePointer<mp_queue_parameters>?, _ queue: UnsafeMutablePointer<UInt16>?) -> mp_status {
    withBinding(handle, "mp_queue_allocate") { a, b in
        let p = parameters?.pointee ?? mp_queue_parameters()
        var qp = ReceiveQueueParameters(numberOfBuffers: p.buffers == 0 ? 256 : Int(p.buffers), lookaheadSize: Int(p.lookahead_size),
                                        name: p.name.map { String(cString: $0) } ?? "")
        if p.flags & UInt32(MP_QUEUE_LOOKAHEAD_SPLIT) != 0 { qp.flags.insert(.lookaheadSplitRequired) }
        do throws(NDISError) {
            guard case let .queueAllocated(id) = try b.request(.allocateQueue(qp)) else {
                return CAPI.fail(MP_ERR_FAILURE, "\(a.opened.address): ALLOCATE_QUEUE answered without a queue id")
            }
            guard case let .allocationComplete(results) = try b.request(.queueAllocationComplete([id])) else {
                return CAPI.fail(MP_ERR_FAILURE, "\(a.opened.address): QUEUE_ALLOCATION_COMPLETE answered without statuses")
            }
            if let (_, st) = results.first, st != .success {
                _ = try? b.request(.freeQueue(id))
                return CAPI.fail(MP_ERR_RESOURCES, "\(a.opened.address): \(id) could not get its \(qp.numberOfBuffers) buffers (\(st)); ask for fewer buffers")
            }
            queue?.pointee = id.rawValue
            return MP_OK
        } catch {
            return CAPI.fail(error, "allocating a receive queue", on: a)
        }
    }
}

@_cdecl("mp_queue_free")
public func mpQueueFree(_ handle: OpaquePointer?, _ queue: UInt16) -> mp_status {
    withBinding(handle, "mp_queue_free") { a, b in
        do throws(NDISError) {
            if case .pending = try b.request(.freeQueue(ReceiveQueueID(queue))) {
                return CAPI.fail(MP_ERR_PENDING, "\(a.opened.address): freeing queue \(queue) waits for its NBLs to come back; return them (the free completes with MP_STATUS_REQUEST_COMPLETE)")
            }
            return MP_OK
        } catch {
            return CAPI.fail(error, "freeing queue \(queue)", on: a)
        }
    }
}

@_cdecl("mp_filter_set")
public func mpFilterSet(_ handle: OpaquePointer?, _ queue: UInt16, _ mac: UnsafePointer<UInt8>?, _ vlan: UInt16, _ filter: UnsafeMutablePointer<UInt32>?) -> mp_status {
    withBinding(handle, "mp_filter_set") { a, b in
        var tests: [FieldTest] = []
        if let mac { tests.append(.macDestination(MACAddress(mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]))) }
        if vlan != 0 { tests.append(.vlanID(vlan)) }
        guard !tests.isEmpty else {
            return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_filter_set on \(a.opened.address): give a destination MAC, a VLAN id (1-4094) or both")
        }
        do throws(NDISError) {
            guard case let .filterSet(id) = try b.request(.setFilter(ReceiveFilterParameters(queue: ReceiveQueueID(queue), tests: tests))) else {
                return CAPI.fail(MP_ERR_FAILURE, "\(a.opened.address): SET_FILTER answered without a filter id")
            }
            filter?.pointee = id.rawValue
            return MP_OK
        } catch {
            return CAPI.fail(error, "setting a filter on queue \(queue)", on: a)
        }
    }
}

@_cdecl("mp_filter_clear")
public func mpFilterClear(_ handle: OpaquePointer?, _ filter: UInt32) -> mp_status {
    withBinding(handle, "mp_filter_clear") { a, b in
        do throws(NDISError) {
            _ = try b.request(.clearFilter(ReceiveFilterID(filter)))
            return MP_OK
        } catch {
            return CAPI.fail(error, "clearing filter \(filter)", on: a)
        }
    }
}

@_cdecl("mp_packet_filter_set")
public func mpPacketFilterSet(_ handle: OpaquePointer?, _ filter: UInt32) -> mp_status {
    withBinding(handle, "mp_packet_filter_set") { a, b in
        do throws(NDISError) {
            _ = try b.request(.setPacketFilter(PacketFilter(rawValue: filter)))
            return MP_OK
        } catch {
            return CAPI.fail(error, "setting the packet filter", on: a)
        }
    }
}

@_cdecl("mp_adapter_capabilities")
public func mpAdapterCapabilities(_ handle: OpaquePointer?, _ out: UnsafeMutablePointer<mp_capabilities>?) -> mp_status {
    guard let handle, let out else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_adapter_capabilities: NULL adapter or out pointer") }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    do {
        guard case let .hardwareCapabilities(c) = try a.opened.adapter.request(.hardwareCapabilities) else {
            return CAPI.fail(MP_ERR_FAILURE, "\(a.opened.address): HARDWARE_CAPABILITIES answered without capabilities")
        }
        out.pointee = mp_capabilities(queues: UInt32(c.numberOfQueues), max_mac_filters: UInt32(c.maxMACHeaderFilters),
                                      lookahead_split: c.lookaheadSplitSupported ? 1 : 0, min_lookahead_size: UInt32(c.minLookaheadSplitSize),
                                      max_lookahead_size: UInt32(c.maxLookaheadSplitSize), reserved: 0)
        return MP_OK
    } catch {
        return CAPI.fail(error, "querying the receive filter capabilities", on: a)
    }
}

@_cdecl("mp_statistics_get")
public func mpStatisticsGet(_ handle: OpaquePointer?, _ queue: UInt16, _ out: UnsafeMutablePointer<mp_statistics>?) -> mp_status {
    guard let handle, let out else { return CAPI.fail(MP_ERR_INVALID_ARGUMENT, "mp_statistics_get: NULL adapter or out pointer") }
    let a = CAdapter.from(handle)
    a.lock()
    defer { a.unlock() }
    do {
        guard case let .statistics(r) = try a.opened.adapter.request(.statistics) else {
            return CAPI.fail(MP_ERR_FAILURE, "\(a.opened.address): OID_GEN_STATISTICS answered without statistics")
        }
        let s: Statistics
        if queue == UInt16(MP_ALL_QUEUES) {
            s = r.global
        } else {
            guard let q = r.queues[queue] else { return CAPI.fail(MP_ERR_UNKNOWN_QUEUE, "\(a.opened.address): no statistics for queue \(queue): allocate it first (mp_queue_allocate)") }
            s = q
        }
        out.pointee = mp_statistics(received_frames: s.receivedFrames, received_bytes: s.receivedBytes, transmitted_frames: s.transmittedFrames,
                                    transmitted_bytes: s.transmittedBytes, receive_broadcast: s.receiveBroadcast, receive_multicast: s.receiveMulticast,
                                    receive_drops: s.receiveDrops, receive_errors: s.receiveErrors, transmit_errors: s.transmitErrors,
                                    framework_drops: queue == UInt16(MP_ALL_QUEUES) ? r.frameworkDrops + UInt64(a.opened.missedOnWire()) : 0)
        return MP_OK
    } catch {
        return CAPI.fail(error, "reading the statistics", on: a)
    }
}

// MARK: - For the benchmarks (Swift only, not in miniport.h)

/// An `mp_adapter` over an adapter made in Swift (the benchmark's null-miniport adapter), so the
/// C callback path can be measured against the Swift one on the same adapter. Close it with
/// `mp_adapter_close` (which halts the adapter).
public func mpAdapterWrapping(_ adapter: Adapter) -> OpaquePointer {
    let opened = OpenedAdapter(adapter: adapter, wire: nil, dma: nil, dmaDomain: ObjectIdentifier(adapter), lock: nil,
                               address: adapter.name, family: "swift", logger: CAPI.logger)
    return OpaquePointer(Unmanaged.passRetained(CAdapter(opened)).toOpaque())
}
