"""probe: ``shotrun probe``: learning a gateway before an overnight run.

:mod:`~runner.probe.checks` makes the free checks (creations invalid on purpose),
:mod:`~runner.probe.spend` the one paid task, :mod:`~runner.probe.findings` turns what they
found into text, JSON and a :class:`~runner.media.profile.GatewayProfile`. The command
(:mod:`runner.cli.commands.probe`) is the only part that prints.
"""
