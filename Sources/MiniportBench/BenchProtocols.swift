import NDIS

/// A protocol module that gives every indication straight back (the receive benchmark's consumer).
final class ReturningProtocol: ProtocolDriver {
    private(set) var received: UInt64 = 0

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        received &+= UInt64(count)
        binding.returnNetBufferLists(chain)
    }
}

/// A protocol module that only sends (the transmit benchmark's producer); completions go back to
/// its send pool.
final class SendingProtocol: ProtocolDriver {
    private(set) var completed: UInt64 = 0
    private(set) var failed: UInt64 = 0

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        binding.returnNetBufferLists(chain)
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        var bad: UInt64 = 0
        chain.forEach { if $0.status != .success { bad &+= 1 } }
        completed &+= UInt64(chain.count)
        failed &+= bad
        binding.freeSendNetBufferLists(chain)
    }

    /// Makes a send pool whose NBLs all hold `frame`, ready to send again and again.
    static func makeFilledPool(_ binding: Binding, count: Int, frame: [UInt8]) throws(BenchError) -> SendPool {
        let pool: SendPool
        do { pool = try binding.makeSendPool(count: count, bufferSize: 2048) } catch { throw .setup("send pool: \(error)") }
        let all = pool.allocate(count: count)
        frame.withUnsafeBytes { bytes in all.forEach { SendPool.fill($0, with: bytes) } }
        _ = pool.pool.free(all)
        return pool
    }
}

/// A zero-copy forwarder: what arrives on the input binding is sent on the output binding; send
/// completions restore the input adapter's SourceHandle and return the NBLs to it.
final class ForwardingProtocol: ProtocolDriver {
    /// The bindings, unretained (their adapters keep them): calls through them take no reference.
    var inputReference: Unmanaged<Binding>?
    var outputReference: Unmanaged<Binding>?
    var input: Binding? {
        get { inputReference?.takeUnretainedValue() }
        set { inputReference = newValue.map { Unmanaged.passUnretained($0) } }
    }
    var output: Binding? {
        get { outputReference?.takeUnretainedValue() }
        set { outputReference = newValue.map { Unmanaged.passUnretained($0) } }
    }
    var inputSource: SourceHandle = .none
    private(set) var forwarded: UInt64 = 0
    private(set) var failed: UInt64 = 0

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        guard let output = outputReference, let input = inputReference, binding === input.takeUnretainedValue() else {
            binding.returnNetBufferLists(chain)
            return
        }
        forwarded &+= UInt64(count)
        var pending = chain
        output._withUnsafeGuaranteedRef { out in
            var mine = NetBufferListChain()
            swap(&mine, &pending)
            out.send(mine)
        }
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        guard let input = inputReference else {
            NDIS.returnNetBufferLists(chain)
            return
        }
        let source = inputSource
        var bad: UInt64 = 0
        chain.forEach { nbl in
            if nbl.status != .success { bad &+= 1 }
            nbl.sourceHandle = source
        }
        failed &+= bad
        var pending = chain
        input._withUnsafeGuaranteedRef { b in
            var mine = NetBufferListChain()
            swap(&mine, &pending)
            b.returnNetBufferLists(mine)
        }
    }
}

/// A forwarder for two adapters that do not share a DMA space (two VFIO containers): each received
/// frame is copied into a send-pool buffer of the output adapter and the received NBLs are returned
/// at once. Frames that find no free send buffer are counted as dropped.
final class CopyingForwarder: ProtocolDriver {
    unowned(unsafe) var input: Binding?
    unowned(unsafe) var output: Binding?
    var pool: SendPool?
    private(set) var forwarded: UInt64 = 0
    private(set) var dropped: UInt64 = 0
    private(set) var completed: UInt64 = 0
    private(set) var failed: UInt64 = 0

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        guard let output, let pool, binding === input else {
            binding.returnNetBufferLists(chain)
            return
        }
        let copies = pool.allocate(count: count)
        var sent = 0
        // Pair received NBLs with send buffers in order.
        var received = chain
        var back = NetBufferListChain()
        let pairs = min(copies.count, received.count)
        var i = 0
        copies.forEach { copy in
            guard i < pairs else { return }
            let one = received.popFirst()
            if let nbl = one.first {
                var seg = copy.segment(0)
                let n = nbl.copyData(into: UnsafeMutableRawBufferPointer(start: seg.address, count: Int(seg.capacity)))
                seg.length = UInt32(n)
                copy.truncateSegments(to: 1)
                copy.setSegment(0, seg)
                copy.setData(offset: 0, length: n)
                sent += 1
            }
            back.append(one)
            i += 1
        }
        dropped &+= UInt64(received.count)
        back.append(received)
        binding.returnNetBufferLists(back)
        forwarded &+= UInt64(sent)
        output.send(copies)
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        var bad: UInt64 = 0
        chain.forEach { if $0.status != .success { bad &+= 1 } }
        completed &+= UInt64(chain.count)
        failed &+= bad
        binding.freeSendNetBufferLists(chain)
    }
}
