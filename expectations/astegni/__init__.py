"""The Astegni suite: suite.yml (read as data) and demo.py (its sample-database generator,
loaded by path from the suite's `demo:` key)."""
