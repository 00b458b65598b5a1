import DeviceAccess
import Glibc
import ModelKit

// The device side of a virtio 1.x network device on the modern PCI transport, after the virtio
// 1.2 specification (§4.1 "Virtio Over PCI Bus", §2.7 "Split Virtqueues", §5.1 "Network Device")
// and what QEMU's hw/net/virtio-net.c does where the spec leaves room (Docs/VIRTIO.md): promiscuous
// after reset, a 64-entry MAC table whose overflow accepts all, a 4096-bit VLAN table that starts
// empty when CTRL_VLAN is negotiated, the device's own MAC always accepted.
//
// The model's register map is its own (the driver has another): a wrong offset in one is caught by
// the other and by the differential against QEMU.

/// Offsets and values of the model's transport, as the spec defines them.
enum VirtioModelLayout {
    // BAR 4 (as QEMU): one 16 KiB memory BAR holding the four structures.
    static let bar = 4
    static let common = 0x0000
    static let isr = 0x1000
    static let device = 0x2000
    static let notify = 0x3000
    static let notifyMultiplier = 4
    static let barSize = 0x4000

    // Common configuration (§4.1.4.3).
    static let deviceFeatureSelect = 0x00, deviceFeature = 0x04, driverFeatureSelect = 0x08, driverFeature = 0x0C
    static let msixConfig = 0x10, numQueues = 0x12, deviceStatus = 0x14, configGeneration = 0x15
    static let queueSelect = 0x16, queueSize = 0x18, queueMSIXVector = 0x1A, queueEnable = 0x1C, queueNotifyOff = 0x1E
    static let queueDesc = 0x20, queueDriver = 0x28, queueDevice = 0x30
    static let commonLength = 0x38

    static let noVector: UInt16 = 0xFFFF
}

/// Device status bits (§2.1).
enum VirtioModelStatus {
    static let acknowledge: UInt8 = 1, driver: UInt8 = 2, driverOK: UInt8 = 4, featuresOK: UInt8 = 8
    static let needsReset: UInt8 = 0x40, failed: UInt8 = 0x80
}

/// Feature bits the model can offer (§5.1.3, §6).
public enum VirtioModelFeature {
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
}

/// Frames the model's wire saw and what became of them.
public struct VirtioNetWireCounters: Sendable, Equatable {
    /// Frames written into receive buffers.
    public var received = 0
    /// Frames the receive filter dropped (RX mode, MAC table, VLAN table).
    public var filtered = 0
    /// Frames dropped because they did not fit the posted buffers.
    public var tooLong = 0
    /// Frames refused by the full receive FIFO (the driver posted no buffers in time).
    public var notReceived = 0
    /// Frames the device transmitted.
    public var transmitted = 0
    /// Control commands processed, and those answered VIRTIO_NET_ERR.
    public var controlCommands = 0
    public var controlErrors = 0
}

/// One split virtqueue as the device sees it (§2.7).
struct ModelVirtqueue {
    var size: UInt16 = 256
    var maxSize: UInt16 = 256
    var vector: UInt16 = VirtioModelLayout.noVector
    var enabled = false
    var desc: UInt64 = 0
    var driver: UInt64 = 0
    var device: UInt64 = 0
    /// Next avail ring entry the device will take.
    var lastAvail: UInt16 = 0
    /// The used ring's idx as the device last wrote it.
    var usedIdx: UInt16 = 0
    var notified = false
}

/// An in-process virtio-net device (1af4:1041): transport, split virtqueues, control queue
/// filters, MSI-X, and a port on the model kit's wire.
public final class VirtioNetModel: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var permanentAddress: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        /// Largest queue size the device offers (QEMU: 256).
        public var maxQueueSize: UInt16 = 256
        /// Features offered. QEMU with a dgram backend: no CSUM (no vnet header), no MQ.
        public var features: UInt64 = VirtioModelFeature.version1 | VirtioModelFeature.accessPlatform | VirtioModelFeature.mac
            | VirtioModelFeature.status | VirtioModelFeature.mrgRxbuf | VirtioModelFeature.ctrlVQ | VirtioModelFeature.ctrlRx
            | VirtioModelFeature.ctrlVLAN
        public var linkUp = true
        /// Frames the wire holds while the driver posts no buffers.
        public var receiveFIFOFrames = 512
        /// Largest frame accepted from the wire (no FCS).
        public var maximumFrameLength = 9018
        /// Keep transmitted frames for `takeTransmitted()` when no peer is connected.
        public var keepTransmittedFrames = true
        /// MSI-X table size (QEMU: 2 × queue pairs + 2 = 4... we offer 4).
        public var msixVectors = 4
        public init() {}
    }

    public let configuration: Configuration
    public let iommu: ModelIOMMU
    /// The model's socket on the wire (ModelKit).
    public let port: WirePort
    public internal(set) var wireCounters = VirtioNetWireCounters()
    var transmitted: [[UInt8]] = []
    let scratch: UnsafeMutableRawPointer
    /// The permanent address as two words (compared per frame without touching an array).
    let macLow: UInt32
    let macHigh: UInt16
    /// Receive gather tables: chains (head, first segment, segments) and their writable segments.
    static let gatherChains = 64
    static let gatherSegments = 256
    let gatherHeads: UnsafeMutablePointer<(head: UInt16, first: Int, count: Int)>
    let gatherSegments: UnsafeMutablePointer<(UInt64, Int)>

    // Transport state.
    var pciCommand: UInt16 = 0
    var msixEnabled = false
    var vectors: [InterruptEvent] = []
    var deviceFeatureSelect: UInt32 = 0
    var driverFeatureSelect: UInt32 = 0
    public internal(set) var driverFeatures: UInt64 = 0
    public internal(set) var status: UInt8 = 0
    var configGeneration: UInt8 = 0
    var configVector: UInt16 = VirtioModelLayout.noVector
    var queueSelect: UInt16 = 0
    var queues: [ModelVirtqueue]
    var isr: UInt8 = 0
    public internal(set) var isSurpriseRemoved = false
    public internal(set) var linkUp: Bool

    // Receive filter state (§5.1.6.5; QEMU's reset values).
    public internal(set) var promiscuous = true
    public internal(set) var allMulticast = false
    public internal(set) var allUnicast = false
    public internal(set) var noMulticast = false
    public internal(set) var noUnicast = false
    public internal(set) var noBroadcast = false
    public internal(set) var unicastTable: [[UInt8]] = []
    public internal(set) var multicastTable: [[UInt8]] = []
    var unicastOverflow = false
    var multicastOverflow = false
    var vlans = [UInt32](repeating: 0, count: 128)
    /// QEMU's MAC_TABLE_ENTRIES: unicast and multicast entries together.
    public static let macTableEntries = 64

    public init(configuration: Configuration = Configuration(), iommu: ModelIOMMU? = nil) throws {
        guard configuration.permanentAddress.count == 6 else { throw ModelError.badMACAddress(count: configuration.permanentAddress.count) }
        self.configuration = configuration
        self.iommu = iommu ?? ModelIOMMU()
        port = WirePort(slots: max(1, configuration.receiveFIFOFrames), slotSize: configuration.maximumFrameLength + 8)
        scratch = .allocate(byteCount: 65_536 + 64, alignment: 64)
        let m = configuration.permanentAddress
        macLow = UInt32(m[0]) | UInt32(m[1]) << 8 | UInt32(m[2]) << 16 | UInt32(m[3]) << 24
        macHigh = UInt16(m[4]) | UInt16(m[5]) << 8
        gatherHeads = .allocate(capacity: Self.gatherChains)
        gatherHeads.initialize(repeating: (0, 0, 0), count: Self.gatherChains)
        gatherSegments = .allocate(capacity: Self.gatherSegments)
        gatherSegments.initialize(repeating: (0, 0), count: Self.gatherSegments)
        linkUp = configuration.linkUp
        let pairs = configuration.features & VirtioModelFeature.mq != 0 ? 2 : 1
        var q = ModelVirtqueue()
        q.maxSize = configuration.maxQueueSize
        q.size = configuration.maxQueueSize
        queues = Array(repeating: q, count: pairs * 2 + (configuration.features & VirtioModelFeature.ctrlVQ != 0 ? 1 : 0))
    }

    deinit {
        port.disconnect()
        for v in vectors { v.close() }
        scratch.deallocate()
        gatherHeads.deallocate()
        gatherSegments.deallocate()
    }

    /// Queue pairs the device offers (max_virtqueue_pairs).
    public var queuePairs: Int { configuration.features & VirtioModelFeature.mq != 0 ? 2 : 1 }
    var controlQueueIndex: Int? { configuration.features & VirtioModelFeature.ctrlVQ != 0 ? queuePairs * 2 : nil }
    func negotiated(_ f: UInt64) -> Bool { driverFeatures & f != 0 && status & VirtioModelStatus.featuresOK != 0 }

    /// The model as a PCI function.
    public static func makeFunction(configuration: Configuration = Configuration()) throws -> VirtioNetModelFunction {
        VirtioNetModelFunction(model: try VirtioNetModel(configuration: configuration))
    }

    /// A model sharing `other`'s IOMMU (one DMA space), as its PCI function.
    public static func makeFunction(configuration: Configuration = Configuration(), sharingIOMMUWith iommu: ModelIOMMU) throws -> VirtioNetModelFunction {
        VirtioNetModelFunction(model: try VirtioNetModel(configuration: configuration, iommu: iommu))
    }

    // MARK: reset

    /// Device reset (writing 0 to device_status, §2.4): queues, features and filters to their reset values.
    func reset() {
        driverFeatures = 0
        status = 0
        isr = 0
        configVector = VirtioModelLayout.noVector
        queueSelect = 0
        for i in queues.indices {
            let max = queues[i].maxSize
            queues[i] = ModelVirtqueue()
            queues[i].maxSize = max
            queues[i].size = max
        }
        promiscuous = true
        allMulticast = false; allUnicast = false; noMulticast = false; noUnicast = false; noBroadcast = false
        unicastTable = []; multicastTable = []
        unicastOverflow = false; multicastOverflow = false
        for i in vlans.indices { vlans[i] = 0 }
    }

    /// Function-level reset: the device and the PCI command register.
    public func functionLevelReset() {
        reset()
        pciCommand = 0
    }

    /// The device disappears: every read returns all ones, writes are dropped, no DMA.
    public func surpriseRemove() { isSurpriseRemoved = true }

    /// Changes the link (VIRTIO_NET_S_LINK_UP) and raises a configuration-change interrupt.
    public func setLink(up: Bool) {
        guard up != linkUp else { return }
        linkUp = up
        configGeneration &+= 1
        isr |= 2
        signal(configVector)
    }

    // MARK: registers (BAR 4)

    func read(_ offset: Int, width: Int) -> UInt32 {
        if isSurpriseRemoved { return width == 4 ? 0xFFFF_FFFF : (width == 2 ? 0xFFFF : 0xFF) }
        typealias L = VirtioModelLayout
        switch offset {
        case L.common..<(L.common + L.commonLength): return readCommon(offset - L.common, width: width)
        case L.isr:
            let v = isr
            isr = 0   // read to clear (§4.1.4.5)
            return UInt32(v)
        case L.device..<(L.device + 0x100): return readDeviceConfig(offset - L.device, width: width)
        default: return 0
        }
    }

    func write(_ offset: Int, width: Int, _ value: UInt32) {
        guard !isSurpriseRemoved else { return }
        typealias L = VirtioModelLayout
        switch offset {
        case L.common..<(L.common + L.commonLength): writeCommon(offset - L.common, width: width, value)
        case L.notify..<(L.notify + L.notifyMultiplier * 16):
            notify(queue: Int(value & 0xFFFF))
        default: break
        }
    }

    func readCommon(_ o: Int, width: Int) -> UInt32 {
        typealias L = VirtioModelLayout
        let q = Int(queueSelect) < queues.count ? queues[Int(queueSelect)] : nil
        switch o {
        case L.deviceFeatureSelect: return deviceFeatureSelect
        case L.deviceFeature:
            switch deviceFeatureSelect {
            case 0: return UInt32(truncatingIfNeeded: configuration.features)
            case 1: return UInt32(truncatingIfNeeded: configuration.features >> 32)
            default: return 0
            }
        case L.driverFeatureSelect: return driverFeatureSelect
        case L.driverFeature:
            return driverFeatureSelect == 0 ? UInt32(truncatingIfNeeded: driverFeatures) : (driverFeatureSelect == 1 ? UInt32(truncatingIfNeeded: driverFeatures >> 32) : 0)
        case L.msixConfig: return UInt32(configVector)
        case L.numQueues: return UInt32(queues.count)
        case L.deviceStatus: return UInt32(status)
        case L.configGeneration: return UInt32(configGeneration)
        case L.queueSelect: return UInt32(queueSelect)
        case L.queueSize: return UInt32(q?.size ?? 0)   // 0: no such queue (§4.1.4.3)
        case L.queueMSIXVector: return UInt32(q?.vector ?? L.noVector)
        case L.queueEnable: return q?.enabled == true ? 1 : 0
        case L.queueNotifyOff: return UInt32(queueSelect)
        case L.queueDesc: return UInt32(truncatingIfNeeded: q?.desc ?? 0)
        case L.queueDesc + 4: return UInt32(truncatingIfNeeded: (q?.desc ?? 0) >> 32)
        case L.queueDriver: return UInt32(truncatingIfNeeded: q?.driver ?? 0)
        case L.queueDriver + 4: return UInt32(truncatingIfNeeded: (q?.driver ?? 0) >> 32)
        case L.queueDevice: return UInt32(truncatingIfNeeded: q?.device ?? 0)
        case L.queueDevice + 4: return UInt32(truncatingIfNeeded: (q?.device ?? 0) >> 32)
        default: return 0
        }
    }

    func writeCommon(_ o: Int, width: Int, _ value: UInt32) {
        typealias L = VirtioModelLayout
        let qi = Int(queueSelect)
        let valid = qi < queues.count
        func setLow(_ v: inout UInt64) { v = v & 0xFFFF_FFFF_0000_0000 | UInt64(value) }
        func setHigh(_ v: inout UInt64) { v = v & 0xFFFF_FFFF | UInt64(value) << 32 }
        switch o {
        case L.deviceFeatureSelect: deviceFeatureSelect = value
        case L.driverFeatureSelect: driverFeatureSelect = value
        case L.driverFeature:
            // Only before FEATURES_OK (§3.1.1).
            guard status & VirtioModelStatus.featuresOK == 0 else { return }
            if driverFeatureSelect == 0 { setLow(&driverFeatures) } else if driverFeatureSelect == 1 { setHigh(&driverFeatures) }
        case L.msixConfig: configVector = vectorIfValid(UInt16(truncatingIfNeeded: value))
        case L.deviceStatus: writeStatus(UInt8(truncatingIfNeeded: value))
        case L.queueSelect: queueSelect = UInt16(truncatingIfNeeded: value)
        case L.queueSize where valid && !queues[qi].enabled:
            let size = UInt16(truncatingIfNeeded: value)
            // A power of two no larger than the maximum (split rings, §2.7).
            if size > 0, size <= queues[qi].maxSize, size & (size - 1) == 0 { queues[qi].size = size }
        case L.queueMSIXVector where valid: queues[qi].vector = vectorIfValid(UInt16(truncatingIfNeeded: value))
        case L.queueEnable where valid:
            if value & 1 == 1 { queues[qi].enabled = true }
        case L.queueDesc where valid: setLow(&queues[qi].desc)
        case L.queueDesc + 4 where valid: setHigh(&queues[qi].desc)
        case L.queueDriver where valid: setLow(&queues[qi].driver)
        case L.queueDriver + 4 where valid: setHigh(&queues[qi].driver)
        case L.queueDevice where valid: setLow(&queues[qi].device)
        case L.queueDevice + 4 where valid: setHigh(&queues[qi].device)
        default: break
        }
    }

    /// A vector the table has, else NO_VECTOR (the driver reads it back to learn the mapping failed).
    func vectorIfValid(_ v: UInt16) -> UInt16 {
        v == VirtioModelLayout.noVector || Int(v) < configuration.msixVectors ? v : VirtioModelLayout.noVector
    }

    func writeStatus(_ value: UInt8) {
        if value == 0 { reset(); return }
        var v = value
        if v & VirtioModelStatus.featuresOK != 0, status & VirtioModelStatus.featuresOK == 0 {
            // FEATURES_OK sticks only for a subset of the offer that includes VERSION_1 (§2.2, §6.1).
            let ok = driverFeatures & ~configuration.features == 0 && driverFeatures & VirtioModelFeature.version1 != 0
            if !ok { v &= ~VirtioModelStatus.featuresOK }
            else if driverFeatures & VirtioModelFeature.ctrlVLAN == 0 {
                // Without CTRL_VLAN every VLAN passes (QEMU: vlans all ones).
                for i in vlans.indices { vlans[i] = 0xFFFF_FFFF }
            }
        }
        status = v
    }

    func readDeviceConfig(_ o: Int, width: Int) -> UInt32 {
        // struct virtio_net_config (§5.1.4): mac[6], status, max_virtqueue_pairs, mtu.
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = configuration.permanentAddress[i] }
        bytes[6] = linkUp ? 1 : 0
        bytes[8] = UInt8(queuePairs)
        bytes[10] = UInt8(1500 & 0xFF); bytes[11] = UInt8(1500 >> 8)
        var v: UInt32 = 0
        for i in 0..<width where o + i < bytes.count { v |= UInt32(bytes[o + i]) << (8 * UInt32(i)) }
        return v
    }

    // MARK: interrupts

    func signal(_ vector: UInt16) {
        if msixEnabled, vector != VirtioModelLayout.noVector, Int(vector) < vectors.count { vectors[Int(vector)].signal() }
    }

    /// Used-buffer notification for queue `q`, unless the driver suppressed it (avail.flags
    /// VIRTQ_AVAIL_F_NO_INTERRUPT, §2.7.7; EVENT_IDX is not offered).
    func interrupt(_ q: Int) {
        guard let flags = load16(queues[q].driver, activity: .receiveDescriptorFetch(queue: q)) else { return }
        if flags & 1 == 0 {
            isr |= 1
            signal(queues[q].vector)
        }
    }

    // MARK: DMA

    var busMaster: Bool { pciCommand & 0x4 != 0 }

    func dma(_ iova: UInt64, _ length: Int, write: Bool, _ activity: DMAActivity) -> UnsafeMutableRawPointer? {
        guard busMaster else {
            iommu.record(DMAFault(kind: .busMasterDisabled, iova: iova, length: length, isWrite: write, activity: activity))
            return nil
        }
        return iommu.translate(iova, length: length, isWrite: write, activity: activity)
    }

    func load16(_ iova: UInt64, activity: DMAActivity) -> UInt16? {
        dma(iova, 2, write: false, activity).map { UInt16(littleEndian: $0.loadUnaligned(as: UInt16.self)) }
    }

    func store16(_ iova: UInt64, _ v: UInt16, activity: DMAActivity) {
        dma(iova, 2, write: true, activity)?.storeBytes(of: v.littleEndian, as: UInt16.self)
    }

    /// Descriptor `i` of queue `q`: addr, len, flags, next (§2.7.5).
    func descriptor(_ q: Int, _ i: UInt16) -> (addr: UInt64, len: UInt32, flags: UInt16, next: UInt16)? {
        guard i < queues[q].size,
              let p = dma(queues[q].desc &+ UInt64(i) * 16, 16, write: false, q % 2 == 0 ? .receiveDescriptorFetch(queue: q) : .transmitDescriptorFetch(queue: q))
        else { return nil }
        return (UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)), UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt16.self)), UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 14, as: UInt16.self)))
    }

    /// The next available descriptor head of queue `q`, without taking it.
    func peekAvail(_ q: Int, ahead: UInt16 = 0) -> UInt16? {
        let vq = queues[q]
        guard let idx = load16(vq.driver &+ 2, activity: .receiveDescriptorFetch(queue: q)), idx &- vq.lastAvail > ahead else { return nil }
        let slot = (vq.lastAvail &+ ahead) % vq.size
        return load16(vq.driver &+ 4 &+ UInt64(slot) * 2, activity: .receiveDescriptorFetch(queue: q))
    }

    /// Puts a used element and publishes the new used idx (§2.7.8).
    func pushUsed(_ q: Int, id: UInt16, length: UInt32) {
        let vq = queues[q]
        let slot = vq.usedIdx % vq.size
        let activity: DMAActivity = q % 2 == 0 ? .receiveDescriptorWriteBack(queue: q) : .transmitDescriptorWriteBack(queue: q)
        if let p = dma(vq.device &+ 4 &+ UInt64(slot) * 8, 8, write: true, activity) {
            p.storeBytes(of: UInt32(id).littleEndian, as: UInt32.self)
            p.storeBytes(of: length.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
        queues[q].usedIdx = vq.usedIdx &+ 1
        store16(vq.device &+ 2, queues[q].usedIdx, activity: activity)
    }

    var driverOK: Bool { status & VirtioModelStatus.driverOK != 0 && status & VirtioModelStatus.needsReset == 0 }

    // MARK: notify, step

    func notify(queue q: Int) {
        guard q < queues.count else { return }
        if q == controlQueueIndex {
            // Control commands complete at once (QEMU handles them in the notify handler).
            processControl(q)
        } else {
            queues[q].notified = true
        }
    }

    /// Does pending device work: transmits what was queued, receives what waits on the wire.
    /// - Returns: frames moved.
    @discardableResult
    public func step() -> Int {
        guard !isSurpriseRemoved, driverOK else { return 0 }
        var done = 0
        for pair in 0..<queuePairs { done += transmit(queue: pair * 2 + 1) }
        done += receive(queue: 0)
        return done
    }
}
