"""Is the Hugging Face hub reachable? Asked once per process, so offline runs do not pay
`datasets`' and `huggingface_hub`'s retry loops (about 25 s per load) before falling back."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


def offline_by_env() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True when the hub answers a TCP connect; with HF_HUB_OFFLINE set, loads use the local HF cache."""
    if offline_by_env():
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def hub_usable() -> bool:
    """The hub can serve a load: either it is reachable, or the user asked for the offline HF cache."""
    return hub_reachable() or offline_by_env()
