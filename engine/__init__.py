"""The detection engine: plain, typed Python shared by the portal and the device client.

Nothing here imports Django (a test proves it). The public surface:

- ``engine.features``: the dataclasses that describe an app (``AppFeatures``) and a rule
  (``RuleRecord``) and a hit (``Match``).
- ``engine.analyze.analyze(path)``: read an APK (or XAPK) into ``AppFeatures``.
- ``engine.kinds``: the registry of signature kinds; each validates and normalises its body.
- ``engine.ruleset``: ``compile(records) -> Ruleset`` and ``match(features, ruleset)``.
"""

# Bumped whenever analysis output or the rule format changes in a way that old stored
# features or old clients must notice. Records carry the minimum engine version they need.
ENGINE_VERSION = 1
