import NDIS

/// Settings of one IGB miniport instance. The defaults suit QEMU's igb and the hardware model.
public struct IGBConfiguration: Sendable {
    /// Receive descriptors of the default queue (a power of two, 64…4096).
    public var defaultQueueDescriptors = 256
    /// Receive buffers of the default queue (at least the descriptors; the surplus lets protocols
    /// hold buffers without starving the ring).
    public var defaultQueueBuffers = 384
    /// Transmit descriptors (a power of two, 64…4096).
    public var transmitDescriptors = 256
    /// Largest frame accepted, without FCS (1522: a 1500-byte payload with a VLAN tag and 4 bytes of
    /// slack, so a "1522-byte tagged frame" passes whether or not the sender counted the FCS; up to
    /// 9728 for jumbo frames). Above 1518 the driver sets RCTL.LPE / VMOLR.LPE with RLPML = this + 4
    /// (RLPML counts the FCS, §8.10.11), because without LPE the 82576 drops tagged frames over 1518
    /// bytes without FCS.
    public var maxFrameSize = 1522
    /// Fail initialization when the link does not come up within `linkTimeout`.
    public var requireLink = true
    /// How long initialization waits for STATUS.LU after restarting auto-negotiation.
    public var linkTimeout: Duration = .seconds(10)
    /// Receive descriptors refilled at once (one tail write per batch).
    public var refillBatch = 32
    /// Transmit: set RS (report status) at least every this many descriptors.
    public var transmitReportInterval = 32
    /// Strip 802.1Q tags into the NBL's VLAN info (VMOLR.STRVLAN / CTRL.VME).
    public var stripVLANTags = true
    /// VMQ queues with a filter accept broadcast frames (VMOLR.BAM), as the default queue does.
    public var queuesAcceptBroadcast = true
    /// VMQ queues with a filter accept the adapter's multicast list (VMOLR.ROMPE).
    public var queuesAcceptMulticast = true
    /// Run the watchdog (link state, all-ones check, statistics) every this many `poll` calls.
    public var watchdogPollInterval = 4096
    /// Use MSI-X interrupts (one vector per receive queue, one for link) when the function has them.
    public var useInterrupts = false
    /// EITR interval in microseconds for queue vectors (0: no throttling).
    public var interruptThrottleMicroseconds = 100
    /// One receive worker thread per queue (IGB+Workers.swift) instead of one datapath loop; the
    /// adapter's datapath then runs in lanes. Off by default (the demo, CLI and benchmarks poll).
    public var receiveWorkers = false
    /// A worker sleeps on its vector after this many empty polls in a row.
    public var workerIdlePollsBeforeSleep = 64
    /// Longest sleep of an idle worker (also bounds how late returns from other threads are recycled).
    public var workerSleepTimeoutMilliseconds: Int32 = 10
    /// CPUs of the default queue's worker (VMQ queues use their `processorAffinity`).
    public var defaultQueueAffinity: Set<Int> = [0]

    public init() {}
}

/// Device conditions of the IGB miniport. Messages name the register or step and what to do.
public enum IGBError: Error, CustomStringConvertible, Equatable {
    /// A register read returned all ones: the function is gone (surprise removal or a dead link).
    case deviceRemoved(device: String, register: String)
    /// CTRL.RST did not clear.
    case resetTimeout(device: String)
    /// EEC.AUTO_RD did not rise and RAL0/RAH0 hold no valid address: the EEPROM/flash was not read.
    case eepromAutoReadTimeout(device: String)
    /// RAL0/RAH0 hold no valid unicast address.
    case invalidPermanentAddress(device: String, address: String)
    /// The PHY did not complete an MDIC transaction (READY) or reported an error.
    case phyAccessFailed(device: String, register: UInt32, reason: String)
    /// STATUS.LU stayed 0.
    case linkTimeout(device: String, waited: Duration)
    /// RXDCTL/TXDCTL.ENABLE did not read back as written.
    case queueEnableTimeout(device: String, queue: String, enable: Bool)
    /// The PCI function is not an 82576 or I350.
    case unsupportedDevice(vendor: UInt16, device: UInt16)
    /// A configuration value is out of range.
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case let .deviceRemoved(d, r):
            "\(d): reading \(r) returned 0xFFFFFFFF: the device is gone (surprise removal or the PCIe link is down); halt the adapter"
        case let .resetTimeout(d):
            "\(d): CTRL.RST did not clear after a software reset; reset the function (VFIO_DEVICE_RESET) and try again"
        case let .eepromAutoReadTimeout(d):
            "\(d): EEC.AUTO_RD did not rise after reset and RAL0/RAH0 hold no valid address: the NVM was not loaded; check the board's EEPROM/flash"
        case let .invalidPermanentAddress(d, a):
            "\(d): RAL0/RAH0 hold no valid unicast MAC address (\(a)); the NVM may be blank"
        case let .phyAccessFailed(d, r, why):
            "\(d): PHY register \(r) through MDIC: \(why)"
        case let .linkTimeout(d, w):
            "\(d): link did not come up (STATUS.LU = 0) within \(w) after restarting auto-negotiation; check the cable or the netdev backend, or set requireLink = false"
        case let .queueEnableTimeout(d, q, e):
            "\(d): \(q) ENABLE did not read back \(e ? 1 : 0); the queue's ring registers may be invalid"
        case let .unsupportedDevice(v, dev):
            "PCI function \(String(v, radix: 16)):\(String(dev, radix: 16)) is not an 82576 or I350; bind a supported NIC"
        case let .invalidConfiguration(m):
            "invalid IGB configuration: \(m)"
        }
    }

    /// The NDIS form of the error.
    var ndis: NDISError {
        switch self {
        case .deviceRemoved: .deviceRemoved(description)
        case .invalidConfiguration: .invalidParameter(description)
        case .unsupportedDevice: .notSupported(description)
        default: .miniportFailure(description)
        }
    }
}
