import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

extension Miniport {
    /// Runs the command; any error is one line on stderr and a nonzero exit (help still prints in full).
    static func main() async {
        ignoreWriteSignals()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Glibc.exit(0)
        } catch let error as CLIError {
            printError("miniport: error: \(error)")
            Glibc.exit(error.exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) } // --help, --version, clean exits
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            printError("miniport: error: \(message)")
            Glibc.exit(code.rawValue)
        }
    }
}
