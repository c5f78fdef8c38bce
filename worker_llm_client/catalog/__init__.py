"""The catalog: the prompts and LLM profiles steps name, and the governance over them.

Its sources live in the repository (``sources``: prompts/, schemas/, llm_profiles.yaml,
governance.yaml), are checked offline (``lint``) and pushed to Firestore as immutable versions
(``push``); the function reads them (``documents``: their shapes; ``adapters/firestore_catalog``)
through a per-instance cache (``cache``). Distinct from ``config.py``: the environment's settings.
"""
