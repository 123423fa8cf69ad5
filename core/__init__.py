"""The bottom layer every package may import: errors, paths, names, settings, the cell spec and the
registries. It imports nothing from harness/, quantizers/, evaluators/ or reports/."""
