import ArgumentParser

/// Every subcommand of `miniport`, in the order `--help` shows them. Add new ones here.
enum MiniportSubcommands {
    static let all: [any ParsableCommand.Type] = [
        ListCommand.self,
        Demo.self,
        Info.self,
        Capture.self,
        Respond.self,
        Stack.self,
        Forward.self,
        Pktgen.self,
        Extcap.self,
        BenchCommand.self,
    ]
}
