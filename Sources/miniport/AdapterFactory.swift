#if canImport(Glibc)
import Glibc
#endif
import Logging
import DeviceAccess
import IGB
import IGBModel
import NDIS
import Protocols
import VFIO

/// The model's wire, seen from outside the NIC: put frames on it, take what the NIC sent, and let
/// the model do its pending work (receive what waits on the wire, transmit what was queued).
protocol Wire: AnyObject {
    func inject(_ frame: [UInt8])
    func takeTransmitted() -> [[UInt8]]
    func step()
}

extension LoopbackMiniport: Wire {
    func step() {}
}

/// The 82576 model's wire.
final class IGBModelWire: Wire {
    let model: IGBModel
    init(_ model: IGBModel) { self.model = model }
    func inject(_ frame: [UInt8]) { model.inject(frame) }
    func takeTransmitted() -> [[UInt8]] { model.takeTransmitted() }
    func step() { model.step() }
}

/// An adapter a command opened, and what it needs to close it cleanly.
final class OpenedAdapter {
    let adapter: Adapter
    /// The wire, when the adapter is a model.
    let wire: (any Wire)?
    /// The DMA memory behind the adapter's shared memory (for the "left mapped" check).
    let dma: (any DMAAllocator)?
    /// Adapters with the same domain reach each other's DMA memory (one IOMMU domain).
    let dmaDomain: ObjectIdentifier
    let lock: DeviceLock?
    let address: String
    let logger: Logger
    /// Frames lost before the miniport saw them (the model's full FIFO), beyond the statistics.
    let missedOnWire: () -> UInt64
    /// Releases the device after halt (VFIO: unmaps BARs and DMA, closes the group).
    let closeDevice: () -> Void
    private var haltReport: HaltReport?
    private var missedBeforeStart: UInt64 = 0

    init(adapter: Adapter, wire: (any Wire)?, dma: (any DMAAllocator)?, dmaDomain: ObjectIdentifier, lock: DeviceLock?,
         address: String, logger: Logger, missedOnWire: @escaping () -> UInt64 = { 0 }, closeDevice: @escaping () -> Void = {}) {
        self.adapter = adapter
        self.wire = wire
        self.dma = dma
        self.dmaDomain = dmaDomain
        self.lock = lock
        self.address = address
        self.logger = logger
        self.missedOnWire = missedOnWire
        self.closeDevice = closeDevice
    }

    /// MiniportRestart: Paused → Running, receive enabled. Commands call it after their bindings,
    /// packet filter, queues and filters are in place (NDIS's order), so that even on a busy wire
    /// every frame lands on the queue its filters select, from the first frame on.
    func start() throws(CLIError) {
        guard adapter.state != .running else { return }
        // Frames that reached the wire while receive was off were not missed by a running NIC.
        missedBeforeStart = missedOnWire()
        do { try adapter.restart() } catch { throw .adapter("starting \(address)", error) }
        logger.debug("\(address) running")
    }

    /// Lets the model work (if any), then runs the miniport's receive and completion work.
    @discardableResult
    func poll(budget: Int = 64) -> Int {
        wire?.step()
        return adapter.poll(budget: budget)
    }

    /// Frames lost below the protocols: the hardware's drops, the framework's, and the wire's
    /// (since `start`: before it receive was off and the NIC took nothing, by design).
    var drops: UInt64 {
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
    func close() -> (HaltReport, Int) {
        if let haltReport { return (haltReport, dma?.liveBytes ?? 0) }
        let report = adapter.halt()
        haltReport = report
        logger.debug("halted \(address): \(report)")
        let left = dma?.liveBytes ?? 0
        closeDevice()
        lock?.release()
        return (report, left)
    }
}

/// Opens adapters for the commands: the hardware model (`--model`) or a device by PCI address.
///
/// The adapter comes back initialized and Paused (receive off in hardware): the command opens its
/// binding, sets its packet filter, allocates its queues and sets their filters while Paused, then
/// calls `OpenedAdapter.start()`.
///
/// This is the one seam between the commands and the miniports: `makeModel` is the IGB miniport on
/// the in-process 82576 model, `makeDevice` the IGB miniport on a function bound to vfio-pci.
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
        do { return try makeDevice(address: address, lock: lock, logger: logger) } catch {
            lock.release()
            throw error
        }
    }

    /// The IGB miniport on the 82576 hardware model, stepped by the command's loop.
    static func makeModel(name: String, macAddress: MACAddress, lock: DeviceLock?, logger: Logger) throws(CLIError) -> OpenedAdapter {
        let function: IGBModelFunction
        do {
            function = try IGBModel.makeFunction(configuration: .init(permanentAddress: macAddress.array, linkUpDelayNanoseconds: 1_000_000,
                                                                    receiveFIFOFrames: 512))
        } catch {
            throw .failed("making the 82576 model \(name): \(error)")
        }
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(5)
        // A multicast frame goes only to queues whose filters accept it, else to the default queue.
        config.queuesAcceptMulticast = false
        logger.debug("initializing \(name): IGB miniport on the 82576 model")
        // The model runs free during bring-up (its link timer follows real time), stepped afterwards.
        function.model.start()
        let adapter: Adapter
        do {
            adapter = try IGBMiniport.makeAdapter(function: function, name: name, configuration: config, start: false)
        } catch {
            function.model.stop()
            throw .adapter("bringing up \(name)", error)
        }
        function.model.stop()
        logger.debug("\(name) initialized (Paused), MAC \(macAddress)")
        let model = function.model
        return OpenedAdapter(adapter: adapter, wire: IGBModelWire(model), dma: function.dma,
                             dmaDomain: ObjectIdentifier(function.dma), lock: lock, address: name, logger: logger,
                             missedOnWire: { UInt64(model.wireCounters.notReceived) })
    }

    /// The IGB miniport on a function bound to vfio-pci.
    static func makeDevice(address: String, lock: DeviceLock, logger: Logger) throws(CLIError) -> OpenedAdapter {
        let function: VFIODevice
        do { function = try VFIODevice.open(address) } catch {
            switch error {
            case .groupBusy: throw .busy(address, "its IOMMU group is open in another process")
            case let .pci(e): throw .failed(e.description)
            default: throw .failed(error.description)
            }
        }
        logger.debug("opened \(address) through VFIO (vendor \(hex4(function.identity.vendorID)), device \(hex4(function.identity.deviceID)))")
        if function.supportsReset { try? function.reset() }
        var config = IGBConfiguration()
        config.linkTimeout = .seconds(20)
        let adapter: Adapter
        do {
            adapter = try IGBMiniport.makeAdapter(function: function, name: address, configuration: config, start: false)
        } catch {
            _ = function.close()
            if case .notSupported = error { throw .noMiniport(address) }
            throw .adapter("bringing up \(address)", error)
        }
        logger.debug("\(address) initialized (Paused)")
        // Two VFIO devices share DMA memory only inside one container; each device here has its own.
        return OpenedAdapter(adapter: adapter, wire: nil, dma: function.dma, dmaDomain: ObjectIdentifier(function.dma),
                             lock: lock, address: address, logger: logger, closeDevice: { _ = function.close() })
    }

    static func hex4(_ v: UInt16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 4 - s.count) + s
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
