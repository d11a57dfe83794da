"""The rules of petition handling, as data (the TOML files here) and the pure functions that evaluate them.

Read `default.toml` to know what the engine will do; `ruleset.py` declares the vocabulary the
files may use, `deadlines.py` counts periods, `lifecycle.py` decides what each action and
deadline does, `triage.py` classifies intake text.
"""
