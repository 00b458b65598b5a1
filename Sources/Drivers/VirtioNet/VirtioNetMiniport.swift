import DeviceAccess
import DriverKit
import Glibc
import NDIS
import Synchronization

/// How the virtio-net miniport is set up.
public struct VirtioNetConfiguration: Sendable {
    /// Ring size asked for (at most what the device offers; a power of two).
    public var queueSize = 256
    /// Control queue size.
    public var controlQueueSize = 64
    /// Receive buffer size (one descriptor each; 2 KB holds a 1522-byte frame and the 12-byte header).
    public var receiveBufferSize = 2048
    /// Bytes in front of each received frame (the NBL's backfill; the device's header takes its last 12).
    public var receiveBackfill = 64
    /// Bring-up waits this long for VIRTIO_NET_S_LINK_UP.
    public var linkTimeout: Duration = .seconds(5)
    /// How long a control command may take.
    public var controlTimeout: Duration = .seconds(2)
    /// Which VLANs the device's VLAN table admits (when CTRL_VLAN is negotiated).
    public var vlanTable: VLANTablePolicy = .all
    /// MSI-X per virtqueue (rx, tx) and config; the queues are polled either way.
    public var useInterrupts = false

    public enum VLANTablePolicy: Sendable, Equatable {
        /// Every VLAN: the default queue takes tagged frames of any VLAN.
        case all
        /// Only VLANs a receive filter names: the device drops tagged frames of any other VLAN.
        case filtered
    }

    public init() {}
}

/// Why the virtio-net miniport refused a function or failed bring-up.
public enum VirtioNetError: Error, CustomStringConvertible, Equatable {
    case legacyDevice(UInt16)
    case unsupportedDevice(vendor: UInt16, device: UInt16)
    case missingCapability(String)
    case missingFeature(String)
    case featuresRefused(UInt64)
    case queueUnavailable(Int, String)
    case resetTimeout
    case linkDown(Duration)
    case control(String)

    public var description: String {
        switch self {
        case let .legacyDevice(d):
            "1af4:\(String(d, radix: 16)) is a legacy/transitional virtio device; only modern virtio-net (1af4:1041) is driven: start QEMU with -device virtio-net-pci,disable-legacy=on"
        case let .unsupportedDevice(v, d): "PCI function \(String(v, radix: 16)):\(String(d, radix: 16)) is not a virtio-net device; bind 1af4:1041"
        case let .missingCapability(c): "the device has no virtio \(c) capability (modern PCI transport, §4.1.4); is it a virtio 1.x device?"
        case let .missingFeature(f): "the device does not offer \(f); \(f == "VIRTIO_F_ACCESS_PLATFORM" ? "its DMA would bypass the IOMMU: start QEMU with iommu_platform=on" : "use a virtio 1.x device")"
        case let .featuresRefused(f): "the device refused the features \(VirtioNetFeature.describe(f).joined(separator: ", ")) (FEATURES_OK cleared)"
        case let .queueUnavailable(q, why): "virtqueue \(q): \(why)"
        case .resetTimeout: "the device did not finish its reset (device_status stayed nonzero)"
        case let .linkDown(t): "the link stayed down for \(t) (VIRTIO_NET_S_LINK_UP); check the backend (set_link, netdev)"
        case let .control(m): "control queue: \(m)"
        }
    }

    var ndis: NDISError {
        switch self {
        case .legacyDevice, .unsupportedDevice: .notSupported(description)
        default: .miniportFailure(description)
        }
    }
}

/// One split virtqueue in shared memory (driver side).
struct DriverVirtqueue {
    var index = 0
    var size = 0
    var memory: SharedMemory?
    var desc: UnsafeMutableRawPointer?
    var avail: UnsafeMutableRawPointer?
    var used: UnsafeMutableRawPointer?
    var availIdx: UInt16 = 0
    var lastUsed: UInt16 = 0
    /// Offset of this queue's notify register in the BAR.
    var notifyOffset = 0

    @inline(__always) func writeDesc(_ i: Int, addr: UInt64, len: UInt32, flags: UInt16, next: UInt16) {
        // Safety: i < size, the table has `size` 16-byte entries.
        let p = desc! + i &* Virtq.descSize
        p.storeBytes(of: addr.littleEndian, as: UInt64.self)
        p.storeBytes(of: len.littleEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: flags.littleEndian, toByteOffset: 12, as: UInt16.self)
        p.storeBytes(of: next.littleEndian, toByteOffset: 14, as: UInt16.self)
    }

    @inline(__always) func setDescAddress(_ i: Int, _ addr: UInt64, len: UInt32) {
        // Safety: as writeDesc.
        let p = desc! + i &* Virtq.descSize
        p.storeBytes(of: addr.littleEndian, as: UInt64.self)
        p.storeBytes(of: len.littleEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// Puts head `id` in the next avail slot (not yet published).
    @inline(__always) mutating func offer(_ id: UInt16) {
        // Safety: the slot is availIdx mod size < size.
        let slot = Int(availIdx & UInt16(truncatingIfNeeded: size &- 1))
        avail!.storeBytes(of: id.littleEndian, toByteOffset: 4 &+ slot &* 2, as: UInt16.self)
        availIdx &+= 1
    }

    /// Publishes the offered heads (avail.idx), after the descriptors and ring entries (§2.7.13).
    @inline(__always) func publish() {
        atomicMemoryFence(ordering: .releasing)
        avail!.storeBytes(of: availIdx.littleEndian, toByteOffset: 2, as: UInt16.self)
    }

    @inline(__always) var usedIdx: UInt16 {
        let v = UInt16(littleEndian: used!.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        // Read the used elements only after their idx.
        atomicMemoryFence(ordering: .acquiring)
        return v
    }

    @inline(__always) func usedElement(_ n: UInt16) -> (id: UInt32, len: UInt32) {
        let slot = Int(n & UInt16(truncatingIfNeeded: size &- 1))
        let p = used! + (4 &+ slot &* 8)
        return (UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)), UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
    }

    /// True unless the device asked not to be notified (used.flags NO_NOTIFY, §2.7.10).
    @inline(__always) var deviceWantsNotify: Bool {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        return UInt16(littleEndian: used!.loadUnaligned(as: UInt16.self)) & Virtq.usedNoNotify == 0
    }

    func setInterruptSuppressed(_ on: Bool) {
        avail!.storeBytes(of: (on ? Virtq.availNoInterrupt : 0).littleEndian, as: UInt16.self)
    }
}

/// Counters of the virtio-net datapath.
public struct VirtioNetCounters: Sendable, Equatable {
    public var receivedFrames: UInt64 = 0
    public var receivedBytes: UInt64 = 0
    public var receiveBroadcast: UInt64 = 0
    public var receiveMulticast: UInt64 = 0
    /// Frames spread over more than one buffer (num_buffers > 1: longer than a buffer) or malformed used elements.
    public var receiveErrors: UInt64 = 0
    public var transmittedFrames: UInt64 = 0
    public var transmittedBytes: UInt64 = 0
    /// Frames copied into a bounce buffer (several segments, or memory the device cannot reach).
    public var bounced: UInt64 = 0
    public var transmitErrors: UInt64 = 0
    public var controlCommands: UInt64 = 0
}

/// The virtio-net miniport: modern virtio 1.x over PCI (1af4:1041), one queue pair and the control
/// queue, split virtqueues, VERSION_1 + ACCESS_PLATFORM (DMA through the IOMMU), MRG_RXBUF.
///
/// virtio-net has no receive queues to steer into: its VMQ queues and MAC/VLAN filters run on the
/// framework's software path (hardware capabilities: 0 queues), and the device's own filters (RX
/// mode, MAC table, VLAN table, through the control queue) are programmed to drop what no queue wants.
public final class VirtioNetMiniport<F: PCIFunction>: MiniportDriver {
    public let function: F
    public let configuration: VirtioNetConfiguration
    let regs: F.Registers
    var transport = VirtioTransport()
    var handle: MiniportHandle!

    // Datapath state in owned storage (no exclusivity checks per access).
    let rxq: UnsafeMutablePointer<DriverVirtqueue>
    let txq: UnsafeMutablePointer<DriverVirtqueue>
    let ctrlq: UnsafeMutablePointer<DriverVirtqueue>
    let rxBuffers: UnsafeMutablePointer<ReceiveBufferTable>
    let countersCell: UnsafeMutablePointer<VirtioNetCounters>
    /// Transmit slots: slot s owns descriptors 2s (header) and 2s+1 (data).
    var txSlots = 0
    let txFree: UnsafeMutablePointer<NetBufferListChain>
    var txInFlight: UnsafeMutablePointer<NetBufferListChain>?
    var txFreeStack: UnsafeMutablePointer<UInt16>?
    var txFreeCount = 0
    var txHeaderIOVA: UInt64 = 0
    var txBounce: UnsafeMutableRawPointer?
    var txBounceIOVA: UInt64 = 0
    static var bounceSize: Int { 2048 }
    var backlog: NetBufferListChain {
        @inline(__always) unsafeAddress { UnsafePointer(txFree) }
        @inline(__always) unsafeMutableAddress { txFree }
    }
    var running = false
    var removed = false

    // Control state.
    var memory: [SharedMemory] = []
    var ctrlBuffer: SharedMemory?
    public internal(set) var negotiatedFeatures: UInt64 = 0
    public internal(set) var offeredFeatures: UInt64 = 0
    public internal(set) var permanentAddress = MACAddress(0, 0, 0, 0, 0, 0)
    var packetFilter: PacketFilter = [.directed, .broadcast, .multicast]
    var multicastList: [MACAddress] = []
    var softwareFilters: [ReceiveFilter] = []
    /// What was last programmed into the device (to send only changes).
    public internal(set) var programmedUnicast: [MACAddress] = []
    public internal(set) var programmedVLANs: Set<UInt16> = []
    var vlanAll = false
    var interrupts: [InterruptEvent] = []
    public var counters: VirtioNetCounters { countersCell.pointee }

    /// Makes a miniport for `function`. Nothing touches the device before `initialize`.
    public init(function: F, configuration: VirtioNetConfiguration = VirtioNetConfiguration()) throws(VirtioNetError) {
        let id = function.identity
        guard id.vendorID == VirtioNetDeviceID.vendor else { throw .unsupportedDevice(vendor: id.vendorID, device: id.deviceID) }
        if id.deviceID == VirtioNetDeviceID.transitional { throw .legacyDevice(id.deviceID) }
        guard id.deviceID == VirtioNetDeviceID.modern else { throw .unsupportedDevice(vendor: id.vendorID, device: id.deviceID) }
        self.function = function
        self.configuration = configuration
        let t = try Self.findTransport(function)
        transport = t
        do { regs = try function.registers(bar: t.bar) } catch { throw .missingCapability("BAR \(t.bar) (\(error))") }
        rxq = .allocate(capacity: 1); rxq.initialize(to: DriverVirtqueue())
        txq = .allocate(capacity: 1); txq.initialize(to: DriverVirtqueue())
        ctrlq = .allocate(capacity: 1); ctrlq.initialize(to: DriverVirtqueue())
        rxBuffers = .allocate(capacity: 1); rxBuffers.initialize(to: ReceiveBufferTable())
        countersCell = .allocate(capacity: 1); countersCell.initialize(to: VirtioNetCounters())
        txFree = .allocate(capacity: 1); txFree.initialize(to: NetBufferListChain())
    }

    deinit {
        rxBuffers.pointee.release()
        releaseTransmitTables()
        rxq.deallocate(); txq.deallocate(); ctrlq.deallocate()
        rxBuffers.deinitialize(count: 1); rxBuffers.deallocate()
        countersCell.deallocate()
        txFree.deinitialize(count: 1); txFree.deallocate()
    }

    /// Walks the PCI capability list for the virtio vendor capabilities (§4.1.4).
    static func findTransport(_ f: F) throws(VirtioNetError) -> VirtioTransport {
        var t = VirtioTransport()
        func c8(_ o: Int) -> UInt8 { UInt8(truncatingIfNeeded: ((try? f.readConfig16(o & ~1)) ?? 0) >> ((o & 1) * 8)) }
        func c32(_ o: Int) -> Int { Int((try? f.readConfig32(o)) ?? 0) }
        var at = Int(c8(0x34)) & ~3
        var hops = 0
        while at >= 0x40, hops < 48 {
            hops += 1
            if c8(at) == 0x09 {
                let type = c8(at + 3), bar = Int(c8(at + 4)), offset = c32(at + 8)
                switch type {
                case VirtioCapType.common where t.common < 0: t.common = offset; t.bar = bar
                case VirtioCapType.notify where t.notify < 0: t.notify = offset; t.notifyMultiplier = c32(at + 16)
                    if t.bar >= 0, t.bar != bar { t.bar = -2 }
                case VirtioCapType.isr where t.isr < 0: t.isr = offset
                case VirtioCapType.device where t.device < 0: t.device = offset
                default: break
                }
            }
            at = Int(c8(at + 1)) & ~3
        }
        guard t.common >= 0 else { throw .missingCapability("common configuration") }
        guard t.notify >= 0 else { throw .missingCapability("notification") }
        guard t.device >= 0 else { throw .missingCapability("device configuration") }
        guard t.bar >= 0 else { throw .missingCapability("common and notify structures in one BAR (this miniport maps one)") }
        return t
    }

    // MARK: common configuration access

    @inline(__always) func common8(_ o: Int) -> UInt8 { regs.read8(transport.common + o) }
    @inline(__always) func common16(_ o: Int) -> UInt16 { regs.read16(transport.common + o) }
    @inline(__always) func common32(_ o: Int) -> UInt32 { regs.read32(transport.common + o) }
    @inline(__always) func setCommon8(_ o: Int, _ v: UInt8) { regs.write8(transport.common + o, v) }
    @inline(__always) func setCommon16(_ o: Int, _ v: UInt16) { regs.write16(transport.common + o, v) }
    @inline(__always) func setCommon32(_ o: Int, _ v: UInt32) { regs.write32(transport.common + o, v) }
    func setCommon64(_ o: Int, _ v: UInt64) {
        setCommon32(o, UInt32(truncatingIfNeeded: v))
        setCommon32(o + 4, UInt32(truncatingIfNeeded: v >> 32))
    }
    var status: UInt8 { common8(VirtioCommon.deviceStatus) }
    func addStatus(_ bits: UInt8) { setCommon8(VirtioCommon.deviceStatus, status | bits) }

    /// The device-specific configuration (§5.1.4).
    func device8(_ o: Int) -> UInt8 { regs.read8(transport.device + o) }
    func device16(_ o: Int) -> UInt16 { regs.read16(transport.device + o) }

    var linkUp: Bool {
        guard negotiatedFeatures & VirtioNetFeature.status != 0 else { return true }
        return device16(6) & 1 != 0
    }

    // MARK: MiniportDriver

    public func initialize(_ handle: MiniportHandle) throws(NDISError) -> MiniportAttributes {
        self.handle = handle
        do {
            return try bringUp()
        } catch {
            tearDown()
            throw error.ndis
        }
    }

    func bringUp() throws(VirtioNetError) -> MiniportAttributes {
        // PCI_COMMAND MEMORY (BAR access) and BUS_MASTER first; the device does no DMA before DRIVER_OK.
        do { try function.enableBusMaster() } catch { throw .queueUnavailable(0, "enabling memory and bus mastering: \(error)") }
        // §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK.
        setCommon8(VirtioCommon.deviceStatus, 0)
        guard waitUntil(.seconds(1), { status == 0 }) else { throw .resetTimeout }
        addStatus(VirtioStatus.acknowledge)
        addStatus(VirtioStatus.driver)
        setCommon32(VirtioCommon.deviceFeatureSelect, 0)
        var offered = UInt64(common32(VirtioCommon.deviceFeature))
        setCommon32(VirtioCommon.deviceFeatureSelect, 1)
        offered |= UInt64(common32(VirtioCommon.deviceFeature)) << 32
        offeredFeatures = offered
        guard offered & VirtioNetFeature.version1 != 0 else { throw .missingFeature("VIRTIO_F_VERSION_1") }
        guard offered & VirtioNetFeature.accessPlatform != 0 else { throw .missingFeature("VIRTIO_F_ACCESS_PLATFORM") }
        guard offered & VirtioNetFeature.mac != 0 else { throw .missingFeature("VIRTIO_NET_F_MAC") }
        let features = offered & VirtioNetFeature.wanted
        setCommon32(VirtioCommon.driverFeatureSelect, 0)
        setCommon32(VirtioCommon.driverFeature, UInt32(truncatingIfNeeded: features))
        setCommon32(VirtioCommon.driverFeatureSelect, 1)
        setCommon32(VirtioCommon.driverFeature, UInt32(truncatingIfNeeded: features >> 32))
        addStatus(VirtioStatus.featuresOK)
        guard status & VirtioStatus.featuresOK != 0 else { throw .featuresRefused(features) }
        negotiatedFeatures = features
        permanentAddress = MACAddress(device8(0), device8(1), device8(2), device8(3), device8(4), device8(5))

        let queueCount = Int(common16(VirtioCommon.numQueues))
        let controlIndex = 2   // one queue pair: receiveq1 0, transmitq1 1, controlq 2 (§5.1.2)
        guard queueCount >= 2 else { throw .queueUnavailable(1, "the device has \(queueCount) virtqueues; a network device has at least 2") }
        let hasControl = negotiatedFeatures & VirtioNetFeature.ctrlVQ != 0 && queueCount > controlIndex
        try setUpQueue(rxq, index: 0, size: configuration.queueSize)
        try setUpQueue(txq, index: 1, size: configuration.queueSize)
        if hasControl { try setUpQueue(ctrlq, index: controlIndex, size: configuration.controlQueueSize) }
        try setUpReceiveBuffers()
        try setUpTransmit()
        if hasControl { try setUpControlBuffer() }
        setUpInterrupts()
        addStatus(VirtioStatus.driverOK)
        guard status & (VirtioStatus.needsReset | VirtioStatus.failed) == 0 else { throw .queueUnavailable(0, "the device set DEVICE_NEEDS_RESET after DRIVER_OK") }
        guard waitUntil(configuration.linkTimeout, interval: .milliseconds(1), { linkUp }) else { throw .linkDown(configuration.linkTimeout) }
        // The device starts promiscuous (QEMU); filters go on at restart. The VLAN table now.
        if hasControl { try programVLANs() }

        let caps = ReceiveFilterCapabilities(numberOfQueues: 0, maxMACHeaderFilters: 0, maxFiltersPerQueue: 0,
                                             supportedTests: [], supportedFields: [], lookaheadSplitSupported: false,
                                             maxBuffersPerQueue: rxq.pointee.size)
        var attributes = MiniportAttributes(permanentAddress: permanentAddress, currentAddress: permanentAddress, mtu: 1500, maxFrameSize: 1522,
                                            dataBackfillSize: configuration.receiveBackfill - VirtioNetHeader.size,
                                            linkSpeedBitsPerSecond: 10_000_000_000, receiveFilterCapabilities: caps,
                                            description: "virtio-net (1af4:1041, virtio 1.x: \(VirtioNetFeature.describe(negotiatedFeatures).joined(separator: " ")))")
        // The MAC table gets the software filters' MACs (programFilters): no promiscuous needed for them.
        attributes.admitsSoftwareFilterMACs = hasControl && negotiatedFeatures & VirtioNetFeature.ctrlRx != 0
        return attributes
    }

    func setUpQueue(_ q: UnsafeMutablePointer<DriverVirtqueue>, index: Int, size wanted: Int) throws(VirtioNetError) {
        setCommon16(VirtioCommon.queueSelect, UInt16(index))
        let max = Int(common16(VirtioCommon.queueSize))
        guard max > 0 else { throw .queueUnavailable(index, "not offered (queue_size 0)") }
        var size = 1
        while size * 2 <= min(max, wanted) { size *= 2 }
        setCommon16(VirtioCommon.queueSize, UInt16(size))
        let usedOffset = (Virtq.descSize * size + Virtq.availBytes(size) + 63) & ~63
        let length = usedOffset + Virtq.usedBytes(size)
        let mem: SharedMemory
        do { mem = try handle.allocateSharedMemory(queue: .default, length: length, usage: .other, flags: .contiguous) } catch {
            throw .queueUnavailable(index, "ring memory: \(error)")
        }
        memory.append(mem)
        memset(mem.unsafeVirtualAddress, 0, length)
        guard let iova = mem.region.iova(atOffset: 0) else { throw .queueUnavailable(index, "ring memory has no IOVA") }
        q.pointee = DriverVirtqueue()
        q.pointee.index = index
        q.pointee.size = size
        q.pointee.memory = mem
        q.pointee.desc = mem.unsafeVirtualAddress
        q.pointee.avail = mem.unsafeVirtualAddress + Virtq.descSize * size
        q.pointee.used = mem.unsafeVirtualAddress + usedOffset
        q.pointee.notifyOffset = transport.notify + Int(common16(VirtioCommon.queueNotifyOff)) * transport.notifyMultiplier
        setCommon64(VirtioCommon.queueDesc, iova)
        setCommon64(VirtioCommon.queueDriver, iova + UInt64(Virtq.descSize * size))
        setCommon64(VirtioCommon.queueDevice, iova + UInt64(usedOffset))
        setCommon16(VirtioCommon.queueMSIXVector, VirtioCommon.noVector)
        setCommon16(VirtioCommon.queueEnable, 1)
    }

    func setUpReceiveBuffers() throws(VirtioNetError) {
        let n = rxq.pointee.size
        let size = configuration.receiveBufferSize
        let mem: SharedMemory
        do { mem = try handle.allocateSharedMemory(queue: .default, length: n * size, usage: .receive) } catch {
            throw .queueUnavailable(0, "receive buffers: \(error)")
        }
        memory.append(mem)
        let pool = handle.makeNetBufferListPool(capacity: n, name: "virtio-net rx")
        do {
            try rxBuffers.pointee.bind(memory: mem, count: n, bufferSize: size, headroom: configuration.receiveBackfill,
                                       cookieBase: 0x0100_0000, pool: pool)
        } catch { throw .queueUnavailable(0, "\(error)") }
        // Descriptor i is buffer i for good: device-writable, from the header's place in the backfill.
        let headerAt = configuration.receiveBackfill - VirtioNetHeader.size
        for i in 0..<n {
            rxq.pointee.writeDesc(i, addr: rxBuffers.pointee.bufferIOVA![i] + UInt64(headerAt),
                                  len: UInt32(size - headerAt), flags: Virtq.descWrite, next: 0)
        }
    }

    func setUpTransmit() throws(VirtioNetError) {
        let slots = txq.pointee.size / 2
        let mem: SharedMemory
        do { mem = try handle.allocateSharedMemory(queue: .default, length: slots * (16 + Self.bounceSize), usage: .transmit, flags: .contiguous) } catch {
            throw .queueUnavailable(1, "transmit headers and bounce buffers: \(error)")
        }
        memory.append(mem)
        memset(mem.unsafeVirtualAddress, 0, slots * 16)   // headers: no offload, no GSO
        guard let iova = mem.region.iova(atOffset: 0) else { throw .queueUnavailable(1, "transmit memory has no IOVA") }
        txHeaderIOVA = iova
        txBounce = mem.unsafeVirtualAddress + slots * 16
        txBounceIOVA = iova + UInt64(slots * 16)
        txSlots = slots
        let inFlight = UnsafeMutablePointer<NetBufferListChain>.allocate(capacity: slots)
        for i in 0..<slots { (inFlight + i).initialize(to: NetBufferListChain()) }
        txInFlight = inFlight
        let stack = UnsafeMutablePointer<UInt16>.allocate(capacity: slots)
        for s in 0..<slots {
            stack[s] = UInt16(slots - 1 - s)
            // Slot s: header descriptor 2s chained to data descriptor 2s+1.
            txq.pointee.writeDesc(2 * s, addr: iova + UInt64(16 * s), len: UInt32(VirtioNetHeader.size), flags: Virtq.descNext, next: UInt16(2 * s + 1))
            txq.pointee.writeDesc(2 * s + 1, addr: 0, len: 0, flags: 0, next: 0)
        }
        txFreeStack = stack
        txFreeCount = slots
    }

    func setUpControlBuffer() throws(VirtioNetError) {
        do { ctrlBuffer = try handle.allocateSharedMemory(queue: .default, length: 32 * 1024, usage: .other, flags: .contiguous) } catch {
            throw .control("command memory: \(error)")
        }
        memory.append(ctrlBuffer!)
    }

    func setUpInterrupts() {
        guard configuration.useInterrupts, function.msixVectorCount >= 3, let events = try? function.enableMSIX(count: 3) else {
            rxq.pointee.setInterruptSuppressed(true)
            txq.pointee.setInterruptSuppressed(true)
            return
        }
        interrupts = events
        setCommon16(VirtioCommon.msixConfig, 0)
        for (q, v) in [(0, UInt16(1)), (1, UInt16(2))] {
            setCommon16(VirtioCommon.queueSelect, UInt16(q))
            setCommon16(VirtioCommon.queueMSIXVector, v)
            // The device answers NO_VECTOR when it could not map the vector (§4.1.5.1.2).
            if common16(VirtioCommon.queueMSIXVector) != v { interrupts = [] }
        }
        // Busy polling: interrupts stay suppressed until `waitForInterrupt` sleeps.
        rxq.pointee.setInterruptSuppressed(true)
        txq.pointee.setInterruptSuppressed(true)
    }

    /// MSI-X in use (one vector each for config, receive, transmit).
    public var usesInterrupts: Bool { !interrupts.isEmpty }

    /// Sleeps until the receive queue's interrupt or `timeoutMilliseconds`: lifts the suppression,
    /// checks for work that raced in, waits, suppresses again.
    /// - Returns: true if woken by work.
    public func waitForInterrupt(timeoutMilliseconds: Int32) -> Bool {
        guard interrupts.count >= 2 else { return false }
        rxq.pointee.setInterruptSuppressed(false)
        defer { rxq.pointee.setInterruptSuppressed(true) }
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if rxq.pointee.usedIdx != rxq.pointee.lastUsed { return true }
        let woke = interrupts[1].wait(timeoutMilliseconds: timeoutMilliseconds)
        if woke { _ = interrupts[1].drain() }
        return woke
    }

    public func restart() throws(NDISError) {
        guard !removed else { throw .deviceRemoved(function.name) }
        if rxq.pointee.availIdx == 0 {
            // First restart: post every receive buffer (receive starts here, not at initialize).
            while let b = rxBuffers.pointee.popFree() { rxq.pointee.offer(UInt16(b)) }
            rxq.pointee.publish()
            notify(rxq)
        }
        do { try programFilters() } catch { throw error.ndis }
        running = true
    }

    public func pause() {
        running = false
        // Sends in flight complete; the device transmits what it was given.
        _ = waitUntil(.milliseconds(200)) { _ = completeTransmits(); return txFreeCount == txSlots || removed }
        var chain = backlog.removeAll { _ in true }
        chain.forEach { $0.status = .paused }
        if !chain.isEmpty { handle.sendComplete(chain) } else { _ = consume chain }
    }

    public func halt() {
        tearDown()
    }

    func tearDown() {
        running = false
        if !removed {
            // Reset stops all DMA before any memory is freed (§2.4).
            setCommon8(VirtioCommon.deviceStatus, 0)
            _ = waitUntil(.milliseconds(100)) { status == 0 }
        }
        try? function.disableInterrupts()
        interrupts = []
        // Sends the device never completed come back with a status.
        var done = NetBufferListChain()
        if let inFlight = txInFlight {
            for s in 0..<txSlots where !inFlight[s].isEmpty {
                inFlight[s].forEach { $0.status = removed ? .deviceRemoved : .requestAborted }
                done.append(inFlight[s].removeAll { _ in true })
            }
        }
        var rest = backlog.removeAll { _ in true }
        rest.forEach { $0.status = removed ? .deviceRemoved : .requestAborted }
        done.append(rest)
        if !done.isEmpty, handle != nil { handle.sendComplete(done) } else { _ = consume done }
        rxBuffers.pointee.release()
        releaseTransmitTables()
        if let handle {
            for m in memory { try? handle.freeSharedMemory(m.allocationHandle) }
        }
        memory.removeAll()
        ctrlBuffer = nil
        rxq.pointee = DriverVirtqueue(); txq.pointee = DriverVirtqueue(); ctrlq.pointee = DriverVirtqueue()
    }

    func releaseTransmitTables() {
        if let inFlight = txInFlight {
            inFlight.deinitialize(count: txSlots)
            inFlight.deallocate()
        }
        txInFlight = nil
        txFreeStack?.deallocate()
        txFreeStack = nil
        txFreeCount = 0
        txSlots = 0
    }

    public func surpriseRemoved() {
        removed = true
        running = false
    }

    @inline(__always) func notify(_ q: UnsafeMutablePointer<DriverVirtqueue>) {
        guard q.pointee.deviceWantsNotify else { return }
        regs.write16(q.pointee.notifyOffset, UInt16(q.pointee.index))
    }

    // MARK: requests

    public func handleRequest(_ request: MiniportRequest) throws(NDISError) -> MiniportResponse {
        switch request {
        case .allocateQueue, .queueAllocationComplete, .setFilter, .clearFilter, .stopQueueDMA, .freeQueueResources, .setQueueParameters:
            // Hardware capabilities say 0 queues: the framework runs every VMQ queue in software.
            throw .notSupported("virtio-net has no VMQ queues in hardware; the framework runs them in software")
        case .setReceiveScale:
            throw .notSupported("RSS needs VIRTIO_NET_F_RSS with several queue pairs; this miniport drives one pair")
        case let .setPacketFilter(f):
            packetFilter = f
            if running { do { try programFilters() } catch { throw error.ndis } }
        case let .setMulticastList(list):
            multicastList = list
            if running { do { try programFilters() } catch { throw error.ndis } }
        case .queryStatistics:
            let c = counters
            var s = Statistics()
            s.receivedFrames = c.receivedFrames
            s.receivedBytes = c.receivedBytes
            s.receiveBroadcast = c.receiveBroadcast
            s.receiveMulticast = c.receiveMulticast
            s.receiveErrors = c.receiveErrors
            s.transmittedFrames = c.transmittedFrames
            s.transmittedBytes = c.transmittedBytes
            s.transmitErrors = c.transmitErrors
            return .statistics(StatisticsReport(global: s))
        case .queryLinkState:
            if removed { return .linkState(LinkState(up: false)) }
            return .linkState(LinkState(up: linkUp, speedBitsPerSecond: linkUp ? 10_000_000_000 : 0))
        }
        return .done
    }

    public func softwareFiltersChanged(_ filters: [ReceiveFilter]) {
        softwareFilters = filters
        if running { try? programFilters() }
    }

    // MARK: datapath

    public func poll(budget: Int) -> Int {
        guard !removed else { return 0 }
        var done = 0
        if running { done = receive(budget: budget) }
        done &+= completeTransmits()
        if !backlog.isEmpty { transmitBacklog() }
        return done
    }

    func receive(budget: Int) -> Int {
        let q = rxq
        let table = rxBuffers
        let c = countersCell
        let end = q.pointee.usedIdx
        var last = q.pointee.lastUsed
        guard last != end else { return 0 }
        var chain = NetBufferListChain()
        var frames = 0
        var bytes: UInt64 = 0
        var reposted = 0
        let headroom = configuration.receiveBackfill
        while last != end && frames < budget {
            let (id, len) = q.pointee.usedElement(last)
            last &+= 1
            let b = id
            let frameLength = Int(len) &- VirtioNetHeader.size
            guard Int(b) < table.pointee.count, let base = table.pointee.buffers else { c.pointee.receiveErrors &+= 1; continue }
            // Safety: b < count; the header sits in the last 12 bytes of buffer b's headroom.
            let header = base + (Int(b) &* table.pointee.bufferSize &+ headroom &- VirtioNetHeader.size)
            let buffersUsed = UInt16(littleEndian: header.loadUnaligned(fromByteOffset: VirtioNetHeader.numBuffersOffset, as: UInt16.self))
            if _slowPath(buffersUsed != 1 || frameLength < 14) {
                // Longer than one buffer (or malformed): dropped; its other buffers come back too.
                c.pointee.receiveErrors &+= 1
                q.pointee.offer(UInt16(b))
                reposted &+= 1
                var more = Int(buffersUsed) &- 1
                while more > 0 && last != end {
                    let (other, _) = q.pointee.usedElement(last)
                    last &+= 1
                    q.pointee.offer(UInt16(truncatingIfNeeded: other))
                    reposted &+= 1
                    more &-= 1
                }
                continue
            }
            guard let nbl = table.pointee.takeReceived(b, length: frameLength, into: &chain) else {
                c.pointee.receiveErrors &+= 1
                continue
            }
            let frame = nbl.unsafeFirstSegmentAddress!
            var info = NetBufferListInfo()
            info.frameType = classifyFrame(frame, length: frameLength).etherType
            nbl.info = info
            let kind = destinationKind(frame)
            if kind.broadcast { c.pointee.receiveBroadcast &+= 1 } else if kind.multicast { c.pointee.receiveMulticast &+= 1 }
            frames &+= 1
            bytes &+= UInt64(truncatingIfNeeded: frameLength)
        }
        q.pointee.lastUsed = last
        if reposted > 0 {
            q.pointee.publish()
            notify(q)
        }
        c.pointee.receivedFrames &+= UInt64(truncatingIfNeeded: frames)
        c.pointee.receivedBytes &+= bytes
        if chain.isEmpty { _ = consume chain } else { handle.indicateReceive(chain, queue: .default, flags: .sharedMemoryInfoValid) }
        return frames
    }

    public func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        var chain = chain
        let q = rxq
        let table = rxBuffers
        var posted = 0
        var strays = NetBufferListChain()
        while !chain.isEmpty {
            var one = chain.popFirst()
            if let b = table.pointee.park(&one) {
                if !removed && q.pointee.desc != nil {
                    q.pointee.offer(UInt16(b))
                    posted &+= 1
                } else {
                    table.pointee.pushFree(b)
                }
            } else {
                strays.append(one)
            }
        }
        _ = consume chain
        if posted > 0 {
            q.pointee.publish()
            notify(q)
        }
        // Not ours (a bug above us): kept out of circulation, never reused.
        if !strays.isEmpty { quarantine.append(strays) } else { _ = consume strays }
    }

    var quarantine = NetBufferListChain()

    public func sendNetBufferLists(_ chain: consuming NetBufferListChain, flags: SendFlags) {
        guard running, !removed else {
            handle.completeSends(chain, status: removed ? .deviceRemoved : .paused)
            return
        }
        backlog.append(chain)
        transmitBacklog()
    }

    /// Posts backlog NBLs while transmit slots are free.
    func transmitBacklog() {
        guard let stack = txFreeStack, let inFlight = txInFlight else { return }
        let q = txq
        let c = countersCell
        var posted = 0
        var failed = NetBufferListChain()
        while txFreeCount > 0 && !backlog.isEmpty {
            var one = backlog.popFirst()
            let nbl = one.first!
            let length = nbl.dataLength
            let s = Int(stack[txFreeCount &- 1])
            let segment = nbl.segment(0)
            if nbl.segmentCount == 1, segment.iova != 0, segment.address != nil, length >= 14,
               nbl.dataOffset &+ length <= Int(segment.length) {
                // Zero copy: the data descriptor points at the NBL's own buffer.
                q.pointee.setDescAddress(2 &* s &+ 1, segment.iova &+ UInt64(nbl.dataOffset), len: UInt32(length))
            } else if length >= 14, length <= Self.bounceSize, let bounce = txBounce {
                // Safety: slot s's bounce buffer has bounceSize ≥ length bytes.
                let copied = nbl.copyData(into: UnsafeMutableRawBufferPointer(start: bounce + s &* Self.bounceSize, count: Self.bounceSize))
                q.pointee.setDescAddress(2 &* s &+ 1, txBounceIOVA &+ UInt64(s &* Self.bounceSize), len: UInt32(copied))
                c.pointee.bounced &+= 1
            } else {
                nbl.status = .invalidLength
                c.pointee.transmitErrors &+= 1
                failed.append(one)
                continue
            }
            txFreeCount &-= 1
            nbl.status = .success
            c.pointee.transmittedFrames &+= 1
            c.pointee.transmittedBytes &+= UInt64(truncatingIfNeeded: length)
            inFlight[s].append(one)
            q.pointee.offer(UInt16(2 &* s))
            posted &+= 1
        }
        if posted > 0 {
            q.pointee.publish()
            notify(q)
        }
        if failed.isEmpty { _ = consume failed } else { handle.sendComplete(failed) }
    }

    /// Completes what the device has used (in any order: the used id names the slot).
    func completeTransmits() -> Int {
        guard let stack = txFreeStack, let inFlight = txInFlight else { return 0 }
        let q = txq
        let end = q.pointee.usedIdx
        var last = q.pointee.lastUsed
        guard last != end else { return 0 }
        var done = NetBufferListChain()
        var n = 0
        while last != end {
            let (id, _) = q.pointee.usedElement(last)
            last &+= 1
            let s = Int(id / 2)
            guard id & 1 == 0, s < txSlots, !inFlight[s].isEmpty else { continue }
            done.append(inFlight[s].removeAll { _ in true })
            stack[txFreeCount] = UInt16(s)
            txFreeCount &+= 1
            n &+= 1
        }
        q.pointee.lastUsed = last
        handle.sendComplete(done)
        return n
    }
}
