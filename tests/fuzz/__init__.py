"""The repair fuzzer (issue #19): random small schemas, faults and drift on a real
PostgreSQL, and the invariants every repair, apply and rollback must keep. See
tests/test_repair_fuzz.py."""
