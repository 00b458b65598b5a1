import DeviceAccess
import ModelKit
import Glibc
import Synchronization

/// An in-process Intel 82576 (8086:10C9): registers, PHY, receive and transmit engines, interrupts,
/// an emulated IOMMU (``ModelIOMMU``) and a virtual wire.
///
/// The model is to a driver what swift-nio's EmbeddedChannel is to a channel handler: the test owns
/// time. In the default *stepped* mode nothing happens on its own: ``step()`` does all pending work
/// (frames waiting on the wire, descriptors after TDT writes) and ``advance(nanoseconds:)`` moves
/// model time (link autonegotiation, interrupt throttling). ``start()`` switches to a free-running
/// mode with its own thread; only then are register accesses locked.
///
/// A driver reaches the model through ``IGBModelFunction`` (a `PCIFunction`).
public final class IGBModel: @unchecked Sendable {
    /// Which behaviour to follow where the 82576 datasheet and QEMU's igb differ.
    public enum Fidelity: Sendable, Equatable {
        /// The 82576 datasheet (the default).
        case datasheet
        /// QEMU 10's `-device igb`, for differential tests (see Docs/MODEL.md).
        case qemu
    }

    /// Individual QEMU behaviours; `.qemu` fidelity turns all of them on. Docs/MODEL.md lists each.
    public struct Deviations: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Link stays down after reset until PHY autonegotiation is restarted through MDIC; CTRL.SLU is ignored.
        public static let linkNeedsAutonegRestart = Deviations(rawValue: 1 << 0)
        /// RSS runs only when RXCSUM.PCSD is set.
        public static let rssRequiresPCSD = Deviations(rawValue: 1 << 1)
        /// MRQC VMDq+RSS behaves like plain VMDq (queues 8–15 never receive in VMDq mode).
        public static let noRSSInVMDq = Deviations(rawValue: 1 << 2)
        /// MPC, RNBC and RQDPC never count; SRRCTL.DROP_EN is ignored.
        public static let noDropCounters = Deviations(rawValue: 1 << 3)
        /// Frames wait on the wire while the receiver cannot take them (link down, RCTL.EN clear, or no
        /// enabled queue with a free descriptor); a frame whose own queue is full is dropped for that queue.
        public static let holdFramesWhenBlocked = Deviations(rawValue: 1 << 4)
        /// With RCTL.SECRC clear the 4 appended FCS bytes are zeros instead of the CRC.
        public static let zeroFCS = Deviations(rawValue: 1 << 5)
        /// In VMDq mode RCTL.UPE/MPE are ignored, VMOLR.ROPE/MPME are not implemented and ROMPE also
        /// applies to unicast hash (UTA) hits.
        public static let vmdqSimplifiedFilters = Deviations(rawValue: 1 << 6)
        /// VMOLR.AUPE is only checked when RCTL.VFE is set.
        public static let aupeOnlyWithVFE = Deviations(rawValue: 1 << 7)
        /// Transmit runs inside the TDT write (TDH == TDT when the write returns).
        public static let synchronousTransmit = Deviations(rawValue: 1 << 8)
        /// EITR interval is (EITR & 0x7FFE) × 1024 ns instead of EITR[14:2] µs.
        public static let coarseEITR = Deviations(rawValue: 1 << 9)
        /// EIAM / GPIE.EIAME auto-masking is not implemented.
        public static let noAutoMask = Deviations(rawValue: 1 << 10)
        /// SRRCTL.DESCTYPE 000 still writes the advanced format; legacy TX descriptors are sent without offloads.
        public static let noLegacyDescriptors = Deviations(rawValue: 1 << 11)
        /// RX statistics count once per queue copy (a broadcast replicated to 2 pools counts 2), and
        /// padded short frames count in RUC.
        public static let statisticsPerCopy = Deviations(rawValue: 1 << 12)
        /// TX checksum offload parses the headers itself and ignores MACLEN/IPLEN of the context.
        public static let txParsesHeaders = Deviations(rawValue: 1 << 13)
        /// EEC.AUTO_RD never rises (QEMU's EECD reset value lacks it), although RAL0/RAH0 are loaded.
        public static let noEEPROMAutoReadDone = Deviations(rawValue: 1 << 14)
        /// TCTL.PSP is ignored: frames shorter than 60 bytes leave unpadded (seen on QEMU 10 through vfio).
        public static let noShortFramePadding = Deviations(rawValue: 1 << 15)

        /// Every difference: what `.qemu` fidelity selects.
        public static let qemu: Deviations = [
            .linkNeedsAutonegRestart, .rssRequiresPCSD, .noRSSInVMDq, .noDropCounters, .holdFramesWhenBlocked,
            .zeroFCS, .vmdqSimplifiedFilters, .aupeOnlyWithVFE, .synchronousTransmit, .coarseEITR, .noAutoMask,
            .noLegacyDescriptors, .statisticsPerCopy, .txParsesHeaders, .noEEPROMAutoReadDone,
            .noShortFramePadding,
        ]
    }

    /// How a model is built.
    public struct Configuration: Sendable {
        /// The permanent MAC address stored in the EEPROM (words 0–2), loaded into RAL0/RAH0 at reset.
        public var permanentAddress: [UInt8]
        public var fidelity: Fidelity
        /// The QEMU behaviours in effect; defaults to none for `.datasheet` and all for `.qemu`.
        public var deviations: Deviations
        /// Model time from (re)starting autonegotiation to link up.
        public var linkUpDelayNanoseconds: UInt64
        /// Frames the receive FIFO (packet buffer plus wire) holds before new ones are missed.
        public var receiveFIFOFrames: Int
        /// Largest frame the wire carries, without FCS.
        public var maximumFrameLength: Int
        /// IOMMU mapping granularity.
        public var iommuGranularity: ModelIOMMU.Granularity
        /// Keep transmitted frames for ``IGBModel/takeTransmitted()`` when no peer is connected
        /// (turn off for benchmarks: frames are then only counted).
        public var keepTransmittedFrames: Bool

        public init(
            permanentAddress: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            fidelity: Fidelity = .datasheet,
            deviations: Deviations? = nil,
            linkUpDelayNanoseconds: UInt64 = 500_000_000,
            receiveFIFOFrames: Int = 64,
            maximumFrameLength: Int = 16_128,
            iommuGranularity: ModelIOMMU.Granularity = .page4K,
            keepTransmittedFrames: Bool = true
        ) {
            self.permanentAddress = permanentAddress
            self.fidelity = fidelity
            self.deviations = deviations ?? (fidelity == .qemu ? .qemu : [])
            self.linkUpDelayNanoseconds = linkUpDelayNanoseconds
            self.receiveFIFOFrames = receiveFIFOFrames
            self.maximumFrameLength = maximumFrameLength
            self.iommuGranularity = iommuGranularity
            self.keepTransmittedFrames = keepTransmittedFrames
        }
    }

    /// Counters of things that happen outside any register (the wire, the fault hooks).
    public struct WireCounters: Sendable, Equatable {
        /// Frames that arrived but never reached host memory because the NIC could not receive
        /// (link down, receiver off, FIFO full, no descriptors with DROP_EN, queue stuck).
        public var notReceived = 0
        /// Frames the address/VLAN filters rejected (not for this NIC).
        public var filtered = 0
        /// Frames put on the wire.
        public var transmitted = 0
        /// Frames delivered to a local pool by VMDq loopback.
        public var loopedBack = 0
        /// Transmit descriptors the model could not handle (bad DTYP, TSO, oversize packet).
        public var transmitErrors = 0
        /// Receive frames lost because a descriptor fetch or write-back was refused by the IOMMU.
        public var lostToDMAFaults = 0
    }

    public let configuration: Configuration
    let deviations: Deviations
    /// The model's IOMMU; also the `dma` of its PCI function.
    public let iommu: ModelIOMMU

    // MARK: register file
    enum Kind: UInt8 { case unknown = 0, plain, readOnly, statistic, statisticHigh, special }
    let regs: UnsafeMutablePointer<UInt32>
    let kinds: UnsafeMutablePointer<UInt8>
    /// Accesses to registers the model does not implement (they read 0 and ignore writes).
    public private(set) var unmodeledReads = 0
    public private(set) var unmodeledWrites = 0
    /// Offsets of unmodelled registers touched, with access counts.
    public private(set) var unmodeledOffsets: [Int: Int] = [:]

    // MARK: EEPROM and PHY
    var eeprom = [UInt16](repeating: 0, count: 64)
    var phy = [UInt16](repeating: 0, count: 32)
    var phyLinkUp = false
    var linkDeadline: UInt64? = nil
    /// False after ``setCableConnected(_:)`` false: autonegotiation then never completes.
    public private(set) var cableConnected = true

    // MARK: PCI side
    var pciCommand: UInt16 = 0
    var msixEnabled = false
    var vectors: [InterruptEvent] = []
    static let msixVectorCount = 10
    /// MSI-X messages delivered per vector (counted even without an eventfd).
    public private(set) var interruptCounts = [Int](repeating: 0, count: IGBModel.msixVectorCount)
    var lastFire = [UInt64](repeating: 0, count: IGBModel.msixVectorCount)
    var everFired: UInt32 = 0
    var pendingVectors: UInt32 = 0
    /// True after ``surpriseRemove()``.
    public private(set) var isSurpriseRemoved = false

    // MARK: time
    /// Model time in nanoseconds.
    public private(set) var now: UInt64 = 0

    // MARK: wire
    /// The model's socket on the wire (ModelKit): its receive FIFO and the peer's port.
    public let port: WirePort
    var fifo: FrameFIFO { @inline(__always) get { port.fifo } }
    var headCountedAsBlocked = false
    /// Kept out of line: the transmit path counts every frame, and a class's stored `var` costs a
    /// dynamic exclusivity check per access.
    public internal(set) var wireCounters: WireCounters {
        @inline(__always) unsafeAddress { UnsafePointer(wireCounterCell) }
        @inline(__always) unsafeMutableAddress { wireCounterCell }
    }
    let wireCounterCell: UnsafeMutablePointer<WireCounters>
    var transmitted: [[UInt8]] = []

    // MARK: transmit state
    var txPending: UInt32 = 0
    let txScratch: UnsafeMutableRawPointer
    let txScratchCapacity: Int
    /// Context descriptors: 16 queues × 8 slots × (vlan_macip_lens, type_tucmd, mss_l4len_idx).
    let txContext: UnsafeMutablePointer<UInt32>

    // MARK: fault hooks
    var rxStuck: UInt32 = 0
    var txStuck: UInt32 = 0
    var corruptLength: [Int: UInt16] = [:]
    var corruptLengthPending: UInt32 = 0
    var writeBackTamper: ((inout RxWriteBackFields) -> Void)? = nil

    // MARK: benchmark hook
    var benchmarkFrame: UnsafeMutableRawPointer? = nil
    var benchmarkLength = 0
    var benchmarkQueue = 0

    // MARK: free-running mode
    let threaded = Atomic<Bool>(false)
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    var thread: pthread_t? = nil
    let keepRunning = Atomic<Bool>(false)
    var wallOrigin: UInt64 = 0
    var modelOrigin: UInt64 = 0

    /// Makes a model.
    /// - Parameters:
    ///   - configuration: how the model is built.
    ///   - iommu: an IOMMU to share with other models (one DMA space for several functions, as
    ///     functions in one VFIO container share one): memory one model's driver allocates is then
    ///     reachable by the others, so a forwarder can send received buffers without copying.
    ///     Nil makes the model its own IOMMU with `configuration.iommuGranularity`.
    public init(configuration: Configuration = Configuration(), iommu: ModelIOMMU? = nil) throws {
        guard configuration.permanentAddress.count == 6 else {
            throw IGBModelError.badMACAddress(count: configuration.permanentAddress.count)
        }
        self.configuration = configuration
        self.deviations = configuration.deviations
        self.iommu = iommu ?? ModelIOMMU(granularity: configuration.iommuGranularity)
        wireCounterCell = .allocate(capacity: 1)
        wireCounterCell.initialize(to: WireCounters())
        regs = .allocate(capacity: Reg.barSize / 4)
        regs.initialize(repeating: 0, count: Reg.barSize / 4)
        kinds = .allocate(capacity: Reg.barSize / 4)
        kinds.initialize(repeating: 0, count: Reg.barSize / 4)
        port = WirePort(slots: max(1, configuration.receiveFIFOFrames), slotSize: configuration.maximumFrameLength + 8)
        txScratchCapacity = configuration.maximumFrameLength + 8
        txScratch = .allocate(byteCount: txScratchCapacity, alignment: 16)
        txContext = .allocate(capacity: 16 * 8 * 3)
        txContext.initialize(repeating: 0, count: 16 * 8 * 3)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        buildEEPROM()
        buildRegisterKinds()
        powerOnReset()
    }

    deinit {
        stop()
        port.disconnect()
        for v in vectors { v.close() }
        regs.deallocate()
        kinds.deallocate()
        txScratch.deallocate()
        txContext.deallocate()
        benchmarkFrame?.deallocate()
        wireCounterCell.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Makes a model and returns its PCI function, which keeps the model alive.
    public static func makeFunction(configuration: Configuration = Configuration()) throws -> IGBModelFunction {
        IGBModelFunction(model: try IGBModel(configuration: configuration))
    }

    /// Makes a model that shares `other`'s IOMMU (one DMA space) and returns its PCI function.
    public static func makeFunction(configuration: Configuration = Configuration(), sharingIOMMUWith other: IGBModelFunction) throws -> IGBModelFunction {
        IGBModelFunction(model: try IGBModel(configuration: configuration, iommu: other.model.iommu))
    }

    // MARK: locking (free-running mode only)

    @inline(__always) func lockIfThreaded() -> Bool {
        if _slowPath(threaded.load(ordering: .relaxed)) {
            pthread_mutex_lock(mutex)
            return true
        }
        return false
    }

    @inline(__always) func unlock(_ locked: Bool) {
        if _slowPath(locked) { pthread_mutex_unlock(mutex) }
    }

    // MARK: EEPROM

    private func buildEEPROM() {
        let mac = configuration.permanentAddress
        for i in 0..<3 { eeprom[i] = UInt16(mac[2 * i]) | UInt16(mac[2 * i + 1]) << 8 }
        // Word 0x3F makes words 0x00–0x3F sum to 0xBABA (NVM checksum, §6.1).
        var sum: UInt16 = 0
        for i in 0..<0x3F { sum &+= eeprom[i] }
        eeprom[0x3F] = 0xBABA &- sum
    }

    // MARK: register kinds

    private func mark(_ offset: Int, _ kind: Kind) { kinds[offset >> 2] = kind.rawValue }

    private func buildRegisterKinds() {
        for o in [Reg.CTRL, Reg.STATUS, Reg.EEC, Reg.EERD, Reg.MDIC, Reg.ICR, Reg.ICS, Reg.IMS, Reg.IMC,
                  Reg.EICS, Reg.EIMS, Reg.EIMC, Reg.EICR] { mark(o, .special) }
        for n in 0..<Self.msixVectorCount { mark(Reg.EITR(n), .special) }
        let plain = [Reg.CTRL_EXT, Reg.VET, Reg.IAM, Reg.RCTL, Reg.TCTL, Reg.GPIE, Reg.EIAC, Reg.EIAM, Reg.IVAR_MISC,
                     Reg.RXPBS, Reg.TXPBS, Reg.DTXSWC, Reg.VFRE, Reg.VFTE, Reg.RXCSUM, Reg.RLPML, Reg.RFCTL,
                     Reg.MRQC, Reg.VT_CTL, Reg.RPLOLR,
                     0x0028, 0x002C, 0x0030, 0x0170, 0x0410, 0x1000, 0x2160, 0x2168,   // FCAL FCAH FCT FCTTV TIPG PBA FCRTL FCRTH
                     0x5800, 0x5808, 0x5820, 0x5B00, 0x5B50, 0x5B5C]                 // WUC WUFC MANC GCR SWSM SW_FW_SYNC
        for o in plain { mark(o, .plain) }
        mark(0x1010, .readOnly)   // EEMNGCTL: CFG_DONE for port 0
        mark(0x5B54, .readOnly)   // FWSM
        for n in 0..<8 { mark(Reg.IVAR(n), .plain); mark(Reg.VMOLR(n), .plain); mark(Reg.VMVIR(n), .plain); mark(Reg.PSRTYPE(n), .plain) }
        for n in 0..<128 { mark(Reg.MTA + 4 * n, .plain); mark(Reg.VFTA + 4 * n, .plain); mark(Reg.UTA + 4 * n, .plain) }
        for n in 0..<24 { mark(Reg.RAL(n), .plain); mark(Reg.RAH(n), .plain) }
        for n in 0..<32 { mark(Reg.RETA + 4 * n, .plain); mark(Reg.VLVF(n), .plain) }
        for n in 0..<10 { mark(Reg.RSSRK + 4 * n, .plain) }
        for q in 0..<16 {
            for r in [Reg.RDBAL, Reg.RDBAH, Reg.RDLEN, Reg.SRRCTL, Reg.RDH, Reg.RXCTL, Reg.RDT, Reg.RXDCTL] { mark(Reg.rxq(q, r), .plain) }
            mark(Reg.rxq(q, Reg.RQDPC), .statistic)
            for r in [Reg.TDBAL, Reg.TDBAH, Reg.TDLEN, Reg.TDH, Reg.TXCTL, Reg.TXDCTL, Reg.TDWBAL, Reg.TDWBAH] { mark(Reg.txq(q, r), .plain) }
            mark(Reg.txq(q, Reg.TDT), .special)
        }
        // Statistics (§8.19): clear on read; a 64-bit pair clears when its high half is read.
        var o = Reg.statsFirst
        while o <= Reg.statsLast { mark(o, .statistic); o += 4 }
        for high in [Reg.GORCH, Reg.GOTCH, Reg.TORH, Reg.TOTH] {
            mark(high, .statisticHigh)
            mark(high - 4, .readOnly)   // the low half reads without clearing
        }
        for hole in [0x4024, 0x402C, 0x4044, 0x4084, 0x4098, 0x409C] { mark(hole, .unknown) }
    }

    /// Maps the queue 0–3 aliases (0x2800 + 0x100·n, 0x3800 + 0x100·n) onto the 0xC000/0xE000 blocks.
    @inline(__always) static func canonical(_ offset: Int) -> Int {
        if offset >= 0x2800 && offset < 0x2C00 {
            let r = (offset - 0x2800) & 0xFF
            if r < 0x40 { return Reg.rxQueueBase + ((offset - 0x2800) >> 8) * 0x40 + r }
        } else if offset >= 0x3800 && offset < 0x3C00 {
            let r = (offset - 0x3800) & 0xFF
            if r < 0x40 { return Reg.txQueueBase + ((offset - 0x3800) >> 8) * 0x40 + r }
        }
        return offset
    }

    // MARK: register access (what IGBModelRegisters calls)

    /// Reads the BAR0 register at `offset` with the device's side effects.
    public func readRegister(_ offset: Int) -> UInt32 {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        if _slowPath(isSurpriseRemoved) { return 0xFFFF_FFFF }
        guard offset >= 0, offset < Reg.barSize, offset & 3 == 0 else { return noteUnmodeled(offset, write: false) }
        let off = Self.canonical(offset)
        let i = off >> 2
        switch kinds[i] {
        case Kind.plain.rawValue, Kind.readOnly.rawValue:
            return regs[i]
        case Kind.statistic.rawValue:
            let v = regs[i]
            regs[i] = 0
            return v
        case Kind.statisticHigh.rawValue:
            let v = regs[i]
            regs[i] = 0
            regs[i - 1] = 0
            return v
        case Kind.special.rawValue:
            return readSpecial(off)
        default:
            return noteUnmodeled(offset, write: false)
        }
    }

    /// Writes the BAR0 register at `offset` with the device's side effects.
    public func writeRegister(_ offset: Int, _ value: UInt32) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        if _slowPath(isSurpriseRemoved) { return }
        guard offset >= 0, offset < Reg.barSize, offset & 3 == 0 else { _ = noteUnmodeled(offset, write: true); return }
        let off = Self.canonical(offset)
        let i = off >> 2
        switch kinds[i] {
        case Kind.plain.rawValue:
            regs[i] = value
        case Kind.readOnly.rawValue, Kind.statistic.rawValue, Kind.statisticHigh.rawValue:
            break
        case Kind.special.rawValue:
            writeSpecial(off, value)
        default:
            _ = noteUnmodeled(offset, write: true)
        }
    }

    @inline(never) private func noteUnmodeled(_ offset: Int, write: Bool) -> UInt32 {
        if write { unmodeledWrites += 1 } else { unmodeledReads += 1 }
        unmodeledOffsets[offset, default: 0] += 1
        return 0
    }

    @inline(__always) func reg(_ offset: Int) -> UInt32 { regs[offset >> 2] }
    @inline(__always) func setReg(_ offset: Int, _ v: UInt32) { regs[offset >> 2] = v }

    private func readSpecial(_ off: Int) -> UInt32 {
        switch off {
        case Reg.STATUS:
            return statusValue()
        case Reg.ICR:
            // Read-to-clear (§8.8.1).
            let v = reg(Reg.ICR)
            setReg(Reg.ICR, 0)
            return v
        case Reg.EICR:
            let v = reg(Reg.EICR)
            setReg(Reg.EICR, 0)
            return v
        case Reg.ICS, Reg.IMC, Reg.EICS, Reg.EIMC:
            return 0   // write-only
        case Reg.EIMS:
            return reg(Reg.EIMS)
        default:
            if off >= Reg.EITR(0), off < Reg.EITR(Self.msixVectorCount) { return reg(off) & 0x7FFF_FFFF }
            return reg(off)
        }
    }

    private func writeSpecial(_ off: Int, _ value: UInt32) {
        switch off {
        case Reg.CTRL:
            writeCTRL(value)
        case Reg.STATUS:
            // PHYRA is write-0-to-clear; the rest is read-only.
            if value & Bit.STATUS_PHYRA == 0 { setReg(Reg.STATUS, reg(Reg.STATUS) & ~Bit.STATUS_PHYRA) }
        case Reg.EEC:
            // Only the software bits are writable; PRES and AUTO_RD stay as the hardware set them.
            setReg(Reg.EEC, (reg(Reg.EEC) & (Bit.EEC_PRES | Bit.EEC_AUTO_RD)) | (value & 0x3F))
        case Reg.EERD:
            writeEERD(value)
        case Reg.MDIC:
            writeMDIC(value)
        case Reg.ICR:
            setReg(Reg.ICR, reg(Reg.ICR) & ~value)   // write 1 to clear
        case Reg.ICS:
            raiseCause(value)
        case Reg.IMS:
            setReg(Reg.IMS, reg(Reg.IMS) | value)
            raiseCause(0)
        case Reg.IMC:
            setReg(Reg.IMS, reg(Reg.IMS) & ~value)
        case Reg.EICR:
            setReg(Reg.EICR, reg(Reg.EICR) & ~value)
        case Reg.EICS:
            raiseExtended(value)
        case Reg.EIMS:
            let newlyEnabled = value & ~reg(Reg.EIMS)
            setReg(Reg.EIMS, reg(Reg.EIMS) | value)
            // Causes already pending fire when their mask is opened (§7.3.4).
            fireVectors(reg(Reg.EICR) & newlyEnabled)
        case Reg.EIMC:
            setReg(Reg.EIMS, reg(Reg.EIMS) & ~value)
        default:
            if off >= Reg.EITR(0), off < Reg.EITR(Self.msixVectorCount) {
                setReg(off, value & 0x7FFF_FFFF)   // CNT_IGNR (bit 31) is write-only
            } else if off >= Reg.txQueueBase, off < Reg.txQueueBase + 16 * 0x40, (off - Reg.txQueueBase) & 0x3F == Reg.TDT {
                let q = (off - Reg.txQueueBase) >> 6
                setReg(off, value & 0xFFFF)
                txPending |= 1 << UInt32(q)
                if deviations.contains(.synchronousTransmit) { transmit(queue: q) }
            } else {
                setReg(off, value)
            }
        }
    }

    // MARK: reset

    /// Power-on / function-level reset: MAC registers, EEPROM auto-read and the PHY.
    func powerOnReset() {
        macReset()
        phyReset()
        for n in 0..<Self.msixVectorCount { setReg(Reg.EITR(n), 0) }
    }

    /// CTRL.RST (§4.3.1): MAC registers to defaults, EEPROM reloaded. The PHY keeps its link on the
    /// 82576; QEMU resets it too (link down until autonegotiation is restarted).
    func softwareReset() {
        let eitr = (0..<Self.msixVectorCount).map { reg(Reg.EITR($0)) }
        macReset()
        for n in 0..<Self.msixVectorCount { setReg(Reg.EITR(n), eitr[n]) }
        if deviations.contains(.linkNeedsAutonegRestart) { phyReset() }
    }

    private func macReset() {
        let status = reg(Reg.STATUS)
        for i in 0..<(Reg.barSize / 4) where kinds[i] != Kind.unknown.rawValue { regs[i] = 0 }
        setReg(Reg.STATUS, status | Bit.STATUS_PHYRA)
        setReg(Reg.CTRL, Bit.CTRL_FD | Bit.CTRL_SPEED_1000)
        // EEPROM auto-read is instantaneous in the model: PRES and AUTO_RD are set on reset exit
        // (QEMU: PRES only).
        setReg(Reg.EEC, Bit.EEC_PRES | (deviations.contains(.noEEPROMAutoReadDone) ? 0 : Bit.EEC_AUTO_RD))
        setReg(0x1010, 1 << 18)                     // EEMNGCTL.CFG_DONE0
        setReg(Reg.VET, 0x8100)
        setReg(Reg.TCTL, Bit.TCTL_PSP | 0x0F << 4 | 0x3F << 12)
        setReg(Reg.RXCSUM, Bit.RXCSUM_IPOFLD | Bit.RXCSUM_TUOFLD)
        setReg(Reg.RLPML, 0x2600)
        setReg(Reg.RXPBS, 0x40)
        setReg(Reg.TXPBS, 0x28)
        setReg(Reg.VFRE, 0xFF)
        setReg(Reg.VFTE, 0xFF)
        for q in 0..<16 { setReg(Reg.rxq(q, Reg.SRRCTL), 0x0000_0402) }
        setReg(Reg.rxq(0, Reg.RXDCTL), Bit.QUEUE_ENABLE)
        setReg(Reg.txq(0, Reg.TXDCTL), Bit.QUEUE_ENABLE)
        // RAR0 = the permanent address with Address Valid (EEPROM auto-load).
        let mac = configuration.permanentAddress
        setReg(Reg.RAL(0), UInt32(mac[0]) | UInt32(mac[1]) << 8 | UInt32(mac[2]) << 16 | UInt32(mac[3]) << 24)
        setReg(Reg.RAH(0), UInt32(mac[4]) | UInt32(mac[5]) << 8 | Bit.RAH_AV)
        txContext.update(repeating: 0, count: 16 * 8 * 3)
        txPending = 0
        pendingVectors = 0
        everFired = 0
        headCountedAsBlocked = false
    }

    private func phyReset() {
        for i in 0..<32 { phy[i] = 0 }
        phy[PHYReg.PCTRL] = PHYReg.PCTRL_AN_ENABLE | 0x0140   // AN enable, full duplex, 1000 Mb/s
        phy[PHYReg.PSTATUS] = 0x7949
        phy[PHYReg.PHY_ID1] = 0x02A8   // IGP3-family PHY ID of the 82576 internal PHY
        phy[PHYReg.PHY_ID2] = 0x0391
        phy[PHYReg.ANA] = 0x0DE1
        phy[PHYReg.GCON] = 0x0300
        setPHYLink(false)
        // The 82576 PHY starts autonegotiating by itself; QEMU's waits for an explicit restart.
        linkDeadline = deviations.contains(.linkNeedsAutonegRestart) ? nil : now &+ configuration.linkUpDelayNanoseconds
    }

    private func writeCTRL(_ value: UInt32) {
        if value & Bit.CTRL_RST != 0 {
            softwareReset()   // RST self-clears
            updateLinkStatus()
            return
        }
        setReg(Reg.CTRL, value & ~(Bit.CTRL_RST | Bit.CTRL_PHY_RST))
        if value & Bit.CTRL_PHY_RST != 0 {
            if deviations.contains(.linkNeedsAutonegRestart) {
                setReg(Reg.STATUS, reg(Reg.STATUS) | Bit.STATUS_PHYRA)
            } else {
                phyReset()
            }
        }
        updateLinkStatus()
    }

    // MARK: link

    /// STATUS.LU as the MAC reports it.
    var linkUp: Bool {
        if deviations.contains(.linkNeedsAutonegRestart) { return phyLinkUp }
        return phyLinkUp && reg(Reg.CTRL) & Bit.CTRL_SLU != 0
    }

    private var lastReportedLink = false

    func updateLinkStatus() {
        let up = linkUp
        if up != lastReportedLink {
            lastReportedLink = up
            raiseCause(Bit.ICR_LSC)
        }
    }

    private func setPHYLink(_ up: Bool) {
        phyLinkUp = up
        if up {
            phy[PHYReg.PSTATUS] |= PHYReg.PSTATUS_LINK | PHYReg.PSTATUS_AN_COMPLETE
            phy[PHYReg.ANLP] = 0xCDE1
            phy[PHYReg.GSTATUS] = 0x3C00
        } else {
            phy[PHYReg.PSTATUS] &= ~(PHYReg.PSTATUS_LINK | PHYReg.PSTATUS_AN_COMPLETE)
            phy[PHYReg.ANLP] = 0
            phy[PHYReg.GSTATUS] = 0
        }
    }

    private func statusValue() -> UInt32 {
        var v = (reg(Reg.STATUS) & Bit.STATUS_PHYRA) | Bit.STATUS_FD | Bit.STATUS_SPEED_1000
        if linkUp { v |= Bit.STATUS_LU }
        if reg(Reg.CTRL) & Bit.CTRL_GIO_MASTER_DISABLE == 0 { v |= Bit.STATUS_GIO_MASTER_ENABLE }
        return v
    }

    /// Plugs or pulls the virtual cable. Plugging starts autonegotiation (link up after the delay).
    public func setCableConnected(_ connected: Bool) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        cableConnected = connected
        if connected {
            if !phyLinkUp { linkDeadline = now &+ configuration.linkUpDelayNanoseconds }
        } else {
            linkDeadline = nil
            setPHYLink(false)
            updateLinkStatus()
        }
    }

    private func restartAutonegotiation() {
        setPHYLink(false)
        updateLinkStatus()
        linkDeadline = now &+ configuration.linkUpDelayNanoseconds
    }

    // MARK: EEPROM and MDIC

    private func writeEERD(_ value: UInt32) {
        guard value & Bit.EERD_START != 0 else { return }
        let address = Int((value >> Bit.EERD_ADDR_SHIFT) & 0x3FFF)
        let word = address < eeprom.count ? eeprom[address] : 0xFFFF
        setReg(Reg.EERD, UInt32(word) << Bit.EERD_DATA_SHIFT | UInt32(address) << Bit.EERD_ADDR_SHIFT | Bit.EERD_DONE)
    }

    private func writeMDIC(_ value: UInt32) {
        let phyAddress = (value >> Bit.MDIC_PHY_SHIFT) & 0x1F
        let register = Int((value >> Bit.MDIC_REG_SHIFT) & 0x1F)
        let op = value & (3 << 26)
        var result = value & 0x0FFF_FFFF & ~(Bit.MDIC_READY | Bit.MDIC_ERROR)
        if phyAddress != PHYReg.address || (op != Bit.MDIC_OP_READ && op != Bit.MDIC_OP_WRITE) {
            result |= Bit.MDIC_ERROR
        } else if op == Bit.MDIC_OP_READ {
            result = (result & 0xFFFF_0000) | UInt32(phy[register])
        } else {
            writePHY(register, UInt16(value & 0xFFFF))
        }
        // The model completes MDI transactions at once.
        setReg(Reg.MDIC, result | Bit.MDIC_READY)
    }

    private func writePHY(_ register: Int, _ value: UInt16) {
        switch register {
        case PHYReg.PCTRL:
            phy[PHYReg.PCTRL] = value & ~(PHYReg.PCTRL_RESET | PHYReg.PCTRL_RESTART_AN)
            let an = value & PHYReg.PCTRL_AN_ENABLE != 0
            if value & PHYReg.PCTRL_RESET != 0 && (an || !deviations.contains(.linkNeedsAutonegRestart)) {
                restartAutonegotiation()
            } else if value & PHYReg.PCTRL_RESTART_AN != 0 && an {
                restartAutonegotiation()
            }
        case PHYReg.PSTATUS, PHYReg.PHY_ID1, PHYReg.PHY_ID2, PHYReg.ANLP, PHYReg.GSTATUS:
            break   // read-only
        default:
            phy[register] = value
        }
    }

    // MARK: time

    /// Moves model time forward, fires what became due (link up, throttled interrupts), then ``step()``s.
    public func advance(nanoseconds: UInt64) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        if threaded.load(ordering: .relaxed) { modelOrigin &+= nanoseconds }
        advanceUnlocked(to: now &+ nanoseconds)
        stepUnlocked()
    }

    func advanceUnlocked(to time: UInt64) {
        now = max(now, time)
        if let deadline = linkDeadline, now >= deadline {
            linkDeadline = nil
            if cableConnected {
                setPHYLink(true)
                updateLinkStatus()
            }
        }
        if pendingVectors != 0 {
            var p = pendingVectors
            pendingVectors = 0
            while p != 0 {
                let v = p.trailingZeroBitCount
                p &= p - 1
                fireVector(v)
            }
        }
    }

    /// Does all pending device work now: transmit after TDT writes, then frames waiting on the wire.
    public func step() {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        stepUnlocked()
    }

    func stepUnlocked() {
        if _slowPath(isSurpriseRemoved) { return }
        advanceUnlocked(to: now)
        if txPending != 0 {
            var p = txPending
            while p != 0 {
                let q = p.trailingZeroBitCount
                p &= p - 1
                transmit(queue: q)
            }
        }
        if _slowPath(benchmarkFrame != nil) { benchmarkReceive() }
        receivePending()
    }

    // MARK: interrupts (§7.3)

    /// Sets ICR causes and, in MSI-X mode, the "other" cause vector (IVAR_MISC).
    func raiseCause(_ cause: UInt32) {
        let before = reg(Reg.ICR) & reg(Reg.IMS)
        if cause != 0 { setReg(Reg.ICR, reg(Reg.ICR) | cause | Bit.ICR_INT_ASSERTED) }
        let active = reg(Reg.ICR) & reg(Reg.IMS) & ~Bit.ICR_INT_ASSERTED
        guard active != 0 else { return }
        if reg(Reg.GPIE) & Bit.GPIE_MSIX_MODE != 0 {
            let entry = (reg(Reg.IVAR_MISC) >> 8) & 0xFF
            if entry & Bit.IVAR_VALID != 0 { raiseExtended(1 << (entry & 0x1F)) }
        } else if active & ~before != 0 {
            // Without MSI-X mode every cause is signalled on vector 0.
            deliver(0)
        }
    }

    /// A receive (`rx`) or transmit write-back on `queue`: EICR through IVAR in MSI-X mode, ICR otherwise.
    @inline(__always) func queueInterrupt(rx: Bool, queue: Int) {
        if reg(Reg.GPIE) & Bit.GPIE_MSIX_MODE != 0 {
            // IVAR[n]: byte 0 RX queue n, byte 1 TX queue n, byte 2 RX queue n+8, byte 3 TX queue n+8.
            let shift = UInt32((queue & 8) << 1) + (rx ? 0 : 8)
            let entry = (reg(Reg.IVAR(queue & 7)) >> shift) & 0xFF
            if entry & Bit.IVAR_VALID != 0 { raiseExtended(1 << (entry & 0x1F)) }
        } else {
            raiseCause(rx ? Bit.ICR_RXDW : Bit.ICR_TXDW)
        }
    }

    func raiseExtended(_ bits: UInt32) {
        let newly = bits & ~reg(Reg.EICR)
        setReg(Reg.EICR, reg(Reg.EICR) | bits)
        fireVectors(newly & reg(Reg.EIMS))
    }

    private func fireVectors(_ bits: UInt32) {
        var b = bits & ((1 << UInt32(Self.msixVectorCount)) - 1)
        while b != 0 {
            let v = b.trailingZeroBitCount
            b &= b - 1
            fireVector(v)
        }
    }

    func eitrInterval(_ v: Int) -> UInt64 {
        let e = reg(Reg.EITR(v))
        if deviations.contains(.coarseEITR) { return UInt64(e & 0x7FFE) * 1024 }
        return UInt64((e >> 2) & 0x1FFF) * 1000
    }

    private func fireVector(_ v: Int) {
        let interval = eitrInterval(v)
        let bit = UInt32(1) << UInt32(v)
        if interval > 0, everFired & bit != 0, now &- lastFire[v] < interval {
            pendingVectors |= bit   // throttled: fires once the interval has passed (advance)
            return
        }
        deliver(v)
        if reg(Reg.EIAC) & bit != 0 { setReg(Reg.EICR, reg(Reg.EICR) & ~bit) }
        if reg(Reg.GPIE) & Bit.GPIE_EIAME != 0 && !deviations.contains(.noAutoMask) {
            setReg(Reg.EIMS, reg(Reg.EIMS) & ~(reg(Reg.EIAM) & bit))
        }
    }

    private func deliver(_ v: Int) {
        let bit = UInt32(1) << UInt32(v)
        everFired |= bit
        lastFire[v] = now
        interruptCounts[v] += 1
        if msixEnabled, v < vectors.count { vectors[v].signal() }
    }

    // MARK: PCI-side operations used by IGBModelFunction

    var busMaster: Bool { pciCommand & 0x4 != 0 }

    func functionLevelReset() {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        powerOnReset()
        updateLinkStatus()
        setReg(Reg.ICR, 0)
    }

    // MARK: fault hooks

    /// The device disappears: registers read all-ones, writes are ignored, no more DMA.
    public func surpriseRemove() {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        isSurpriseRemoved = true
    }

    /// The next DMA the device does fails with an `.injected` fault and is dropped.
    public func injectDMAFault() {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        iommu.injectFault()
    }

    /// The next receive write-back on `queue` reports `length` instead of the real length.
    public func corruptNextWriteBackLength(queue: Int, length: UInt16 = 0xFFFF) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        corruptLength[queue] = length
        corruptLengthPending |= 1 << UInt32(queue)
    }

    /// Lets a test (the `receive` fuzz target) dictate every advanced receive write-back: `tamper`
    /// sees the fields the model is about to store and may change any of them, and how far the
    /// head moves. nil restores the hardware's behaviour.
    public func tamperWithReceiveWriteBacks(_ tamper: ((inout RxWriteBackFields) -> Void)?) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        writeBackTamper = tamper
    }

    /// A stuck receive queue takes no frames and writes nothing back; a stuck transmit queue never
    /// fetches descriptors.
    public func setQueueStuck(receive queue: Int, _ stuck: Bool) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        if stuck { rxStuck |= 1 << UInt32(queue) } else { rxStuck &= ~(1 << UInt32(queue)) }
    }

    public func setQueueStuck(transmit queue: Int, _ stuck: Bool) {
        let locked = lockIfThreaded()
        defer { unlock(locked) }
        if stuck { txStuck |= 1 << UInt32(queue) } else { txStuck &= ~(1 << UInt32(queue)); txPending |= 1 << UInt32(queue) }
    }

    /// DMA faults recorded by the IOMMU (unmapped IOVA, bus master off, injected).
    public var faults: [DMAFault] { iommu.faults }

    // MARK: statistics helpers

    @inline(__always) func count(_ offset: Int, _ n: UInt32 = 1) {
        let (s, o) = regs[offset >> 2].addingReportingOverflow(n)
        regs[offset >> 2] = o ? 0xFFFF_FFFF : s   // counters stick at their maximum
    }

    @inline(__always) func count64(_ lowOffset: Int, _ n: Int) {
        let i = lowOffset >> 2
        let v = (UInt64(regs[i + 1]) << 32 | UInt64(regs[i])) &+ UInt64(n)
        regs[i] = UInt32(truncatingIfNeeded: v)
        regs[i + 1] = UInt32(truncatingIfNeeded: v >> 32)
    }

    /// The PRC64…PRC1522 / PTC64…PTC1522 bucket for a frame of `length` bytes including FCS.
    @inline(__always) static func sizeBucket(_ base: Int, _ length: Int) -> Int {
        switch length {
        case ..<65: return base
        case ..<128: return base + 4
        case ..<256: return base + 8
        case ..<512: return base + 12
        case ..<1024: return base + 16
        default: return base + 20
        }
    }

    // MARK: DMA

    /// Translates a device access; records a fault and returns nil if it must not happen.
    @inline(__always) func dma(_ iova: UInt64, _ length: Int, write: Bool, _ activity: DMAActivity) -> UnsafeMutableRawPointer? {
        if _slowPath(!busMaster) {
            iommu.record(DMAFault(kind: .busMasterDisabled, iova: iova, length: length, isWrite: write, activity: activity))
            return nil
        }
        return iommu.translate(iova, length: length, isWrite: write, activity: activity)
    }
}
