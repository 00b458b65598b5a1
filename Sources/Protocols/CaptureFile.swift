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
    /// The reader of a pipe or FIFO went away (EPIPE): the normal end of `capture --write - | tshark -c N`.
    case readerGone(path: String)
    /// A stop was asked for while no reader had opened the FIFO, or while a write to it was blocked.
    case stoppedWaitingForReader(path: String)

    public var description: String {
        switch self {
        case let .cannotCreate(path, reason): "cannot create capture file \(path): \(reason); check the directory exists and is writable"
        case let .writeFailed(path, reason): "writing capture file \(path) failed: \(reason); the capture stopped there and the file holds every frame counted (free some space or write elsewhere)"
        case let .tooManyInterfaces(n): "a capture takes at most \(QueueCounters.capacity) receive queues, got \(n)"
        case let .readerGone(path): "the reader of \(CaptureFileError.name(path)) went away (broken pipe); the capture stopped"
        case let .stoppedWaitingForReader(path): "stopped while waiting for a reader of \(CaptureFileError.name(path)); frames not read by then were not captured"
        }
    }

    /// True when the capture ended because its reader did (not a failure: the counts are final).
    public var isReaderGone: Bool {
        if case .readerGone = self { return true }
        return false
    }

    static func name(_ path: String) -> String { path == "-" ? "standard output" : path }
}

/// Where a capture writes: a file, a FIFO, or standard output (`-`).
public struct CaptureDestination {
    /// The open descriptor (owned: closing the writer closes it).
    public let fd: Int32
    public let path: String
    /// True for a pipe, FIFO, socket or terminal: written per batch, never truncated.
    public let isStream: Bool

    /// Opens `path` for writing: `-` is standard output (the `tcpdump -w -` convention); a FIFO is
    /// opened without blocking, retried every 20 ms until a reader opens it or `shouldGiveUp`
    /// returns true (a signal arrived), so Ctrl-C and SIGTERM work while no reader is there.
    /// - Throws: `.cannotCreate`, or `.stoppedWaitingForReader` when given up.
    public static func open(_ path: String, shouldGiveUp: () -> Bool = { false }) throws(CaptureFileError) -> CaptureDestination {
        if path == "-" {
            var st = stat()
            if fstat(1, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO {
                // A pipe: a descriptor of our own on it (a new open file description), so it can be
                // non-blocking without touching the shell's.
                let fd = Glibc.open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                if fd >= 0 { return CaptureDestination(fd: fd, path: path, isStream: true) }
            }
            let fd = fcntl(1, F_DUPFD_CLOEXEC, 3)
            guard fd >= 0 else { throw .cannotCreate(path: path, reason: String(cString: strerror(errno))) }
            return CaptureDestination(fd: fd, path: path, isStream: !isRegular(fd))
        }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO {
            while true {
                // A FIFO without a reader: O_NONBLOCK makes open fail with ENXIO instead of blocking.
                let fd = Glibc.open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                // It stays non-blocking: a reader that stops reading makes writes wait in poll(2),
                // which looks at the stop request every 100 ms.
                if fd >= 0 { return CaptureDestination(fd: fd, path: path, isStream: true) }
                guard errno == ENXIO || errno == EINTR else { throw .cannotCreate(path: path, reason: String(cString: strerror(errno))) }
                if shouldGiveUp() { throw .stoppedWaitingForReader(path: path) }
                var ts = timespec(tv_sec: 0, tv_nsec: 20_000_000)
                nanosleep(&ts, nil)
            }
        }
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotCreate(path: path, reason: String(cString: strerror(errno))) }
        return CaptureDestination(fd: fd, path: path, isStream: !isRegular(fd))
    }

    public init(fd: Int32, path: String, isStream: Bool) {
        self.fd = fd
        self.path = path
        self.isStream = isStream
    }

    static func isRegular(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
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
    /// A pipe, FIFO or terminal: the caller flushes per batch; a failed write is not undone.
    public let isStream: Bool
    /// Asked while a write waits (a full pipe, a signal): true abandons it (the stop signal of the
    /// commands), false keeps waiting.
    public var abandonOnInterrupt: () -> Bool = { false }
    /// Frames and bytes per interface in the buffer since the last successful flush. When a flush
    /// fails they are what was lost (`lostFrames(interface:)`): a regular file is cut back to the
    /// last complete flush, so the file holds exactly the frames not lost.
    let pending: UnsafeMutablePointer<UInt64>
    let pendingBytes: UnsafeMutablePointer<UInt64>
    let interfaceCount: Int
    /// Where the file started (a regular file is cut back to `start + bytesWritten` after a failed write).
    let startOffset: Int

    /// Creates (truncates) `path` and writes the file header and the interfaces.
    /// - Throws: `CaptureFileError` when the file cannot be created or written.
    public convenience init(path: String, format: CaptureFormat, interfaces: [CaptureInterface], snapLength: Int = 65535,
                            bufferSize: Int = 1 << 20) throws(CaptureFileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotCreate(path: path, reason: String(cString: strerror(errno))) }
        try self.init(destination: CaptureDestination(fd: fd, path: path, isStream: !CaptureDestination.isRegular(fd)), format: format,
                      interfaces: interfaces, snapLength: snapLength, bufferSize: bufferSize)
    }

    /// Writes the header and interfaces to an open destination (which the writer then owns).
    /// - Throws: `CaptureFileError` when the header cannot be written (the descriptor is closed).
    public init(destination: CaptureDestination, format: CaptureFormat, interfaces: [CaptureInterface], snapLength: Int = 65535,
                bufferSize: Int = 1 << 20) throws(CaptureFileError) {
        guard interfaces.count <= QueueCounters.capacity else {
            _ = Glibc.close(destination.fd)
            throw .tooManyInterfaces(interfaces.count)
        }
        self.path = destination.path
        self.format = format
        self.snapLength = snapLength
        self.fd = destination.fd
        self.isStream = destination.isStream
        startOffset = destination.isStream ? 0 : max(0, lseek(destination.fd, 0, SEEK_CUR))
        interfaceCount = max(1, interfaces.count)
        pending = .allocate(capacity: interfaceCount)
        pending.initialize(repeating: 0, count: interfaceCount)
        pendingBytes = .allocate(capacity: interfaceCount)
        pendingBytes.initialize(repeating: 0, count: interfaceCount)
        // Streams are flushed per batch: a smaller buffer is plenty.
        buffer = .allocate(byteCount: max(destination.isStream ? 1 << 18 : bufferSize, 4 * 65536), alignment: 8)
        switch format {
        case .pcapng:
            writeSectionHeader()
            for i in interfaces { writeInterface(i) }
        case .pcap:
            writeClassicHeader()
        }
        flush()
        if let writeError {
            close()
            throw writeError
        }
    }

    deinit {
        if !isClosed { close() }
        buffer.deallocate()
        pending.deallocate()
        pendingBytes.deallocate()
    }

    /// Frames of interface `i` lost in the failed flush (0 while no write failed).
    public func lostFrames(interface i: Int) -> UInt64 { writeError != nil && i < interfaceCount ? pending[i] : 0 }
    /// Their bytes as on the wire.
    public func lostBytes(interface i: Int) -> UInt64 { writeError != nil && i < interfaceCount ? pendingBytes[i] : 0 }

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
            guard writeError == nil else { return nil }
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
            tally(interface, wire)
            return wire
        case .pcap:
            let o = reserve(16 + wireMax)
            guard writeError == nil else { return nil }
            let data = UnsafeMutableRawBufferPointer(rebasing: buffer[(o + 16)..<(o + 16 + wireMax)])
            let (wire, copied) = nbl.copyWireFrame(into: data)
            put32(o, UInt32(timestamp / 1_000_000_000))
            put32(o + 4, UInt32(timestamp % 1_000_000_000))
            put32(o + 8, UInt32(copied))
            put32(o + 12, UInt32(wire))
            used = o + 16 + copied
            tally(interface, wire)
            return wire
        }
    }

    @inline(__always)
    func tally(_ interface: Int, _ wire: Int) {
        let i = interface < interfaceCount && interface >= 0 ? interface : 0
        pending[i] &+= 1
        pendingBytes[i] &+= UInt64(wire)
    }

    /// Writes what the buffer holds. The first failure stops the file for good: a regular file is
    /// cut back to its last complete flush (so it holds whole records only, exactly the frames
    /// not counted lost); EPIPE is `.readerGone`.
    public func flush() {
        guard writeError == nil else { used = 0; return }
        var done = 0
        while done < used {
            // Safety: [done, used) lies inside the buffer.
            let n = Glibc.write(fd, buffer.baseAddress! + done, used - done)
            if n < 0 {
                let e = errno
                if e == EINTR || e == EAGAIN {
                    if abandonOnInterrupt() { writeError = .stoppedWaitingForReader(path: path); break }
                    if e == EAGAIN {
                        // A non-blocking pipe that is full: wait until it takes more, or a stop.
                        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&p, 1, 100)
                    }
                    continue
                }
                writeError = e == EPIPE ? .readerGone(path: path) : .writeFailed(path: path, reason: String(cString: strerror(e)))
                break
            }
            if n == 0 { writeError = .writeFailed(path: path, reason: "nothing written"); break }
            done += n
        }
        if writeError == nil {
            bytesWritten &+= UInt64(used)
            pending.update(repeating: 0, count: interfaceCount)
            pendingBytes.update(repeating: 0, count: interfaceCount)
        } else if !isStream {
            // The first `done` bytes reached the file: keep the whole records among them (they are
            // no longer lost) and cut the file after the last one.
            let kept = keepWholeRecords(upTo: done)
            bytesWritten &+= UInt64(kept)
            _ = ftruncate(fd, off_t(startOffset) + off_t(bytesWritten))
        }
        used = 0
    }

    /// Walks the frame records at the start of the buffer that lie within its first `limit` bytes,
    /// takes them off the pending (lost) tallies, and returns where the last of them ends.
    /// The buffer holds frame records only: the headers were flushed by `init`.
    func keepWholeRecords(upTo limit: Int) -> Int {
        var o = 0
        while true {
            let length: Int, interface: Int, wire: UInt64
            switch format {
            case .pcapng:
                // Enhanced Packet Block: type, total length, interface id, ..., original length at 24.
                guard o + 28 <= limit else { return o }
                length = Int(buffer.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self))
                interface = Int(buffer.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self))
                wire = UInt64(buffer.loadUnaligned(fromByteOffset: o + 24, as: UInt32.self))
            case .pcap:
                // Record header: seconds, nanoseconds, captured length, original length.
                guard o + 16 <= limit else { return o }
                length = 16 + Int(buffer.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self))
                interface = 0
                wire = UInt64(buffer.loadUnaligned(fromByteOffset: o + 12, as: UInt32.self))
            }
            guard length > 0, o + length <= limit else { return o }
            let i = interface < interfaceCount ? interface : 0
            if pending[i] > 0 { pending[i] -= 1 }
            pendingBytes[i] -= min(pendingBytes[i], wire)
            o += length
        }
    }

    /// Flushes and closes the file.
    public func close() {
        guard !isClosed else { return }
        flush()
        _ = Glibc.close(fd)
        isClosed = true
    }
}
