import DeviceAccess
import DriverKit
import Glibc
import NDIS
import Synchronization

/// The IGB miniport: Intel 82576 (verified on QEMU's igb and the hardware model) and I350
/// (claimed by device id, not verified), driven through a `PCIFunction`.
///
/// It is generic over the function so register access specialises: `MMIORegion` (volatile loads and
/// stores) on VFIO, the model's register type on the hardware model.
///
/// Queues: hardware queue n is VMDq pool n. Pool 0 is the default queue (VT_CTL default pool);
/// VMQ queues take pools 1–7. With RSS (no VMQ queue allocated) hardware queues 0–7 receive by hash
/// and every frame is indicated on the default queue.
public final class IGBMiniport<F: PCIFunction>: MiniportDriver {
    /// The PCI function the miniport drives.
    public let function: F
    public let configuration: IGBConfiguration
    /// BAR0 access, kept out of line so that every other stored property has a fixed offset: the
    /// class layout then does not depend on `F`, and the datapath (which runs unspecialised when
    /// NDIS calls it through `any MiniportDriver`) reads its fields at constant offsets.
    let registerBox: UnsafeMutablePointer<F.Registers>
    var regs: F.Registers {
        @inline(__always) get { registerBox.pointee }
    }

    // MARK: Datapath state (no classes, arrays or existentials touched per packet)
    //
    // Mutable datapath state lives in memory the miniport owns and is reached through addressors:
    // a class's stored `var` costs a dynamic exclusivity check (swift_beginAccess) on every access,
    // which on the hot path came to more than the work itself.

    let hot: IGBHotState
    /// The NDIS handle, valid from `initialize` until `halt` returns.
    var handle: MiniportHandle! {
        @inline(__always) unsafeAddress { UnsafePointer(hot.handle) }
        @inline(__always) unsafeMutableAddress { hot.handle }
    }

    /// Receive rings by ring slot: slots 0–7 are pools 0–7 (default queue and VMQ queues), slots
    /// 9–15 are the RSS rings of hardware queues 1–7.
    let rx: UnsafeMutablePointer<IGBReceiveRing>
    @inline(__always) static var ringSlots: Int { 16 }
    /// Slots whose rings are polled.
    var activeSlots: UInt16 {
        @inline(__always) unsafeAddress { UnsafePointer(hot.activeSlots) }
        @inline(__always) unsafeMutableAddress { hot.activeSlots }
    }
    var tx: IGBTransmitRing {
        @inline(__always) unsafeAddress { UnsafePointer(hot.tx) }
        @inline(__always) unsafeMutableAddress { hot.tx }
    }
    /// NBLs posted to the transmit ring, in ring order.
    var txInFlight: NetBufferListChain {
        @inline(__always) unsafeAddress { UnsafePointer(chains) }
        @inline(__always) unsafeMutableAddress { chains }
    }
    /// NBLs waiting for free transmit descriptors.
    var txBacklog: NetBufferListChain {
        @inline(__always) unsafeAddress { UnsafePointer(chains + 1) }
        @inline(__always) unsafeMutableAddress { chains + 1 }
    }
    /// NBLs returned to us that belong to no pool of ours (a bug above us); kept, never reused.
    var quarantine: NetBufferListChain {
        @inline(__always) unsafeAddress { UnsafePointer(chains + 2) }
        @inline(__always) unsafeMutableAddress { chains + 2 }
    }
    let chains: UnsafeMutablePointer<NetBufferListChain>
    /// Between restart and pause.
    var running: Bool {
        @inline(__always) unsafeAddress { UnsafePointer(hot.running) }
        @inline(__always) unsafeMutableAddress { hot.running }
    }
    /// Set once the device is gone: no register is touched after that.
    var removed: Bool {
        @inline(__always) unsafeAddress { UnsafePointer(hot.removed) }
        @inline(__always) unsafeMutableAddress { hot.removed }
    }
    var pollsSinceWatchdog: Int {
        @inline(__always) unsafeAddress { UnsafePointer(hot.pollsSinceWatchdog) }
        @inline(__always) unsafeMutableAddress { hot.pollsSinceWatchdog }
    }

    // MARK: Control state

    /// Permanent MAC address read from RAL0/RAH0 after reset.
    public internal(set) var permanentAddress = MACAddress(0, 0, 0, 0, 0, 0)
    public internal(set) var linkState = LinkState(up: false)
    /// EEC.AUTO_RD was seen at the last bring-up (QEMU's igb never sets it; see `waitForEEPROMAutoRead`).
    public internal(set) var eepromAutoReadDone = false
    /// Shared memory per ring slot (descriptor ring, packet buffers, header buffers).
    var ringMemory: [[SharedMemory]] = Array(repeating: [], count: 16)
    var transmitMemory: [SharedMemory] = []
    /// NBL pools by ring slot, reused when a queue is allocated again on the same pool.
    var pools: [NetBufferListPool?] = Array(repeating: nil, count: 16)
    /// VMQ queues by NDIS queue id.
    var vmqQueues: [UInt16: VMQQueue] = [:]
    /// Hardware filters by NDIS filter id.
    var hardwareFilters: [UInt32: HardwareFilter] = [:]
    /// Values last written to RAR 1–23 / VLVF 0–31, to write only what changes.
    var rarShadow = [UInt64](repeating: 0, count: 24)
    var vlvfShadow = [UInt32](repeating: 0, count: 32)
    /// OID_GEN_CURRENT_PACKET_FILTER as the framework last set it (the union of the bindings'
    /// filters); until then `packetFilterSet` is false and the NIC takes directed, broadcast and
    /// multicast-list frames, with unmatched unicast on the default pool (VT_CTL default pool).
    var packetFilter: PacketFilter = [.directed, .broadcast, .multicast]
    var packetFilterSet = false
    var multicastList: [MACAddress] = []
    /// RSS: hardware queues in use (0: RSS off, VMDq mode).
    var rssQueueCount = 0
    var rssParameters: ReceiveScaleParameters?
    var statistics = IGBHardwareStatistics()
    var interrupts: IGBInterruptState?
    /// Receive workers and the transmit lock, with `receiveWorkers` (fixed at init).
    let workerSet: IGBWorkerSet?

    /// Makes a miniport for `function`. Nothing touches the device before `initialize`.
    /// - Throws: `IGBError.unsupportedDevice` when the function is not an 82576/I350, or the
    ///   backend's error when BAR0 cannot be mapped.
    public init(function: F, configuration: IGBConfiguration = IGBConfiguration()) throws {
        let id = function.identity
        guard IGBDeviceID.isSupported(vendor: id.vendorID, device: id.deviceID) else {
            throw IGBError.unsupportedDevice(vendor: id.vendorID, device: id.deviceID)
        }
        self.function = function
        self.configuration = configuration
        let registers = try function.registers(bar: 0)
        registerBox = .allocate(capacity: 1)
        registerBox.initialize(to: registers)
        hot = IGBHotState()
        workerSet = configuration.receiveWorkers ? IGBWorkerSet() : nil
        chains = .allocate(capacity: 3)
        for i in 0..<3 { (chains + i).initialize(to: NetBufferListChain()) }
        rx = .allocate(capacity: Self.ringSlots)
        rx.initialize(repeating: IGBReceiveRing(), count: Self.ringSlots)
        for slot in 0..<Self.ringSlots { rx[slot].slot = slot }
    }

    deinit {
        stopWorkers()
        for slot in 0..<Self.ringSlots { rx[slot].releaseTables() }
        tx.releaseTables()
        rx.deinitialize(count: Self.ringSlots)
        rx.deallocate()
        chains.deinitialize(count: 3)
        chains.deallocate()
        hot.release()
        registerBox.deinitialize(count: 1)
        registerBox.deallocate()
    }

    /// The device's name for messages.
    var deviceName: String { function.name }

    // MARK: - MiniportDriver

    public func initialize(_ handle: MiniportHandle) throws(NDISError) -> MiniportAttributes {
        self.handle = handle
        removed = false
        // Lanes before any worker exists (workers start at restart).
        if workerSet != nil { handle.setConcurrentDatapath(true) }
        do {
            try validateConfiguration()
            try bringUpHardware()
        } catch {
            releaseEverything(touchHardware: !removed)
            throw Self.ndisError(error)
        }
        return attributes()
    }

    public func restart() throws(NDISError) {
        guard !removed else { throw .deviceRemoved("\(deviceName): restart") }
        enableReceiveAndTransmit()
        running = true
        ensureWorkers()
    }

    public func pause() {
        running = false
        guard !removed else { return }
        disableReceive()
        // NDIS: pending sends complete before pause completes.
        abortBacklog(status: .paused)
        drainTransmit(timeout: .milliseconds(100))
        // Still posted after the drain: the ring is stuck; complete them with a status.
        abortStuckTransmit()
    }

    public func halt() {
        stopWorkers()
        running = false
        releaseEverything(touchHardware: !removed)
    }

    public func handleRequest(_ request: MiniportRequest) throws(NDISError) -> MiniportResponse {
        if removed {
            if case .queryLinkState = request { return .linkState(LinkState(up: false)) }
            throw .deviceRemoved("\(deviceName): request refused")
        }
        do {
            switch request {
            case let .allocateQueue(id, parameters): try allocateQueue(id, parameters)
            case let .queueAllocationComplete(id):
                try completeQueueAllocation(id)
                ensureWorkers()
            case let .setFilter(filter): try setFilter(filter)
            case let .clearFilter(filter): try clearFilter(filter)
            case let .stopQueueDMA(id): try stopQueueDMA(id)
            case let .freeQueueResources(id): try freeQueueResources(id)
            case let .setQueueParameters(id, parameters): try setQueueParameters(id, parameters)
            case let .setPacketFilter(filter): try setPacketFilter(filter)
            case let .setMulticastList(list): try setMulticastList(list)
            case let .setReceiveScale(parameters): try setReceiveScale(parameters)
            case .queryStatistics: return .statistics(try collectStatistics())
            case .queryLinkState: return .linkState(try readLinkState())
            }
        } catch {
            throw Self.ndisError(error)
        }
        return .done
    }

    public func returnNetBufferLists(_ chain: consuming NetBufferListChain, flags: ReturnFlags) {
        let touched = recycle(chain)
        guard !removed else { return }
        var m = touched
        while m != 0 {
            let slot = m.trailingZeroBitCount
            m &= m &- 1
            if rx[slot].active { refill(slot: slot, force: false) }
        }
    }

    public func sendNetBufferLists(_ chain: consuming NetBufferListChain, flags: SendFlags) {
        guard running, !removed else {
            handle.completeSends(chain, status: removed ? .deviceRemoved : .paused)
            return
        }
        if let set = workerSet {
            // Workers: the transmit ring is shared with slot 0's worker (completions).
            pthread_mutex_lock(set.txLock)
            txBacklog.append(chain)
            transmitBacklog()
            pthread_mutex_unlock(set.txLock)
            return
        }
        txBacklog.append(chain)
        transmitBacklog()
    }

    public func poll(budget: Int) -> Int {
        // With receive workers the workers do all datapath work.
        guard !removed, workerSet == nil else { return 0 }
        var done = 0
        var m = activeSlots
        while m != 0 {
            let slot = m.trailingZeroBitCount
            m &= m &- 1
            done &+= receive(slot: slot, budget: budget)
        }
        done &+= transmitBacklog()
        pollsSinceWatchdog &+= 1
        if pollsSinceWatchdog >= configuration.watchdogPollInterval {
            pollsSinceWatchdog = 0
            watchdog()
        }
        return done
    }

    public func surpriseRemoved() {
        guard !removed else { return }
        removed = true
        running = false
        activeSlots = 0
        abortBacklog(status: .deviceRemoved)
        abortInFlight(status: .deviceRemoved)
    }

    // MARK: - Helpers

    /// Converts any error of a control path to the NDIS form.
    static func ndisError(_ error: any Error) -> NDISError {
        if let e = error as? NDISError { return e }
        if let e = error as? IGBError { return e.ndis }
        return .miniportFailure("\(error)")
    }

    /// Reads a register that can never read all ones on a present device; all ones means the
    /// device is gone, which starts surprise removal.
    func readChecked(_ offset: Int, _ name: @autoclosure () -> String) throws(IGBError) -> UInt32 {
        let value = regs.read32(offset)
        if value == 0xFFFF_FFFF {
            deviceGone()
            throw .deviceRemoved(device: deviceName, register: name())
        }
        return value
    }

    /// Enters the surprise-removal path once (NDIS is told, which calls back `surpriseRemoved`).
    func deviceGone() {
        guard !removed else { return }
        surpriseRemoved()
        if handle != nil { handle.reportSurpriseRemoval() }
    }

    /// Polls `condition` until it holds or `timeout` passes. Never spins forever.
    /// - Returns: true if the condition held.
    func waitUntil(timeout: Duration, interval: Duration = .microseconds(200),
                   _ condition: () throws(IGBError) -> Bool) throws(IGBError) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if try condition() { return true }
            if clock.now >= deadline { return false }
            let us = max(1, interval.components.attoseconds / 1_000_000_000_000 + interval.components.seconds * 1_000_000)
            usleep(UInt32(clamping: us))
        }
    }

    func validateConfiguration() throws(IGBError) {
        let c = configuration
        func powerOfTwo(_ n: Int) -> Bool { n > 0 && n & (n - 1) == 0 }
        guard powerOfTwo(c.defaultQueueDescriptors), (64...4096).contains(c.defaultQueueDescriptors) else {
            throw .invalidConfiguration("defaultQueueDescriptors must be a power of two in 64...4096, got \(c.defaultQueueDescriptors)")
        }
        guard powerOfTwo(c.transmitDescriptors), (64...4096).contains(c.transmitDescriptors) else {
            throw .invalidConfiguration("transmitDescriptors must be a power of two in 64...4096, got \(c.transmitDescriptors)")
        }
        guard c.defaultQueueBuffers >= c.defaultQueueDescriptors, c.defaultQueueBuffers <= 1 << 20 else {
            throw .invalidConfiguration("defaultQueueBuffers (\(c.defaultQueueBuffers)) must be at least defaultQueueDescriptors (\(c.defaultQueueDescriptors))")
        }
        guard (1518...9728).contains(c.maxFrameSize) else {
            throw .invalidConfiguration("maxFrameSize must be in 1518...9728 (9728 is the 82576's jumbo limit), got \(c.maxFrameSize)")
        }
        guard c.refillBatch >= 1, c.transmitReportInterval >= 1, c.watchdogPollInterval >= 1 else {
            throw .invalidConfiguration("refillBatch, transmitReportInterval and watchdogPollInterval must be at least 1")
        }
    }

    /// What the miniport reports to NDIS.
    func attributes() -> MiniportAttributes {
        MiniportAttributes(
            permanentAddress: permanentAddress, currentAddress: permanentAddress,
            mtu: configuration.maxFrameSize - 22, maxFrameSize: configuration.maxFrameSize,
            dataBackfillSize: 0, linkSpeedBitsPerSecond: linkState.speedBitsPerSecond,
            receiveFilterCapabilities: Self.receiveFilterCapabilities,
            supportsRSS: true, maxRSSQueues: Self.maxRSSQueues,
            description: Self.describe(function.identity))
    }

    static func describe(_ id: PCIIdentity) -> String {
        let name = IGBDeviceID.supported.first { $0.id == id.deviceID }?.name ?? "unknown"
        return "Intel \(name) (\(String(id.vendorID, radix: 16)):\(String(id.deviceID, radix: 16)))"
    }
}

/// The miniport's mutable datapath state, one cell each in memory the miniport owns (see
/// `IGBMiniport.hot`); the miniport's addressors read and write them with plain loads and stores.
struct IGBHotState {
    let handle = Self.cell(MiniportHandle?.none)
    let activeSlots = Self.cell(UInt16(0))
    let tx = Self.cell(IGBTransmitRing())
    let running = Self.cell(false)
    let removed = Self.cell(false)
    let pollsSinceWatchdog = Self.cell(0)

    static func cell<T>(_ value: T) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
        p.initialize(to: value)
        return p
    }

    func release() {
        for p in [UnsafeMutableRawPointer(handle), UnsafeMutableRawPointer(activeSlots), UnsafeMutableRawPointer(tx),
                  UnsafeMutableRawPointer(running), UnsafeMutableRawPointer(removed), UnsafeMutableRawPointer(pollsSinceWatchdog)] {
            // Safety: every cell holds a trivial value (pointers, integers, flags); nothing to deinitialize.
            p.deallocate()
        }
    }
}

extension IGBMiniport {
    /// Makes an adapter for an IGB function, initializes it (reset, link, rings) and restarts it.
    ///
    /// Other tools (CLI demo, capture, benchmarks) bring an adapter up with this.
    /// - Parameters:
    ///   - function: a VFIO device or the hardware model's function.
    ///   - name: the adapter's name (default: the function's name).
    ///   - configuration: miniport settings.
    ///   - start: restart the adapter (Running) after initialization; false leaves it Paused.
    /// - Returns: the adapter and the miniport behind it.
    public static func makeAdapterWithMiniport(function: F, name: String? = nil,
                                               configuration: IGBConfiguration = IGBConfiguration(),
                                               start: Bool = true) throws(NDISError) -> (adapter: Adapter, miniport: IGBMiniport<F>) {
        let miniport: IGBMiniport<F>
        do { miniport = try IGBMiniport(function: function, configuration: configuration) } catch {
            throw ndisError(error)
        }
        let adapter = try makeStartedAdapter(name: name ?? function.name, miniport: miniport, dma: function.dma, start: start)
        return (adapter, miniport)
    }

    /// Makes, initializes and (by default) restarts an adapter for an IGB function.
    /// See ``makeAdapterWithMiniport(function:name:configuration:start:)``.
    public static func makeAdapter(function: F, name: String? = nil,
                                   configuration: IGBConfiguration = IGBConfiguration(),
                                   start: Bool = true) throws(NDISError) -> Adapter {
        try makeAdapterWithMiniport(function: function, name: name, configuration: configuration, start: start).adapter
    }
}
