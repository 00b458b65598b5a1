import DeviceAccess
import Glibc
import IGBModel
import Testing

@Suite("ModelIOMMU: IOVAs, segments, faults")
struct IOMMUTests {
    @Test func iovasAreNeverTheCPUAddressAndRegionsArePageAligned() throws {
        let iommu = ModelIOMMU()
        let r = try iommu.allocateDMA(length: 100, contiguous: true)
        #expect(r.length == 4096)
        #expect(r.segments.count == 1)
        #expect(UInt(bitPattern: r.unsafeBaseAddress) % 4096 == 0)
        #expect(r.segments[0].iova != UInt64(UInt(bitPattern: r.unsafeBaseAddress)))
        #expect(iommu.liveRegionCount == 1)
        #expect(iommu.liveBytes == 4096)
        try iommu.freeDMA(r)
        #expect(iommu.liveRegionCount == 0)
        #expect(throws: IGBModelError.unknownRegion(id: r.id)) { try iommu.freeDMA(r) }
    }

    @Test func nonContiguousMemoryComesInTwoSegmentsAndHugePagesIn2MiB() throws {
        let iommu = ModelIOMMU()
        let r = try iommu.allocateDMA(length: 5 * 4096, contiguous: false)
        #expect(r.segments.count == 2)
        #expect(r.segments.map(\.length).reduce(0, +) == r.length)
        #expect(r.segments[1].iova != r.segments[0].iova + UInt64(r.segments[0].length), "the segments are not adjacent")
        #expect(r.iova(atOffset: r.segments[0].length) == r.segments[1].iova)
        let huge = ModelIOMMU(granularity: .huge2M)
        let big = try huge.allocateDMA(length: 10, contiguous: true)
        #expect(big.length == 2 << 20)
        #expect(big.pageSize == 2 << 20)
    }

    @Test func aDescriptorHoldingAVirtualAddressFaultsAndIsDropped() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        h.enableReceive()
        // A buggy driver writes the CPU address instead of the IOVA.
        rx.ring.unsafeBaseAddress.storeBytes(of: UInt64(UInt(bitPattern: rx.buffers.unsafeBaseAddress)), as: UInt64.self)
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.model.faults.count == 1)
        let fault = try #require(h.model.faults.first)
        #expect(fault.kind == .unmapped)
        #expect(fault.isWrite)
        #expect(fault.activity == .receivePacketBuffer(queue: 0))
        #expect(fault.iova == UInt64(UInt(bitPattern: rx.buffers.unsafeBaseAddress)))
    }

    @Test func memoryFreedWhileTheDeviceUsesItFaults() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        h.enableReceive()
        try h.iommu.freeDMA(rx.ring)
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.model.faults.map(\.activity) == [.receiveDescriptorFetch(queue: 0)])
    }

    @Test func writesThatRunPastTheEndOfARegionFault() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(bufferKiB: 2)
        h.enableReceive()
        // Point descriptor 0 at the last 100 bytes of the buffer region: a 2 KiB buffer overruns it.
        let nearEnd = rx.buffers.iova(atOffset: rx.buffers.length - 100)!
        rx.ring.unsafeBaseAddress.storeBytes(of: nearEnd, as: UInt64.self)
        h.model.inject(Frames.ethernet(to: Harness.mac, payload: Array(repeating: 1, count: 500)))
        h.model.step()
        #expect(h.model.faults.first?.kind == .unmapped)
    }

    @Test func noDMAHappensWhileBusMasteringIsOff() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        let tx = try h.setupTX()
        h.enableReceive()
        h.function.disableBusMaster()
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.completed(rx) == 0)
        #expect(h.model.framesWaiting == 1, "the frame waits in the packet buffer")
        tx.data(0, Frames.ipv4(to: Frames.peer))
        h.write(R.TDT(0), 1)
        h.model.step()
        #expect(h.model.takeTransmitted().isEmpty)
        #expect(h.model.faults.map(\.kind) == [.busMasterDisabled])
        try h.function.enableBusMaster()
        h.model.step()
        #expect(h.completed(rx) == 1)
    }
}

@Suite("Fault hooks: injected DMA fault, corrupted length, stuck queues")
struct FaultHookTests {
    func ready() throws -> (Harness, RxRing) {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        h.enableReceive()
        return (h, rx)
    }

    @Test func anInjectedDMAFaultHitsTheNextAccessOnly() throws {
        let (h, rx) = try ready()
        h.model.injectDMAFault()
        h.model.inject(Frames.ipv4())
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.model.faults.map(\.kind) == [.injected])
        #expect(h.completed(rx) == 1)
    }

    @Test func aCorruptedWriteBackLengthIsReportedOnce() throws {
        let (h, rx) = try ready()
        h.model.corruptNextWriteBackLength(queue: 0, length: 4000)
        h.model.inject(Frames.ipv4())
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(rx.writeBack(0).length == 4000)
        #expect(rx.writeBack(1).length == 60)
    }

    @Test func aStuckReceiveQueueNeverWritesBack() throws {
        let (h, rx) = try ready()
        h.model.setQueueStuck(receive: 0, true)
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.completed(rx) == 0)
        #expect(h.read(R.RDH(0)) == 0)
        h.model.setQueueStuck(receive: 0, false)
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.completed(rx) == 1)
    }

    @Test func aStuckTransmitQueueNeverAdvances() throws {
        let h = try Harness()
        try h.linkUp()
        let tx = try h.setupTX()
        h.model.setQueueStuck(transmit: 0, true)
        tx.data(0, Frames.ipv4(to: Frames.peer))
        h.write(R.TDT(0), 1)
        h.model.step()
        #expect(h.read(R.TDH(0)) == 0)
        h.model.setQueueStuck(transmit: 0, false)
        h.model.step()
        #expect(h.read(R.TDH(0)) == 1)
    }
}

@Suite("Interrupts: MSI-X through IVAR, auto-clear, throttling")
struct InterruptTests {
    @Test func aReceiveWriteBackSignalsTheIVARVectorsEventfd() throws {
        let h = try Harness()
        let events = try h.function.enableMSIX(count: 3)
        defer { try? h.function.disableInterrupts() }
        h.write(R.GPIE, R.GPIE_MSIX_MODE)
        h.write(R.IVAR(0), 0x80 | 1)            // RX queue 0 → vector 1
        h.write(R.IVAR_MISC, (0x80 | 2) << 8)   // other causes → vector 2
        h.write(R.EIAC, 1 << 1)
        h.write(R.EIMS, 1 << 1 | 1 << 2)
        h.write(R.IMS, R.ICR_LSC)
        try h.linkUp()
        #expect(events[2].wait(timeoutMilliseconds: 0), "link change on the other-cause vector")
        let rx = try h.setupRX()
        h.enableReceive()
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.completed(rx) == 1)
        #expect(events[1].wait(timeoutMilliseconds: 0))
        #expect(!events[0].wait(timeoutMilliseconds: 0))
        #expect(h.read(R.EICR) & (1 << 1) == 0, "EIAC cleared the cause after the message")
        #expect(h.model.interruptCounts[1] == 1)
    }

    @Test func eitrThrottlesAVectorInModelTime() throws {
        let h = try Harness()
        let events = try h.function.enableMSIX(count: 2)
        defer { try? h.function.disableInterrupts() }
        try h.linkUp()
        h.write(R.GPIE, R.GPIE_MSIX_MODE)
        h.write(R.IVAR(0), 0x80 | 1)
        h.write(R.EIAC, 1 << 1)
        h.write(R.EIMS, 1 << 1)
        h.write(R.EITR(1), 100 << 2)   // 100 µs
        _ = try h.setupRX()
        h.enableReceive()
        h.model.inject(Frames.ipv4())
        h.model.step()
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.model.interruptCounts[1] == 1)
        h.model.advance(nanoseconds: 50_000)
        #expect(h.model.interruptCounts[1] == 1)
        h.model.advance(nanoseconds: 50_000)
        #expect(h.model.interruptCounts[1] == 2)
        #expect(events[1].drain() == 2)
    }

    @Test func eiamAutoMasksAVectorOnlyInDatasheetMode() throws {
        for fidelity in [IGBModel.Fidelity.datasheet, .qemu] {
            let h = try Harness(fidelity: fidelity)
            h.write(R.GPIE, R.GPIE_MSIX_MODE | R.GPIE_EIAME)
            h.write(R.EIAM, 1 << 4)
            h.write(R.EIMS, 1 << 4)
            h.write(R.EICS, 1 << 4)
            #expect(h.model.interruptCounts[4] == 1)
            #expect(h.read(R.EIMS) & (1 << 4) == (fidelity == .qemu ? 1 << 4 : 0))
        }
    }

    @Test func maskedCausesStayInEICRUntilUnmasked() throws {
        let h = try Harness()
        try h.linkUp()
        h.write(R.GPIE, R.GPIE_MSIX_MODE)
        h.write(R.EICS, 1 << 3)
        #expect(h.model.interruptCounts[3] == 0)
        h.write(R.EIMS, 1 << 3)
        #expect(h.model.interruptCounts[3] == 1)
        #expect(h.read(R.EICR) == 1 << 3)
        #expect(h.read(R.EICR) == 0, "EICR is clear-on-read")
    }
}

@Suite("Time: free-running mode and the benchmark hook")
struct TimeModeTests {
    @Test func theFreeRunningModelReceivesWithoutStep() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        h.enableReceive()
        h.model.start()
        defer { h.model.stop() }
        h.model.inject(Frames.ipv4())
        var spins = 0
        while !rx.writeBack(0).done && spins < 2000 {
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
            spins += 1
        }
        #expect(rx.writeBack(0).done)
        #expect(h.read(R.RDH(0)) == 1)
    }

    @Test func theFreeRunningModelBringsTheLinkUpInWallTime() throws {
        let function = try IGBModel.makeFunction(configuration: .init(linkUpDelayNanoseconds: 5_000_000))
        let regs = try function.registers(bar: 0)
        function.model.start()
        defer { function.model.stop() }
        regs.write32(R.CTRL, regs.read32(R.CTRL) | R.CTRL_SLU)
        var spins = 0
        while regs.read32(R.STATUS) & R.STATUS_LU == 0 && spins < 2000 {
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
            spins += 1
        }
        #expect(regs.read32(R.STATUS) & R.STATUS_LU != 0)
    }

    @Test func theBenchmarkHookFillsEveryFreeDescriptor() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX(count: 16)
        h.enableReceive()
        let frame = Frames.ipv4()
        h.model.setBenchmarkReceive(frame: frame, queue: 0)
        h.model.step()
        #expect(h.completed(rx) == 15)
        #expect(rx.packet(7, length: frame.count) == frame)
        #expect(h.read(R.RDH(0)) == 15)
        #expect(h.read(R.GPRC) == 15)
    }
}
