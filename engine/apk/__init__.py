"""Readers for the parts of an APK: the ZIP archive, the binary manifest, resources, signatures.

``engine.analyze`` puts them together into ``AppFeatures``. Importing this package first undoes
apkInspector's import-time logging configuration (see ``quiet``).
"""

from engine.apk import quiet

quiet.install()
