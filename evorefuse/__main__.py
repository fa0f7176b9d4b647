"""Allow `python -m evorefuse`."""

from evorefuse.cli import main

main()
