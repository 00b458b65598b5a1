import ArgumentParser
import DeviceAccess
import Foundation
import PCI
import VFIO

/// `vfio-smoke`: open an igb through the VFIO module, read STATUS and the MAC, map DMA memory,
/// close, and prove that nothing leaked. Writes DIR/vfio-smoke.json; exits 1 on any failure.
struct VFIOSmoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfio-smoke",
        abstract: "Open a NIC through VFIO, read STATUS and RAL0/RAH0, map 2 MiB of DMA memory, close, check for leaks."
    )

    @Option(help: "PCI address of a function bound to vfio-pci (0000:03:00.0 or 03:00.0).")
    var device: String

    @Option(help: "Directory the result file vfio-smoke.json is written to.")
    var out: String

    @Option(help: "MAC address the NIC should report in RAL0/RAH0 (aa:bb:cc:dd:ee:ff); not checked if absent.")
    var mac: String?

    @Flag(help: "Skip VFIO_DEVICE_RESET.")
    var noReset = false

    /// igb register offsets (82576 datasheet section 8.2 STATUS, 8.10 RAL/RAH).
    enum IGB {
        static let status = 0x0008
        static let ral0 = 0x5400
        static let rah0 = 0x5404
        /// RAH.AV: the address is valid.
        static let rahAddressValid: UInt32 = 1 << 31
    }

    struct Result: Encodable {
        var ok = false
        var device = ""
        var errors: [String] = []
        var steps: [String] = []
        var identity: [String: String] = [:]
        var supportsReset: Bool?
        var resetMilliseconds: Double?
        var command: String?
        var status: String?
        var ral0: String?
        var rah0: String?
        var mac: String?
        var msixVectors: Int?
        var msixEnabled: Int?
        var iovaRanges: [String] = []
        var dma: [String: String] = [:]
        var dmaMapMilliseconds: Double?
        var resourcesOpen: String?
        var resourcesAfterClose: String?
        var liveDMARegionsAfterClose: Int?
        var fdsBefore = 0
        var fdsAfter = 0
        var mappingsBefore = 0
        var mappingsAfter = 0
    }

    func run() throws {
        var result = Result(device: device)
        result.fdsBefore = ProcessResources.openFileDescriptorCount()
        result.mappingsBefore = ProcessResources.mappingCount()
        do {
            try smoke(&result)
        } catch {
            result.errors.append(String(describing: error))
        }
        result.fdsAfter = ProcessResources.openFileDescriptorCount()
        result.mappingsAfter = ProcessResources.mappingCount()
        if result.fdsAfter != result.fdsBefore {
            result.errors.append("file descriptors leaked: \(result.fdsBefore) before, \(result.fdsAfter) after close")
        }
        result.ok = result.errors.isEmpty
        try write(result)
        print(result.ok ? "vfio-smoke: ok" : "vfio-smoke: FAILED\n" + result.errors.map { "  " + $0 }.joined(separator: "\n"))
        if !result.ok { throw ExitCode(1) }
    }

    private func smoke(_ result: inout Result) throws {
        let device = try VFIODevice.open(self.device)
        result.steps.append("opened")
        let id = device.identity
        result.identity = ["vendor": hex(id.vendorID), "device": hex(id.deviceID),
                           "subsystemVendor": hex(id.subsystemVendorID), "subsystem": hex(id.subsystemID), "revision": hex(id.revision)]
        result.iovaRanges = device.container.iovaRanges.map(\.description)
        result.supportsReset = device.supportsReset
        result.msixVectors = device.msixVectorCount

        if device.supportsReset && !noReset {
            let t = ContinuousClock.now
            try device.reset()
            result.resetMilliseconds = milliseconds(ContinuousClock.now - t)
            result.steps.append("reset")
        }

        // A reset clears the Command register, so bus mastering is enabled after it.
        try device.enableBusMaster()
        let command = try device.readConfig16(0x04)
        result.command = hex(command)
        if command & 0x0006 != 0x0006 { result.errors.append("Command register \(hex(command)): memory space or bus master did not stick") }
        result.steps.append("bus master")

        let registers = try device.registers(bar: 0)
        let status = registers.read32(IGB.status)
        let ral = registers.read32(IGB.ral0)
        let rah = registers.read32(IGB.rah0)
        result.status = hex(status)
        result.ral0 = hex(ral)
        result.rah0 = hex(rah)
        if status == 0xFFFF_FFFF { result.errors.append("STATUS reads all ones: the device is not answering") }
        let bytes = [ral, ral >> 8, ral >> 16, ral >> 24, rah, rah >> 8].map { UInt8(truncatingIfNeeded: $0) }
        let macText = bytes.map { hex($0) }.joined(separator: ":")
        result.mac = macText
        if rah & IGB.rahAddressValid == 0 { result.errors.append("RAH0.AV is clear: no MAC address loaded") }
        if let mac, mac.lowercased() != macText { result.errors.append("MAC \(macText) in RAL0/RAH0, expected \(mac.lowercased())") }
        result.steps.append("registers")

        if device.msixVectorCount > 0 {
            let events = try device.enableMSIX(count: min(2, device.msixVectorCount))
            result.msixEnabled = events.count
            try device.disableInterrupts()
            result.steps.append("msix")
        }

        let t = ContinuousClock.now
        let region = try device.dmaAllocator.allocateDMA(length: 2 << 20, contiguous: true)
        result.dmaMapMilliseconds = milliseconds(ContinuousClock.now - t)
        result.dma = ["length": String(region.length), "pageSize": String(region.pageSize),
                      "iova": "0x" + String(region.segments[0].iova, radix: 16), "segments": String(region.segments.count)]
        // Safety: the region is 2 MiB of memory we own until freeDMA/close.
        region.unsafeBaseAddress.storeBytes(of: 0x5AA5_1234 as UInt32, toByteOffset: region.length - 4, as: UInt32.self)
        if region.unsafeBaseAddress.load(fromByteOffset: region.length - 4, as: UInt32.self) != 0x5AA5_1234 {
            result.errors.append("DMA memory did not read back what was written")
        }
        if !region.isContiguous { result.errors.append("a contiguous DMA region came back in \(region.segments.count) segments") }
        result.steps.append("dma")

        result.resourcesOpen = device.openResources.description
        if let error = device.close() { result.errors.append("close: \(error)") }
        result.resourcesAfterClose = device.openResources.description
        result.liveDMARegionsAfterClose = device.dmaAllocator.liveRegionCount
        if device.openResources != .none { result.errors.append("still held after close: \(device.openResources)") }
        if device.dmaAllocator.liveRegionCount != 0 { result.errors.append("live DMA regions after close: \(device.dmaAllocator.liveRegionCount)") }
        result.steps.append("closed")
    }

    private func write(_ result: Result) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: URL(fileURLWithPath: out + "/vfio-smoke.json"))
    }

    private func hex<T: FixedWidthInteger>(_ value: T) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, MemoryLayout<T>.size * 2 - digits.count)) + digits
    }

    private func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}
