"""`mlops driver-check`: why the NVIDIA driver does not work, and the fix.

Data flows one way: ``probe`` (collect through the Host seam) -> ``facts`` (parse text into
facts) -> ``diagnose`` (facts -> ordered findings, pure) -> ``fixes`` (plans) -> ``report``
(the one result object, text and JSON).
"""
