import Foundation
import NDIS

/// One received frame as a scenario reports it (JSON): the queue it was indicated on, its bytes,
/// how the miniport split it into segments, and the per-packet info.
struct ReceivedFrame: Codable, Equatable {
    var queue: Int
    var length: Int
    /// The whole frame (as indicated: a stripped VLAN tag is not in it), hex.
    var bytes: String
    /// Bytes per NET_BUFFER segment (two with lookahead split: header, then data).
    var segments: [Int]
    var vlan: Int?
    var priority: Int?
    /// Checksum verdicts: ipv4, ipv4-bad, tcp, tcp-bad, udp, udp-bad.
    var checksum: [String]
    /// Indicated with NDIS_RECEIVE_FLAGS_RESOURCES.
    var resources: Bool
    /// Milliseconds since the scenario's start (its own clock).
    var atMilliseconds: Double
    /// With `recordThreads`: the kernel thread id and CPU that indicated the frame.
    var thread: Int? = nil
    var cpu: Int? = nil
}

/// A protocol that records every frame it is given, per queue, and can echo them back (MACs
/// swapped) through a send pool. Sends it makes are counted when they complete.
final class FrameRecorder: ProtocolDriver {
    let echo: Bool
    let start: ContinuousClock.Instant
    let keep: Int
    var pool: SendPool?
    var frames: [ReceivedFrame] = []
    var perQueue: [Int: Int] = [:]
    var echoed = 0
    var sendCompletions: [String: Int] = [:]
    var completed = 0
    /// Sends that completed with NDIS_STATUS_SUCCESS.
    var successes = 0
    /// Record the indicating thread and CPU of every frame (receive workers indicate on several threads).
    var recordThreads = false
    /// Indications may come from several worker threads at once: every access holds this lock.
    private let lock = NSLock()

    /// Runs `body` holding the recorder's lock (read its fields while workers may indicate).
    func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    init(echo: Bool = false, keep: Int = 4096, start: ContinuousClock.Instant = .now) {
        self.echo = echo
        self.keep = keep
        self.start = start
    }

    var total: Int { perQueue.values.reduce(0, +) }

    func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        take(chain, binding: binding, queue: queue, resources: false)
        binding.returnNetBufferLists(chain)
    }

    var handlesResourcesIndications: Bool { true }

    func receiveNetBufferListsWithResources(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
        take(chain, binding: binding, queue: queue, resources: true)
    }

    func sendNetBufferListsComplete(_ chain: consuming NetBufferListChain, binding: Binding) {
        lock.lock()
        defer { lock.unlock() }
        chain.forEach { nbl in
            sendCompletions["\(nbl.status)", default: 0] += 1
            completed += 1
            if nbl.status == .success { successes += 1 }
        }
        binding.freeSendNetBufferLists(chain)
    }

    private func take(_ chain: borrowing NetBufferListChain, binding: Binding, queue: ReceiveQueueID, resources: Bool) {
        lock.lock()
        defer { lock.unlock() }
        var replies: [[UInt8]] = []
        let at = Self.milliseconds(ContinuousClock.now - start)
        let thread = recordThreads ? Self.currentThreadID() : nil
        let cpu = recordThreads ? Self.currentCPU() : nil
        chain.forEach { nbl in
            perQueue[Int(queue.rawValue), default: 0] += 1
            let b = nbl.dataBytes()
            if frames.count < keep {
                let info = nbl.info
                var segments: [Int] = []
                var left = nbl.dataLength
                var offset = nbl.dataOffset
                for i in 0..<nbl.segmentCount where left > 0 {
                    let s = nbl.segment(i)
                    let usable = max(0, Int(s.length) - offset)
                    offset = max(0, offset - Int(s.length))
                    let n = min(usable, left)
                    if n > 0 { segments.append(n) }
                    left -= n
                }
                frames.append(ReceivedFrame(
                    queue: Int(queue.rawValue), length: b.count, bytes: Self.hex(b), segments: segments,
                    vlan: info.vlanPresent ? Int(info.vlanID) : nil,
                    priority: info.vlanPresent ? Int(info.userPriority) : nil,
                    checksum: Self.names(info.checksum), resources: resources, atMilliseconds: at,
                    thread: thread, cpu: cpu))
            }
            if echo, b.count >= 14 { replies.append(Array(b[6..<12]) + Array(b[0..<6]) + Array(b[12...])) }
        }
        guard echo, let pool, !replies.isEmpty else { return }
        let out = pool.allocate(count: replies.count)
        var i = 0
        out.forEach { nbl in
            replies[i].withUnsafeBytes { _ = SendPool.fill(nbl, with: $0) }
            i += 1
        }
        echoed += out.count
        binding.send(out)
    }

    /// The calling thread's kernel id (gettid; Glibc hides it without _GNU_SOURCE, so looked up).
    static func currentThreadID() -> Int {
        typealias GetTID = @convention(c) () -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gettid") else { return -1 }
        return Int(unsafeBitCast(symbol, to: GetTID.self)())
    }

    /// The CPU the calling thread runs on (sched_getcpu, looked up like gettid).
    static func currentCPU() -> Int {
        typealias GetCPU = @convention(c) () -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_getcpu") else { return -1 }
        return Int(unsafeBitCast(symbol, to: GetCPU.self)())
    }

    static func names(_ c: ChecksumInfo) -> [String] {
        var n: [String] = []
        if c.contains(.ipv4Succeeded) { n.append("ipv4") }
        if c.contains(.ipv4Failed) { n.append("ipv4-bad") }
        if c.contains(.tcpSucceeded) { n.append("tcp") }
        if c.contains(.tcpFailed) { n.append("tcp-bad") }
        if c.contains(.udpSucceeded) { n.append("udp") }
        if c.contains(.udpFailed) { n.append("udp-bad") }
        return n
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func bytes(hex: String) -> [UInt8]? {
        let u = Array(hex.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }

    static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}

/// Classic pcap files (the test bed's host side reads and writes the same format).
enum PCAP {
    /// Frames of a classic pcap file (either byte order, µs or ns timestamps).
    static func read(_ path: String) throws -> [[UInt8]] {
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        guard data.count >= 24 else { return [] }
        func u32(_ o: Int, _ big: Bool) -> UInt32 {
            let v = UInt32(data[o]) | UInt32(data[o + 1]) << 8 | UInt32(data[o + 2]) << 16 | UInt32(data[o + 3]) << 24
            return big ? v.byteSwapped : v
        }
        let magic = u32(0, false)
        let big: Bool
        switch magic {
        case 0xA1B2_C3D4, 0xA1B2_3C4D: big = false
        case 0xD4C3_B2A1, 0x4D3C_B2A1: big = true
        default: throw ScenarioError("\(path) is not a pcap file (magic \(String(magic, radix: 16)))")
        }
        var frames: [[UInt8]] = []
        var o = 24
        while o + 16 <= data.count {
            let n = Int(u32(o + 8, big))
            o += 16
            guard o + n <= data.count else { break }
            frames.append(Array(data[o..<o + n]))
            o += n
        }
        return frames
    }

    /// Writes frames as a classic little-endian pcap (LINKTYPE_ETHERNET).
    static func write(_ path: String, _ frames: [[UInt8]]) throws {
        var out: [UInt8] = []
        func put32(_ v: UInt32) { out += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
        put32(0xA1B2_C3D4); out += [2, 0, 4, 0]; put32(0); put32(0); put32(65535); put32(1)
        let now = UInt32(truncatingIfNeeded: Int(Date().timeIntervalSince1970))
        for f in frames {
            put32(now); put32(0); put32(UInt32(f.count)); put32(UInt32(f.count))
            out += f
        }
        try Data(out).write(to: URL(fileURLWithPath: path))
    }
}

/// A scenario failure with a message that says what was expected.
struct ScenarioError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Writes the frames of `records` (their bytes as indicated) to DIR/name as pcap, so that the test
/// bed prints what the guest saw when a scenario fails.
func writeGuestPcap(_ records: [ReceivedFrame], to dir: String, name: String) {
    try? PCAP.write(URL(fileURLWithPath: dir).appendingPathComponent(name).path,
                    records.compactMap { FrameRecorder.bytes(hex: $0.bytes) })
}

/// Writes `value` as pretty JSON to DIR/name.
func writeJSON<T: Encodable>(_ value: T, to dir: String, name: String) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(value).write(to: URL(fileURLWithPath: dir).appendingPathComponent(name))
}

/// True once the host has written DIR/host-done (the directory is listed: a 9p mount may cache a
/// negative lookup of the name).
func hostDone(_ dir: String) -> Bool {
    (try? FileManager.default.contentsOfDirectory(atPath: dir))?.contains("host-done") ?? false
}
