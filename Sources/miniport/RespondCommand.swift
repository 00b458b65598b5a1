import ArgumentParser
import MiniportRegistry
import Logging
import MiniportMetrics
import NDIS
import Protocols

struct Respond: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer ARP and ping (ICMP echo) for an IPv4 address.",
        discussion: """
        A tiny IPv4 host on the NIC: it answers ARP requests for --ip with the NIC's MAC and ICMP \
        echo requests with echo replies (checksums checked and computed), until Ctrl-C, or until \
        --count replies were sent or --seconds passed. With --model, a simulated peer on the model's \
        wire sends ARP requests and pings and checks every reply.
        """)

    @Option(help: "PCI address of a NIC bound to vfio-pci (dddd:bb:dd.f); with --model, names the model NIC.")
    var device: String?

    @Option(help: ArgumentHelp("The IPv4 address to answer for.", valueName: "A.B.C.D"))
    var ip: String

    @Option(parsing: .unconditional, help: "Answer this many requests, then stop.")
    var count: Int?

    @Option(parsing: .unconditional, help: "Stop after S seconds.")
    var seconds: Double?

    @OptionGroup var common: CommonOptions

    @OptionGroup var ready: ReadyOption

    @OptionGroup var running: RunOptions

    func run() throws {
        let logger = Log.setUp(verbose: common.verbose)
        guard let address = IPv4Address(ip) else { throw CLIError.input(.badIPv4(ip)) }
        if let why = address.notAHostAddress { throw CLIError.input(.notAHostIPv4(ip, why)) }
        let limit = try parseCount(count, option: "--count")
        let duration = try parseSeconds(seconds)
        let progress = try running.progress("respond", unit: "replies")
        let metrics = try running.startMetrics(command: "respond")
        defer { metrics?.close() }
        try checkAddresses(device)
        let opened = try AdapterFactory.open(device: device, model: common.model, nic: common.nic, logger: logger, tap: common.tap)
        defer { opened.close() }
        Stop.installHandlers()
        metrics?.watch(opened)
        let responder = Responder(address: address, limit: limit)
        do {
            // Every frame type: the responder counts what it does not answer (IPv6, LLDP, …) as
            // ignored; a binding filtered to ARP and IPv4 would leave them to the framework, which
            // counts frames no binding wants as drops, and a busy LAN would read as a lossy NIC.
            let binding = try opened.adapter.openBinding(responder)
            // ARP requests are broadcast, pings directed: nothing else is asked of the NIC.
            _ = try binding.request(.setPacketFilter([.directed, .broadcast]))
        } catch {
            throw CLIError.adapter("opening a binding on \(opened.address)", error)
        }
        if let e = responder.setupError { throw CLIError.adapter("making the send pool on \(opened.address)", e) }
        try opened.startReceiving()
        logger.debug("answering ARP and ping for \(address) as \(responder.mac.map { "\($0)" } ?? "?")")
        try ready.signal()
        let peer = opened.wire.map { SimulatedPeer(wire: $0, target: address, targetMAC: responder.mac ?? AdapterFactory.modelMAC) }
        metrics?.report {
            var f = [
                CommandFigure("arp_replies", responder.arpReplies, help: "ARP replies sent (the final JSON's arpReplies)."),
                CommandFigure("echo_replies", responder.echoReplies, help: "ICMP echo replies sent (the final JSON's echoReplies)."),
                CommandFigure("ignored", responder.ignored, help: "Frames not for the responder (the final JSON's ignored)."),
                CommandFigure("malformed", responder.malformed, help: "Malformed requests (the final JSON's malformed)."),
                CommandFigure("drops", responder.drops + opened.drops, help: "Frames lost (the final JSON's drops)."),
            ]
            if let peer {
                f.append(CommandFigure("peer_verified", UInt64(peer.verified), help: "Replies the simulated peer checked correct (the final JSON's peerVerified)."))
                f.append(CommandFigure("peer_bad", UInt64(peer.bad), help: "Replies the simulated peer found wrong (the final JSON's peerBad)."))
            }
            return f
        }
        let end = deadline(after: duration)
        var lastRequest: UInt64 = 0
        while !responder.isComplete && !Stop.isRequested {
            let now = Clock.monotonicNanoseconds()
            if let end, now >= end { break }
            if let peer, now - lastRequest >= 20_000_000 {
                peer.ask()
                lastRequest = now
            }
            let n = opened.poll()
            peer?.check(logger: logger)
            if n == 0 { sleep(nanoseconds: peer == nil ? 100_000 : 1_000_000) }
            metrics?.service()
            progress.update(total: responder.replies) {
                "ARP \(responder.arpReplies), ping \(responder.echoReplies), ignored \(responder.ignored), malformed \(responder.malformed), drops \(responder.drops + opened.drops)"
            }
        }
        progress.finish()
        // Let the last replies leave (the model transmits on its next steps).
        for _ in 0..<8 {
            opened.poll()
            peer?.check(logger: logger)
        }
        let drops = opened.drops
        metrics?.finish()
        let (halt, mapped) = opened.close()
        if common.json {
            var extra = ""
            if let peer { extra = ", \"peerVerified\": \(peer.verified), \"peerBad\": \(peer.bad)" }
            print("{\"ip\": \"\(address)\", \"arpReplies\": \(responder.arpReplies), \"echoReplies\": \(responder.echoReplies), \"ignored\": \(responder.ignored), \"malformed\": \(responder.malformed), \"drops\": \(responder.drops + drops)\(extra)}")
        } else {
            print("answered \(responder.arpReplies) ARP request(s) and \(responder.echoReplies) ping(s) for \(address); ignored \(responder.ignored), malformed \(responder.malformed), dropped \(responder.drops + drops)")
            if let peer { print("simulated peer: \(peer.verified) correct repl(ies), \(peer.bad) wrong") }
            print("\(halt); \(mapped) bytes left mapped")
        }
        metrics?.stop()
    }
}

/// A host on the model's wire that sends ARP requests and pings and checks the replies.
final class SimulatedPeer {
    let wire: any Wire
    let target: IPv4Address
    let targetMAC: MACAddress
    let mac = MACAddress(0x52, 0x54, 0x00, 0xbb, 0x00, 0x02)
    var ip: IPv4Address { IPv4Address(target.value & 0xffff_ff00 | ((target.value & 0xff) == 2 ? 3 : 2)) }
    private var sequence: UInt16 = 0
    private(set) var verified = 0
    private(set) var bad = 0

    init(wire: any Wire, target: IPv4Address, targetMAC: MACAddress) {
        self.wire = wire
        self.target = target
        self.targetMAC = targetMAC
    }

    func ask() {
        sequence &+= 1
        if sequence % 2 == 1 {
            wire.inject(FrameBuilder.arpRequest(senderMAC: mac, senderIP: ip, targetIP: target))
        } else {
            wire.inject(FrameBuilder.echoRequest(sourceMAC: mac, destinationMAC: targetMAC, source: ip, destination: target, sequence: sequence))
        }
    }

    func check(logger: Logger) {
        for f in wire.takeTransmitted() {
            let ok: Bool
            if f.count >= 42, f[12] == 0x08, f[13] == 0x06 {
                ok = Array(f[0..<6]) == mac.array && f[21] == 2 && Array(f[22..<28]) == targetMAC.array
                logger.debug("ARP reply \(ok ? "ok" : "wrong")")
            } else if f.count >= 42, f[12] == 0x08, f[13] == 0x00, f[23] == 1 {
                let total = Int(f[16]) << 8 | Int(f[17])
                ok = f[34] == 0 && Array(f[14..<34]).withUnsafeBytes { InternetChecksum.verify($0) }
                    && 14 + total <= f.count && Array(f[34..<(14 + total)]).withUnsafeBytes { InternetChecksum.verify($0) }
                logger.debug("echo reply \(ok ? "ok" : "wrong")")
            } else {
                ok = false
            }
            if ok { verified += 1 } else { bad += 1 }
        }
    }
}
