// Guest-side scenarios for the VM test bed (Tests/VM/run boots the guest and runs them).
// Each scenario is a subcommand; add yours to `subcommands` below.
import ArgumentParser

struct VMScenarios: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "VMScenarios",
        abstract: "Scenarios run inside the VM test bed's guest against QEMU's NICs bound to vfio-pci.",
        subcommands: [
            VFIOSmoke.self,
            IGBTraffic.self,
            IGBTransmit.self,
            IGBPair.self,
            IGBPacketFilter.self,
            FaultSoak.self,
        ]
    )
}

VMScenarios.main()
