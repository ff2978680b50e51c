"""Two-stage seed planning (Stein's procedure) for the report's undecided
comparisons: the plan's record in a grid's text."""
import json
import re

from pairedstats import TwoStage

PLAN_TAG = "two-stage plan:"
_PLAN_LINE = re.compile(r"^\s*#\s*" + re.escape(PLAN_TAG) + r"\s*(\{.*\})\s*$")


def plans_in_grid(grid_text):
    """{(finding, role, text): TwoStage} from the plan comments of a grid's
    text (lines "# two-stage plan: {json}"); {} when there are none."""
    plans = {}
    for line in (grid_text or "").splitlines():
        m = _PLAN_LINE.match(line)
        if not m:
            continue
        try:
            p = json.loads(m.group(1))
            key = (int(p["finding"]), str(p["role"]), str(p["text"]))
            plans[key] = TwoStage(tuple(int(s) for s in p["stage_one"]), float(p["sd"]),
                                  float(p["delta"]), float(p["confidence"]), int(p["total"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"grid text: a {PLAN_TAG!r} line is damaged ({e}): {line.strip()}")
    return plans
