"""The test suite. A package, so pytest imports each file once, as `tests.<name>`, the name the tests import by."""
