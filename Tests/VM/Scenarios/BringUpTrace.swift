import DeviceAccess
import Foundation

/// Register accesses recorded while the miniport brings a device up.
final class RegisterLog {
    struct Access {
        var write: Bool
        var offset: Int
        var value: UInt32
        var at: ContinuousClock.Instant
    }

    var enabled = true
    var accesses: [Access] = []
    let limit = 200_000

    @inline(__always) func record(write: Bool, _ offset: Int, _ value: UInt32) {
        guard enabled, accesses.count < limit else { return }
        accesses.append(Access(write: write, offset: offset, value: value, at: .now))
    }

    /// 82576 offsets and bits the trace looks for (datasheet §8; the driver has its own table).
    enum R {
        static let CTRL = 0x0000, STATUS = 0x0008, EEC = 0x0010, MDIC = 0x0020, IMC = 0x00D8
        static let RCTL = 0x0100, TCTL = 0x0400, EIMC = 0x1528, CRCERRS = 0x4000
        static let RAH0 = 0x5404, MRQC = 0x5818
        static let RDBAL0 = 0xC000, RDT0 = 0xC018, RXDCTL0 = 0xC028, TDBAL0 = 0xE000, TXDCTL0 = 0xE028
        static let CTRL_GIO_MASTER_DISABLE: UInt32 = 1 << 2, CTRL_SLU: UInt32 = 1 << 6, CTRL_RST: UInt32 = 1 << 26
        static let STATUS_LU: UInt32 = 1 << 1, EN: UInt32 = 1 << 1, QUEUE_ENABLE: UInt32 = 1 << 25
        /// MDIC: data 15:0, register 20:16, PHY 25:21, op 27:26 (01 write). PHY control: reset bit 15, restart AN bit 9.
        static func mdicWrite(_ v: UInt32, register: UInt32) -> Bool { (v >> 26) & 3 == 1 && (v >> 16) & 0x1F == register }
    }

    /// The datasheet's bring-up steps (§4.5) in the order the driver must take them, each found
    /// as the first access that performs it, after the previous step.
    static let steps: [(name: String, match: @Sendable (Access) -> Bool)] = [
        ("mask interrupts (IMC)", { $0.write && $0.offset == R.IMC && $0.value == 0xFFFF_FFFF }),
        ("stop DMA (CTRL.GIO_MASTER_DISABLE)", { $0.write && $0.offset == R.CTRL && $0.value & R.CTRL_GIO_MASTER_DISABLE != 0 }),
        ("global reset (CTRL.RST)", { $0.write && $0.offset == R.CTRL && $0.value & R.CTRL_RST != 0 }),
        ("mask interrupts again", { $0.write && $0.offset == R.IMC && $0.value == 0xFFFF_FFFF }),
        ("NVM auto-read (EEC)", { !$0.write && $0.offset == R.EEC }),
        ("permanent address (RAH0)", { !$0.write && $0.offset == R.RAH0 }),
        ("PHY reset (MDIC, PHY control RESET)", { $0.write && $0.offset == R.MDIC && R.mdicWrite($0.value, register: 0) && $0.value & 1 << 15 != 0 }),
        ("restart autonegotiation (MDIC, PHY control RESTART_AN)", { $0.write && $0.offset == R.MDIC && R.mdicWrite($0.value, register: 0) && $0.value & 1 << 9 != 0 }),
        ("set link up (CTRL.SLU)", { $0.write && $0.offset == R.CTRL && $0.value & R.CTRL_SLU != 0 }),
        ("link up (STATUS.LU)", { !$0.write && $0.offset == R.STATUS && $0.value & R.STATUS_LU != 0 }),
        ("clear statistics (read CRCERRS…)", { !$0.write && $0.offset == R.CRCERRS }),
        ("receive: VMDq mode (MRQC)", { $0.write && $0.offset == R.MRQC }),
        ("receive: default ring base (RDBAL0)", { $0.write && $0.offset == R.RDBAL0 }),
        ("receive: queue enable (RXDCTL0.ENABLE)", { $0.write && $0.offset == R.RXDCTL0 && $0.value & R.QUEUE_ENABLE != 0 }),
        ("receive: tail (RDT0)", { $0.write && $0.offset == R.RDT0 && $0.value != 0 }),
        ("transmit: ring base (TDBAL0)", { $0.write && $0.offset == R.TDBAL0 }),
        ("transmit: queue enable (TXDCTL0.ENABLE)", { $0.write && $0.offset == R.TXDCTL0 && $0.value & R.QUEUE_ENABLE != 0 }),
        ("enable transmit (TCTL.EN)", { $0.write && $0.offset == R.TCTL && $0.value & R.EN != 0 }),
        ("enable receive (RCTL.EN)", { $0.write && $0.offset == R.RCTL && $0.value & R.EN != 0 }),
    ]

    /// Finds the steps in order; a step missing after its predecessor is an error.
    func analyse() -> BringUpTrace {
        var trace = BringUpTrace()
        trace.reads = accesses.filter { !$0.write }.count
        trace.writes = accesses.filter(\.write).count
        guard let first = accesses.first else {
            trace.errors.append("no register access was recorded")
            return trace
        }
        var from = 0
        var at: [String: ContinuousClock.Instant] = [:]
        for step in Self.steps {
            guard let i = accesses[from...].firstIndex(where: step.match) else {
                trace.errors.append("bring-up step '\(step.name)' not found after '\(trace.steps.last?.name ?? "start")'")
                break
            }
            let a = accesses[i]
            trace.steps.append(.init(name: step.name, access: i, atMilliseconds: FrameRecorder.milliseconds(a.at - first.at),
                                     register: String(format: "0x%05x", a.offset), value: String(format: "0x%08x", a.value)))
            at[step.name] = a.at
            from = i + 1
        }
        if let an = at["restart autonegotiation (MDIC, PHY control RESTART_AN)"], let lu = at["link up (STATUS.LU)"] {
            trace.linkUpAfterAutonegMilliseconds = FrameRecorder.milliseconds(lu - an)
        }
        if let last = accesses.last { trace.milliseconds = FrameRecorder.milliseconds(last.at - first.at) }
        return trace
    }
}

struct BringUpTrace: Codable {
    struct Step: Codable {
        var name: String
        var access: Int
        var atMilliseconds: Double
        var register: String
        var value: String
    }
    var steps: [Step] = []
    var errors: [String] = []
    var reads = 0
    var writes = 0
    var linkUpAfterAutonegMilliseconds: Double?
    var milliseconds = 0.0
}

/// Register access that records into a `RegisterLog` and forwards to the real one.
struct TracingRegisters<Base: RegisterAccess>: RegisterAccess {
    let base: Base
    let log: RegisterLog

    func read32(_ offset: Int) -> UInt32 {
        let v = base.read32(offset)
        log.record(write: false, offset, v)
        return v
    }

    func write32(_ offset: Int, _ value: UInt32) {
        log.record(write: true, offset, value)
        base.write32(offset, value)
    }
}

/// A PCI function whose BAR registers are traced (for the bring-up scenario); everything else is forwarded.
final class TracingFunction<Base: PCIFunction>: PCIFunction {
    let base: Base
    let log = RegisterLog()

    init(_ base: Base) { self.base = base }

    var name: String { base.name }
    var identity: PCIIdentity { base.identity }
    func registers(bar index: Int) throws -> TracingRegisters<Base.Registers> {
        TracingRegisters(base: try base.registers(bar: index), log: log)
    }
    func readConfig16(_ offset: Int) throws -> UInt16 { try base.readConfig16(offset) }
    func readConfig32(_ offset: Int) throws -> UInt32 { try base.readConfig32(offset) }
    func writeConfig16(_ offset: Int, _ value: UInt16) throws { try base.writeConfig16(offset, value) }
    func enableBusMaster() throws { try base.enableBusMaster() }
    func reset() throws { try base.reset() }
    var dma: any DMAAllocator { base.dma }
    var msixVectorCount: Int { base.msixVectorCount }
    func enableMSIX(count: Int) throws -> [InterruptEvent] { try base.enableMSIX(count: count) }
    func disableInterrupts() throws { try base.disableInterrupts() }
}
