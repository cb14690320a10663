"""Copy the benchmark result tables into the README between the results markers.

    python benchmarks/update_readme.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("detection", "independent_detection", "replay_detect", "incremental", "link_scale", "scan_throughput",
         "enrich_cost", "spark_scale",
         "gateway_latency", "gateway_soak", "lab_distillation", "lab_defences", "watermark_calibration",
         "watermark_power", "watermark_radioactivity", "canary_share",
         "sim_throughput", "ingest_memory", "elicitation", "safeguard")
# Hardening figures (hardening_gateway.md, hardening_ingest.md) are summarized in the gateway section.


def main() -> None:
    parts = []
    for name in ORDER:
        path = ROOT / "benchmarks" / "results" / f"{name}.md"
        if path.is_file():
            # Demote headings one level so they sit under the README's "Benchmarks".
            parts.append(re.sub(r"^# ", "### ", path.read_text().strip(), flags=re.M))
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = "<!-- results:begin -->\n" + "\n\n".join(parts) + "\n<!-- results:end -->"
    readme.write_text(re.sub(r"<!-- results:begin -->.*<!-- results:end -->", lambda _: block, text, flags=re.S))


if __name__ == "__main__":
    main()
