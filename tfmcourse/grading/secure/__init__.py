"""Secure grading: learner code runs out of process, on hidden inputs, under limits.

Where code runs decides where it lives:

- trusted, in the grader: :mod:`.extract` (what each exercise's code is, read
  with :mod:`ast`, never executed), :mod:`.policy` (what it may use),
  :mod:`.grade` (runs the checks; a class in parallel), :mod:`.sandbox` (the
  learner's process; :mod:`.isolation` puts it inside bubblewrap, :mod:`.memory`
  counts its memory), :mod:`.session` (the conversation with it: the only
  module that speaks the protocol), :mod:`.proxy` (what a check holds in place
  of the learner's objects), :mod:`.replies` (what comes back, checked),
  :mod:`.callbacks` (what learner code may do with the check's objects);
- untrusted, in the learner's process: :mod:`.worker` (the script),
  :mod:`.channel` (its end of the socket), :mod:`.rebuild` (the standard torch
  objects a check passes in), :mod:`.traps` and :mod:`.privileges`, which import nothing of the
  course;
- between them: :mod:`.wire`, frames of JSON and raw bytes (never pickle).
"""

from tfmcourse.grading.secure.grade import Settings, grade_many, grade_notebook, new_seed

__all__ = ["Settings", "grade_many", "grade_notebook", "new_seed"]
