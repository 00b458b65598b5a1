import Testing
import PCI

@Suite("PCIAddress")
struct PCIAddressTests {
    @Test func theFullFormParsesIntoItsFourFields() throws {
        let address = try PCIAddress(parsing: "0001:03:1f.7")
        #expect(address.domain == 1)
        #expect(address.bus == 3)
        #expect(address.device == 0x1f)
        #expect(address.function == 7)
    }

    @Test func theShortFormMeansDomainZero() throws {
        let address = try PCIAddress(parsing: "03:00.0")
        #expect(address == PCIAddress(domain: 0, bus: 3, device: 0, function: 0))
        #expect(address.description == "0000:03:00.0")
    }

    @Test func upperCaseHexIsAcceptedAndPrintedInLowerCase() throws {
        #expect(try PCIAddress(parsing: "0000:AF:0A.1").description == "0000:af:0a.1")
    }

    @Test(arguments: ["", "3:00.0", "0000:03:00", "0000:03:00.8", "0000:03:20.0", "000:03:00.0", "0000:3:00.0",
                      "0000:03:00.0.1", "zz:00.0", "0000:03:00.-", "eth0", "0000-03-00.0", "1:0000:03:00.0", " 03:00.0", "+3:00.0"])
    func anythingElseIsRejectedWithTheExpectedForm(text: String) {
        #expect(throws: PCIError.invalidAddress(text)) { try PCIAddress(parsing: text) }
        let message = PCIError.invalidAddress(text).description
        #expect(message.contains("'\(text)'"))
        #expect(message.contains("DDDD:BB:DD.F"))
    }

    @Test func addressesSortByDomainBusDeviceFunction() throws {
        let texts = ["0001:00:00.0", "0000:03:00.1", "0000:03:00.0", "0000:00:1f.3"]
        let sorted = try texts.map { try PCIAddress(parsing: $0) }.sorted().map(\.description)
        #expect(sorted == ["0000:00:1f.3", "0000:03:00.0", "0000:03:00.1", "0001:00:00.0"])
    }
}
