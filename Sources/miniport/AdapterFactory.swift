#if canImport(Glibc)
import Glibc
#endif
import Logging
import NDIS
import Protocols

/// The model's wire, seen from outside the NIC: put frames on it, take what the NIC sent.
protocol Wire: AnyObject {
    func inject(_ frame: [UInt8])
    func takeTransmitted() -> [[UInt8]]
}

extension LoopbackMiniport: Wire {}

/// An adapter a command opened, and what it needs to close it cleanly.
final class OpenedAdapter {
    let adapter: Adapter
    /// The wire, when the adapter is a model.
    let wire: (any Wire)?
    let memory: HostMemoryProvider?
    let lock: DeviceLock?
    let address: String
    let logger: Logger
    /// Frames the hardware dropped (no buffer), as far as the adapter can tell.
    var hardwareDrops: () -> UInt64
    private(set) var closed = false
    private var haltReport: HaltReport?

    init(adapter: Adapter, wire: (any Wire)?, memory: HostMemoryProvider?, lock: DeviceLock?, address: String, logger: Logger,
         hardwareDrops: @escaping () -> UInt64) {
        self.adapter = adapter
        self.wire = wire
        self.memory = memory
        self.lock = lock
        self.address = address
        self.logger = logger
        self.hardwareDrops = hardwareDrops
    }

    /// Frames lost below the protocols: the hardware's drops plus the framework's.
    var drops: UInt64 {
        if case let .statistics(s)? = try? adapter.request(.statistics) {
            return s.frameworkDrops + s.global.receiveDrops
        }
        return adapter.frameworkDrops + hardwareDrops()
    }

    /// Halts the adapter (which frees every queue's and the default queue's shared memory) and
    /// releases the device.
    /// - Returns: the halt report and the bytes still mapped afterwards (0 when clean).
    @discardableResult
    func close() -> (HaltReport, Int) {
        if let haltReport { return (haltReport, memory?.liveBytes ?? 0) }
        closed = true
        let report = adapter.halt()
        haltReport = report
        logger.debug("halted \(address): \(report)")
        let left = memory?.liveBytes ?? 0
        lock?.release()
        return (report, left)
    }
}

/// Opens adapters for the commands: the hardware model (`--model`) or a device by PCI address.
///
/// This is the one seam between the commands and the miniports: when the IGB miniport and its
/// 82576 model are in the build, `makeModel` returns the IGB miniport on the model and `makeDevice`
/// the IGB miniport on VFIO; the commands do not change.
enum AdapterFactory {
    /// The MAC address the model NIC has (a locally administered QEMU-style address).
    static let modelMAC = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)

    static func open(device: String?, model: Bool, logger: Logger, macAddress: MACAddress = modelMAC,
                     modelName: String = "model0") throws(CLIError) -> OpenedAdapter {
        if model {
            // A model NIC lives in this process; only a model named after a device address is
            // locked, so scripts that pass the same --device to the model see the same busy rule.
            let name = try device.map { (d: String) throws(CLIError) in try PCIAddressText.normalize(d) } ?? modelName
            let lock = try device.map { _ throws(CLIError) in try DeviceLock.acquire(name) }
            do { return try makeModel(name: name, macAddress: macAddress, lock: lock, logger: logger) } catch {
                lock?.release()
                throw error
            }
        }
        guard let device else { throw .input(.missing("--device ADDR is needed (a PCI address bound to vfio-pci), or --model for the hardware model")) }
        let address = try PCIAddressText.normalize(device)
        guard access("/sys/bus/pci/devices/\(address)", F_OK) == 0 else { throw .unknownDevice(address) }
        let lock = try DeviceLock.acquire(address)
        lock.release()
        throw .noMiniport(address)
    }

    /// The hardware model. Until the IGB model is in the build this is the loopback miniport (a
    /// device-less NIC with emulated MAC/VLAN filters and an injectable wire).
    static func makeModel(name: String, macAddress: MACAddress, lock: DeviceLock?, logger: Logger) throws(CLIError) -> OpenedAdapter {
        var c = LoopbackMiniport.Configuration()
        c.macAddress = macAddress
        c.hardwareQueues = 7          // 82576: 8 VMDq pools, one of them the default queue
        c.buffersPerQueue = 256
        c.bufferSize = 2048
        c.lookaheadSplit = false
        let miniport = LoopbackMiniport(c)
        let memory = HostMemoryProvider()
        let adapter = Adapter(name: name, miniport: miniport, sharedMemory: memory)
        do {
            logger.debug("initializing \(name) (model, \(c.hardwareQueues) VMQ queues, \(c.buffersPerQueue) buffers per queue)")
            try adapter.initialize()
            try adapter.restart()
            logger.debug("\(name) running, MAC \(macAddress)")
        } catch {
            adapter.halt()
            throw .adapter("bringing up \(name)", error)
        }
        return OpenedAdapter(adapter: adapter, wire: miniport, memory: memory, lock: lock, address: name, logger: logger,
                             hardwareDrops: { UInt64(miniport.hardwareDrops) })
    }
}

/// PCI address text: `dddd:bb:dd.f` or `bb:dd.f` (domain 0000).
enum PCIAddressText {
    static func normalize(_ text: String) throws(CLIError) -> String {
        var parts = text.lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 { parts.insert("0000", at: 0) }
        guard parts.count == 3 else { throw .badAddress(text) }
        let df = parts[2].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard df.count == 2 else { throw .badAddress(text) }
        func hex(_ s: String, _ digits: Int, max: Int) -> Bool {
            s.count == digits && s.allSatisfy(\.isHexDigit) && (Int(s, radix: 16) ?? Int.max) <= max
        }
        guard hex(parts[0], 4, max: 0xffff), hex(parts[1], 2, max: 0xff), hex(df[0], 2, max: 0x1f), hex(df[1], 1, max: 7) else {
            throw .badAddress(text)
        }
        return "\(parts[0]):\(parts[1]):\(df[0]).\(df[1])"
    }
}

/// One process per device: an advisory lock (flock) on a file named after the device.
/// A second miniport process on the same device gets "device busy".
final class DeviceLock {
    let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Where the lock files live (MINIPORT_LOCK_DIR overrides, for tests).
    static var directory: String {
        if let d = getenv("MINIPORT_LOCK_DIR") { return String(cString: d) }
        return access("/run/lock", W_OK) == 0 ? "/run/lock" : "/tmp"
    }

    static func acquire(_ device: String) throws(CLIError) -> DeviceLock {
        let safe = device.map { $0 == "/" ? "_" : $0 }
        let path = "\(directory)/miniport-\(String(safe)).lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .failed("cannot open the lock file \(path): \(String(cString: strerror(errno))); set MINIPORT_LOCK_DIR to a writable directory") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFileDescriptor: fd)) ?? ""
            Glibc.close(fd)
            throw .busy(device, holder.isEmpty ? "another process has it open" : "process \(holder) has it open")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())"
        _ = pid.withCString { Glibc.write(fd, $0, strlen($0)) }
        return DeviceLock(path: path, fd: fd)
    }

    func release() {
        guard fd >= 0 else { return }
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        Glibc.close(fd)
        fd = -1
    }

    deinit { release() }
}

extension String {
    /// Reads a small file from the start of an open descriptor.
    init(contentsOfFileDescriptor fd: Int32) throws {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = pread(fd, &buffer, 64, 0)
        self = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).filter { !$0.isWhitespace } : ""
    }
}
