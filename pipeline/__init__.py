"""refaudit: referential-integrity and domain auditing for PostgreSQL."""

# The one source of the version (pyproject.toml reads it). A literal, not
# importlib.metadata: that import alone costs tens of milliseconds on every run.
__version__ = "0.1.0"

__all__ = ["__version__"]
