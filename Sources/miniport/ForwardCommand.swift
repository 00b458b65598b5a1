import ArgumentParser
import MiniportRegistry
import Logging
import MiniportMetrics
import NDIS
import Protocols

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forward every frame received on one NIC out of another.",
        discussion: """
        Receives on --device and sends on --to, a receive batch per send. When both NICs reach the \
        same DMA memory the received buffers are sent as they are (zero-copy: each buffer's source \
        handle is saved, restored when the send completes, and the buffer goes back to the receiving \
        NIC); otherwise, or with --copy, frames are copied into a send pool of --to. Runs until \
        Ctrl-C, --count forwarded frames or --seconds. With --model both NICs are models and a mixed \
        frame pattern is driven into the first one's wire.
        """)

    @Option(help: "PCI address of the receiving NIC (dddd:bb:dd.f); with --model, names the first model NIC.")
    var device: String?

    @Option(help: "PCI address of the sending NIC; with --model, names the second model NIC.")
    var to: String?

    @Flag(help: "Copy frames into the sending NIC's memory even when zero-copy is possible.")
    var copy = false

    @Option(parsing: .unconditional, help: "Stop after forwarding N frames.")
    var count: Int?

    @Option(parsing: .unconditional, help: "Stop after S seconds.")
    var seconds: Double?

    @OptionGroup var common: CommonOptions

    @OptionGroup var ready: ReadyOption

    @OptionGroup var running: RunOptions

    func run() throws {
        let logger = Log.setUp(verbose: common.verbose)
        let limit = try parseCount(count, option: "--count")
        let duration = try parseSeconds(seconds)
        let progress = try running.progress("forward", unit: "forwarded")
        // Every address is checked before the first NIC is opened.
        try checkAddresses(device, to)
        if !common.model && to == nil { throw CLIError.input(.missing("--to ADDR is needed: the NIC to send on")) }
        if let device, let to, let a = try? PCIAddressText.normalize(device), a == (try? PCIAddressText.normalize(to)) {
            throw CLIError.input(.missing("--device and --to both name \(a): forward between two different NICs"))
        }
        let metrics = try running.startMetrics(command: "forward")
        defer { metrics?.close() }
        let input = try AdapterFactory.open(device: device, model: common.model, nic: common.nic, logger: logger, tap: common.tap)
        defer { input.close() }
        let output = try AdapterFactory.open(device: to, model: common.model, nic: common.nic, logger: logger,
                                             macAddress: MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x57), modelName: "model1")
        // (Defers run last-first: on an early exit the output closes before the input, too.)
        defer { output.close() }
        Stop.installHandlers()
        metrics?.watch(input)
        metrics?.watch(output)
        // Zero-copy needs the sender to reach the receiver's buffers by DMA: both adapters in one
        // DMA domain. Two VFIO devices of one process share one container (VFIODMADomain); two
        // model NICs have an IOMMU each.
        let zeroCopy = !copy && Forwarder.mode(from: input.adapter, to: output.adapter) == .zeroCopy
        let forwarder = Forwarder(mode: zeroCopy ? .zeroCopy : .copy, sendPoolSize: 256)
        do {
            let inBinding = try input.adapter.openBinding(forwarder)
            _ = try inBinding.request(.setPacketFilter([.directed, .multicast, .allMulticast, .broadcast, .promiscuous]))
            forwarder.attachInput(inBinding)
            try forwarder.attachOutput(try output.adapter.openBinding(forwarder))
        } catch {
            throw CLIError.adapter("binding the forwarder to \(input.address) and \(output.address)", error)
        }
        // The output side runs first, so the first frame received already has somewhere to go.
        try output.startReceiving()
        try input.startReceiving()
        try ready.signal()
        logger.debug("forwarding \(input.address) -> \(output.address) (\(forwarder.mode.rawValue))")
        let traffic = input.wire.map { ModelTraffic(wire: $0, specs: [], nicMAC: AdapterFactory.modelMAC) }
        var arrived = 0
        metrics?.report {
            var f = [
                CommandFigure("forwarded", forwarder.forwarded, help: "Frames forwarded (the final JSON's forwarded)."),
                CommandFigure("bytes", forwarder.forwardedBytes, help: "Bytes forwarded (the final JSON's bytes)."),
                CommandFigure("completed", forwarder.completed, help: "Sends completed (the final JSON's completed)."),
                CommandFigure("send_errors", forwarder.sendErrors, help: "Sends that failed (the final JSON's sendErrors)."),
                CommandFigure("drops", input.drops + forwarder.drops, help: "Frames lost (the final JSON's drops)."),
            ]
            if output.wire != nil { f.append(CommandFigure("arrived", UInt64(arrived), help: "Frames on the second model's wire (the final JSON's arrived).")) }
            return f
        }
        let end = deadline(after: duration)
        while !Stop.isRequested {
            if let limit, forwarder.forwarded >= UInt64(limit) { break }
            if let end, Clock.monotonicNanoseconds() >= end { break }
            if let traffic {
                let want = limit.map { max(0, min(32, $0 - Int(forwarder.forwarded))) } ?? 32
                if want > 0 { traffic.drive(frames: want) }
            }
            let n = input.poll() + output.poll()
            if let wire = output.wire { arrived += wire.takeTransmitted().count }
            if n == 0 { sleep(nanoseconds: traffic == nil ? 100_000 : 1_000_000) }
            metrics?.service()
            progress.update(total: forwarder.forwarded) {
                "\(forwarder.forwardedBytes) bytes, completed \(forwarder.completed), send errors \(forwarder.sendErrors), drops \(input.drops + forwarder.drops)"
            }
        }
        progress.finish()
        // Let the last sends complete and leave.
        for _ in 0..<8 {
            input.poll()
            output.poll()
            if let wire = output.wire { arrived += wire.takeTransmitted().count }
        }
        let drops = input.drops + forwarder.drops
        metrics?.finish()
        // The output first: it completes or cancels its sends, which hands every zero-copy buffer
        // back to the input before the input frees anything (Forwarder.stop).
        let ((h2, m2), (h1, m1)) = Forwarder.stop(output: { output.close() }, input: { input.close() })
        if common.json {
            print("{\"mode\": \"\(forwarder.mode.rawValue)\", \"forwarded\": \(forwarder.forwarded), \"bytes\": \(forwarder.forwardedBytes), \"completed\": \(forwarder.completed), \"sendErrors\": \(forwarder.sendErrors), \"drops\": \(drops)\(output.wire != nil ? ", \"arrived\": \(arrived)" : "")}")
        } else {
            print("forwarded \(forwarder.forwarded) frame(s), \(forwarder.forwardedBytes) bytes, \(input.address) -> \(output.address) (\(forwarder.mode.rawValue)); completed \(forwarder.completed), send errors \(forwarder.sendErrors), drops \(drops)")
            if output.wire != nil { print("arrived on \(output.address)'s wire: \(arrived)") }
            print("\(input.address): \(h1), \(m1) bytes left mapped; \(output.address): \(h2), \(m2) bytes left mapped")
        }
        metrics?.stop()
    }
}
