"""One module per scenario of issue #7."""
