/// A PCI function's address: domain, bus, device (slot) and function, written `DDDD:BB:DD.F`.
///
/// Parsing accepts the full form `0000:03:00.0` and the short form `03:00.0` (domain 0), in upper or
/// lower case hex; anything else is rejected with ``PCIError/invalidAddress(_:)``.
public struct PCIAddress: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public var domain: UInt16
    public var bus: UInt8
    /// Device (slot) number, 0...31.
    public var device: UInt8
    /// Function number, 0...7.
    public var function: UInt8

    public init(domain: UInt16 = 0, bus: UInt8, device: UInt8, function: UInt8) {
        precondition(device < 32 && function < 8, "PCI device must be < 32 and function < 8")
        self.domain = domain
        self.bus = bus
        self.device = device
        self.function = function
    }

    /// Parses `DDDD:BB:DD.F` or `BB:DD.F`.
    /// - Throws: ``PCIError/invalidAddress(_:)`` naming the text and the expected form.
    public init(parsing text: String) throws(PCIError) {
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        let domainText: Substring
        let busText: Substring
        let slotText: Substring
        switch fields.count {
        case 3: (domainText, busText, slotText) = (fields[0], fields[1], fields[2])
        case 2: (domainText, busText, slotText) = ("0000", fields[0], fields[1])
        default: throw .invalidAddress(text)
        }
        let slotFields = slotText.split(separator: ".", omittingEmptySubsequences: false)
        guard slotFields.count == 2,
              domainText.count == 4, busText.count == 2, slotFields[0].count == 2, slotFields[1].count == 1,
              let domain = Self.hex(domainText), let bus = Self.hex(busText),
              let device = Self.hex(slotFields[0]), let function = Self.hex(slotFields[1]),
              device < 32, function < 8
        else { throw .invalidAddress(text) }
        self.init(domain: UInt16(domain), bus: UInt8(bus), device: UInt8(device), function: UInt8(function))
    }

    /// Only the digits 0-9, a-f, A-F (UInt(_:radix:) would also accept a sign).
    private static func hex(_ text: Substring) -> UInt? {
        guard !text.isEmpty, text.allSatisfy(\.isHexDigit) else { return nil }
        return UInt(text, radix: 16)
    }

    /// `dddd:bb:dd.f`, lower-case hex, as sysfs names the function.
    public var description: String {
        "\(Self.pad(UInt(domain), 4)):\(Self.pad(UInt(bus), 2)):\(Self.pad(UInt(device), 2)).\(function)"
    }

    private static func pad(_ value: UInt, _ width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    public static func < (a: PCIAddress, b: PCIAddress) -> Bool {
        (a.domain, a.bus, a.device, a.function) < (b.domain, b.bus, b.device, b.function)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
