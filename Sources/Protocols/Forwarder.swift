import NDIS

/// A protocol module that receives on one binding (a whole adapter, or the queues it allocated there)
/// and sends what it receives on another binding, a batch (one receive indication) per send.
///
/// Two ways to move a frame:
/// - **zero-copy** (`.zeroCopy`): the received NBL itself is sent. Its SourceHandle (the adapter or
///   VC that indicated it) is saved in `protocolReserved.0` before the send, which replaces it with
///   the output binding's; on send completion the saved handle is put back and the NBL is returned to
///   its source. This needs the output device to reach the input's buffers by DMA, which holds when
///   both adapters take shared memory from one IOMMU domain (one VFIO container, or one model IOMMU).
///   NBLs whose shared memory info is not valid (NDIS's RESOURCES copies) are copied instead.
/// - **copy** (`.copy`): each frame is copied into an NBL of the output binding's send pool and the
///   received NBL is returned at once. Right when the adapters have separate IOMMU domains.
///   When the send pool is dry the frame is dropped and counted.
///
/// Frames received on the output binding are given back untouched (the forwarder is one-way; open
/// a second forwarder for the other direction).
public final class Forwarder: ProtocolDriver {
    public enum Mode: String, Sendable {
        case zeroCopy = "zero-copy"
        case copy
    }

    public let mode: Mode
    /// Forward only frames of this receive queue (others are given back and counted in `ignored`).
    public var inputQueue: ReceiveQueueID?
    /// Send NBLs in the copy pool.
    public let sendPoolSize: Int
    /// Frames handed to the output binding.
    public private(set) var forwarded: UInt64 = 0
    /// Bytes handed to the output binding.
    public private(set) var forwardedBytes: UInt64 = 0
    /// Frames the output completed with success.
    public private(set) var completed: UInt64 = 0
    /// Frames the output completed with an error status.
    public private(set) var sendErrors: UInt64 = 0
    /// Frames dropped because the copy pool was dry.
    public private(set) var drops: UInt64 = 0
    /// Frames received on the output binding and given back.
    public private(set) var ignored: UInt64 = 0
    /// Zero-copy NBLs sent and not yet completed (their source still waits for them).
    public private(set) var inFlight = 0
    /// Completions whose saved SourceHandle was missing (a bug in a lower layer; counted).
    public private(set) var badRestores: UInt64 = 0

    public private(set) var input: Binding?
    public private(set) var output: Binding?
    var pool: SendPool?

    /// Marks protocolReserved.1 of NBLs this forwarder sent zero-copy.
    static let tag: UInt64 = 0x4657_445F_5A43_0001 // "FWD_ZC"

    /// Zero-copy when the output can DMA from the input's memory (both adapters in one DMA domain,
    /// e.g. two VFIO NICs of one process, which share one container), else copy.
    public static func mode(from input: Adapter, to output: Adapter) -> Mode {
        if let a = input.dmaDomain, a == output.dmaDomain { return .zeroCopy }
        return .copy
    }

    public init(mode: Mode = .zeroCopy, sendPoolSize: Int = 256) {
        self.mode = mode
        self.sendPoolSize = sendPoolSize
    }

    /// Makes `binding` the output (call after opening it on the output adapter); in copy mode this
    /// allocates the send pool in the output adapter's shared memory.
    public func attachOutput(_ binding: Binding) throws(NDISError) {
        output = binding
        if mode == .copy || pool == nil {
            pool = try binding.makeSendPool(count: sendPoolSize, bufferSize: 2048)
        }
    }

    /// Makes `binding` the input (the binding frames arrive on).
    public func attachInput(_ binding: Binding) { input = binding }

    // MARK: ProtocolDriver

    public func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        guard let output, binding !== output, input == nil || binding === input, inputQueue == nil || inputQueue == queue else {
            ignored &+= UInt64(count)
            binding.returnNetBufferLists(chain)
            return
        }
        forward(chain, output: output, source: binding)
    }

    public func coReceiveNetBufferLists(_ chain: consuming NetBufferListChain, vc: VirtualConnection, count: Int, flags: ReceiveFlags) {
        guard let output, inputQueue == nil || inputQueue == vc.queue else {
            ignored &+= UInt64(count)
            vc.binding.returnNetBufferLists(chain)
            return
        }
        forward(chain, output: output, source: vc.binding)
    }

    func forward(_ chain: consuming NetBufferListChain, output: Binding, source: Binding) {
        var chain = chain
        var toSend = NetBufferListChain()
        if mode == .zeroCopy {
            let tag = Forwarder.tag
            var bytes: UInt64 = 0
            // Frames the output cannot DMA from in place (no shared memory info) take the copy path.
            var direct = chain.removeAll { $0.sharedMemoryInfoValid }
            direct.forEach { nbl in
                nbl.protocolReserved = (UInt64(nbl.sourceHandle.rawValue), tag)
                bytes &+= UInt64(nbl.dataLength)
            }
            let n = direct.count
            inFlight += n
            forwarded &+= UInt64(n)
            forwardedBytes &+= bytes
            toSend.append(direct.removeAll { _ in true })
            _ = consume direct
        }
        if !chain.isEmpty {
            toSend.append(copyIntoPool(chain, source: source))
        } else {
            _ = consume chain
        }
        if !toSend.isEmpty { output.send(toSend) } else { _ = consume toSend }
    }

    /// Copies each frame into a send-pool NBL (keeping VLAN and checksum info) and returns the originals.
    func copyIntoPool(_ chain: consuming NetBufferListChain, source: Binding) -> NetBufferListChain {
        guard let pool else {
            drops &+= UInt64(chain.count)
            source.returnNetBufferLists(chain)
            return NetBufferListChain()
        }
        var copies = pool.allocate(count: chain.count)
        var bytes: UInt64 = 0
        var copied = 0
        var sent = NetBufferListChain()
        // Pair originals and copies in order; frames beyond the pool's supply are dropped.
        var originals = chain
        while !originals.isEmpty {
            let original = originals.popFirst()
            let copy = copies.popFirst()
            guard let src = original.first, let dst = copy.first else {
                drops &+= 1
                source.returnNetBufferLists(original)
                copies.append(copy)
                continue
            }
            var seg = dst.segment(0)
            let n = src.copyData(into: UnsafeMutableRawBufferPointer(start: seg.address, count: Int(seg.capacity)))
            seg.length = UInt32(n)
            dst.truncateSegments(to: 1)
            dst.setSegment(0, seg)
            dst.setData(offset: 0, length: n)
            var info = NetBufferListInfo()
            info.vlanPresent = src.info.vlanPresent
            info.vlanID = src.info.vlanID
            info.userPriority = src.info.userPriority
            dst.info = info
            dst.protocolReserved = (0, 0)
            bytes &+= UInt64(n)
            copied += 1
            sent.append(copy)
            source.returnNetBufferLists(original)
        }
        _ = consume originals
        if !copies.isEmpty { pool.pool.free(copies) } else { _ = consume copies }
        forwarded &+= UInt64(copied)
        forwardedBytes &+= bytes
        return sent
    }

    /// Stops a forward in the only safe order: the output side first, then the input side.
    ///
    /// Zero-copy sends the input's receive buffers themselves, so while the output NIC still holds
    /// sends the input must not free anything. Stopping (pausing, halting) the output completes or
    /// cancels every send it holds (a stuck ring's with REQUEST_ABORTED), which returns each
    /// borrowed NBL to the input; only then is the input stopped, with nothing of its memory left
    /// in the output's hands.
    /// - Returns: what each stop returned.
    public static func stop<Output, Input>(output stopOutput: () -> Output, input stopInput: () -> Input) -> (output: Output, input: Input) {
        let o = stopOutput()
        let i = stopInput()
        return (o, i)
    }

    public func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        var chain = chain
        var ok: UInt64 = 0, failed: UInt64 = 0
        chain.forEach { if $0.status == .success { ok &+= 1 } else { failed &+= 1 } }
        completed &+= ok
        sendErrors &+= failed
        let tag = Forwarder.tag
        // Ours, sent in place: restore the saved SourceHandle and return them to where they came from.
        let borrowed = chain.removeAll { $0.protocolReserved.1 == tag }
        if !borrowed.isEmpty {
            var bad: UInt64 = 0
            borrowed.forEach { nbl in
                let saved = SourceHandle(rawValue: UInt32(truncatingIfNeeded: nbl.protocolReserved.0))
                if saved == .none { bad &+= 1 }
                nbl.sourceHandle = saved
                nbl.protocolReserved = (0, 0)
                nbl.status = .success
            }
            badRestores &+= bad
            inFlight -= borrowed.count
            NDIS.returnNetBufferLists(borrowed)
        } else {
            _ = consume borrowed
        }
        if !chain.isEmpty { binding.freeSendNetBufferLists(chain) } else { _ = consume chain }
    }
}
