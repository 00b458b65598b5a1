import ModelKit
// Register offsets and bits of the 82576 as the model implements them.
// Names follow the 82576 datasheet (§8 "Programming Interface"); offsets are the BAR0 byte offsets.
// The driver has its own copy (Sources/Drivers/IGB); the model deliberately does not share it, so a
// wrong offset in one of them shows up as a test failure instead of cancelling out.

/// BAR0 register offsets (82576 datasheet §8.1, table 8-2).
enum Reg {
    /// Device Control (§8.2.1).
    static let CTRL = 0x0000
    /// Device Status (§8.2.2).
    static let STATUS = 0x0008
    /// EEPROM/Flash Control (EEC, §8.2.3).
    static let EEC = 0x0010
    /// EEPROM Read (§8.2.4).
    static let EERD = 0x0014
    /// Extended Device Control (§8.2.5).
    static let CTRL_EXT = 0x0018
    /// MDI Control, access to the PHY (§8.2.6).
    static let MDIC = 0x0020
    /// VLAN Ether Type (§8.2.8).
    static let VET = 0x0038
    /// Interrupt Cause Read (§8.8.1).
    static let ICR = 0x00C0
    /// Interrupt Cause Set (§8.8.3).
    static let ICS = 0x00C8
    /// Interrupt Mask Set/Read (§8.8.4).
    static let IMS = 0x00D0
    /// Interrupt Mask Clear (§8.8.5).
    static let IMC = 0x00D8
    /// Interrupt Acknowledge Auto Mask (§8.8.6).
    static let IAM = 0x00E0
    /// Receive Control (§8.10.1).
    static let RCTL = 0x0100
    /// Transmit Control (§8.12.1).
    static let TCTL = 0x0400
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
    /// Extended Interrupt Throttle, one per vector (§8.8.16).
    static func EITR(_ n: Int) -> Int { 0x1680 + 4 * n }
    /// Interrupt Vector Allocation, queues n and n+8 (§8.8.17).
    static func IVAR(_ n: Int) -> Int { 0x1700 + 4 * n }
    /// Interrupt Vector Allocation for other causes (§8.8.18).
    static let IVAR_MISC = 0x1740
    /// Receive Packet Buffer Size (§8.10.5).
    static let RXPBS = 0x2404
    /// Transmit Packet Buffer Size (§8.12.9).
    static let TXPBS = 0x3404
    /// VMDq transmit switch control (§8.14.2).
    static let DTXSWC = 0x3500
    /// VM VLAN insert, per pool (§8.14.?).
    static func VMVIR(_ n: Int) -> Int { 0x3700 + 4 * n }
    /// VF receive enable (§8.14.?).
    static let VFRE = 0x0C8C
    /// VF transmit enable.
    static let VFTE = 0x0C90
    /// Receive Checksum Control (§8.10.19).
    static let RXCSUM = 0x5000
    /// Receive Long Packet Maximum Length (§8.10.20).
    static let RLPML = 0x5004
    /// Receive Filter Control (§8.10.21).
    static let RFCTL = 0x5008
    /// Multicast Table Array, 128 entries (§8.10.14).
    static let MTA = 0x5200
    /// Receive Address Low/High, 24 entries: 0–15 at 0x5400, 16–23 at 0x54E0 (§8.10.15).
    static func RAL(_ n: Int) -> Int { n < 16 ? 0x5400 + 8 * n : 0x54E0 + 8 * (n - 16) }
    static func RAH(_ n: Int) -> Int { RAL(n) + 4 }
    /// Packet Split Receive Type, per pool (§8.10.?).
    static func PSRTYPE(_ n: Int) -> Int { 0x5480 + 4 * n }
    /// VLAN Filter Table Array, 128 entries (§8.10.17).
    static let VFTA = 0x5600
    /// Multiple Receive Queues Command (§8.10.11).
    static let MRQC = 0x5818
    /// VMDq control (§8.10.?).
    static let VT_CTL = 0x581C
    /// VM offload control, per pool (§8.10.?).
    static func VMOLR(_ n: Int) -> Int { 0x5AD0 + 4 * n }
    /// Replicated packet offload (§8.10.?).
    static let RPLOLR = 0x5AF0
    /// Redirection table, 32 registers of 4 entries (§8.10.13).
    static let RETA = 0x5C00
    /// RSS random key, 10 registers (§8.10.12).
    static let RSSRK = 0x5C80
    /// VLAN VM filter, 32 entries.
    static func VLVF(_ n: Int) -> Int { 0x5D00 + 4 * n }
    /// Unicast Table Array, 128 entries (VMDq hash filter).
    static let UTA = 0xA000

    // Receive queues: 0xC000 + 0x40·n (queues 0–3 also at 0x2800 + 0x100·n) (§8.10.x).
    static let rxQueueBase = 0xC000
    static let rxQueueStride = 0x40
    static let RDBAL = 0x00, RDBAH = 0x04, RDLEN = 0x08, SRRCTL = 0x0C, RDH = 0x10, RXCTL = 0x14
    static let RDT = 0x18, RXDCTL = 0x28, RQDPC = 0x30
    static func rxq(_ n: Int, _ register: Int) -> Int { rxQueueBase + rxQueueStride * n + register }
    // Transmit queues: 0xE000 + 0x40·n (queues 0–3 also at 0x3800 + 0x100·n) (§8.12.x).
    static let txQueueBase = 0xE000
    static let TDBAL = 0x00, TDBAH = 0x04, TDLEN = 0x08, TDH = 0x10, TXCTL = 0x14, TDT = 0x18
    static let TXDCTL = 0x28, TDWBAL = 0x38, TDWBAH = 0x3C
    static func txq(_ n: Int, _ register: Int) -> Int { txQueueBase + rxQueueStride * n + register }

    // Statistics (§8.19). All of them are clear-on-read on the 82576.
    static let CRCERRS = 0x4000, ALGNERRC = 0x4004, SYMERRS = 0x4008, RXERRC = 0x400C, MPC = 0x4010
    static let SCC = 0x4014, ECOL = 0x4018, MCC = 0x401C, LATECOL = 0x4020, COLC = 0x4028, DC = 0x4030
    static let TNCRS = 0x4034, SEC = 0x4038, CEXTERR = 0x403C, RLEC = 0x4040
    static let XONRXC = 0x4048, XONTXC = 0x404C, XOFFRXC = 0x4050, XOFFTXC = 0x4054, FCRUC = 0x4058
    static let PRC64 = 0x405C, PRC127 = 0x4060, PRC255 = 0x4064, PRC511 = 0x4068, PRC1023 = 0x406C
    static let PRC1522 = 0x4070, GPRC = 0x4074, BPRC = 0x4078, MPRC = 0x407C, GPTC = 0x4080
    static let GORCL = 0x4088, GORCH = 0x408C, GOTCL = 0x4090, GOTCH = 0x4094
    static let RNBC = 0x40A0, RUC = 0x40A4, RFC = 0x40A8, ROC = 0x40AC, RJC = 0x40B0
    static let MGTPRC = 0x40B4, MGTPDC = 0x40B8, MGTPTC = 0x40BC
    static let TORL = 0x40C0, TORH = 0x40C4, TOTL = 0x40C8, TOTH = 0x40CC, TPR = 0x40D0, TPT = 0x40D4
    static let PTC64 = 0x40D8, PTC127 = 0x40DC, PTC255 = 0x40E0, PTC511 = 0x40E4, PTC1023 = 0x40E8
    static let PTC1522 = 0x40EC, MPTC = 0x40F0, BPTC = 0x40F4, TSCTC = 0x40F8, TSCTFC = 0x40FC
    static let IAC = 0x4100
    /// First and last (inclusive) offset of the contiguous statistics block.
    static let statsFirst = 0x4000, statsLast = 0x4124

    /// Size of BAR0.
    static let barSize = 0x20000
}

/// Bits, named as in the datasheet.
enum Bit {
    // CTRL (§8.2.1)
    static let CTRL_FD: UInt32 = 1 << 0
    static let CTRL_GIO_MASTER_DISABLE: UInt32 = 1 << 2
    static let CTRL_SLU: UInt32 = 1 << 6
    static let CTRL_SPEED_1000: UInt32 = 2 << 8
    static let CTRL_RST: UInt32 = 1 << 26
    static let CTRL_VME: UInt32 = 1 << 30
    static let CTRL_PHY_RST: UInt32 = 1 << 31
    // STATUS (§8.2.2)
    static let STATUS_FD: UInt32 = 1 << 0
    static let STATUS_LU: UInt32 = 1 << 1
    static let STATUS_SPEED_1000: UInt32 = 2 << 6
    static let STATUS_PHYRA: UInt32 = 1 << 10
    static let STATUS_GIO_MASTER_ENABLE: UInt32 = 1 << 19
    // EEC (§8.2.3)
    static let EEC_PRES: UInt32 = 1 << 8
    static let EEC_AUTO_RD: UInt32 = 1 << 9
    // EERD (§8.2.4)
    static let EERD_START: UInt32 = 1 << 0
    static let EERD_DONE: UInt32 = 1 << 1
    static let EERD_ADDR_SHIFT: UInt32 = 2
    static let EERD_DATA_SHIFT: UInt32 = 16
    // MDIC (§8.2.6)
    static let MDIC_REG_SHIFT: UInt32 = 16
    static let MDIC_PHY_SHIFT: UInt32 = 21
    static let MDIC_OP_WRITE: UInt32 = 1 << 26
    static let MDIC_OP_READ: UInt32 = 2 << 26
    static let MDIC_READY: UInt32 = 1 << 28
    static let MDIC_ERROR: UInt32 = 1 << 30
    // ICR / IMS (§8.8.1)
    static let ICR_TXDW: UInt32 = 1 << 0
    static let ICR_LSC: UInt32 = 1 << 2
    static let ICR_RXDMT0: UInt32 = 1 << 4
    static let ICR_RXO: UInt32 = 1 << 6
    static let ICR_RXDW: UInt32 = 1 << 7
    static let ICR_INT_ASSERTED: UInt32 = 1 << 31
    // GPIE (§8.8.14)
    static let GPIE_NSICR: UInt32 = 1 << 0
    static let GPIE_MSIX_MODE: UInt32 = 1 << 4
    static let GPIE_EIAME: UInt32 = 1 << 30
    // IVAR entry byte
    static let IVAR_VALID: UInt32 = 0x80
    // RCTL (§8.10.1)
    static let RCTL_EN: UInt32 = 1 << 1
    static let RCTL_SBP: UInt32 = 1 << 2
    static let RCTL_UPE: UInt32 = 1 << 3
    static let RCTL_MPE: UInt32 = 1 << 4
    static let RCTL_LPE: UInt32 = 1 << 5
    static let RCTL_MO_SHIFT: UInt32 = 12
    static let RCTL_BAM: UInt32 = 1 << 15
    static let RCTL_BSIZE_SHIFT: UInt32 = 16
    static let RCTL_VFE: UInt32 = 1 << 18
    static let RCTL_BSEX: UInt32 = 1 << 25
    static let RCTL_SECRC: UInt32 = 1 << 26
    // TCTL (§8.12.1)
    static let TCTL_EN: UInt32 = 1 << 1
    static let TCTL_PSP: UInt32 = 1 << 3
    // SRRCTL (§8.10.?)
    static let SRRCTL_BSIZEPACKET_MASK: UInt32 = 0x7F
    static let SRRCTL_BSIZEHEADER_SHIFT: UInt32 = 8
    static let SRRCTL_BSIZEHEADER_MASK: UInt32 = 0xF
    static let SRRCTL_DESCTYPE_SHIFT: UInt32 = 25
    static let SRRCTL_DROP_EN: UInt32 = 1 << 31
    // RXDCTL / TXDCTL
    static let QUEUE_ENABLE: UInt32 = 1 << 25
    static let RXDCTL_SWFLUSH: UInt32 = 1 << 26
    // RXCSUM (§8.10.19)
    static let RXCSUM_IPOFLD: UInt32 = 1 << 8
    static let RXCSUM_TUOFLD: UInt32 = 1 << 9
    static let RXCSUM_PCSD: UInt32 = 1 << 13
    // RAH
    static let RAH_AV: UInt32 = 1 << 31
    static let RAH_POOLSEL_SHIFT: UInt32 = 18
    // MRQC (§8.10.11)
    static let MRQC_RSS_FIELD_IPV4_TCP: UInt32 = 1 << 16
    static let MRQC_RSS_FIELD_IPV4: UInt32 = 1 << 17
    static let MRQC_RSS_FIELD_IPV6_TCP_EX: UInt32 = 1 << 18
    static let MRQC_RSS_FIELD_IPV6_EX: UInt32 = 1 << 19
    static let MRQC_RSS_FIELD_IPV6: UInt32 = 1 << 20
    static let MRQC_RSS_FIELD_IPV6_TCP: UInt32 = 1 << 21
    static let MRQC_RSS_FIELD_IPV4_UDP: UInt32 = 1 << 22
    static let MRQC_RSS_FIELD_IPV6_UDP: UInt32 = 1 << 23
    // VT_CTL
    static let VT_CTL_DEF_PL_SHIFT: UInt32 = 7
    static let VT_CTL_IGNORE_MAC: UInt32 = 1 << 28
    static let VT_CTL_DIS_DEF_POOL: UInt32 = 1 << 29
    // VMOLR
    static let VMOLR_RLPML_MASK: UInt32 = 0x3FFF
    static let VMOLR_LPE: UInt32 = 1 << 16
    static let VMOLR_RSSE: UInt32 = 1 << 17
    static let VMOLR_AUPE: UInt32 = 1 << 24
    static let VMOLR_ROMPE: UInt32 = 1 << 25
    static let VMOLR_ROPE: UInt32 = 1 << 26
    static let VMOLR_BAM: UInt32 = 1 << 27
    static let VMOLR_MPME: UInt32 = 1 << 28
    static let VMOLR_STRVLAN: UInt32 = 1 << 30
    // VLVF
    static let VLVF_VLANID_MASK: UInt32 = 0xFFF
    static let VLVF_POOLSEL_SHIFT: UInt32 = 12
    static let VLVF_VI_EN: UInt32 = 1 << 31
    // DTXSWC
    static let DTXSWC_LOOPBACK_EN: UInt32 = 1 << 31
    // TDWBAL
    static let TDWBAL_HEAD_WB_EN: UInt32 = 1 << 0
}

/// Receive descriptor write-back bits (advanced format, §7.1.5.2).
enum RxStatus {
    static let DD: UInt32 = 1 << 0
    static let EOP: UInt32 = 1 << 1
    static let VP: UInt32 = 1 << 3
    static let UDPCS: UInt32 = 1 << 4
    static let L4CS: UInt32 = 1 << 5
    static let IPCS: UInt32 = 1 << 6
    static let HBO: UInt32 = 1 << 23
    static let L4E: UInt32 = 1 << 29
    static let IPE: UInt32 = 1 << 30
    static let RXE: UInt32 = 1 << 31
    // hdr_info (upper 16 bits of dword 0)
    static let SPH: UInt32 = 1 << 15
    static let HDR_LEN_SHIFT: UInt32 = 5
    // pkt_info packet type bits (within dword 0, above the 4-bit RSS type)
    static let PKT_IPV4: UInt32 = 1 << 4
    static let PKT_IPV6: UInt32 = 1 << 6
    static let PKT_TCP: UInt32 = 1 << 8
    static let PKT_UDP: UInt32 = 1 << 9
    static let PKT_SCTP: UInt32 = 1 << 10
}

/// Transmit descriptor bits (advanced format, §7.2.2).
enum TxDesc {
    static let DTYP_MASK: UInt32 = 0xF << 20
    static let DTYP_CONTEXT: UInt32 = 0x2 << 20
    static let DTYP_DATA: UInt32 = 0x3 << 20
    static let DCMD_EOP: UInt32 = 1 << 24
    static let DCMD_IFCS: UInt32 = 1 << 25
    static let DCMD_RS: UInt32 = 1 << 27
    static let DCMD_DEXT: UInt32 = 1 << 29
    static let DCMD_VLE: UInt32 = 1 << 30
    static let DCMD_TSE: UInt32 = 1 << 31
    static let STA_DD: UInt32 = 1 << 0
    static let POPTS_IXSM: UInt32 = 1 << 8
    static let POPTS_TXSM: UInt32 = 1 << 9
    static let TUCMD_IPV4: UInt32 = 1 << 10
    static let TUCMD_L4T_TCP: UInt32 = 1 << 11
    static let TUCMD_L4T_SCTP: UInt32 = 2 << 11
}

/// PHY (MII) registers of the internal PHY at MDIO address 1 (§8.21 / IEEE 802.3 clause 22).
enum PHYReg {
    static let address: UInt32 = 1
    static let PCTRL = 0      // BMCR
    static let PSTATUS = 1    // BMSR
    static let PHY_ID1 = 2
    static let PHY_ID2 = 3
    static let ANA = 4
    static let ANLP = 5
    static let GCON = 9       // 1000BASE-T control
    static let GSTATUS = 10   // 1000BASE-T status
    static let PCTRL_RESET: UInt16 = 1 << 15
    static let PCTRL_AN_ENABLE: UInt16 = 1 << 12
    static let PCTRL_RESTART_AN: UInt16 = 1 << 9
    static let PSTATUS_LINK: UInt16 = 1 << 2
    static let PSTATUS_AN_COMPLETE: UInt16 = 1 << 5
}
