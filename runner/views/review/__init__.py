"""views.review: ``shotrun review``: a live contact sheet in the browser, where takes are watched
and picked.

- :mod:`.server`: the aiohttp app on 127.0.0.1 (token, paths, headers, events, writes);
- :mod:`.page`: the page's state from the store, drawn with the report's view model and tiles;
- :mod:`.pending`: picks and notes made while a run holds the store, saved when it ends;
- :mod:`.static`: the page's script and style.
"""
