"""Combine forensic tests with family-wise error control and write the evidence report (JSON and HTML).

Holm's step-down procedure over the tests run: the family-wise error rate stays at
``alpha`` whatever the dependence between the tests, and the combined p-value is
the smallest Holm-adjusted one (the evidence that at least one null is false).

>>> holm([0.01, 0.04, 0.3])
[0.03, 0.08, 0.3]
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillguard.stats import TestResult


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = round(running, 15)
    return adjusted


@dataclass
class Finding:
    name: str
    null_hypothesis: str
    alternative: str
    data: dict[str, Any]
    result: TestResult


@dataclass
class Evidence:
    suspect: str
    setting: str
    key: dict[str, Any]
    alpha: float
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        adjusted = holm([f.result.p_value for f in self.findings])
        tests = [{"name": f.name, "null_hypothesis": f.null_hypothesis, "alternative": f.alternative,
                  "data": f.data, **f.result.to_json(), "holm_adjusted_p_value": adj, "rejected": adj <= self.alpha}
                 for f, adj in zip(self.findings, adjusted, strict=True)]
        combined = min(adjusted, default=1.0)
        rejected = [f.name for f, adj in zip(self.findings, adjusted, strict=True) if adj <= self.alpha]
        conclusion = (f"evidence that the suspect was trained on our outputs ({', '.join(rejected)}; "
                      f"family-wise p = {combined:.3g} ≤ alpha = {self.alpha:g})" if rejected else
                      f"no evidence at alpha = {self.alpha:g} (family-wise p = {combined:.3g}); this does not show "
                      "that the suspect was not distilled")
        return {"suspect": self.suspect, "setting": self.setting, "key": self.key, "alpha": self.alpha,
                "tests": tests, "p_value": combined, "conclusion": conclusion,
                "method": "Holm step-down over the tests run (family-wise error control at alpha)"}

    def write(self, out: Path) -> dict[str, Any]:
        out.mkdir(parents=True, exist_ok=True)
        data = self.to_json()
        (out / "evidence.json").write_text(json.dumps(data, indent=2) + "\n")
        (out / "evidence.html").write_text(_html(data))
        return data


def _html(d: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(t['name'])}</td><td>{html.escape(t['null_hypothesis'])}</td>"
        f"<td>{html.escape(json.dumps(t['data']))}</td><td>{t['n_scored']:,}</td><td>{t['statistic']:.4g}</td>"
        f"<td>{t['p_value']:.3g}</td><td>{t['holm_adjusted_p_value']:.3g}</td>"
        f"<td>{'rejected' if t['rejected'] else 'kept'}</td></tr>" for t in d["tests"])
    return f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>distillguard evidence</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{border:1px solid #ccc;padding:4px}}
table{{border-collapse:collapse}}</style>
<h1>Distillation evidence</h1>
<p>Suspect: <code>{html.escape(d['suspect'])}</code> ({html.escape(d['setting'])} setting);
key: <code>{html.escape(json.dumps(d['key']))}</code>; alpha = {d['alpha']:g}.</p>
<p><strong>{html.escape(d['conclusion'])}</strong></p>
<table><tr><th>test</th><th>null hypothesis</th><th>data</th><th>scored</th><th>statistic</th><th>p-value</th>
<th>Holm-adjusted</th><th>verdict</th></tr>{rows}</table>
<p>{html.escape(d['method'])}. Every p-value is exact under its null hypothesis.</p></html>
"""
