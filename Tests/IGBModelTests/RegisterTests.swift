import DeviceAccess
import IGBModel
import Testing

@Suite("Registers: reset values, self-clearing, clear-on-read, PHY and link")
struct RegisterTests {
    @Test func theFunctionIdentifiesAsAn82576() throws {
        let h = try Harness()
        #expect(try h.function.readConfig16(0) == 0x8086)
        #expect(try h.function.readConfig16(2) == 0x10C9)
        #expect(try h.function.readConfig32(0) == 0x10C9_8086)
        #expect(try h.function.readConfig16(0x0A) == 0x0200)
        #expect(h.function.msixVectorCount == 10)
        #expect(try h.function.readConfig16(4) & 0x4 == 0, "bus mastering is off until the driver enables it")
        try h.function.enableBusMaster()
        #expect(try h.function.readConfig16(4) & 0x6 == 0x6)
    }

    @Test func thePermanentAddressIsInRAR0AndTheEEPROMAfterReset() throws {
        let h = try Harness(mac: [0x00, 0x1B, 0x21, 0xAA, 0xBB, 0xCC])
        #expect(h.read(R.RAL(0)) == 0xAA21_1B00)
        #expect(h.read(R.RAH(0)) == 0x8000_CCBB)
        #expect(h.read(R.EEC) & (1 << 9) != 0, "EEC.AUTO_RD")
        var words: [UInt16] = []
        for address in 0..<0x40 {
            h.write(R.EERD, UInt32(address) << 2 | 1)
            let v = h.read(R.EERD)
            #expect(v & 2 != 0, "EERD.DONE")
            words.append(UInt16(v >> 16))
        }
        #expect(Array(words[0..<3]) == [0x1B00, 0xAA21, 0xCCBB])
        #expect(words.reduce(UInt16(0), &+) == 0xBABA, "NVM checksum")
    }

    @Test func queueZeroIsEnabledAtResetAndTheOthersAreNot() throws {
        let h = try Harness()
        #expect(h.read(R.RXDCTL(0)) & R.QUEUE_ENABLE != 0)
        #expect(h.read(R.TXDCTL(0)) & R.QUEUE_ENABLE != 0)
        #expect(h.read(R.RXDCTL(1)) & R.QUEUE_ENABLE == 0)
        #expect(h.read(R.RLPML) == 0x2600)
    }

    @Test func ctrlRSTResetsRegistersAndClearsItself() throws {
        let h = try Harness()
        h.write(R.RCTL, R.RCTL_EN | R.RCTL_UPE)
        h.write(R.RAL(0), 0x1234_5678)
        h.write(R.CTRL, h.read(R.CTRL) | R.CTRL_RST)
        #expect(h.read(R.CTRL) & R.CTRL_RST == 0)
        #expect(h.read(R.RCTL) == 0)
        #expect(h.read(R.RAL(0)) == 0x1200_5452, "RAR0 reloaded from the EEPROM")
    }

    @Test func theQueueZeroToThreeAliasesReachTheSameRegisters() throws {
        let h = try Harness()
        h.write(0x2800 + 0x100 * 2 + 0x08, 4096)   // RDLEN(2) through the legacy alias
        #expect(h.read(R.RDLEN(2)) == 4096)
        h.write(R.TDLEN(3), 2048)
        #expect(h.read(0x3800 + 0x100 * 3 + 0x08) == 2048)
    }

    @Test func statisticsClearOnReadAndSixtyFourBitPairsClearOnTheHighHalf() throws {
        let h = try Harness()
        try h.linkUp()
        let rx = try h.setupRX()
        h.enableReceive()
        h.model.inject(Frames.ipv4())
        h.model.inject(Frames.ipv4())
        h.model.step()
        #expect(h.completed(rx) == 2)
        #expect(h.read(R.GPRC) == 2)
        #expect(h.read(R.GPRC) == 0)
        #expect(h.read(R.GORCL) == 128)
        #expect(h.read(R.GORCL) == 128, "reading the low half does not clear")
        #expect(h.read(R.GORCH) == 0)
        #expect(h.read(R.GORCL) == 0, "reading the high half cleared the pair")
    }

    @Test func unmodelledRegistersReadZeroIgnoreWritesAndAreCounted() throws {
        let h = try Harness()
        h.write(0x8000, 0xDEAD_BEEF)
        #expect(h.read(0x8000) == 0)
        #expect(h.model.unmodeledWrites == 1)
        #expect(h.model.unmodeledReads == 1)
        #expect(h.model.unmodeledOffsets[0x8000] == 2)
    }

    @Test func mdicReadsThePHYAtAddressOneAndFlagsOtherAddresses() throws {
        let h = try Harness()
        let id1 = h.mdicRead(2)
        #expect(id1 & (1 << 28) != 0, "MDIC.READY")
        #expect(id1 & 0xFFFF == 0x02A8)
        let bad = h.mdicRead(2, phy: 3)
        #expect(bad & (1 << 30) != 0, "MDIC.ERROR for a PHY address other than 1")
    }

    @Test func linkComesUpAfterAutonegotiationAndSLUInDatasheetMode() throws {
        let h = try Harness()
        try h.function.enableBusMaster()
        h.write(R.IMS, R.ICR_LSC)
        h.model.advance(nanoseconds: 600_000_000)
        #expect(h.read(R.STATUS) & R.STATUS_LU == 0, "the PHY has link but CTRL.SLU is clear")
        #expect(h.mdicRead(1) & 0x4 != 0, "PHY status reports link")
        h.write(R.CTRL, h.read(R.CTRL) | R.CTRL_SLU)
        #expect(h.read(R.STATUS) & R.STATUS_LU != 0)
        #expect(h.read(R.ICR) & R.ICR_LSC != 0)
        // Restarting autonegotiation takes the link down for the delay.
        h.restartAutonegotiation()
        #expect(h.read(R.STATUS) & R.STATUS_LU == 0)
        h.model.advance(nanoseconds: 499_000_000)
        #expect(h.read(R.STATUS) & R.STATUS_LU == 0)
        h.model.advance(nanoseconds: 1_000_000)
        #expect(h.read(R.STATUS) & R.STATUS_LU != 0)
    }

    @Test func linkNeedsAnAutonegotiationRestartInQEMUMode() throws {
        let h = try Harness(fidelity: .qemu)
        try h.function.enableBusMaster()
        h.write(R.CTRL, h.read(R.CTRL) | R.CTRL_SLU)
        h.model.advance(nanoseconds: 2_000_000_000)
        #expect(h.read(R.STATUS) & R.STATUS_LU == 0, "SLU alone does not bring the link up on QEMU")
        h.restartAutonegotiation()
        h.model.advance(nanoseconds: 500_000_000)
        #expect(h.read(R.STATUS) & R.STATUS_LU != 0)
        h.write(R.CTRL, h.read(R.CTRL) | R.CTRL_RST)
        #expect(h.read(R.STATUS) & R.STATUS_LU == 0, "a software reset takes the link down on QEMU")
    }

    @Test func pullingTheCableTakesTheLinkDown() throws {
        let h = try Harness()
        try h.linkUp()
        h.model.setCableConnected(false)
        #expect(h.read(R.STATUS) & R.STATUS_LU == 0)
        h.model.setCableConnected(true)
        h.model.advance(nanoseconds: 500_000_000)
        #expect(h.read(R.STATUS) & R.STATUS_LU != 0)
    }

    @Test func surpriseRemovalMakesEveryReadAllOnes() throws {
        let h = try Harness()
        h.model.surpriseRemove()
        #expect(h.read(R.STATUS) == 0xFFFF_FFFF)
        #expect(h.read(R.RAL(0)) == 0xFFFF_FFFF)
        h.write(R.RCTL, R.RCTL_EN)
        #expect(try h.function.readConfig16(0) == 0xFFFF)
        #expect(h.function.isSurpriseRemoved)
    }

    @Test func functionLevelResetRestoresDefaultsButKeepsConfigSpace() throws {
        let h = try Harness()
        try h.function.enableBusMaster()
        h.write(R.RCTL, R.RCTL_EN)
        try h.function.reset()
        #expect(h.read(R.RCTL) == 0)
        #expect(try h.function.readConfig16(4) & 0x4 != 0)
    }
}
