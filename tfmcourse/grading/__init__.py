"""Grading learners' notebooks: ``tfmcourse grade`` and ``tfmcourse grade --secure``.

Plain grading (:mod:`.kernel`) runs a notebook top to bottom in a fresh kernel
and reads each check cell's outcome: quick feedback that trusts the learner's
kernel. Secure grading (:mod:`.secure`) is for marks that count: it never runs
the notebook. The trusted grader keeps each exercise's definitions, refuses
the course's reference code and the torch built-in the exercise asks for,
runs the learner's code in a separate, limited process that cannot import the
course, and runs the registered check in its own process on inputs drawn from
a hidden seed, talking to the learner's process through plain data (JSON and
raw tensor bytes). ``docs/instructors.md`` tells instructors what each
guarantees.

Modules: :mod:`.notebook` (the one reader; the lesson and check calls of a
notebook), :mod:`.report` (statuses, results, the table and the JSON format),
:mod:`.gradebook` (a class: its files, the CSV), :mod:`.kernel`, :mod:`.secure`.
"""

from tfmcourse.grading.report import ExerciseResult, NotebookReport, Status, render_table, to_json

__all__ = ["ExerciseResult", "NotebookReport", "Status", "render_table", "to_json"]
