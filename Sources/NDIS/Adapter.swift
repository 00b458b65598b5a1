import DeviceAccess
import Synchronization

/// Adapter states (NDIS: Halted, Shutdown, Initializing, Paused, Restarting, Running, Pausing).
public enum AdapterState: String, Sendable {
    case halted, initializing, paused, restarting, running, pausing, halting
}

/// What halt found: anything not given back is named here.
public struct HaltReport: Sendable, Equatable, CustomStringConvertible {
    /// NBLs still indicated to protocols when halt ran.
    public var outstandingNBLs: Int = 0
    /// Shared memory the miniport did not free (the framework freed it).
    public var sharedMemoryFreedByFramework: Int = 0
    /// Shared memory blocks under NBLs still indicated: kept mapped until the last of them comes
    /// back (a late return, counted in `Adapter.lateReturns`), then freed.
    public var sharedMemoryKeptMapped: Int = 0
    /// NBLs missing from pools at halt.
    public var poolNBLsMissing: Int = 0
    /// Sends completed with an error status during the pause and halt (a stuck transmit ring's
    /// posted sends, a backlog the ring never took): handed back, not sent.
    public var sendsNotSent: Int = 0
    public var isClean: Bool {
        outstandingNBLs == 0 && sharedMemoryFreedByFramework == 0 && poolNBLsMissing == 0 && sendsNotSent == 0
            && sharedMemoryKeptMapped == 0
    }
    public var description: String {
        if isClean { return "clean halt" }
        var parts: [String] = []
        if outstandingNBLs > 0 || sharedMemoryKeptMapped > 0 {
            parts.append("\(outstandingNBLs) NBL(s) still indicated (their \(sharedMemoryKeptMapped) shared memory block(s) stay mapped until returned)")
        }
        if sharedMemoryFreedByFramework > 0 { parts.append("\(sharedMemoryFreedByFramework) shared memory block(s) freed by the framework") }
        if poolNBLsMissing > 0 { parts.append("\(poolNBLsMissing) pool NBL(s) missing") }
        if sendsNotSent > 0 { parts.append("\(sendsNotSent) send(s) completed with an error status, not sent") }
        return "halt: " + parts.joined(separator: ", ")
    }
}

/// What a halted adapter still holds for NBLs protocols did not return before halt.
struct LingeringNBLs {
    /// The adapter's SourceHandle from before halt, still registered so late returns find it.
    var source: SourceHandle
    /// Shared memory under those NBLs: mapped until their last segment is returned.
    var memory: [UInt32: SharedMemory]
    /// The adapter keeps itself (its pools, its counts) alive until the last return.
    var keepAlive: Adapter?
}

/// A network adapter: one miniport instance on one device, with its queues, filters, shared memory
/// and protocol bindings. NDIS keeps this state for the miniport; so do we.
public final class Adapter: NetBufferListReturnTarget {
    public let name: String
    /// The SourceHandle of NBLs this adapter indicates (NDIS: the MiniportAdapterHandle).
    public internal(set) var sourceHandle: SourceHandle = .none { didSet { refreshFastPath() } }
    let miniport: any MiniportDriver
    let provider: any SharedMemoryProvider
    public internal(set) var state: AdapterState = .halted { didSet { refreshFastPath() } }
    public internal(set) var isSurpriseRemoved = false { didSet { refreshFastPath() } }
    public internal(set) var attributes: MiniportAttributes?
    /// The link as the miniport last indicated it (NDIS_STATUS_LINK_STATE) or answered it; asked
    /// once after initialize. While it is down sends complete with NDIS_STATUS_MEDIA_DISCONNECTED.
    public internal(set) var linkState = LinkState(up: false) { didSet { refreshFastPath() } }
    /// Sends refused because the link was down (completed with NDIS_STATUS_MEDIA_DISCONNECTED).
    public internal(set) var sendsWhileLinkDown: UInt64 {
        get { fast.pointee.sendsWhileLinkDown }
        set { fast.pointee.sendsWhileLinkDown = newValue }
    }

    // Shared memory.
    var allocations: [UInt32: SharedMemory] = [:]
    var nextAllocation: UInt32 = 1
    static let maxSharedMemoryHandles = 4096
    /// Indicated NBL segments per shared memory handle (index = handle raw value).
    let outstandingByHandle: UnsafeMutablePointer<Int32>
    /// Indicated NBLs per queue id (index = queue id).
    let outstandingByQueue: UnsafeMutablePointer<Int>
    static let maxQueueIDs = 256
    /// Indicated and not yet returned, all queues.
    var totalOutstanding: Int {
        get { fast.pointee.totalOutstanding }
        set { fast.pointee.totalOutstanding = newValue }
    }
    /// What the datapath reads per batch, in memory the adapter owns: a class's stored `var` costs a
    /// dynamic exclusivity check on every access. Kept in step with the properties it mirrors by
    /// `refreshFastPath()`, which their observers call.
    let fast: UnsafeMutablePointer<AdapterFastPath>
    /// Frames indicated per queue id (index = queue id).
    let indicatedByQueue: UnsafeMutablePointer<UInt64>

    // Queues and filters.
    var queues: [UInt16: ReceiveQueueInfo] = [:]
    var queueOwners: [UInt16: ObjectIdentifier] = [:]
    var filters: [UInt32: ReceiveFilter] = [:]
    var nextFilter: UInt32 = 1
    /// Software filters, checked in id order on the default queue's frames.
    var softwareFilters: [ReceiveFilter] = [] { didSet { refreshFastPath() } }
    var hardwareQueuesInUse = 0
    /// Software-only queues the framework offers beyond the hardware's.
    public static let softwareQueueLimit = 16
    var rssEnabled = false
    /// OID_GEN_CURRENT_PACKET_FILTER set without a binding (bindings that set none follow it).
    var adapterPacketFilter: PacketFilter?
    /// What the miniport was last given: the union of the filters in effect.
    var hardwarePacketFilter: PacketFilter?
    /// OID_802_3_MULTICAST_LIST.
    var multicastList: [MACAddress] = []
    /// The per-frame packet filter check's tables (PacketFiltering.swift).
    let packetFilterTable = PacketFilterTable()
    var pendingFree: ReceiveQueueID? { didSet { refreshFastPath() } }
    var requestInProgress = false
    let requestLock = Mutex(())
    /// Per-queue datapath lanes (Adapter+Concurrency.swift); unused until a miniport turns them on.
    let gate = DatapathGate()

    // Bindings and VCs.
    var bindings: [Binding] = [] { didSet { refreshFastPath() } }
    var vcs: [UInt32: VirtualConnection] = [:]
    var vcForQueue: [UInt16: VirtualConnectionHandle] = [:] { didSet { refreshFastPath() } }
    var pools: [NetBufferListPool] = []
    /// Copies for protocols that cannot take a RESOURCES indication.
    var copyPool: NetBufferListPool? { didSet { refreshFastPath() } }
    var copyBuffers: UnsafeMutableRawPointer?
    static let copyPoolSize = 64
    static let copyBufferSize = 2048

    /// Frames the framework discarded (paused adapter or queue, no binding, copy pool dry).
    public internal(set) var frameworkDrops: UInt64 {
        get { fast.pointee.frameworkDrops }
        set { fast.pointee.frameworkDrops = newValue }
    }
    /// Frames indicated on a LOOKAHEAD_SPLIT_REQUIRED queue whose lookahead segment holds fewer than
    /// min(lookahead size, frame length) bytes: a miniport broke the split rule (see `checkLookaheadSplit`).
    public internal(set) var lookaheadSplitViolations: UInt64 = 0
    /// Frames a miniport indicated while the adapter was Initializing or Paused: receive was on in
    /// hardware before MiniportRestart, against NDIS's order (always 0 for a correct miniport). The
    /// framework discards them (they count in `frameworkDrops` too).
    public internal(set) var indicationsWhilePaused: UInt64 {
        get { fast.pointee.indicationsWhilePaused }
        set { fast.pointee.indicationsWhilePaused = newValue }
    }
    /// NBLs returned after halt (late returns): never handed to the halted miniport and their data
    /// never touched; accounted, given back to their pools, and their shared memory freed with the last.
    public internal(set) var lateReturns: UInt64 = 0
    /// Sends completed with an error status while pausing or halting, since the last restart.
    public internal(set) var sendsNotSentAtTeardown: Int = 0
    var lingering: LingeringNBLs? { didSet { refreshFastPath() } }
    /// Frames indicated to protocols, per queue id (queues that indicated any).
    public var indicatedFrames: [UInt16: UInt64] {
        var result: [UInt16: UInt64] = [:]
        for q in 0..<Adapter.maxQueueIDs where indicatedByQueue[q] != 0 { result[UInt16(q)] = indicatedByQueue[q] }
        return result
    }
    /// Status indications seen (for tools and tests).
    public internal(set) var statusLog: [StatusIndication] = []
    var pauseCompletion: (() -> Void)?

    /// Makes an adapter for `miniport`, whose shared memory comes from `provider`.
    public init(name: String, miniport: any MiniportDriver, sharedMemory provider: any SharedMemoryProvider) {
        self.name = name
        self.miniport = miniport
        self.provider = provider
        outstandingByHandle = .allocate(capacity: Adapter.maxSharedMemoryHandles)
        outstandingByHandle.initialize(repeating: 0, count: Adapter.maxSharedMemoryHandles)
        outstandingByQueue = .allocate(capacity: Adapter.maxQueueIDs)
        outstandingByQueue.initialize(repeating: 0, count: Adapter.maxQueueIDs)
        indicatedByQueue = .allocate(capacity: Adapter.maxQueueIDs)
        indicatedByQueue.initialize(repeating: 0, count: Adapter.maxQueueIDs)
        fast = .allocate(capacity: 1)
        fast.initialize(to: AdapterFastPath())
    }

    deinit {
        if sourceHandle != .none { NDIS.unregisterSource(sourceHandle) }
        outstandingByHandle.deallocate()
        outstandingByQueue.deallocate()
        indicatedByQueue.deallocate()
        fast.deinitialize(count: 1)
        fast.deallocate()
        packetFilterTable.release()
        copyBuffers?.deallocate()
    }

    // MARK: - Lifecycle

    /// MiniportInitializeEx. On success the adapter is Paused; call `restart()` to run.
    public func initialize() throws(NDISError) {
        guard state == .halted else { throw .invalidState("\(name) is \(state.rawValue); initialize needs a halted adapter") }
        sourceHandle = NDIS.registerSource(returns: self, sends: nil)
        state = .initializing
        do {
            let attrs = try miniport.initialize(MiniportHandle(self))
            attributes = attrs
        } catch {
            // Give back whatever the miniport allocated before failing.
            _ = forceFreeAllocations()
            state = .halted
            throw error
        }
        makeCopyPool()
        refreshPacketFilterTable()
        // The link as it is now; afterwards the miniport indicates every change.
        // A miniport that cannot say is taken as up.
        if case let .linkState(l)? = try? miniport.handleRequest(.queryLinkState) { linkState = l } else { linkState = LinkState(up: true) }
        state = .paused
    }

    /// MiniportRestart: Paused → Running.
    public func restart() throws(NDISError) {
        try withDatapathStopped { () throws(NDISError) in try restartStopped() }
    }

    func restartStopped() throws(NDISError) {
        try checkPresent("restart")
        guard state == .paused else { throw .invalidState("\(name) is \(state.rawValue); restart needs a paused adapter") }
        state = .restarting
        sendsNotSentAtTeardown = 0
        do { try miniport.restart() } catch { state = .paused; throw error }
        state = .running
    }

    /// MiniportPause: Running → Pausing → Paused. Cannot fail. Completes when every indicated NBL is
    /// back; returns true if that is already so, else `completion` runs when the last one returns.
    @discardableResult
    public func pause(completion: (() -> Void)? = nil) -> Bool {
        withDatapathStopped { pauseStopped(completion: completion) }
    }

    func pauseStopped(completion: (() -> Void)?) -> Bool {
        guard state == .running || state == .restarting else { completion?(); return true }
        state = .pausing
        miniport.pause()
        if totalOutstanding == 0 {
            state = .paused
            completion?()
            return true
        }
        pauseCompletion = completion
        return false
    }

    /// MiniportHaltEx: frees everything. Anything not given back is reported (and freed anyway).
    @discardableResult
    public func halt() -> HaltReport {
        var report = HaltReport()
        guard state != .halted else { return report }
        if fast.pointee.concurrent {
            // Workers first (joined, outside every lane), then the queued returns, then one thread.
            miniport.stopWorkers()
            setConcurrentDatapath(false)
        }
        if state == .running || state == .restarting { pause() }
        NDIS.reclaimLeakedNetBufferLists()
        report.outstandingNBLs = totalOutstanding
        state = .halting
        for b in bindings { b.closeForHalt() }
        miniport.halt()
        // Memory under NBLs a protocol still holds is not freed: reading those NBLs stays valid,
        // and their late return frees it (see `returnLate`).
        let (freed, kept) = forceFreeAllocations(keepingIndicated: true)
        report.sharedMemoryFreedByFramework = freed
        report.sharedMemoryKeptMapped = kept.count
        report.sendsNotSent = sendsNotSentAtTeardown
        for p in pools where p !== copyPool { report.poolNBLsMissing += p.outstanding }
        if report.outstandingNBLs > 0 {
            // NBLs still held by protocols would be counted missing twice.
            report.poolNBLsMissing = max(0, report.poolNBLsMissing - report.outstandingNBLs)
        }
        queues.removeAll()
        filters.removeAll()
        softwareFilters.removeAll()
        adapterPacketFilter = nil
        hardwarePacketFilter = nil
        multicastList.removeAll()
        fast.pointee.packetFiltering = false
        vcs.removeAll()
        vcForQueue.removeAll()
        bindings.removeAll()
        if totalOutstanding > 0 {
            // Late returns come back by this SourceHandle (or through a closed binding or a VC):
            // keep it registered, and keep the adapter, its pools and the memory alive until then.
            if let previous = lingering {
                // Halted before with NBLs out, re-initialized, halted again: one lingering record.
                NDIS.unregisterSource(previous.source)
                lingering = LingeringNBLs(source: sourceHandle, memory: previous.memory.merging(kept) { a, _ in a }, keepAlive: self)
            } else {
                lingering = LingeringNBLs(source: sourceHandle, memory: kept, keepAlive: self)
            }
        } else {
            NDIS.unregisterSource(sourceHandle)
        }
        sourceHandle = .none
        state = .halted
        return report
    }

    /// NBLs that come back after halt. They are not handed to the halted miniport and their data
    /// is not read: each is accounted (its queue, its shared memory, the total), counted in
    /// `lateReturns`, and goes back to its pool; memory whose last NBL came back is freed, and with
    /// the last NBL the adapter lets go of its SourceHandle and of itself.
    func returnLate(_ chain: consuming NetBufferListChain) {
        let n = chain.count
        guard n > 0 else { _ = consume chain; return }
        lateReturns &+= UInt64(n)
        NDIS.lateReturns.add(n, ordering: .relaxed)
        var chain = chain
        var p = chain.head
        while let nbl = p {
            p = nbl.pointee.next
            let q = Int(nbl.pointee.info.receiveQueueID)
            outstandingByQueue[q] &-= 1
            Adapter.countSegments(nbl, outstandingByHandle, -1)
            nbl.pointee.source = .none
            nbl.pointee.retireViews()
        }
        totalOutstanding &-= n
        NDIS.returnToPools(&chain)
        guard var l = lingering else { return }
        for (raw, shm) in l.memory where outstandingByHandle[Int(raw)] <= 0 {
            try? provider.freeSharedMemory(shm.region)
            l.memory.removeValue(forKey: raw)
        }
        if totalOutstanding <= 0 {
            NDIS.unregisterSource(l.source)
            let keep = l.keepAlive
            lingering = nil
            // The last reference may be this one: release it only once we are done.
            withExtendedLifetime(keep) {}
        } else {
            lingering = l
        }
    }

    /// Surprise removal (NdisDevicePnPEventSurpriseRemoved): new sends and requests fail until halt.
    public func surpriseRemove() {
        guard !isSurpriseRemoved else { return }
        isSurpriseRemoved = true
        miniport.surpriseRemoved()
        indicateStatus(.surpriseRemoval)
    }

    func checkPresent(_ what: String) throws(NDISError) {
        if isSurpriseRemoved { throw .deviceRemoved("\(what) on \(name) refused") }
    }

    /// Runs the miniport's receive and transmit-completion work.
    public func poll(budget: Int = 64) -> Int {
        miniport.poll(budget: budget)
    }

    // MARK: - Shared memory

    func allocateSharedMemory(queue: ReceiveQueueID, length: Int, usage: SharedMemoryUsage,
                              flags: SharedMemoryFlags, node: Int?) throws(NDISError) -> SharedMemory {
        guard length > 0 else { throw .invalidParameter("shared memory length must be positive, got \(length)") }
        guard state != .halted else { throw .invalidState("\(name) is halted: no shared memory can be allocated") }
        if !queue.isDefault {
            guard let q = queues[queue.rawValue] else { throw .unknownQueue(queue) }
            switch q.state {
            case .paused, .running: break
            case .allocated:
                throw .invalidState("shared memory for \(queue) can be allocated only after OID_RECEIVE_FILTER_QUEUE_ALLOCATION_COMPLETE")
            case .dmaStopped, .freeing:
                throw .invalidState("\(queue) is being freed: no more shared memory for it")
            }
        }
        guard allocations.count < Adapter.maxSharedMemoryHandles - 1 else {
            throw .resources("\(name) has \(allocations.count) shared memory blocks, the most one adapter can track")
        }
        let region: DMARegion
        do {
            region = try provider.allocateSharedMemory(length: length, usage: usage, flags: flags, node: node)
        } catch {
            throw .resources("shared memory of \(length) bytes for \(queue) (\(usage)): \(error)")
        }
        if flags.contains(.contiguous) && region.segments.count != 1 {
            try? provider.freeSharedMemory(region)
            throw .resources("the provider could not give \(length) bytes in one IOVA range")
        }
        // Handles are never reused while the adapter lives, so a stale handle cannot name new memory.
        var raw = nextAllocation
        if raw >= UInt32(Adapter.maxSharedMemoryHandles) {
            raw = (1..<UInt32(Adapter.maxSharedMemoryHandles)).first { allocations[$0] == nil && outstandingByHandle[Int($0)] == 0 } ?? raw
        } else {
            nextAllocation += 1
        }
        let shm = SharedMemory(allocationHandle: AllocationHandle(rawValue: raw), sharedMemoryHandle: SharedMemoryHandle(rawValue: raw),
                               queue: queue, usage: usage, flags: flags, node: node, region: region)
        allocations[raw] = shm
        return shm
    }

    func freeSharedMemory(_ handle: AllocationHandle) throws(NDISError) {
        guard let shm = allocations[handle.rawValue] else { throw .unknownAllocation(handle) }
        let inFlight = outstandingByHandle[Int(handle.rawValue)]
        if inFlight > 0 {
            throw .memoryInUse(handle, "\(inFlight) NET_BUFFER_LIST segment(s) indicated from it are not returned yet")
        }
        if shm.usage.isReceive {
            if shm.queue.isDefault {
                guard state == .halting || state == .initializing else {
                    throw .memoryInUse(handle, "it backs the default queue, whose shared memory is freed in MiniportHaltEx")
                }
            } else if state != .halting, let q = queues[shm.queue.rawValue], q.state != .freeing {
                // (At halt the miniport frees every queue's memory, VMQ queues included.)
                throw .memoryInUse(handle, "\(shm.queue) is \(q.state.rawValue); its memory is freed while the queue is freed (OID_RECEIVE_FILTER_FREE_QUEUE)")
            }
        }
        do { try provider.freeSharedMemory(shm.region) } catch {
            throw .miniportFailure("freeing shared memory \(handle): \(error)")
        }
        allocations.removeValue(forKey: handle.rawValue)
    }

    /// Frees what is left; returns how many blocks that was.
    func forceFreeAllocations() -> Int {
        forceFreeAllocations(keepingIndicated: false).freed
    }

    /// Frees what is left except (with `keepingIndicated`) blocks that NBLs still indicated point
    /// into: those are returned, still mapped, for the late returns to free.
    func forceFreeAllocations(keepingIndicated: Bool) -> (freed: Int, kept: [UInt32: SharedMemory]) {
        let left = allocations
        var kept: [UInt32: SharedMemory] = [:]
        var freed = 0
        for (raw, shm) in left {
            if keepingIndicated && outstandingByHandle[Int(raw)] > 0 {
                kept[raw] = shm
                continue
            }
            try? provider.freeSharedMemory(shm.region)
            freed += 1
        }
        allocations.removeAll()
        return (freed, kept)
    }

    /// Live shared memory blocks, for tools and leak checks.
    public var sharedMemoryAllocations: [SharedMemory] { allocations.values.sorted { $0.allocationHandle.rawValue < $1.allocationHandle.rawValue } }

    func makePool(capacity: Int, name: String) -> NetBufferListPool {
        let pool = NetBufferListPool(capacity: capacity, name: name)
        NDIS.registerPool(pool)
        pools.append(pool)
        return pool
    }

    func makeCopyPool() {
        let pool = makePool(capacity: Adapter.copyPoolSize, name: "\(name) RESOURCES copies")
        let bytes = Adapter.copyPoolSize * Adapter.copyBufferSize
        let buffers = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        for i in 0..<Adapter.copyPoolSize {
            pool.prepare(i) { nbl in
                nbl.setLayout(segment0: BufferSegment(address: buffers + i * Adapter.copyBufferSize, iova: 0,
                                                      length: 0, capacity: UInt32(Adapter.copyBufferSize), cookie: UInt32(i)),
                              dataOffset: 0, dataLength: 0, sharedMemoryInfoValid: false)
            }
        }
        copyPool = pool
        copyBuffers = buffers
    }

    /// The DMA domain of the adapter's shared memory (see `SharedMemoryProvider.dmaDomain`).
    public var dmaDomain: ObjectIdentifier? { provider.dmaDomain }

    /// NBLs indicated and not yet returned.
    public var outstandingNetBufferLists: Int { totalOutstanding }
    /// NBLs of one queue indicated and not yet returned.
    public func outstandingNetBufferLists(queue: ReceiveQueueID) -> Int { outstandingByQueue[Int(queue.rawValue)] }
}

/// The adapter's datapath view of its state (see `Adapter.fast`). Plain values and unretained
/// references: the adapter keeps every object named here alive while it is named here.
struct AdapterFastPath {
    /// Running and present: indications are delivered.
    var delivering = false
    /// The datapath runs in lanes (per-queue workers): shared counters are updated atomically and
    /// returns go through the lanes' stacks.
    var concurrent = false
    var sourceHandle = SourceHandle.none
    var totalOutstanding = 0
    var frameworkDrops: UInt64 = 0
    /// The link is down (see `Adapter.linkState`): sends complete with MEDIA_DISCONNECTED.
    var linkDown = true
    var sendsWhileLinkDown: UInt64 = 0
    /// Some open binding has a packet filter that is not promiscuous: frames are checked per binding.
    var packetFiltering = false
    var packetFilterRejects: UInt64 = 0
    /// Indications while Initializing or Paused (see `Adapter.indicationsWhilePaused`).
    var indicationsWhilePaused: UInt64 = 0
    /// A pause or a queue free waits for returns to reach zero.
    var watchReturns = false
    /// NBLs indicated before a halt are still out (`Adapter.lingering`): returns check for them.
    var lingering = false
    /// Default-queue frames go through software filters first.
    var softwareFiltering = false
    /// Some queue is indicated per virtual connection.
    var hasVirtualConnections = false
    /// The only binding, open, not a monitor, taking every EtherType: it receives whole chains.
    var soleReceiver: Unmanaged<Binding>?
    /// The only binding, open: send completions whose source is its handle go straight to it.
    var soleBinding: Unmanaged<Binding>?
    var soleBindingSource = SourceHandle.none
}

extension Adapter {
    /// Brings `fast` in line with the properties it mirrors (their observers call this).
    func refreshFastPath() {
        let f = fast
        f.pointee.delivering = state == .running && !isSurpriseRemoved
        f.pointee.sourceHandle = sourceHandle
        f.pointee.linkDown = !linkState.up
        f.pointee.watchReturns = state == .pausing || pendingFree != nil
        f.pointee.softwareFiltering = !softwareFilters.isEmpty
        f.pointee.lingering = lingering != nil
        f.pointee.hasVirtualConnections = !vcForQueue.isEmpty
        if bindings.count == 1, let b = bindings.first, b.isOpen {
            f.pointee.soleBinding = Unmanaged.passUnretained(b)
            f.pointee.soleBindingSource = b.sourceHandle
            f.pointee.soleReceiver = !b.isMonitor && b.frameTypes.isEmpty ? Unmanaged.passUnretained(b) : nil
        } else {
            f.pointee.soleBinding = nil
            f.pointee.soleBindingSource = .none
            f.pointee.soleReceiver = nil
        }
    }
}
