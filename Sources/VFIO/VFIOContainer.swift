import CShim
import Glibc
import PCI

/// A VFIO container (/dev/vfio/vfio): the IOMMU context that groups attach to and DMA is mapped in.
public final class VFIOContainer: DMAMapper {
    public let path: String
    private var fd: Int32
    /// VFIO_GET_API_VERSION.
    public let apiVersion: Int32
    /// The IOMMU type chosen: VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU, or VFIO_NOIOMMU_IOMMU.
    public private(set) var iommuType: UInt
    /// Valid IOVA ranges from VFIO_IOMMU_GET_INFO (``IOVARange/fallback`` if the kernel reports none).
    public private(set) var iovaRanges: [IOVARange] = IOVARange.fallback
    /// Smallest IOMMU page size.
    public private(set) var iovaAlignment: UInt64 = 4096
    /// DMA mappings made and not yet unmapped.
    public private(set) var liveMappings = 0
    private var iommuSet = false

    public var needsPhysicalAddresses: Bool { iommuType == VFIOConstants.noIOMMU }
    public var isOpen: Bool { fd >= 0 }

    /// Opens the container and checks the API version and IOMMU type.
    /// - Parameters:
    ///   - noIOMMU: use vfio's unsafe no-IOMMU type instead of type 1.
    /// - Throws: ``VFIOError/vfioUnavailable(path:)``, ``VFIOError/noPermission(path:device:)``,
    ///   ``VFIOError/unsupportedAPIVersion(_:)``, ``VFIOError/noType1IOMMU(path:)``.
    public init(environment: VFIOEnvironment = .system, noIOMMU: Bool = false) throws(VFIOError) {
        let path = environment.paths.devVFIO + "/vfio"
        self.path = path
        let fd: Int32
        switch Syscall.retrying({ environment.openFile(path, O_RDWR | O_CLOEXEC) }) {
        case let .success(opened): fd = opened
        case let .failure(error) where error.code == ENOENT: throw .vfioUnavailable(path: path)
        case let .failure(error) where error.code == EACCES || error.code == EPERM: throw .noPermission(path: path, device: nil)
        case let .failure(error): throw .system(call: "open", target: path, errno: error.code)
        }
        do throws(VFIOError) {
            let version = try Syscall.ioctl(fd, MINIPORT_VFIO_GET_API_VERSION, "VFIO_GET_API_VERSION", path, integer: 0)
            guard version == VFIOConstants.apiVersion else { throw VFIOError.unsupportedAPIVersion(version) }
            self.apiVersion = version
            let wanted = noIOMMU ? [VFIOConstants.noIOMMU] : [VFIOConstants.type1v2IOMMU, VFIOConstants.type1IOMMU]
            var chosen: UInt?
            for type in wanted where try Syscall.ioctl(fd, MINIPORT_VFIO_CHECK_EXTENSION, "VFIO_CHECK_EXTENSION", path, integer: type) == 1 {
                chosen = type
                break
            }
            guard let chosen else { throw VFIOError.noType1IOMMU(path: path) }
            self.iommuType = chosen
        } catch {
            Syscall.close(fd)
            throw error
        }
        self.fd = fd
    }

    deinit { close() }

    /// Attaches a group's descriptor (VFIO_GROUP_SET_CONTAINER) and, for the first group, sets the
    /// IOMMU type and reads the valid IOVA ranges.
    func attach(groupFD: Int32, groupPath: String) throws(VFIOError) {
        guard fd >= 0 else { throw .closed(path) }
        var containerFD = fd
        _ = try Syscall.ioctl(groupFD, MINIPORT_VFIO_GROUP_SET_CONTAINER, "VFIO_GROUP_SET_CONTAINER", groupPath, &containerFD)
        if iommuSet { return }
        _ = try Syscall.ioctl(fd, MINIPORT_VFIO_SET_IOMMU, "VFIO_SET_IOMMU", path, integer: iommuType)
        iommuSet = true
        if !needsPhysicalAddresses { try readIOMMUInfo() }
    }

    /// VFIO_IOMMU_GET_INFO: page sizes, then (if offered) the IOVA-range capability.
    private func readIOMMUInfo() throws(VFIOError) {
        let headerSize = Int(MINIPORT_VFIO_IOMMU_INFO_SIZE)
        var bytes = [UInt8](repeating: 0, count: headerSize)
        Self.store(UInt32(headerSize), into: &bytes, at: 0)
        _ = try Syscall.ioctl(fd, MINIPORT_VFIO_IOMMU_GET_INFO, "VFIO_IOMMU_GET_INFO", path, bytes: &bytes)
        let needed = Int(Self.load(UInt32.self, from: bytes, at: 0))
        if needed > headerSize {
            bytes = [UInt8](repeating: 0, count: needed)
            Self.store(UInt32(needed), into: &bytes, at: 0)
            _ = try Syscall.ioctl(fd, MINIPORT_VFIO_IOMMU_GET_INFO, "VFIO_IOMMU_GET_INFO", path, bytes: &bytes)
        }
        let parsed = Self.parseIOMMUInfo(bytes)
        if let alignment = parsed.alignment { iovaAlignment = alignment }
        if let ranges = parsed.ranges, !ranges.isEmpty { iovaRanges = ranges }
    }

    /// Parses a vfio_iommu_type1_info buffer: argsz@0, flags@4, iova_pgsizes@8, cap_offset@16, then
    /// capability headers (id u16, version u16, next u32); the IOVA-range one holds nr_iovas@8 and
    /// {start u64, end u64} pairs from offset 16 (linux/vfio.h).
    public static func parseIOMMUInfo(_ bytes: [UInt8]) -> (alignment: UInt64?, ranges: [IOVARange]?) {
        guard bytes.count >= 20 else { return (nil, nil) }
        let flags = load(UInt32.self, from: bytes, at: 4)
        let pageSizes = load(UInt64.self, from: bytes, at: 8)
        let alignment: UInt64? = flags & 1 != 0 && pageSizes != 0 ? pageSizes & (~pageSizes &+ 1) : nil
        guard flags & VFIOConstants.iommuInfoCaps != 0 else { return (alignment, nil) }
        var offset = Int(load(UInt32.self, from: bytes, at: 16))
        var visited = 0
        while offset != 0, offset + 8 <= bytes.count, visited < 64 {
            visited += 1
            let id = load(UInt16.self, from: bytes, at: offset)
            let next = Int(load(UInt32.self, from: bytes, at: offset + 4))
            if id == VFIOConstants.capIOVARange, offset + 16 <= bytes.count {
                let count = Int(load(UInt32.self, from: bytes, at: offset + 8))
                var ranges: [IOVARange] = []
                for i in 0..<count {
                    let at = offset + 16 + i * 16
                    guard at + 16 <= bytes.count else { break }
                    let start = load(UInt64.self, from: bytes, at: at)
                    let end = load(UInt64.self, from: bytes, at: at + 8)
                    if start <= end { ranges.append(IOVARange(first: start, last: end)) }
                }
                return (alignment, ranges)
            }
            offset = next
        }
        return (alignment, nil)
    }

    public func mapDMA(virtualAddress: UInt, iova: UInt64, length: Int) throws(VFIOError) {
        guard fd >= 0 else { throw .closed(path) }
        if !needsPhysicalAddresses {
            var map = vfio_iommu_type1_dma_map()
            map.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_map>.size)
            map.flags = VFIOConstants.dmaMapRead | VFIOConstants.dmaMapWrite
            map.vaddr = UInt64(virtualAddress)
            map.iova = iova
            map.size = UInt64(length)
            _ = try Syscall.ioctl(fd, MINIPORT_VFIO_IOMMU_MAP_DMA, "VFIO_IOMMU_MAP_DMA", path, &map)
        }
        liveMappings += 1
    }

    public func unmapDMA(iova: UInt64, length: Int) throws(VFIOError) {
        guard fd >= 0 else { throw .closed(path) }
        if !needsPhysicalAddresses {
            var unmap = vfio_iommu_type1_dma_unmap()
            unmap.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_unmap>.size)
            unmap.iova = iova
            unmap.size = UInt64(length)
            _ = try Syscall.ioctl(fd, MINIPORT_VFIO_IOMMU_UNMAP_DMA, "VFIO_IOMMU_UNMAP_DMA", path, &unmap)
        }
        liveMappings -= 1
    }

    /// Closes the container. Unmap DMA first: the kernel drops remaining mappings, but the
    /// allocator would still count them.
    public func close() {
        if fd >= 0 {
            Syscall.close(fd)
            fd = -1
        }
    }

    static func load<T: FixedWidthInteger>(_: T.Type, from bytes: [UInt8], at offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    static func store<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self) }
    }
}

/// A VFIO group (/dev/vfio/N): the unit of isolation the IOMMU gives.
public final class VFIOGroup {
    public let number: Int
    public let path: String
    private(set) var fd: Int32
    private var attached = false

    /// Opens /dev/vfio/N (or /dev/vfio/noiommu-N).
    /// - Throws: ``VFIOError/groupNodeMissing(path:device:)``, ``VFIOError/noPermission(path:device:)``,
    ///   ``VFIOError/groupBusy(path:device:)``.
    init(number: Int, noIOMMU: Bool, device: PCIAddress, environment: VFIOEnvironment) throws(VFIOError) {
        let path = environment.paths.devVFIO + (noIOMMU ? "/noiommu-\(number)" : "/\(number)")
        self.number = number
        self.path = path
        switch Syscall.retrying({ environment.openFile(path, O_RDWR | O_CLOEXEC) }) {
        case let .success(opened): fd = opened
        case let .failure(error) where error.code == ENOENT: throw .groupNodeMissing(path: path, device: device)
        case let .failure(error) where error.code == EACCES || error.code == EPERM: throw .noPermission(path: path, device: device)
        case let .failure(error) where error.code == EBUSY: throw .groupBusy(path: path, device: device)
        case let .failure(error): throw .system(call: "open", target: path, errno: error.code)
        }
    }

    deinit { close() }

    /// VFIO_GROUP_GET_STATUS: true when every device of the group is bound to vfio-pci or unbound.
    func isViable() throws(VFIOError) -> Bool {
        var status = vfio_group_status()
        status.argsz = UInt32(MemoryLayout<vfio_group_status>.size)
        _ = try Syscall.ioctl(fd, MINIPORT_VFIO_GROUP_GET_STATUS, "VFIO_GROUP_GET_STATUS", path, &status)
        return status.flags & VFIOConstants.groupViable != 0
    }

    func attach(to container: VFIOContainer) throws(VFIOError) {
        try container.attach(groupFD: fd, groupPath: path)
        attached = true
    }

    /// VFIO_GROUP_GET_DEVICE_FD for the function's sysfs name.
    func deviceFD(for address: PCIAddress) throws(VFIOError) -> Int32 {
        let name = address.description
        return try Syscall.check("VFIO_GROUP_GET_DEVICE_FD", path) {
            name.withCString { miniport_ioctl_ptr(fd, MINIPORT_VFIO_GROUP_GET_DEVICE_FD, UnsafeMutableRawPointer(mutating: $0)) }
        }
    }

    public func close() {
        guard fd >= 0 else { return }
        if attached {
            _ = try? Syscall.ioctl(fd, MINIPORT_VFIO_GROUP_UNSET_CONTAINER, "VFIO_GROUP_UNSET_CONTAINER", path, integer: 0)
            attached = false
        }
        Syscall.close(fd)
        fd = -1
    }

    public var isOpen: Bool { fd >= 0 }
}
