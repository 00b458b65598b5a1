import DeviceAccess
import ModelKit

/// Register access to the model's BAR 4, at each field's own width (§4.1.3.1).
public struct VirtioNetModelRegisters: RegisterAccess {
    @usableFromInline unowned(unsafe) let model: VirtioNetModel

    init(model: VirtioNetModel) { self.model = model }

    public func read32(_ offset: Int) -> UInt32 { model.read(offset, width: 4) }
    public func write32(_ offset: Int, _ value: UInt32) { model.write(offset, width: 4, value) }
    public func read16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: model.read(offset, width: 2)) }
    public func write16(_ offset: Int, _ value: UInt16) { model.write(offset, width: 2, UInt32(value)) }
    public func read8(_ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: model.read(offset, width: 1)) }
    public func write8(_ offset: Int, _ value: UInt8) { model.write(offset, width: 1, UInt32(value)) }
}

/// The virtio-net model as a PCI function: 1af4:1041 revision 1, class 02 00 00, an MSI-X
/// capability and the four virtio vendor capabilities (common, notify, ISR, device; §4.1.4).
public final class VirtioNetModelFunction: PCIFunction, @unchecked Sendable {
    public typealias Registers = VirtioNetModelRegisters

    public let model: VirtioNetModel
    public let name: String
    public let identity = PCIIdentity(vendorID: 0x1AF4, deviceID: 0x1041, subsystemVendorID: 0x1AF4, subsystemID: 0x1100, revision: 0x01)

    public init(model: VirtioNetModel) {
        self.model = model
        name = "virtio-net-model[\(model.configuration.permanentAddress.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":"))]"
    }

    public func registers(bar index: Int) throws -> VirtioNetModelRegisters {
        guard index == VirtioModelLayout.bar else { throw ModelError.noSuchBAR(index) }
        return VirtioNetModelRegisters(model: model)
    }

    /// Config space bytes: header, then MSI-X at 0x40 and the vendor capabilities from 0x50.
    lazy var space: [UInt8] = {
        var b = [UInt8](repeating: 0, count: 256)
        func put16(_ o: Int, _ v: UInt16) { b[o] = UInt8(v & 0xFF); b[o + 1] = UInt8(v >> 8) }
        func put32(_ o: Int, _ v: UInt32) { put16(o, UInt16(v & 0xFFFF)); put16(o + 2, UInt16(v >> 16)) }
        put16(0x00, identity.vendorID); put16(0x02, identity.deviceID)
        put16(0x06, 0x0010)                        // capability list
        b[0x08] = identity.revision
        b[0x0A] = 0x00; b[0x0B] = 0x02             // class 02 (network), subclass 00
        put16(0x2C, identity.subsystemVendorID); put16(0x2E, identity.subsystemID)
        b[0x34] = 0x40
        // MSI-X: table in BAR 1 at 0, PBA at 0x800 (as QEMU); the model routes vectors itself.
        b[0x40] = 0x11; b[0x41] = 0x50
        put16(0x42, UInt16(model.configuration.msixVectors - 1))
        put32(0x44, 0x0000_0001); put32(0x48, 0x0000_0801)
        // struct virtio_pci_cap: vndr 0x09, next, len, cfg_type, bar, id, pad, offset, length.
        typealias L = VirtioModelLayout
        let caps: [(at: Int, type: UInt8, offset: Int, length: Int, len: UInt8)] = [
            (0x50, 1, L.common, L.commonLength, 16), (0x60, 3, L.isr, 1, 16), (0x70, 4, L.device, 0x100, 16),
            (0x80, 2, L.notify, L.notifyMultiplier * 16, 20),
        ]
        for (i, c) in caps.enumerated() {
            b[c.at] = 0x09
            b[c.at + 1] = i + 1 < caps.count ? UInt8(caps[i + 1].at) : 0
            b[c.at + 2] = c.len
            b[c.at + 3] = c.type
            b[c.at + 4] = UInt8(L.bar)
            put32(c.at + 8, UInt32(c.offset)); put32(c.at + 12, UInt32(c.length))
        }
        put32(0x80 + 16, UInt32(L.notifyMultiplier))   // notify_off_multiplier
        return b
    }()

    func config16(_ offset: Int) -> UInt16 {
        guard offset >= 0, offset + 1 < 256 else { return 0 }
        switch offset {
        case 0x04: return model.pciCommand
        case 0x42: return UInt16(model.configuration.msixVectors - 1) | (model.msixEnabled ? 0x8000 : 0)
        default: return UInt16(space[offset]) | UInt16(space[offset + 1]) << 8
        }
    }

    public func readConfig16(_ offset: Int) throws -> UInt16 {
        if model.isSurpriseRemoved { return 0xFFFF }
        return config16(offset & ~1)
    }

    public func readConfig32(_ offset: Int) throws -> UInt32 {
        if model.isSurpriseRemoved { return 0xFFFF_FFFF }
        return UInt32(config16(offset & ~3)) | UInt32(config16((offset & ~3) + 2)) << 16
    }

    public func writeConfig16(_ offset: Int, _ value: UInt16) throws {
        guard !model.isSurpriseRemoved else { return }
        // MEMORY (bit 1), BUS_MASTER (bit 2), INTX_DISABLE (bit 10) are writable.
        if offset == 0x04 { model.pciCommand = value & 0x0406 }
    }

    public func enableBusMaster() throws { model.pciCommand |= 0x0006 }

    /// Turns bus mastering off (what a driver does before freeing DMA memory at halt).
    public func disableBusMaster() { model.pciCommand &= ~0x0004 }

    public func reset() throws { model.functionLevelReset() }

    public var dma: any DMAAllocator { model.iommu }

    public var msixVectorCount: Int { model.configuration.msixVectors }

    public func enableMSIX(count: Int) throws -> [InterruptEvent] {
        let events = try makeInterruptEvents(count: count, available: msixVectorCount)
        try disableInterrupts()
        model.vectors = events
        model.msixEnabled = true
        return events
    }

    public func disableInterrupts() throws {
        for v in model.vectors { v.close() }
        model.vectors = []
        model.msixEnabled = false
    }

    public var isSurpriseRemoved: Bool { model.isSurpriseRemoved }
}
