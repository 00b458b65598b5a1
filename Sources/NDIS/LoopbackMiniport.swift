/// A miniport with no device: frames are injected by the caller and sends are collected (or looped
/// back). Its "hardware" does MAC and VLAN filters into `hardwareQueues` queues, so the framework's
/// VMQ rules, software filters and ownership can be exercised without a NIC.
public final class LoopbackMiniport: MiniportDriver {
    public struct Configuration {
        public var macAddress = MACAddress(0x02, 0, 0, 0, 0, 1)
        public var hardwareQueues = 4
        public var buffersPerQueue = 64
        public var bufferSize = 2048
        public var backfill = 64
        public var lookaheadSplit = true
        /// Fields the emulated hardware filters on.
        public var hardwareFields: Set<FilterField> = [.macDestination, .vlanID]
        /// Loop sent frames back into the receive path.
        public var loopback = false
        /// Splits lookahead-split frames this many bytes before the requested lookahead size: a
        /// miniport that breaks the split rule, for the framework's check (tests only; 0: correct).
        public var lookaheadSplitShortfall = 0
        /// A broken miniport, for tests of the framework's guard: receive is on from initialize
        /// instead of from restart, so frames on the wire are indicated while the adapter is Paused.
        public var receivesBeforeRestart = false
        public init() {}
    }

    final class Queue {
        let id: ReceiveQueueID
        var params: ReceiveQueueParameters
        var memory: [AllocationHandle] = []
        var pool: NetBufferListPool?
        var free = NetBufferListChain()
        var batch = NetBufferListChain()
        var running = false
        var dmaStopped = false
        init(id: ReceiveQueueID, params: ReceiveQueueParameters) {
            self.id = id
            self.params = params
        }
        deinit {
            // Buffers the "hardware" still holds go back to their pool.
            if let pool {
                _ = pool.free(free.removeAll { _ in true })
                _ = pool.free(batch.removeAll { _ in true })
            }
        }
    }

    public let configuration: Configuration
    var handle: MiniportHandle?
    var queues: [UInt16: Queue] = [:]
    var hwFilters: [ReceiveFilter] = []
    var packetFilter: PacketFilter = [.directed, .broadcast, .multicast]
    /// Frames waiting to be "received" by poll.
    var pending: [[UInt8]] = []
    /// Frames sent, in order.
    public private(set) var transmitted: [[UInt8]] = []
    public private(set) var statistics = Statistics()
    /// Frames the "hardware" dropped because the target queue had no free buffer.
    public private(set) var hardwareDrops = 0
    /// When true, a queue that runs out of buffers indicates with RESOURCES from a reserve instead of dropping.
    public var useResourcesWhenLow = true
    public private(set) var resourcesIndications = 0
    public private(set) var halted = false
    public private(set) var requestLog: [String] = []

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    // MARK: MiniportDriver

    public func initialize(_ handle: MiniportHandle) throws(NDISError) -> MiniportAttributes {
        self.handle = handle
        // The default queue's memory is allocated at initialize (and freed at halt).
        try setUpBuffers(queue: .default, params: ReceiveQueueParameters(numberOfBuffers: configuration.buffersPerQueue))
        queues[0]?.running = true
        let caps = ReceiveFilterCapabilities(
            numberOfQueues: configuration.hardwareQueues, maxMACHeaderFilters: 32, maxFiltersPerQueue: 8,
            supportedTests: [.equal], supportedFields: configuration.hardwareFields,
            supportedFieldCombinations: [[.macDestination], [.vlanID], [.macDestination, .vlanID]],
            lookaheadSplitSupported: configuration.lookaheadSplit, minLookaheadSplitSize: 14, maxLookaheadSplitSize: 256,
            maxBuffersPerQueue: 1024)
        return MiniportAttributes(permanentAddress: configuration.macAddress, currentAddress: configuration.macAddress,
                                  dataBackfillSize: configuration.backfill, receiveFilterCapabilities: caps,
                                  supportsRSS: false, description: "loopback miniport")
    }

    func setUpBuffers(queue: ReceiveQueueID, params: ReceiveQueueParameters) throws(NDISError) {
        guard let handle else { return }
        let split = params.flags.contains(.lookaheadSplitRequired)
        let n = params.numberOfBuffers
        let size = configuration.bufferSize
        let q = queues[queue.rawValue] ?? Queue(id: queue, params: params)
        let data = try handle.allocateSharedMemory(queue: queue, length: n * size, usage: split ? .receivePostLookahead : .receive)
        q.memory.append(data.allocationHandle)
        var header: SharedMemory?
        if split {
            let h = try handle.allocateSharedMemory(queue: queue, length: n * 256, usage: .receiveLookahead)
            q.memory.append(h.allocationHandle)
            header = h
        }
        let pool = handle.makeNetBufferListPool(capacity: n, name: "loopback \(queue)")
        let backfill = configuration.backfill
        for i in 0..<n {
            pool.prepare(i) { nbl in
                let offset = i * size
                if let header {
                    nbl.setLayout(segment0: BufferSegment(address: header.unsafeVirtualAddress + i * 256, iova: header.region.iova(atOffset: i * 256) ?? 0,
                                                          length: 0, capacity: 256, sharedMemory: header.sharedMemoryHandle,
                                                          sharedMemoryOffset: UInt32(i * 256), cookie: UInt32(i)),
                                  dataOffset: 0, dataLength: 0, sharedMemoryInfoValid: true)
                    // The post-lookahead buffer keeps backfill room for the lookahead bytes.
                    nbl.appendSegment(BufferSegment(address: data.unsafeVirtualAddress + offset + params.lookaheadSize,
                                                    iova: data.region.iova(atOffset: offset + params.lookaheadSize) ?? 0,
                                                    length: 0, capacity: UInt32(size - params.lookaheadSize), headroom: UInt32(params.lookaheadSize),
                                                    sharedMemory: data.sharedMemoryHandle, sharedMemoryOffset: UInt32(offset + params.lookaheadSize),
                                                    cookie: UInt32(i)))
                } else {
                    nbl.setLayout(segment0: BufferSegment(address: data.unsafeVirtualAddress + offset, iova: data.region.iova(atOffset: offset) ?? 0,
                                                          length: 0, capacity: UInt32(size), sharedMemory: data.sharedMemoryHandle,
                                                          sharedMemoryOffset: UInt32(offset), cookie: UInt32(i)),
                                  dataOffset: backfill, dataLength: 0, sharedMemoryInfoValid: true)
                }
            }
        }
        q.free = pool.allocate(count: n)
        q.pool = pool
        queues[queue.rawValue] = q
    }

    /// Receive is enabled between restart and pause only (NDIS's order); frames that arrive while it
    /// is off wait on the "wire" (as QEMU holds them) and are received after restart.
    var receiving = false

    public func restart() throws(NDISError) { receiving = true }
    public func pause() { receiving = false }

    public func halt() {
        halted = true
        guard let handle else { return }
        for (_, q) in queues {
            if let pool = q.pool { _ = pool.free(q.free.removeAll { _ in true }) }
            for m in q.memory { try? handle.freeSharedMemory(m) }
            q.memory.removeAll()
        }
        queues.removeAll()
    }

    public func handleRequest(_ request: MiniportRequest) throws(NDISError) -> MiniportResponse {
        requestLog.append(String(describing: request).prefix(40).description)
        switch request {
        case let .allocateQueue(id, params):
            queues[id.rawValue] = Queue(id: id, params: params)
        case let .queueAllocationComplete(id):
            guard let q = queues[id.rawValue] else { throw .unknownQueue(id) }
            try setUpBuffers(queue: id, params: q.params)
            queues[id.rawValue]?.running = true
        case let .setFilter(f):
            guard f.parameters.tests.allSatisfy({ configuration.hardwareFields.contains($0.field) }) else {
                throw .notSupported("loopback hardware cannot filter on these fields")
            }
            hwFilters.append(f)
        case let .clearFilter(f):
            hwFilters.removeAll { $0.id == f.id }
        case let .stopQueueDMA(id):
            queues[id.rawValue]?.running = false
            queues[id.rawValue]?.dmaStopped = true
        case let .freeQueueResources(id):
            guard let q = queues[id.rawValue], let handle else { throw .unknownQueue(id) }
            if let pool = q.pool {
                let all = q.free.removeAll { _ in true }
                _ = pool.free(all)
                if pool.outstanding > 0 { throw .invalidState("\(pool.outstanding) NBLs of \(id) are not back") }
            }
            for m in q.memory { try handle.freeSharedMemory(m) }
            q.memory.removeAll()
            queues.removeValue(forKey: id.rawValue)
        case .setQueueParameters(let id, let p):
            queues[id.rawValue]?.params = p
        case let .setPacketFilter(f):
            packetFilter = f
        case .setMulticastList, .setReceiveScale:
            break
        case .queryStatistics:
            var r = StatisticsReport(global: statistics)
            r.global.receiveDrops = UInt64(hardwareDrops)
            return .statistics(r)
        case .queryLinkState:
            return .linkState(LinkState(up: true, speedBitsPerSecond: 10_000_000_000))
        }
        return .done
    }

    public func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        var chain = chain
        while !chain.isEmpty {
            var one = chain.popFirst()
            let q = one.first!.info.receiveQueueID
            // Software-filtered frames come from the default queue's buffers.
            let owner = queues[q]?.pool?.index(of: one.first!) != nil ? q : 0
            if let q = queues[owner] {
                one.first!.info = NetBufferListInfo()
                q.free.append(one)
            } else {
                _ = one.takeAllForTesting()
            }
        }
    }

    public func sendNetBufferLists(_ chain: consuming NetBufferListChain, flags: SendFlags) {
        chain.forEach { nbl in
            let bytes = nbl.dataBytes()
            transmitted.append(bytes)
            statistics.transmittedFrames += 1
            statistics.transmittedBytes += UInt64(bytes.count)
            if configuration.loopback { pending.append(bytes) }
            nbl.status = .success
        }
        handle?.sendComplete(chain)
    }

    public func poll(budget: Int) -> Int {
        guard let handle else { return 0 }
        guard receiving || configuration.receivesBeforeRestart else { return 0 }
        var done = 0
        while done < budget && !pending.isEmpty {
            let frame = pending.removeFirst()
            done += 1
            let target = classify(frame)
            guard let q = queues[target], q.running else { hardwareDrops += 1; continue }
            var one = q.free.popFirst()
            guard let nbl = one.first else {
                _ = one.takeAllForTesting()
                if useResourcesWhenLow {
                    // Low on buffers: indicate from a reserve with RESOURCES; ownership returns at once.
                    // Frames of one queue stay in order: what is batched goes first.
                    if !q.batch.isEmpty {
                        handle.indicateReceive(q.batch.removeAll { _ in true }, queue: ReceiveQueueID(target), flags: .sharedMemoryInfoValid)
                    }
                    resourcesIndications += 1
                    indicateWithResources(frame, queue: target)
                } else {
                    hardwareDrops += 1
                }
                continue
            }
            nbl.info.receiveQueueID = target
            fill(nbl, frame)
            statistics.receivedFrames += 1
            statistics.receivedBytes += UInt64(frame.count)
            q.batch.append(one)
        }
        for key in queues.keys.sorted() {
            guard let q = queues[key], !q.batch.isEmpty else { continue }
            let chain = q.batch.removeAll { _ in true }
            handle.indicateReceive(chain, queue: ReceiveQueueID(key), flags: .sharedMemoryInfoValid)
        }
        return done
    }

    func indicateWithResources(_ frame: [UInt8], queue: UInt16) {
        guard let handle else { return }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: configuration.bufferSize, alignment: 64)
        defer { scratch.deallocate() }
        let pool = NetBufferListPool(capacity: 1, name: "reserve")
        var chain = pool.allocate(count: 1)
        let nbl = chain.first!
        nbl.setLayout(segment0: BufferSegment(address: scratch, iova: 0, length: UInt32(frame.count), capacity: UInt32(configuration.bufferSize)),
                      dataOffset: 0, dataLength: frame.count, sharedMemoryInfoValid: false)
        frame.withUnsafeBytes { scratch.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        handle.indicateReceiveWithResources(chain, queue: ReceiveQueueID(queue))
        _ = pool.free(chain.removeAll { _ in true })
        _ = consume chain
    }

    func fill(_ nbl: NetBufferList, _ frame: [UInt8]) {
        let n = nbl.segmentCount
        if n >= 2 {
            // Lookahead split: header part into segment 0, the rest into segment 1.
            let q = queues[nbl.info.receiveQueueID]
            let look = max(0, min(frame.count, (q?.params.lookaheadSize ?? 64) - configuration.lookaheadSplitShortfall))
            var s0 = nbl.segment(0), s1 = nbl.segment(1)
            frame.withUnsafeBytes { src in
                s0.address!.copyMemory(from: src.baseAddress!, byteCount: look)
                s1.address!.copyMemory(from: src.baseAddress! + look, byteCount: frame.count - look)
            }
            s0.length = UInt32(look)
            s1.length = UInt32(frame.count - look)
            nbl.setSegment(0, s0)
            nbl.setSegment(1, s1)
            nbl.setData(offset: 0, length: frame.count)
        } else {
            var s0 = nbl.segment(0)
            let backfill = configuration.backfill
            frame.withUnsafeBytes { src in (s0.address! + backfill).copyMemory(from: src.baseAddress!, byteCount: frame.count) }
            s0.length = UInt32(backfill + frame.count)
            nbl.setSegment(0, s0)
            nbl.setData(offset: backfill, length: frame.count)
        }
    }

    /// Which queue the emulated hardware picks: the first hardware filter that matches, else 0.
    func classify(_ frame: [UInt8]) -> UInt16 {
        let pool = NetBufferListPool(capacity: 1, name: "classify")
        var chain = pool.allocate(count: 1)
        var result: UInt16 = 0
        frame.withUnsafeBytes { raw in
            let nbl = chain.first!
            nbl.setLayout(segment0: BufferSegment(address: UnsafeMutableRawPointer(mutating: raw.baseAddress), iova: 0,
                                                  length: UInt32(frame.count), capacity: UInt32(frame.count)),
                          dataOffset: 0, dataLength: frame.count, sharedMemoryInfoValid: false)
            if let header = ParsedFrameHeader(nbl) {
                for f in hwFilters.sorted(by: { $0.id < $1.id }) where f.parameters.matches(header) {
                    result = f.queue.rawValue
                    break
                }
            }
        }
        _ = pool.free(chain.removeAll { _ in true })
        _ = consume chain
        return result
    }

    // MARK: Test hooks

    /// Puts a frame on the "wire"; the next poll receives it.
    public func inject(_ frame: [UInt8]) { pending.append(frame) }
    public func takeTransmitted() -> [[UInt8]] { defer { transmitted.removeAll() } ; return transmitted }
    /// Free receive buffers of a queue (hardware ring room).
    public func freeBuffers(queue: ReceiveQueueID) -> Int { queues[queue.rawValue]?.free.count ?? 0 }
}

extension NetBufferListChain {
    /// Drops the chain without the leak check. Only for an empty chain or NBLs already accounted elsewhere.
    consuming func takeAllForTesting() -> Int { let (_, _, n) = takeAll(); return n }
}
