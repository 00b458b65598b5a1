import DeviceAccess
import NDIS
import Synchronization

/// Software counters of one receive ring (64-bit, never cleared).
public struct IGBQueueCounters: Sendable, Equatable {
    public var frames: UInt64 = 0
    public var bytes: UInt64 = 0
    public var broadcast: UInt64 = 0
    public var multicast: UInt64 = 0
    /// Write-backs that failed validation (length, errors, missing EOP); the buffers were recycled.
    public var badWriteBacks: UInt64 = 0
    /// Frames dropped because no NBL was free (should stay 0: the pool holds one NBL per buffer).
    public var noNetBufferList: UInt64 = 0
    /// Frames indicated with NDIS_RECEIVE_FLAGS_RESOURCES because protocols held most buffers.
    public var resourcesIndications: UInt64 = 0
}

/// One receive ring and its buffers. A plain struct of pointers and counters: the hot path reads
/// and writes it in place through `IGBMiniport.rx`, with no reference counting.
///
///     descriptor slots:   [ nextToClean … nextToFill )  posted: owned by hardware
///                         [ nextToFill … nextToClean )  empty: no buffer (one slot always stays
///                                                       empty, so RDH == RDT means "ring empty")
///     buffers:            posted (slotBuffer) | free (freeStack) | held by protocols (`held`)
struct IGBReceiveRing {
    /// This ring's slot in `IGBMiniport.rx` (encoded in buffer cookies).
    var slot = 0
    /// The hardware queue (= VMDq pool for slots 0–7).
    var hardwareQueue = 0
    /// The NDIS queue the ring indicates on.
    var queueID = ReceiveQueueID.default
    var active = false
    /// SRRCTL header split: every descriptor also carries a header buffer.
    var split = false

    var descriptors: UnsafeMutableRawPointer?
    var descriptorIOVA: UInt64 = 0
    var count = 0
    var mask = 0
    var nextToClean = 0
    var nextToFill = 0
    var posted = 0
    /// Buffer index posted in each descriptor slot.
    var slotBuffer: UnsafeMutablePointer<UInt32>?
    /// Free buffer indices (a stack).
    var freeStack: UnsafeMutablePointer<UInt32>?
    var freeCount = 0
    /// Buffers indicated to protocols and not yet returned.
    var held = 0

    var bufferCount = 0
    var bufferSize = 0
    var buffers: UnsafeMutableRawPointer?
    var bufferIOVA: UnsafeMutablePointer<UInt64>?
    var bufferMemory = SharedMemoryHandle.none
    var headerSize = 0
    /// The lookahead size the queue's protocol asked for (≤ headerSize); 0 without split.
    var lookahead = 0
    var headerStride = 0
    var headers: UnsafeMutableRawPointer?
    var headerIOVA: UnsafeMutablePointer<UInt64>?
    var headerMemory = SharedMemoryHandle.none

    /// The NBL pool of this ring (kept alive by the adapter until halt).
    var pool: Unmanaged<NetBufferListPool>?
    /// Dropping the rest of an over-long frame, up to its EOP.
    var discarding = false
    /// Below this many buffers (posted + free) a batch is indicated with RESOURCES.
    var lowWater = 0
    var counters = IGBQueueCounters()
    /// NBL i of the ring's pool is bound to buffer i (as NDIS miniports preallocate one NBL per
    /// receive buffer): entry i holds it while buffer i is free or posted, and is empty while the
    /// NBL is indicated. Receiving takes the NBL out of its entry, a return puts it back: no pool
    /// traffic per frame, and segment 0 (address, IOVA, cookie) is written once at setup.
    /// Entry i is 1 while NBL i of `pool` is parked here (taken from the pool, in no chain).
    var parked: UnsafeMutablePointer<UInt8>?
    var nblCount = 0

    /// Frees the ring's own tables (not the shared memory); bound NBLs go back to the pool.
    mutating func releaseTables() {
        if let parked {
            if let pool {
                let p = pool.takeUnretainedValue()
                var all = NetBufferListChain()
                for i in 0..<nblCount where parked[i] != 0 { _ = p.unsafeAppendParked(i, to: &all) }
                let foreign = p.free(all)
                precondition(foreign.isEmpty, "a bound NBL of rx slot \(slot) is not from its pool")
            }
            parked.deallocate()
            self.parked = nil
            nblCount = 0
        }
        slotBuffer?.deallocate(); slotBuffer = nil
        freeStack?.deallocate(); freeStack = nil
        bufferIOVA?.deallocate(); bufferIOVA = nil
        headerIOVA?.deallocate(); headerIOVA = nil
        descriptors = nil
        buffers = nil
        headers = nil
        pool = nil
        active = false
        posted = 0
        freeCount = 0
        held = 0
    }
}

/// Buffer cookies: ring slot in bits 27:24, buffer index in bits 22:0; bit 23 marks a segment
/// whose buffer is recycled through another segment of the same NBL.
enum IGBCookie {
    static let noRecycle: UInt32 = 1 << 23
    static let indexMask: UInt32 = (1 << 23) - 1
    @inline(__always) static func make(slot: Int, buffer: UInt32) -> UInt32 { UInt32(slot) << 24 | buffer }
}

/// Receive packet buffer size: SRRCTL.BSIZEPACKET in KB; 2 KB divides every page size, so a
/// buffer never straddles two IOVA segments.
let igbReceiveBufferSize = 2048

extension IGBMiniport {
    // MARK: - Setup (control path)

    /// Allocates a ring's shared memory, programs the queue's registers (§4.5.9) and fills it.
    /// - Parameters:
    ///   - slot: ring slot in `rx`.
    ///   - hardwareQueue: receive queue 0–15.
    ///   - queue: NDIS queue whose shared memory this is and on which frames are indicated.
    ///   - descriptors: ring size, a power of two.
    ///   - buffers: receive buffers (≥ descriptors).
    ///   - headerSize: header buffer bytes for header split (0: one buffer per descriptor).
    ///   - lookahead: the requested lookahead size (≤ headerSize; default: headerSize).
    func setUpReceiveRing(slot: Int, hardwareQueue: Int, queue: ReceiveQueueID,
                          descriptors: Int, buffers: Int, headerSize: Int, lookahead: Int? = nil) throws {
        precondition(!rx[slot].active, "ring slot \(slot) is already in use")
        let split = headerSize > 0
        let headerStride = split ? max(64, 1 << (64 - UInt64(headerSize - 1).leadingZeroBitCount)) : 0
        var memory: [SharedMemory] = []
        do {
            let ring = try handle.allocateSharedMemory(queue: queue, length: descriptors * AdvancedRxRead.size,
                                                       usage: .receive, flags: .contiguous)
            memory.append(ring)
            let data = try handle.allocateSharedMemory(queue: queue, length: buffers * igbReceiveBufferSize, usage: .receive)
            memory.append(data)
            var header: SharedMemory?
            if split {
                let h = try handle.allocateSharedMemory(queue: queue, length: buffers * headerStride, usage: .receiveLookahead)
                memory.append(h)
                header = h
            }
            ringMemory[slot] = memory
            let pool = takePool(slot: slot, capacity: buffers, queue: queue)

            let r = rx + slot
            r.pointee.releaseTables()
            r.pointee.hardwareQueue = hardwareQueue
            r.pointee.queueID = queue
            r.pointee.split = split
            r.pointee.descriptors = ring.unsafeVirtualAddress
            r.pointee.descriptorIOVA = ring.scatterGatherList[0].iova
            r.pointee.count = descriptors
            r.pointee.mask = descriptors - 1
            r.pointee.nextToClean = 0
            r.pointee.nextToFill = 0
            r.pointee.posted = 0
            r.pointee.bufferCount = buffers
            r.pointee.bufferSize = igbReceiveBufferSize
            r.pointee.buffers = data.unsafeVirtualAddress
            r.pointee.bufferMemory = data.sharedMemoryHandle
            r.pointee.headerSize = split ? headerSize : 0
            r.pointee.lookahead = split ? min(headerSize, lookahead ?? headerSize) : 0
            r.pointee.headerStride = headerStride
            r.pointee.headers = header?.unsafeVirtualAddress
            r.pointee.headerMemory = header?.sharedMemoryHandle ?? .none
            r.pointee.pool = Unmanaged.passUnretained(pool)
            r.pointee.discarding = false
            r.pointee.lowWater = max(configuration.refillBatch, buffers / 8)
            r.pointee.counters = IGBQueueCounters()

            let slotBuffer = UnsafeMutablePointer<UInt32>.allocate(capacity: descriptors)
            slotBuffer.initialize(repeating: 0, count: descriptors)
            let freeStack = UnsafeMutablePointer<UInt32>.allocate(capacity: buffers)
            let iovas = UnsafeMutablePointer<UInt64>.allocate(capacity: buffers)
            for i in 0..<buffers {
                // Stack order: buffer 0 on top, so buffer i goes to descriptor i on the first fill.
                freeStack[buffers - 1 - i] = UInt32(i)
                iovas[i] = data.region.iova(atOffset: i * igbReceiveBufferSize) ?? 0
            }
            r.pointee.slotBuffer = slotBuffer
            r.pointee.freeStack = freeStack
            r.pointee.freeCount = buffers
            r.pointee.bufferIOVA = iovas
            bindNetBufferLists(r, pool: pool, data: data)
            if let header {
                let hiovas = UnsafeMutablePointer<UInt64>.allocate(capacity: buffers)
                for i in 0..<buffers { hiovas[i] = header.region.iova(atOffset: i * headerStride) ?? 0 }
                r.pointee.headerIOVA = hiovas
            }
            // Safety: the ring block is `descriptors * 16` bytes, just allocated.
            ring.unsafeVirtualAddress.initializeMemory(as: UInt8.self, repeating: 0, count: descriptors * AdvancedRxRead.size)
        } catch {
            for m in memory { try? handle.freeSharedMemory(m.allocationHandle) }
            ringMemory[slot] = []
            rx[slot].releaseTables()
            throw error
        }
        try programReceiveQueue(slot: slot)
    }

    /// Takes every NBL of the ring's pool and binds NBL i to buffer i (segment 0 prepared for a
    /// one-buffer frame; header-split and multi-buffer frames rewrite the layout per frame).
    func bindNetBufferLists(_ r: UnsafeMutablePointer<IGBReceiveRing>, pool: NetBufferListPool, data: SharedMemory) {
        let capacity = pool.capacity
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        table.initialize(repeating: 0, count: capacity)
        var all = pool.allocate(count: capacity)
        while !all.isEmpty {
            var one = all.popFirst()
            guard let nbl = one.first, let i = pool.index(of: nbl), i < r.pointee.bufferCount else {
                // More NBLs than buffers (a reused, larger pool): the rest stay in the pool.
                _ = pool.free(one)
                continue
            }
            let offset = i * r.pointee.bufferSize
            nbl.setLayout(segment0: BufferSegment(address: r.pointee.buffers! + offset, iova: r.pointee.bufferIOVA![i],
                                                  length: 0, capacity: UInt32(r.pointee.bufferSize),
                                                  sharedMemory: data.sharedMemoryHandle, sharedMemoryOffset: UInt32(offset),
                                                  cookie: IGBCookie.make(slot: r.pointee.slot, buffer: UInt32(i))),
                          dataOffset: 0, dataLength: 0, sharedMemoryInfoValid: true)
            let parked = pool.parkFirst(of: &one, ifAt: i)
            precondition(parked && one.isEmpty, "NBL \(i) of rx slot \(r.pointee.slot)'s pool could not be parked")
            table[i] = 1
        }
        r.pointee.parked = table
        r.pointee.nblCount = capacity
    }

    /// §4.5.9 / §8.10: ring base and length, SRRCTL, RXDCTL.ENABLE (and wait for it), then fill.
    func programReceiveQueue(slot: Int) throws {
        let r = rx + slot
        let q = r.pointee.hardwareQueue
        try disableReceiveQueue(hardwareQueue: q)
        precondition(r.pointee.posted == 0, "programming a ring that still has posted buffers")
        r.pointee.nextToClean = 0
        r.pointee.nextToFill = 0
        r.pointee.discarding = false
        let base = r.pointee.descriptorIOVA
        regs.write32(IGBReg.RDBAL(q), UInt32(truncatingIfNeeded: base))
        regs.write32(IGBReg.RDBAH(q), UInt32(truncatingIfNeeded: base >> 32))
        regs.write32(IGBReg.RDLEN(q), UInt32(r.pointee.count * AdvancedRxRead.size))
        var srrctl = UInt32(r.pointee.bufferSize / 1024) << SRRCTL.BSIZEPACKET_SHIFT | SRRCTL.DROP_EN
        if r.pointee.split {
            // "Split always" (§7.1.4, SRRCTL.DESCTYPE 101b): every frame starts in the header
            // buffer; frames no longer than it land there whole. The device splits TCP/UDP after the
            // L4 header and other IP after L3, which can be short of the lookahead size: takeFrame
            // tops the header segment up to the lookahead in software.
            srrctl |= UInt32(r.pointee.headerSize / 64) << SRRCTL.BSIZEHEADER_SHIFT | SRRCTL.DESCTYPE_HDR_SPLIT_ALWAYS
        } else {
            srrctl |= SRRCTL.DESCTYPE_ADV_ONEBUF
        }
        regs.write32(IGBReg.SRRCTL(q), srrctl)
        regs.write32(IGBReg.RDH(q), 0)
        regs.write32(IGBReg.RDT(q), 0)
        regs.write32(IGBReg.RXDCTL(q), XDCTL.ENABLE | 8 << XDCTL.PTHRESH_SHIFT | 8 << XDCTL.HTHRESH_SHIFT | 1 << XDCTL.WTHRESH_SHIFT)
        let on = try waitUntil(timeout: .milliseconds(10)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.RXDCTL(q), "RXDCTL\(q)") & XDCTL.ENABLE != 0
        }
        guard on else { throw IGBError.queueEnableTimeout(device: deviceName, queue: "RXDCTL\(q)", enable: true) }
        r.pointee.active = true
        activeSlots |= 1 << UInt16(slot)
        refill(slot: slot, force: true)
    }

    /// Clears RXDCTL.ENABLE and waits for it to read back 0 (FREE_QUEUE step 1, §4.5.9.1).
    func disableReceiveQueue(hardwareQueue q: Int) throws {
        let rxdctl = try readChecked(IGBReg.RXDCTL(q), "RXDCTL\(q)")
        guard rxdctl & XDCTL.ENABLE != 0 else { return }
        regs.write32(IGBReg.RXDCTL(q), rxdctl & ~XDCTL.ENABLE)
        let off = try waitUntil(timeout: .milliseconds(10)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.RXDCTL(q), "RXDCTL\(q)") & XDCTL.ENABLE == 0
        }
        guard off else { throw IGBError.queueEnableTimeout(device: deviceName, queue: "RXDCTL\(q)", enable: false) }
    }

    /// Stops polling a ring and takes back the buffers posted to it (its DMA is stopped).
    /// Frames already written but not indicated are dropped with their buffers recycled.
    func retireReceiveRing(slot: Int) {
        let r = rx + slot
        activeSlots &= ~(1 << UInt16(slot))
        guard r.pointee.active, let slotBuffer = r.pointee.slotBuffer, let free = r.pointee.freeStack else {
            r.pointee.active = false
            return
        }
        var s = r.pointee.nextToClean
        for _ in 0..<r.pointee.posted {
            free[r.pointee.freeCount] = slotBuffer[s]
            r.pointee.freeCount += 1
            s = (s &+ 1) & r.pointee.mask
        }
        r.pointee.posted = 0
        r.pointee.nextToClean = r.pointee.nextToFill
        r.pointee.active = false
    }

    /// Frees a ring slot's tables and shared memory (queue free, halt).
    func freeRingMemory(slot: Int) {
        rx[slot].releaseTables()
        for m in ringMemory[slot] { try? handle.freeSharedMemory(m.allocationHandle) }
        ringMemory[slot] = []
    }

    /// The slot's NBL pool: the cached one if it is big enough, else a new one (pools live until halt).
    func takePool(slot: Int, capacity: Int, queue: ReceiveQueueID) -> NetBufferListPool {
        if let p = pools[slot], p.capacity >= capacity, p.outstanding == 0 { return p }
        let p = handle.makeNetBufferListPool(capacity: capacity, name: "\(deviceName) rx slot \(slot) (\(queue))", lane: slot)
        pools[slot] = p
        return p
    }

    // MARK: - Hot path

    /// Posts free buffers to empty descriptor slots, in batches, with one tail write per batch.
    /// - Parameter force: post even a batch smaller than `refillBatch`.
    @inline(__always)
    func refill(slot: Int, force: Bool) {
        let r = rx + slot
        guard r.pointee.active, let d = r.pointee.descriptors, let slotBuffer = r.pointee.slotBuffer,
              let free = r.pointee.freeStack, let iova = r.pointee.bufferIOVA else { return }
        let empty = r.pointee.count - 1 - r.pointee.posted
        let n = min(empty, r.pointee.freeCount)
        guard n > 0 else { return }
        let batch = configuration.refillBatch
        if !force && n < batch && r.pointee.posted >= batch { return }
        let headerIOVA = r.pointee.headerIOVA
        let split = r.pointee.split
        let mask = r.pointee.mask
        var fill = r.pointee.nextToFill
        var freeCount = r.pointee.freeCount
        for _ in 0..<n {
            freeCount &-= 1
            let b = free[freeCount]
            let desc = d + fill &* AdvancedRxRead.size
            // Safety: `fill` < count, so the 16 bytes lie inside the descriptor ring.
            desc.storeBytes(of: iova[Int(b)].littleEndian, toByteOffset: AdvancedRxRead.packetAddress, as: UInt64.self)
            // The header address's bit 0 overlays DD: buffers are 64-byte aligned, so writing it
            // (or 0 without split) also clears the previous write-back's DD.
            let h: UInt64 = split ? headerIOVA![Int(b)] : 0
            desc.storeBytes(of: h.littleEndian, toByteOffset: AdvancedRxRead.headerAddress, as: UInt64.self)
            slotBuffer[fill] = b
            fill = (fill &+ 1) & mask
        }
        r.pointee.freeCount = freeCount
        r.pointee.nextToFill = fill
        r.pointee.posted &+= n
        // Descriptors must be visible before the device is told.
        atomicMemoryFence(ordering: .releasing)
        regs.write32(IGBReg.RDT(r.pointee.hardwareQueue), UInt32(fill))
    }

    /// Receives up to `budget` frames from one ring, validates every write-back, and indicates the
    /// good frames on the ring's queue as one chain.
    /// - Returns: frames indicated.
    func receive(slot: Int, budget: Int) -> Int {
        let r = rx + slot
        guard r.pointee.active, let d = r.pointee.descriptors, r.pointee.pool != nil else { return 0 }
        let maxDescriptors = r.pointee.split ? maximumSegmentsPerNetBuffer - 1 : maximumSegmentsPerNetBuffer
        var chain = NetBufferListChain()
        var frames = 0
        var consumed = 0
        var indicatedBuffers = 0
        // Fast path: one-buffer frames on a ring without header split (the common case).
        let oneBuffer = !r.pointee.split
        let maxLength = min(r.pointee.bufferSize, configuration.maxFrameSize + 4)
        let slotBuffer = r.pointee.slotBuffer!
        let parked = r.pointee.parked!
        let poolRef = r.pointee.pool!
        let nblCount = r.pointee.nblCount
        let mask = r.pointee.mask
        // The fast path keeps the ring's indices and the frame counters in locals and stores them
        // once per batch (stores through `r` would make the compiler reload every field per frame).
        var fastBytes: UInt64 = 0
        var fastFrames: UInt64 = 0
        var broadcast: UInt64 = 0
        var multicast: UInt64 = 0
        while frames < budget {
            if oneBuffer && !r.pointee.discarding {
                var posted = r.pointee.posted
                var first = r.pointee.nextToClean
                while frames < budget && posted > 0 {
                    let status = Self.statusError(d, first)
                    if status & AdvancedRxWriteBack.DD == 0 || status & AdvancedRxWriteBack.EOP == 0 { break }
                    // Read the rest of the write-back only after its DD.
                    atomicMemoryFence(ordering: .acquiring)
                    let length = Self.length(d, first)
                    // Safety: first ≤ mask < the slot table's size.
                    let b = slotBuffer[first]
                    let current = first
                    first = (first &+ 1) & mask
                    posted &-= 1
                    consumed &+= 1
                    guard length >= 14, length <= maxLength, status & AdvancedRxWriteBack.frameErrors == 0,
                          Int(b) < nblCount, parked[Int(b)] != 0 else {
                        r.pointee.counters.badWriteBacks &+= 1
                        pushFree(r, b)
                        continue
                    }
                    // Safety: b < nblCount ≤ the pool's capacity, and NBL b is parked (checked).
                    parked[Int(b)] = 0
                    let nbl = poolRef._withUnsafeGuaranteedRef { $0.unsafeAppendParked(Int(b), to: &chain) }
                    nbl.setReceivedLength(length)
                    // Safety: segment 0 is buffer b, which holds `length` ≥ 14 bytes of this frame.
                    let frame = nbl.unsafeFirstSegmentAddress!
                    var info = Self.receiveInfo(d, current, status: status)
                    var type = UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
                    if type == 0x8100 { type = length >= 18 ? UInt16(bigEndian: frame.loadUnaligned(fromByteOffset: 16, as: UInt16.self)) : 0 }
                    info.frameType = type
                    nbl.info = info
                    fastFrames &+= 1
                    fastBytes &+= UInt64(truncatingIfNeeded: length)
                    let b0 = frame.load(as: UInt8.self)
                    if b0 & 1 != 0 {
                        if b0 == 0xFF && frame.loadUnaligned(fromByteOffset: 1, as: UInt16.self) == 0xFFFF {
                            broadcast &+= 1
                        } else {
                            multicast &+= 1
                        }
                    }
                    indicatedBuffers &+= 1
                    frames &+= 1
                }
                r.pointee.nextToClean = first
                r.pointee.posted = posted
                if frames >= budget || posted == 0 { break }
                let status = Self.statusError(d, first)
                if status & AdvancedRxWriteBack.DD == 0 { break }
                // A frame of several descriptors: the general path below.
            }
            let posted = r.pointee.posted
            if posted == 0 { break }
            let first = r.pointee.nextToClean
            // Find the frame's last descriptor; stop if the device has not finished writing it.
            var n = 0
            var s = first
            var complete = false
            while n < posted {
                let status = Self.statusError(d, s)
                if status & AdvancedRxWriteBack.DD == 0 { break }
                n &+= 1
                if status & AdvancedRxWriteBack.EOP != 0 { complete = true; break }
                if n > maxDescriptors { break }
                s = (s &+ 1) & mask
            }
            if !complete && n <= maxDescriptors { break }
            // Read the rest of each write-back only after its DD.
            atomicMemoryFence(ordering: .acquiring)
            indicatedBuffers &+= takeFrame(r, d, first: first, count: n, complete: complete, into: &chain)
            r.pointee.nextToClean = (first &+ n) & mask
            r.pointee.posted &-= n
            consumed &+= n
            if complete { frames &+= 1 }
        }
        r.pointee.counters.frames &+= fastFrames
        r.pointee.counters.bytes &+= fastBytes
        r.pointee.counters.broadcast &+= broadcast
        r.pointee.counters.multicast &+= multicast
        if consumed == 0 { return 0 }
        // Buffers we can still give the hardware; below the low-water mark protocols are holding
        // too many, so this batch is lent only for the call (RESOURCES) and comes straight back.
        let available = r.pointee.posted + r.pointee.freeCount
        let resources = available < r.pointee.lowWater
        refill(slot: slot, force: false)
        let count = chain.count
        guard count > 0 else { return 0 }
        let queue = r.pointee.queueID
        r.pointee.held &+= indicatedBuffers
        if resources {
            r.pointee.counters.resourcesIndications &+= UInt64(count)
            handle.indicateReceiveWithResources(chain, queue: queue, flags: .sharedMemoryInfoValid)
            _ = recycle(chain)
            refill(slot: slot, force: false)
        } else {
            handle.indicateReceive(chain, queue: queue, flags: .sharedMemoryInfoValid)
        }
        return count
    }

    /// Turns `n` written-back descriptors starting at `first` into one NBL appended to `chain`, or
    /// recycles their buffers if any write-back is not trustworthy.
    /// - Returns: buffers now carried by the NBL.
    @inline(__always)
    func takeFrame(_ r: UnsafeMutablePointer<IGBReceiveRing>, _ d: UnsafeMutableRawPointer, first: Int, count n: Int,
                   complete: Bool, into chain: inout NetBufferListChain) -> Int {
        let mask = r.pointee.mask
        let slotBuffer = r.pointee.slotBuffer!
        let bufferSize = r.pointee.bufferSize
        var bad = false
        if !complete {
            // More descriptors than a NET_BUFFER can describe: drop it, and its tail up to EOP.
            r.pointee.discarding = true
            bad = true
        } else if r.pointee.discarding {
            r.pointee.discarding = false
            bad = true
        }
        // Validate: lengths within the buffer, data in every non-final descriptor, no frame errors,
        // a header length within the header buffer, a total between an Ethernet header and the max.
        var headerLength = 0
        if r.pointee.split {
            let info = Self.word(d, first, AdvancedRxWriteBack.infoOffset)
            let h = Int((info >> AdvancedRxWriteBack.HDR_LEN_SHIFT) & AdvancedRxWriteBack.HDR_LEN_MASK)
            if h > r.pointee.headerSize { bad = true } else { headerLength = h }
        }
        var total = headerLength
        var s = first
        var lastStatus: UInt32 = 0
        for i in 0..<n {
            let len = Self.length(d, s)
            if len > bufferSize || (len == 0 && i < n - 1) { bad = true }
            total &+= len
            lastStatus = Self.statusError(d, s)
            s = (s &+ 1) & mask
        }
        let last = (first &+ n &- 1) & mask
        if lastStatus & AdvancedRxWriteBack.frameErrors != 0 { bad = true }
        if total < 14 || total > configuration.maxFrameSize + 4 { bad = true }
        if bad {
            r.pointee.counters.badWriteBacks &+= 1
            recycleDescriptors(r, first: first, count: n)
            return 0
        }
        // The NBL bound to the first descriptor's buffer carries the frame.
        let b0 = Int(slotBuffer[first])
        var one = NetBufferListChain()
        if b0 < r.pointee.nblCount, let parked = r.pointee.parked, parked[b0] != 0, let pool = r.pointee.pool {
            // Safety: b0 < nblCount ≤ the pool's capacity, and NBL b0 is parked (checked).
            parked[b0] = 0
            _ = pool._withUnsafeGuaranteedRef { $0.unsafeAppendParked(b0, to: &one) }
        }
        guard let nbl = one.first else {
            r.pointee.counters.noNetBufferList &+= 1
            recycleDescriptors(r, first: first, count: n)
            return 0
        }
        // Segments: [header buffer] + one per packet buffer with data.
        let ringSlot = r.pointee.slot
        var segments = 0
        var carried = 0
        var firstByte: UnsafeMutableRawPointer?
        var firstLength = 0
        // Bytes moved from descriptor 0's packet buffer into the header buffer (see below).
        var moved = 0
        if headerLength > 0 {
            let b = slotBuffer[first]
            let offset = Int(b) &* r.pointee.headerStride
            let address = r.pointee.headers! + offset
            // The lookahead split rule: the lookahead segment holds min(lookahead, frame) bytes. The
            // device split after the headers (say 42 bytes of UDP/IPv4); move the bytes up to the
            // lookahead from the start of the packet buffer behind them. The header buffer holds
            // headerSize ≥ lookahead bytes, so they fit.
            let len0 = Self.length(d, first)
            if headerLength < r.pointee.lookahead && len0 > 0 {
                moved = min(r.pointee.lookahead &- headerLength, len0)
                // Safety: source [0, moved) lies in buffer b's `len0` written bytes; destination
                // [headerLength, headerLength + moved) ⊂ [0, lookahead) of header buffer b.
                (address + headerLength).copyMemory(from: r.pointee.buffers! + Int(b) &* bufferSize, byteCount: moved)
            }
            firstByte = address
            firstLength = headerLength &+ moved
            // If descriptor 0's packet buffer still carries data, that segment recycles buffer b.
            let shared = len0 > moved ? IGBCookie.noRecycle : 0
            nbl.setLayout(segment0: BufferSegment(address: address, iova: r.pointee.headerIOVA![Int(b)],
                                                  length: UInt32(headerLength &+ moved), capacity: UInt32(r.pointee.headerSize),
                                                  sharedMemory: r.pointee.headerMemory, sharedMemoryOffset: UInt32(offset),
                                                  cookie: IGBCookie.make(slot: ringSlot, buffer: b) | shared),
                          dataOffset: 0, dataLength: total, sharedMemoryInfoValid: true)
            segments = 1
            if shared == 0 { carried &+= 1 }
        }
        s = first
        for i in 0..<n {
            let b = slotBuffer[s]
            // Descriptor 0's packet buffer starts after the bytes moved into the header buffer.
            let skip = i == 0 ? moved : 0
            let len = Self.length(d, s) &- skip
            s = (s &+ 1) & mask
            if len == 0 {
                // Descriptor 0 of a frame held whole in the header buffer: recycled via the header
                // segment. Any other empty buffer goes straight back.
                if !(i == 0 && headerLength > 0) { pushFree(r, b) }
                continue
            }
            let offset = Int(b) &* bufferSize &+ skip
            let address = r.pointee.buffers! + offset
            let segment = BufferSegment(address: address, iova: r.pointee.bufferIOVA![Int(b)] &+ UInt64(skip), length: UInt32(len),
                                        capacity: UInt32(bufferSize &- skip), headroom: UInt32(skip), sharedMemory: r.pointee.bufferMemory,
                                        sharedMemoryOffset: UInt32(offset), cookie: IGBCookie.make(slot: ringSlot, buffer: b))
            if segments == 0 {
                firstByte = address
                firstLength = len
                nbl.setLayout(segment0: segment, dataOffset: 0, dataLength: total, sharedMemoryInfoValid: true)
            } else {
                nbl.appendSegment(segment)
            }
            segments &+= 1
            carried &+= 1
        }
        var info = Self.receiveInfo(d, last, status: lastStatus)
        r.pointee.counters.frames &+= 1
        r.pointee.counters.bytes &+= UInt64(total)
        if let firstByte {
            // NetBufferListFrameType while the header is in cache (NDIS reads it from the frame otherwise).
            if firstLength >= 14 {
                // Safety: the first segment holds at least 14 bytes (checked).
                var type = UInt16(bigEndian: firstByte.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
                if type == 0x8100 {
                    type = firstLength >= 18 ? UInt16(bigEndian: firstByte.loadUnaligned(fromByteOffset: 16, as: UInt16.self)) : 0
                }
                info.frameType = type
            }
            // Safety: the first segment holds at least one byte (total ≥ 14).
            let b0 = firstByte.load(as: UInt8.self)
            if b0 & 1 != 0 {
                if b0 == 0xFF && firstByte.loadUnaligned(fromByteOffset: 1, as: UInt16.self) == 0xFFFF {
                    r.pointee.counters.broadcast &+= 1
                } else {
                    r.pointee.counters.multicast &+= 1
                }
            }
        }
        nbl.info = info
        chain.append(one)
        return carried
    }

    /// Per-packet information from the last descriptor's write-back (§7.1.5.2).
    @inline(__always)
    static func receiveInfo(_ d: UnsafeMutableRawPointer, _ last: Int, status: UInt32) -> NetBufferListInfo {
        var info = NetBufferListInfo()
        if status & AdvancedRxWriteBack.VP != 0 {
            let tag = Self.vlanTag(d, last)
            info.vlanPresent = true
            info.vlanID = tag & 0x0FFF
            info.userPriority = UInt8(truncatingIfNeeded: tag >> 13)
        }
        var checksum: ChecksumInfo = []
        if status & AdvancedRxWriteBack.IPCS != 0 {
            checksum.insert(status & AdvancedRxWriteBack.IPE != 0 ? .ipv4Failed : .ipv4Succeeded)
        }
        if status & AdvancedRxWriteBack.UDPCS != 0 {
            checksum.insert(status & AdvancedRxWriteBack.L4E != 0 ? .udpFailed : .udpSucceeded)
        } else if status & AdvancedRxWriteBack.L4CS != 0 {
            checksum.insert(status & AdvancedRxWriteBack.L4E != 0 ? .tcpFailed : .tcpSucceeded)
        }
        info.checksum = checksum
        let rssType = word(d, last, AdvancedRxWriteBack.infoOffset) & AdvancedRxWriteBack.RSS_TYPE_MASK
        if rssType != RSSType.none {
            info.hashValue = word(d, last, AdvancedRxWriteBack.hashOffset)
            info.hashType = hashType(rssType)
        }
        return info
    }

    /// NDIS hash type for a write-back RSS type.
    @inline(__always)
    static func hashType(_ rssType: UInt32) -> HashType {
        switch rssType {
        case RSSType.tcpIPv4: [.tcpIPv4, .toeplitz]
        case RSSType.ipv4: [.ipv4, .toeplitz]
        case RSSType.tcpIPv6: [.tcpIPv6, .toeplitz]
        case RSSType.ipv6Ex: [.ipv6Ex, .toeplitz]
        case RSSType.ipv6: [.ipv6, .toeplitz]
        case RSSType.tcpIPv6Ex: [.tcpIPv6Ex, .toeplitz]
        case RSSType.udpIPv4: [.udpIPv4, .toeplitz]
        case RSSType.udpIPv6: [.udpIPv6, .toeplitz]
        case RSSType.udpIPv6Ex: [.udpIPv6Ex, .toeplitz]
        default: []
        }
    }

    @inline(__always)
    static func word(_ d: UnsafeMutableRawPointer, _ slot: Int, _ offset: Int) -> UInt32 {
        // Safety: `slot` < ring size and `offset` < 16: inside the descriptor ring.
        UInt32(littleEndian: d.load(fromByteOffset: slot &* AdvancedRxRead.size &+ offset, as: UInt32.self))
    }

    @inline(__always)
    static func statusError(_ d: UnsafeMutableRawPointer, _ slot: Int) -> UInt32 {
        word(d, slot, AdvancedRxWriteBack.statusErrorOffset)
    }

    @inline(__always)
    static func length(_ d: UnsafeMutableRawPointer, _ slot: Int) -> Int {
        // Safety: as in `word`.
        Int(UInt16(littleEndian: d.load(fromByteOffset: slot &* AdvancedRxRead.size &+ AdvancedRxWriteBack.lengthOffset, as: UInt16.self)))
    }

    @inline(__always)
    static func vlanTag(_ d: UnsafeMutableRawPointer, _ slot: Int) -> UInt16 {
        // Safety: as in `word`.
        UInt16(littleEndian: d.load(fromByteOffset: slot &* AdvancedRxRead.size &+ AdvancedRxWriteBack.vlanOffset, as: UInt16.self))
    }

    @inline(__always)
    func pushFree(_ r: UnsafeMutablePointer<IGBReceiveRing>, _ b: UInt32) {
        r.pointee.freeStack![r.pointee.freeCount] = b
        r.pointee.freeCount &+= 1
    }

    /// Gives the buffers of `n` consumed descriptors straight back to the free stack.
    func recycleDescriptors(_ r: UnsafeMutablePointer<IGBReceiveRing>, first: Int, count n: Int) {
        var s = first
        for _ in 0..<n {
            pushFree(r, r.pointee.slotBuffer![s])
            s = (s &+ 1) & r.pointee.mask
        }
    }

    /// Takes back NBLs we indicated: every buffer named by a segment cookie goes to its ring's free
    /// stack, every NBL back into its ring's table (bound to the buffer its segment 0 names).
    /// - Returns: the ring slots that got buffers back (a bit per slot).
    @discardableResult
    func recycle(_ chain: consuming NetBufferListChain) -> UInt16 {
        var touched: UInt16 = 0
        let rings = rx
        var chain = chain
        var strays = NetBufferListChain()
        while let head = chain.first {
            if head.segmentCount == 1 {
                // A run of one-buffer NBLs of one ring, each bound to its buffer (the receive fast
                // path's frames): buffer to the free stack, NBL parked again. The ring's
                // fields are read once per run, not per NBL.
                let slot = Int(head.unsafeSegmentCookie(0) >> 24)
                if slot < Self.ringSlots, let free = rings[slot].freeStack, let parked = rings[slot].parked,
                   let poolRef = rings[slot].pool {
                    let r = rings + slot
                    let bufferCount = r.pointee.bufferCount
                    let expected = UInt32(slot) << 24
                    var freeCount = r.pointee.freeCount
                    let start = freeCount
                    poolRef._withUnsafeGuaranteedRef { pool in
                        while let nbl = chain.first, nbl.segmentCount == 1 {
                            let cookie = nbl.unsafeSegmentCookie(0)
                            let b = Int(cookie & IGBCookie.indexMask)
                            // Same ring, a recyclable buffer, room on the stack, NBL b not parked, and
                            // the NBL is the one bound to buffer b (then it is unlinked and parked).
                            guard cookie & ~IGBCookie.indexMask == expected, b < bufferCount, freeCount < bufferCount,
                                  parked[b] == 0, pool.parkFirst(of: &chain, ifAt: b) else { break }
                            // Safety: b < bufferCount ≤ the parked table's size; freeCount < bufferCount
                            // (the stack's capacity).
                            parked[b] = 1
                            free[freeCount] = UInt32(truncatingIfNeeded: b)
                            freeCount &+= 1
                        }
                    }
                    let returned = freeCount &- start
                    if returned > 0 {
                        r.pointee.freeCount = freeCount
                        r.pointee.held &-= returned
                        touched |= 1 << UInt16(slot)
                        continue
                    }
                }
            }
            var one = chain.popFirst()
            let nbl = one.first!
            let n = nbl.segmentCount
            guard n > 0 else { strays.append(one); continue }
            // Segment 0 names the buffer this NBL is bound to (and, unless marked, a buffer to free).
            let cookie = nbl.segment(0).cookie
            var i = 1
            while true {
                let c = i == 1 ? cookie : nbl.segment(i - 1).cookie
                if c & IGBCookie.noRecycle == 0 {
                    let slot = Int(c >> 24)
                    let b = c & IGBCookie.indexMask
                    if slot < Self.ringSlots {
                        let r = rings + slot
                        if r.pointee.freeStack != nil, Int(b) < r.pointee.bufferCount, r.pointee.freeCount < r.pointee.bufferCount {
                            pushFree(r, b)
                            r.pointee.held &-= 1
                            touched |= 1 << UInt16(slot)
                        }
                    }
                }
                if i == n { break }
                i &+= 1
            }
            // Parked again under the buffer segment 0 names, if this NBL is the one bound there.
            let slot = Int(cookie >> 24)
            let b = Int(cookie & IGBCookie.indexMask)
            if slot < Self.ringSlots, let parked = rings[slot].parked, b < rings[slot].nblCount, parked[b] == 0,
               let pool = rings[slot].pool, pool._withUnsafeGuaranteedRef({ $0.parkFirst(of: &one, ifAt: b) }) {
                parked[b] = 1
                continue
            }
            strays.append(one)
        }
        if !strays.isEmpty {
            // A ring already torn down (its NBLs go back to the pool), or not ours at all (kept out
            // of circulation).
            var remaining = strays
            for p in pools {
                guard let p, !remaining.isEmpty else { continue }
                remaining = p.free(remaining)
            }
            quarantine.append(remaining)
        }
        return touched
    }
}
