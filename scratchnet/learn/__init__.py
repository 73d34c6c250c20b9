"""Exercises that grade themselves: write scratchnet's backward passes and learn *how* they
are wrong.

``python -m scratchnet.learn new DIR`` copies one stub per exercise into DIR; ``check DIR
[NAME ...]`` grades them against the library, per tensor, with a diagnosis of the error's
shape and a gradient check of the library's own layer running the learner's function (the
learner's function replaces the op with ``scratchnet.override``); ``train DIR`` trains a
denoiser with the learner's functions inside the library's layers (docs/exercises.md).

This package imports the library as any user would (public names only); nothing in the
library imports it.
"""
from .diagnose import Comparison, Context, compare, diagnose
from .exercises import EXERCISES, Exercise, learner_overrides
from .grader import ExerciseResult, format_result, format_summary, grade, grade_exercise

__all__ = ["EXERCISES", "Exercise", "ExerciseResult", "grade", "grade_exercise",
           "format_result", "format_summary", "compare", "diagnose", "Context", "Comparison",
           "learner_overrides"]
