/// 32-bit register access to one BAR of a PCI function.
///
/// Miniports are generic over this type: on VFIO it is ``MMIORegion`` (a plain volatile load or
/// store after specialisation), on the hardware model it is a call into the model.
public protocol RegisterAccess {
    /// Reads the 32-bit register at `offset` bytes from the start of the BAR.
    func read32(_ offset: Int) -> UInt32
    /// Writes the 32-bit register at `offset` bytes from the start of the BAR.
    func write32(_ offset: Int, _ value: UInt32)
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
