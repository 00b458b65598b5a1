import Foundation

/// A minimal pcapng / pcap reader for tests: enough to check what the writer wrote.
struct PcapFile {
    struct Interface: Equatable { var linkType: UInt16; var name: String?; var description: String?; var tsresol: UInt8? }
    struct Packet { var interface: Int; var timestamp: UInt64; var data: [UInt8]; var originalLength: Int }
    var interfaces: [Interface] = []
    var packets: [Packet] = []
    var isPcapng = false

    enum ReadError: Error { case short, badMagic(UInt32), badBlock(String) }

    init(path: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
        guard bytes.count >= 24 else { throw ReadError.short }
        if u32(0) == 0xA1B2_3C4D {
            var o = 24
            while o + 16 <= bytes.count {
                let sec = UInt64(u32(o)), nsec = UInt64(u32(o + 4)), incl = Int(u32(o + 8)), orig = Int(u32(o + 12))
                packets.append(Packet(interface: 0, timestamp: sec * 1_000_000_000 + nsec, data: Array(bytes[(o + 16)..<(o + 16 + incl)]), originalLength: orig))
                o += 16 + incl
            }
            return
        }
        guard u32(0) == 0x0A0D_0D0A else { throw ReadError.badMagic(u32(0)) }
        isPcapng = true
        var o = 0
        while o + 12 <= bytes.count {
            let type = u32(o), total = Int(u32(o + 4))
            guard total >= 12, total % 4 == 0, o + total <= bytes.count, Int(u32(o + total - 4)) == total else { throw ReadError.badBlock("at \(o)") }
            switch type {
            case 0x0A0D_0D0A:
                guard u32(o + 8) == 0x1A2B_3C4D else { throw ReadError.badBlock("byte order") }
            case 1:
                var i = Interface(linkType: u16(o + 8))
                var p = o + 16
                while p + 4 <= o + total - 4 {
                    let code = u16(p), len = Int(u16(p + 2))
                    if code == 0 { break }
                    let v = Array(bytes[(p + 4)..<(p + 4 + len)])
                    switch code {
                    case 2: i.name = String(decoding: v, as: UTF8.self)
                    case 3: i.description = String(decoding: v, as: UTF8.self)
                    case 9: i.tsresol = v.first
                    default: break
                    }
                    p += 4 + ((len + 3) & ~3)
                }
                interfaces.append(i)
            case 6:
                let ts = UInt64(u32(o + 12)) << 32 | UInt64(u32(o + 16))
                let cap = Int(u32(o + 20)), orig = Int(u32(o + 24))
                packets.append(Packet(interface: Int(u32(o + 8)), timestamp: ts, data: Array(bytes[(o + 28)..<(o + 28 + cap)]), originalLength: orig))
            default: break
            }
            o += total
        }
    }
}

/// Runs a program and collects its output.
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// The path of a program on PATH, or nil.
func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("miniport-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}
