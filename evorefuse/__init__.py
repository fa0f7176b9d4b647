"""evorefuse: evolve pseudo-malicious instructions that language models wrongly refuse."""

__version__ = "0.1.0"
