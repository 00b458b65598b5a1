import CShim
import Glibc

// Layer 2 of the syscall wrappers (layer 1 is the raw mirror in CShim and Glibc; layer 3 is the
// typed API of VFIOContainer, VFIOGroup, VFIODevice and VFIODMAAllocator).

/// The errno of a failed call.
struct Errno: Error, Equatable {
    let code: Int32
}

enum Syscall {
    /// Runs a call that returns a negative value and sets errno on failure, retrying on EINTR.
    @inline(__always)
    static func retrying<T: FixedWidthInteger & SignedInteger>(_ body: () -> T) -> Result<T, Errno> {
        while true {
            let result = body()
            if result >= 0 { return .success(result) }
            let code = errno
            if code != EINTR { return .failure(Errno(code: code)) }
        }
    }

    /// Runs a call through ``retrying(_:)`` and turns a failure into ``VFIOError/system(call:target:errno:)``.
    @inline(__always)
    static func check<T: FixedWidthInteger & SignedInteger>(_ call: String, _ target: String, _ body: () -> T) throws(VFIOError) -> T {
        switch retrying(body) {
        case let .success(value): return value
        case let .failure(error): throw .system(call: call, target: target, errno: error.code)
        }
    }

    /// An ioctl with a pointer argument to `value`.
    static func ioctl<T>(_ fd: Int32, _ request: UInt, _ name: String, _ target: String, _ value: inout T) throws(VFIOError) -> Int32 {
        try check(name, target) {
            withUnsafeMutableBytes(of: &value) { miniport_ioctl_ptr(fd, request, $0.baseAddress) }
        }
    }

    /// An ioctl with a pointer to a byte buffer (for structures with flexible arrays).
    static func ioctl(_ fd: Int32, _ request: UInt, _ name: String, _ target: String, bytes: inout [UInt8]) throws(VFIOError) -> Int32 {
        try check(name, target) {
            bytes.withUnsafeMutableBytes { miniport_ioctl_ptr(fd, request, $0.baseAddress) }
        }
    }

    /// An ioctl with an integer argument.
    static func ioctl(_ fd: Int32, _ request: UInt, _ name: String, _ target: String, integer: UInt) throws(VFIOError) -> Int32 {
        try check(name, target) { miniport_ioctl_int(fd, request, integer) }
    }

    static func close(_ fd: Int32) {
        // close(2) must not be retried on EINTR on Linux: the descriptor is already gone.
        _ = Glibc.close(fd)
    }
}

/// Counts of what this process holds open, from /proc/self: used to prove a device left nothing behind.
public enum ProcessResources {
    /// Entries in /proc/self/fd (the directory stream of the count itself excluded).
    public static func openFileDescriptorCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let first = entry.pointee.d_name.0
            if first != UInt8(ascii: ".") { count += 1 }
        }
        return count - 1  // the descriptor of the open directory stream
    }

    /// Lines of /proc/self/maps: every mapping of the process.
    public static func mappingCount() -> Int {
        let fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return -1 }
        defer { Glibc.close(fd) }
        var lines = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            for i in 0..<n where buffer[i] == UInt8(ascii: "\n") { lines += 1 }
        }
        return lines
    }
}
