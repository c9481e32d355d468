"""Plain helpers shared by tests (no fixtures): fakes, toy plug-ins, job files."""
