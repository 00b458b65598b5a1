import Testing
@Suite struct IGBTestsPlaceholder { @Test func packageBuilds() { #expect(1 + 1 == 2) } }
