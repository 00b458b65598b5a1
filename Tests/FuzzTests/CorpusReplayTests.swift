import Foundation
import FuzzTargets
import Testing

/// Every committed seed and regression input of Tests/Fuzz/corpus/<target>/ goes through its
/// fuzz target in the normal test run: an input that once crashed stays fixed.
@Suite("Fuzz corpus replay")
struct CorpusReplayTests {
    static let corpus: String = {
        let file = "\(#filePath)"
        let tests = file.split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + tests + "/Fuzz/corpus"
    }()

    static func inputs(_ target: FuzzTarget) -> [(String, [UInt8])] {
        let dir = "\(corpus)/\(target.rawValue)"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return names.sorted().compactMap { n in FileManager.default.contents(atPath: "\(dir)/\(n)").map { (n, [UInt8]($0)) } }
    }

    @Test("every corpus input of a target is handled cleanly", arguments: FuzzTarget.allCases)
    func corpusInputsAreHandledCleanly(_ target: FuzzTarget) {
        let inputs = Self.inputs(target)
        #expect(inputs.count >= 3, "Tests/Fuzz/corpus/\(target.rawValue) holds \(inputs.count) inputs; commit a seed corpus")
        for (name, bytes) in inputs {
            let findings = target.run(bytes)
            #expect(findings.isEmpty, "\(target.rawValue)/\(name):\n\(findings.joined(separator: "\n"))\ninput:\n\(fuzzHex(bytes))")
        }
    }
}
