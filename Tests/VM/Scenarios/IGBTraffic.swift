import ArgumentParser
import DeviceAccess
import Foundation
import IGB
import NDIS
import VFIO

/// `igb-traffic`: bring the IGB miniport up on a NIC bound to vfio-pci, optionally allocate VMQ
/// queues with MAC (and VLAN) filters, write `ready`, then receive until the host writes
/// `host-done` (or the time runs out), echoing every frame back with the MACs swapped when asked.
/// Writes DIR/igb-traffic.json: frames per queue, their SHA-less fingerprints (length + first
/// bytes), statistics, and the halt report. Exits 1 if halt is not clean or DMA memory leaked.
struct IGBTraffic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "igb-traffic",
        abstract: "Run the IGB miniport through VFIO: VMQ queues with filters, receive, echo, statistics, clean halt."
    )

    @Option(help: "PCI address of an 82576/I350 function bound to vfio-pci.")
    var device: String

    @Option(help: "Directory for ready, igb-traffic.json; host-done is awaited there.")
    var out: String

    @Option(name: .customLong("queue"), help: "A VMQ queue filter: MAC or MAC/VLAN (repeatable), e.g. 02:aa:00:00:00:01/10.")
    var queues: [String] = []

    @Option(help: "Seconds to run at most.")
    var seconds: Double = 30

    @Flag(help: "Send every received frame back with destination and source swapped.")
    var echo = false

    @Flag(help: "Use MSI-X interrupts and sleep when idle.")
    var interrupts = false

    struct Result: Encodable {
        var ok = false
        var errors: [String] = []
        var mac = ""
        var queues: [String: String] = [:]
        var framesPerQueue: [String: Int] = [:]
        var frames: [[String: String]] = []
        var echoed = 0
        var statistics: [String: UInt64] = [:]
        var halt = ""
        var liveDMARegionsAfterHalt = -1
        var milliseconds = 0.0
    }

    func run() throws {
        var result = Result()
        let start = ContinuousClock.now
        do { try traffic(&result) } catch { result.errors.append("\(error)") }
        result.milliseconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e15
            + Double((ContinuousClock.now - start).components.seconds) * 1000
        result.ok = result.errors.isEmpty
        let data = try JSONEncoder().encode(result)
        try data.write(to: URL(fileURLWithPath: out).appendingPathComponent("igb-traffic.json"))
        print(result.ok ? "igb-traffic: ok" : "igb-traffic: FAILED\n" + result.errors.map { "  " + $0 }.joined(separator: "\n"))
        if !result.ok { throw ExitCode(1) }
    }

    private func traffic(_ result: inout Result) throws {
        let function = try VFIODevice.open(device)
        if function.supportsReset { try function.reset() }
        var config = IGBConfiguration()
        config.useInterrupts = interrupts
        config.linkTimeout = .seconds(20)
        let (adapter, miniport) = try IGBMiniport.makeAdapterWithMiniport(function: function, configuration: config)
        result.mac = miniport.permanentAddress.description
        let echoer = Echo(echo: echo)
        let binding = try adapter.openBinding(echoer)
        echoer.pool = try binding.makeSendPool(count: 256, bufferSize: 2048)
        for spec in queues {
            let parts = spec.split(separator: "/")
            guard let mac = MACAddress(String(parts[0])) else { throw ValidationError("bad MAC in --queue \(spec)") }
            guard case let .queueAllocated(id) = try binding.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 128))) else { continue }
            _ = try binding.request(.queueAllocationComplete([id]))
            var tests: [FieldTest] = [.macDestination(mac)]
            if parts.count > 1, let v = UInt16(parts[1]) { tests.append(.vlanID(v)) }
            _ = try binding.request(.setFilter(ReceiveFilterParameters(queue: id, tests: tests)))
            result.queues[String(id.rawValue)] = spec
        }
        let dir = URL(fileURLWithPath: out)
        try Data().write(to: dir.appendingPathComponent("ready"))
        let loop = IGBDatapathLoop(adapter: adapter, miniport: miniport)
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        let doneFile = dir.appendingPathComponent("host-done").path
        var checks = 0
        loop.run {
            checks &+= 1
            if checks % 1024 != 0 { return false }
            return ContinuousClock.now >= deadline || FileManager.default.fileExists(atPath: doneFile)
        }
        // Let the last echoes complete.
        for _ in 0..<100 { _ = adapter.poll() }
        result.framesPerQueue = echoer.perQueue.reduce(into: [:]) { $0[String($1.key)] = $1.value }
        result.frames = echoer.fingerprints
        result.echoed = echoer.echoed
        if case let .statistics(report) = try adapter.request(.statistics) {
            result.statistics = ["rxFrames": report.global.receivedFrames, "txFrames": report.global.transmittedFrames,
                                 "rxErrors": report.global.receiveErrors, "rxDrops": report.global.receiveDrops]
        }
        binding.close()
        let report = adapter.halt()
        result.halt = report.description
        result.liveDMARegionsAfterHalt = function.dma.liveRegionCount
        if !report.isClean { result.errors.append("halt was not clean: \(report)") }
        if function.dma.liveRegionCount != 0 { result.errors.append("\(function.dma.liveRegionCount) DMA regions left after halt") }
    }
}

/// Counts frames per queue, remembers a fingerprint of each, and echoes them when asked.
final class Echo: ProtocolDriver {
    let echo: Bool
    var pool: SendPool?
    var perQueue: [UInt16: Int] = [:]
    var fingerprints: [[String: String]] = []
    var echoed = 0
    init(echo: Bool) { self.echo = echo }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        take(chain, binding: binding, queue: queue)
        binding.returnNetBufferLists(chain)
    }

    var handlesResourcesIndications: Bool { true }

    func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        take(chain, binding: binding, queue: queue)
    }

    private func take(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID) {
        var bytes: [[UInt8]] = []
        chain.forEach { nbl in
            perQueue[queue.rawValue, default: 0] += 1
            let b = nbl.dataBytes()
            let info = nbl.info
            if fingerprints.count < 4096 {
                fingerprints.append(["queue": String(queue.rawValue), "length": String(b.count),
                                     "head": b.prefix(16).map { String(format: "%02x", $0) }.joined(),
                                     "vlan": info.vlanPresent ? String(info.vlanID) : ""])
            }
            if echo, b.count >= 14 { bytes.append(Array(b[6..<12]) + Array(b[0..<6]) + Array(b[12...])) }
        }
        guard echo, let pool, !bytes.isEmpty else { return }
        var out = pool.allocate(count: bytes.count)
        var i = 0
        out.forEach { nbl in
            bytes[i].withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) }
            i += 1
        }
        echoed += out.count
        binding.send(out)
    }
}
