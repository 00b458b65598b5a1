// PCI discovery through libpci and sysfs (issue 3).
