import NDIS
import MiniportRegistry
import Protocols

/// The frames a model run drives through the model's wire: for each filter a frame it matches,
/// then a broadcast, a multicast and a unicast no filter takes (those belong to the default queue).
/// Sizes cycle from the Ethernet minimum to the tagged maximum.
final class ModelTraffic {
    let wire: any Wire
    let pattern: [[UInt8]]
    private(set) var injected = 0
    private var next = 0

    static let peer = MACAddress(0x52, 0x54, 0x00, 0xbb, 0x00, 0x01)
    static let stranger = MACAddress(0x52, 0x54, 0x00, 0xcc, 0x00, 0x99)
    static let multicast = MACAddress(0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb)

    init(wire: any Wire, specs: [QueueFilterSpec], nicMAC: MACAddress) {
        self.wire = wire
        let sizes = [60, 128, 256, 512, 1024, 1514]
        var frames: [[UInt8]] = []
        for (round, size) in sizes.enumerated() {
            for spec in specs {
                switch spec {
                case let .mac(m):
                    frames.append(FrameBuilder.filler(destination: m, source: ModelTraffic.peer, length: size))
                case let .vlan(v):
                    // A tagged frame is 4 bytes longer: up to 1518 without FCS (1522 with it).
                    frames.append(FrameBuilder.filler(destination: ModelTraffic.stranger, source: ModelTraffic.peer, vlan: v, length: size + 4))
                }
            }
            frames.append(FrameBuilder.arpRequest(senderMAC: ModelTraffic.peer, senderIP: IPv4Address(10, 0, 0, UInt8(2 + round)),
                                                  targetIP: IPv4Address(10, 0, 0, 1)))
            frames.append(FrameBuilder.filler(destination: ModelTraffic.multicast, source: ModelTraffic.peer, length: max(60, size / 2)))
            frames.append(FrameBuilder.filler(destination: ModelTraffic.stranger, source: ModelTraffic.peer, length: size))
        }
        pattern = frames
    }

    /// The wire is busy before and while the command sets up: one whole round of the pattern
    /// arrives (and the model works on it) at each call. With receive still off (Paused) the NIC
    /// takes none of it; a NIC that received it early would show it on the wrong queue.
    func busyWire() {
        drive(frames: pattern.count)
        wire.step()
    }

    /// Puts the next `frames` frames of the pattern on the wire.
    func drive(frames: Int) {
        for _ in 0..<frames {
            wire.inject(pattern[next])
            next = (next + 1) % pattern.count
            injected += 1
        }
        // The model NIC has nobody to talk to: what it sends just leaves.
        _ = wire.takeTransmitted()
    }
}
