"""``finenet deblur DIR -o OUTDIR``: every video of a folder, the model and detectors loaded once.

- The videos: the files directly in DIR (subfolders are not searched) whose suffix, in any case,
  is one ``video.stream.input_suffixes`` lists (the output containers .mp4 .m4v .mov .mkv, and .avi,
  .webm, .mpg, .mpeg, .flv), sorted by name. Other files are skipped with a note; hidden files
  (a leading dot, such as the temporary files of a run writing into DIR) are ignored.
- Outputs: ``OUTDIR/<the input's name>`` when its container is one the output can be written in
  (``video.stream.CONTAINERS``: the name is kept, its container too), else ``OUTDIR/<stem>.mp4``
  (``clip.avi`` -> ``clip.mp4``). Where two inputs would get the same output name (``clip.avi``
  and ``clip.mp4``), the one that keeps its own name has it (else the first by name) and the
  other fails, with the reason. OUTDIR is made if needed; it may not be DIR itself (the outputs
  would replace the videos they come from); a folder inside DIR is fine (DIR's subfolders are
  not read).
- ``--compare CMPDIR``: a folder, one comparison video per input, ``CMPDIR/<output name>``; it
  may be neither DIR nor OUTDIR (the same names would collide).
- Each video goes through ``finenet.deblur.command.run`` as ``finenet deblur FILE -o OUTDIR/NAME`` would
  run it (written atomically: a failed video leaves nothing). A bad video (any ``FineNetError``,
  or an unexpected error, named by its type) fails that video only; the rest go on. Bad options,
  a bad checkpoint, DIR or OUTDIR stop at once, before any video, with one line.
- At the end a summary lists each video, ``ok`` or ``failed`` with the reason (printed to stdout,
  and written atomically to ``OUTDIR/deblur_summary.json``, with the skipped files); when any
  failed, the one line ``finenet: DIR: N of M files failed (see OUTDIR/deblur_summary.json)``
  and exit status 2.
- Progress: a bar over the files (its postfix counts the failures) above each video's own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_path
from ..errors import FineNetError
from ..video.stream import CONTAINERS, input_suffixes, parse_encoding

SUMMARY = "deblur_summary.json"


def list_videos(folder: Path) -> tuple[list[Path], list[Path]]:
    """(the folder's videos, its other files), each sorted by name; hidden files left out."""
    suffixes = input_suffixes()
    videos, others = [], []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.startswith(".") or not path.is_file():
            continue
        (videos if path.suffix.lower() in suffixes else others).append(path)
    return videos, others


def output_name(video: Path) -> str:
    """The output's file name: the input's where its container can be written, else .mp4."""
    return video.name if video.suffix.lower() in CONTAINERS else video.stem + ".mp4"


def assign_outputs(videos: list[Path]) -> dict[Path, str | None]:
    """Each video's output name, or None where another video has that name (``clash``)."""
    names: dict[Path, str | None] = {v: output_name(v) for v in videos}
    owner: dict[str, Path] = {}
    for v in sorted(videos, key=lambda v: (output_name(v) != v.name, v.name)):
        owner.setdefault(names[v], v)          # a video keeping its own name first, then by name
    return {v: (name if owner[name] == v else None) for v, name in names.items()}


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_folder(path: Path, source: Path, what: str, flag: str, others=()) -> Path:
    """``path`` as an output folder for the videos of ``source``: not a file or a video name,
    not ``source`` (or one of ``others``: (folder, its name)), in a writable place (made later,
    by ``make_folder``, once every check has passed)."""
    if path.exists() and not path.is_dir():
        raise FineNetError(path, f"is a file: with a folder input, {flag} names the {what} folder")
    if not path.exists() and path.suffix.lower() in CONTAINERS:
        raise FineNetError(path, f"with a folder input ({source}), {flag} names the {what} folder, "
                                 f"not a video file")
    if _same(path, source):
        raise FineNetError(path, f"is the input folder: the {what} videos would replace the "
                                 f"videos they are made from; give {flag} another folder")
    for other, name in others:
        if _same(path, other):
            raise FineNetError(path, f"is also the {name} folder: give {flag} a folder of its own")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FineNetError(path, f"{what} folder cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FineNetError(path, f"{what} folder is not writable")
    return path


def make_folder(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FineNetError(path, f"{what} folder cannot be made ({exc.strerror or exc})") from None
    return path


def _reason(exc: BaseException, video: Path) -> str:
    if isinstance(exc, FineNetError):
        return exc.problem if exc.where == str(video) else str(exc)
    line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"unexpected error: {type(exc).__name__}" + (f": {line}" if line else "")


def run_folder(params: dict, source, output, checkpoint=None, device: str = "auto",
               progress: bool = True, *, crf=None, lossless: bool = False, preset=None,
               compare=None, labels=None, batch=1, faces: str = "all", tta: str = "none",
               context: float | None = None, keep_bias: float | None = None) -> dict:
    """Deblur every video of the folder ``source`` into the folder ``output`` (module docstring);
    returns the summary (also in ``output/deblur_summary.json``), or raises the one-line
    ``FineNetError`` naming ``source`` when any video failed."""
    from .compare import parse_labels
    from ..device import pick_device
    from . import command, model
    from .model import check_keep_bias
    from .paste import check_context

    source, output = Path(source), Path(output)
    parse_encoding(crf, lossless, preset)            # bad options: one line before any work
    command.parse_batch(batch)
    context = check_context(command.CONTEXT if context is None else context)
    keep_bias = check_keep_bias(command.KEEP_BIAS if keep_bias is None else keep_bias)
    parse_labels(labels, compare)
    dev = pick_device(device, "--device")
    videos, others = list_videos(source)
    if not videos:
        raise FineNetError(source, f"no videos in this folder ({', '.join(sorted(input_suffixes()))})")
    output = check_folder(output, source, "output", "-o")
    if compare is not None:
        compare = check_folder(Path(compare), source, "comparison", "--compare",
                               [(output, "output (-o)")])
    note = lambda msg: tqdm.write(msg, file=sys.stderr)  # noqa: E731
    for other in others:
        note(f"finenet: note: {other}: skipped (not a video: its suffix is not one of "
             f"{', '.join(sorted(input_suffixes()))})")
    loaded = model.load(params, checkpoint, dev)
    make_folder(output, "output")
    if compare is not None:
        make_folder(compare, "comparison")
    names = assign_outputs(videos)
    results = []
    start = time.perf_counter()
    with tqdm(videos, desc=f"deblur {source.name or source}", unit="file", disable=not progress,
              file=sys.stderr) as bar:
        for video in bar:
            entry = {"input": str(video), "output": None, "compare": None, "status": "failed",
                     "reason": None}
            name = names[video]
            if name is None:
                owner = next(v for v, n in names.items() if n == output_name(video))
                entry["reason"] = (f"its output name {output / output_name(video)} is taken by "
                                   f"{owner.name} (rename one of them)")
            else:
                target, side = output / name, (compare / name if compare is not None else None)
                try:
                    summary = command.run(params, video, target, checkpoint, device, progress,
                                         crf=crf, lossless=lossless, preset=preset, compare=side,
                                         labels=labels, batch=batch, faces=faces, tta=tta, context=context,
                                         keep_bias=keep_bias, loaded=loaded)
                except Exception as exc:           # this video only; KeyboardInterrupt stops all
                    entry["reason"] = _reason(exc, video)
                else:
                    entry.update(output=str(target), compare=str(side) if side else None,
                                 status="ok", frames=summary["frames"],
                                 deblurred=summary["deblurred"], seconds=summary["seconds"])
            results.append(entry)
            bar.set_postfix(failed=sum(r["status"] == "failed" for r in results))
    failed = sum(r["status"] == "failed" for r in results)
    report = {"input": str(source), "output": str(output),
              "compare": str(compare) if compare is not None else None,
              "files": len(results), "ok": len(results) - failed, "failed": failed,
              "seconds": round(time.perf_counter() - start, 3), "results": results,
              "skipped": [{"input": str(p), "reason": "not a video (suffix)"} for p in others]}
    summary_path = output / SUMMARY
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    width = max(len(Path(r["input"]).name) for r in results)
    print(f"finenet deblur {source}: {len(results) - failed} of {len(results)} files ok")
    for r in results:
        name = Path(r["input"]).name.ljust(width)
        if r["status"] == "ok":
            print(f"  ok      {name}  -> {r['output']} ({r['frames']} frames, {r['seconds']:.1f} s)")
        else:
            print(f"  failed  {name}  {r['reason']}")
    if failed:
        raise FineNetError(source, f"{failed} of {len(results)} files failed (see {summary_path})")
    return report
