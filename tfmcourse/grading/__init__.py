"""Grading: ``tfmcourse grade`` (nbval, in the learner's notebook) and ``--secure`` (out of process).

``report`` holds the result types, the table and the JSON format both share.
"""

from tfmcourse.grading.report import ExerciseResult, NotebookReport, render_table, to_json  # noqa: F401
