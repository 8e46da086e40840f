"""The site's folder: checked writable before anything is computed, every file written through one
place (so the site can list what it wrote), a write that fails is a one-line HarnessError naming
the folder, and the assets every page loads (plotly.js, the table script, the style sheet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.core.errors import HarnessError

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = ("site.js", "site.css")  # copied from STATIC
PLOTLY_JS = "plotly.min.js"


class SiteFolder:
    """OUT, with the files written to it so far (paths relative to OUT use `/`)."""

    def __init__(self, out: Path | str):
        self.root = Path(out)
        self.files: list[Path] = []
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-check"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise self.error(exc) from None

    def error(self, exc: OSError) -> HarnessError:
        """A failed write as the one-line error the command prints."""
        reason = exc.strerror or type(exc).__name__
        return HarnessError(f"--site {self.root}: cannot write there ({reason}); pass a folder you can create and write to")

    def write_text(self, relative: str, text: str) -> Path:
        path = self.root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise self.error(exc) from None
        self.files.append(path)
        return path

    def write_csv(self, relative: str, table: pd.DataFrame) -> Path:
        return self.write_text(relative, table.to_csv(index=False))

    def write_assets(self) -> None:
        """plotly.min.js (the plotly.js bundled with the installed plotly package, so its version
        pins it) and the site's own script and style sheet, once for every page."""
        from plotly.offline import get_plotlyjs

        self.write_text(PLOTLY_JS, get_plotlyjs())
        for name in ASSETS:
            self.write_text(name, (STATIC / name).read_text(encoding="utf-8"))


def plotly_js_version() -> str:
    from plotly.offline import get_plotlyjs_version

    return get_plotlyjs_version()
