import Testing
@testable import NDIS

@Suite("NET_BUFFER_LIST and pools")
struct NetBufferListTests {
    func withSplitNBL(_ body: (NetBufferList) -> Void) {
        let pool = NetBufferListPool(capacity: 2, name: "t")
        let a = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        let b = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { a.deallocate(); b.deallocate() }
        for i in 0..<64 { a.storeBytes(of: UInt8(i), toByteOffset: i, as: UInt8.self); b.storeBytes(of: UInt8(100 + i), toByteOffset: i, as: UInt8.self) }
        var chain = pool.allocate(count: 1)
        let nbl = chain.first!
        nbl.setLayout(segment0: BufferSegment(address: a, iova: 0x1000, length: 20, capacity: 64), dataOffset: 4, dataLength: 16 + 30, sharedMemoryInfoValid: false)
        nbl.appendSegment(BufferSegment(address: b, iova: 0x9000, length: 30, capacity: 64))
        body(nbl)
        pool.free(chain.removeAll { _ in true })
        _ = consume chain
    }

    @Test func dataSpansSegmentsInOrderFromTheDataOffset() {
        withSplitNBL { nbl in
            let bytes = nbl.dataBytes()
            #expect(bytes.count == 46)
            #expect(Array(bytes.prefix(16)) == (4..<20).map { UInt8($0) })
            #expect(Array(bytes.suffix(30)) == (100..<130).map { UInt8($0) })
            #expect(nbl.currentSegment == (0, 4))
        }
    }

    @Test func copyFromAnOffsetSkipsIntoTheRightSegment() {
        withSplitNBL { nbl in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
            defer { buffer.deallocate() }
            // Data is bytes 4..<20 of segment 0, then 100..<130 of segment 1.
            #expect(nbl.copyData(into: buffer, from: 10, count: 10) == 10)
            #expect(Array(buffer.prefix(10)) == (14..<20).map { UInt8($0) } + (100..<104).map { UInt8($0) })
            #expect(nbl.copyData(into: buffer, from: 20) == 26)
            #expect(Array(buffer.prefix(26)) == (104..<130).map { UInt8($0) })
            #expect(nbl.copyData(into: buffer, from: 46) == 0, "past the end copies nothing")
        }
    }

    @Test func advanceAndRetreatMoveTheDataStartWithinBackfill() {
        withSplitNBL { nbl in
            #expect(nbl.advanceDataStart(by: 16))
            #expect(nbl.currentSegment == (1, 0))
            #expect(nbl.byte(at: 0) == 100)
            #expect(nbl.retreatDataStart(by: 20))
            #expect(nbl.dataOffset == 0)
            #expect(!nbl.retreatDataStart(by: 1), "no backfill left: receive buffers are not reallocated")
            #expect(!nbl.advanceDataStart(by: 1000))
        }
    }

    @Test func contiguousViewIsInPlaceWhenPossibleAndCopiedOtherwise() {
        withSplitNBL { nbl in
            let inPlace = nbl.withContiguousData(length: 8, scratch: nil) { $0?.baseAddress }
            #expect(inPlace != nil)
            let noScratch: Bool? = nbl.withContiguousData(length: 20, scratch: nil) { $0 == nil }
            #expect(noScratch == true, "crossing segments without scratch gives nil, as NdisGetDataBuffer")
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
            defer { scratch.deallocate() }
            let copied: [UInt8]? = nbl.withContiguousData(length: 20, scratch: scratch) { Array($0!) }
            #expect(copied == (4..<20).map { UInt8($0) } + (100..<104).map { UInt8($0) })
            let tooLong: Int? = nbl.withContiguousData(length: 47, scratch: scratch) { _ in 1 }
            #expect(tooLong == nil)
        }
    }

    @Test func poolHandsOutEachNBLOnceAndRefusesForeignOnes() {
        let p1 = NetBufferListPool(capacity: 4, name: "a")
        let p2 = NetBufferListPool(capacity: 4, name: "b")
        var c = p1.allocate(count: 10)
        #expect(c.count == 4)
        #expect(p1.freeCount == 0)
        var ids = Set<UInt>()
        c.forEach { ids.insert($0.identity) }
        #expect(ids.count == 4)
        let foreign = p2.free(c.removeAll { _ in true })
        #expect(foreign.count == 4)
        #expect(p2.foreignFrees == 4)
        p1.free(foreign)
        #expect(p1.freeCount == 4)
        _ = consume c
    }

    @Test func chainOperationsKeepOrderAndCount() {
        let p = NetBufferListPool(capacity: 6, name: "c")
        var c = p.allocate(count: 6)
        var i = 0
        c.forEach { $0.info.hashValue = UInt32(i); i += 1 }
        var odd = c.removeAll { $0.info.hashValue % 2 == 1 }
        #expect(c.count == 3 && odd.count == 3)
        var order: [UInt32] = []
        c.append(odd.removeAll { _ in true })
        c.forEach { order.append($0.info.hashValue) }
        #expect(order == [0, 2, 4, 1, 3, 5])
        let first = c.popFirst()
        #expect(first.count == 1 && c.count == 5)
        p.free(first)
        p.free(c.removeAll { _ in true })
        #expect(p.freeCount == 6)
        _ = consume c
        _ = consume odd
    }

    @Test func perPacketInfoRoundTrips() {
        let p = NetBufferListPool(capacity: 1, name: "i")
        var c = p.allocate(count: 1)
        let nbl = c.first!
        var info = NetBufferListInfo()
        info.receiveQueueID = 3
        info.vlanID = 100
        info.vlanPresent = true
        info.userPriority = 5
        info.checksum = [.ipv4Succeeded, .udpSucceeded]
        info.hashValue = 0xdead_beef
        info.hashType = [.udpIPv4, .toeplitz]
        info.frameType = 0x0800
        nbl.info = info
        #expect(nbl.info.vlanID == 100 && nbl.info.userPriority == 5 && nbl.info.checksum.contains(.udpSucceeded))
        #expect(nbl.info.hashType.contains(.toeplitz) && nbl.info.hashValue == 0xdead_beef)
        p.free(c.removeAll { _ in true })
        _ = consume c
    }
}

@Suite("Ownership")
struct OwnershipTests {
    @Test func droppingAChainWithoutReturnTrapsInDebugBuilds() async {
        await #expect(processExitsWith: .failure) {
            let p = NetBufferListPool(capacity: 2, name: "leak")
            let c = p.allocate(count: 2)
            _ = consume c  // dropped without return: the deinit traps
        }
    }

    @Test func droppedChainIsCountedAndRecycledWhenTrapsAreOff() throws {
        NetBufferListLeaks.trapsDisabledForTesting = true
        defer { NetBufferListLeaks.trapsDisabledForTesting = false }
        let rig = try Rig()
        let (_, _) = try rig.queue([.macDestination(macA)])
        final class Dropper: ProtocolDriver {
            func receiveNetBufferLists(_ chain: consuming NetBufferListChain, binding: Binding, queue: ReceiveQueueID, count: Int, flags: ReceiveFlags) {
                _ = consume chain  // a buggy protocol: drops without returning
            }
        }
        rig.binding.close()
        _ = try rig.adapter.openBinding(Dropper())
        let before = NetBufferListLeaks.totalLeaked
        rig.run([frame(to: macA), frame(to: macA)])
        #expect(NetBufferListLeaks.totalLeaked - before == 2)
        #expect(rig.adapter.outstandingNetBufferLists == 2)
        #expect(NDIS.reclaimLeakedNetBufferLists() >= 2)
        #expect(rig.adapter.outstandingNetBufferLists == 0, "recycled back to the miniport")
    }
}
