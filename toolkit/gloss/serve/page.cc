#include "gloss/serve/page.h"

namespace gloss::serve {

namespace {

// The page's parts, in the order page_html() joins them.
constexpr const char* kHead = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gloss translate</title>
)HTML";

constexpr const char* kStyle = R"HTML(<style>
  body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; color: #222; }
  h1 { font-size: 1.4em; }
  textarea { width: 100%; height: 6em; font-size: 1em; box-sizing: border-box; }
  .controls { margin: 0.5em 0 1.5em; display: flex; gap: 1.2em; align-items: center; }
  .controls input { width: 3.5em; }
  button { font-size: 1em; padding: 0.3em 1.2em; }
  .sentence { border-top: 1px solid #ddd; padding: 1em 0; }
  .source { color: #666; }
  .translation { font-size: 1.2em; margin: 0.3em 0; }
  .nbest { color: #444; margin: 0.3em 0; }
  .nbest .score, .score { color: #888; font-size: 0.85em; margin-left: 0.6em; }
  .error { color: #b00020; }
  table.heatmap { border-collapse: collapse; margin-top: 0.6em; font-size: 0.8em; }
  table.heatmap td { width: 2.2em; height: 1.6em; border: 1px solid #fff; }
  table.heatmap th { font-weight: normal; padding: 0 0.4em; white-space: nowrap; }
  table.heatmap thead th { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; padding: 0.4em 0; }
  table.heatmap tbody th { text-align: right; }
</style>
</head>
)HTML";

// The form and an empty results area the script fills.
constexpr const char* kBody = R"HTML(<body>
<h1>Gloss translate</h1>
<textarea id="input" placeholder="One sentence per line">A man is riding a bicycle down the street.</textarea>
<div class="controls">
  <label>beam size <input id="beam" type="number" min="1" max="16" value="5"></label>
  <label>n-best <input id="nbest" type="number" min="1" max="16" value="3"></label>
  <button id="go">Translate</button>
  <span id="status"></span>
</div>
<div id="results"></div>
)HTML";

// Posts the sentences to /translate and draws each answer: translation, n-best, heat map.
constexpr const char* kScript = R"HTML(<script>
"use strict";
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
// Subword pieces as people read them: a word's first piece as is (without its word-start
// mark U+2581), a piece that continues a word after a middle dot.
const piece = p => p.startsWith("\u2581") ? (p.slice(1) || "\u2423") : (p.startsWith("<") ? p : "\u00b7" + p);

function heatmap(a) {
  const table = el("table", "heatmap");
  const head = el("thead"), hr = el("tr");
  hr.appendChild(el("th"));
  for (const s of a.source) hr.appendChild(el("th", "", piece(s)));
  head.appendChild(hr);
  table.appendChild(head);
  const body = el("tbody");
  a.weights.forEach((row, i) => {
    const tr = el("tr");
    tr.appendChild(el("th", "", piece(a.target[i])));
    for (const w of row) {
      const td = el("td");
      td.style.background = `rgba(30, 80, 200, ${w.toFixed(3)})`;
      td.title = w.toFixed(3);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  });
  table.appendChild(body);
  return table;
}

function show(sources, answer) {
  const results = document.getElementById("results");
  results.replaceChildren();
  answer.translations.forEach((t, i) => {
    const box = el("div", "sentence");
    box.appendChild(el("div", "source", sources[i]));
    const best = el("div", "translation", t.text);
    best.appendChild(el("span", "score", t.score.toFixed(3)));
    box.appendChild(best);
    if (t.n_best && t.n_best.length > 1) {
      const list = el("ol", "nbest");
      for (const h of t.n_best) {
        const li = el("li", "", h.text);
        li.appendChild(el("span", "score", h.score.toFixed(3)));
        list.appendChild(li);
      }
      box.appendChild(list);
    }
    if (t.alignment && t.alignment.source.length) box.appendChild(heatmap(t.alignment));
    results.appendChild(box);
  });
}

async function translate() {
  const status = document.getElementById("status");
  const sources = document.getElementById("input").value.split("\n").map(s => s.trim()).filter(s => s.length);
  if (!sources.length) return;
  const beam = parseInt(document.getElementById("beam").value, 10) || 5;
  const nbest = Math.min(beam, parseInt(document.getElementById("nbest").value, 10) || 1);
  status.className = "";
  status.textContent = "translating\u2026";
  const started = performance.now();
  try {
    const res = await fetch("translate", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({text: sources, beam_size: beam, n_best: nbest, alignment: true}),
    });
    const answer = await res.json();
    if (!res.ok) throw new Error(answer.error || res.statusText);
    show(sources, answer);
    status.textContent = `${sources.length} sentence(s) in ${Math.round(performance.now() - started)} ms`;
  } catch (err) {
    status.className = "error";
    status.textContent = "error: " + err.message;
  }
}

document.getElementById("go").addEventListener("click", translate);
document.getElementById("input").addEventListener("keydown", e => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) translate();
});
const asked = new URLSearchParams(location.search).get("text");
if (asked) {
  document.getElementById("input").value = asked;
  translate();
}
</script>
</body>
</html>
)HTML";

}  // namespace

const std::string& page_html() {
  static const std::string page = std::string(kHead) + kStyle + kBody + kScript;
  return page;
}

}  // namespace gloss::serve
