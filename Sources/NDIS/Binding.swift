import DeviceAccess

/// A protocol module (NDIS protocol driver): capture, forwarder, responder, a user's stack.
///
/// All callbacks are per chain (per batch), never per packet.
public protocol ProtocolDriver: AnyObject {
    /// ProtocolBindAdapterEx/open complete: `binding` carries the adapter's attributes and capabilities.
    func bindingOpened(_ binding: Binding)
    /// ProtocolReceiveNetBufferLists: you own `chain` and give it back with
    /// `binding.returnNetBufferLists`, now or later, whole or in parts, in any order.
    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags)
    /// A RESOURCES indication (or a monitor's look): you see `chain` only during the call and must copy
    /// what you keep. Monitors get every indication this way.
    func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags)
    /// True if `receiveNetBufferListsWithResources` copies what it needs; otherwise NDIS copies for you
    /// and indicates the copies without the RESOURCES flag.
    var handlesResourcesIndications: Bool { get }
    /// ProtocolCoReceiveNetBufferLists: a receive on a virtual connection you opened.
    func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags)
    /// ProtocolSendNetBufferListsComplete: your sends, each with its status.
    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding)
    /// ProtocolStatusEx.
    func status(_ indication: StatusIndication, binding: Binding)
}

extension ProtocolDriver {
    public func bindingOpened(_ binding: Binding) {}
    public func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {}
    public var handlesResourcesIndications: Bool { false }
    public func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags) {
        vc.binding.returnNetBufferLists(chain)
    }
    public func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        binding.freeSendNetBufferLists(chain)
    }
    public func status(_ indication: StatusIndication, binding: Binding) {}
}

/// A protocol module's open binding to an adapter (NdisOpenAdapterEx).
public final class Binding: SendCompletionTarget {
    /// The adapter, unretained: the adapter owns its bindings and closes them at halt. Calls through
    /// it on the datapath take no reference (an `unowned` reference costs a slow-path retain per call).
    let adapterReference: Unmanaged<Adapter>
    public var adapter: Adapter { adapterReference.takeUnretainedValue() }
    public let protocolDriver: any ProtocolDriver
    /// EtherTypes (host order) this binding takes; empty takes every frame.
    public let frameTypes: Set<UInt16>
    /// A monitor sees every indication borrowed and owns none.
    public let isMonitor: Bool
    /// The SourceHandle on NBLs this binding sends, so completions come back here.
    public private(set) var sourceHandle: SourceHandle = .none
    /// Open until `close` (or halt); kept out of line so the datapath reads it without an exclusivity check.
    public private(set) var isOpen: Bool {
        get { openFlag.pointee }
        set { openFlag.pointee = newValue }
    }
    let openFlag: UnsafeMutablePointer<Bool>
    /// The packet filter this binding set (nil: none; see PacketFiltering.swift).
    var ownPacketFilter: PacketFilter?
    /// The filter in effect, raw, for the datapath (`PacketFilterTable.unfiltered`: every frame).
    let packetFilterCell: UnsafeMutablePointer<UInt32>
    var sendPools: [SendPool] = [] {
        didSet { soleSendPool = sendPools.count == 1 ? Unmanaged.passUnretained(sendPools[0].pool) : nil }
    }
    /// The only send pool, unretained (`sendPools` keeps it), for `freeSendNetBufferLists`.
    var soleSendPool: Unmanaged<NetBufferListPool>? {
        get { soleSendPoolCell.pointee }
        set { soleSendPoolCell.pointee = newValue }
    }
    let soleSendPoolCell: UnsafeMutablePointer<Unmanaged<NetBufferListPool>?>

    init(adapter: Adapter, protocolDriver: any ProtocolDriver, frameTypes: Set<UInt16>, isMonitor: Bool) {
        self.adapterReference = Unmanaged.passUnretained(adapter)
        openFlag = .allocate(capacity: 1)
        openFlag.initialize(to: true)
        soleSendPoolCell = .allocate(capacity: 1)
        soleSendPoolCell.initialize(to: nil)
        packetFilterCell = .allocate(capacity: 1)
        packetFilterCell.initialize(to: PacketFilterTable.unfiltered)
        self.protocolDriver = protocolDriver
        self.frameTypes = frameTypes
        self.isMonitor = isMonitor
    }

    deinit {
        openFlag.deallocate()
        soleSendPoolCell.deallocate()
        packetFilterCell.deallocate()
    }

    func register() { sourceHandle = NDIS.registerSource(returns: nil, sends: self) }

    /// The adapter's attributes (NDIS_BIND_PARAMETERS).
    public var attributes: MiniportAttributes? { adapter.attributes }
    /// Hardware and current receive-filter capabilities.
    public var receiveFilterCapabilities: CurrentReceiveFilterCapabilities? { try? adapter.currentCapabilities() }

    /// NdisReturnNetBufferLists: any subset, any order, mixing earlier indications.
    public func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags = []) {
        // The adapter takes back what it indicated and routes the rest by SourceHandle.
        var pending = chain
        adapterReference._withUnsafeGuaranteedRef { adapter in
            var mine = NetBufferListChain()
            swap(&mine, &pending)
            adapter.returnFromBinding(mine, flags: flags)
        }
    }

    /// NdisSendNetBufferLists: each NBL completes through `sendNetBufferListsComplete` with its status.
    public func send(_ chain: consuming NetBufferListChain, flags: SendFlags = []) {
        guard isOpen else {
            chain.forEach { $0.status = .notAccepted }
            sendComplete(chain)
            return
        }
        var pending = chain
        let source = sourceHandle
        adapterReference._withUnsafeGuaranteedRef { adapter in
            var mine = NetBufferListChain()
            swap(&mine, &pending)
            adapter.send(mine, from: self, source: source, flags: flags)
        }
    }

    public func sendComplete(_ chain: consuming NetBufferListChain) {
        protocolDriver.sendNetBufferListsComplete(chain, binding: self)
    }

    /// A control request on behalf of this binding (owner checks apply).
    public func request(_ oid: OIDRequest) throws(NDISError) -> OIDResponse {
        guard isOpen else { throw .invalidState("the binding is closed") }
        return try adapter.request(oid, from: self)
    }

    /// Makes `count` send NBLs, each with a `bufferSize`-byte buffer in the adapter's shared memory
    /// (usage transmit). Freed when the binding closes.
    public func makeSendPool(count: Int, bufferSize: Int) throws(NDISError) -> SendPool {
        let pool = try SendPool(binding: self, count: count, bufferSize: bufferSize)
        sendPools.append(pool)
        return pool
    }

    /// Gives sent NBLs back to the send pool they came from.
    public func freeSendNetBufferLists(_ chain: consuming NetBufferListChain) {
        var chain = chain
        if let sole = soleSendPool {
            sole._withUnsafeGuaranteedRef { pool in
                var mine = NetBufferListChain()
                swap(&mine, &chain)
                var foreign = pool.free(mine)
                swap(&foreign, &chain)
                _ = consume foreign
            }
            if chain.isEmpty { return }
        }
        for pool in sendPools {
            if chain.isEmpty { break }
            chain = pool.pool.free(chain)
        }
        if !chain.isEmpty { NDIS.returnNetBufferLists(chain) }
    }

    /// Opens a virtual connection that stands for `queue`: the queue's frames are indicated per VC
    /// (NdisMCoIndicateReceiveNetBufferLists) to `coReceiveNetBufferLists`.
    public func openVirtualConnection(queue: ReceiveQueueID) throws(NDISError) -> VirtualConnection {
        try adapter.withDatapathStopped { () throws(NDISError) -> VirtualConnection in try openVirtualConnectionStopped(queue: queue) }
    }

    func openVirtualConnectionStopped(queue: ReceiveQueueID) throws(NDISError) -> VirtualConnection {
        if !queue.isDefault && adapter.queues[queue.rawValue] == nil { throw .unknownQueue(queue) }
        guard adapter.vcForQueue[queue.rawValue] == nil else { throw .invalidState("\(queue) already has a virtual connection") }
        let vc = VirtualConnection(binding: self, queue: queue)
        vc.sourceHandle = NDIS.registerSource(returns: vc, sends: nil)
        let handle = VirtualConnectionHandle(rawValue: vc.sourceHandle.rawValue)
        adapter.vcs[handle.rawValue] = vc
        adapter.vcForQueue[queue.rawValue] = handle
        return vc
    }

    /// NdisCloseAdapterEx. Buffers still held must be returned before; send pools are freed.
    public func close() {
        adapter.withDatapathStopped { closeStopped() }
    }

    func closeStopped() {
        guard isOpen else { return }
        isOpen = false
        for p in sendPools { p.release() }
        sendPools.removeAll()
        adapter.bindings.removeAll { $0 === self }
        NDIS.unregisterSource(sourceHandle)
        // Its packet filter no longer counts in the union the hardware runs.
        if adapter.state != .halting { try? adapter.applyPacketFilters(force: false) }
    }

    func closeForHalt() { close() }
}

extension Adapter {
    /// NdisOpenAdapterEx: binds a protocol module. It receives frames of `frameTypes` (EtherTypes,
    /// empty: all) once the adapter runs; a monitor sees every frame borrowed.
    public func openBinding(_ protocolDriver: any ProtocolDriver, frameTypes: Set<UInt16> = [], monitor: Bool = false) throws(NDISError) -> Binding {
        try withDatapathStopped { () throws(NDISError) -> Binding in try openBindingStopped(protocolDriver, frameTypes: frameTypes, monitor: monitor) }
    }

    func openBindingStopped(_ protocolDriver: any ProtocolDriver, frameTypes: Set<UInt16>, monitor: Bool) throws(NDISError) -> Binding {
        guard state != .halted && state != .halting else { throw .invalidState("\(name) is \(state.rawValue): open a binding after initialize") }
        try checkPresent("binding")
        let b = Binding(adapter: self, protocolDriver: protocolDriver, frameTypes: frameTypes, isMonitor: monitor)
        b.register()
        bindings.append(b)
        try? applyPacketFilters(force: false)
        protocolDriver.bindingOpened(b)
        return b
    }
}

/// A virtual connection handle (NdisVcHandle).
public struct VirtualConnectionHandle: Hashable, Sendable {
    public let rawValue: UInt32
}

/// A virtual connection: CoNDIS's per-connection receive path. Here a VC stands for one receive queue.
public final class VirtualConnection: NetBufferListReturnTarget {
    public unowned let binding: Binding
    public let queue: ReceiveQueueID
    /// NBLs indicated on this VC carry this SourceHandle (the VC handle).
    public internal(set) var sourceHandle: SourceHandle = .none
    public var handle: VirtualConnectionHandle { VirtualConnectionHandle(rawValue: sourceHandle.rawValue) }

    init(binding: Binding, queue: ReceiveQueueID) {
        self.binding = binding
        self.queue = queue
    }

    /// Returns NBLs received on this VC (NdisReturnNetBufferLists routes here by SourceHandle).
    public func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        binding.adapter.returnNetBufferLists(chain, flags: flags)
    }
}

/// NBLs with transmit buffers in the adapter's shared memory, for a binding's sends.
public final class SendPool {
    public let pool: NetBufferListPool
    public let bufferSize: Int
    let memory: SharedMemory
    unowned let binding: Binding

    init(binding: Binding, count: Int, bufferSize: Int) throws(NDISError) {
        guard count > 0, bufferSize >= 60 else { throw .invalidParameter("a send pool needs count > 0 and buffers of at least 60 bytes") }
        self.binding = binding
        self.bufferSize = bufferSize
        let stride = (bufferSize + 63) & ~63
        memory = try binding.adapter.allocateSharedMemory(queue: .default, length: stride * count, usage: .transmit, flags: [], node: nil)
        pool = binding.adapter.makePool(capacity: count, name: "send pool")
        let base = memory.unsafeVirtualAddress
        for i in 0..<count {
            let offset = i * stride
            // A buffer never straddles two IOVA segments: stride divides the page size.
            let iova = memory.region.iova(atOffset: offset) ?? 0
            pool.prepare(i) { nbl in
                nbl.setLayout(segment0: BufferSegment(address: base + offset, iova: iova, length: 0, capacity: UInt32(bufferSize),
                                                      sharedMemory: memory.sharedMemoryHandle, sharedMemoryOffset: UInt32(offset), cookie: UInt32(i)),
                              dataOffset: 0, dataLength: 0, sharedMemoryInfoValid: true)
            }
        }
    }

    /// Takes up to `count` NBLs to fill and send.
    public func allocate(count: Int) -> NetBufferListChain { pool.allocate(count: count) }

    /// Copies `bytes` into the NBL's buffer and sets its length (the frame to send).
    /// - Returns: false if the frame does not fit.
    @discardableResult
    public static func fill(_ nbl: NetBufferList, with bytes: UnsafeRawBufferPointer) -> Bool {
        var seg = nbl.segment(0)
        guard bytes.count <= Int(seg.capacity), let dst = seg.address, let src = bytes.baseAddress else { return false }
        // Safety: `bytes.count` fits the buffer (checked above).
        dst.copyMemory(from: src, byteCount: bytes.count)
        seg.length = UInt32(bytes.count)
        nbl.truncateSegments(to: 1)
        nbl.setSegment(0, seg)
        nbl.setData(offset: 0, length: bytes.count)
        return true
    }

    func release() {
        try? binding.adapter.freeSharedMemory(memory.allocationHandle)
    }
}
