"""How a cell reports progress: lines on stdout that the harness relays (and estimates time left for)."""


def progress(msg: str) -> None:
    print(f"PROGRESS {msg}", flush=True)
