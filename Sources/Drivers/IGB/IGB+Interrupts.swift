import DeviceAccess
import Glibc
import NDIS

// Interrupts (§7.3): MSI-X with one vector for "other" causes (link status change) and one per
// receive queue; GPIE multi-vector mode, IVAR mapping, EIAC auto-clear, EITR throttling.
// Polling without interrupts stays the default; interrupts let an idle datapath sleep.

/// The MSI-X vectors in use: vector 0 for link and other causes, vectors 1… for queues.
struct IGBInterruptState {
    var events: [InterruptEvent]
    var queueVectors: Int { events.count - 1 }
}

extension IGBMiniport {
    /// §7.3.2: MSI-X mode. Does nothing unless `useInterrupts` is set and the function has ≥ 2 vectors.
    func configureInterrupts() throws {
        interrupts = nil
        guard configuration.useInterrupts, function.msixVectorCount >= 2 else { return }
        let count = min(function.msixVectorCount, 1 + Self.vmdqPools)
        let events = try function.enableMSIX(count: count)
        interrupts = IGBInterruptState(events: events)
        regs.write32(IGBReg.GPIE, GPIE.MULTIPLE_MSIX | GPIE.PBA | GPIE.EIAME | GPIE.NSICR)
        regs.write32(IGBReg.IVAR_MISC, (IVAR.VALID | 0) << IVAR.MISC_OTHER_SHIFT)
        // EITR interval field (bits 14:2) in microseconds; CNT_IGNR (bit 31) keeps the counter.
        let interval = (UInt32(clamping: configuration.interruptThrottleMicroseconds) << 2) & 0x7FFC
        for v in 1..<count { regs.write32(IGBReg.EITR(v), interval | 1 << 31) }
        mapQueueInterrupt(slot: 0)
        // Causes left from bring-up (the link-up LSC) are cleared, not delivered.
        _ = regs.read32(IGBReg.ICR)
        regs.write32(IGBReg.EICR, 0xFFFF_FFFF)
        _ = regs.read32(IGBReg.EICR)
        for e in events { e.drain() }
        let queueMask = UInt32((1 << count) - 1) & ~1
        regs.write32(IGBReg.EIAC, queueMask)
        regs.write32(IGBReg.EIAM, queueMask)
        regs.write32(IGBReg.IMS, ICR.LSC)
        regs.write32(IGBReg.EIMS, UInt32((1 << count) - 1))
    }

    /// The vector that serves hardware queue `q`.
    func vector(forHardwareQueue q: Int) -> Int {
        guard let s = interrupts, s.queueVectors > 0 else { return 0 }
        return 1 + q % s.queueVectors
    }

    /// §8.8.17: routes a ring's receive queue (and transmit queue 0 with the default queue) to its vector.
    func mapQueueInterrupt(slot: Int) {
        guard interrupts != nil, !removed else { return }
        let q = rx[slot].hardwareQueue
        let entry = (UInt32(vector(forHardwareQueue: q)) | IVAR.VALID)
        let register = IGBReg.IVAR(q % 8)
        var ivar = regs.read32(register)
        let shift = q < 8 ? IVAR.RX_LOW_SHIFT : IVAR.RX_HIGH_SHIFT
        ivar = ivar & ~(0xFF << shift) | entry << shift
        if q == 0 { ivar = ivar & ~(0xFF << IVAR.TX_LOW_SHIFT) | entry << IVAR.TX_LOW_SHIFT }
        regs.write32(register, ivar)
    }

    /// Masks every vector and gives the interrupts back to the function.
    func tearDownInterrupts() {
        guard interrupts != nil else { return }
        if !removed {
            regs.write32(IGBReg.EIMC, 0xFFFF_FFFF)
            regs.write32(IGBReg.IMC, 0xFFFF_FFFF)
            regs.write32(IGBReg.GPIE, 0)
        }
        try? function.disableInterrupts()
        interrupts = nil
    }

    /// True when MSI-X vectors are set up (`useInterrupts` and a function with vectors).
    public var usesInterrupts: Bool { interrupts != nil }

    /// The eventfds of the vectors in use: index 0 is link/other causes, then one per queue vector.
    public var interruptEvents: [InterruptEvent] { interrupts?.events ?? [] }

    /// The vector (index into `interruptEvents`) of an NDIS queue's ring, if interrupts are on.
    public func interruptVector(for queue: ReceiveQueueID) -> Int? {
        guard interrupts != nil else { return nil }
        for slot in 0..<Self.ringSlots where rx[slot].active && rx[slot].queueID == queue {
            return vector(forHardwareQueue: rx[slot].hardwareQueue)
        }
        return nil
    }

    /// Sleeps until a vector fires or `timeoutMilliseconds` pass, then re-arms the vectors that
    /// fired (EIMS). Returns false on timeout or without interrupts.
    public func waitForInterrupt(timeoutMilliseconds: Int32) -> Bool {
        guard let s = interrupts, !removed else { return false }
        var fds = s.events.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        var r: Int32
        repeat { r = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds) } while r < 0 && errno == EINTR
        guard r > 0 else { return false }
        var fired: UInt32 = 0
        for (i, fd) in fds.enumerated() where fd.revents & Int16(POLLIN) != 0 {
            s.events[i].drain()
            fired |= 1 << UInt32(i)
        }
        if fired & 1 != 0 { watchdog() }
        regs.write32(IGBReg.EIMS, fired)
        return true
    }
}

/// Runs an adapter's datapath on the calling thread, switching between polling and sleeping by
/// rate (as ixy does): while frames flow it polls; after `idlePollsBeforeSleep` empty polls it
/// sleeps on the queue interrupts (or, without interrupts, yields the CPU briefly).
public final class IGBDatapathLoop<F: PCIFunction> {
    public let adapter: Adapter
    public let miniport: IGBMiniport<F>
    public var idlePollsBeforeSleep: Int
    public var sleepTimeoutMilliseconds: Int32
    public var budget: Int
    /// Poll calls, calls that found work, sleeps, and sleeps ended by an interrupt.
    public private(set) var polls = 0, busyPolls = 0, sleeps = 0, wakeups = 0

    public init(adapter: Adapter, miniport: IGBMiniport<F>, idlePollsBeforeSleep: Int = 64,
                sleepTimeoutMilliseconds: Int32 = 10, budget: Int = 64) {
        self.adapter = adapter
        self.miniport = miniport
        self.idlePollsBeforeSleep = idlePollsBeforeSleep
        self.sleepTimeoutMilliseconds = sleepTimeoutMilliseconds
        self.budget = budget
    }

    /// Pins the calling thread to `cpus` (a queue's processor affinity).
    /// - Returns: false if the kernel refused (for example a CPU that does not exist).
    @discardableResult
    public static func pinCurrentThread(to cpus: Set<Int>) -> Bool {
        var set = cpu_set_t()
        let bits = MemoryLayout<cpu_set_t>.size * 8
        withUnsafeMutableBytes(of: &set) { raw in
            for cpu in cpus where cpu >= 0 && cpu < bits {
                raw[cpu / 8] |= UInt8(1 << (cpu % 8))
            }
        }
        // glibc declares sched_setaffinity only under _GNU_SOURCE, which Swift's Glibc module does
        // not define: look the symbol up instead.
        typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_setaffinity") else { return false }
        let setAffinity = unsafeBitCast(symbol, to: SetAffinity.self)
        return withUnsafeBytes(of: &set) { setAffinity(0, MemoryLayout<cpu_set_t>.size, $0.baseAddress!) } == 0
    }

    /// Runs until `stop` returns true (checked between polls).
    public func run(until stop: () -> Bool) {
        var idle = 0
        while !stop() {
            let n = adapter.poll(budget: budget)
            polls &+= 1
            if n > 0 {
                busyPolls &+= 1
                idle = 0
                continue
            }
            idle &+= 1
            guard idle >= idlePollsBeforeSleep else { continue }
            idle = 0
            sleeps &+= 1
            if miniport.usesInterrupts {
                if miniport.waitForInterrupt(timeoutMilliseconds: sleepTimeoutMilliseconds) { wakeups &+= 1 }
            } else {
                usleep(50)
            }
        }
    }
}
