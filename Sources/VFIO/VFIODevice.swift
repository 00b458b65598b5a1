import CShim
import DeviceAccess
import Glibc
import PCI

/// What a device holds open; all zero after ``VFIODevice/close()``.
public struct VFIOResourceCounts: Sendable, Equatable, CustomStringConvertible {
    /// Container, group, device and interrupt eventfd descriptors.
    public var fileDescriptors: Int
    /// BARs memory-mapped.
    public var barMappings: Int
    /// DMA regions allocated and mapped.
    public var dmaRegions: Int
    /// Bytes of DMA memory allocated and mapped.
    public var dmaBytes: Int
    /// IOMMU mappings the container still holds.
    public var iommuMappings: Int

    public static let none = VFIOResourceCounts(fileDescriptors: 0, barMappings: 0, dmaRegions: 0, dmaBytes: 0, iommuMappings: 0)

    public var description: String {
        "fds \(fileDescriptors), BAR mappings \(barMappings), DMA regions \(dmaRegions) (\(dmaBytes) bytes), IOMMU mappings \(iommuMappings)"
    }
}

/// A PCI function opened through VFIO: container → group → device, BARs, config space, DMA, MSI-X.
///
/// Opening checks sysfs first so that the usual mistakes (wrong address, wrong driver, IOMMU off,
/// shared group) produce a message with the fix before any /dev/vfio node is touched.
public final class VFIODevice: PCIFunction {
    public typealias Registers = MMIORegion

    public let address: PCIAddress
    public let container: VFIOContainer
    public let group: VFIOGroup
    public let identity: PCIIdentity
    /// The device offers VFIO_DEVICE_RESET.
    public let supportsReset: Bool
    public let msixVectorCount: Int
    /// Opened in vfio's unsafe no-IOMMU mode (the caller opted in).
    public let isNoIOMMU: Bool
    /// The process-wide allocator of the shared DMA domain (see `VFIODMADomain`).
    public let dmaAllocator: VFIODMAAllocator
    /// The process-wide container and allocator this device shares with every other VFIO device.
    public let domain: VFIODMADomain
    private var holdsDomain = true
    public var dma: any DMAAllocator { dmaAllocator }
    public var name: String { address.description }

    private var fd: Int32
    private let configOffset: Int64
    private var bars: [Int: (base: UnsafeMutableRawPointer, length: Int)] = [:]
    private var interrupts: [InterruptEvent] = []

    /// Opens a function given as text (`0000:03:00.0` or `03:00.0`).
    /// - Throws: ``VFIOError/pci(_:)`` with ``PCIError/invalidAddress(_:)`` for a malformed address, and
    ///   everything ``open(_:options:environment:)`` throws.
    public static func open(_ text: String, options: VFIOOptions = VFIOOptions(), environment: VFIOEnvironment = .system) throws(VFIOError) -> VFIODevice {
        let address: PCIAddress
        do { address = try PCIAddress(parsing: text) } catch { throw .pci(error) }
        return try open(address, options: options, environment: environment)
    }

    /// Opens a function bound to vfio-pci.
    /// - Throws: ``VFIOError``: no such device, IOMMU off, no-IOMMU mode refused, not bound to
    ///   vfio-pci, group not viable, no permission, missing /dev/vfio nodes, ioctl failures.
    public static func open(_ address: PCIAddress, options: VFIOOptions = VFIOOptions(), environment: VFIOEnvironment = .system) throws(VFIOError) -> VFIODevice {
        let sysfs = PCISysfs(paths: environment.paths)
        let function: PCISysfsFunction
        do { function = try sysfs.function(address) } catch { throw .pci(error) }

        guard let groupNumber = function.iommuGroup else { throw .iommuOff(address) }
        let noIOMMU = sysfs.isNoIOMMUGroup(groupNumber)
        if noIOMMU {
            guard options.allowNoIOMMU else { throw .noIOMMUModeRefused(address, group: groupNumber) }
            environment.warn("\(address) is opened in vfio's unsafe no-IOMMU mode: the device can DMA to any physical memory")
        }
        guard function.driver == "vfio-pci" else { throw .notBoundToVFIO(address, driver: function.driver) }
        let offenders = sysfs.groupOffenders(group: groupNumber, except: address)
        guard offenders.isEmpty else { throw .groupNotViable(address, group: groupNumber, offenders: offenders) }

        let group = try VFIOGroup(number: groupNumber, noIOMMU: noIOMMU, device: address, environment: environment)
        // One container per process: the group joins it (the first group sets the IOMMU type).
        let domain = try VFIODMADomain.acquire(environment: environment, noIOMMU: noIOMMU, options: options)
        let fd: Int32
        do throws(VFIOError) {
            // On failure below, `group` closes itself in deinit; the domain reference is dropped here.
            guard try group.isViable() else {
                throw VFIOError.groupNotViable(address, group: groupNumber, offenders: sysfs.groupOffenders(group: groupNumber, except: address))
            }
            try group.attach(to: domain.container)
            fd = try group.deviceFD(for: address)
        } catch {
            _ = domain.release(detachingGroup: { group.close() })
            throw error
        }
        do {
            return try VFIODevice(address: address, fd: fd, group: group, domain: domain, noIOMMU: noIOMMU, options: options, environment: environment)
        } catch {
            Syscall.close(fd)
            _ = domain.release(detachingGroup: { group.close() })
            throw error
        }
    }

    private init(address: PCIAddress, fd: Int32, group: VFIOGroup, domain: VFIODMADomain, noIOMMU: Bool, options: VFIOOptions, environment: VFIOEnvironment) throws(VFIOError) {
        self.address = address
        self.fd = fd
        self.group = group
        self.domain = domain
        self.container = domain.container
        self.isNoIOMMU = noIOMMU

        var info = vfio_device_info()
        info.argsz = UInt32(MemoryLayout<vfio_device_info>.size)
        _ = try Syscall.ioctl(fd, MINIPORT_VFIO_DEVICE_GET_INFO, "VFIO_DEVICE_GET_INFO", address.description, &info)
        supportsReset = info.flags & VFIOConstants.deviceFlagsReset != 0

        let config = try Self.regionInfo(fd: fd, index: VFIOConstants.configRegionIndex, address: address)
        configOffset = Int64(config.offset)

        var irq = vfio_irq_info()
        irq.argsz = UInt32(MemoryLayout<vfio_irq_info>.size)
        irq.index = VFIOConstants.msixIRQIndex
        if info.num_irqs > VFIOConstants.msixIRQIndex {
            _ = try Syscall.ioctl(fd, MINIPORT_VFIO_DEVICE_GET_IRQ_INFO, "VFIO_DEVICE_GET_IRQ_INFO", address.description, &irq)
        }
        msixVectorCount = Int(irq.count)

        // Read before every stored property is set, so a failure cannot run deinit (which would
        // close `fd` a second time after open() closes it).
        func config16(_ offset: Int64) throws(VFIOError) -> UInt16 {
            var value: UInt16 = 0
            let at = off_t(config.offset) + off_t(offset)
            let n = try Syscall.check("pread config", address.description) {
                withUnsafeMutableBytes(of: &value) { pread(fd, $0.baseAddress, $0.count, at) }
            }
            guard n == 2 else { throw .system(call: "pread config", target: address.description, errno: EIO) }
            return UInt16(littleEndian: value)
        }
        identity = PCIIdentity(
            vendorID: try config16(0x00),
            deviceID: try config16(0x02),
            subsystemVendorID: try config16(0x2C),
            subsystemID: try config16(0x2E),
            revision: UInt8(truncatingIfNeeded: try config16(0x08))
        )
        dmaAllocator = domain.allocator
    }

    deinit { close() }

    private static func regionInfo(fd: Int32, index: UInt32, address: PCIAddress) throws(VFIOError) -> vfio_region_info {
        var region = vfio_region_info()
        region.argsz = UInt32(MemoryLayout<vfio_region_info>.size)
        region.index = index
        _ = try Syscall.ioctl(fd, MINIPORT_VFIO_DEVICE_GET_REGION_INFO, "VFIO_DEVICE_GET_REGION_INFO", address.description, &region)
        return region
    }

    // MARK: BARs

    /// Maps memory BAR `index` (once; later calls return the same mapping).
    /// - Throws: ``VFIOError/barNotMappable(_:bar:)`` for an empty, I/O or non-mmap BAR.
    public func registers(bar index: Int) throws(VFIOError) -> MMIORegion {
        guard fd >= 0 else { throw .closed(name) }
        if let mapped = bars[index] { return MMIORegion(unsafeBase: mapped.base, length: mapped.length) }
        guard (0...5).contains(index) else { throw .barNotMappable(address, bar: index) }
        let region = try Self.regionInfo(fd: fd, index: UInt32(index), address: address)
        guard region.size > 0, region.flags & VFIOConstants.regionFlagMmap != 0 else { throw .barNotMappable(address, bar: index) }
        let length = Int(region.size)
        let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(region.offset))
        guard let base, base != MAP_FAILED else {
            throw .system(call: "mmap BAR \(index)", target: name, errno: errno)
        }
        bars[index] = (base, length)
        return MMIORegion(unsafeBase: base, length: length)
    }

    // MARK: Config space

    private func configAccess(_ offset: Int, _ size: Int) throws(VFIOError) {
        guard fd >= 0 else { throw .closed(name) }
        guard offset >= 0, offset + size <= 4096 else { throw .configOutOfRange(address, offset: offset) }
    }

    private func readConfig<T: FixedWidthInteger>(_ offset: Int, as: T.Type) throws(VFIOError) -> T {
        try configAccess(offset, MemoryLayout<T>.size)
        var value: T = 0
        let at = off_t(configOffset) + off_t(offset)
        let n = try Syscall.check("pread config", name) {
            withUnsafeMutableBytes(of: &value) { pread(fd, $0.baseAddress, $0.count, at) }
        }
        guard n == MemoryLayout<T>.size else { throw .system(call: "pread config", target: name, errno: EIO) }
        return T(littleEndian: value)
    }

    private func writeConfig<T: FixedWidthInteger>(_ offset: Int, _ value: T) throws(VFIOError) {
        try configAccess(offset, MemoryLayout<T>.size)
        var little = value.littleEndian
        let at = off_t(configOffset) + off_t(offset)
        let n = try Syscall.check("pwrite config", name) {
            withUnsafeBytes(of: &little) { pwrite(fd, $0.baseAddress, $0.count, at) }
        }
        guard n == MemoryLayout<T>.size else { throw .system(call: "pwrite config", target: name, errno: EIO) }
    }

    public func readConfig8(_ offset: Int) throws(VFIOError) -> UInt8 { try readConfig(offset, as: UInt8.self) }
    public func readConfig16(_ offset: Int) throws(VFIOError) -> UInt16 { try readConfig(offset, as: UInt16.self) }
    public func readConfig32(_ offset: Int) throws(VFIOError) -> UInt32 { try readConfig(offset, as: UInt32.self) }
    public func writeConfig16(_ offset: Int, _ value: UInt16) throws(VFIOError) { try writeConfig(offset, value) }
    public func writeConfig32(_ offset: Int, _ value: UInt32) throws(VFIOError) { try writeConfig(offset, value) }

    /// Sets Memory Space Enable (bit 1) and Bus Master Enable (bit 2) in the Command register (0x04).
    public func enableBusMaster() throws(VFIOError) {
        let command = try readConfig16(0x04)
        try writeConfig16(0x04, command | 0x0006)
    }

    /// VFIO_DEVICE_RESET (a function-level or other reset the kernel found for the device).
    /// - Throws: ``VFIOError/resetNotSupported(_:)`` if the device offers none.
    public func reset() throws(VFIOError) {
        guard fd >= 0 else { throw .closed(name) }
        guard supportsReset else { throw .resetNotSupported(address) }
        _ = try Syscall.ioctl(fd, MINIPORT_VFIO_DEVICE_RESET, "VFIO_DEVICE_RESET", name, integer: 0)
    }

    // MARK: Interrupts

    /// Routes MSI-X vectors 0..<count to new eventfds (VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER).
    public func enableMSIX(count: Int) throws(VFIOError) -> [InterruptEvent] {
        guard fd >= 0 else { throw .closed(name) }
        guard count > 0, count <= msixVectorCount else { throw .msixUnavailable(address, requested: count, available: msixVectorCount) }
        try disableInterrupts()
        var events: [InterruptEvent] = []
        for _ in 0..<count {
            do { events.append(try InterruptEvent.make()) } catch {
                events.forEach { $0.close() }
                if case let .system(call, err) = error { throw .system(call: call, target: name, errno: err) }
                throw .system(call: "eventfd", target: name, errno: EIO)
            }
        }
        var bytes = Self.irqSet(flags: VFIOConstants.irqSetDataEventfd | VFIOConstants.irqSetActionTrigger, count: count)
        let header = Int(MINIPORT_VFIO_IRQ_SET_HEADER_SIZE)
        for (i, event) in events.enumerated() {
            VFIOContainer.store(event.fd, into: &bytes, at: header + 4 * i)
        }
        do {
            _ = try Syscall.ioctl(fd, MINIPORT_VFIO_DEVICE_SET_IRQS, "VFIO_DEVICE_SET_IRQS", name, bytes: &bytes)
        } catch {
            events.forEach { $0.close() }
            throw error
        }
        interrupts = events
        return events
    }

    /// Tears down MSI-X (DATA_NONE | ACTION_TRIGGER with count 0) and closes the eventfds.
    public func disableInterrupts() throws(VFIOError) {
        guard !interrupts.isEmpty else { return }
        defer {
            interrupts.forEach { $0.close() }
            interrupts = []
        }
        guard fd >= 0 else { return }
        var bytes = Self.irqSet(flags: VFIOConstants.irqSetDataNone | VFIOConstants.irqSetActionTrigger, count: 0)
        _ = try Syscall.ioctl(fd, MINIPORT_VFIO_DEVICE_SET_IRQS, "VFIO_DEVICE_SET_IRQS", name, bytes: &bytes)
    }

    /// A vfio_irq_set for MSI-X: argsz@0, flags@4, index@8, start@12, count@16, then `count` s32 fds.
    static func irqSet(flags: UInt32, count: Int) -> [UInt8] {
        let header = Int(MINIPORT_VFIO_IRQ_SET_HEADER_SIZE)
        var bytes = [UInt8](repeating: 0, count: header + 4 * count)
        VFIOContainer.store(UInt32(bytes.count), into: &bytes, at: 0)
        VFIOContainer.store(flags, into: &bytes, at: 4)
        VFIOContainer.store(VFIOConstants.msixIRQIndex, into: &bytes, at: 8)
        VFIOContainer.store(UInt32(0), into: &bytes, at: 12)
        VFIOContainer.store(UInt32(count), into: &bytes, at: 16)
        return bytes
    }

    // MARK: Accounting and close

    /// What the device holds now.
    ///
    /// The container and its DMA memory are shared by every device of the process: after this device
    /// closed they count here only while no other device holds them (so a leak at the last close
    /// still shows, and a device closed before its peer does not report the peer's memory).
    public var openResources: VFIOResourceCounts {
        let sharedWithOthers = !holdsDomain && domain.deviceCount > 0
        return VFIOResourceCounts(
            fileDescriptors: (fd >= 0 ? 1 : 0) + (group.isOpen ? 1 : 0) + (!sharedWithOthers && container.isOpen ? 1 : 0) + interrupts.count,
            barMappings: bars.count,
            dmaRegions: sharedWithOthers ? 0 : dmaAllocator.liveRegionCount,
            dmaBytes: sharedWithOthers ? 0 : dmaAllocator.liveBytes,
            iommuMappings: sharedWithOthers ? 0 : container.liveMappings
        )
    }

    public var isOpen: Bool { fd >= 0 }

    /// Releases everything, in the order the kernel needs: interrupts, DMA mappings, BARs, the
    /// device fd, the group (detached from the container), the container. Safe to call twice.
    /// - Returns: the first error met (everything is still released).
    @discardableResult
    public func close() -> VFIOError? {
        var first: VFIOError?
        do { try disableInterrupts() } catch { first = error }
        for (_, mapping) in bars { munmap(mapping.base, mapping.length) }
        bars = [:]
        if fd >= 0 {
            Syscall.close(fd)
            fd = -1
        }
        // The shared DMA memory and container go with the last device of the process. Its memory is
        // unmapped while this group is still attached: once the last group leaves the container the
        // kernel drops the IOMMU, and VFIO_IOMMU_UNMAP_DMA would fail with EINVAL.
        if holdsDomain {
            holdsDomain = false
            if let error = domain.release(detachingGroup: { group.close() }) { first = first ?? error }
        } else {
            group.close()
        }
        return first
    }
}
