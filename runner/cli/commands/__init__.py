"""cli.commands: One module per subcommand; see :mod:`runner.cli` for the contract."""
