"""What refaudit knows of libpq's connection parameters (only the standard library here: the
early start reads it before anything else is imported)."""

SECRET_PARAMETERS = ("password", "sslpassword", "oauth_client_secret")
"""libpq's connection parameters that carry a secret: those `PQconndefaults()` marks as
passwords (`password`, `sslpassword`) and PostgreSQL 18's OAuth client secret. Every other
one is a setting or a path (`passfile`, `sslkey`, `sslcert` name files), shown as given."""
