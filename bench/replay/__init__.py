"""The replay benchmark (issue 23): learning curves recorded once through the real trainable, then searches replayed
against them in seconds, with the real searchers and schedulers.

- `curves.py`: the curves file (its format, reading and writing it, the nearest recorded configuration).
- `record.py`: the recorder, a script that appends configurations drawn from a study's search space, run through
  `run_study` at a budget, to a curves file, and resumes where it stopped.
- `engine.py`: the replayer: a searcher proposes, the nearest recorded curve answers, an event-driven clock with k
  workers orders the results as a live study's controller would, and the study's own scheduler decides.
"""
