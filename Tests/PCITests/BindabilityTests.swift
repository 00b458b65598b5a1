import Testing
import PCI

@Suite("Bindability")
struct BindabilityTests {
    let sysfs = PCISysfs(paths: Fixture.paths("igb-host"))

    func verdict(_ address: String, _ sysfs: PCISysfs? = nil) throws -> Bindability {
        let s = sysfs ?? self.sysfs
        return s.bindability(of: try s.function(Fixture.address(address)))
    }

    @Test func aFunctionBoundToVFIOPCIIsReady() throws {
        #expect(try verdict("03:00.1") == .boundToVFIO)
        #expect(Bindability.boundToVFIO.isBindable)
    }

    @Test func aFunctionWithNoDriverCanBeBound() throws {
        #expect(try verdict("04:00.0") == .unbound)
        #expect(Bindability.unbound.summary == "yes")
    }

    @Test func aFunctionWhoseInterfaceIsUpIsRefusedNamingTheInterface() throws {
        let v = try verdict("03:00.0")
        #expect(v == .interfaceUp(driver: "igb", interfaces: ["enp3s0f0"]))
        #expect(!v.isBindable)
        #expect(v.summary == "no: enp3s0f0 up (igb)")
        #expect(v.advice.contains("--force"))
    }

    @Test func aFunctionBoundToAnotherDriverWithItsInterfaceDownCanBeTakenOver() throws {
        #expect(try verdict("05:00.0") == .boundToOtherDriver("e1000e"))
        #expect(Bindability.boundToOtherDriver("e1000e").summary == "yes (from e1000e)")
    }

    @Test func aGroupSharedWithAnotherDriverNamesEachOffender() throws {
        let v = try verdict("06:00.0")
        #expect(v == .groupNotViable(group: 9, offenders: [GroupMember(address: Fixture.address("06:00.1"), driver: "snd_hda_intel")]))
        #expect(v.summary == "no: group 9 shared with 0000:06:00.1 (snd_hda_intel)")
    }

    @Test func aNonNetworkFunctionIsNotBindable() throws {
        #expect(try verdict("00:00.0") == .notNetwork(classCode: 0x060000))
        #expect(Bindability.notNetwork(classCode: 0x060000).summary == "no: not network (class 0x060000)")
    }

    @Test func withoutAnIOMMUGroupTheVerdictNamesTheKernelParameter() throws {
        let v = try verdict("00:03.0", PCISysfs(paths: Fixture.paths("no-iommu")))
        #expect(v == .noIOMMUGroup)
        #expect(v.summary == "no: IOMMU off")
        #expect(v.advice.contains("intel_iommu=on") && v.advice.contains("amd_iommu=on"))
    }
}

@Suite struct BindAdviceTests {
    func info(_ address: String) throws -> PCIDeviceInfo {
        try Fixture.discovery("storage-host").function(Fixture.address(address))
    }

    @Test func bindingIsAdvisedOnlyForAFunctionAMiniportDrives() throws {
        let igb = try info("0000:03:00.0")
        #expect(igb.advice == "bind it with udev/miniport-bind")
        let realtek = try info("0000:02:00.0")
        #expect(realtek.bindability == .boundToOtherDriver("r8169"))
        #expect(realtek.advice == "no miniport in this build drives 10ec:8168: leave it with its driver")
        #expect(!realtek.advice.contains("miniport-bind"))
    }

    @Test func aDiskIsNeverAdvisedToBeBound() throws {
        for address in ["0000:01:00.0", "0000:00:1f.2"] {
            let disk = try info(address)
            #expect(!disk.isNetwork)
            #expect(disk.advice == "miniport drives network functions only")
        }
    }

    @Test func aPlannedMiniportIsNotAdvisedAsIfItWereHere() throws {
        let e1000e = try Fixture.discovery("igb-host").function(Fixture.address("0000:05:00.0"))
        #expect(e1000e.advice.contains("planned, not in this build"))
    }
}
