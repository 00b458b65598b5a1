import DeviceAccess
import Glibc
import NDIS

// Initialization in the datasheet's order (§4.5 "Software Initialization and Diagnostics"):
// mask interrupts, global reset, wait for the NVM auto-read, read the MAC address, bring up the
// PHY and the link, clear statistics, then configure receive and transmit. One function per step.

extension IGBMiniport {
    /// The whole bring-up, step by step.
    func bringUpHardware() throws {
        try enableBusMastering()
        try maskInterrupts()
        try stopDMA()
        try globalReset()
        try maskInterrupts()
        try waitForEEPROMAutoRead()
        try readPermanentMACAddress()
        try resetPHY()
        try restartAutoNegotiation()
        setLinkUp()
        try waitForLink()
        clearStatistics()
        try configureReceive()
        try configureTransmit()
        try configureInterrupts()
    }

    /// PCI command register: memory space and bus master, so the function may DMA.
    func enableBusMastering() throws {
        try function.enableBusMaster()
    }

    /// §4.5.1: mask every interrupt cause (IMC, EIMC) and clear pending causes (read ICR, EICR).
    func maskInterrupts() throws(IGBError) {
        regs.write32(IGBReg.IMC, 0xFFFF_FFFF)
        regs.write32(IGBReg.EIMC, 0xFFFF_FFFF)
        _ = try readChecked(IGBReg.STATUS, "STATUS")
        _ = regs.read32(IGBReg.ICR)
        _ = regs.read32(IGBReg.EICR)
    }

    /// §4.5.3 / §5.2.3.3: stop receive and transmit and block new DMA (CTRL.GIO_MASTER_DISABLE)
    /// before resetting, so no DMA is in flight when the reset hits.
    func stopDMA() throws(IGBError) {
        regs.write32(IGBReg.RCTL, 0)
        regs.write32(IGBReg.TCTL, TCTL.PSP)
        let ctrl = try readChecked(IGBReg.CTRL, "CTRL")
        regs.write32(IGBReg.CTRL, ctrl | CTRL.GIO_MASTER_DISABLE)
        // Emulations may not model the master-disable handshake: proceed after a short wait.
        _ = try waitUntil(timeout: .milliseconds(10)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.STATUS, "STATUS") & STATUS.GIO_MASTER_ENABLE == 0
        }
    }

    /// §4.5.2: global (software) reset, CTRL.RST, then wait for it to self-clear.
    func globalReset() throws(IGBError) {
        let ctrl = try readChecked(IGBReg.CTRL, "CTRL")
        regs.write32(IGBReg.CTRL, ctrl | CTRL.RST)
        // The datasheet asks for at least 1 ms before touching the device again.
        usleep(1000)
        let cleared = try waitUntil(timeout: .milliseconds(100)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.CTRL, "CTRL") & CTRL.RST == 0
        }
        guard cleared else { throw .resetTimeout(device: deviceName) }
    }

    /// §4.5.4: wait for EEC.AUTO_RD: the MAC address and configuration words are loaded.
    ///
    /// Not fatal on its own (as in Intel's own drivers): QEMU's igb never sets AUTO_RD although it
    /// loads RAL0/RAH0 at reset, and a board without an NVM still links. A missing AUTO_RD fails
    /// bring-up only if RAL0/RAH0 then hold no valid address (`readPermanentMACAddress`).
    func waitForEEPROMAutoRead() throws(IGBError) {
        eepromAutoReadDone = try waitUntil(timeout: .milliseconds(10)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.EEC, "EEC") & EEC.AUTO_RD != 0
        }
    }

    /// §8.10.15: the NVM loads the permanent address into receive address entry 0 at reset.
    func readPermanentMACAddress() throws(IGBError) {
        let low = regs.read32(IGBReg.RAL(0))
        let high = try readChecked(IGBReg.RAH(0), "RAH0")
        let mac = MACAddress(UInt8(truncatingIfNeeded: low), UInt8(truncatingIfNeeded: low >> 8),
                             UInt8(truncatingIfNeeded: low >> 16), UInt8(truncatingIfNeeded: low >> 24),
                             UInt8(truncatingIfNeeded: high), UInt8(truncatingIfNeeded: high >> 8))
        guard high & RAH.AV != 0, !mac.isMulticast, mac != MACAddress(0, 0, 0, 0, 0, 0) else {
            if !eepromAutoReadDone { throw .eepromAutoReadTimeout(device: deviceName) }
            throw .invalidPermanentAddress(device: deviceName, address: "\(mac), RAH0.AV=\(high >> 31)")
        }
        permanentAddress = mac
    }

    /// §8.23.1: PHY soft reset through MDIC (PHY control register, RESET).
    func resetPHY() throws(IGBError) {
        try writePHY(PHYReg.PCTRL, PCTRL.RESET | PCTRL.AUTO_NEG_EN)
    }

    /// §8.23.1: enable and restart auto-negotiation. QEMU's igb raises the link only this way
    /// (about 500 ms of emulated time later); CTRL.SLU alone does not.
    func restartAutoNegotiation() throws(IGBError) {
        try writePHY(PHYReg.PCTRL, PCTRL.AUTO_NEG_EN | PCTRL.RESTART_AUTO_NEG)
    }

    /// §8.2.1: CTRL.SLU, with speed and duplex left to auto-negotiation.
    func setLinkUp() {
        var ctrl = regs.read32(IGBReg.CTRL)
        ctrl |= CTRL.SLU
        ctrl &= ~(CTRL.FRCSPD | CTRL.FRCDPX | CTRL.PHY_RST | CTRL.GIO_MASTER_DISABLE)
        // VME enables transmit VLAN insertion (VLE); receive stripping in VMDq mode is VMOLR.STRVLAN.
        ctrl |= CTRL.VME
        regs.write32(IGBReg.CTRL, ctrl)
    }

    /// §8.2.2: wait for STATUS.LU, with a timeout and a clear error.
    func waitForLink() throws(IGBError) {
        let up = try waitUntil(timeout: configuration.linkTimeout, interval: .milliseconds(1)) { () throws(IGBError) -> Bool in
            try readChecked(IGBReg.STATUS, "STATUS") & STATUS.LU != 0
        }
        linkState = try readLinkState()
        if !up && configuration.requireLink {
            throw .linkTimeout(device: deviceName, waited: configuration.linkTimeout)
        }
    }

    /// §8.19: statistics clear on read; read them all once so counting starts at zero.
    func clearStatistics() {
        var offset = IGBReg.statisticsFirst
        while offset <= IGBReg.statisticsLast {
            _ = regs.read32(offset)
            offset += 4
        }
        statistics = IGBHardwareStatistics()
    }

    /// §4.5.9: receive: filters, VMDq pools, checksum offload, then the default queue's ring.
    func configureReceive() throws {
        regs.write32(IGBReg.RCTL, 0)
        regs.write32(IGBReg.RXCSUM, RXCSUM.IPOFLD | RXCSUM.TUOFLD)
        regs.write32(IGBReg.RLPML, UInt32(configuration.maxFrameSize + 4))
        clearReceiveFilters()
        configureVMDqPools()
        try setUpReceiveRing(slot: 0, hardwareQueue: 0, queue: .default,
                             descriptors: configuration.defaultQueueDescriptors,
                             buffers: configuration.defaultQueueBuffers, headerSize: 0)
        regs.write32(IGBReg.RCTL, receiveControl(enable: false))
    }

    /// §4.5.10: transmit: TCTL, then the transmit ring of queue 0.
    func configureTransmit() throws {
        regs.write32(IGBReg.TCTL, transmitControl(enable: false))
        try setUpTransmitRing()
    }

    /// RCTL for the current packet filter (§8.10.1). In VMDq mode the pools' VMOLR bits and the
    /// default pool decide acceptance: RCTL.UPE/MPE would copy every unmatched frame to every pool
    /// (the datasheet) or be ignored (QEMU), so they are set only in RSS mode; RCTL.BAM follows the
    /// broadcast bit in both.
    func receiveControl(enable: Bool) -> UInt32 {
        var rctl = RCTL.SECRC
        if enable { rctl |= RCTL.EN }
        // Without LPE the limit is 1518 bytes (tagged, no FCS); RLPML then bounds long packets.
        if configuration.maxFrameSize > 1518 { rctl |= RCTL.LPE }
        let f = packetFilter
        let promiscuous = packetFilterSet && f.contains(.promiscuous)
        if !packetFilterSet || f.contains(.broadcast) || promiscuous { rctl |= RCTL.BAM }
        if rssQueueCount > 0 {
            if promiscuous { rctl |= RCTL.UPE | RCTL.MPE }
            if packetFilterSet && f.contains(.allMulticast) { rctl |= RCTL.MPE }
        }
        if vlanFilteringNeeded { rctl |= RCTL.VFE }
        return rctl
    }

    /// TCTL with the datasheet's recommended collision settings for full duplex.
    func transmitControl(enable: Bool) -> UInt32 {
        var tctl = TCTL.PSP | TCTL.RTLC | (0xF << TCTL.CT_SHIFT) | (0x3F << TCTL.COLD_SHIFT)
        if enable { tctl |= TCTL.EN }
        return tctl
    }

    /// RCTL.EN and TCTL.EN (MiniportRestart). Writing RCTL.EN also makes QEMU deliver frames it held.
    func enableReceiveAndTransmit() {
        regs.write32(IGBReg.TCTL, transmitControl(enable: true))
        regs.write32(IGBReg.RCTL, receiveControl(enable: true))
    }

    /// Clears RCTL.EN (MiniportPause): no new frames land in the rings.
    func disableReceive() {
        regs.write32(IGBReg.RCTL, receiveControl(enable: false))
    }

    /// Writes a PHY register through MDIC and waits for MDIC.READY.
    func writePHY(_ register: UInt32, _ value: UInt16) throws(IGBError) {
        let command = UInt32(value) | register << MDIC.REGADD_SHIFT
            | MDIC.internalPHYAddress << MDIC.PHYADD_SHIFT | MDIC.OP_WRITE
        regs.write32(IGBReg.MDIC, command)
        var last: UInt32 = 0
        let ready = try waitUntil(timeout: .milliseconds(100), interval: .microseconds(50)) { () throws(IGBError) -> Bool in
            last = try readChecked(IGBReg.MDIC, "MDIC")
            return last & MDIC.READY != 0
        }
        guard ready else {
            throw .phyAccessFailed(device: deviceName, register: register, reason: "MDIC.READY did not rise within 100 ms")
        }
        if last & MDIC.E != 0 {
            throw .phyAccessFailed(device: deviceName, register: register,
                                   reason: "MDIC.E is set: no PHY answered at address \(MDIC.internalPHYAddress)")
        }
    }

    /// Reads STATUS into a link state.
    func readLinkState() throws(IGBError) -> LinkState {
        let status = try readChecked(IGBReg.STATUS, "STATUS")
        guard status & STATUS.LU != 0 else { return LinkState(up: false) }
        let speed: UInt64
        switch (status & STATUS.SPEED_MASK) >> STATUS.SPEED_SHIFT {
        case 0: speed = 10_000_000
        case 1: speed = 100_000_000
        default: speed = 1_000_000_000
        }
        return LinkState(up: true, speedBitsPerSecond: speed, fullDuplex: status & STATUS.FD != 0)
    }

    /// Periodic work off the hot path: device presence, link changes, statistics before they wrap.
    func watchdog() {
        guard !removed else { return }
        let state: LinkState
        do { state = try readLinkState() } catch { return }
        if state != linkState {
            linkState = state
            handle.indicateStatus(.linkState(state))
        }
        accumulateStatistics()
    }

    /// Stops the device and frees every ring, table and block of shared memory (halt, or a failed
    /// initialize). With `touchHardware` false (the device is gone) no register is accessed.
    func releaseEverything(touchHardware: Bool) {
        if touchHardware {
            regs.write32(IGBReg.IMC, 0xFFFF_FFFF)
            regs.write32(IGBReg.EIMC, 0xFFFF_FFFF)
            regs.write32(IGBReg.RCTL, 0)
            regs.write32(IGBReg.TCTL, TCTL.PSP)
            for slot in 0..<Self.ringSlots where rx[slot].active {
                try? disableReceiveQueue(hardwareQueue: rx[slot].hardwareQueue)
            }
            regs.write32(IGBReg.TXDCTL(0), 0)
            // A reset guarantees the device does no more DMA into memory we are about to free.
            try? globalReset()
            regs.write32(IGBReg.IMC, 0xFFFF_FFFF)
            regs.write32(IGBReg.EIMC, 0xFFFF_FFFF)
        }
        tearDownInterrupts()
        abortBacklog(status: .requestAborted)
        abortInFlight(status: .requestAborted)
        activeSlots = 0
        for slot in 0..<Self.ringSlots {
            rx[slot].active = false
            freeRingMemory(slot: slot)
        }
        freeTransmitMemory()
        vmqQueues.removeAll()
        hardwareFilters.removeAll()
        rarShadow = [UInt64](repeating: 0, count: 24)
        vlvfShadow = [UInt32](repeating: 0, count: 32)
        rssQueueCount = 0
        rssParameters = nil
        packetFilter = [.directed, .broadcast, .multicast]
        packetFilterSet = false
        multicastList = []
    }
}
