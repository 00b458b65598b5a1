import DeviceAccess
import DriverKit
import NDIS

/// The IGB family's registry entry (82576 and I350 physical functions).
public enum IGBFamily: MiniportFamily {
    public static let name = "igb"

    public static var devices: [ClaimedDevice] {
        IGBDeviceID.supported.map { ClaimedDevice(vendorID: IGBDeviceID.vendor, deviceID: $0.id, name: $0.name, verified: $0.verified) }
    }

    public static func makeAdapter<F: PCIFunction>(function: F, name: String, context: OpeningContext) throws(NDISError) -> Adapter {
        var config = IGBConfiguration()
        switch context {
        case .device:
            config.linkTimeout = .seconds(20)
        case .model:
            config.linkTimeout = .seconds(5)
            // A multicast frame goes only to queues whose filters accept it, else to the default queue.
            config.queuesAcceptMulticast = false
        }
        // Paused: receive starts at the caller's restart, after its filters and queues are set.
        return try IGBMiniport<F>.makeAdapter(function: function, name: name, configuration: config, start: false)
    }
}
