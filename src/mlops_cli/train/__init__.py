"""`mlops train-doctor`: when and why a training run went wrong, from its log, with the fix.

Data flows one way: ``scan`` (bytes -> candidate lines) -> ``parse`` (lines -> records and
signals) -> ``diagnose`` (events -> findings; pure) -> ``report`` (findings -> text / JSON).
"""
