"""Test sets in the formats of the harnesses users already run (promptfoo, inspect_ai), and the
dataset card written beside any export. Pure functions over `ExportItem` records; writing the files
and choosing what to export is the export command's job."""
