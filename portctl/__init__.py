"""portctl: give ports to users and groups, as chown gives files."""

__version__ = "0.1.0"
