import _Volatile

/// A memory-mapped BAR: the only type in the project that performs volatile MMIO.
///
/// The region does not own its mapping; the VFIO device that mapped it unmaps it on close.
public struct MMIORegion: RegisterAccess, @unchecked Sendable {
    @usableFromInline let base: UInt
    /// Length of the mapping in bytes.
    public let length: Int

    /// Wraps an existing mapping.
    /// - Parameters:
    ///   - base: start of the mapped BAR; must stay mapped while the region is used.
    ///   - length: size of the mapping in bytes.
    public init(unsafeBase base: UnsafeMutableRawPointer, length: Int) {
        self.base = UInt(bitPattern: base)
        self.length = length
    }

    @inlinable
    public func read32(_ offset: Int) -> UInt32 {
        // Safety: offsets come from the register definitions, all below the BAR length (checked in debug).
        assert(offset >= 0 && offset + 4 <= length, "register offset out of BAR")
        return VolatileMappedRegister<UInt32>(unsafeBitPattern: base &+ UInt(offset)).load()
    }

    @inlinable
    public func write32(_ offset: Int, _ value: UInt32) {
        // Safety: as for read32.
        assert(offset >= 0 && offset + 4 <= length, "register offset out of BAR")
        VolatileMappedRegister<UInt32>(unsafeBitPattern: base &+ UInt(offset)).store(value)
    }

    @inlinable
    public func read8(_ offset: Int) -> UInt8 {
        // Safety: as for read32.
        assert(offset >= 0 && offset + 1 <= length, "register offset out of BAR")
        return VolatileMappedRegister<UInt8>(unsafeBitPattern: base &+ UInt(offset)).load()
    }

    @inlinable
    public func read16(_ offset: Int) -> UInt16 {
        // Safety: as for read32.
        assert(offset >= 0 && offset + 2 <= length, "register offset out of BAR")
        return VolatileMappedRegister<UInt16>(unsafeBitPattern: base &+ UInt(offset)).load()
    }

    @inlinable
    public func write8(_ offset: Int, _ value: UInt8) {
        // Safety: as for read32.
        assert(offset >= 0 && offset + 1 <= length, "register offset out of BAR")
        VolatileMappedRegister<UInt8>(unsafeBitPattern: base &+ UInt(offset)).store(value)
    }

    @inlinable
    public func write16(_ offset: Int, _ value: UInt16) {
        // Safety: as for read32.
        assert(offset >= 0 && offset + 2 <= length, "register offset out of BAR")
        VolatileMappedRegister<UInt16>(unsafeBitPattern: base &+ UInt(offset)).store(value)
    }
}
