"""The suites that ship with refaudit, as package data: `astegni/` holds the Astegni suite
(suite.yml) and its demo generator (demo.py). refaudit finds them through
`importlib.resources`, so an installed wheel has them too."""
