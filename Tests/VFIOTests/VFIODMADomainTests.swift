import Glibc
import PCI
import Testing
@testable import VFIO

/// The process-wide container and DMA allocator (VFIODMADomain): failures leave no reference behind.
@Suite struct VFIODMADomainTests {
    @Test func aContainerThatCannotOpenLeavesNoSharedDomainAndNoDescriptor() throws {
        let host = FakeHost()
        host.function("0000:03:00.0", driver: "vfio-pci", group: 5)
        host.devNode("5")
        let env = host.environment()
        let before = ProcessResources.openFileDescriptorCount()
        #expect(throws: VFIOError.vfioUnavailable(path: host.paths.devVFIO + "/vfio")) { try VFIODevice.open("0000:03:00.0", environment: env) }
        #expect(VFIODMADomain.current(environment: env) == nil)
        #expect(ProcessResources.openFileDescriptorCount() == before)
    }

    @Test func aNodeThatIsNotVFIOIsNamedAndNoDomainIsKept() throws {
        let host = FakeHost()
        host.function("0000:03:00.0", driver: "vfio-pci", group: 5)
        host.devNode("5")
        host.devNode("vfio")
        let env = host.environment()
        #expect(throws: VFIOError.system(call: "VFIO_GET_API_VERSION", target: host.paths.devVFIO + "/vfio", errno: ENOTTY)) {
            try VFIODevice.open("0000:03:00.0", environment: env)
        }
        // A second attempt makes a new domain (none was left half-made).
        #expect(throws: VFIOError.self) { try VFIODevice.open("0000:03:00.0", environment: env) }
        #expect(VFIODMADomain.current(environment: env) == nil)
    }
}
