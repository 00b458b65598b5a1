#if canImport(Glibc)
import Glibc
#endif
import CShim

/// The model's wire connected to a Linux TAP device: what Linux sends on the TAP reaches the model
/// NIC's receiver, and what the model NIC transmits comes out of the TAP, so the kernel's own network
/// stack is the peer.
///
/// Attaches to an existing persistent TAP of the name or creates one (TUNSETIFF with IFF_TAP |
/// IFF_NO_PI: whole Ethernet frames, no packet-information header) and sets it up. The bridge works
/// inside `step()`, on the thread that polls the adapter: no thread of its own.
public final class TapBridge {
    public let name: String
    let wire: any Wire
    private var fd: Int32
    /// Frames carried each way, and frames the TAP refused (its queue full).
    public private(set) var fromTap: UInt64 = 0
    public private(set) var toTap: UInt64 = 0
    public private(set) var writeErrors: UInt64 = 0
    private let buffer: UnsafeMutableRawPointer
    static let bufferSize = 65536

    // linux/if_tun.h and linux/if.h.
    static let tunSetIff: UInt = 0x4004_54ca   // _IOW('T', 202, int)
    static let iffTap: Int16 = 0x0002
    static let iffNoPI: Int16 = 0x1000
    static let iffUp: Int16 = 0x1
    static let siocGIFFlags: UInt = 0x8913
    static let siocSIFFlags: UInt = 0x8914

    /// Opens (or creates) the TAP `name` and connects it to `model`'s wire.
    public init(name: String, wire: any Wire) throws(OpenError) {
        guard !name.isEmpty, name.utf8.count < 16, !name.contains("/") else {
            throw .tap("bad TAP name '\(name)': give --tap an interface name of 1 to 15 characters")
        }
        self.name = name
        self.wire = wire
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw .tap("cannot open /dev/net/tun for TAP \(name): \(String(cString: strerror(errno))); load the tun module (modprobe tun) and run as root or with CAP_NET_ADMIN")
        }
        var req = TapBridge.interfaceRequest(name: name, flags: TapBridge.iffTap | TapBridge.iffNoPI)
        // Safety: `req` is a 40-byte struct ifreq the kernel reads and writes.
        let rc = withUnsafeMutableBytes(of: &req) { miniport_ioctl_ptr(fd, TapBridge.tunSetIff, $0.baseAddress) }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            let hint = e == EPERM ? "run as root or with CAP_NET_ADMIN"
                : e == EBUSY ? "another process has TAP \(name) open; stop it first"
                : e == EINVAL ? "\(name) exists and is not a TAP device; pick another name"
                : "check the name"
            throw .tap("cannot attach to TAP \(name): \(String(cString: strerror(e))); \(hint)")
        }
        self.fd = fd
        buffer = .allocate(byteCount: TapBridge.bufferSize, alignment: 64)
        TapBridge.setUp(name)
    }

    deinit {
        close()
        buffer.deallocate()
    }

    /// Detaches from the TAP (a persistent TAP stays, without carrier; one we created goes away).
    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    /// Moves what waits on the TAP onto the wire, lets the model work, and writes what the model
    /// transmitted to the TAP.
    public func step() {
        guard fd >= 0 else { wire.step(); return }
        var n = 0
        while n < 256 {
            let got = read(fd, buffer, TapBridge.bufferSize)
            if got <= 0 { break }
            // Safety: the kernel wrote `got` bytes into `buffer`.
            wire.inject(Array(UnsafeRawBufferPointer(start: buffer, count: got)))
            fromTap &+= 1
            n += 1
        }
        wire.step()
        for frame in wire.takeTransmitted() {
            let wrote = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if wrote == frame.count { toTap &+= 1 } else { writeErrors &+= 1 }
        }
    }

    /// struct ifreq: ifr_name[16], then the union (ifr_flags is its first short), 40 bytes in all.
    static func interfaceRequest(name: String, flags: Int16) -> (UInt64, UInt64, UInt64, UInt64, UInt64) {
        var req: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &req) { raw in
            for (i, b) in name.utf8.prefix(15).enumerated() { raw[i] = b }
            raw.storeBytes(of: flags, toByteOffset: 16, as: Int16.self)
        }
        return req
    }

    /// Sets the interface up (IFF_UP), as `ip link set NAME up` would; a failure leaves it as it is.
    static func setUp(_ name: String) {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard s >= 0 else { return }
        defer { Glibc.close(s) }
        var req = interfaceRequest(name: name, flags: 0)
        // Safety: SIOCGIFFLAGS/SIOCSIFFLAGS read and write a struct ifreq (`req`).
        withUnsafeMutableBytes(of: &req) { raw in
            guard miniport_ioctl_ptr(s, siocGIFFlags, raw.baseAddress) == 0 else { return }
            let flags = raw.load(fromByteOffset: 16, as: Int16.self)
            if flags & iffUp != 0 { return }
            raw.storeBytes(of: flags | iffUp, toByteOffset: 16, as: Int16.self)
            _ = miniport_ioctl_ptr(s, siocSIFFlags, raw.baseAddress)
        }
    }
}
