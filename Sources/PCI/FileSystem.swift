import Glibc

/// Where the host's kernel interfaces live. Tests point `root` at a fixture tree.
public struct HostPaths: Sendable, Equatable {
    /// The directory that stands for `/`.
    public var root: String

    public init(root: String = "/") {
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
    }

    /// The real machine.
    public static let system = HostPaths()

    /// `path` (absolute, as on the real machine) under the root.
    public func path(_ absolute: String) -> String {
        root == "/" ? absolute : root + absolute
    }

    /// `/sys/bus/pci` under the root (what libpci calls `sysfs.path`).
    public var sysBusPCI: String { path("/sys/bus/pci") }
    /// `/sys/bus/pci/devices` under the root.
    public var pciDevices: String { path("/sys/bus/pci/devices") }
    /// `/sys/kernel/iommu_groups` under the root.
    public var iommuGroups: String { path("/sys/kernel/iommu_groups") }
    /// `/dev/vfio` under the root.
    public var devVFIO: String { path("/dev/vfio") }
}

/// Small, allocation-tolerant file helpers for sysfs and procfs (not for hot paths).
public enum SysFile {
    /// The file's text with surrounding white space removed; `nil` if it cannot be read.
    public static func readText(_ path: String, limit: Int = 1 << 16) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
    }

    /// Raw bytes of a file (for `config`); `nil` if it cannot be read.
    public static func readBytes(_ path: String, limit: Int = 4096) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: limit)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { return nil }
        return Array(buffer[0..<n])
    }

    /// Parses a number written by the kernel in hex (`0x8086`) or decimal (`-1`).
    public static func readInteger(_ path: String) -> Int64? {
        guard let text = readText(path) else { return nil }
        return parseInteger(text)
    }

    static func parseInteger(_ text: String) -> Int64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return Int64(text.dropFirst(2), radix: 16) }
        return Int64(text)
    }

    /// The last path component of a symbolic link's target (`driver` → `igb`); `nil` if not a link.
    public static func linkName(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, $0.count - 1) }
        if n <= 0 { return nil }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.split(separator: "/").last.map(String.init)
    }

    /// Names in a directory (without `.` and `..`), sorted; `nil` if it cannot be opened.
    public static func list(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// True if something exists at `path` (following links).
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// True if `path` exists and is a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" || $0 == "\0" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
