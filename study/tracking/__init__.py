"""The study in MLflow: the parent run, the driver's callbacks (front and gates recorders) and the UI link."""
