import Testing
@Suite struct IGBModelTestsPlaceholder { @Test func packageBuilds() { #expect(1 + 1 == 2) } }
