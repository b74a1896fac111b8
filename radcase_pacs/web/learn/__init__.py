"""The learner's pages: Today, a quiz's questions and feedback, progress."""
