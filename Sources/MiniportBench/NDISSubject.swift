import NDIS

/// The NDIS core alone: a ``NullMiniport`` whose "hardware" completes everything at once, with the
/// benchmark's protocol modules on top. Its figures are the framework's own per-packet cost.
public final class NDISSubject: BenchSubject {
    public let name = "ndis"
    public let summary = "NDIS core with a null miniport (frames ready at once, sends complete at once): the framework's own share"
    public let hasDevice = false
    let ringSize: Int

    public init(ringSize: Int = 512) { self.ringSize = ringSize }

    public func makeWorkload(mode: BenchMode, batch: Int, part: BenchPart) throws(BenchError) -> any BenchWorkload {
        switch mode {
        case .receive: return try NDISReceive(batch: batch, ringSize: ringSize)
        case .transmit: return try NDISTransmit(batch: batch, ringSize: ringSize)
        case .forward: return try NDISForward(batch: batch, ringSize: ringSize)
        }
    }

    /// A 60-byte UDP/IPv4 frame (the 64-byte minimum on the wire with the FCS).
    static let frame: [UInt8] = BenchFrame.udp64

    static func makeAdapter(_ name: String, ringSize: Int) throws(BenchError) -> (Adapter, NullMiniport) {
        let miniport = NullMiniport(ringSize: ringSize, frame: frame)
        return (try BenchAdapters.start(name, miniport: miniport), miniport)
    }

    static func finish(_ adapters: [Adapter]) throws(BenchError) {
        try BenchAdapters.haltClean(adapters)
    }
}

final class NDISReceive: BenchWorkload {
    let adapter: Adapter
    let miniport: NullMiniport
    let consumer = ReturningProtocol()
    let batch: Int

    init(batch: Int, ringSize: Int) throws(BenchError) {
        self.batch = batch
        (adapter, miniport) = try NDISSubject.makeAdapter("ndis-rx", ringSize: ringSize)
        do { _ = try adapter.openBinding(consumer) } catch { throw .setup("binding: \(error)") }
        miniport.arrivalsPerPoll = batch
    }

    func runBatch() -> Int { adapter.poll(budget: batch) }

    func finish() throws(BenchError) {
        guard consumer.received == miniport.received else { throw .setup("receive: \(miniport.received) indicated, \(consumer.received) reached the protocol") }
        try NDISSubject.finish([adapter])
    }
}

final class NDISTransmit: BenchWorkload {
    let adapter: Adapter
    let miniport: NullMiniport
    let producer = SendingProtocol()
    let binding: Binding
    let pool: SendPool
    let batch: Int
    private(set) var submitted: UInt64 = 0

    init(batch: Int, ringSize: Int) throws(BenchError) {
        self.batch = batch
        (adapter, miniport) = try NDISSubject.makeAdapter("ndis-tx", ringSize: ringSize)
        do { binding = try adapter.openBinding(producer) } catch { throw .setup("binding: \(error)") }
        pool = try SendingProtocol.makeFilledPool(binding, count: ringSize, frame: NDISSubject.frame)
    }

    func runBatch() -> Int {
        let chain = pool.allocate(count: batch)
        let n = chain.count
        binding.send(chain)
        _ = adapter.poll(budget: batch)
        submitted &+= UInt64(n)
        return n
    }

    func finish() throws(BenchError) {
        guard producer.completed == submitted, producer.failed == 0 else {
            throw .setup("transmit: \(submitted) sent, \(producer.completed) completed, \(producer.failed) failed")
        }
        try NDISSubject.finish([adapter])
    }
}

final class NDISForward: BenchWorkload {
    let input: Adapter, output: Adapter
    let inputMiniport: NullMiniport, outputMiniport: NullMiniport
    let forwarder = ForwardingProtocol()
    let batch: Int

    init(batch: Int, ringSize: Int) throws(BenchError) {
        self.batch = batch
        (input, inputMiniport) = try NDISSubject.makeAdapter("ndis-fwd-in", ringSize: ringSize)
        (output, outputMiniport) = try NDISSubject.makeAdapter("ndis-fwd-out", ringSize: ringSize)
        do {
            forwarder.input = try input.openBinding(forwarder)
            forwarder.output = try output.openBinding(forwarder)
        } catch { throw .setup("binding: \(error)") }
        forwarder.inputSource = input.sourceHandle
        inputMiniport.arrivalsPerPoll = batch
    }

    func runBatch() -> Int {
        let n = input.poll(budget: batch)
        _ = output.poll(budget: batch)
        return n
    }

    func finish() throws(BenchError) {
        guard forwarder.failed == 0, outputMiniport.completed == forwarder.forwarded else {
            throw .setup("forward: \(forwarder.forwarded) forwarded, \(outputMiniport.completed) completed, \(forwarder.failed) failed")
        }
        try NDISSubject.finish([input, output])
    }
}

/// Frames the benchmarks use.
public enum BenchFrame {
    /// 60 bytes: Ethernet (to 02:00:00:00:00:42 from 02:00:00:00:00:99), IPv4, UDP 1234 → 5678, 18
    /// bytes of payload. 64 bytes on the wire with the FCS: the size line-rate figures are quoted for.
    public static let udp64: [UInt8] = {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 0x42, 0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]
        // IPv4: version/IHL, TOS, total length 46, id, flags/fragment, TTL 64, UDP, checksum, addresses.
        var ip: [UInt8] = [0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        ip[10] = UInt8(checksum >> 8)
        ip[11] = UInt8(checksum & 0xFF)
        f += ip
        f += [0x04, 0xD2, 0x16, 0x2E, 0, 26, 0, 0]      // UDP, length 26, checksum 0 (none)
        f += [UInt8](repeating: 0x5A, count: 18)
        return f
    }()
}
