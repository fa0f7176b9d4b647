"""One module per subcommand; `evorefuse.cli` assembles them."""
