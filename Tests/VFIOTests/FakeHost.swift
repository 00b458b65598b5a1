import Foundation
import PCI
import Synchronization
@testable import VFIO

/// A throwaway `/` with just enough sysfs and /dev/vfio for VFIODevice.open to reach each check.
final class FakeHost {
    let root: String
    var paths: HostPaths { HostPaths(root: root) }

    init() {
        root = NSTemporaryDirectory() + "miniport-vfio-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: root + "/sys/bus/pci/devices", withIntermediateDirectories: true)
        try! FileManager.default.createDirectory(atPath: root + "/dev/vfio", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    /// Adds a function: an 82576 by default, network class.
    func function(_ address: String, driver: String?, group: Int?, groupName: String? = nil, vendor: String = "0x8086", device: String = "0x10c9") {
        let dir = root + "/sys/bus/pci/devices/" + address
        let fm = FileManager.default
        try! fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, text) in [("vendor", vendor), ("device", device), ("class", "0x020000"), ("numa_node", "-1"), ("driver_override", "(null)")] {
            try! (text + "\n").write(toFile: dir + "/" + name, atomically: false, encoding: .utf8)
        }
        if let driver { try! fm.createSymbolicLink(atPath: dir + "/driver", withDestinationPath: "../../../bus/pci/drivers/" + driver) }
        if let group {
            try! fm.createSymbolicLink(atPath: dir + "/iommu_group", withDestinationPath: "../../../kernel/iommu_groups/\(group)")
            let groupDir = root + "/sys/kernel/iommu_groups/\(group)"
            try! fm.createDirectory(atPath: groupDir + "/devices", withIntermediateDirectories: true)
            try? fm.createSymbolicLink(atPath: groupDir + "/devices/" + address, withDestinationPath: "../../../../bus/pci/devices/" + address)
            if let groupName { try! (groupName + "\n").write(toFile: groupDir + "/name", atomically: false, encoding: .utf8) }
        }
    }

    /// Creates /dev/vfio/NAME as a plain file (open succeeds; VFIO ioctls then fail with ENOTTY).
    func devNode(_ name: String) {
        precondition(FileManager.default.createFile(atPath: root + "/dev/vfio/" + name, contents: nil))
    }

    /// An environment on this root; `failOpen` makes open(2) of paths ending in a suffix fail with an errno.
    func environment(failOpen: [String: Int32] = [:], warnings: WarningLog? = nil) -> VFIOEnvironment {
        VFIOEnvironment(
            paths: paths,
            openFile: { path, flags in
                for (suffix, code) in failOpen where path.hasSuffix(suffix) {
                    errno = code
                    return -1
                }
                return open(path, flags)
            },
            memlockLimit: { nil },
            canLockBeyondLimit: { true },
            warn: { warnings?.append($0) }
        )
    }
}

/// Collects warnings from any thread.
final class WarningLog: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

/// A DMAMapper that records mappings instead of talking to an IOMMU.
final class FakeMapper: DMAMapper {
    var iovaRanges: [IOVARange]
    var iovaAlignment: UInt64 = 4096
    var needsPhysicalAddresses = false
    var mappings: [UInt64: Int] = [:]
    var failNextMap: VFIOError?

    init(ranges: [IOVARange] = IOVARange.fallback) { iovaRanges = ranges }

    func mapDMA(virtualAddress: UInt, iova: UInt64, length: Int) throws(VFIOError) {
        if let error = failNextMap {
            failNextMap = nil
            throw error
        }
        precondition(mappings[iova] == nil, "IOVA mapped twice")
        mappings[iova] = length
    }

    func unmapDMA(iova: UInt64, length: Int) throws(VFIOError) {
        guard mappings.removeValue(forKey: iova) == length else { throw .system(call: "VFIO_IOMMU_UNMAP_DMA", target: "fake", errno: EINVAL) }
    }
}

/// Anonymous memory that counts live mappings and can refuse hugepages.
final class CountingMemory: Sendable {
    private let live = Mutex<Int>(0)
    let hugepagesAvailable: Bool
    init(hugepagesAvailable: Bool) { self.hugepagesAvailable = hugepagesAvailable }

    var liveMappings: Int { live.withLock { $0 } }

    var source: DMAMemorySource {
        DMAMemorySource(
            map: { [self] length, huge in
                if huge && !hugepagesAvailable { return .failure(VFIOMemoryErrno(code: ENOMEM)) }
                // Tests use 4 KiB pages even when "hugepages" are granted: only the accounting matters here.
                let result = DMAMemorySource.anonymous.map(length, false)
                if case .success = result { live.withLock { $0 += 1 } }
                return result
            },
            unmap: { [self] base, length in
                DMAMemorySource.anonymous.unmap(base, length)
                live.withLock { $0 -= 1 }
            }
        )
    }
}
