"""The run's report: one self-contained HTML page comparing every model.

Images are embedded as base64 PNG, so the page can be mailed or archived alone. The first screen
holds the table of models ranked by AUC, the best model and its rejection at the first of the
configured signal efficiencies.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

from jetimage import io

#: Published figures for comparison (different, much larger dataset: 1.2 M training jets).
TOP_TAGGING_REFERENCE = {
    "source": "Kasieczka et al., 'The Machine Learning Landscape of Top Taggers', "
              "SciPost Phys. 7, 014 (2019), Table 1",
    "rows": [("CNN (image)", 0.981, 914), ("ResNeXt (image)", 0.984, 1122),
             ("ParticleNet", 0.985, 1615)],
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1300px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;
text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}.best{background:#e6f4e6}
img{max-width:100%;border:1px solid #eee}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.note{color:#666;font-size:90%}pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:85%}
.headline{font-size:120%;background:#eef5ff;padding:.8em;border-radius:6px}
"""


def embed_png(path: str | os.PathLike, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(entry: dict, digits: int) -> str:
    """A value with its bootstrap uncertainty: ± std, or the asymmetric 68% interval when the
    distribution is skewed (as rejections at high purity are)."""
    value, std, interval = entry["value"], entry.get("std"), entry.get("interval68")
    if entry.get("lower_limit"):
        return f"&gt; {value:.{digits}f} (no background passes; 68% CL)"
    if std is None or interval is None:
        return f"{value:.{digits}f}"
    up, down = interval[1] - value, value - interval[0]
    if abs(up - down) > 0.25 * max(up, down, 1e-12):
        return f"{value:.{digits}f} <sup>+{up:.{digits}f}</sup><sub>−{down:.{digits}f}</sub>"
    return f"{value:.{digits}f} ± {std:.{digits}f}"


def _jsd(metrics: dict, key: str = "mass_sculpting") -> str:
    value = metrics.get(key, {}).get("jensen_shannon_bits")
    return "–" if value is None else f"{value:.3f}"


def _window(metrics: dict, efficiency: float) -> str:
    """1/εB at ``efficiency`` among the jets of the soft-drop-mass window."""
    entry = metrics.get("in_msd_window", {}).get(f"rejection_at_{efficiency:g}")
    return "–" if entry is None else _fmt(entry, 1)


def git_commit(where: str | os.PathLike = ".") -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def build_report(
    path: str | os.PathLike,
    *,
    metrics: Mapping[str, dict],
    plots: Mapping[str, Mapping[str, str]],
    comparison_plot: str | None,
    mean_images: str | None,
    dataset: dict,
    config: dict,
    versions: dict,
) -> None:
    """Write the HTML report.

    Args:
        metrics: model name → contents of its ``metrics.json``.
        plots: model name → {caption: PNG path}.
        comparison_plot: PNG overlaying every model's rejection curve.
        mean_images: PNG of the mean test image of each class.
        dataset: the dataset store's attributes.
        config: the run's config.
        versions: package versions.
    """
    ranked = sorted(metrics, key=lambda m: -metrics[m]["auc"]["value"])
    best = ranked[0] if ranked else None
    classes = dataset["classes"]
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>jetimage report</title>",
           f"<style>{_CSS}</style></head><body>", "<h1>jetimage report</h1>"]
    efficiencies = list(config.get("evaluation", {}).get("efficiencies", [0.3, 0.5]))
    first = efficiencies[0]
    if best:
        m = metrics[best]
        out.append(
            f"<p class='headline'>Best model: <b>{html.escape(best)}</b> — AUC "
            f"<b>{_fmt(m['auc'], 4)}</b>, background rejection 1/ε<sub>B</sub> at "
            f"ε<sub>S</sub> = {first:g}: <b>{_fmt(m[f'rejection_at_{first:g}'], 1)}</b> "
            f"(signal: {html.escape(m['signal'])}, {m['n_test']} test jets)</p>")
    windowed = any("in_msd_window" in m for m in metrics.values())
    groomed = any("msd_sculpting" in m for m in metrics.values())
    out.append("<h2>Models</h2><table><tr><th class='l'>model</th><th>AUC</th><th>accuracy</th>"
               + "".join(f"<th>1/ε<sub>B</sub> at ε<sub>S</sub>={e:g}</th>" for e in efficiencies)
               + (f"<th>1/ε<sub>B</sub> at ε<sub>S</sub>={efficiencies[-1]:g}<br>in the "
                  f"m<sub>SD</sub> window</th>" if windowed else "")
               + "<th>mass sculpting<br>(JSD, bits)</th>"
               + ("<th>m<sub>SD</sub> sculpting<br>(JSD, bits)</th>" if groomed else "")
               + "<th>test jets</th></tr>")
    for name in ranked:
        m = metrics[name]
        cls = " class='best'" if name == best else ""
        out.append(f"<tr{cls}><td class='l'>{html.escape(name)}</td><td>{_fmt(m['auc'], 4)}</td>"
                   f"<td>{_fmt(m['accuracy'], 4)}</td>"
                   + "".join(f"<td>{_fmt(m[f'rejection_at_{e:g}'], 1)}</td>"
                             for e in efficiencies)
                   + (f"<td>{_window(m, efficiencies[-1])}</td>" if windowed else "")
                   + f"<td>{_jsd(m)}</td>"
                   + (f"<td>{_jsd(m, 'msd_sculpting')}</td>" if groomed else "")
                   + f"<td>{m['n_test']}</td></tr>")
    resamplings = config.get("evaluation", {}).get("bootstrap", 0)
    uncertainties = (f"Uncertainties from {resamplings} bootstrap resamplings of the test set: ± "
                     f"standard deviation, or the 68% interval where it is asymmetric."
                     if resamplings else "No uncertainties: evaluation/bootstrap is 0.")
    window_note = ""
    if windowed:
        low, high = next(m["in_msd_window"]["window"] for m in metrics.values()
                         if "in_msd_window" in m)
        window_note = (f" In the m<sub>SD</sub> window ({low:.0f}–{high:.0f} GeV, the signal's "
                       f"interquartile range) the soft-drop mass no longer separates: what is "
                       f"left is what a tagger learns beyond it (de Oliveira et al., "
                       f"arXiv:1511.05190).")
    out.append(f"</table><p class='note'>{uncertainties} Mass "
               "sculpting: Jensen-Shannon divergence between the background jet-mass spectra "
               "before and after the cut at ε<sub>S</sub> = 0.5 (0 = unchanged, 1 = "
               f"disjoint), of the plain and of the soft-drop mass.{window_note}</p>")
    if set(classes) == {"qcd", "top"} or set(classes) == {"QCD", "top"}:
        ref = TOP_TAGGING_REFERENCE
        out.append("<h3>Published reference (different dataset size)</h3><table>"
                   "<tr><th class='l'>tagger</th><th>AUC</th><th>1/ε<sub>B</sub> at "
                   "ε<sub>S</sub>=0.3</th></tr>")
        out += [f"<tr><td class='l'>{t}</td><td>{a:.3f}</td><td>{r}</td></tr>"
                for t, a, r in ref["rows"]]
        out.append(f"</table><p class='note'>{html.escape(ref['source'])}. Those taggers were "
                   "trained on 1.2 M jets after a detector simulation; this run uses "
                   f"{sum(dataset['splits']['train'].values())} training jets at particle level. "
                   "Fewer training jets lower the figures, the missing detector smearing raises "
                   "them: compare trends, not values.</p>")
    if comparison_plot:
        out += ["<h2>All models</h2>", embed_png(comparison_plot, "rejection of all models")]
    for name in ranked:
        out.append(f"<h2 id='{html.escape(name)}'>{html.escape(name)}</h2><div class='grid'>")
        for caption, png in plots.get(name, {}).items():
            out.append(f"<figure>{embed_png(png, f'{name} {caption}')}"
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        out.append("</div>")
    out.append("<h2>Dataset</h2>")
    if mean_images:
        out.append(embed_png(mean_images, "mean image per class"))
    out.append("<table><tr><th class='l'>split</th>"
               + "".join(f"<th>{html.escape(c)}</th>" for c in classes) + "</tr>")
    for split, counts in dataset["splits"].items():
        out.append(f"<tr><td class='l'>{split}</td>"
                   + "".join(f"<td>{counts[c]}</td>" for c in classes) + "</tr>")
    out.append("</table><h3>Image spec</h3><pre>"
               + html.escape(json.dumps(dataset["image_spec"], indent=1)) + "</pre>")
    out.append("<h3>Sources</h3><table><tr><th class='l'>file</th><th class='l'>format</th>"
               "<th class='l'>jets per class</th><th>read</th><th>kept</th>"
               "<th class='l'>dropped</th><th class='l'>sha256</th></tr>")
    for s in dataset["sources"]:
        per_class = ", ".join(f"{c} {n}" for c, n in (s.get("label_counts") or {}).items() if n)
        dropped = ", ".join(f"{k} {n}" for k, n in (s.get("dropped") or {}).items() if n)
        out.append(f"<tr><td class='l'>{html.escape(str(s.get('source')))}</td>"
                   f"<td class='l'>{html.escape(str(s.get('format', '')))}</td>"
                   f"<td class='l'>{html.escape(per_class)}</td><td>{s.get('n_read', '')}</td>"
                   f"<td>{s.get('n_jets')}</td><td class='l'>{html.escape(dropped or '–')}</td>"
                   f"<td class='l'><code>{str(s.get('source_sha256'))[:16]}…</code></td></tr>")
    out.append("</table><h2>Provenance</h2><table>")
    commit = git_commit()
    rows = {"git commit": commit or "not a git checkout", "python": platform.python_version(),
            "platform": platform.platform(), **versions}
    out += [f"<tr><td class='l'>{html.escape(k)}</td><td class='l'>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()]
    out.append("</table><h3>Config</h3><pre>"
               + html.escape(yaml.safe_dump(config, sort_keys=False)) + "</pre></body></html>")
    with io.atomic_path(path) as tmp:
        tmp.write_text("\n".join(out), encoding="utf-8")
