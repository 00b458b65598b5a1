import NDIS

/// A miniport without a device whose "hardware" completes everything at once: each poll receives a
/// batch of ready frames from its free list, and sends complete on the next poll. What the NDIS core
/// costs per packet (indicate, account, deliver, return, send, complete) is all that is left.
final class NullMiniport: MiniportDriver {
    static let bufferSize = 2048
    let ringSize: Int
    let frame: [UInt8]
    var handle: MiniportHandle?
    var pool: NetBufferListPool?
    var memory: SharedMemory?
    /// Receive buffers the "hardware" holds (refilled by returns).
    var free = NetBufferListChain()
    /// Sends the "hardware" completes on the next poll.
    var sent = NetBufferListChain()
    /// Frames that "arrive" per poll (0: receive off).
    var arrivalsPerPoll = 0
    private(set) var received: UInt64 = 0
    private(set) var completed: UInt64 = 0

    init(ringSize: Int, frame: [UInt8]) {
        self.ringSize = ringSize
        self.frame = frame
    }

    func initialize(_ handle: MiniportHandle) throws(NDISError) -> MiniportAttributes {
        self.handle = handle
        let size = NullMiniport.bufferSize
        let shm = try handle.allocateSharedMemory(queue: .default, length: ringSize * size, usage: .receive)
        memory = shm
        let pool = handle.makeNetBufferListPool(capacity: ringSize, name: "null miniport receive")
        let base = shm.unsafeVirtualAddress
        for i in 0..<ringSize {
            let address = base + i * size
            // Safety: buffer i is [i*size, (i+1)*size) of the block; the frame is shorter than a buffer.
            frame.withUnsafeBytes { address.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
            pool.prepare(i) { nbl in
                nbl.setLayout(segment0: BufferSegment(address: address, iova: shm.region.iova(atOffset: i * size) ?? 0,
                                                      length: UInt32(frame.count), capacity: UInt32(size),
                                                      sharedMemory: shm.sharedMemoryHandle, sharedMemoryOffset: UInt32(i * size),
                                                      cookie: UInt32(i)),
                              dataOffset: 0, dataLength: frame.count, sharedMemoryInfoValid: true)
            }
        }
        free = pool.allocate(count: ringSize)
        self.pool = pool
        let mac = MACAddress(0x02, 0, 0, 0, 0, 0x42)
        return MiniportAttributes(permanentAddress: mac, currentAddress: mac, dataBackfillSize: 0,
                                  receiveFilterCapabilities: .none, supportsRSS: false, description: "null miniport (benchmark)")
    }

    func restart() throws(NDISError) {}
    func pause() {}

    func halt() {
        if let pool { _ = pool.free(free.removeAll { _ in true }) }
        if let memory, let handle { try? handle.freeSharedMemory(memory.allocationHandle) }
        memory = nil
    }

    func handleRequest(_ request: MiniportRequest) throws(NDISError) -> MiniportResponse {
        switch request {
        case .queryLinkState: return .linkState(LinkState(up: true, speedBitsPerSecond: 10_000_000_000))
        default: throw .notSupported("the null miniport has no filters or queues")
        }
    }

    func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        free.append(chain)
    }

    func sendNetBufferLists(_ chain: consuming NetBufferListChain, flags: SendFlags) {
        sent.append(chain)
    }

    func poll(budget: Int) -> Int {
        guard let handle else { return 0 }
        var done = 0
        if !sent.isEmpty {
            var finished = NetBufferListChain()
            swap(&finished, &sent)
            let n = finished.count
            finished.forEach { $0.status = .success }
            completed &+= UInt64(n)
            done += n
            handle.sendComplete(finished)
        }
        if arrivalsPerPoll > 0 {
            var batch = NetBufferListChain()
            var n = 0
            let limit = min(arrivalsPerPoll, budget)
            while n < limit {
                var one = free.popFirst()
                guard let nbl = one.first else { _ = one.removeAll { _ in true }; break }
                // The "device" wrote the frame length: what a descriptor write-back would say.
                nbl.setData(offset: 0, length: frame.count)
                batch.append(one)
                n += 1
            }
            received &+= UInt64(n)
            done += n
            if n > 0 { handle.indicateReceive(batch, queue: .default, flags: .sharedMemoryInfoValid) } else { _ = batch.removeAll { _ in true } }
        }
        return done
    }
}
