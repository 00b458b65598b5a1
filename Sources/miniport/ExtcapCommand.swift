import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Logging
import MiniportRegistry
import NDIS
import PCI
import Protocols

/// `miniport extcap`: Wireshark's extcap interface (extcap(4)), so Wireshark and tshark capture from
/// a Miniport NIC's VMQ queues. `udev/install` puts a wrapper into Wireshark's extcap folder that
/// runs `miniport extcap "$@"`.
///
/// Wireshark calls it in steps: `--extcap-interfaces` (one `interface` sentence per NIC bound to
/// vfio-pci that a miniport supports, and one for the hardware model), `--extcap-config
/// --extcap-interface NAME` (the options dialog: queue MACs, VLANs, lookahead, model traffic),
/// `--extcap-dlts` (Ethernet), then `--capture --extcap-interface NAME --fifo PATH` with the chosen
/// options. The capture writes pcapng to the fifo exactly as `miniport capture` does (one
/// interface per receive queue, rxq<id>), flushed after every receive batch, until Wireshark stops
/// it (SIGTERM) or closes the fifo.
struct Extcap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wireshark's extcap interface: capture from a Miniport NIC's VMQ queues in Wireshark or tshark.",
        discussion: """
        Wireshark runs this through the wrapper udev/install puts into its extcap folder; by hand: \
        --extcap-interfaces lists the interfaces (\(Extcap.modelInterface) for the hardware model, \
        \(Extcap.devicePrefix)<dddd:bb:dd.f> for each NIC bound to vfio-pci that a miniport drives), \
        --extcap-config --extcap-interface NAME its options, and --capture --extcap-interface NAME \
        --fifo PATH [--mac LIST] [--vlan LIST] [--lookahead N] writes pcapng (one interface per \
        queue, rxq<id>) to PATH until stopped. Capture filters (--extcap-capture-filter) are refused: \
        the MAC and VLAN queue filters select the traffic.
        """)

    static let modelInterface = "miniport-model"
    static let devicePrefix = "miniport-"

    @Flag(name: .customLong("extcap-interfaces"), help: "List the interfaces (extcap and interface sentences).")
    var listInterfaces = false

    @Flag(name: .customLong("extcap-dlts"), help: "List the link types of --extcap-interface (Ethernet).")
    var listDLTs = false

    @Flag(name: .customLong("extcap-config"), help: "List the options of --extcap-interface (arg and value sentences).")
    var listConfig = false

    @Flag(help: "Capture from --extcap-interface into --fifo.")
    var capture = false

    @Option(name: .customLong("extcap-interface"), help: ArgumentHelp("The interface, as --extcap-interfaces lists it.", valueName: "name"))
    var interface: String?

    @Option(help: ArgumentHelp("The fifo (or file) Wireshark reads pcapng from.", valueName: "path"))
    var fifo: String?

    @Option(name: .customLong("extcap-capture-filter"), help: ArgumentHelp("Refused unless empty: use --mac and --vlan.", valueName: "filter"))
    var captureFilter: String?

    @Option(name: .customLong("extcap-version"), help: ArgumentHelp("The Wireshark version calling (accepted, not needed).", valueName: "version"))
    var wiresharkVersion: String?

    // Toolbar controls: this extcap declares none, so Wireshark should not pass these; accepted anyway.
    @Option(name: .customLong("extcap-control-in"), help: .hidden) var controlIn: String?
    @Option(name: .customLong("extcap-control-out"), help: .hidden) var controlOut: String?

    @Option(name: .customLong("mac"), help: ArgumentHelp("Queue MAC filters: a queue per MAC, comma-separated (repeatable).", valueName: "list"))
    var macs: [String] = []

    @Option(name: .customLong("vlan"), help: ArgumentHelp("Queue VLAN filters: a queue per VLAN id 1-4094, comma-separated (repeatable).", valueName: "list"))
    var vlans: [String] = []

    @Option(help: ArgumentHelp("Split received frames at this many bytes (lookahead split, 0: no split).", valueName: "bytes"))
    var lookahead: Int = 0

    @Option(help: ArgumentHelp("Model only: the frame mix on the model's wire (mix or none).", valueName: "mix|none"))
    var traffic: String = "mix"

    @Option(help: ArgumentHelp("Model only: frames per second the mix puts on the wire (0: as fast as the model takes them).", valueName: "fps"))
    var rate: Int = 1000

    @Option(name: .customLong("sysfs-root"), help: ArgumentHelp("Read sysfs under this directory instead of / (for tests).", visibility: .hidden))
    var root: String = "/"

    @Flag(help: "Log driver and framework steps to stderr.")
    var verbose = false

    func validate() throws {
        let steps = [listInterfaces, listDLTs, listConfig, capture].filter { $0 }.count
        if steps != 1 {
            throw ValidationError("give exactly one of --extcap-interfaces, --extcap-dlts, --extcap-config, --capture (Wireshark does)")
        }
    }

    func run() throws {
        if listInterfaces {
            print(Self.interfacesText(devices: Self.boundDevices(root: root)), terminator: "")
            return
        }
        guard let interface else {
            throw CLIError.input(.missing("--extcap-interface NAME is needed: one of the names miniport extcap --extcap-interfaces lists"))
        }
        let target = try Self.target(of: interface)
        if listDLTs {
            print(Self.dltText, terminator: "")
            return
        }
        if listConfig {
            var isModel = false
            if case .model = target { isModel = true }
            print(Self.configText(model: isModel), terminator: "")
            return
        }
        if let captureFilter, !captureFilter.allSatisfy(\.isWhitespace) {
            throw CLIError.input(.missing("capture filters are not supported by \(interface) (got '\(captureFilter)'): clear the capture filter and choose the traffic with the MAC and VLAN queue filters in the interface options"))
        }
        guard let fifo else { throw CLIError.input(.missing("--fifo PATH is needed with --capture: where Wireshark reads the pcapng")) }
        try runCapture(target: target, fifo: fifo)
    }

    /// What an interface name stands for.
    enum Target: Equatable {
        /// A model NIC (`miniport-model` is the first of ``ModelNICs/all``, `miniport-model-<nic>` any).
        case model(String)
        /// A device by PCI address.
        case device(String)
    }

    /// The extcap interface names of the model NICs of this build.
    static var modelInterfaces: [(value: String, nic: ModelNIC)] {
        ModelNICs.all.enumerated().map { i, nic in (i == 0 ? modelInterface : "\(modelInterface)-\(nic.name)", nic) }
    }

    static func target(of interface: String) throws(CLIError) -> Target {
        if let m = modelInterfaces.first(where: { $0.value == interface }) { return .model(m.nic.name) }
        guard interface.hasPrefix(devicePrefix), !interface.hasPrefix(modelInterface) else {
            throw .input(.missing("unknown extcap interface '\(interface)': use \(modelInterface) or \(devicePrefix)<dddd:bb:dd.f> as miniport extcap --extcap-interfaces lists them"))
        }
        do { return .device(try PCIAddressText.normalize(String(interface.dropFirst(devicePrefix.count)))) } catch {
            throw CLIError(error)
        }
    }

    /// NICs bound to vfio-pci that a miniport in this build drives.
    static func boundDevices(root: String) -> [PCIDeviceInfo] {
        let discovery = PCIDiscovery(paths: HostPaths(root: root), idsFile: nil, useHardwareDatabase: root == "/",
                                     supportTable: MiniportRegistry.supportTable)
        let functions = (try? discovery.functions()) ?? []
        return functions.filter { $0.isNetwork && $0.driver == "vfio-pci" && $0.support?.status == .supported }
    }

    // MARK: Sentences (extcap(4) grammar: `keyword {key=value}...`, one per line)

    static func interfacesText(devices: [PCIDeviceInfo]) -> String {
        var out = "extcap {version=\(MiniportVersion.text)}{display=Miniport: VMQ receive queues of userspace NIC drivers}\n"
        for m in modelInterfaces {
            out += "interface {value=\(m.value)}{display=Miniport hardware model (\(m.nic.description), no NIC needed)}\n"
        }
        for d in devices {
            let what = [d.support.map { "\($0.miniport) miniport" }, d.deviceName ?? d.support?.model].compactMap { $0 }.joined(separator: ", ")
            out += "interface {value=\(devicePrefix)\(d.address)}{display=Miniport \(d.address) (\(what), vfio-pci)}\n"
        }
        return out
    }

    static let dltText = "dlt {number=1}{name=EN10MB}{display=Ethernet}\n"

    static func configText(model: Bool) -> String {
        var lines = [
            "arg {number=0}{call=--mac}{display=Queue MAC filters}{type=string}{default=}"
                + "{tooltip=A VMQ queue per destination MAC, comma-separated (52:54:00:aa:00:01,52:54:00:aa:00:02); every other frame lands on rxq0}"
                + "{validation=^([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}([ ,]+[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5})*)?$}{group=Queues}",
            "arg {number=1}{call=--vlan}{display=Queue VLAN filters}{type=string}{default=}"
                + "{tooltip=A VMQ queue per VLAN id 1-4094, comma-separated (100,200)}{validation=^([0-9]{1,4}([ ,]+[0-9]{1,4})*)?$}{group=Queues}",
            "arg {number=2}{call=--lookahead}{display=Lookahead split (bytes)}{type=unsigned}{range=0,960}{default=0}"
                + "{tooltip=Split every received frame into two buffers at this size (0: no split; the 82576 splits at 64-960)}{group=Queues}",
        ]
        if model {
            lines += [
                "arg {number=3}{call=--traffic}{display=Model traffic}{type=selector}{tooltip=What the model's wire carries}{group=Model}",
                "value {arg=3}{value=mix}{display=Frame mix: a frame per queue filter, broadcast ARP, multicast, unknown unicast}{default=true}",
                "value {arg=3}{value=none}{display=None (an idle wire)}{default=false}",
                "arg {number=4}{call=--rate}{display=Model frames per second}{type=unsigned}{range=0,1000000}{default=1000}"
                    + "{tooltip=Frames per second of the mix (0: as fast as the model takes them)}{group=Model}",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Capture

    /// Splits comma- or space-separated lists ("a,b", "a b") and repeated options into single values.
    static func splitList(_ values: [String]) -> [String] {
        values.flatMap { $0.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init) }
    }

    func runCapture(target: Target, fifo: String) throws {
        let logger = Log.setUp(verbose: verbose)
        let specs: [QueueFilterSpec]
        do { specs = try QueueFilterSpec.parse(macs: Self.splitList(macs), vlans: Self.splitList(vlans)) } catch { throw CLIError.input(error) }
        guard lookahead >= 0 else { throw CLIError.input(.badNumber(option: "--lookahead", value: String(lookahead), range: "0 (no split) or a size in bytes")) }
        guard rate >= 0 else { throw CLIError.input(.badNumber(option: "--rate", value: String(rate), range: "frames per second, 0 or more")) }
        guard traffic == "mix" || traffic == "none" else {
            throw CLIError.input(.missing("--traffic '\(traffic)' is not a traffic choice: use mix or none"))
        }
        // Wireshark closing the fifo ends the capture with EPIPE, not SIGPIPE: main() ignores it for
        // the whole process (ignoreWriteSignals), extcap included.
        let opened: OpenedAdapter
        switch target {
        case let .model(nic): opened = try AdapterFactory.open(device: nil, model: true, nic: nic, logger: logger)
        case let .device(address): opened = try AdapterFactory.open(device: address, model: false, logger: logger)
        }
        defer { opened.close() }
        Stop.installHandlers()
        let capture = PacketCapture(limit: nil)
        // On the model the mix is on the wire while the capture sets up (the adapter is Paused).
        let mix = traffic == "mix" ? opened.wire.map {
            ModelTraffic(wire: $0, specs: specs, nicMAC: opened.adapter.attributes?.currentAddress ?? AdapterFactory.modelMAC)
        } : nil
        mix?.busyWire()
        let queues: QueueSet
        do {
            let binding = try opened.adapter.openBinding(capture)
            mix?.busyWire()
            // Promiscuous, as `capture` (and Wireshark by default) is.
            _ = try? binding.request(.setPacketFilter(Capture.promiscuousFilter))
            queues = try QueueSet.allocate(specs, on: binding, buffers: 256, lookahead: lookahead > 0 ? lookahead : nil)
        } catch {
            throw CLIError.adapter("setting up the capture queues on \(opened.address)", error)
        }
        // The capture's own stream writer (as `capture --write FIFO`): a FIFO is opened without
        // blocking signals, and every receive batch is flushed to it as it arrives.
        do { try capture.start(path: fifo, format: .pcapng, queues: queues.queues, shouldGiveUp: { Stop.isRequested }) } catch {
            queues.release()
            if case .stoppedWaitingForReader = error { return }
            throw CLIError.capture(error)
        }
        do {
            // Queues and filters are in place while Paused: only now does receive start.
            try opened.startReceiving()
        } catch {
            queues.release()
            throw error
        }
        let pace = mix.map { _ in FramePacer(rate: rate) }
        while !Stop.isRequested {
            if let mix, let pace {
                let due = pace.due(now: Clock.monotonicNanoseconds())
                if due > 0 { mix.drive(frames: due) }
            }
            let n = opened.poll()
            // A fifo is flushed per batch by the writer; a regular file (by hand) is too, here.
            capture.writer?.flush()
            if capture.writeError != nil { break } // the reader went away (or the disk is full)
            if n == 0 { sleep(nanoseconds: mix == nil ? 200_000 : 1_000_000) }
        }
        let fileError = capture.finish()
        let report = QueueReport(queues: queues.queues, counters: capture.counters, drops: opened.drops + capture.drops)
        for e in queues.release() { logger.warning("freeing queues: \(e)") }
        let (halt, mapped) = opened.close()
        // Wireshark reports anything an extcap writes to stderr as an error: only the errors go
        // there, and the summary only with --verbose.
        switch fileError {
        case nil, .readerGone?, .stoppedWaitingForReader?: break // Wireshark closed the fifo or stopped us: the normal end
        case let e?: throw CLIError.capture(e)
        }
        if verbose { printError("miniport extcap: \(report.totalFrames) frame(s) on \(report.queues.count) queue(s), drops \(report.drops); \(halt); \(mapped) bytes left mapped") }
    }
}

/// Paces a frame source at `rate` frames per second (0: no pacing, a batch per call).
final class FramePacer {
    let rate: Int
    private var start: UInt64 = 0
    private var released: UInt64 = 0

    init(rate: Int) { self.rate = rate }

    /// Frames due since the start, not yet released (at most 64 per call).
    func due(now: UInt64) -> Int {
        guard rate > 0 else { return 64 }
        if start == 0 { start = now }
        let owed = (now - start) * UInt64(rate) / 1_000_000_000 + 1
        let n = owed > released ? min(64, owed - released) : 0
        released += n
        return Int(n)
    }
}

/// The version `extcap {version=…}` reports.
enum MiniportVersion {
    static let text = "0.1.0"
}
