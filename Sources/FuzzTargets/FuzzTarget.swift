/// The fuzz targets (Docs/TESTBED.md, "Fuzzing"). Each takes any bytes, drives one part of the
/// framework with them and returns what it found wrong: a crash or an ASan report is a finding
/// too, caught by libFuzzer in the fuzz build. The replay test (FuzzTests) runs every committed
/// corpus file through its target in the normal test suite.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Frame classification and the software receive filters on an NDIS adapter.
    case classifier
    /// The IGB miniport's receive path on the 82576 model, fed hostile descriptor write-backs.
    case receive
    /// OID requests in any order against an adapter: every refusal an NDISError, nothing leaked.
    case requests
    /// The command-line value parsers: MAC, VLAN, IPv4, PCI address, durations, filter specs.
    case parsers

    public func run(_ bytes: [UInt8]) -> FuzzFindings {
        switch self {
        case .classifier: ClassifierFuzz.run(bytes)
        case .receive: ReceiveFuzz.run(bytes)
        case .requests: RequestFuzz.run(bytes)
        case .parsers: ParserFuzz.run(bytes)
        }
    }
}
