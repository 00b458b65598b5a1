// Register offsets and bit definitions of the Intel 82576 (and the I350, which keeps the same
// layout for everything this driver touches), named as in the 82576 GbE Controller Datasheet.
// Only definitions live here; the logic that uses them is in the IGB+*.swift files.
//
// Section numbers refer to the 82576 datasheet: chapter 7 (inline functions: receive, transmit,
// VMDq/virtualization, RSS), chapter 8 (programming interface: one register per subsection).

/// BAR0 register offsets (§8.1, "Register Summary").
enum IGBReg {
    /// Device Control (§8.2.1).
    static let CTRL = 0x0000
    /// Device Status (§8.2.2).
    static let STATUS = 0x0008
    /// EEPROM/Flash Control (§8.2.3).
    static let EEC = 0x0010
    /// EEPROM Read (§8.2.4).
    static let EERD = 0x0014
    /// Extended Device Control (§8.2.5).
    static let CTRL_EXT = 0x0018
    /// MDI Control: access to the PHY's registers (§8.2.6).
    static let MDIC = 0x0020
    /// VLAN Ether Type (§8.2.8).
    static let VET = 0x0038

    /// Interrupt Cause Read (§8.8.1).
    static let ICR = 0x00C0
    /// Interrupt Mask Set/Read (§8.8.4).
    static let IMS = 0x00D0
    /// Interrupt Mask Clear (§8.8.5).
    static let IMC = 0x00D8
    /// General Purpose Interrupt Enable (§8.8.14).
    static let GPIE = 0x1514
    /// Extended Interrupt Cause Set (§8.8.10).
    static let EICS = 0x1520
    /// Extended Interrupt Mask Set/Read (§8.8.11).
    static let EIMS = 0x1524
    /// Extended Interrupt Mask Clear (§8.8.12).
    static let EIMC = 0x1528
    /// Extended Interrupt Auto Clear (§8.8.13).
    static let EIAC = 0x152C
    /// Extended Interrupt Auto Mask Enable (§8.8.15).
    static let EIAM = 0x1530
    /// Extended Interrupt Cause Read (§8.8.9).
    static let EICR = 0x1580
    /// Extended Interrupt Throttle, one per MSI-X vector (§8.8.16).
    static func EITR(_ vector: Int) -> Int { 0x1680 + 4 * vector }
    /// Interrupt Vector Allocation: register n maps queues n and n+8 (§8.8.17).
    static func IVAR(_ n: Int) -> Int { 0x1700 + 4 * n }
    /// Interrupt Vector Allocation for other causes (§8.8.18).
    static let IVAR_MISC = 0x1740

    /// Receive Control (§8.10.1).
    static let RCTL = 0x0100
    /// Receive Checksum Control (§8.10.19).
    static let RXCSUM = 0x5000
    /// Receive Long Packet Maximum Length (§8.10.20).
    static let RLPML = 0x5004
    /// Receive Filter Control (§8.10.21).
    static let RFCTL = 0x5008
    /// Multicast Table Array, 128 registers of 32 hash bits (§8.10.14).
    static func MTA(_ n: Int) -> Int { 0x5200 + 4 * n }
    /// Receive Address Low: entries 0–15 at 0x5400, 16–23 at 0x54E0 (§8.10.15).
    static func RAL(_ n: Int) -> Int { n < 16 ? 0x5400 + 8 * n : 0x54E0 + 8 * (n - 16) }
    /// Receive Address High, with the AV and pool-select bits (§8.10.16).
    static func RAH(_ n: Int) -> Int { RAL(n) + 4 }
    /// VLAN Filter Table Array, 128 registers of 32 VLAN bits (§8.10.17).
    static func VFTA(_ n: Int) -> Int { 0x5600 + 4 * n }
    /// Multiple Receive Queues Command: VMDq or RSS mode and the RSS hash fields (§8.10.11).
    static let MRQC = 0x5818
    /// Redirection Table: 32 registers of four one-byte entries (§8.10.13).
    static func RETA(_ n: Int) -> Int { 0x5C00 + 4 * n }
    /// RSS Random Key: 10 registers, key byte 0 in the low byte of register 0 (§8.10.12).
    static func RSSRK(_ n: Int) -> Int { 0x5C80 + 4 * n }

    /// Receive queue registers: queue n at 0xC000 + 0x40·n (queues 0–3 alias 0x2800 + 0x100·n) (§8.10).
    static func rxQueue(_ n: Int) -> Int { 0xC000 + 0x40 * n }
    /// Receive Descriptor Base Address Low (§8.10.5).
    static func RDBAL(_ n: Int) -> Int { rxQueue(n) + 0x00 }
    /// Receive Descriptor Base Address High (§8.10.6).
    static func RDBAH(_ n: Int) -> Int { rxQueue(n) + 0x04 }
    /// Receive Descriptor Ring Length in bytes, a multiple of 128 (§8.10.7).
    static func RDLEN(_ n: Int) -> Int { rxQueue(n) + 0x08 }
    /// Split and Replication Receive Control: buffer sizes and descriptor type (§8.10.2).
    static func SRRCTL(_ n: Int) -> Int { rxQueue(n) + 0x0C }
    /// Receive Descriptor Head (§8.10.8).
    static func RDH(_ n: Int) -> Int { rxQueue(n) + 0x10 }
    /// Receive Descriptor Tail (§8.10.9).
    static func RDT(_ n: Int) -> Int { rxQueue(n) + 0x18 }
    /// Receive Descriptor Control: thresholds and queue enable (§8.10.10).
    static func RXDCTL(_ n: Int) -> Int { rxQueue(n) + 0x28 }
    /// Receive Queue Drop Packet Count (§8.19.?; clear on read).
    static func RQDPC(_ n: Int) -> Int { rxQueue(n) + 0x30 }

    /// Transmit Control (§8.12.1).
    static let TCTL = 0x0400
    /// Transmit queue registers: queue n at 0xE000 + 0x40·n (queues 0–3 alias 0x3800 + 0x100·n) (§8.12).
    static func txQueue(_ n: Int) -> Int { 0xE000 + 0x40 * n }
    /// Transmit Descriptor Base Address Low (§8.12.5).
    static func TDBAL(_ n: Int) -> Int { txQueue(n) + 0x00 }
    /// Transmit Descriptor Base Address High (§8.12.6).
    static func TDBAH(_ n: Int) -> Int { txQueue(n) + 0x04 }
    /// Transmit Descriptor Ring Length in bytes, a multiple of 128 (§8.12.7).
    static func TDLEN(_ n: Int) -> Int { txQueue(n) + 0x08 }
    /// Transmit Descriptor Head (§8.12.8).
    static func TDH(_ n: Int) -> Int { txQueue(n) + 0x10 }
    /// Transmit Descriptor Tail (§8.12.9).
    static func TDT(_ n: Int) -> Int { txQueue(n) + 0x18 }
    /// Transmit Descriptor Control: thresholds and queue enable (§8.12.10).
    static func TXDCTL(_ n: Int) -> Int { txQueue(n) + 0x28 }
    /// Transmit Descriptor Completion Write-Back Address Low (§8.12.11).
    static func TDWBAL(_ n: Int) -> Int { txQueue(n) + 0x38 }
    /// Transmit Descriptor Completion Write-Back Address High (§8.12.12).
    static func TDWBAH(_ n: Int) -> Int { txQueue(n) + 0x3C }

    /// VF Receive Enable: one bit per VMDq pool (§8.14.5).
    static let VFRE = 0x0C8C
    /// VF Transmit Enable: one bit per VMDq pool (§8.14.6).
    static let VFTE = 0x0C90
    /// DMA Transmit Switch Control: VMDq loopback and anti-spoofing (§8.14.8).
    static let DTXSWC = 0x3500
    /// VMDq Control: default pool (§8.10.22).
    static let VT_CTL = 0x581C
    /// VM Offload Control, one per pool: broadcast/multicast/untagged acceptance, VLAN strip (§8.10.23).
    static func VMOLR(_ pool: Int) -> Int { 0x5AD0 + 4 * pool }
    /// VLAN VM Filter: 32 entries of VLAN id + pool-select bits (§8.10.24).
    static func VLVF(_ n: Int) -> Int { 0x5D00 + 4 * n }
    /// VM VLAN Insert, one per pool (§8.14.10).
    static func VMVIR(_ pool: Int) -> Int { 0x3700 + 4 * pool }
    /// Unicast Table Array (VMDq hash filter) (§8.10.25).
    static func UTA(_ n: Int) -> Int { 0xA000 + 4 * n }

    // Statistics (§8.19). Clear on read; the 64-bit octet pairs clear when the high half is read.
    /// CRC Error Count (§8.19.1).
    static let CRCERRS = 0x4000
    /// RX Error Count (§8.19.4).
    static let RXERRC = 0x400C
    /// Missed Packets Count: dropped for lack of packet buffer space (§8.19.5).
    static let MPC = 0x4010
    /// Receive Length Error Count (§8.19.14).
    static let RLEC = 0x4040
    /// Good Packets Received Count (§8.19.24).
    static let GPRC = 0x4074
    /// Broadcast Packets Received Count (§8.19.25).
    static let BPRC = 0x4078
    /// Multicast Packets Received Count (§8.19.26).
    static let MPRC = 0x407C
    /// Good Packets Transmitted Count (§8.19.27).
    static let GPTC = 0x4080
    /// Good Octets Received Count, low/high (§8.19.28).
    static let GORCL = 0x4088, GORCH = 0x408C
    /// Good Octets Transmitted Count, low/high (§8.19.29).
    static let GOTCL = 0x4090, GOTCH = 0x4094
    /// Receive No Buffers Count (§8.19.30).
    static let RNBC = 0x40A0
    /// Receive Undersize / Fragment / Oversize / Jabber Count (§8.19.31–34).
    static let RUC = 0x40A4, RFC = 0x40A8, ROC = 0x40AC, RJC = 0x40B0
    /// Total Octets Received / Transmitted, low/high (§8.19.38–39).
    static let TORL = 0x40C0, TORH = 0x40C4, TOTL = 0x40C8, TOTH = 0x40CC
    /// Total Packets Received / Transmitted (§8.19.40–41).
    static let TPR = 0x40D0, TPT = 0x40D4
    /// Multicast / Broadcast Packets Transmitted Count (§8.19.48–49).
    static let MPTC = 0x40F0, BPTC = 0x40F4
    /// First and last offset of the contiguous statistics block (§8.19).
    static let statisticsFirst = 0x4000, statisticsLast = 0x4124
}

/// CTRL bits (§8.2.1).
enum CTRL {
    /// Full duplex.
    static let FD: UInt32 = 1 << 0
    /// GIO Master Disable: stop issuing new DMA requests.
    static let GIO_MASTER_DISABLE: UInt32 = 1 << 2
    /// Set Link Up.
    static let SLU: UInt32 = 1 << 6
    /// Force speed / force duplex.
    static let FRCSPD: UInt32 = 1 << 11, FRCDPX: UInt32 = 1 << 12
    /// Device (software) reset; self-clearing.
    static let RST: UInt32 = 1 << 26
    /// VLAN Mode Enable: strip/insert 802.1Q tags outside VMDq mode.
    static let VME: UInt32 = 1 << 30
    /// PHY reset.
    static let PHY_RST: UInt32 = 1 << 31
}

/// STATUS bits (§8.2.2).
enum STATUS {
    /// Full duplex.
    static let FD: UInt32 = 1 << 0
    /// Link up.
    static let LU: UInt32 = 1 << 1
    /// Link speed, bits 7:6 (00 10 Mb/s, 01 100 Mb/s, 1x 1000 Mb/s).
    static let SPEED_SHIFT: UInt32 = 6, SPEED_MASK: UInt32 = 3 << 6
    /// GIO Master Enable: the function still has DMA requests outstanding.
    static let GIO_MASTER_ENABLE: UInt32 = 1 << 19
}

/// EEC bits (§8.2.3).
enum EEC {
    /// EEPROM present.
    static let PRES: UInt32 = 1 << 8
    /// EEPROM auto-read done: the MAC address and configuration words are loaded.
    static let AUTO_RD: UInt32 = 1 << 9
}

/// MDIC fields (§8.2.6).
enum MDIC {
    /// Data, bits 15:0.
    static let DATA_MASK: UInt32 = 0xFFFF
    /// PHY register address, bits 20:16.
    static let REGADD_SHIFT: UInt32 = 16
    /// PHY address, bits 25:21.
    static let PHYADD_SHIFT: UInt32 = 21
    /// Opcode write (01b) / read (10b), bits 27:26.
    static let OP_WRITE: UInt32 = 1 << 26, OP_READ: UInt32 = 2 << 26
    /// Ready: the PHY completed the transaction.
    static let READY: UInt32 = 1 << 28
    /// Error: the PHY did not answer.
    static let E: UInt32 = 1 << 30
    /// The internal PHY's MDIO address.
    static let internalPHYAddress: UInt32 = 1
}

/// PHY registers reached through MDIC (IEEE 802.3 clause 22; §8.23, PHY registers).
enum PHYReg {
    /// PHY Control Register (PCTRL / BMCR).
    static let PCTRL: UInt32 = 0
    /// PHY Status Register (PSTATUS / BMSR).
    static let PSTATUS: UInt32 = 1
}

/// PHY Control Register bits (§8.23.1).
enum PCTRL {
    /// Restart auto-negotiation (self-clearing).
    static let RESTART_AUTO_NEG: UInt16 = 1 << 9
    /// Auto-negotiation enable.
    static let AUTO_NEG_EN: UInt16 = 1 << 12
    /// PHY soft reset (self-clearing).
    static let RESET: UInt16 = 1 << 15
}

/// RCTL bits (§8.10.1).
enum RCTL {
    /// Receiver enable.
    static let EN: UInt32 = 1 << 1
    /// Store bad packets.
    static let SBP: UInt32 = 1 << 2
    /// Unicast / multicast promiscuous (ignored by VMDq pool selection).
    static let UPE: UInt32 = 1 << 3, MPE: UInt32 = 1 << 4
    /// Long packet enable (frames beyond 1522 bytes, up to RLPML).
    static let LPE: UInt32 = 1 << 5
    /// Multicast offset, bits 13:12: which destination bits index the MTA (00b: bits 47:36).
    static let MO_SHIFT: UInt32 = 12
    /// Broadcast accept mode.
    static let BAM: UInt32 = 1 << 15
    /// VLAN filter enable: tagged frames must hit VFTA (and VLVF in VMDq mode).
    static let VFE: UInt32 = 1 << 18
    /// Strip Ethernet CRC from received frames.
    static let SECRC: UInt32 = 1 << 26
}

/// SRRCTL fields (§8.10.2).
enum SRRCTL {
    /// Packet buffer size in KB, bits 6:0.
    static let BSIZEPACKET_SHIFT: UInt32 = 0
    /// Header buffer size in 64-byte units, bits 11:8 (so at most 960 bytes).
    static let BSIZEHEADER_SHIFT: UInt32 = 8
    /// Receive descriptor minimum threshold size, bits 24:20, in units of 16 descriptors.
    static let RDMTS_SHIFT: UInt32 = 20
    /// Descriptor type, bits 27:25: advanced one buffer (001b).
    static let DESCTYPE_ADV_ONEBUF: UInt32 = 1 << 25
    /// Descriptor type: advanced header split, split when a split point is found (010b).
    static let DESCTYPE_HDR_SPLIT: UInt32 = 2 << 25
    /// Descriptor type: advanced header split always (101b).
    static let DESCTYPE_HDR_SPLIT_ALWAYS: UInt32 = 5 << 25
    /// Drop packets when no descriptor is available (per queue).
    static let DROP_EN: UInt32 = 1 << 31
}

/// RXDCTL / TXDCTL bits (§8.10.10, §8.12.10).
enum XDCTL {
    /// Prefetch / host / write-back thresholds, bits 4:0, 12:8, 20:16.
    static let PTHRESH_SHIFT: UInt32 = 0, HTHRESH_SHIFT: UInt32 = 8, WTHRESH_SHIFT: UInt32 = 16
    /// Queue enable; reads back 1 once the queue is running and 0 once it stopped.
    static let ENABLE: UInt32 = 1 << 25
    /// Software flush (receive).
    static let SWFLUSH: UInt32 = 1 << 26
}

/// RXCSUM bits (§8.10.19).
enum RXCSUM {
    /// IPv4 header checksum offload.
    static let IPOFLD: UInt32 = 1 << 8
    /// TCP/UDP checksum offload.
    static let TUOFLD: UInt32 = 1 << 9
    /// Packet checksum disable: the write-back's high dword carries the RSS hash instead.
    static let PCSD: UInt32 = 1 << 13
}

/// MRQC fields (§8.10.11).
enum MRQC {
    /// Multiple receive queues mode, bits 2:0: RSS only (010b).
    static let MODE_RSS: UInt32 = 0b010
    /// Multiple receive queues mode: VMDq pools, no RSS (011b).
    static let MODE_VMDQ: UInt32 = 0b011
    /// Mode field mask.
    static let MODE_MASK: UInt32 = 0b111
    /// RSS hash fields.
    static let RSS_FIELD_IPV4_TCP: UInt32 = 1 << 16
    static let RSS_FIELD_IPV4: UInt32 = 1 << 17
    static let RSS_FIELD_IPV6_TCP_EX: UInt32 = 1 << 18
    static let RSS_FIELD_IPV6_EX: UInt32 = 1 << 19
    static let RSS_FIELD_IPV6: UInt32 = 1 << 20
    static let RSS_FIELD_IPV6_TCP: UInt32 = 1 << 21
    static let RSS_FIELD_IPV4_UDP: UInt32 = 1 << 22
    static let RSS_FIELD_IPV6_UDP: UInt32 = 1 << 23
    static let RSS_FIELD_IPV6_UDP_EX: UInt32 = 1 << 24
}

/// RAH bits (§8.10.16).
enum RAH {
    /// Pool select, bits 25:18: one bit per VMDq pool (pool n at bit 18+n).
    static let POOLSEL_SHIFT: UInt32 = 18
    static let POOLSEL_MASK: UInt32 = 0xFF << 18
    /// Address valid.
    static let AV: UInt32 = 1 << 31
}

/// VT_CTL fields (§8.10.22).
enum VT_CTL {
    /// Default pool, bits 9:7: where unicast frames that match no pool go.
    static let DEF_PL_SHIFT: UInt32 = 7
    static let DEF_PL_MASK: UInt32 = 0x7 << 7
    /// Disable the default pool (unmatched unicast is dropped).
    static let DIS_DEF_POOL: UInt32 = 1 << 29
}

/// VMOLR bits, one register per pool (§8.10.23).
enum VMOLR {
    /// Long packet maximum length for the pool, bits 13:0.
    static let RLPML_MASK: UInt32 = 0x3FFF
    /// Accept long packets (up to RLPML).
    static let LPE: UInt32 = 1 << 16
    /// RSS inside the pool.
    static let RSSE: UInt32 = 1 << 17
    /// Accept untagged packets (when VLAN filtering is on).
    static let AUPE: UInt32 = 1 << 24
    /// Accept multicast that hits the MTA hash.
    static let ROMPE: UInt32 = 1 << 25
    /// Accept unicast that hits the UTA hash.
    static let ROPE: UInt32 = 1 << 26
    /// Accept broadcast.
    static let BAM: UInt32 = 1 << 27
    /// Multicast promiscuous for the pool.
    static let MPME: UInt32 = 1 << 28
    /// Strip the VLAN tag into the descriptor.
    static let STRVLAN: UInt32 = 1 << 30
    /// Strip the CRC.
    static let STRCRC: UInt32 = 1 << 31
}

/// VLVF fields (§8.10.24).
enum VLVF {
    /// VLAN id, bits 11:0.
    static let VLANID_MASK: UInt32 = 0xFFF
    /// Pool select, bits 19:12.
    static let POOLSEL_SHIFT: UInt32 = 12
    static let POOLSEL_MASK: UInt32 = 0xFF << 12
    /// Entry valid.
    static let VI_EN: UInt32 = 1 << 31
}

/// TCTL bits (§8.12.1).
enum TCTL {
    /// Transmit enable.
    static let EN: UInt32 = 1 << 1
    /// Pad short packets to 64 bytes.
    static let PSP: UInt32 = 1 << 3
    /// Collision threshold, bits 11:4 (the datasheet's recommended value is 0xF).
    static let CT_SHIFT: UInt32 = 4
    /// Collision distance, bits 21:12 (0x3F for full duplex).
    static let COLD_SHIFT: UInt32 = 12
    /// Re-transmit on late collision.
    static let RTLC: UInt32 = 1 << 24
}

/// GPIE bits (§8.8.14).
enum GPIE {
    /// Non-selective interrupt clear on read.
    static let NSICR: UInt32 = 1 << 0
    /// MSI-X mode: EICR bits name vectors.
    static let MULTIPLE_MSIX: UInt32 = 1 << 4
    /// Extended interrupt auto-mask enable.
    static let EIAME: UInt32 = 1 << 30
    /// PBA support: the pending bit array reflects EICR.
    static let PBA: UInt32 = 1 << 31
}

/// IVAR fields (§8.8.17): one byte per cause, vector number in bits 4:0 and a valid bit.
enum IVAR {
    /// Entry valid.
    static let VALID: UInt32 = 0x80
    /// Byte positions in IVAR(n): RX queue n, TX queue n, RX queue n+8, TX queue n+8.
    static let RX_LOW_SHIFT: UInt32 = 0, TX_LOW_SHIFT: UInt32 = 8, RX_HIGH_SHIFT: UInt32 = 16, TX_HIGH_SHIFT: UInt32 = 24
    /// IVAR_MISC: "other" causes (link status change) in bits 15:8.
    static let MISC_OTHER_SHIFT: UInt32 = 8
}

/// ICR / IMS bits (§8.8.1).
enum ICR {
    /// Transmit descriptor written back.
    static let TXDW: UInt32 = 1 << 0
    /// Link status change.
    static let LSC: UInt32 = 1 << 2
    /// Receive descriptor minimum threshold.
    static let RXDMT0: UInt32 = 1 << 4
    /// Receiver overrun (a frame did not fit the ring).
    static let RXO: UInt32 = 1 << 6
    /// Receive descriptor written back.
    static let RXDW: UInt32 = 1 << 7
}

/// Advanced receive descriptor, read format (§7.1.5.1): two little-endian quadwords.
///
///     0: packet buffer address            8: header buffer address (bit 0 must be 0: it is DD)
enum AdvancedRxRead {
    static let packetAddress = 0
    static let headerAddress = 8
    static let size = 16
}

/// Advanced receive descriptor, write-back format (§7.1.5.2).
///
///     dword 0: RSS type 3:0 | packet type 16:4 | HDR_LEN 30:21 | SPH 31
///     dword 1: RSS hash (RXCSUM.PCSD = 1) or IP id + checksum
///     dword 2: extended status 19:0 | extended errors 31:20
///     dword 3: packet length 15:0 | VLAN tag 31:16
enum AdvancedRxWriteBack {
    static let infoOffset = 0
    static let hashOffset = 4
    static let statusErrorOffset = 8
    static let lengthOffset = 12
    static let vlanOffset = 14

    /// RSS type, dword 0 bits 3:0 (0: no hash).
    static let RSS_TYPE_MASK: UInt32 = 0xF
    /// Header length, dword 0 bits 30:21.
    static let HDR_LEN_SHIFT: UInt32 = 21
    static let HDR_LEN_MASK: UInt32 = 0x3FF
    /// Split header: the header buffer holds HDR_LEN bytes of this frame.
    static let SPH: UInt32 = 1 << 31

    // Extended status (dword 2).
    /// Descriptor done.
    static let DD: UInt32 = 1 << 0
    /// End of packet.
    static let EOP: UInt32 = 1 << 1
    /// 802.1Q tag stripped into the VLAN field.
    static let VP: UInt32 = 1 << 3
    /// UDP checksum calculated.
    static let UDPCS: UInt32 = 1 << 4
    /// TCP (L4) checksum calculated.
    static let L4CS: UInt32 = 1 << 5
    /// IPv4 header checksum calculated.
    static let IPCS: UInt32 = 1 << 6
    // Extended errors (dword 2).
    /// Header buffer overflow: the header did not fit the header buffer (frame not split).
    static let HBO: UInt32 = 1 << 23
    /// CRC / symbol / sequence / carrier-extension errors.
    static let CE: UInt32 = 1 << 24, SE: UInt32 = 1 << 25, SEQ: UInt32 = 1 << 26, CXE: UInt32 = 1 << 28
    /// TCP/UDP checksum error.
    static let L4E: UInt32 = 1 << 29
    /// IPv4 checksum error.
    static let IPE: UInt32 = 1 << 30
    /// RX data error.
    static let RXE: UInt32 = 1 << 31
    /// Errors that make the frame unusable.
    static let frameErrors: UInt32 = CE | SE | SEQ | CXE | RXE
}

/// RSS type values in the receive write-back (§7.1.5.2).
enum RSSType {
    static let none: UInt32 = 0x0
    static let tcpIPv4: UInt32 = 0x1
    static let ipv4: UInt32 = 0x2
    static let tcpIPv6: UInt32 = 0x3
    static let ipv6Ex: UInt32 = 0x4
    static let ipv6: UInt32 = 0x5
    static let tcpIPv6Ex: UInt32 = 0x6
    static let udpIPv4: UInt32 = 0x7
    static let udpIPv6: UInt32 = 0x8
    static let udpIPv6Ex: UInt32 = 0x9
}

/// Advanced transmit data descriptor (§7.2.2.3): buffer address, then cmd_type_len, then olinfo_status.
enum AdvancedTxData {
    static let addressOffset = 0
    static let cmdTypeLenOffset = 8
    static let olinfoStatusOffset = 12
    static let size = 16

    /// Data length, cmd_type_len bits 15:0.
    static let DTALEN_MASK: UInt32 = 0xFFFF
    /// Descriptor type data (0011b), bits 23:20.
    static let DTYP_DATA: UInt32 = 0x3 << 20
    /// Descriptor type context (0010b), bits 23:20.
    static let DTYP_CONTEXT: UInt32 = 0x2 << 20
    /// DCMD: end of packet.
    static let EOP: UInt32 = 1 << 24
    /// DCMD: insert FCS.
    static let IFCS: UInt32 = 1 << 25
    /// DCMD: report status (write DD back).
    static let RS: UInt32 = 1 << 27
    /// DCMD: descriptor extension (advanced format).
    static let DEXT: UInt32 = 1 << 29
    /// DCMD: VLAN packet enable (insert the context's VLAN tag).
    static let VLE: UInt32 = 1 << 30
    /// DCMD: TCP segmentation enable.
    static let TSE: UInt32 = 1 << 31

    /// olinfo_status: DD in the written-back STA field, bit 0.
    static let DD: UInt32 = 1 << 0
    /// olinfo_status: context index, bits 6:4.
    static let IDX_SHIFT: UInt32 = 4
    /// olinfo_status: POPTS insert IP checksum (IXSM) and L4 checksum (TXSM), bits 8 and 9.
    static let POPTS_IXSM: UInt32 = 1 << 8
    static let POPTS_TXSM: UInt32 = 1 << 9
    /// olinfo_status: payload length, bits 31:14.
    static let PAYLEN_SHIFT: UInt32 = 14
}

/// Advanced transmit context descriptor (§7.2.2.2).
///
///     dword 0: IPLEN 8:0 | MACLEN 15:9 | VLAN 31:16
///     dword 1: reserved (seqnum/seed)
///     dword 2: TUCMD 19:9 | DTYP 23:20 | DEXT 29
///     dword 3: IDX 6:4 | L4LEN 15:8 | MSS 31:16
enum AdvancedTxContext {
    static let vlanMacIPLensOffset = 0
    static let seqnumSeedOffset = 4
    static let typeTucmdOffset = 8
    static let mssL4LenIdxOffset = 12

    static let MACLEN_SHIFT: UInt32 = 9
    static let VLAN_SHIFT: UInt32 = 16
    /// TUCMD: IPv4 (1) / IPv6 (0).
    static let TUCMD_IPV4: UInt32 = 1 << 10
    /// TUCMD: L4 type, bits 12:11: UDP 00b, TCP 01b.
    static let TUCMD_L4T_UDP: UInt32 = 0 << 11
    static let TUCMD_L4T_TCP: UInt32 = 1 << 11
    /// mss_l4len_idx: context index, bits 6:4.
    static let IDX_SHIFT: UInt32 = 4
}

/// PCI ids of the functions this miniport drives.
public enum IGBDeviceID {
    /// Intel.
    public static let vendor: UInt16 = 0x8086
    /// 82576 copper (what QEMU's `-device igb` and the hardware model present).
    public static let i82576: UInt16 = 0x10C9
    /// I350 copper, fiber, SerDes, SGMII.
    public static let i350Copper: UInt16 = 0x1521
    public static let i350Fiber: UInt16 = 0x1522
    public static let i350SerDes: UInt16 = 0x1523
    public static let i350SGMII: UInt16 = 0x1524

    /// Every device id the miniport claims, with a name and whether it was verified.
    public static let supported: [(id: UInt16, name: String, verified: Bool)] = [
        (i82576, "82576 Gigabit Network Connection", true),
        (i350Copper, "I350 Gigabit Network Connection (copper)", false),
        (i350Fiber, "I350 Gigabit Fiber Network Connection", false),
        (i350SerDes, "I350 Gigabit Backplane Connection", false),
        (i350SGMII, "I350 Gigabit Connection (SGMII)", false),
    ]

    /// True if the miniport drives `vendor:device`.
    public static func isSupported(vendor: UInt16, device: UInt16) -> Bool {
        vendor == IGBDeviceID.vendor && supported.contains { $0.id == device }
    }
}
