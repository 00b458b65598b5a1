/// 32-bit register access to one BAR of a PCI function.
///
/// Miniports are generic over this type: on VFIO it is ``MMIORegion`` (a plain volatile load or
/// store after specialisation), on the hardware model it is a call into the model.
public protocol RegisterAccess {
    /// Reads the 32-bit register at `offset` bytes from the start of the BAR.
    func read32(_ offset: Int) -> UInt32
    /// Writes the 32-bit register at `offset` bytes from the start of the BAR.
    func write32(_ offset: Int, _ value: UInt32)
    /// 8- and 16-bit accesses, for devices whose registers have those widths (virtio's common
    /// configuration: a driver must use each field's own width). The defaults go through the
    /// aligned 32-bit register (read-modify-write on store): right only for registers without side
    /// effects, so a backend for such a device implements them.
    func read8(_ offset: Int) -> UInt8
    func read16(_ offset: Int) -> UInt16
    func write8(_ offset: Int, _ value: UInt8)
    func write16(_ offset: Int, _ value: UInt16)
}

extension RegisterAccess {
    @inlinable
    public func read8(_ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: read32(offset & ~3) >> (UInt32(offset & 3) * 8)) }
    @inlinable
    public func read16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: read32(offset & ~3) >> (UInt32(offset & 2) * 8)) }
    @inlinable
    public func write8(_ offset: Int, _ value: UInt8) {
        let shift = UInt32(offset & 3) * 8
        write32(offset & ~3, read32(offset & ~3) & ~(0xFF << shift) | UInt32(value) << shift)
    }
    @inlinable
    public func write16(_ offset: Int, _ value: UInt16) {
        let shift = UInt32(offset & 2) * 8
        write32(offset & ~3, read32(offset & ~3) & ~(0xFFFF << shift) | UInt32(value) << shift)
    }
}

extension RegisterAccess {
    /// Read-modify-write: sets `bits` in the register at `offset`.
    @inlinable
    public func setBits(_ offset: Int, _ bits: UInt32) {
        write32(offset, read32(offset) | bits)
    }

    /// Read-modify-write: clears `bits` in the register at `offset`.
    @inlinable
    public func clearBits(_ offset: Int, _ bits: UInt32) {
        write32(offset, read32(offset) & ~bits)
    }
}
