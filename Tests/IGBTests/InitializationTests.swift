import DeviceAccess
import IGB
import IGBModel
import NDIS
import Testing

@Suite("IGB initialization on the model")
struct InitializationTests {
    @Test func initializationBringsTheLinkUpAndReadsThePermanentAddress() throws {
        let bench = try Bench()
        #expect(bench.miniport.permanentAddress == Bench.modelAddress)
        #expect(bench.adapter.attributes?.permanentAddress == Bench.modelAddress)
        guard case let .linkState(link) = try bench.binding.request(.linkState) else {
            Issue.record("no link state")
            return
        }
        #expect(link.up)
        #expect(link.speedBitsPerSecond == 1_000_000_000)
        #expect(bench.adapter.state == .running)
        bench.haltAndCheck()
    }
}
