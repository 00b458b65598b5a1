import NDIS

/// Time-based figures on running adapters (bare metal: `miniport bench --device`): how many packets
/// moved in a fixed time, and the cycles spent per packet by the polling core.
public struct AdapterFigures: Sendable {
    public var mode: BenchMode
    public var packets: UInt64
    public var seconds: Double
    public var cycles: UInt64
    public var frameLength: Int
    /// Polls that moved nothing (the core waited for the device or the wire).
    public var idlePolls: UInt64

    public var packetsPerSecond: Double { seconds > 0 ? Double(packets) / seconds : 0 }
    /// Bits on the wire per second: frame + FCS + preamble/SFD + inter-frame gap (24 bytes) per packet.
    public var wireBitsPerSecond: Double { packetsPerSecond * Double(frameLength + 24) * 8 }
    /// TSC cycles per packet of the polling core (it polls all the time, so idle time counts too).
    public var cyclesPerPacket: Double { packets > 0 ? Double(cycles) / Double(packets) : 0 }
}

/// Runs receive-only, transmit-only and forward on adapters. An adapter may come Paused (NDIS's
/// order: `miniport bench --device` opens it so): each mode restarts it once its binding is open.
public enum AdapterBench {
    /// MiniportRestart after the binding is in place, if the adapter is still Paused.
    static func start(_ adapters: Adapter...) throws(BenchError) {
        for a in adapters where a.state == .paused {
            do { try a.restart() } catch { throw .setup("restarting \(a.name): \(error)") }
        }
    }

    /// Counts what `adapter` receives for `seconds` (every indication is returned at once).
    public static func receive(_ adapter: Adapter, seconds: Double, batch: Int, tscHz: Double) throws(BenchError) -> AdapterFigures {
        let consumer = ReturningProtocol()
        let binding: Binding
        do { binding = try adapter.openBinding(consumer) } catch { throw .setup("receive binding on \(adapter.name): \(error)") }
        defer { binding.close() }
        try start(adapter)
        var idle: UInt64 = 0
        let (cycles, elapsed) = timed(seconds: seconds, tscHz: tscHz) {
            if adapter.poll(budget: batch) == 0 { idle &+= 1 }
        }
        return AdapterFigures(mode: .receive, packets: consumer.received, seconds: elapsed, cycles: cycles,
                              frameLength: BenchFrame.udp64.count, idlePolls: idle)
    }

    /// Sends `BenchFrame.udp64` frames on `adapter` as fast as completions allow, for `seconds`.
    public static func transmit(_ adapter: Adapter, seconds: Double, batch: Int, tscHz: Double) throws(BenchError) -> AdapterFigures {
        let producer = SendingProtocol()
        let binding: Binding
        do { binding = try adapter.openBinding(producer) } catch { throw .setup("transmit binding on \(adapter.name): \(error)") }
        defer { binding.close() }
        try start(adapter)
        let pool = try SendingProtocol.makeFilledPool(binding, count: 1024, frame: BenchFrame.udp64)
        var idle: UInt64 = 0
        let (cycles, elapsed) = timed(seconds: seconds, tscHz: tscHz) {
            let chain = pool.allocate(count: batch)
            if chain.isEmpty { idle &+= 1; _ = consume chain } else { binding.send(chain) }
            _ = adapter.poll(budget: batch)
        }
        // Let the last sends complete before the binding closes.
        var spins = 0
        while pool.pool.outstanding > 0 && spins < 1_000_000 { _ = adapter.poll(budget: batch); spins += 1 }
        return AdapterFigures(mode: .transmit, packets: producer.completed, seconds: elapsed, cycles: cycles,
                              frameLength: BenchFrame.udp64.count, idlePolls: idle)
    }

    /// Forwards what `input` receives to `output` (which may be the same adapter) for `seconds`.
    public static func forward(from input: Adapter, to output: Adapter, seconds: Double, batch: Int, tscHz: Double) throws(BenchError) -> AdapterFigures {
        let forwarder = ForwardingProtocol()
        let inBinding: Binding, outBinding: Binding
        do {
            inBinding = try input.openBinding(forwarder)
            outBinding = try output.openBinding(forwarder)
        } catch { throw .setup("forward bindings: \(error)") }
        defer { outBinding.close(); inBinding.close() }
        try start(output, input)
        forwarder.input = inBinding
        forwarder.output = outBinding
        forwarder.inputSource = input.sourceHandle
        var idle: UInt64 = 0
        let same = input === output
        let (cycles, elapsed) = timed(seconds: seconds, tscHz: tscHz) {
            var n = input.poll(budget: batch)
            if !same { n += output.poll(budget: batch) }
            if n == 0 { idle &+= 1 }
        }
        var spins = 0
        while input.outstandingNetBufferLists > 0 && spins < 1_000_000 { _ = output.poll(budget: batch); spins += 1 }
        return AdapterFigures(mode: .forward, packets: forwarder.forwarded, seconds: elapsed, cycles: cycles,
                              frameLength: BenchFrame.udp64.count, idlePolls: idle)
    }

    /// Forwards what `input` receives to a different adapter `output` that does not share its DMA
    /// space (another VFIO container): frames are copied into `output`'s send buffers.
    public static func forwardCopying(from input: Adapter, to output: Adapter, seconds: Double, batch: Int, tscHz: Double) throws(BenchError) -> AdapterFigures {
        let forwarder = CopyingForwarder()
        let inBinding: Binding, outBinding: Binding
        do {
            inBinding = try input.openBinding(forwarder)
            outBinding = try output.openBinding(forwarder)
            forwarder.pool = try outBinding.makeSendPool(count: 1024, bufferSize: 2048)
        } catch { throw .setup("forward bindings: \(error)") }
        defer { outBinding.close(); inBinding.close() }
        try start(output, input)
        forwarder.input = inBinding
        forwarder.output = outBinding
        var idle: UInt64 = 0
        let (cycles, elapsed) = timed(seconds: seconds, tscHz: tscHz) {
            let n = input.poll(budget: batch) + output.poll(budget: batch)
            if n == 0 { idle &+= 1 }
        }
        var spins = 0
        while forwarder.completed < forwarder.forwarded && spins < 1_000_000 { _ = output.poll(budget: batch); spins += 1 }
        return AdapterFigures(mode: .forward, packets: forwarder.forwarded, seconds: elapsed, cycles: cycles,
                              frameLength: BenchFrame.udp64.count, idlePolls: idle)
    }

    /// Runs `body` until `seconds` of TSC time passed (checking the clock every 64 iterations).
    static func timed(seconds: Double, tscHz: Double, _ body: () -> Void) -> (cycles: UInt64, seconds: Double) {
        let budget = UInt64(seconds * tscHz)
        let start = TSC.read()
        var now = start
        while now &- start < budget {
            for _ in 0..<64 { body() }
            now = TSC.read()
        }
        let cycles = now &- start
        return (cycles, Double(cycles) / tscHz)
    }

    /// JSON: `{"receive": {"packetsPerSecond": …, "bitsPerSecond": …, "cyclesPerPacket": …, …}, …}`.
    public static func json(_ figures: [AdapterFigures], tscHz: Double, device: String) -> String {
        var parts: [String] = []
        for f in figures.sorted(by: { $0.mode < $1.mode }) {
            parts.append("  \"\(f.mode.rawValue)\": {\"packetsPerSecond\": \(BenchReport.number(f.packetsPerSecond.rounded())), \"bitsPerSecond\": \(BenchReport.number(f.wireBitsPerSecond.rounded())), \"cyclesPerPacket\": \(BenchReport.number(f.cyclesPerPacket)), \"packets\": \(f.packets), \"seconds\": \(BenchReport.number(f.seconds)), \"idlePolls\": \(f.idlePolls), \"frameLength\": \(f.frameLength), \"tscHz\": \(BenchReport.number(tscHz.rounded())), \"device\": \"\(device)\"}")
        }
        return "{\n" + parts.joined(separator: ",\n") + "\n}"
    }

    /// A table: Mpps, Gbit/s on the wire, cycles per packet, with the CPU (TSC) frequency.
    public static func table(_ figures: [AdapterFigures], tscHz: Double, device: String) -> String {
        var lines = ["MODE      MPPS    GBIT/S  CYCLES/PKT  PACKETS      IDLE POLLS"]
        for f in figures {
            lines.append(f.mode.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                         + pad(String(format: "%.3f", f.packetsPerSecond / 1e6), 7)
                         + pad(String(format: "%.3f", f.wireBitsPerSecond / 1e9), 10)
                         + pad(String(format: "%.1f", f.cyclesPerPacket), 12)
                         + pad(String(f.packets), 11) + pad(String(f.idlePolls), 14))
        }
        lines.append("")
        lines.append(String(format: "%@: %d-byte frames (+FCS, preamble, gap = %d bytes on the wire); TSC %.0f MHz; cycles = polling core's TSC cycles / packets (idle polls included)",
                            device, BenchFrame.udp64.count, BenchFrame.udp64.count + 24, tscHz / 1e6))
        return lines.joined(separator: "\n")
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
    }
}
