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
    unowned(unsafe) var input: Binding?
    unowned(unsafe) var output: Binding?
    var inputSource: SourceHandle = .none
    private(set) var forwarded: UInt64 = 0
    private(set) var failed: UInt64 = 0

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        guard let output, binding === input else {
            binding.returnNetBufferLists(chain)
            return
        }
        forwarded &+= UInt64(count)
        output.send(chain)
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        guard let input else {
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
        input.returnNetBufferLists(chain)
    }
}
