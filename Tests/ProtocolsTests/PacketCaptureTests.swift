import Foundation
import NDIS
import Testing
@testable import Protocols

@Suite struct PacketCaptureTests {
    /// Opens a capture with queues for mac1, mac2 and VLAN 100, and injects a mixed pattern.
    func captureMixed(limit: Int?, path: String, format: CaptureFormat? = nil) throws -> (PacketCapture, QueueSet, LoopbackBed, [[UInt8]]) {
        let bed = try LoopbackBed()
        let capture = PacketCapture(limit: limit)
        let binding = try bed.adapter.openBinding(capture)
        let set = try QueueSet.allocate([.mac(Addr.mac1), .mac(Addr.mac2), .vlan(100)], on: binding, buffers: 32)
        try capture.start(path: path, format: format, interfaces: set.captureInterfaces)
        var frames: [[UInt8]] = []
        for i in 0..<4 {
            frames.append(FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, length: 60 + i))
            frames.append(FrameBuilder.filler(destination: Addr.mac2, source: Addr.peer, length: 100 + i))
            frames.append(FrameBuilder.filler(destination: Addr.other, source: Addr.peer, vlan: 100, length: 1518))
            frames.append(FrameBuilder.filler(destination: .broadcast, source: Addr.peer, length: 64))
            frames.append(FrameBuilder.filler(destination: Addr.other, source: Addr.peer, length: 70))
        }
        for f in frames { bed.miniport.inject(f) }
        bed.pump()
        return (capture, set, bed, frames)
    }

    @Test func thePcapngHasOneInterfacePerQueueNamedAfterItsFilters() throws {
        let path = temporaryPath("interfaces.pcapng")
        let (capture, set, bed, frames) = try captureMixed(limit: nil, path: path)
        #expect(capture.finish() == nil)
        let file = try PcapFile(path: path)
        #expect(file.isPcapng)
        #expect(file.interfaces.map(\.name) == ["rxq0", "rxq1", "rxq2", "rxq3"])
        #expect(file.interfaces.map(\.description) == ["default", "mac 52:54:00:aa:00:01", "mac 52:54:00:aa:00:02", "vlan 100"])
        #expect(file.interfaces.allSatisfy { $0.linkType == 1 && $0.tsresol == 9 })
        #expect(file.packets.count == frames.count)
        // Every frame is written byte for byte, on its queue's interface.
        for p in file.packets {
            #expect(frames.contains(p.data))
            #expect(p.originalLength == p.data.count)
            let dst = MACAddress(bytes: p.data[0..<6])!
            let expected = dst == Addr.mac1 ? 1 : dst == Addr.mac2 ? 2 : p.data.count == 1518 ? 3 : 0
            #expect(p.interface == expected)
        }
        // Nanosecond timestamps: close to now.
        let now = Clock.realtimeNanoseconds()
        #expect(file.packets.allSatisfy { $0.timestamp <= now && now - $0.timestamp < 60_000_000_000 })
        #expect(capture.counters.frames(queue: ReceiveQueueID(3)) == 4)
        #expect(capture.counters.bytes(queue: ReceiveQueueID(3)) == 4 * 1518)
        #expect(capture.counters.frames(queue: .default) == 8)
        #expect(set.release().isEmpty)
        #expect(bed.halt().isClean)
    }

    @Test func aCountStopsAfterExactlyThatManyFramesAcrossAllQueues() throws {
        let path = temporaryPath("count.pcapng")
        let (capture, set, bed, frames) = try captureMixed(limit: 7, path: path)
        #expect(capture.isComplete)
        #expect(capture.framesWritten == 7)
        #expect(capture.framesNotCaptured == UInt64(frames.count - 7))
        capture.finish()
        let file = try PcapFile(path: path)
        #expect(file.packets.count == 7)
        #expect(capture.counters.totalFrames == 7)
        #expect(capture.counters.totalBytes == UInt64(file.packets.reduce(0) { $0 + $1.data.count }))
        // Every NBL went back to the miniport.
        #expect(bed.adapter.outstandingNetBufferLists == 0)
        set.release()
        #expect(bed.halt().isClean)
    }

    @Test func classicPcapIsWrittenOnRequestWithNanosecondMagic() throws {
        let path = temporaryPath("classic.pcap")
        let (capture, set, bed, frames) = try captureMixed(limit: 5, path: path)
        capture.finish()
        let file = try PcapFile(path: path)
        #expect(!file.isPcapng)
        #expect(file.packets.count == 5)
        #expect(file.packets.allSatisfy { frames.contains($0.data) })
        set.release()
        _ = bed.halt()
    }

    @Test func framesWithAStrippedTagAreWrittenWithTheTag() throws {
        let path = temporaryPath("stripped.pcapng")
        let writer = try CaptureFileWriter(path: path, format: .pcapng, interfaces: [CaptureInterface(queue: .default, description: "default")])
        let tagged = FrameBuilder.filler(destination: Addr.mac1, source: Addr.peer, vlan: 100, length: 1518)
        let h = HandMadeNBL(Array(tagged[0..<12] + tagged[16...]), vlan: 100)
        #expect(writer.write(h.nbl, interface: 0, timestamp: 1_700_000_000_123_456_789) == 1518)
        writer.close()
        let file = try PcapFile(path: path)
        #expect(file.packets.count == 1)
        #expect(file.packets.first?.data == tagged)
        #expect(file.packets.first?.timestamp == 1_700_000_000_123_456_789)
    }

    @Test func aFileThatCannotBeCreatedIsAClearError() {
        #expect(throws: CaptureFileError.self) {
            _ = try CaptureFileWriter(path: "/nonexistent-dir/x.pcapng", format: .pcapng, interfaces: [])
        }
        let e = CaptureFileError.cannotCreate(path: "/nonexistent-dir/x.pcapng", reason: "No such file or directory")
        #expect(e.description.contains("/nonexistent-dir/x.pcapng"))
    }

    @Test func tsharkReadsTheCaptureWithTheExpectedFramesBytesAndInterfaces() throws {
        guard let tshark = which("tshark") else {
            print("skipped: tshark is not installed (Debian package tshark); the pcapng was checked by the built-in reader only")
            return
        }
        let path = temporaryPath("tshark.pcapng")
        let (capture, set, bed, _) = try captureMixed(limit: 12, path: path)
        capture.finish()
        let r = try run(tshark, ["-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "frame.len", "-e", "vlan.id"])
        #expect(r.status == 0, "tshark failed: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(lines.count == 12)
        let bytes = lines.compactMap { Int($0[2]) }.reduce(0, +)
        #expect(UInt64(bytes) == capture.counters.totalBytes)
        for l in lines where l.count >= 4 && l[3] == "100" {
            #expect(l[0] == "rxq3")
            #expect(l[1] == "vlan 100")
        }
        #expect(lines.contains { $0[0] == "rxq1" && $0[1] == "mac 52:54:00:aa:00:01" })
        #expect(lines.contains { $0[0] == "rxq0" && $0[1] == "default" })
        set.release()
        _ = bed.halt()
    }
}
