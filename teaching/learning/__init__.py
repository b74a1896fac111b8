"""Quizzes on teaching cases, spaced repetition (FSRS) and learner progress."""
