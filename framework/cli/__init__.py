"""The `ragtune` command line: parses arguments, calls the library, formats the results."""
