import DeviceAccess

// The driver's view of the virtio 1.x modern PCI transport and of the network device, from the
// virtio 1.2 specification (section numbers in comments). The model keeps its own definitions.

/// PCI ids.
public enum VirtioNetDeviceID {
    public static let vendor: UInt16 = 0x1AF4
    /// Modern virtio-net (0x1040 + device type 1, §4.1.2.1).
    public static let modern: UInt16 = 0x1041
    /// Transitional (legacy-capable) virtio-net: refused.
    public static let transitional: UInt16 = 0x1000
}

/// struct virtio_pci_cap cfg_type values (§4.1.4).
enum VirtioCapType {
    static let common: UInt8 = 1, notify: UInt8 = 2, isr: UInt8 = 3, device: UInt8 = 4
}

/// struct virtio_pci_common_cfg offsets (§4.1.4.3).
enum VirtioCommon {
    static let deviceFeatureSelect = 0x00, deviceFeature = 0x04, driverFeatureSelect = 0x08, driverFeature = 0x0C
    static let msixConfig = 0x10, numQueues = 0x12, deviceStatus = 0x14, configGeneration = 0x15
    static let queueSelect = 0x16, queueSize = 0x18, queueMSIXVector = 0x1A, queueEnable = 0x1C, queueNotifyOff = 0x1E
    static let queueDesc = 0x20, queueDriver = 0x28, queueDevice = 0x30
    static let noVector: UInt16 = 0xFFFF
}

/// Device status (§2.1).
enum VirtioStatus {
    static let acknowledge: UInt8 = 1, driver: UInt8 = 2, driverOK: UInt8 = 4, featuresOK: UInt8 = 8
    static let needsReset: UInt8 = 0x40, failed: UInt8 = 0x80
}

/// Feature bits (§5.1.3, §6).
public enum VirtioNetFeature {
    public static let csum: UInt64 = 1 << 0
    public static let mac: UInt64 = 1 << 5
    public static let mrgRxbuf: UInt64 = 1 << 15
    public static let status: UInt64 = 1 << 16
    public static let ctrlVQ: UInt64 = 1 << 17
    public static let ctrlRx: UInt64 = 1 << 18
    public static let ctrlVLAN: UInt64 = 1 << 19
    public static let mq: UInt64 = 1 << 22
    public static let version1: UInt64 = 1 << 32
    public static let accessPlatform: UInt64 = 1 << 33
    public static let ringPacked: UInt64 = 1 << 34

    /// What this miniport asks for when offered (VERSION_1 and ACCESS_PLATFORM are required).
    public static let wanted: UInt64 = version1 | accessPlatform | mac | status | mrgRxbuf | ctrlVQ | ctrlRx | ctrlVLAN

    static let names: [(UInt64, String)] = [
        (csum, "CSUM"), (mac, "MAC"), (mrgRxbuf, "MRG_RXBUF"), (status, "STATUS"), (ctrlVQ, "CTRL_VQ"), (ctrlRx, "CTRL_RX"),
        (ctrlVLAN, "CTRL_VLAN"), (mq, "MQ"), (version1, "VERSION_1"), (accessPlatform, "ACCESS_PLATFORM"), (ringPacked, "RING_PACKED"),
    ]

    /// Names of the known bits in `features`.
    public static func describe(_ features: UInt64) -> [String] { names.filter { features & $0.0 != 0 }.map(\.1) }
}

/// Split virtqueue layout (§2.7): descriptor table, driver (avail) ring, device (used) ring.
enum Virtq {
    static let descSize = 16
    static let descNext: UInt16 = 1, descWrite: UInt16 = 2
    static let availNoInterrupt: UInt16 = 1
    static let usedNoNotify: UInt16 = 1
    static func availBytes(_ n: Int) -> Int { 6 + 2 * n }
    static func usedBytes(_ n: Int) -> Int { 6 + 8 * n }
}

/// struct virtio_net_hdr with VERSION_1 (§5.1.6): 12 bytes, num_buffers at 10.
enum VirtioNetHeader {
    static let size = 12
    static let numBuffersOffset = 10
}

/// Control queue classes and commands (§5.1.6.5).
enum VirtioControl {
    static let rx: UInt8 = 0, mac: UInt8 = 1, vlan: UInt8 = 2
    static let rxPromisc: UInt8 = 0, rxAllMulti: UInt8 = 1, rxNoBroadcast: UInt8 = 5
    static let macTableSet: UInt8 = 0
    static let vlanAdd: UInt8 = 0, vlanDel: UInt8 = 1
    static let ok: UInt8 = 0
}

/// Where the transport's structures are: found through the vendor capabilities.
struct VirtioTransport {
    var bar = -1
    var common = -1
    var notify = -1
    var notifyMultiplier = 0
    var isr = -1
    var device = -1
}
