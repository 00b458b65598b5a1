import ArgumentParser
import DeviceAccess
import Foundation
import Glibc
import IGB
import NDIS
import VFIO

/// `igb-pair`: two IGB NICs wired back to back (QEMU hub), both through VFIO in this one process:
/// each adapter sends `count` numbered frames to the other's address, both receive, and frames the
/// host injects on the shared wire reach both. Writes DIR/igb-pair.json.
struct IGBPair: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "igb-pair",
        abstract: "Two IGB adapters back to back through VFIO in one process: traffic both ways, plus what the host injects."
    )

    @Option(help: "PCI address of the first NIC (A).")
    var device: String

    @Option(help: "PCI address of the second NIC (B), on the same wire.")
    var peer: String

    @Option(help: "Directory for ready and igb-pair.json; host-done is awaited there.")
    var out: String

    @Option(help: "Frames each side sends to the other.")
    var count = 32

    @Option(help: "Seconds to run at most.")
    var seconds: Double = 30

    struct Side: Codable {
        var device = ""
        var mac = ""
        var bringUpMilliseconds = 0.0
        var sent = 0
        var sendCompletions: [String: Int] = [:]
        var sendSuccesses = 0
        /// Numbered frames from the other side, in arrival order.
        var fromPeer: [Int] = []
        var fromPeerMilliseconds: Double?
        var frames: [ReceivedFrame] = []
        var halt = ""
        var resourcesAfterClose: String?
    }

    struct Result: Codable {
        var ok = false
        var errors: [String] = []
        var a = Side()
        var b = Side()
        var milliseconds = 0.0
    }

    /// Ethertype of the numbered frames (IEEE local experimental), then "PAIR", the sender's
    /// letter and a 32-bit sequence number.
    static let ethertype: [UInt8] = [0x88, 0xB5]

    func run() throws {
        var result = Result()
        let start = ContinuousClock.now
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        do { try pair(&result, start: start) } catch { result.errors.append("\(error)") }
        result.milliseconds = FrameRecorder.milliseconds(ContinuousClock.now - start)
        result.ok = result.errors.isEmpty
        try writeJSON(result, to: out, name: "igb-pair.json")
        writeGuestPcap(result.a.frames, to: out, name: "guest-a-received.pcap")
        writeGuestPcap(result.b.frames, to: out, name: "guest-b-received.pcap")
        print("igb-pair: A got \(result.a.fromPeer.count) of B's frames, B got \(result.b.fromPeer.count) of A's")
        print(result.ok ? "igb-pair: ok" : "igb-pair: FAILED\n" + result.errors.map { "  " + $0 }.joined(separator: "\n"))
        if !result.ok { throw ExitCode(1) }
    }

    static func frame(to dst: MACAddress, from src: MACAddress, letter: UInt8, seq: Int) -> [UInt8] {
        var f = dst.array + src.array + ethertype + Array("PAIR".utf8) + [letter]
        f += withUnsafeBytes(of: UInt32(seq).bigEndian) { Array($0) }
        while f.count < 60 + seq % 200 { f.append(UInt8(truncatingIfNeeded: f.count &+ seq)) }
        return f
    }

    private func pair(_ result: inout Result, start: ContinuousClock.Instant) throws {
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(20)
        let fa = try VFIODevice.open(device)
        let fb = try VFIODevice.open(peer)
        if fa.supportsReset { try fa.reset() }
        if fb.supportsReset { try fb.reset() }
        var t = ContinuousClock.now
        let (adapterA, miniportA) = try IGBMiniport.makeAdapterWithMiniport(function: fa, name: "igb-a", configuration: config)
        result.a.bringUpMilliseconds = FrameRecorder.milliseconds(ContinuousClock.now - t)
        t = ContinuousClock.now
        let (adapterB, miniportB) = try IGBMiniport.makeAdapterWithMiniport(function: fb, name: "igb-b", configuration: config)
        result.b.bringUpMilliseconds = FrameRecorder.milliseconds(ContinuousClock.now - t)
        let macA = miniportA.permanentAddress, macB = miniportB.permanentAddress
        result.a.device = device; result.a.mac = macA.description
        result.b.device = peer; result.b.mac = macB.description
        let recA = FrameRecorder(start: start), recB = FrameRecorder(start: start)
        let bindA = try adapterA.openBinding(recA), bindB = try adapterB.openBinding(recB)
        let poolA = try bindA.makeSendPool(count: count, bufferSize: 2048)
        let poolB = try bindB.makeSendPool(count: count, bufferSize: 2048)
        try Data().write(to: URL(fileURLWithPath: out).appendingPathComponent("ready"))

        func send(_ binding: Binding, _ pool: SendPool, to dst: MACAddress, from src: MACAddress, letter: UInt8) -> Int {
            let chain = pool.allocate(count: count)
            var seq = 0
            chain.forEach { nbl in
                Self.frame(to: dst, from: src, letter: letter, seq: seq).withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) }
                seq += 1
            }
            binding.send(chain)
            return seq
        }
        result.a.sent = send(bindA, poolA, to: macB, from: macA, letter: UInt8(ascii: "A"))
        result.b.sent = send(bindB, poolB, to: macA, from: macB, letter: UInt8(ascii: "B"))

        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        var lastCheck = ContinuousClock.now
        while ContinuousClock.now < deadline {
            let n = adapterA.poll(budget: 64) + adapterB.poll(budget: 64)
            if n == 0 {
                usleep(100)
                if ContinuousClock.now - lastCheck > .milliseconds(100) {
                    lastCheck = ContinuousClock.now
                    if hostDone(out) { break }
                }
            }
        }
        for (side, rec, other) in [(\Result.a, recA, UInt8(ascii: "B")), (\Result.b, recB, UInt8(ascii: "A"))] {
            result[keyPath: side].frames = rec.frames
            result[keyPath: side].sendCompletions = rec.sendCompletions
            result[keyPath: side].sendSuccesses = rec.successes
            for f in rec.frames {
                guard let bytes = FrameRecorder.bytes(hex: f.bytes), bytes.count >= 23, Array(bytes[12..<14]) == Self.ethertype,
                      Array(bytes[14..<18]) == Array("PAIR".utf8), bytes[18] == other else { continue }
                let seq = Int(bytes[19]) << 24 | Int(bytes[20]) << 16 | Int(bytes[21]) << 8 | Int(bytes[22])
                result[keyPath: side].fromPeer.append(seq)
                result[keyPath: side].fromPeerMilliseconds = f.atMilliseconds
            }
        }
        for (name, side) in [("A", result.a), ("B", result.b)] {
            if side.fromPeer != Array(0..<count) {
                result.errors.append("\(name) received \(side.fromPeer.count) of the peer's \(count) frames in order: \(side.fromPeer.prefix(40))")
            }
            if side.sendSuccesses != count {
                result.errors.append("\(name)'s sends completed as \(side.sendCompletions), expected \(count) success")
            }
        }
        bindA.close(); bindB.close()
        let ha = adapterA.halt(), hb = adapterB.halt()
        result.a.halt = ha.description
        result.b.halt = hb.description
        if !ha.isClean { result.errors.append("A's halt was not clean: \(ha)") }
        if !hb.isClean { result.errors.append("B's halt was not clean: \(hb)") }
        closeAndCheck(fa, &result.a.resourcesAfterClose, &result.errors)
        closeAndCheck(fb, &result.b.resourcesAfterClose, &result.errors)
    }
}
