# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""transformers' common model and config tests, vendored by scripts/vendor_transformers_tests.py."""

# The transformers release these files come from; tests/test_transformers_common.py runs only against it.
TRANSFORMERS_VERSION = "5.25.0"
