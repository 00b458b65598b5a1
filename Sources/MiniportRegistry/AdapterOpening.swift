#if canImport(Glibc)
import Glibc
#endif
import DeviceAccess
import DriverKit
import IGB
import IGBModel
import Logging
import NDIS
import VFIO
import VirtioNet
import VirtioNetModel

/// A model NIC's wire, seen from outside the NIC: put frames on it, take what the NIC sent, and
/// let the model do its pending work (receive what waits on the wire, transmit what was queued).
public protocol Wire: AnyObject {
    func inject(_ frame: [UInt8])
    func takeTransmitted() -> [[UInt8]]
    func step()
}

extension LoopbackMiniport: Wire {
    public func step() {}
}

/// Why an adapter could not be opened: one line naming the thing and the fix.
public enum OpenError: Error, CustomStringConvertible, Equatable {
    case badAddress(String)
    case unknownDevice(String)
    case busy(String, String)
    /// No family claims the id: address, vendor, device.
    case noMiniport(String, UInt16, UInt16)
    /// A family recognises the id and refuses it: address, reason.
    case refused(String, String)
    case unknownModel(String)
    case adapter(String, NDISError)
    /// The Linux TAP of `--tap` could not be opened or attached.
    case tap(String)
    case failed(String)

    public var description: String {
        switch self {
        case let .badAddress(a): "bad PCI address '\(a)': write it as dddd:bb:dd.f (for example 0000:03:00.0); see miniport list"
        case let .unknownDevice(a): "no PCI device at \(a): see miniport list for the NICs present"
        case let .busy(a, why): "device \(a) is busy: \(why); stop the other miniport process first"
        case let .noMiniport(a, v, d):
            "no miniport in this build drives \(a) (\(MiniportRegistry.hex4(v)):\(MiniportRegistry.hex4(d))); this build drives \(MiniportRegistry.summary); see miniport list, or run with --model"
        case let .refused(a, why): "\(a): \(why)"
        case let .unknownModel(n): "no model NIC named '\(n)': choose one of \(ModelNICs.names.joined(separator: ", "))"
        case let .adapter(what, e): "\(what): \(e)"
        case let .tap(m): m
        case let .failed(m): m
        }
    }
}

/// An adapter that was opened, and what it needs to close it cleanly.
public final class OpenedAdapter {
    public let adapter: Adapter
    /// The wire, when the adapter is a model whose wire the caller drives (nil once on a TAP).
    public private(set) var wire: (any Wire)?
    /// The Linux TAP the model's wire is connected to (`--tap`); `poll` moves its frames.
    public private(set) var tap: TapBridge?
    /// The DMA memory behind the adapter's shared memory (for the "left mapped" check).
    public let dma: (any DMAAllocator)?
    /// Adapters with the same domain reach each other's DMA memory (one IOMMU domain).
    public let dmaDomain: ObjectIdentifier
    let lock: DeviceLock?
    public let address: String
    /// The miniport family driving it (`igb`, `virtio-net`).
    public let family: String
    let logger: Logger
    /// Frames lost before the miniport saw them (the model's full FIFO), beyond the statistics.
    public let missedOnWire: () -> UInt64
    /// Releases the device after halt (VFIO: unmaps BARs and DMA, closes the group).
    let closeDevice: () -> Void
    private var haltReport: HaltReport?
    private var missedBeforeStart: UInt64 = 0

    public init(adapter: Adapter, wire: (any Wire)?, dma: (any DMAAllocator)?, dmaDomain: ObjectIdentifier, lock: DeviceLock?,
                address: String, family: String, logger: Logger, missedOnWire: @escaping () -> UInt64 = { 0 },
                closeDevice: @escaping () -> Void = {}) {
        self.adapter = adapter
        self.wire = wire
        self.dma = dma
        self.dmaDomain = dmaDomain
        self.lock = lock
        self.address = address
        self.family = family
        self.logger = logger
        self.missedOnWire = missedOnWire
        self.closeDevice = closeDevice
    }

    /// MiniportRestart: Paused → Running, receive enabled. The adapter comes back from opening
    /// Paused; commands call this after their bindings, packet filter, queues and filters are in
    /// place (NDIS's order), so that even on a busy wire every frame lands on the queue its filters
    /// select, from the first frame on.
    public func start() throws(OpenError) {
        guard adapter.state != .running else { return }
        // Frames that reached the wire while receive was off were not missed by a running NIC.
        missedBeforeStart = missedOnWire()
        do { try adapter.restart() } catch { throw .adapter("starting \(address)", error) }
        logger.debug("\(address) running")
    }

    /// Lets the model work (if any), then runs the miniport's receive and completion work.
    @discardableResult
    public func poll(budget: Int = 64) -> Int {
        if let tap {
            tap.step()
            let n = adapter.poll(budget: budget)
            // What the miniport queued in this poll leaves for the TAP now, not one poll later.
            tap.step()
            return n
        }
        wire?.step()
        return adapter.poll(budget: budget)
    }

    /// Connects the model's wire to the Linux TAP `name` (an existing persistent TAP, or a new
    /// one): from now on `poll` carries frames between them and `wire` is nil.
    public func attachTap(_ name: String) throws(OpenError) {
        guard let wire else { throw .tap("--tap \(name): \(address) is not a model NIC; --tap needs --model") }
        tap = try TapBridge(name: name, wire: wire)
        self.wire = nil
        logger.debug("\(address)'s wire attached to TAP \(name)")
    }

    /// Frames lost below the protocols: the hardware's drops, the framework's, and the wire's
    /// (since `start`: before it receive was off and the NIC took nothing, by design).
    public var drops: UInt64 {
        var d = missedOnWire() &- missedBeforeStart
        if case let .statistics(s)? = try? adapter.request(.statistics) {
            d += s.frameworkDrops + s.global.receiveDrops
        } else {
            d += adapter.frameworkDrops
        }
        return d
    }

    /// Halts the adapter (which frees every queue's and the default queue's shared memory) and
    /// releases the device.
    /// - Returns: the halt report and the DMA bytes still mapped afterwards (0 when clean).
    @discardableResult
    public func close() -> (HaltReport, Int) {
        if let haltReport { return (haltReport, dma?.liveBytes ?? 0) }
        let report = adapter.halt()
        haltReport = report
        logger.debug("halted \(address): \(report)")
        let left = dma?.liveBytes ?? 0
        closeDevice()
        tap?.close()
        lock?.release()
        return (report, left)
    }
}

/// A model NIC this build can run in process: its name (`--nic`) and how to open it.
public struct ModelNIC: Sendable {
    public let name: String
    /// What `miniport demo` prints about it.
    public let description: String
    let open: @Sendable (_ name: String, _ mac: MACAddress, _ lock: DeviceLock?, _ logger: Logger) throws(OpenError) -> OpenedAdapter

    public init(name: String, description: String,
                open: @escaping @Sendable (String, MACAddress, DeviceLock?, Logger) throws(OpenError) -> OpenedAdapter) {
        self.name = name
        self.description = description
        self.open = open
    }
}

/// The model NICs of this build, each driven by its family's miniport.
public enum ModelNICs {
    public static let all: [ModelNIC] = [igb, virtioNet]
    public static var names: [String] { all.map(\.name) }
    public static func named(_ name: String) -> ModelNIC? { all.first { $0.name == name } }

    /// The IGB miniport on the 82576 hardware model, stepped by the caller's loop.
    public static let igb = ModelNIC(name: IGBFamily.name, description: "IGB miniport on the 82576 model") { name, mac, lock, logger throws(OpenError) in
        let function: IGBModelFunction
        do {
            function = try IGBModel.makeFunction(configuration: .init(permanentAddress: mac.array, linkUpDelayNanoseconds: 1_000_000,
                                                                    receiveFIFOFrames: 512))
        } catch {
            throw .failed("making the 82576 model \(name): \(error)")
        }
        logger.debug("initializing \(name): IGB miniport on the 82576 model")
        // The model runs free during bring-up (its link timer follows real time), stepped afterwards.
        function.model.start()
        let adapter: Adapter
        do throws(NDISError) {
            adapter = try IGBFamily.makeAdapter(function: function, name: name, context: .model)
        } catch {
            function.model.stop()
            throw .adapter("bringing up \(name)", error)
        }
        function.model.stop()
        logger.debug("\(name) initialized (Paused), MAC \(mac)")
        let model = function.model
        return OpenedAdapter(adapter: adapter, wire: IGBModelWire(model), dma: function.dma,
                             dmaDomain: ObjectIdentifier(function.dma), lock: lock, address: name, family: IGBFamily.name,
                             logger: logger, missedOnWire: { UInt64(model.wireCounters.notReceived) })
    }
}

extension ModelNICs {
    /// The virtio-net miniport on the virtio-net model (modern transport, split virtqueues, control queue).
    public static let virtioNet = ModelNIC(name: VirtioNetFamily.name, description: "virtio-net miniport on the virtio-net model") { name, mac, lock, logger throws(OpenError) in
        var config = VirtioNetModel.Configuration()
        config.permanentAddress = mac.array
        let function: VirtioNetModelFunction
        do { function = try VirtioNetModel.makeFunction(configuration: config) } catch {
            throw .failed("making the virtio-net model \(name): \(error)")
        }
        logger.debug("initializing \(name): virtio-net miniport on the virtio-net model")
        let adapter: Adapter
        do throws(NDISError) {
            adapter = try VirtioNetFamily.makeAdapter(function: function, name: name, context: .model)
        } catch {
            throw .adapter("bringing up \(name)", error)
        }
        let model = function.model
        return OpenedAdapter(adapter: adapter, wire: VirtioNetModelWire(model), dma: function.dma,
                             dmaDomain: ObjectIdentifier(function.dma), lock: lock, address: name, family: VirtioNetFamily.name,
                             logger: logger, missedOnWire: { UInt64(model.wireCounters.notReceived) })
    }
}

/// The virtio-net model's wire.
final class VirtioNetModelWire: Wire {
    let model: VirtioNetModel
    init(_ model: VirtioNetModel) { self.model = model }
    func inject(_ frame: [UInt8]) { model.inject(frame) }
    func takeTransmitted() -> [[UInt8]] { model.takeTransmitted() }
    func step() { model.step() }
}

/// The 82576 model's wire.
final class IGBModelWire: Wire {
    let model: IGBModel
    init(_ model: IGBModel) { self.model = model }
    func inject(_ frame: [UInt8]) { model.inject(frame) }
    func takeTransmitted() -> [[UInt8]] { model.takeTransmitted() }
    func step() { model.step() }
}

/// Opens adapters: a model NIC in this process, or a device by PCI address through the family
/// that claims its id (`MiniportRegistry`). The one seam between the commands (and the C API) and
/// the miniports. The adapter comes back initialized and Paused (receive off in hardware): bind,
/// set the packet filter, queues and filters, then `OpenedAdapter.start()`.
public enum AdapterOpener {
    /// The MAC address a model NIC has by default (a locally administered QEMU-style address).
    public static let modelMAC = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)

    /// Opens the model NIC `nic` named `name`; when `lockName` is given (a device address a script
    /// passed), the model is locked under it, so the same busy rule applies as for devices.
    public static func openModel(nic: String = IGBFamily.name, name: String = "model0", lockName: String? = nil,
                                 macAddress: MACAddress = modelMAC, logger: Logger = Logger(label: "miniport"),
                                 tap: String? = nil) throws(OpenError) -> OpenedAdapter {
        guard let kind = ModelNICs.named(nic) else { throw .unknownModel(nic) }
        let lock = try lockName.map { (n: String) throws(OpenError) in try DeviceLock.acquire(n) }
        let opened: OpenedAdapter
        do { opened = try kind.open(name, macAddress, lock, logger) } catch {
            lock?.release()
            throw error
        }
        if let tap {
            do { try opened.attachTap(tap) } catch {
                opened.close()
                throw error
            }
        }
        return opened
    }

    /// Opens the device at `address` (bound to vfio-pci) with the miniport that claims its id.
    public static func openDevice(_ text: String, logger: Logger = Logger(label: "miniport"),
                                  sysfs: String = "/sys/bus/pci/devices") throws(OpenError) -> OpenedAdapter {
        let address = try PCIAddressText.normalize(text)
        guard access("\(sysfs)/\(address)", F_OK) == 0 else { throw .unknownDevice(address) }
        // Refuse by id before touching VFIO, so an unsupported NIC needs no binding to be told so.
        if let vendor = readHexFile("\(sysfs)/\(address)/vendor"), let device = readHexFile("\(sysfs)/\(address)/device") {
            _ = try familyFor(address: address, vendorID: vendor, deviceID: device)
        }
        let lock = try DeviceLock.acquire(address)
        do { return try openLocked(address: address, lock: lock, logger: logger) } catch {
            lock.release()
            throw error
        }
    }

    static func familyFor(address: String, vendorID: UInt16, deviceID: UInt16) throws(OpenError) -> any MiniportFamily.Type {
        if let family = MiniportRegistry.family(vendorID: vendorID, deviceID: deviceID) { return family }
        if let reason = MiniportRegistry.refusal(vendorID: vendorID, deviceID: deviceID) { throw .refused(address, reason) }
        throw .noMiniport(address, vendorID, deviceID)
    }

    static func openLocked(address: String, lock: DeviceLock, logger: Logger) throws(OpenError) -> OpenedAdapter {
        let function: VFIODevice
        do { function = try VFIODevice.open(address) } catch {
            switch error {
            case .groupBusy: throw .busy(address, "its IOMMU group is open in another process")
            case let .pci(e): throw .failed(e.description)
            default: throw .failed(error.description)
            }
        }
        let id = function.identity
        logger.debug("opened \(address) through VFIO (vendor \(MiniportRegistry.hex4(id.vendorID)), device \(MiniportRegistry.hex4(id.deviceID)))")
        let family: any MiniportFamily.Type
        do { family = try familyFor(address: address, vendorID: id.vendorID, deviceID: id.deviceID) } catch {
            _ = function.close()
            throw error
        }
        if function.supportsReset { try? function.reset() }
        let adapter: Adapter
        do {
            adapter = try family.makeAdapter(function: function, name: address, context: .device)
        } catch {
            _ = function.close()
            throw .adapter("bringing up \(address) (\(family.name))", error)
        }
        logger.debug("\(address) initialized, Paused (\(family.name))")
        // Two VFIO devices share DMA memory only inside one container; each device here has its own.
        return OpenedAdapter(adapter: adapter, wire: nil, dma: function.dma, dmaDomain: ObjectIdentifier(function.dma),
                             lock: lock, address: address, family: family.name, logger: logger, closeDevice: { _ = function.close() })
    }

    static func readHexFile(_ path: String) -> UInt16? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = read(fd, &buffer, 16)
        guard n > 0 else { return nil }
        var text = String(decoding: buffer[0..<n], as: UTF8.self).filter { !$0.isWhitespace }
        if text.hasPrefix("0x") { text.removeFirst(2) }
        return UInt16(text, radix: 16)
    }
}

/// PCI address text: `dddd:bb:dd.f` or `bb:dd.f` (domain 0000).
public enum PCIAddressText {
    public static func normalize(_ text: String) throws(OpenError) -> String {
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
public final class DeviceLock {
    public let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// Where the lock files live (MINIPORT_LOCK_DIR overrides, for tests).
    public static var directory: String {
        if let d = getenv("MINIPORT_LOCK_DIR") { return String(cString: d) }
        return access("/run/lock", W_OK) == 0 ? "/run/lock" : "/tmp"
    }

    public static func acquire(_ device: String) throws(OpenError) -> DeviceLock {
        let safe = device.map { $0 == "/" ? "_" : $0 }
        let path = "\(directory)/miniport-\(String(safe)).lock"
        let fd = openShared(path)
        guard fd >= 0 else { throw .failed("cannot open the lock file \(path): \(String(cString: strerror(errno))); set MINIPORT_LOCK_DIR to a writable directory") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = Self.holder(fd)
            Glibc.close(fd)
            throw .busy(device, holder.isEmpty ? "another process has it open" : "process \(holder) has it open")
        }
        if fcntl(fd, F_GETFL) & O_ACCMODE == O_RDWR {
            ftruncate(fd, 0)
            let pid = "\(getpid())"
            _ = pid.withCString { Glibc.write(fd, $0, strlen($0)) }
        }
        return DeviceLock(path: path, fd: fd)
    }

    /// Opens the lock file so that every user of the device can lock it, whoever created it: an
    /// existing file is opened without O_CREAT (fs.protected_regular refuses O_CREAT on another
    /// user's file in a sticky directory such as /tmp) and read-only if it is not ours to write
    /// (flock works on a read-only descriptor; the pid is then not recorded); a new one is made
    /// mode 0666 (umask aside), so a user outside the miniport group that tried first leaves
    /// nothing that blocks the group's users.
    static func openShared(_ path: String) -> Int32 {
        for _ in 0..<3 {
            var fd = open(path, O_RDWR | O_CLOEXEC)
            if fd < 0 && (errno == EACCES || errno == EPERM) { fd = open(path, O_RDONLY | O_CLOEXEC) }
            if fd >= 0 || errno != ENOENT { return fd }
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 {
                _ = fchmod(fd, 0o666)
                return fd
            }
            if errno != EEXIST { return fd }
        }
        return -1
    }

    /// The pid text a holder wrote into the lock file.
    static func holder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = pread(fd, &buffer, 64, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).filter { !$0.isWhitespace } : ""
    }

    public func release() {
        guard fd >= 0 else { return }
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        Glibc.close(fd)
        fd = -1
    }

    deinit { release() }
}
