"""``shotrun probe``: learning a gateway before an overnight run.

:mod:`~runner.probe.checks` makes the free checks (creations invalid on purpose),
:mod:`~runner.probe.spend` the one paid task, :mod:`~runner.probe.report` turns what they
found into text, JSON and a :class:`~runner.profile.GatewayProfile`. The command
(:mod:`runner.commands.probe`) is the only part that prints.
"""
