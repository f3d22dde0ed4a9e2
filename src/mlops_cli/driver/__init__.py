"""`mlops driver-check`: why the NVIDIA driver does not work, and the fix.

Data flows one way: ``probe`` (collect through the Host seam) -> ``assemble`` (parse the text
with ``parse``/``kernlog`` into ``facts.Facts``) -> ``diagnose`` (facts -> ordered findings,
pure; the rules live in ``rules_platform``, ``rules_host``, ``rules_module``) -> ``fixes``
(plans, pure) and ``apply`` (running a plan) -> ``report`` (the one result object, text and
JSON). ``check`` ties them together; ``cli`` holds the options only.
"""
