import NDIS
import Testing

/// Found by the `parsers` fuzz target: the MAC parser dropped empty parts and took signs.
@Suite("MAC address parsing")
struct MACAddressParsingTests {
    @Test("six hex pairs parse, with colons or dashes, in either case")
    func sixHexPairsParse() {
        #expect(MACAddress("52:54:00:aa:00:01") == MACAddress(0x52, 0x54, 0, 0xaa, 0, 1))
        #expect(MACAddress("52-54-00-AA-00-01") == MACAddress(0x52, 0x54, 0, 0xaa, 0, 1))
    }

    @Test("an empty part, a stray separator or a sign is refused",
          arguments: ["52:54:00:aa:00::01", ":52:54:00:aa:00:01", "52:54:00:aa:00:01:", "52::54:00:aa:00:01",
                      "+1:54:00:aa:00:01", "52:54:00:aa:00:-1", "52:54:00:aa:00", "52:54:00:aa:00:01:02", "52:54:00:aa:00:0g"])
    func malformedTextIsRefused(_ text: String) {
        #expect(MACAddress(text) == nil, "'\(text)' was accepted")
    }
}
