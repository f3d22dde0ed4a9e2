"""`mlops data`: what LLaMA-Factory will keep, drop or crash on, before the GPUs start.

Modules: ``versions`` (the rules by LLaMA-Factory version), ``entry`` (a dataset_info.json entry),
``sniff``/``readers`` (streaming readers), ``loading`` (what `datasets` does with the file),
``emulate`` (the converter, processor and formatter rules per record), ``check``/``convert``/``stats``
(the three commands), ``report`` (their result objects), ``cli`` (options only).
"""
