import NDIS
import PCI
import Protocols

/// Target `parsers`: the value parsers behind the command-line options (`--mac`, `--vlan`, `--ip`,
/// PCI addresses, the filter specs of `--mac`/`--vlan` lists). The input is split at newlines into
/// strings; each goes through every parser.
///
/// Judged: an accepted value prints in the canonical form and parses back to itself, and the text
/// accepted IS that form (up to hex case, `-` for `:` in a MAC, the short PCI form): a parser that
/// accepts ":52:54:00:aa:00:01:" or "+1:..." is lenient in a way a user cannot see. Refusals carry a
/// message naming the text.
enum ParserFuzz {
    static func run(_ bytes: [UInt8]) -> FuzzFindings {
        var findings: FuzzFindings = []
        let pieces = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).prefix(32)
        var macs: [String] = [], vlans: [String] = []
        for piece in pieces {
            let text = String(decoding: piece, as: UTF8.self)
            findings += mac(text)
            findings += vlan(text)
            findings += ipv4(text)
            findings += pci(text)
            if piece.first.map({ $0 & 1 == 0 }) ?? true { macs.append(text) } else { vlans.append(text) }
        }
        findings += specs(macs: macs, vlans: vlans)
        return findings
    }

    static func mac(_ text: String) -> FuzzFindings {
        do {
            let m = try QueueFilterSpec.parseMAC(text)
            var f: FuzzFindings = []
            if MACAddress(m.description) != m { f.append("MAC \(m) does not parse back from its own text") }
            let normal = String(text.lowercased().map { $0 == "-" ? ":" : $0 })
            if normal != m.description { f.append("--mac accepted '\(text)' for \(m): not six hex pairs") }
            return f
        } catch {
            return names(error.description, text) ? [] : ["bad-MAC message does not name the text: \(error)"]
        }
    }

    static func vlan(_ text: String) -> FuzzFindings {
        do {
            let v = try QueueFilterSpec.parseVLAN(text)
            guard (1...4094).contains(v) else { return ["--vlan accepted '\(text)' as \(v), outside 1...4094"] }
            return UInt16(text) == v ? [] : ["--vlan read '\(text)' as \(v)"]
        } catch {
            return names(error.description, text) ? [] : ["bad-VLAN message does not name the text: \(error)"]
        }
    }

    /// Whether a refusal's message quotes the text, compared byte for byte: a combining mark at the
    /// start of the text joins the quote before it into one Character, so `String.contains` (which
    /// compares Characters) missed it (CI finding: bytes d9 9e 0b).
    static func names(_ message: String, _ text: String) -> Bool {
        text.isEmpty || Array(message.utf8).firstRange(of: Array(text.utf8)) != nil
    }

    static func ipv4(_ text: String) -> FuzzFindings {
        guard let a = IPv4Address(text) else { return [] }
        var f: FuzzFindings = []
        if a.description != text { f.append("IPv4 accepted '\(text)' as \(a): not the dotted quad it prints") }
        if IPv4Address(a.description) != a { f.append("IPv4 \(a) does not parse back from its own text") }
        return f
    }

    static func pci(_ text: String) -> FuzzFindings {
        do {
            let a = try PCIAddress(parsing: text)
            var f: FuzzFindings = []
            if (try? PCIAddress(parsing: a.description)) != a { f.append("PCI address \(a) does not parse back from its own text") }
            let lower = text.lowercased()
            if lower != a.description && "0000:" + lower != a.description { f.append("PCI address accepted '\(text)' as \(a)") }
            return f
        } catch {
            return names("\(error)", text) ? [] : ["bad-PCI-address message does not name the text: \(error)"]
        }
    }

    static func specs(macs: [String], vlans: [String]) -> FuzzFindings {
        do {
            let specs = try QueueFilterSpec.parse(macs: macs, vlans: vlans)
            var f: FuzzFindings = []
            if specs.count != macs.count + vlans.count { f.append("filter specs: \(macs.count) + \(vlans.count) values gave \(specs.count) queues") }
            if Set(specs).count != specs.count { f.append("filter specs: a duplicate passed: \(specs)") }
            if specs.contains(.mac(.broadcast)) { f.append("filter specs: a broadcast --mac passed") }
            return f
        } catch {
            return error.description.isEmpty ? ["filter-spec refusal without a message"] : []
        }
    }
}
