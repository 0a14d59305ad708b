"""Checking an insights answer's narrative against the answer itself, as a reader would.

Every number written in a sentence (segment names in quotes set aside) must be listed in the
sentence's `numbers`, in order, and each listed number must point (JSON Pointer) at a value of
the same answer that, rounded as written, reads as the sentence writes it.
"""

from __future__ import annotations

import re
from typing import Any

NUMBER = re.compile(r"\d(?:,?\d)*(?:\.\d+)?%?")


def resolve(document: Any, pointer: str) -> Any:
    """RFC 6901: `/kpis/3/value` → document["kpis"][3]["value"]."""
    assert pointer.startswith("/"), pointer
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document


def read_number(text: str) -> tuple[float, float]:
    """(value, how far rounding may have moved it) of a number as a sentence writes it."""
    if text.endswith("%"):
        return float(text[:-1].replace(",", "")) / 100, 0.005
    return float(text.replace(",", "")), 0.5


def check_narrative(answer: dict) -> None:
    names = [row["segment"] for row in answer["segments"]]
    customers = next(k["value"] for k in answer["kpis"] if k["name"] == "customers")
    if customers:
        assert 3 <= len(answer["narrative"]) <= 6, answer["narrative"]
    for sentence in answer["narrative"]:
        text = sentence["text"]
        for name in sorted(names, key=len, reverse=True):
            text = text.replace(f"'{name}'", "''")
        written = NUMBER.findall(text)
        listed = [number["text"] for number in sentence["numbers"]]
        assert written == listed, f"{sentence['text']!r}: writes {written}, lists {listed}"
        for number in sentence["numbers"]:
            value = resolve(answer, number["path"])
            assert value == number["value"], (number, value)
            read, rounding = read_number(number["text"])
            assert abs(read - value) <= rounding + 1e-9, (sentence["text"], number, value)
