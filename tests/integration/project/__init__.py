"""The project as a whole: README, CI, set-up, markers, a fresh clone, the notebooks."""
