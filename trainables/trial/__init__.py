"""A trial as Ray Tune runs it: its settings, the trainable, its MLflow run, its statuses. The only worker
modules that import Ray or MLflow."""
