import ArgumentParser
import Foundation
import MiniportRegistry
import PCI

/// `miniport list`: PCI network functions, their driver, IOMMU group, bind verdict and miniport.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List PCI network functions: names, driver, IOMMU group, whether they can be bound, and which miniport drives them."
    )

    @Flag(help: "Include functions that are not network controllers.")
    var all = false

    @Flag(help: "Print a JSON array instead of a table.")
    var json = false

    @Option(help: ArgumentHelp("Read sysfs under this directory instead of / (for tests).", visibility: .hidden))
    var root: String = "/"

    @Option(name: .customLong("ids-file"), help: ArgumentHelp("Use this PCI ID database (pci.ids) only.", visibility: .hidden))
    var idsFile: String?

    func run() throws {
        let discovery = PCIDiscovery(paths: HostPaths(root: root), idsFile: idsFile, useHardwareDatabase: idsFile == nil,
                                     supportTable: MiniportRegistry.supportTable)
        let functions = try discovery.functions()
        let shown = all ? functions : functions.filter(\.isNetwork)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(shown.map(ListedFunction.init))
            print(String(decoding: data, as: UTF8.self))
            return
        }
        if shown.isEmpty {
            print(functions.isEmpty
                ? "no PCI functions found"
                : "no network functions found (\(functions.count) PCI functions in all: `miniport list --all` shows them)")
            return
        }
        print(Self.table(shown))
    }

    /// A plain-text table, columns as wide as their widest cell.
    static func table(_ functions: [PCIDeviceInfo]) -> String {
        let header = ["ADDRESS", "VENDOR", "DEVICE", "DRIVER", "GROUP", "INTERFACES", "BINDABLE", "MINIPORT"]
        let rows = functions.map { f -> [String] in
            [
                f.address.description,
                f.vendorName ?? hex4(f.vendorID),
                f.deviceName ?? hex4(f.deviceID),
                f.driver ?? "-",
                f.iommuGroup.map(String.init) ?? "-",
                f.interfaces.isEmpty ? "-" : f.interfaces.map { $0.name + ($0.isUp ? "(up)" : "") }.joined(separator: ","),
                f.bindability.summary,
                f.support.map { $0.status == .planned ? "\($0.miniport) (planned)" : $0.miniport } ?? "-",
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

func hex4(_ value: UInt16) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

/// One element of `miniport list --json`.
struct ListedFunction: Encodable {
    struct BAR: Encodable {
        var index: Int
        var size: UInt64
        var kind: String
    }
    struct Interface: Encodable {
        var name: String
        var up: Bool
    }
    struct Miniport: Encodable {
        var name: String
        var model: String
        var status: String
    }

    var address: String
    var vendorID: String
    var deviceID: String
    var subsystemVendorID: String
    var subsystemID: String
    var classCode: String
    var className: String?
    var vendorName: String?
    var deviceName: String?
    var subsystemName: String?
    var isNetwork: Bool
    var driver: String?
    var driverOverride: String?
    var iommuGroup: Int?
    var numaNode: Int?
    var bars: [BAR]
    var interfaces: [Interface]
    var bindable: Bool
    var verdict: String
    var advice: String
    var miniport: Miniport?

    init(_ f: PCIDeviceInfo) {
        address = f.address.description
        vendorID = hex4(f.vendorID)
        deviceID = hex4(f.deviceID)
        subsystemVendorID = hex4(f.subsystemVendorID)
        subsystemID = hex4(f.subsystemID)
        let cls = String(f.classCode, radix: 16)
        classCode = String(repeating: "0", count: max(0, 6 - cls.count)) + cls
        className = f.className
        vendorName = f.vendorName
        deviceName = f.deviceName
        subsystemName = f.subsystemName
        isNetwork = f.isNetwork
        driver = f.driver
        driverOverride = f.driverOverride
        iommuGroup = f.iommuGroup
        numaNode = f.numaNode
        bars = f.bars.map { BAR(index: $0.index, size: $0.size, kind: $0.isIO ? "io" : ($0.is64Bit ? "mem64" : "mem32")) }
        interfaces = f.interfaces.map { Interface(name: $0.name, up: $0.isUp) }
        bindable = f.bindability.isBindable
        verdict = f.bindability.summary
        advice = f.advice
        miniport = f.support.map { Miniport(name: $0.miniport, model: $0.model, status: $0.status.rawValue) }
    }
}
