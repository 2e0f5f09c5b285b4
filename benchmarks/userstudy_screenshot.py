"""A screenshot of the user-study page for the README: the page built from the pipeline's own
``reports/eval/samples.h5`` (read only) into a temporary folder, opened in headless Chromium, saved
to ``reports/figures/userstudy_page.png``. The page and its key are thrown away with the folder.

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium`` (see finenet/userstudy/browser.py).

    python benchmarks/userstudy_screenshot.py [--samples reports/eval/samples.h5] [--with-synthetic]
        [--seed 0] [--width 1440] [--full-page] [--out reports/figures/userstudy_page.png]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finenet.atomic import atomic_path  # noqa: E402
from finenet.errors import FineNetError  # noqa: E402
from finenet.layout import DEFAULT as LAYOUT  # noqa: E402
from finenet.userstudy import browser  # noqa: E402
from finenet.userstudy.build import build  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", default=str(LAYOUT.eval_samples))
    p.add_argument("--with-synthetic", action="store_true",
                   help="also the synthetic test sets' samples (the embedded scale has one real-blur sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=1440, help="window width (1440: six options in a row)")
    p.add_argument("--height", type=int, default=900, help="window height (the screenshot's, unless --full-page)")
    p.add_argument("--full-page", action="store_true", help="the whole page, not the first screen")
    p.add_argument("--out", default=str(LAYOUT.figures / "userstudy_page.png"))
    args = p.parse_args(argv)
    _, _, why = browser.find()
    if why:
        print(f"userstudy_screenshot: {why}", file=sys.stderr)
        return 2
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="userstudy-") as tmp:
        try:
            study = build(args.samples, tmp, with_synthetic=args.with_synthetic, seed=args.seed)
        except FineNetError as exc:
            print(f"finenet: {exc}", file=sys.stderr)
            return 2
        start = time.perf_counter()
        with browser.chrome(width=args.width, height=args.height) as session:
            session.get(study.page.resolve().as_uri())
            widths = session.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
            if not widths or min(widths) == 0:
                print(f"userstudy_screenshot: {widths.count(0)} of {len(widths)} images did not render",
                      file=sys.stderr)
                return 1
            png = browser.full_page_png(session) if args.full_page else session.get_screenshot_as_png()
        image = Image.open(io.BytesIO(png))
        with atomic_path(Path(args.out)) as out:
            out.write_bytes(png)
    print(f"{args.out}: {image.width}x{image.height}, {len(study.cases)} case{'s' * (len(study.cases) != 1)} "
          f"(sets: {', '.join(study.sets)}), {len(widths)} images rendered, "
          f"browser {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
