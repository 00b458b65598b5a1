@_exported import ModelKit
import DeviceAccess

/// Register access to the model's BAR0: each access is a call into the model.
///
/// Holds the model `unowned(unsafe)` so that register accesses do not retain or release; the
/// ``IGBModelFunction`` it came from keeps the model alive.
public struct IGBModelRegisters: RegisterAccess {
    @usableFromInline unowned(unsafe) let model: IGBModel

    init(model: IGBModel) { self.model = model }

    @inlinable
    public func read32(_ offset: Int) -> UInt32 { model.readRegister(offset) }

    @inlinable
    public func write32(_ offset: Int, _ value: UInt32) { model.writeRegister(offset, value) }
}

/// The model as a PCI function: what a miniport sees instead of a VFIO device.
///
/// Config space has the 82576's identity (8086:10C9, class 02 00 00), a command register whose
/// bus-master bit gates all DMA, and an MSI-X capability with 10 vectors. ``reset()`` is a
/// function-level reset with VFIO's semantics: device state is reset, config space (command
/// register, MSI-X routing) is restored.
public final class IGBModelFunction: PCIFunction, @unchecked Sendable {
    public typealias Registers = IGBModelRegisters

    public let model: IGBModel
    public let name: String
    public let identity = PCIIdentity(vendorID: 0x8086, deviceID: 0x10C9, subsystemVendorID: 0x8086, subsystemID: 0xA03C, revision: 0x01)

    public init(model: IGBModel) {
        self.model = model
        let mac = model.configuration.permanentAddress.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
        name = "igb-model[\(mac.joined(separator: ":"))]"
    }

    public func registers(bar index: Int) throws -> IGBModelRegisters {
        guard index == 0 else { throw IGBModelError.noSuchBAR(index) }
        return IGBModelRegisters(model: model)
    }

    /// Config space offsets (PCI 3.0 header, type 0, and the capability list).
    enum Config {
        static let command = 0x04
        static let capabilities = 0x34
        static let msix = 0x70
    }

    private func config16(_ offset: Int) -> UInt16 {
        switch offset {
        case 0x00: return identity.vendorID
        case 0x02: return identity.deviceID
        case Config.command: return model.pciCommand
        case 0x06: return 0x0010                            // capability list present
        case 0x08: return UInt16(identity.revision)         // revision, prog-if 0
        case 0x0A: return 0x0200                            // class 02 (network), subclass 00 (Ethernet)
        case 0x2C: return identity.subsystemVendorID
        case 0x2E: return identity.subsystemID
        case Config.capabilities: return UInt16(Config.msix)
        case Config.msix: return 0x0011                     // MSI-X capability, last in the list
        case Config.msix + 2: return UInt16(IGBModel.msixVectorCount - 1) | (model.msixEnabled ? 0x8000 : 0)
        case Config.msix + 4: return 0x0003                 // table in BAR3 at offset 0
        case Config.msix + 8: return 0x2003                 // PBA in BAR3 at 0x2000
        default: return 0
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
        let locked = model.lockIfThreaded()
        defer { model.unlock(locked) }
        if offset == Config.command {
            // MEMORY (bit 1), BUS_MASTER (bit 2), INTX_DISABLE (bit 10) are writable.
            model.pciCommand = value & 0x0406
        }
    }

    public func enableBusMaster() throws {
        let locked = model.lockIfThreaded()
        defer { model.unlock(locked) }
        model.pciCommand |= 0x0006
    }

    /// Turns bus mastering off (what a driver does before freeing DMA memory at halt).
    public func disableBusMaster() {
        let locked = model.lockIfThreaded()
        defer { model.unlock(locked) }
        model.pciCommand &= ~0x0004
    }

    public func reset() throws {
        model.functionLevelReset()
    }

    public var dma: any DMAAllocator { model.iommu }

    public var msixVectorCount: Int { IGBModel.msixVectorCount }

    public func enableMSIX(count: Int) throws -> [InterruptEvent] {
        let events = try makeInterruptEvents(count: count, available: IGBModel.msixVectorCount)
        try disableInterrupts()
        let locked = model.lockIfThreaded()
        defer { model.unlock(locked) }
        model.vectors = events
        model.msixEnabled = true
        return events
    }

    public func disableInterrupts() throws {
        let locked = model.lockIfThreaded()
        defer { model.unlock(locked) }
        for v in model.vectors { v.close() }
        model.vectors = []
        model.msixEnabled = false
    }

    /// True once the model was surprise-removed.
    public var isSurpriseRemoved: Bool { model.isSurpriseRemoved }
}

/// The 82576 model's errors are the model kit's (IOMMU, function scaffold).
public typealias IGBModelError = ModelError
