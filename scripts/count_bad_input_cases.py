"""Count the test suite's bad-input and fault cases by expected outcome.

A case is a collected test item marked ``@pytest.mark.bad_input(OUTCOME)`` (each parametrized case counts
once; a generated (hypothesis) test counts its examples). Only collection runs: nothing is trained.

    python scripts/count_bad_input_cases.py            # the whole tests/ folder
    python scripts/count_bad_input_cases.py tests/test_bad_inputs.py

Outcomes: refused (exit 2, one ``error:`` line, nothing written), accepted (a valid edge input does its
work), interrupted (Ctrl-C / SIGTERM / a fault midway: run resumable or probe folder discarded), stopped
(training diverged: exit 3, last good checkpoint kept), generated (exit 0 or one error line, for every
generated input).
"""
from __future__ import annotations

import contextlib
import io
import sys
from collections import Counter
from pathlib import Path


class Tally:
    """A pytest plugin that counts marked items by outcome and by file."""

    def __init__(self) -> None:
        self.outcomes: Counter = Counter()
        self.files: Counter = Counter()

    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            mark = item.get_closest_marker("bad_input")
            if mark is None:
                continue
            settings = getattr(getattr(item, "obj", None), "_hypothesis_internal_use_settings", None)
            weight = getattr(settings, "max_examples", 1) if settings is not None else 1
            self.outcomes[mark.args[0]] += weight
            self.files[Path(str(item.fspath)).name] += weight


def main(argv: list[str]) -> int:
    import pytest

    tally = Tally()
    with contextlib.redirect_stdout(io.StringIO()) as log:
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *(argv or ["tests"])], plugins=[tally])
    if code not in (0, 5):
        print(log.getvalue()[-2000:], file=sys.stderr)
        return int(code)
    total = sum(tally.outcomes.values())
    print(f"{total} bad-input and fault cases")
    for outcome, count in tally.outcomes.most_common():
        print(f"  {outcome:<12} {count}")
    print("by file:")
    for name, count in sorted(tally.files.items()):
        print(f"  {name:<28} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
