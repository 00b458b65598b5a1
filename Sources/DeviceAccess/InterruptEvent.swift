import CShim
import Glibc

/// An eventfd an interrupt is delivered to (VFIO MSI-X, or the model raising a vector).
public struct InterruptEvent: Sendable, Equatable {
    public let fd: Int32
    public init(fd: Int32) { self.fd = fd }

    /// Creates a new non-blocking eventfd.
    public static func make() throws(DeviceAccessError) -> InterruptEvent {
        let fd = miniport_eventfd(0, MINIPORT_EFD_CLOEXEC | MINIPORT_EFD_NONBLOCK)
        if fd < 0 { throw DeviceAccessError.system(call: "eventfd", errno: errno) }
        return InterruptEvent(fd: fd)
    }

    /// Signals the event (what the device side does).
    public func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }

    /// Consumes pending signals; returns how many were pending.
    @discardableResult
    public func drain() -> UInt64 {
        var value: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 8) }
        return n == 8 ? value : 0
    }

    /// Waits up to `timeoutMilliseconds` for a signal (-1: forever). Returns true if signalled.
    public func wait(timeoutMilliseconds: Int32) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let r = poll(&pfd, 1, timeoutMilliseconds)
            if r < 0 && errno == EINTR { continue }
            if r > 0 { drain(); return true }
            return false
        }
    }

    public func close() { _ = Glibc.close(fd) }
}

/// Errors of the shared device layer.
public enum DeviceAccessError: Error, CustomStringConvertible, Equatable {
    case system(call: String, errno: Int32)
    public var description: String {
        switch self {
        case let .system(call, err): return "\(call) failed: \(String(cString: strerror(err)))"
        }
    }
}
