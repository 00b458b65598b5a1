import IGB
import IGBModel
import NDIS
import Protocols
import Testing

/// The forwarder picks zero-copy only between adapters of one DMA domain.
@Suite struct ForwarderDomainTests {
    func adapter(_ function: IGBModelFunction) throws -> Adapter {
        var config = IGBConfiguration()
        config.requireLink = false
        config.linkTimeout = .milliseconds(1)
        return try IGBMiniport.makeAdapter(function: function, configuration: config, start: false)
    }

    @Test func adaptersSharingOneDMADomainForwardZeroCopyAndOthersCopy() throws {
        let a = try IGBModel.makeFunction()
        let b = try IGBModel.makeFunction(sharingIOMMUWith: a)
        let c = try IGBModel.makeFunction()
        let (ia, ib, ic) = (try adapter(a), try adapter(b), try adapter(c))
        defer { ia.halt(); ib.halt(); ic.halt() }
        #expect(ia.dmaDomain != nil && ia.dmaDomain == ib.dmaDomain)
        #expect(ia.dmaDomain != ic.dmaDomain)
        #expect(Forwarder.mode(from: ia, to: ib) == .zeroCopy)
        #expect(Forwarder.mode(from: ia, to: ic) == .copy)
    }
}
