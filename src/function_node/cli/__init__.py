"""The ``fxn`` command. Modules here parse, call the library, and print; nothing heavy at import."""
