import Testing
@Suite struct NDISTestsPlaceholder { @Test func packageBuilds() { #expect(1 + 1 == 2) } }
