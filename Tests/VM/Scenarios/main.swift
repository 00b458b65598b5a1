// Guest-side scenarios for the VM test bed (issue 4). Each scenario is a subcommand.
print("VMScenarios: no scenarios yet")
