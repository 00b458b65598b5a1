import ArgumentParser
import MiniportRegistry
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NDIS
import Protocols

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show VMQ queues and filters at work on the hardware model (no setup needed).",
        discussion: """
        Brings up the model NIC, allocates three VMQ queues with MAC filters \
        (52:54:00:aa:00:01, :02, :03) and one with a VLAN filter (100), drives a mixed frame pattern \
        (unicast to each MAC, VLAN 100, broadcast, multicast, unknown unicast) through the model's \
        wire, shows a live per-queue progress line, then a table of frames and bytes per queue, the \
        default queue and the drops. With --json it prints {"queues": [{"id": 0, "default": true, \
        "filters": [...], "frames": ..., "bytes": ...}, ...], "drops": ...} instead.
        """)

    @Option(parsing: .unconditional, help: "Frames to drive through the wire.")
    var frames: Int = 3000

    @OptionGroup var common: CommonOptions

    @OptionGroup var running: RunOptions

    static let filters: [QueueFilterSpec] = [
        .mac(MACAddress(0x52, 0x54, 0x00, 0xaa, 0x00, 0x01)),
        .mac(MACAddress(0x52, 0x54, 0x00, 0xaa, 0x00, 0x02)),
        .mac(MACAddress(0x52, 0x54, 0x00, 0xaa, 0x00, 0x03)),
        .vlan(100),
    ]

    func run() throws {
        let logger = Log.setUp(verbose: common.verbose)
        let total = try parseCount(frames, option: "--frames") ?? 3000
        // The demo always runs on the model.
        if common.tap != nil {
            throw CLIError.input(.missing("demo drives its own frames through the model's wire, so it takes no --tap; use --tap with capture, respond, forward, pktgen, info or stack"))
        }
        let progress = try running.progress("demo", unit: "frames")
        let metrics = try running.startMetrics(command: "demo")
        defer { metrics?.close() }
        let opened = try AdapterFactory.open(device: nil, model: true, nic: common.nic, logger: logger)
        defer { opened.close() }
        Stop.installHandlers()
        metrics?.watch(opened)
        let counter = Counter()
        let queues: QueueSet
        do {
            let binding = try opened.adapter.openBinding(counter)
            // Promiscuous, as capture is: the default queue shows the unicast no filter takes.
            _ = try binding.request(.setPacketFilter([.directed, .multicast, .allMulticast, .broadcast, .promiscuous]))
            queues = try QueueSet.allocate(Demo.filters, on: binding, buffers: 256)
        } catch {
            throw CLIError.adapter("allocating the demo queues", error)
        }
        counter.acceptance.set(queues.queues)
        metrics?.report { QueueReport(queues: queues.queues, counters: counter.counters, drops: opened.drops).figures(help: "counted") }
        // Binding, packet filter, queues and filters are in place: now receive starts.
        try opened.startReceiving()
        for q in queues.queues { logger.debug("rxq\(q.id.rawValue): \(q.filterSummary)") }
        guard let wire = opened.wire else { throw CLIError.failed("the model has no wire") }
        let traffic = ModelTraffic(wire: wire, specs: Demo.filters, nicMAC: opened.adapter.attributes?.currentAddress ?? AdapterFactory.modelMAC)
        // The progress line: rewritten in place on a terminal, a full line every
        // --progress-interval seconds when redirected, none with --quiet.
        let round = 100
        while traffic.injected < total && !Stop.isRequested {
            traffic.drive(frames: min(round, total - traffic.injected))
            while opened.poll() > 0 {}
            metrics?.service()
            progress.update(total: counter.counters.totalFrames) {
                "drops \(opened.drops), " + QueueReport.progressLine(queues: queues.queues, counters: counter.counters)
            }
            // Slow enough to watch on a terminal.
            if progress.enabled && progress.terminal { sleep(nanoseconds: 15_000_000) }
        }
        progress.finish()
        let report = QueueReport(queues: queues.queues, counters: counter.counters, drops: opened.drops)
        metrics?.finish()
        for e in queues.release() { logger.warning("freeing queues: \(e)") }
        let (halt, mapped) = opened.close()
        if common.json {
            print(report.json)
        } else {
            print(report.table)
            print("\(halt); \(mapped) bytes left mapped")
        }
        metrics?.stop()
    }
}
