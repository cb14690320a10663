"""Keyed canaries: rare but natural phrases, with invented names, added to answers for watched accounts.

A canary is derived from the exchange id with HMAC-SHA256 under the
operator's key, so it cannot be predicted without the key, and is recorded in
the exchange's log record with the account that received it. Each carries a
``marker``: an invented but plausible name (a product, a guide, a tool) that no
one else would write. A model whose outputs later contain a marker, or that
finds a marker unusually likely, was trained on answers sent to the accounts
that received it.

>>> maker = CanaryMaker(CanarySettings(enabled=True, key="k"))
>>> c = maker.make("gx-1")
>>> c == maker.make("gx-1"), c.marker in c.text, maker.applies("allow"), maker.applies("throttle")
(True, True, False, True)
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from distillguard.schema import ACTIONS

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "qu", "th", "st", "gr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_CODAS = ("", "", "n", "r", "l", "x", "s", "th")
_NOUNS = ("method", "protocol", "pattern", "checklist", "heuristic", "rule", "convention", "technique")
_VERBS = ("sync", "fetch", "resolve", "merge", "index", "stage", "verify", "render")
_TEMPLATES = (
    " (This is sometimes called the {Name} {noun}.)",
    " For more, see the {Name} {noun} notes, ref {code}.",
    " Tip: the `{verb}_{name}` helper does this in one call.",
    " Practitioners know this as the {Name}-{code} {noun}.",
)


class CanarySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = False
    key: str | None = Field(None, description="secret; canaries cannot be predicted or forged without it")
    min_action: str = Field("monitor", description="accounts at this action or stricter receive canaries")
    share: float = Field(1.0, gt=0, le=1, description="share of their answers that carry one")


@dataclass(frozen=True)
class Canary:
    canary_id: str
    text: str
    marker: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.canary_id, "text": self.text, "marker": self.marker}


class CanaryMaker:
    def __init__(self, settings: CanarySettings) -> None:
        self.settings = settings
        self._min = ACTIONS.index(settings.min_action) if settings.min_action in ACTIONS else 1
        self._key = (settings.key or "").encode()

    def applies(self, action: str) -> bool:
        return bool(self.settings.enabled and self._key) and action in ACTIONS and ACTIONS.index(action) >= self._min

    def for_exchange(self, action: str, exchange_id: str) -> Canary | None:
        """The canary for this exchange, or None (action below the bar, or not drawn for ``share``)."""
        if not self.applies(action):
            return None
        canary = self.make(exchange_id)
        drawn = int(canary.canary_id[-8:], 16) / 0xFFFFFFFF
        return canary if drawn < self.settings.share else None

    def make(self, exchange_id: str) -> Canary:
        digest = hmac.new(self._key, exchange_id.encode(), hashlib.sha256).digest()
        stream = iter(digest)

        def pick(options: tuple[str, ...]) -> str:
            return options[next(stream) % len(options)]

        name = "".join(pick(_ONSETS) + pick(_VOWELS) for _ in range(3)) + pick(_CODAS)  # 3 syllables: rare
        code = f"{next(stream) % 90 + 10}{chr(65 + next(stream) % 26)}{next(stream) % 10}"
        template = pick(_TEMPLATES)
        text = template.format(Name=name.capitalize(), name=name, noun=pick(_NOUNS), verb=pick(_VERBS), code=code)
        # The marker is the invented name as written: the whole tool name, or the capitalized name.
        marker = text.split("`")[1] if "{verb}" in template else name.capitalize()
        return Canary(f"cn-{digest.hex()[:24]}", text, marker)
