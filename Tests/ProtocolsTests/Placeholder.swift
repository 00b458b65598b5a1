import Testing
@Suite struct ProtocolsTestsPlaceholder { @Test func packageBuilds() { #expect(1 + 1 == 2) } }
