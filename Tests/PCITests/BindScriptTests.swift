import Foundation
import PCI
import Testing

/// `udev/miniport-bind` against fake sysfs trees (MINIPORT_SYSFS): what it refuses, and that a
/// refusal changes nothing. The refusals come before any write, so these run without root.
@Suite struct BindScriptTests {
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("udev/miniport-bind").path
    }

    func bind(_ args: [String], root: String) throws -> (status: Int32, stdout: String, stderr: String, state: String) {
        let state = NSTemporaryDirectory() + "miniport-bind-state-\(UUID().uuidString)"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.script] + args
        p.environment = ProcessInfo.processInfo.environment.merging([
            "MINIPORT_SYSFS": root + "/sys", "MINIPORT_MOUNTS": root + "/proc/self/mounts",
            "MINIPORT_PCI_IDS": Fixture.idsFile, "MINIPORT_STATE_DIR": state, "MINIPORT_DEV_VFIO": root + "/dev/vfio",
        ]) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self), state)
    }

    /// Expects a one-line refusal containing every text, and nothing written (no state, no override).
    func expectRefusal(_ address: String, as typed: String? = nil, root: String, containing texts: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try bind([typed ?? address], root: root)
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("miniport-bind: error: \(address) is not a network controller: it is a "), "\(r.stderr)", sourceLocation: sourceLocation)
        for t in texts { #expect(r.stderr.contains(t), "'\(t)' missing from: \(r.stderr)", sourceLocation: sourceLocation) }
        #expect(r.stderr.contains("--force"), sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: r.state), "a refusal records no binding", sourceLocation: sourceLocation)
        let override = try String(contentsOfFile: "\(root)/sys/bus/pci/devices/\(address)/driver_override", encoding: .utf8)
        #expect(override == "(null)\n", "driver_override untouched", sourceLocation: sourceLocation)
    }

    @Test func anNVMeDiskIsRefusedNamingTheDeviceItsDriverAndWhatIsMounted() throws {
        let root = try Fixture.copy("storage-host")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try expectRefusal("0000:01:00.0", root: root, containing: [
            "Non-Volatile memory controller (class 0x010802)", "144d:a808 Samsung Electronics Co Ltd (fixture) NVMe SSD Controller",
            "in use by the nvme driver", "nvme0n1p1 (mounted on /boot/efi)", "nvme0n1p2 (mounted on /)",
        ])
    }

    @Test func aSATAControllerIsRefusedNamingItsDisks() throws {
        let root = try Fixture.copy("storage-host")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try expectRefusal("0000:00:1f.2", as: "00:1f.2", root: root, containing: ["SATA controller (class 0x010601)", "in use by the ahci driver", "holding sda, sda1"])
    }

    @Test func aBridgeIsRefusedToo() throws {
        let root = try Fixture.copy("storage-host")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try expectRefusal("0000:00:00.0", root: root, containing: ["Host bridge (class 0x060000)", "bound to no driver"])
    }

    @Test func theRefusalComesBeforeAnyDeviceIsChanged() throws {
        // A NIC first, the disk second: the disk's refusal stops the run before the NIC is touched.
        let root = try Fixture.copy("storage-host")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = try bind(["0000:03:00.0", "0000:01:00.0"], root: root)
        #expect(r.status == 1)
        #expect(r.stderr.contains("0000:01:00.0 is not a network controller"), "\(r.stderr)")
        let override = try String(contentsOfFile: "\(root)/sys/bus/pci/devices/0000:03:00.0/driver_override", encoding: .utf8)
        #expect(override == "(null)\n")
    }

    @Test func aNetworkControllerPassesTheClassCheck() throws {
        // The 82576 without an IOMMU group: refused for that (a later check), not for its class.
        let root = try Fixture.copy("storage-host")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.removeItem(atPath: "\(root)/sys/bus/pci/devices/0000:03:00.0/iommu_group")
        let r = try bind(["0000:03:00.0"], root: root)
        #expect(r.status == 1)
        #expect(r.stderr.contains("has no IOMMU group"), "\(r.stderr)")
        #expect(!r.stderr.contains("not a network controller"))
    }
}
