import NDIS

/// The NDIS core's LoopbackMiniport (a test miniport: frames are `[UInt8]` arrays injected by the
/// caller, sends are collected as arrays). Not built for speed; its figures show what the counters
/// catch when a datapath allocates.
public final class LoopbackSubject: BenchSubject {
    public let name = "loopback"
    public let summary = "NDIS LoopbackMiniport (frames injected as arrays, sends collected): a test miniport, not a fast path"
    public let hasDevice = false

    public init() {}

    public func makeWorkload(mode: BenchMode, batch: Int, part: BenchPart) throws(BenchError) -> any BenchWorkload {
        try LoopbackWorkload(mode: mode, batch: batch)
    }

    static func makeAdapter(_ name: String) throws(BenchError) -> (Adapter, LoopbackMiniport) {
        var config = LoopbackMiniport.Configuration()
        config.buffersPerQueue = 256
        config.lookaheadSplit = false
        let miniport = LoopbackMiniport(config)
        return (try BenchAdapters.start(name, miniport: miniport), miniport)
    }
}

final class LoopbackWorkload: BenchWorkload {
    let mode: BenchMode
    let batch: Int
    let input: Adapter, inputMiniport: LoopbackMiniport
    var output: Adapter?, outputMiniport: LoopbackMiniport?
    let consumer = ReturningProtocol()
    let producer = SendingProtocol()
    let forwarder = ForwardingProtocol()
    var binding: Binding?
    var pool: SendPool?
    let frame = BenchFrame.udp64

    init(mode: BenchMode, batch: Int) throws(BenchError) {
        self.mode = mode
        self.batch = batch
        (input, inputMiniport) = try LoopbackSubject.makeAdapter("loopback-\(mode.rawValue)")
        do {
            switch mode {
            case .receive:
                _ = try input.openBinding(consumer)
            case .transmit:
                let b = try input.openBinding(producer)
                binding = b
                pool = try SendingProtocol.makeFilledPool(b, count: 256, frame: frame)
            case .forward:
                let (out, outMiniport) = try LoopbackSubject.makeAdapter("loopback-forward-out")
                output = out
                outputMiniport = outMiniport
                forwarder.input = try input.openBinding(forwarder)
                forwarder.output = try out.openBinding(forwarder)
                forwarder.inputSource = input.sourceHandle
            }
        } catch let error as BenchError { throw error } catch { throw .setup("binding: \(error)") }
    }

    func runBatch() -> Int {
        switch mode {
        case .receive, .forward:
            for _ in 0..<batch { inputMiniport.inject(frame) }
            let n = input.poll(budget: batch)
            if let output, let outputMiniport {
                _ = output.poll(budget: batch)
                _ = outputMiniport.takeTransmitted()
            }
            return n
        case .transmit:
            guard let pool, let binding else { return 0 }
            let chain = pool.allocate(count: batch)
            let n = chain.count
            binding.send(chain)
            _ = inputMiniport.takeTransmitted()
            return n
        }
    }

    func finish() throws(BenchError) {
        try BenchAdapters.haltClean([input] + (output.map { [$0] } ?? []))
    }
}
