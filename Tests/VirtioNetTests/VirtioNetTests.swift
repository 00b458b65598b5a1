import DeviceAccess
import NDIS
import Testing
import VirtioNet
import VirtioNetModel

@Suite("virtio-net miniport on the virtio-net model")
struct VirtioNetTests {
    @Test func bringUpNegotiatesVersion1AccessPlatformAndTheControlQueue() throws {
        let function = try VirtioNetModel.makeFunction()
        let (adapter, miniport) = try VirtioNetMiniport.makeAdapterWithMiniport(function: function)
        #expect(miniport.negotiatedFeatures & VirtioNetFeature.version1 != 0)
        #expect(miniport.negotiatedFeatures & VirtioNetFeature.accessPlatform != 0)
        #expect(miniport.negotiatedFeatures & VirtioNetFeature.ctrlVQ != 0)
        #expect(function.model.driverFeatures == miniport.negotiatedFeatures)
        // Restart programmed the RX mode: promiscuous (QEMU's reset value) is off.
        #expect(!function.model.promiscuous)
        // The default queue takes every VLAN: the VLAN table holds them all.
        #expect(function.model.vlanTable.count == 4096)
        #expect(function.model.iommu.faults.isEmpty)
        let report = adapter.halt()
        #expect(report.isClean)
        #expect(function.dma.liveBytes == 0)
    }

    @Test func aDeviceWithoutAccessPlatformIsRefusedWithTheFix() throws {
        var config = VirtioNetModel.Configuration()
        config.features &= ~VirtioModelFeature.accessPlatform
        let function = try VirtioNetModel.makeFunction(configuration: config)
        #expect { try VirtioNetMiniport.makeAdapter(function: function) } throws: { "\($0)".contains("iommu_platform=on") }
        #expect(function.dma.liveBytes == 0)
    }

    @Test func aSoftwareQueueFilterPutsItsMACIntoTheDeviceMACTable() throws {
        let function = try VirtioNetModel.makeFunction()
        let adapter = try VirtioNetMiniport.makeAdapter(function: function)
        let mac = MACAddress(0x02, 0, 0, 0, 0, 0x0A)
        guard case let .queueAllocated(q) = try adapter.request(.allocateQueue(ReceiveQueueParameters(numberOfBuffers: 16))) else { Issue.record("no queue"); return }
        _ = try adapter.request(.queueAllocationComplete([q]))
        guard case let .filterSet(f) = try adapter.request(.setFilter(ReceiveFilterParameters(queue: q, tests: [.macDestination(mac)]))) else { Issue.record("no filter"); return }
        #expect(function.model.unicastTable == [mac.array])
        _ = try adapter.request(.clearFilter(f))
        #expect(function.model.unicastTable.isEmpty)
        _ = adapter.halt()
    }

    @Test func theModelDropsUnicastToAMACNoQueueWantsOncePromiscuousIsOff() throws {
        let function = try VirtioNetModel.makeFunction()
        let adapter = try VirtioNetMiniport.makeAdapter(function: function)
        var frame = [UInt8](repeating: 0, count: 60)
        frame[0] = 0x02; frame[5] = 0x77
        function.model.inject(frame)
        function.model.step()
        #expect(function.model.wireCounters.filtered == 1)
        _ = adapter.poll(budget: 64)
        _ = adapter.halt()
    }
}
