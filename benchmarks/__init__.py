"""shotrun's benchmarks: each module exposes ``run(quick: bool) -> list[dict]`` of result rows."""
