"""The app: its process and supervision, its state and output, the git/conda bootstrap,
the reaper and the guard, connections to it."""
