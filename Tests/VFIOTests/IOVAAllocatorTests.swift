import Testing
@testable import VFIO

@Suite("IOVAAllocator")
struct IOVAAllocatorTests {
    @Test func allocationsAreLowestFirstAlignedAndNeverZero() {
        var a = IOVAAllocator(ranges: [IOVARange(first: 0, last: 0xffff_ffff)])
        do { let got = a.allocate(length: 0x1000, alignment: 0x1000); #expect(got == 0x1000) }
        do { let got = a.allocate(length: 0x20_0000, alignment: 0x20_0000); #expect(got == 0x20_0000) }
        do { let got = a.allocate(length: 0x1000, alignment: 0x1000); #expect(got == 0x2000) }
        #expect(a.allocatedBytes == 0x20_2000)
    }

    @Test func theMSIWindowIsSkipped() {
        var a = IOVAAllocator(ranges: IOVARange.fallback, minimum: 0xfe00_0000)
        do { let got = a.allocate(length: 0x20_0000, alignment: 0x20_0000); #expect(got == 0xfe00_0000) }
        // 0xfe200000 + 2 MiB would reach into 0xfee00000-0xfeefffff only at the 7th; fill up to the window.
        var last: UInt64 = 0
        for _ in 0..<6 { last = a.allocate(length: 0x20_0000, alignment: 0x20_0000)! }
        #expect(last == 0xfec0_0000)
        do { let got = a.allocate(length: 0x20_0000, alignment: 0x20_0000); #expect(got == 0xff00_0000) }
        for (start, length) in a.allocations {
            #expect(start + length <= 0xfee0_0000 || start >= 0xfef0_0000)
        }
    }

    @Test func aFreedRangeIsReused() {
        var a = IOVAAllocator(ranges: [IOVARange(first: 0, last: 0xff_ffff)])
        let first = a.allocate(length: 0x1000, alignment: 0x1000)!
        let second = a.allocate(length: 0x1000, alignment: 0x1000)!
        do { let got = a.free(first); #expect(got) }
        do { let got = a.free(first); #expect(!got) }
        do { let got = a.allocate(length: 0x1000, alignment: 0x1000); #expect(got == first) }
        do { let got = a.allocate(length: 0x1000, alignment: 0x1000); #expect(got == second + 0x1000) }
    }

    @Test func exhaustionReturnsNil() {
        var a = IOVAAllocator(ranges: [IOVARange(first: 0x1000, last: 0x4fff)])
        do { let got = a.allocate(length: 0x3000, alignment: 0x1000); #expect(got == 0x1000) }
        do { let got = a.allocate(length: 0x2000, alignment: 0x1000); #expect(got == nil) }
        do { let got = a.allocate(length: 0x1000, alignment: 0x1000); #expect(got == 0x4000) }
        do { let got = a.allocate(length: 0x1000, alignment: 0x1000); #expect(got == nil) }
    }

    @Test func aRangeTooSmallForTheAlignmentIsPassedOver() {
        var a = IOVAAllocator(ranges: [IOVARange(first: 0x1000, last: 0x1f_ffff), IOVARange(first: 0x40_0000, last: 0x7f_ffff)])
        do { let got = a.allocate(length: 0x20_0000, alignment: 0x20_0000); #expect(got == 0x40_0000) }
    }

    @Test func identityReservationsMustFitAValidRangeAndNotOverlap() {
        var a = IOVAAllocator(ranges: IOVARange.fallback)
        do { let got = a.reserve(0x7f00_0000_0000, length: 0x1000); #expect(got == false) }  // beyond 39 bits
        do { let got = a.reserve(0xfee0_0000, length: 0x1000); #expect(got == false) }  // MSI window
        do { let got = a.reserve(0x10_0000, length: 0x20_0000); #expect(got) }
        do { let got = a.reserve(0x20_0000, length: 0x1000); #expect(got == false) }  // overlaps
        do { let got = a.allocate(length: 0x1000, alignment: 0x1000); #expect(got == 0x1000) }
        do { let got = a.reserve(0, length: 0x1000); #expect(got == false) }  // address 0 is never handed out
    }
}

@Suite("VFIOContainer.parseIOMMUInfo")
struct IOMMUInfoParsingTests {
    func store<T: FixedWidthInteger>(_ value: T, _ bytes: inout [UInt8], _ at: Int) {
        VFIOContainer.store(value, into: &bytes, at: at)
    }

    @Test func theIOVARangeCapabilityIsFoundAfterAnotherCapability() {
        var bytes = [UInt8](repeating: 0, count: 24 + 16 + 16 + 32)
        store(UInt32(bytes.count), &bytes, 0)
        store(UInt32(0b11), &bytes, 4)  // PGSIZES | CAPS
        store(UInt64(0x4000_0020_1000), &bytes, 8)  // 4 KiB, 2 MiB, 1 GiB pages, lowest 4 KiB
        store(UInt32(24), &bytes, 16)  // first cap at 24
        store(UInt16(2), &bytes, 24)  // migration cap (ignored)
        store(UInt32(40), &bytes, 28)  // next at 40
        store(UInt16(1), &bytes, 40)  // IOVA range cap
        store(UInt32(0), &bytes, 44)
        store(UInt32(2), &bytes, 48)  // two ranges
        store(UInt64(0), &bytes, 56); store(UInt64(0xfedf_ffff), &bytes, 64)
        store(UInt64(0xfef0_0000), &bytes, 72); store(UInt64(0xffff_ffff_ffff), &bytes, 80)
        let parsed = VFIOContainer.parseIOMMUInfo(bytes)
        #expect(parsed.alignment == 0x1000)
        #expect(parsed.ranges == [IOVARange(first: 0, last: 0xfedf_ffff), IOVARange(first: 0xfef0_0000, last: 0xffff_ffff_ffff)])
    }

    @Test func withoutCapabilitiesThereAreNoRanges() {
        var bytes = [UInt8](repeating: 0, count: 24)
        store(UInt32(1), &bytes, 4)
        store(UInt64(0x20_0000), &bytes, 8)
        let parsed = VFIOContainer.parseIOMMUInfo(bytes)
        #expect(parsed.alignment == 0x20_0000)
        #expect(parsed.ranges == nil)
    }

    @Test func anMSIXIrqSetCarriesHeaderThenOneFdPerVector() {
        let bytes = VFIODevice.irqSet(flags: (1 << 2) | (1 << 5), count: 3)
        #expect(bytes.count == 20 + 12)
        #expect(VFIOContainer.load(UInt32.self, from: bytes, at: 0) == 32)
        #expect(VFIOContainer.load(UInt32.self, from: bytes, at: 4) == 0x24)
        #expect(VFIOContainer.load(UInt32.self, from: bytes, at: 8) == 2)  // VFIO_PCI_MSIX_IRQ_INDEX
        #expect(VFIOContainer.load(UInt32.self, from: bytes, at: 16) == 3)
    }
}
