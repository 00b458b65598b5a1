import ArgumentParser
import MiniportRegistry
import Logging
import MiniportMetrics
import NDIS
import Protocols

struct Pktgen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pktgen",
        abstract: "Send UDP frames of a given size at a given rate, each with a sequence number.",
        discussion: """
        Sends --count UDP/IPv4 frames of --size bytes (60-1514, without FCS) at --rate frames per \
        second (0: as fast as the send ring allows). The payload starts with a 64-bit big-endian \
        sequence number counting from 0; IPv4 and UDP checksums are valid. With --model the frames \
        leave on the model's wire and are checked for order there.
        """)

    @Option(help: "PCI address of a NIC bound to vfio-pci (dddd:bb:dd.f); with --model, names the model NIC.")
    var device: String?

    @Option(parsing: .unconditional, help: "Frames per second (0: as fast as possible).")
    var rate: Int

    @Option(parsing: .unconditional, help: "Frame size in bytes without FCS, 60-1514.")
    var size: Int

    @Option(parsing: .unconditional, help: "Frames to send.")
    var count: Int

    @Option(name: .customLong("dst-mac"), help: "Destination MAC (default broadcast).")
    var destinationMAC: String?

    @Option(name: .customLong("src-ip"), help: "Source IPv4 address.")
    var sourceIP: String = "10.0.0.1"

    @Option(name: .customLong("dst-ip"), help: "Destination IPv4 address.")
    var destinationIP: String = "10.0.0.2"

    @OptionGroup var common: CommonOptions

    @OptionGroup var running: RunOptions

    func run() throws {
        let logger = Log.setUp(verbose: common.verbose)
        let n = try parseCount(count, option: "--count")!
        let progress = try running.progress("pktgen", unit: "sent")
        try checkAddresses(device)
        guard rate >= 0 else { throw CLIError.input(.badNumber(option: "--rate", value: String(rate), range: "frames per second, 0 or more")) }
        var c = GeneratorConfiguration(frameSize: size, rate: UInt64(rate), count: UInt64(n))
        if let destinationMAC {
            do { c.destinationMAC = try QueueFilterSpec.parseMAC(destinationMAC) } catch { throw CLIError.input(error) }
        }
        guard let s = IPv4Address(sourceIP) else { throw CLIError.input(.badIPv4(sourceIP)) }
        guard let d = IPv4Address(destinationIP) else { throw CLIError.input(.badIPv4(destinationIP)) }
        c.sourceIP = s
        c.destinationIP = d
        do { try c.validate() } catch { throw CLIError.input(error) }
        let metrics = try running.startMetrics(command: "pktgen")
        defer { metrics?.close() }
        let opened = try AdapterFactory.open(device: device, model: common.model, nic: common.nic, logger: logger, tap: common.tap)
        defer { opened.close() }
        Stop.installHandlers()
        metrics?.watch(opened)
        let generator = PacketGenerator(configuration: c, poolSize: 512)
        do { _ = try opened.adapter.openBinding(generator) } catch { throw CLIError.adapter("opening a binding on \(opened.address)", error) }
        if let e = generator.setupError { throw CLIError.adapter("making the send pool on \(opened.address)", e) }
        try opened.startReceiving()
        logger.debug("sending \(n) frame(s) of \(size) bytes at \(rate == 0 ? "full speed" : "\(rate)/s")")
        var onWire = 0, outOfOrder = 0
        var expected: UInt64 = 0
        metrics?.report {
            var f = [
                CommandFigure("sent", generator.sent, help: "Frames sent (the final JSON's sent)."),
                CommandFigure("bytes", generator.sentBytes, help: "Bytes sent (the final JSON's bytes)."),
                CommandFigure("completed", generator.completed, help: "Sends completed (the final JSON's completed)."),
                CommandFigure("send_errors", generator.sendErrors, help: "Sends that failed (the final JSON's sendErrors)."),
            ]
            if opened.wire != nil {
                f.append(CommandFigure("on_wire", UInt64(onWire), help: "Frames seen on the model's wire (the final JSON's onWire)."))
                f.append(CommandFigure("out_of_order", UInt64(outOfOrder), help: "Frames on the model's wire out of sequence (the final JSON's outOfOrder)."))
            }
            return f
        }
        let start = Clock.monotonicNanoseconds()
        while !Stop.isRequested && !(generator.isComplete && generator.isDrained) {
            let now = Clock.monotonicNanoseconds()
            let sent = generator.generate(now: now)
            _ = opened.poll()
            if let wire = opened.wire {
                for f in wire.takeTransmitted() {
                    onWire += 1
                    if GeneratedFrameLayout.sequenceNumber(in: f) != expected { outOfOrder += 1 }
                    expected &+= 1
                }
            }
            if sent == 0, let wait = generator.nanosecondsUntilDue(now: Clock.monotonicNanoseconds()), wait > 0 {
                sleep(nanoseconds: min(wait, 1_000_000))
            }
            metrics?.service()
            progress.update(total: generator.sent) {
                "\(generator.sentBytes) bytes, completed \(generator.completed), send errors \(generator.sendErrors)"
            }
        }
        progress.finish()
        let elapsed = Double(Clock.monotonicNanoseconds() - start) / 1e9
        metrics?.finish()
        let (halt, mapped) = opened.close()
        let pps = elapsed > 0 ? Double(generator.sent) / elapsed : 0
        if common.json {
            print("{\"sent\": \(generator.sent), \"bytes\": \(generator.sentBytes), \"completed\": \(generator.completed), \"sendErrors\": \(generator.sendErrors), \"seconds\": \(elapsed), \"rate\": \(Int(pps))\(opened.wire != nil ? ", \"onWire\": \(onWire), \"outOfOrder\": \(outOfOrder)" : "")}")
        } else {
            print("sent \(generator.sent) frame(s) of \(size) bytes in \(String(format2: elapsed)) s (\(Int(pps)) frames/s); completed \(generator.completed), send errors \(generator.sendErrors)")
            if opened.wire != nil { print("on the model's wire: \(onWire) frame(s), \(outOfOrder) out of order") }
            print("\(halt); \(mapped) bytes left mapped")
        }
        metrics?.stop()
    }
}

extension String {
    /// A number with two decimals, without Foundation.
    init(format2 v: Double) {
        let hundredths = Int((v * 100).rounded())
        let frac = hundredths % 100
        self = "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
    }
}
