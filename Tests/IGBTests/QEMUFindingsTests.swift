import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

/// What running the miniport on QEMU's igb through vfio revealed (Docs/IGB.md "Verified on QEMU"),
/// pinned on the model so that it stays fixed: each finding in both fidelities.
@Suite("IGB findings from QEMU through vfio, on the model")
struct QEMUFindingsTests {
    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func bringUpSucceedsWhetherOrNotTheNVMReportsAutoReadDone(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        // QEMU's EECD never has AUTO_RD; the address in RAL0/RAH0 decides.
        #expect(bench.miniport.eepromAutoReadDone == (fidelity == .datasheet))
        #expect(bench.miniport.linkState.up)
        #expect(bench.address == Bench.modelAddress)
        bench.haltAndCheck()
    }

    @Test(arguments: [IGBModel.Fidelity.qemu, .datasheet])
    func aShortFrameIsPaddedByTCTLPSPOnlyWhereTheDeviceHonoursIt(fidelity: IGBModel.Fidelity) throws {
        let bench = try Bench(fidelity: fidelity)
        // A 42-byte ARP-sized frame: the driver leaves padding to TCTL.PSP, as Intel's drivers do.
        let short = Array(Frames.ethernet(to: MACAddress(0x02, 0, 0, 0, 0, 0x10), type: 0x0806, payload: Frames.payload(28)).prefix(42))
        try TransmitTests.send(bench, [short])
        bench.pump()
        let wire = bench.model.takeTransmitted()
        let expected = fidelity == .qemu ? short : short + [UInt8](repeating: 0, count: 18)
        #expect(wire == [expected])
        #expect(bench.recorder.sendCompletions == [.success])
        bench.haltAndCheck()
    }
}
