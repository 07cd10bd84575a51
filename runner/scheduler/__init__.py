"""scheduler: The asyncio run engine: limits, backoff, polling, budget, uploads and the
orchestration.

Each module holds one idea; :mod:`runner.scheduler.engine` puts them together and is the only
code that moves a take from one state to the next in the store.
"""
