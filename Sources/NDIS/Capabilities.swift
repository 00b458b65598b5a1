/// What a miniport's hardware can filter and steer. NDIS: NDIS_RECEIVE_FILTER_CAPABILITIES.
public struct ReceiveFilterCapabilities: Sendable, Equatable {
    /// Queues besides the default queue (NumQueues excludes it).
    public var numberOfQueues: Int
    /// Filters the hardware can hold in total (MaxMacHeaderFilters).
    public var maxMACHeaderFilters: Int
    /// Filters per queue the hardware supports.
    public var maxFiltersPerQueue: Int
    /// Tests the hardware can do (SupportedFilterTests).
    public var supportedTests: Set<FilterTest>
    /// Fields the hardware can test (SupportedMacHeaderFields and friends).
    public var supportedFields: Set<FilterField>
    /// Combinations the hardware supports, each a set of fields (e.g. {mac}, {vlan}, {mac, vlan}).
    public var supportedFieldCombinations: [Set<FilterField>]
    /// LOOKAHEAD_SPLIT_SUPPORTED.
    public var lookaheadSplitSupported: Bool
    public var minLookaheadSplitSize: Int
    public var maxLookaheadSplitSize: Int
    /// Most buffers the hardware takes per queue.
    public var maxBuffersPerQueue: Int

    public init(numberOfQueues: Int, maxMACHeaderFilters: Int, maxFiltersPerQueue: Int,
                supportedTests: Set<FilterTest>, supportedFields: Set<FilterField>,
                supportedFieldCombinations: [Set<FilterField>] = [],
                lookaheadSplitSupported: Bool, minLookaheadSplitSize: Int = 0, maxLookaheadSplitSize: Int = 0,
                maxBuffersPerQueue: Int = 4096) {
        self.numberOfQueues = numberOfQueues
        self.maxMACHeaderFilters = maxMACHeaderFilters
        self.maxFiltersPerQueue = maxFiltersPerQueue
        self.supportedTests = supportedTests
        self.supportedFields = supportedFields
        self.supportedFieldCombinations = supportedFieldCombinations
        self.lookaheadSplitSupported = lookaheadSplitSupported
        self.minLookaheadSplitSize = minLookaheadSplitSize
        self.maxLookaheadSplitSize = maxLookaheadSplitSize
        self.maxBuffersPerQueue = maxBuffersPerQueue
    }

    /// No hardware filtering at all (everything on the default queue).
    public static let none = ReceiveFilterCapabilities(
        numberOfQueues: 0, maxMACHeaderFilters: 0, maxFiltersPerQueue: 0, supportedTests: [],
        supportedFields: [], lookaheadSplitSupported: false)

    /// True when the hardware can run `filter` as given.
    public func canRunInHardware(_ filter: ReceiveFilterParameters) -> Bool {
        guard numberOfQueues > 0 else { return false }
        let fields = Set(filter.tests.map(\.field))
        guard filter.tests.allSatisfy({ supportedTests.contains($0.test) && supportedFields.contains($0.field) }) else { return false }
        // A field tested twice cannot be a single hardware entry.
        guard fields.count == filter.tests.count else { return false }
        if supportedFieldCombinations.isEmpty { return true }
        return supportedFieldCombinations.contains(fields)
    }
}

/// The capabilities in force: what the hardware does, and what the framework adds in software.
/// NDIS: OID_RECEIVE_FILTER_CURRENT_CAPABILITIES beside OID_RECEIVE_FILTER_HARDWARE_CAPABILITIES.
public struct CurrentReceiveFilterCapabilities: Sendable, Equatable {
    /// What the hardware does.
    public var hardware: ReceiveFilterCapabilities
    /// Fields the framework can test in software on the default queue's frames.
    public var softwareFields: Set<FilterField>
    /// Tests the framework can do in software.
    public var softwareTests: Set<FilterTest>
    /// Queues the framework offers in total (hardware queues plus software-only ones).
    public var numberOfQueues: Int

    /// Where a filter would run: `true` hardware, `false` software, nil nowhere.
    public func placement(of filter: ReceiveFilterParameters) -> Bool? {
        if hardware.canRunInHardware(filter) { return true }
        if filter.tests.allSatisfy({ softwareFields.contains($0.field) && softwareTests.contains($0.test) }) { return false }
        return nil
    }
}

/// A miniport's general attributes (NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES and friends).
public struct MiniportAttributes: Sendable {
    public var permanentAddress: MACAddress
    public var currentAddress: MACAddress
    public var mtu: Int
    public var maxFrameSize: Int
    /// Bytes of backfill every receive buffer keeps in front of the frame (DataBackFillSize).
    public var dataBackfillSize: Int
    public var linkSpeedBitsPerSecond: UInt64
    public var receiveFilterCapabilities: ReceiveFilterCapabilities
    public var supportsRSS: Bool
    public var maxRSSQueues: Int
    public var description: String
    /// The miniport programs its device's MAC filter with the MACs of the software filters
    /// (`MiniportDriver.softwareFiltersChanged`), so the framework need not turn promiscuous on
    /// for them.
    public var admitsSoftwareFilterMACs = false

    public init(permanentAddress: MACAddress, currentAddress: MACAddress, mtu: Int = 1500, maxFrameSize: Int = 1522,
                dataBackfillSize: Int = 0, linkSpeedBitsPerSecond: UInt64 = 1_000_000_000,
                receiveFilterCapabilities: ReceiveFilterCapabilities, supportsRSS: Bool = false, maxRSSQueues: Int = 0,
                description: String) {
        self.permanentAddress = permanentAddress
        self.currentAddress = currentAddress
        self.mtu = mtu
        self.maxFrameSize = maxFrameSize
        self.dataBackfillSize = dataBackfillSize
        self.linkSpeedBitsPerSecond = linkSpeedBitsPerSecond
        self.receiveFilterCapabilities = receiveFilterCapabilities
        self.supportsRSS = supportsRSS
        self.maxRSSQueues = maxRSSQueues
        self.description = description
    }
}

/// Link state (NDIS_LINK_STATE).
public struct LinkState: Sendable, Equatable {
    public var up: Bool
    public var speedBitsPerSecond: UInt64
    public var fullDuplex: Bool
    public init(up: Bool, speedBitsPerSecond: UInt64 = 0, fullDuplex: Bool = true) {
        self.up = up
        self.speedBitsPerSecond = speedBitsPerSecond
        self.fullDuplex = fullDuplex
    }
}
