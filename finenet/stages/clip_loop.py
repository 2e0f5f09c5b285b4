"""What every stage shares: the clip plan, selecting clips by id, the per-clip loop with progress."""

from __future__ import annotations

from typing import Callable, Iterable

from tqdm import tqdm

from ..data.clips import ClipSpec, plan_clips, read_plan
from ..errors import FineNetError


def select_clips(params: dict, clip_ids: Iterable[str] | None, plan=None) -> list[ClipSpec]:
    """The planned clips (``clip_ids`` of them, when given): from the plan file ``plan`` where one
    is given (Snakemake's per-clip jobs: no dataset listing), else listed from the datasets."""
    clips = read_plan(plan, params) if plan else plan_clips(params)
    if not clip_ids:
        return clips
    by_id = {c.clip_id: c for c in clips}
    unknown = [c for c in clip_ids if c not in by_id]
    if unknown:
        raise FineNetError("--clip", f"not in the plan for this profile: {', '.join(unknown[:5])}")
    return [by_id[c] for c in clip_ids]


def for_each_clip(stage: str, clips: list[ClipSpec], work: Callable[[ClipSpec], None]) -> None:
    """Run ``work`` on each clip; each writes its own output atomically, so a kill loses at most
    the clip in flight."""
    for spec in tqdm(clips, desc=stage, unit="clip", disable=len(clips) < 2):
        work(spec)
