import ArgumentParser
import MiniportRegistry
import Logging
import NDIS
import Protocols

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture frames to a pcapng file, one interface per receive queue.",
        discussion: """
        Allocates one VMQ receive queue per --mac and per --vlan filter (MACs first, in the order \
        given); the default queue rxq0 takes every frame no filter matches, broadcast included. \
        The pcapng has one interface block per queue in queue-id order, named rxq<id> and described \
        by its filters ("default", "mac 52:54:00:aa:00:01", "vlan 100"), nanosecond timestamps, and \
        every frame exactly as on the wire (a VLAN tag the hardware stripped is put back; no FCS). \
        With --count N the file holds exactly N frames in total. A FILE ending in .pcap is written \
        as classic pcap (no queues). --write - streams pcapng to standard output (flushed per batch; the \
        table or --json then go to stderr), and a FIFO is waited for without blocking signals. The \
        first write error (a full disk) ends the capture with the counts equal to the file; a reader \
        that quits ends it cleanly. Ctrl-C stops, frees the queues and prints the counts. \
        The capture is promiscuous (every frame on the wire, as tcpdump); --no-promiscuous keeps \
        only frames for the NIC's address and the --mac queues' addresses, broadcast and multicast. \
        Receive starts only once the queues and filters are set, so a busy wire puts no early \
        frame on the wrong queue.
        With --model, a mixed frame pattern for the filters is driven through the model's wire.
        """)

    @Option(help: "PCI address of a NIC bound to vfio-pci (dddd:bb:dd.f); with --model, names the model NIC.")
    var device: String?

    @Option(name: .customLong("mac"), help: ArgumentHelp("A queue for frames to this destination MAC (repeatable).", valueName: "mac"))
    var macs: [String] = []

    @Option(name: .customLong("vlan"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("A queue for frames of this VLAN id, 1-4094 (repeatable).", valueName: "id"))
    var vlans: [String] = []

    @Flag(name: .customLong("no-promiscuous"), help: "Capture only frames for this NIC (its address and the --mac queues' addresses), broadcast and multicast; without it the capture is promiscuous, as tcpdump is.")
    var noPromiscuous = false

    @Option(parsing: .unconditional, help: "Stop after exactly N frames in total across all queues.")
    var count: Int?

    @Option(parsing: .unconditional, help: "Stop after S seconds.")
    var seconds: Double?

    @Option(name: .customLong("write"), help: ArgumentHelp(
        "The capture file (.pcapng, or .pcap for classic pcap), a FIFO, or - to stream pcapng to standard output (the figures then go to stderr).",
        valueName: "file"))
    var file: String

    @OptionGroup var common: CommonOptions

    @OptionGroup var ready: ReadyOption

    @OptionGroup var running: RunOptions

    /// Every frame on the wire.
    static let promiscuousFilter: PacketFilter = [.directed, .multicast, .allMulticast, .broadcast, .promiscuous]
    /// Frames for this NIC and its queues' addresses, broadcast, every multicast group.
    static let nonPromiscuousFilter: PacketFilter = [.directed, .multicast, .allMulticast, .broadcast]

    func run() throws {
        let logger = Log.setUp(verbose: common.verbose)
        let specs: [QueueFilterSpec]
        do { specs = try QueueFilterSpec.parse(macs: macs, vlans: vlans) } catch { throw CLIError.input(error) }
        let limit = try parseCount(count, option: "--count")
        let duration = try parseSeconds(seconds)
        let progress = try running.progress("capture", unit: "frames")
        // With --write - standard output carries the pcapng: every figure goes to stderr.
        let streaming = file == "-"
        let report: (String) -> Void = streaming ? { printError($0) } : { print($0) }
        let metrics = try running.startMetrics(command: "capture")
        defer { metrics?.close() }
        let opened = try AdapterFactory.open(device: device, model: common.model, nic: common.nic, logger: logger, tap: common.tap)
        defer { opened.close() }
        Stop.installHandlers()
        metrics?.watch(opened)

        let capture = PacketCapture(limit: limit)
        // On the model the wire already carries the frame mix while the capture sets up.
        let traffic = opened.wire.map { ModelTraffic(wire: $0, specs: specs, nicMAC: opened.adapter.attributes?.currentAddress ?? AdapterFactory.modelMAC) }
        traffic?.busyWire()
        let binding: Binding
        let queues: QueueSet
        do {
            binding = try opened.adapter.openBinding(capture)
            traffic?.busyWire()
            // OID_GEN_CURRENT_PACKET_FILTER: promiscuous unless --no-promiscuous, as tcpdump is.
            _ = try binding.request(.setPacketFilter(noPromiscuous ? Capture.nonPromiscuousFilter : Capture.promiscuousFilter))
            queues = try QueueSet.allocate(specs, on: binding, buffers: 256)
        } catch {
            throw CLIError.adapter("setting up the capture queues on \(opened.address)", error)
        }
        for q in queues.queues { logger.debug("rxq\(q.id.rawValue): \(q.filterSummary)") }
        metrics?.report {
            QueueReport(queues: queues.queues, counters: capture.counters, drops: opened.drops + capture.drops).figures(help: "written to the capture file")
        }
        traffic?.busyWire()
        // A FIFO without a reader is waited for, but Ctrl-C / SIGTERM end the wait.
        var stoppedBeforeStart: CaptureFileError?
        do { try capture.start(path: file, queues: queues.queues, shouldGiveUp: { Stop.isRequested }) } catch {
            if case .stoppedWaitingForReader = error {
                stoppedBeforeStart = error
            } else {
                queues.release()
                throw CLIError.capture(error)
            }
        }
        if stoppedBeforeStart == nil {
            do {
                // Everything is in place while Paused: only now does receive start (MiniportRestart).
                try opened.startReceiving()
                try ready.signal()
            } catch {
                queues.release()
                throw error
            }
        }

        let end = deadline(after: duration)
        // The first write error ends the capture (a full disk, the reader of a pipe gone).
        while stoppedBeforeStart == nil && !capture.isComplete && !Stop.isRequested && capture.writeError == nil {
            if let end, Clock.monotonicNanoseconds() >= end { break }
            traffic?.drive(frames: min(64, max(1, (limit ?? 64) - capture.framesWritten)))
            if opened.poll() == 0 { sleep(nanoseconds: traffic == nil ? 100_000 : 1_000_000) }
            metrics?.service()
            progress.update(total: UInt64(capture.framesWritten)) {
                "drops \(opened.drops + capture.drops), " + QueueReport.progressLine(queues: queues.queues, counters: capture.counters)
            }
        }
        progress.finish()
        let fileError = capture.finish() ?? stoppedBeforeStart
        let figures = QueueReport(queues: queues.queues, counters: capture.counters, drops: opened.drops + capture.drops)
        metrics?.finish()
        let releaseErrors = queues.release()
        for e in releaseErrors { logger.warning("freeing queues: \(e)") }
        let (halt, mapped) = opened.close()
        if common.json {
            report(figures.json)
        } else {
            report(figures.table)
            report("wrote \(capture.framesWritten) frame(s) to \(streaming ? "standard output" : file); \(halt); \(mapped) bytes left mapped")
        }
        metrics?.stop()
        guard let fileError else { return }
        switch fileError {
        case .readerGone, .stoppedWaitingForReader:
            // The reader quit or the user stopped: the normal end of a stream, counts final.
            printError("miniport: \(fileError)")
        default:
            throw CLIError.capture(fileError)
        }
    }
}
