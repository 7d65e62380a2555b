"""Grading on the platforms instructors already run: ``tfmcourse export …`` and LMS gradebooks.

=================  ===========================================================
``bundle``         what an exported autograder carries: the course, its pins
``submission``     grade one learner's upload through ``tfmcourse grade --secure``
``gradescope``     a Gradescope autograder zip and its ``results.json``
``prairielearn``   a PrairieLearn externally graded question and its ``results.json``
``lms``            a gradebook CSV that Canvas (and Moodle) import, from a roster
=================  ===========================================================

The exported graders depend only on the command line ``tfmcourse grade --secure
PATHS… --json FILE --seed N`` and the JSON it writes, so they grade exactly as an
instructor's own ``tfmcourse grade --secure`` does.
"""
