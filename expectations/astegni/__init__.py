"""The Astegni suite: suite.yml (read as data), demo.py (its sample-database generator,
loaded by path from the suite's `demo:` key) and demo-3000-7.jsonl.gz (the generator's
recorded default sample, which `refaudit demo` loads without numpy; written by
`python -m refaudit.demo --write-recording`, checked by tests/test_recorded_sample.py)."""
