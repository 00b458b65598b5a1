import CShim
import Glibc
import PCI

/// Everything VFIO takes from the host, injectable so tests can produce each failure on a machine
/// without /dev/vfio: the paths (a fixture root), open(2), the memlock limit, and where warnings go.
public struct VFIOEnvironment: Sendable {
    public var paths: HostPaths
    /// open(2): returns a descriptor, or -1 with errno set.
    public var openFile: @Sendable (_ path: String, _ flags: Int32) -> Int32
    /// RLIMIT_MEMLOCK's soft limit in bytes; `nil` when unlimited.
    public var memlockLimit: @Sendable () -> Int?
    /// True when the process may lock memory beyond the limit (CAP_IPC_LOCK).
    public var canLockBeyondLimit: @Sendable () -> Bool
    /// Where warnings go (no-IOMMU opt-in, 4 KiB fallback).
    public var warn: @Sendable (String) -> Void

    public init(
        paths: HostPaths = .system,
        openFile: @escaping @Sendable (String, Int32) -> Int32 = { Glibc.open($0, $1) },
        memlockLimit: @escaping @Sendable () -> Int? = VFIOEnvironment.currentMemlockLimit,
        canLockBeyondLimit: @escaping @Sendable () -> Bool = VFIOEnvironment.hasIPCLockCapability,
        warn: @escaping @Sendable (String) -> Void = VFIOEnvironment.printWarning
    ) {
        self.paths = paths
        self.openFile = openFile
        self.memlockLimit = memlockLimit
        self.canLockBeyondLimit = canLockBeyondLimit
        self.warn = warn
    }

    /// The real machine.
    public static let system = VFIOEnvironment()

    @Sendable public static func currentMemlockLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(UInt32(MINIPORT_RLIMIT_MEMLOCK)), &limit) == 0 else { return nil }
        // RLIM_INFINITY is (rlim_t)-1, which Swift cannot import.
        return limit.rlim_cur == rlim_t.max ? nil : Int(clamping: limit.rlim_cur)
    }

    /// CAP_IPC_LOCK (bit 14 of CapEff in /proc/self/status) lets VFIO pin memory past RLIMIT_MEMLOCK.
    @Sendable public static func hasIPCLockCapability() -> Bool {
        guard let status = SysFile.readText("/proc/self/status") else { return false }
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }
            if let caps = UInt64(hex, radix: 16) { return caps & (1 << 14) != 0 }
        }
        return false
    }

    @Sendable public static func printWarning(_ message: String) {
        var line = "miniport: warning: " + message + "\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// What to do when no 2 MiB hugepage is free.
public enum HugepagePolicy: Sendable, Equatable {
    /// Use hugepages; fall back to 4 KiB pages with a warning.
    case prefer
    /// Use hugepages or fail with ``VFIOError/noHugepages(requested:)``.
    case require
    /// Use 4 KiB pages only.
    case never
}

/// How IOVAs are chosen for DMA memory.
public enum IOVAPolicy: Sendable, Equatable {
    /// From the container's valid ranges, lowest first (works with any IOMMU address width).
    case allocate
    /// IOVA equal to the virtual address where that lies in a valid range, else allocated.
    case identity
}

/// How a device is opened.
public struct VFIOOptions: Sendable {
    /// Accept vfio's unsafe no-IOMMU mode (with a warning); refused otherwise.
    public var allowNoIOMMU: Bool
    public var hugepages: HugepagePolicy
    public var iova: IOVAPolicy

    public init(allowNoIOMMU: Bool = false, hugepages: HugepagePolicy = .prefer, iova: IOVAPolicy = .allocate) {
        self.allowNoIOMMU = allowNoIOMMU
        self.hugepages = hugepages
        self.iova = iova
    }
}
