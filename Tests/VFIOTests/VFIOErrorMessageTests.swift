import Glibc
import PCI
import Testing
@testable import VFIO

/// The messages of errors that need a real device to happen: each names the thing and the fix.
@Suite("VFIOError messages")
struct VFIOErrorMessageTests {
    let address = try! PCIAddress(parsing: "0000:03:00.0")

    @Test func memlockTooLowSaysHowMuchAndHowToRaiseIt() {
        let message = VFIOError.memlockTooLow(needed: 4 << 20, limit: 64 << 10).description
        #expect(message.contains("at least 4 MiB"))
        #expect(message.contains("RLIMIT_MEMLOCK is 64 KiB"))
        #expect(message.contains("ulimit -l"))
        #expect(message.contains("/etc/security/limits.conf"))
        #expect(message.contains("LimitMEMLOCK=infinity"))
    }

    @Test func noHugepagesGivesTheSysctlCommand() {
        let message = VFIOError.noHugepages(requested: 2 << 20).description
        #expect(message.contains("2 MiB"))
        #expect(message.contains("echo 64 > /proc/sys/vm/nr_hugepages"))
    }

    @Test func unsupportedAPIVersionNamesBothVersions() {
        #expect(VFIOError.unsupportedAPIVersion(7).description.contains("version is 7, miniport needs 0"))
    }

    @Test func noType1IOMMUNamesTheKernelParameters() {
        let message = VFIOError.noType1IOMMU(path: "/dev/vfio/vfio").description
        #expect(message.contains("/dev/vfio/vfio") && message.contains("intel_iommu=on") && message.contains("amd_iommu=on"))
    }

    @Test func barNotMappableNamesTheBarAndDevice() {
        #expect(VFIOError.barNotMappable(address, bar: 2).description.hasPrefix("BAR 2 of 0000:03:00.0 cannot be memory-mapped"))
    }

    @Test func resetNotSupportedPointsAtTheDeviceReset() {
        #expect(VFIOError.resetNotSupported(address).description.contains("CTRL.RST"))
    }

    @Test func msixUnavailableSaysHowManyThereAre() {
        #expect(VFIOError.msixUnavailable(address, requested: 16, available: 10).description.contains("has 10 MSI-X vectors, 16 were asked for"))
    }

    @Test func configOutOfRangeNamesTheOffset() {
        #expect(VFIOError.configOutOfRange(address, offset: 4096).description.contains("offset 4096 of 0000:03:00.0"))
    }

    @Test func unknownRegionSaysFreeOnce() {
        #expect(VFIOError.unknownDMARegion(id: 9).description.contains("DMA region 9 is not held"))
    }

    @Test func iovaExhaustedNamesTheSize() {
        #expect(VFIOError.iovaExhausted(length: 2 << 20).description.contains("no free IOVA range of 2 MiB"))
    }

    @Test func closedSaysToOpenAgain() {
        #expect(VFIOError.closed("0000:03:00.0").description == "0000:03:00.0 is closed: open the device again")
    }

    @Test func outOfMemoryNamesTheSizeAndErrno() {
        #expect(VFIOError.outOfMemory(requested: 4096, errno: ENOMEM).description.contains("cannot allocate 4 KiB for DMA: Cannot allocate memory"))
    }

    @Test func systemErrorsNameTheCallTheTargetAndTheErrno() {
        let message = VFIOError.system(call: "VFIO_IOMMU_MAP_DMA", target: "/dev/vfio/vfio", errno: EINVAL).description
        #expect(message == "VFIO_IOMMU_MAP_DMA on /dev/vfio/vfio failed: Invalid argument (errno 22)")
    }
}
