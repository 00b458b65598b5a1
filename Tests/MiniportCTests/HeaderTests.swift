import CMiniportHeader
import Foundation
import MiniportC
import MiniportRegistry
import NDIS
import Testing

/// The header compiles strictly as C and C++, and the C API's errors are the CLI's messages.
@Suite struct CAPIHeaderTests {
    static let include = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/CMiniportHeader/include").standardized.path

    /// Runs `compiler` on a file that includes miniport.h and uses a few of its types.
    func compile(_ compiler: String, _ flags: [String], suffix: String) throws -> (Int32, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("capi-header-\(getpid())-\(suffix)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = dir.appendingPathComponent("use.\(suffix)")
        try """
        #include <miniport.h>
        int use(mp_adapter *a) {
            mp_statistics s;
            mp_nbl_info i;
            (void)i;
            return mp_statistics_get(a, MP_ALL_QUEUES, &s) == MP_OK ? (int)s.received_frames : -1;
        }
        """.write(to: source, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [compiler] + flags + ["-I", CAPIHeaderTests.include, "-fsyntax-only", source.path]
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (p.terminationStatus, text)
    }

    @Test func theHeaderCompilesAsStrictC11() throws {
        let (rc, err) = try compile("cc", ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"], suffix: "c")
        #expect(rc == 0, "cc -std=c11 on miniport.h: \(err)")
    }

    @Test func theHeaderCompilesAsStrictCxx17() throws {
        let (rc, err) = try compile("c++", ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"], suffix: "cpp")
        #expect(rc == 0, "c++ -std=c++17 on miniport.h: \(err)")
    }

    @Test func aBadPCIAddressFailsWithTheCLIMessage() {
        var a: OpaquePointer?
        let s = mpAdapterOpenDevice("0000:zz:00.0", &a)
        #expect(s == MP_ERR_BAD_ADDRESS)
        #expect(a == nil)
        #expect(String(cString: mp_last_error()) == OpenError.badAddress("0000:zz:00.0").description)
    }

    @Test func anAbsentDeviceFailsNamingIt() {
        var a: OpaquePointer?
        let s = mpAdapterOpenDevice("0000:ff:1f.7", &a)
        #expect(s == MP_ERR_NO_DEVICE)
        #expect(String(cString: mp_last_error()).contains("0000:ff:1f.7"))
    }

    @Test func aTapWithABadNameFailsWithATapError() {
        var o = mp_model_options()
        let name = strdup("capi-name-far-too-long-for-ifnamsiz")
        defer { free(name) }
        o.tap = UnsafePointer(name)
        var a: OpaquePointer?
        let s = mpAdapterOpenModel(&o, &a)
        #expect(s == MP_ERR_TAP)
        #expect(a == nil)
        #expect(String(cString: mp_last_error()).contains("--tap"))
    }

    @Test func theModelOpensReportsItsMACAndClosesClean() {
        var a: OpaquePointer?
        #expect(mpAdapterOpenModel(nil, &a) == MP_OK)
        guard let a else { return }
        var mac = [UInt8](repeating: 0, count: 6)
        mpAdapterMAC(a, &mac)
        #expect(mac == AdapterOpener.modelMAC.array)
        #expect(String(cString: mpAdapterName(a)!) == "model0")
        var link = mp_link_state()
        #expect(mpAdapterLinkState(a, &link) == MP_OK)
        var report = mp_halt_report()
        #expect(mpAdapterClose(a, &report) == MP_OK)
        #expect(report.outstanding_nbls == 0 && report.bytes_left_mapped == 0)
    }

    @Test func anAdapterClosedWithNBLsHeldSaysSo() {
        var a: OpaquePointer?
        #expect(mpAdapterOpenModel(nil, &a) == MP_OK)
        guard let a else { return }
        // A binding that keeps what it receives.
        var cb = mp_binding_callbacks()
        cb.receive = { _, _, _, _, _, _ in }
        var b: OpaquePointer?
        #expect(mpBindingOpen(a, &cb, nil, 0, &b) == MP_OK)
        #expect(mpAdapterStart(a) == MP_OK)
        var frame = [UInt8](repeating: 0, count: 60)
        for i in 0..<6 { frame[i] = 0xff }
        #expect(mpModelInject(a, &frame, 60) == MP_OK)
        for _ in 0..<8 { _ = mpAdapterPoll(a, 64) }
        var report = mp_halt_report()
        #expect(mpAdapterClose(a, &report) == MP_ERR_INVALID_STATE)
        #expect(report.outstanding_nbls == 1)
        #expect(String(cString: mp_last_error()).contains("return every NBL"))
    }
}

/// Returns through the C API: only NBLs that were indicated to you and are not yet returned.
@Suite struct CAPIReturnTests {
    final class Held: @unchecked Sendable { var head: OpaquePointer?; var flags: UInt32 = 0 }

    @Test func anNBLReturnedOnceIsNotReturnableAgain() {
        var a: OpaquePointer?
        #expect(mpAdapterOpenModel(nil, &a) == MP_OK)
        guard let a else { return }
        let held = Held()
        var cb = mp_binding_callbacks()
        cb.context = Unmanaged.passUnretained(held).toOpaque()
        cb.receive = { ctx, b, head, _, _, flags in
            let h = Unmanaged<Held>.fromOpaque(ctx!).takeUnretainedValue()
            // Keep the first NBL, give back the rest at once.
            if let rest = mpNBLNext(head) { mpReturnNBLs(b, rest, 0) }
            if h.head == nil { mpNBLSetNext(head, nil); h.head = head; h.flags = flags } else { mpReturnNBLs(b, head, 0) }
        }
        var b: OpaquePointer?
        #expect(mpBindingOpen(a, &cb, nil, 0, &b) == MP_OK)
        #expect(mpAdapterStart(a) == MP_OK)
        var frame = [UInt8](repeating: 0, count: 60)
        for i in 0..<6 { frame[i] = 0xff }
        #expect(mpModelInject(a, &frame, 60) == MP_OK)
        for _ in 0..<8 where held.head == nil { _ = mpAdapterPoll(a, 64) }
        guard let head = held.head else { Issue.record("no frame arrived"); return }
        #expect(held.flags & UInt32(MP_RECEIVE_RESOURCES) == 0)
        mpReturnNBLs(b, head, 0)
        // The same handle again: the library's check (what mp_return_nbls runs) refuses it.
        var rejected = 0
        let again = NetBufferListChain(unsafeReturnedFrom: UnsafeMutableRawPointer(head), rejected: &rejected)
        #expect(rejected == 1)
        let empty = again.isEmpty
        #expect(empty)
        var report = mp_halt_report()
        #expect(mpAdapterClose(a, &report) == MP_OK)
        #expect(report.outstanding_nbls == 0)
    }
}
