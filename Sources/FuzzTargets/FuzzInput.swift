/// Reads a fuzzer's bytes as a stream of small decisions. Past the end every read is zero, so any
/// input (even an empty one) decodes to something; nothing here can trap on short input.
public struct FuzzInput {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }
    public var remaining: Int { max(0, bytes.count - offset) }

    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }
    public mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }
    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// A number in `0..<bound` (bound ≥ 1).
    public mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(byte()) % bound }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func take(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, remaining))
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    /// Everything left.
    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// What a target found wrong with one input; empty means the input was handled cleanly.
public typealias FuzzFindings = [String]

/// Hex of bytes, 32 a line: how the CI step and the replay test print an input that failed.
public func fuzzHex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var lines: [String] = []
    var line = ""
    for (i, b) in bytes.enumerated() {
        line.append(digits[Int(b >> 4)])
        line.append(digits[Int(b & 0xf)])
        if i % 32 == 31 { lines.append(line); line = "" }
    }
    if !line.isEmpty || lines.isEmpty { lines.append(line) }
    return lines.joined(separator: "\n")
}
