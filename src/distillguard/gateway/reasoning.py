"""``summarize_reasoning``: each reasoning step reduced to its result, the procedure that produced it removed.

A rule, not a model, so that it is cheap, deterministic and auditable at the gateway, whatever the upstream.
A **step** is one line of the reasoning. A step that states an equation, ``[label:] left = result[, rest]``,
keeps its label and its result; the left side is kept only when it names something (``city = Paris``),
and dropped when it is a computation (operands and operators: ``5 + 7 + 1``); what follows the result
(``so write 3 carry 1``: how the procedure goes on) is dropped. A step without an equation is kept as it is:
it states, it does not derive. So a reader still sees every intermediate result, in order, and can check
them; a student no longer sees how each one was computed, which is what a trace teaches.

>>> summarize("units: 8 + 5 = 13, so write 3 carry 1\\ntens: 2 + 4 + 1 = 7, then put 7 move 0\\nfinal carry 1")
'units: 13\\ntens: 7\\nfinal carry 1'
>>> summarize("we should call get_weather\\ncity = Paris\\nunit is celsius")
'we should call get_weather\\ncity = Paris\\nunit is celsius'
>>> summarize("Natalia sold 48/2 = 24 clips in May.")
'24 clips in May.'

``Steps`` does the same to a stream, step by step: what it returns is always a summary of whole steps, so a
streamed summary and a whole one are the same text.

>>> s = Steps()
>>> s.feed("units: 8 + 5 = 1"), s.feed("3, so write 3\\ntens: 1"), s.close()
('', 'units: 13\\n', 'tens: 1')
"""

from __future__ import annotations

import re

__all__ = ["Steps", "summarize", "summarize_step"]

_EQUATION = re.compile(r"^(?P<label>[^:=\n]{1,60}:)?(?P<left>[^=\n]*?)=(?P<result>[^,;\n]*)")
_COMPUTATION = re.compile(r"[-+*/×÷^%]|\d\s*x\s*\d|\bx\s+\d")  # operators between operands


def summarize_step(step: str) -> str:
    """One step reduced to its label and result (unchanged when it states no equation)."""
    m = _EQUATION.match(step)
    if m is None or "==" in step:
        return step
    label, left, result = (m.group("label") or "").strip(), m.group("left").strip(), m.group("result").strip()
    if not result:
        return step
    if left and not _COMPUTATION.search(left) and not label:
        return f"{left} = {result}"
    return f"{label} {result}" if label else result


def summarize(reasoning: str) -> str:
    """Every step (line) of ``reasoning`` summarized, in order."""
    return "\n".join(summarize_step(line) for line in reasoning.split("\n"))


class Steps:
    """A streamed reasoning summarized step by step: ``feed`` returns the summary of the steps it completed,
    ``close`` that of the last, unfinished one."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> str:
        *done, self._pending = (self._pending + text).split("\n")
        return "".join(summarize_step(step) + "\n" for step in done)

    def close(self) -> str:
        rest, self._pending = self._pending, ""
        return summarize_step(rest) if rest else ""
