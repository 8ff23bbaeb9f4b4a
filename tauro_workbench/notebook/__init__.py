"""Notebook clients of the core: charts (Altair), displays and widgets (the ``notebook`` extra).

Submodules import their optional packages only when used; importing this package imports none.
"""
