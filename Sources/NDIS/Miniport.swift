/// A miniport driver: what NDIS calls through MiniportInitializeEx, MiniportHaltEx, MiniportPause,
/// MiniportRestart, MiniportOidRequest, MiniportReturnNetBufferLists and MiniportSendNetBufferLists.
///
/// The adapter calls these from one control context at a time (requests are serialized) and from the
/// datapath thread (`poll`, `returnNetBufferLists`, `sendNetBufferLists`). Calls are per batch.
public protocol MiniportDriver: AnyObject {
    /// MiniportInitializeEx: reset and bring up the hardware, allocate the default queue's shared
    /// memory and NBL pools through `handle`, and describe the adapter.
    func initialize(_ handle: MiniportHandle) throws(NDISError) -> MiniportAttributes
    /// MiniportRestart: start indicating and sending.
    func restart() throws(NDISError)
    /// MiniportPause: stop indicating new receives and complete pending sends. Cannot fail.
    func pause()
    /// MiniportHaltEx: stop the hardware and free everything, the default queue's shared memory included.
    func halt()
    /// A validated control request (the framework has checked state, ids and ownership).
    func handleRequest(_ request: MiniportRequest) throws(NDISError) -> MiniportResponse
    /// MiniportReturnNetBufferLists: NBLs come back, in any order and any mix of earlier indications.
    func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags)
    /// MiniportSendNetBufferLists: complete each NBL later through `MiniportHandle.sendComplete`.
    func sendNetBufferLists(_ chain: consuming NetBufferListChain, flags: SendFlags)
    /// Does receive and transmit-completion work; returns the number of frames handled.
    func poll(budget: Int) -> Int
    /// MiniportDevicePnPEventNotify(NdisDevicePnPEventSurpriseRemoved): the device is gone.
    func surpriseRemoved()
    /// Stops and joins the miniport's datapath worker threads (halt calls it first, holding no lane).
    func stopWorkers()
    /// The receive filters the framework runs in software changed (set or cleared): a miniport
    /// without hardware queues programs its device's own MAC/VLAN filters from them, so the device
    /// drops what no queue wants. A control call (requests are serialized).
    func softwareFiltersChanged(_ filters: [ReceiveFilter])
}

extension MiniportDriver {
    public func surpriseRemoved() {}
    public func stopWorkers() {}
    public func softwareFiltersChanged(_ filters: [ReceiveFilter]) {}
}

/// What a miniport calls into NDIS with (the NdisMiniportHandle).
///
/// A small struct holding the adapter without reference counting; valid from `initialize` until `halt` returns.
public struct MiniportHandle {
    let adapterReference: Unmanaged<Adapter>
    var adapter: Adapter { adapterReference.takeUnretainedValue() }

    init(_ adapter: Adapter) { adapterReference = Unmanaged.passUnretained(adapter) }

    /// The adapter's SourceHandle: set it on every NBL you indicate.
    public var sourceHandle: SourceHandle { adapter.sourceHandle }
    public var adapterName: String { adapter.name }

    /// NdisAllocateSharedMemory.
    /// - Parameters:
    ///   - queue: the queue the memory is for; a non-default queue only after its allocation is complete.
    ///   - length: bytes.
    ///   - usage: what the memory is for.
    ///   - flags: `.contiguous` for one IOVA range.
    ///   - node: preferred NUMA node, nil for any.
    /// - Throws: `NDISError.invalidState` when the queue's state does not allow it, `.resources` when the provider fails.
    public func allocateSharedMemory(queue: ReceiveQueueID, length: Int, usage: SharedMemoryUsage,
                                     flags: SharedMemoryFlags = [], node: Int? = nil) throws(NDISError) -> SharedMemory {
        try adapter.allocateSharedMemory(queue: queue, length: length, usage: usage, flags: flags, node: node)
    }

    /// NdisFreeSharedMemory. Refused while a queue or an outstanding NBL still uses the memory.
    public func freeSharedMemory(_ handle: AllocationHandle) throws(NDISError) {
        try adapter.freeSharedMemory(handle)
    }

    /// Makes an NBL pool the adapter keeps until halt; its NBLs belong to datapath lane `lane`.
    public func makeNetBufferListPool(capacity: Int, name: String, lane: Int = 0) -> NetBufferListPool {
        let pool = adapter.makePool(capacity: capacity, name: name)
        if lane != 0 { pool.setLane(lane) }
        return pool
    }

    // MARK: Per-queue workers (Adapter+Concurrency.swift)

    /// Turns datapath lanes on (one per worker) or off. Only while no worker runs: in `initialize`.
    public func setConcurrentDatapath(_ on: Bool) { adapter.setConcurrentDatapath(on) }
    /// A worker enters its lane for one batch.
    public func enterDatapathLane(_ lane: Int) { adapter.enterDatapathLane(lane) }
    /// A worker leaves its lane after a batch.
    public func leaveDatapathLane(_ lane: Int) { adapter.leaveDatapathLane(lane) }
    /// Accounts and recycles (through `returnNetBufferLists`) the NBLs returned to `lane`; inside the lane.
    @discardableResult
    public func drainReturns(lane: Int) -> Int { adapter.drainReturns(lane: lane) }
    /// True if NBLs wait in `lane`'s return stack.
    public func hasPendingReturns(lane: Int) -> Bool { adapter.hasPendingReturns(lane: lane) }
    /// Runs `body` while no worker is inside a batch (every lane held); outside any lane.
    public func withDatapathStopped<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try adapter.withDatapathStopped(body)
    }

    /// NdisMIndicateReceiveNetBufferLists: ownership passes to NDIS until the NBLs come back through
    /// `MiniportDriver.returnNetBufferLists`.
    public func indicateReceive(_ chain: consuming NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags = []) {
        // Called once per batch: no reference is taken on the adapter for the call.
        var pending = chain
        adapterReference._withUnsafeGuaranteedRef { adapter in
            var mine = NetBufferListChain()
            swap(&mine, &pending)
            adapter.indicateReceive(mine, queue: queue, flags: flags)
        }
    }

    /// NdisMIndicateReceiveNetBufferLists with NDIS_RECEIVE_FLAGS_RESOURCES: you keep ownership;
    /// protocols see the chain only during the call (or NDIS copies it and clears the flag).
    public func indicateReceiveWithResources(_ chain: borrowing NetBufferListChain, queue: ReceiveQueueID, flags: ReceiveFlags = []) {
        adapter.indicateReceiveWithResources(chain, queue: queue, flags: flags)
    }

    /// NdisMCoIndicateReceiveNetBufferLists: indicate on a virtual connection; the NBLs' SourceHandle
    /// is set to the VC's.
    public func coIndicateReceive(_ chain: consuming NetBufferListChain, vc: VirtualConnectionHandle, flags: ReceiveFlags = []) {
        adapter.coIndicateReceive(chain, vc: vc, flags: flags)
    }

    /// The VC that stands for a receive queue, if a binding opened one.
    public func virtualConnection(for queue: ReceiveQueueID) -> VirtualConnectionHandle? {
        adapter.vcForQueue[queue.rawValue]
    }

    /// NdisMSendNetBufferListsComplete: each NBL's status says how its send ended.
    public func sendComplete(_ chain: consuming NetBufferListChain) {
        var pending = chain
        adapterReference._withUnsafeGuaranteedRef { adapter in
            var mine = NetBufferListChain()
            swap(&mine, &pending)
            adapter.sendComplete(mine)
        }
    }

    /// NdisMIndicateStatusEx.
    public func indicateStatus(_ status: StatusIndication) {
        adapter.indicateStatus(status)
    }

    /// The device is gone (an all-ones register read): new sends and requests fail until halt.
    public func reportSurpriseRemoval() {
        adapter.surpriseRemove()
    }

    /// Current state of a queue (for the miniport's own checks).
    public func queueState(_ queue: ReceiveQueueID) -> ReceiveQueueState? {
        queue.isDefault ? .running : adapter.queues[queue.rawValue]?.state
    }
}
