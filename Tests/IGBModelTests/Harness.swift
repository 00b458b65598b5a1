import DeviceAccess
import IGBModel
import Testing

/// Register offsets and bits as a driver knows them (82576 datasheet §8), kept separate from the
/// model's own table so a wrong offset shows up as a failing test.
enum R {
    static let CTRL = 0x0000, STATUS = 0x0008, EEC = 0x0010, EERD = 0x0014, CTRL_EXT = 0x0018, MDIC = 0x0020
    static let ICR = 0x00C0, ICS = 0x00C8, IMS = 0x00D0, IMC = 0x00D8, RCTL = 0x0100, TCTL = 0x0400
    static let GPIE = 0x1514, EICS = 0x1520, EIMS = 0x1524, EIMC = 0x1528, EIAC = 0x152C, EIAM = 0x1530, EICR = 0x1580
    static func EITR(_ n: Int) -> Int { 0x1680 + 4 * n }
    static func IVAR(_ n: Int) -> Int { 0x1700 + 4 * n }
    static let IVAR_MISC = 0x1740, VFRE = 0x0C8C, VFTE = 0x0C90, DTXSWC = 0x3500
    static let RXCSUM = 0x5000, RLPML = 0x5004, MTA = 0x5200, VFTA = 0x5600, MRQC = 0x5818, VT_CTL = 0x581C
    static func RAL(_ n: Int) -> Int { n < 16 ? 0x5400 + 8 * n : 0x54E0 + 8 * (n - 16) }
    static func RAH(_ n: Int) -> Int { RAL(n) + 4 }
    static func VMOLR(_ n: Int) -> Int { 0x5AD0 + 4 * n }
    static func VLVF(_ n: Int) -> Int { 0x5D00 + 4 * n }
    static let RETA = 0x5C00, RSSRK = 0x5C80
    static func RDBAL(_ q: Int) -> Int { 0xC000 + 0x40 * q }
    static func RDBAH(_ q: Int) -> Int { 0xC004 + 0x40 * q }
    static func RDLEN(_ q: Int) -> Int { 0xC008 + 0x40 * q }
    static func SRRCTL(_ q: Int) -> Int { 0xC00C + 0x40 * q }
    static func RDH(_ q: Int) -> Int { 0xC010 + 0x40 * q }
    static func RDT(_ q: Int) -> Int { 0xC018 + 0x40 * q }
    static func RXDCTL(_ q: Int) -> Int { 0xC028 + 0x40 * q }
    static func RQDPC(_ q: Int) -> Int { 0xC030 + 0x40 * q }
    static func TDBAL(_ q: Int) -> Int { 0xE000 + 0x40 * q }
    static func TDBAH(_ q: Int) -> Int { 0xE004 + 0x40 * q }
    static func TDLEN(_ q: Int) -> Int { 0xE008 + 0x40 * q }
    static func TDH(_ q: Int) -> Int { 0xE010 + 0x40 * q }
    static func TDT(_ q: Int) -> Int { 0xE018 + 0x40 * q }
    static func TXDCTL(_ q: Int) -> Int { 0xE028 + 0x40 * q }
    static func TDWBAL(_ q: Int) -> Int { 0xE038 + 0x40 * q }
    static func TDWBAH(_ q: Int) -> Int { 0xE03C + 0x40 * q }
    static let MPC = 0x4010, ROC = 0x40AC, RNBC = 0x40A0, GPRC = 0x4074, BPRC = 0x4078, MPRC = 0x407C, GPTC = 0x4080
    static let GORCL = 0x4088, GORCH = 0x408C, GOTCL = 0x4090, GOTCH = 0x4094, TPR = 0x40D0

    static let CTRL_SLU: UInt32 = 1 << 6, CTRL_RST: UInt32 = 1 << 26, CTRL_VME: UInt32 = 1 << 30
    static let STATUS_LU: UInt32 = 1 << 1
    static let RCTL_EN: UInt32 = 1 << 1, RCTL_UPE: UInt32 = 1 << 3, RCTL_MPE: UInt32 = 1 << 4, RCTL_LPE: UInt32 = 1 << 5
    static let RCTL_BAM: UInt32 = 1 << 15, RCTL_VFE: UInt32 = 1 << 18, RCTL_SECRC: UInt32 = 1 << 26
    static let TCTL_EN: UInt32 = 1 << 1, TCTL_PSP: UInt32 = 1 << 3
    static let QUEUE_ENABLE: UInt32 = 1 << 25
    static let DESCTYPE_ONEBUF: UInt32 = 1 << 25, DESCTYPE_SPLIT: UInt32 = 2 << 25, DESCTYPE_SPLIT_ALWAYS: UInt32 = 5 << 25
    static let DROP_EN: UInt32 = 1 << 31
    static let RAH_AV: UInt32 = 1 << 31
    static let ICR_LSC: UInt32 = 1 << 2
    static let GPIE_MSIX_MODE: UInt32 = 1 << 4, GPIE_EIAME: UInt32 = 1 << 30
    static let VMOLR_AUPE: UInt32 = 1 << 24, VMOLR_ROMPE: UInt32 = 1 << 25, VMOLR_BAM: UInt32 = 1 << 27, VMOLR_STRVLAN: UInt32 = 1 << 30
    static let VMOLR_RSSE: UInt32 = 1 << 17
    static let RXCSUM_PCSD: UInt32 = 1 << 13
    static let RX_DD: UInt32 = 1, RX_EOP: UInt32 = 2, RX_VP: UInt32 = 8, RX_UDPCS: UInt32 = 0x10, RX_L4CS: UInt32 = 0x20
    static let RX_IPCS: UInt32 = 0x40, RX_L4E: UInt32 = 1 << 29, RX_IPE: UInt32 = 1 << 30
    // Advanced TX descriptor bits.
    static let TX_DTYP_DATA: UInt32 = 3 << 20, TX_DTYP_CTXT: UInt32 = 2 << 20
    static let TX_EOP: UInt32 = 1 << 24, TX_IFCS: UInt32 = 1 << 25, TX_RS: UInt32 = 1 << 27, TX_DEXT: UInt32 = 1 << 29
    static let TX_VLE: UInt32 = 1 << 30, TX_IXSM: UInt32 = 1 << 8, TX_TXSM: UInt32 = 1 << 9
    static let TUCMD_IPV4: UInt32 = 1 << 10, TUCMD_TCP: UInt32 = 1 << 11
}

/// One advanced RX write-back, decoded.
struct RxWriteBack {
    var dword0: UInt32, hiDword: UInt32, staterr: UInt32, length: Int, vlan: UInt16
    var rssType: UInt32 { dword0 & 0xF }
    var packetType: UInt32 { dword0 & 0xFFF0 }
    var headerLength: Int { Int((dword0 >> 21) & 0x3FF) }
    var sph: Bool { dword0 & (1 << 31) != 0 }
    var done: Bool { staterr & R.RX_DD != 0 }
    var eop: Bool { staterr & R.RX_EOP != 0 }
}

/// A receive ring with one packet buffer (and optionally one header buffer) per descriptor.
struct RxRing {
    let queue: Int
    let count: Int
    let bufferSize: Int
    let headerSize: Int
    let ring: DMARegion
    let buffers: DMARegion
    let headers: DMARegion?

    func writeBack(_ i: Int) -> RxWriteBack {
        let d = ring.unsafeBaseAddress + i * 16
        return RxWriteBack(dword0: d.load(as: UInt32.self), hiDword: d.load(fromByteOffset: 4, as: UInt32.self),
                           staterr: d.load(fromByteOffset: 8, as: UInt32.self),
                           length: Int(d.load(fromByteOffset: 12, as: UInt16.self)),
                           vlan: d.load(fromByteOffset: 14, as: UInt16.self))
    }

    func packet(_ i: Int, length: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: buffers.unsafeBaseAddress + i * bufferSize, count: length))
    }

    func header(_ i: Int, length: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: headers!.unsafeBaseAddress + i * headerSize, count: length))
    }

    /// Rewrites descriptor i in read format (a driver refilling it).
    func refill(_ i: Int) {
        let d = ring.unsafeBaseAddress + i * 16
        d.storeBytes(of: buffers.iova(atOffset: i * bufferSize)!, as: UInt64.self)
        d.storeBytes(of: headers.map { $0.iova(atOffset: i * headerSize)! } ?? 0, toByteOffset: 8, as: UInt64.self)
    }
}

/// A transmit ring plus one buffer per descriptor.
struct TxRing {
    let queue: Int
    let count: Int
    let ring: DMARegion
    let buffers: DMARegion
    static let bufferSize = 16384

    func status(_ i: Int) -> UInt32 { (ring.unsafeBaseAddress + i * 16).load(fromByteOffset: 12, as: UInt32.self) }

    /// Writes an advanced data descriptor whose buffer holds `bytes`.
    func data(_ i: Int, _ bytes: [UInt8], cmd: UInt32 = R.TX_EOP | R.TX_RS | R.TX_IFCS, olinfo: UInt32 = 0) {
        let buffer = buffers.unsafeBaseAddress + i * Self.bufferSize
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        let d = ring.unsafeBaseAddress + i * 16
        d.storeBytes(of: buffers.iova(atOffset: i * Self.bufferSize)!, as: UInt64.self)
        d.storeBytes(of: R.TX_DTYP_DATA | R.TX_DEXT | cmd | UInt32(bytes.count), toByteOffset: 8, as: UInt32.self)
        d.storeBytes(of: olinfo | UInt32(bytes.count) << 14, toByteOffset: 12, as: UInt32.self)
    }

    /// Writes an advanced context descriptor.
    func context(_ i: Int, vlan: UInt16 = 0, macLength: Int = 14, ipLength: Int = 20, tucmd: UInt32 = 0, index: UInt32 = 0) {
        let d = ring.unsafeBaseAddress + i * 16
        d.storeBytes(of: UInt32(vlan) << 16 | UInt32(macLength) << 9 | UInt32(ipLength), as: UInt32.self)
        d.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        d.storeBytes(of: R.TX_DTYP_CTXT | R.TX_DEXT | tucmd, toByteOffset: 8, as: UInt32.self)
        d.storeBytes(of: index << 4, toByteOffset: 12, as: UInt32.self)
    }
}

/// Drives a model the way a miniport would: config space, registers, DMA memory from `function.dma`.
final class Harness {
    static let mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
    let function: IGBModelFunction
    var model: IGBModel { function.model }
    let regs: IGBModelRegisters
    var iommu: ModelIOMMU { model.iommu }

    init(fidelity: IGBModel.Fidelity = .datasheet, deviations: IGBModel.Deviations? = nil,
         mac: [UInt8] = Harness.mac, fifoFrames: Int = 64) throws {
        function = try IGBModel.makeFunction(configuration: .init(
            permanentAddress: mac, fidelity: fidelity, deviations: deviations, receiveFIFOFrames: fifoFrames))
        regs = try function.registers(bar: 0)
    }

    func read(_ offset: Int) -> UInt32 { regs.read32(offset) }
    func write(_ offset: Int, _ value: UInt32) { regs.write32(offset, value) }

    /// Bus master, SLU, PHY autonegotiation restart through MDIC, wait for link.
    func linkUp() throws {
        try function.enableBusMaster()
        write(R.CTRL, read(R.CTRL) | R.CTRL_SLU)
        restartAutonegotiation()
        model.advance(nanoseconds: model.configuration.linkUpDelayNanoseconds)
        #expect(read(R.STATUS) & R.STATUS_LU != 0, "link should be up after autonegotiation")
    }

    func restartAutonegotiation() {
        // PHY address 1, register 0 (control): AN enable | restart AN, opcode write.
        write(R.MDIC, 0x1000 | 0x0200 | 0 << 16 | 1 << 21 | 1 << 26)
    }

    func mdicRead(_ register: Int, phy: UInt32 = 1) -> UInt32 {
        write(R.MDIC, UInt32(register) << 16 | phy << 21 | 2 << 26)
        return read(R.MDIC)
    }

    /// Programs RX queue `queue`: ring, buffers, SRRCTL, enable, tail.
    func setupRX(queue: Int = 0, count: Int = 8, bufferKiB: Int = 2, headerSize: Int = 0,
                 descType: UInt32 = R.DESCTYPE_ONEBUF, dropEnable: Bool = false) throws -> RxRing {
        let ring = try iommu.allocateDMA(length: count * 16, contiguous: true)
        let buffers = try iommu.allocateDMA(length: count * bufferKiB * 1024, contiguous: true)
        let headers = headerSize > 0 ? try iommu.allocateDMA(length: count * headerSize, contiguous: true) : nil
        let rx = RxRing(queue: queue, count: count, bufferSize: bufferKiB * 1024, headerSize: headerSize,
                        ring: ring, buffers: buffers, headers: headers)
        for i in 0..<count { rx.refill(i) }
        let iova = ring.segments[0].iova
        write(R.RDBAL(queue), UInt32(truncatingIfNeeded: iova))
        write(R.RDBAH(queue), UInt32(truncatingIfNeeded: iova >> 32))
        write(R.RDLEN(queue), UInt32(count * 16))
        write(R.SRRCTL(queue), descType | UInt32(bufferKiB) | UInt32(headerSize / 64) << 8 | (dropEnable ? R.DROP_EN : 0))
        write(R.RXDCTL(queue), read(R.RXDCTL(queue)) | R.QUEUE_ENABLE)
        write(R.RDH(queue), 0)
        write(R.RDT(queue), UInt32(count - 1))
        return rx
    }

    func setupTX(queue: Int = 0, count: Int = 8) throws -> TxRing {
        let ring = try iommu.allocateDMA(length: count * 16, contiguous: true)
        let buffers = try iommu.allocateDMA(length: count * TxRing.bufferSize, contiguous: true)
        let iova = ring.segments[0].iova
        write(R.TDBAL(queue), UInt32(truncatingIfNeeded: iova))
        write(R.TDBAH(queue), UInt32(truncatingIfNeeded: iova >> 32))
        write(R.TDLEN(queue), UInt32(count * 16))
        write(R.TDH(queue), 0)
        write(R.TDT(queue), 0)
        write(R.TXDCTL(queue), read(R.TXDCTL(queue)) | R.QUEUE_ENABLE)
        write(R.TCTL, read(R.TCTL) | R.TCTL_EN)
        return TxRing(queue: queue, count: count, ring: ring, buffers: buffers)
    }

    /// RCTL.EN with the given extra bits (SECRC by default, so lengths are frame lengths).
    func enableReceive(_ bits: UInt32 = R.RCTL_SECRC | R.RCTL_BAM) {
        write(R.RCTL, R.RCTL_EN | bits)
    }

    /// Writes RAL/RAH[n] for `mac` with AV and the given pool bits.
    func setAddress(_ n: Int, _ mac: [UInt8], pools: UInt32 = 0) {
        write(R.RAL(n), UInt32(mac[0]) | UInt32(mac[1]) << 8 | UInt32(mac[2]) << 16 | UInt32(mac[3]) << 24)
        write(R.RAH(n), UInt32(mac[4]) | UInt32(mac[5]) << 8 | pools << 18 | R.RAH_AV)
    }

    /// Descriptors the device completed on a ring (DD set), counted from 0.
    func completed(_ rx: RxRing) -> Int {
        (0..<rx.count).filter { rx.writeBack($0).done }.count
    }
}

// MARK: frame builders

enum Frames {
    static let broadcast: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    static let peer: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01]

    static func ethernet(to dst: [UInt8], from src: [UInt8] = peer, type: UInt16 = 0x88B5, vlan: UInt16? = nil, payload: [UInt8]) -> [UInt8] {
        var f = dst + src
        if let vlan { f += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)] }
        f += [UInt8(type >> 8), UInt8(type & 0xFF)]
        return f + payload
    }

    static func checksum(_ bytes: ArraySlice<UInt8>, initial: UInt32 = 0) -> UInt16 {
        var sum = initial
        var i = bytes.startIndex
        while i + 1 < bytes.endIndex { sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.endIndex { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// IPv4 + UDP/TCP with correct checksums (or zeroed ones when `checksums` is false).
    static func ipv4(to dst: [UInt8] = Harness.mac, src: [UInt8] = [66, 9, 149, 187], dstIP: [UInt8] = [161, 142, 100, 80],
                     srcPort: UInt16 = 2794, dstPort: UInt16 = 1766, tcp: Bool = false, payload: [UInt8] = Array(repeating: 0xAB, count: 18),
                     vlan: UInt16? = nil, checksums: Bool = true) -> [UInt8] {
        var l4: [UInt8]
        if tcp {
            l4 = [UInt8(srcPort >> 8), UInt8(srcPort & 0xFF), UInt8(dstPort >> 8), UInt8(dstPort & 0xFF),
                  0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0x00, 0, 0, 0, 0] + payload
        } else {
            let len = 8 + payload.count
            l4 = [UInt8(srcPort >> 8), UInt8(srcPort & 0xFF), UInt8(dstPort >> 8), UInt8(dstPort & 0xFF),
                  UInt8(len >> 8), UInt8(len & 0xFF), 0, 0] + payload
        }
        let total = 20 + l4.count
        var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0x12, 0x34, 0x40, 0, 64, tcp ? 6 : 17, 0, 0] + src + dstIP
        if checksums {
            let c = checksum(ip[...])
            ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xFF)
            let pseudo = src + dstIP + [0, tcp ? 6 : 17, UInt8(l4.count >> 8), UInt8(l4.count & 0xFF)]
            var sum: UInt32 = 0
            var j = 0
            while j < pseudo.count { sum += UInt32(pseudo[j]) << 8 | UInt32(pseudo[j + 1]); j += 2 }
            let c4 = checksum(l4[...], initial: sum)
            let at = tcp ? 16 : 6
            l4[at] = UInt8(c4 >> 8); l4[at + 1] = UInt8(c4 & 0xFF)
        }
        return ethernet(to: dst, type: 0x0800, vlan: vlan, payload: ip + l4)
    }

    /// True when the IPv4 header and TCP/UDP checksums of `frame` verify.
    static func checksumsValid(_ frame: [UInt8], l3: Int = 14) -> Bool {
        let ihl = Int(frame[l3] & 0xF) * 4
        guard checksum(frame[l3..<(l3 + ihl)]) == 0 else { return false }
        let total = Int(frame[l3 + 2]) << 8 | Int(frame[l3 + 3])
        let l4 = frame[(l3 + ihl)..<(l3 + total)]
        let pseudo = Array(frame[(l3 + 12)..<(l3 + 20)]) + [0, frame[l3 + 9], UInt8(l4.count >> 8), UInt8(l4.count & 0xFF)]
        var sum: UInt32 = 0
        var j = 0
        while j < pseudo.count { sum += UInt32(pseudo[j]) << 8 | UInt32(pseudo[j + 1]); j += 2 }
        return checksum(l4, initial: sum) == 0
    }
}
