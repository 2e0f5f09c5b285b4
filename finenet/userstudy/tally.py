"""``tally``: the answers of a study page, mapped back to the methods through its key.

Every CSV is checked whole before anything is counted; a bad one is one :class:`FineNetError`
naming the file (and line): wrong columns, an answer for another page (its study id is not the
key's), an unknown case id, a position out of range, an empty participant, a timestamp that is not
ISO 8601, no answers at all. A page given (or found next to the key) must have the SHA-256 the key
recorded.

- **Duplicates.** One answer per participant and case counts: the last one, i.e. the one with the
  latest timestamp (the page stamps a choice when it is made), and at equal timestamps the one read
  last (files in the order given, rows in file order). So a participant who changed an answer and
  downloaded again counts once, with the new answer. Participants are told apart by their name as
  typed, surrounding spaces removed (case-sensitive).
- **Shares and intervals.** A method's share is its votes over all counted answers. Its 95 %
  interval is a percentile bootstrap over *participants* (seeded): participants are drawn with
  replacement and each share is recomputed as the resample's votes over its answers, so the answers
  of one participant, which are not independent, stay together. With a single participant the
  interval is one point: the data say nothing about other participants.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FineNetError
from ..reporting.tables import METHODS, markdown, order_methods
from . import page as pages
from .build import FINENET, KEY_FORMAT, PAGE_NAME, sha256

# The paper's study (Sec. 4.5): "46 users ... for 23 test cases ... FineNet was selected 91.3% of
# the time" (finenet/paper_results.yaml has no section for it yet).
PAPER = {"users": 46, "cases": 23, "finenet_share": 0.913, "where": "Sec. 4.5"}
OUTPUTS = ("userstudy.csv", "userstudy.md", "userstudy.json", "userstudy_pie.png")


@dataclass(frozen=True)
class Answer:
    participant: str
    case: str
    position: int
    timestamp: datetime
    order: int                # reading order over all files: ties of timestamps go to the later


@dataclass
class Result:
    rows: list                # dicts: method, label, votes, share, ci_lo, ci_hi
    participants: int
    answers: int
    cases_answered: int
    cases: int
    duplicates: int
    outputs: list = field(default_factory=list)

    def summary(self) -> str:
        head = (f"{self.participants} participant{'s' * (self.participants != 1)}, {self.answers} answers on "
                f"{self.cases_answered} of {self.cases} cases"
                + (f" ({self.duplicates} earlier duplicate answer{'s' * (self.duplicates != 1)} replaced)"
                   if self.duplicates else ""))
        lines = [head] + [f"  {r['label']:<24} {r['votes']:>4}  {100 * r['share']:5.1f}%  "
                          f"[{100 * r['ci_lo']:.1f}, {100 * r['ci_hi']:.1f}]" for r in self.rows]
        return "\n".join(lines + [f"wrote {', '.join(map(str, self.outputs))}"])


# --- the key and the page --------------------------------------------------------------------------

def load_key(path: Path) -> dict:
    if not path.is_file():
        raise FineNetError(path, "not found; `build` writes key.json next to the page")
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FineNetError(path, f"not a readable JSON file ({exc.__class__.__name__})") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT:
        raise FineNetError(path, f"not a user-study key (its 'format' must be '{KEY_FORMAT}')")
    for name, kind in (("study", str), ("page_sha256", str), ("methods", list), ("cases", list)):
        if not isinstance(key.get(name), kind):
            raise FineNetError(path, f"'{name}' must be a {kind.__name__}")
    for i, case in enumerate(key["cases"]):
        options = case.get("options") if isinstance(case, dict) else None
        if not (isinstance(case, dict) and isinstance(case.get("id"), str) and isinstance(options, list)
                and len(options) >= 2 and all(o in key["methods"] for o in options)):
            raise FineNetError(path, f"case {i + 1}: needs an 'id' and 'options' (two or more of 'methods')")
    ids = [c["id"] for c in key["cases"]]
    if len(set(ids)) != len(ids):
        raise FineNetError(path, "a case id appears twice")
    return key


def check_page(key: dict, key_path: Path, page) -> None:
    """A page given, or the key's own next to it where it exists, must be the one the key was
    written with."""
    path = Path(page) if page is not None else key_path.parent / str(key.get("page", PAGE_NAME))
    if page is None and not path.is_file():
        return
    try:
        digest = sha256(path.read_bytes())
    except OSError as exc:
        raise FineNetError(path, f"cannot read the page ({exc.strerror or exc.__class__.__name__})") from None
    if digest != key["page_sha256"]:
        raise FineNetError(path, f"does not belong to the key {key_path} (its SHA-256 is {digest[:12]}…, the "
                                 f"key's page has {key['page_sha256'][:12]}…): use the key written with it")


# --- the answers -----------------------------------------------------------------------------------

def parse_time(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)     # no zone: read as UTC


def read_answers(path: Path, key: dict, start: int) -> list[Answer]:
    if not path.is_file():
        raise FineNetError(path, "not found")
    options = {c["id"]: c["options"] for c in key["cases"]}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:      # -sig: a spreadsheet's BOM
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise FineNetError(path, "empty file (no header line)")
            header = [h.strip() for h in header]
            if sorted(header) != sorted(pages.COLUMNS) or len(header) != len(pages.COLUMNS):
                raise FineNetError(path, f"wrong columns: expected {','.join(pages.COLUMNS)}, found "
                                         f"{','.join(header) or '(none)'}")
            col = {name: header.index(name) for name in pages.COLUMNS}
            out = []
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise FineNetError(path, f"line {line}: {len(row)} fields, the header has {len(header)}")
                get = {name: row[i].strip() for name, i in col.items()}
                if get["study"] != key["study"]:
                    raise FineNetError(path, f"line {line}: answers for another page (study '{get['study']}'; "
                                             f"the key is for study '{key['study']}')")
                if not get["participant"]:
                    raise FineNetError(path, f"line {line}: empty participant")
                if get["case"] not in options:
                    raise FineNetError(path, f"line {line}: unknown case id '{get['case']}' (the key has "
                                             f"{_span(list(options))})")
                k = len(options[get["case"]])
                try:
                    position = int(get["position"])
                except ValueError:
                    raise FineNetError(path, f"line {line}: position '{get['position']}' is not a whole "
                                             f"number") from None
                if not 1 <= position <= k:
                    raise FineNetError(path, f"line {line}: position {position} out of range 1-{k} for case "
                                             f"{get['case']}")
                stamp = parse_time(get["timestamp"])
                if stamp is None:
                    raise FineNetError(path, f"line {line}: timestamp '{get['timestamp']}' is not an ISO 8601 "
                                             f"time")
                out.append(Answer(get["participant"], get["case"], position, stamp, start + len(out)))
    except UnicodeDecodeError:
        raise FineNetError(path, "not a UTF-8 text file") from None
    except csv.Error as exc:
        raise FineNetError(path, f"not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise FineNetError(path, f"cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    if not out:
        raise FineNetError(path, "no answers (only the header)")
    return out


def _span(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{len(ids)} cases, {ids[0]} … {ids[-1]}"


def last_answers(answers: list[Answer]) -> tuple[dict, int]:
    """(participant, case) -> the answer that counts, and how many earlier ones it replaced."""
    kept: dict = {}
    for a in sorted(answers, key=lambda a: (a.timestamp, a.order)):
        kept[a.participant, a.case] = a
    return kept, len(answers) - len(kept)


# --- counting --------------------------------------------------------------------------------------

def bootstrap_shares(votes: np.ndarray, samples: int, confidence: float, seed: int) -> tuple:
    """Percentile intervals of each method's share, resampling the rows (participants) of
    ``votes`` (participants x methods) with replacement."""
    rng = np.random.default_rng(seed)
    n = len(votes)
    shares = np.empty((samples, votes.shape[1]))
    for start in range(0, samples, 1000):
        k = min(1000, samples - start)
        totals = votes[rng.integers(0, n, size=(k, n))].sum(axis=1)
        shares[start:start + k] = totals / totals.sum(axis=1, keepdims=True)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(shares, [tail, 100 - tail], axis=0)
    return lo, hi


def count(key: dict, kept: dict, samples: int, confidence: float, seed: int) -> tuple[list, dict, list]:
    options = {c["id"]: c["options"] for c in key["cases"]}
    methods = order_methods(key["methods"])
    column = {m: j for j, m in enumerate(methods)}
    people = sorted({p for p, _ in kept})
    row = {p: i for i, p in enumerate(people)}
    votes = np.zeros((len(people), len(methods)), dtype=np.int64)
    per_case = {c: {m: 0 for m in options[c]} for c in options}
    for (person, case), a in kept.items():
        method = options[case][a.position - 1]
        votes[row[person], column[method]] += 1
        per_case[case][method] += 1
    lo, hi = bootstrap_shares(votes, samples, confidence, seed)
    total = votes.sum()
    rows = [dict(method=m, label=METHODS.get(m, m), votes=int(votes[:, j].sum()),
                 share=float(votes[:, j].sum() / total), ci_lo=float(lo[j]), ci_hi=float(hi[j]))
            for j, m in enumerate(methods)]
    rows.sort(key=lambda r: -r["votes"])                      # stable: ties keep the tables' order
    return rows, per_case, people


# --- writing ---------------------------------------------------------------------------------------

def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def write_markdown(path: Path, key: dict, result: Result, samples: int, confidence: float, seed: int) -> None:
    level = f"{100 * confidence:g} %"
    table = markdown(["Method", "votes", "share", f"{level} CI"],
                     [[f"{r['label']} `{r['method']}`", str(r["votes"]), pct(r["share"]),
                       f"[{pct(r['ci_lo'])}, {pct(r['ci_hi'])}]"] for r in result.rows])
    finenet = next((r for r in result.rows if r["method"] == FINENET), None)
    text = ("# User study: which result looks best?\n\n"
            f"{result.participants} participant{'s' * (result.participants != 1)} picked the best-looking of "
            f"{len(key['methods'])} methods' outputs, shown in a random order per case without their names, "
            f"on {result.cases_answered} of the page's {result.cases} cases (sets: "
            f"{', '.join(key.get('sets', []))}); {result.answers} answers counted"
            + (f", {result.duplicates} earlier duplicate answer{'s' * (result.duplicates != 1)} replaced"
               if result.duplicates else "") + ".\n\n" + table +
            f"\nShare: a method's votes over all counted answers. {level} CI: percentile bootstrap over "
            f"participants ({samples} resamples, seed {seed}): participants drawn with replacement, each "
            "share recomputed from the resample's answers, so one participant's answers stay together"
            + (" (with a single participant the interval is a single point)" if result.participants == 1
               else "") + ". Duplicates: when a participant answered a case more than once, the answer "
            "with the latest timestamp counts (equal timestamps: the one read last).\n\n"
            f"The paper ({PAPER['where']}): {PAPER['users']} users, {PAPER['cases']} real-blur cases, FineNet "
            f"chosen {pct(PAPER['finenet_share'])} of the time"
            + (f"; here {pct(finenet['share'])}." if finenet else ".") + "\n")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv(path: Path, rows: list) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "label", "votes", "share", "ci_lo", "ci_hi"])
        for r in rows:
            w.writerow([r["method"], r["label"], r["votes"], *(f"{r[k]:.4f}" for k in ("share", "ci_lo", "ci_hi"))])


def pie(path: Path, result: Result) -> None:
    """Votes per method, in the report's figure style (``figures._pyplot``, ``figures.save``);
    FineNet in the report's FineNet green."""
    from ..reporting import figures

    shown = [r for r in result.rows if r["votes"] > 0]
    with figures._pyplot() as plt:
        cmap = plt.get_cmap("tab10")
        others = [cmap(i) for i in range(10) if i != 2]        # tab10's green is FineNet's colour
        colors, k = [], 0
        for r in shown:
            if r["method"] == FINENET:
                colors.append(figures.COLORS["comb"])
            else:
                colors.append(others[k % len(others)])
                k += 1
        fig, ax = plt.subplots(figsize=(5.0, 3.6))
        ax.pie([r["votes"] for r in shown], colors=colors, startangle=90, counterclock=False,
               autopct=lambda p: f"{p:.1f}%", pctdistance=0.7,
               wedgeprops={"linewidth": 1, "edgecolor": "white"}, textprops={"fontsize": 7})
        ax.set_aspect("equal")
        handles = [plt.matplotlib.patches.Patch(color=c, label=f"{r['label']} ({r['votes']})")
                   for r, c in zip(shown, colors)]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
        ax.set_title(f"User study: votes for the best-looking result\n{result.participants} participant"
                     f"{'s' * (result.participants != 1)}, {result.answers} answers on {result.cases_answered} "
                     f"cases\n(paper: FineNet {100 * PAPER['finenet_share']:.1f}%, {PAPER['users']} users, "
                     f"{PAPER['cases']} cases)", fontsize=8)
        fig.tight_layout()
        figures.save(fig, path)
        plt.close(fig)


def tally(key_path, answer_paths, out, page=None, samples: int = 10000, confidence: float = 0.95,
          seed: int = 0) -> Result:
    key_path, out = Path(key_path), Path(out)
    if samples < 1:
        raise FineNetError("--bootstrap-samples", "must be at least 1")
    if not 0 < confidence < 1:
        raise FineNetError("--confidence", "must lie strictly between 0 and 1")
    key = load_key(key_path)
    check_page(key, key_path, page)
    answers: list[Answer] = []
    for p in answer_paths:
        answers += read_answers(Path(p), key, len(answers))
    kept, duplicates = last_answers(answers)
    rows, per_case, people = count(key, kept, samples, confidence, seed)
    result = Result(rows, participants=len(people), answers=len(kept),
                    cases_answered=len({c for _, c in kept}), cases=len(key["cases"]), duplicates=duplicates)
    result.outputs = [out / name for name in OUTPUTS]
    write_csv(result.outputs[0], rows)
    write_markdown(result.outputs[1], key, result, samples, confidence, seed)
    cases = {c["id"]: c for c in key["cases"]}
    summary = {
        "study": key["study"], "key": str(key_path), "answer_files": [str(p) for p in answer_paths],
        "participants": result.participants, "answers": result.answers, "duplicates_replaced": duplicates,
        "cases": result.cases, "cases_answered": result.cases_answered, "sets": key.get("sets", []),
        "interval": {"method": "percentile bootstrap over participants", "samples": samples,
                     "confidence": confidence, "seed": seed},
        "duplicates": "latest timestamp counts; equal timestamps: the one read last",
        "methods": [{k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()}
                    for r in rows],
        "per_case": {c: {"set": cases[c].get("set"), "clip": cases[c].get("clip"), "t": cases[c].get("t"),
                         "votes": v} for c, v in per_case.items()},
        "paper": PAPER,
    }
    with atomic_path(result.outputs[2]) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    pie(result.outputs[3], result)
    return result
