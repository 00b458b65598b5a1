import ArgumentParser

/// The `miniport` command. Subcommands are listed in ``MiniportSubcommands/all``.
@main
struct Miniport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "miniport",
        abstract: "Userspace NIC drivers shaped like NDIS miniports, on vfio-pci.",
        subcommands: MiniportSubcommands.all
    )
}
