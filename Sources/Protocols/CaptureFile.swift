#if canImport(Glibc)
import Glibc
#endif
import NDIS

/// The file format a capture writes.
public enum CaptureFormat: String, Sendable, CaseIterable {
    /// pcapng: one interface per receive queue, nanosecond timestamps.
    case pcapng
    /// Classic pcap with nanosecond timestamps (magic 0xa1b23c4d); it has no interfaces, so the
    /// queue of each frame is lost.
    case pcap

    /// The format a file name asks for: `.pcap` is classic, anything else pcapng.
    public static func forFileName(_ path: String) -> CaptureFormat {
        path.hasSuffix(".pcap") ? .pcap : .pcapng
    }
}

/// One interface of a pcapng file: a receive queue.
public struct CaptureInterface: Sendable, Equatable {
    /// The queue whose frames the interface carries.
    public var queue: ReceiveQueueID
    /// `if_name`: `rxq<id>`.
    public var name: String
    /// `if_description`: the queue's filters (`default`, `mac 52:54:00:aa:00:01`, `vlan 100`).
    public var description: String

    public init(queue: ReceiveQueueID, name: String? = nil, description: String) {
        self.queue = queue
        self.name = name ?? "rxq\(queue.rawValue)"
        self.description = description
    }
}

/// Errors of capture files. Messages name the file and what to do.
public enum CaptureFileError: Error, Equatable, CustomStringConvertible {
    case cannotCreate(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case tooManyInterfaces(Int)

    public var description: String {
        switch self {
        case let .cannotCreate(path, reason): "cannot create capture file \(path): \(reason); check the directory exists and is writable"
        case let .writeFailed(path, reason): "writing capture file \(path) failed: \(reason); check free space"
        case let .tooManyInterfaces(n): "a capture takes at most \(QueueCounters.capacity) receive queues, got \(n)"
        }
    }
}

/// Writes pcapng or classic pcap through a preallocated buffer: records are assembled in place and
/// written with one `write(2)` per buffer-full, so writing a frame allocates nothing.
///
/// pcapng layout (pcapng specification, draft-ietf-opsawg-pcapng): a Section Header Block, one
/// Interface Description Block per interface (link type 1, Ethernet; `if_name`, `if_description`,
/// `if_tsresol` = 9, nanoseconds), then one Enhanced Packet Block per frame.
public final class CaptureFileWriter {
    public let path: String
    public let format: CaptureFormat
    /// Longest frame part written (frames are cut to this, their original length kept).
    public let snapLength: Int
    let fd: Int32
    let buffer: UnsafeMutableRawBufferPointer
    var used = 0
    public private(set) var bytesWritten: UInt64 = 0
    /// The first write error, if any (later frames are dropped and counted by the caller).
    public private(set) var writeError: CaptureFileError?
    public private(set) var isClosed = false

    /// Creates (truncates) `path` and writes the file header and the interfaces.
    /// - Throws: `CaptureFileError` when the file cannot be created or written.
    public init(path: String, format: CaptureFormat, interfaces: [CaptureInterface], snapLength: Int = 65535,
                bufferSize: Int = 1 << 20) throws(CaptureFileError) {
        guard interfaces.count <= QueueCounters.capacity else { throw .tooManyInterfaces(interfaces.count) }
        self.path = path
        self.format = format
        self.snapLength = snapLength
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotCreate(path: path, reason: String(cString: strerror(errno))) }
        self.fd = fd
        buffer = .allocate(byteCount: max(bufferSize, 4 * 65536), alignment: 8)
        switch format {
        case .pcapng:
            writeSectionHeader()
            for i in interfaces { writeInterface(i) }
        case .pcap:
            writeClassicHeader()
        }
        flush()
        if let writeError { throw writeError }
    }

    deinit {
        if !isClosed { close() }
        buffer.deallocate()
    }

    // MARK: Records

    /// Reserves room for one record of at most `length` bytes, flushing first when needed.
    /// - Returns: the record's offset in the buffer.
    @inline(__always)
    func reserve(_ length: Int) -> Int {
        if used + length > buffer.count { flush() }
        return used
    }

    func put16(_ o: Int, _ v: UInt16) { buffer.storeBytes(of: v, toByteOffset: o, as: UInt16.self) }
    func put32(_ o: Int, _ v: UInt32) { buffer.storeBytes(of: v, toByteOffset: o, as: UInt32.self) }

    /// Appends a pcapng option (code, length, value padded to 32 bits) at `o`; returns the new offset.
    func putOption(_ o: Int, code: UInt16, _ value: [UInt8]) -> Int {
        put16(o, code)
        put16(o + 2, UInt16(value.count))
        for (i, b) in value.enumerated() { buffer[o + 4 + i] = b }
        let padded = (value.count + 3) & ~3
        for i in value.count..<padded { buffer[o + 4 + i] = 0 }
        return o + 4 + padded
    }

    func writeSectionHeader() {
        // Section Header Block, written in host byte order (the byte-order magic tells readers which).
        let app = Array("miniport".utf8)
        let o = reserve(28 + 4 + ((app.count + 3) & ~3) + 4 + 4)
        put32(o, 0x0A0D_0D0A)
        put32(o + 8, 0x1A2B_3C4D)
        put16(o + 12, 1)      // major version
        put16(o + 14, 0)      // minor version
        put32(o + 16, 0xFFFF_FFFF) // section length: unknown (-1)
        put32(o + 20, 0xFFFF_FFFF)
        var e = putOption(o + 24, code: 4, app) // shb_userappl
        e = putOption(e, code: 0, [])            // opt_endofopt
        let total = e + 4 - o
        put32(o + 4, UInt32(total))
        put32(e, UInt32(total))
        used = o + total
    }

    func writeInterface(_ i: CaptureInterface) {
        let name = Array(i.name.utf8), desc = Array(i.description.utf8)
        let o = reserve(16 + 4 + ((name.count + 3) & ~3) + 4 + ((desc.count + 3) & ~3) + 8 + 4 + 4 + 16)
        put32(o, 0x0000_0001)
        put16(o + 8, 1)       // LINKTYPE_ETHERNET
        put16(o + 10, 0)
        put32(o + 12, UInt32(snapLength))
        var e = putOption(o + 16, code: 2, name) // if_name
        e = putOption(e, code: 3, desc)          // if_description
        e = putOption(e, code: 9, [9])           // if_tsresol: 10^-9 s
        e = putOption(e, code: 0, [])
        let total = e + 4 - o
        put32(o + 4, UInt32(total))
        put32(e, UInt32(total))
        used = o + total
    }

    func writeClassicHeader() {
        let o = reserve(24)
        put32(o, 0xA1B2_3C4D) // nanosecond-resolution magic
        put16(o + 4, 2)
        put16(o + 6, 4)
        put32(o + 8, 0)       // thiszone
        put32(o + 12, 0)      // sigfigs
        put32(o + 16, UInt32(snapLength))
        put32(o + 20, 1)      // LINKTYPE_ETHERNET
        used = o + 24
    }

    /// Writes one frame as on the wire (a stripped VLAN tag put back) on interface `interface`.
    /// - Returns: the frame's length on the wire, or nil when the file has failed.
    public func write(_ nbl: NetBufferList, interface: Int, timestamp: UInt64) -> Int? {
        guard writeError == nil, !isClosed else { return nil }
        let wireMax = min(nbl.dataLength + EthernetFrame.vlanTagLength, snapLength)
        switch format {
        case .pcapng:
            let o = reserve(28 + ((wireMax + 3) & ~3) + 4)
            let data = UnsafeMutableRawBufferPointer(rebasing: buffer[(o + 28)..<(o + 28 + wireMax)])
            let (wire, copied) = nbl.copyWireFrame(into: data)
            let padded = (copied + 3) & ~3
            for i in copied..<padded { buffer[o + 28 + i] = 0 }
            let total = 28 + padded + 4
            put32(o, 0x0000_0006)
            put32(o + 4, UInt32(total))
            put32(o + 8, UInt32(interface))
            put32(o + 12, UInt32(timestamp >> 32))
            put32(o + 16, UInt32(timestamp & 0xffff_ffff))
            put32(o + 20, UInt32(copied))
            put32(o + 24, UInt32(wire))
            put32(o + total - 4, UInt32(total))
            used = o + total
            return wire
        case .pcap:
            let o = reserve(16 + wireMax)
            let data = UnsafeMutableRawBufferPointer(rebasing: buffer[(o + 16)..<(o + 16 + wireMax)])
            let (wire, copied) = nbl.copyWireFrame(into: data)
            put32(o, UInt32(timestamp / 1_000_000_000))
            put32(o + 4, UInt32(timestamp % 1_000_000_000))
            put32(o + 8, UInt32(copied))
            put32(o + 12, UInt32(wire))
            used = o + 16 + copied
            return wire
        }
    }

    /// Writes what the buffer holds to the file.
    public func flush() {
        var done = 0
        while done < used && writeError == nil {
            // Safety: [done, used) lies inside the buffer.
            let n = Glibc.write(fd, buffer.baseAddress! + done, used - done)
            if n < 0 {
                if errno == EINTR { continue }
                writeError = .writeFailed(path: path, reason: String(cString: strerror(errno)))
                break
            }
            done += n
            bytesWritten &+= UInt64(n)
        }
        used = 0
    }

    /// Flushes and closes the file.
    public func close() {
        guard !isClosed else { return }
        flush()
        _ = Glibc.close(fd)
        isClosed = true
    }
}
