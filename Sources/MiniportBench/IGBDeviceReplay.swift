import DeviceAccess
import IGBModel
import Synchronization

/// Replays the device side of the IGB benchmarks with no driver: the same `step()` calls and
/// doorbell (RDT/TDT) writes on rings of its own, so that its cost can be subtracted from a full run.
///
/// What it does besides the model's work is the least a ring needs: read DD where the driver would,
/// write a buffer address back into each used receive descriptor, write the tail. That is a few
/// instructions per packet counted as "device", so the driver's share is, if anything, understated
/// by that much (`--instructions` also reports the model's exact inclusive cost in the full run).
enum IGBDeviceReplay {
    /// 82576 register offsets and descriptor bits the replay needs (datasheet §8.10, §8.12, §7.1.5, §7.2.2.3).
    enum Reg {
        static let RDBAL0 = 0xC000, RDBAH0 = 0xC004, RDLEN0 = 0xC008, RDH0 = 0xC010, RDT0 = 0xC018
        static let TDBAL0 = 0xE000, TDBAH0 = 0xE004, TDLEN0 = 0xE008, TDH0 = 0xE010, TDT0 = 0xE018
        /// Advanced RX write-back: extended status DD (dword 2 bit 0).
        static let rxDD: UInt32 = 1
        /// Advanced TX data descriptor: DTYP data, DEXT, IFCS, EOP, RS (cmd_type_len), PAYLEN shift (olinfo).
        static let txData: UInt32 = 0x3 << 20 | 1 << 29 | 1 << 25 | 1 << 24
        static let txRS: UInt32 = 1 << 27
        static let payLenShift: UInt32 = 14
    }

    /// Queue 0's receive ring with one 2 KB buffer per descriptor (descriptor i ↔ buffer i).
    final class Receive {
        let model: IGBModel
        let regs: IGBModelRegisters
        let dma: any DMAAllocator
        let ringRegion: DMARegion
        let bufferRegion: DMARegion
        let descriptors: UnsafeMutableRawPointer
        /// Device address of buffer i.
        let bufferIOVA: UnsafeMutablePointer<UInt64>
        let count: Int
        let mask: Int
        var nextToClean = 0
        var nextToFill = 0
        var posted = 0
        static let refillBatch = 32

        init(_ function: IGBModelFunction, descriptors count: Int) throws(BenchError) {
            model = function.model
            dma = function.dma
            do {
                regs = try function.registers(bar: 0)
                ringRegion = try dma.allocateDMA(length: count * 16, contiguous: true)
                bufferRegion = try dma.allocateDMA(length: count * 2048, contiguous: false)
            } catch { throw .setup("device replay: receive ring: \(error)") }
            self.count = count
            mask = count - 1
            descriptors = ringRegion.unsafeBaseAddress
            bufferIOVA = .allocate(capacity: count)
            for i in 0..<count { bufferIOVA[i] = bufferRegion.iova(atOffset: i * 2048) ?? 0 }
            let base = ringRegion.segments[0].iova
            regs.write32(Reg.RDBAL0, UInt32(truncatingIfNeeded: base))
            regs.write32(Reg.RDBAH0, UInt32(truncatingIfNeeded: base >> 32))
            regs.write32(Reg.RDLEN0, UInt32(count * 16))
            regs.write32(Reg.RDH0, 0)
            regs.write32(Reg.RDT0, 0)
            refill(count - 1)
        }

        /// Steps the model and takes up to `batch` completed descriptors.
        @inline(__always)
        func take(_ batch: Int) -> Int {
            model.step()
            var n = 0
            while n < batch && posted > 0 {
                // Safety: nextToClean < count: inside the ring.
                let status = descriptors.load(fromByteOffset: nextToClean &* 16 &+ 8, as: UInt32.self)
                if UInt32(littleEndian: status) & Reg.rxDD == 0 { break }
                nextToClean = (nextToClean &+ 1) & mask
                posted &-= 1
                n &+= 1
            }
            atomicMemoryFence(ordering: .acquiring)
            return n
        }

        /// Gives used descriptors back when the driver would (a refill batch, or the ring running low).
        @inline(__always)
        func giveBack() {
            let empty = count - 1 - posted
            if empty >= Self.refillBatch || (posted < Self.refillBatch && empty > 0) { refill(empty) }
        }

        func refill(_ n: Int) {
            var fill = nextToFill
            for _ in 0..<n {
                let d = descriptors + fill &* 16
                // Safety: fill < count: inside the ring. Header address 0 also clears DD.
                d.storeBytes(of: bufferIOVA[fill].littleEndian, toByteOffset: 0, as: UInt64.self)
                d.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self)
                fill = (fill &+ 1) & mask
            }
            nextToFill = fill
            posted &+= n
            atomicMemoryFence(ordering: .releasing)
            regs.write32(Reg.RDT0, UInt32(fill))
        }

        func release() {
            try? dma.freeDMA(ringRegion)
            try? dma.freeDMA(bufferRegion)
            bufferIOVA.deallocate()
        }
    }

    /// Queue 0's transmit ring, every descriptor prepared once; sending is a tail write and a step.
    final class Transmit {
        let model: IGBModel
        let regs: IGBModelRegisters
        let dma: any DMAAllocator
        let ringRegion: DMARegion
        let frameRegion: DMARegion?
        let count: Int
        let mask: Int
        var tail = 0

        /// - Parameters:
        ///   - batch: packets per send; RS is set where the driver sets it (every min(batch, 32)).
        ///   - sources: forward: descriptor i sends receive buffer i of this ring (zero copy);
        ///     nil: every descriptor sends one prepared frame.
        init(_ function: IGBModelFunction, descriptors count: Int, batch: Int, sources: Receive?) throws(BenchError) {
            model = function.model
            dma = function.dma
            self.count = count
            mask = count - 1
            do {
                regs = try function.registers(bar: 0)
                ringRegion = try dma.allocateDMA(length: count * 16, contiguous: true)
                frameRegion = sources == nil ? try dma.allocateDMA(length: 4096, contiguous: true) : nil
            } catch { throw .setup("device replay: transmit ring: \(error)") }
            let frame = BenchFrame.udp64
            if let frameRegion {
                // Safety: the region is 4096 bytes, the frame 60.
                frame.withUnsafeBytes { frameRegion.unsafeBaseAddress.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
            }
            let frameIOVA = frameRegion?.segments[0].iova ?? 0
            let report = min(batch, 32)
            let d = ringRegion.unsafeBaseAddress
            for i in 0..<count {
                let address = sources.map { $0.bufferIOVA[i % $0.count] } ?? frameIOVA
                var cmd = Reg.txData | UInt32(frame.count)
                if (i + 1) % report == 0 { cmd |= Reg.txRS }
                // Safety: i < count: inside the ring.
                d.storeBytes(of: address.littleEndian, toByteOffset: i * 16, as: UInt64.self)
                d.storeBytes(of: cmd.littleEndian, toByteOffset: i * 16 + 8, as: UInt32.self)
                d.storeBytes(of: (UInt32(frame.count) << Reg.payLenShift).littleEndian, toByteOffset: i * 16 + 12, as: UInt32.self)
            }
            let base = ringRegion.segments[0].iova
            regs.write32(Reg.TDBAL0, UInt32(truncatingIfNeeded: base))
            regs.write32(Reg.TDBAH0, UInt32(truncatingIfNeeded: base >> 32))
            regs.write32(Reg.TDLEN0, UInt32(count * 16))
            regs.write32(Reg.TDH0, 0)
            regs.write32(Reg.TDT0, 0)
        }

        /// Hands `n` prepared descriptors to the device and lets it send them.
        @inline(__always)
        func send(_ n: Int) {
            guard n > 0 else { return }
            tail = (tail &+ n) & mask
            atomicMemoryFence(ordering: .releasing)
            regs.write32(Reg.TDT0, UInt32(tail))
            model.step()
        }

        func release() {
            try? dma.freeDMA(ringRegion)
            if let frameRegion { try? dma.freeDMA(frameRegion) }
        }
    }
}
