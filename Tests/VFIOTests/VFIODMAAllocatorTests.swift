import DeviceAccess
import Glibc
import Testing
@testable import VFIO

@Suite("VFIODMAAllocator")
struct VFIODMAAllocatorTests {
    func environment(memlock: Int? = nil, canLock: Bool = false, warnings: WarningLog? = nil) -> VFIOEnvironment {
        VFIOEnvironment(memlockLimit: { memlock }, canLockBeyondLimit: { canLock }, warn: { warnings?.append($0) })
    }

    @Test func everyMappingIsUndoneWhenTheAllocatorCloses() throws {
        let mapper = FakeMapper()
        let memory = CountingMemory(hugepagesAvailable: true)
        let allocator = VFIODMAAllocator(mapper: mapper, environment: environment(), memory: memory.source)
        var regions: [DMARegion] = []
        for length in [100, 2 << 20, (2 << 20) + 1] {
            regions.append(try allocator.allocateDMA(length: length, contiguous: true))
        }
        #expect(regions.map(\.length) == [2 << 20, 2 << 20, 4 << 20])
        #expect(allocator.liveRegionCount == 3 && allocator.liveBytes == 8 << 20)
        #expect(mapper.mappings.count == 3 && memory.liveMappings == 3 && allocator.mapCalls == 3)
        try allocator.freeDMA(regions[0])
        #expect(allocator.liveRegionCount == 2 && mapper.mappings.count == 2 && memory.liveMappings == 2)
        #expect(allocator.close() == nil)
        #expect(allocator.liveRegionCount == 0 && allocator.liveBytes == 0)
        #expect(mapper.mappings.isEmpty && memory.liveMappings == 0)
        #expect(allocator.unmapCalls == allocator.mapCalls)
        #expect(throws: VFIOError.closed("DMA allocator")) { try allocator.allocateDMA(length: 1, contiguous: true) }
    }

    @Test func regionsGetDistinctAlignedIOVAsInsideTheValidRanges() throws {
        let mapper = FakeMapper(ranges: [IOVARange(first: 0, last: 0x3ff_ffff)])
        let allocator = VFIODMAAllocator(mapper: mapper, environment: environment(), memory: CountingMemory(hugepagesAvailable: true).source)
        let a = try allocator.allocateDMA(length: 4096, contiguous: true)
        let b = try allocator.allocateDMA(length: 4096, contiguous: true)
        #expect(a.isContiguous && a.segments[0].iova == 0x20_0000)
        #expect(b.segments[0].iova == 0x40_0000)
        #expect(a.iova(atOffset: 100) == 0x20_0064)
        allocator.close()
    }

    @Test func identityIOVAUsesTheVirtualAddressWhenItIsValid() throws {
        let mapper = FakeMapper(ranges: [IOVARange(first: 0, last: (1 << 48) - 1)])
        let allocator = VFIODMAAllocator(mapper: mapper, environment: environment(), hugepages: .never, iova: .identity)
        let region = try allocator.allocateDMA(length: 4096, contiguous: true)
        #expect(region.segments[0].iova == UInt64(UInt(bitPattern: region.unsafeBaseAddress)))
        allocator.close()
    }

    @Test func freeingARegionTwiceIsRefused() throws {
        let allocator = VFIODMAAllocator(mapper: FakeMapper(), environment: environment(), hugepages: .never)
        let region = try allocator.allocateDMA(length: 4096, contiguous: true)
        try allocator.freeDMA(region)
        #expect(throws: VFIOError.unknownDMARegion(id: region.id)) { try allocator.freeDMA(region) }
    }

    @Test func aLowMemlockLimitIsCaughtBeforeAnythingIsMapped() throws {
        let mapper = FakeMapper()
        let memory = CountingMemory(hugepagesAvailable: true)
        let allocator = VFIODMAAllocator(mapper: mapper, environment: environment(memlock: 3 << 20), memory: memory.source)
        _ = try allocator.allocateDMA(length: 2 << 20, contiguous: true)
        #expect(throws: VFIOError.memlockTooLow(needed: 4 << 20, limit: 3 << 20)) {
            try allocator.allocateDMA(length: 1, contiguous: true)
        }
        #expect(mapper.mappings.count == 1 && memory.liveMappings == 1)
        allocator.close()
    }

    @Test func CAP_IPC_LOCKLiftsTheMemlockLimit() throws {
        let allocator = VFIODMAAllocator(mapper: FakeMapper(), environment: environment(memlock: 4096, canLock: true), memory: CountingMemory(hugepagesAvailable: true).source)
        #expect(try allocator.allocateDMA(length: 2 << 20, contiguous: true).length == 2 << 20)
        allocator.close()
    }

    @Test func requiredHugepagesThatAreMissingFailWithTheSysctlFix() {
        let memory = CountingMemory(hugepagesAvailable: false)
        let allocator = VFIODMAAllocator(mapper: FakeMapper(), environment: environment(), hugepages: .require, memory: memory.source)
        #expect(throws: VFIOError.noHugepages(requested: 2 << 20)) { try allocator.allocateDMA(length: 4096, contiguous: true) }
        #expect(memory.liveMappings == 0)
    }

    @Test func missingHugepagesFallBackToSmallPagesWithOneWarning() throws {
        let warnings = WarningLog()
        let allocator = VFIODMAAllocator(mapper: FakeMapper(), environment: environment(warnings: warnings), hugepages: .prefer, memory: CountingMemory(hugepagesAvailable: false).source)
        let a = try allocator.allocateDMA(length: 5000, contiguous: true)
        _ = try allocator.allocateDMA(length: 5000, contiguous: true)
        #expect(a.pageSize == 4096 && a.length == 8192)
        #expect(warnings.all.count == 1)
        #expect(warnings.all[0].contains("echo 64 > /proc/sys/vm/nr_hugepages"))
        allocator.close()
    }

    @Test func aFailedIOMMUMapLeavesNothingBehind() throws {
        let mapper = FakeMapper()
        mapper.failNextMap = .system(call: "VFIO_IOMMU_MAP_DMA", target: "fake", errno: EINVAL)
        let memory = CountingMemory(hugepagesAvailable: true)
        let allocator = VFIODMAAllocator(mapper: mapper, environment: environment(), memory: memory.source)
        #expect(throws: VFIOError.system(call: "VFIO_IOMMU_MAP_DMA", target: "fake", errno: EINVAL)) {
            try allocator.allocateDMA(length: 4096, contiguous: true)
        }
        #expect(memory.liveMappings == 0 && allocator.liveRegionCount == 0)
        // The IOVA was given back: the next allocation gets the same one.
        let region = try allocator.allocateDMA(length: 4096, contiguous: true)
        #expect(region.segments[0].iova == 0x20_0000)
        allocator.close()
    }

    @Test func aTooSmallIOVASpaceIsExhaustedWithAnError() throws {
        let mapper = FakeMapper(ranges: [IOVARange(first: 0, last: 0x3f_ffff)])
        let allocator = VFIODMAAllocator(mapper: mapper, environment: environment(), memory: CountingMemory(hugepagesAvailable: true).source)
        _ = try allocator.allocateDMA(length: 1, contiguous: true)
        #expect(throws: VFIOError.iovaExhausted(length: 2 << 20)) { try allocator.allocateDMA(length: 1, contiguous: true) }
        allocator.close()
    }

    @Test func realAnonymousMemoryIsWritableThroughTheRegion() throws {
        let allocator = VFIODMAAllocator(mapper: FakeMapper(), environment: environment(), hugepages: .never)
        let region = try allocator.allocateDMA(length: 4096, contiguous: true)
        // Safety: the region is 4096 bytes of our own anonymous memory, live until freed below.
        region.unsafeBaseAddress.storeBytes(of: 0xA5A5_5A5A as UInt32, toByteOffset: 4092, as: UInt32.self)
        #expect(region.unsafeBaseAddress.load(fromByteOffset: 4092, as: UInt32.self) == 0xA5A5_5A5A)
        try allocator.freeDMA(region)
    }
}
