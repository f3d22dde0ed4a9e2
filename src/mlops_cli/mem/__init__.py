"""`mlops mem estimate` and `mlops oom-check`: GPU memory a setup needs, and what to change."""
