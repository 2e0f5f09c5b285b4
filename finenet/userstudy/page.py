"""The study page: one static HTML file, images as PNG data URIs, its style and script inline.

The page knows each case by an opaque id (``case01`` ...) and its options by position (1 ... k);
which method is behind a position is only in the key (``build.py``). A Content-Security-Policy
meta tag forbids every network fetch (``default-src 'none'``; images only from ``data:``).

The script keeps one choice per case (radio buttons; clicking an image selects it), counts
"k of n answered", and "Download answers" saves a CSV through a Blob download, one row per answered
case: ``study,participant,case,position,timestamp`` (the study id written into the page, the
participant's name, the case id, the 1-based position chosen, and the ISO 8601 UTC time the choice
was made).
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np
from PIL import Image

STUDY_PLACEHOLDER = "@@STUDY-ID@@"     # replaced by the hash of the page written with it (build.py)
COLUMNS = ("study", "participant", "case", "position", "timestamp")
DISPLAY = 200                          # images narrower than this are shown at an integer zoom

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f4f4f6}
header{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #ddd;padding:.8rem 1.5rem}
header h1{font-size:1.3rem;margin:0 0 .3rem}
header p{margin:.2rem 0 .6rem;max-width:60rem}
.bar{display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
.bar input[type=text]{font-size:1rem;padding:.3rem .5rem;width:16rem}
#progress{font-weight:600}
button{font-size:1rem;padding:.4rem 1rem;cursor:pointer}
#status{color:#555}
main{padding:1rem 1.5rem}
section.case{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.8rem 1rem;margin:0 0 1.2rem}
section.case.answered{border-color:#55A868}
section.case h2{font-size:1.05rem;margin:0 0 .5rem}
figure{margin:0}
figure.reference{margin:0 0 .7rem}
figcaption{font-size:.9rem;color:#444}
fieldset{border:0;margin:0;padding:0}
legend{font-size:.95rem;margin:0 0 .4rem;padding:0}
.options{display:flex;flex-wrap:wrap;gap:.8rem}
label.option{display:flex;flex-direction:column;align-items:center;gap:.3rem;padding:.4rem;border:3px solid transparent;border-radius:6px;cursor:pointer}
label.option:hover{border-color:#c8d6ec}
label.option.chosen{border-color:#4C72B0;background:#eef3fb}
img{display:block;background:#000}
img.zoom{image-rendering:pixelated}
footer{padding:0 1.5rem 2rem;color:#444;font-size:.9rem;max-width:64rem}
"""

SCRIPT = """
"use strict";
(function () {
  var study = document.body.getAttribute("data-study");
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.case"));
  var answers = {};
  var nameBox = document.getElementById("participant");
  var progress = document.getElementById("progress");
  var status = document.getElementById("status");

  function answered() {
    return sections.filter(function (s) { return answers.hasOwnProperty(s.id); }).length;
  }
  function update() {
    progress.textContent = answered() + " of " + sections.length + " answered";
    sections.forEach(function (s) {
      s.classList.toggle("answered", answers.hasOwnProperty(s.id));
      Array.prototype.forEach.call(s.querySelectorAll("label.option"), function (l) {
        l.classList.toggle("chosen", l.querySelector("input").checked);
      });
    });
  }
  document.addEventListener("change", function (e) {
    var box = e.target;
    if (box.type !== "radio" || !box.checked) { return; }
    answers[box.name] = {position: box.value, timestamp: new Date().toISOString()};
    update();
  });
  function field(text) {
    return /[",\\r\\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  document.getElementById("download").addEventListener("click", function () {
    var participant = nameBox.value.trim();
    if (!participant) {
      status.textContent = "Please enter your name first.";
      nameBox.focus();
      return;
    }
    var rows = ["__COLUMNS__"];
    sections.forEach(function (s) {
      var a = answers[s.id];
      if (a) { rows.push([study, participant, s.id, a.position, a.timestamp].map(field).join(",")); }
    });
    if (rows.length === 1) {
      status.textContent = "Nothing answered yet.";
      return;
    }
    var file = "answers-" + participant.replace(/[^A-Za-z0-9_-]+/g, "_") + ".csv";
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([rows.join("\\r\\n") + "\\r\\n"], {type: "text/csv"}));
    link.download = file;
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
    status.textContent = "Saved " + (rows.length - 1) + " of " + sections.length + " answers as " + file + ".";
  });
  update();
})();
"""


def png_data_uri(image: np.ndarray) -> str:
    """An RGB uint8 image as a ``data:image/png;base64,...`` URI (same pixels, same bytes)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buf, format="PNG", compress_level=9)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(image: np.ndarray, alt: str) -> str:
    h, w = image.shape[:2]
    zoom = max(1, round(DISPLAY / w))
    cls = ' class="zoom"' if zoom > 1 else ""
    return (f'<img{cls} src="{png_data_uri(image)}" width="{w * zoom}" height="{h * zoom}" '
            f'alt="{escape(alt)}">')


def render(cases: list, footer: list[str], study: str = STUDY_PLACEHOLDER) -> str:
    """The page. ``cases``: objects with ``id``, ``reference`` (the input image) and ``images``
    (one per position, in position order); ``footer``: paragraphs of plain text."""
    n = len(cases)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
             'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'">',
             "<title>Face video deblurring: which result looks best?</title>",
             f"<style>{STYLE}</style>", "</head>", f'<body data-study="{escape(study)}">', "<header>",
             "<h1>Face video deblurring: which result looks best?</h1>",
             f"<p>{'The case' if n == 1 else f'Each of the {n} cases'} below shows a blurred video frame of a face "
             "(<em>input</em>) and several attempts to restore it, in a random order"
             + (" (a different one for every case)" if n > 1 else "") + ". Pick the one that looks best to you: click its image. When you are done, "
             "enter your name and press <em>Download answers</em>, then send the file you get back "
             "to whoever gave you this page.</p>",
             '<div class="bar"><label>Your name <input type="text" id="participant" autocomplete="name" '
             'placeholder="name"></label>', f'<span id="progress">0 of {n} answered</span>',
             '<button type="button" id="download">Download answers</button>',
             '<span id="status" aria-live="polite"></span></div>', "</header>", "<main>"]
    for i, case in enumerate(cases, 1):
        parts += [f'<section class="case" id="{escape(case.id)}">', f"<h2>Case {i} of {n}</h2>",
                  '<figure class="reference">', _img(case.reference, f"case {i}: input"),
                  "<figcaption>input</figcaption>", "</figure>",
                  "<fieldset>", "<legend>Which result looks best?</legend>", '<div class="options">']
        for pos, image in enumerate(case.images, 1):
            parts += ['<label class="option">', _img(image, f"case {i}: option {pos}"),
                      f'<span><input type="radio" name="{escape(case.id)}" value="{pos}"> option {pos}</span>',
                      "</label>"]
        parts += ["</div>", "</fieldset>", "</section>"]
    parts += ["</main>", "<footer>", *(f"<p>{escape(p)}</p>" for p in footer), "</footer>",
              f"<script>{SCRIPT.replace('__COLUMNS__', ','.join(COLUMNS))}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
