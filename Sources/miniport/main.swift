import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// The miniport command: userspace NIC drivers shaped like NDIS miniports.
struct Miniport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "miniport",
        abstract: "Userspace NIC drivers on Linux in the shape of NDIS miniports.",
        discussion: "Start with `miniport demo`: it runs on the hardware model and needs no setup.",
        subcommands: [Demo.self, Info.self, Capture.self, Respond.self, Forward.self, Pktgen.self])
}

/// Runs the command; any error is one line on stderr and a nonzero exit.
func runMiniport() -> Never {
    do {
        var command = try Miniport.parseAsRoot()
        try command.run()
        exit(0)
    } catch let error as CLIError {
        printError("miniport: error: \(error)")
        exit(error.exitCode)
    } catch {
        let code = Miniport.exitCode(for: error)
        if code == .success { Miniport.exit(withError: error) } // --help, --version
        let message = Miniport.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        printError("miniport: error: \(message)")
        exit(code.rawValue)
    }
}

runMiniport()
