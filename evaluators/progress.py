"""How a cell reports progress: lines on stdout that the harness relays (and estimates time left for).
In a tensor-parallel cell only rank 0 reports: the other ranks do the same work."""
import os


def progress(msg: str) -> None:
    if os.environ.get("RANK", "0") == "0":
        print(f"PROGRESS {msg}", flush=True)
