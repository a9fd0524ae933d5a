"""The study, tokembed's main job: tokenizer kinds × embedding designs trained under an equal budget.

- :mod:`~tokembed.study.config`: :class:`StudyConfig`, the presets, the designs and the budget rule;
- :mod:`~tokembed.study.run`: :func:`run_study` (prepare, train and evaluate every run; results files);
- :mod:`~tokembed.study.report`: the recommendations and ``report.html``;
- :mod:`~tokembed.study.plots`: the figures of the report.
"""

from .config import ALL_KINDS, DESIGNS, PRESETS, StudyConfig, design_overrides, steps_for_budget
from .run import RESULT_COLUMNS, StudyResult, run_study, write_results

__all__ = [
    "StudyConfig",
    "StudyResult",
    "DESIGNS",
    "ALL_KINDS",
    "PRESETS",
    "RESULT_COLUMNS",
    "run_study",
    "steps_for_budget",
    "design_overrides",
    "write_results",
]
