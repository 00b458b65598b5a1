import DeviceAccess
import NDIS

/// One PCI id a miniport family drives.
public struct ClaimedDevice: Sendable, Equatable {
    public var vendorID: UInt16
    public var deviceID: UInt16
    /// Chip or board name (`82576`, `virtio 1.0 net`).
    public var name: String
    /// True once the id was run on a real or QEMU device (the others are claimed by datasheet).
    public var verified: Bool

    public init(vendorID: UInt16, deviceID: UInt16, name: String, verified: Bool) {
        self.vendorID = vendorID
        self.deviceID = deviceID
        self.name = name
        self.verified = verified
    }
}

/// Where an adapter is being opened: the bring-up waits differ (a real link takes seconds).
public enum OpeningContext: Sendable, Equatable {
    /// A function bound to vfio-pci.
    case device
    /// An in-process hardware model.
    case model
}

/// A miniport family's registry entry: the PCI ids it drives and how to make an adapter for one.
///
/// Each driver target declares one (`IGBFamily`, `VirtioNetFamily`); the registry
/// (`MiniportRegistry`) lists them, `miniport list` derives its MINIPORT column from them, and every
/// command opens a device through the family that claims its id.
public protocol MiniportFamily {
    /// Short name (`igb`, `virtio-net`): the `--nic` value and the `miniport list` column.
    static var name: String { get }
    /// Every id the family claims; the miniport's own check accepts exactly these.
    static var devices: [ClaimedDevice] { get }
    /// Ids the family recognises but will not drive, with the one-line reason and fix
    /// (a legacy virtio device, for example); nil for any other id.
    static func refusal(vendorID: UInt16, deviceID: UInt16) -> String?
    /// Makes and initializes an adapter for `function`, and leaves it Paused with receive off in
    /// hardware (NDIS's order): the caller binds, sets the packet filter, allocates queues and sets
    /// filters, then calls `Adapter.restart()` (for the commands: `OpenedAdapter.start()`).
    static func makeAdapter<F: PCIFunction>(function: F, name: String, context: OpeningContext) throws(NDISError) -> Adapter
}

extension MiniportFamily {
    public static func refusal(vendorID: UInt16, deviceID: UInt16) -> String? { nil }

    /// True if the family drives `vendorID:deviceID`.
    public static func claims(vendorID: UInt16, deviceID: UInt16) -> Bool {
        devices.contains { $0.vendorID == vendorID && $0.deviceID == deviceID }
    }
}
