"""Lab results (``results.json`` of ``distillguard lab run``): the teacher, a student per defence and harvest
size, the baselines and what each harvest got through the gateway.

>>> LabRun(defence="none", prompts=24, harvested=24, with_reasoning=True, student_accuracy=0.5,
...        student_by_kind={"tool": 0.5}).as_json()["defence"]
'none'
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from distillguard.records.base import Record


class LabRecord(Record):
    """A part of ``results.json``: a field that is None does not apply to it and is left out."""

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ForensicTest(LabRecord):
    """A forensic test's outcome (``forensics.stats.TestResult.to_json``)."""

    statistic: float
    p_value: float
    n_scored: int
    method: str


class CanaryTest(LabRecord):
    """The canary test on one student: the canaries in its training answers, ranked against decoys."""

    canaries: int
    ranked_first: int
    ranks: list[int] | None = None
    decoys: int
    statistic: float | None = Field(None, description="absent when the student trained on no canary")
    p_value: float
    n_scored: int | None = None
    method: str | None = None


class HarvestSummary(LabRecord):
    """One defence's harvest through the gateway (``lab.harvest.HarvestResult.summary``; counts it adds later
    pass through)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    sent: int
    harvested: int
    with_reasoning: int = Field(description="harvested answers that came with reasoning")
    statuses: dict[str, int]
    seconds: float
    watermark: ForensicTest | None = Field(None, description="the watermark test on the harvest (watermark only)")
    canaries: int | None = Field(None, description="canaries the gateway sent (canary only)")


class LabRun(LabRecord):
    """A student trained on the first ``prompts`` prompts' harvest, with or without the reasoning."""

    defence: str
    prompts: int
    harvested: int
    with_reasoning: bool
    student_accuracy: float
    student_by_kind: dict[str, float]
    canary_test: CanaryTest | None = None


class Baselines(LabRecord):
    """Held-out accuracy of an untrained model and of students on ground truth."""

    untrained: float
    ground_truth_same_n: float
    small_data: float


class BaselineSizes(LabRecord):
    ground_truth_same_n: int
    small_data: int


class LabResults(LabRecord):
    """One lab experiment."""

    config: dict[str, Any] = Field(description="the experiment's settings (lab.experiment.LabConfig)")
    teacher_accuracy: float
    teacher_by_kind: dict[str, float]
    runs: list[LabRun]
    harvests: dict[str, HarvestSummary]
    baselines: Baselines
    baselines_n: BaselineSizes
    seconds: float
